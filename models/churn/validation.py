r"""Out-of-time validation of activity and churn predictions.

Split a log at a calibration end, fit on the calibration window, and score the
predictions against what happened in the holdout window that follows:

- :func:`calibration_holdout_split` gives each user's calibration summary
  (``frequency``, ``recency``, ``T``) and holdout activity;
- :func:`roc_auc`, :func:`brier_score` and :func:`calibration_table` score
  probabilities against 0/1 outcomes;
- :func:`holdout_evaluation` does all of it for a :class:`BetaGeoModel`
  (fit, predict, score) and :func:`score_holdout` scores a fitted one, or the
  point predictions of another tool (``lifetimes``, an MLE) on the same table.

The outcome scored is observable: whether a user is active at least once in
the holdout. Its BG/NBD probability is :meth:`BetaGeoModel.probability_active`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from models import _html
from models._deprecation import warn_deprecated
from models.base import resolve_seed
from models.churn.beta_geo import (
    AGE,
    FREQUENCY,
    RECENCY,
    BetaGeoModel,
    _factorize,
)
from models.data.schema import TIMESTAMP, USER_ID
from models.data.summaries import _period_index, summarize_activity
from models.metrics import brier_score, calibration_table, roc_auc
from models.predict import DEFAULT_BLOCK_ELEMENTS, flatten_draws, summarize_draws

__all__ = [
    "HoldoutEvaluation",
    "brier_score",
    "calibration_holdout_split",
    "calibration_table",
    "holdout_evaluation",
    "probability_active_within",
    "roc_auc",
    "score_holdout",
]

HOLDOUT_ACTIVITY = "holdout_activity"
ACTIVE_IN_HOLDOUT = "active_in_holdout"


# ------------------------------------------------------------------------ the split
def _boundary(value: Any, period: str, name: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    before = _period_index(pd.Series([ts - pd.Timedelta(1, "ns")]), period).iloc[0]
    if _period_index(pd.Series([ts]), period).iloc[0] == before:
        raise ValueError(f"The '{name}' parameter of calibration_holdout_split must be the start "
                         f"of a period ({period!r}), so both windows hold whole periods. Got "
                         f"{value!r} instead.")
    return ts


def calibration_holdout_split(
    events: pd.DataFrame, *, calibration_end: Any, holdout_end: Any, period: str = "D",
) -> pd.DataFrame:
    """Per-user calibration summary and holdout activity of a log split in time.

    Parameters
    ----------
    events : pandas.DataFrame
        Listening log with ``user_id`` and ``timestamp``.
    calibration_end : timestamp-like
        First instant of the holdout window (the start of a period); events
        before it are the calibration window.
    holdout_end : timestamp-like
        End (exclusive) of the holdout window, the start of a period.
    period : {"D", "W", "M"}, default "D"
        Period of the activity summary.

    Returns
    -------
    pandas.DataFrame
        One row per user active in the calibration window (index ``user_id``):
        ``frequency``, ``recency``, ``T`` (of the calibration window, in
        periods), ``holdout_activity`` (distinct active periods in the holdout)
        and ``active_in_holdout``. ``attrs["horizon"]`` is the holdout length in
        periods. Users first seen in the holdout are not in the table.

    Raises
    ------
    ValueError
        If a window end is not the start of a period or ``holdout_end`` is not
        after ``calibration_end``.
    models.exceptions.DataValidationError
        If the log is invalid or has no event before ``calibration_end``.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user_id": ["a", "a", "a", "b", "c"], "timestamp": pd.to_datetime(
    ...     ["2024-01-01", "2024-01-03", "2024-01-12", "2024-01-05", "2024-01-11"])})
    >>> table = calibration_holdout_split(log, calibration_end="2024-01-08",
    ...                                   holdout_end="2024-01-15")
    >>> table  # doctest: +NORMALIZE_WHITESPACE
             frequency  recency  T  holdout_activity  active_in_holdout
    user_id
    a                1        2  6                 1               True
    b                0        0  2                 0              False
    >>> table.attrs["horizon"]
    7
    """
    cal = _boundary(calibration_end, period, "calibration_end")
    end = _boundary(holdout_end, period, "holdout_end")
    if end <= cal:
        raise ValueError("The 'holdout_end' parameter of calibration_holdout_split must be after "
                         f"calibration_end ({cal}). Got {holdout_end!r} instead.")
    ts = events[TIMESTAMP]
    ts = ts.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(ts.dt, "tz", None) else ts
    before = events[(ts < cal).to_numpy()]
    summary = summarize_activity(before, period=period,
                                 observation_end=cal - pd.Timedelta(1, "ns"))
    table = summary[[FREQUENCY, RECENCY, AGE]].copy()
    inside = events[((ts >= cal) & (ts < end)).to_numpy()]
    periods = _period_index(inside[TIMESTAMP], period)
    counts = (pd.DataFrame({USER_ID: inside[USER_ID].to_numpy(), "p": periods.to_numpy()})
              .drop_duplicates().groupby(USER_ID).size())
    table[HOLDOUT_ACTIVITY] = counts.reindex(table.index, fill_value=0).astype("int64")
    table[ACTIVE_IN_HOLDOUT] = table[HOLDOUT_ACTIVITY] > 0
    first = _period_index(pd.Series([cal]), period).iloc[0]
    last = _period_index(pd.Series([end - pd.Timedelta(1, "ns")]), period).iloc[0]
    table.attrs["horizon"] = int(last - first + 1)
    return table


# --------------------------------------------------------------------- predictions
def probability_active_within(
    model: BetaGeoModel, data: pd.DataFrame | None = None, *, horizon: float | None = None,
    t: float | None = None, ci_prob: float = 0.89, max_draws: int | None = None,
    random_seed: int | np.random.Generator | None = None, return_draws: bool = False,
) -> pd.DataFrame | xr.DataArray:
    """Return ``model.probability_active(data, horizon=...)`` (deprecated function).

    Use :meth:`BetaGeoModel.probability_active` instead; ``t`` is the deprecated
    name of ``horizon``.

    Returns
    -------
    pandas.DataFrame or xarray.DataArray
        What :meth:`BetaGeoModel.probability_active` returns.
    """
    if t is not None:
        if horizon is not None:
            raise TypeError("probability_active_within() got both 't' and 'horizon'; pass "
                            "only horizon.")
        horizon = t
    warn_deprecated("probability_active_within(model, data, t=...) is deprecated; use "
                    "model.probability_active(data, horizon=...) instead.")
    return model.probability_active(data, horizon=horizon, ci_prob=ci_prob,
                                    max_draws=max_draws, random_seed=random_seed,
                                    return_draws=return_draws)


# ------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class HoldoutEvaluation:
    """Scores of activity predictions against a holdout window.

    Attributes
    ----------
    auc, brier : float
        :func:`roc_auc` and :func:`brier_score` of the probability of activity
        in the holdout.
    calibration : pandas.DataFrame
        :func:`calibration_table` of that probability.
    by_frequency : pandas.DataFrame
        Mean holdout activity per calibration frequency bucket: ``n``,
        ``actual`` and its standard error ``actual_se``, ``predicted`` and, for a
        Bayesian model, the ``ci_lower``/``ci_upper`` (equal-tailed interval) of
        the predicted bucket mean (parameter uncertainty only).
    users : pandas.DataFrame
        Per user: the split table plus ``p_active`` and ``expected_activity``
        (posterior means, or the point predictions scored).
    horizon : float
        Holdout length in periods.
    """

    auc: float
    brier: float
    calibration: pd.DataFrame
    by_frequency: pd.DataFrame
    users: pd.DataFrame
    horizon: float

    def _repr_html_(self) -> str:
        """Notebook display: the scores, the calibration table and activity by frequency."""
        return _html.card(
            "Holdout evaluation",
            _html.pairs_html({"users": f"{len(self.users):,}",
                              "holdout (periods)": f"{self.horizon:g}",
                              "AUC (0.5 is chance)": f"{self.auc:.3f}",
                              "Brier score": f"{self.brier:.4f}"}),
            "<div><strong>Calibration of P(active in the holdout)</strong></div>",
            _html.frame_html(self.calibration),
            "<div><strong>Holdout activity by calibration frequency</strong></div>",
            _html.frame_html(self.by_frequency))


def _buckets(frequency: np.ndarray, top: int) -> np.ndarray:
    return np.minimum(frequency, top)


def score_holdout(
    table: pd.DataFrame, *, model: BetaGeoModel | None = None,
    p_active: Any = None, expected_activity: Any = None, horizon: float | None = None,
    n_bins: int = 10, top_frequency: int = 7, ci_prob: float = 0.89,
    max_draws: int | None = 1000, random_seed: int | np.random.Generator | None = None,
) -> HoldoutEvaluation:
    """Score predictions of holdout activity: a fitted BG/NBD model or given point predictions.

    Parameters
    ----------
    table : pandas.DataFrame
        A :func:`calibration_holdout_split` table: ``frequency``, ``recency``,
        ``T``, ``holdout_activity``, ``active_in_holdout``.
    model : BetaGeoModel, optional
        A model fitted on the calibration window; its posterior gives the
        predictions and the intervals of ``by_frequency``.
    p_active, expected_activity : array-like, optional
        Point predictions per row of ``table`` (another tool's), used when
        ``model`` is None.
    horizon : float, optional
        Holdout length in periods; ``table.attrs["horizon"]`` by default.
    n_bins : int, default 10
        Bins of the calibration table.
    top_frequency : int, default 7
        Calibration frequencies at or above this share one bucket (labelled
        with it, meaning "7+").
    ci_prob : float, default 0.89
        Probability of the intervals of the predicted bucket means.
    max_draws : int or None, default 1000
        Posterior draws used.
    random_seed : int, numpy.random.Generator or None
        Seed of the subset of draws.

    Returns
    -------
    HoldoutEvaluation

    Raises
    ------
    ValueError
        If neither a model nor both point predictions are given, or there is
        no horizon.
    """
    horizon = table.attrs.get("horizon") if horizon is None else horizon
    if horizon is None:
        raise ValueError("score_holdout needs the holdout length: pass horizon= or a table from "
                         "calibration_holdout_split. Got None.")
    users = table.copy()
    bucket = _buckets(users[FREQUENCY].to_numpy(), top_frequency)
    if model is not None:
        # unique (frequency, recency, T) rows: a few thousand even for millions of users
        cols = [FREQUENCY, RECENCY, AGE] + ([model.segment] if model.segment else [])
        codes, uniques = _factorize(*(users[c].to_numpy() for c in cols))
        rows = pd.DataFrame(dict(zip(cols, uniques, strict=True)))
        labels = np.unique(bucket)
        weights = np.zeros((len(rows), len(labels)))
        np.add.at(weights, (codes, np.searchsorted(labels, bucket)), 1.0)
        kw = {"max_draws": max_draws, "random_seed": resolve_seed(random_seed)}
        p_mean, e_mean = np.empty(len(rows)), np.empty(len(rows))
        per_bucket = 0.0
        step = max(1, DEFAULT_BLOCK_ELEMENTS // (max_draws or 4000))
        for start in range(0, len(rows), step):  # (draws x rows) blocks of bounded size
            block = rows.iloc[start:start + step]
            p_draws = flatten_draws(model.probability_active(block, horizon=horizon,
                                                             return_draws=True, **kw))
            e_draws = flatten_draws(model.expected_activity(block, horizon=horizon,
                                                            return_draws=True, **kw))
            p_mean[start:start + step] = p_draws.mean(axis=0)
            e_mean[start:start + step] = e_draws.mean(axis=0)
            per_bucket = per_bucket + e_draws @ weights[start:start + step]
        users["p_active"] = p_mean[codes]
        users["expected_activity"] = e_mean[codes]
        per_bucket = per_bucket / weights.sum(axis=0)
        predicted = summarize_draws(per_bucket, ci_prob=ci_prob, index=labels)
    elif p_active is not None and expected_activity is not None:
        users["p_active"] = np.asarray(p_active, dtype=float)
        users["expected_activity"] = np.asarray(expected_activity, dtype=float)
        predicted = None
    else:
        raise ValueError("score_holdout needs a fitted model= or both p_active= and "
                         "expected_activity=. Got neither.")
    y = users[ACTIVE_IN_HOLDOUT].to_numpy()
    grouped = users.assign(bucket=bucket).groupby("bucket")
    by_freq = pd.DataFrame({
        "n": grouped.size(),
        "actual": grouped[HOLDOUT_ACTIVITY].mean(),
        "actual_se": grouped[HOLDOUT_ACTIVITY].std(ddof=1) / np.sqrt(grouped.size()),
        "predicted": grouped["expected_activity"].mean(),
    })
    if predicted is not None:
        by_freq["ci_lower"] = predicted["ci_lower"].to_numpy()
        by_freq["ci_upper"] = predicted["ci_upper"].to_numpy()
    by_freq.index.name = FREQUENCY
    return HoldoutEvaluation(
        auc=roc_auc(y, users["p_active"]), brier=brier_score(y, users["p_active"]),
        calibration=calibration_table(y, users["p_active"], n_bins=n_bins),
        by_frequency=by_freq, users=users, horizon=float(horizon),
    )


def holdout_evaluation(
    model: BetaGeoModel, events: pd.DataFrame, *, calibration_end: Any, holdout_end: Any,
    period: str = "D", fit_kwargs: Mapping[str, Any] | None = None, **score_kwargs: Any,
) -> HoldoutEvaluation:
    """Split a log in time, fit a BG/NBD model on the calibration window, score the holdout.

    Parameters
    ----------
    model : BetaGeoModel
        An unfitted model (its priors and options are used); it is fitted here
        on the calibration summary.
    events : pandas.DataFrame
        Listening log with ``user_id`` and ``timestamp``; with a segment
        model, also the segment column (its first value per user is used).
    calibration_end, holdout_end, period
        As in :func:`calibration_holdout_split`.
    fit_kwargs : mapping, optional
        Arguments of :meth:`BetaGeoModel.fit` (``draws``, ``chains``,
        ``random_seed``, ...).
    **score_kwargs
        Arguments of :func:`score_holdout` (``n_bins``, ``max_draws``, ...).

    Returns
    -------
    HoldoutEvaluation
        The scores; the fitted model's convergence is in ``model.fit_report_``.

    Raises
    ------
    TypeError
        If ``model`` is not a :class:`BetaGeoModel`.

    Examples
    --------
    >>> from models.churn import BetaGeoModel
    >>> from models.data import simulate_service
    >>> log = simulate_service(300, 120, random_seed=2).events
    >>> result = holdout_evaluation(
    ...     BetaGeoModel(), log, calibration_end="2025-03-02", holdout_end="2025-05-01",
    ...     fit_kwargs={"method": "map", "random_seed": 1})
    >>> bool(result.auc > 0.6), result.horizon
    (True, 60.0)
    """
    if not isinstance(model, BetaGeoModel):
        raise TypeError("The 'model' parameter of holdout_evaluation must be a BetaGeoModel. "
                        f"Got {type(model).__name__} instead.")
    table = calibration_holdout_split(events, calibration_end=calibration_end,
                                      holdout_end=holdout_end, period=period)
    if model.segment:
        labels = events.groupby(USER_ID)[model.segment].first()
        table.insert(3, model.segment, labels.reindex(table.index).to_numpy())
    model.fit(table, **dict(fit_kwargs or {}))
    return score_holdout(table, model=model, **score_kwargs)
