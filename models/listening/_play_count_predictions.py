"""The predictions of :class:`~models.listening.PlayCountModel`, one function per method.

The model file holds the model (its priors, data checks and PyMC model); its prediction
methods keep their signatures and docstrings there and call these functions:
expected plays of known users (:func:`expected_plays`) and of a new user
(:func:`expected_plays_new_user`), predictive draws of known users' future plays
(:func:`sample_plays`: per posterior draw, the user's effect given their history, the
future periods' effects and the count noise, summed over the horizon) and of a new
user's (:func:`sample_plays_new_user`), and the ratio of two segments
(:func:`segment_contrast`). Future periods follow the training data's spacing (days,
weeks or calendar months).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

import models.listening.play_count as pc
from models._validation import add_problem, check_int
from models.base import resolve_seed
from models.data.schema import USER_ID
from models.exceptions import DataValidationError, Problem
from models.predict import draws_to_dataarray, predict_in_batches, sample_shape, summarize_draws

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
        y = pc._draw_counts(model.likelihood, p, eta, rng)
        totals[:, lo:lo + users.size] = y.reshape(n_draws, users.size, horizon).sum(axis=2)
    return draws_to_dataarray(totals, index=pd.Index(ids, name=USER_ID),
                              shape=sample_shape(model.idata_, max_draws), unit="user",
                              name="sample_plays")


def validate_prediction_rows(model: PlayCountModel, data: Any) -> pd.DataFrame:
    """Check rows to predict for (known users, their periods and covariates)."""
    what = "prediction rows"
    columns = [USER_ID, PERIOD_START, *model.covariates]
    pc.check_columns(data, columns, "PlayCountModel.expected_plays", what,
                  "pass rows with user_id, period_start and the covariates")
    frame = data[columns].copy()
    problems: list[Problem] = []
    model._check_rows(problems, frame)
    known = set(model.data_[USER_ID].to_numpy(dtype=object))
    ids = frame[USER_ID].to_numpy(dtype=object)
    add_problem(problems, USER_ID, "users of the training data",
                np.array([i not in known for i in ids]) & frame[USER_ID].notna().to_numpy(),
                ids, fix="use expected_plays_new_user for users the model has not seen")
    if problems:
        raise DataValidationError(problems, what=what)
    return frame


def segment_codes(model: PlayCountModel, owner: str, segment: Mapping[str, Any]
                  ) -> dict[str, int]:
    """Level code of each group in ``segment`` (every group needs a known level)."""
    unknown = [k for k in segment if k not in model.groups]
    if unknown:
        raise ValueError(f"{owner} got {unknown[0]!r}, which is not a group of this model; "
                         f"the groups are {list(model.groups)}.")
    missing = [g for g in model.groups if g not in segment]
    if missing:
        raise ValueError(f"{owner} needs a level for every group; missing {missing}.")
    levels = model._levels()
    codes = {}
    for g in model.groups:
        pc.check_labels(owner, repr(g), [str(segment[g])], levels[g])
        codes[g] = levels[g].index(str(segment[g]))
    return codes


def new_user_eta(
    model: PlayCountModel, owner: str, segment: Mapping[str, Any], periods: pd.DataFrame,
    max_draws: int | None, random_seed: Any,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Log-means (draws x periods) of one new user per posterior draw."""
    codes = segment_codes(model, owner, segment)
    seed = resolve_seed(random_seed)
    p = model._draws(max_draws, seed, users=False)
    base = p["intercept"].copy()
    for g, c in codes.items():
        base = base + p[f"{g}_effect"][:, c]
    rng = np.random.default_rng(seed)
    if model.user_effect == "gamma":  # log of a mean-1 Gamma multiplier
        k = p["user_shape"]
        theta = np.log(rng.gamma(k, 1.0 / k))
    else:
        theta = rng.normal(size=base.shape) * p["sigma_user"]
    if model.covariates:
        periods = periods.assign(**{c: model.data_[c].mean() for c in model.covariates})
    return p, (base + theta)[:, None] + model._row_eta(p, periods)


def expected_plays(
    model: PlayCountModel,
    data: pd.DataFrame | None = None,
    *,
    ci_prob: float = 0.89,
    max_draws: int | None = 1000,
    random_seed: int | np.random.Generator | None = None,
    return_draws: bool = False,
) -> pd.DataFrame | xr.DataArray:
    """Implement :meth:`PlayCountModel.expected_plays` (see there)."""
    model._require_fitted("expected_plays()")
    rows = model.data_ if data is None else validate_prediction_rows(model, data)
    p = model._draws(max_draws, random_seed, users=True)
    users = np.unique(model.data_[USER_ID].to_numpy(dtype=object))
    codes = np.searchsorted(users, rows[USER_ID].to_numpy(dtype=object))
    frame = rows.assign(_user=codes)
    if model.user_effect == "gamma":  # conditional user draws, block by block
        rng = np.random.default_rng(resolve_seed(random_seed))

        def user_log_rate(params: Mapping[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
            uniq, inverse = np.unique(idx, return_inverse=True)
            return model._gamma_user_log_rate(params, uniq, rng)[:, inverse]
    else:
        log_rate = model._user_log_rate(p)

        def user_log_rate(params: Mapping[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
            return log_rate[:, idx]

    def func(params: Mapping[str, np.ndarray], block: pd.DataFrame) -> np.ndarray:
        eta = (user_log_rate(params, block["_user"].to_numpy())
               + model._row_eta(params, block))
        return model._mean(params, eta)

    out = predict_in_batches(func, p, frame, ci_prob=ci_prob, return_draws=return_draws,
                             shape=sample_shape(model.idata_, max_draws), unit="row",
                             name="expected_plays")
    if return_draws:
        return out.assign_coords({USER_ID: ("row", rows[USER_ID].to_numpy()),
                                  PERIOD_START: ("row", rows[PERIOD_START].to_numpy())})
    out.insert(0, PERIOD_START, rows[PERIOD_START].to_numpy())
    out.insert(0, USER_ID, rows[USER_ID].to_numpy())
    return out


def expected_plays_new_user(
    model: PlayCountModel,
    *,
    horizon: int = 7,
    segment: Mapping[str, Any] | None = None,
    start: Any = None,
    ci_prob: float = 0.89,
    max_draws: int | None = 4000,
    random_seed: int | np.random.Generator | None = None,
    return_draws: bool = False,
) -> pd.DataFrame | xr.DataArray:
    """Implement :meth:`PlayCountModel.expected_plays_new_user` (see there)."""
    owner = "PlayCountModel.expected_plays_new_user"
    model._require_fitted("expected_plays_new_user()")
    check_int(owner, "horizon", horizon)
    segment = _check_segment(owner, segment)
    periods = future_periods(model, horizon, start)
    p, eta = new_user_eta(model, owner, segment, periods, max_draws, random_seed)
    index = pd.Index(periods[PERIOD_START], name=PERIOD_START)
    if return_draws:
        return draws_to_dataarray(model._mean(p, eta), index=index,
                                  shape=sample_shape(model.idata_, max_draws),
                                  name="expected_plays_new_user")
    return summarize_draws(model._mean(p, eta), ci_prob=ci_prob, index=index)


def sample_plays_new_user(
    model: PlayCountModel,
    *,
    horizon: int,
    segment: Mapping[str, Any] | None = None,
    start: Any = None,
    max_draws: int | None = 1000,
    random_seed: int | np.random.Generator | None = None,
) -> xr.DataArray:
    """Implement :meth:`PlayCountModel.sample_plays_new_user` (see there)."""
    owner = "PlayCountModel.sample_plays_new_user"
    model._require_fitted("sample_plays_new_user()")
    check_int(owner, "horizon", horizon)
    segment = _check_segment(owner, segment)
    rng = np.random.default_rng(resolve_seed(random_seed))
    periods = future_periods(model, horizon, start)
    p, eta = new_user_eta(model, owner, segment, periods, max_draws, rng)
    y = pc._draw_counts(model.likelihood, p, eta, rng)
    return draws_to_dataarray(y, index=pd.Index(periods[PERIOD_START], name=PERIOD_START),
                              shape=sample_shape(model.idata_, max_draws),
                              name="sample_plays_new_user")


def segment_contrast(
    model: PlayCountModel, group: str, a: Any, b: Any, *, ci_prob: float = 0.89
) -> pd.DataFrame:
    """Implement :meth:`PlayCountModel.segment_contrast` (see there)."""
    owner = "PlayCountModel.segment_contrast"
    model._require_fitted("segment_contrast()")
    if group not in model.groups:
        raise ValueError(f"The 'group' parameter of {owner} must be one of "
                         f"{list(model.groups)}. Got {group!r} instead.")
    levels = model._levels()[group]
    pc.check_labels(owner, repr(group), [str(a), str(b)], levels)
    p = model._draws(None, 0, users=False)
    effect = p[f"{group}_effect"]
    means = []
    for level in (str(a), str(b)):
        eta = p["intercept"] + effect[:, levels.index(level)]
        if model.likelihood == "hurdle":
            grid = eta[:, None] + _period_grid_effects(p, model)
            means.append(model._mean(p, grid).mean(axis=1))
        else:
            means.append(np.exp(eta))
    ratio = means[0] / means[1]
    out = summarize_draws(ratio[:, None], ci_prob=ci_prob, index=[f"{a}/{b}"])
    out["prob_greater_than_one"] = float((ratio > 1).mean())
    return out


def _check_segment(owner: str, segment: Any) -> Mapping[str, Any]:
    if segment is None:
        return {}
    if not isinstance(segment, Mapping):
        raise ValueError(f"The 'segment' parameter of {owner} must be a mapping of group to "
                         f"level. Got {segment!r} instead.")
    return segment


def _period_grid_effects(p: Mapping[str, np.ndarray], model: PlayCountModel) -> np.ndarray:
    """Every combination of period-effect levels, summed, (draws x combinations)."""
    total = np.zeros((next(iter(p.values())).shape[0], 1))
    for name in model.period_effects:
        e = p[f"{name}_effect"]
        total = (total[:, :, None] + e[:, None, :]).reshape(len(e), -1)
    return total
