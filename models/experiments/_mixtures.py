r"""Normal mixtures: the exact posteriors of the history model and the surrogate index.

A posterior that is a mixture of normals, :math:`\sum_d w_d\,N(\mu_d, s_d^2)`
(one normal per posterior draw, as the conjugate updates of
:class:`~models.experiments.ExperimentHistoryModel` and the effect of
:class:`~models.experiments.SurrogateIndexModel` give), is summarised exactly by
:func:`normal_mixture_summary` (mean, sd, equal-tailed interval, probability of
a positive value), with quantiles from :func:`normal_mixture_quantiles`.
Summaries of plain draws are :func:`models.predict.summarize_draws`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special

__all__ = ["normal_mixture_quantiles", "normal_mixture_summary"]

#: Root finding of mixture quantiles: at most this many steps, to a CDF error of _CDF_TOL
#: (or until the bracket is as narrow as the floating point numbers allow).
_ROOT_STEPS = 100
_CDF_TOL = 1e-10
_X_TOL = 4 * np.finfo(float).eps


def _mixture_cdf(x: np.ndarray, mean: np.ndarray, sd: np.ndarray, weight: np.ndarray,
                 point: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Distribution function and density of each column's mixture at ``x``.

    ``point`` marks the components with sd 0 (point masses); None when there are none.
    """
    if point is None:
        u = (x - mean) / sd
        cdf = np.sum(weight * special.ndtr(u), axis=0)
        pdf = np.sum(weight * np.exp(-0.5 * u**2) / sd, axis=0)
    else:
        safe = np.where(point, 1.0, sd)
        u = (x - mean) / safe
        cdf = np.sum(weight * np.where(point, x >= mean, special.ndtr(u)), axis=0)
        pdf = np.sum(weight * np.where(point, 0.0, np.exp(-0.5 * u**2) / safe), axis=0)
    return cdf, pdf / np.sqrt(2 * np.pi)


def normal_mixture_quantiles(mean: np.ndarray, sd: np.ndarray, probs: Sequence[float],
                             weight: np.ndarray | None = None) -> np.ndarray:
    r"""Quantiles of normal mixtures, one mixture per column.

    Parameters
    ----------
    mean, sd : numpy.ndarray
        Means and standard deviations (>= 0; 0 is a point mass) of the
        components, shape ``(components,)`` or ``(components, units)``.
    probs : sequence of float
        Probabilities in (0, 1).
    weight : numpy.ndarray, optional
        Weights of the components, summing to one over axis 0; equal by default.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(probs),)`` plus the units' shape: the smallest :math:`x`
        with :math:`F(x) \ge p`.

    Notes
    -----
    Newton's method on the mixture CDF from the quantile of the moment-matched
    normal, kept inside a shrinking bracket (a bisection step whenever Newton
    would leave it, or where the density is zero), until the CDF is within
    ``1e-10`` of the target (then one more Newton step) or the bracket cannot
    shrink further. The first
    bracket is :math:`m \pm k s` with the mixture's mean :math:`m`, sd
    :math:`s` and :math:`k = 1/\sqrt{\min(p, 1 - p)}`, which holds the
    quantile by Cantelli's inequality :math:`P(X - m \le -k s) \le 1/(1 + k^2)`.

    Examples
    --------
    >>> import numpy as np
    >>> q = normal_mixture_quantiles(np.array([-1.0, 1.0]), np.array([1.0, 1.0]), [0.5, 0.975])
    >>> [round(float(v), 4) for v in q]
    [0.0, 2.6461]
    """
    mean, sd = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(sd, dtype=float))
    if weight is None:
        weight = np.full(mean.shape, 1.0 / mean.shape[0])
    point = sd <= 0
    point = point if point.any() else None
    m = np.sum(weight * mean, axis=0)
    s = np.sqrt(np.sum(weight * (sd**2 + (mean - m) ** 2), axis=0))
    s = np.maximum(s, np.min(sd, axis=0))
    out = []
    for p in probs:
        k = 1.0 / np.sqrt(min(p, 1.0 - p))
        lo, hi = m - k * s, m + k * s
        x = m + special.ndtri(p) * s
        for _ in range(_ROOT_STEPS):
            cdf, density = _mixture_cdf(x, mean, sd, weight, point)
            gap = cdf - p
            lo = np.where(gap < 0, x, lo)
            hi = np.where(gap < 0, hi, x)
            with np.errstate(divide="ignore", invalid="ignore"):
                newton = x - gap / density
            converged = np.abs(gap) < _CDF_TOL
            stuck = hi - lo <= _X_TOL * (1.0 + np.abs(x))  # a point mass at the quantile
            inside = (newton > lo) & (newton < hi)
            step = np.where(inside, newton, 0.5 * (lo + hi))
            # a converged x takes its last Newton step too: it is free, and squares the error
            x = np.where(converged, np.where(np.isfinite(newton), newton, x),
                         np.where(stuck, x, step))
            if (converged | stuck).all():
                break
        out.append(x)
    return np.array(out)


def normal_mixture_summary(mean: np.ndarray, sd: np.ndarray, ci_prob: float,
                           weight: np.ndarray | None = None) -> dict[str, np.ndarray]:
    r"""Exact summary of normal mixtures, one mixture per column.

    Parameters
    ----------
    mean, sd, weight : numpy.ndarray
        As in :func:`normal_mixture_quantiles`, shape ``(components, units)``.
    ci_prob : float
        Mass of the equal-tailed interval.

    Returns
    -------
    dict of str to numpy.ndarray
        ``mean``, ``sd`` (by the law of total variance,
        :math:`\sum_d w_d (s_d^2 + (\mu_d - m)^2)`), ``ci_lower``, ``ci_upper``
        and ``prob_positive`` (:math:`\sum_d w_d \Phi(\mu_d / s_d)`), one value
        per unit.
    """
    mean, sd = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(sd, dtype=float))
    if weight is None:
        weight = np.full(mean.shape, 1.0 / mean.shape[0])
    m = np.sum(weight * mean, axis=0)
    var = np.sum(weight * (sd**2 + (mean - m) ** 2), axis=0)
    tail = (1.0 - ci_prob) / 2
    lower, upper = normal_mixture_quantiles(mean, sd, [tail, 1.0 - tail], weight)
    positive = sd > 0
    above = np.where(positive, special.ndtr(mean / np.where(positive, sd, 1.0)), mean > 0)
    return {"mean": m, "sd": np.sqrt(var), "ci_lower": lower, "ci_upper": upper,
            "prob_positive": np.sum(weight * above, axis=0)}
