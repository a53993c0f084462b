"""Long horizons, empty selections and uninformative tables of the engagement-state model."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from models.churn import EngagementStateModel, _hmm
from models.data import simulate_engagement
from models.exceptions import DataQualityWarning, UninformativeDataWarning


@pytest.fixture(scope="module")
def fitted() -> EngagementStateModel:
    activity = simulate_engagement(200, 12, random_seed=1).activity
    return EngagementStateModel().fit(activity, method="map", random_seed=1)


@pytest.mark.parametrize("shared", [True, False])
def test_long_horizons_by_squaring_equal_the_period_by_period_projection(shared):
    rng = np.random.default_rng(0)
    n_draws, n_users, c = 3, 5, 4
    filtered = rng.dirichlet(np.ones(c), size=(n_draws, n_users))
    transition = rng.dirichlet(np.ones(c), size=(n_draws, 1 if shared else n_users, c))
    weight, last = rng.random((n_draws, c)), rng.random((n_draws, c))
    for periods in (1, 2, 3, 7, 64, 100, 257):
        for partial in (False, True):
            for expect in (False, True):
                step = _hmm._project(filtered, transition, weight, last, periods, partial, expect)
                squared = _hmm._project_long(filtered, transition, weight, last, periods,
                                             partial, expect)
                np.testing.assert_allclose(squared, step, rtol=1e-10, atol=1e-300)


def test_the_model_forecasts_long_horizons_as_period_by_period(fitted, monkeypatch):
    horizon = 100 + 3 / 7  # beyond the stepwise limit, ending within a period
    squared = {m: getattr(fitted, m)(horizon=horizon)["mean"]
               for m in ("probability_active", "expected_activity")}
    monkeypatch.setattr(_hmm, "STEPWISE_MAX_PERIODS", 10_000)
    for method, values in squared.items():
        step = getattr(fitted, method)(horizon=horizon)["mean"]
        np.testing.assert_allclose(values, step, rtol=1e-9)
    # a billion periods: answered at once; nobody is certain to come back, and the expected
    # activity of a churned-state model is finite
    far = fitted.probability_active(horizon=1e9)["mean"]
    assert ((far >= squared["probability_active"] - 1e-12) & (far <= 1)).all()
    expected = fitted.expected_activity(horizon=1e9)["mean"]
    assert np.isfinite(expected).all() and (expected >= squared["expected_activity"]).all()


def test_sampled_paths_refuse_horizons_beyond_100_years(fitted):
    with pytest.raises(ValueError, match="at most 36,525 days"):
        fitted.sample_activity(horizon=5218, random_seed=0)  # 5,218 weeks: 36,526 days
    assert fitted.sample_activity(fitted.data_.iloc[:3], horizon=2,
                                  random_seed=0).sizes["user"] == 3


def test_probability_of_return_without_dormant_users_is_empty(fitted):
    states = fitted.probability_states()["mean"].to_numpy().reshape(len(fitted.data_), -1)
    engaged = fitted.data_.iloc[np.flatnonzero(states.argmax(axis=1) == states.shape[1] - 2)]
    assert len(engaged)  # the most active state, below the churned one
    frame = fitted.probability_return(engaged, horizon=4)
    assert len(frame) == 0 and list(frame.columns) == list(
        fitted.probability_active(engaged.iloc[:1], horizon=4).columns)
    draws = fitted.probability_return(engaged, horizon=4, return_draws=True)
    assert draws.sizes["user"] == 0
    some = fitted.probability_return(horizon=4)
    assert 0 < len(some) < len(fitted.data_)


def test_tables_that_cannot_inform_the_model_warn(fitted):
    rng = np.random.default_rng(2)
    one_period = pd.DataFrame({"w0": rng.integers(0, 8, 50).astype(float)},
                              index=pd.Index([f"u{i}" for i in range(50)], name="user_id"))
    with pytest.warns(UninformativeDataWarning, match="two observed periods"):
        EngagementStateModel().fit(one_period, method="map", random_seed=0)
    silent = pd.DataFrame(np.zeros((20, 4)), columns=[f"w{i}" for i in range(4)],
                          index=pd.Index([f"u{i}" for i in range(20)], name="user_id"))
    with pytest.warns(UninformativeDataWarning, match="active in any period"):
        EngagementStateModel()._warn_uninformative(silent)
    with warnings.catch_warnings():  # the simulated users' table informs both
        warnings.simplefilter("error", UninformativeDataWarning)
        EngagementStateModel()._warn_uninformative(fitted.data_)


def test_covariates_far_outside_the_training_users_warn():
    activity = simulate_engagement(120, 6, random_seed=4).activity
    activity["age"] = np.random.default_rng(4).normal(30, 8, len(activity))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = EngagementStateModel(covariates=["age"]).fit(activity, method="map",
                                                             random_seed=0)
    new = activity.iloc[:3].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        model.probability_active(new, horizon=2)  # the training users' own values
    new.iloc[1, new.columns.get_loc("age")] = 30_000.0  # days, not years
    with pytest.warns(DataQualityWarning, match=r"'age' in 1 row\(s\), first: row 1"):
        model.probability_active(new, horizon=2)
