"""Predictive distributions of future activity: ``BetaGeoModel.sample_activity``.

The oracle is an independent simulation of the BG/NBD story (exponential gaps, a
coin of probability p after each activity for dropping out), run past the end of
observation: what users really do next is known, and the predictive draws must match it.
"""

import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from models.churn import BetaGeoModel
from models.exceptions import NotFittedError
from models.predict import predictive_summary

_HERE = Path(__file__).resolve()
DATA = next((p / "shared" / "data" for p in (_HERE.parents[3], _HERE.parents[2])
             if (p / "shared" / "data").is_dir()), _HERE.parents[3] / "shared" / "data")
TRUTH = {"r": 0.8, "alpha": 5.0, "a": 0.6, "b": 2.0}


def simulate_process(n, *, r, alpha, a, b, T, horizon, seed):
    """Each user's (frequency, recency) over (0, T] and activities in (T, T + horizon]."""
    rng = np.random.default_rng(seed)
    lam, p = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    t, last = np.zeros(n), np.zeros(n)
    freq, future = np.zeros(n, np.int64), np.zeros(n, np.int64)
    alive = np.ones(n, bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        t[idx] += rng.exponential(1 / lam[idx])
        past_end = t[idx] > T + horizon
        alive[idx[past_end]] = False
        idx = idx[~past_end]
        in_cal = t[idx] <= T
        freq[idx[in_cal]] += 1
        last[idx[in_cal]] = t[idx[in_cal]]
        future[idx[~in_cal]] += 1
        alive[idx[rng.random(idx.size) < p[idx]]] = False
    summary = pd.DataFrame({"frequency": freq, "recency": last, "T": float(T)},
                           index=pd.Index([f"u{i}" for i in range(n)], name="user_id"))
    return summary, pd.Series(future, index=summary.index)


def at_truth(data, draws=200, **truth):
    """A BetaGeoModel whose posterior is ``draws`` copies of the true parameters."""
    model = BetaGeoModel()
    model.data_ = model._validate_data(data)
    values = truth or TRUTH
    model.idata_ = az.from_dict({"posterior": {k: np.full((2, draws // 2), v)
                                               for k, v in values.items()}})
    return model


@pytest.fixture(scope="module")
def data_dir():
    if not DATA.is_dir():
        pytest.skip(f"reference data folder {DATA} is absent")
    return DATA


@pytest.fixture(scope="module")
def process():
    return simulate_process(30_000, **TRUTH, T=40.0, horizon=30.0, seed=7)


def test_draws_follow_the_process_they_model(process):
    data, future = process
    model = at_truth(data)
    draws = model.sample_activity(horizon=30.0, random_seed=1)
    assert isinstance(draws, xr.DataArray) and draws.dims == ("chain", "draw", "user")
    assert draws.shape == (2, 100, len(data)) and draws.dtype == np.int64
    assert list(draws["user"].values[:2]) == ["u0", "u1"] and int(draws.min()) >= 0
    flat = draws.values.reshape(-1, len(data))
    # by calibration frequency: the mean future count and the share with none
    for x in (0, 1, 2, 4, 8):
        group = (data["frequency"] == x).to_numpy()
        actual = future[group].to_numpy()
        se = actual.std() / np.sqrt(group.sum()) + 1e-9
        assert abs(flat[:, group].mean() - actual.mean()) < 4 * se + 0.01, x
        assert abs((flat[:, group] == 0).mean() - (actual == 0).mean()) < 0.03, x
    # the predictive mean is the expected activity (the closed form)
    expected = model.expected_activity(horizon=30.0)["mean"].to_numpy()
    assert np.abs(flat.mean(axis=0) - expected).mean() < 0.1
    assert abs(flat.mean() - expected.mean()) < 0.01


def test_summary_is_a_predictive_interval_of_counts(process):
    data, future = process
    data, future = data.iloc[:5000], future.iloc[:5000]
    model = at_truth(data)
    summary = predictive_summary(model.sample_activity(horizon=30.0, random_seed=3), ci_prob=0.9)
    assert list(summary.columns) == ["mean", "sd", "ci_lower", "ci_upper"]
    assert summary.index.equals(data.index) and summary.attrs["ci_prob"] == 0.9
    assert summary["ci_lower"].dtype == np.int64 and (summary["ci_lower"] <= summary["ci_upper"]).all()
    inside = (summary["ci_lower"] <= future) & (future <= summary["ci_upper"])
    assert inside.mean() >= 0.9  # at least the nominal mass: counts are discrete
    # the interval of the count is far wider than that of its expectation
    expected = model.expected_activity(horizon=30.0, ci_prob=0.9)
    assert (summary["ci_upper"] - summary["ci_lower"]).mean() > 3 * (
        expected["ci_upper"] - expected["ci_lower"]).mean()


def test_same_seed_same_draws_and_errors(process):
    data, _ = process
    model = at_truth(data.iloc[:300])
    one = model.sample_activity(horizon=10, random_seed=5)
    xr.testing.assert_equal(one, model.sample_activity(horizon=10, random_seed=5))
    assert not one.equals(model.sample_activity(horizon=10, random_seed=6))
    assert model.sample_activity(horizon=10, max_draws=20, random_seed=1).shape == (1, 20, 300)
    # identical histories get independent draws (no sharing of the unique-row shortcut)
    twins = pd.DataFrame({"frequency": [3] * 400, "recency": 20.0, "T": 40.0})
    draws = at_truth(twins).sample_activity(twins, horizon=30, random_seed=0)
    assert np.corrcoef(draws.values.reshape(-1, 400)[:, :2].T)[0, 1] < 0.3
    with pytest.raises(ValueError, match=r"'horizon' parameter of BetaGeoModel.sample_activity "
                       r"must be a positive number. Got 0"):
        model.sample_activity(horizon=0)
    with pytest.raises(ValueError, match=r"'max_draws' parameter of BetaGeoModel.sample_activ"):
        model.sample_activity(horizon=5, max_draws=0)
    with pytest.raises(ValueError, match=r"'ci_prob' parameter of predictive_summary"):
        predictive_summary(one, ci_prob=2)
    with pytest.raises(NotFittedError):
        BetaGeoModel().sample_activity(horizon=5)


@pytest.mark.slow
def test_fitted_intervals_cover_like_the_truths_intervals():
    """90% predictive intervals after a NUTS fit cover >= 88% of users, and not much more
    than intervals drawn from the true parameters (both can exceed 90%: counts are discrete)."""
    data, future = simulate_process(1500, **TRUTH, T=40.0, horizon=40.0, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BetaGeoModel().fit(data, draws=500, tune=1000, chains=2, cores=1, random_seed=2)
    assert model.converged_, model.diagnostics()

    def coverage(m):
        s = predictive_summary(m.sample_activity(horizon=40.0, random_seed=4), ci_prob=0.9)
        return float(((s["ci_lower"] <= future) & (future <= s["ci_upper"])).mean())

    fitted, oracle = coverage(model), coverage(at_truth(data, draws=1000))
    assert fitted >= 0.88
    assert fitted <= oracle + 0.03, (fitted, oracle)


@pytest.mark.data
@pytest.mark.slow
def test_cdnow_predictive_intervals_cover_the_holdout(data_dir):
    """CDNOW: calibration weeks 1-39, holdout weeks 40-78; 90% intervals cover >= 85%."""
    sample = pd.read_csv(data_dir / "cdnow" / "CDNOW_sample.txt", sep=r"\s+", header=None,
                         names=["master", "id", "date", "cds", "value"])
    sample["date"] = pd.to_datetime(sample["date"].astype(str), format="%Y%m%d")
    summary = pd.read_csv(data_dir / "cdnow" / "cdnow_customers_summary.csv", index_col="ID")
    days = sample[["id", "date"]].drop_duplicates()
    end = pd.Timestamp("1997-09-30")
    holdout = (days[days["date"] > end].groupby("id").size()
               .reindex(summary.index, fill_value=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BetaGeoModel().fit(summary, draws=500, tune=1000, chains=2, cores=1,
                                   random_seed=1)
    s = predictive_summary(model.sample_activity(horizon=39.0, random_seed=0), ci_prob=0.9)
    inside = (s["ci_lower"] <= holdout) & (holdout <= s["ci_upper"])
    assert inside.mean() >= 0.85, inside.mean()
    # and the predictive mean follows the holdout on average
    assert abs(s["mean"].sum() - holdout.sum()) / holdout.sum() < 0.15


def test_bgbb_draws_follow_the_process_they_model():
    """BG/BB: a survival coin before each opportunity, a p-coin at each opportunity alive."""
    from models.churn import BetaGeoBetaBinomModel

    truth = {"alpha": 1.2, "beta": 0.8, "gamma": 0.7, "delta": 2.5}
    rng = np.random.default_rng(0)
    n_users, n, horizon = 20_000, 6, 5
    p = rng.beta(truth["alpha"], truth["beta"], n_users)
    theta = rng.beta(truth["gamma"], truth["delta"], n_users)
    alive = np.ones(n_users, bool)
    x, t_x, future = (np.zeros(n_users, np.int64) for _ in range(3))
    for k in range(1, n + horizon + 1):
        alive &= rng.random(n_users) >= theta
        active = alive & (rng.random(n_users) < p)
        if k <= n:
            x += active
            t_x = np.where(active, k, t_x)
        else:
            future += active
    data = pd.DataFrame({"frequency": x, "recency": t_x, "n": n})
    model = BetaGeoBetaBinomModel()
    model.data_ = model._validate_data(data)
    model._build_model(model.data_)
    model.idata_ = az.from_dict({"posterior": {k: np.full((2, 50), v) for k, v in truth.items()}})
    draws = model.sample_activity(horizon=horizon, random_seed=1)
    assert draws.dims == ("chain", "draw", "user") and draws.dtype == np.int64
    assert int(draws.max()) <= horizon and int(draws.min()) >= 0
    flat = draws.values.reshape(-1, n_users)
    for value in range(n + 1):
        group = x == value
        se = future[group].std() / np.sqrt(group.sum()) + 1e-9
        assert abs(flat[:, group].mean() - future[group].mean()) < 4 * se + 0.01, value
        assert abs((flat[:, group] == 0).mean() - (future[group] == 0).mean()) < 0.03, value
    expected = model.expected_activity(horizon=horizon)["mean"].to_numpy()
    assert abs(flat.mean() - expected.mean()) < 0.01
    with pytest.raises(ValueError, match="'horizon'"):
        model.sample_activity(horizon=0)
