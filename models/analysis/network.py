"""The ``network`` analysis: which artists are listened to together, and their communities.

Steps: the artist co-listening graph and its disparity backbone; the
degree-corrected stochastic block model, with the number of blocks inferred
(its posterior; unless fixed), and its co-assignment matrix; pictures of the communities; against
the simulator's true communities when the data are simulated; the latent space
model and its embedding (``fit_latent_space``); link prediction on held-out
edges (``holdout_edge_share``): both models refitted on the training edges and
scored against common neighbours, Adamic-Adar and preferential attachment.
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
    from models.network import (
        LatentSpaceModel,
        StochasticBlockModel,
        build_colistening_graph,
        disparity_filter,
        link_prediction_scores,
        plot_coassignment,
        plot_communities,
        plot_embedding,
        split_edges,
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

    n_blocks = cfg["n_blocks"] or None
    label = f"{n_blocks} blocks" if n_blocks else "number of blocks inferred"
    with out.step(f"fit the stochastic block model ({label})"):
        sbm = out.fit("sbm", StochasticBlockModel(
            n_blocks=n_blocks, max_blocks=cfg["max_blocks"],
            degree_corrected=cfg["degree_corrected"],
            priors=priors.get("StochasticBlockModel")), target,
            description=f"degree-corrected block model of the {cfg['sbm_on']}",
            draws=s["draws"], tune=s["tune"], chains=s["chains"], thin=cfg["thin"] or None,
            random_seed=seed, cores=s["cores"] or None)
        blocks = sbm.n_blocks_posterior()
        out.add_table("n_blocks_posterior", blocks,
                      "Posterior of the number of occupied blocks (share of draws)")
        if n_blocks is None:
            out.finding(f"Number of blocks: {blocks['probability'].idxmax()} is the most "
                        f"probable ({blocks['probability'].max():.0%} of the draws; 89% "
                        f"interval {blocks.attrs['ci_lower']}-{blocks.attrs['ci_upper']}); "
                        f"the MAP partition has {blocks.attrs['map']}.")
        out.add_figure("trace_sbm", plot_trace_rank(sbm), "Block model: trace and rank plots")
        partition = sbm.point_partition()
        coassign = sbm.coassignment_matrix()
        ax = plot_communities(target, partition, random_seed=seed)
        out.add_figure("communities", ax.figure, "Artist communities (MAP partition)",
                       section="findings")
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
            out.finding(f"Simulated data: adjusted Rand index of the MAP blocks against the true "
                     f"communities = {ari:.3f} (1 is perfect, 0 is chance) over "
                     f"{len(pred)} artists in the graph.")
        out.set_predictions(pred)

    share = cfg["holdout_edge_share"]
    if not 0 <= share < 1:
        raise ValueError("The key 'network.holdout_edge_share' must be in [0, 1) (0: no link "
                         f"prediction). Got {share!r} instead.")
    # With link prediction, the latent space model is fitted once, to the training edges
    # (every artist is kept): its embedding is then the one that is scored on held-out links.
    split = split_edges(target, share, random_seed=seed) if share else None
    lsm = None
    if cfg["fit_latent_space"]:
        with out.step("fit the latent space model"):
            edges = f"{1 - share:.0%} of the edges of the {cfg['sbm_on']}" if share else (
                f"the {cfg['sbm_on']}")
            lsm = out.fit("latent_space", LatentSpaceModel(
                n_dims=cfg["latent_dimensions"], priors=priors.get("LatentSpaceModel")),
                target if split is None else split.train,
                description=f"latent space embedding of the artists, fitted to {edges}",
                **ctx.sampler_kwargs(30))
            out.add_figure("trace_latent_space", plot_trace_rank(lsm),
                           "Latent space model: trace and rank plots")
            ax = plot_embedding(lsm, color=partition, random_seed=seed)
            out.add_figure("embedding", ax.figure, "Latent positions of the artists "
                           "(Procrustes-aligned posterior means, 89% ellipses), coloured by "
                           "block")
            emb = lsm.embedding()
            cols = [c for c in emb.columns if c.endswith(("_mean", "_ci_lower", "_ci_upper"))]
            cols.append("position_sd")
            pred = pred.merge(emb[cols].add_prefix("latent_"), left_on="artist_id",
                              right_index=True, how="left")
            out.set_predictions(pred)

    if split is not None:
        with out.step(f"link prediction ({share:.0%} of the edges held out)"):
            fitted = {"block_model": out.fit(
                "sbm_train", StochasticBlockModel(
                    n_blocks=cfg["n_blocks"] or None, max_blocks=cfg["max_blocks"],
                    degree_corrected=cfg["degree_corrected"],
                    priors=priors.get("StochasticBlockModel")), split.train,
                description="block model on the training edges (link prediction)",
                draws=s["draws"], tune=s["tune"], chains=s["chains"], thin=cfg["thin"] or None,
                random_seed=seed + 40, cores=s["cores"] or None)}
            if lsm is not None:
                fitted["latent_space"] = lsm
            scores = link_prediction_scores(split, fitted)
            out.add_table("link_prediction", scores,
                          f"Held-out links: {scores.attrs['n_test_edges']} edges of the "
                          f"{cfg['sbm_on']} hidden from the models and "
                          f"{scores.attrs['n_test_non_edges']} non-edges; AUC and average "
                          "precision of the models' posterior mean edge probabilities and "
                          "of networkx heuristics on the training graph", section="findings")
            best = scores["auc"].idxmax()
            out.finding(f"Link prediction: the best AUC is {best} ({scores.loc[best, 'auc']:.3f});"
                     " " + ", ".join(f"{m} {a:.3f}" for m, a in scores["auc"].items()) + ".")


ANALYSIS = Analysis(
    name="network",
    description="Artist co-listening graph, disparity backbone, stochastic block model "
    "(number of blocks inferred), latent space embedding, communities, co-assignment and "
    "link prediction against networkx heuristics.",
    needs="events: user_id, artist_id; no users table needed.",
    run=run,
    models=("StochasticBlockModel", "LatentSpaceModel"),
    min_users=10,
)
