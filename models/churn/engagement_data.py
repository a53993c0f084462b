"""Activity tables for the engagement-state model: built from a log, and checked.

An activity table has one row per user (index ``user_id``) and one column per
period, in time order, holding the number of days of the period on which the
user was active (0 to the period length), and missing values before the user's
first period. :func:`activity_table` builds it from a listening log;
:func:`validate_activity_table` is the check the model runs on its input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.exceptions import DataValidationError, Problem

__all__ = ["activity_table", "check_period_length", "state_labels", "validate_activity_table"]

_SHOWN = 5
_WHAT = "activity table"


def state_labels(n_states: int) -> list[str]:
    """Labels of ``n_states`` emitting states, lowest mean activity first.

    Examples
    --------
    >>> state_labels(3), state_labels(4)
    (['dormant', 'light', 'engaged'], ['dormant', 'level_1', 'level_2', 'engaged'])
    """
    if n_states == 3:
        return ["dormant", "light", "engaged"]
    return ["dormant", *(f"level_{i}" for i in range(1, n_states - 1)), "engaged"]


def check_period_length(owner: str, value: Any) -> int:
    """Return ``value`` if it is a positive integer, else raise the one parameter error."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"The 'period_length' parameter of {owner} must be a positive integer "
                         f"(days per period). Got {value!r} instead.")
    return int(value)


def _problem(column: str, rule: str, rows: np.ndarray, values: list, fix: str = "") -> Problem:
    return Problem(str(column), rule, len(rows), tuple(int(i) for i in rows[:_SHOWN]),
                   tuple(values[:_SHOWN]), fix)


def validate_activity_table(data: Any, period_length: int, segment: str | None = None,
                            covariates: Sequence[str] = ()) -> pd.DataFrame:
    """Check an activity table and return it clean (float periods, str column names).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per user; every column but ``segment`` and ``covariates`` is a
        period, in time order.
    period_length : int
        Days per period: the largest allowed value.
    segment : str, optional
        Column of segment labels.
    covariates : sequence of str, default ()
        Columns of user covariates: numbers (or booleans, taken as 0 and 1),
        finite on every row.

    Returns
    -------
    pandas.DataFrame
        The periods as floats (NaN before a user's first period), column names
        as strings, then the segment column and the covariates (as floats).

    Raises
    ------
    models.exceptions.DataValidationError
        If the table is not a DataFrame with a period column, two period
        columns have one name (as strings) or a user id is repeated, a value is
        not a whole number in ``[0, period_length]``, a missing value follows an
        observed one, a user has no observed period, a segment is missing, or a
        covariate is missing, not a number or not finite; the message names the
        column, the rows and the values.

    Notes
    -----
    The periods are converted, column by column, into one new column-major
    float64 array, which the returned frame holds without another copy
    (its ``to_numpy()`` is a view); ``data`` is never modified. Besides that
    array, the checks allocate one column's worth of temporaries at a time.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"w0": [3, None], "w1": [0, 9]}, index=["a", "b"])
    >>> validate_activity_table(table, 7)
    Traceback (most recent call last):
    ...
    models.exceptions.DataValidationError: Invalid activity table: 1 problem(s) found.
      - column 'w1': expected whole numbers of active days from 0 to 7, or missing before \
the user's first period; 1 row(s) break this, first: row 1 (9.0)
    """
    if not isinstance(data, pd.DataFrame):
        raise DataValidationError([Problem(
            "<table>", "a pandas DataFrame, one row per user and one column per period",
            fix="use models.churn.activity_table(events, ...)")], what=_WHAT)
    absent = [Problem(segment, "a column of this name (the segment)")] if (
        segment is not None and segment not in data.columns) else []
    absent += [Problem(c, "a column of this name (a covariate)",
                       fix="add the users' covariate to the table, one value per user")
               for c in covariates if c not in data.columns]
    if absent:
        raise DataValidationError(absent, what=_WHAT)
    extra = {segment, *covariates} - {None}
    periods = [c for c in data.columns if c not in extra]
    if not periods or len(data) == 0:
        raise DataValidationError([Problem("<table>", "at least one user and one period")],
                                  what=_WHAT)
    names = pd.Index([str(c) for c in periods])  # the clean table's column names
    clash = names.intersection(pd.Index([str(c) for c in extra]))
    if names.has_duplicates or data.index.has_duplicates or len(clash):
        twice = [Problem(name, "one column per period (each name once)",
                         fix="merge or rename the repeated columns")
                 for name in names[names.duplicated()].unique()]
        twice += [Problem(name, "a period name other than the segment's and the covariates'",
                          fix="rename the period column") for name in clash]
        repeated = np.flatnonzero(data.index.duplicated(keep=False))
        if len(repeated):
            twice.append(_problem(
                "<index>", "one row per user (each user id once)", repeated,
                [str(data.index[i]) for i in repeated[:_SHOWN]],
                "sum the repeated users' rows, or drop the extra ones"))
        raise DataValidationError(twice, what=_WHAT)
    problems: list[Problem] = []
    for name in periods:
        col = data[name]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            problems.append(Problem(str(name), f"numbers of active days, not dtype {col.dtype}"))
    if problems:
        raise DataValidationError(problems, what=_WHAT)
    # The clean values: one column-major float array, the only users x periods allocation.
    # Each column is converted into it and checked there, so every temporary is one column.
    values = np.empty((len(data), len(periods)), order="F")
    seen = np.zeros(len(data), dtype=bool)  # users with an observed period so far
    out_of_range, gaps = [], []
    for j, name in enumerate(periods):
        column = values[:, j]
        # a view of a float64 column, an array of one column otherwise
        column[:] = data[name].to_numpy(dtype=float, na_value=np.nan)
        observed = ~np.isnan(column)
        bad = observed & ((column < 0) | (column > period_length)
                          | (column != np.round(column)))
        if bad.any():
            rows = np.flatnonzero(bad)
            out_of_range.append(_problem(
                name, f"whole numbers of active days from 0 to {period_length}, or missing "
                "before the user's first period", rows, column[rows[:_SHOWN]].tolist()))
        gap = seen & ~observed  # missing after the user's first period
        if gap.any():
            rows = np.flatnonzero(gap)
            gaps.append(_problem(
                name, "a value in every period after the user's first one (0 for no "
                "activity); missing values only before it", rows, [None] * len(rows[:_SHOWN])))
        seen |= observed
    problems.extend(out_of_range)
    if not seen.all():
        rows = np.flatnonzero(~seen)
        problems.append(_problem("<table>", "at least one observed period per user", rows,
                                 [str(data.index[i]) for i in rows[:_SHOWN]],
                                 "drop users without activity in the table's window"))
    problems.extend(gaps)
    if segment is not None:
        miss = data[segment].isna().to_numpy()
        if miss.any():
            rows = np.flatnonzero(miss)
            problems.append(_problem(segment, "a segment label on every row", rows,
                                     [None] * len(rows[:_SHOWN])))
    covs = {}
    for name in covariates:
        col = data[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            problems.append(Problem(name, f"a numeric covariate, not dtype {col.dtype}",
                                    fix="encode it as numbers (0/1 for a flag)"))
            continue
        covs[name] = col.to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isfinite(covs[name])
        if bad.any():
            rows = np.flatnonzero(bad)
            problems.append(_problem(name, "a finite covariate value on every row", rows,
                                     covs[name][rows[:_SHOWN]].tolist(),
                                     "fill or drop the users without a value"))
    if problems:
        raise DataValidationError(problems, what=_WHAT)
    # copy=False: the frame keeps `values` as its one float block (to_numpy() is a view)
    clean = pd.DataFrame(values, index=data.index, columns=names, copy=False)
    if segment is not None:
        clean[segment] = data[segment].to_numpy()
    for name, column in covs.items():
        clean[name] = column
    return clean


def activity_table(events: pd.DataFrame, *, start: Any, observation_end: Any,
                   period_length: int = 7) -> pd.DataFrame:
    """Active days per user and period of a listening log, the engagement model's input.

    Periods are consecutive windows of ``period_length`` days from ``start``
    (for example weeks from the first day of the log); a user is active on a
    day with at least one event. A user's row starts at the period of their
    first event (missing values before it) and every later period up to
    ``observation_end`` has a value (0 when silent). Events at or after
    ``observation_end`` are left out, so the same log gives a calibration
    table and, with a later end, the activity that followed.

    Parameters
    ----------
    events : pandas.DataFrame
        Log with ``user_id`` and ``timestamp`` (datetime) columns.
    start : timestamp-like
        Start of the first period; no event may come before it.
    observation_end : timestamp-like
        End (exclusive) of the last period: ``start`` plus a whole number of
        periods.
    period_length : int, default 7
        Days per period.

    Returns
    -------
    pandas.DataFrame
        One row per user with an event before ``observation_end`` (index
        ``user_id``, sorted), one column per period named by the date it starts
        (``"2008-01-01"``), float values (NaN before the user's first period).

    Raises
    ------
    ValueError
        If ``period_length`` is not a positive integer or ``observation_end`` is
        not ``start`` plus a positive whole number of periods.
    models.exceptions.DataValidationError
        If a column is missing, a timestamp is missing or not a datetime, or an
        event comes before ``start``.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "timestamp": pd.to_datetime(
    ...     ["2024-01-01 10:00", "2024-01-01 18:00", "2024-01-09 09:00", "2024-01-10 12:00"])})
    >>> activity_table(log, start="2024-01-01",
    ...                observation_end="2024-01-15")  # doctest: +NORMALIZE_WHITESPACE
             2024-01-01  2024-01-08
    user_id
    a               1.0         1.0
    b               NaN         1.0
    """
    owner = "activity_table"
    n = check_period_length(owner, period_length)
    t0, end = pd.Timestamp(start), pd.Timestamp(observation_end)
    span = (end - t0) / pd.Timedelta(days=n)
    if not (span > 0 and span == int(span)):
        raise ValueError(f"The 'observation_end' parameter of {owner} must be 'start' plus a "
                         f"positive whole number of {n}-day periods. Got {observation_end!r} "
                         "instead.")
    if not isinstance(events, pd.DataFrame):
        raise DataValidationError([Problem("<table>", "a pandas DataFrame of events")],
                                  what="events")
    missing = [c for c in ("user_id", "timestamp") if c not in events.columns]
    if missing:
        raise DataValidationError([Problem(c, "a column of this name") for c in missing],
                                  what="events")
    ts = events["timestamp"]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        raise DataValidationError([Problem("timestamp", f"datetimes, not dtype {ts.dtype}",
                                           fix="convert with pandas.to_datetime")], what="events")
    problems = []
    for column, bad, rule in [
        ("timestamp", ts.isna().to_numpy(), "a timestamp on every event"),
        ("user_id", events["user_id"].isna().to_numpy(), "a user id on every event"),
        ("timestamp", (ts < t0).to_numpy(), f"events at or after start ({t0})"),
    ]:
        if bad.any():
            rows = np.flatnonzero(bad)
            problems.append(_problem(column, rule, rows, [str(v) for v in
                                                          events[column].iloc[rows[:_SHOWN]]]))
    if problems:
        raise DataValidationError(problems, what="events")
    keep = (ts < end).to_numpy()
    day = ((ts[keep] - t0) // pd.Timedelta(days=1)).to_numpy()
    days = pd.DataFrame({"user_id": events["user_id"].to_numpy()[keep], "day": day})
    days = days.drop_duplicates()
    days["period"] = days["day"] // n
    counts = days.groupby(["user_id", "period"]).size()
    n_periods = int(span)
    table = counts.unstack("period").reindex(columns=range(n_periods)).astype(float)
    observed = table.notna().to_numpy()
    after = np.maximum.accumulate(observed, axis=1)
    table = table.where(~(after & ~observed), 0.0)
    table.columns = [str((t0 + pd.Timedelta(days=n * k)).date()) for k in range(n_periods)]
    table.index.name = "user_id"
    table.columns.name = None
    return table.sort_index()
