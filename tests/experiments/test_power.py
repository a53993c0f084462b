"""Sample sizes and minimum detectable lifts, against textbook values and simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.experiments.engine import analyze
from models.experiments.power import SampleSize, minimum_detectable_lift, sample_size
from models.experiments.sequential import sequential_multiplier

Z975, Z80 = 1.959963984540054, 0.8416212335729143  # normal quantiles, from tables


def test_textbook_two_proportions():
    # 10% baseline, +5% relative (10% -> 10.5%), two-sided 5%, power 80%:
    # n per arm = (z_.975 + z_.8)^2 (p1 q1 + p2 q2) / (p2 - p1)^2
    per_arm = (Z975 + Z80) ** 2 * (0.1 * 0.9 + 0.105 * 0.895) / 0.005**2
    assert math.ceil(per_arm) == 57_760
    result = sample_size(baseline_mean=0.10, relative_lift=0.05)
    assert isinstance(result, SampleSize)
    assert (result.n_control, result.n_treatment, result.n_total) == (57_760, 57_760, 115_520)
    # R's power.prop.test (pooled variance under the null) gives 57,762 per arm
    assert result.n_control == pytest.approx(57_762, rel=1e-4)


def test_textbook_two_means():
    # sd 1, difference 0.1: n = 2 (z + z)^2 sd^2 / delta^2 = 1569.8 per arm
    result = sample_size(baseline_mean=2.0, baseline_sd=1.0, relative_lift=0.05)
    assert result.n_control == result.n_treatment == 1570
    down = sample_size(baseline_mean=2.0, baseline_sd=1.0, relative_lift=-0.05)
    assert down.n_total == result.n_total


def test_allocation_variance_reduction_and_sequential():
    base = sample_size(baseline_mean=10.0, baseline_sd=4.0, relative_lift=0.02)
    reduced = sample_size(baseline_mean=10.0, baseline_sd=4.0, relative_lift=0.02,
                          variance_reduction=0.36)  # fmt: skip
    assert reduced.n_total == pytest.approx(base.n_total * 0.64, rel=1e-3)
    uneven = sample_size(baseline_mean=10.0, baseline_sd=4.0, relative_lift=0.02,
                         allocation=0.2)  # fmt: skip
    # N (1/(1-a) + 1/a): 1/0.8 + 1/0.2 = 6.25 against 4
    assert uneven.n_total == pytest.approx(base.n_total * 6.25 / 4, rel=1e-3)
    assert uneven.n_treatment == pytest.approx(0.2 * uneven.n_total, abs=1)
    seq = sample_size(baseline_mean=10.0, baseline_sd=4.0, relative_lift=0.02, sequential=True)
    ratio = ((sequential_multiplier(0.95) + Z80) / (Z975 + Z80)) ** 2
    assert seq.n_total == pytest.approx(base.n_total * ratio, rel=1e-3)
    assert "sequential" in str(seq)


def test_minimum_detectable_lift_inverts_sample_size():
    for kwargs in ({"baseline_mean": 0.1}, {"baseline_mean": 3.0, "baseline_sd": 2.0},
                   {"baseline_mean": 0.3, "variance_reduction": 0.2, "sequential": True}):
        size = sample_size(relative_lift=0.03, **kwargs)
        lift = minimum_detectable_lift(size.n_total, **kwargs)
        assert lift == pytest.approx(0.03, rel=2e-3)
        assert minimum_detectable_lift(4 * size.n_total, **kwargs) < 0.5 * lift * 1.01


def test_power_by_simulation():
    # at the planned size, 80% of experiments with a real +3% lift have a 95% interval
    # of the effect above 0 (statistics drawn as exact sums of normal users)
    rng = np.random.default_rng(11)
    size = sample_size(baseline_mean=5.0, baseline_sd=2.0, relative_lift=0.03)
    n, reps = size.n_control, 4000
    rows = []
    for variant, mean in (("control", 5.0), ("treatment", 5.15)):
        sums = n * mean + 2.0 * np.sqrt(n) * rng.standard_normal(reps)
        squares = 4.0 * rng.chisquare(n - 1, reps) + sums**2 / n
        rows.append(pd.DataFrame({"metric": np.arange(reps), "variant": variant,
                                  "kind": "continuous", "n": n, "sum_y": sums,
                                  "sum_yy": squares}))  # fmt: skip
    effects = analyze(pd.concat(rows))
    detected = (effects["effect_ci_lower"] > 0).mean()
    assert detected == pytest.approx(0.80, abs=0.025)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"baseline_mean": 1.2, "relative_lift": 0.1}, r"'baseline_mean' parameter of "
                                                        r"sample_size must be a rate in"),
        ({"baseline_mean": 0.9, "relative_lift": 0.2}, r"'relative_lift' parameter of "
                                                        r"sample_size takes the rate"),
        ({"baseline_mean": 0.1, "relative_lift": 0.0}, r"'relative_lift' .* non-zero"),
        ({"baseline_mean": 0.0, "baseline_sd": 1.0, "relative_lift": 0.1}, r"non-zero"),
        ({"baseline_mean": 1.0, "baseline_sd": -1.0, "relative_lift": 0.1}, r"'baseline_sd'"),
        ({"baseline_mean": 0.1, "relative_lift": 0.1, "power": 1.0}, r"'power' parameter"),
        ({"baseline_mean": 0.1, "relative_lift": 0.1, "allocation": 0}, r"'allocation'"),
        ({"baseline_mean": 0.1, "relative_lift": 0.1, "variance_reduction": 1.0},
         r"'variance_reduction' parameter of sample_size must be in \[0, 1\)"),
        ({"baseline_mean": 0.1, "relative_lift": 0.1, "ci_prob": 2}, r"'ci_prob' parameter"),
        ({"baseline_mean": 0.1, "relative_lift": 0.1, "sequential": 1}, r"True or False"),
    ],
)
def test_sample_size_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_size(**kwargs)


def test_minimum_detectable_lift_bad_arguments():
    with pytest.raises(ValueError, match=r"'n_total' parameter of minimum_detectable_lift"):
        minimum_detectable_lift(0, baseline_mean=0.1)
    with pytest.raises(ValueError, match=r"too small: 10 users cannot detect"):
        minimum_detectable_lift(10, baseline_mean=0.5)
