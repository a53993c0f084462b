"""Tables whose users enter in an active period: ``EngagementStateModel(starts_active=True)``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from models.churn import EngagementStateModel, _hmm, gap_check
from models.data import simulate_engagement
from models.exceptions import DataValidationError

INITIAL = (0.4, 0.3, 0.3)


@pytest.fixture(scope="module")
def cohort():
    """The users active in the first week of a simulated service, from then on."""
    activity = simulate_engagement(2000, 12, initial=INITIAL, random_seed=5,
                                   with_events=False).activity
    return activity[activity.iloc[:, 0] > 0]


@pytest.fixture(scope="module")
def conditioned(cohort):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EngagementStateModel(emission="binomial", starts_active=True).fit(
            cohort, method="map", random_seed=0)


def test_conditioning_on_an_active_first_period_recovers_the_initial_states(conditioned):
    # the dormant state is active in a week with probability about 0.13, so most of the
    # service's dormant users are missing from the cohort; without the condition the fit puts
    # almost none in the dormant state first (0.003 where the truth is 0.4)
    initial = conditioned.idata_["posterior"]["initial_probability"].values.reshape(-1)
    np.testing.assert_allclose(initial, INITIAL, atol=0.05)


def test_the_gap_check_replicates_users_who_start_active(conditioned):
    result = gap_check(conditioned, n_replicates=200, random_seed=0)
    assert not result.cannot_reproduce, result.message
    # with user effects, each replicated user's node given an active first period
    model = EngagementStateModel(user_effects=True, starts_active=True)
    model.data_ = conditioned.data_.iloc[:50]
    post = {"emission_probability": (("chain", "draw", "state"), [[[0.02, 0.25, 0.65]] * 4]),
            "emission_concentration": (("chain", "draw", "state"), [[[4.0, 6.0, 9.0]] * 4]),
            "initial_probability": (("chain", "draw", "state"), [[INITIAL] * 4]),
            "sigma_user": (("chain", "draw"), [[1.0] * 4]),
            "transition_probability": (("chain", "draw", "state", "to_state"),
                                       [[[[0.8, 0.15, 0.05], [0.15, 0.7, 0.15],
                                          [0.05, 0.1, 0.85]]] * 4])}
    model.idata_ = xr.DataTree.from_dict({"posterior": xr.Dataset(post)})
    result = gap_check(model, n_replicates=200, random_seed=0)
    assert np.isfinite(result.table["mean"]).all()


def test_a_silent_first_period_is_refused(cohort):
    table = cohort.copy()
    table.iloc[3, 0] = 0.0
    with pytest.raises(DataValidationError, match="active first period") as err:
        EngagementStateModel(starts_active=True).fit(table, method="map")
    assert str(table.index[3]) in str(err.value)
    with pytest.raises(ValueError, match="'starts_active' parameter"):
        EngagementStateModel(starts_active="yes")


def test_by_default_the_fit_conditions_when_every_user_starts_active(cohort, conditioned):
    assert conditioned.starts_active_
    auto = EngagementStateModel()
    assert auto._first_active(cohort)
    simulated = simulate_engagement(300, 6, random_seed=2, with_events=False).activity
    assert not auto._first_active(simulated)  # 14% of these users start silent
    assert not EngagementStateModel(starts_active=False)._first_active(cohort)


def test_the_pointwise_likelihood_is_conditioned_on_the_first_period(cohort):
    data = cohort.iloc[:40]
    post = {"emission_probability": (("chain", "draw", "state"), [[[0.02, 0.25, 0.65]] * 2]),
            "emission_concentration": (("chain", "draw", "state"), [[[4.0, 6.0, 9.0]] * 2]),
            "initial_probability": (("chain", "draw", "state"), [[INITIAL, (0.2, 0.3, 0.5)]]),
            "transition_probability": (("chain", "draw", "state", "to_state"),
                                       [[[[0.8, 0.15, 0.05], [0.15, 0.7, 0.15],
                                          [0.05, 0.1, 0.85]]] * 2])}
    loglik = {}
    for flag in (False, True):
        model = EngagementStateModel(starts_active=flag)
        model.data_ = model._validate_data(data)
        model.idata_ = xr.DataTree.from_dict({"posterior": xr.Dataset(post)})
        loglik[flag] = model._pointwise_log_likelihood(xr.Dataset(post))["activity"]
    table = _hmm.emission_table(np.array([[0.02, 0.25, 0.65]]), np.array([[4.0, 6.0, 9.0]]),
                                7, churned=False)[0]
    for d, initial in enumerate((INITIAL, (0.2, 0.3, 0.5))):
        reach = np.dot(initial, 1 - table[0])  # P(a first period with an active day)
        np.testing.assert_allclose(loglik[True].isel(chain=0, draw=d),
                                   loglik[False].isel(chain=0, draw=d) - np.log(reach),
                                   rtol=1e-12)


def test_replicated_histories_start_active_with_the_conditioned_states():
    initial = np.array([[0.5, 0.3, 0.2]])
    table = _hmm.emission_table(np.array([[0.05, 0.3, 0.7]]), None, 7, churned=False)
    transition = np.tile(np.eye(3), (1, 1, 1))
    rng = np.random.default_rng(0)
    n_users = 20_000
    active = _hmm.sample_history_active(initial, table, transition, 7, np.full(n_users, 3),
                                        rng, first_active=True)
    assert active[:, :, 0].all()
    totals = _hmm.sample_history_totals(initial, table, transition, 7, np.ones(n_users, int),
                                        rng, first_active=True)
    days = np.arange(8.0)
    weight = initial[0] * (1 - table[0, 0])
    exact = (weight * (days[1:] @ table[0, 1:8]) / (1 - table[0, 0])).sum() / weight.sum()
    se = totals.std() / np.sqrt(n_users)
    assert abs(totals.mean() - exact) < 4 * se, (totals.mean(), exact)
    # the default draws the first period as any other, silent ones included
    plain = _hmm.sample_history_active(initial, table, transition, 7, np.full(n_users, 3), rng)
    assert 0.3 < 1 - plain[:, :, 0].mean() < 0.6
    log_reach = _hmm.log_first_active(table[:, None], initial, np.zeros(1))
    np.testing.assert_allclose(log_reach, np.log(weight.sum()), rtol=1e-12)
