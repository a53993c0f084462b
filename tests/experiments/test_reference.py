"""Reference cohorts from a log, and the exact effects of simulated experiments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.exceptions import DataValidationError
from models.experiments.metrics import ActiveDays, Count, Ratio, Sum
from models.experiments.reference import (
    DEFAULT_SURROGATES,
    long_term_outcome,
    reference_cohort,
    sample_average_effects,
)
from models.experiments.simulate import Effect, simulate_experiment


def hand_log() -> pd.DataFrame:
    t0 = pd.Timestamp("2025-02-01 12:00")
    day = pd.Timedelta(days=1)
    rows = [("a", t0 - day), ("a", t0 + 2 * day), ("a", t0 + 2 * day + pd.Timedelta(hours=1)),
            ("a", t0 + 9 * day), ("a", t0 + 20 * day), ("a", t0 + 40 * day),
            ("b", t0 + 3 * day), ("b", t0 + 16 * day), ("b", t0 + 35 * day),
            ("c", t0 + 30 * day), ("c", t0 + 60 * day)]
    return pd.DataFrame({"user_id": [r[0] for r in rows], "timestamp": [r[1] for r in rows],
                         "skipped": [False, True, False, True, False, False, False, True, False,
                                     False, False]})


def test_reference_cohort_by_hand():
    log = hand_log()
    ref = reference_cohort(log, start="2025-02-02", enroll_days=7, window_days=14, horizon=30)
    # a: first event in the window at t0 + 2 days; b at t0 + 3 days; c is not active in it
    assert list(ref.index) == ["a", "b"]
    a, b = ref.loc["a"], ref.loc["b"]
    assert a["assigned_at"] == pd.Timestamp("2025-02-03 12:00")
    assert (a["active_days_week1"], a["active_days_week2"]) == (1, 1)  # days 0 and 7
    assert (a["plays_week1"], a["plays_week2"], a["skips_week1"], a["skips_week2"]) == (2, 1, 1, 1)
    assert a["long_term_active_days"] == 2      # days 18 and 38 are in [14, 14 + 30)
    assert (b["active_days_week1"], b["active_days_week2"]) == (1, 1)  # days 0 and 13
    assert b["long_term_active_days"] == 1      # day 32
    assert len(log) == 11  # input untouched


def test_reference_cohort_errors():
    log = hand_log()
    with pytest.raises(DataValidationError, match="enrolment window"):
        reference_cohort(log, start="2030-01-01", horizon=10)
    with pytest.raises(ValueError, match="'horizon' parameter of reference_cohort"):
        reference_cohort(log, start="2025-02-02", horizon=0)
    with pytest.raises(ValueError, match="windows past window_days"):
        reference_cohort(log, start="2025-02-02", surrogates=[Count("p", window=(0, 21))])
    with pytest.raises(ValueError, match="not ratios"):
        reference_cohort(log, start="2025-02-02",
                         surrogates=[Ratio("r", Sum("s", "skipped"), Count("n"))])
    with pytest.raises(DataValidationError, match="window"):  # the log ends too early
        reference_cohort(log, start="2025-02-02", horizon=300)


def test_long_term_outcome():
    assert long_term_outcome(14, 90) == ActiveDays("long_term_active_days", window=(14, 104))
    with pytest.raises(ValueError, match="'horizon' parameter of long_term_outcome"):
        long_term_outcome(14, -1)


def test_sample_average_effects_of_a_null_effect_are_zero():
    sim = simulate_experiment(1500, 120, enroll_start=30, random_seed=4,
                              variants={"control": Effect(), "twin": Effect()})
    metrics = [Count("plays"), ActiveDays("active_days"), long_term_outcome(14, 60),
               Ratio("skip_rate", Sum("skips", "skipped"), Count("n"))]
    out = sample_average_effects(sim, metrics, window_days=14)
    assert list(out.index.get_level_values("metric")) == [m.name for m in metrics]
    np.testing.assert_array_equal(out["effect"], 0.0)


def test_sample_average_effects_follow_the_effects():
    sim = simulate_experiment(3000, 150, enroll_start=30, random_seed=5,
                              variants={"control": Effect(),
                                        "more": Effect(session_rate=1.5, skip_logodds=0.5)})
    metrics = [ActiveDays("active_days"), long_term_outcome(14, 90),
               Ratio("skip_rate", Sum("skips", "skipped"), Count("n"))]
    out = sample_average_effects(sim, metrics, window_days=14).xs("more", level="variant")
    assert out.loc["active_days", "lift"] > 0.1
    assert out.loc["long_term_active_days", "lift"] > 0  # more sessions, more dropout chances
    assert out.loc["skip_rate", "effect"] > 0.03
    # the averages are over every assigned user: the same as the observed arm means
    # would give with every user in that arm
    assert out.loc["active_days", "mean_control"] > 0


def test_default_surrogates_are_within_two_weeks():
    assert all(m.window[1] <= 14 for m in DEFAULT_SURROGATES)
