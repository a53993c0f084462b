"""Plots of co-listening graphs and block-model fits."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_coassignment", "plot_communities"]


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=size).add_subplot()


def plot_coassignment(model: Any, ax: Axes | None = None) -> Axes:
    """Heatmap of the posterior co-assignment matrix, nodes ordered by block.

    Parameters
    ----------
    model : StochasticBlockModel
        A fitted block model.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure (not registered with pyplot) when None.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> ax = plot_coassignment(fitted_sbm)  # doctest: +SKIP
    """
    coassign = model.coassignment_matrix()
    partition = model.point_partition()
    order = np.lexsort((np.arange(len(partition)), partition.to_numpy()))
    ax = _axes(ax, (5.5, 5.0))
    image = ax.imshow(coassign.to_numpy()[np.ix_(order, order)], vmin=0.0, vmax=1.0,
                      cmap="viridis", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="P(same block)")
    bounds = np.flatnonzero(np.diff(partition.to_numpy()[order])) + 0.5
    for b in bounds:
        ax.axhline(b, color="white", lw=0.8)
        ax.axvline(b, color="white", lw=0.8)
    ax.set_title("Posterior co-assignment")
    ax.set_xlabel("node (ordered by block)")
    ax.set_ylabel("node (ordered by block)")
    return ax


def plot_communities(
    graph: nx.Graph,
    partition: pd.Series | dict,
    ax: Axes | None = None,
    node_size: str | float = "listeners",
    *,
    seed: int = 0,
) -> Axes:
    """Draw a graph with nodes coloured by community.

    Parameters
    ----------
    graph : networkx.Graph
        The graph, e.g. from :func:`build_colistening_graph`.
    partition : pandas.Series or dict
        Community of each node (e.g. :meth:`StochasticBlockModel.point_partition`).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure (not registered with pyplot) when None.
    node_size : str or float, default "listeners"
        Node attribute scaling the marker area (square-root scaled), or a constant
        size; nodes without the attribute get the median size.
    seed : int, default 0
        Seed of the spring layout.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import networkx as nx
    >>> g = nx.karate_club_graph()
    >>> ax = plot_communities(g, {n: int(g.nodes[n]["club"] == "Officer") for n in g})
    >>> len(ax.collections) > 0
    True
    """
    ax = _axes(ax, (6.0, 6.0))
    nodes = list(graph.nodes)
    labels = pd.Series(partition).reindex(nodes)
    if isinstance(node_size, str):
        raw = np.array([graph.nodes[n].get(node_size, np.nan) for n in nodes], dtype=float)
        raw = np.where(np.isnan(raw), np.nanmedian(raw) if np.isfinite(raw).any() else 1, raw)
        sizes = 30 + 300 * np.sqrt(raw / raw.max()) if raw.max() > 0 else np.full(len(nodes), 60.0)
    else:
        sizes = np.full(len(nodes), float(node_size))
    codes, _ = pd.factorize(labels, use_na_sentinel=True)
    pos = nx.spring_layout(graph, seed=seed)
    nx.draw_networkx_edges(graph, pos, ax=ax, alpha=0.2, width=0.5)
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_size=sizes, node_color=codes, cmap="tab10",
                           vmin=0, vmax=9)
    ax.set_axis_off()
    ax.set_title(f"{len(nodes)} nodes, {labels.nunique()} communities")
    return ax
