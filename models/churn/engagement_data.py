"""Activity tables for the engagement-state model: built from a log, and checked.

An activity table has one row per user (index ``user_id``) and one column per
period, in time order, holding the number of days of the period on which the
user was active (0 to the period length), and missing values before the user's
first period. :func:`activity_table` builds it from a listening log;
:func:`validate_activity_table` is the check the model runs on its input.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.exceptions import DataValidationError, Problem

__all__ = ["activity_table", "check_period_length", "state_labels", "validate_activity_table"]

_SHOWN = 5
_WHAT = "activity table"
#: A period name that is a date, as :func:`activity_table` writes them ("2024-01-01"),
#: optionally with a time of day (``str`` of a ``pandas.Timestamp``).
_DATE_NAME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")


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


def _not_real(col: pd.Series) -> bool:
    """Whether a column is not real numbers of days: not numeric, boolean or complex."""
    return (not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
            or pd.api.types.is_complex_dtype(col))


def _date(name: str) -> pd.Timestamp | None:
    """Return the date a period name stands for ("2024-01-01"), or None if it is no date."""
    if not _DATE_NAME.fullmatch(name):
        return None
    try:
        return pd.Timestamp(name)
    except ValueError:  # matches the pattern but is no date, e.g. "2024-13-45"
        return None


def _period_name_problems(names: pd.Index, period_length: int) -> list[Problem]:
    """Problems of the period names when they are dates: all dates, in order, evenly spaced.

    Names that are not dates (``w0``, ``p000``) are not checked; when some are dates
    and others are not, the others are columns that are not periods.
    """
    dates = [_date(name) for name in names]
    if not any(d is not None for d in dates):
        return []
    others = [name for name, d in zip(names, dates, strict=True) if d is None]
    if others:
        return [Problem(name, "a period named by the date it starts, as the other columns "
                        "are (this name is not a date: the column is not a period)",
                        fix="set it as the index (table.set_index(...)) if it holds the user "
                        "ids, pass it as segment= or covariates= if it describes the users, or "
                        "drop it") for name in others]
    step = pd.Timedelta(days=period_length)
    for j in range(1, len(dates)):
        gap = dates[j] - dates[j - 1]
        if gap != step:
            days = gap / pd.Timedelta(days=1)
            size = f"{abs(days):g} day(s)" if days == round(days) else str(abs(gap))
            when = ("on the same date" if days == 0 else
                    f"{size} {'after' if days > 0 else 'before'} it")
            return [Problem(names[j], f"a period starting {period_length} day(s) after the "
                            f"previous column '{names[j - 1]}' (periods in time order, "
                            f"{period_length} day(s) apart); it starts {when}",
                            fix="put the columns in time order (table.sort_index(axis=1)) "
                            "with no period left out, and give the table's period_length")]
    return []


def _label_kind(value: Any) -> str:
    """Kind of a segment label: numbers (also booleans) sort together, strings together."""
    if isinstance(value, str):
        return "str"
    if isinstance(value, numbers.Real):
        return "number"
    return type(value).__name__


def _segment_problems(column: pd.Series, name: str) -> list[Problem]:
    """Missing segment labels, and labels of mixed types (the model sorts the labels)."""
    miss = column.isna().to_numpy()
    problems = []
    if miss.any():
        rows = np.flatnonzero(miss)
        problems.append(_problem(name, "a segment label on every row", rows,
                                 [None] * len(rows[:_SHOWN])))
    labels = column.to_numpy(dtype=object) if isinstance(column.dtype, pd.CategoricalDtype) or (
        column.dtype == object) else None
    if labels is None or miss.all():
        return problems
    kind = pd.api.types.infer_dtype(labels, skipna=True)
    if kind.startswith("mixed") and kind != "mixed-integer-float":
        kinds = pd.Series(labels).map(_label_kind, na_action="ignore")
        common = kinds.mode().iloc[0]
        odd = (kinds.notna() & (kinds != common)).to_numpy()
        if odd.any():
            rows = np.flatnonzero(odd)
            problems.append(_problem(
                name, f"segment labels of one type (most are {common}, some are not)", rows,
                [labels[i] for i in rows[:_SHOWN]],
                f"convert the labels to one type, e.g. table['{name}'].astype(str)"))
            return problems
    try:
        sorted(pd.unique(labels[~miss]))
    except TypeError:
        problems.append(Problem(name, "segment labels that can be put in order (strings or "
                                "numbers)", fix=f"convert the labels to one type, e.g. "
                                f"table['{name}'].astype(str)"))
    return problems


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
        columns have one name (as strings), a user id is missing or repeated,
        a period column is not of real numbers (complex ones included), the
        period names are dates (as :func:`activity_table` writes them) but not
        ``period_length`` days apart in time order, or some are dates and
        others are not (a column that is not a period), a value is not a
        whole number in ``[0, period_length]``, a missing value follows an
        observed one, a user has no observed period, a segment is missing or
        the segment labels are of mixed types, or a covariate is missing, not
        a real number or not finite; the message names the column, the rows
        and the values.

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
    no_id = data.index.isna()
    if names.has_duplicates or data.index.has_duplicates or len(clash) or no_id.any():
        twice = [Problem(name, "one column per period (each name once)",
                         fix="merge or rename the repeated columns")
                 for name in names[names.duplicated()].unique()]
        twice += [Problem(name, "a period name other than the segment's and the covariates'",
                          fix="rename the period column") for name in clash]
        if no_id.any():  # missing, not "repeated user 'nan'"
            rows = np.flatnonzero(no_id)
            twice.append(_problem(
                "<index>", "a user id on every row (the index)", rows,
                [None] * len(rows[:_SHOWN]), "drop the rows without a user id, or fill in "
                "their ids"))
        repeated = np.flatnonzero(data.index.duplicated(keep=False) & ~no_id)
        if len(repeated):
            twice.append(_problem(
                "<index>", "one row per user (each user id once)", repeated,
                [str(data.index[i]) for i in repeated[:_SHOWN]],
                "sum the repeated users' rows, or drop the extra ones"))
        raise DataValidationError(twice, what=_WHAT)
    problems = _period_name_problems(names, period_length)
    not_periods = {p.column for p in problems if p.column in names and _date(p.column) is None}
    for name in periods:
        col = data[name]
        if _not_real(col) and str(name) not in not_periods:
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
        problems.extend(_segment_problems(data[segment], segment))
    covs = {}
    for name in covariates:
        col = data[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)) or (
                pd.api.types.is_complex_dtype(col)):
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


def _time(owner: str, name: str, value: Any) -> pd.Timestamp:
    """Parse a time parameter to a Timestamp, or raise the one parameter error naming it."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as err:  # pandas' DateParseError is a ValueError
        ts, cause = pd.NaT, err
    else:
        cause = None
    if ts is pd.NaT:
        raise ValueError(f"The '{name}' parameter of {owner} must be a timestamp or a date "
                         f"string such as '2024-01-01'. Got {value!r} instead.") from cause
    return ts


def _in_zone_of(ts: pd.Timestamp, aware: bool) -> pd.Timestamp:
    """``ts`` comparable with times that are tz-aware or not: naive times are read as UTC."""
    if aware and ts.tz is None:
        return ts.tz_localize("UTC")
    if not aware and ts.tz is not None:
        return ts.tz_convert("UTC").tz_localize(None)
    return ts


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
        Log with ``user_id`` and ``timestamp`` (datetime) columns, at least one
        event. Timestamps and the times below may be tz-aware or naive, also
        mixed: as in :mod:`models.data`, naive times are read as UTC.
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
        If ``period_length`` is not a positive integer, ``start`` or
        ``observation_end`` is not a timestamp, or ``observation_end`` is not
        ``start`` plus a positive whole number of periods.
    models.exceptions.DataValidationError
        If a column is missing, there is no event (before ``observation_end``),
        a timestamp is missing or not a datetime, a user id is missing or the
        ids are of mixed types (``7`` and ``"7"``), or an event comes before
        ``start``.

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
    first = _time(owner, "start", start)  # as given: it names the columns
    t0 = first
    end = _in_zone_of(_time(owner, "observation_end", observation_end), t0.tz is not None)
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
    if len(events) == 0:
        raise DataValidationError([Problem("<table>", "at least one event",
                                           fix="check the filter that made the log")],
                                  what="events")
    ts = events["timestamp"]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        raise DataValidationError([Problem("timestamp", f"datetimes, not dtype {ts.dtype}",
                                           fix="convert with pandas.to_datetime")], what="events")
    aware = isinstance(ts.dtype, pd.DatetimeTZDtype)
    t0, end = _in_zone_of(t0, aware), _in_zone_of(end, aware)
    ids = events["user_id"]
    problems = []
    for column, bad, rule in [
        ("timestamp", ts.isna().to_numpy(), "a timestamp on every event"),
        ("user_id", ids.isna().to_numpy(), "a user id on every event"),
        ("timestamp", (ts < t0).to_numpy(), f"events at or after start ({first})"),
    ]:
        if bad.any():
            rows = np.flatnonzero(bad)
            problems.append(_problem(column, rule, rows, [str(v) for v in
                                                          events[column].iloc[rows[:_SHOWN]]]))
    if ids.dtype == object and pd.api.types.infer_dtype(ids, skipna=True).startswith("mixed"):
        types = ids.map(lambda v: type(v).__name__, na_action="ignore")
        common = types.mode().iloc[0]
        odd = np.flatnonzero((types.notna() & (types != common)).to_numpy())
        problems.append(_problem(
            "user_id", f"ids of one type (most are {common}, some are not)", odd,
            [ids.iloc[i] for i in odd[:_SHOWN]],
            "cast the column to one type, e.g. events['user_id'].astype(str)"))
    if problems:
        raise DataValidationError(problems, what="events")
    keep = (ts < end).to_numpy()
    if not keep.any():
        raise DataValidationError([Problem(
            "timestamp", f"at least one event before observation_end ({observation_end!r})",
            fix="check observation_end against the dates of the log")], what="events")
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
    table.columns = [str((first + pd.Timedelta(days=n * k)).date()) for k in range(n_periods)]
    table.index.name = "user_id"
    table.columns.name = None
    return table.sort_index()
