"""The ``network`` analysis: which artists are listened to together, and their communities.

Steps: the artist co-listening graph and its disparity backbone; the number of
blocks chosen by the exact ICL (unless fixed); the degree-corrected stochastic
block model with its co-assignment matrix; pictures of the communities; against
the simulator's true communities when the data are simulated. When the package
provides :class:`models.network.LatentSpaceModel`, it is fitted too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from models.analysis.context import Analysis, AnalysisContext
from models.analysis.report import plot_trace_rank

__all__ = ["ANALYSIS", "adjusted_rand_index"]


def adjusted_rand_index(a: Any, b: Any) -> float:
    """Return the adjusted Rand index of two labelings (1: identical, about 0: chance).

    Examples
    --------
    >>> adjusted_rand_index([0, 0, 1, 1], [5, 5, 7, 7])
    1.0
    """
    _, ia = np.unique(np.asarray(a), return_inverse=True)
    _, ib = np.unique(np.asarray(b), return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1)
    n = table.sum()
    pairs = special.comb(table, 2).sum()
    rows = special.comb(table.sum(axis=1), 2).sum()
    cols = special.comb(table.sum(axis=0), 2).sum()
    expected = rows * cols / special.comb(n, 2)
    top = (rows + cols) / 2 - expected
    return float((pairs - expected) / top) if top else math.nan


def run(ctx: AnalysisContext) -> None:
    """Run the network analysis on ``ctx`` (see the module docstring)."""
    import models.network as network
    from models.network import (
        StochasticBlockModel,
        build_colistening_graph,
        disparity_filter,
        plot_coassignment,
        plot_communities,
        select_n_blocks,
    )

    cfg, out, seed = ctx.config["network"], ctx.out, ctx.seed
    events = ctx.inputs.events
    priors = ctx.config.get("priors", {})
    s = ctx.config["sampler"]
    if "artist_id" not in events.columns:
        raise ValueError("The network analysis needs an 'artist_id' column in the events.")

    with out.step("co-listening graph and backbone"):
        graph = build_colistening_graph(events, min_common=cfg["min_common"],
                                        weight=cfg["weight"],
                                        min_listeners=cfg["min_listeners"])
        backbone = disparity_filter(graph, alpha=cfg["backbone_alpha"])
        target = backbone if cfg["sbm_on"] == "backbone" else graph
        if cfg["sbm_on"] not in ("backbone", "graph"):
            raise ValueError("The key 'network.sbm_on' must be 'backbone' or 'graph'. "
                             f"Got {cfg['sbm_on']!r} instead.")
        stats = pd.DataFrame({
            "nodes": [graph.number_of_nodes(), backbone.number_of_nodes()],
            "edges": [graph.number_of_edges(), backbone.number_of_edges()],
        }, index=pd.Index(["co-listening graph", "backbone"], name="graph"))
        stats["density"] = [2 * e / max(n * (n - 1), 1)
                            for n, e in zip(stats["nodes"], stats["edges"], strict=True)]
        out.add_table("graph_sizes", stats,
                      f"Co-listening graph (>= {cfg['min_common']} common listeners, weight "
                      f"{cfg['weight']}) and its disparity backbone (alpha "
                      f"{cfg['backbone_alpha']})")
        if target.number_of_edges() == 0:
            raise ValueError("The graph for the block model has no edges; lower "
                             "network.min_common or raise network.backbone_alpha.")

    n_blocks = cfg["n_blocks"]
    if not n_blocks:
        with out.step("choose the number of blocks (exact ICL)"):
            table = select_n_blocks(target, cfg["block_candidates"],
                                    degree_corrected=cfg["degree_corrected"],
                                    priors=priors.get("StochasticBlockModel"),
                                    draws=cfg["select_draws"], tune=cfg["select_draws"] // 2,
                                    chains=2, random_seed=seed)
            n_blocks = int(table.index[table["selected"]][0])
            out.add_table("block_selection", table,
                          "Number of blocks by the exact integrated complete likelihood")

    with out.step(f"fit the stochastic block model ({n_blocks} blocks)"):
        sbm = out.fit("sbm", StochasticBlockModel(
            n_blocks=n_blocks, degree_corrected=cfg["degree_corrected"],
            priors=priors.get("StochasticBlockModel")), target,
            description=f"degree-corrected block model of the {cfg['sbm_on']}",
            draws=s["draws"], tune=s["tune"], chains=s["chains"], random_seed=seed)
        out.add_figure("trace_sbm", plot_trace_rank(sbm), "Block model: trace and rank plots")
        partition = sbm.point_partition()
        coassign = sbm.coassignment_matrix()
        ax = plot_communities(target, partition, seed=seed)
        out.add_figure("communities", ax.figure, "Artist communities (MAP partition)")
        ax = plot_coassignment(sbm)
        out.add_figure("coassignment", ax.figure,
                       "Posterior probability that two artists share a block")

    with out.step("per-artist results"):
        same = coassign.to_numpy()
        labels = partition.to_numpy()
        mates = labels[:, None] == labels[None, :]
        np.fill_diagonal(mates, False)
        with np.errstate(invalid="ignore"):
            certainty = np.where(mates.sum(1) > 0,
                                 (same * mates).sum(1) / np.maximum(mates.sum(1), 1), np.nan)
        pred = pd.DataFrame({
            "artist_id": partition.index,
            "block": labels,
            "mean_coassignment_with_block": certainty,
            "listeners": [graph.nodes[n].get("listeners") for n in partition.index],
            "plays": [graph.nodes[n].get("plays") for n in partition.index],
            "degree_graph": [graph.degree(n) for n in partition.index],
            "degree_backbone": [backbone.degree(n) if n in backbone else 0
                                for n in partition.index],
        })
        truth = ctx.inputs.truth
        if truth is not None:
            community = truth.artists.set_index("artist_id")["community"]
            pred["true_community"] = pred["artist_id"].map(community).to_numpy()
            ari = adjusted_rand_index(pred["block"], pred["true_community"])
            out.note(f"Simulated data: adjusted Rand index of the MAP blocks against the true "
                     f"communities = {ari:.3f} (1 is perfect, 0 is chance) over "
                     f"{len(pred)} artists in the graph.")
        out.set_predictions(pred)

    latent = getattr(network, "LatentSpaceModel", None)
    if cfg["fit_latent_space"] and latent is not None:
        with out.step("fit the latent space model"):
            lsm = out.fit("latent_space", latent(n_dims=cfg["latent_dimensions"],
                                                 priors=priors.get("LatentSpaceModel")),
                          target, description="latent space embedding of the artists",
                          **ctx.sampler_kwargs(30))
            out.add_figure("trace_latent_space", plot_trace_rank(lsm),
                           "Latent space model: trace and rank plots")
    elif cfg["fit_latent_space"]:
        out.note("This version of the package has no models.network.LatentSpaceModel; the "
                 "latent space model and link-prediction scores are not part of this run.")


ANALYSIS = Analysis(
    name="network",
    description="Artist co-listening graph, disparity backbone, stochastic block model "
    "(blocks chosen by ICL), communities and co-assignment pictures.",
    needs="events: user_id, artist_id; no users table needed.",
    run=run,
)
