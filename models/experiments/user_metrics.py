"""Per-user metrics of an experiment and their per-variant sufficient statistics.

:func:`compute_user_metrics` turns a listening log and an assignment table into
one row per assigned user with every metric (see :mod:`models.experiments.metrics`)
over the user's exposure window and over the pre-period before assignment;
:func:`sufficient_statistics` reduces that to per-variant sums, the input of
the conjugate engine.

pandas and Dask
---------------
``events`` may be a pandas or a Dask DataFrame. Both go through the same code:
each block of events is merged with the (pandas) assignment table, the day of
each event is computed and the rows outside every window are dropped; the
per-user counts, sums, distinct days and distinct values are then groupby
aggregations (``groupby().sum()``, ``drop_duplicates``), computed in one pass
for Dask. Counts and sums of integer and boolean columns are integer
arithmetic, so the results are identical; a scale is applied after the integer
sum. Sums of float columns are floating-point sums whose last bits may depend
on the order of the additions.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from models._validation import (
    N_EXAMPLES,
    check_choice,
    check_positive_int,
    check_table,
    lazy_checks,
    raise_lazy,
    to_naive_utc,
)
from models.data._lazy import compute, is_dask
from models.data.schema import TIMESTAMP
from models.exceptions import DataQualityWarning, DataValidationError, Problem
from models.experiments._metric_plan import check_metrics, leaves, output_columns, plan, value
from models.experiments._windows import (
    aggregate,
    check_exposure,
    check_id_types,
    check_overflow,
    compute_nested,
    event_row_checks,
    raise_for_event_rows,
    relative_rows,
)
from models.experiments.assignments import validate_assignments
from models.experiments.metrics import (
    DEFAULT_METRICS,
    Distinct,
    Metric,
    Ratio,
    Sum,
)
from models.experiments.schema import ASSIGNED_AT, EXPERIMENT_ID, USER_ID, VARIANT

__all__ = ["STAT_COLUMNS", "UserMetrics", "compute_user_metrics", "sufficient_statistics"]

#: Temporary column: each assignment row's position in the table as passed in.
_POS = "_position"


@dataclass(frozen=True, eq=False)
class UserMetrics:
    """Per-user metrics of an experiment, the output of :func:`compute_user_metrics`.

    Attributes
    ----------
    frame : pandas.DataFrame
        Index ``user_id``; columns ``variant``, ``assigned_at``,
        ``experiment_id`` (if given), the pass-through user attributes, then
        per metric ``<name>`` and ``<name>_pre`` (continuous and binary), or
        ``<name>_num``, ``<name>_den``, ``<name>_num_pre``, ``<name>_den_pre``
        (ratios). The ``_pre`` columns exist only with a pre-period. Counts,
        active days, distinct values and binaries are ``int64``, sums
        ``float64``.
    metrics : tuple of Metric
        The metrics, in the order given.
    window_days : int
        Length of the exposure window in days.
    pre_days : int
        Length of the pre-period in days (0: none).
    variants : tuple of str
        The variants, the control first when known, the others sorted.
    observation_end : pandas.Timestamp
        End of observation every exposure window fits in.
    """

    frame: pd.DataFrame
    metrics: tuple[Metric, ...]
    window_days: int
    pre_days: int
    variants: tuple[str, ...]
    observation_end: pd.Timestamp

    def __repr__(self) -> str:
        return (
            f"UserMetrics({len(self.frame)} users, {len(self.metrics)} metrics, "
            f"variants={self.variants}, window_days={self.window_days}, "
            f"pre_days={self.pre_days})"
        )

    def columns(self, metric: Metric) -> dict[str, str | None]:
        """Columns of ``metric`` in ``frame`` as ``y``, ``d``, ``x``, ``w`` (or None).

        Parameters
        ----------
        metric : Metric
            One of ``metrics``.

        Returns
        -------
        dict
            ``y`` (target, or ratio numerator), ``d`` (ratio denominator; None
            for a mean), ``x`` and ``w`` (the same over the pre-period; None
            without a pre-period, and ``w`` None for a mean).
        """
        pre = self.pre_days > 0
        if metric.kind == "ratio":
            n = metric.name
            return {
                "y": f"{n}_num",
                "d": f"{n}_den",
                "x": f"{n}_num_pre" if pre else None,
                "w": f"{n}_den_pre" if pre else None,
            }
        return {"y": metric.name, "d": None, "x": f"{metric.name}_pre" if pre else None, "w": None}


def _check_events(events: Any, metrics: tuple[Metric, ...], func: str) -> dict[str, list[str]]:
    """Check columns and dtypes (metadata only); return the summed and the distinct columns."""
    if not (isinstance(events, pd.DataFrame) or is_dask(events)):
        raise TypeError(
            f"The 'events' parameter of {func} must be a pandas or Dask DataFrame. "
            f"Got {type(events).__name__} instead."
        )
    sums: dict[str, list[str]] = {}
    distinct: dict[str, list[str]] = {}
    for metric in metrics:
        for leaf, _ in leaves(metric):
            if isinstance(leaf, Sum | Distinct):
                users = (sums if isinstance(leaf, Sum) else distinct).setdefault(leaf.column, [])
                users.append(metric.name)
    problems = []
    for column, names in {**distinct, **sums}.items():
        quoted = ", ".join(f"'{n}'" for n in dict.fromkeys(names))
        if column not in events.columns:
            problems.append(
                Problem(
                    column,
                    f"a column needed by metric(s) {quoted}",
                    fix="add the column to the events, or leave those metrics out",
                )
            )
        elif column in sums and not pd.api.types.is_numeric_dtype(events[column].dtype):
            problems.append(
                Problem(
                    column,
                    f"numbers or booleans to sum for metric(s) {quoted} (got dtype "
                    f"{events[column].dtype})",
                    fix=f"convert it with pd.to_numeric(events['{column}'])",
                )
            )
    if problems:
        raise DataValidationError(problems, what="events")
    check_table(events, [USER_ID, TIMESTAMP], func)
    return {"sums": list(sums), "distinct": list(distinct)}


def _order_variants(present: list[str], control: str | None) -> tuple[str, ...]:
    first = control if control is not None else ("control" if "control" in present else None)
    return tuple(([first] if first in present else []) + sorted(v for v in present if v != first))


# --------------------------------------------------------------------------- public functions


def compute_user_metrics(
    events: pd.DataFrame,
    assignments: pd.DataFrame,
    metrics: Sequence[Metric] | Metric = DEFAULT_METRICS,
    *,
    window_days: int = 14,
    pre_days: int | None = 14,
    observation_end: Any = None,
    unassigned: Literal["error", "drop"] = "error",
    control: str | None = None,
) -> UserMetrics:
    r"""Every metric for every assigned user, over the exposure window and the pre-period.

    Parameters
    ----------
    events : pandas.DataFrame or dask.dataframe.DataFrame
        Listening log with ``user_id``, ``timestamp`` and the columns the
        metrics use (``ms_played``, ``skipped``, ``artist_id``, ...).
    assignments : pandas.DataFrame
        Assignment table, checked with
        :func:`~models.experiments.assignments.validate_assignments`.
    metrics : Metric or sequence of Metric, default DEFAULT_METRICS
        Metrics with unique names.
    window_days : int, default 14
        Exposure window ``[assigned_at, assigned_at + window_days)``. Must
        cover every metric window.
    pre_days : int or None, default 14
        Pre-period ``[assigned_at - pre_days, assigned_at)``; 0 or None: none
        (no ``_pre`` columns).
    observation_end : timestamp-like, optional
        End of observation; defaults to the last event. Every exposure window
        must end by it. Later events are in no window and are not counted.
    unassigned : {"error", "drop"}, default "error"
        What to do with events of users missing from the assignment table.
    control : str, optional
        Control variant, put first in ``variants``; by default a variant named
        ``"control"``, if any.

    Returns
    -------
    UserMetrics
        ``frame`` has one row per assigned user (users without events get
        zeros), indexed by ``user_id``; see :class:`UserMetrics`.

    Raises
    ------
    DataValidationError
        For the assignment table (see ``validate_assignments``); for events
        without a column a metric needs (naming metric and column), with a
        non-numeric summed column, missing values in ``user_id``,
        ``timestamp`` or a summed column, negative ``ms_played``, ids of
        another type than the assignment table's, events of unassigned users
        (``unassigned="error"``, naming how many users and the first ids),
        integer sums that overflow int64; for exposure windows that end after
        ``observation_end`` (naming the users and the latest allowed
        assignment time); for a ratio whose denominator is zero for every user.
    TypeError
        If ``events`` is not a pandas or Dask DataFrame.
    ValueError
        For bad parameters (the message names the parameter and the value).

    Warns
    -----
    DataQualityWarning
        With ``unassigned="drop"``, saying how many users and events were left
        out.

    Notes
    -----
    With :math:`a_i` the assignment time of user :math:`i` and
    :math:`k_{ij} = \lfloor (t_{ij} - a_i) / 1\,\mathrm{day} \rfloor` the day of
    event :math:`j`, a metric with window :math:`[s, e)` uses the events with
    :math:`s \le k_{ij} < e` (default :math:`[0, \mathrm{window\_days})`), and
    its pre-period value the events with
    :math:`-\min(e - s, \mathrm{pre\_days}) \le k_{ij} < 0` (for the default
    window, :math:`-\mathrm{pre\_days} \le k_{ij} < 0`). Active days count the
    distinct :math:`k_{ij}`.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.experiments.metrics import ActiveDays, Count
    >>> from models.experiments.user_metrics import compute_user_metrics
    >>> assignments = pd.DataFrame({
    ...     "user_id": [1, 2, 3],
    ...     "variant": ["control", "treatment", "treatment"],
    ...     "assigned_at": pd.to_datetime(["2024-01-03"] * 3),
    ... })
    >>> events = pd.DataFrame({
    ...     "user_id": [1, 1, 1, 2],
    ...     "timestamp": pd.to_datetime(
    ...         ["2024-01-01 08:00", "2024-01-03 00:00", "2024-01-04 12:00", "2024-01-05 09:00"]),
    ... })
    >>> um = compute_user_metrics(events, assignments, [Count("plays"), ActiveDays()],
    ...                           window_days=2, pre_days=2, observation_end="2024-01-06")
    >>> um.frame[["variant", "plays", "plays_pre", "active_days"]]  # doctest: +NORMALIZE_WHITESPACE
               variant  plays  plays_pre  active_days
    user_id
    1          control      2          1            2
    2        treatment      0          0            0
    3        treatment      0          0            0
    """
    func = "compute_user_metrics"
    check_positive_int(func, "window_days", window_days)
    if pre_days is None:
        pre_days = 0
    check_positive_int(func, "pre_days", pre_days, allow_zero=True)
    check_choice(func, "unassigned", unassigned, ("error", "drop"))
    metrics = check_metrics(metrics, window_days, func)
    end = None if observation_end is None else to_naive_utc(observation_end, "observation_end")
    used = _check_events(events, metrics, func)
    if is_dask(assignments):
        (assignments,) = compute(assignments)
    if not isinstance(assignments, pd.DataFrame):
        raise TypeError(
            f"The 'assignments' parameter of {func} must be a pandas DataFrame. "
            f"Got {type(assignments).__name__} instead."
        )
    table = validate_assignments(
        assignments.assign(**{_POS: np.arange(len(assignments))}), control=control
    )
    keys = [EXPERIMENT_ID, USER_ID] if EXPERIMENT_ID in table.columns else [USER_ID]
    attributes = [c for c in table.columns if c not in (*keys, VARIANT, ASSIGNED_AT, _POS)]
    outputs = [c for m in metrics for c in output_columns(m, pre_days > 0)]
    clash = sorted(set(outputs) & {*keys, VARIANT, ASSIGNED_AT, *attributes})
    if clash:
        raise ValueError(
            f"The 'metrics' parameter of {func} must not name columns of the assignment "
            f"table. Got {clash} instead; rename the metric(s)."
        )
    check_id_types(events, table)

    prims = plan(metrics, window_days, pre_days)
    names = {p: f"_p{i}" for i, p in enumerate(prims)}
    int_sums = [c for c in used["sums"] if pd.api.types.is_integer_dtype(events[c].dtype)]
    columns = list(dict.fromkeys(used["sums"] + used["distinct"]))
    rows = relative_rows(events, table[[*keys, ASSIGNED_AT]], columns, -pre_days, window_days)
    known = events[USER_ID].isin(pd.unique(table[USER_ID]))
    checks = event_row_checks(events, used["sums"], known)
    totals = {c: rows[c].abs().astype("float64").sum() for c in int_sums}
    lazy = lazy_checks(events, [USER_ID, TIMESTAMP]) if is_dask(events) else {}
    last = events[TIMESTAMP].max() if end is None else None
    aggs = aggregate(rows, keys, prims, names)
    # One pass over the data for Dask: results and checks together.
    aggs, checks, totals, lazy, last = compute_nested(aggs, checks, totals, lazy, last)
    if is_dask(events):
        raise_lazy(events, [USER_ID, TIMESTAMP], lazy, "events")
    raise_for_event_rows(events, checks, known, unassigned)
    check_overflow(rows, keys, int_sums, totals)
    if end is None:
        end = pd.Timestamp(last)
        end = end.tz_convert("UTC").tz_localize(None) if end.tz is not None else end
    check_exposure(table, end, window_days, _POS)

    index = pd.MultiIndex.from_frame(table[keys]) if len(keys) > 1 else pd.Index(table[USER_ID])
    prim = pd.concat([a.reindex(index, fill_value=0) for a in aggs], axis=1)
    sizes = (window_days, pre_days)
    columns_out: dict[str, pd.Series] = {}
    for metric in metrics:
        for pre in (False, True) if pre_days > 0 else (False,):
            suffix = "_pre" if pre else ""
            if isinstance(metric, Ratio):
                for part, tag in ((metric.numerator, "_num"), (metric.denominator, "_den")):
                    columns_out[f"{metric.name}{tag}{suffix}"] = value(
                        part, metric.window, pre, prim, names, sizes
                    )
            else:
                columns_out[f"{metric.name}{suffix}"] = value(
                    metric, None, pre, prim, names, sizes
                )
    values = pd.DataFrame({k: v.to_numpy() for k, v in columns_out.items()})
    frame = pd.concat(
        [table[[VARIANT, ASSIGNED_AT, *keys[:-1], *attributes]], values], axis=1
    ).set_axis(pd.Index(table[USER_ID], name=USER_ID), axis=0)
    zero = [m.name for m in metrics if m.kind == "ratio" and not frame[f"{m.name}_den"].any()]
    if zero:
        raise DataValidationError(
            [
                Problem(
                    f"{name}_den",
                    f"a ratio denominator that is not zero for every user (metric '{name}')",
                    fix="check the denominator metric, its column and its window; a ratio "
                    "over users who never have the denominator cannot be estimated",
                )
                for name in zero
            ],
            what="user metrics",
        )
    present = sorted(frame[VARIANT].unique().tolist())
    return UserMetrics(
        frame=frame,
        metrics=metrics,
        window_days=window_days,
        pre_days=pre_days,
        variants=_order_variants(present, control),
        observation_end=end,
    )


#: Columns of the sufficient statistics after ``kind``, ``higher_is_better`` and ``n``.
STAT_COLUMNS = (
    "sum_y", "sum_d", "sum_x", "sum_w",
    "sum_yy", "sum_dd", "sum_xx", "sum_ww",
    "sum_yd", "sum_yx", "sum_yw", "sum_dx", "sum_dw", "sum_xw",
)  # fmt: skip


def _check_by(by: Any, user_metrics: UserMetrics, func: str) -> list[str]:
    frame = user_metrics.frame
    outputs = {c for m in user_metrics.metrics for c in output_columns(m, True)}
    allowed = [c for c in frame.columns if c not in (VARIANT, ASSIGNED_AT) and c not in outputs]
    by_list = [] if by is None else [by] if isinstance(by, str) else by
    ok = isinstance(by_list, list | tuple) and all(c in allowed for c in by_list)
    if not (ok and len(set(by_list)) == len(by_list)):
        raise ValueError(
            f"The 'by' parameter of {func} must be None or name distinct user attribute "
            f"columns {allowed}. Got {by!r} instead."
        )
    by_list = list(by_list)
    if EXPERIMENT_ID in frame.columns and EXPERIMENT_ID not in by_list:
        experiments = frame[EXPERIMENT_ID].unique()
        if len(experiments) > 1:
            raise ValueError(
                f"The 'by' parameter of {func} must include '{EXPERIMENT_ID}' when the users "
                f"come from {len(experiments)} experiments ({list(experiments[:5])}). "
                f"Got {by!r} instead."
            )
    problems = [
        Problem(
            column,
            "no missing values in a grouping column",
            int(frame[column].isna().sum()),
            tuple(int(i) for i in np.flatnonzero(frame[column].isna().to_numpy())[:5]),
            tuple(f"user {u!r}" for u in frame.index[frame[column].isna().to_numpy()][:5]),
            f"fill them with a group of their own, e.g. frame['{column}'].fillna('unknown'), "
            "in the assignment table",
        )
        for column in by_list
        if frame[column].isna().any()
    ]
    if problems:
        raise DataValidationError(problems, what="user metrics")
    return by_list


def sufficient_statistics(
    user_metrics: UserMetrics, *, by: str | Sequence[str] | None = None
) -> pd.DataFrame:
    r"""Per-variant sums of every metric, its pre-period covariate and their cross-products.

    Parameters
    ----------
    user_metrics : UserMetrics
        Output of :func:`compute_user_metrics`.
    by : str or sequence of str, optional
        User attribute columns (``country``, ``plan``, ``experiment_id``, ...)
        whose values split each variant into groups, for segment analyses.
        Required to include ``experiment_id`` when the users come from several
        experiments.

    Returns
    -------
    pandas.DataFrame
        One row per metric, variant (and ``by`` group), index
        ``("metric", "variant", *by)``, metrics in the order given, variants
        in ``user_metrics.variants`` order (control first), groups sorted.
        Columns ``kind``, ``higher_is_better``, ``n`` (``int64``, users) and
        the ``float64`` sums ``sum_y, sum_d, sum_x, sum_w, sum_yy, sum_dd,
        sum_xx, sum_ww, sum_yd, sum_yx, sum_yw, sum_dx, sum_dw, sum_xw``.
        ``attrs`` holds ``window_days`` and ``pre_days``.

    Raises
    ------
    TypeError
        If ``user_metrics`` is not a :class:`UserMetrics`.
    ValueError
        If ``by`` names something other than attribute columns, or leaves out
        ``experiment_id`` when there are several experiments.
    DataValidationError
        If a ``by`` column has missing values.

    Warns
    -----
    DataQualityWarning
        For each ratio metric whose denominator sums to zero in some variant
        (or group): the row is kept, with ``sum_d = 0``, and the analysis of
        that metric will refuse it.

    Notes
    -----
    Each metric gives every user :math:`i` a target :math:`y_i / d_i` and a
    covariate :math:`x_i / w_i`: for a ratio metric :math:`y_i, d_i` are the
    numerator and denominator over the exposure window and :math:`x_i, w_i`
    the same over the pre-period; for a count, sum or binary metric
    :math:`y_i` is its value, :math:`x_i` its pre-period value and
    :math:`d_i = w_i = 1`. Without a pre-period :math:`x_i = 0, w_i = 1`.
    The table holds :math:`n` and, over the users of a group,
    :math:`\sum y_i, \sum d_i, \sum x_i, \sum w_i`, the squares
    :math:`\sum y_i^2, \dots` and the cross-products
    :math:`\sum y_i d_i, \sum y_i x_i, \sum y_i w_i, \sum d_i x_i,
    \sum d_i w_i, \sum x_i w_i`: all the delta method and a regression
    adjustment (CUPED) need, so the same table can be built in SQL.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.experiments.metrics import Count
    >>> from models.experiments.user_metrics import compute_user_metrics, sufficient_statistics
    >>> assignments = pd.DataFrame({
    ...     "user_id": [1, 2, 3],
    ...     "variant": ["control", "treatment", "treatment"],
    ...     "assigned_at": pd.to_datetime(["2024-01-03"] * 3),
    ... })
    >>> events = pd.DataFrame({
    ...     "user_id": [1, 1, 2, 3, 3, 3],
    ...     "timestamp": pd.to_datetime(["2024-01-02 10:00", "2024-01-03 10:00"]
    ...                                 + ["2024-01-04 10:00"] * 4),
    ... })
    >>> um = compute_user_metrics(events, assignments, Count("plays"), window_days=2,
    ...                           pre_days=1, observation_end="2024-01-05")
    >>> stats = sufficient_statistics(um)
    >>> stats[["n", "sum_y", "sum_yy", "sum_x", "sum_yx"]]  # doctest: +NORMALIZE_WHITESPACE
                     n  sum_y  sum_yy  sum_x  sum_yx
    metric variant
    plays  control    1    1.0     1.0    1.0     1.0
           treatment  2    4.0    10.0    0.0     0.0
    """
    func = "sufficient_statistics"
    if not isinstance(user_metrics, UserMetrics):
        raise TypeError(
            f"The 'user_metrics' parameter of {func} must be the UserMetrics returned by "
            f"compute_user_metrics. Got {type(user_metrics).__name__} instead."
        )
    by = _check_by(by, user_metrics, func)
    frame = user_metrics.frame
    codes = pd.Index(user_metrics.variants).get_indexer(frame[VARIANT])
    if (codes < 0).any():  # a variant not in user_metrics.variants: no group, as with .map
        codes = np.where(codes >= 0, codes, np.nan)
    groups = pd.DataFrame({VARIANT: codes})
    for column in by:
        groups[column] = frame[column].to_numpy()
    keys = [groups[c] for c in groups]
    n = len(frame)
    ones = np.ones(n, dtype="int64")
    # One block of products, reused for every metric: no per-metric frame of 15 new arrays.
    buffer = np.empty((len(STAT_COLUMNS), n))
    pieces = []
    for metric in user_metrics.metrics:
        cols = user_metrics.columns(metric)
        values = {
            k: np.full(n, 1.0 if k in "dw" else 0.0) if c is None else frame[c].to_numpy("float64")
            for k, c in cols.items()
        }
        for row, column in zip(buffer, STAT_COLUMNS, strict=True):
            factors = column.removeprefix("sum_")  # "y" or a pair such as "yx"
            if len(factors) == 1:
                row[:] = values[factors]
            else:
                np.multiply(values[factors[0]], values[factors[1]], out=row)
        products = pd.DataFrame(buffer.T, columns=list(STAT_COLUMNS), copy=False)
        products.insert(0, "n", ones)
        sums = products.groupby(keys, sort=True).sum()
        sums = sums.reset_index()
        sums[VARIANT] = np.asarray(user_metrics.variants, dtype=object)[sums[VARIANT]]
        sums.insert(0, "metric", metric.name)
        sums.insert(len(by) + 2, "kind", metric.kind)
        sums.insert(len(by) + 3, "higher_is_better", bool(metric.higher_is_better))
        pieces.append(sums)
    table = pd.concat(pieces, ignore_index=True).set_index(["metric", VARIANT, *by])
    table = table[["kind", "higher_is_better", "n", *STAT_COLUMNS]]
    table.attrs = {"window_days": user_metrics.window_days, "pre_days": user_metrics.pre_days}
    empty = table[(table["kind"] == "ratio") & (table["sum_d"] == 0)]
    if len(empty):
        cells = "; ".join(str(i) for i in empty.index[:N_EXAMPLES])
        warnings.warn(
            DataQualityWarning(
                f"The denominator of a ratio metric is zero for every user of {len(empty)} "
                f"(metric, variant{', group' if by else ''}) cell(s): {cells}. The ratio is "
                "undefined there and its analysis will refuse these rows; check the metric's "
                "denominator or leave the empty groups out."
            ),
            stacklevel=2,
        )
    return table
