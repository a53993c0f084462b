"""Plots of co-listening graphs and block-model fits."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse
from scipy.stats import chi2

from models._deprecation import deprecated_arguments
from models.predict import posterior_arrays

__all__ = ["community_colours", "plot_coassignment", "plot_communities", "plot_embedding"]


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


def community_colours(n: int, cmap: str | None = None) -> np.ndarray:
    """Return ``n`` distinct colours, one per community, as an ``(n, 4)`` RGBA array.

    Parameters
    ----------
    n : int
        Number of communities.
    cmap : str, optional
        A matplotlib colormap sampled at ``n`` evenly spaced points. By default the
        qualitative ``tab10`` (up to 10 communities) or ``tab20`` (up to 20), and
        ``turbo`` sampled evenly beyond: colours never repeat.

    Returns
    -------
    numpy.ndarray
        RGBA rows, community ``k`` in row ``k``.

    Examples
    --------
    >>> colours = community_colours(25)
    >>> colours.shape, len({tuple(c) for c in colours})
    ((25, 4), 25)
    """
    if cmap is None:
        if n <= 10:
            return colormaps["tab10"](np.arange(n))
        if n <= 20:
            return colormaps["tab20"](np.arange(n))
        cmap = "turbo"
    return colormaps[cmap](np.linspace(0.0, 1.0, n) if n > 1 else np.array([0.0]))


@deprecated_arguments(renamed={"seed": "random_seed"})
def plot_communities(
    graph: nx.Graph,
    partition: pd.Series | dict,
    ax: Axes | None = None,
    node_size: str | float = "listeners",
    *,
    labels: pd.Series | dict | str | None = None,
    legend: bool = True,
    cmap: str | None = None,
    random_seed: int = 0,
) -> Axes:
    """Draw a graph with nodes coloured by community, with a legend and optional names.

    Parameters
    ----------
    graph : networkx.Graph
        The graph, e.g. from :func:`build_colistening_graph`.
    partition : pandas.Series or dict
        Community of each node (e.g. :meth:`StochasticBlockModel.point_partition`);
        nodes missing from it are grey.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure (not registered with pyplot) when None.
    node_size : str or float, default "listeners"
        Node attribute scaling the marker area (square-root scaled), or a constant
        size; nodes without the attribute get the median size.
    labels : pandas.Series, dict or str, optional
        Text written beside nodes (e.g. artist names): a mapping from node to text,
        or the name of a node attribute; nodes without one are not labelled.
    legend : bool, default True
        Add a legend with one entry per community (and its number of nodes).
    cmap : str, optional
        Colormap sampled evenly, one distinct colour per community whatever their
        number; see :func:`community_colours` for the default.
    random_seed : int, default 0
        Seed of the spring layout. (``seed`` is its deprecated name.)

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import networkx as nx
    >>> g = nx.karate_club_graph()
    >>> ax = plot_communities(g, {n: n % 12 for n in g}, labels={0: "Mr. Hi", 33: "Officer"})
    >>> len(ax.get_legend().get_texts()), len(ax.texts)
    (12, 2)
    """
    ax = _axes(ax, (6.0, 6.0))
    nodes = list(graph.nodes)
    communities = pd.Series(partition).reindex(nodes)
    if isinstance(node_size, str):
        raw = np.array([graph.nodes[n].get(node_size, np.nan) for n in nodes], dtype=float)
        raw = np.where(np.isnan(raw), np.nanmedian(raw) if np.isfinite(raw).any() else 1, raw)
        sizes = 30 + 300 * np.sqrt(raw / raw.max()) if raw.max() > 0 else np.full(len(nodes), 60.0)
    else:
        sizes = np.full(len(nodes), float(node_size))
    codes, levels = pd.factorize(communities, sort=True, use_na_sentinel=True)
    palette = community_colours(len(levels), cmap)
    colours = np.array([palette[c] if c >= 0 else (0.6, 0.6, 0.6, 1.0) for c in codes])
    pos = nx.spring_layout(graph, seed=random_seed)
    nx.draw_networkx_edges(graph, pos, ax=ax, alpha=0.2, width=0.5)
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_size=sizes, node_color=colours)
    if labels is not None:
        text = (pd.Series({n: graph.nodes[n].get(labels) for n in nodes})
                if isinstance(labels, str) else pd.Series(labels)).reindex(nodes)
        for node, name in zip(nodes, text.tolist(), strict=True):
            if name is not None and not (isinstance(name, float) and np.isnan(name)):
                ax.annotate(str(name), pos[node], fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
    if legend and len(levels):
        counts = np.bincount(codes[codes >= 0], minlength=len(levels))
        handles = [Line2D([], [], marker="o", ls="", color=palette[k],
                          label=f"{level} ({counts[k]})") for k, level in enumerate(levels)]
        ax.legend(handles=handles, title="community (nodes)", fontsize=7, title_fontsize=7,
                  loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                  ncols=1 + len(levels) // 25)
    ax.set_axis_off()
    ax.set_title(f"{len(nodes)} nodes, {len(levels)} communities")
    return ax


def plot_embedding(
    model: Any,
    ax: Axes | None = None,
    *,
    color: pd.Series | dict | None = None,
    labels: pd.Series | dict | None = None,
    uncertainty: str = "ellipse",
    ci_prob: float = 0.89,
    n_draws: int = 40,
    random_seed: int = 0,
) -> Axes:
    r"""Draw the aligned latent positions of a fitted latent space model with uncertainty.

    Parameters
    ----------
    model : LatentSpaceModel
        A fitted model (its first two dimensions are drawn).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure (not registered with pyplot) when None.
    color : pandas.Series or dict, optional
        Group of each node (e.g. :meth:`StochasticBlockModel.point_partition`);
        one colour per group.
    labels : pandas.Series or dict, optional
        Text to write beside nodes (e.g. artist names); nodes missing from it are
        not labelled.
    uncertainty : {"ellipse", "draws", "none"}, default "ellipse"
        ``"ellipse"``: the ``ci_prob`` ellipse of each node's aligned draws (a normal
        approximation: :math:`\chi^2_2` quantile of the draws' covariance);
        ``"draws"``: a cloud of ``n_draws`` aligned draws per node.
    ci_prob : float, default 0.89
        Probability mass of the ellipses.
    n_draws : int, default 40
        Draws per node for ``uncertainty="draws"``.
    random_seed : int, default 0
        Seed of the draws shown.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on; marker area grows with the posterior mean popularity.

    Raises
    ------
    ValueError
        If ``uncertainty`` is unknown or the model has fewer than 2 dimensions.

    Examples
    --------
    >>> ax = plot_embedding(fitted_latent_space_model, labels=names)  # doctest: +SKIP
    """
    if uncertainty not in ("ellipse", "draws", "none"):
        raise ValueError(
            "The 'uncertainty' parameter of plot_embedding must be one of "
            f"['ellipse', 'draws', 'none']. Got {uncertainty!r} instead."
        )
    if model.n_dims < 2:
        raise ValueError(
            f"plot_embedding needs at least 2 latent dimensions. Got n_dims={model.n_dims}."
        )
    table = model.embedding(ci_prob=ci_prob)
    nodes = table.index
    mean = table[["dim0_mean", "dim1_mean"]].to_numpy()
    ax = _axes(ax, (6.5, 6.0))
    if color is not None:
        codes, levels = pd.factorize(pd.Series(color).reindex(nodes), sort=True,
                                     use_na_sentinel=True)
    else:
        codes, levels = np.zeros(len(nodes), dtype=int), [0]
    palette = community_colours(len(levels))
    colours = [tuple(palette[c]) if c >= 0 else (0.6, 0.6, 0.6, 1.0) for c in codes]
    if uncertainty != "none":
        draws = posterior_arrays(model.idata_, ["position"], max_draws=max(n_draws, 400),
                                 random_seed=random_seed)["position"][:, :, :2]
    if uncertainty == "ellipse" and draws.shape[0] > 2:
        radius = np.sqrt(chi2.ppf(ci_prob, 2))
        for k in range(len(nodes)):
            values, vectors = np.linalg.eigh(np.cov(draws[:, k, :].T))
            width, height = 2 * radius * np.sqrt(np.maximum(values[::-1], 0.0))
            angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
            ax.add_patch(Ellipse(tuple(mean[k]), width, height, angle=angle,
                                 facecolor=colours[k], edgecolor="none", alpha=0.15))
    elif uncertainty == "draws":
        shown = draws[:n_draws]
        for k in range(len(nodes)):
            ax.scatter(shown[:, k, 0], shown[:, k, 1], s=3, color=colours[k], alpha=0.25,
                       linewidths=0)
    popularity = table["popularity_mean"].to_numpy()
    spread = popularity.max() - popularity.min()
    sizes = 20 + 120 * ((popularity - popularity.min()) / spread if spread > 0 else 0.5)
    ax.scatter(mean[:, 0], mean[:, 1], s=sizes, c=colours, edgecolors="black", linewidths=0.4,
               zorder=3)
    if labels is not None:
        text = pd.Series(labels).reindex(nodes)
        for k, name in enumerate(text.tolist()):
            if isinstance(name, str) or not pd.isna(name):
                ax.annotate(str(name), tuple(mean[k]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    ax.set_xlabel("latent dimension 0 (aligned)")
    ax.set_ylabel("latent dimension 1 (aligned)")
    shown_as = {"ellipse": f"{ci_prob:.0%} ellipses", "draws": "posterior draws",
                "none": "means"}[uncertainty]
    ax.set_title(f"Latent positions of {len(nodes)} nodes ({shown_as})")
    return ax
