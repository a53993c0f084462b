"""Tests of the proxy-metric model (models.experiments.proxies)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr
from scipy import stats

from models.exceptions import DataValidationError, NotFittedError
from models.experiments._mvnormal import mvnormal_logp
from models.experiments.proxies import ProxyMetricModel
from models.priors import Prior

METRICS = ["days", "plays", "long_term"]
# True effects across experiments: 'days' predicts the long-term effect well (0.9) but is
# measured noisily; 'plays' predicts it less well (0.65) but is measured precisely.
CORR = np.array([[1.0, 0.5, 0.9], [0.5, 1.0, 0.65], [0.9, 0.65, 1.0]])
SD = np.array([1.0, 20.0, 0.5])  # the metrics' own units differ
MEAN = np.array([0.2, 3.0, 0.05])
SE = np.array([1.3, 1.0, 0.13])  # standard error of an experiment of relative size 1
FIT = {"draws": 400, "tune": 400, "chains": 2, "cores": 1}


def covariance() -> np.ndarray:
    return SD[:, None] * CORR * SD[None, :]


def history(rng, n_experiments=100, metrics=METRICS, corr=CORR, sd=SD, se=SE,
            noise_corr=None) -> pd.DataFrame:
    cov = sd[:, None] * corr * sd[None, :]
    true = rng.multivariate_normal(MEAN[: len(metrics)], cov, n_experiments)
    size = rng.uniform(0.5, 2.0, n_experiments)
    errors = se[None, :] / np.sqrt(size)[:, None]
    if noise_corr is None:
        noise = rng.normal(0, errors)
    else:
        noise = rng.multivariate_normal(np.zeros(len(metrics)), noise_corr, n_experiments) * errors
    est = true + noise
    columns = {}
    for i, name in enumerate(metrics):
        columns[name] = est[:, i]
        columns[f"{name}_se"] = errors[:, i]
    return pd.DataFrame(columns, index=pd.Index([f"exp{j}" for j in range(n_experiments)],
                                                name="experiment_id"))


def fake_fit(model, data, means, sds, corrs):
    """Attach a fixed posterior of (mean, sd, corr) draws in the metrics' own units."""
    model.data_ = model._validate_data(data)
    means, sds, corrs = (np.asarray(v, float)[None] for v in (means, sds, corrs))
    model.idata_ = xr.DataTree.from_dict({"posterior": xr.Dataset({
        "mean": (("chain", "draw", "metric"), means),
        "sd": (("chain", "draw", "metric"), sds),
        "corr": (("chain", "draw", "metric", "metric_bis"), corrs)})})
    return model


@pytest.fixture
def rng():
    return np.random.default_rng(20240717)


# ---------------------------------------------------------------- exact math


def test_batched_mvnormal_logp_and_its_gradient():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 4, 4))
    cov = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(4)
    mu, x = rng.normal(size=4), rng.normal(size=(6, 4))
    got = mvnormal_logp(pt.as_tensor(x), pt.as_tensor(mu), pt.as_tensor(cov)).eval()
    want = [stats.multivariate_normal(mu, cov[j]).logpdf(x[j]) for j in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-10)

    # the gradient through the broadcast mean and the covariance, against finite differences
    mu_t, cov_t = pt.dvector("mu"), pt.dtensor3("cov")
    total = mvnormal_logp(pt.as_tensor(x), mu_t, cov_t).sum()
    f = pytensor.function([mu_t, cov_t], [total, *pytensor.grad(total, [mu_t, cov_t])],
                          mode="FAST_COMPILE")
    _, d_mu, d_cov = f(mu, cov)
    step = 1e-6
    for i in range(4):
        shift = np.eye(4)[i] * step
        assert d_mu[i] == pytest.approx((f(mu + shift, cov)[0] - f(mu - shift, cov)[0])
                                        / (2 * step), rel=1e-5)
    for i, j in ((1, 3), (2, 2)):  # covariances are symmetric: perturb both entries
        bump = np.zeros_like(cov)
        bump[2, i, j] = bump[2, j, i] = step
        slope = (f(mu, cov + bump)[0] - f(mu, cov - bump)[0]) / (2 * step)
        assert d_cov[2, i, j] + d_cov[2, j, i] * (i != j) == pytest.approx(slope, rel=1e-5)
    not_pd = -np.broadcast_to(np.eye(4), (6, 4, 4))
    assert np.isneginf(mvnormal_logp(pt.as_tensor(x), pt.as_tensor(mu),
                                      pt.as_tensor(not_pd)).eval()).all()


def test_model_likelihood_is_the_marginal_normal_with_the_noise_added(rng):
    data = history(rng, 30)
    noise_corr = [[1.0, 0.3, 0.2], [0.3, 1.0, 0.1], [0.2, 0.1, 1.0]]
    model = ProxyMetricModel(candidates=["days", "plays"], noise_correlation=noise_corr)
    pm_model = model.build_model(data)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in pm_model.initial_point().items()}
    outs = pm_model.replace_rvs_by_values(
        [pm_model["mean"], pm_model["sd"], pm_model["corr"], pm_model.observedlogp])
    mean, sd, corr, logp = pm_model.compile_fn(outs, inputs=pm_model.value_vars,
                                               on_unused_input="ignore",
                                               mode="FAST_COMPILE")(point)
    est = data[METRICS].to_numpy()
    se = data[[f"{m}_se" for m in METRICS]].to_numpy()
    cov = sd[:, None] * corr * sd[None, :]
    want = sum(stats.multivariate_normal(mean, cov + se[j][:, None] * np.array(noise_corr)
                                         * se[j][None, :]).logpdf(est[j]) for j in range(30))
    # the model works on standardised estimates: the Jacobian is the product of the scales
    want += len(data) * np.log(data[METRICS].std(ddof=1).to_numpy()).sum()
    assert logp == pytest.approx(want, rel=1e-9)


def test_ranking_from_a_fixed_posterior(rng):
    data = history(rng, 40)
    model = ProxyMetricModel(candidates=["days", "plays"])
    corr_b = np.array([[1.0, 0.2, 0.3], [0.2, 1.0, 0.7], [0.3, 0.7, 1.0]])
    fake_fit(model, data, [MEAN, MEAN], [SD, SD * 2], [CORR, corr_b])
    table = model.rank_proxies(ci_prob=0.5)
    # draw 1: days (r2 .81) beats plays (.4225); draw 2: plays (.49) beats days (.09)
    assert table.loc["days", "r2"] == pytest.approx((0.81 + 0.09) / 2)
    assert table.loc["plays", "r2"] == pytest.approx((0.4225 + 0.49) / 2)
    assert list(table.index) == ["plays", "days", "combination"]
    assert list(table["rank"]) == [1, 2, 0]
    assert table.loc["days", "prob_best"] == 0.5 and np.isnan(table.loc["combination",
                                                                        "prob_best"])
    slopes = [0.9 * SD[2] / SD[0], 0.3 * SD[2] / SD[0]]
    assert table.loc["days", "slope"] == pytest.approx(np.mean(slopes))
    r2_comb, weights = [], []
    for corr, sd in ((CORR, SD), (corr_b, 2 * SD)):
        cov = sd[:, None] * corr * sd[None, :]
        w = np.linalg.solve(cov[:2, :2], cov[:2, 2])
        weights.append(w)
        r2_comb.append(cov[2, :2] @ w / cov[2, 2])
    assert table.loc["combination", "r2"] == pytest.approx(np.mean(r2_comb))
    assert table.loc["combination", "corr"] == pytest.approx(np.mean(np.sqrt(r2_comb)))
    np.testing.assert_allclose(table.loc[["days", "plays"], "weight"], np.mean(weights, axis=0))
    naive = data[METRICS].corr().loc[["days", "plays"], "long_term"]
    np.testing.assert_allclose(table.loc[["days", "plays"], "naive_corr"], naive)
    se2 = (data["days_se"] ** 2).mean()
    assert table.loc["days", "reliability"] == pytest.approx(
        np.mean([1 / (1 + se2), 4 / (4 + se2)]))
    assert table.attrs == {"ci_prob": 0.5, "outcome": "long_term", "n_experiments": 40}
    assert (table["r2_ci_lower"] <= table["r2"]).all() and (table["r2"] <= table["r2_ci_upper"]).all()


def test_long_term_prediction_is_the_conditional_normal(rng):
    data = history(rng, 40)
    noise_corr = 0.4
    model = ProxyMetricModel(candidates=["days", "plays"], noise_correlation=noise_corr)
    fake_fit(model, data, [MEAN], [SD], [CORR])
    new = pd.DataFrame({"days": [1.0, -2.0], "days_se": [0.5, 2.0], "plays": [10.0, 0.0],
                        "plays_se": [1.0, 1.0]}, index=["a", "b"])
    out = model.expected_long_term_effect(new, random_seed=1)
    cov = covariance()
    for label, row in new.iterrows():
        e = np.array([row["days_se"], row["plays_se"]])
        noise = np.outer(e, e) * np.array([[1, noise_corr], [noise_corr, 1]])
        v = cov[:2, :2] + noise
        gain = np.linalg.solve(v, cov[:2, 2])
        mean = MEAN[2] + gain @ (np.array([row["days"], row["plays"]]) - MEAN[:2])
        sd = np.sqrt(cov[2, 2] - gain @ cov[:2, 2])
        assert out.loc[label, "mean"] == pytest.approx(mean, rel=1e-10)
        assert out.loc[label, "sd"] == pytest.approx(sd, rel=1e-10)
        assert out.loc[label, "prob_positive"] == pytest.approx(stats.norm.cdf(mean / sd))
        assert out.loc[label, "ci_lower"] == pytest.approx(mean - 1.96 * sd, abs=0.08 * sd)
    # a noisier estimate is shrunk more towards the mean of past experiments
    # draws: one per posterior draw (this posterior has one), from the conditional normal
    draws = [model.expected_long_term_effect(new, return_draws=True, random_seed=seed)
             for seed in range(400)]
    assert draws[0].dims == ("chain", "draw", "experiment")
    assert draws[0].shape == (1, 1, 2) and list(draws[0]["experiment"].values) == ["a", "b"]
    values = np.concatenate([d.values.reshape(-1, 2) for d in draws])
    np.testing.assert_allclose(values.mean(axis=0), out["mean"], atol=4 * out["sd"].max() / 20)
    np.testing.assert_allclose(values.std(axis=0), out["sd"], rtol=0.15)
    default = model.expected_long_term_effect()
    assert default.index.equals(data.index) and list(default.columns) == [
        "mean", "sd", "ci_lower", "ci_upper", "prob_positive"]


# --------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"candidates": "days"}, "'candidates' .* list of distinct metric names"),
        ({"candidates": ["days", "days"]}, "'candidates'"),
        ({"candidates": ["combination"]}, "other than 'combination'"),
        ({"candidates": ["days"], "outcome": "days"}, "'outcome' .* not a candidate"),
        ({"candidates": ["days", "plays"], "noise_correlation": -0.6},
         r"'noise_correlation' .* number in \(-0.5, 1\)"),
        ({"candidates": ["days"], "noise_correlation": 1.0}, "'noise_correlation'"),
        ({"candidates": ["days"], "noise_correlation": [[1, 0.2], [0.3, 1]]},
         r"2 x 2 positive definite correlation matrix ordered as \['days', 'long_term'\]"),
        ({"candidates": ["days"], "noise_correlation": [[2, 0], [0, 2]]}, "'noise_correlation'"),
        ({"candidates": ["days"], "noise_correlation": "high"}, "'noise_correlation'"),
        ({"candidates": ["days"], "priors": {"eta": Prior("Normal")}}, "no prior named 'eta'"),
    ],
)
def test_parameter_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProxyMetricModel(**kwargs)


def test_history_errors(rng):
    data = history(rng, 40)
    model = ProxyMetricModel(candidates=["days", "plays"])
    with pytest.raises(DataValidationError, match=r"the column\(s\) \['plays_se'\]"):
        model.build_model(data.drop(columns="plays_se"))
    with pytest.raises(DataValidationError, match=r"\['long_term', 'long_term_se'\]"):
        ProxyMetricModel(candidates=["days"]).build_model(data.drop(columns=["long_term",
                                                                          "long_term_se"]))
    bad = data.copy()
    bad.iloc[2, 0] = np.nan
    with pytest.raises(DataValidationError, match="'days': expected finite numbers.*row 2"):
        model.build_model(bad)
    bad = data.assign(days_se=-data["days_se"])
    with pytest.raises(DataValidationError, match="'days_se': expected non-negative standard"):
        model.build_model(bad)
    with pytest.raises(DataValidationError, match="expected at least 15 past experiments for 2 "
                                                  r"candidate\(s\).*got 12"):
        model.build_model(data.iloc[:12])
    with pytest.raises(DataValidationError, match="expected at least 10 past experiments"):
        ProxyMetricModel(candidates=["days"]).build_model(data.iloc[:8])
    with pytest.raises(DataValidationError, match="'plays': expected estimates that vary"):
        model.build_model(data.assign(plays=1.0))
    with pytest.raises(DataValidationError, match="'plays': expected numbers"):
        model.build_model(data.assign(plays="x"))
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        model.build_model(data.to_numpy())


def test_methods_need_a_fit_and_check_options(rng):
    model = ProxyMetricModel(candidates=["days", "plays"])
    with pytest.raises(NotFittedError, match="not fitted yet"):
        model.rank_proxies()
    with pytest.raises(NotFittedError, match="not fitted yet"):
        model.expected_long_term_effect()
    fake_fit(model, history(rng, 40), [MEAN], [SD], [CORR])
    with pytest.raises(ValueError, match="'ci_prob' .* Got 1.5"):
        model.rank_proxies(ci_prob=1.5)
    with pytest.raises(ValueError, match="'max_draws' .* positive integer"):
        model.expected_long_term_effect(max_draws=-1)
    with pytest.raises(DataValidationError, match=r"\['plays_se'\]"):
        model.expected_long_term_effect(pd.DataFrame({"days": [1.0], "days_se": [1.0],
                                                      "plays": [1.0]}))
    assert repr(ProxyMetricModel(candidates=["days"])) == (
        "ProxyMetricModel(candidates=['days'], outcome='long_term', noise_correlation=0.0)")


# --------------------------------------------------------------- fitting


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::models.exceptions.ConvergenceWarning")
def test_fit_save_load_round_trip(tmp_path, rng):
    data = history(rng, 30, metrics=["days", "long_term"], corr=np.array([[1, 0.8], [0.8, 1]]),
                   sd=SD[[0, 2]], se=SE[[0, 2]])
    model = ProxyMetricModel(candidates=["days"], noise_correlation=np.array([[1, 0.2],
                                                                             [0.2, 1]]))
    model.fit(data, draws=100, tune=150, chains=1, random_seed=2)
    assert set(model.summary().index) >= {"mean[days]", "sd[long_term]", "corr_outcome[days]"}
    loaded = ProxyMetricModel.load(model.save(tmp_path / "proxies.nc"))
    assert loaded.noise_correlation == [[1.0, 0.2], [0.2, 1.0]]
    pd.testing.assert_frame_equal(loaded.rank_proxies(), model.rank_proxies())
    pd.testing.assert_frame_equal(loaded.expected_long_term_effect(random_seed=1),
                                  model.expected_long_term_effect(random_seed=1))


@pytest.mark.slow
def test_ranking_prefers_the_noisy_good_proxy_that_raw_correlations_miss():
    rng = np.random.default_rng(41)
    data = history(rng, 120)
    model = ProxyMetricModel(candidates=["days", "plays"]).fit(data, random_seed=3, **FIT)
    assert model.converged_
    table = model.rank_proxies(ci_prob=0.99)
    # the noisy estimates of 'days' hide its stronger link: raw correlations prefer 'plays'
    assert table.loc["plays", "naive_corr"] > table.loc["days", "naive_corr"]
    assert list(table.index) == ["days", "plays", "combination"]
    assert table.loc["days", "prob_best"] > 0.6
    assert table.loc["days", "reliability"] < 0.6 < table.loc["plays", "reliability"]
    cov = covariance()
    weights = np.linalg.solve(cov[:2, :2], cov[:2, 2])
    r2 = {"days": 0.81, "plays": 0.4225, "combination": cov[2, :2] @ weights / cov[2, 2]}
    for name, value in r2.items():
        assert table.loc[name, "r2_ci_lower"] <= value <= table.loc[name, "r2_ci_upper"], name
    for name, value in zip(["days", "plays"], weights, strict=True):
        assert table.loc[name, "weight_ci_lower"] <= value <= table.loc[name, "weight_ci_upper"]
    # predictions from the short-term estimates alone track the long-term estimates
    predicted = model.expected_long_term_effect()
    assert np.corrcoef(predicted["mean"], data["long_term"])[0, 1] > 0.6
