"""Graphs: missing node ids and impossible block counts are errors, not silent merges."""

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from models.exceptions import ConvergenceWarning, DataValidationError
from models.network import StochasticBlockModel


@pytest.mark.parametrize(("column", "missing"), [("source", np.nan), ("target", None)])
def test_missing_node_ids_in_an_edge_list_name_the_column_and_row(column, missing):
    edges = pd.DataFrame({"source": [1, 2, 3], "target": [2, 3, 1]}, dtype=object)
    edges.loc[2, column] = missing
    copy = edges.copy()
    with pytest.raises(DataValidationError, match=rf"(?s)column '{column}': expected node ids, "
                       r"not missing values.*1 row\(s\).*row 2.*dropna"):
        StochasticBlockModel(n_blocks=2).fit(edges, draws=5, tune=0, chains=1, n_starts=1,
                                             random_seed=1)
    pd.testing.assert_frame_equal(edges, copy)


def test_nan_and_none_are_not_merged_into_one_node():
    edges = pd.DataFrame({"source": [1, 2, np.nan, 3], "target": [2, 3, 1, None]})
    with pytest.raises(DataValidationError, match=r"(?s)'source'.*row 2.*'target'.*row 3"):
        StochasticBlockModel(n_blocks=2).fit(edges, draws=5, tune=0, chains=1, n_starts=1,
                                             random_seed=1)


def test_an_isolated_nan_node_of_a_graph_is_an_error():
    graph = nx.Graph([(1, 2), (2, 3)])
    graph.add_node(float("nan"))
    with pytest.raises(DataValidationError, match=r"<nodes>.*node ids, not missing values"):
        StochasticBlockModel(n_blocks=2).fit(graph, draws=5, tune=0, chains=1, n_starts=1,
                                             random_seed=1)


def test_more_blocks_than_nodes_is_an_error_naming_both():
    graph = nx.Graph([(1, 2), (2, 3), (3, 4)])
    with pytest.raises(ValueError, match=r"The 'n_blocks' parameter of StochasticBlockModel must "
                       r"be at most the number of nodes of the graph \(4\).*Got 10 instead"):
        StochasticBlockModel(n_blocks=10).fit(graph, draws=5, tune=0, chains=1, n_starts=1,
                                              random_seed=1)


def test_as_many_blocks_as_nodes_is_allowed():
    graph = nx.Graph([(1, 2), (2, 3)])
    with pytest.warns(ConvergenceWarning):  # 5 draws of 1 chain: expected
        model = StochasticBlockModel(n_blocks=3).fit(graph, draws=5, tune=0, chains=1,
                                                     n_starts=1, random_seed=1)
    assert len(model.point_partition()) == 3


def test_mixed_int_and_str_node_labels_keep_their_types_through_fit_and_save(tmp_path):
    # catalogue 69: int labels came back as str ("1") when a graph mixed them with str labels
    graph = nx.Graph([(0, 1), (1, 2), (0, 2), ("a", "b"), ("b", "c"), ("a", "c"), (2, "a")])
    graph.add_node(99)
    model = StochasticBlockModel(n_blocks=2).fit(graph, draws=10, tune=5, chains=1, n_starts=1,
                                                 random_seed=1)
    labels = [0, 1, 2, "a", "b", "c", 99]
    assert model.point_partition().index.tolist() == labels
    assert [type(x) for x in model.coassignment_matrix().index] == [type(x) for x in labels]
    before = model.probability_edge([(0, "a"), (99, "c")])
    assert before.index.tolist() == [(0, "a"), (99, "c")]
    model.save(tmp_path / "sbm.nc")
    loaded = StochasticBlockModel.load(tmp_path / "sbm.nc")
    assert loaded.point_partition().index.tolist() == labels
    assert [type(x) for x in loaded.point_partition().index] == [type(x) for x in labels]
    pd.testing.assert_frame_equal(loaded.probability_edge([(0, "a"), (99, "c")]), before)
