r"""Long-term projections of an experiment from a churn model fitted on its first weeks.

An experiment runs for a couple of weeks; the question is what it does to listening
months later. This module answers it with the BG/NBD model of
:class:`~models.churn.BetaGeoModel`: each user's activity after their own assignment
is summarised as a BG/NBD history (birth at the assignment, repeat active days,
age), the model is fitted with the variant as its segment (one set of population
parameters per arm, not pooled), and each arm's parameters are projected forward:
expected active days over a horizon after the experiment window and the share of
users still active at its end, each with a credible interval, and the difference
between arms.

The assumption is the churn model's: **each arm's activity and dropout rates stay
as they were measured in the window** (no delayed effects, no novelty effect that
wears off). A treatment that changes dropout only later is invisible to this
projection (and to a surrogate index built on the same weeks); compare the
projection with the outcome observed so far as the experiment keeps running
(:func:`compare_with_observed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from models._validation import check_positive_int, row_problem
from models.base import resolve_seed
from models.churn.beta_geo import BetaGeoModel
from models.data.schema import TIMESTAMP, USER_ID
from models.exceptions import DataValidationError, NotFittedError, Problem
from models.experiments._checks import check_probability
from models.experiments.schema import ASSIGNED_AT, VARIANT
from models.predict import eti_bounds, summarize_draws

__all__ = [
    "LongTermProjection",
    "compare_with_observed",
    "exposure_activity",
    "project_arms",
    "projection_curve",
]

_NS_PER_DAY = 86_400 * 10**9
#: The two projected quantities, in the order of every output.
QUANTITIES = ("active_days", "share_active")


def exposure_activity(
    events: pd.DataFrame, assignments: pd.DataFrame, *, window_days: int = 14,
) -> pd.DataFrame:
    r"""Each assigned user's activity in the experiment window as a BG/NBD history.

    Day :math:`k` of a user covers :math:`[a + k, a + k + 1)` days after their own
    assignment time :math:`a`; the window is days :math:`0, \dots, W - 1`. The
    assignment is the user's birth (time 0) and the active days after it are the
    repeat activities, in the daily convention of
    :func:`models.data.summarize_activity`: ``frequency`` is the number of active
    days among :math:`1, \dots, W-1`, ``recency`` the last of them (0 if none) and
    ``T`` is :math:`W - 1`.

    Parameters
    ----------
    events : pandas.DataFrame
        Validated listening log (``user_id``, ``timestamp``).
    assignments : pandas.DataFrame
        Validated assignment table (``user_id``, ``variant``, ``assigned_at``),
        one row per user.
    window_days : int, default 14
        Length of the experiment window in days.

    Returns
    -------
    pandas.DataFrame
        Index ``user_id`` (every assigned user, in the table's order), columns
        ``frequency``, ``recency``, ``T`` and ``variant``.

    Raises
    ------
    models.exceptions.DataValidationError
        If a column is missing, a user is assigned twice, or a window runs past the
        last event of the log.

    Notes
    -----
    With triggered assignment (a user is assigned at a session) day 0 is always
    active and the BG/NBD birth is exact. When users are assigned without activity,
    the assignment is still taken as their birth: an approximation the projection
    inherits.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user_id": [1, 1, 1, 2],
    ...                     "timestamp": pd.to_datetime(["2025-01-01 10:00", "2025-01-02 09:00",
    ...                                                  "2025-01-05 12:00", "2025-01-20 08:00"])})
    >>> table = pd.DataFrame({"user_id": [1, 2], "variant": ["control", "treatment"],
    ...                       "assigned_at": pd.to_datetime(["2025-01-01 10:00",
    ...                                                      "2025-01-03 00:00"])})
    >>> # 23 hours after the assignment is still day 0 of user 1
    >>> exposure_activity(log, table, window_days=7)  # doctest: +NORMALIZE_WHITESPACE
             frequency  recency  T    variant
    user_id
    1                1        4  6    control
    2                0        0  6  treatment
    """
    owner = "exposure_activity"
    check_positive_int(owner, "window_days", window_days)
    window = int(window_days)
    problems = [Problem(c, "a column of this name", fix="validate the table first")
                for c in (USER_ID, VARIANT, ASSIGNED_AT) if c not in assignments.columns]
    problems += [Problem(c, "a column of this name in the event log")
                 for c in (USER_ID, TIMESTAMP) if c not in events.columns]
    if problems:
        raise DataValidationError(problems, what="experiment activity")
    dup = assignments[USER_ID].duplicated(keep=False).to_numpy()
    if dup.any():
        raise DataValidationError([row_problem(
            USER_ID, "one assignment per user", dup, assignments[USER_ID],
            fix="use models.experiments.validate_assignments to find the duplicates")],
            what="experiment activity")
    assigned = assignments[ASSIGNED_AT].to_numpy("datetime64[ns]").view(np.int64)
    last = events[TIMESTAMP].max()
    late = assigned + window * _NS_PER_DAY > pd.Timestamp(last).as_unit("ns").value + 1
    if late.any():
        raise DataValidationError([row_problem(
            ASSIGNED_AT, f"a {window}-day window that ends by the last event ({last})",
            late, assignments[ASSIGNED_AT].astype(str),
            fix="shorten window_days, or wait until every window has been observed")],
            what="experiment activity")
    user_pos = pd.Index(assignments[USER_ID]).get_indexer(events[USER_ID])
    keep = user_pos >= 0
    pos = user_pos[keep]
    ts = events[TIMESTAMP].to_numpy("datetime64[ns]").view(np.int64)[keep]
    day = (ts - assigned[pos]) // _NS_PER_DAY
    inside = (day >= 1) & (day < window)
    pairs = np.unique(pos[inside] * window + day[inside])
    who, active_day = pairs // window, pairs % window
    n = len(assignments)
    frequency = np.bincount(who, minlength=n).astype(np.int64)
    recency = np.zeros(n, dtype=np.int64)
    np.maximum.at(recency, who, active_day)
    return pd.DataFrame(
        {"frequency": frequency, "recency": recency,
         "T": np.full(n, window - 1, dtype=np.int64),
         VARIANT: assignments[VARIANT].to_numpy()},
        index=pd.Index(assignments[USER_ID].to_numpy(), name=USER_ID))


@dataclass(frozen=True)
class LongTermProjection:
    """Each arm's projected long-term activity and the differences between arms.

    Attributes
    ----------
    arms : pandas.DataFrame
        Index ``(quantity, variant)`` with quantity ``"active_days"`` (expected active
        days in days ``window_days`` to ``window_days + horizon - 1`` after
        assignment) and ``"share_active"`` (share of users still active at the end
        of that span); columns ``mean``, ``sd``, ``ci_lower``, ``ci_upper``.
    effects : pandas.DataFrame
        Index ``(quantity, variant)`` for every variant but the control; columns
        ``mean_control``, ``mean_treatment``, ``effect``, ``effect_sd``,
        ``effect_ci_lower``, ``effect_ci_upper``, ``lift``, ``lift_sd``,
        ``lift_ci_lower``, ``lift_ci_upper``, ``prob_better``.
    draws : xarray.Dataset
        Posterior draws of both quantities, dims ``(draw, variant)``.
    window_days, horizon : int
        The experiment window and the projection horizon, in days.
    control : str
        The control variant.
    ci_prob : float
        Probability mass of the intervals (equal-tailed).
    """

    arms: pd.DataFrame
    effects: pd.DataFrame
    draws: xr.Dataset
    window_days: int
    horizon: int
    control: str
    ci_prob: float


def project_arms(
    model: BetaGeoModel, *, window_days: int = 14, horizon: int = 180,
    control: str = "control", ci_prob: float = 0.95, max_draws: int | None = None,
    random_seed: int | np.random.Generator | None = None,
) -> LongTermProjection:
    r"""Project each arm of an experiment over a long horizon with a fitted BG/NBD model.

    Parameters
    ----------
    model : models.churn.BetaGeoModel
        Fitted on :func:`exposure_activity` with ``segment="variant"`` (best unpooled,
        ``hierarchical=False``: two or three arms say nothing about a spread between
        them).
    window_days : int, default 14
        The experiment window the model was fitted on, in days.
    horizon : int, default 180
        Days after the window to project over.
    control : str, default "control"
        The control variant.
    ci_prob : float, default 0.95
        Probability mass of the equal-tailed intervals.
    max_draws : int, optional
        Use a random subset of this many posterior draws.
    random_seed : int, numpy.random.Generator or None
        Seed of that subset.

    Returns
    -------
    LongTermProjection
        Arm projections and differences with intervals, and the draws.

    Raises
    ------
    models.exceptions.NotFittedError
        If ``model`` is not fitted.
    ValueError
        If the model has no variant segment, ``control`` is not one of its variants,
        or an option is invalid.

    Notes
    -----
    For an arm with population parameters :math:`(r, \alpha, a, b)` the projection is
    that of a user of the arm born at assignment (time 0), observed over the
    window :math:`[0, W - 1]`, as the BG/NBD model sees it:

    .. math::

        \text{active days} = E[X(W - 1 + h)] - E[X(W - 1)], \qquad
        \text{share active} = {}_2F_1\Big(r, a; a+b; -\frac{W - 1 + h}{\alpha}\Big),

    with :math:`E[X(t)]` the expected repeat activity of a new user
    (:meth:`~models.churn.BetaGeoModel.expected_activity_new_user`) and the share
    the probability of no dropout by :math:`W - 1 + h`
    (:meth:`~models.churn.BetaGeoModel.probability_alive_new_user`). Each
    posterior draw gives one value per arm, so the intervals carry the posterior
    uncertainty of every arm's parameters, which is what the experiment's finite
    arms leave uncertain; the difference and the lift are computed draw by draw.
    """
    owner = "project_arms"
    _check_model(model, owner)
    check_positive_int(owner, "window_days", window_days)
    check_positive_int(owner, "horizon", horizon)
    window, h = int(window_days), int(horizon)
    ci = check_probability(owner, "ci_prob", ci_prob)
    variants, values = _arm_draws(model, window, np.array([h]), control, max_draws,
                                  random_seed, owner)
    active_days, share = values[0][..., 0], values[1][..., 0]
    draws = xr.Dataset(
        {"active_days": (("draw", VARIANT), active_days),
         "share_active": (("draw", VARIANT), share)},
        coords={"draw": np.arange(share.shape[0]), VARIANT: variants})
    arms, effects = [], []
    c = variants.index(control)
    for quantity in QUANTITIES:
        values = draws[quantity].values
        arms.append(summarize_draws(values, ci_prob=ci, index=pd.MultiIndex.from_product(
            [[quantity], variants], names=["quantity", VARIANT])))
        for k, variant in enumerate(variants):
            if k == c:
                continue
            effects.append(_effect_row(quantity, variant, values[:, c], values[:, k], ci))
    arms_frame = pd.concat(arms)
    effects_frame = pd.DataFrame(effects).set_index(["quantity", VARIANT])
    for frame in (arms_frame, effects_frame):
        frame.attrs["ci_prob"] = ci
    return LongTermProjection(arms_frame, effects_frame, draws, window, h, control, ci)


def _arm_draws(model: BetaGeoModel, window: int, horizons: np.ndarray, control: str,
               max_draws: int | None, random_seed: Any, owner: str):
    """Draws of both quantities, each ``(draw, variant, horizon)``, and the variant labels."""
    ages = window - 1.0 + np.concatenate(([0.0], horizons))
    # one integer seed: both quantities use the same subset of draws
    kw = {"max_draws": max_draws, "random_seed": resolve_seed(random_seed), "return_draws": True}
    # (chain, draw, segment, horizon) DataArrays, the rows of a segment together
    expected = model.expected_activity_new_user(horizon=np.maximum(ages, 1e-9), **kw).values
    alive = model.probability_alive_new_user(horizon=ages[1:], **kw).values
    variants = [str(v) for v in model.idata_["posterior"]["segment"].values]
    if control not in variants:
        raise ValueError(f"The 'control' parameter of {owner} must be one of the model's "
                         f"variants {variants}. Got {control!r} instead.")
    # rows are (variant, age) with the ages of one variant together
    expected = expected.reshape(-1, len(variants), ages.size)
    active_days = expected[..., 1:] - expected[..., :1]
    share = alive.reshape(-1, len(variants), horizons.size)
    return variants, (active_days, share)


def projection_curve(
    model: BetaGeoModel, *, window_days: int = 14, horizons: Any = None,
    control: str = "control", ci_prob: float = 0.95, max_draws: int | None = None,
    random_seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Projected effects of every arm against the control over a range of horizons.

    Parameters
    ----------
    model : models.churn.BetaGeoModel
        As in :func:`project_arms`.
    window_days : int, default 14
        The experiment window the model was fitted on, in days.
    horizons : sequence of int, optional
        Days after the window; by default every 7th day up to 182.
    control, ci_prob, max_draws, random_seed
        As in :func:`project_arms`.

    Returns
    -------
    pandas.DataFrame
        Index ``(quantity, variant, horizon)``; the columns of
        ``LongTermProjection.effects``. For ``active_days`` the effect is the
        difference in cumulative active days from the end of the window to the
        horizon; for ``share_active`` the difference in the share still active
        at the horizon.

    Raises
    ------
    ValueError, models.exceptions.NotFittedError
        As :func:`project_arms`.
    """
    owner = "projection_curve"
    _check_model(model, owner)
    check_positive_int(owner, "window_days", window_days)
    window = int(window_days)
    ci = check_probability(owner, "ci_prob", ci_prob)
    values = np.arange(7, 183, 7) if horizons is None else np.asarray(horizons)
    if not (values.ndim == 1 and values.size and np.issubdtype(values.dtype, np.integer)
            and np.all(values > 0)):
        raise ValueError(f"The 'horizons' parameter of {owner} must be a non-empty sequence of "
                         f"positive integers (days). Got {horizons!r} instead.")
    variants, draws = _arm_draws(model, window, values.astype(float), control, max_draws,
                                 random_seed, owner)
    c = variants.index(control)
    rows = []
    for quantity, arr in zip(QUANTITIES, draws, strict=True):
        for k, variant in enumerate(variants):
            if k == c:
                continue
            for j, h in enumerate(values):
                row = _effect_row(quantity, variant, arr[:, c, j], arr[:, k, j], ci)
                rows.append({**row, "horizon": int(h)})
    frame = pd.DataFrame(rows).set_index(["quantity", VARIANT, "horizon"])
    frame.attrs["ci_prob"] = ci
    return frame


def _check_model(model: Any, owner: str) -> None:
    if not isinstance(model, BetaGeoModel):
        raise TypeError(f"The 'model' parameter of {owner} must be a BetaGeoModel. "
                        f"Got {type(model).__name__} instead.")
    if not model.is_fitted:
        raise NotFittedError(f"{owner} needs a fitted BetaGeoModel; call fit first.")
    if model.segment is None:
        raise ValueError(f"The BetaGeoModel passed to {owner} must be fitted with "
                         "segment='variant' (one set of parameters per arm).")


def _effect_row(quantity: str, variant: str, base: np.ndarray, treated: np.ndarray,
                ci_prob: float) -> dict[str, Any]:
    diff = treated - base
    lift = treated / base - 1.0
    d_lo, d_hi = eti_bounds(diff, ci_prob)
    l_lo, l_hi = eti_bounds(lift, ci_prob)
    return {"quantity": quantity, VARIANT: variant, "mean_control": float(base.mean()),
            "mean_treatment": float(treated.mean()), "effect": float(diff.mean()),
            "effect_sd": float(diff.std(ddof=1)), "effect_ci_lower": float(d_lo),
            "effect_ci_upper": float(d_hi), "lift": float(lift.mean()),
            "lift_sd": float(lift.std(ddof=1)), "lift_ci_lower": float(l_lo),
            "lift_ci_upper": float(l_hi), "prob_better": float(np.mean(diff > 0))}


def compare_with_observed(
    predicted: Mapping[str, float] | pd.Series, observed: Mapping[str, float] | pd.Series,
    *, ci_prob: float = 0.95,
) -> pd.Series:
    r"""Check a projected effect against the effect observed so far on the same outcome.

    As an experiment keeps running, part of the long-term outcome is observed (active
    days in weeks 3 to 8, say). If the projection's assumptions hold, its prediction
    for that part and the observed effect differ only by their uncertainties; a
    delayed effect (a change in dropout after the first weeks) shows up as a gap.

    Parameters
    ----------
    predicted, observed : mapping or pandas.Series
        Each with ``effect`` and ``effect_sd`` (e.g. a row of
        ``LongTermProjection.effects``, of a surrogate-index estimate, or of
        :func:`models.experiments.analyze`).
    ci_prob : float, default 0.95
        Probability mass of the interval of the gap.

    Returns
    -------
    pandas.Series
        ``gap`` (observed minus predicted), ``gap_sd``, ``gap_ci_lower``,
        ``gap_ci_upper``, ``z`` and ``p_value`` (two-sided, normal), and
        ``consistent`` (the interval of the gap contains 0).

    Notes
    -----
    The two estimates are treated as independent and normal:
    :math:`\text{gap} \sim N(\hat\Delta_{obs} - \hat\Delta_{pred},
    s_{obs}^2 + s_{pred}^2)`. When both come from the same users the gap's
    uncertainty is somewhat overstated, which makes the check conservative.

    Examples
    --------
    >>> compare_with_observed({"effect": 0.5, "effect_sd": 0.1},
    ...                       {"effect": -0.2, "effect_sd": 0.15})["consistent"]
    np.False_
    """
    ci = check_probability("compare_with_observed", "ci_prob", ci_prob)
    values = {}
    for name, source in (("predicted", predicted), ("observed", observed)):
        try:
            effect, sd = float(source["effect"]), float(source["effect_sd"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"The '{name}' parameter of compare_with_observed must hold "
                             f"numbers 'effect' and 'effect_sd'. Got {source!r} instead.") from err
        if not (np.isfinite(effect) and np.isfinite(sd) and sd >= 0):
            raise ValueError(f"The '{name}' parameter of compare_with_observed must hold a "
                             f"finite effect and a non-negative finite effect_sd. Got "
                             f"{effect!r} and {sd!r} instead.")
        values[name] = (effect, sd)
    gap = values["observed"][0] - values["predicted"][0]
    sd = float(np.hypot(values["observed"][1], values["predicted"][1]))
    z_crit = stats.norm.ppf(0.5 + ci / 2.0)
    z = gap / sd if sd > 0 else (0.0 if gap == 0 else np.copysign(np.inf, gap))
    lo, hi = gap - z_crit * sd, gap + z_crit * sd
    return pd.Series({"gap": gap, "gap_sd": sd, "gap_ci_lower": lo, "gap_ci_upper": hi,
                      "z": z, "p_value": float(2 * stats.norm.sf(abs(z))),
                      "consistent": np.bool_(lo <= 0 <= hi)})
