"""Tests of models.churn.gaps: the predictive check of gaps between active periods."""

import warnings

import numpy as np
import pandas as pd
import pytest

from models.churn import BetaGeoModel
from models.churn.gaps import GAP_EDGES, _gap_statistics, _replicate_bgnbd, gap_check, observed_gaps
from models.data import summarize_activity
from models.exceptions import ConvergenceWarning

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
    with pytest.raises(ValueError, match="replicates a BetaGeoModel. Got ShiftedBetaGeoModel"):
        gap_check(ShiftedBetaGeoModel(), events)
    with pytest.raises(Exception, match="fit"):
        gap_check(BetaGeoModel(), events)
