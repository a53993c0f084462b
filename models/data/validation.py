"""Validation of listening logs and users tables.

:func:`validate_events` and :func:`validate_users` check a table against the
rules of :mod:`models.data.schema`, collect *every* broken rule, and either
raise one :class:`~models.exceptions.DataValidationError` listing them all or
return a clean, typed copy. Nothing is silently dropped or coerced: rows are
only dropped when the caller asks with ``drop_invalid=True``, and then a
:class:`~models.exceptions.DataQualityWarning` says how many and why.

Row positions in error messages are 0-based positions in the table as it was
passed in (not index labels), so ``df.iloc[rows]`` shows the offenders.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models._validation import N_EXAMPLES, TABLE, text_missing
from models._validation import row_problem as _row_problem
from models.data.schema import (
    ARTIST_ID,
    COUNTRY,
    MS_PLAYED,
    PLAN,
    SESSION_ID,
    SIGNUP_DATE,
    SKIPPED,
    TIMESTAMP,
    TRACK_ID,
    USER_ID,
)
from models.exceptions import DataQualityWarning, DataValidationError, Problem

__all__ = ["validate_events", "validate_users"]


#: Smallest float that does not fit in int64.
_INT64_LIMIT = 2.0**63
_TRUE_STRINGS = frozenset({"true", "1", "t", "yes"})
_FALSE_STRINGS = frozenset({"false", "0", "f", "no"})


@dataclass
class _Report:
    """Problems found so far: table-level ones and row-level ones with their masks."""

    n_rows: int
    table: list[Problem] = field(default_factory=list)
    rows: list[tuple[Problem, np.ndarray]] = field(default_factory=list)

    def add_rows(
        self,
        column: str,
        rule: str,
        mask: np.ndarray,
        values: pd.Series | pd.DataFrame,
        fix: str = "",
    ) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            self.rows.append((_row_problem(column, rule, mask, values, fix), mask))

    def bad_rows(self) -> np.ndarray:
        bad = np.zeros(self.n_rows, dtype=bool)
        for _, mask in self.rows:
            bad |= mask
        return bad

    def problems(self) -> list[Problem]:
        return self.table + [p for p, _ in self.rows]


def _to_naive_utc(value: Any, name: str) -> pd.Timestamp:
    """Parse a scalar time argument; tz-aware values are converted to UTC and made naive."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"The '{name}' parameter must be a timestamp or a date string. Got {value!r} instead."
        ) from err
    if ts is pd.NaT:
        raise ValueError(f"The '{name}' parameter must be a timestamp. Got {value!r} instead.")
    if ts.tz is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if not pd.Timestamp.min <= ts <= pd.Timestamp.max:
        raise ValueError(
            f"The '{name}' parameter must be between {pd.Timestamp.min:%Y-%m-%d} and "
            f"{pd.Timestamp.max:%Y-%m-%d}. Got {value!r} instead."
        )
    return ts.as_unit("ns")


#: Text that stands for a missing value when it is an id ("" and "nan" are not real ids).
_OFFSET = r"(?:[zZ]|[+-]\d{2}:?\d{2})$"


def _in_range_ns(
    parsed: pd.Series, raw: pd.Series, column: str, report: _Report
) -> pd.Series:
    """Cast naive datetimes to ``datetime64[ns]``, reporting those outside its range."""
    lo, hi = pd.Timestamp.min, pd.Timestamp.max
    with np.errstate(invalid="ignore"):
        outside = ((parsed < lo) | (parsed > hi)).to_numpy(dtype=bool)
    report.add_rows(
        column,
        f"timestamps between {lo:%Y-%m-%d} and {hi:%Y-%m-%d} (the range of nanosecond "
        "datetimes)",
        outside,
        raw,
        f"check the year of these '{column}' values (a typo such as 2300 or 1500?)",
    )
    return parsed.mask(outside).astype("datetime64[ns]")


def _parse_datetimes(s: pd.Series, column: str, report: _Report) -> pd.Series:
    """Parse a column to tz-naive UTC ``datetime64[ns]``, reporting missing and bad values.

    Strings are parsed as ISO 8601 only: other formats are ambiguous ('02/03/2024' is
    2 March or 3 February) and are reported, with the fix of parsing them first.
    """
    missing = s.isna().to_numpy()
    report.add_rows(
        column,
        "no missing values",
        missing,
        s,
        f"drop or fill the rows with a missing '{column}'",
    )
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return _in_range_ns(s.dt.tz_convert("UTC").dt.tz_localize(None), s, column, report)
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return _in_range_ns(s, s, column, report)
    if (pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)) and not (
        missing.all()
    ):
        present = ~missing
        report.table.append(
            _row_problem(
                column,
                f"datetimes or date strings, not numbers (dtype {s.dtype})",
                present,
                s,
                f"convert epoch numbers first, e.g. pd.to_datetime(df['{column}'], unit='s')",
            )
        )
        return pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    parsed = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
    failed = (parsed.isna() & ~missing).to_numpy()
    report.add_rows(
        column,
        "parseable ISO 8601 datetimes such as '2024-01-31 23:59:00' (other formats are "
        "ambiguous: '02/03/2024' is 2 March or 3 February)",
        failed,
        s,
        f"fix or drop these rows; if the column uses another format, parse it first with "
        f"pd.to_datetime(df['{column}'], format='%d/%m/%Y %H:%M') (the format of the source)",
    )
    _warn_mixed_offsets(s, column)
    return _in_range_ns(parsed.dt.tz_localize(None), s, column, report)


def _warn_mixed_offsets(s: pd.Series, column: str) -> None:
    """Warn when some datetime strings carry a UTC offset and others do not."""
    text = s[s.map(lambda v: isinstance(v, str))].str.strip()
    if text.empty:
        return
    aware = text.str.contains(_OFFSET, regex=True)
    if aware.all() or not aware.any():
        return
    naive = np.flatnonzero(s.index.isin(text.index[~aware]))
    warnings.warn(
        DataQualityWarning(
            f"Column '{column}' mixes datetimes with a UTC offset ({int(aware.sum())} row(s)) "
            f"and without one ({int((~aware).sum())} row(s), first: rows "
            f"{', '.join(map(str, naive[:N_EXAMPLES]))}); those without are read as UTC. "
            "Give every value an offset (or none) if they come from different sources."
        ),
        stacklevel=4,
    )


def _check_ids(s: pd.Series, column: str, report: _Report, *, allow_missing: bool = False) -> bool:
    """Report missing ids, ids of mixed types and non-integer float ids.

    Strings that stand for a missing value ('', 'nan', 'None', 'null', ...) count as
    missing: they are not real ids. Returns False when the column holds containers
    (lists, dicts), which no later check can handle.
    """
    missing = s.isna().to_numpy()
    missing_text = text_missing(s)
    if not allow_missing:
        report.add_rows(
            column,
            "no missing ids",
            missing,
            s,
            f"drop the rows with a missing '{column}', or fill them with a real id",
        )
        report.add_rows(
            column,
            "real ids, not text standing for a missing value ('', 'nan', 'None', 'null')",
            missing_text,
            s,
            f"drop these rows or fill '{column}' with real ids; an empty or 'nan' id would "
            "merge unrelated rows into one fake user or item",
        )
    missing = missing | missing_text
    if s.dtype == object:
        nested = s.map(lambda v: isinstance(v, list | tuple | dict | set | np.ndarray),
                       na_action="ignore").fillna(False).to_numpy(dtype=bool)
        if nested.any():
            report.table.append(
                _row_problem(
                    column,
                    "one id per row (a number or a string), not lists or other containers",
                    nested,
                    s.map(repr),
                    f"give each row one '{column}'; to spread a list over rows use "
                    f"df.explode('{column}')",
                )
            )
            return False
    if pd.api.types.is_float_dtype(s.dtype):
        values = s.to_numpy(dtype=float, na_value=np.nan)
        fractional = ~missing & (np.floor(values) != values)
        report.add_rows(
            column,
            "whole-number or string ids",
            fractional,
            s,
            f"ids must not have fractions; cast '{column}' to str if they are labels",
        )
    elif s.dtype == object:
        kind = pd.api.types.infer_dtype(s, skipna=True)
        if kind.startswith("mixed"):
            types = s.map(lambda v: type(v).__name__, na_action="ignore")
            common = types.mode().iloc[0]
            odd = (types.notna() & (types != common)).to_numpy()
            report.table.append(
                _row_problem(
                    column,
                    f"ids of one type (most are {common}, some are not)",
                    odd,
                    s,
                    f"cast the column to one type, e.g. df['{column}'].astype(str)",
                )
            )
    return True


def _clean_ids(s: pd.Series) -> pd.Series:
    """Give an id column one dtype: ``int64`` for whole numbers, ``str`` for strings."""
    if s.isna().any():
        if pd.api.types.is_float_dtype(s.dtype):
            return s.astype("Int64")
        return s
    if pd.api.types.is_float_dtype(s.dtype):
        return s.astype("int64")
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.astype("int64")
    if s.dtype == object:
        kind = pd.api.types.infer_dtype(s, skipna=True)
        if kind == "string":
            return s.astype("str")
        if kind == "integer":
            return s.astype("int64")
    return s


def _check_ms_played(s: pd.Series, report: _Report) -> pd.Series:
    """Report non-numeric, missing, fractional and negative ``ms_played``."""
    missing = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s.dtype):
        report.table.append(
            Problem(
                MS_PLAYED,
                "non-negative integer milliseconds, not booleans",
                fix=f"check that '{MS_PLAYED}' holds play durations",
            )
        )
        return s
    numbers = pd.to_numeric(s, errors="coerce")
    not_numeric = numbers.isna().to_numpy() & ~missing
    report.add_rows(
        MS_PLAYED,
        "numeric milliseconds",
        not_numeric,
        s,
        f"remove units and text from '{MS_PLAYED}' (plain integers of milliseconds)",
    )
    report.add_rows(
        MS_PLAYED,
        "no missing values",
        missing,
        s,
        f"fill the missing durations, or drop the '{MS_PLAYED}' column if it is unknown",
    )
    values = numbers.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        fractional = np.isfinite(values) & (np.floor(values) != values)
        infinite = np.isinf(values)
        negative = values < 0
    report.add_rows(
        MS_PLAYED,
        "whole milliseconds (integers)",
        fractional | infinite,
        s,
        f"round '{MS_PLAYED}' to integers; if it is in seconds multiply by 1000 first",
    )
    report.add_rows(
        MS_PLAYED,
        "non-negative durations",
        negative,
        s,
        "durations cannot be negative; check for sign or subtraction errors upstream",
    )
    with np.errstate(invalid="ignore"):
        too_large = np.isfinite(values) & (values >= _INT64_LIMIT)
    report.add_rows(
        MS_PLAYED,
        "durations below 2**63 ms (they are stored as int64; larger values would wrap "
        "to negative numbers)",
        too_large,
        s,
        f"check the unit of '{MS_PLAYED}' (milliseconds) and the values' source; such "
        "durations are far beyond any real play",
    )
    return numbers


def _check_skipped(s: pd.Series, report: _Report) -> pd.Series:
    """Report ``skipped`` values that are not booleans, 0/1 or 'true'/'false'."""
    if pd.api.types.is_bool_dtype(s.dtype) and not s.isna().any():
        return s.astype(bool)
    if pd.api.types.is_numeric_dtype(s.dtype):
        values = s.to_numpy(dtype=float, na_value=np.nan)
        ok = (values == 0) | (values == 1)
        out = pd.Series(values == 1, index=s.index)
    else:
        text = s.astype("str").str.strip().str.lower()
        is_true = text.isin(_TRUE_STRINGS).to_numpy() | s.map(lambda v: v is True).to_numpy(
            dtype=bool
        )
        is_false = text.isin(_FALSE_STRINGS).to_numpy() | s.map(lambda v: v is False).to_numpy(
            dtype=bool
        )
        numeric = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        is_true |= numeric == 1
        is_false |= numeric == 0
        ok = is_true | is_false
        out = pd.Series(is_true, index=s.index)
    report.add_rows(
        SKIPPED,
        "boolean-like values (True/False, 1/0, 'true'/'false'), none missing",
        ~ok,
        s,
        f"map '{SKIPPED}' to True/False explicitly",
    )
    return out


def _require_frame(df: Any, name: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"The 'df' parameter of {name} must be a pandas DataFrame. "
            f"Got {type(df).__name__} instead."
        )


def _raise_or_drop(
    report: _Report, out: pd.DataFrame, *, what: str, drop_invalid: bool
) -> pd.DataFrame:
    """Raise for any problem, or drop the bad rows (row-level problems only) with a warning."""
    problems = report.problems()
    if report.table or (problems and not drop_invalid):
        raise DataValidationError(problems, what=what)
    if not problems:
        return out
    bad = report.bad_rows()
    reasons = "; ".join(
        f"'{p.column}' (expected {p.rule}): {p.n_rows} row(s)" for p, _ in report.rows
    )
    warnings.warn(
        DataQualityWarning(
            f"Dropped {int(bad.sum())} of {report.n_rows} rows of the {what} that broke "
            f"{len(report.rows)} rule(s): {reasons}.",
            [p for p, _ in report.rows],
        ),
        stacklevel=3,
    )
    out = out.loc[~bad]
    if out.empty:
        raise DataValidationError(
            [Problem(TABLE, "at least one valid row", fix="every row was invalid; see above")],
            what=what,
        )
    return out


def validate_events(
    df: pd.DataFrame,
    *,
    observation_end: Any = None,
    drop_invalid: bool = False,
    now: Any = None,
) -> pd.DataFrame:
    """Check a listening log and return a clean, typed copy.

    Every rule is checked and every broken rule is reported at once, in one
    :class:`~models.exceptions.DataValidationError`.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per play. Required columns: ``user_id``, ``timestamp`` and at
        least one of ``track_id`` / ``artist_id``. Optional: ``ms_played``
        (non-negative integer milliseconds), ``skipped`` (bool, 0/1 or
        ``'true'``/``'false'``), ``session_id``. Other columns pass through
        unchanged.
    observation_end : timestamp-like, optional
        End of the observation window; events after it are an error. An event
        exactly at ``observation_end`` is valid.
    drop_invalid : bool, default False
        Drop the rows that break a row-level rule (missing or malformed values,
        duplicates, events after the end) instead of raising, and issue a
        :class:`~models.exceptions.DataQualityWarning` saying how many rows and
        why. Table-level problems (missing columns, an empty table, a column of
        the wrong type altogether) still raise.
    now : timestamp-like, optional
        The current time, used when ``observation_end`` is not given: events
        after it are "in the future" and an error. Defaults to the current UTC
        time.

    Returns
    -------
    pandas.DataFrame
        A new frame (the input is never modified) with:

        - ``timestamp`` as tz-naive ``datetime64[ns]``. Tz-aware timestamps, and
          strings with a UTC offset, are converted to UTC and the zone dropped;
          naive ones are kept as they are (read as UTC).
        - id columns kept as given but with one dtype: ``int64`` for
          whole-number ids (also whole-number floats), ``str`` for string ids.
        - ``ms_played`` as ``int64``, ``skipped`` as ``bool``.
        - rows sorted by ``user_id`` then ``timestamp`` (stable, so ties keep
          their input order), with a fresh ``RangeIndex``.

    Raises
    ------
    DataValidationError
        Listing every problem found: missing required columns, an empty table,
        missing ids or timestamps, unparseable timestamps, ids of mixed types,
        non-numeric / fractional / negative ``ms_played``, ``skipped`` values
        that are not boolean-like, exact duplicate events (same user, timestamp,
        track and artist; every copy after the first is reported), and events
        after ``observation_end`` (or after ``now``). Each problem names the
        column, the rule, the number of rows, the first offending row positions
        in ``df`` with their values, and a fix.
    TypeError
        If ``df`` is not a DataFrame.

    Warns
    -----
    DataQualityWarning
        With ``drop_invalid=True``, when rows were dropped.

    See Also
    --------
    validate_users : the same for the users table.
    models.data.io.load_events : read a file and validate it.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.data.validation import validate_events
    >>> log = pd.DataFrame({
    ...     "user_id": ["b", "a", "a"],
    ...     "timestamp": ["2024-01-02 08:00", "2024-01-01 23:59", "2024-01-02 00:01"],
    ...     "artist_id": [7, 7, 9],
    ...     "ms_played": [1000, 250, 0],
    ... })
    >>> clean = validate_events(log)
    >>> clean
      user_id           timestamp  artist_id  ms_played
    0       a 2024-01-01 23:59:00          7        250
    1       a 2024-01-02 00:01:00          9          0
    2       b 2024-01-02 08:00:00          7       1000
    >>> clean["timestamp"].dtype
    dtype('<M8[ns]')
    >>> bad = log.assign(ms_played=[1000, -5, 0])
    >>> validate_events(bad)
    Traceback (most recent call last):
    ...
    models.exceptions.DataValidationError: Invalid events: 1 problem(s) found.
      - column 'ms_played': expected non-negative durations; 1 row(s) break this, first: row 1 (-5). Fix: durations cannot be negative; check for sign or subtraction errors upstream
    """  # noqa: E501
    _require_frame(df, "validate_events")
    report = _Report(n_rows=len(df))
    missing_cols = [c for c in (USER_ID, TIMESTAMP) if c not in df.columns]
    for column in missing_cols:
        report.table.append(
            Problem(column, "a required column", fix=f"add or rename a column to '{column}'")
        )
    id_columns = [c for c in (TRACK_ID, ARTIST_ID) if c in df.columns]
    if not id_columns:
        report.table.append(
            Problem(
                f"{TRACK_ID}/{ARTIST_ID}",
                f"at least one of '{TRACK_ID}' and '{ARTIST_ID}'",
                fix="add the track or artist of each play",
            )
        )
    if len(df) == 0:
        report.table.append(Problem(TABLE, "at least one row", fix="pass a non-empty log"))
    if report.table and (missing_cols or len(df) == 0):
        # Nothing row-level can be checked without the key columns or rows.
        raise DataValidationError(report.table, what="events")

    data = df.reset_index(drop=True)
    out = data.copy()
    scalar = [_check_ids(data[column], column, report) for column in [USER_ID, *id_columns]]
    if SESSION_ID in data.columns:
        scalar.append(_check_ids(data[SESSION_ID], SESSION_ID, report, allow_missing=True))
    if not all(scalar):
        # ids that are not scalars cannot be compared, sorted or checked for duplicates
        raise DataValidationError(report.problems(), what="events")
    out[TIMESTAMP] = _parse_datetimes(data[TIMESTAMP], TIMESTAMP, report)
    if MS_PLAYED in data.columns:
        out[MS_PLAYED] = _check_ms_played(data[MS_PLAYED], report)
    if SKIPPED in data.columns:
        out[SKIPPED] = _check_skipped(data[SKIPPED], report)

    if observation_end is not None:
        limit = _to_naive_utc(observation_end, "observation_end")
        rule = f"timestamps at or before observation_end ({limit})"
        fix = "pass a later observation_end, or drop the events after it"
    else:
        limit = (
            _to_naive_utc(now, "now")
            if now is not None
            else pd.Timestamp.now("UTC").tz_localize(None).as_unit("ns")
        )
        rule = f"timestamps not in the future (now is {limit})"
        fix = "check the clock or time zone of the source; pass now= to fix the reference time"
    report.add_rows(TIMESTAMP, rule, (out[TIMESTAMP] > limit).to_numpy(), data[TIMESTAMP], fix)

    keys = [USER_ID, TIMESTAMP, *id_columns]
    key_missing = out[keys].isna().any(axis=1).to_numpy()
    duplicated = out[keys].duplicated(keep="first").to_numpy() & ~key_missing
    if duplicated.any():
        report.add_rows(
            "/".join(keys),
            "no exact duplicate events (same user, timestamp and track/artist)",
            duplicated,
            data[keys],
            "remove repeated rows, e.g. df.drop_duplicates(subset=[...]); repeats after the "
            "first are reported",
        )

    out = _raise_or_drop(report, out, what="events", drop_invalid=drop_invalid)
    for column in [USER_ID, *id_columns] + ([SESSION_ID] if SESSION_ID in out.columns else []):
        out[column] = _clean_ids(out[column])
    if MS_PLAYED in out.columns:
        out[MS_PLAYED] = out[MS_PLAYED].astype("int64")
    if SKIPPED in out.columns:
        out[SKIPPED] = out[SKIPPED].astype(bool)
    return out.sort_values([USER_ID, TIMESTAMP], kind="stable").reset_index(drop=True)


def validate_users(df: pd.DataFrame) -> pd.DataFrame:
    """Check a users table and return a clean, typed copy.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per user. Required column ``user_id``; optional ``country`` and
        ``plan`` (strings; missing values allowed) and ``signup_date``
        (datetimes or date strings, none missing). Other columns pass through.

    Returns
    -------
    pandas.DataFrame
        A new frame with ids typed as in :func:`validate_events`, ``country``
        and ``plan`` as ``str``, ``signup_date`` as tz-naive ``datetime64[ns]``
        (tz-aware values converted to UTC first), sorted by ``user_id`` with a
        fresh ``RangeIndex``.

    Raises
    ------
    DataValidationError
        Listing every problem: a missing ``user_id`` column, an empty table,
        missing or duplicated user ids, non-string ``country``/``plan`` values,
        missing or unparseable ``signup_date``.
    TypeError
        If ``df`` is not a DataFrame.

    See Also
    --------
    validate_events : the same for the listening log.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.data.validation import validate_users
    >>> users = pd.DataFrame({
    ...     "user_id": ["b", "a"],
    ...     "country": ["SE", "DE"],
    ...     "signup_date": ["2024-01-03", "2024-01-01"],
    ... })
    >>> validate_users(users)
      user_id country signup_date
    0       a      DE  2024-01-01
    1       b      SE  2024-01-03
    >>> validate_users(pd.concat([users, users.iloc[:1]]))
    Traceback (most recent call last):
    ...
    models.exceptions.DataValidationError: Invalid users: 1 problem(s) found.
      - column 'user_id': expected one row per user (no duplicate ids); 1 row(s) break this, first: row 2 ('b'). Fix: merge or drop the repeated users
    """  # noqa: E501
    _require_frame(df, "validate_users")
    report = _Report(n_rows=len(df))
    if USER_ID not in df.columns:
        report.table.append(
            Problem(USER_ID, "a required column", fix=f"add or rename a column to '{USER_ID}'")
        )
    if len(df) == 0:
        report.table.append(Problem(TABLE, "at least one row", fix="pass a non-empty table"))
    if report.table:
        raise DataValidationError(report.table, what="users")

    data = df.reset_index(drop=True)
    out = data.copy()
    if not _check_ids(data[USER_ID], USER_ID, report):
        raise DataValidationError(report.problems(), what="users")
    dup = data[USER_ID].duplicated(keep="first").to_numpy() & data[USER_ID].notna().to_numpy()
    report.add_rows(
        USER_ID,
        "one row per user (no duplicate ids)",
        dup,
        data[USER_ID],
        "merge or drop the repeated users",
    )
    for column in (COUNTRY, PLAN):
        if column in data.columns:
            s = data[column]
            if not pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
                odd = s.map(lambda v: not isinstance(v, str), na_action="ignore")
                odd = odd.fillna(False).to_numpy(dtype=bool)
                report.add_rows(
                    column,
                    "strings (or missing)",
                    odd,
                    s,
                    f"cast '{column}' to str if the values are labels",
                )
    if SIGNUP_DATE in data.columns:
        out[SIGNUP_DATE] = _parse_datetimes(data[SIGNUP_DATE], SIGNUP_DATE, report)

    out = _raise_or_drop(report, out, what="users", drop_invalid=False)
    out[USER_ID] = _clean_ids(out[USER_ID])
    for column in (COUNTRY, PLAN):
        if column in out.columns:
            out[column] = out[column].astype("str")
    return out.sort_values(USER_ID, kind="stable").reset_index(drop=True)
