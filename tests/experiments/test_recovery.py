"""From a simulated log to effects: the engine's intervals cover the exact sample effects.

The whole path of an experiment (simulated log and assignments, per-user metrics with a
pre-period, sufficient statistics, the conjugate engine with and without CUPED) is run on
repeated simulated experiments whose true effects are known from their potential outcomes.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.data import NetworkOptions
from models.experiments import (
    DEFAULT_METRICS,
    Effect,
    analyze,
    compute_user_metrics,
    sample_average_effects,
    simulate_experiment,
    sufficient_statistics,
)

TREATMENT = Effect(session_rate=1.1, plays=1.1, skip_logodds=-0.2, dropout=0.85)


def one_experiment(seed: int):
    sim = simulate_experiment(3000, 80, enroll_start=40, enroll_days=7, random_seed=seed,
                              variants={"control": Effect(), "treatment": TREATMENT},
                              network=NetworkOptions(n_artists=60))
    seen = sim.observed_until(sim.truth.enroll_end + 14 * np.timedelta64(1, "D"))
    events = seen.events[seen.events["user_id"].isin(seen.assignments["user_id"])]
    metrics = compute_user_metrics(events, seen.assignments, DEFAULT_METRICS, window_days=14,
                                   pre_days=14, observation_end=seen.observation_end)
    stats = sufficient_statistics(metrics)
    truth = sample_average_effects(sim, DEFAULT_METRICS, window_days=14)
    return stats, truth


@pytest.mark.slow
def test_intervals_cover_the_true_sample_effects_of_simulated_experiments():
    covered = {True: [], False: []}
    reduction = []
    for seed in range(8):
        stats, truth = one_experiment(seed)
        for cuped in (True, False):
            effects = analyze(stats, cuped=cuped, ci_prob=0.95)
            both = effects.join(truth[["effect"]].rename(columns={"effect": "true"}))
            hit = (both["effect_ci_lower"] <= both["true"]) & (both["true"] <= both[
                "effect_ci_upper"])
            covered[cuped].extend(hit.tolist())
            if cuped:
                reduction.extend(effects["variance_reduction"].tolist())
    for cuped, hits in covered.items():
        rate = np.mean(hits)
        # 56 intervals per setting; calibrated 95% intervals cover 48 or more with
        # probability above 0.999
        assert rate >= 48 / 56, (cuped, rate)
    # the pre-period covariate removes a real share of the variance of activity metrics
    assert np.median(reduction) > 0.05
