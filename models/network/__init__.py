"""Artist co-listening graphs, their backbones and Bayesian network models.

Build a graph with :func:`build_colistening_graph` (or just its edge list with
:func:`colistening_edges`), keep its significant edges with
:func:`disparity_filter`, find communities with :class:`StochasticBlockModel`
(choosing the number of blocks with :func:`select_n_blocks`), embed artists with
:class:`LatentSpaceModel`, and compare both on held-out links with
:func:`split_edges` and :func:`link_prediction_scores`.
"""

from models.network.backbone import disparity_filter
from models.network.block_model import StochasticBlockModel, select_n_blocks
from models.network.graph import WEIGHTS, build_colistening_graph, colistening_edges
from models.network.latent_space import LatentSpaceModel, procrustes_align
from models.network.link_prediction import (
    EdgeSplit,
    average_precision,
    link_prediction_scores,
    roc_auc,
    split_edges,
)
from models.network.plotting import (
    community_colours,
    plot_coassignment,
    plot_communities,
    plot_embedding,
)

__all__ = [
    "WEIGHTS",
    "EdgeSplit",
    "LatentSpaceModel",
    "StochasticBlockModel",
    "average_precision",
    "build_colistening_graph",
    "colistening_edges",
    "community_colours",
    "disparity_filter",
    "link_prediction_scores",
    "plot_coassignment",
    "plot_communities",
    "plot_embedding",
    "procrustes_align",
    "roc_auc",
    "select_n_blocks",
    "split_edges",
]
