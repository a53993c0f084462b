"""Tests of models.churn.gaps: the predictive check of gaps between active periods."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from models.churn import BetaGeoModel, EngagementStateModel
from models.churn.gaps import (
    GAP_EDGES,
    HistoryTooShortError,
    _gap_statistics,
    _min_replicates,
    _replicate_bgnbd,
    gap_check,
    observed_gaps,
)
from models.data import simulate_engagement, summarize_activity
from models.exceptions import ConvergenceWarning, DataQualityWarning

START = pd.Timestamp("2024-01-01")


def test_observed_gaps_of_a_tiny_log():
    events = pd.DataFrame({"user_id": ["a", "a", "a", "a", "b"],
                           "timestamp": START + pd.to_timedelta([0, 0.5, 1, 5, 3], unit="D")})
    out = observed_gaps(events, observation_end=START + pd.Timedelta(days=9))
    assert out.loc["a", "active"] == (0, 1, 5) and out.loc["a", "longest_gap"] == 4
    assert out.loc["a", "T"] == 9 and out.loc["b", "T"] == 6 and out.loc["b", "n_active"] == 1
    with pytest.raises(ValueError, match="1 event\\(s\\) after observation_end"):
        observed_gaps(events, observation_end=START + pd.Timedelta(days=4))
    with pytest.raises(ValueError, match="'period' parameter of observed_gaps"):
        observed_gaps(events, period="H")
    with pytest.raises(ValueError, match="columns \\['timestamp'\\]"):
        observed_gaps(events[["user_id"]])


def test_gap_statistics_count_exactly():
    active = np.zeros((1, 3, 40), dtype=bool)
    active[0, 0, [0, 1, 2, 35]] = True   # gaps 1, 1, 33
    active[0, 1, [0, 5]] = True          # gap 5
    active[0, 2, 0] = True               # no gap
    stats = _gap_statistics(active, GAP_EDGES, heavy=4, long=31)[0]
    np.testing.assert_allclose(stats[:4], [0.5, 0.25, 0.0, 0.25])
    assert stats[4] == 1  # user 0: 4 active periods and a gap of 33


def test_replicates_follow_the_bgnbd_story():
    """No dropout and a known rate: transactions seen as active periods, as the log shows them."""
    rng = np.random.default_rng(0)
    params = np.array([[[4000.0, 1000.0, 1e-6, 1e6]]])  # lambda ~ 4 +- 0.06, p ~ 1e-12
    stats = _replicate_bgnbd(params.repeat(3, axis=0), np.full(50, 400), GAP_EDGES, 20, 31, rng)
    # 4 transactions a period: nearly every period active, gaps of 1 (P(idle) = exp(-4))
    assert (stats[:, 0] > 0.95).all() and (stats[:, 0] + stats[:, 1] > 0.9999).all()
    assert (stats[:, -1] == 0).all()
    slow = np.array([[[4000.0, 4000.0 * 20, 1e-6, 1e6]]])  # a gap every 20 periods on average
    # observed for long (T = 20,000), so the few gaps cut at T do not matter
    stats = _replicate_bgnbd(slow.repeat(20, axis=0), np.full(20, 20_000), GAP_EDGES, 1, 31, rng)
    # between active periods the gap in periods is geometric: P(gap > k) = exp(-k / 20)
    # (almost exactly: two transactions in one period are rare at this rate)
    expected = [1 - np.exp(-1 / 20), np.exp(-1 / 20) - np.exp(-7 / 20),
                np.exp(-7 / 20) - np.exp(-30 / 20), np.exp(-30 / 20)]
    np.testing.assert_allclose(stats[:, :4].mean(axis=0), expected, atol=0.01)


def test_replicated_users_never_drop_out_before_their_first_repeat_transaction():
    """BG/NBD's dropout follows repeat transactions: with p ~ 1 each user makes exactly one."""
    rng = np.random.default_rng(1)
    params = np.array([[[5000.0, 10_000.0, 1e6, 1e-6]]])  # lambda ~ 0.5, p ~ 1
    stats = _replicate_bgnbd(params.repeat(4, axis=0), np.full(2000, 100), GAP_EDGES, 2, 1, rng)
    # a user is a "returner" (2 active periods, a gap >= 1) when the one repeat transaction
    # falls in a later period than the first, within T: P(1 <= t <= 100) = exp(-0.5)
    np.testing.assert_allclose(stats[:, -1] / 2000, np.exp(-0.5), atol=0.04)


def _events_from(active, T):
    user, t = np.nonzero(active)
    first = np.max(T) - T  # users start at different days, all observed to the same end
    return pd.DataFrame({"user_id": [f"u{u:03d}" for u in user],
                         "timestamp": START + pd.to_timedelta(first[user] + t, unit="D")})


def _bgnbd_days(rng, T, r, alpha, a, b):
    """Active days of users from the continuous-time BG/NBD process (transactions floored)."""
    active = np.zeros((T.size, int(T.max()) + 1), dtype=bool)
    lam, p = rng.gamma(r, 1 / alpha, T.size), rng.beta(a, b, T.size)
    for u in range(T.size):
        t = 0.0
        active[u, 0] = True
        while True:
            t += rng.exponential(1 / lam[u])
            if t > T[u]:
                break
            active[u, int(t)] = True
            if rng.uniform() < p[u]:  # dropout after a repeat transaction, never before one
                break
    return active


def _fit(events, end):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BetaGeoModel().fit(summarize_activity(events, observation_end=end), draws=150,
                                  tune=150, chains=2, cores=1, random_seed=1)


@pytest.mark.slow
def test_data_from_the_models_story_pass_and_pauses_fail():
    rng = np.random.default_rng(4)
    n = 250
    T = rng.integers(200, 365, n)
    end = START + pd.Timedelta(days=int(T.max()), hours=23)
    # about one transaction in 15 days, dropout ~ 0.11 after each; at this rate two in one
    # day are rare, so the log's days are the model's transactions
    events = _events_from(_bgnbd_days(rng, T, 0.8, 12.0, 1.0, 8.0), T)
    model = _fit(events, end)
    check = gap_check(model, events, observation_end=end, n_replicates=400, random_seed=0)
    assert not check.cannot_reproduce, check.table
    assert "consistent" in check.message
    # Heavy listeners who pause for 40 days and come back: BG/NBD has no such users.
    active = rng.uniform(size=(n, int(T.max()) + 1)) < 0.6
    active[:, 0] = True
    for u in range(n):
        stop = rng.integers(20, 50)
        active[u, stop:stop + 40] = False
        active[u, T[u] + 1:] = False
    paused = _events_from(active, T)
    check = gap_check(_fit(paused, end), paused, observation_end=end, n_replicates=400,
                      random_seed=0)
    assert check.cannot_reproduce
    returns = check.table.iloc[-1]
    assert returns["observed"] > returns["ci_upper"]
    assert "cannot reproduce" in check.message and "GapCheck" in check._repr_html_()


def test_gap_check_refuses_what_it_cannot_replicate():
    from models.churn import ShiftedBetaGeoModel

    events = pd.DataFrame({"user_id": ["a"], "timestamp": [START]})
    with pytest.raises(ValueError, match="replicates a BetaGeoModel or an EngagementStateModel. "
                       "Got ShiftedBetaGeoModel"):
        gap_check(ShiftedBetaGeoModel(), events)
    with pytest.raises(Exception, match="fit"):
        gap_check(BetaGeoModel(), events)


# users who pause and come back, and some who leave for good: the engagement model's story
PAUSING = {"initial": (0.1, 0.4, 0.5, 0.0),
           "transition": ((0.80, 0.12, 0.03, 0.05), (0.15, 0.70, 0.13, 0.02),
                          (0.05, 0.10, 0.84, 0.01), (0, 0, 0, 1)),
           "emission_probability": (0.02, 0.25, 0.65, 0.0),
           "emission_concentration": (2, 5, 8, 1)}


def _fit_states(model, table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(table, draws=200, tune=200, chains=2, cores=1, sampler="nutpie",
                         random_seed=1)


def _returners_by_hand(table, heavy, long):
    """Users with at least ``heavy`` active periods and a gap of at least ``long`` between two."""
    count = 0
    for row in table.to_numpy(float):
        active = np.flatnonzero(np.nan_to_num(row) > 0)
        count += len(active) >= heavy and len(active) > 1 and np.diff(active).max() >= long
    return count


@pytest.mark.slow
def test_engagement_model_reproduces_pauses_and_a_model_of_steady_users_does_not():
    """The engagement model's replicates of its own story pass; a model fitted to users who never
    pause, checked against users who do, fails on the heavy users' returns."""
    pausing = simulate_engagement(300, 30, max_join=8, random_seed=3, **PAUSING).activity
    model = _fit_states(EngagementStateModel(churn_state=True), pausing)
    check = gap_check(model, n_replicates=400, random_seed=0)
    assert not check.cannot_reproduce, check.table
    assert "consistent" in check.message
    returns = check.table.iloc[-1]
    assert returns.name == "heavy users (>= 10 active) returning after >= 5 silent"  # weeks
    assert returns["observed"] == _returners_by_hand(pausing, 10, 5) > 20
    steady = simulate_engagement(
        300, 30, initial=(0.0, 0.3, 0.7), transition=((0.5, 0.25, 0.25), (0.0, 0.8, 0.2),
                                                     (0.0, 0.1, 0.9)),
        emission_probability=(0.02, 0.5, 0.9), random_seed=2).activity
    never_pause = EngagementStateModel().fit(steady, method="map", random_seed=1)
    assert not gap_check(never_pause, n_replicates=400, random_seed=0).cannot_reproduce
    never_pause.data_ = pausing  # its story, against users who pause
    check = gap_check(never_pause, n_replicates=400, random_seed=0)
    assert check.cannot_reproduce
    returns = check.table.iloc[-1]
    assert returns["observed"] > returns["ci_upper"]
    assert "forecasts of their return will be too low" in check.message


def test_engagement_gap_check_replicates_segments_covariates_and_user_effects():
    """Every kind of engagement model replicates: each user with its own segment, covariates
    and (drawn from the population) effect; the statistics are shares and a count."""
    sim = simulate_engagement(120, 12, random_seed=5)
    table = sim.activity.assign(plan=np.where(np.arange(120) % 2, "free", "premium"),
                                age=np.linspace(18, 60, 120))
    for model, data in ((EngagementStateModel(segment="plan", covariates=["age"]), table),
                        (EngagementStateModel(user_effects=True, user_transitions=True),
                         sim.activity)):
        model.fit(data, method="map", random_seed=1)
        with pytest.warns(DataQualityWarning, match="share of gaps of 31\\+ periods"):
            check = gap_check(model, n_replicates=160, heavy=4, long=2, random_seed=0)
        shares = check.table.iloc[:-1]
        assert np.isclose(shares["mean"].sum(), 1.0) and (shares["observed"] >= 0).all()
        assert check.table.iloc[-1]["observed"] == _returners_by_hand(sim.activity, 4, 2)
        assert np.isfinite(check.table.to_numpy()).all()


def test_engagement_gap_check_takes_its_own_table_only():
    sim = simulate_engagement(60, 8, random_seed=1)
    model = EngagementStateModel().fit(sim.activity, method="map", random_seed=1)
    with pytest.raises(ValueError, match="its own activity table: leave events"):
        gap_check(model, sim.events)
    with pytest.raises(ValueError, match="leave events, period and observation_end out"):
        gap_check(model, period="W")
    with pytest.raises(ValueError, match="needs the events a BetaGeoModel was fitted on"):
        gap_check(BetaGeoModel(), None)


def test_gap_check_refuses_too_few_replicates_to_fail():
    """Two-sided p-values are at least 2 / (n + 1); with 5 statistics and ci_prob 0.95 the verdict
    needs p < 0.01, so fewer than 200 replicates cannot fail and the check refuses to say
    "consistent"; the default (1000) can, also at ci_prob 0.99 (p < 0.002)."""
    assert _min_replicates(0.05 / 5) == 200 and _min_replicates(0.01 / 5) == 1000
    # 40 periods: every gap bin and a heavy return (10 active, a 5-week pause) can occur
    sim = simulate_engagement(60, 40, random_seed=2)
    model = EngagementStateModel().fit(sim.activity, method="map", random_seed=1)
    with pytest.raises(ValueError, match=r"'n_replicates' .* too small: with 5 replicates the "
                       r"smallest p-value is 2 / \(5 \+ 1\) = 0\.333, not below the verdict's "
                       r"threshold 0\.01 \(\(1 - ci_prob\) / 5 statistics tested\).*"
                       r"n_replicates >= 200"):
        gap_check(model, n_replicates=5)
    with pytest.raises(ValueError, match="n_replicates >= 200"):
        gap_check(model, n_replicates=199)
    with pytest.raises(ValueError, match=r"threshold 0\.002 .*n_replicates >= 1000"):
        gap_check(model, n_replicates=999, ci_prob=0.99)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)  # nothing is left out here
        check = gap_check(model, n_replicates=200, random_seed=0)
        assert check.table["p_value"].min() >= 2 / 201 and check.table.attrs["untested"] == []
        check = gap_check(model, ci_prob=0.99, random_seed=0)  # the default n_replicates
    assert "Not tested" not in check.message and len(check.table) == 5


def test_short_engagement_table_leaves_out_what_cannot_occur():
    """12 weeks: no gap reaches 31 periods and a heavy return (10 active, a gap of 5) needs 13
    periods after the first, so both are 0 in the data and every replicate; they are left out
    of the verdict (3 statistics tested), with a warning and in the message."""
    sim = simulate_engagement(120, 12, random_seed=5)
    model = EngagementStateModel().fit(sim.activity, method="map", random_seed=1)
    returns = "heavy users (>= 10 active) returning after >= 5 silent"
    with pytest.warns(DataQualityWarning, match=re.escape("31+ periods; " + returns)):
        check = gap_check(model, n_replicates=200, random_seed=0)
    assert check.table.attrs["untested"] == ["share of gaps of 31+ periods", returns]
    left_out = check.table.loc[check.table.attrs["untested"]]
    assert (left_out[["observed", "mean", "ci_upper"]] == 0).all(axis=None)
    assert (left_out["p_value"] == 1).all()
    assert "Not tested" in check.message and "runs 11 period(s) after its first" in check.message
    assert "a heavy return needs 13 periods" in check.message and returns in check.message
    assert returns not in check.message.split("Not tested")[0]  # never the worst statistic
    # the family counts only the 3 statistics tested: its threshold is 0.05 / 3
    with pytest.raises(ValueError, match=r"0\.0167 \(\(1 - ci_prob\) / 3 statistics tested\)"
                       r".*n_replicates >= 119"):
        gap_check(model, n_replicates=5)
    # absurd heavy and long no longer pass silently
    with pytest.warns(DataQualityWarning, match="heavy users \\(>= 1000000000 active\\)"):
        check = gap_check(model, heavy=10**9, long=10**9, n_replicates=200, random_seed=0)
    assert len(check.table.attrs["untested"]) == 2 and "Not tested" in check.message


def test_gap_check_refuses_a_history_too_short_for_any_statistic():
    """Two periods: every gap is of 1 (its share is 1 by construction) and no heavy return fits,
    so nothing is testable; a heavy return that fits (2 active, a gap of 1) is still tested."""
    sim = simulate_engagement(60, 2, random_seed=3)
    model = EngagementStateModel().fit(sim.activity, method="map", random_seed=1)
    with pytest.raises(HistoryTooShortError, match="history is too short for heavy=10 and "
                       "long=5: the longest user history runs 1 period"):
        gap_check(model)
    with pytest.raises(ValueError, match="history is too short for heavy=3 and long=1"):
        gap_check(model, heavy=3, long=1)
    with pytest.warns(DataQualityWarning, match="every gap falls in one bin"):
        check = gap_check(model, heavy=2, long=1, n_replicates=50, random_seed=0)
    assert len(check.table.attrs["untested"]) == 4  # the shares; only the returns are tested
    assert check.table.iloc[-1]["observed"] == _returners_by_hand(sim.activity, 2, 1)


def test_bgnbd_gap_check_leaves_out_what_a_short_window_cannot_show():
    """A 20-day log: no gap of 31+ days and no heavy return (20 active days, a 31-day silence:
    49 days after the first) can occur; the window, not the model, decides."""
    rng = np.random.default_rng(7)
    T = rng.integers(5, 20, 80)
    events = _events_from(_bgnbd_days(rng, T, 2.0, 4.0, 1.0, 8.0), T)
    end = START + pd.Timedelta(days=int(T.max()), hours=23)
    model = BetaGeoModel().fit(summarize_activity(events, observation_end=end), method="map",
                               random_seed=1)
    with pytest.warns(DataQualityWarning, match="a heavy return needs 49 periods"):
        check = gap_check(model, events, observation_end=end, n_replicates=200, random_seed=0)
    assert check.table.attrs["untested"] == [
        "share of gaps of 31+ periods",
        "heavy users (>= 20 active) returning after >= 31 silent"]
    assert f"runs {int(T.max())} period(s) after its first" in check.message
    # 3 statistics tested: p < 0.05 / 3 needs 119 replicates
    with pytest.raises(ValueError, match=r"2 / \(118 \+ 1\).*/ 3 statistics tested.*"
                       r"n_replicates >= 119"):
        gap_check(model, events, observation_end=end, n_replicates=118)
