"""Churn labels from inactivity, with right censoring.

A streaming service has no cancellation event for free users, so churn is
defined from the listening log itself: a user has churned when they stop
listening for long enough. :func:`churn_labels` applies that definition to every
user of a log at once and says, for each, whether churn was observed or the
user is right-censored at the end of the observation window.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from models.data.schema import TIMESTAMP, USER_ID
from models.exceptions import DataValidationError, Problem

__all__ = ["churn_labels"]

#: Output columns of :func:`churn_labels`.
FIRST_ACTIVITY = "first_activity"
LAST_ACTIVITY = "last_activity"
CHURNED = "churned"
CHURN_TIME = "churn_time"
TENURE_DAYS = "tenure_days"
CENSORED = "censored"
N_EVENTS = "n_events"

_RETURNS = ("ignore", "first_gap")
_DAY = pd.Timedelta(days=1)


def _row_problem(column: str, rule: str, mask: np.ndarray, values: pd.Series, fix: str) -> Problem:
    rows = np.flatnonzero(mask)[:5]
    return Problem(
        column,
        rule,
        n_rows=int(mask.sum()),
        rows=tuple(int(r) for r in rows),
        examples=tuple(values.iloc[rows].tolist()),
        fix=fix,
    )


def parse_duration(value: Any, name: str, func: str) -> pd.Timedelta:
    """Turn a duration argument (``"30D"``, ``"W"``, a Timedelta) into a positive Timedelta.

    Parameters
    ----------
    value : str or pandas.Timedelta or datetime.timedelta
        ``"D"`` and ``"W"`` mean one day and seven days; other strings are read
        by :class:`pandas.Timedelta` (``"30D"``, ``"12h"``).
    name, func : str
        Parameter and function names used in the error message.

    Returns
    -------
    pandas.Timedelta
        The duration.

    Raises
    ------
    ValueError
        If the value is not a positive fixed-length duration.

    Examples
    --------
    >>> parse_duration("W", "period", "f")
    Timedelta('7 days 00:00:00')
    """
    aliases = {"D": "1D", "W": "7D"}
    try:
        delta = pd.Timedelta(aliases.get(value, value) if isinstance(value, str) else value)
    except (ValueError, TypeError):
        delta = pd.NaT
    if delta is pd.NaT or not delta > pd.Timedelta(0):
        raise ValueError(
            f"The '{name}' parameter of {func} must be a positive fixed-length duration such "
            f"as 'D', 'W', '30D' or a pandas.Timedelta. Got {value!r} instead."
        )
    return delta


def _naive(ts: pd.Series) -> pd.Series:
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        return ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts


def clean_events(events: Any, func: str) -> pd.DataFrame:
    """Check the log columns every churn function needs and return a tidy copy.

    Timestamps are converted to timezone-naive UTC and the rows sorted by user
    and time.

    Raises
    ------
    TypeError
        If ``events`` is not a DataFrame.
    DataValidationError
        For a missing ``user_id``/``timestamp`` column, an empty log, missing
        values or a non-datetime ``timestamp``.
    """
    if not isinstance(events, pd.DataFrame):
        raise TypeError(
            f"The 'events' parameter of {func} must be a pandas DataFrame. "
            f"Got {type(events).__name__} instead."
        )
    problems = [
        Problem(c, f"a column required by {func}", fix=f"add or rename a column to '{c}'")
        for c in (USER_ID, TIMESTAMP)
        if c not in events.columns
    ]
    if not problems and len(events) == 0:
        problems.append(Problem("<table>", "at least one row", fix="pass a non-empty log"))
    if problems:
        raise DataValidationError(problems, what="events")
    for column in (USER_ID, TIMESTAMP):
        missing = events[column].isna().to_numpy()
        if missing.any():
            problems.append(
                _row_problem(column, "no missing values", missing, events[column],
                             "drop or repair the rows (models.data.validation.validate_events)")
            )
    if not pd.api.types.is_datetime64_any_dtype(events[TIMESTAMP].dtype):
        problems.append(
            Problem(TIMESTAMP, f"a datetime64 column (got dtype {events[TIMESTAMP].dtype})",
                    fix="convert it with pandas.to_datetime")
        )
    if problems:
        raise DataValidationError(problems, what="events")
    out = events.copy()
    out[TIMESTAMP] = _naive(out[TIMESTAMP]).astype("datetime64[ns]")
    return out.sort_values([USER_ID, TIMESTAMP], kind="stable").reset_index(drop=True)


def resolve_end(observation_end: Any, ts: pd.Series, func: str) -> pd.Timestamp:
    """Observation end: the given timestamp (naive UTC) or the last event; later events fail."""
    if observation_end is None:
        return pd.Timestamp(ts.max())
    try:
        end = pd.Timestamp(observation_end)
    except (ValueError, TypeError):
        end = pd.NaT
    if end is pd.NaT:
        raise ValueError(
            f"The 'observation_end' parameter of {func} must be a timestamp. "
            f"Got {observation_end!r} instead."
        )
    if end.tzinfo is not None:
        end = end.tz_convert("UTC").tz_localize(None)
    late = (ts > end).to_numpy()
    if late.any():
        raise DataValidationError(
            [_row_problem(TIMESTAMP, f"timestamps at or before observation_end ({end})", late,
                          ts, "pass a later observation_end, or drop the events after it")],
            what="events",
        )
    return end


def check_users(users: Any, events: pd.DataFrame, func: str) -> pd.DataFrame:
    """Check a users table against a log; return it indexed by ``user_id``."""
    if not isinstance(users, pd.DataFrame):
        raise TypeError(
            f"The 'users' parameter of {func} must be a pandas DataFrame or None. "
            f"Got {type(users).__name__} instead."
        )
    if USER_ID not in users.columns:
        raise DataValidationError(
            [Problem(USER_ID, f"a column required by {func}", fix=f"add a '{USER_ID}' column")],
            what="users",
        )
    dup = users[USER_ID].duplicated().to_numpy()
    if dup.any():
        raise DataValidationError(
            [_row_problem(USER_ID, "one row per user", dup, users[USER_ID], "drop repeated users")],
            what="users",
        )
    unknown = (~events[USER_ID].isin(users[USER_ID])).to_numpy()
    if unknown.any():
        raise DataValidationError(
            [_row_problem(USER_ID, "users listed in the users table", unknown, events[USER_ID],
                          "add the missing users to the users table")],
            what="events",
        )
    return users.set_index(USER_ID)


def churn_times(
    frame: pd.DataFrame, inactivity: pd.Timedelta, end: pd.Timestamp, returns: str
) -> pd.DataFrame:
    """Per-user first/last activity, churn flag and churn time of a tidy log (vectorised)."""
    grouped = frame.groupby(USER_ID, sort=True)[TIMESTAMP]
    out = grouped.agg(["min", "max", "size"])
    out.columns = [FIRST_ACTIVITY, LAST_ACTIVITY, N_EVENTS]
    if returns == "first_gap":
        # The last event before the first gap of at least `inactivity` (rows are sorted).
        gap_after = frame.groupby(USER_ID, sort=False)[TIMESTAMP].shift(-1) - frame[TIMESTAMP]
        long_gap = (gap_after >= inactivity).to_numpy()
        first_gap = frame.loc[long_gap].groupby(USER_ID, sort=True)[TIMESTAMP].min()
        stop = first_gap.reindex(out.index).fillna(out[LAST_ACTIVITY])
    else:
        stop = out[LAST_ACTIVITY]
    churned = (end - stop) >= inactivity
    out[CHURNED] = churned.to_numpy()
    out[CHURN_TIME] = stop.where(churned)
    out[CENSORED] = ~out[CHURNED]
    until = out[CHURN_TIME].where(out[CHURNED], end)
    out[TENURE_DAYS] = (until - out[FIRST_ACTIVITY]) / _DAY
    out[N_EVENTS] = out[N_EVENTS].astype("int64")
    return out


def churn_labels(
    events: pd.DataFrame,
    *,
    inactivity: str | pd.Timedelta = "30D",
    observation_end: Any = None,
    users: pd.DataFrame | None = None,
    returns: Literal["ignore", "first_gap"] = "ignore",
) -> pd.DataFrame:
    r"""Label every user as churned or right-censored from a gap in listening.

    Parameters
    ----------
    events : pandas.DataFrame
        Listening log with ``user_id`` and ``timestamp`` (datetime64; a
        timezone-aware column is converted to UTC). Other columns are ignored.
    inactivity : str or pandas.Timedelta, default "30D"
        How long a user must stay silent to count as churned.
    observation_end : timestamp-like, optional
        End of the observation window; defaults to the last timestamp of the
        log. Events after it are an error.
    users : pandas.DataFrame, optional
        Users table with ``user_id``; its other columns (``country``, ``plan``,
        ...) are joined to the result. Every user of the log must be listed.
        Users without any event have no activity to date churn from and are left
        out; their number is in ``attrs["n_users_without_events"]``.
    returns : {"ignore", "first_gap"}, default "ignore"
        What a silent gap of at least ``inactivity`` followed by a return means.
        ``"ignore"``: the user came back, so they did not churn then; only the
        silence after the *last* event can be churn. ``"first_gap"``: the user
        churned at the start of their first such gap; later activity is treated
        as a reactivation and does not undo it.

    Returns
    -------
    pandas.DataFrame
        One row per user with at least one event, indexed by ``user_id``
        (sorted), with columns

        - ``first_activity``, ``last_activity``: first and last event timestamps;
        - ``n_events``: number of events;
        - ``churned``: churn observed (bool);
        - ``churn_time``: the timestamp churn is dated at (``NaT`` if censored);
        - ``tenure_days``: days from the first event to ``churn_time`` (churned)
          or to ``observation_end`` (censored);
        - ``censored``: ``not churned``;
        - any columns of ``users``.

        ``attrs`` holds ``observation_end``, ``inactivity`` and ``returns``.

    Raises
    ------
    TypeError
        If ``events`` or ``users`` is not a DataFrame.
    ValueError
        If ``inactivity``, ``observation_end`` or ``returns`` is invalid.
    DataValidationError
        If a required column is missing, has missing values or is not datetime,
        an event falls after ``observation_end``, or a user of the log is not in
        ``users`` (or is listed twice there).

    Notes
    -----
    **Definition.** Let :math:`s_u` be the time user :math:`u` stops (their last
    event, or with ``returns="first_gap"`` the last event before their first gap
    of at least :math:`\Delta` = ``inactivity``), and :math:`E` the observation
    end. The user has churned when the silence after :math:`s_u` has been
    *observed* for at least :math:`\Delta`:

    .. math::

        \text{churned}_u = \mathbb{1}\{E - s_u \ge \Delta\}.

    A silence of exactly :math:`\Delta` counts as churn.

    **Churn date.** Churn is dated at the last active moment
    :math:`s_u` (``churn_time``), not at :math:`s_u + \Delta` when the rule
    fires: the user's last day of use is the day they were lost. Tenure is
    therefore :math:`s_u - \text{first event}` for churned users.

    **Censoring.** A user whose stop :math:`s_u` is less than :math:`\Delta`
    before :math:`E` may still come back, so their churn is not observed: they
    are right-censored at :math:`E`, with tenure :math:`E - \text{first event}`.
    This includes users whose only event is recent. A single-event user whose
    event lies at least :math:`\Delta` before :math:`E` has churned, with
    tenure 0.

    **Assumption.** Inactivity is taken to mean churn: a silent user who has
    not cancelled a subscription counts as lost. With ``returns="ignore"`` the
    label depends on the whole window (a long holiday followed by a return is
    not churn); with ``"first_gap"`` it depends only on the log up to
    :math:`s_u + \Delta`, which suits prediction problems that must not peek
    at later returns.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({
    ...     "user_id": ["a", "a", "b", "c"],
    ...     "timestamp": pd.to_datetime(
    ...         ["2024-01-01", "2024-01-03", "2024-01-02", "2024-02-05"]),
    ... })
    >>> labels = churn_labels(log, inactivity="30D", observation_end="2024-02-10")
    >>> labels[["churned", "churn_time", "tenure_days"]]  # doctest: +NORMALIZE_WHITESPACE
             churned churn_time  tenure_days
    user_id
    a           True 2024-01-03          2.0
    b           True 2024-01-02          0.0
    c          False        NaT          5.0
    """
    func = "churn_labels"
    delta = parse_duration(inactivity, "inactivity", func)
    if returns not in _RETURNS:
        raise ValueError(
            f"The 'returns' parameter of {func} must be one of {list(_RETURNS)}. "
            f"Got {returns!r} instead."
        )
    frame = clean_events(events, func)
    end = resolve_end(observation_end, frame[TIMESTAMP], func)
    out = churn_times(frame[[USER_ID, TIMESTAMP]], delta, end, returns)
    out = out[[FIRST_ACTIVITY, LAST_ACTIVITY, N_EVENTS, CHURNED, CHURN_TIME, TENURE_DAYS,
               CENSORED]]
    n_without = 0
    if users is not None:
        table = check_users(users, frame, func)
        n_without = int((~table.index.isin(out.index)).sum())
        out = out.join(table, how="left")
    out.index.name = USER_ID
    out.attrs.update(
        observation_end=end, inactivity=delta, returns=returns,
        n_users_without_events=n_without,
    )
    return out
