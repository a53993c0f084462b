r"""Two-arm Bayesian comparisons from plain numbers: Beta-binomial and normal.

The two models behind :func:`models.experiments.engine.analyze`, for one or many
comparisons given as arrays: :func:`beta_binomial` (exact, by quadrature) for
binomial rates, :func:`beta_posterior` for one rate, and :func:`normal_effect`
for two normal estimates of means (any metric with the delta method). All return
the columns of the effect table of :func:`~models.experiments.engine.analyze`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import special

from models.experiments._beta import compare_betas
from models.experiments._checks import check_prior, check_probability, check_rope

__all__ = ["beta_binomial", "beta_posterior", "normal_effect"]


# --------------------------------------------------------------------------- numerics
def _loss(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """E[max(-X, 0)] for X ~ Normal(mean, sd): sd phi(m/sd) - m Phi(-m/sd); sd = 0 allowed."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = mean / sd
        out = sd * np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi) - mean * special.ndtr(-z)
    return np.where(sd > 0, out, np.maximum(-mean, 0.0))


def normal_rows(
    m_a: np.ndarray,
    v_a: np.ndarray,
    m_b: np.ndarray,
    v_b: np.ndarray,
    direction: np.ndarray,
    ci_prob: float,
    normal_prior: tuple[str, float, float] | None,
    rope: np.ndarray,
) -> dict[str, np.ndarray]:
    """Effect, lift and decision quantities of the normal model, row by row (arrays)."""
    effect, effect_var = m_b - m_a, v_a + v_b
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.where(m_a != 0, m_b / m_a - 1, np.nan)
        lift_var = np.where(m_a != 0, v_b / m_a**2 + m_b**2 * v_a / m_a**4, np.nan)
    if normal_prior is not None:
        scale, p_mean, p_sd = normal_prior
        # the same prior on the other scale, through the control mean
        if scale == "lift":
            priors = ((p_mean, p_sd), (p_mean * m_a, p_sd * np.abs(m_a)))
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                priors = ((p_mean / m_a, p_sd / np.abs(m_a)), (p_mean, p_sd))
        out = []
        for (est, var), (mu0, sd0) in zip(((lift, lift_var), (effect, effect_var)), priors,
                                          strict=True):
            with np.errstate(divide="ignore", invalid="ignore"):
                prec = 1 / var + 1 / sd0**2
                out.append(((est / var + mu0 / sd0**2) / prec, 1 / prec))
        (lift, lift_var), (effect, effect_var) = out
    effect_sd, lift_sd = np.sqrt(effect_var), np.sqrt(lift_var)
    z = special.ndtri((1 + ci_prob) / 2)
    # P(better) on the relative scale (the published convention); absolute if no lift
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(np.isfinite(lift), lift / lift_sd, effect / effect_sd)
    prob = special.ndtr(direction * score)
    prob = np.where(np.isnan(score), np.nan, prob)
    good = direction * effect  # > 0: the treatment is better
    with np.errstate(invalid="ignore"):
        prob_rope = special.ndtr((rope - lift) / lift_sd) - special.ndtr((-rope - lift) / lift_sd)
    return {
        "mean_control": m_a,
        "mean_treatment": m_b,
        "effect": effect,
        "effect_sd": effect_sd,
        "effect_ci_lower": effect - z * effect_sd,
        "effect_ci_upper": effect + z * effect_sd,
        "lift": lift,
        "lift_sd": lift_sd,
        "lift_ci_lower": lift - z * lift_sd,
        "lift_ci_upper": lift + z * lift_sd,
        "prob_better": prob,
        "expected_loss_ship": _loss(good, effect_sd),
        "expected_loss_keep": _loss(-good, effect_sd),
        "prob_rope": prob_rope,
    }


def beta_rows(
    s_a: np.ndarray,
    n_a: np.ndarray,
    s_b: np.ndarray,
    n_b: np.ndarray,
    direction: np.ndarray,
    ci_prob: float,
    beta_prior: tuple[float, float],
    rope: np.ndarray,
) -> dict[str, np.ndarray]:
    """Effect, lift and decision quantities of the Beta-binomial model, row by row (arrays)."""
    a0, b0 = beta_prior
    a_a, b_a, a_b, b_b = a0 + s_a, b0 + n_a - s_a, a0 + s_b, b0 + n_b - s_b
    res = compare_betas(a_a, b_a, a_b, b_b, ci_prob=ci_prob, rope=rope)
    m_a, m_b = a_a / (a_a + b_a), a_b / (a_b + b_b)
    var = m_a * (1 - m_a) / (a_a + b_a + 1) + m_b * (1 - m_b) / (a_b + b_b + 1)
    up = direction > 0
    return {
        "mean_control": m_a,
        "mean_treatment": m_b,
        "effect": m_b - m_a,
        "effect_sd": np.sqrt(var),
        "effect_ci_lower": res.diff_ci[0],
        "effect_ci_upper": res.diff_ci[1],
        "lift": res.lift_mean,
        "lift_sd": res.lift_sd,
        "lift_ci_lower": res.lift_ci[0],
        "lift_ci_upper": res.lift_ci[1],
        "prob_better": np.where(up, res.prob_b_greater, 1 - res.prob_b_greater),
        "expected_loss_ship": np.where(up, res.loss_a_greater, res.loss_b_greater),
        "expected_loss_keep": np.where(up, res.loss_b_greater, res.loss_a_greater),
        "prob_rope": res.prob_rope,
    }


def _frame(columns: dict[str, np.ndarray], index: pd.Index, ci_prob: float) -> pd.DataFrame:
    frame = pd.DataFrame(columns, index=index)
    frame.attrs["ci_prob"] = ci_prob
    return frame


def _as_arrays(owner: str, **arrays: ArrayLike) -> list[np.ndarray]:
    out = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=float)) for a in
                                arrays.values()))  # fmt: skip
    for name, arr in zip(arrays, out, strict=True):
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"The '{name}' parameter of {owner} must hold finite numbers. "
                f"Got {arrays[name]!r} instead."
            )
    return [np.ravel(a) for a in out]


def _direction(higher_is_better: ArrayLike, size: int) -> np.ndarray:
    return np.where(np.broadcast_to(np.asarray(higher_is_better, dtype=bool), (size,)), 1.0, -1.0)


# ------------------------------------------------------------------ low-level API
def beta_binomial(
    successes_a: ArrayLike,
    n_a: ArrayLike,
    successes_b: ArrayLike,
    n_b: ArrayLike,
    *,
    prior: tuple[float, float] = (1.0, 1.0),
    ci_prob: float = 0.95,
    higher_is_better: ArrayLike = True,
    rope: float | None = None,
) -> pd.DataFrame:
    r"""Compare two binomial rates with conjugate Beta posteriors, exactly.

    Parameters
    ----------
    successes_a, n_a : array_like
        Successes and trials of the control (arrays broadcast together).
    successes_b, n_b : array_like
        Successes and trials of the treatment.
    prior : (float, float), default (1, 1)
        Beta(a, b) prior of each rate; (0.5, 0.5) is Jeffreys'.
    ci_prob : float, default 0.95
        Probability of the equal-tailed intervals.
    higher_is_better : bool or array_like of bool, default True
        Direction of "better" for ``prob_better`` and the expected losses.
    rope : float, optional
        Half-width of the region of practical equivalence on the relative scale:
        ``prob_rope`` is :math:`P(|p_B / p_A - 1| < \text{rope})`.

    Returns
    -------
    pandas.DataFrame
        One row per comparison, the numeric columns of :data:`EFFECT_COLUMNS`
        from ``n_control`` to ``prob_rope``; ``attrs["ci_prob"]``.

    Raises
    ------
    ValueError
        If a count is negative, not finite or above its number of trials, or an
        option is invalid.

    See Also
    --------
    beta_posterior : the single-arm posteriors.
    analyze : the same from a statistics table, for many metrics at once.

    Notes
    -----
    The posteriors are :math:`p_A \sim \mathrm{Beta}(a + s_A, b + n_A - s_A)` and
    likewise for B. ``prob_better`` is
    :math:`P(p_B > p_A) = \int f_B(x) F_A(x)\, dx`, computed by quadrature over
    the narrower posterior (exact to about :math:`10^{-8}`); the expected losses
    :math:`E[\max(p_A - p_B, 0)]` and :math:`E[\max(p_B - p_A, 0)]` use the same
    nodes and :math:`E[(x - Y)^+] = x I_x(a, b) - \frac{a}{a+b} I_x(a+1, b)`.
    The intervals of :math:`p_B - p_A` and :math:`p_B / p_A - 1` invert their
    CDFs, themselves one-dimensional integrals. ``lift`` and ``lift_sd`` are the
    exact posterior mean and sd of :math:`p_B / p_A - 1`,
    :math:`E[p_B] E[1/p_A] - 1`, which exist when the control's posterior shape
    :math:`a_A > 1` (mean) and :math:`> 2` (sd); NaN otherwise.

    References
    ----------
    Miller, E. (2015). Formulas for Bayesian A/B testing.
    https://www.evanmiller.org/bayesian-ab-testing.html

    Examples
    --------
    Jeffreys prior, 42 of 104 in control and 500 of 1,009 in the treatment:

    >>> out = beta_binomial(42, 104, 500, 1009, prior=(0.5, 0.5))
    >>> round(float(out["prob_better"].iloc[0]), 5)
    0.96291
    """
    owner = "beta_binomial"
    ci_prob = check_probability(owner, "ci_prob", ci_prob)
    beta, _ = check_prior(owner, {"beta": prior})
    s_a, n_a, s_b, n_b = _as_arrays(owner, successes_a=successes_a, n_a=n_a,
                                    successes_b=successes_b, n_b=n_b)  # fmt: skip
    for name, s, n in (("successes_a", s_a, n_a), ("successes_b", s_b, n_b)):
        if np.any(s < 0) or np.any(s > n):
            raise ValueError(
                f"The '{name}' parameter of {owner} must be between 0 and the number of "
                f"trials. Got {s!r} of {n!r} instead."
            )
    rope_arr = check_rope(owner, rope, [""] * s_a.size)
    rows = beta_rows(s_a, n_a, s_b, n_b, _direction(higher_is_better, s_a.size), ci_prob,
                      beta, rope_arr)  # fmt: skip
    return _frame({"n_control": n_a, "n_treatment": n_b, **rows}, pd.RangeIndex(s_a.size),
                  ci_prob)  # fmt: skip


def beta_posterior(
    successes: ArrayLike,
    n: ArrayLike,
    *,
    prior: tuple[float, float] = (1.0, 1.0),
    ci_prob: float = 0.95,
) -> pd.DataFrame:
    r"""Posterior of one binomial rate: mean, sd and equal-tailed interval.

    Parameters
    ----------
    successes, n : array_like
        Successes and trials (broadcast together).
    prior : (float, float), default (1, 1)
        Beta(a, b) prior.
    ci_prob : float, default 0.95
        Probability of the interval.

    Returns
    -------
    pandas.DataFrame
        Columns ``mean``, ``sd``, ``ci_lower``, ``ci_upper``; ``attrs["ci_prob"]``.

    Raises
    ------
    ValueError
        If a count is negative or above ``n``, or an option is invalid.

    Notes
    -----
    :math:`p \sim \mathrm{Beta}(a + s, b + n - s)`; the bounds are its
    :math:`(1 \mp \text{ci\_prob})/2` quantiles.

    Examples
    --------
    >>> beta_posterior([42, 500], [104, 1009], prior=(0.5, 0.5)).round(5)
          mean       sd  ci_lower  ci_upper
    0  0.40476  0.04768   0.31324   0.49972
    1  0.49554  0.01572   0.46474   0.52637
    """
    owner = "beta_posterior"
    ci_prob = check_probability(owner, "ci_prob", ci_prob)
    (a0, b0), _ = check_prior(owner, {"beta": prior})
    s, n = _as_arrays(owner, successes=successes, n=n)
    if np.any(s < 0) or np.any(s > n):
        raise ValueError(
            f"The 'successes' parameter of {owner} must be between 0 and n. "
            f"Got {successes!r} of {n!r} instead."
        )
    a, b = a0 + s, b0 + n - s
    mean = a / (a + b)
    return _frame(
        {
            "mean": mean,
            "sd": np.sqrt(mean * (1 - mean) / (a + b + 1)),
            "ci_lower": special.betaincinv(a, b, (1 - ci_prob) / 2),
            "ci_upper": special.betaincinv(a, b, (1 + ci_prob) / 2),
        },
        pd.RangeIndex(s.size),
        ci_prob,
    )


def normal_effect(
    mean_a: ArrayLike,
    var_a: ArrayLike,
    mean_b: ArrayLike,
    var_b: ArrayLike,
    *,
    ci_prob: float = 0.95,
    higher_is_better: ArrayLike = True,
    prior: Mapping[str, tuple[float, float]] | None = None,
    rope: float | None = None,
) -> pd.DataFrame:
    r"""Absolute and relative effect of B over A from normal estimates of the two means.

    Parameters
    ----------
    mean_a, var_a : array_like
        Estimate of the control's mean and its variance (the squared standard
        error, e.g. :math:`s^2/n`, or :math:`p(1-p)/n` for a rate).
    mean_b, var_b : array_like
        The same for the treatment.
    ci_prob : float, default 0.95
        Probability of the equal-tailed intervals.
    higher_is_better : bool or array_like of bool, default True
        Direction of "better".
    prior : mapping, optional
        ``{"lift": (mean, sd)}``: a normal prior on the relative effect, or
        ``{"effect": (mean, sd)}``: on the absolute effect. None: flat.
    rope : float, optional
        Half-width of the region of practical equivalence of the lift.

    Returns
    -------
    pandas.DataFrame
        Columns ``mean_control`` to ``prob_rope`` of :data:`EFFECT_COLUMNS`.

    Raises
    ------
    ValueError
        If a variance is negative or an option is invalid.

    Notes
    -----
    With :math:`\Delta = m_B - m_A \sim N(\cdot, v_A + v_B)` and, by the delta method,
    the lift :math:`L = m_B / m_A - 1` with

    .. math::

        \mathrm{Var}(L) = \frac{v_B}{m_A^2} + \frac{m_B^2 v_A}{m_A^4},

    the flat-prior posterior is the normal likelihood. A prior
    :math:`N(\mu_0, \sigma_0^2)` on one scale is carried to the other through the
    control mean (:math:`\Delta \approx m_A L`) and updated conjugately on both:
    precision :math:`1/v + 1/\sigma_0^2`, mean the precision-weighted average.
    ``prob_better`` is :math:`\Phi(\pm L / sd_L)` (the absolute scale when the
    control mean is 0), the expected losses are on the absolute scale,
    :math:`E[\max(-X, 0)] = \sigma \varphi(m/\sigma) - m \Phi(-m/\sigma)` for
    :math:`X \sim N(m, \sigma^2)` the gain of shipping, and ``prob_rope`` is
    :math:`P(|L| < \text{rope})`.

    References
    ----------
    Deng, A., Knoblich, U. and Lu, J. (2018). Applying the delta method in metric
    analytics: a practical guide with novel ideas. *KDD 2018*.

    Examples
    --------
    Rates of 49/100 and 51/100, variances :math:`p(1-p)/n`:

    >>> out = normal_effect(0.49, 0.49 * 0.51 / 100, 0.51, 0.51 * 0.49 / 100)
    >>> out[["lift", "lift_sd", "prob_better"]].round(5)
          lift  lift_sd  prob_better
    0  0.04082  0.14725      0.60918
    """
    owner = "normal_effect"
    ci_prob = check_probability(owner, "ci_prob", ci_prob)
    _, normal_prior = check_prior(owner, prior)
    m_a, v_a, m_b, v_b = _as_arrays(owner, mean_a=mean_a, var_a=var_a, mean_b=mean_b,
                                    var_b=var_b)  # fmt: skip
    for name, v in (("var_a", v_a), ("var_b", v_b)):
        if np.any(v < 0):
            raise ValueError(
                f"The '{name}' parameter of {owner} must be non-negative. Got {v!r} instead."
            )
    rope_arr = check_rope(owner, rope, [""] * m_a.size)
    rows = normal_rows(m_a, v_a, m_b, v_b, _direction(higher_is_better, m_a.size), ci_prob,
                        normal_prior, rope_arr)  # fmt: skip
    return _frame(rows, pd.RangeIndex(m_a.size), ci_prob)
