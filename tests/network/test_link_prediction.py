"""Tests of link prediction: splits, AUC / AP, models against heuristics, real Last.fm data."""

import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from models.network import (
    LatentSpaceModel,
    StochasticBlockModel,
    average_precision,
    build_colistening_graph,
    link_prediction_scores,
    roc_auc,
    split_edges,
)

_HERE = Path(__file__).resolve()
DATA = next((p / "shared" / "data" for p in (_HERE.parents[3], _HERE.parents[2])
             if (p / "shared" / "data").is_dir()), _HERE.parents[3] / "shared" / "data")


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # multimodal block posteriors; ADVI is not MCMC
        return func(*args, **kwargs)


def nmi(a, b):
    """Normalised mutual information (arithmetic mean of entropies), from the contingency table."""
    a, b = pd.factorize(pd.Series(a))[0], pd.factorize(pd.Series(b))[0]
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1.0)
    p = table / table.sum()
    pa, pb = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    mi = np.sum(p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz]))
    return 2 * mi / (-(pa * np.log(pa)).sum() - (pb * np.log(pb)).sum())


# ------------------------------------------------------------------ metrics
def test_auc_and_ap_equal_brute_force():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    scores = np.round(rng.normal(size=60) + labels, 1)  # rounded: many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    brute = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert roc_auc(labels, scores) == pytest.approx(brute)
    # AP without ties: mean precision at the rank of each positive.
    distinct = rng.permutation(60).astype(float)
    order = np.argsort(-distinct)
    hits = labels[order]
    precision_at = np.cumsum(hits) / np.arange(1, 61)
    assert average_precision(labels, distinct) == pytest.approx(precision_at[hits == 1].mean())
    assert average_precision([1, 0, 1], [0.5, 0.5, 0.5]) == pytest.approx(2 / 3)
    # one class only: undefined, NaN (as the churn scores it), not a number that looks valid
    assert np.isnan(roc_auc([1, 1], [0.1, 0.2])) and np.isnan(average_precision([0, 0], [1, 2]))
    assert roc_auc([0, 1], [-3.0, 40.0]) == 1.0  # scores need not be probabilities
    with pytest.raises(ValueError, match=r"outcomes of roc_auc must be 0 or 1 .* Got 2.0"):
        roc_auc([2, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"same, non-zero length. Got 2 outcomes and 3"):
        average_precision([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="scores of roc_auc must be finite. Got nan"):
        roc_auc([0, 1], [0.1, np.nan])


# ------------------------------------------------------------------ split
def test_split_edges_properties():
    g = nx.planted_partition_graph(3, 15, 0.4, 0.05, seed=3)
    split = split_edges(g, 0.25, random_seed=5)
    test = split.test
    n_test = round(0.25 * g.number_of_edges())
    assert test["label"].tolist() == [1] * n_test + [0] * n_test
    assert set(split.train.nodes) == set(g.nodes)
    assert split.train.number_of_edges() == g.number_of_edges() - n_test
    for u, v, y in test.itertuples(index=False):
        assert g.has_edge(u, v) == bool(y)
        assert not split.train.has_edge(u, v)
        assert u != v
    negatives = test[test["label"] == 0]
    non_edges = {frozenset(p) for p in zip(negatives["source"], negatives["target"], strict=True)}
    assert len(non_edges) == n_test  # distinct
    assert min(d for _, d in split.train.degree) >= 1
    again = split_edges(g, 0.25, random_seed=5)
    pd.testing.assert_frame_equal(again.test, test)
    assert not split_edges(g, 0.25, random_seed=6).test.equals(test)


def test_split_edges_errors():
    g = nx.karate_club_graph()
    with pytest.raises(ValueError, match=r"'test_fraction' .* in \(0, 1\). Got 1.5"):
        split_edges(g, 1.5)
    with pytest.raises(ValueError, match="holds out no edge of a graph with 78 edges. Got 0.001"):
        split_edges(g, 0.001)
    with pytest.raises(ValueError, match="undirected simple networkx.Graph. Got DiGraph"):
        split_edges(nx.DiGraph(g), 0.1)
    with pytest.raises(ValueError, match="must have no self-loops. Got 1"):
        split_edges(nx.Graph([(0, 1), (1, 2), (2, 2)]), 0.5)
    with pytest.raises(ValueError, match="Only 0 edges can be held out"):
        split_edges(nx.star_graph(5), 0.5)
    with pytest.raises(ValueError, match="fewer than 5 non-edges"):
        split_edges(nx.complete_graph(5), 0.5)


# ------------------------------------------------------------------ models vs heuristics
@pytest.fixture(scope="module")
def planted():
    g = nx.planted_partition_graph(3, 20, 0.5, 0.02, seed=7)
    split = split_edges(g, 0.2, random_seed=1)
    sbm = quiet(StochasticBlockModel(n_blocks=3).fit, split.train, draws=100, tune=60,
                chains=2, random_seed=1)
    lsm = quiet(LatentSpaceModel().fit, split.train, method="advi", advi_steps=3000,
                draws=200, random_seed=1)
    return g, split, sbm, lsm


def test_bayesian_models_beat_preferential_attachment_on_planted_partition(planted):
    g, split, sbm, lsm = planted
    table = link_prediction_scores(split, {"sbm": sbm, "latent_space": lsm})
    print(table)
    n_test = round(0.2 * g.number_of_edges())
    assert table.index.tolist() == ["sbm", "latent_space", "common_neighbours", "adamic_adar",
                                    "preferential_attachment"]
    assert table.attrs == {"n_test_edges": n_test, "n_test_non_edges": n_test}
    pa = table.loc["preferential_attachment", "auc"]
    assert table.loc["sbm", "auc"] > max(pa + 0.15, 0.75)
    assert table.loc["latent_space", "auc"] > max(pa + 0.15, 0.75)
    assert table.loc["sbm", "average_precision"] > table.loc["preferential_attachment",
                                                             "average_precision"]


def test_sbm_probability_edge(planted):
    g, split, sbm, _ = planted
    truth = np.repeat(np.arange(3), 20)
    i, j = np.triu_indices(60, 1)
    prob = sbm.probability_edge(list(zip(i.tolist(), j.tolist(), strict=True)))["mean"].to_numpy()
    same = truth[i] == truth[j]
    # planted 0.5 within and 0.02 across (before holding out 20% of the edges)
    assert prob[same].mean() > 5 * prob[~same].mean()
    assert 0.25 < prob[same].mean() < 0.6
    draws = sbm.probability_edge([(0, 1)], return_draws=True, max_draws=None)
    assert draws.dims == ("chain", "draw", "pair") and draws.shape == (2, 100, 1)
    assert ((draws > 0) & (draws < 1)).all()
    plain = quiet(StochasticBlockModel(n_blocks=3, degree_corrected=False).fit, split.train,
                  draws=30, tune=30, chains=2, random_seed=1)
    assert plain.probability_edge().shape == (split.train.number_of_edges(), 4)
    with pytest.raises(Exception, match="nodes of the training graph"):
        sbm.probability_edge([(0, 999)])


def test_fitting_on_the_full_graph_is_refused(planted):
    g, split, _, _ = planted
    leaky = quiet(StochasticBlockModel(n_blocks=3).fit, g, draws=10, tune=5, chains=1,
                  random_seed=0)
    n_test = round(0.2 * g.number_of_edges())
    with pytest.raises(ValueError, match=rf"'leaky' .* fitted on {n_test} held-out edge\(s\)"):
        link_prediction_scores(split, {"leaky": leaky})


@pytest.mark.slow
def test_sbm_beats_preferential_attachment_on_simulated_artist_graph():
    simulate = pytest.importorskip("models.data.simulate")
    sim = simulate.simulate_service(
        300, 60, network=simulate.NetworkOptions(n_artists=40, n_communities=3), random_seed=3)
    g = build_colistening_graph(sim.events, min_common=1, weight="lift", top_k=6)
    g.remove_edges_from([(u, v) for u, v, w in g.edges(data="weight") if w <= 1.0])
    split = split_edges(g, 0.2, random_seed=2)
    sbm = quiet(StochasticBlockModel(n_blocks=3).fit, split.train, draws=100, tune=60,
                chains=2, random_seed=1)
    table = link_prediction_scores(split, {"sbm": sbm})
    print(table)
    assert table.loc["sbm", "auc"] > table.loc["preferential_attachment", "auc"] + 0.1


# ------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def lastfm_graph():
    folder = DATA / "lastfm-hetrec2011"
    if not folder.is_dir():
        pytest.skip(f"reference data folder {folder} is absent")
    plays = pd.read_csv(folder / "user_artists.dat", sep="\t")
    names = pd.read_csv(folder / "artists.dat", sep="\t", usecols=[0, 1]).set_index("id")["name"]
    users, user_codes = np.unique(plays["userID"], return_inverse=True)
    artists, artist_codes = np.unique(plays["artistID"], return_inverse=True)
    matrix = sp.csr_matrix((plays["weight"].to_numpy(), (user_codes, artist_codes)),
                           shape=(users.size, artists.size))
    # Artists with at least 80 of the 1,892 listeners: 184 artists. Each keeps its 5 strongest
    # links by NPMI among pairs with 5+ common listeners: a sparse, readable graph.
    graph = build_colistening_graph(matrix, artists=artists, min_common=5, weight="npmi",
                                    min_listeners=80, top_k=5, artist_names=names)
    return graph


@pytest.mark.data
def test_lastfm_communities_agree_with_louvain(lastfm_graph):
    g = lastfm_graph
    assert 100 <= g.number_of_nodes() <= 300
    sbm = quiet(StochasticBlockModel(n_blocks=6).fit, g, draws=100, tune=100, chains=2,
                random_seed=1)
    part = sbm.point_partition()
    louvain = nx.community.louvain_communities(g, seed=1)
    louvain_of = {n: k for k, members in enumerate(louvain) for n in members}
    score = nmi(part.to_numpy(), [louvain_of[n] for n in part.index])
    # Null: the same block sizes shuffled over artists.
    shuffled = np.random.default_rng(0).permutation(part.to_numpy())
    null = nmi(shuffled, [louvain_of[n] for n in part.index])
    listeners = pd.Series(dict(g.nodes(data="listeners")))
    print(f"\n{g.number_of_nodes()} artists, {g.number_of_edges()} edges, "
          f"{len(louvain)} Louvain communities; NMI(SBM, Louvain) = {score:.2f} "
          f"(shuffled: {null:.2f}); fit verdict {sbm.fit_report_.verdict}")
    for block in sorted(part.unique()):
        members = listeners[part.index[part == block]].sort_values(ascending=False)
        print(f"block {block} ({members.size}):",
              ", ".join(g.nodes[n]["name"] for n in members.index[:6]))
    # Two reasonable community methods on a graph with clear genre scenes agree far beyond
    # chance (about 0.05 for shuffled labels); 0.5 leaves room for K=6 versus Louvain's own
    # choice of K and for genuinely ambiguous artists.
    assert null < 0.15
    assert score > 0.5
    # Readability: each block holds at least 5 artists.
    assert part.value_counts().min() >= 5


@pytest.mark.data
def test_lastfm_link_prediction(lastfm_graph):
    split = split_edges(lastfm_graph, 0.1, random_seed=3)
    sbm = quiet(StochasticBlockModel(n_blocks=6).fit, split.train, draws=60, tune=60, chains=2,
                random_seed=1)
    lsm = quiet(LatentSpaceModel().fit, split.train, method="advi", advi_steps=2000, draws=200,
                random_seed=1)
    table = link_prediction_scores(split, {"sbm": sbm, "latent_space": lsm})
    print("\n", table.round(3).to_string())
    # Held-out co-listening links are predictable: well above chance for every model.
    assert (table.loc[["sbm", "latent_space"], "auc"] > 0.75).all()
    assert table.loc["sbm", "auc"] > table.loc["preferential_attachment", "auc"]
