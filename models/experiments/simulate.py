"""Simulated A/B experiments on the simulated service, with every potential outcome.

:func:`simulate_experiment` draws a streaming service with the generative story
of :func:`models.data.simulate.simulate_service`, assigns the users who are
active in an enrollment window to variants, and applies each variant's known
:class:`Effect` from the user's own assignment time on.  Every assigned user's
trajectory is simulated under *every* variant from the same random numbers, so
:class:`ExperimentTruth` holds the whole log as if everyone had been given each
variant: any metric computed on those logs gives the exact sample average
treatment effect, short term and long term.

Everything is vectorised numpy; the only Python loops run over variants,
communities and positions within a session, never over users or sessions.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from models.data._generators import (
    NS_PER_DAY,
    PLANS,
    bgnbd_draw,
    check,
    check_service_options,
    draw_catalogue,
    grouped_choice,
    make_rng,
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
from models.data.simulate import DEFAULT_ACTIVITY, DEFAULT_COUNTRIES, simulate_service
from models.experiments.schema import ASSIGNED_AT, EXPERIMENT_ID, VARIANT

__all__ = [
    "DEFAULT_VARIANTS",
    "Effect",
    "ExperimentTruth",
    "SimulatedExperiment",
    "simulate_experiment",
]

_FUNC = "simulate_experiment"
#: Settings of simulate_service that simulate_experiment does not expose: their defaults.
_SERVICE_DEFAULTS = {
    name: par.default
    for name, par in inspect.signature(simulate_service).parameters.items()
    if par.default is not inspect.Parameter.empty
}
_EFFECT_FIELDS = ("session_rate", "plays", "skip_logodds", "dropout", "delayed_dropout")


def _is_real(value: object) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool | np.bool_)
        and bool(np.isfinite(value))
    )


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
        for name in _EFFECT_FIELDS:
            value = getattr(self, name)
            if name == "skip_logodds":
                check(_is_real(value), name, "Effect", "a finite number", value)
            else:
                ok = _is_real(value) and value > 0
                check(ok, name, "Effect", "a positive finite number", value)
            object.__setattr__(self, name, float(value))
        delay = self.delay_days
        if delay is not None:
            ok = _is_real(delay) and delay >= 0
            check(ok, "delay_days", "Effect", "None or a finite number >= 0", delay)
            object.__setattr__(self, "delay_days", float(delay))
        elif self.delayed_dropout != 1.0:
            check(False, "delay_days", "Effect", "set when delayed_dropout is not 1", delay)

    @property
    def is_identity(self) -> bool:
        """Whether the effect changes nothing (every multiplier 1, no shift)."""
        return all(getattr(self, f) == getattr(Effect, f) for f in _EFFECT_FIELDS)


#: Default variants: a control and a treatment with small effects on every channel.
DEFAULT_VARIANTS: dict[str, Effect] = {
    "control": Effect(),
    "treatment": Effect(session_rate=1.05, plays=1.05, skip_logodds=-0.1, dropout=0.9),
}


@dataclass(frozen=True)
class ExperimentTruth:
    """Every value that generated a :class:`SimulatedExperiment`.

    Attributes
    ----------
    variants : dict
        Variant name -> :class:`Effect` (or, with ``effect_by``, segment value
        -> :class:`Effect`), control first.
    control : str
        Name of the control variant.
    allocation : dict of str to float
        Variant name -> probability of assignment.
    potential_events : dict of str to pandas.DataFrame
        Variant name -> the full event log as if every assigned user had been
        given that variant (unassigned users are the same in all).
    users : pandas.DataFrame
        One row per user, in ``user_id`` order: ``user_id``, ``country``,
        ``plan``, ``signup_time`` (days after ``start``), ``lam``, ``p``,
        ``play_propensity``, ``skip_effect``, ``dominant_community``,
        ``assigned``, ``variant`` (missing if not assigned), ``assigned_at``
        (``NaT`` if not assigned), ``assigned_time`` (days after ``start``,
        NaN if not assigned), then per variant ``v``: ``n_sessions_<v>``,
        ``alive_<v>`` (still alive at ``observation_end``) and
        ``dropout_time_<v>`` (days after ``start`` of the session after which
        the user dropped out; ``inf`` if alive).
    population : pandas.DataFrame
        BG/NBD population parameters per plan: index ``plan``, columns ``r``,
        ``alpha``, ``a``, ``b``.
    artists, tracks : pandas.DataFrame
        The catalogue, as in :class:`~models.data.simulate.ServiceTruth`
        (``tracks["skip_effect"]`` is each track's skip effect).
    start, observation_end : pandas.Timestamp
        Start and end of the simulated window; ``potential_events`` run to
        ``observation_end`` even when the observed log is cut earlier.
    enroll_start, enroll_end : pandas.Timestamp
        The enrollment window ``[enroll_start, enroll_end)``.
    effect_by : str or None
        ``"country"``, ``"plan"`` or ``None``: what the effects vary by.
    params : dict
        The service and experiment settings.
    random_seed : int or None
        Seed that reproduces the draw (``None`` when a Generator was passed).
    """

    variants: dict[str, Any]
    control: str
    allocation: dict[str, float]
    potential_events: dict[str, pd.DataFrame]
    users: pd.DataFrame
    population: pd.DataFrame
    artists: pd.DataFrame
    tracks: pd.DataFrame
    start: pd.Timestamp
    observation_end: pd.Timestamp
    enroll_start: pd.Timestamp
    enroll_end: pd.Timestamp
    effect_by: str | None
    params: dict
    random_seed: int | None


@dataclass(frozen=True)
class SimulatedExperiment:
    """A simulated experiment: the observed log, the assignments and the truth.

    Attributes
    ----------
    events : pandas.DataFrame
        The observed log (each assigned user under their own variant), with
        the columns, dtypes and order of ``simulate_service(...).events``.
        ``session_id`` is shared with ``truth.potential_events``: the same
        session has the same id under every variant (unique, not contiguous).
    users : pandas.DataFrame
        ``user_id``, ``country``, ``plan``, ``signup_date``.
    assignments : pandas.DataFrame
        One row per assigned user: ``user_id``, ``variant``, ``assigned_at``,
        ``experiment_id`` (unless it is ``None``), ``country``, ``plan``.
    truth : ExperimentTruth
        Every generating value and the potential logs.
    observation_end : pandas.Timestamp
        End of the observed log: ``truth.observation_end``, or the cut of
        :meth:`observed_until`.

    Examples
    --------
    The exact sample average effect on plays in the first week after the
    assignment, from the potential logs, next to the observed difference:

    >>> import pandas as pd
    >>> from models.experiments.simulate import simulate_experiment
    >>> sim = simulate_experiment(2000, 60, enroll_start=20, random_seed=3)
    >>> def plays_first_week(events, assignments):
    ...     m = events.merge(assignments, on="user_id")
    ...     since = m["timestamp"] - m["assigned_at"]
    ...     week = (since >= pd.Timedelta(0)) & (since < pd.Timedelta(days=7))
    ...     per_user = week.groupby(m["user_id"]).sum()
    ...     return per_user.reindex(assignments["user_id"], fill_value=0)
    >>> pe = sim.truth.potential_events
    >>> sate = (
    ...     plays_first_week(pe["treatment"], sim.potential_assignments("treatment")).mean()
    ...     - plays_first_week(pe["control"], sim.potential_assignments("control")).mean()
    ... )
    >>> observed = plays_first_week(sim.events, sim.assignments).groupby(
    ...     sim.assignments["variant"].to_numpy()).mean()
    >>> bool(sate > 0), sorted(observed.index)
    (True, ['control', 'treatment'])
    >>> early = sim.observed_until(sim.truth.enroll_end + pd.Timedelta(days=14))
    >>> bool((early.events["timestamp"] < early.observation_end).all())
    True
    """

    events: pd.DataFrame
    users: pd.DataFrame
    assignments: pd.DataFrame
    truth: ExperimentTruth
    observation_end: pd.Timestamp

    def observed_until(self, end: str | pd.Timestamp) -> SimulatedExperiment:
        """Cut the logs and the assignments at ``end``: the experiment as seen then.

        Parameters
        ----------
        end : str or pandas.Timestamp
            Timezone-naive, after ``truth.start`` and at most
            ``truth.observation_end``.

        Returns
        -------
        SimulatedExperiment
            A copy whose ``events``, ``truth.potential_events`` and
            ``assignments`` keep the rows before ``end``, whose ``users`` keep
            the users with a session before ``end``, and whose
            ``observation_end`` is ``end``.  ``truth.users`` (the long-term
            latent truth) is unchanged.

        Raises
        ------
        ValueError
            If ``end`` is outside ``(truth.start, truth.observation_end]``.
        """
        owner = "SimulatedExperiment.observed_until"
        end_ts = pd.Timestamp(end)
        ok = end_ts.tz is None and self.truth.start < end_ts <= self.truth.observation_end
        check(ok, "end", owner, "a tz-naive timestamp in (start, observation_end]", end)

        def cut(frame: pd.DataFrame, column: str) -> pd.DataFrame:
            return frame.loc[frame[column] < end_ts].reset_index(drop=True)

        events = cut(self.events, TIMESTAMP)
        users = self.users.loc[self.users[USER_ID].isin(events[USER_ID].unique())]
        potential = {v: cut(ev, TIMESTAMP) for v, ev in self.truth.potential_events.items()}
        return SimulatedExperiment(
            events=events,
            users=users.reset_index(drop=True),
            assignments=cut(self.assignments, ASSIGNED_AT),
            truth=replace(self.truth, potential_events=potential),
            observation_end=end_ts,
        )

    def potential_assignments(self, variant: str) -> pd.DataFrame:
        """Return the assignment table with every assigned user given ``variant``.

        Together with ``truth.potential_events[variant]`` it is the experiment
        as if everyone had been given ``variant``; a metric's mean on it minus
        its mean on the control's gives the exact sample average effect.

        Parameters
        ----------
        variant : str
            One of ``truth.variants``.

        Returns
        -------
        pandas.DataFrame
            ``assignments`` with the ``variant`` column set to ``variant``.

        Raises
        ------
        ValueError
            If ``variant`` is not a variant of the experiment.
        """
        names = list(self.truth.variants)
        check(variant in names, "variant", "SimulatedExperiment.potential_assignments",
              f"one of {names}", variant)  # fmt: skip
        out = self.assignments.copy()
        out[VARIANT] = variant
        return out


def _check_variants(variants, effect_by, segments):
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
    check(ok, "variants", _FUNC, rule, variants)
    table = {}
    for name, eff in variants.items():
        row = [eff[s] for s in segments] if isinstance(eff, Mapping) else [eff] * len(segments)
        table[name] = row
    control = next(iter(variants))
    check(all(e.is_identity for e in table[control]), "variants", _FUNC,
          f"a mapping whose first variant (the control, {control!r}) is the identity Effect()",
          variants)  # fmt: skip
    return table


def _check_allocation(allocation, names):
    if allocation is None:
        return {v: 1.0 / len(names) for v in names}
    ok = isinstance(allocation, Mapping) and set(allocation) == set(names)
    ok = ok and all(_is_real(allocation[v]) and allocation[v] > 0 for v in names)
    ok = ok and abs(sum(float(allocation[v]) for v in names) - 1.0) < 1e-9
    check(ok, "allocation", _FUNC,
          f"a mapping of the variants {names} to positive probabilities summing to 1",
          allocation)  # fmt: skip
    return {v: float(allocation[v]) for v in names}


def _drop_prob(logit_p: np.ndarray, p: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Dropout probability with its log-odds shifted (exactly ``p`` where the shift is 0)."""
    return np.where(shift != 0, special.expit(logit_p + shift), p)


def _nbinom_quantile(v: np.ndarray, phi: float, mu: np.ndarray) -> np.ndarray:
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


def simulate_experiment(
    n_users: int = 4000,
    days: int = 240,
    *,
    enroll_start: float = 60,
    enroll_days: float = 7,
    variants: Mapping[str, Effect | Mapping[str, Effect]] | None = None,
    allocation: Mapping[str, float] | None = None,
    effect_by: str | None = None,
    experiment_id: str | None = "exp-1",
    start: str | pd.Timestamp = "2025-01-01",
    random_seed: int | np.random.Generator | None = None,
    countries: Mapping[str, tuple[float, float]] | None = None,
    initial_share: float = 0.5,
    activity: Mapping[str, Mapping[str, float]] | None = None,
    plays_mean: float = 5.0,
    plays_dispersion: float = 2.0,
    play_propensity_shape: float = 4.0,
    n_artists: int = 500,
    n_communities: int = 8,
    skip_intercept: float = -1.0,
    skip_sigma_user: float = 0.6,
    skip_sigma_track: float = 0.4,
    skip_beta_position: float = 0.2,
) -> SimulatedExperiment:
    r"""Simulate an A/B experiment on a streaming service, with every potential outcome.

    Parameters
    ----------
    n_users : int, default 4000
        Number of users of the service (assigned or not).
    days : int, default 240
        Length of the simulated window in days.
    enroll_start : float, default 60
        Start of the enrollment window, in days after ``start``.
    enroll_days : float, default 7
        Length of the enrollment window; ``enroll_start + enroll_days <= days``.
    variants : mapping of str to Effect, optional
        Variant name -> :class:`Effect`, the control first (it must be the
        identity ``Effect()``).  Default: ``"control"`` and ``"treatment"`` with
        ``Effect(session_rate=1.05, plays=1.05, skip_logodds=-0.1, dropout=0.9)``.
        With ``effect_by``, a variant may map to ``{segment value: Effect}``
        covering every segment value instead (heterogeneous effects).
    allocation : mapping of str to float, optional
        Variant name -> probability of assignment (positive, summing to 1).
        Default equal shares.
    effect_by : {"country", "plan"} or None, default None
        The user attribute that the effects of ``variants`` may vary by.
    experiment_id : str or None, default "exp-1"
        Value of the ``experiment_id`` column of ``assignments`` (no column
        if ``None``).
    start : str or pandas.Timestamp, default "2025-01-01"
        Start of the window (timezone-naive).
    random_seed : int, numpy.random.Generator or None, optional
        Source of randomness; with ``None`` a fresh seed is drawn and recorded
        in ``truth.random_seed``.
    countries, initial_share, activity, plays_mean, plays_dispersion, play_propensity_shape
        As in :func:`~models.data.simulate.simulate_service` (same defaults).
    n_artists, n_communities, skip_intercept, skip_sigma_user, skip_sigma_track
        As in :func:`~models.data.simulate.simulate_service` (same defaults).
    skip_beta_position : float, default 0.2
        As in :func:`~models.data.simulate.simulate_service`.  The settings
        not listed here take ``simulate_service``'s defaults.

    Returns
    -------
    SimulatedExperiment
        ``events`` (observed log), ``users``, ``assignments`` and ``truth``
        (:class:`ExperimentTruth`, with ``potential_events`` per variant).

    Raises
    ------
    ValueError
        If a parameter is out of range (the message names it and its value):
        a service setting, an enrollment window outside ``[0, days]``,
        ``variants`` whose first entry is not the identity, an ``allocation``
        that does not sum to 1 over the variants, an unknown ``effect_by``.
    TypeError
        If ``random_seed`` is not an int, a Generator or None.

    Notes
    -----
    *Service.* Users, plans, countries, signup times, BG/NBD sessions, plays,
    catalogue choice and skips follow the story of
    :func:`~models.data.simulate.simulate_service` (see its Notes):
    :math:`\lambda_u \sim \mathrm{Gamma}(r_g, \alpha_g)`,
    :math:`p_u \sim \mathrm{Beta}(a_g, b_g)`, NegBin plays per session with
    mean :math:`\mu_s = (\text{plays\_mean} - 1)\rho_u m_d`, logistic skips.

    *Triggered assignment.* A user alive with a session in
    :math:`[e_0, e_1)` (the enrollment window) is assigned at their first
    such session, :math:`a_u` (``assigned_at``, to the nanosecond), to
    variant :math:`k` with probability ``allocation[k]``; users who sign up in
    the window are assigned at their first session.  The effect of
    :math:`k` acts on sessions at or after :math:`a_u` (the assignment
    session included).

    *Potential outcomes with common random numbers.*  Session :math:`i` of
    user :math:`u` is the :math:`i`-th arrival :math:`E_i` of one unit-rate
    Poisson process, mapped to time by the cumulative intensity of arm
    :math:`k`,

    .. math::

        t^{(k)}_i = \begin{cases} s_u + E_i / \lambda_u & t_i < a_u \\
        a_u + (E_i - E_{i_a}) / (\lambda_u \gamma_k) & i \ge i_a \end{cases}

    with :math:`\gamma_k` = ``session_rate`` and :math:`i_a` the assignment
    session.  After repeat session :math:`i` the user drops out in arm
    :math:`k` if :math:`U_i < p^{(k)}_i`, one uniform :math:`U_i` shared by
    all arms, where

    .. math::

        \operatorname{logit} p^{(k)}_i = \operatorname{logit} p_u
        + [i \ge i_a] \log \delta_k
        + [t^{(k)}_i \ge a_u + \Delta_k] \log \delta'_k

    (``dropout``, ``delayed_dropout``, ``delay_days``).  Plays per session are
    :math:`1 + F^{-1}_{\mathrm{NB}}(V_s; \mu^{(k)}_s, \phi)` with one shared
    uniform :math:`V_s` and :math:`\mu^{(k)}_s = \mu_s \pi_k` after the
    assignment (``plays``); the community, artist, track, skip uniform and
    skip length of the :math:`j`-th play of a session are drawn once and
    every arm uses its first :math:`n^{(k)}_s`; the skip log-odds get
    ``skip_logodds`` after the assignment.  So before :math:`a_u` every arm
    is identical, and arms differ only through their effects: under the same
    effects two arms give identical logs.  Up to :math:`a_u` each arm's log
    has exactly the distribution of ``simulate_service``'s (the same draws
    are not reproduced), and after it the same process with the arm's
    rates.  The arrivals are drawn up to the largest cumulative intensity
    over arms, and only up to the first :math:`i` with :math:`U_i` below the
    smallest dropout probability over arms (a geometric index; the uniforms
    before it are drawn conditionally above it), so the cost is that of one
    BG/NBD draw.

    A session's plays that would start after the arm's next session are not
    emitted (as in ``simulate_service``); ``session_id`` is the index of the
    session in the union of all arms' sessions.

    References
    ----------
    Rubin, D. B. (1974). Estimating causal effects of treatments in
    randomized and nonrandomized studies. Journal of Educational Psychology
    66(5), 688-701.

    Glasserman, P. and Yao, D. D. (1992). Some guidelines and guarantees for
    common random numbers. Management Science 38(6), 884-908.

    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting your
    customers" the easy way. Marketing Science 24(2), 275-284.

    Examples
    --------
    >>> from models.experiments.simulate import simulate_experiment
    >>> sim = simulate_experiment(300, 60, enroll_start=20, random_seed=1)
    >>> list(sim.assignments.columns)
    ['user_id', 'variant', 'assigned_at', 'experiment_id', 'country', 'plan']
    >>> sorted(sim.truth.potential_events)
    ['control', 'treatment']
    >>> merged = sim.events.merge(sim.assignments, on="user_id")
    >>> bool((merged["timestamp"] >= merged["assigned_at"]).any())
    True
    """
    countries = DEFAULT_COUNTRIES if countries is None else countries
    activity = DEFAULT_ACTIVITY if activity is None else activity
    d = _SERVICE_DEFAULTS
    positives = {
        "plays_dispersion": plays_dispersion,
        "play_propensity_shape": play_propensity_shape,
        **{k: d[k] for k in ("zipf_exponent", "tracks_per_artist", "track_zipf_exponent")},
        **{k: d[k] for k in ("track_length_median_s", "track_length_sigma")},
        **{k: d[k] for k in ("preference_concentration", "preference_dominance")},
        "skip_sigma_user": skip_sigma_user,
        "skip_sigma_track": skip_sigma_track,
        "skip_beta_position": skip_beta_position,
    }
    dow_mult = np.asarray(d["day_of_week_multipliers"], dtype=float)
    hour_eff = np.asarray(d["skip_hour_effects"], dtype=float)
    n, days, c_share, c_prem = check_service_options(
        _FUNC, n_users, days, countries, initial_share, activity, dow_mult, hour_eff,
        d["skip_fraction"], n_artists, n_communities, plays_mean, positives,
    )  # fmt: skip
    check(_is_real(skip_intercept), "skip_intercept", _FUNC, "a finite number", skip_intercept)
    check(_is_real(enroll_start) and 0 <= enroll_start < days, "enroll_start", _FUNC,
          f"a number of days in [0, days = {days})", enroll_start)  # fmt: skip
    check(_is_real(enroll_days) and 0 < enroll_days <= days - enroll_start, "enroll_days", _FUNC,
          f"positive with enroll_start + enroll_days <= days = {days}", enroll_days)  # fmt: skip
    check(effect_by in (None, COUNTRY, PLAN), "effect_by", _FUNC,
          "one of [None, 'country', 'plan']", effect_by)  # fmt: skip
    check(experiment_id is None or isinstance(experiment_id, str), "experiment_id", _FUNC,
          "a string or None", experiment_id)  # fmt: skip
    segments = {None: [None], COUNTRY: list(countries), PLAN: list(PLANS)}[effect_by]
    variants = DEFAULT_VARIANTS if variants is None else variants
    table = _check_variants(variants, effect_by, segments)
    names = list(table)
    alloc = _check_allocation(allocation, names)
    start_ts = pd.Timestamp(start)
    check(start_ts.tz is None, "start", _FUNC, "a timezone-naive timestamp", start)
    end_ts = start_ts + pd.Timedelta(days=days)
    start_ns, end_ns = start_ts.as_unit("ns").value, end_ts.as_unit("ns").value
    e0_ns = start_ns + round(enroll_start * NS_PER_DAY)
    e1_ns = start_ns + round((enroll_start + enroll_days) * NS_PER_DAY)
    rng, seed = make_rng(random_seed)

    # Users: the draws of simulate_service.
    country = np.minimum(
        np.searchsorted(np.cumsum(c_share), rng.random(n), side="right"), len(c_share) - 1
    )
    plan = (rng.random(n) < c_prem[country]).astype(np.int64)
    signup = np.where(rng.random(n) < initial_share, rng.random(n), rng.random(n) * days)
    pop = pd.DataFrame(
        {g: {k: float(activity[g][k]) for k in ("r", "alpha", "a", "b")} for g in PLANS}
    ).T.rename_axis(PLAN)
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
    seg = {None: np.zeros(n, dtype=np.int64), COUNTRY: country, PLAN: plan}[effect_by]
    eff = {
        f: np.array([[getattr(e, f) for e in table[v]] for v in names])[:, seg]
        for f in _EFFECT_FIELDS
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
        n_plays[k, todo] = 1 + _nbinom_quantile(v_play[todo], plays_dispersion, mu)
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
    country_names = np.asarray(list(countries), dtype=object)[country]
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
            **({EXPERIMENT_ID: experiment_id} if experiment_id is not None else {}),
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
    params = {
        "countries": {
            c: (float(s), float(q)) for c, s, q in zip(countries, c_share, c_prem, strict=True)
        },
        "initial_share": float(initial_share),
        "days": days,
        "enroll_start": float(enroll_start),
        "enroll_days": float(enroll_days),
        "experiment_id": experiment_id,
        "plays_mean": float(plays_mean),
        "day_of_week_multipliers": tuple(float(v) for v in dow_mult),
        "n_artists": n_artists,
        "n_communities": n_communities,
        "skip_intercept": float(skip_intercept),
        "skip_hour_effects": tuple(float(v) for v in hour_eff),
        "skip_fraction": tuple(float(v) for v in d["skip_fraction"]),
        **{k: float(v) for k, v in positives.items()},
    }
    truth = ExperimentTruth(
        variants={v: dict(e) if isinstance(e, Mapping) else e for v, e in variants.items()},
        control=names[0],
        allocation=alloc,
        potential_events=potential,
        users=truth_users,
        population=pop,
        artists=artists,
        tracks=tracks,
        start=start_ts,
        observation_end=end_ts,
        enroll_start=pd.Timestamp(e0_ns),
        enroll_end=pd.Timestamp(e1_ns),
        effect_by=effect_by,
        params=params,
        random_seed=seed,
    )
    return SimulatedExperiment(
        events=events, users=users, assignments=assignments, truth=truth, observation_end=end_ts
    )
