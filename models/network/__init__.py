"""Artist co-listening graphs, their backbones and Bayesian block models.

Build a graph with :func:`build_colistening_graph` (or just its edge list with
:func:`colistening_edges`), keep its significant edges with
:func:`disparity_filter`, and find communities with
:class:`StochasticBlockModel` (choosing the number of blocks with
:func:`select_n_blocks`).
"""

from models.network.backbone import disparity_filter
from models.network.block_model import StochasticBlockModel, select_n_blocks
from models.network.graph import WEIGHTS, build_colistening_graph, colistening_edges
from models.network.plotting import plot_coassignment, plot_communities

__all__ = [
    "WEIGHTS",
    "StochasticBlockModel",
    "build_colistening_graph",
    "colistening_edges",
    "disparity_filter",
    "plot_coassignment",
    "plot_communities",
    "select_n_blocks",
]
