r"""The numpy core of :class:`~models.experiments.ExperimentHistoryModel`.

Given posterior draws of the population parameters :math:`(\mu, \tau[, \nu])`,
the prior of a new experiment's true effect is a mixture of normals, one
component per draw (and per drawn tail weight with a Student-t population):
:func:`prior_components`. A new estimate updates each component conjugately
(:func:`conjugate_update`), and the components are reweighted by the estimate's
marginal likelihood; :func:`shrink_estimates` summarises or samples the result
block by block. :func:`tail_shrinkage` gives the shrinkage factors of the past
experiments under a Student-t population, and :func:`loo_pit` the
leave-one-out predictive check. :func:`estimate_heterogeneity`, the classical
moment estimate of :math:`\tau` (public in :mod:`models.experiments`), also
chooses the parameterisation of the hierarchies of the history and segment models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special, stats

from models.experiments._mixtures import normal_mixture_summary

__all__ = [
    "check_new_estimates",
    "conjugate_update",
    "estimate_heterogeneity",
    "loo_pit",
    "prior_components",
    "sample_mixture",
    "shrink_estimates",
    "tail_shrinkage",
]

#: with a Student-t population, latent tail weights are drawn until the posterior draws
#: times the weights per draw reach this many mixture components
TAIL_COMPONENTS = 8000
#: mixture components x experiments evaluated at once (memory bound of shrink_estimates)
BLOCK_ELEMENTS = 2_000_000
#: quantiles of a tail weight's conditional posterior averaged over (tail_shrinkage)
TAIL_QUANTILES = 16


def estimate_heterogeneity(
    estimate: Sequence[float] | np.ndarray, std_error: Sequence[float] | np.ndarray
) -> float:
    r"""Estimate the spread of true effects, :math:`\tau`, by the DerSimonian-Laird method.

    The classical (non-Bayesian) moment estimate of a random-effects
    meta-analysis: quick, and a check on :class:`~models.experiments.ExperimentHistoryModel`'s
    posterior of :math:`\tau`. The models of this package also use it to
    choose how to parameterise their hierarchies.

    Parameters
    ----------
    estimate : array-like
        Estimated effects :math:`y_j` (at least two).
    std_error : array-like
        Their standard errors :math:`s_j > 0`.

    Returns
    -------
    float
        :math:`\hat\tau \ge 0`; 0 when the estimates vary no more than their
        standard errors explain.

    Raises
    ------
    ValueError
        If there are fewer than two estimates, the lengths differ, or a value is
        not finite or a standard error not positive.

    Notes
    -----
    With weights :math:`w_j = 1/s_j^2`, the weighted mean :math:`\bar y_w` and
    Cochran's :math:`Q = \sum_j w_j (y_j - \bar y_w)^2`,

    .. math::

        \hat\tau^2 = \max\Big(0, \frac{Q - (J - 1)}{\sum_j w_j -
        \sum_j w_j^2 / \sum_j w_j}\Big).

    References
    ----------
    .. [1] DerSimonian, R. and Laird, N. (1986). Meta-analysis in clinical
       trials. Controlled Clinical Trials 7(3), 177-188.

    Examples
    --------
    The eight schools vary less than their standard errors explain:

    >>> estimate_heterogeneity([28, 8, -3, 7, -1, 1, 18, 12], [15, 10, 16, 11, 9, 11, 10, 18])
    0.0
    >>> round(estimate_heterogeneity([0.05, -0.02, 0.01, 0.04], [0.01, 0.01, 0.02, 0.01]), 4)
    0.0336
    """
    y = np.asarray(estimate, dtype=float)
    s = np.asarray(std_error, dtype=float)
    if y.ndim != 1 or y.shape != s.shape or y.size < 2:
        raise ValueError("The 'estimate' and 'std_error' parameters of estimate_heterogeneity "
                         "must be two 1-d arrays of the same length, at least 2. Got "
                         f"shapes {y.shape} and {s.shape} instead.")
    if not (np.isfinite(y).all() and np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("The 'estimate' and 'std_error' parameters of estimate_heterogeneity "
                         "must be finite, with positive standard errors. Got "
                         f"{estimate!r} and {std_error!r} instead.")
    w = 1.0 / s**2
    mean = np.sum(w * y) / np.sum(w)
    q = np.sum(w * (y - mean) ** 2)
    tau2 = (q - (y.size - 1)) / (np.sum(w) - np.sum(w**2) / np.sum(w))
    return float(np.sqrt(max(0.0, tau2)))


def prior_components(mu: np.ndarray, tau: np.ndarray, nu: np.ndarray | None,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    r"""Means and sds of the prior of a new true effect: one normal per component.

    One component per posterior draw of :math:`(\mu, \tau)`; with ``nu`` (a
    Student-t population), :math:`\lceil 8000 / D \rceil` per draw, each with a
    tail weight :math:`w \sim \mathrm{Gamma}(\nu/2, \nu/2)` and sd :math:`\tau/\sqrt{w}`.
    """
    if nu is None:
        return mu, tau
    per_draw = max(1, int(np.ceil(TAIL_COMPONENTS / mu.size)))
    nu = np.repeat(nu, per_draw)
    w = rng.gamma(nu / 2, 2 / nu)
    return np.repeat(mu, per_draw), np.repeat(tau, per_draw) / np.sqrt(w)


def conjugate_update(y: np.ndarray, s: np.ndarray, mean: np.ndarray,
                     sd: np.ndarray) -> tuple[np.ndarray, ...]:
    r"""Per prior component (rows) and new estimate (columns): the normal update.

    Returns the posterior means and sds, the mixture weights (proportional to the
    estimate's marginal likelihood, normalised over components) and the
    shrinkage factors :math:`s^2/(s^2 + \mathrm{sd}^2)`.
    """
    v, s2 = sd[:, None] ** 2, s[None, :] ** 2
    factor = s2 / (v + s2)
    post_mean = factor * mean[:, None] + (1 - factor) * y[None, :]
    logw = stats.norm.logpdf(y[None, :], mean[:, None], np.sqrt(v + s2))
    weight = np.exp(logw - special.logsumexp(logw, axis=0, keepdims=True))
    return post_mean, np.sqrt(factor * v), weight, factor


def sample_mixture(mean: np.ndarray, sd: np.ndarray, weight: np.ndarray, n: int,
                   rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of each column's normal mixture; arrays (components, units)."""
    cum = np.cumsum(weight, axis=0)
    u = rng.random((n, mean.shape[1])) * cum[-1]
    pick = np.column_stack([np.searchsorted(cum[:, j], u[:, j]) for j in range(u.shape[1])])
    pick = np.minimum(pick, mean.shape[0] - 1)
    cols = np.arange(mean.shape[1])
    return mean[pick, cols] + sd[pick, cols] * rng.standard_normal(pick.shape)


def shrink_estimates(y: np.ndarray, s: np.ndarray, mean: np.ndarray, sd: np.ndarray, *,
                     ci_prob: float, n_draws: int | None,
                     rng: np.random.Generator) -> pd.DataFrame | np.ndarray:
    """Posterior of new true effects given estimates ``y`` with standard errors ``s``.

    ``mean`` and ``sd`` are the prior components (:func:`prior_components`).
    Returns the summary (``estimate``, ``std_error``, ``mean``, ``sd``,
    ``ci_lower``, ``ci_upper``, ``prob_positive``, ``shrinkage``), or, with
    ``n_draws``, that many draws per estimate, shape (draw, estimate).
    """
    block = max(1, BLOCK_ELEMENTS // mean.size)
    parts = []
    for lo in range(0, y.size, block):
        yb, sb = y[lo:lo + block], s[lo:lo + block]
        post_mean, post_sd, weight, factor = conjugate_update(yb, sb, mean, sd)
        if n_draws is not None:
            parts.append(sample_mixture(post_mean, post_sd, weight, n_draws, rng))
            continue
        frame = pd.DataFrame(normal_mixture_summary(post_mean, post_sd, ci_prob, weight))
        frame.insert(0, "std_error", sb)
        frame.insert(0, "estimate", yb)
        frame["shrinkage"] = np.sum(weight * factor, axis=0)
        parts.append(frame)
    if n_draws is not None:
        return np.concatenate(parts, axis=1)
    return pd.concat(parts, ignore_index=True)


def tail_shrinkage(theta: np.ndarray, mu: np.ndarray, tau: np.ndarray, nu: np.ndarray,
                   s2: np.ndarray) -> np.ndarray:
    r"""Shrinkage factors :math:`s_j^2/(s_j^2 + \tau^2/w_j)` of a Student-t population.

    Per posterior draw (rows) and experiment (columns), averaged over quantiles
    of the tail weight's conditional posterior :math:`w_j \mid z_j, \nu \sim
    \mathrm{Gamma}((\nu + 1)/2, \text{rate } (\nu + z_j^2)/2)`,
    :math:`z_j = (\theta_j - \mu)/\tau`.
    """
    v = tau[:, None] ** 2
    nu = nu[:, None, None]
    q = (np.arange(TAIL_QUANTILES) + 0.5) / TAIL_QUANTILES
    z = (theta - mu[:, None]) / tau[:, None]
    w = special.gammaincinv((nu + 1) / 2, q) * 2 / (nu + z[..., None] ** 2)
    return np.mean(s2[:, None] / (s2[:, None] + v[..., None] / w), axis=-1)


def loo_pit(y: np.ndarray, s: np.ndarray, mean: np.ndarray, sd: np.ndarray,
            n_draws: int) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out PIT and Pareto k of each past estimate.

    ``mean`` and ``sd`` hold the prior components, ``n_draws`` consecutive groups
    of equally many (one group per posterior draw).
    """
    per_draw = mean.size // n_draws
    scale = np.sqrt(sd[:, None] ** 2 + s[None, :] ** 2)
    shape = (n_draws, per_draw, y.size)
    loglik = special.logsumexp(stats.norm.logpdf(y, mean[:, None], scale).reshape(shape),
                               axis=1) - np.log(per_draw)
    cdf = special.ndtr((y - mean[:, None]) / scale).reshape(shape).mean(axis=1)
    # ratios that (nearly) do not vary give (nearly) equal weights: nothing to smooth,
    # and the Pareto fit of PSIS is undefined (a MAP fit has a single draw)
    varies = np.ptp(loglik, axis=0) > 1e-8
    weights = np.full(loglik.shape, 1.0 / n_draws)
    khat = np.full(y.size, np.nan)
    if varies.any():
        ratios = xr.DataArray(-loglik[:, varies], dims=("sample", "experiment"))
        log_w, k = ratios.azstats.psislw(dim="sample")
        weights[:, varies] = np.exp(log_w.transpose("sample", "experiment").values)
        khat[varies] = k.values
    return np.clip(np.sum(weights * cdf, axis=0), 0.0, 1.0), khat


def check_new_estimates(estimate: Any, std_error: Any,
                        owner: str) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Check new estimates and standard errors; return them as arrays and their index."""
    index = next((v.index for v in (estimate, std_error) if isinstance(v, pd.Series)), None)
    try:
        y = np.atleast_1d(np.asarray(estimate, dtype=float))
        s = np.atleast_1d(np.asarray(std_error, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"The 'estimate' and 'std_error' parameters of {owner} must be "
                         f"numbers. Got {estimate!r} and {std_error!r} instead.") from None
    if y.ndim != 1 or s.ndim != 1 or (s.size != 1 and s.size != y.size):
        raise ValueError(f"The 'std_error' parameter of {owner} must be a number or have "
                         f"the length of 'estimate' ({y.size}). Got {std_error!r} instead.")
    if not np.isfinite(y).all() or y.size == 0:
        raise ValueError(f"The 'estimate' parameter of {owner} must be finite numbers. "
                         f"Got {estimate!r} instead.")
    if not (np.isfinite(s) & (s > 0)).all():
        raise ValueError(f"The 'std_error' parameter of {owner} must be positive numbers. "
                         f"Got {std_error!r} instead.")
    s = np.broadcast_to(s, y.shape).astype(float)
    if index is None or len(index) != y.size:
        index = pd.RangeIndex(y.size)
    return y, s, index
