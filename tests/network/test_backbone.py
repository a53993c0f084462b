"""Tests of the disparity-filter backbone, on hand-computed graphs."""

import networkx as nx
import pytest

from models.network import disparity_filter


@pytest.fixture
def graph():
    g = nx.Graph(kind="toy")
    g.add_node("e", name="isolated")
    g.add_weighted_edges_from([("a", "b", 10), ("a", "c", 1), ("a", "d", 1), ("c", "d", 1)])
    return g


def test_p_values_by_hand(graph):
    # a: k=3, s=12; b: k=1; c, d: k=2, s=2.
    full = disparity_filter(graph, alpha=1.0)
    assert full["a"]["b"]["p_value"] == pytest.approx((1 - 10 / 12) ** 2)  # b has k = 1
    assert full["a"]["c"]["p_value"] == pytest.approx(min((1 - 1 / 12) ** 2, 0.5))
    assert full["c"]["d"]["p_value"] == pytest.approx(0.5)
    assert full.number_of_edges() == 4
    assert full["a"]["b"]["weight"] == 10


def test_alpha_selects_edges_and_keeps_nodes(graph):
    backbone = disparity_filter(graph, alpha=0.2)
    assert sorted(backbone.edges()) == [("a", "b")]
    assert set(backbone.nodes) == set(graph.nodes)
    assert backbone.nodes["e"]["name"] == "isolated"
    assert backbone.graph["kind"] == "toy"
    assert graph.number_of_edges() == 4  # input untouched
    assert "p_value" not in graph["a"]["b"]
    assert sorted(disparity_filter(graph, alpha=0.5).edges()) == [("a", "b")]
    assert disparity_filter(graph, alpha=0.51).number_of_edges() == 4


def test_degree_one_pair_is_dropped():
    g = nx.Graph()
    g.add_edge(1, 2, weight=5.0)
    assert disparity_filter(g, alpha=1.0).number_of_edges() == 0


def test_other_weight_attribute():
    g = nx.Graph()
    g.add_edges_from([(0, 1, {"common": 8}), (0, 2, {"common": 1}), (0, 3, {"common": 1})])
    kept = disparity_filter(g, alpha=0.1, weight="common")
    assert sorted(kept.edges()) == [(0, 1)]
    assert kept[0][1]["p_value"] == pytest.approx((1 - 0.8) ** 2)


def test_empty_graph():
    g = nx.Graph()
    g.add_nodes_from([1, 2])
    assert disparity_filter(g).number_of_nodes() == 2


def test_errors(graph):
    with pytest.raises(ValueError, match=r"'alpha' parameter .* \(0, 1\]. Got 0 instead"):
        disparity_filter(graph, alpha=0)
    with pytest.raises(ValueError, match="Got 1.5 instead"):
        disparity_filter(graph, alpha=1.5)
    with pytest.raises(ValueError, match="undirected simple graph"):
        disparity_filter(nx.DiGraph(graph))
    with pytest.raises(ValueError, match="'common' attribute .* 4 edge"):
        disparity_filter(graph, weight="common")
    graph["a"]["c"]["weight"] = -1
    with pytest.raises(ValueError, match="finite and non-negative .* Got -1.0"):
        disparity_filter(graph)
