"""Always-valid confidence sequences: published numbers, the formula, and peeking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.experiments.engine import analyze
from models.experiments.sequential import (
    PeekingResult,
    confidence_sequence,
    sequential_multiplier,
    simulate_peeking,
)


def test_published_sequential_numbers():
    table = pd.DataFrame({"metric": "converted", "variant": ["control", "treatment"],
                          "kind": "binary", "n": [3000, 3461], "sum_y": [1396, 2422],
                          "sum_yy": [1396, 2422]})  # fmt: skip
    row = analyze(table, sequential=True, sequential_n=5000).iloc[0]
    assert row["method"] == "sequential"
    assert round(row["lift"], 5) == 0.50386
    assert round(row["lift_ci_lower"], 5) == 0.40098
    assert round(row["lift_ci_upper"], 5) == 0.60675
    assert np.isnan(row["prob_better"]) and np.isnan(row["expected_loss_ship"])
    assert "always-valid" in row["note"]
    # the fixed-sample interval is narrower and centred on the same estimate
    fixed = analyze(table, binary_model="normal").iloc[0]
    assert fixed["lift"] == row["lift"]
    assert fixed["lift_ci_upper"] - fixed["lift_ci_lower"] < row["lift_ci_upper"] - row[
        "lift_ci_lower"]  # fmt: skip


def test_confidence_sequence_formula():
    sd, t, t_star, alpha = np.array([0.5, 0.1]), np.array([100.0, 4000.0]), 2000, 0.1
    lower, upper = confidence_sequence([1.0, 2.0], sd, t, sequential_n=t_star, ci_prob=0.9)
    rho2 = (-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / t_star
    sigma = sd * np.sqrt(t)
    half = sigma * np.sqrt(2 * (t * rho2 + 1) / (t**2 * rho2) * np.log(np.sqrt(t * rho2 + 1)
                                                                        / alpha))  # fmt: skip
    np.testing.assert_allclose(upper - [1.0, 2.0], half, rtol=1e-12)
    np.testing.assert_allclose([1.0, 2.0] - lower, half, rtol=1e-12)


def test_multiplier_at_the_tuning_point():
    # at t = sequential_n the half-width is a fixed number of standard errors
    k = sequential_multiplier(0.95)
    assert k == pytest.approx(3.0352, abs=1e-4)
    lower, upper = confidence_sequence(0.0, 1.0 / np.sqrt(5000), 5000, sequential_n=5000)
    assert float(upper) * np.sqrt(5000) == pytest.approx(k, rel=1e-12)
    assert k > stats.norm.ppf(0.975)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sequential_n": 0}, r"'sequential_n' parameter of confidence_sequence must be a posi"),
        ({"sequential_n": 10, "ci_prob": 1.0}, r"'ci_prob' parameter of confidence_sequence"),
    ],
)
def test_confidence_sequence_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        confidence_sequence(0.0, 1.0, 100, **kwargs)


def test_daily_looks_at_aa_tests():
    result = simulate_peeking(n_experiments=1000, n_looks=30, threshold=0.975, random_seed=3)
    assert isinstance(result, PeekingResult)
    # read once, the naive rule is a 5% test; read daily, it is far from one
    assert result.naive_last_look == pytest.approx(0.05, abs=0.02)
    assert result.naive > 0.15
    assert result.sequential < 0.05
    assert list(result.by_look.index) == list(range(1, 31))
    assert (np.diff(result.by_look["naive"]) >= 0).all()
    assert result.by_look["n_users"].iloc[-1] == pytest.approx(2 * 200 * 30, rel=0.01)
    assert "confidence sequence" in str(result)


def test_peeking_binary_metrics():
    result = simulate_peeking(n_experiments=300, n_looks=10, kind="binary", random_seed=4)
    assert result.sequential < 0.05 < result.naive
    assert result.sequential_n == 2 * 200 * 10


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_experiments": 0}, r"'n_experiments' parameter of simulate_peeking"),
        ({"kind": "ratio"}, r"'kind' parameter of simulate_peeking must be one of"),
        ({"threshold": 0.4}, r"'threshold' parameter of simulate_peeking must be a number in \(0.5, 1\)"),
        ({"sequential_n": -5}, r"'sequential_n' parameter of simulate_peeking"),
    ],
)
def test_simulate_peeking_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_peeking(**kwargs)
