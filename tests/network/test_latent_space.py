"""Tests of the latent space model: exact math, Procrustes alignment, fits and recovery."""

import warnings

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from scipy.special import expit

from models.exceptions import DataValidationError, NotFittedError
from models.network import LatentSpaceModel, plot_embedding, procrustes_align
from models.network.latent_space import _dyad_logp
from models.priors import Prior


def simulate(n, family, seed, *, intercept, sigma_z=1.0, sigma_a=0.5):
    """Edge list drawn from the model itself, with the planted positions and popularity."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, sigma_z, (n, 2))
    a = rng.normal(0.0, sigma_a, n)
    i, j = np.triu_indices(n, 1)
    eta = intercept + a[i] + a[j] - np.linalg.norm(z[i] - z[j], axis=1)
    if family == "bernoulli":
        y = (rng.random(i.size) < expit(eta)).astype(int)
    else:
        y = rng.poisson(np.exp(eta))
    keep = y > 0
    frame = pd.DataFrame({"source": i[keep], "target": j[keep], "count": y[keep]})
    frame.attrs["nodes"] = list(range(n))
    return frame, z, a


def quiet_fit(model, data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(data, **kwargs)


def rotation(angle):
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


@pytest.fixture(scope="module")
def karate_advi():
    g = nx.karate_club_graph()
    return quiet_fit(LatentSpaceModel(), g, method="advi", advi_steps=3000, draws=200,
                     random_seed=2)


def fake_fit(graph, position, popularity, intercept, family="bernoulli", dispersion=None):
    """A model with a hand-made posterior (draws on axis 0)."""
    model = LatentSpaceModel(family=family)
    model.data_ = model._validate_data(graph)
    nodes = model.data_.attrs["nodes"]
    posterior = {
        "position": (("chain", "draw", "node", "dim"), position[None]),
        "popularity": (("chain", "draw", "node"), popularity[None]),
        "intercept": (("chain", "draw"), intercept[None]),
    }
    if dispersion is not None:
        posterior["dispersion"] = (("chain", "draw"), dispersion[None])
    model.idata_ = xr.DataTree.from_dict(
        {"posterior": xr.Dataset(posterior, coords={"node": nodes})}
    )
    return model


# ------------------------------------------------------------------ exact math
@pytest.mark.parametrize("family", ["bernoulli", "poisson", "negative_binomial"])
def test_dyad_log_likelihood_matches_scipy(family):
    y = np.array([0.0, 1.0, 0.0, 3.0, 7.0]) if family != "bernoulli" else np.array([0, 1, 1, 0.0])
    eta = np.linspace(-2.0, 2.5, y.size)
    phi = 1.7
    got = _dyad_logp(y, eta, family, phi).eval()
    if family == "bernoulli":
        expected = stats.bernoulli.logpmf(y, expit(eta))
    elif family == "poisson":
        expected = stats.poisson.logpmf(y, np.exp(eta))
    else:
        mu = np.exp(eta)
        expected = stats.nbinom.logpmf(y, phi, phi / (phi + mu))
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_dyads_cover_every_pair_and_case_control_weights():
    frame = pd.DataFrame({"source": ["a", "c", "b", "a"], "target": ["b", "a", "d", "b"],
                          "count": [2, 1, 4, 3]})
    frame.attrs["nodes"] = ["a", "b", "c", "d", "e"]
    nodes, i, j, y, w = LatentSpaceModel(family="poisson")._dyads(
        LatentSpaceModel()._validate_data(frame))
    assert w is None and i.size == 10 and np.all(i < j)
    got = {(nodes[a], nodes[b]): c for a, b, c in zip(i, j, y, strict=True) if c > 0}
    assert got == {("a", "b"): 5.0, ("a", "c"): 1.0, ("b", "d"): 4.0}  # duplicates add up
    _, _, _, yb, _ = LatentSpaceModel()._dyads(LatentSpaceModel()._validate_data(frame))
    assert sorted(set(yb)) == [0.0, 1.0] and yb.sum() == 3
    sub = LatentSpaceModel(family="poisson", non_edge_sample=4, non_edge_seed=3)
    _, i2, j2, y2, w2 = sub._dyads(sub._validate_data(frame))
    assert (y2 > 0).sum() == 3 and (y2 == 0).sum() == 4  # every edge, 4 of the 7 non-edges
    assert len(set(zip(i2, j2, strict=True))) == 7
    np.testing.assert_allclose(w2[y2 == 0], 7 / 4)
    np.testing.assert_allclose(w2[y2 > 0], 1.0)
    edges = {(0, 1), (0, 2), (1, 3)}
    assert not {(a, b) for a, b, c in zip(i2, j2, y2, strict=True) if c == 0} & edges


def test_procrustes_undoes_rotation_reflection_and_shift():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(12, 2))
    draws = np.stack([z @ rotation(t) * s + shift for t, s, shift in
                      [(0.0, [1, 1], 0.0), (1.0, [1, 1], 2.0), (2.5, [1, -1], -1.0)]])
    aligned = procrustes_align(draws)
    for k in (1, 2):
        np.testing.assert_allclose(aligned[k], aligned[0], atol=1e-10)
    to_truth = procrustes_align(draws, reference=z)
    np.testing.assert_allclose(to_truth[2], z - z.mean(axis=0), atol=1e-10)
    assert procrustes_align(draws.reshape(1, 3, 12, 2)).shape == (1, 3, 12, 2)
    with pytest.raises(ValueError, match=r"'reference' .* shape \(12, 2\). Got shape \(3, 2\)"):
        procrustes_align(draws, reference=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"'positions' .* Got shape \(4,\)"):
        procrustes_align(np.zeros(4))


def test_predictions_from_a_fixed_posterior_are_rotation_invariant():
    g = nx.path_graph(5)
    rng = np.random.default_rng(1)
    position = rng.normal(size=(50, 5, 2))
    popularity = rng.normal(size=(50, 5))
    intercept = rng.normal(size=50)
    pairs = [(0, 1), (0, 4), (2, 3)]
    first = fake_fit(g, position, popularity, intercept).probability_edge(pairs, return_draws=True,
                                                                          max_draws=None)
    assert first.dims == ("chain", "draw", "pair") and first.shape == (1, 50, 3)
    first = first.values[0]  # draws x pairs
    d = np.linalg.norm(position[:, 0] - position[:, 4], axis=1)
    np.testing.assert_allclose(first[:, 1],
                               expit(intercept + popularity[:, 0] + popularity[:, 4]
                                     - np.sqrt(d**2 + 1e-6)))
    moved = position @ rotation(0.7) * [1, -1] + 5.0
    again = fake_fit(g, moved, popularity, intercept).probability_edge(pairs, return_draws=True,
                                                                       max_draws=None)
    np.testing.assert_allclose(again.values[0], first, atol=1e-12)
    summary = fake_fit(g, position, popularity, intercept).probability_edge(pairs)
    assert summary.index.names == ["source", "target"]
    assert summary.index.tolist() == pairs
    assert (summary["ci_lower"] <= summary["mean"]).all()
    lower, upper = np.quantile(first, [0.055, 0.945], axis=0)  # the 89% equal-tailed interval
    np.testing.assert_allclose(summary["ci_lower"], lower)
    np.testing.assert_allclose(summary["ci_upper"], upper)
    phi = np.full(50, 2.0)
    nb = fake_fit(g, position, popularity, intercept, "negative_binomial", phi)
    mu = nb.expected_weight(pairs, return_draws=True, max_draws=None).values[0]
    p = nb.probability_edge(pairs, return_draws=True, max_draws=None).values[0]
    np.testing.assert_allclose(p, 1 - (2.0 / (2.0 + mu)) ** 2.0)
    pois = fake_fit(g, position, popularity, intercept, "poisson")
    np.testing.assert_allclose(
        pois.probability_edge(pairs, return_draws=True, max_draws=None).values[0],
        1 - np.exp(-mu))


# ------------------------------------------------------------------ fits
def test_advi_fit_contents_and_round_trip(tmp_path, karate_advi):
    model = karate_advi
    assert model.fit_report_.verdict == "not-applicable"  # ADVI: no MCMC checks claimed
    assert model.idata_["posterior"]["position"].dims == ("chain", "draw", "node", "dim")
    table = model.embedding()
    assert table.shape == (34, 13)
    assert (table["dim0_ci_lower"] < table["dim0_ci_upper"]).all()
    np.testing.assert_allclose(table[["dim0_mean", "dim1_mean"]].mean(), 0.0, atol=1e-9)
    assert list(model.summary().index) == ["intercept", "popularity_sigma", "position_sigma"]
    # The two hubs 0 and 33 lead opposite factions: a link between the hub and a member of
    # its own faction is more probable than across.
    p = model.probability_edge([(0, 1), (33, 1)])["mean"].to_numpy()
    assert p[0] > p[1]
    assert model.embedding()["popularity_mean"].idxmax() in (0, 33)
    back = LatentSpaceModel.load(model.save(tmp_path / "lsm.nc"))
    pd.testing.assert_frame_equal(back.embedding(), table)
    ppc = model.sample_posterior_predictive(random_seed=1)
    assert ppc["posterior_predictive"]["edge"].sizes["dyad"] == 34 * 33 // 2


def test_case_control_fit_runs_and_has_no_predictive():
    g = nx.planted_partition_graph(2, 12, 0.6, 0.05, seed=1)
    model = quiet_fit(LatentSpaceModel(non_edge_sample=40), g, method="advi", advi_steps=500,
                      draws=50, random_seed=0)
    assert "edge_loglik" in model.model_.named_vars
    assert model.expected_weight().shape == (g.number_of_edges(), 4)
    with pytest.raises(NotImplementedError, match="case-control"):
        model.sample_posterior_predictive()


@pytest.mark.slow
def test_nuts_recovers_planted_positions_and_popularity():
    frame, z, a = simulate(30, "poisson", 1, intercept=3.0)
    model = quiet_fit(LatentSpaceModel(family="poisson"), frame, draws=300, tune=300, chains=2,
                      cores=1, random_seed=0)
    table = model.embedding()
    estimate = table[["dim0_mean", "dim1_mean"]].to_numpy()
    truth = z - z.mean(axis=0)
    aligned = procrustes_align(estimate, reference=truth)
    error = np.linalg.norm(aligned - truth) / np.linalg.norm(truth)
    # Baseline: the same estimate against a shuffled truth is as bad as a random layout.
    shuffled = truth[np.random.default_rng(0).permutation(30)]
    baseline = np.linalg.norm(procrustes_align(estimate, reference=shuffled) - shuffled)
    assert error < 0.45 < baseline / np.linalg.norm(truth)
    i, j = np.triu_indices(30, 1)
    est_d = np.linalg.norm(estimate[i] - estimate[j], axis=1)
    assert np.corrcoef(est_d, np.linalg.norm(z[i] - z[j], axis=1))[0, 1] > 0.9
    assert np.corrcoef(table["popularity_mean"], a)[0, 1] > 0.7
    covered = (table["popularity_ci_lower"] <= a) & (a <= table["popularity_ci_upper"])
    assert covered.mean() >= 0.7
    summary = model.summary()
    assert summary.loc["intercept", "ci_lower"] < 3.0 + 0.5
    assert summary.loc["popularity_sigma", "ci_lower"] < 0.5 < summary.loc[
        "popularity_sigma", "ci_upper"] + 0.1


# ------------------------------------------------------------------ plots
def test_plot_embedding(karate_advi):
    before = plt.get_fignums()
    g = nx.karate_club_graph()
    clubs = {n: g.nodes[n]["club"] for n in g}
    ax = plot_embedding(karate_advi, color=clubs, labels={0: "hub 0", 33: "hub 33"})
    assert len(ax.patches) == 34  # one ellipse per node
    assert {t.get_text() for t in ax.texts} == {"hub 0", "hub 33"}
    _, given = plt.subplots()
    assert plot_embedding(karate_advi, ax=given, uncertainty="draws", n_draws=10) is given
    assert "posterior draws" in given.get_title()
    plt.close(given.figure)
    assert plt.get_fignums() == before
    with pytest.raises(ValueError, match="'uncertainty' .* Got 'cloud'"):
        plot_embedding(karate_advi, uncertainty="cloud")


# ------------------------------------------------------------------ errors
def test_errors(karate_advi):
    with pytest.raises(ValueError, match="'n_dims' parameter of LatentSpaceModel must be a "
                                         "positive integer. Got 0"):
        LatentSpaceModel(n_dims=0)
    with pytest.raises(ValueError, match=r"'family' .* Got 'gaussian'"):
        LatentSpaceModel(family="gaussian")
    with pytest.raises(ValueError, match="'non_edge_sample' .* Got -3"):
        LatentSpaceModel(non_edge_sample=-3)
    with pytest.raises(ValueError, match="no prior named 'scale'"):
        LatentSpaceModel(priors={"scale": Prior("HalfNormal", sigma=1.0)})
    with pytest.raises(NotFittedError, match="embedding"):
        LatentSpaceModel().embedding()
    with pytest.raises(NotFittedError, match="probability_edge"):
        LatentSpaceModel().probability_edge([(0, 1)])
    with pytest.raises(DataValidationError, match=r"nodes of the training graph.*'ghost'"):
        karate_advi.probability_edge([(0, 1), (0, "ghost")])
    with pytest.raises(ValueError, match=r"sequence of \(source, target\) tuples. Got 5"):
        karate_advi.expected_weight([(0, 1), 5])
    with pytest.raises(DataValidationError, match="column 'target'"):
        karate_advi.probability_edge(pd.DataFrame({"source": [0]}))
    with pytest.raises(DataValidationError, match="no self-loops"):
        LatentSpaceModel().fit(nx.Graph([(0, 1), (1, 1)]), method="map")
    with pytest.raises(ValueError, match="LatentSpaceModel needs an undirected simple graph"):
        LatentSpaceModel().fit(nx.DiGraph([(0, 1)]), method="map")
    with pytest.raises(ValueError, match="'method' parameter of LatentSpaceModel.fit .* Got 'em'"):
        LatentSpaceModel().fit(nx.path_graph(3), method="em")
