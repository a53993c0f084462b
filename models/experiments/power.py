r"""Planning: how many users an experiment needs, and what it can detect.

An experiment *detects* a relative lift :math:`\ell` on a metric with baseline
mean :math:`\mu` when its ``ci_prob`` interval of the effect excludes zero
(equivalently, with a flat prior, when P(better) reaches
:math:`(1 + \text{ci\_prob})/2` one way or the other). With a share :math:`a` of
the users in the treatment, per-user standard deviations :math:`\sigma_A` and
:math:`\sigma_B` and :math:`N` users in total, the standard error of the effect
is :math:`\sqrt{\sigma_A^2 / ((1-a)N) + \sigma_B^2 / (aN)}` and the power is
about :math:`\Phi(\mu|\ell| / se - k)`, so

.. math::

    N = \frac{(k + z_{\text{power}})^2}{(\mu \ell)^2}
        \left(\frac{\sigma_A^2}{1 - a} + \frac{\sigma_B^2}{a}\right) (1 - \rho^2),

where :math:`k = z_{(1+\text{ci\_prob})/2}` (1.96 at 95%), or, for the
sequential mode, the half-width in standard errors of the confidence sequence at
its tuning point (about 3.04 at 95%; :mod:`models.experiments.sequential`).
:math:`\rho^2` is the variance reduction of CUPED (the squared correlation of the
metric with its pre-period value; ``variance_reduction`` in the effect table of a
past experiment). For a binary metric :math:`\sigma^2 = p(1-p)` in each arm, at
:math:`p = \mu` and :math:`p = \mu(1 + \ell)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize, special

from models._validation import check_positive_int
from models.experiments._checks import check_bool, check_probability, check_real
from models.experiments.sequential import sequential_multiplier

__all__ = ["SampleSize", "minimum_detectable_lift", "sample_size"]


@dataclass(frozen=True)
class SampleSize:
    """Users needed by an experiment.

    Attributes
    ----------
    n_control, n_treatment : int
        Users in each arm (rounded up).
    n_total : int
        Both arms together.
    relative_lift, power, ci_prob, allocation, variance_reduction : float
        The inputs.
    sequential : bool
        Whether the sizes are for the sequential mode (tuned at ``n_total``).
    """

    n_control: int
    n_treatment: int
    n_total: int
    relative_lift: float
    power: float
    ci_prob: float
    allocation: float
    variance_reduction: float
    sequential: bool

    def __str__(self) -> str:
        mode = ", sequential" if self.sequential else ""
        return (
            f"{self.n_total:,} users ({self.n_control:,} control, {self.n_treatment:,} "
            f"treatment) to detect a {self.relative_lift:+.2%} lift with power "
            f"{self.power:.0%} at {self.ci_prob:.0%}{mode}"
        )


def _variances(owner: str, baseline_mean: float, baseline_sd: float | None, lift: float):
    if baseline_sd is None:  # binary
        if not 0 < baseline_mean < 1:
            raise ValueError(
                f"The 'baseline_mean' parameter of {owner} must be a rate in (0, 1) for a "
                f"binary metric (no baseline_sd). Got {baseline_mean!r} instead."
            )
        p_b = baseline_mean * (1 + lift)
        if not 0 < p_b < 1:
            raise ValueError(
                f"The 'relative_lift' parameter of {owner} takes the rate "
                f"{baseline_mean!r} to {p_b!r}, outside (0, 1). Got {lift!r} instead."
            )
        return baseline_mean * (1 - baseline_mean), p_b * (1 - p_b)
    sd = check_real(owner, "baseline_sd", baseline_sd, low=0.0, strict=True)
    return sd**2, sd**2


def _check_common(owner, baseline_mean, ci_prob, power, allocation, variance_reduction,
                  sequential):  # fmt: skip
    baseline_mean = check_real(owner, "baseline_mean", baseline_mean)
    if baseline_mean == 0:
        raise ValueError(
            f"The 'baseline_mean' parameter of {owner} must be non-zero (the lift is relative "
            "to it). Got 0 instead."
        )
    ci_prob = check_probability(owner, "ci_prob", ci_prob)
    power = check_probability(owner, "power", power)
    allocation = check_probability(owner, "allocation", allocation)
    variance_reduction = check_real(owner, "variance_reduction", variance_reduction, low=0.0)
    if variance_reduction >= 1:
        raise ValueError(
            f"The 'variance_reduction' parameter of {owner} must be in [0, 1). "
            f"Got {variance_reduction!r} instead."
        )
    check_bool(owner, "sequential", sequential)
    k = sequential_multiplier(ci_prob) if sequential else special.ndtri((1 + ci_prob) / 2)
    return baseline_mean, ci_prob, power, allocation, variance_reduction, k


def _n_total(var_a, var_b, delta, k, power, allocation, variance_reduction) -> float:
    z = k + special.ndtri(power)
    return z**2 * (var_a / (1 - allocation) + var_b / allocation) * (
        1 - variance_reduction
    ) / delta**2


def sample_size(
    *,
    baseline_mean: float,
    relative_lift: float,
    baseline_sd: float | None = None,
    ci_prob: float = 0.95,
    power: float = 0.8,
    allocation: float = 0.5,
    variance_reduction: float = 0.0,
    sequential: bool = False,
) -> SampleSize:
    r"""Users needed to detect a relative lift with the given power.

    Parameters
    ----------
    baseline_mean : float
        Mean of the metric in the control (a rate for a binary metric).
    relative_lift : float
        The lift to detect, relative to ``baseline_mean`` (0.05: +5%; negative
        for a decrease).
    baseline_sd : float, optional
        Per-user standard deviation of the metric (for a ratio metric, of its
        linearisation :math:`(y - R d)/\bar d`). None: a binary metric, whose
        sd follows from the rate.
    ci_prob : float, default 0.95
        Probability of the interval that must exclude zero (two-sided test at
        :math:`1 -` ``ci_prob``).
    power : float, default 0.8
        Probability of detecting the lift when it is real.
    allocation : float, default 0.5
        Share of the users in the treatment.
    variance_reduction : float, default 0.0
        Expected CUPED variance reduction :math:`\rho^2`, in [0, 1).
    sequential : bool, default False
        Size for the sequential mode, tuned at the returned total
        (``analyze(..., sequential=True, sequential_n=result.n_total)``).

    Returns
    -------
    SampleSize
        Users per arm and in total.

    Raises
    ------
    ValueError
        For invalid inputs (named with their value).

    Notes
    -----
    :math:`N = (k + z_{power})^2 (\sigma_A^2/(1-a) + \sigma_B^2/a)(1-\rho^2) /
    (\mu\ell)^2`; see the module documentation. With ``allocation=0.5`` this is
    the textbook two-sample formula :math:`n = (z_{1-\alpha/2} + z_{1-\beta})^2
    (\sigma_A^2 + \sigma_B^2) / \delta^2` per arm (with the unpooled variance for
    rates).

    References
    ----------
    Chow, S.-C., Shao, J. and Wang, H. (2008). *Sample Size Calculations in
    Clinical Research*, 2nd ed., sections 3.2 and 4.2.

    Examples
    --------
    A conversion rate of 10%, +5% relative, 95% and power 80%:

    >>> print(sample_size(baseline_mean=0.10, relative_lift=0.05))
    115,520 users (57,760 control, 57,760 treatment) to detect a +5.00% lift with power 80% at 95%
    """
    owner = "sample_size"
    baseline_mean, ci_prob, power, allocation, variance_reduction, k = _check_common(
        owner, baseline_mean, ci_prob, power, allocation, variance_reduction, sequential
    )
    lift = check_real(owner, "relative_lift", relative_lift)
    if lift == 0:
        raise ValueError(
            f"The 'relative_lift' parameter of {owner} must be non-zero. Got 0 instead."
        )
    var_a, var_b = _variances(owner, baseline_mean, baseline_sd, lift)
    n = _n_total(var_a, var_b, baseline_mean * lift, k, power, allocation, variance_reduction)
    n_control = math.ceil((1 - allocation) * n - 1e-9)
    n_treatment = math.ceil(allocation * n - 1e-9)
    return SampleSize(
        n_control=n_control,
        n_treatment=n_treatment,
        n_total=n_control + n_treatment,
        relative_lift=lift,
        power=power,
        ci_prob=ci_prob,
        allocation=allocation,
        variance_reduction=variance_reduction,
        sequential=bool(sequential),
    )


def minimum_detectable_lift(
    n_total: int,
    *,
    baseline_mean: float,
    baseline_sd: float | None = None,
    ci_prob: float = 0.95,
    power: float = 0.8,
    allocation: float = 0.5,
    variance_reduction: float = 0.0,
    sequential: bool = False,
) -> float:
    r"""Smallest relative lift (an increase) that ``n_total`` users detect with the power.

    Parameters
    ----------
    n_total : int
        Users in both arms together.
    baseline_mean, baseline_sd, ci_prob, power, allocation, variance_reduction, sequential
        As in :func:`sample_size`.

    Returns
    -------
    float
        The relative lift :math:`\ell > 0`; for a binary metric it solves
        :func:`sample_size` exactly (the treatment's variance depends on it).

    Raises
    ------
    ValueError
        For invalid inputs, or a binary metric whose rate cannot rise enough.

    Notes
    -----
    For a continuous metric :math:`\ell = (k + z_{power})\, \sigma
    \sqrt{(1/(1-a) + 1/a)(1 - \rho^2) / N} / \mu`.

    Examples
    --------
    >>> round(minimum_detectable_lift(115_520, baseline_mean=0.10), 4)
    0.05
    """
    owner = "minimum_detectable_lift"
    check_positive_int(owner, "n_total", n_total)
    baseline_mean, ci_prob, power, allocation, variance_reduction, k = _check_common(
        owner, baseline_mean, ci_prob, power, allocation, variance_reduction, sequential
    )

    def excess(lift: float) -> float:
        var_a, var_b = _variances(owner, baseline_mean, baseline_sd, lift)
        return _n_total(var_a, var_b, baseline_mean * lift, k, power, allocation,
                        variance_reduction) - n_total  # fmt: skip

    if baseline_sd is not None:
        var = check_real(owner, "baseline_sd", baseline_sd, low=0.0, strict=True) ** 2
        z = k + special.ndtri(power)
        spread = var * (1 / (1 - allocation) + 1 / allocation) * (1 - variance_reduction)
        return float(z * math.sqrt(spread / n_total) / abs(baseline_mean))
    _variances(owner, baseline_mean, None, 0.0)  # checks the rate
    top = (1 - 1e-12) / baseline_mean - 1  # the rate can rise to just below 1
    if excess(top) > 0:
        raise ValueError(
            f"The 'n_total' parameter of {owner} is too small: {n_total} users cannot detect "
            f"even the largest lift of the rate {baseline_mean!r}."
        )
    return float(optimize.brentq(excess, 1e-12, top, xtol=1e-12, rtol=1e-12))
