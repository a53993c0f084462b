"""Tests of models.metrics.calibration_check: calibration judged against the predictions' uncertainty."""

import warnings

import numpy as np
import pytest
import xarray as xr
from scipy import special

from models.exceptions import ModelCheckWarning
from models.metrics import CalibrationCheck, calibration_check, calibration_table


def _posterior(rng, truth_logit, n_draws, shift_sd, noise_sd=0.05):
    """Posterior-like draws: a shared shift per draw (parameter uncertainty) plus unit noise."""
    shift = rng.normal(0.0, shift_sd, (n_draws, 1))
    return special.expit(truth_logit + shift + rng.normal(0.0, noise_sd, (n_draws, truth_logit.size)))


def test_calibrated_predictions_raise_few_false_alarms():
    """Outcomes drawn from the predicted probabilities: the family-wise 95% verdict errs rarely."""
    alarms = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        logit = rng.normal(0.0, 1.5, 600)
        y = rng.uniform(size=600) < special.expit(logit)
        check = calibration_check(y, _posterior(rng, logit, 100, 0.05), random_seed=seed)
        alarms += check.miscalibrated
        assert check.table["n"].sum() == 600 and len(check.table) == 5
    assert alarms <= 3  # expected about 1 in 20 (and fewer: the intervals are conservative)


def test_confidently_wrong_predictions_are_flagged_with_the_worst_bin():
    """The BG/NBD failure on real listening: low predictions for users who mostly come back."""
    rng = np.random.default_rng(1)
    logit = rng.normal(0.0, 1.0, 400)
    truth = special.expit(logit)
    y = rng.uniform(size=400) < truth
    wrong = logit.copy()
    low = np.argsort(truth)[:80]
    wrong[low] -= 3.0  # the lowest fifth predicted far too low
    check = calibration_check(y, _posterior(rng, wrong, 200, 0.05), random_seed=2)
    assert check.miscalibrated
    assert not check.table.loc[0, "inside"] and check.table.loc[0, "gap"] > 0.1
    assert "bin 0" in check.message and "miscalibrated" in check.message
    with pytest.warns(ModelCheckWarning, match="bin 0"):
        calibration_check(y, _posterior(rng, wrong, 200, 0.05), random_seed=2, warn=True)


def test_uncertain_predictions_get_wider_intervals_and_are_not_flagged():
    """A bias well inside the posterior's own spread is not a miscalibration; the same bias from
    a confident posterior is, and the binomial-only table misses the difference."""
    rng = np.random.default_rng(3)
    logit = rng.normal(0.0, 1.0, 3000)
    y = rng.uniform(size=3000) < special.expit(logit)
    biased = logit - 0.3
    uncertain = calibration_check(y, _posterior(rng, biased, 400, 0.6), random_seed=4)
    confident = calibration_check(y, _posterior(rng, biased, 400, 0.01), random_seed=4)
    width = (uncertain.table["upper"] - uncertain.table["lower"]).to_numpy()
    assert (width > (confident.table["upper"] - confident.table["lower"]).to_numpy()).all()
    assert not uncertain.miscalibrated and confident.miscalibrated
    # calibration_table of the posterior means sees only the binomial noise
    means = calibration_table(y, _posterior(rng, biased, 400, 0.6).mean(axis=0), n_bins=5)
    assert not means["inside"].all()


def test_draws_as_dataarray_with_chains_and_repr():
    rng = np.random.default_rng(5)
    p = rng.uniform(0.1, 0.9, 50)
    y = rng.uniform(size=50) < p
    draws = xr.DataArray(np.broadcast_to(p, (2, 30, 50)), dims=("chain", "draw", "user"))
    check = calibration_check(y, draws, n_bins=2, ci_prob=0.9, random_seed=0)
    assert isinstance(check, CalibrationCheck) and check.ci_prob == 0.9
    assert list(check.table.columns) == ["n", "mean_predicted", "predicted_lower",
                                         "predicted_upper", "observed_rate", "gap", "lower",
                                         "upper", "inside", "p_value"]
    assert (check.table["p_value"] > 0).all()
    assert "CalibrationCheck" in check._repr_html_()


@pytest.mark.parametrize(("y", "draws", "kwargs", "match"), [
    ([0, 1, 1], np.full((4, 2), 0.5), {}, r"shape \(draws, 3\)"),
    ([0, 1], np.full((4, 2), 1.5), {}, "probabilities in \\[0, 1\\]. Got 1.5"),
    ([0, 2], np.full((4, 2), 0.5), {}, "must be 0 or 1"),
    ([0, 1], np.full((4, 2), 0.5), {"n_bins": 0}, "'n_bins' parameter of calibration_check"),
    ([0, 1], np.full((4, 2), 0.5), {"ci_prob": 1.0}, "ci_prob"),
])
def test_bad_input_is_named(y, draws, kwargs, match):
    with pytest.raises(ValueError, match=match), warnings.catch_warnings():
        warnings.simplefilter("error")
        calibration_check(y, draws, **kwargs)
