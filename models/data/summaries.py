"""Per-user summaries of a listening log, the inputs the models consume.

All functions take a validated log (see
:func:`models.data.validation.validate_events`) and are vectorised: they use
``groupby().agg``, ``drop_duplicates`` and merges over the events, which Dask
dataframes support too, and numpy only on the (small) aggregated results.

Periods
-------
Timestamps are discretised to calendar periods, counted as integers:

- ``"D"``: calendar days; a timestamp belongs to the day it falls on
  (``timestamp.floor("D")``), so 23:59 and 00:01 the next day are different
  periods.
- ``"W"``: ISO weeks starting on **Monday 00:00**; a timestamp belongs to the
  week of the Monday on or before it. Weeks are the same for every user (not
  counted from each user's first event), so two users active in the same week
  share a period.
- ``"M"``: calendar months.

This matches the ``lifetimes`` package's ``summary_data_from_transaction_data``
(which uses pandas periods) for ``"D"``; its ``"W"`` periods end on Sunday,
that is, also start on Monday.

Dask input
----------
Every function here also takes a ``dask.dataframe.DataFrame`` (for example
from ``load_events(directory, lazy=True)``) and runs the same groupby
aggregations on it, partition by partition, so a log larger than memory is
reduced out of core. Nothing assumes that a user's events sit in one partition.
The per-user and per-cohort results (:func:`summarize_activity`,
:func:`cohort_table`, :func:`user_artist_matrix`) are small and come back as
pandas objects equal to the pandas results; :func:`period_play_counts`, whose
output has a row per user and period, returns a Dask DataFrame. Checks that
need the data (missing values, events after ``observation_end``, ...) run in
the same pass as the aggregation; when one fails, the offending rows are found
in a second pass and quoted by their position in the whole Dask frame
(partitions in order). Dask is an optional dependency (the ``dask`` extra) and
is imported only when a Dask frame is passed. Dask turns string columns into
``string[pyarrow]`` by default (its ``dataframe.convert-string`` option), so
string user ids come back with that dtype; set
``dask.config.set({"dataframe.convert-string": False})`` to keep pandas' ``str``.
The signup-based options (``cohort_by="signup"``, ``start_from="signup"``)
read the log once more for their checks against the users table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse

from models._validation import TABLE, check_choice
from models._validation import row_problem as _row_problem
from models.data._lazy import compute, dask_row_problem, import_dask, is_dask
from models.data.schema import ARTIST_ID, SIGNUP_DATE, TIMESTAMP, USER_ID
from models.data.validation import _to_naive_utc
from models.exceptions import DataValidationError, Problem

__all__ = [
    "UserArtistCounts",
    "cohort_table",
    "period_play_counts",
    "retention_matrix",
    "summarize_activity",
    "user_artist_matrix",
]

Period = Literal["D", "W", "M"]
_PERIODS = ("D", "W", "M")
_EPOCH = pd.Timestamp("1970-01-01")
_DAY = pd.Timedelta(days=1)
_PERIOD = "_period"


class UserArtistCounts(NamedTuple):
    """Sparse user x artist play counts with the ids of its rows and columns.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix
        Play counts (or summed weights), shape ``(len(users), len(artists))``.
    users : pandas.Index
        User id of each row, sorted.
    artists : pandas.Index
        Artist id of each column, sorted.
    """

    matrix: scipy.sparse.csr_matrix
    users: pd.Index
    artists: pd.Index


# --------------------------------------------------------------------------- helpers


def _check_table(df: Any, required: Sequence[str], func: str, what: str = "events") -> None:
    """Raise a DataValidationError for a missing column, an empty table or missing keys.

    For a Dask frame only what its metadata shows is checked here (columns and
    dtypes); rows are checked by :func:`_lazy_checks` / :func:`_raise_lazy` in
    the pass that computes the result.
    """
    lazy = is_dask(df)
    if not (isinstance(df, pd.DataFrame) or (lazy and hasattr(df, "map_partitions"))):
        raise TypeError(
            f"The '{what}' parameter of {func} must be a pandas or Dask DataFrame. "
            f"Got {type(df).__name__} instead."
        )
    problems = [
        Problem(c, f"a column required by {func}", fix=f"add or rename a column to '{c}'")
        for c in required
        if c not in df.columns
    ]
    if not lazy and len(df) == 0:
        problems.append(Problem(TABLE, "at least one row", fix=f"pass a non-empty {what} table"))
    if problems:
        raise DataValidationError(problems, what=what)
    for column in required if not lazy else ():
        missing = df[column].isna().to_numpy()
        if missing.any():
            problems.append(
                _row_problem(
                    column,
                    "no missing values",
                    missing,
                    df[column],
                    f"run models.data.validation.validate_{what} first",
                )
            )
    for column in (TIMESTAMP, SIGNUP_DATE):
        if column in required and not pd.api.types.is_datetime64_any_dtype(df[column].dtype):
            problems.append(
                Problem(
                    column,
                    f"a datetime64 column (got dtype {df[column].dtype})",
                    fix=f"run models.data.validation.validate_{what} first",
                )
            )
    if problems:
        raise DataValidationError(problems, what=what)


def _lazy_checks(df: Any, required: Sequence[str]) -> dict[str, Any]:
    """Lazy row count and missing-value counts of a Dask frame, computed with the result."""
    return {"n_rows": df[required[0]].size, "missing": df[list(required)].isna().sum()}


def _raise_lazy(df: Any, required: Sequence[str], checks: dict[str, Any], what: str) -> None:
    """Raise for an empty Dask frame or missing values, given the computed ``checks``."""
    if checks["n_rows"] == 0:
        raise DataValidationError(
            [Problem(TABLE, "at least one row", fix=f"pass a non-empty {what} table")], what=what
        )
    problems = [
        dask_row_problem(
            column,
            "no missing values",
            df[column].isna(),
            df[column],
            f"run models.data.validation.validate_{what} first",
        )
        for column in required
        if checks["missing"][column] > 0
    ]
    if problems:
        raise DataValidationError(problems, what=what)


def _flag(column: str, rule: str, mask: Any, values: Any, fix: str) -> Problem | None:
    """Build a row problem from a pandas or Dask boolean mask; None if no row is flagged."""
    if is_dask(mask):
        return dask_row_problem(column, rule, mask, values, fix)
    mask = mask.to_numpy()
    return _row_problem(column, rule, mask, values, fix) if mask.any() else None


def _frame(df: pd.DataFrame, period: str) -> pd.DataFrame:
    """``user_id``, tz-naive ``timestamp`` and the integer period of each event.

    Rows with a missing user or timestamp are left out; the pandas path rejects
    them before, the Dask path after the pass (see :func:`_raise_lazy`).
    """
    ts = _naive(df[TIMESTAMP])
    out = pd.DataFrame({USER_ID: df[USER_ID], TIMESTAMP: ts})
    missing = out[USER_ID].isna() | ts.isna()
    if missing.any():
        out = out[~missing]
        ts = out[TIMESTAMP]
    out[_PERIOD] = _period_index(ts, period)
    return out


def _period_frame(events: Any, period: str) -> Any:
    """:func:`_frame` of a pandas frame, or of each partition of a Dask frame."""
    if is_dask(events):
        cols = events[[USER_ID, TIMESTAMP]]
        return cols.map_partitions(_frame, period, meta=_frame(cols._meta, period))
    return _frame(events, period)


def _map_users(ids: Any, mapping: pd.Series) -> Any:
    """``ids.map(mapping)`` for a pandas or Dask series of user ids (float for unknown ids)."""
    if is_dask(ids):
        meta = pd.Series([], dtype="float64", name=ids.name)
        return ids.map_partitions(lambda s: s.map(mapping).astype("float64"), meta=meta)
    return ids.map(mapping).astype("float64")


def _naive(ts: pd.Series) -> pd.Series:
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        return ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts


def _period_index(ts: pd.Series, period: str) -> pd.Series:
    """Integer period of each timestamp (days, Monday-weeks or months since 1970-01)."""
    ts = _naive(ts)
    if period == "M":
        return ((ts.dt.year - 1970) * 12 + ts.dt.month - 1).astype("int64")
    days = (ts - _EPOCH) // _DAY
    if period == "W":
        # 1970-01-01 was a Thursday; shifting by 3 days makes weeks start on Monday.
        return ((days + 3) // 7).astype("int64")
    return days.astype("int64")


def _period_of(ts: pd.Timestamp, period: str) -> int:
    return int(_period_index(pd.Series([ts]), period).iloc[0])


def _period_start(index: np.ndarray | pd.Series, period: str) -> pd.Series:
    """Start timestamp of each integer period (inverse of :func:`_period_index`)."""
    index = np.asarray(index, dtype="int64")
    if period == "M":
        out = pd.to_datetime(
            pd.DataFrame({"year": 1970 + index // 12, "month": index % 12 + 1, "day": 1})
        )
    else:
        days = index * 7 - 3 if period == "W" else index
        out = pd.Series(_EPOCH + pd.to_timedelta(days, unit="D"))
    return out.astype("datetime64[ns]").reset_index(drop=True)


def _observation_end(observation_end: Any, ts: pd.Series, what: str = "events") -> pd.Timestamp:
    """Resolve the observation end (default: last timestamp) and reject later events."""
    if observation_end is None:
        return pd.Timestamp(ts.max())
    end = _to_naive_utc(observation_end, "observation_end")
    late = (ts > end).to_numpy()
    if late.any():
        raise DataValidationError(
            [
                _row_problem(
                    TIMESTAMP,
                    f"timestamps at or before observation_end ({end})",
                    late,
                    ts,
                    "pass a later observation_end, or drop the events after it",
                )
            ],
            what=what,
        )
    return end


def _check_known_users(
    events: pd.DataFrame, users: pd.DataFrame, required: Sequence[str], func: str
) -> None:
    """Check the users table has one row per user and lists every user of the log."""
    _check_table(users, required, func, what="users")
    dup = users[USER_ID].duplicated().to_numpy()
    problems = []
    if dup.any():
        problems.append(
            _row_problem(USER_ID, "one row per user", dup, users[USER_ID], "drop repeated users")
        )
    unknown = _flag(
        USER_ID,
        "users listed in the users table",
        ~events[USER_ID].isin(users[USER_ID].to_numpy()),
        events[USER_ID],
        "add the missing users (with their signup_date) to the users table",
    )
    if unknown is not None:
        problems.append(unknown)
    if problems:
        raise DataValidationError(problems, what="events")


def _user_starts(
    events: pd.DataFrame,
    users: pd.DataFrame | None,
    how: str,
    period: str,
    func: str,
) -> pd.Series:
    """Start period of each user: first active period, or signup period."""
    if how == "first_active":
        starts = events.groupby(USER_ID, sort=True)[_PERIOD].min()
        return compute(starts)[0].sort_index() if is_dask(starts) else starts
    if users is None:
        raise ValueError(
            f"{func} needs the users table (with '{SIGNUP_DATE}') when starting from 'signup'. "
            "Got users=None instead."
        )
    _check_known_users(events, users, [USER_ID, SIGNUP_DATE], func)
    starts = pd.Series(
        _period_index(users[SIGNUP_DATE], period).to_numpy(),
        index=pd.Index(users[USER_ID], name=USER_ID),
    ).sort_index()
    before = _flag(
        TIMESTAMP,
        "events in or after the period of the user's signup_date",
        events[_PERIOD] < _map_users(events[USER_ID], starts),
        events[TIMESTAMP],
        "check signup_date against the log (time zones, or a wrong user id)",
    )
    if before is not None:
        raise DataValidationError([before], what="events")
    return starts


# --------------------------------------------------------------------------- public API


def summarize_activity(
    events: pd.DataFrame,
    *,
    period: Literal["D", "W", "M"] = "D",
    observation_end: Any = None,
) -> pd.DataFrame:
    r"""Frequency, recency and age of every user, in the BTYD convention.

    Parameters
    ----------
    events : pandas.DataFrame or dask.dataframe.DataFrame
        Validated listening log with ``user_id`` and ``timestamp``.
    period : {"D", "W", "M"}, default "D"
        Period length: calendar day, Monday-starting week, or calendar month
        (see the module notes).
    observation_end : timestamp-like, optional
        End of observation; defaults to the last timestamp in the log. Events
        exactly at ``observation_end`` count.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``user_id`` (sorted), with columns

        - ``frequency``: number of distinct active periods minus one (repeat
          active periods);
        - ``recency``: last active period minus first active period (0 when
          ``frequency`` is 0);
        - ``T``: the period of ``observation_end`` minus the first active period;
        - ``first_active``, ``last_active``: first and last event timestamps;
        - ``n_events``: number of events.

        ``frequency <= recency <= T`` for daily periods.

    Raises
    ------
    DataValidationError
        If ``user_id`` or ``timestamp`` is missing or has missing values, the
        log is empty, ``timestamp`` is not datetime64, or an event falls after
        ``observation_end``.
    ValueError
        If ``period`` is not one of the options.

    Notes
    -----
    This is the convention of Fader, Hardie & Lee (2005) and of ``lifetimes``'
    ``summary_data_from_transaction_data``: with :math:`p_1 < \dots < p_k` the
    distinct active periods of a user and :math:`p_e` the period of
    ``observation_end``, frequency :math:`= k - 1`, recency
    :math:`= p_k - p_1`, and :math:`T = p_e - p_1`.

    References
    ----------
    .. [1] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting your
       customers" the easy way: an alternative to the Pareto/NBD model.
       Marketing Science 24(2), 275-284.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.data.summaries import summarize_activity
    >>> log = pd.DataFrame({
    ...     "user_id": ["a", "a", "a", "b"],
    ...     "timestamp": pd.to_datetime(
    ...         ["2024-01-01 23:59", "2024-01-02 00:01", "2024-01-05 12:00", "2024-01-03 08:00"]),
    ... })
    >>> summary = summarize_activity(log, observation_end="2024-01-07")
    >>> summary[["frequency", "recency", "T"]]  # doctest: +NORMALIZE_WHITESPACE
             frequency  recency  T
    user_id
    a                2        4  6
    b                0        0  4
    """
    func = "summarize_activity"
    check_choice(func, "period", period, _PERIODS)
    _check_table(events, [USER_ID, TIMESTAMP], func)
    lazy = is_dask(events)
    if not lazy:
        end = _observation_end(observation_end, _naive(events[TIMESTAMP]))
    frame = _period_frame(events, period)
    grouped = frame.groupby(USER_ID, sort=True)
    per_user = grouped.agg(
        first_active=(TIMESTAMP, "min"),
        last_active=(TIMESTAMP, "max"),
        n_events=(TIMESTAMP, "size"),
        first_period=(_PERIOD, "min"),
        last_period=(_PERIOD, "max"),
    )
    n_periods = grouped[_PERIOD].nunique()
    if lazy:
        per_user, n_periods, end = _compute_checked(
            events, frame, [USER_ID, TIMESTAMP], observation_end, per_user, n_periods
        )
    end_period = _period_of(end, period)
    out = pd.DataFrame(
        {
            "frequency": (n_periods - 1).astype("int64"),
            "recency": (per_user["last_period"] - per_user["first_period"]).astype("int64"),
            "T": (end_period - per_user["first_period"]).astype("int64"),
            "first_active": per_user["first_active"],
            "last_active": per_user["last_active"],
            "n_events": per_user["n_events"].astype("int64"),
        }
    )
    out.index.name = USER_ID
    return out


def _compute_checked(
    events: Any,
    frame: Any,
    required: Sequence[str],
    observation_end: Any,
    *results: Any,
) -> tuple[Any, ...]:
    """Compute Dask ``results`` with the row checks and the observation end in one pass.

    Returns the computed results (pandas objects sorted by their index) followed
    by the observation end. Raises like the pandas path when a check fails.
    """
    checks = _lazy_checks(events, required)
    ts = frame[TIMESTAMP]
    if observation_end is None:
        end_value = ts.max()
    else:
        end = _to_naive_utc(observation_end, "observation_end")
        end_value = (ts > end).sum()
    *values, n_rows, missing, end_value = compute(
        *results, checks["n_rows"], checks["missing"], end_value
    )
    checks = {"n_rows": n_rows, "missing": missing}
    _raise_lazy(events, required, checks, "events")
    if observation_end is None:
        end = pd.Timestamp(end_value)
    elif end_value > 0:
        problem = dask_row_problem(
            TIMESTAMP,
            f"timestamps at or before observation_end ({end})",
            ts > end,
            ts,
            "pass a later observation_end, or drop the events after it",
        )
        raise DataValidationError([problem], what="events")
    values = [v.sort_index() if isinstance(v, pd.DataFrame | pd.Series) else v for v in values]
    return (*values, end)


def cohort_table(
    events: pd.DataFrame,
    users: pd.DataFrame | None = None,
    *,
    period: Literal["D", "W", "M"] = "M",
    cohort_by: Literal["first_active", "signup"] = "first_active",
    observation_end: Any = None,
    inactivity: str | pd.Timedelta | None = None,
) -> pd.DataFrame:
    """Cohort sizes, active and surviving users per period since the cohort started.

    Parameters
    ----------
    events : pandas.DataFrame or dask.dataframe.DataFrame
        Validated listening log with ``user_id`` and ``timestamp``.
    users : pandas.DataFrame, optional
        Validated users table with ``user_id`` and ``signup_date``; required
        when ``cohort_by="signup"``, ignored otherwise.
    period : {"M", "W", "D"}, default "M"
        Period length (see the module notes).
    cohort_by : {"first_active", "signup"}, default "first_active"
        What puts a user in a cohort: the period of their first event, or of
        their ``signup_date``. With ``"signup"`` every user of ``users`` is
        counted, including those who never played anything (they are in
        ``n_users`` but neither active nor surviving, even in period 0), except
        users who signed up after ``observation_end``.
    observation_end : timestamp-like, optional
        End of observation; defaults to the last timestamp in the log.
    inactivity : str or pandas.Timedelta, optional
        Silence that counts as churn, as in :func:`models.churn.churn_labels`.
        When given, a user whose last event is less than ``inactivity`` before
        ``observation_end`` has not churned and counts as surviving in every
        period up to the end. Without it a user counts as surviving only up to
        the period of their last event, so users who are alive but silent at the
        edge of the log count as lost and the latest periods' survival is too
        low (see Notes).

    Returns
    -------
    pandas.DataFrame
        Long format, one row per cohort and period, sorted, with columns

        - ``cohort``: start timestamp of the cohort's period;
        - ``period``: periods since the cohort's period, ``0, 1, 2, ...``;
        - ``n_users``: cohort size;
        - ``n_active``: users with at least one event in that period;
        - ``n_surviving``: users whose last event is in that period or later,
          or who have not churned by ``inactivity`` (the "alive" count a
          shifted-beta-geometric model consumes);
        - ``complete``: whether the period is fully observed, i.e. the next
          period starts at or before ``observation_end``.

        Every period that is fully **or partially** observed is included: the
        last one per cohort is the period containing ``observation_end``. Drop
        rows with ``complete == False`` for models that need whole periods.

    Raises
    ------
    DataValidationError
        If required columns are missing or empty, events fall after
        ``observation_end``, or (``cohort_by="signup"``) events belong to users
        missing from ``users`` or precede the user's signup period.
    ValueError
        If ``period`` or ``cohort_by`` is not one of the options, or
        ``cohort_by="signup"`` without ``users``.

    Notes
    -----
    Survival is read from the last event: a user survives period :math:`k`
    when they are active in it or later. Near the end of the log that
    undercounts: a user who listens every few weeks and last listened before
    the last complete period is alive but counts as lost. Pass the same
    ``inactivity`` that defines churn elsewhere (e.g. 30 days) to count such
    users as surviving, i.e. censored rather than churned. It changes complete
    periods only when ``inactivity`` is longer than a period (weekly or daily
    cohorts with a 30-day definition); with monthly cohorts and 30 days it
    changes only the last, incomplete period.

    See Also
    --------
    retention_matrix : pivot this table to cohort x period.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.data.summaries import cohort_table
    >>> log = pd.DataFrame({
    ...     "user_id": ["a", "a", "b", "c"],
    ...     "timestamp": pd.to_datetime(
    ...         ["2024-01-05", "2024-03-01", "2024-01-20", "2024-02-10"]),
    ... })
    >>> cohort_table(log, period="M", observation_end="2024-03-31")
          cohort  period  n_users  n_active  n_surviving  complete
    0 2024-01-01       0        2         2            2      True
    1 2024-01-01       1        2         0            1      True
    2 2024-01-01       2        2         1            1     False
    3 2024-02-01       0        1         1            1      True
    4 2024-02-01       1        1         0            0     False
    """
    func = "cohort_table"
    check_choice(func, "period", period, _PERIODS)
    check_choice(func, "cohort_by", cohort_by, ("first_active", "signup"))
    _check_table(events, [USER_ID, TIMESTAMP], func)
    lazy = is_dask(events)
    if is_dask(users):
        users = users.compute()
    if not lazy:
        end = _observation_end(observation_end, _naive(events[TIMESTAMP]))
    frame = _period_frame(events, period)
    bounds = frame.groupby(USER_ID, sort=True)[_PERIOD].agg(["min", "max"])
    if lazy:
        bounds, end = _compute_checked(events, frame, [USER_ID, TIMESTAMP], observation_end, bounds)
    end_period = _period_of(end, period)

    if cohort_by == "first_active":
        starts = bounds["min"]
    else:
        starts = _user_starts(frame, users, "signup", period, func)
    starts = starts[starts <= end_period]
    last = bounds["max"]
    if inactivity is not None:
        silence = _check_inactivity(inactivity, func)
        (last_seen,) = compute(events.groupby(USER_ID)[TIMESTAMP].max())
        # not churned yet: alive through the period containing observation_end
        alive = (end - _naive(last_seen)) < silence
        last = last.where(~alive.reindex(last.index, fill_value=False), end_period)
    per_user = pd.DataFrame({"start": starts})
    per_user["last_k"] = (last.reindex(per_user.index) - per_user["start"]).fillna(-1)

    sizes = per_user.groupby("start", sort=True).size()
    cohorts = sizes.index.to_numpy(dtype="int64")
    n_periods = end_period - cohorts + 1
    k = np.arange(n_periods.sum()) - np.repeat(np.cumsum(n_periods) - n_periods, n_periods)
    grid = pd.DataFrame(
        {
            "start": np.repeat(cohorts, n_periods),
            "period": k,
            "n_users": np.repeat(sizes.to_numpy(dtype="int64"), n_periods),
        }
    )

    pairs = frame[[USER_ID, _PERIOD]].drop_duplicates()
    pairs = pairs.assign(start=_map_users(pairs[USER_ID], starts))
    pairs = pairs[~pairs["start"].isna()]
    pairs = pairs.assign(
        period=(pairs[_PERIOD] - pairs["start"]).astype("int64"),
        start=pairs["start"].astype("int64"),
    )
    (active,) = compute(pairs.groupby(["start", "period"]).size())
    active = active.rename("n_active").reset_index()
    deaths = (
        per_user[per_user["last_k"] >= 0]
        .astype({"last_k": "int64"})
        .groupby(["start", "last_k"])
        .size()
        .rename("n_last")
        .reset_index()
        .rename(columns={"last_k": "period"})
    )
    grid = grid.merge(active, on=["start", "period"], how="left")
    grid = grid.merge(deaths, on=["start", "period"], how="left")
    grid = grid.fillna({"n_active": 0, "n_last": 0}).astype(
        {"n_active": "int64", "n_last": "int64"}
    )
    by_cohort = grid.groupby("start", sort=False)["n_last"]
    # users still alive at k = all who were ever active - those whose last period was before k
    grid["n_surviving"] = by_cohort.transform("sum") - by_cohort.cumsum() + grid["n_last"]

    absolute = grid["start"].to_numpy() + grid["period"].to_numpy()
    return pd.DataFrame(
        {
            "cohort": _period_start(grid["start"], period),
            "period": grid["period"].astype("int64"),
            "n_users": grid["n_users"].astype("int64"),
            "n_active": grid["n_active"],
            "n_surviving": grid["n_surviving"].astype("int64"),
            "complete": (_period_start(absolute + 1, period) <= end).to_numpy(),
        }
    )


def _check_inactivity(inactivity: Any, func: str) -> pd.Timedelta:
    """Parse a positive duration, or raise naming the parameter and the value."""
    try:
        value = pd.Timedelta(inactivity)
    except (TypeError, ValueError):
        value = None
    if value is None or pd.isna(value) or value <= pd.Timedelta(0):
        raise ValueError(
            f"The 'inactivity' parameter of {func} must be a positive duration such as "
            f"'30D'. Got {inactivity!r} instead."
        )
    return value


def retention_matrix(
    table: pd.DataFrame,
    value: Literal["n_surviving", "n_active", "n_users"] = "n_surviving",
    *,
    normalize: bool = False,
) -> pd.DataFrame:
    """Pivot a :func:`cohort_table` to a cohort x period matrix.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`cohort_table`.
    value : {"n_surviving", "n_active", "n_users"}, default "n_surviving"
        Which count fills the cells.
    normalize : bool, default False
        Divide each row by its cohort size, giving fractions.

    Returns
    -------
    pandas.DataFrame
        Index ``cohort``, columns ``period`` (0, 1, ...); cells after the last
        observed period of a cohort are NaN.

    Raises
    ------
    DataValidationError
        If ``table`` lacks the columns of a cohort table or is empty.
    ValueError
        If ``value`` is not one of the options.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.data.summaries import cohort_table, retention_matrix
    >>> log = pd.DataFrame({
    ...     "user_id": ["a", "a", "b", "c"],
    ...     "timestamp": pd.to_datetime(
    ...         ["2024-01-05", "2024-03-01", "2024-01-20", "2024-02-10"]),
    ... })
    >>> retention_matrix(cohort_table(log, period="M"))  # doctest: +NORMALIZE_WHITESPACE
    period        0    1    2
    cohort
    2024-01-01  2.0  1.0  1.0
    2024-02-01  1.0  0.0  NaN
    """
    func = "retention_matrix"
    check_choice(func, "value", value, ("n_surviving", "n_active", "n_users"))
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"The 'table' parameter of {func} must be a pandas DataFrame. "
            f"Got {type(table).__name__} instead."
        )
    needed = ["cohort", "period", "n_users", value]
    problems = [
        Problem(c, "a column of a cohort table", fix="pass the output of cohort_table")
        for c in dict.fromkeys(needed)
        if c not in table.columns
    ]
    if len(table) == 0:
        problems.append(Problem(TABLE, "at least one row", fix="pass a non-empty cohort table"))
    if problems:
        raise DataValidationError(problems, what="cohort table")
    matrix = table.pivot(index="cohort", columns="period", values=value).astype(float)
    if normalize:
        sizes = table.groupby("cohort")["n_users"].first()
        matrix = matrix.div(sizes, axis=0)
    return matrix


def period_play_counts(
    events: pd.DataFrame,
    users: pd.DataFrame | None = None,
    *,
    period: Literal["D", "W", "M"] = "D",
    start: Any = None,
    end: Any = None,
    start_from: Literal["first_active", "signup", "start"] = "first_active",
) -> pd.DataFrame:
    """Plays per user per period, zeros included, from each user's start to ``end``.

    Parameters
    ----------
    events : pandas.DataFrame or dask.dataframe.DataFrame
        Validated listening log with ``user_id`` and ``timestamp``.
    users : pandas.DataFrame, optional
        Validated users table. Required (with ``signup_date``) for
        ``start_from="signup"``. With ``start_from="signup"`` or ``"start"``
        every user in it gets rows, even users with no plays.
    period : {"D", "W", "M"}, default "D"
        Period length (see the module notes).
    start : timestamp-like, optional
        Start of the window. Required for ``start_from="start"`` (every user
        starts at its period); otherwise a lower bound on each user's start.
        Events before ``start`` are not counted.
    end : timestamp-like, optional
        End of the window (inclusive); defaults to the last timestamp in the
        log. Events after ``end`` are not counted; the period containing
        ``end`` is the last one and may be partial.
    start_from : {"first_active", "signup", "start"}, default "first_active"
        Where each user's series begins: the period of their first event (in
        the window), of their ``signup_date``, or of ``start``.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        One row per user and period, sorted by ``user_id`` then period, with
        columns ``user_id``, ``period`` (periods since the user's start, 0, 1,
        ...), ``period_start`` (timestamp), ``day_of_week`` (0 = Monday; daily
        periods only) and ``plays`` (``int64``, 0 for periods without plays).
        Users whose start is after ``end`` have no rows. With the defaults,
        ``plays`` sums to the number of events. For a Dask ``events``, a Dask
        DataFrame with the same columns and rows, partitioned by blocks of
        consecutive user ids (about two million rows each; the index restarts
        in every partition, so use ``.compute().reset_index(drop=True)`` to
        get the pandas result exactly).

    Raises
    ------
    DataValidationError
        If required columns are missing or empty, or (``start_from="signup"``)
        events belong to users missing from ``users`` or precede their signup
        period.
    ValueError
        If an option is not one of its choices, ``start_from="start"`` without
        ``start``, ``start_from="signup"`` without ``users``, or ``start`` is
        after ``end``.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.data.summaries import period_play_counts
    >>> log = pd.DataFrame({
    ...     "user_id": ["a", "a", "a", "b"],
    ...     "timestamp": pd.to_datetime(
    ...         ["2024-01-01 09:00", "2024-01-01 23:59", "2024-01-03 10:00", "2024-01-02 18:00"]),
    ... })
    >>> period_play_counts(log)
      user_id  period period_start  day_of_week  plays
    0       a       0   2024-01-01            0      2
    1       a       1   2024-01-02            1      0
    2       a       2   2024-01-03            2      1
    3       b       0   2024-01-02            1      1
    4       b       1   2024-01-03            2      0
    """
    func = "period_play_counts"
    check_choice(func, "period", period, _PERIODS)
    check_choice(func, "start_from", start_from, ("first_active", "signup", "start"))
    _check_table(events, [USER_ID, TIMESTAMP], func)
    lazy = is_dask(events)
    if is_dask(users):
        users = users.compute()
    start_ts = None if start is None else _to_naive_utc(start, "start")
    if start_from == "start" and start_ts is None:
        raise ValueError(f"{func} needs start= when start_from='start'. Got start=None instead.")
    end_ts = None if end is None else _to_naive_utc(end, "end")
    frame = _period_frame(events, period)
    window = frame
    if start_ts is not None:
        window = window[window[TIMESTAMP] >= start_ts]
    if end_ts is not None:
        window = window[window[TIMESTAMP] <= end_ts]
    if start_from == "first_active":
        needed = window.groupby(USER_ID, sort=True)[_PERIOD].min()
    elif start_from == "start" and users is None:
        needed = events[USER_ID].unique() if lazy else events[USER_ID]
    else:
        needed = None
    if lazy:
        needed, last = _compute_checked(events, frame, [USER_ID, TIMESTAMP], None, needed)
    else:
        last = pd.Timestamp(frame[TIMESTAMP].max())
    end_ts = last if end_ts is None else end_ts
    if start_ts is not None and start_ts > end_ts:
        raise ValueError(
            f"The 'start' parameter of {func} must be at or before end ({end_ts}). "
            f"Got {start_ts} instead."
        )
    end_period = _period_of(end_ts, period)

    if start_from == "start" and users is not None:
        _check_known_users(frame, users, [USER_ID], func)
    if start_from == "signup":
        starts = _user_starts(frame, users, "signup", period, func)
    elif start_from == "first_active":
        starts = needed
    else:
        ids = needed if users is None else users[USER_ID]
        index = pd.Index(pd.unique(ids), name=USER_ID).sort_values()
        starts = pd.Series(0, index=index, dtype="int64")
    if start_ts is not None:
        starts = starts.clip(lower=_period_of(start_ts, period))

    counts = window.groupby([USER_ID, _PERIOD]).size().rename("plays").reset_index()
    if not lazy:
        return _play_grid(counts, starts, end_period, period)
    return _lazy_play_grid(counts, starts, end_period, period)


#: Rows of the user x period grid per output partition of a lazy period_play_counts.
_GRID_ROWS_PER_PARTITION = 2_000_000


def _play_grid(
    counts: pd.DataFrame, starts: pd.Series, end_period: int, period: str
) -> pd.DataFrame:
    """Every (user, period) from each user's start to ``end_period``, with its plays."""
    n_periods = np.clip(end_period - starts.to_numpy(dtype="int64") + 1, 0, None)
    k = np.arange(n_periods.sum()) - np.repeat(np.cumsum(n_periods) - n_periods, n_periods)
    absolute = np.repeat(starts.to_numpy(dtype="int64"), n_periods) + k
    grid = pd.DataFrame({USER_ID: starts.index.repeat(n_periods), _PERIOD: absolute})
    grid = grid.merge(counts, on=[USER_ID, _PERIOD], how="left")
    out = pd.DataFrame({USER_ID: grid[USER_ID], "period": k.astype("int64")})
    out["period_start"] = _period_start(absolute, period)
    if period == "D":
        out["day_of_week"] = out["period_start"].dt.day_of_week.astype("int64")
    out["plays"] = grid["plays"].fillna(0).astype("int64")
    return out


def _grid_partition(
    counts: pd.DataFrame, starts: pd.DataFrame, end_period: int, period: str
) -> pd.DataFrame:
    """:func:`_play_grid` of one block of users (both frames indexed by ``user_id``)."""
    return _play_grid(counts.reset_index(), starts["start"], end_period, period)


def _lazy_play_grid(counts: Any, starts: pd.Series, end_period: int, period: str) -> Any:
    """Build the play grid as a Dask frame, one partition per block of users.

    The (small) aggregated counts are shuffled into blocks of consecutive user
    ids holding about ``_GRID_ROWS_PER_PARTITION`` grid rows each; every block
    is then filled like the pandas grid.
    """
    dd = import_dask("period_play_counts")
    starts = starts.rename("start").astype("int64")
    n_periods = np.clip(end_period - starts.to_numpy() + 1, 0, None)
    block = np.cumsum(n_periods) // _GRID_ROWS_PER_PARTITION
    first = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
    ids = starts.index
    divisions = [*ids[first], ids[-1]]
    starts_frame = dd.from_pandas(starts.to_frame(), npartitions=1, sort=True)
    starts_frame = starts_frame.repartition(divisions=divisions)
    counts = counts.set_index(USER_ID, divisions=divisions)
    meta = _play_grid(counts._meta.reset_index(), starts.iloc[:0], end_period, period)
    return dd.map_partitions(_grid_partition, counts, starts_frame, end_period, period, meta=meta)


def user_artist_matrix(
    events: pd.DataFrame,
    *,
    weight: str | None = None,
    count_col: str | None = None,
) -> UserArtistCounts:
    """Sparse user x artist matrix of play counts.

    Parameters
    ----------
    events : pandas.DataFrame or dask.dataframe.DataFrame
        Either a listening log (one row per play) with ``user_id`` and
        ``artist_id``, or an already aggregated long table of
        ``(user_id, artist_id, <count_col>)`` such as Last.fm hetrec's
        ``user_artists.dat`` with its columns renamed.
    weight : str, optional
        Column to sum per user and artist instead of counting rows, e.g.
        ``"ms_played"`` for listening time.
    count_col : str, optional
        Column of pre-aggregated play counts; repeated ``(user, artist)`` pairs
        are summed. Give at most one of ``weight`` and ``count_col``.

    Returns
    -------
    UserArtistCounts
        Named tuple ``(matrix, users, artists)``: a ``scipy.sparse.csr_matrix``
        of shape ``(n_users, n_artists)`` (``int64`` for counts, the column's
        dtype for sums), the user id of each row and the artist id of each
        column (both sorted).

    Raises
    ------
    DataValidationError
        If a required column is missing or has missing values, the table is
        empty, or the weight / count column is not numeric or is negative, or
        (eagerly) the count column holds fractions or counts of 2**63 or more.
    ValueError
        If both ``weight`` and ``count_col`` are given.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.data.summaries import user_artist_matrix
    >>> log = pd.DataFrame({"user_id": [2, 1, 2, 2], "artist_id": ["x", "y", "x", "y"]})
    >>> counts = user_artist_matrix(log)
    >>> counts.matrix.toarray()
    array([[0, 1],
           [2, 1]])
    >>> list(counts.users), list(counts.artists)
    ([1, 2], ['x', 'y'])
    """
    func = "user_artist_matrix"
    if weight is not None and count_col is not None:
        raise ValueError(
            f"{func} takes at most one of 'weight' and 'count_col'. "
            f"Got weight={weight!r} and count_col={count_col!r}."
        )
    value_col = weight if weight is not None else count_col
    required = [USER_ID, ARTIST_ID] + ([value_col] if value_col is not None else [])
    _check_table(events, required, func)
    lazy = is_dask(events)
    negative = None
    if value_col is None:
        agg = events.groupby([USER_ID, ARTIST_ID], sort=True).size()
    else:
        values = events[value_col]
        if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(
            values.dtype
        ):
            raise DataValidationError(
                [
                    Problem(
                        value_col,
                        f"numeric values (got dtype {values.dtype})",
                        fix=f"convert '{value_col}' with pd.to_numeric",
                    )
                ],
                what="events",
            )
        negative = values < 0
        if not lazy:
            _raise_negative(value_col, negative, values)
            if count_col is not None:
                _raise_not_counts(count_col, values)
        agg = events.groupby([USER_ID, ARTIST_ID], sort=True)[value_col].sum()
    if lazy:
        # Each partition is reduced to its (user, artist) sums before they are combined, so
        # only the aggregated pairs are ever held in memory.
        checks = _lazy_checks(events, required)
        n_negative = 0 if negative is None else negative.sum()
        agg, n_rows, missing, n_negative = compute(
            agg, checks["n_rows"], checks["missing"], n_negative
        )
        _raise_lazy(events, required, {"n_rows": n_rows, "missing": missing}, "events")
        if n_negative > 0:
            _raise_negative(value_col, negative, events[value_col])
        agg = agg.sort_index()
    user_codes = agg.index.get_level_values(USER_ID)
    artist_codes = agg.index.get_level_values(ARTIST_ID)
    users = pd.Index(user_codes.unique(), name=USER_ID).sort_values()
    artists = pd.Index(artist_codes.unique(), name=ARTIST_ID).sort_values()
    matrix = scipy.sparse.csr_matrix(
        (agg.to_numpy(), (users.get_indexer(user_codes), artists.get_indexer(artist_codes))),
        shape=(len(users), len(artists)),
    )
    return UserArtistCounts(matrix=matrix, users=users, artists=artists)


def _raise_not_counts(column: str, values: pd.Series) -> None:
    """Raise for counts that are fractions, infinite or too large for int64."""
    numbers = values.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(numbers) | (np.floor(numbers) != numbers) | (numbers >= 2.0**63)
    bad &= ~np.isnan(numbers)
    problem = _flag(column, "whole-number play counts below 2**63", pd.Series(bad), values,
                    f"'{column}' holds counts of plays; pass a column of durations or scores "
                    "as weight= instead")
    if problem is not None:
        raise DataValidationError([problem], what="events")


def _raise_negative(column: str, negative: Any, values: Any) -> None:
    """Raise for negative counts or weights (pandas or Dask mask)."""
    problem = _flag(
        column, "non-negative values", negative, values, "counts and weights cannot be negative"
    )
    if problem is not None:
        raise DataValidationError([problem], what="events")
