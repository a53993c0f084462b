r"""The common-random-numbers engine of :func:`~models.experiments.simulate_experiment`.

:func:`simulate_arms` draws the users, sessions and plays of the service once
and maps the same random numbers through every arm of the experiment, so that
each arm's log is the whole service as if every assigned user had been given
that arm (see the Notes of :func:`~models.experiments.simulate_experiment` for
the construction). :class:`Service` holds the checked settings of the service,
:class:`Design` those of the experiment (each arm's :class:`Effect` per
segment and the allocation, checked by :func:`check_design`), and
:class:`Arms` the result: the observed log, the potential logs and the
per-user truth.

Everything is vectorised numpy; the only Python loops run over arms,
communities and positions within a session, never over users or sessions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import special

from models.data._generators import (
    NS_PER_DAY,
    PLANS,
    bgnbd_draw,
    check,
    draw_catalogue,
    grouped_choice,
    play_sequence,
)
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
from models.experiments._checks import is_real
from models.experiments.schema import ASSIGNED_AT, EXPERIMENT_ID, VARIANT

__all__ = ["EFFECT_FIELDS", "Arms", "Design", "Effect", "Service", "check_design", "simulate_arms"]

#: The fields of an Effect that act on the user (the multipliers and the shift).
EFFECT_FIELDS = ("session_rate", "plays", "skip_logodds", "dropout", "delayed_dropout")


@dataclass(frozen=True)
class Effect:
    r"""The known effect of a variant on a user, from the user's assignment time on.

    Parameters
    ----------
    session_rate : float, default 1.0
        Multiplier of the user's Poisson session rate :math:`\lambda_u`.
    plays : float, default 1.0
        Multiplier of the mean number of *extra* plays per session (the plays
        after the first one), so the mean plays per session go from
        :math:`1 + \mu` to :math:`1 + \text{plays}\,\mu`.
    skip_logodds : float, default 0.0
        Added to the log-odds of a skip.
    dropout : float, default 1.0
        Odds multiplier of the dropout probability after each repeat session.
    delayed_dropout : float, default 1.0
        A further odds multiplier of the dropout probability from
        ``delay_days`` after the assignment on (on top of ``dropout``).
    delay_days : float or None, default None
        Days after the assignment at which ``delayed_dropout`` starts to act;
        ``None`` when there is no delayed effect.

    Raises
    ------
    ValueError
        If a multiplier is not a positive finite number, ``skip_logodds`` is
        not finite, ``delay_days`` is negative or infinite, or
        ``delayed_dropout`` differs from 1 without a ``delay_days``.

    Examples
    --------
    >>> from models.experiments.simulate import Effect
    >>> Effect().is_identity, Effect(dropout=0.9).is_identity
    (True, False)
    """

    session_rate: float = 1.0
    plays: float = 1.0
    skip_logodds: float = 0.0
    dropout: float = 1.0
    delayed_dropout: float = 1.0
    delay_days: float | None = None

    def __post_init__(self) -> None:
        for name in EFFECT_FIELDS:
            value = getattr(self, name)
            if name == "skip_logodds":
                check(is_real(value, finite=True), name, "Effect", "a finite number", value)
            else:
                ok = is_real(value, finite=True) and value > 0
                check(ok, name, "Effect", "a positive finite number", value)
            object.__setattr__(self, name, float(value))
        delay = self.delay_days
        if delay is not None:
            ok = is_real(delay, finite=True) and delay >= 0
            check(ok, "delay_days", "Effect", "None or a finite number >= 0", delay)
            object.__setattr__(self, "delay_days", float(delay))
        elif self.delayed_dropout != 1.0:
            check(False, "delay_days", "Effect", "set when delayed_dropout is not 1", delay)

    @property
    def is_identity(self) -> bool:
        """Whether the effect changes nothing (every multiplier 1, no shift)."""
        return all(getattr(self, f) == getattr(Effect, f) for f in EFFECT_FIELDS)


class Service(NamedTuple):
    """Checked settings of the simulated service (see ``simulate_service``)."""

    n_users: int
    days: int
    start_ns: int
    end_ns: int
    countries: list[str]
    country_share: np.ndarray
    premium_share: np.ndarray
    initial_share: float
    population: pd.DataFrame  # BG/NBD r, alpha, a, b per plan
    plays_mean: float
    plays_dispersion: float
    play_propensity_shape: float
    n_artists: int
    n_communities: int
    skip_intercept: float
    skip_sigma_user: float
    skip_sigma_track: float
    skip_beta_position: float
    day_of_week_multipliers: np.ndarray
    skip_hour_effects: np.ndarray
    defaults: Mapping[str, Any]  # the other settings of simulate_service, at their defaults


class Design(NamedTuple):
    """Checked settings of the experiment."""

    names: list[str]  # the arms, the control first
    allocation: Mapping[str, float]
    effects: Mapping[str, Sequence[Any]]  # arm -> one Effect per segment value
    effect_by: str | None  # "country", "plan" or None (one segment)
    enroll_ns: tuple[int, int]  # the enrollment window [start, end), ns since the epoch
    experiment_id: str | None


class Arms(NamedTuple):
    """The simulated experiment: observed log, potential logs and the truth per user."""

    events: pd.DataFrame
    potential_events: dict[str, pd.DataFrame]
    users: pd.DataFrame
    assignments: pd.DataFrame
    truth_users: pd.DataFrame
    artists: pd.DataFrame
    tracks: pd.DataFrame


def _check_variants(variants, effect_by, segments, owner):
    rule = "a mapping of at least two variant names to Effect objects" + (
        f" or to mappings {{segment: Effect}} over every {effect_by} {list(segments)}"
        if effect_by
        else ""
    )
    ok = isinstance(variants, Mapping) and len(variants) >= 2
    ok = ok and all(isinstance(k, str) and k for k in variants)
    for eff in variants.values() if ok else ():
        if isinstance(eff, Mapping) and effect_by is not None:
            ok = ok and set(eff) == set(segments)
            ok = ok and all(isinstance(e, Effect) for e in eff.values())
        else:
            ok = ok and isinstance(eff, Effect)
    check(ok, "variants", owner, rule, variants)
    table = {}
    for name, eff in variants.items():
        row = [eff[s] for s in segments] if isinstance(eff, Mapping) else [eff] * len(segments)
        table[name] = row
    control = next(iter(variants))
    check(all(e.is_identity for e in table[control]), "variants", owner,
          f"a mapping whose first variant (the control, {control!r}) is the identity Effect()",
          variants)  # fmt: skip
    return table


def _check_allocation(allocation, names, owner):
    if allocation is None:
        return {v: 1.0 / len(names) for v in names}
    ok = isinstance(allocation, Mapping) and set(allocation) == set(names)
    ok = ok and all(is_real(allocation[v], finite=True) and allocation[v] > 0 for v in names)
    ok = ok and abs(sum(float(allocation[v]) for v in names) - 1.0) < 1e-9
    check(ok, "allocation", owner,
          f"a mapping of the variants {names} to positive probabilities summing to 1",
          allocation)  # fmt: skip
    return {v: float(allocation[v]) for v in names}


def check_design(owner: str, variants: Any, allocation: Any, effect_by: str | None,
                 segments: Sequence[Any], enroll_ns: tuple[int, int],
                 experiment_id: str | None) -> Design:
    """Check the arms and their allocation (the parameter errors name ``owner``)."""
    table = _check_variants(variants, effect_by, segments, owner)
    names = list(table)
    return Design(names=names, allocation=_check_allocation(allocation, names, owner),
                  effects=table, effect_by=effect_by, enroll_ns=enroll_ns,
                  experiment_id=experiment_id)


def _drop_prob(logit_p: np.ndarray, p: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Dropout probability with its log-odds shifted (exactly ``p`` where the shift is 0)."""
    return np.where(shift != 0, special.expit(logit_p + shift), p)


def nbinom_quantile(v: np.ndarray, phi: float, mu: np.ndarray) -> np.ndarray:
    """Smallest k with ``NegBin(mean mu, size phi)`` CDF at k >= v (the inverse CDF).

    Walks the pmf recursion ``f(k) = f(k - 1) (k - 1 + phi) / k * mu / (phi + mu)``
    over k, keeping only the draws still below their uniform: a loop over counts,
    never over draws.
    """
    q = mu / (phi + mu)
    pmf = np.exp(phi * np.log1p(-q))
    out = np.zeros(v.size, dtype=np.int64)
    act = np.flatnonzero(pmf < v)
    pmf, cdf, q, v = pmf[act], pmf[act], q[act], v[act]
    k = 0
    while act.size:
        k += 1
        pmf = pmf * ((k - 1 + phi) / k) * q
        cdf = cdf + pmf
        out[act] = k
        more = (cdf < v) & (pmf > 0)
        act, pmf, cdf, q, v = act[more], pmf[more], cdf[more], q[more], v[more]
    return out


def _flat_index(offset: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Flat positions ``offset[s] + j`` for ``j < size[s]``, session after session."""
    return np.repeat(offset - (np.cumsum(size) - size), size) + np.arange(size.sum())


def _within_user(flag: np.ndarray, first: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Count of True flags strictly before each slot within its user (slots user-major)."""
    csum = np.cumsum(flag)
    before = np.concatenate(([0], csum))[first]
    return csum - flag - np.repeat(before, sizes)


def simulate_arms(rng: np.random.Generator, service: Service, design: Design) -> Arms:
    """Simulate the service once and every arm of the experiment from the same draws.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random number.
    service : Service
        The service's settings.
    design : Design
        The experiment's settings.

    Returns
    -------
    Arms
        The frames of :class:`~models.experiments.SimulatedExperiment` and of its truth.
    """
    n, days, d = service.n_users, service.days, service.defaults
    start_ns, end_ns = service.start_ns, service.end_ns
    e0_ns, e1_ns = design.enroll_ns
    c_share, c_prem = service.country_share, service.premium_share
    initial_share, pop = service.initial_share, service.population
    plays_mean, plays_dispersion = service.plays_mean, service.plays_dispersion
    play_propensity_shape = service.play_propensity_shape
    n_artists, n_communities = service.n_artists, service.n_communities
    skip_intercept, skip_beta_position = service.skip_intercept, service.skip_beta_position
    skip_sigma_user, skip_sigma_track = service.skip_sigma_user, service.skip_sigma_track
    dow_mult, hour_eff = service.day_of_week_multipliers, service.skip_hour_effects
    names, alloc, table = design.names, design.allocation, design.effects

    # Users: the draws of simulate_service.
    country = np.minimum(
        np.searchsorted(np.cumsum(c_share), rng.random(n), side="right"), len(c_share) - 1
    )
    plan = (rng.random(n) < c_prem[country]).astype(np.int64)
    signup = np.where(rng.random(n) < initial_share, rng.random(n), rng.random(n) * days)
    lam = rng.gamma(pop["r"].to_numpy()[plan], 1.0 / pop["alpha"].to_numpy()[plan])
    p = rng.beta(pop["a"].to_numpy()[plan], pop["b"].to_numpy()[plan])
    rho = rng.gamma(play_propensity_shape, 1.0 / play_propensity_shape, n)
    user_eff = skip_sigma_user * rng.standard_normal(n)
    dominant = rng.integers(0, n_communities, n)
    conc = np.full((n, n_communities), d["preference_concentration"])
    conc[np.arange(n), dominant] += d["preference_dominance"]
    pref = rng.standard_gamma(conc)
    cum_pref = np.cumsum(pref / pref.sum(axis=1, keepdims=True), axis=1)
    artists, tracks = draw_catalogue(
        rng, n_artists, n_communities, d["zipf_exponent"], d["tracks_per_artist"],
        d["track_zipf_exponent"], d["track_length_median_s"], d["track_length_sigma"],
        skip_sigma_track,
    )  # fmt: skip

    # Effects per arm and user, shape (arm, user).
    seg = {None: np.zeros(n, dtype=np.int64), COUNTRY: country, PLAN: plan}[design.effect_by]
    eff = {
        f: np.array([[getattr(e, f) for e in table[v]] for v in names])[:, seg]
        for f in EFFECT_FIELDS
    }
    delay = np.array(
        [[np.inf if e.delay_days is None else e.delay_days for e in table[v]] for v in names]
    )[:, seg]
    ld, ldd = np.log(eff["dropout"]), np.log(eff["delayed_dropout"])
    logit_p = special.logit(p)
    p_min = np.minimum(p, np.min([_drop_prob(logit_p, p, s) for s in (*ld, *(ld + ldd))], 0))

    # Unit-rate arrivals up to the largest cumulative intensity, cut at the first
    # U_i < p_min (a geometric index); the U_i are drawn given that index.
    T = days - signup
    x, arrivals, star = bgnbd_draw(rng, np.ones(n), p_min, lam * eff["session_rate"].max(0) * T)
    n_slot = x + 1  # slot 0 is the first session, at signup
    first = np.cumsum(n_slot) - n_slot
    s_user = np.repeat(np.arange(n), n_slot)
    s_idx = np.arange(s_user.size) - np.repeat(first, n_slot)
    unit = np.zeros(s_user.size)
    unit[s_idx > 0] = arrivals
    pm = p_min[s_user]
    uni = rng.random(s_user.size)
    u_drop = pm + uni * (1.0 - pm)
    last = (first + x)[star]
    u_drop[last] = uni[last] * pm[last]
    u_drop[first] = np.inf  # no dropout right after the first session
    with np.errstate(divide="ignore", invalid="ignore"):
        t_common = signup[s_user] + np.where(s_idx > 0, unit / lam[s_user], 0.0)

    def to_ns(t):
        ok = t < days
        ns = start_ns + np.round(np.where(ok, t, 0.0) * NS_PER_DAY).astype(np.int64)
        return np.where(ok, np.minimum(ns, end_ns - 1), end_ns), ok

    # Triggered assignment at the first living session in the window.
    ns_common, _ = to_ns(t_common)
    alive0 = _within_user(u_drop < p[s_user], first, n_slot) == 0
    cand = np.flatnonzero(alive0 & (ns_common >= e0_ns) & (ns_common < e1_ns))
    a_slot = cand[np.unique(s_user[cand], return_index=True)[1]]
    assigned = np.zeros(n, dtype=bool)
    assigned[s_user[a_slot]] = True
    a_idx = np.full(n, np.iinfo(np.int64).max)
    a_idx[s_user[a_slot]] = s_idx[a_slot]
    a_time = np.full(n, np.nan)
    a_time[s_user[a_slot]] = t_common[a_slot]
    a_unit = np.zeros(n)
    a_unit[s_user[a_slot]] = unit[a_slot]
    cum_alloc = np.cumsum([alloc[v] for v in names])
    code = np.minimum(np.searchsorted(cum_alloc, rng.random(n), side="right"), len(names) - 1)
    code = np.where(assigned, code, -1)

    # Each arm's session times and dropouts on the shared slots.
    post = s_idx >= a_idx[s_user]
    arm = []
    for k in range(len(names)):
        rate = lam * eff["session_rate"][k]
        with np.errstate(divide="ignore", invalid="ignore"):
            t_post = a_time[s_user] + (unit - a_unit[s_user]) / rate[s_user]
        t_k = np.where(post, t_post, t_common)
        late = post & (t_k >= (a_time + delay[k])[s_user])
        shift = np.where(post, ld[k][s_user], 0.0) + np.where(late, ldd[k][s_user], 0.0)
        drop = u_drop < _drop_prob(logit_p[s_user], p[s_user], shift)
        ns_k, in_window = to_ns(t_k)
        exists = in_window & (_within_user(drop, first, n_slot) == 0)
        arm.append({"t": t_k, "ns": ns_k, "exists": exists, "drop": drop & exists})
    union = np.any([a["exists"] for a in arm], axis=0)
    u_user, u_post = s_user[union], post[union]

    # Plays per session: one shared uniform through each arm's NegBin quantile.  The
    # sessions before the assignment (and all of the unassigned) are alike in every arm.
    common = ~u_post
    ex_arm = [a["exists"][union] for a in arm]
    ns_arm = [a["ns"][union] for a in arm]
    v_play = np.maximum(rng.random(u_user.size), 2.0**-54)
    n_plays = np.zeros((len(names), u_user.size), dtype=np.int64)
    for k in range(len(names)):
        todo = ex_arm[k] & u_post if k else ex_arm[k]
        dow = (ns_arm[k][todo] // NS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday
        mult = np.where(u_post[todo], eff["plays"][k][u_user[todo]], 1.0)
        mu = (plays_mean - 1.0) * rho[u_user[todo]] * dow_mult[dow] * mult
        n_plays[k, todo] = 1 + nbinom_quantile(v_play[todo], plays_dispersion, mu)
        n_plays[k, common] = n_plays[0, common]
    m = n_plays.max(axis=0)
    off = np.cumsum(m) - m
    p_user = np.repeat(u_user, m)
    pos = np.arange(p_user.size) - np.repeat(off, m) + 1

    # Community, artist, track and skip draws for every (session, position).
    u_comm = rng.random(p_user.size)
    comm = np.zeros(p_user.size, dtype=np.int64)
    for c in range(n_communities - 1):
        comm += u_comm >= np.repeat(cum_pref[u_user, c], m)
    artist = grouped_choice(
        rng, comm, artists["community"].to_numpy(), artists["prob_in_community"].to_numpy()
    )
    track = grouped_choice(
        rng, artist, tracks[ARTIST_ID].to_numpy(), tracks["prob_in_artist"].to_numpy()
    )
    length = tracks["length_ms"].to_numpy()[track]
    base = (
        skip_intercept
        + user_eff[p_user]
        + tracks["skip_effect"].to_numpy()[track]
        + skip_beta_position * np.log(pos)
    )
    u_skip = rng.random(p_user.size)
    short = np.maximum(1, np.round(rng.uniform(*d["skip_fraction"], p_user.size) * length))
    shared = play_sequence(
        ns_arm[0][common], n_plays[0, common], off[common], base, hour_eff, u_skip, length, short
    )

    potential, outcome, observed = {}, {}, []
    for k, (v, a) in enumerate(zip(names, arm, strict=True)):
        ex = ex_arm[k]
        ns, nk, su = ns_arm[k][ex], n_plays[k, ex], u_user[ex]
        idx = _flat_index(off[ex], nk)
        ts, skipped, ms = (col[idx] for col in shared)
        # The plays of the sessions after the assignment, laid out compactly.
        after = u_post[ex]
        n_after = nk[after]
        at = _flat_index(off[ex][after], n_after)
        rows = _flat_index((np.cumsum(nk) - nk)[after], n_after)
        logit = base[at] + np.repeat(eff["skip_logodds"][k][su[after]], n_after)
        ts[rows], skipped[rows], ms[rows] = play_sequence(
            ns[after], n_after, np.cumsum(n_after) - n_after, logit, hour_eff, u_skip[at],
            length[at], short[at],
        )  # fmt: skip
        # A session ends where the arm's next session of the user starts.
        limit = np.where(np.append(su[1:] == su[:-1], False), np.append(ns[1:], 0), end_ns)
        keep = ts < np.repeat(limit, nk)
        keep[np.cumsum(nk) - nk] = True
        idx = idx[keep]
        cols = {
            USER_ID: p_user[idx],
            TIMESTAMP: ts[keep].view("datetime64[ns]"),
            SESSION_ID: np.repeat(np.flatnonzero(ex), nk)[keep],
            TRACK_ID: track[idx],
            ARTIST_ID: artist[idx],
            MS_PLAYED: ms[keep],
            SKIPPED: skipped[keep],
        }
        potential[v] = pd.DataFrame(cols, copy=False)
        mine = (code == k) | ((code < 0) & (k == 0))  # the unassigned are in the control's log
        observed.append({c: col[mine[cols[USER_ID]]] for c, col in cols.items()})
        dropped_at = np.full(n, np.inf)
        dropped_at[s_user[a["drop"]]] = a["t"][a["drop"]]
        outcome[v] = (np.bincount(s_user[a["exists"]], minlength=n), dropped_at)

    # The observed log: each user under their own variant.
    merged = {c: np.concatenate([o[c] for o in observed]) for c in observed[0]}
    order = np.argsort(merged[USER_ID], kind="stable")
    events = pd.DataFrame({c: col[order] for c, col in merged.items()}, copy=False)

    user_ids = np.arange(n, dtype=np.int64)
    country_names = np.asarray(service.countries, dtype=object)[country]
    plan_names = np.asarray(PLANS, dtype=object)[plan]
    a_ns = np.where(assigned, 0, np.iinfo(np.int64).min)
    a_ns[s_user[a_slot]] = ns_common[a_slot]
    a_dt = a_ns.view("datetime64[ns]")
    variant_names = np.asarray(names + [None], dtype=object)[code]
    users = pd.DataFrame(
        {
            USER_ID: user_ids,
            COUNTRY: country_names,
            PLAN: plan_names,
            SIGNUP_DATE: (ns_common[first] // NS_PER_DAY * NS_PER_DAY).view("datetime64[ns]"),
        }
    )
    assignments = pd.DataFrame(
        {
            USER_ID: user_ids[assigned],
            VARIANT: variant_names[assigned].astype(str),
            ASSIGNED_AT: a_dt[assigned],
            **({EXPERIMENT_ID: design.experiment_id} if design.experiment_id is not None
               else {}),
            COUNTRY: country_names[assigned],
            PLAN: plan_names[assigned],
        }
    )
    truth_users = pd.DataFrame(
        {
            USER_ID: user_ids,
            COUNTRY: country_names,
            PLAN: plan_names,
            "signup_time": signup,
            "lam": lam,
            "p": p,
            "play_propensity": rho,
            "skip_effect": user_eff,
            "dominant_community": dominant,
            "assigned": assigned,
            VARIANT: variant_names,
            ASSIGNED_AT: a_dt,
            "assigned_time": a_time,
        }
    )
    for v, (n_sess, dropped_at) in outcome.items():
        truth_users[f"n_sessions_{v}"] = n_sess
        truth_users[f"alive_{v}"] = np.isinf(dropped_at)
        truth_users[f"dropout_time_{v}"] = dropped_at
    return Arms(events=events, potential_events=potential, users=users, assignments=assignments,
                truth_users=truth_users, artists=artists, tracks=tracks)
