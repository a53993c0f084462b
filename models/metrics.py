"""Scores of predictions against outcomes, in one place for every model.

- :func:`roc_auc` and :func:`average_precision` rank any scores (churn
  probabilities, link-prediction scores);
- :func:`brier_score` and :func:`calibration_table` judge probabilities;
- :func:`calibration_check` judges posterior draws of probabilities: whether
  each bin's observed rate lies within what the predictions, with their
  uncertainty, allow, and whether the miscalibration is beyond chance.

Every function takes the outcomes first and the predictions second, checks both
the same way and names the function in its errors. :mod:`models.churn` and
:mod:`models.network` re-export them.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from models import _html
from models._deprecation import deprecated_arguments
from models.exceptions import ModelCheckWarning
from models.predict import check_ci_prob

__all__ = [
    "CalibrationCheck",
    "average_precision",
    "brier_score",
    "calibration_check",
    "calibration_table",
    "roc_auc",
]


def _outcomes(y: Any, p: Any, func: str, *, probabilities: bool = True
              ) -> tuple[np.ndarray, np.ndarray]:
    """Check outcomes (0/1) and predictions of one length; probabilities must lie in [0, 1]."""
    y_ = np.asarray(y, dtype=float).ravel()
    p_ = np.asarray(p, dtype=float).ravel()
    if y_.shape != p_.shape or y_.size == 0:
        raise ValueError(f"{func} needs outcomes and probabilities of the same, non-zero length. "
                         f"Got {y_.size} outcomes and {p_.size} probabilities instead.")
    if not np.all((y_ == 0) | (y_ == 1)):
        bad = y_[(y_ != 0) & (y_ != 1)][0].item()
        raise ValueError(f"The outcomes of {func} must be 0 or 1 (or booleans). "
                         f"Got {bad!r} instead.")
    if not probabilities:
        if not np.isfinite(p_).all():
            bad = p_[~np.isfinite(p_)][0].item()
            raise ValueError(f"The scores of {func} must be finite. Got {bad!r} instead.")
        return y_, p_
    if not np.all((p_ >= 0) & (p_ <= 1)):
        bad = p_[~((p_ >= 0) & (p_ <= 1))][0].item()
        raise ValueError(f"The probabilities of {func} must be in [0, 1]. Got {bad!r} instead.")
    return y_, p_


def roc_auc(y: Any, p: Any) -> float:
    r"""Area under the ROC curve: P(a random positive scores above a random negative).

    Parameters
    ----------
    y : array-like of bool or {0, 1}
        Outcomes.
    p : array-like of float
        Scores, higher meaning more likely positive: probabilities, or any finite
        score (only their order matters).

    Returns
    -------
    float
        AUC in [0, 1]; ties count one half (the Mann-Whitney statistic).
        NaN when all outcomes are equal.

    Raises
    ------
    ValueError
        If the lengths differ, an outcome is not 0/1 or a score is not finite.

    Notes
    -----
    .. math:: \mathrm{AUC} = \frac{R_1 - n_1(n_1+1)/2}{n_1 n_0},

    with :math:`R_1` the sum of the mid-ranks of the positives among all scores.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y_, p_ = _outcomes(y, p, "roc_auc", probabilities=False)
    n1 = y_.sum()
    n0 = y_.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = stats.rankdata(p_)
    return float((ranks[y_ == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def brier_score(y: Any, p: Any) -> float:
    r"""Mean squared difference between predicted probabilities and 0/1 outcomes.

    Parameters
    ----------
    y : array-like of bool or {0, 1}
        Outcomes.
    p : array-like of float
        Predicted probabilities.

    Returns
    -------
    float
        :math:`\frac1n\sum_i (p_i - y_i)^2`; 0 is perfect, 0.25 is a constant 0.5.

    Raises
    ------
    ValueError
        If the lengths differ, an outcome is not 0/1 or a probability is outside
        [0, 1].

    Examples
    --------
    >>> brier_score([0, 1], [0.2, 0.6])
    0.1
    """
    y_, p_ = _outcomes(y, p, "brier_score")
    return float(np.round(np.mean((p_ - y_) ** 2), 15))


@deprecated_arguments(renamed={"prob": "ci_prob"})
def calibration_table(y: Any, p: Any, *, n_bins: int = 10, ci_prob: float = 0.95
                      ) -> pd.DataFrame:
    r"""Observed rate against mean predicted probability in bins of the prediction.

    Parameters
    ----------
    y : array-like of bool or {0, 1}
        Outcomes.
    p : array-like of float
        Predicted probabilities.
    n_bins : int, default 10
        Number of bins of (nearly) equal counts, formed on the sorted
        predictions (tied predictions may fall in neighbouring bins).
    ci_prob : float, default 0.95
        Probability of the bounds of the observed rate. (``prob`` is its
        deprecated name.)

    Returns
    -------
    pandas.DataFrame
        One row per bin (index ``bin``): ``n``, ``mean_predicted``,
        ``observed_rate``, ``lower``, ``upper`` (central ``ci_prob`` interval of the
        observed rate if the predictions were right) and ``inside``.

    Raises
    ------
    ValueError
        As :func:`brier_score`, or if ``n_bins`` is not a positive integer or
        ``ci_prob`` not in (0, 1).

    Notes
    -----
    If the predictions are calibrated, a bin's count of positives is a sum of
    independent Bernoulli(:math:`p_i`) variables; its variance is at most that of
    a Binomial(:math:`n, \bar p`), so the bounds are the Binomial(:math:`n,
    \bar p`) quantiles divided by :math:`n`, slightly wide (conservative).

    Examples
    --------
    >>> table = calibration_table([0, 0, 1, 1, 1, 0], [0.1, 0.2, 0.9, 0.8, 0.7, 0.3], n_bins=2)
    >>> table[["n", "mean_predicted", "observed_rate"]].round(2)  # doctest: +NORMALIZE_WHITESPACE
         n  mean_predicted  observed_rate
    bin
    0    3             0.2            0.0
    1    3             0.8            1.0
    """
    y_, p_ = _outcomes(y, p, "calibration_table")
    ci_prob = check_ci_prob("calibration_table", ci_prob)
    if not (isinstance(n_bins, int | np.integer) and not isinstance(n_bins, bool) and n_bins > 0):
        raise ValueError("The 'n_bins' parameter of calibration_table must be a positive "
                         f"integer. Got {n_bins!r} instead.")
    order = np.argsort(p_, kind="stable")
    rows = []
    for i, idx in enumerate(np.array_split(order, min(n_bins, p_.size))):
        n = idx.size
        mean_p = p_[idx].mean()
        lo, hi = stats.binom.ppf([(1 - ci_prob) / 2, (1 + ci_prob) / 2], n, mean_p) / n
        obs = y_[idx].mean()
        rows.append({"bin": i, "n": n, "mean_predicted": mean_p, "observed_rate": obs,
                     "lower": lo, "upper": hi, "inside": bool(lo <= obs <= hi)})
    out = pd.DataFrame(rows).set_index("bin")
    out.attrs["ci_prob"] = ci_prob
    return out


def average_precision(y: Any, p: Any) -> float:
    r"""Average precision: the area under the precision-recall step curve.

    Parameters
    ----------
    y : array-like of bool or {0, 1}
        Outcomes.
    p : array-like of float
        Scores, higher meaning more likely positive (any finite values).

    Returns
    -------
    float
        :math:`\mathrm{AP} = \sum_t (R_t - R_{t-1}) P_t` over the distinct score
        thresholds :math:`t` from high to low (tied scores enter together), as in
        scikit-learn's ``average_precision_score``. NaN without positives.

    Raises
    ------
    ValueError
        As :func:`roc_auc`.

    Examples
    --------
    >>> average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8333333333333333
    """
    y_, s = _outcomes(y, p, "average_precision", probabilities=False)
    if y_.sum() == 0:
        return float("nan")
    y = y_.astype(bool)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # end of each tie group
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class CalibrationCheck:
    """Result of :func:`calibration_check`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per bin of the posterior mean prediction (index ``bin``): ``n``,
        ``mean_predicted`` with its posterior interval ``predicted_lower`` /
        ``predicted_upper``, ``observed_rate``, ``gap`` (observed minus
        predicted), the predictive interval ``lower`` / ``upper`` of the rate
        the bin would show if the model were right (posterior uncertainty and
        the users' own randomness), ``inside`` and the two-sided predictive
        ``p_value``.
    ci_prob : float
        Probability of the intervals.
    miscalibrated : bool
        Some bin lies outside its predictive interval at the family-wise level
        ``ci_prob`` (Bonferroni over the bins): a miscalibration beyond the
        predictions' uncertainty, not a chance excursion of one bin in many.
    message : str
        One sentence saying so, naming the worst bin.
    """

    table: pd.DataFrame
    ci_prob: float
    miscalibrated: bool
    message: str

    def _repr_html_(self) -> str:
        verdict = "fail" if self.miscalibrated else "pass"
        return _html.card("CalibrationCheck", _html.verdict_badge(verdict),
                          f"<p>{html.escape(self.message)}</p>", _html.frame_html(self.table))


def _probability_draws(draws: Any, n: int, func: str) -> np.ndarray:
    """Posterior draws of n probabilities as an (S, n) array; (chain, draw, unit) is flattened."""
    arr = np.asarray(getattr(draws, "values", draws), dtype=float)
    if arr.ndim == 3:
        arr = arr.reshape(-1, arr.shape[-1])
    if arr.ndim != 2 or arr.shape[1] != n or arr.shape[0] == 0:
        raise ValueError(f"The draws of {func} must have shape (draws, {n}) or (chain, draw, {n}) "
                         f"for {n} outcomes. Got shape {np.shape(arr)} instead.")
    if not np.all((arr >= 0) & (arr <= 1)):
        bad = arr[~((arr >= 0) & (arr <= 1))][0].item()
        raise ValueError(f"The draws of {func} must be probabilities in [0, 1]. "
                         f"Got {bad!r} instead.")
    return arr


def calibration_check(y: Any, draws: Any, *, n_bins: int = 5, ci_prob: float = 0.95,
                      random_seed: int | np.random.Generator | None = None,
                      warn: bool = False) -> CalibrationCheck:
    r"""Check posterior predictions of probabilities for calibration beyond their uncertainty.

    The users are binned by their posterior mean prediction (equal counts). In
    each bin the observed rate is compared with the rate the model predicts for
    it, replicated from the posterior predictive: for every posterior draw the
    bin's count of positives is drawn given that draw's probabilities. The
    interval so obtained holds both the predictions' own uncertainty and the
    users' randomness, so a bin outside it is off by more than the model allows.

    Parameters
    ----------
    y : array-like of bool or {0, 1}
        Outcomes, one per unit.
    draws : array-like or xarray.DataArray
        Posterior draws of each unit's probability, shape ``(draws, unit)`` or
        ``(chain, draw, unit)`` (what a prediction with ``return_draws=True``
        returns).
    n_bins : int, default 5
        Number of bins of (nearly) equal counts of the posterior mean.
    ci_prob : float, default 0.95
        Probability of each bin's predictive interval, and the family-wise level
        of the verdict.
    random_seed : int or numpy.random.Generator, optional
        Seed of the predictive replicates.
    warn : bool, default False
        Also warn :class:`~models.exceptions.ModelCheckWarning` when the
        predictions are miscalibrated.

    Returns
    -------
    CalibrationCheck

    Raises
    ------
    ValueError
        If the outcomes are not 0/1, the draws are not probabilities of the
        outcomes' length, ``n_bins`` is not a positive integer or ``ci_prob``
        not in (0, 1).

    Notes
    -----
    For posterior draw :math:`s` the bin's replicated count is
    :math:`\mathrm{Binomial}(n_b, \bar p_{b,s})` with :math:`\bar p_{b,s}` the
    mean of the draw's probabilities in the bin. A sum of Bernoulli variables
    with unequal probabilities varies a little less than that binomial, so the
    interval is slightly wide (conservative). The predictive p-value is two-sided;
    the verdict is a miscalibration when its smallest value over the bins is
    below :math:`(1 - \text{ci\_prob}) / n_\text{bins}`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.05, 0.95, 2000)
    >>> y = rng.uniform(size=2000) < p
    >>> draws = np.clip(p + rng.normal(0, 0.02, (200, 2000)), 0, 1)
    >>> calibration_check(y, draws, random_seed=1).miscalibrated
    False
    >>> calibration_check(y, draws * 0.5, random_seed=1).miscalibrated
    True
    """
    func = "calibration_check"
    y_ = np.asarray(y, dtype=float).ravel()
    P = _probability_draws(draws, y_.size, func)
    y_, mean_p = _outcomes(y_, P.mean(axis=0), func)
    ci_prob = check_ci_prob(func, ci_prob)
    if not (isinstance(n_bins, int | np.integer) and not isinstance(n_bins, bool) and n_bins > 0):
        raise ValueError(f"The 'n_bins' parameter of {func} must be a positive integer. "
                         f"Got {n_bins!r} instead.")
    rng = np.random.default_rng(random_seed)
    n_draws = P.shape[0]
    reps = max(1, -(-4000 // n_draws))  # at least 4,000 replicates per bin
    q = [(1 - ci_prob) / 2, (1 + ci_prob) / 2]
    rows = []
    for i, idx in enumerate(np.array_split(np.argsort(mean_p, kind="stable"),
                                           min(n_bins, y_.size))):
        n = idx.size
        bar = P[:, idx].mean(axis=1)
        rep = rng.binomial(n, np.tile(bar, reps)) / n
        obs = y_[idx].mean()
        lo, hi = np.quantile(rep, q)
        tail = min((rep <= obs).sum(), (rep >= obs).sum())
        p_value = min(1.0, 2 * (tail + 1) / (rep.size + 1))  # Monte Carlo p-value, never 0
        plo, phi = np.quantile(bar, q)
        rows.append({"bin": i, "n": n, "mean_predicted": mean_p[idx].mean(),
                     "predicted_lower": plo, "predicted_upper": phi, "observed_rate": obs,
                     "gap": obs - mean_p[idx].mean(), "lower": lo, "upper": hi,
                     "inside": bool(lo <= obs <= hi), "p_value": p_value})
    table = pd.DataFrame(rows).set_index("bin")
    table.attrs["ci_prob"] = ci_prob
    worst = int(table["p_value"].to_numpy().argmin())
    row = table.iloc[worst]
    miscalibrated = bool(row["p_value"] < (1 - ci_prob) / len(table))
    where = (f"bin {worst} ({int(row['n'])} units): predicted {row['mean_predicted']:.3f}, "
             f"observed {row['observed_rate']:.3f}, {ci_prob:.0%} predictive interval "
             f"[{row['lower']:.3f}, {row['upper']:.3f}]")
    if miscalibrated:
        message = (f"The predictions are miscalibrated beyond their uncertainty: {where} "
                   f"(p = {row['p_value']:.2g}, two-sided; "
                   f"{int((~table['inside']).sum())} of {len(table)} bins outside their "
                   "intervals). Their intervals cannot be trusted for these "
                   "units; consider a model that fits how they behave.")
        if warn:
            warnings.warn(message, ModelCheckWarning, stacklevel=2)
    else:
        message = (f"Calibrated within the predictions' uncertainty: every bin is within what "
                   f"the model allows at the family-wise {ci_prob:.0%} level (worst: {where}).")
    return CalibrationCheck(table, ci_prob, miscalibrated, message)
