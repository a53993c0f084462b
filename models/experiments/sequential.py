r"""Always-valid inference for experiments that are looked at every day.

A fixed-sample interval (or a "P(better) > 95%" rule) is valid at one look
decided in advance. Looking every day and stopping at the first look where it
says "significant" inflates the error rate: under no effect at all, a 95%
interval excludes zero at *some* look far more often than 5% of the time, and
the more looks the worse (optional stopping; see the peeking benchmark in
``benchmarks/bench_experiments_engine.py`` for the size of the effect). A
posterior probability does not escape this when it is read as a stopping rule
with a flat prior: it is the same statistic as the z-test.

A **confidence sequence** is a sequence of intervals that contains the true
effect at *every* look simultaneously with probability at least ``ci_prob``, so
it can be read daily and acted upon whenever it excludes zero. This module
implements the asymptotic confidence sequence of Waudby-Smith et al. (2024) on
the normal engine: at a look with :math:`t` observations (users of both arms)
and an estimate :math:`\hat\Delta_t` with standard error :math:`se_t`,

.. math::

    \hat\Delta_t \pm \hat\sigma_t \sqrt{\frac{2 (t \rho^2 + 1)}{t^2 \rho^2}
        \log\left(\frac{\sqrt{t \rho^2 + 1}}{\alpha}\right)}, \qquad
    \hat\sigma_t = se_t \sqrt{t}, \qquad
    \rho^2 = \frac{-2 \log \alpha + \log(-2 \log \alpha + 1)}{t^\star},

where :math:`\alpha = 1 -` ``ci_prob``, :math:`\hat\sigma_t` is the per-observation
standard deviation and :math:`t^\star` = ``sequential_n`` is the number of
observations at which the sequence is tightest (set it to the planned sample
size; it must not be changed while the experiment runs). At :math:`t = t^\star`
the half-width is about 1.55 times the fixed-sample one at 95%; that is the
price of being allowed to look every day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from models._validation import check_choice, check_positive_int
from models.experiments._checks import check_probability

__all__ = ["PeekingResult", "confidence_sequence", "sequential_multiplier", "simulate_peeking"]


def confidence_sequence(
    estimate: ArrayLike,
    sd: ArrayLike,
    n_total: ArrayLike,
    *,
    sequential_n: int,
    ci_prob: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Always-valid interval of an effect at one look.

    Parameters
    ----------
    estimate : array_like
        Estimate of the effect (absolute or relative) at this look.
    sd : array_like
        Its standard error at this look (the sd of the normal engine).
    n_total : array_like
        Observations so far, both arms together (users).
    sequential_n : int
        Observations at which the sequence is tightest; fixed before the first look.
    ci_prob : float, default 0.95
        Probability that the sequence covers the true effect at every look.

    Returns
    -------
    ci_lower, ci_upper : numpy.ndarray
        Bounds of the confidence sequence at this look.

    Raises
    ------
    ValueError
        If ``ci_prob`` is not in (0, 1) or ``sequential_n`` is not a positive integer.

    Notes
    -----
    With :math:`t` = ``n_total``, :math:`\alpha = 1 -` ``ci_prob`` and
    :math:`t^\star` = ``sequential_n``, the half-width is

    .. math::

        se \sqrt{t} \sqrt{\frac{2 (t \rho^2 + 1)}{t^2 \rho^2}
        \log\frac{\sqrt{t \rho^2 + 1}}{\alpha}}, \qquad
        \rho^2 = \frac{-2 \log \alpha + \log(1 - 2 \log \alpha)}{t^\star},

    the asymptotic confidence sequence of Waudby-Smith et al. (2024), with
    :math:`\rho` chosen to make it tightest at :math:`t^\star`.

    References
    ----------
    Waudby-Smith, I., Arbour, D., Sinha, R., Kennedy, E. H. and Ramdas, A. (2024).
    Time-uniform central limit theory and asymptotic confidence sequences.
    *Annals of Statistics* 52(6). (arXiv:2103.06476, 2021.)

    Howard, S. R., Ramdas, A., McAuliffe, J. and Sekhon, J. (2021). Time-uniform,
    nonparametric, nonasymptotic confidence sequences. *Annals of Statistics* 49(2).

    Examples
    --------
    A relative lift of 0.50386 with standard error 0.033861 after 6,461 users,
    tuned for 5,000:

    >>> lower, upper = confidence_sequence(0.50386, 0.033861, 6461, sequential_n=5000)
    >>> print(f"{float(lower):.4f} {float(upper):.4f}")
    0.4010 0.6067
    """
    owner = "confidence_sequence"
    check_probability(owner, "ci_prob", ci_prob)
    check_positive_int(owner, "sequential_n", sequential_n)
    estimate = np.asarray(estimate, dtype=float)
    sd, n_total = np.asarray(sd, dtype=float), np.asarray(n_total, dtype=float)
    radius = _radius(sd, n_total, ci_prob, sequential_n)
    return estimate - radius, estimate + radius


def _radius(sd: np.ndarray, t: np.ndarray, ci_prob: float, sequential_n: float) -> np.ndarray:
    """Half-width of the confidence sequence (no checks; see :func:`confidence_sequence`)."""
    alpha = 1 - ci_prob
    rho2 = (-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / sequential_n
    trho = t * rho2
    return sd * np.sqrt(t) * np.sqrt(
        2 * (trho + 1) / (t * trho) * np.log(np.sqrt(trho + 1) / alpha)
    )


def sequential_multiplier(ci_prob: float = 0.95) -> float:
    r"""Half-width of the confidence sequence at its tuning point, in standard errors.

    Parameters
    ----------
    ci_prob : float, default 0.95
        Probability of the confidence sequence.

    Returns
    -------
    float
        :math:`k` such that at ``n_total == sequential_n`` the sequence is
        :math:`\hat\Delta \pm k \, se`; the fixed-sample interval has
        :math:`k = z_{(1 + \text{ci\_prob})/2}`. Planning with
        :func:`~models.experiments.power.sample_size` (``sequential=True``) uses it.

    Raises
    ------
    ValueError
        If ``ci_prob`` is not in (0, 1).

    Notes
    -----
    With :math:`c = -2\log\alpha + \log(1 - 2\log\alpha)` (that is,
    :math:`t\rho^2` at :math:`t = t^\star`),
    :math:`k = \sqrt{2 (c + 1)/c \, \log(\sqrt{c + 1}/\alpha)}`.

    Examples
    --------
    >>> round(sequential_multiplier(0.95), 3)
    3.035
    """
    check_probability("sequential_multiplier", "ci_prob", ci_prob)
    return float(_radius(np.array(1.0), np.array(1.0), ci_prob, 1.0))


@dataclass(frozen=True)
class PeekingResult:
    """False-positive rates of daily looks at simulated A/A tests.

    Attributes
    ----------
    naive : float
        Share of experiments where ``P(better) >= threshold`` or ``<= 1 - threshold``
        at some look.
    naive_last_look : float
        The same rule read once, at the last look only (its fixed-sample rate).
    sequential : float
        Share where the confidence sequence of the effect excludes 0 at some look.
    by_look : pandas.DataFrame
        Per look: ``n_users`` (mean, both arms), the rates of the two rules at any
        look up to that one (``naive``, ``sequential``) and at that look alone
        (``naive_single``, ``sequential_single``).
    n_experiments, threshold, ci_prob, sequential_n
        The settings of the simulation.
    """

    naive: float
    naive_last_look: float
    sequential: float
    by_look: pd.DataFrame
    n_experiments: int
    threshold: float
    ci_prob: float
    sequential_n: int

    def __str__(self) -> str:
        return (
            f"{self.n_experiments} A/A experiments, {len(self.by_look)} looks: "
            f"naive P(better) rule (threshold {self.threshold}) false positives "
            f"{self.naive:.1%} at any look ({self.naive_last_look:.1%} at the last look "
            f"only); {self.ci_prob:.0%} confidence sequence {self.sequential:.1%}"
        )


def simulate_peeking(
    *,
    n_experiments: int = 1000,
    n_looks: int = 30,
    users_per_look: int = 200,
    kind: str = "continuous",
    ci_prob: float = 0.95,
    threshold: float = 0.95,
    sequential_n: int | None = None,
    random_seed: int | np.random.Generator | None = None,
) -> PeekingResult:
    r"""Simulate A/A experiments looked at after every batch of users.

    Users arrive in batches (a day each): per arm, a Poisson number with mean
    ``users_per_look`` per look. Every arm has the same distribution (no effect),
    so every "significant" result is a false positive. The statistics table of
    every experiment at every look is built from exact sums (no per-user arrays)
    and analysed by :func:`models.experiments.engine.analyze` in one call with
    and one call without ``sequential=True``.

    Parameters
    ----------
    n_experiments : int, default 1000
        Simulated experiments.
    n_looks : int, default 30
        Looks (days) per experiment.
    users_per_look : int, default 200
        Mean new users per arm and look.
    kind : {"continuous", "binary"}, default "continuous"
        Normal values (mean 10, sd 3) or Bernoulli values (rate 0.2); both are
        analysed with the normal engine.
    ci_prob : float, default 0.95
        Probability of the confidence sequence.
    threshold : float, default 0.95
        The naive rule declares a winner (or a loser) when ``P(better)`` is at
        least ``threshold`` (or at most ``1 - threshold``). With 0.95 it is a
        two-sided test at 10% at a single look; 0.975 matches a 95% interval.
    sequential_n : int, optional
        Tuning of the sequence; defaults to the expected number of users at the
        last look (both arms).
    random_seed : int, numpy.random.Generator or None
        Seed of the simulation.

    Returns
    -------
    PeekingResult

    Raises
    ------
    ValueError
        For invalid settings.

    Examples
    --------
    >>> result = simulate_peeking(n_experiments=200, n_looks=10, random_seed=1)
    >>> result.sequential < 0.05 < result.naive
    True
    """
    owner = "simulate_peeking"
    check_positive_int(owner, "n_experiments", n_experiments)
    check_positive_int(owner, "n_looks", n_looks)
    check_positive_int(owner, "users_per_look", users_per_look)
    check_choice(owner, "kind", kind, ("continuous", "binary"))
    check_probability(owner, "ci_prob", ci_prob)
    check_probability(owner, "threshold", threshold, low=0.5)
    if sequential_n is None:
        sequential_n = 2 * users_per_look * n_looks
    check_positive_int(owner, "sequential_n", sequential_n)
    from models.experiments.engine import analyze  # engine imports this module

    rng = np.random.default_rng(random_seed)
    shape = (n_experiments, 2, n_looks)  # experiment, arm, look
    n = rng.poisson(users_per_look, size=shape).astype(float)
    n[..., 0] = np.maximum(n[..., 0], 2)  # at least 2 users per arm at the first look
    if kind == "binary":
        sum_y = rng.binomial(n.astype(np.int64), 0.2).astype(float)
        sum_yy = sum_y
    else:  # normal(10, 3): the batch mean and its sum of squared deviations are exact
        mean, sd = 10.0, 3.0
        sum_y = n * mean + sd * np.sqrt(n) * rng.standard_normal(shape)
        dev = sd**2 * rng.chisquare(np.maximum(n - 1, 1))
        sum_yy = np.where(n > 0, dev + sum_y**2 / np.maximum(n, 1), 0.0)
    n, sum_y, sum_yy = (np.cumsum(a, axis=2) for a in (n, sum_y, sum_yy))
    look, exp, arm = np.meshgrid(
        np.arange(n_looks), np.arange(n_experiments), np.arange(2), indexing="ij"
    )
    # the arrays are (experiment, arm, look); rows go in (look, experiment, arm) order
    stats = pd.DataFrame({
        "look": look.ravel(),
        "metric": exp.ravel(),
        "variant": np.where(arm.ravel() == 0, "control", "treatment"),
        "kind": kind,
        "n": n.transpose(2, 0, 1).ravel(),
        "sum_y": sum_y.transpose(2, 0, 1).ravel(),
        "sum_yy": sum_yy.transpose(2, 0, 1).ravel(),
    }).set_index(["look", "metric", "variant"])  # fmt: skip
    fixed = analyze(stats, ci_prob=ci_prob, cuped=False, binary_model="normal")
    seq = analyze(stats, ci_prob=ci_prob, cuped=False, sequential=True, sequential_n=sequential_n)
    p = fixed["prob_better"].to_numpy().reshape(n_looks, n_experiments)
    naive_hit = (p >= threshold) | (p <= 1 - threshold)
    lo = seq["effect_ci_lower"].to_numpy().reshape(n_looks, n_experiments)
    hi = seq["effect_ci_upper"].to_numpy().reshape(n_looks, n_experiments)
    seq_hit = (lo > 0) | (hi < 0)
    by_look = pd.DataFrame({
        "look": np.arange(1, n_looks + 1),
        "n_users": n.sum(axis=1).mean(axis=0),
        "naive": np.logical_or.accumulate(naive_hit, axis=0).mean(axis=1),
        "naive_single": naive_hit.mean(axis=1),
        "sequential": np.logical_or.accumulate(seq_hit, axis=0).mean(axis=1),
        "sequential_single": seq_hit.mean(axis=1),
    }).set_index("look")  # fmt: skip
    return PeekingResult(
        naive=float(by_look["naive"].iloc[-1]),
        naive_last_look=float(by_look["naive_single"].iloc[-1]),
        sequential=float(by_look["sequential"].iloc[-1]),
        by_look=by_look,
        n_experiments=n_experiments,
        threshold=float(threshold),
        ci_prob=float(ci_prob),
        sequential_n=int(sequential_n),
    )
