"""Events in windows relative to each user's assignment: one code path for pandas and Dask.

Internal to :mod:`models.experiments`. Nothing here knows about metric objects:
:func:`relative_rows` joins the events to the assignment table (a broadcast
join, block by block for Dask) and keeps the events in a range of days after
(or before) each user's assignment; :func:`aggregate` turns those rows into
per-user *primitives* ``(operation, column, first_day, end_day)`` with
``operation`` one of ``"count"``, ``"sum"``, ``"days"`` (distinct active days)
and ``"distinct"`` (distinct values of ``column``). The checks of the event
rows (missing values, negative durations, unassigned users, int64 overflow)
and of the exposure windows live here too, so that every function of the
package that reads events around assignments reports problems the same way.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from models._validation import N_EXAMPLES, row_problem
from models.data._lazy import compute, dask_row_problem, is_dask
from models.data.schema import MS_PLAYED, TIMESTAMP
from models.exceptions import DataQualityWarning, DataValidationError, Problem
from models.experiments.schema import ASSIGNED_AT, USER_ID

__all__ = [
    "DAY",
    "ONE",
    "aggregate",
    "check_exposure",
    "check_id_types",
    "check_overflow",
    "compute_nested",
    "event_row_checks",
    "flag",
    "raise_for_event_rows",
    "relative_rows",
]

DAY = pd.Timedelta(days=1)
#: Columns added by :func:`relative_rows`: the day since assignment and a constant 1.
DAYCOL, ONE = "_day", "_one"
#: Largest magnitude an integer sum may reach (a margin below 2**63 for float rounding).
INT64_LIMIT = 2.0**63 * (1 - 1e-9)


def _rows(
    part: pd.DataFrame, table: pd.DataFrame, columns: list[str], lo: int | None, hi: int
) -> pd.DataFrame:
    """:func:`relative_rows` of one block of events (a pandas frame)."""
    ts = part[TIMESTAMP]
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    frame = pd.DataFrame({USER_ID: part[USER_ID], TIMESTAMP: ts})
    for column in columns:
        values = part[column]
        frame[column] = values.astype("int64") if pd.api.types.is_bool_dtype(values) else values
    frame = frame[frame[TIMESTAMP].notna()]
    joined = frame.merge(table, on=USER_ID, how="inner")
    day = (joined[TIMESTAMP] - joined[ASSIGNED_AT]) // DAY
    keep = (day < hi) if lo is None else ((day >= lo) & (day < hi))
    keep = keep.to_numpy()
    keys = [c for c in table.columns if c != ASSIGNED_AT]
    out = joined.loc[keep, [*keys, TIMESTAMP, *columns]].reset_index(drop=True)
    out[DAYCOL] = day[keep].to_numpy(dtype="int64")
    out[ONE] = np.int64(1)
    return out


def compute_nested(*objs: Any) -> tuple[Any, ...]:
    """Compute the Dask objects inside ``objs`` (also in dicts and lists) in one pass.

    Unlike :func:`models.data._lazy.compute`, which looks at the top-level
    objects only. Objects without Dask collections come back unchanged.
    """
    if not any(is_dask(o) for o in _flatten(objs)):
        return objs
    import dask

    return dask.compute(*objs)


def _flatten(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _flatten(v)]
    if isinstance(obj, list | tuple):
        return [x for v in obj for x in _flatten(v)]
    return [obj]


def relative_rows(
    events: Any, table: pd.DataFrame, columns: list[str], lo: int | None, hi: int
) -> Any:
    """Events joined to their user's assignment, with their day since it, in ``[lo, hi)``.

    Parameters
    ----------
    events : pandas.DataFrame or dask.dataframe.DataFrame
        Events with ``user_id``, ``timestamp`` and ``columns`` (boolean columns
        become ``int64``).
    table : pandas.DataFrame
        The keys (``experiment_id`` if any, ``user_id``) and ``assigned_at`` of
        every assigned user; events of other users are left out.
    columns : list of str
        Event columns to keep.
    lo, hi : int
        Days kept, ``lo <= day < hi`` (no lower bound when ``lo`` is None), with
        ``day = floor((timestamp - assigned_at) / 1 day)``.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        Columns: the keys, ``timestamp``, ``columns``, ``_day`` (``int64``) and
        ``_one`` (1).
    """
    if is_dask(events):
        meta = _rows(events._meta, table.iloc[:0], columns, lo, hi)
        return events.map_partitions(_rows, table, columns, lo, hi, meta=meta)
    return _rows(events, table, columns, lo, hi)


def aggregate(rows: Any, keys: list[str], prims: list[tuple], names: dict) -> list[Any]:
    """Groupby aggregations (lazy for Dask) giving one column per primitive.

    Counts and sums are one ``groupby().sum()`` over columns masked to each
    primitive's days; active days come from the distinct ``(user, day)`` pairs;
    distinct values from ``drop_duplicates`` per primitive (missing values are
    not a value).
    """
    day = rows[DAYCOL]
    out = []
    sums = {
        names[p]: rows[p[1] or ONE].where((day >= p[2]) & (day < p[3]), 0)
        for p in prims
        if p[0] in ("count", "sum")
    }
    if sums:
        out.append(rows[keys].assign(**sums).groupby(keys).sum())
    day_prims = [p for p in prims if p[0] == "days"]
    if day_prims:
        daily = rows[[*keys, DAYCOL]].drop_duplicates()
        d = daily[DAYCOL]
        flags = {names[p]: ((d >= p[2]) & (d < p[3])).astype("int64") for p in day_prims}
        out.append(daily[keys].assign(**flags).groupby(keys).sum())
    for p in prims:
        if p[0] == "distinct":
            col = rows[p[1]]
            sub = rows[(day >= p[2]) & (day < p[3]) & ~col.isna()][[*keys, p[1]]]
            out.append(sub.drop_duplicates().groupby(keys).size().rename(names[p]))
    return out


def check_id_types(events: Any, table: pd.DataFrame) -> None:
    """Raise if the user ids of the events and of the assignment table cannot match."""

    def kind(dtype: Any) -> str:
        if pd.api.types.is_bool_dtype(dtype):
            return "bool"
        return "number" if pd.api.types.is_numeric_dtype(dtype) else "string"

    ev, asg = events[USER_ID].dtype, table[USER_ID].dtype
    if kind(ev) != kind(asg):
        raise DataValidationError(
            [
                Problem(
                    USER_ID,
                    f"ids of the same type in events ({ev}) and assignments ({asg})",
                    fix="cast one of them, e.g. events['user_id'].astype(str)",
                )
            ],
            what="events",
        )


def flag(column: str, rule: str, mask: Any, values: Any, fix: str) -> Problem:
    """Build a row problem from a pandas or Dask mask (a second pass over Dask data)."""
    if is_dask(mask):
        return dask_row_problem(column, rule, mask, values, fix)
    return row_problem(column, rule, mask.to_numpy(dtype=bool), values, fix)


def event_row_checks(events: Any, sums: list[str], known: Any) -> dict[str, Any]:
    """Lazy (or eager) counts of event rows that break a rule; ``known``: assigned users."""
    checks: dict[str, Any] = {"nan": {c: events[c].isna().sum() for c in sums}}
    if MS_PLAYED in sums:
        checks["negative"] = (events[MS_PLAYED] < 0).sum()
    checks["unknown_events"] = (~known).sum()
    checks["unknown_users"] = events[USER_ID][~known].nunique()
    return checks


def raise_for_event_rows(events: Any, checks: dict, known: Any, unassigned: str) -> None:
    """Raise for the computed ``checks`` (or warn, for dropped unassigned users)."""
    problems = []
    for column, n in checks["nan"].items():
        if n:
            problems.append(
                flag(
                    column,
                    "no missing values in a summed column",
                    events[column].isna(),
                    events[column],
                    f"fill or drop the events with a missing '{column}'",
                )
            )
    if checks.get("negative"):
        problems.append(
            flag(
                MS_PLAYED,
                "non-negative durations",
                events[MS_PLAYED] < 0,
                events[MS_PLAYED],
                "durations cannot be negative; check the log with "
                "models.data.validation.validate_events",
            )
        )
    n_events, n_users = int(checks["unknown_events"]), int(checks["unknown_users"])
    if n_events and unassigned == "error":
        (ids,) = compute(events[USER_ID][~known].drop_duplicates())
        first = ", ".join(repr(v) for v in sorted(ids.tolist())[:N_EXAMPLES])
        more = ", ..." if n_users > N_EXAMPLES else ""
        problems.append(
            flag(
                USER_ID,
                f"events of assigned users only; {n_users} user(s) with events are not in the "
                f"assignment table: {first}{more}",
                ~known,
                events[USER_ID],
                "pass unassigned='drop' to leave them out (users outside the experiment), or "
                "add the missing users to the assignment table",
            )
        )
    if problems:
        raise DataValidationError(problems, what="events")
    if n_events:
        warnings.warn(
            DataQualityWarning(
                f"Left out {n_events} event(s) of {n_users} user(s) who are not in the "
                "assignment table (unassigned='drop')."
            ),
            stacklevel=3,
        )


def check_overflow(rows: Any, keys: list[str], columns: list[str], totals: dict) -> None:
    """Raise if an integer sum may pass int64: checked on ``totals``, then per user.

    ``totals`` maps each column to the (computed) sum of its absolute values
    over ``rows``; no user's sum can overflow when that total is below the limit.
    """
    risky = [c for c in columns if totals[c] >= INT64_LIMIT]
    if not risky:
        return
    magnitudes = {c: rows[c].abs().astype("float64") for c in risky}
    (per_user,) = compute(rows[keys].assign(**magnitudes).groupby(keys).sum())
    problems = []
    for column in risky:
        users = per_user.index[(per_user[column] >= INT64_LIMIT).to_numpy()]
        if len(users):
            problems.append(
                Problem(
                    column,
                    f"integer sums within int64; the sums of {len(users)} user(s) overflow, "
                    f"first: {', '.join(repr(u) for u in users[:N_EXAMPLES])}",
                    fix=f"rescale '{column}' (e.g. to a coarser unit) before summing",
                )
            )
    if problems:
        raise DataValidationError(problems, what="events")


def check_exposure(table: pd.DataFrame, end: pd.Timestamp, window_days: int, position: str) -> None:
    """Raise if an exposure window ``[assigned_at, assigned_at + window_days)`` ends after ``end``.

    ``position`` names the column of ``table`` holding each row's position in
    the table as the caller passed it, quoted in the message.
    """
    latest = end - pd.Timedelta(days=window_days)
    late = (table[ASSIGNED_AT] > latest).to_numpy()
    if not late.any():
        return
    order = np.argsort(table[position].to_numpy(), kind="stable")
    ids = table[USER_ID].iloc[order].reset_index(drop=True)
    found = row_problem(ASSIGNED_AT, "", late[order], ids)
    raise DataValidationError(
        [
            Problem(
                ASSIGNED_AT,
                f"exposure windows of {window_days} days that end by observation_end ({end}), "
                f"i.e. assigned_at at or before {latest}",
                found.n_rows,
                tuple(int(table[position].iloc[order[r]]) for r in found.rows),
                tuple(f"user {u!r}" for u in found.examples),
                "shorten window_days, pass a later observation_end (the log must cover every "
                f"window), or leave out the users assigned after {latest}",
            )
        ],
        what="assignments",
    )
