r"""Link prediction: hold out edges, score pairs, compare models with classic heuristics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import pandas as pd

from models.base import resolve_seed
from models.metrics import average_precision, roc_auc
from models.network._edgelist import sample_non_edges

__all__ = [
    "EdgeSplit",
    "average_precision",
    "link_prediction_scores",
    "roc_auc",
    "split_edges",
]

#: The networkx heuristics :func:`link_prediction_scores` compares against.
HEURISTICS = ("common_neighbours", "adamic_adar", "preferential_attachment")


class EdgeSplit(NamedTuple):
    """A graph with held-out edges, from :func:`split_edges`.

    Attributes
    ----------
    train : networkx.Graph
        The graph without the held-out edges; every node of the original is kept.
    test : pandas.DataFrame
        Columns ``source``, ``target`` and ``label``: 1 for a held-out edge, 0 for a
        pair that is not an edge of the original graph.
    """

    train: nx.Graph
    test: pd.DataFrame


def split_edges(
    graph: nx.Graph,
    test_fraction: float = 0.1,
    random_seed: int | np.random.Generator | None = None,
) -> EdgeSplit:
    r"""Hold out a random share of edges and as many non-edges for link prediction.

    Parameters
    ----------
    graph : networkx.Graph
        Undirected graph without self-loops.
    test_fraction : float, default 0.1
        Share of the edges to hold out, in (0, 1).
    random_seed : int, numpy.random.Generator or None
        Seed of the held-out edges and the sampled non-edges.

    Returns
    -------
    EdgeSplit
        ``train`` (a copy of ``graph`` without the held-out edges, same nodes and
        attributes) and ``test`` (held-out edges with ``label`` 1, then as many
        uniformly sampled non-edges of ``graph`` with ``label`` 0).

    Raises
    ------
    ValueError
        If ``graph`` is not an undirected simple graph, has self-loops, or
        ``test_fraction`` is not in (0, 1) or holds out no edge; or if fewer edges can
        be held out than asked (see Notes) or there are too few non-edges.

    Notes
    -----
    Edges are visited in random order and held out unless that would leave one of
    their nodes without any edge in ``train`` (a node with no edge carries no
    information for any model), until ``round(test_fraction * n_edges)`` are held out.
    Non-edges are pairs :math:`i \ne j` not linked in ``graph``, drawn uniformly without
    replacement.

    Examples
    --------
    >>> import networkx as nx
    >>> split = split_edges(nx.karate_club_graph(), 0.2, random_seed=0)
    >>> split.train.number_of_nodes(), split.train.number_of_edges()
    (34, 62)
    >>> split.test["label"].value_counts().sort_index().tolist()
    [16, 16]
    """
    owner = "split_edges"
    if not isinstance(graph, nx.Graph) or graph.is_directed() or graph.is_multigraph():
        raise ValueError(
            f"The 'graph' parameter of {owner} must be an undirected simple networkx.Graph. "
            f"Got {type(graph).__name__} instead."
        )
    if nx.number_of_selfloops(graph):
        raise ValueError(
            f"The 'graph' parameter of {owner} must have no self-loops. Got "
            f"{nx.number_of_selfloops(graph)}; remove them with "
            "graph.remove_edges_from(nx.selfloop_edges(graph))."
        )
    if not (isinstance(test_fraction, float | int) and 0 < test_fraction < 1):
        raise ValueError(
            f"The 'test_fraction' parameter of {owner} must be in (0, 1). "
            f"Got {test_fraction!r} instead."
        )
    edges = list(graph.edges)
    n_test = round(test_fraction * len(edges))
    if n_test < 1:
        raise ValueError(
            f"The 'test_fraction' parameter of {owner} holds out no edge of a graph with "
            f"{len(edges)} edges. Got {test_fraction!r} instead."
        )
    rng = np.random.default_rng(resolve_seed(random_seed))
    degree = dict(graph.degree)
    held = []
    for k in rng.permutation(len(edges)):
        u, v = edges[k]
        if degree[u] > 1 and degree[v] > 1:
            held.append((u, v))
            degree[u] -= 1
            degree[v] -= 1
            if len(held) == n_test:
                break
    if len(held) < n_test:
        raise ValueError(
            f"Only {len(held)} edges can be held out without leaving a node with no edge; "
            f"the 'test_fraction' of {owner} asks for {n_test}. Use a smaller test_fraction."
        )
    nodes = pd.Index(list(graph.nodes), tupleize_cols=False)
    n = len(nodes)
    if n * (n - 1) // 2 - len(edges) < n_test:
        raise ValueError(
            f"The graph has fewer than {n_test} non-edges to sample for {owner}; it is "
            "too dense for this test_fraction."
        )
    u = nodes.get_indexer(pd.Index([a for a, _ in edges], dtype=object, tupleize_cols=False))
    v = nodes.get_indexer(pd.Index([b for _, b in edges], dtype=object, tupleize_cols=False))
    edge_codes = np.unique(np.minimum(u, v).astype(np.int64) * n + np.maximum(u, v))
    codes = sample_non_edges(n, edge_codes, n_test, rng)
    labels = np.asarray(list(nodes), dtype=object)
    train = graph.copy()
    train.remove_edges_from(held)
    test = pd.DataFrame(
        {
            "source": pd.Series([a for a, _ in held] + labels[codes // n].tolist(), dtype=object),
            "target": pd.Series([b for _, b in held] + labels[codes % n].tolist(), dtype=object),
            "label": np.r_[np.ones(n_test, dtype=np.int64), np.zeros(n_test, dtype=np.int64)],
        }
    )
    return EdgeSplit(train, test)


def _heuristic_scores(graph: nx.Graph, pairs: list[tuple[Any, Any]]) -> dict[str, np.ndarray]:
    return {
        "common_neighbours": np.array(
            [sum(1 for _ in nx.common_neighbors(graph, u, v)) for u, v in pairs], dtype=float
        ),
        "adamic_adar": np.array([p for _, _, p in nx.adamic_adar_index(graph, pairs)]),
        "preferential_attachment": np.array(
            [p for _, _, p in nx.preferential_attachment(graph, pairs)], dtype=float
        ),
    }


def link_prediction_scores(
    split: EdgeSplit, models: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    r"""AUC and average precision of fitted models and networkx heuristics on one split.

    Parameters
    ----------
    split : EdgeSplit
        From :func:`split_edges`.
    models : mapping of str to fitted model, optional
        Name -> a model fitted on ``split.train`` with a ``probability_edge(data)``
        method (:class:`~models.network.StochasticBlockModel`,
        :class:`~models.network.LatentSpaceModel`); its posterior mean edge
        probability is the score.

    Returns
    -------
    pandas.DataFrame
        Index ``method`` (the models in the given order, then ``common_neighbours``,
        ``adamic_adar`` and ``preferential_attachment`` computed on ``split.train``);
        columns ``auc`` and ``average_precision``. ``attrs`` holds ``n_test_edges``
        and ``n_test_non_edges``.

    Raises
    ------
    ValueError
        If a model's training edges include a held-out edge (it was fitted on the
        full graph, so its scores would be inflated).
    models.exceptions.NotFittedError
        If a model is not fitted.

    Notes
    -----
    Common neighbours :math:`|\Gamma(u) \cap \Gamma(v)|`, Adamic-Adar
    :math:`\sum_{w \in \Gamma(u) \cap \Gamma(v)} 1 / \log k_w` and preferential
    attachment :math:`k_u k_v` (Liben-Nowell & Kleinberg 2007) score a pair from the
    training graph alone. Scores tied between pairs (frequent for common neighbours)
    count one half in the AUC.

    References
    ----------
    Liben-Nowell, D. and Kleinberg, J. (2007). The link-prediction problem for social
    networks. *J. Am. Soc. Inf. Sci. Technol.* 58(7), 1019-1031.

    Examples
    --------
    >>> import networkx as nx
    >>> graph = nx.planted_partition_graph(2, 20, 0.5, 0.02, seed=1)
    >>> table = link_prediction_scores(split_edges(graph, 0.2, random_seed=0))
    >>> table.index.tolist()
    ['common_neighbours', 'adamic_adar', 'preferential_attachment']
    >>> bool(table.loc["adamic_adar", "auc"] > 0.5)
    True
    """
    test = split.test
    pairs = list(zip(test["source"].tolist(), test["target"].tolist(), strict=True))
    labels = test["label"].to_numpy()
    held = {frozenset(p) for p, y in zip(pairs, labels, strict=True) if y == 1}
    scores: dict[str, np.ndarray] = {}
    for name, model in (models or {}).items():
        data = getattr(model, "data_", None)
        if data is not None:
            trained = {frozenset(e) for e in zip(data["source"], data["target"], strict=True)}
            leaked = len(held & trained)
            if leaked:
                raise ValueError(
                    f"The model {name!r} passed to link_prediction_scores was fitted on "
                    f"{leaked} held-out edge(s); fit it on split.train."
                )
        scores[name] = model.probability_edge(test[["source", "target"]])["mean"].to_numpy()
    scores |= _heuristic_scores(split.train, pairs)
    table = pd.DataFrame(
        {
            "auc": [roc_auc(labels, s) for s in scores.values()],
            "average_precision": [average_precision(labels, s) for s in scores.values()],
        },
        index=pd.Index(list(scores), name="method"),
    )
    table.attrs["n_test_edges"] = int(labels.sum())
    table.attrs["n_test_non_edges"] = int(labels.size - labels.sum())
    return table
