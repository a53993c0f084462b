"""Checks to run before any effect of an experiment is read.

A sample-ratio mismatch (SRM), a variant without users, users who were active
in the experiment before their own assignment at different rates per variant,
or variants that differed before assignment all mean the comparison is not
the randomised one it claims to be: the effect estimates are then biased in
ways no model can undo. :func:`sample_ratio_test` tests the split of users;
:func:`check_experiment` runs every check and reports them in one table, the
failures first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from models._validation import check_table, lazy_checks, raise_lazy
from models.data._lazy import is_dask
from models.data.schema import TIMESTAMP
from models.experiments._checks import check_probability
from models.experiments._windows import (
    DAYCOL,
    ONE,
    check_id_types,
    compute_nested,
    relative_rows,
)
from models.experiments.assignments import check_variants_param, validate_assignments
from models.experiments.schema import ASSIGNED_AT, EXPERIMENT_ID, USER_ID, VARIANT

__all__ = ["ExperimentChecks", "SampleRatioResult", "check_experiment", "sample_ratio_test"]

_TABLE_COLUMNS = ["check", "variant", "value", "p_value", "ok", "message"]


@dataclass(frozen=True, eq=False)
class SampleRatioResult:
    """Outcome of a sample-ratio test.

    Attributes
    ----------
    observed : pandas.Series
        Users per variant (``int64``), indexed by variant.
    expected : pandas.Series
        Users per variant expected under the designed split (``float64``).
    statistic : float
        Pearson's chi-square statistic.
    p_value : float
        Its p-value, with ``len(observed) - 1`` degrees of freedom.
    ok : bool
        ``p_value >= threshold``.
    message : str
        What was found, and on a failure what it means.
    threshold : float
        The p-value below which the test fails.
    """

    observed: pd.Series
    expected: pd.Series
    statistic: float
    p_value: float
    ok: bool
    message: str
    threshold: float

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, eq=False)
class ExperimentChecks:
    """Every check of :func:`check_experiment`.

    Attributes
    ----------
    ok : bool
        Whether every check passed.
    table : pandas.DataFrame
        One row per check and variant: ``check``, ``variant``, ``value``,
        ``p_value`` (NaN where there is no test), ``ok``, ``message``.
    messages : tuple of str
        One summary per check, failures first.
    sample_ratio : SampleRatioResult
        The sample-ratio test.
    """

    ok: bool
    table: pd.DataFrame
    messages: tuple[str, ...]
    sample_ratio: SampleRatioResult

    def __str__(self) -> str:
        failed = int((~self.table.groupby("check", sort=False)["ok"].all()).sum())
        head = (
            "Experiment checks: all passed."
            if self.ok
            else f"Experiment checks: {failed} check(s) FAILED. Do not read the effects "
            "until the causes are found."
        )
        return "\n".join([head, *(f"  - {m}" for m in self.messages)])


def _counts(data: Any, func: str) -> pd.Series:
    """Users per variant from an assignment table or a Series of counts."""
    if isinstance(data, pd.DataFrame):
        table = validate_assignments(data)
        if EXPERIMENT_ID in table.columns and table[EXPERIMENT_ID].nunique() > 1:
            raise ValueError(
                f"The 'assignments_or_counts' parameter of {func} must hold one experiment. "
                f"Got {table[EXPERIMENT_ID].nunique()} experiments instead; test each one."
            )
        return table.groupby(VARIANT, sort=True).size().astype("int64")
    ok = isinstance(data, pd.Series) and data.index.is_unique
    if ok:
        values = pd.to_numeric(data, errors="coerce").to_numpy(dtype=float)
        ok = bool(np.all(np.isfinite(values) & (values >= 0) & (np.floor(values) == values)))
        ok = ok and all(isinstance(v, str) for v in data.index)
    if not ok:
        raise ValueError(
            f"The 'assignments_or_counts' parameter of {func} must be an assignment table or a "
            "Series of non-negative whole user counts indexed by variant name. "
            f"Got {data!r} instead."
        )
    return data.astype("int64")


def _shares(expected: Any, variants: list[str], func: str) -> pd.Series:
    if expected is None:
        return pd.Series(1.0 / len(variants), index=variants)
    ok = isinstance(expected, Mapping | pd.Series)
    shares = pd.Series(dict(expected) if ok else {}, dtype=float)
    ok = ok and set(variants) <= set(shares.index) and len(shares) > 0
    ok = ok and bool(np.all(np.isfinite(shares.to_numpy()) & (shares.to_numpy() > 0)))
    if not ok:
        raise ValueError(
            f"The 'expected' parameter of {func} must map every variant {variants} to a "
            f"positive share (or weight). Got {expected!r} instead."
        )
    return shares / shares.sum()


def sample_ratio_test(
    assignments_or_counts: pd.DataFrame | pd.Series,
    *,
    expected: Mapping[str, float] | pd.Series | None = None,
    threshold: float = 0.001,
) -> SampleRatioResult:
    r"""Test whether users were split between variants as designed (sample-ratio mismatch).

    Parameters
    ----------
    assignments_or_counts : pandas.DataFrame or pandas.Series
        An assignment table (checked with
        :func:`~models.experiments.assignments.validate_assignments`) or the
        number of users per variant, indexed by variant name.
    expected : mapping or pandas.Series, optional
        Designed share (or any positive weight) of each variant; variants it
        lists that have no users count as 0. Default: equal shares.
    threshold : float, default 0.001
        The test fails when the p-value is below it. The default is strict on
        purpose: the check runs on every experiment, and a real mismatch gives
        tiny p-values.

    Returns
    -------
    SampleRatioResult
        Observed and expected counts, the chi-square statistic, its p-value,
        ``ok`` and a message.

    Raises
    ------
    ValueError
        If the counts or shares are malformed, a variant with users has no
        expected share, there are fewer than two variants or no users.
    DataValidationError
        If an assignment table breaks a rule of ``validate_assignments``.

    Notes
    -----
    Pearson's goodness-of-fit test: with :math:`O_v` users in variant
    :math:`v`, :math:`N = \sum_v O_v` and designed shares :math:`s_v`,
    :math:`E_v = N s_v` and :math:`X^2 = \sum_v (O_v - E_v)^2 / E_v`, compared
    with a chi-square distribution with :math:`k - 1` degrees of freedom. A
    mismatch means the assignment or the data pipeline treats the variants
    differently (a variant that crashes or logs late, bots filtered in one
    arm, ...): the users compared are no longer exchangeable.

    References
    ----------
    .. [1] Fabijan, A. et al. (2019). Diagnosing sample ratio mismatch in online
       controlled experiments. KDD '19, 2156-2164.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.experiments.checks import sample_ratio_test
    >>> result = sample_ratio_test(pd.Series({"control": 5000, "treatment": 5200}))
    >>> round(result.statistic, 4), round(result.p_value, 4), result.ok
    (3.9216, 0.0477, True)
    >>> sample_ratio_test(pd.Series({"control": 5000, "treatment": 5600})).ok
    False
    """
    func = "sample_ratio_test"
    threshold = check_probability(func, "threshold", threshold)
    counts = _counts(assignments_or_counts, func)
    shares = _shares(expected, list(counts.index), func)
    observed = counts.reindex(shares.index, fill_value=0).astype("int64")
    if len(observed) < 2 or observed.sum() == 0:
        raise ValueError(
            f"The 'assignments_or_counts' parameter of {func} must have users in at least two "
            f"variants (with 'expected' listing the variants designed). Got {observed.to_dict()} "
            "instead."
        )
    exp = (shares * observed.sum()).astype("float64")
    statistic, p_value = stats.chisquare(observed.to_numpy(float), exp.to_numpy())
    statistic, p_value = float(statistic), float(p_value)
    ok = p_value >= threshold
    parts = ", ".join(
        f"{v} {observed[v]} ({observed[v] / observed.sum():.1%}, expected {shares[v]:.1%})"
        for v in observed.index
    )
    test = f"chi-square {statistic:.4g}, df {len(observed) - 1}, p = {p_value:.3g}"
    if ok:
        message = f"Sample ratio OK ({test} >= {threshold:g}): {parts}."
    else:
        message = (
            f"SAMPLE RATIO MISMATCH ({test} < {threshold:g}): {parts}. The users were not "
            "split as designed: assignment, logging or filtering treats the variants "
            "differently, so the variants are no longer comparable. Do not read the effects "
            "until the cause is found."
        )
    return SampleRatioResult(
        observed=observed.rename("observed"),
        expected=exp.rename("expected"),
        statistic=statistic,
        p_value=p_value,
        ok=bool(ok),
        message=message,
        threshold=threshold,
    )


def _row(check: str, variant: str, value: float, p_value: float, ok: bool, message: str) -> dict:
    return dict(
        zip(_TABLE_COLUMNS, (check, variant, value, p_value, bool(ok), message), strict=True)
    )


def _variant_rows(n_users: pd.Series, declared: Sequence[str] | None) -> list[dict]:
    rows = []
    for variant, n in n_users.items():
        if declared is not None and variant not in declared:
            rows.append(
                _row(
                    "variants",
                    variant,
                    n,
                    math.nan,
                    False,
                    f"'{variant}' has {n} users but is "
                    f"not among the declared variants {list(declared)}",
                )
            )
        elif n == 0:
            rows.append(
                _row(
                    "variants",
                    variant,
                    0,
                    math.nan,
                    False,
                    f"'{variant}' has no users: it did not run, or its assignments were not logged",
                )
            )
        else:
            rows.append(_row("variants", variant, n, math.nan, True, f"'{variant}' has {n} users"))
    return rows


def _early_rows(per_user: pd.DataFrame, threshold: float) -> list[dict]:
    """Share of users with events between the experiment start and their assignment."""
    grouped = per_user.groupby(VARIANT, sort=False)["early"]
    table = pd.DataFrame({"with": grouped.sum(), "n": grouped.size()})
    table = table[table["n"] > 0]
    counts = np.column_stack([table["with"], table["n"] - table["with"]])
    if len(table) < 2 or counts[:, 0].sum() in (0, counts.sum()):
        statistic, p_value = 0.0, 1.0  # the same share (all or none) everywhere
    else:
        statistic, p_value = stats.chi2_contingency(counts, correction=False)[:2]
    ok = p_value >= threshold
    rows = []
    for variant, row in table.iterrows():
        share = row["with"] / row["n"]
        text = (
            f"{int(row['with'])} of {int(row['n'])} users of '{variant}' ({share:.1%}) have "
            f"events between the experiment start and their own assignment (chi-square "
            f"{statistic:.3g}, p = {p_value:.3g} across variants)"
        )
        if not ok:
            text += (
                "; the share differs between variants: assignment is logged late or "
                "differently in some variant"
            )
        rows.append(_row("pre_assignment_events", variant, share, p_value, ok, text))
    return rows


def _balance_rows(
    per_user: pd.DataFrame, control: str, pre_days: int, threshold: float
) -> list[dict]:
    """Standardised difference of pre-period events per user, each variant vs control."""
    moments = per_user.groupby(VARIANT, sort=False)["pre"].agg(["mean", "var", "size"])
    rows = []
    for variant in moments.index.drop(control, errors="ignore"):
        if control not in moments.index or min(moments.loc[[variant, control], "size"]) < 2:
            rows.append(
                _row(
                    "pre_period_balance",
                    variant,
                    math.nan,
                    math.nan,
                    False,
                    f"'{variant}' vs '{control}': too few users to compare the pre-period",
                )
            )
            continue
        t, c = moments.loc[variant], moments.loc[control]
        pooled = math.sqrt((t["var"] + c["var"]) / 2)
        diff = t["mean"] - c["mean"]
        if pooled == 0:
            smd, p_value = (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
        else:
            smd = diff / pooled
            p_value = stats.ttest_ind_from_stats(
                t["mean"], math.sqrt(t["var"]), t["size"],
                c["mean"], math.sqrt(c["var"]), c["size"], equal_var=False,
            ).pvalue  # fmt: skip
        ok = p_value >= threshold
        text = (
            f"events per user in the {pre_days} days before assignment: {t['mean']:.3g} in "
            f"'{variant}' vs {c['mean']:.3g} in '{control}' (standardised difference "
            f"{smd:.3g}, Welch p = {p_value:.3g})"
        )
        if not ok:
            text += "; the variants differed before assignment: the assignment is not random"
        rows.append(_row("pre_period_balance", variant, smd, float(p_value), ok, text))
    return rows


def _summary(frame: pd.DataFrame, check: str, good: str) -> str:
    rows = frame[frame["check"] == check]
    bad = rows[~rows["ok"]]
    if bad.empty:
        return good
    return f"{check} FAILED: " + "; ".join(bad["message"])


def check_experiment(
    events: pd.DataFrame,
    assignments: pd.DataFrame,
    *,
    expected: Mapping[str, float] | pd.Series | None = None,
    variants: Sequence[str] | None = None,
    control: str | None = None,
    pre_days: int = 14,
    threshold: float = 0.001,
) -> ExperimentChecks:
    r"""Run the checks that must pass before any effect of an experiment is read.

    Parameters
    ----------
    events : pandas.DataFrame or dask.dataframe.DataFrame
        Listening log with ``user_id`` and ``timestamp``. Events of users who
        are not in the assignment table are ignored (they are outside the
        experiment).
    assignments : pandas.DataFrame
        Assignment table of one experiment (checked with
        :func:`~models.experiments.assignments.validate_assignments`).
    expected : mapping or pandas.Series, optional
        Designed share of each variant; default equal shares.
    variants : sequence of str, optional
        The variants the experiment declares: one without users, or a variant
        in the data that is not declared, fails the "variants" check.
    control : str, optional
        The control variant. Default: ``"control"`` if present, else the first
        of ``variants``.
    pre_days : int, default 14
        Length in days of the pre-period ``[assigned_at - pre_days,
        assigned_at)`` of the balance check.
    threshold : float, default 0.001
        A test fails when its p-value is below it.

    Returns
    -------
    ExperimentChecks
        ``ok``, the ``table`` of every check and variant, the ``messages``,
        and the sample-ratio result. The checks are

        - ``sample_ratio``: :func:`sample_ratio_test` on the users per variant;
        - ``variants``: every declared variant has users, every variant is
          declared;
        - ``pre_assignment_events``: the share of users with events between
          the experiment start (the first assignment) and their own
          assignment, per variant, and a chi-square test that it is the same
          in every variant (a difference is a sign of late or arm-dependent
          assignment logging);
        - ``pre_period_balance``: events per user in the pre-period of each
          variant vs control: standardised difference and Welch's t-test.

    Raises
    ------
    DataValidationError
        If the assignment table breaks a rule, the events lack ``user_id`` or
        ``timestamp``, or the ids of events and assignments differ in type.
    ValueError
        For bad parameters, a table with several experiments, or no control.

    Notes
    -----
    The standardised difference of variant :math:`v` is
    :math:`(\bar z_v - \bar z_c) / \sqrt{(s_v^2 + s_c^2) / 2}` with
    :math:`\bar z, s^2` the mean and variance of pre-period events per user;
    values above 0.1 in absolute value are commonly read as imbalance. The
    share test is Pearson's chi-square on the variants x (with, without)
    table, without continuity correction.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.experiments.checks import check_experiment
    >>> assignments = pd.DataFrame({
    ...     "user_id": [1, 2, 3, 4],
    ...     "variant": ["control", "treatment", "control", "treatment"],
    ...     "assigned_at": pd.to_datetime(["2024-01-10"] * 4),
    ... })
    >>> events = pd.DataFrame({
    ...     "user_id": [1, 2, 3, 4, 4],
    ...     "timestamp": pd.to_datetime(["2024-01-05", "2024-01-06", "2024-01-11",
    ...                                  "2024-01-07", "2024-01-12"]),
    ... })
    >>> checks = check_experiment(events, assignments, variants=["control", "treatment"])
    >>> checks.ok
    True
    >>> checks.table[["check", "variant", "value", "ok"]]
                       check    variant  value    ok
    0           sample_ratio    control    0.5  True
    1           sample_ratio  treatment    0.5  True
    2               variants    control    2.0  True
    3               variants  treatment    2.0  True
    4  pre_assignment_events    control    0.0  True
    5  pre_assignment_events  treatment    0.0  True
    6     pre_period_balance  treatment    1.0  True
    """
    func = "check_experiment"
    threshold = check_probability(func, "threshold", threshold)
    if not (isinstance(pre_days, int | np.integer) and not isinstance(pre_days, bool)) or (
        pre_days <= 0
    ):
        raise ValueError(
            f"The 'pre_days' parameter of {func} must be a positive integer. "
            f"Got {pre_days!r} instead."
        )
    table = validate_assignments(assignments)
    if EXPERIMENT_ID in table.columns and table[EXPERIMENT_ID].nunique() > 1:
        raise ValueError(
            f"The 'assignments' parameter of {func} must hold one experiment. Got "
            f"{table[EXPERIMENT_ID].nunique()} experiments instead; check each one."
        )
    declared = check_variants_param(variants, func)
    declared = None if declared is None else list(declared)
    present = sorted(table[VARIANT].unique().tolist())
    names = declared + [v for v in present if v not in declared] if declared else present
    if control is None:
        control = "control" if "control" in names else (declared[0] if declared else None)
    if control not in names:
        raise ValueError(
            f"The 'control' parameter of {func} must be one of the variants {names}. "
            f"Got {control!r} instead."
        )
    check_table(events, [USER_ID, TIMESTAMP], func)
    check_id_types(events, table)

    n_users = table.groupby(VARIANT).size().reindex(names, fill_value=0).astype("int64")
    srm = sample_ratio_test(n_users, expected=expected, threshold=threshold)
    start = table[ASSIGNED_AT].min()
    span = math.ceil((table[ASSIGNED_AT].max() - start) / pd.Timedelta(days=1))
    rows = relative_rows(events, table[[USER_ID, ASSIGNED_AT]], [], -(pre_days + span + 1), 0)
    early = rows[rows[TIMESTAMP] >= start].groupby(USER_ID)[ONE].sum()
    pre = rows[rows[DAYCOL] >= -pre_days].groupby(USER_ID)[ONE].sum()
    lazy = lazy_checks(events, [USER_ID, TIMESTAMP]) if is_dask(events) else {}
    early, pre, lazy = compute_nested(early, pre, lazy)
    if lazy:
        raise_lazy(events, [USER_ID, TIMESTAMP], lazy, "events")
    per_user = table[[USER_ID, VARIANT]].set_index(USER_ID)
    per_user["early"] = early.reindex(per_user.index, fill_value=0).to_numpy() > 0
    per_user["pre"] = pre.reindex(per_user.index, fill_value=0).to_numpy(dtype="float64")

    records = [
        _row("sample_ratio", v, srm.observed[v] / srm.observed.sum(), srm.p_value, srm.ok,
             f"{srm.observed[v]} users, expected {srm.expected[v]:.1f}")
        for v in srm.observed.index
    ]  # fmt: skip
    records += _variant_rows(n_users, declared)
    records += _early_rows(per_user, threshold)
    records += _balance_rows(per_user, control, pre_days, threshold)
    frame = pd.DataFrame.from_records(records, columns=_TABLE_COLUMNS)
    frame = frame.astype({"value": "float64", "p_value": "float64", "ok": bool})
    messages = [
        srm.message,
        _summary(frame, "variants", f"Every variant has users: {n_users.to_dict()}."),
        _summary(
            frame,
            "pre_assignment_events",
            "The share of users active between the experiment start and their assignment "
            "is the same in every variant.",
        ),
        _summary(
            frame,
            "pre_period_balance",
            f"Activity in the {pre_days} days before assignment is balanced between "
            "the variants.",
        ),
    ]
    failed = {c for c in frame.loc[~frame["ok"], "check"]}
    order = ["sample_ratio", "variants", "pre_assignment_events", "pre_period_balance"]
    messages = [m for c, m in zip(order, messages, strict=True) if c in failed] + [
        m for c, m in zip(order, messages, strict=True) if c not in failed
    ]
    return ExperimentChecks(
        ok=bool(frame["ok"].all()),
        table=frame,
        messages=tuple(messages),
        sample_ratio=srm,
    )
