"""Scores of predictions against outcomes, in one place for every model.

- :func:`roc_auc` and :func:`average_precision` rank any scores (churn
  probabilities, link-prediction scores);
- :func:`brier_score` and :func:`calibration_table` judge probabilities.

Every function takes the outcomes first and the predictions second, checks both
the same way and names the function in its errors. :mod:`models.churn` and
:mod:`models.network` re-export them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from models._deprecation import deprecated_arguments
from models.predict import check_ci_prob

__all__ = ["average_precision", "brier_score", "calibration_table", "roc_auc"]


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
