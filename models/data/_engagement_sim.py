r"""Simulated engagement states: activity that pauses and returns, with the true states."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models._validation import check_int
from models.data._generators import make_rng

__all__ = ["SimulatedEngagement", "simulate_engagement"]

#: Default truth of :func:`simulate_engagement`: dormant, light, engaged.
DEFAULT_INITIAL = (0.1, 0.4, 0.5)
DEFAULT_TRANSITION = ((0.80, 0.15, 0.05), (0.15, 0.70, 0.15), (0.05, 0.10, 0.85))
DEFAULT_EMISSION = (0.02, 0.25, 0.65)


@dataclass(frozen=True)
class SimulatedEngagement:
    """What :func:`simulate_engagement` returns.

    Attributes
    ----------
    activity : pandas.DataFrame
        Active days per user (index ``user_id``) and period (columns ``"p000"``,
        ...), NaN before the user's first period: the input of
        :class:`~models.churn.EngagementStateModel`.
    states : pandas.DataFrame
        The true state of each user and period (integer codes, lowest mean
        activity first; -1 before the first period; the churned state last).
    events : pandas.DataFrame or None
        One event per active day (``user_id``, ``timestamp``) from
        ``start``, or None when ``with_events=False``.
    parameters : dict
        The truth: ``initial``, ``transition``, ``emission_probability``,
        ``emission_concentration`` (None for binomial days), ``period_length``,
        ``sigma_user``, ``user_effect`` (each user's effect, zeros when
        ``sigma_user`` is 0), ``transition_tilt`` and ``transition_coef`` (an
        array ``(covariates, C, C)``, in the order of ``covariates``).
    """

    activity: pd.DataFrame
    states: pd.DataFrame
    events: pd.DataFrame | None
    parameters: dict = field(default_factory=dict)


def _probabilities(value: Sequence, name: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    ok = arr.shape == shape and np.all(np.isfinite(arr)) and np.all(arr >= 0)
    ok = ok and np.allclose(arr.sum(axis=-1), 1.0) if arr.ndim and ok else ok
    if not ok:
        raise ValueError(f"The '{name}' parameter of simulate_engagement must be an array of "
                         f"probabilities of shape {shape} whose rows sum to 1. Got {value!r} "
                         "instead.")
    return arr


def simulate_engagement(
    n_users: int,
    n_periods: int,
    *,
    initial: Sequence[float] = DEFAULT_INITIAL,
    transition: Sequence[Sequence[float]] = DEFAULT_TRANSITION,
    emission_probability: Sequence[float] = DEFAULT_EMISSION,
    emission_concentration: Sequence[float] | None = None,
    sigma_user: float = 0.0,
    transition_tilt: float = 0.0,
    covariates: Mapping[str, Sequence[float]] | None = None,
    transition_coef: Mapping[str, Sequence[Sequence[float]]] | None = None,
    period_length: int = 7,
    max_join: int = 0,
    with_events: bool = True,
    start: str = "2024-01-01",
    random_seed: int | np.random.Generator | None = None,
) -> SimulatedEngagement:
    r"""Draw users who move between engagement states, pausing and coming back.

    Parameters
    ----------
    n_users, n_periods : int
        Users, and periods of the table.
    initial : sequence of float
        Probabilities of the states in a user's first period (length ``C``).
    transition : sequence of sequence of float
        ``C x C`` transition matrix; a row with 1 on its diagonal and an
        emission probability of 0 is an absorbing churned state.
    emission_probability : sequence of float
        Mean share of active days per state (length ``C``), increasing.
    emission_concentration : sequence of float, optional
        Beta-binomial concentration per state; binomial days when None.
    sigma_user : float, default 0.0
        Spread of the user effects: user :math:`i` draws
        :math:`u_i \sim N(0, \sigma_u)`, added to the logit of every emission
        probability strictly between 0 and 1 (a silent churned state stays
        silent), as with ``EngagementStateModel(user_effects=True)``.
    transition_tilt : float, default 0.0
        With ``sigma_user``: the same effect tilts the user's transitions, as
        with ``EngagementStateModel(user_transitions=True)``: each move to a
        state of higher emission probability is weighted by
        :math:`e^{\tau u_i}`, each move to a lower one by :math:`e^{-\tau u_i}`,
        and the row renormalised.
    covariates : mapping of str to sequence of float, optional
        User covariates, one value per user for each name; they are columns
        of the returned activity table, after the periods.
    transition_coef : mapping of str to array of float, optional
        Each covariate's ``C x C`` coefficients on the move logits (zero
        diagonal): user :math:`i`'s move from :math:`j` to :math:`k` is
        weighted by :math:`e^{x_i \beta_{jk}}` and the row renormalised, as
        with ``EngagementStateModel(covariates=...)``, whose
        ``transition_coef_per_unit`` estimates these coefficients. A covariate
        without coefficients has no effect.
    period_length : int, default 7
        Days per period.
    max_join : int, default 0
        Each user's first period is uniform on ``0..max_join`` (missing before it).
    with_events : bool, default True
        Also return one event per active day (a random day of its period).
    start : str, default "2024-01-01"
        Date of the first period's first day (for the events).
    random_seed : int, numpy.random.Generator or None
        Source of randomness.

    Returns
    -------
    SimulatedEngagement
        Activity table, true states, events and parameters.

    Notes
    -----
    .. math::

        s_{t_0} \sim \mathrm{Cat}(\pi), \quad s_t \mid s_{t-1} \sim \mathrm{Cat}(P_{s_{t-1}}),
        \quad y_t \mid s_t = k \sim \mathrm{BetaBinomial}(n, p_k\kappa_k, (1-p_k)\kappa_k),

    the model of :class:`~models.churn.EngagementStateModel`; with
    ``sigma_user``, :math:`p_k` becomes :math:`\operatorname{logit}^{-1}
    (\operatorname{logit} p_k + u_i)` for user :math:`i`.

    Examples
    --------
    >>> sim = simulate_engagement(100, 10, random_seed=1)
    >>> sim.activity.shape, int(sim.activity.max().max()) <= 7
    ((100, 10), True)
    """
    func = "simulate_engagement"
    n_users = check_int(func, "n_users", n_users)
    n_periods = check_int(func, "n_periods", n_periods)
    n = check_int(func, "period_length", period_length)
    max_join = check_int(func, "max_join", max_join, minimum=0)
    pi = np.asarray(initial, dtype=float)
    c = pi.size
    pi = _probabilities(initial, "initial", (c,))
    trans = _probabilities(transition, "transition", (c, c))
    p = np.asarray(emission_probability, dtype=float)
    if p.shape != (c,) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"The 'emission_probability' parameter of {func} must be {c} numbers "
                         f"in [0, 1]. Got {emission_probability!r} instead.")
    kappa = None
    if emission_concentration is not None:
        kappa = np.asarray(emission_concentration, dtype=float)
        if kappa.shape != (c,) or np.any(kappa <= 0):
            raise ValueError(f"The 'emission_concentration' parameter of {func} must be {c} "
                             f"positive numbers. Got {emission_concentration!r} instead.")
    sigma = float(sigma_user) if isinstance(sigma_user, int | float | np.integer | np.floating) \
        and not isinstance(sigma_user, bool) else np.nan
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"The 'sigma_user' parameter of {func} must be a non-negative number. "
                         f"Got {sigma_user!r} instead.")
    tilt = float(transition_tilt) if isinstance(
        transition_tilt, int | float | np.integer | np.floating) and not isinstance(
        transition_tilt, bool) else np.nan
    if not np.isfinite(tilt):
        raise ValueError(f"The 'transition_tilt' parameter of {func} must be a finite number. "
                         f"Got {transition_tilt!r} instead.")
    columns = [f"p{t:03d}" for t in range(n_periods)]
    names, x, beta = _covariate_effects(covariates, transition_coef, n_users, c, columns)
    rng, _ = make_rng(random_seed)
    join = rng.integers(0, min(max_join, n_periods - 1) + 1, n_users)
    effect = rng.normal(0.0, sigma, n_users) if sigma > 0 else np.zeros(n_users)
    p_user = np.broadcast_to(p, (n_users, c))  # (users, states)
    if sigma > 0:
        inner = (p > 0) & (p < 1)
        logit = np.log(np.where(inner, p, 0.5)) - np.log1p(-np.where(inner, p, 0.5))
        p_user = np.where(inner, 1.0 / (1.0 + np.exp(-(logit[None, :] + effect[:, None]))),
                          p[None, :])
    states = np.full((n_users, n_periods), -1, dtype=np.int64)
    activity = np.full((n_users, n_periods), np.nan)
    log_w = np.zeros((n_users, c, c))  # each user's log weights of its moves
    if tilt and sigma > 0:
        direction = np.sign(p[None, :] - p[:, None])
        log_w += tilt * effect[:, None, None] * direction[None]
    if names:
        log_w += np.einsum("uv,vjk->ujk", x, beta)
    if log_w.any():  # each user's own transitions (users, C, C)
        user_trans = trans[None] * np.exp(log_w)
        cum = np.cumsum(user_trans / user_trans.sum(axis=2, keepdims=True), axis=2)
    else:
        cum = np.broadcast_to(np.cumsum(trans, axis=1), (n_users, c, c))
    state = np.minimum((rng.random(n_users)[:, None] > np.cumsum(pi)).sum(axis=1), c - 1)
    for t in range(n_periods):
        moved = np.minimum((rng.random(n_users)[:, None] > cum[np.arange(n_users), state])
                           .sum(axis=1), c - 1)
        state = np.where(join < t, moved, state)
        on = join <= t
        mean = p_user[np.arange(n_users), state]
        share = mean if kappa is None else rng.beta(
            np.maximum(mean * kappa[state], 1e-12),
            np.maximum((1 - mean) * kappa[state], 1e-12))
        days = rng.binomial(n, np.clip(share, 0.0, 1.0))
        states[on, t] = state[on]
        activity[on, t] = days[on]
    users = pd.Index([f"u{i:05d}" for i in range(n_users)], name="user_id")
    events = None
    if with_events:
        u, t = np.nonzero(np.nan_to_num(activity) > 0)
        k = activity[u, t].astype(np.int64)
        rows, cols = np.repeat(u, k), np.repeat(t, k)
        # distinct days: a random permutation of the period's days, first k of them
        order = np.argsort(rng.random((len(u), n)), axis=1)
        pick = order[np.arange(n)[None, :] < k[:, None]]
        day = cols * n + pick
        seconds = rng.integers(0, 86_400, len(day))
        events = pd.DataFrame({
            "user_id": users.to_numpy()[rows],
            "timestamp": pd.Timestamp(start) + pd.to_timedelta(day, unit="D")
            + pd.to_timedelta(seconds, unit="s")}).sort_values("timestamp", kind="stable")
        events = events.reset_index(drop=True)
    table = pd.DataFrame(activity, index=users, columns=columns)
    for j, name in enumerate(names):
        table[name] = x[:, j]
    return SimulatedEngagement(
        activity=table,
        states=pd.DataFrame(states, index=users, columns=columns),
        events=events,
        parameters={"initial": pi, "transition": trans, "emission_probability": p,
                    "emission_concentration": kappa, "period_length": n,
                    "sigma_user": sigma, "transition_tilt": tilt, "user_effect": effect,
                    "transition_coef": beta})


def _covariate_effects(covariates: Mapping | None, coef: Mapping | None, n_users: int,
                       c: int, periods: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Check the covariates; return names, values ``(users, V)``, coefficients ``(V, C, C)``."""
    func = "simulate_engagement"
    covariates, coef = dict(covariates or {}), dict(coef or {})
    names = list(covariates)
    x = np.zeros((n_users, len(names)))
    for j, name in enumerate(names):
        try:
            values = np.asarray(covariates[name], dtype=float)
        except (TypeError, ValueError):
            values = np.full(0, np.nan)
        if not (isinstance(name, str) and name) or name in periods or values.shape != (
                n_users,) or not np.all(np.isfinite(values)):
            raise ValueError(f"The 'covariates' parameter of {func} must map column names "
                             f"(other than the periods' 'p000', ...) to {n_users} finite "
                             f"numbers each (one per user). Got {name!r} with "
                             f"{covariates[name]!r} instead.")
        x[:, j] = values
    beta = np.zeros((len(names), c, c))
    for name, value in coef.items():
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            arr = np.full(0, np.nan)
        if name not in covariates or arr.shape != (c, c) or not np.all(np.isfinite(arr)) or \
                np.any(np.diag(arr) != 0):
            raise ValueError(f"The 'transition_coef' parameter of {func} must map covariate "
                             f"names to {c} x {c} finite arrays with a zero diagonal. Got "
                             f"{name!r}: {value!r} instead.")
        beta[names.index(name)] = arr
    return names, x, beta
