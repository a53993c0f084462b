r"""Samples for long-term questions: a reference cohort from a log, and simulated truth.

A surrogate index (:class:`~models.experiments.SurrogateIndexModel`) learns how a
long-term outcome follows from short-term metrics on a **reference sample** where
both were observed. Teams often have one in their own log: the users who were
active in some earlier week, followed for as long as the experiment's question
asks. :func:`reference_cohort` builds it: every user active in an enrolment
window is given a pseudo-assignment at their first event in it, the short-term
metrics are measured over the first ``window_days`` days after it (exactly as an
experiment measures them) and the outcome over the ``horizon`` days after that.

:func:`sample_average_effects` gives the exact effects of a simulated experiment
(:func:`~models.experiments.simulate_experiment`) on any metric, from its
potential outcomes: the ground truth that tests and the ``experiment`` analysis
compare estimates with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from models.data.schema import TIMESTAMP, USER_ID
from models.exceptions import DataValidationError, Problem
from models.experiments.metrics import ActiveDays, Count, Metric, Ratio, Sum
from models.experiments.schema import ASSIGNED_AT, VARIANT
from models.experiments.user_metrics import compute_user_metrics

__all__ = [
    "DEFAULT_SURROGATES",
    "long_term_outcome",
    "reference_cohort",
    "sample_average_effects",
]

#: Short-term metrics that make a surrogate index: activity in each of the first two weeks.
DEFAULT_SURROGATES: tuple[Metric, ...] = (
    ActiveDays("active_days_week1", window=(0, 7)),
    ActiveDays("active_days_week2", window=(7, 14)),
    Count("plays_week1", window=(0, 7)),
    Count("plays_week2", window=(7, 14)),
    Sum("skips_week1", "skipped", window=(0, 7), higher_is_better=False),
    Sum("skips_week2", "skipped", window=(7, 14), higher_is_better=False),
)


def long_term_outcome(window_days: int, horizon: int,
                      name: str = "long_term_active_days") -> ActiveDays:
    """Return the default long-term outcome: active days in the ``horizon`` days after the window.

    Parameters
    ----------
    window_days : int
        The short-term window (days after assignment).
    horizon : int
        Days after the window that the outcome covers.
    name : str, default "long_term_active_days"
        Name of the metric.

    Returns
    -------
    models.experiments.ActiveDays
        Active days in days ``window_days`` to ``window_days + horizon - 1`` after
        assignment.

    Examples
    --------
    >>> long_term_outcome(14, 90).window
    (14, 104)
    """
    for label, value in (("window_days", window_days), ("horizon", horizon)):
        if not (isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0):
            raise ValueError(f"The '{label}' parameter of long_term_outcome must be a positive "
                             f"integer (days). Got {value!r} instead.")
    return ActiveDays(name, window=(int(window_days), int(window_days + horizon)))


def _metric_columns(metrics: Sequence[Metric]) -> list[str]:
    bad = [m.name for m in metrics if isinstance(m, Ratio)]
    if bad:
        raise ValueError(f"Surrogates must be per-user values, not ratios of sums: {bad}. Use "
                         "their numerator and denominator as two surrogates.")
    return [m.name for m in metrics]


def reference_cohort(
    events: pd.DataFrame,
    *,
    start: Any,
    enroll_days: int = 7,
    window_days: int = 14,
    horizon: int = 90,
    surrogates: Sequence[Metric] = DEFAULT_SURROGATES,
    outcome: Metric | None = None,
) -> pd.DataFrame:
    r"""Build a reference sample for a surrogate index from an earlier part of a log.

    Every user with an event in ``[start, start + enroll_days)`` is pseudo-assigned
    at their first event there; each surrogate is measured over its window after
    that moment (within the first ``window_days`` days) and the outcome over the
    ``horizon`` days after the window.

    Parameters
    ----------
    events : pandas.DataFrame
        Validated listening log (``user_id``, ``timestamp`` and the columns the
        metrics use).
    start : timestamp-like
        Start of the enrolment window of the cohort.
    enroll_days : int, default 7
        Length of the enrolment window, in days.
    window_days : int, default 14
        Short-term window of the surrogates (the experiment's window).
    horizon : int, default 90
        Days after the window that the outcome covers.
    surrogates : sequence of Metric, default DEFAULT_SURROGATES
        Short-term metrics, each a per-user value (no ratios) whose window lies in
        ``[0, window_days)``.
    outcome : Metric, optional
        The long-term outcome; by default :func:`long_term_outcome`
        ``(window_days, horizon)``.

    Returns
    -------
    pandas.DataFrame
        Index ``user_id``; column ``assigned_at`` (the pseudo-assignment), one column
        per surrogate, and the outcome column.

    Raises
    ------
    ValueError
        If an option is invalid, a surrogate is a ratio, or a surrogate's window
        reaches past ``window_days``.
    models.exceptions.DataValidationError
        If no user is active in the enrolment window, or the log ends before every
        cohort member's outcome window has been observed.

    Notes
    -----
    The surrogate index learned on this cohort carries over to an experiment only
    if the relation between short-term metrics and the outcome is the same for the
    experiment's users (comparability) and if the treatment acts on the outcome
    only through the surrogates (surrogacy).

    Examples
    --------
    >>> from models.data import simulate_service
    >>> sim = simulate_service(300, 150, random_seed=2)
    >>> ref = reference_cohort(sim.events, start="2025-01-10", horizon=60)
    >>> list(ref.columns)[:3]
    ['assigned_at', 'active_days_week1', 'active_days_week2']
    >>> bool((ref["long_term_active_days"] <= 60).all())
    True
    """
    owner = "reference_cohort"
    for label, value in (("enroll_days", enroll_days), ("window_days", window_days),
                         ("horizon", horizon)):
        if not (isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0):
            raise ValueError(f"The '{label}' parameter of {owner} must be a positive integer "
                             f"(days). Got {value!r} instead.")
    surrogates = tuple(surrogates)
    names = _metric_columns(surrogates)
    late = [m.name for m in surrogates if m.window is not None and m.window[1] > window_days]
    if late:
        raise ValueError(f"The surrogates {late} have windows past window_days={window_days}: "
                         "a surrogate must be observed within the experiment's window.")
    outcome = long_term_outcome(window_days, horizon) if outcome is None else outcome
    names += _metric_columns([outcome])
    begin = pd.Timestamp(start)
    stop = begin + pd.Timedelta(days=enroll_days)
    ts = events[TIMESTAMP]
    active = events.loc[(ts >= begin) & (ts < stop), [USER_ID, TIMESTAMP]]
    if active.empty:
        raise DataValidationError([Problem(
            TIMESTAMP, f"events in the cohort's enrolment window [{begin}, {stop})",
            fix="choose a start where users are active")], what="reference cohort")
    first = active.groupby(USER_ID, sort=True)[TIMESTAMP].min()
    table = pd.DataFrame({USER_ID: first.index.to_numpy(), VARIANT: "reference",
                          ASSIGNED_AT: first.to_numpy()})
    members = events[events[USER_ID].isin(first.index)]
    metrics = _fixed_windows((*surrogates, outcome), window_days)
    result = compute_user_metrics(members, table, metrics,
                                  window_days=max(m.window[1] for m in metrics), pre_days=0,
                                  observation_end=ts.max())
    return result.frame[[ASSIGNED_AT, *names]]


def sample_average_effects(
    experiment: Any, metrics: Sequence[Metric], *, window_days: int = 14,
) -> pd.DataFrame:
    r"""Compute the exact effects of a simulated experiment from its potential outcomes.

    Parameters
    ----------
    experiment : models.experiments.SimulatedExperiment
        A simulated experiment whose ``truth.potential_events`` cover every
        metric's window.
    metrics : sequence of Metric
        Metrics with unique names (ratios included).
    window_days : int, default 14
        The window of the metrics without a window of their own.

    Returns
    -------
    pandas.DataFrame
        Index ``(metric, variant)`` (every variant but the control), columns
        ``mean_control``, ``mean_treatment``, ``effect`` (difference) and ``lift``
        (relative difference): the averages over **every** assigned user of the
        metric under each variant (for a ratio metric, the ratio of the sums).

    Notes
    -----
    Every assigned user's trajectory was simulated under every variant from the
    same random numbers, so the difference of the two averages is the sample
    average treatment effect, :math:`\frac1N\sum_i (Y_i(1) - Y_i(0))`, with no
    sampling noise from the random split into arms.
    """
    control = experiment.truth.control
    means = {variant: _potential_metrics(experiment, variant, metrics, window_days)
             for variant in experiment.truth.variants}
    rows = []
    for variant, values in means.items():
        if variant == control:
            continue
        for metric in metrics:
            base, treated = means[control][metric.name], values[metric.name]
            rows.append({"metric": metric.name, VARIANT: variant, "mean_control": base,
                         "mean_treatment": treated, "effect": treated - base,
                         "lift": treated / base - 1.0 if base != 0 else np.nan})
    return pd.DataFrame(rows).set_index(["metric", VARIANT])


def _fixed_windows(metrics: Sequence[Metric], window_days: int) -> tuple[Metric, ...]:
    """Return the metrics with every missing window set to ``(0, window_days)``.

    One call of ``compute_user_metrics`` then measures metrics of different spans:
    its ``window_days`` must cover the longest, and the others keep their own.
    """
    return tuple(m if m.window is not None else replace(m, window=(0, window_days))
                 for m in metrics)


def _potential_metrics(experiment: Any, variant: str, metrics: Sequence[Metric],
                       window_days: int) -> pd.Series:
    """Each metric's average over every assigned user under ``variant``."""
    table = experiment.potential_assignments(variant)
    log = experiment.truth.potential_events[variant]
    log = log[log[USER_ID].isin(table[USER_ID])]
    fixed = _fixed_windows(metrics, window_days)
    result = compute_user_metrics(log, table, fixed, window_days=max(m.window[1] for m in fixed),
                                  pre_days=0, observation_end=experiment.truth.observation_end)
    out = {}
    for metric in fixed:
        cols = result.columns(metric)
        y = result.frame[cols["y"]]
        out[metric.name] = float(y.sum() / result.frame[cols["d"]].sum()
                                 if cols["d"] is not None else y.mean())
    return pd.Series(out)
