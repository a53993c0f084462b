"""PlayCountModel.sample_plays: predictive draws of known users' future plays."""

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from models.exceptions import ConvergenceWarning, DataValidationError, NotFittedError
from models.listening import PlayCountModel
from models.listening._play_count_predictions import future_periods, period_spacing
from models.predict import predictive_summary

DOW = np.array([-0.1, -0.1, -0.05, 0.0, 0.05, 0.15, 0.05])


def simulate(n_users, n_days, *, intercept=1.0, sigma_user=0.7, alpha=2.0, seed=0):
    """Plays from PlayCountModel's process (no segments), with the true user log-rates."""
    rng = np.random.default_rng(seed)
    theta = intercept + sigma_user * rng.normal(size=n_users)
    days = pd.date_range("2025-01-06", periods=n_days, freq="D")
    mu = np.exp(theta[:, None] + DOW[days.day_of_week.to_numpy()][None, :])
    y = rng.poisson(rng.gamma(alpha, mu / alpha))
    ids = np.array([f"u{i:04d}" for i in range(n_users)], dtype=object)
    frame = pd.DataFrame({"user_id": np.repeat(ids, n_days),
                          "period_start": np.tile(days, n_users), "plays": y.ravel()})
    return frame, theta


def _fit(data, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return PlayCountModel(**options).fit(data, draws=150, tune=150, chains=2, cores=1,
                                             random_seed=1)


@pytest.fixture(scope="module")
def split():
    frame, theta = simulate(80, 28, seed=5)
    train = frame[frame["period_start"] < pd.Timestamp("2025-01-27")]
    future = frame[frame["period_start"] >= pd.Timestamp("2025-01-27")]
    return train, future, theta


@pytest.fixture(scope="module")
def fitted(split):
    return _fit(split[0])


def test_draws_are_integers_per_user_and_their_mean_is_the_expected_plays(fitted, split):
    draws = fitted.sample_plays(horizon=7, max_draws=200, random_seed=2)
    assert isinstance(draws, xr.DataArray) and draws.dims == ("chain", "draw", "user")
    assert draws.sizes == {"chain": 1, "draw": 200, "user": 80}
    assert np.issubdtype(draws.dtype, np.integer) and int(draws.min()) >= 0
    assert list(draws["user"].values) == sorted(split[0]["user_id"].unique())
    # the same seed, the same draws; the mean over draws is the expected plays summed over
    # the 7 future days (Monte Carlo error of a mean of 200 NB totals: a few percent)
    same = fitted.sample_plays(horizon=7, max_draws=200, random_seed=2)
    xr.testing.assert_equal(draws, same)
    rows = split[1][["user_id", "period_start"]]
    expected = (fitted.expected_plays(rows, max_draws=200, random_seed=2)
                .groupby("user_id")["mean"].sum())
    mean = draws.mean(("chain", "draw")).to_series()
    assert abs(mean.sum() / expected.sum() - 1) < 0.03
    np.testing.assert_allclose(mean, expected.loc[mean.index], rtol=0.35, atol=2.0)
    # a subset of users, in sorted order; their draws are a slice of everyone's
    some = fitted.sample_plays(split[0].iloc[[40, 0, 41]], horizon=7, max_draws=200,
                               random_seed=2)
    assert list(some["user"].values) == ["u0000", "u0001"]


@pytest.mark.slow
def test_predictive_intervals_cover_the_future_plays(fitted, split):
    """90% predictive intervals of each user's plays in the next 7 days cover about 90% of
    users, and not much more than intervals from the true parameters do (discrete counts)."""
    train, future, theta = split
    actual = future.groupby("user_id")["plays"].sum()
    summary = predictive_summary(fitted.sample_plays(horizon=7, random_seed=3), ci_prob=0.9)
    covered = ((summary["ci_lower"] <= actual) & (actual <= summary["ci_upper"])).mean()
    rng = np.random.default_rng(0)
    mu = np.exp(theta[:, None] + DOW[np.arange(7)][None, :])  # the 7 days start on a Monday
    oracle = rng.poisson(rng.gamma(2.0, mu[None] / 2.0, size=(4000, *mu.shape))).sum(axis=2)
    lo, hi = np.quantile(oracle, [0.05, 0.95], axis=0)
    oracle_covered = ((lo <= actual.to_numpy()) & (actual.to_numpy() <= hi)).mean()
    low = stats.binom.ppf(0.01, len(actual), 0.9) / len(actual)
    assert covered >= min(low, 0.88), (covered, oracle_covered)
    assert covered <= oracle_covered + 0.08, (covered, oracle_covered)


def test_gamma_users_and_weekly_periods():
    frame, _ = simulate(30, 56, seed=2)
    weekly = (frame.assign(period_start=frame["period_start"].dt.to_period("W").dt.start_time)
              .groupby(["user_id", "period_start"], as_index=False)["plays"].sum())
    model = _fit(weekly, period_effects=(), user_effect="gamma", likelihood="poisson")
    assert period_spacing(model.data_["period_start"]) == pd.Timedelta(days=7)
    periods = future_periods(model, 3)["period_start"]
    assert list(periods) == list(pd.date_range("2025-03-03", periods=3, freq="7D"))
    draws = model.sample_plays(horizon=3, max_draws=200, random_seed=0)
    per_week = weekly.groupby("user_id")["plays"].mean()
    ratio = draws.mean(("chain", "draw")).to_series() / (3 * per_week)
    assert 0.8 < ratio.median() < 1.25


def test_errors(fitted, split):
    with pytest.raises(NotFittedError):
        PlayCountModel().sample_plays(horizon=7)
    with pytest.raises(ValueError, match="'horizon' parameter of PlayCountModel.sample_plays"):
        fitted.sample_plays(horizon=0)
    with pytest.raises(DataValidationError, match=r"column 'user_id': expected users of the "
                                                  r"training data.*row 1 \('nobody'\)"):
        fitted.sample_plays(pd.DataFrame({"user_id": ["u0000", "nobody"]}), horizon=7)
    with pytest.raises(DataValidationError, match="column 'user_id'"):
        fitted.sample_plays(pd.DataFrame({"id": ["u0000"]}), horizon=7)
