"""Tests of PlayCountModel(user_effect="gamma"): the collapsed likelihood, user draws, recovery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from models.listening import PlayCountModel
from models.listening.gamma_users import compress_users

DOW = np.array([-0.1, -0.1, -0.05, 0.0, 0.05, 0.15, 0.05])
COUNTRY = {"BR": -0.2, "SE": 0.2, "US": 0.0}
PLAN = {"free": -0.25, "premium": 0.25}
SEGMENTS = ("country", "plan")  # the simulated users' segments, opted into


def simulate_gamma_users(n_users, n_days, *, intercept=1.0, shape=1.5, seed=0):
    """Draw from the Gamma-Poisson process: Gamma(shape, mean 1) user rates, Poisson days."""
    rng = np.random.default_rng(seed)
    c = rng.choice(list(COUNTRY), n_users)
    p = rng.choice(list(PLAN), n_users)
    log_m = intercept + pd.Series(c).map(COUNTRY).to_numpy() + pd.Series(p).map(PLAN).to_numpy()
    lam = rng.gamma(shape, 1.0 / shape, n_users)
    days = pd.date_range("2025-01-06", periods=n_days, freq="D")
    y = rng.poisson(lam[:, None] * np.exp(log_m[:, None] + DOW[days.day_of_week.to_numpy()]))
    ids = np.array([f"u{i:04d}" for i in range(n_users)], dtype=object)
    return pd.DataFrame({"user_id": np.repeat(ids, n_days), "period_start": np.tile(days, n_users),
                         "country": np.repeat(c, n_days), "plan": np.repeat(p, n_days),
                         "plays": y.ravel()})


def _potential(model, point):
    fn = model.compile_fn(model.replace_rvs_by_values([model.potentials[0]])[0],
                          inputs=model.value_vars, on_unused_input="ignore", mode="FAST_COMPILE")
    return float(fn(point))


def _integrated_loglik(data, v):
    """Sum over users of log of the integral over the user rate, by quadrature."""
    k = float(v["user_shape"])
    total = 0.0
    for _, rows in data.groupby("user_id"):
        log_m = (v["intercept"] + v["country_effect"][sorted(COUNTRY).index(rows["country"].iloc[0])]
                 + v["plan_effect"][sorted(PLAN).index(rows["plan"].iloc[0])])
        eta = log_m + v["day_of_week_effect"][rows["period_start"].dt.day_of_week.to_numpy()]
        y = rows["plays"].to_numpy()

        def integrand(lam, eta=eta, y=y):
            return np.exp(stats.gamma.logpdf(lam, k, scale=1 / k)
                          + stats.poisson.logpmf(y, lam * np.exp(eta)).sum())

        value, _ = integrate.quad(integrand, 0, np.inf, limit=200, epsabs=0, epsrel=1e-11)
        total += np.log(value)
    return total


# ----------------------------------------------------------------- exact math
def test_collapsed_loglik_equals_quadrature_over_the_user_rate(model_values, random_point):
    data = simulate_gamma_users(12, 10, seed=4)
    m = PlayCountModel(groups=SEGMENTS, user_effect="gamma", likelihood="poisson")
    model = m._build_model(m._validate_data(data))
    assert "user_log_rate" not in model.named_vars and "user_z" not in model.named_vars
    point = random_point(model, 3)
    v = model_values(model, ["intercept", "country_effect", "plan_effect",
                             "day_of_week_effect", "user_shape"], point)
    assert _potential(model, point) == pytest.approx(_integrated_loglik(data, v), rel=1e-8)


def test_users_with_equal_statistics_share_a_row_and_nothing_is_lost():
    data = simulate_gamma_users(400, 14, intercept=-0.5, seed=5)
    m = PlayCountModel(groups=SEGMENTS, user_effect="gamma", likelihood="poisson")
    clean = m._validate_data(data)
    grid = m._grid(clean)
    first = np.unique(pd.factorize(clean["user_id"], sort=True)[0], return_index=True)[1]
    rows = compress_users(m._user_group_codes(clean, first), grid["n"], grid["plays"])
    assert len(rows.weight) < 200  # light users repeat
    assert rows.weight.sum() == 400
    assert (rows.weight * rows.total).sum() == data["plays"].sum()
    assert (rows.weight[:, None] * rows.n).sum() == len(data)


def test_covariate_path_equals_compressed_path(random_point):
    """With covariates users are not compressed; a zero-effect covariate gives the same value."""
    data = simulate_gamma_users(30, 14, seed=6)
    data = data.assign(promo=np.random.default_rng(1).normal(size=len(data)))
    plain = PlayCountModel(groups=SEGMENTS, user_effect="gamma", likelihood="poisson", trend=True)
    with_x = PlayCountModel(groups=SEGMENTS, user_effect="gamma", likelihood="poisson", trend=True,
                            covariates=("promo",))
    m0 = plain._build_model(plain._validate_data(data))
    m1 = with_x._build_model(with_x._validate_data(data))
    point = random_point(m0, 2)
    point1 = {**point, "beta": np.zeros(1)}
    assert _potential(m1, point1) == pytest.approx(_potential(m0, point), rel=1e-10)
    point1["beta"] = np.array([0.3])
    assert _potential(m1, point1) != pytest.approx(_potential(m0, point), rel=1e-6)


def test_user_draws_follow_the_conjugate_conditional():
    data = simulate_gamma_users(50, 14, seed=7)
    m = PlayCountModel(groups=SEGMENTS, user_effect="gamma", likelihood="poisson")
    m.data_ = m._validate_data(data)
    d = 20_000
    p = {"intercept": np.full(d, 1.1), "country_effect": np.tile([-0.2, 0.2, 0.0], (d, 1)),
         "plan_effect": np.tile([-0.25, 0.25], (d, 1)), "user_shape": np.full(d, 2.0),
         "day_of_week_effect": np.tile(DOW - DOW.mean(), (d, 1))}
    users = np.array([0, 7, 31])
    draws = np.exp(m._gamma_user_log_rate(p, users, np.random.default_rng(0)))
    first = m.data_.drop_duplicates("user_id")
    for j, u in enumerate(users):
        rows = m.data_[m.data_["user_id"] == first["user_id"].iloc[u]]
        log_m = 1.1 + COUNTRY[rows["country"].iloc[0]] + PLAN[rows["plan"].iloc[0]]
        exposure = np.exp((DOW - DOW.mean())[rows["period_start"].dt.day_of_week]).sum()
        shape, rate = 2.0 + rows["plays"].sum(), 2.0 / np.exp(log_m) + exposure
        assert draws[:, j].mean() == pytest.approx(shape / rate, rel=0.02)
        assert draws[:, j].var() == pytest.approx(shape / rate**2, rel=0.05)


def test_gamma_users_need_the_poisson_likelihood():
    with pytest.raises(ValueError, match=r"'user_effect'.*'gamma'.*likelihood='poisson'.*negbin"):
        PlayCountModel(user_effect="gamma")
    with pytest.raises(ValueError, match=r"'user_effect' parameter of PlayCountModel.*'normal'"):
        PlayCountModel(user_effect="normal")


# ----------------------------------------------------------------- fits
def test_fit_predictions_and_save_load(tmp_path):
    data = simulate_gamma_users(300, 14, seed=8)
    m = PlayCountModel(groups=SEGMENTS, user_effect="gamma", likelihood="poisson").fit(
        data, draws=1000, tune=500, chains=2, cores=1, random_seed=1)
    assert m.fit_report_.verdict == "pass"
    assert "user_shape" in m.summary().index and "sigma_user" not in m.summary().index
    assert m.posterior_draws("intercept").sizes["draw"] == 1000
    e = m.expected_plays(data.iloc[:28], random_seed=2)
    assert (e["ci_lower"] < e["mean"]).all() and (e["mean"] < e["ci_upper"]).all()
    again = m.expected_plays(data.iloc[:28], random_seed=2)
    pd.testing.assert_frame_equal(e, again)
    new = m.expected_plays_new_user(segment={"country": "SE", "plan": "free"},
                                   random_seed=1)
    assert (new["sd"] > e["sd"].max()).all()  # a new user is far less certain than a known one
    ratio = m.segment_contrast("plan", "premium", "free")
    assert (ratio.loc["premium/free", "ci_lower"] < np.exp(0.5)
            < ratio.loc["premium/free", "ci_upper"])
    loaded = PlayCountModel.load(m.save(tmp_path / "gamma.nc"))
    pd.testing.assert_frame_equal(loaded.expected_plays(data.iloc[:28], random_seed=2), e)


@pytest.mark.slow
def test_interval_coverage_over_repeated_simulations():
    """90% intervals of the population parameters cover the truth at about the nominal rate."""
    truth = {"intercept": 1.0 + np.mean(list(COUNTRY.values())) + np.mean(list(PLAN.values())),
             "user_shape": 1.5, "saturday": DOW[5] - DOW.mean()}
    hits, n_sims = {k: 0 for k in truth}, 10
    for seed in range(n_sims):
        data = simulate_gamma_users(600, 14, seed=100 + seed)
        m = PlayCountModel(groups=SEGMENTS, user_effect="gamma", likelihood="poisson").fit(
            data, draws=400, tune=400, chains=2, cores=1, random_seed=seed)
        post = m.idata_["posterior"]
        values = {"intercept": post["intercept"].values.ravel(),
                  "user_shape": post["user_shape"].values.ravel(),
                  "saturday": post["day_of_week_effect"].values[..., 5].ravel()}
        for k, v in values.items():
            lo, hi = np.quantile(v, [0.05, 0.95])
            hits[k] += lo <= truth[k] <= hi
    for k, h in hits.items():  # 10 draws at p = 0.9: P(fewer than 7 hits) = 0.013
        assert h >= 7, (k, h)
