"""Simulated A/B experiments on the simulated service, with every potential outcome.

:func:`simulate_experiment` draws a streaming service with the generative story
of :func:`models.data.simulate.simulate_service`, assigns the users who are
active in an enrollment window to variants, and applies each variant's known
:class:`Effect` from the user's own assignment time on.  Every assigned user's
trajectory is simulated under *every* variant from the same random numbers, so
:class:`ExperimentTruth` holds the whole log as if everyone had been given each
variant: any metric computed on those logs gives the exact sample average
treatment effect, short term and long term.

The draws themselves are the common-random-numbers engine of
:mod:`models.experiments._potential`; this module holds the public objects,
the checks of the experiment's settings and the assembly of the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from models.data._generators import NS_PER_DAY, PLANS, check, make_rng
from models.data._options import resolve_service
from models.data.schema import COUNTRY, PLAN, TIMESTAMP, USER_ID
from models.data.simulate import ChurnOptions, ListeningOptions, NetworkOptions, UserOptions
from models.experiments._checks import is_real
from models.experiments._potential import Effect, Service, check_design, simulate_arms
from models.experiments.schema import ASSIGNED_AT, VARIANT

__all__ = [
    "DEFAULT_VARIANTS",
    "Effect",
    "ExperimentTruth",
    "SimulatedExperiment",
    "simulate_experiment",
]

_FUNC = "simulate_experiment"
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
    users: UserOptions | None = None,
    churn: ChurnOptions | None = None,
    listening: ListeningOptions | None = None,
    network: NetworkOptions | None = None,
    start: str | pd.Timestamp = "2025-01-01",
    random_seed: int | np.random.Generator | None = None,
    **deprecated: Any,
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
    users, churn, listening, network : option objects, optional
        The service's settings, as in :func:`~models.data.simulate.simulate_service`
        (:class:`~models.data.simulate.UserOptions`,
        :class:`~models.data.simulate.ChurnOptions`,
        :class:`~models.data.simulate.ListeningOptions`,
        :class:`~models.data.simulate.NetworkOptions`; their defaults if None).
    **deprecated
        The old flat service settings (``n_artists=...``, ``activity=...``), accepted
        for one release with a :class:`FutureWarning` naming the option object.

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
    svc = resolve_service(_FUNC, n_users, days, {"users": users, "churn": churn,
                                                  "listening": listening, "network": network},
                          deprecated)
    n, days, lst, net = svc.n_users, svc.days, svc.listening, svc.network
    c_share, c_prem = svc.users.shares()
    countries, initial_share = svc.users.countries, svc.users.initial_share
    activity = svc.churn.activity
    dow_mult = np.asarray(lst.day_of_week_multipliers, dtype=float)
    hour_eff = np.asarray(lst.skip_hour_effects, dtype=float)
    check(is_real(enroll_start, finite=True) and 0 <= enroll_start < days, "enroll_start", _FUNC,
          f"a number of days in [0, days = {days})", enroll_start)  # fmt: skip
    check(is_real(enroll_days, finite=True) and 0 < enroll_days <= days - enroll_start,
          "enroll_days", _FUNC,
          f"positive with enroll_start + enroll_days <= days = {days}", enroll_days)  # fmt: skip
    check(effect_by in (None, COUNTRY, PLAN), "effect_by", _FUNC,
          "one of [None, 'country', 'plan']", effect_by)  # fmt: skip
    check(experiment_id is None or isinstance(experiment_id, str), "experiment_id", _FUNC,
          "a string or None", experiment_id)  # fmt: skip
    segments = {None: [None], COUNTRY: list(countries), PLAN: list(PLANS)}[effect_by]
    variants = DEFAULT_VARIANTS if variants is None else variants
    start_ts = pd.Timestamp(start)
    check(start_ts.tz is None, "start", _FUNC, "a timezone-naive timestamp", start)
    end_ts = start_ts + pd.Timedelta(days=days)
    start_ns, end_ns = start_ts.as_unit("ns").value, end_ts.as_unit("ns").value
    e0_ns = start_ns + round(enroll_start * NS_PER_DAY)
    e1_ns = start_ns + round((enroll_start + enroll_days) * NS_PER_DAY)
    design = check_design(_FUNC, variants, allocation, effect_by, segments, (e0_ns, e1_ns),
                          experiment_id)
    rng, seed = make_rng(random_seed)

    pop = pd.DataFrame(
        {g: {k: float(activity[g][k]) for k in ("r", "alpha", "a", "b")} for g in PLANS}
    ).T.rename_axis(PLAN)
    service = Service(
        n_users=n, days=days, start_ns=start_ns, end_ns=end_ns, countries=list(countries),
        country_share=c_share, premium_share=c_prem, initial_share=initial_share,
        population=pop, plays_mean=lst.plays_mean, plays_dispersion=lst.plays_dispersion,
        play_propensity_shape=lst.play_propensity_shape, n_artists=int(net.n_artists),
        n_communities=int(net.n_communities), skip_intercept=lst.skip_intercept,
        skip_sigma_user=lst.skip_sigma_user, skip_sigma_track=lst.skip_sigma_track,
        skip_beta_position=lst.skip_beta_position, day_of_week_multipliers=dow_mult,
        skip_hour_effects=hour_eff, defaults=svc.params(),
    )
    arms = simulate_arms(rng, service, design)

    params = {**svc.params(), "enroll_start": float(enroll_start),
              "enroll_days": float(enroll_days), "experiment_id": experiment_id}
    truth = ExperimentTruth(
        variants={v: dict(e) if isinstance(e, Mapping) else e for v, e in variants.items()},
        control=design.names[0],
        allocation=design.allocation,
        potential_events=arms.potential_events,
        users=arms.truth_users,
        population=pop,
        artists=arms.artists,
        tracks=arms.tracks,
        start=start_ts,
        observation_end=end_ts,
        enroll_start=pd.Timestamp(e0_ns),
        enroll_end=pd.Timestamp(e1_ns),
        effect_by=effect_by,
        params=params,
        random_seed=seed,
    )
    return SimulatedExperiment(
        events=arms.events, users=arms.users, assignments=arms.assignments, truth=truth,
        observation_end=end_ts,
    )
