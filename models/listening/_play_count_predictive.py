"""Posterior predictive draws of known users' future plays, for :class:`PlayCountModel`.

``PlayCountModel.sample_plays`` is a thin method over :func:`sample_plays`: for each
posterior draw, each user's effect given their history (the posterior draw of it, or
for Gamma users a draw from its exact conditional), the period effects of the future
periods, and the user's own count noise from the likelihood. The counts are summed
over the horizon, so the draws answer "how many plays will this user make in the
next ``horizon`` periods?", with the parameters' uncertainty and the user's
randomness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from models.base import resolve_seed
from models.data.schema import USER_ID
from models.exceptions import DataValidationError, Problem
from models.predict import draws_to_dataarray, sample_shape

if TYPE_CHECKING:
    from models.listening.play_count import PlayCountModel

PERIOD_START = "period_start"
#: Draws x users x periods of future log-means held at once.
_BLOCK_CELLS = 4_000_000


def period_spacing(periods: pd.Series) -> str | pd.Timedelta:
    """Return the data's period: "MS" for calendar months, else the smallest gap."""
    unique = pd.DatetimeIndex(pd.unique(periods)).sort_values()
    if len(unique) < 2:
        return pd.Timedelta(days=1)
    gaps = unique[1:] - unique[:-1]
    if bool(unique.is_month_start.all()) and gaps.min() >= pd.Timedelta(days=28):
        return "MS"
    return gaps.min()


def future_periods(model: PlayCountModel, horizon: int, start: Any = None) -> pd.DataFrame:
    """Return ``horizon`` periods after the training data (or from ``start``), in its spacing."""
    step = period_spacing(model.data_[PERIOD_START])
    last = model.data_[PERIOD_START].max()
    if start is None:
        start = last + (pd.offsets.MonthBegin(1) if step == "MS" else step)
    return pd.DataFrame({PERIOD_START: pd.date_range(pd.Timestamp(start), periods=horizon,
                                                     freq=step)})


def _users(model: PlayCountModel, data: Any, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the distinct users to predict (sorted, as in training) and their codes."""
    known = np.unique(model.data_[USER_ID].to_numpy(dtype=object))
    if data is None:
        return known, np.arange(known.size)
    if not isinstance(data, pd.DataFrame) or USER_ID not in data.columns:
        raise DataValidationError([Problem(USER_ID, "a column of user ids", fix=(
            "pass a DataFrame with user_id (the users to predict), or nothing for every "
            "user of the training data"))], what=f"{owner} data")
    values = data[USER_ID].to_numpy(dtype=object)
    bad = data[USER_ID].isna().to_numpy() | ~np.isin(values, known)
    if bad.any():
        rows = np.flatnonzero(bad)[:5]
        raise DataValidationError([Problem(
            USER_ID, "users of the training data", int(bad.sum()), tuple(int(r) for r in rows),
            tuple(values[rows]), fix="use sample_plays_new_user for users the model has not "
            "seen")], what=f"{owner} data")
    ids = np.unique(values)
    codes = np.searchsorted(known, ids)
    return ids, codes


def sample_plays(model: PlayCountModel, data: Any, *, horizon: int, start: Any,
                 max_draws: int | None, random_seed: Any) -> xr.DataArray:
    """Implement :meth:`PlayCountModel.sample_plays` (see there)."""
    from models.listening.play_count import _draw_counts

    owner = "PlayCountModel.sample_plays"
    ids, codes = _users(model, data, owner)
    seed = resolve_seed(random_seed)
    rng = np.random.default_rng(seed)
    p = model._draws(max_draws, seed, users=True)
    periods = future_periods(model, horizon, start)
    if model.covariates:  # future covariates are unknown: held at their training means
        periods = periods.assign(**{c: model.data_[c].mean() for c in model.covariates})
    period_eta = model._row_eta(p, periods)  # (draws, horizon)
    n_draws = period_eta.shape[0]
    block = max(1, _BLOCK_CELLS // (n_draws * horizon))
    log_rate = None if model.user_effect == "gamma" else model._user_log_rate(p)
    totals = np.empty((n_draws, ids.size), dtype=np.int64)
    for lo in range(0, ids.size, block):
        users = codes[lo:lo + block]
        theta = (model._gamma_user_log_rate(p, users, rng) if log_rate is None
                 else log_rate[:, users])
        eta = (theta[:, :, None] + period_eta[:, None, :]).reshape(n_draws, -1)
        y = _draw_counts(model.likelihood, p, eta, rng)
        totals[:, lo:lo + users.size] = y.reshape(n_draws, users.size, horizon).sum(axis=2)
    return draws_to_dataarray(totals, index=pd.Index(ids, name=USER_ID),
                              shape=sample_shape(model.idata_, max_draws), unit="user",
                              name="sample_plays")
