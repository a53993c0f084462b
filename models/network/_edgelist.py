"""Edge lists shared by the network models: validation, node pairs and storage.

Both :class:`~models.network.StochasticBlockModel` and
:class:`~models.network.LatentSpaceModel` take an undirected ``networkx.Graph`` or an
edge-list DataFrame and keep a clean edge list (``source``, ``target``, ``count``)
whose ``attrs["nodes"]`` lists every node, isolated ones included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import xarray as xr

from models.exceptions import DataValidationError, Problem

EDGE_COLUMNS = ("source", "target", "count")


def validate_edge_list(data: Any, weight: str | None, owner: str) -> pd.DataFrame:
    """Check a graph or an edge list and return ``source``, ``target``, ``count``.

    ``owner`` is the model class name used in messages. Counts must be non-negative
    integers (edge multiplicities); self-loops and empty graphs are errors.
    """
    if isinstance(data, nx.Graph):
        if data.is_directed() or data.is_multigraph():
            raise ValueError(
                f"{owner} needs an undirected simple graph (networkx.Graph). "
                f"Got a {type(data).__name__} instead."
            )
        nodes = list(data.nodes)
        rows = list(data.edges(data=True))
        frame = pd.DataFrame(
            {
                "source": pd.Series([u for u, _, _ in rows], dtype=object),
                "target": pd.Series([v for _, v, _ in rows], dtype=object),
                "count": [d.get(weight, np.nan) if weight else 1 for _, _, d in rows],
            }
        )
    elif isinstance(data, pd.DataFrame):
        missing = [c for c in ("source", "target") if c not in data.columns]
        if missing:
            raise DataValidationError(
                [Problem(c, "a column of node ids", fix="pass an edge list") for c in missing],
                what="edge list",
            )
        frame = data[["source", "target"]].copy()
        frame["count"] = data["count"] if "count" in data.columns else 1
        nodes = data.attrs.get("nodes") or list(
            pd.unique(pd.concat([frame["source"], frame["target"]]))
        )
    else:
        raise TypeError(
            f"The 'data' parameter of {owner}.fit must be a networkx.Graph or "
            f"an edge-list DataFrame (source, target[, count]). Got {type(data).__name__}."
        )
    problems = []
    if len(frame) == 0:
        problems.append(Problem("<table>", "at least one edge", fix="pass a non-empty graph"))
    for column in ("source", "target"):
        missing = frame[column].isna().to_numpy()
        if missing.any():
            rows_ = np.flatnonzero(missing)
            problems.append(
                Problem(
                    column,
                    "node ids, not missing values (NaN and None would become one node 'nan')",
                    n_rows=int(rows_.size),
                    rows=tuple(int(r) for r in rows_[:5]),
                    examples=tuple(frame[column].iloc[rows_[:5]].tolist()),
                    fix="drop the edges with a missing end, e.g. edges.dropna(subset=['source', "
                    "'target'])",
                )
            )
    isolated_missing = [n for n in nodes if n is None or (isinstance(n, float) and np.isnan(n))]
    if isolated_missing and not any(p.column in ("source", "target") for p in problems):
        problems.append(
            Problem("<nodes>", "node ids, not missing values",
                    fix="remove the NaN node from the graph (graph.remove_node(...))")
        )
    count = pd.to_numeric(frame["count"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(count) | (count < 0) | (count != np.round(count))
    if bad.any():
        rows_ = np.flatnonzero(bad)
        problems.append(
            Problem(
                weight or "count",
                "non-negative integer edge multiplicities",
                n_rows=int(rows_.size),
                rows=tuple(int(r) for r in rows_[:5]),
                examples=tuple(frame["count"].iloc[rows_[:5]].tolist()),
                fix="use an integer edge attribute such as 'common', or weight=None",
            )
        )
    loops = (frame["source"] == frame["target"]).to_numpy()
    if loops.any():
        rows_ = np.flatnonzero(loops)
        problems.append(
            Problem(
                "source",
                "no self-loops",
                n_rows=int(rows_.size),
                rows=tuple(int(r) for r in rows_[:5]),
                examples=tuple(frame["source"].iloc[rows_[:5]].tolist()),
                fix="remove them with graph.remove_edges_from(nx.selfloop_edges(graph))",
            )
        )
    if problems:
        raise DataValidationError(problems, what="graph")
    frame["count"] = count.astype(np.int64)
    frame = frame.reset_index(drop=True)
    frame.attrs["nodes"] = list(nodes)
    return frame


def label_array(values: Sequence[Any]) -> np.ndarray:
    """Node labels as an array that keeps their types (numpy turns [1, "a"] into text)."""
    array = np.asarray(values)
    if array.dtype.kind in "US" and not all(isinstance(v, str) for v in values):
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
    return array


def edge_list_to_dataset(data: pd.DataFrame) -> xr.Dataset:
    """Store an edge list and its node list for ``save``."""
    return xr.Dataset(
        {c: ("edge", data[c].to_numpy()) for c in EDGE_COLUMNS}
        | {"node_id": ("node", label_array(data.attrs["nodes"]))}
    )


def edge_list_from_dataset(ds: xr.Dataset) -> pd.DataFrame:
    """Inverse of :func:`edge_list_to_dataset`."""
    frame = pd.DataFrame({c: ds[c].values for c in EDGE_COLUMNS})
    frame.attrs["nodes"] = ds["node_id"].values.tolist()
    return frame


def pair_codes(
    pairs: pd.DataFrame | Sequence[tuple[Any, Any]], nodes: pd.Index, owner: str
) -> tuple[pd.MultiIndex, np.ndarray, np.ndarray]:
    """Positions in ``nodes`` of both ends of each pair, and a (source, target) index.

    ``pairs`` is a DataFrame with ``source`` and ``target`` columns or a sequence of
    2-tuples. Nodes not in ``nodes`` are an error that names them.
    """
    if isinstance(pairs, pd.DataFrame):
        missing = [c for c in ("source", "target") if c not in pairs.columns]
        if missing:
            raise DataValidationError(
                [Problem(c, "a column of node ids", fix="pass source and target columns")
                 for c in missing],
                what=f"pairs passed to {owner}",
            )
        source, target = pairs["source"].tolist(), pairs["target"].tolist()
    else:
        items = list(pairs)
        if not all(isinstance(p, tuple | list) and len(p) == 2 for p in items):
            bad = next(p for p in items if not (isinstance(p, tuple | list) and len(p) == 2))
            raise ValueError(
                f"The 'pairs' parameter of {owner} must be a DataFrame with source and "
                f"target columns or a sequence of (source, target) tuples. Got {bad!r} "
                "among them."
            )
        source, target = [p[0] for p in items], [p[1] for p in items]
    i = nodes.get_indexer(pd.Index(source, dtype=object, tupleize_cols=False))
    j = nodes.get_indexer(pd.Index(target, dtype=object, tupleize_cols=False))
    unknown = np.flatnonzero((i < 0) | (j < 0))
    if unknown.size:
        rows = unknown[:5]
        examples = tuple(source[r] if i[r] < 0 else target[r] for r in rows)
        raise DataValidationError(
            [
                Problem(
                    "source" if i[rows[0]] < 0 else "target",
                    "nodes of the training graph",
                    n_rows=int(unknown.size),
                    rows=tuple(int(r) for r in rows),
                    examples=examples,
                    fix="predict only for nodes the model was fitted on",
                )
            ],
            what=f"pairs passed to {owner}",
        )
    index = pd.MultiIndex.from_arrays(
        [pd.Index(source, dtype=object), pd.Index(target, dtype=object)],
        names=["source", "target"],
    )
    return index, i.astype(np.int64), j.astype(np.int64)


def sample_non_edges(
    n: int, edge_codes: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """``size`` distinct non-edge dyads ``i * n + j`` (``i < j``), uniformly at random.

    Dyads are drawn as random ordered pairs, rejected when they are loops or edges,
    and deduplicated in order of drawing, so all dyads are never materialised.
    """
    chosen = np.empty(0, dtype=np.int64)
    while chosen.size < size:
        k = int(1.2 * (size - chosen.size)) + 16
        a, b = rng.integers(0, n, k), rng.integers(0, n, k)
        keep = a != b
        codes = np.minimum(a, b)[keep] * n + np.maximum(a, b)[keep]
        codes = codes[~np.isin(codes, edge_codes)]
        chosen = pd.unique(np.concatenate([chosen, codes]))[:size]
    return chosen
