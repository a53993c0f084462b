"""Tests of the co-listening graph construction."""

import itertools
import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from networkx.algorithms import bipartite

from models.data.summaries import user_artist_matrix
from models.exceptions import DataValidationError
from models.network import WEIGHTS, build_colistening_graph, colistening_edges
from models.network import graph as graph_module


@pytest.fixture(scope="module")
def davis():
    g = nx.davis_southern_women_graph()
    women, events = g.graph["top"], g.graph["bottom"]
    log = pd.DataFrame(
        [(w, e) for w, e in g.edges() if w in women] + [(w, e) for e, w in g.edges() if w in women],
        columns=["user_id", "artist_id"],
    )
    return g, events, log


def _edge_map(graph, attr="weight"):
    return {frozenset(e[:2]): e[2] for e in graph.edges(data=attr)}


def test_count_equals_networkx_weighted_projection(davis):
    g, events, log = davis
    ours = build_colistening_graph(log, min_common=1)
    theirs = bipartite.weighted_projected_graph(g, events)
    assert set(ours.nodes) == set(events)
    assert _edge_map(ours) == _edge_map(theirs)
    assert _edge_map(ours, "common") == _edge_map(theirs)


def test_jaccard_equals_networkx_overlap_projection(davis):
    g, events, log = davis
    ours = _edge_map(build_colistening_graph(log, min_common=1, weight="jaccard"))
    theirs = _edge_map(bipartite.overlap_weighted_projected_graph(g, events, jaccard=True))
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value)


def test_min_common_drops_weak_edges(davis):
    _, _, log = davis
    full = build_colistening_graph(log, min_common=1)
    strong = build_colistening_graph(log, min_common=3)
    expected = {k for k, c in _edge_map(full, "common").items() if c >= 3}
    assert set(_edge_map(strong)) == expected
    assert strong.number_of_nodes() == full.number_of_nodes()


@pytest.fixture
def three_users():
    # u1: a, a, b; u2: a, b, c; u3: a, c.  n_a = 3, n_b = 2, n_c = 2, N = 3.
    return pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 2, 3, 3],
                         "artist_id": ["a", "a", "b", "a", "b", "c", "a", "c"]})


@pytest.mark.parametrize(
    ("weight", "ab", "bc"),
    [
        ("count", 2, 1),
        ("jaccard", 2 / 3, 1 / 3),
        ("cosine", 2 / math.sqrt(6), 1 / 2),
        ("lift", 2 * 3 / 6, 1 * 3 / 4),
        ("pmi", math.log(1.0), math.log(0.75)),
        ("npmi", 0.0, math.log(0.75) / -math.log(1 / 3)),
    ],
)
def test_weight_formulas_by_hand(three_users, weight, ab, bc):
    g = build_colistening_graph(three_users, min_common=1, weight=weight)
    assert g["a"]["b"]["weight"] == pytest.approx(ab)
    assert g["b"]["c"]["weight"] == pytest.approx(bc)
    assert g["a"]["b"]["common"] == 2
    assert g.graph["n_users"] == 3


def test_npmi_is_one_when_every_user_shares_the_pair():
    log = pd.DataFrame({"user_id": [1, 1, 2, 2], "artist_id": ["x", "y", "x", "y"]})
    assert build_colistening_graph(log, min_common=1, weight="npmi")["x"]["y"]["weight"] == 1.0


def test_node_attributes_and_names(three_users):
    g = build_colistening_graph(three_users, min_common=1, artist_names={"a": "Abba", "b": "Blur"})
    assert g.nodes["a"] == {"plays": 4, "listeners": 3, "name": "Abba"}
    assert "name" not in g.nodes["c"]


def test_matrix_inputs_match_log(three_users):
    expected = _edge_map(build_colistening_graph(three_users, min_common=1, weight="cosine"))
    counts = user_artist_matrix(three_users)
    from_counts = build_colistening_graph(counts, min_common=1, weight="cosine")
    assert _edge_map(from_counts) == pytest.approx(expected)
    assert from_counts.nodes["a"]["plays"] == 4
    from_sparse = build_colistening_graph(
        sp.csc_matrix(counts.matrix), min_common=1, weight="cosine", artists=list(counts.artists)
    )
    assert _edge_map(from_sparse) == pytest.approx(expected)
    unlabeled = build_colistening_graph(counts.matrix, min_common=1)
    assert set(unlabeled.nodes) == {0, 1, 2}


def test_min_listeners_removes_artists(three_users):
    g = build_colistening_graph(three_users, min_common=1, min_listeners=3)
    assert list(g.nodes) == ["a"]
    assert g.graph["n_users"] == 3


def test_edges_frame(three_users):
    edges = colistening_edges(three_users, min_common=2)
    assert edges.to_dict("records") == [
        {"source": "a", "target": "b", "common": 2, "weight": 2},
        {"source": "a", "target": "c", "common": 2, "weight": 2},
    ]


def _random_log(seed, n_users, n_artists, n_plays):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user_id": rng.integers(0, n_users, n_plays),
                         "artist_id": rng.integers(0, n_artists, n_plays)})


def _brute_force_common(log):
    sets = log.groupby("artist_id")["user_id"].apply(set).to_dict()
    return {frozenset((a, b)): len(sets[a] & sets[b]) for a, b in itertools.combinations(sets, 2)}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_users=st.integers(1, 15), n_artists=st.integers(2, 12),
       n_plays=st.integers(1, 80), min_common=st.integers(1, 3))
def test_counts_equal_brute_force(seed, n_users, n_artists, n_plays, min_common):
    log = _random_log(seed, n_users, n_artists, n_plays)
    g = build_colistening_graph(log, min_common=min_common)
    expected = {k: c for k, c in _brute_force_common(log).items() if c >= min_common}
    assert _edge_map(g, "common") == expected
    assert set(g.nodes) == set(log["artist_id"])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4))
def test_top_k_keeps_an_edge_when_either_endpoint_ranks_it(seed, k):
    log = _random_log(seed, 20, 10, 120)
    full = build_colistening_graph(log, min_common=1, weight="jaccard")
    kept = build_colistening_graph(log, min_common=1, weight="jaccard", top_k=k)

    def top(node):
        ranked = sorted(full[node].items(), key=lambda item: (-item[1]["weight"], item[0]))
        return {frozenset((node, other)) for other, _ in ranked[:k]}

    expected = set().union(*(top(n) for n in full.nodes))
    assert set(_edge_map(kept)) == expected


def test_column_blocks_give_the_same_graph(monkeypatch):
    log = _random_log(3, 40, 30, 400)
    whole = colistening_edges(log, min_common=1, weight="lift")
    monkeypatch.setattr(graph_module, "BLOCK_ENTRIES", 50)
    blocks = graph_module._column_blocks(
        graph_module._binary_matrix(log, None, "f")[0], 30)
    assert len(blocks) > 3
    pd.testing.assert_frame_equal(colistening_edges(log, min_common=1, weight="lift"), whole)
    with_top = colistening_edges(log, min_common=1, weight="lift", top_k=2)
    monkeypatch.setattr(graph_module, "BLOCK_ENTRIES", 10**9)
    pd.testing.assert_frame_equal(colistening_edges(log, min_common=1, weight="lift", top_k=2),
                                  with_top)


def test_errors(three_users):
    with pytest.raises(DataValidationError, match="column 'artist_id'"):
        build_colistening_graph(three_users.drop(columns="artist_id"))
    with pytest.raises(DataValidationError, match="at least one row"):
        build_colistening_graph(three_users.iloc[:0])
    with pytest.raises(DataValidationError, match="no missing values"):
        build_colistening_graph(three_users.assign(user_id=[1, None, 1, 2, 2, 2, 3, 3]))
    with pytest.raises(ValueError, match=r"'weight' parameter .* one of \['count', 'jaccard'"):
        build_colistening_graph(three_users, weight="overlap")
    with pytest.raises(ValueError, match="'min_common' parameter .* positive integer. Got 0"):
        build_colistening_graph(three_users, min_common=0)
    with pytest.raises(ValueError, match="'top_k' parameter .* Got -1"):
        build_colistening_graph(three_users, top_k=-1)
    with pytest.raises(TypeError, match="Got list instead"):
        build_colistening_graph([1, 2])
    with pytest.raises(ValueError, match="one label per matrix column"):
        build_colistening_graph(sp.csr_matrix(np.ones((2, 3))), artists=["a"])
    with pytest.raises(DataValidationError, match="non-negative"):
        build_colistening_graph(sp.csr_matrix(np.array([[1, -1]])))
    with pytest.raises(DataValidationError, match="at least one play"):
        build_colistening_graph(sp.csr_matrix((2, 2)))
    assert set(WEIGHTS) == {"count", "jaccard", "cosine", "lift", "pmi", "npmi"}
