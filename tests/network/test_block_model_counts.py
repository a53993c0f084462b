"""StochasticBlockModel with co-listener counts as edge multiplicities, on Last.fm artists.

Reads ``shared/data/lastfm-hetrec2011`` beside the checkout (skipped when absent).
"""

import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from models.analysis.network import adjusted_rand_index
from models.network import StochasticBlockModel, build_colistening_graph

_HERE = Path(__file__).resolve()
DATA = next((p / "shared" / "data" for p in (_HERE.parents[3], _HERE.parents[2])
             if (p / "shared" / "data").is_dir()), _HERE.parents[3] / "shared" / "data")


@pytest.fixture(scope="module")
def lastfm_counts():
    folder = DATA / "lastfm-hetrec2011"
    if not folder.is_dir():
        pytest.skip(f"reference data folder {folder} is absent")
    plays = pd.read_csv(folder / "user_artists.dat", sep="\t")
    users, user_codes = np.unique(plays["userID"], return_inverse=True)
    artists, artist_codes = np.unique(plays["artistID"], return_inverse=True)
    matrix = sp.csr_matrix((plays["weight"].to_numpy(), (user_codes, artist_codes)),
                           shape=(users.size, artists.size))
    # 184 artists with 80+ of the 1,892 listeners; every pair with a co-listener.
    return build_colistening_graph(matrix, artists=artists, min_common=1, weight="count",
                                   min_listeners=80)


def quick_fit(graph, weight):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fixed short budget: the fit check may fail
        return StochasticBlockModel(weight=weight, max_blocks=30).fit(
            graph, draws=40, tune=20, chains=2, thin=1, n_starts=4, random_seed=1)


def purity(fine, coarse):
    """Share of nodes in the majority ``coarse`` block of their ``fine`` block."""
    return pd.crosstab(fine, coarse).max(axis=1).sum() / len(fine)


@pytest.mark.data
def test_counts_as_multiplicities_split_the_thresholded_communities(lastfm_counts):
    counts_graph = lastfm_counts
    binary = nx.Graph()
    binary.add_nodes_from(counts_graph)
    binary.add_edges_from((u, v) for u, v, c in counts_graph.edges(data="common") if c >= 20)
    assert counts_graph.number_of_nodes() == 184
    binary_part = quick_fit(binary, None).point_partition()
    counts_part = quick_fit(counts_graph, "common").point_partition().reindex(binary_part.index)
    # 318,171 co-listeners as Poisson edges support many more blocks than the 4,833
    # thresholded edges (27 against 9 in benchmarks/bench_network_lastfm_counts.py) ...
    assert binary_part.nunique() <= 12
    assert counts_part.nunique() >= 1.5 * binary_part.nunique()
    # ... which mostly subdivide the binary blocks: most artists share their count block
    # with the majority of one binary block, far more than with the count blocks shuffled.
    shuffled = pd.Series(np.random.default_rng(0).permutation(counts_part.to_numpy()),
                         index=counts_part.index)
    assert purity(counts_part, binary_part) > 0.6
    assert purity(counts_part, binary_part) > purity(shuffled, binary_part) + 0.2
    assert 0.1 < adjusted_rand_index(counts_part, binary_part) < 0.8
