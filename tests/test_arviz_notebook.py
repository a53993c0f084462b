"""Every fit works with ArviZ and in a notebook: LOO, predictive checks, pickling, HTML, plots.

Kept fast on purpose: tiny simulated data, NUTS fits of a few dozen draws for the models
whose fit the checks need (BG/NBD, sBG, hazard, hurdle play counts), and for the other
models and likelihoods a stand-in posterior drawn from the model's prior (the pointwise
log-likelihood and the replicates are computed from whatever draws ``idata_`` holds, so
they are checked the same way; only sampling is skipped).
"""

from __future__ import annotations

import pickle
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from matplotlib.axes import Axes
from pymc.model.transform.conditioning import remove_value_transforms
from scipy import special, stats

from models.churn import (
    BetaGeoBetaBinomModel,
    BetaGeoModel,
    ChurnHazardModel,
    ShiftedBetaGeoModel,
    calibration_table,
    plot_expected_activity_matrix,
    plot_holdout_calibration,
    plot_ppc_gaps,
    plot_ppc_repeat_activity,
    plot_ppc_survival,
    plot_probability_alive_matrix,
    plot_retention_curves,
)
from models.data.simulate import simulate_bgbb, simulate_bgnbd, simulate_sbg
from models.diagnostics import compare_models
from models.diagnostics.ppc import plot_ppc_counts
from models.exceptions import NotFittedError
from models.listening import PlayCountModel, SkipModel, UserArtistModel

NUTS = {"draws": 30, "tune": 30, "chains": 2, "cores": 1, "random_seed": 1,
        "progressbar": False}
CHAINS, DRAWS = 2, 20  # of the stand-in posteriors


# ------------------------------------------------------------------ helpers
def quick_fit(model, data, **kwargs):
    """A NUTS fit of a few dozen draws; its convergence warnings are expected and muted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(data, **{**NUTS, **kwargs})


def prior_fit(model, data, seed=0):
    """Attach ``CHAINS x DRAWS`` draws of the model's prior as its posterior (no sampling)."""
    model.data_ = model._validate_data(data)
    model.model_ = model._build_model(model.data_)
    names = [v.name for v in (*model.model_.free_RVs, *model.model_.deterministics)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior = pm.sample_prior_predictive(draws=CHAINS * DRAWS, model=model.model_,
                                           var_names=names, random_seed=seed)["prior"]
    prior = prior.to_dataset()
    variables = {}
    for name, da in prior.data_vars.items():
        rest = [d for d in da.dims if d not in ("chain", "draw")]
        values = da.transpose("chain", "draw", *rest).values.reshape(CHAINS, DRAWS, *da.shape[2:])
        variables[name] = (("chain", "draw", *rest), values)
    coords = {k: v for k, v in prior.coords.items() if k not in ("chain", "draw")}
    posterior = xr.Dataset(variables, coords={**coords, "chain": np.arange(CHAINS),
                                              "draw": np.arange(DRAWS)})
    model.idata_ = xr.DataTree.from_dict({"posterior": posterior})
    return model


def value_point(model, posterior, chain=0, draw=0):
    """One posterior draw as a point of ``model`` (a model without value transforms)."""
    return {model.rvs_to_values[rv].name: np.asarray(
        posterior[rv.name].isel(chain=chain, draw=draw).values, dtype=rv.type.dtype)
        for rv in model.free_RVs}


def model_loglik(model, posterior, terms, chain=0, draw=0):
    """The PyMC model's own log-likelihood (``terms``: "potentials" or "observed") at a draw."""
    plain = remove_value_transforms(model)
    variables = plain.potentials if terms == "potentials" else plain.observed_RVs
    fn = plain.compile_logp(vars=variables, jacobian=False, sum=True)
    return float(fn(value_point(plain, posterior, chain, draw)))


def drawn(ax):
    """Number of artists drawn on an Axes."""
    return len(ax.lines) + len(ax.collections) + len(ax.images) + len(ax.patches)


def check_log_likelihood(model, var, dim, n_units):
    """compute_log_likelihood gives one finite value per unit and draw, and LOO runs on it."""
    tree = model.compute_log_likelihood()
    assert tree is model.idata_
    ll = model.idata_["log_likelihood"][var]
    posterior = model.idata_["posterior"]
    assert ll.dims == ("chain", "draw", dim)
    assert ll.shape == (posterior.sizes["chain"], posterior.sizes["draw"], n_units)
    assert np.isfinite(ll.values).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k warnings of a tiny posterior
        loo = az.loo(model.idata_)
    assert np.isfinite(loo.elpd) and loo.n_data_points == n_units
    assert loo.elpd_i.shape == (n_units,)
    return ll


# --------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def users():
    frame = simulate_bgnbd(40, r=0.5, alpha=4.0, a=0.8, b=2.5, T=30.0, random_seed=1)
    return frame.set_axis([f"c{i}" for i in range(len(frame))])


@pytest.fixture(scope="module")
def cohorts():
    sizes = {"a": 5, "b": 4, "c": 3}
    return pd.concat([pd.DataFrame({"cohort": c, "period": range(k + 1),
                                    "n_surviving": simulate_sbg(200, 1.0, 3.0, k, random_seed=i)})
                      for i, (c, k) in enumerate(sizes.items())], ignore_index=True)


@pytest.fixture(scope="module")
def person_periods():
    rng = np.random.default_rng(0)
    n = 60
    plan = rng.choice(["free", "premium"], n)
    at_risk = np.ones(n, dtype=bool)
    parts = []
    for t in range(4):
        idx = np.flatnonzero(at_risk)
        plays = rng.integers(0, 4, idx.size)
        event = (rng.random(idx.size) < special.expit(-1.5 - 0.2 * plays)).astype(int)
        parts.append(pd.DataFrame({"user_id": idx, "tenure": t, "event": event, "plays": plays,
                                   "plan": plan[idx]}))
        at_risk[idx[event == 1]] = False
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def plays():
    rng = np.random.default_rng(0)
    n_users, n_days = 12, 7
    days = pd.date_range("2025-01-06", periods=n_days, freq="D")
    mu = np.exp(1.0 + 0.6 * rng.normal(size=n_users))[:, None] * np.ones(n_days)
    y = rng.poisson(rng.gamma(2.0, mu / 2.0))
    y[rng.random(y.shape) < 0.2] = 0
    return pd.DataFrame({
        "user_id": np.repeat([f"u{i:02d}" for i in range(n_users)], n_days),
        "period_start": np.tile(days, n_users),
        "plan": np.repeat(rng.choice(["free", "premium"], n_users), n_days),
        "plays": y.ravel(),
    })


# ---------------------------------------------------------------- quick fits
@pytest.fixture(scope="module")
def bgnbd(users):
    return quick_fit(BetaGeoModel(), users[["frequency", "recency", "T"]])


@pytest.fixture(scope="module")
def bgnbd_map(users):
    return BetaGeoModel().fit(users[["frequency", "recency", "T"]], method="map", random_seed=1,
                              progressbar=False)


@pytest.fixture(scope="module")
def sbg(cohorts):
    return quick_fit(ShiftedBetaGeoModel(), cohorts, log_likelihood=True)


@pytest.fixture(scope="module")
def hazard(person_periods):
    return quick_fit(ChurnHazardModel(covariates=["plays"], groups=["plan"]), person_periods)


@pytest.fixture(scope="module")
def hurdle(plays):
    return quick_fit(PlayCountModel(groups=("plan",), likelihood="hurdle"), plays)


# ---------------------------------------------------- 1. pointwise log-likelihood
def test_bgnbd_log_likelihood_per_user_sums_to_the_model(bgnbd, users):
    ll = check_log_likelihood(bgnbd, "activity", "user", len(users))
    assert list(ll["user"].values) == list(users.index)
    posterior = bgnbd.idata_["posterior"]
    for chain, draw in [(0, 0), (1, 17)]:
        total = model_loglik(bgnbd.model_, posterior, "potentials", chain, draw)
        assert float(ll.isel(chain=chain, draw=draw).sum()) == pytest.approx(total, rel=1e-9)
    # and each user's value is the closed form of Fader, Hardie & Lee (2005, eq. 6)
    p = {k: float(posterior[k].isel(chain=1, draw=3)) for k in ("r", "alpha", "a", "b")}
    x, t_x, T = (users[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
    alive = (special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
             + special.betaln(a, b + x) - special.betaln(a, b) - (r + x) * np.log(alpha + T))
    dead = (special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
            + special.betaln(a + 1, b + x - 1) - special.betaln(a, b)
            - (r + x) * np.log(alpha + t_x))
    expected = np.where(x > 0, np.logaddexp(alive, np.where(x > 0, dead, -np.inf)), alive)
    np.testing.assert_allclose(ll.isel(chain=1, draw=3).values, expected, rtol=1e-10)


def play_count_reference(likelihood, posterior, plays, chain, draw):
    """Each row's log-probability under PlayCountModel's likelihood, with scipy.stats."""
    point = {k: posterior[k].isel(chain=chain, draw=draw).values for k in posterior.data_vars}
    users = posterior["user"].values.tolist()
    user = np.array([users.index(u) for u in plays["user_id"]])
    if "user_z" in point:
        user_rate = float(point["sigma_user"]) * point["user_z"][user]
    else:
        user_rate = point["user_log_rate"][user] - float(point["intercept"])
    plan = np.array([posterior["plan"].values.tolist().index(v) for v in plays["plan"]])
    dow = pd.DatetimeIndex(plays["period_start"]).day_of_week.to_numpy()
    assert posterior["day_of_week"].values.tolist() == list(range(7))
    mu = np.exp(float(point["intercept"]) + point["plan_effect"][plan] * ("user_z" in point)
                + user_rate + point["day_of_week_effect"][dow])
    y = plays["plays"].to_numpy()
    alpha = float(point["alpha"])
    nb = stats.nbinom(alpha, alpha / (alpha + mu))
    if likelihood == "negbin":
        return nb.logpmf(y)
    pi = special.expit(float(point["zero_logit"]))
    if likelihood == "zinb":
        return np.where(y == 0, np.log(pi + (1 - pi) * nb.pmf(0)), np.log1p(-pi) + nb.logpmf(y))
    return np.where(y == 0, np.log(pi), np.log1p(-pi) + nb.logpmf(y) - np.log(nb.sf(0)))


def test_hurdle_play_count_log_likelihood_per_row_sums_to_the_model(hurdle, plays):
    ll = check_log_likelihood(hurdle, "plays", "user_period", len(plays))
    assert ll["user_id"].values.tolist() == plays["user_id"].tolist()
    posterior = hurdle.idata_["posterior"]
    total = model_loglik(hurdle.model_, posterior, "potentials", 1, 5)
    assert float(ll.isel(chain=1, draw=5).sum()) == pytest.approx(total, rel=1e-9)
    expected = play_count_reference("hurdle", posterior, plays, 1, 5)
    np.testing.assert_allclose(ll.isel(chain=1, draw=5).values, expected, rtol=1e-8)


@pytest.mark.parametrize("likelihood", ["negbin", "zinb"])
def test_play_count_log_likelihood_per_row(plays, likelihood):
    model = prior_fit(PlayCountModel(groups=("plan",), likelihood=likelihood), plays)
    ll = check_log_likelihood(model, "plays", "user_period", len(plays))
    expected = play_count_reference(likelihood, model.idata_["posterior"], plays, 1, 3)
    np.testing.assert_allclose(ll.isel(chain=1, draw=3).values, expected, rtol=1e-8)


def test_play_count_gamma_users_log_likelihood_is_conditional_on_other_days(plays):
    model = prior_fit(PlayCountModel(groups=("plan",), likelihood="poisson",
                                     user_effect="gamma"), plays)
    ll = check_log_likelihood(model, "plays", "user_period", len(plays))
    # p(y_ut | y_u,-t) = p(y_u) / p(y_u,-t): with no period effects removed, check one user by
    # the negative binomial marginal of the user's days (Gamma(k, k) rate integrated out)
    posterior = model.idata_["posterior"]
    point = {k: posterior[k].isel(chain=0, draw=2).values for k in posterior.data_vars}
    k = float(point["user_shape"])
    user = plays["user_id"] == "u00"
    rows = plays[user]
    plan_level = list(posterior["plan"].values).index(rows["plan"].iloc[0])
    dow = pd.DatetimeIndex(rows["period_start"]).day_of_week.to_numpy()
    assert posterior["day_of_week"].values.tolist() == list(range(7))
    log_e = point["day_of_week_effect"][dow]
    m = np.exp(float(point["intercept"]) + point["plan_effect"][plan_level])
    e, y = np.exp(log_e), rows["plays"].to_numpy()

    def log_marginal(keep):
        c = m * e[keep]
        return (special.gammaln(k + y[keep].sum()) - special.gammaln(k) + k * np.log(k)
                - (k + y[keep].sum()) * np.log(k + c.sum())
                + (y[keep] * np.log(c) - special.gammaln(y[keep] + 1)).sum())

    expected = [log_marginal(np.arange(len(y))) - log_marginal(np.delete(np.arange(len(y)), t))
                for t in range(len(y))]
    np.testing.assert_allclose(ll.isel(chain=0, draw=2).values[user.to_numpy()], expected,
                               rtol=1e-8)


def test_bgbb_log_likelihood_per_user():
    data = simulate_bgbb(40, 1.2, 0.8, 0.6, 2.5, 6, random_seed=1)[["frequency", "recency", "n"]]
    model = prior_fit(BetaGeoBetaBinomModel(), data)
    ll = check_log_likelihood(model, "activity", "user", len(data))
    total = model_loglik(model.model_, model.idata_["posterior"], "potentials", 0, 7)
    assert float(ll.isel(chain=0, draw=7).sum()) == pytest.approx(total, rel=1e-9)


def test_bgbb_weighted_rows_give_one_value_per_user():
    data = pd.DataFrame({"frequency": [0, 1, 2], "recency": [0, 1, 3], "n": 3,
                         "weight": [4, 2, 3]})
    model = prior_fit(BetaGeoBetaBinomModel(), data)
    ll = check_log_likelihood(model, "activity", "user", 9)
    assert ll["row"].values.tolist() == [0] * 4 + [1] * 2 + [2] * 3


def test_sbg_log_likelihood_per_transition(sbg, cohorts):
    assert "log_likelihood" in sbg.idata_.children  # fit(..., log_likelihood=True)
    transitions = int((cohorts.groupby("cohort")["period"].max()).sum())
    ll = check_log_likelihood(sbg, "churned", "cohort_period", transitions)
    total = model_loglik(sbg.model_, sbg.idata_["posterior"], "observed", 1, 4)
    assert float(ll.isel(chain=1, draw=4).sum()) == pytest.approx(total, rel=1e-9)


def test_hazard_log_likelihood_per_user_period(hazard, person_periods):
    ll = check_log_likelihood(hazard, "event", "user_period", len(person_periods))
    # Bernoulli rows: their sum is the collapsed cells' likelihood (the model's potential)
    total = model_loglik(hazard.model_, hazard.idata_["posterior"], "potentials", 0, 11)
    assert total < 0
    assert float(ll.isel(chain=0, draw=11).sum()) == pytest.approx(total, rel=1e-9)


def test_skip_log_likelihood_per_row():
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"user_id": rng.choice(list("abcd"), 50),
                          "track_id": rng.choice(list("xyz"), 50),
                          "position": rng.integers(1, 6, 50), "hour_bin": rng.integers(0, 4, 50),
                          "plan": rng.choice(["free", "premium"], 50), "n_plays": 4})
    table["n_skips"] = rng.binomial(4, 0.3, 50)
    model = prior_fit(SkipModel(), table)
    check_log_likelihood(model, "n_skips", "row", len(table))
    # replicates through pymc.sample_posterior_predictive, with the observed data
    tree = model.sample_posterior_predictive(random_seed=1)
    rep = tree["posterior_predictive"]["n_skips"]
    assert rep.dims == ("chain", "draw", "row") and rep.shape == (CHAINS, DRAWS, len(table))
    assert ((rep.values >= 0) & (rep.values <= 4)).all()
    np.testing.assert_array_equal(tree["observed_data"]["n_skips"].values, table["n_skips"])


def test_user_artist_log_likelihood_per_pair():
    rng = np.random.default_rng(4)
    pairs = pd.DataFrame({"user_id": np.repeat([f"u{i}" for i in range(8)], 5),
                          "artist_id": np.tile([f"a{j}" for j in range(5)], 8),
                          "plays": rng.negative_binomial(1.5, 1.5 / 9.5, 40)})
    pairs = pairs[pairs["plays"] > 0].reset_index(drop=True)
    model = prior_fit(UserArtistModel(), pairs)
    check_log_likelihood(model, "plays", "pair", len(pairs))


def test_log_likelihood_refuses_a_map_fit(bgnbd_map):
    with pytest.raises(ValueError, match="MAP"):
        bgnbd_map.compute_log_likelihood()


def test_max_draws_thins_within_chains(bgnbd):
    model = pickle.loads(pickle.dumps(bgnbd))
    model.compute_log_likelihood(max_draws=10)
    assert model.idata_["log_likelihood"]["activity"].shape == (2, 5, 40)


def test_compare_models_ranks_play_count_likelihoods(hurdle, plays):
    negbin = prior_fit(PlayCountModel(groups=("plan",), likelihood="negbin"), plays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = compare_models({"hurdle": hurdle, "negbin": negbin})
    assert sorted(table.index) == ["hurdle", "negbin"]
    assert {"elpd", "weight", "pareto_k_max"} <= set(table.columns)
    assert table["elpd"].is_monotonic_decreasing


# ------------------------------------------------------------- 2. replicated data
def test_bgnbd_posterior_predictive_has_the_observed_shape(bgnbd, users):
    tree = bgnbd.sample_posterior_predictive(random_seed=1)
    pp, obs = tree["posterior_predictive"], tree["observed_data"]
    for name in ("frequency", "recency"):
        assert pp[name].dims == ("chain", "draw", "user")
        assert pp[name].shape == (2, 30, len(users))
        assert obs[name].shape == (len(users),)
    np.testing.assert_array_equal(obs["frequency"].values, users["frequency"].to_numpy())
    rec, T = pp["recency"].values, users["T"].to_numpy()
    assert ((rec >= 0) & (rec <= T)).all()
    assert ((pp["frequency"].values == 0) == (rec == 0)).all()
    again = bgnbd.sample_posterior_predictive(random_seed=1)["posterior_predictive"]
    xr.testing.assert_equal(again["frequency"], pp["frequency"])


def test_play_count_posterior_predictive_has_the_observed_shape(hurdle, plays):
    tree = hurdle.sample_posterior_predictive(random_seed=2)
    rep = tree["posterior_predictive"]["plays"]
    assert rep.dims == ("chain", "draw", "user_period")
    assert rep.shape == (2, 30, len(plays))
    assert np.issubdtype(rep.dtype, np.integer) and (rep.values >= 0).all()
    np.testing.assert_array_equal(tree["observed_data"]["plays"].values, plays["plays"])


def test_hazard_posterior_predictive_has_the_observed_shape(hazard, person_periods):
    tree = hazard.sample_posterior_predictive(random_seed=3, max_draws=20)
    rep = tree["posterior_predictive"]["event"]
    assert rep.dims == ("chain", "draw", "user_period")
    assert rep.shape == (2, 10, len(person_periods))
    assert set(np.unique(rep.values)) <= {0, 1}
    np.testing.assert_array_equal(tree["observed_data"]["event"].values, person_periods["event"])


def test_sbg_posterior_predictive_has_the_cohort_shape(sbg, cohorts):
    tree = sbg.sample_posterior_predictive(random_seed=4)
    rep = tree["posterior_predictive"]["last_alive"]
    assert rep.dims == ("chain", "draw", "cohort", "period")
    n0 = cohorts[cohorts["period"] == 0]["n_surviving"].to_numpy()
    np.testing.assert_array_equal(rep.sum("period").values, np.broadcast_to(n0, (2, 30, 3)))


def test_posterior_predictive_needs_a_fit():
    with pytest.raises(NotFittedError):
        BetaGeoModel().sample_posterior_predictive()
    with pytest.raises(NotFittedError):
        PlayCountModel().compute_log_likelihood()


# --------------------------------------------------------- 3. pickling and display
def test_pickled_fit_predicts_the_same(bgnbd, hazard):
    again = pickle.loads(pickle.dumps(bgnbd))
    assert "model_" not in pickle.loads(pickle.dumps(bgnbd)).__dict__
    pd.testing.assert_frame_equal(again.probability_alive(), bgnbd.probability_alive())
    pd.testing.assert_frame_equal(again.expected_activity(horizon=5.0),
                                  bgnbd.expected_activity(horizon=5.0))
    assert again.fit_report_.verdict == bgnbd.fit_report_.verdict
    assert again.model_.free_RVs  # the graph is rebuilt from data_
    other = pickle.loads(pickle.dumps(hazard))
    pd.testing.assert_frame_equal(other.probability_churn(horizon=2, random_seed=0),
                                  hazard.probability_churn(horizon=2, random_seed=0))


def test_html_of_unfitted_and_fitted_models(bgnbd):
    html = BetaGeoModel(segment="plan")._repr_html_()
    assert "BetaGeoModel" in html and "not fitted" in html and "&#x27;plan&#x27;" in html
    assert "verdict" not in html
    html = bgnbd._repr_html_()
    assert "BetaGeoModel" in html and "not fitted" not in html
    assert "fitted: nuts (pymc), 2 chain(s) x 30 draws" in html
    assert f">{bgnbd.fit_report_.verdict}</span>" in html
    assert "verdict" in html and "<table" in html and "alpha" in html  # summary table
    again = pickle.loads(pickle.dumps(bgnbd))
    assert again._repr_html_() == bgnbd._repr_html_()


def test_html_of_a_map_fit_and_of_fit_reports(bgnbd_map, bgnbd):
    html = bgnbd_map._repr_html_()
    assert "BetaGeoModel" in html and "fitted: map" in html and ">not-applicable</span>" in html
    assert "not-applicable" in bgnbd_map.fit_report_._repr_html_()
    assert f">{bgnbd.fit_report_.verdict}</span>" in bgnbd.fit_report_._repr_html_()


# ------------------------------------------------------------------- 4. plots
def test_holdout_calibration_plot(bgnbd, users):
    p = bgnbd.probability_alive()["mean"].to_numpy()
    table = calibration_table(users["alive"].to_numpy(), p, n_bins=4)
    ax = plot_holdout_calibration(table, label="bgnbd")
    assert isinstance(ax, Axes) and len(ax.lines) >= 2 and ax.collections
    with pytest.raises(ValueError, match="mean_predicted"):
        plot_holdout_calibration(pd.DataFrame({"p": [0.1]}))


def test_retention_curves_plot(sbg):
    ax = plot_retention_curves(sbg, horizon=6)
    assert isinstance(ax, Axes) and len(ax.lines) == 2 and ax.collections
    with pytest.raises(ValueError, match="horizon"):
        plot_retention_curves(sbg, horizon=0)


@pytest.mark.parametrize("plot", [plot_probability_alive_matrix, plot_expected_activity_matrix])
def test_frequency_recency_matrices(bgnbd, plot):
    kwargs = {"horizon": 10.0} if plot is plot_expected_activity_matrix else {}
    ax = plot(bgnbd, max_frequency=5, max_draws=20, **kwargs)
    assert isinstance(ax, Axes) and len(ax.images) == 1
    image = np.ma.getdata(ax.images[0].get_array())
    assert image.shape == (6, 31) and np.isfinite(image).any()
    with pytest.raises(ValueError, match="max_frequency"):
        plot(bgnbd, max_frequency=0, **kwargs)


def _without_replicates(model):
    """A copy of the fit with no posterior_predictive group (as before the call)."""
    bare = pickle.loads(pickle.dumps(model))
    if "posterior_predictive" in bare.idata_.children:
        del bare.idata_["posterior_predictive"]
    return bare


@pytest.mark.parametrize("plot", [plot_ppc_repeat_activity, plot_ppc_gaps])
def test_activity_predictive_checks(bgnbd, plot):
    with pytest.raises(ValueError, match="sample_posterior_predictive"):
        plot(_without_replicates(bgnbd))
    model = pickle.loads(pickle.dumps(bgnbd))
    model.sample_posterior_predictive(random_seed=5)
    ax = plot(model)
    assert isinstance(ax, Axes) and drawn(ax) > 0 and ax.patches  # observed bars
    assert ax.lines or ax.collections  # predictive intervals


@pytest.mark.parametrize("fit", ["hazard", "sbg"])
def test_survival_predictive_check(request, fit):
    model = request.getfixturevalue(fit)
    with pytest.raises(ValueError, match="posterior_predictive"):
        plot_ppc_survival(_without_replicates(model))
    model = pickle.loads(pickle.dumps(model))
    model.sample_posterior_predictive(random_seed=6)
    ax = plot_ppc_survival(model.idata_)
    assert isinstance(ax, Axes) and len(ax.lines) == 2 and ax.collections


def test_count_rootogram(hurdle):
    with pytest.raises(ValueError, match="posterior_predictive"):
        plot_ppc_counts(_without_replicates(hurdle).idata_, "plays")
    model = pickle.loads(pickle.dumps(hurdle))
    model.sample_posterior_predictive(random_seed=7)
    ax = plot_ppc_counts(model.idata_, "plays", random_seed=0)
    assert isinstance(ax, Axes) and drawn(ax) > 0


def test_plots_reject_a_model_without_idata():
    with pytest.raises(TypeError, match="fitted model"):
        plot_ppc_repeat_activity(BetaGeoModel())


def test_community_plot_colours_legend_and_names():
    import networkx as nx

    from models.network.plotting import community_colours, plot_communities

    colours = community_colours(12)
    assert len({tuple(c) for c in colours}) == 12  # no repeat above tab10's 10 colours
    graph = nx.karate_club_graph()
    ax = plot_communities(graph, {n: n % 12 for n in graph}, labels={0: "Mr. Hi", 33: "Officer"})
    assert len(ax.get_legend().get_texts()) == 12
    assert {t.get_text() for t in ax.texts} >= {"Mr. Hi", "Officer"}
    faces = {tuple(np.round(c, 6)) for coll in ax.collections for c in coll.get_facecolors()}
    assert len(faces) >= 12


# ------------------------------------------------------------- progress in notebooks
class _Handle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, obj):
        self.shown.append(obj)


def test_progressbar_defaults(monkeypatch):
    import models._progress as progress

    monkeypatch.delenv(progress.PROGRESSBAR_ENV, raising=False)
    assert progress.resolve_progressbar(None, "f") is False  # pytest is not IPython
    assert not progress.in_notebook()
    monkeypatch.setattr(progress, "_shell_name", lambda: "ZMQInteractiveShell")
    assert progress.in_notebook() and progress.resolve_progressbar(None, "f") is True
    monkeypatch.setenv(progress.PROGRESSBAR_ENV, "0")
    assert progress.resolve_progressbar(None, "f") is False
    assert progress.resolve_progressbar(True, "f") is True
    monkeypatch.setenv(progress.PROGRESSBAR_ENV, "maybe")
    with pytest.raises(ValueError, match=progress.PROGRESSBAR_ENV):
        progress.resolve_progressbar(None, "f")
    with pytest.raises(ValueError, match="'progressbar' parameter of f"):
        progress.resolve_progressbar("yes", "f")


def test_fit_in_a_notebook_writes_its_progress_as_output(monkeypatch, cohorts):
    import IPython.display

    import models._progress as progress

    shown = []

    def display(obj, display_id=None):
        shown.append(obj)
        return _Handle(shown)

    monkeypatch.delenv(progress.PROGRESSBAR_ENV, raising=False)
    monkeypatch.setattr(progress, "_shell_name", lambda: "ZMQInteractiveShell")
    monkeypatch.setattr(IPython.display, "display", display)
    model = ShiftedBetaGeoModel().fit(cohorts, method="map", random_seed=1)
    assert shown, "nothing was displayed"
    last = shown[-1]
    assert "ShiftedBetaGeoModel.fit: MAP" in repr(last) and "done" in repr(last)
    assert f"verdict: {model.fit_report_.verdict}" in repr(last)
    assert "ShiftedBetaGeoModel.fit: MAP" in last._repr_html_()
