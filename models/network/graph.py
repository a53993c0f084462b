r"""Artist co-listening graphs from a listening log or a user x artist matrix.

Two artists are linked when enough users played both. The co-listener counts of
every pair of artists are the off-diagonal entries of :math:`B^\top B`, where
:math:`B` is the binarised user x artist matrix; they are computed with sparse
matrix products, a block of artist columns at a time so that memory stays bounded
for large catalogues, and never with a Python loop over users or pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp

from models._validation import check_int
from models.data.schema import ARTIST_ID, USER_ID
from models.exceptions import DataValidationError, Problem

__all__ = ["WEIGHTS", "build_colistening_graph", "colistening_edges"]

#: Names of the edge weights :func:`build_colistening_graph` can compute.
WEIGHTS = ("count", "jaccard", "cosine", "lift", "pmi", "npmi")
#: Largest number of (artist, artist) entries of :math:`B^\top B` held at once.
BLOCK_ENTRIES = 20_000_000
_TABLE = "<table>"
_EDGE_COLUMNS = ("source", "target", "common", "weight")

Weight = Literal["count", "jaccard", "cosine", "lift", "pmi", "npmi"]


def _binary_matrix(
    data: Any, artists: Sequence | None, func: str
) -> tuple[sp.csr_matrix, pd.Index, np.ndarray]:
    """Return (binarised users x artists CSR, artist labels, plays per artist)."""
    if isinstance(data, pd.DataFrame):
        missing = [c for c in (USER_ID, ARTIST_ID) if c not in data.columns]
        problems = [
            Problem(c, f"a column required by {func}", fix=f"add or rename a column to '{c}'")
            for c in missing
        ]
        if len(data) == 0:
            problems.append(Problem(_TABLE, "at least one row", fix="pass a non-empty log"))
        if problems:
            raise DataValidationError(problems, what="events")
        for column in (USER_ID, ARTIST_ID):
            na = data[column].isna().to_numpy()
            if na.any():
                rows = np.flatnonzero(na)
                raise DataValidationError(
                    [
                        Problem(
                            column,
                            "no missing values",
                            n_rows=int(rows.size),
                            rows=tuple(int(r) for r in rows[:5]),
                            examples=(None,) * min(5, rows.size),
                            fix="drop the rows with missing ids",
                        )
                    ],
                    what="events",
                )
        user_codes, _ = pd.factorize(data[USER_ID])
        artist_codes, labels = pd.factorize(data[ARTIST_ID], sort=True)
        n_users, n_artists = int(user_codes.max()) + 1, len(labels)
        plays = np.bincount(artist_codes, minlength=n_artists)
        # Duplicated (user, artist) pairs are summed by the COO -> CSR conversion.
        matrix = sp.csr_matrix(
            (np.ones(len(user_codes), dtype=np.int32), (user_codes, artist_codes)),
            shape=(n_users, n_artists),
        )
        labels = pd.Index(labels, name=ARTIST_ID)
    else:
        if all(hasattr(data, a) for a in ("matrix", "users", "artists")):
            matrix, labels = data.matrix, pd.Index(data.artists)
        elif sp.issparse(data):
            matrix = data
            labels = pd.RangeIndex(data.shape[1]) if artists is None else pd.Index(artists)
        else:
            raise TypeError(
                f"The 'data' parameter of {func} must be a pandas DataFrame with columns "
                f"'{USER_ID}' and '{ARTIST_ID}', a UserArtistCounts (matrix, users, artists) "
                f"or a scipy sparse matrix. Got {type(data).__name__} instead."
            )
        matrix = sp.csr_matrix(matrix)
        if len(labels) != matrix.shape[1]:
            raise ValueError(
                f"The 'artists' parameter of {func} must have one label per matrix column "
                f"({matrix.shape[1]}). Got {len(labels)} labels instead."
            )
        if matrix.nnz == 0:
            raise DataValidationError(
                [Problem(_TABLE, "at least one play", fix="pass a non-empty matrix")],
                what="matrix",
            )
        if (matrix.data < 0).any():
            raise DataValidationError(
                [
                    Problem(
                        "matrix",
                        "non-negative play counts",
                        n_rows=int((matrix.data < 0).sum()),
                        fix="counts cannot be negative",
                    )
                ],
                what="matrix",
            )
        plays = np.asarray(matrix.sum(axis=0)).ravel()
        matrix.eliminate_zeros()
    matrix.sum_duplicates()
    matrix = matrix.astype(np.int32)
    matrix.data[:] = 1
    return matrix, labels, plays


def _pair_weights(
    common: np.ndarray, n_i: np.ndarray, n_j: np.ndarray, n_users: int, weight: str
) -> np.ndarray:
    """Return the association measure of each artist pair (see :func:`build_colistening_graph`)."""
    if weight == "count":
        return common.astype(np.int64)
    c = common.astype(float)
    n_i, n_j = n_i.astype(float), n_j.astype(float)
    if weight == "jaccard":
        return c / (n_i + n_j - c)
    if weight == "cosine":
        return c / np.sqrt(n_i * n_j)
    pmi = np.log(c) + np.log(n_users) - np.log(n_i) - np.log(n_j)
    if weight == "lift":
        return np.exp(pmi)
    if weight == "pmi":
        return pmi
    denominator = np.log(n_users) - np.log(c)  # -log(c / N) >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, pmi / np.where(denominator > 0, denominator, 1.0), 1.0)


def _column_blocks(binary: sp.csr_matrix, n_artists: int) -> list[tuple[int, int]]:
    """Split the artists so each block of rows of B^T B has at most BLOCK_ENTRIES products."""
    user_degree = np.diff(binary.indptr).astype(np.int64)
    # Row j of B^T B has at most (sum over its listeners of their degrees) entries.
    cost = np.asarray(binary.T @ user_degree).ravel()
    cumulative = np.cumsum(cost)
    bounds = [0]
    while bounds[-1] < n_artists:
        start = bounds[-1]
        base = cumulative[start - 1] if start else 0
        stop = int(np.searchsorted(cumulative, base + BLOCK_ENTRIES, side="right"))
        bounds.append(min(max(stop, start + 1), n_artists))
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _top_k_mask(cols: np.ndarray, rows: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Mask of the ``k`` heaviest entries of each ``cols`` group (ties broken by ``rows``)."""
    order = np.lexsort((rows, -weights.astype(float), cols))
    sorted_cols = cols[order]
    starts = np.flatnonzero(np.r_[True, sorted_cols[1:] != sorted_cols[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, sorted_cols.size]))
    keep = np.zeros(cols.size, dtype=bool)
    keep[order[np.arange(cols.size) - run_start < k]] = True
    return keep


def _edges(
    data: Any,
    *,
    min_common: int,
    weight: str,
    min_listeners: int,
    top_k: int | None,
    artists: Sequence | None,
    func: str,
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Validate, then return (node table, edge table, number of users)."""
    check_int(func, "min_common", min_common)
    check_int(func, "min_listeners", min_listeners)
    if top_k is not None:
        check_int(func, "top_k", top_k)
    if weight not in WEIGHTS:
        raise ValueError(
            f"The 'weight' parameter of {func} must be one of {list(WEIGHTS)}. "
            f"Got {weight!r} instead."
        )
    binary, labels, plays = _binary_matrix(data, artists, func)
    n_users = int((np.diff(binary.indptr) > 0).sum())
    listeners = np.bincount(binary.indices, minlength=binary.shape[1])
    kept = np.flatnonzero(listeners >= min_listeners)
    binary = binary[:, kept].tocsr()
    listeners, plays, labels = listeners[kept], plays[kept], labels[kept]
    nodes = pd.DataFrame(
        {"artist": labels, "plays": plays.astype(np.int64), "listeners": listeners}
    )

    n_artists = len(kept)
    transposed = binary.T.tocsr()
    columns = binary.tocsc()
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start, stop in _column_blocks(binary, n_artists):
        # Rows start..stop of B^T B. Without top_k only the upper triangle is needed, so
        # only columns from ``start`` on are multiplied; with it, whole rows.
        first = start if top_k is None else 0
        block = transposed[start:stop] @ columns[:, first:]
        block.sort_indices()
        block = block.tocoo()
        rows, cols, common = block.row + start, block.col + first, block.data
        keep = (common >= min_common) & ((rows < cols) if top_k is None else (rows != cols))
        rows, cols, common = rows[keep], cols[keep], common[keep]
        if top_k is not None and rows.size:
            w = _pair_weights(common, listeners[rows], listeners[cols], n_users, weight)
            keep = _top_k_mask(rows, cols, w, top_k)
            rows, cols, common = rows[keep], cols[keep], common[keep]
            rows, cols = np.minimum(rows, cols), np.maximum(rows, cols)
        pieces.append((rows.astype(np.int64), cols.astype(np.int64), common.astype(np.int64)))
    rows = np.concatenate([p[0] for p in pieces])
    cols = np.concatenate([p[1] for p in pieces])
    common = np.concatenate([p[2] for p in pieces])
    if top_k is not None:  # an edge kept by both endpoints appears twice; unique also sorts
        _, first_seen = np.unique(rows * n_artists + cols, return_index=True)
        rows, cols, common = rows[first_seen], cols[first_seen], common[first_seen]
    edges = pd.DataFrame(
        {
            "source": rows,
            "target": cols,
            "common": common,
            "weight": _pair_weights(common, listeners[rows], listeners[cols], n_users, weight),
        }
    )
    return nodes, edges, n_users


def colistening_edges(
    data: Any,
    *,
    min_common: int = 2,
    weight: Weight = "count",
    min_listeners: int = 1,
    top_k: int | None = None,
    artists: Sequence | None = None,
) -> pd.DataFrame:
    """Edge list of the co-listening graph, without building a networkx graph.

    Same arguments and measures as :func:`build_colistening_graph` (but no names);
    use it for catalogues whose graph is too large to hold as a networkx object.

    Parameters
    ----------
    data : pandas.DataFrame, UserArtistCounts or scipy.sparse matrix
        See :func:`build_colistening_graph`.
    min_common, weight, min_listeners, top_k, artists
        See :func:`build_colistening_graph`.

    Returns
    -------
    pandas.DataFrame
        One row per edge with columns ``source`` and ``target`` (artist ids, source
        before target in the sorted artist order), ``common`` and ``weight``.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "artist_id": list("abaca")})
    >>> colistening_edges(log, min_common=1)
      source target  common  weight
    0      a      b       1       1
    1      a      c       1       1
    """
    func = "colistening_edges"
    nodes, edges, _ = _edges(
        data,
        min_common=min_common,
        weight=weight,
        min_listeners=min_listeners,
        top_k=top_k,
        artists=artists,
        func=func,
    )
    labels = nodes["artist"].to_numpy()
    return edges.assign(
        source=labels[edges["source"].to_numpy()], target=labels[edges["target"].to_numpy()]
    )


def build_colistening_graph(
    data: Any,
    *,
    min_common: int = 2,
    weight: Weight = "count",
    min_listeners: int = 1,
    top_k: int | None = None,
    artist_names: Mapping[Any, str] | pd.Series | None = None,
    artists: Sequence | None = None,
) -> nx.Graph:
    r"""Build the artist co-listening graph: artists linked by the users they share.

    Parameters
    ----------
    data : pandas.DataFrame, UserArtistCounts or scipy.sparse matrix
        A listening log with columns ``user_id`` and ``artist_id`` (one row per
        play); or a user x artist matrix of play counts: an object with attributes
        ``matrix`` (users x artists, sparse), ``users`` and ``artists`` (such as
        :func:`models.data.summaries.user_artist_matrix` returns), or a scipy
        sparse matrix with the artist labels in ``artists``.
    min_common : int, default 2
        Least number of users who played both artists for an edge.
    weight : {"count", "jaccard", "cosine", "lift", "pmi", "npmi"}, default "count"
        Association measure stored as the edge attribute ``weight``; see Notes.
    min_listeners : int, default 1
        Artists with fewer distinct listeners are dropped before the product (they
        are not nodes). Raising it bounds memory for long-tailed catalogues.
    top_k : int, optional
        Keep only each artist's ``top_k`` heaviest edges (by ``weight``, ties by
        artist order); an edge stays when either endpoint keeps it, so degrees
        can exceed ``top_k``. ``None`` keeps every edge.
    artist_names : mapping or pandas.Series, optional
        Artist id -> display name, stored as the node attribute ``name``.
    artists : sequence, optional
        Artist labels of the columns when ``data`` is a bare sparse matrix
        (default ``0 .. n - 1``).

    Returns
    -------
    networkx.Graph
        Nodes are artist ids with attributes ``plays`` (total plays; summed
        counts for a matrix), ``listeners`` (distinct users) and ``name`` (when
        given). Edges carry ``common`` (co-listeners) and ``weight``. The graph
        attribute ``n_users`` holds :math:`N`; ``weight`` the measure's name.

    Raises
    ------
    models.exceptions.DataValidationError
        If a column is missing, an id is missing, the input is empty, or a matrix
        has negative counts.
    ValueError
        If ``weight`` is unknown (the message lists the valid names) or an integer
        parameter is out of range.
    TypeError
        If ``data`` is none of the accepted types.

    Notes
    -----
    Let :math:`B_{ua} = 1` if user :math:`u` played artist :math:`a`, :math:`N` the
    number of users with at least one play, :math:`n_i = \sum_u B_{ui}` the listeners
    of artist :math:`i` and :math:`c_{ij} = (B^\top B)_{ij}` the users who played both
    :math:`i` and :math:`j`. An edge joins :math:`i \ne j` when
    :math:`c_{ij} \ge` ``min_common``, with ``common`` :math:`= c_{ij}` and

    .. math::

        \text{count} &= c_{ij}, \qquad
        \text{jaccard} = \frac{c_{ij}}{n_i + n_j - c_{ij}}, \qquad
        \text{cosine} = \frac{c_{ij}}{\sqrt{n_i n_j}}, \\
        \text{lift} &= \frac{c_{ij} N}{n_i n_j}, \qquad
        \text{pmi} = \log \text{lift}, \qquad
        \text{npmi} = \frac{\text{pmi}}{-\log(c_{ij} / N)}

    (npmi is 1 when :math:`c_{ij} = N`). "count" is networkx's
    ``bipartite.weighted_projected_graph`` and "jaccard" its
    ``overlap_weighted_projected_graph``; lift above 1 (pmi above 0) means more
    co-listeners than independent choices would give.

    :math:`B^\top B` is computed a block of artist rows at a time (only its upper
    triangle without ``top_k``), the blocks sized so that no block holds more than
    ``BLOCK_ENTRIES`` partial products; with ``top_k`` only the kept edges of each
    block are retained.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({
    ...     "user_id": [1, 1, 2, 2, 2, 3, 3],
    ...     "artist_id": ["a", "b", "a", "b", "c", "a", "c"],
    ... })
    >>> g = build_colistening_graph(log, min_common=1, weight="jaccard")
    >>> sorted(g.edges(data="common"))
    [('a', 'b', 2), ('a', 'c', 2), ('b', 'c', 1)]
    >>> round(g["a"]["b"]["weight"], 3), g.nodes["a"]["listeners"], g.graph["n_users"]
    (0.667, 3, 3)
    """
    func = "build_colistening_graph"
    nodes, edges, n_users = _edges(
        data,
        min_common=min_common,
        weight=weight,
        min_listeners=min_listeners,
        top_k=top_k,
        artists=artists,
        func=func,
    )
    labels = nodes["artist"].tolist()
    node_attrs = [
        {"plays": p, "listeners": n}
        for p, n in zip(nodes["plays"].tolist(), nodes["listeners"].tolist(), strict=True)
    ]
    if artist_names is not None:
        names = pd.Series(artist_names).reindex(nodes["artist"]).tolist()
        for attrs, name in zip(node_attrs, names, strict=True):
            if isinstance(name, str) or not pd.isna(name):
                attrs["name"] = name
    graph = nx.Graph(n_users=n_users, weight=weight, min_common=min_common)
    graph.add_nodes_from(zip(labels, node_attrs, strict=True))
    label_array = np.asarray(labels, dtype=object)
    graph.add_edges_from(
        zip(
            label_array[edges["source"].to_numpy()].tolist(),
            label_array[edges["target"].to_numpy()].tolist(),
            (
                {"common": c, "weight": w}
                for c, w in zip(edges["common"].tolist(), edges["weight"].tolist(), strict=True)
            ),
            strict=True,
        )
    )
    return graph
