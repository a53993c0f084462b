"""Person-period tables for discrete-time churn hazard models.

:func:`build_hazard_table` turns a listening log into one row per user per
tenure period at risk, with the churn indicator and engagement covariates
measured in the *previous* period, the input of
:class:`models.churn.hazard.ChurnHazardModel`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from models.churn.labels import (
    CHURN_TIME,
    CHURNED,
    FIRST_ACTIVITY,
    check_users,
    churn_times,
    clean_events,
    parse_duration,
    resolve_end,
)
from models.data.schema import ARTIST_ID, COUNTRY, PLAN, SKIPPED, TIMESTAMP, USER_ID

__all__ = [
    "DAYS_SINCE_LAST_PLAY",
    "EVENT",
    "LOG_ARTISTS_PREV",
    "LOG_PLAYS_PREV",
    "PERIOD_START",
    "SKIP_RATE_PREV",
    "TENURE",
    "build_hazard_table",
]

#: Columns of the hazard table.
TENURE = "tenure"
EVENT = "event"
PERIOD_START = "period_start"
LOG_PLAYS_PREV = "log_plays_prev"
SKIP_RATE_PREV = "skip_rate_prev"
LOG_ARTISTS_PREV = "log_artists_prev"
DAYS_SINCE_LAST_PLAY = "days_since_last_play"

_DAY = pd.Timedelta(days=1)


def build_hazard_table(
    events: pd.DataFrame,
    users: pd.DataFrame | None = None,
    *,
    period: str | pd.Timedelta = "W",
    inactivity: str | pd.Timedelta = "30D",
    observation_end: Any = None,
    returns: Literal["ignore", "first_gap"] = "ignore",
    forecast: bool = False,
) -> pd.DataFrame:
    r"""Build the person-period table of a discrete-time churn hazard model.

    Parameters
    ----------
    events : pandas.DataFrame
        Listening log with ``user_id`` and ``timestamp``; ``skipped`` (bool) and
        ``artist_id`` are used when present.
    users : pandas.DataFrame, optional
        Users table with ``user_id``; its ``country`` and ``plan`` columns are
        copied onto every row. Every user of the log must be listed.
    period : str or pandas.Timedelta, default "W"
        Length of a tenure period: ``"D"``, ``"W"`` (7 days) or any fixed
        duration such as ``"14D"``.
    inactivity : str or pandas.Timedelta, default "30D"
        Silence that counts as churn, as in :func:`models.churn.churn_labels`.
    observation_end : timestamp-like, optional
        End of the observation window; defaults to the last event.
    returns : {"ignore", "first_gap"}, default "ignore"
        How a long gap followed by a return counts (see
        :func:`models.churn.churn_labels`).
    forecast : bool, default False
        Instead of the table to fit, return the rows to forecast from: one per
        user still at risk after their last fully observed period (see Notes),
        for the first period whose outcome is not known yet, with its covariates
        from the log and no ``event`` column. Pass it to
        :meth:`ChurnHazardModel.probability_churn
        <models.churn.ChurnHazardModel.probability_churn>` to forecast churn
        from the end of observation, with the same arguments as the fitted table.

    Returns
    -------
    pandas.DataFrame
        One row per user and tenure period at risk, sorted by ``user_id`` then
        ``tenure`` (with ``forecast=True``, one row per user at risk), with columns

        - ``user_id``; ``tenure``: period index since the user's start (int64);
        - ``period_start``: timestamp the period starts at;
        - ``event``: 1 if the user churns in this period, else 0 (int64);
        - ``log_plays_prev``: :math:`\log(1 + \text{plays})` in the previous period;
        - ``skip_rate_prev``: share of those plays skipped, 0 without plays (only
          when the log has ``skipped``);
        - ``log_artists_prev``: :math:`\log(1 + \text{distinct artists})` in the
          previous period (only when the log has ``artist_id``);
        - ``days_since_last_play``: whole calendar days from the last play
          before the period to its start (0 in period 0);
        - ``country``, ``plan``: when ``users`` has them.

    Raises
    ------
    TypeError, ValueError, DataValidationError
        As :func:`models.churn.churn_labels`, and for an invalid ``period``.

    Notes
    -----
    **Periods.** User :math:`u` starts at midnight of the day of their first
    event, :math:`a_u`. Period :math:`k` covers :math:`[a_u + kL, a_u + (k+1)L)`
    with :math:`L` = ``period``, so tenure is measured on each user's own clock.

    **Event.** Churn is dated at the user's stop :math:`s_u` (last event, see
    :func:`~models.churn.churn_labels`); the churn period is
    :math:`c_u = \lfloor (s_u - a_u) / L \rfloor`. The user is at risk in
    periods :math:`0, \dots, c_u` and ``event`` is 1 only in period :math:`c_u`.

    **Censoring.** With ``returns="first_gap"``, whether a user churns in
    period :math:`k` is known ``inactivity`` after the period ends (the user
    may still come back until then), and a label never changes when more of the
    log is seen. With ``returns="ignore"`` only the silence after the user's
    *last* event is churn, so a return at any later time, even after
    ``observation_end``, cancels it: the labels of the latest periods lean
    towards churn and change as the log grows (on a simulated service, 187 of
    3,313 calibration churn events were not churn on the full log; see
    ``benchmarks/bench_churn_hazard.py``). Use ``"first_gap"`` to fit a model
    whose predictions are checked on later data. A period is *fully observed*
    when

    .. math:: a_u + (k + 1) L + \Delta \le E,

    and only fully observed periods are kept, for every user. The cut depends on
    the start date alone, never on the outcome, so censoring is independent of
    churn. Censored users contribute their fully observed periods with
    ``event = 0``; a user labelled churned by :func:`churn_labels` whose churn
    period is not fully observed is censored here at the last fully observed
    period. Users with no fully observed period contribute no rows.

    **Forecast rows.** A user is still at risk after the table when they have
    not churned in a fully observed period; their forecast row is period
    :math:`k^* + 1`, :math:`k^*` being their last fully observed period
    (period 0 for users with none). Its covariates come from period
    :math:`k^*`, which is in the log, while its outcome is not known yet: the
    period ends less than ``inactivity`` before ``observation_end``. Users who
    churned in the table get no forecast row.

    **No leakage.** Every covariate of period :math:`k` is computed from events
    before :math:`a_u + kL`: plays, skips and artists of period :math:`k - 1`
    (zero for :math:`k = 0`) and the days since the last play before the period.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({
    ...     "user_id": ["a", "a", "a"],
    ...     "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-09"]),
    ... })
    >>> table = build_hazard_table(log, period="W", inactivity="14D",
    ...                            observation_end="2024-03-01")
    >>> table[["tenure", "event", "log_plays_prev", "days_since_last_play"]].round(3)
       tenure  event  log_plays_prev  days_since_last_play
    0       0      0           0.000                     0
    1       1      1           1.099                     6
    """
    func = "build_hazard_table"
    length = parse_duration(period, "period", func)
    delta = parse_duration(inactivity, "inactivity", func)
    if returns not in ("ignore", "first_gap"):
        raise ValueError(
            f"The 'returns' parameter of {func} must be one of ['ignore', 'first_gap']. "
            f"Got {returns!r} instead."
        )
    if not isinstance(forecast, bool | np.bool_):
        raise TypeError(
            f"The 'forecast' parameter of {func} must be True or False. Got {forecast!r} instead."
        )
    frame = clean_events(events, func)
    end = resolve_end(observation_end, frame[TIMESTAMP], func)
    table = check_users(users, frame, func) if users is not None else None

    per_user = churn_times(frame[[USER_ID, TIMESTAMP]], delta, end, returns)
    start = per_user[FIRST_ACTIVITY].dt.floor("D")
    # Last fully observed period: a + (k+1) L + delta <= E.
    last_obs = np.floor((end - delta - start) / length).astype("int64") - 1
    churned_users = per_user[CHURNED].to_numpy()
    # Censored users get a churn period past their last row (never reached).
    churn_period = ((per_user[CHURN_TIME] - start) // length).to_numpy(na_value=-1.0)
    churn_period = np.where(churned_users, churn_period, last_obs.to_numpy() + 1).astype("int64")
    last_row = np.minimum(last_obs.to_numpy(), churn_period)
    n_rows = np.maximum(last_row + 1, 0)
    if forecast:  # every row up to the first unknown period (covariates carry over rows)
        at_risk = churn_period > last_obs.to_numpy()
        n_rows = np.where(at_risk, np.maximum(last_obs.to_numpy() + 2, 1), 0)
    elif n_rows.sum() == 0:
        # Name the cause here: an empty table only fails later, in the model, without one.
        first = start.min()
        span = (end - first) / _DAY
        raise ValueError(
            f"{func}: no user has a fully observed period, so the table would be empty. A "
            f"period counts once its churn status is known: {length / _DAY:g} days after it "
            f"starts plus {delta / _DAY:g} days of silence (the inactivity threshold), "
            f"{(length + delta) / _DAY:g} days in all; the log starts on {first.date()} and "
            f"observation ends on {end.date()} ({span:g} days). Use a longer log, a later "
            f"observation_end, a shorter 'period' or a shorter 'inactivity'."
        )

    user_index = per_user.index.to_numpy()
    rows = pd.DataFrame({USER_ID: np.repeat(user_index, n_rows)})
    offsets = np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
    rows[TENURE] = (np.arange(n_rows.sum()) - offsets).astype("int64")
    rep_start = np.repeat(start.to_numpy(), n_rows)
    rows[PERIOD_START] = rep_start + rows[TENURE].to_numpy() * length.to_timedelta64()
    churned = np.repeat(churned_users, n_rows)
    in_churn_period = rows[TENURE].to_numpy() == np.repeat(churn_period, n_rows)
    rows[EVENT] = (churned & in_churn_period).astype("int64")

    # Per user-period aggregates of the log, attached to the following period.
    ev = frame.copy()
    ev_start = ev[USER_ID].map(start)
    ev[TENURE] = ((ev[TIMESTAMP] - ev_start) // length).astype("int64")
    named = {"plays": (TIMESTAMP, "size"), "last_play": (TIMESTAMP, "max")}
    if SKIPPED in ev.columns:
        ev[SKIPPED] = ev[SKIPPED].astype("float64")
        named["skips"] = (SKIPPED, "sum")
    if ARTIST_ID in ev.columns:
        named["artists"] = (ARTIST_ID, "nunique")
    agg = ev.groupby([USER_ID, TENURE], sort=False).agg(**named).reset_index()
    agg[TENURE] = agg[TENURE] + 1
    rows = rows.merge(agg, on=[USER_ID, TENURE], how="left", sort=False)

    plays = rows["plays"].fillna(0.0).to_numpy(dtype=float)
    rows[LOG_PLAYS_PREV] = np.log1p(plays)
    if "skips" in rows.columns:
        skips = rows["skips"].fillna(0.0).to_numpy(dtype=float)
        rows[SKIP_RATE_PREV] = np.divide(skips, plays, out=np.zeros_like(plays), where=plays > 0)
    if "artists" in rows.columns:
        rows[LOG_ARTISTS_PREV] = np.log1p(rows["artists"].fillna(0.0).to_numpy(dtype=float))
    last_play = rows.groupby(USER_ID, sort=False)["last_play"].ffill()
    days = (rows[PERIOD_START] - last_play.dt.floor("D")) // _DAY
    rows[DAYS_SINCE_LAST_PLAY] = days.fillna(0).astype("int64")

    columns = [USER_ID, TENURE, PERIOD_START] + ([] if forecast else [EVENT]) + [LOG_PLAYS_PREV]
    columns += [c for c in (SKIP_RATE_PREV, LOG_ARTISTS_PREV) if c in rows.columns]
    columns.append(DAYS_SINCE_LAST_PLAY)
    out = rows[columns]
    if table is not None:
        attrs = [c for c in (COUNTRY, PLAN) if c in table.columns]
        out = out.join(table[attrs], on=USER_ID)
    out = out.sort_values([USER_ID, TENURE], kind="stable")
    if forecast:
        out = out.drop_duplicates(USER_ID, keep="last")
    out = out.reset_index(drop=True)
    out.attrs.update(observation_end=end, inactivity=delta, period=length, returns=returns,
                     forecast=forecast)
    return out
