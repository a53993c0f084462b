"""Simulated listening logs with a recorded ground truth.

:func:`simulate_service` draws a whole streaming service (users, sessions,
plays, skips and a catalogue with genre communities) from exactly the
generative processes the package's models assume, and returns every
generating value in :class:`ServiceTruth`.  Its settings come in four option
objects with defaults: :class:`UserOptions`, :class:`ChurnOptions`,
:class:`ListeningOptions` and :class:`NetworkOptions`.  :func:`simulate_bgnbd`,
:func:`simulate_sbg` and :func:`simulate_bgbb` are small exact generators of
the three churn models' own processes, for recovery tests.

Everything is vectorised numpy; the only Python loops run over communities,
days of the week or positions within a session, never over users or sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models._validation import check_int
from models.data._generators import (
    NS_PER_DAY,
    PLANS,
    bgnbd_draw,
    check,
    check_pos,
    draw_catalogue,
    geometric,
    grouped_choice,
    make_rng,
    play_sequence,
)
from models.data._options import (
    DEFAULT_ACTIVITY,
    DEFAULT_COUNTRIES,
    DEFAULT_DAY_OF_WEEK,
    DEFAULT_HOUR_EFFECTS,
    ChurnOptions,
    ListeningOptions,
    NetworkOptions,
    UserOptions,
    resolve_service,
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

__all__ = [
    "DEFAULT_ACTIVITY",
    "DEFAULT_COUNTRIES",
    "DEFAULT_DAY_OF_WEEK",
    "DEFAULT_HOUR_EFFECTS",
    "ChurnOptions",
    "ListeningOptions",
    "NetworkOptions",
    "ServiceTruth",
    "SimulatedService",
    "UserOptions",
    "simulate_bgbb",
    "simulate_bgnbd",
    "simulate_sbg",
    "simulate_service",
]

@dataclass(frozen=True)
class ServiceTruth:
    """Every value that generated a :class:`SimulatedService`.

    Attributes
    ----------
    population : pandas.DataFrame
        BG/NBD population parameters per plan: index ``plan``, columns ``r``,
        ``alpha`` (Gamma shape and rate of the session rate per day), ``a``,
        ``b`` (Beta parameters of the dropout probability).
    users : pandas.DataFrame
        One row per user, in ``user_id`` order: ``user_id``, ``plan``,
        ``signup_time`` (days after ``start``), ``T`` (days observed after the
        first session), ``lam``, ``p``, ``frequency`` (repeat sessions),
        ``recency`` (days from first to last session), ``n_sessions``,
        ``dropout_time`` (days after ``start`` of the session after which the
        user dropped out; ``inf`` if alive at the end), ``dropout_timestamp``
        (``NaT`` if alive), ``alive``, ``play_propensity``, ``skip_effect``,
        ``dominant_community``.
    preferences : pandas.DataFrame
        Community preference vectors, index ``user_id``, one column per community.
    sessions : pandas.DataFrame
        One row per session: ``session_id``, ``user_id``, ``start``,
        ``day_of_week`` (Monday = 0), ``mu`` (mean of the NegBin extra plays),
        ``n_plays_drawn`` and ``n_plays`` (after truncation, see Notes of
        :func:`simulate_service`).
    artists : pandas.DataFrame
        ``artist_id``, ``community``, ``popularity_rank`` (1 = most popular in
        the catalogue), ``popularity`` (``rank ** -zipf_exponent``),
        ``prob_in_community``.
    tracks : pandas.DataFrame
        ``track_id``, ``artist_id``, ``length_ms``, ``rank_in_artist``,
        ``prob_in_artist``, ``skip_effect``.
    params : dict
        Scalar and vector settings: country mix, initial share, play and skip
        parameters, day-of-week multipliers, hour effects, catalogue settings.
    start, observation_end : pandas.Timestamp
        Start and end of the observation window; no event is at or after
        ``observation_end``.
    random_seed : int or None
        Seed that reproduces the draw (``None`` when a Generator was passed).
    """

    population: pd.DataFrame
    users: pd.DataFrame
    preferences: pd.DataFrame
    sessions: pd.DataFrame
    artists: pd.DataFrame
    tracks: pd.DataFrame
    params: dict
    start: pd.Timestamp
    observation_end: pd.Timestamp
    random_seed: int | None


@dataclass(frozen=True)
class SimulatedService:
    """A simulated listening log, its users table and its ground truth.

    Attributes
    ----------
    events : pandas.DataFrame
        One row per play, sorted by ``user_id`` then ``timestamp``: ``user_id``,
        ``timestamp`` (datetime64[ns]), ``session_id``, ``track_id``,
        ``artist_id``, ``ms_played`` (int64), ``skipped`` (bool).
    users : pandas.DataFrame
        ``user_id``, ``country``, ``plan``, ``signup_date`` (midnight of the day
        of the first session).
    truth : ServiceTruth
        Every generating value.
    """

    events: pd.DataFrame
    users: pd.DataFrame
    truth: ServiceTruth

    @property
    def observation_end(self) -> pd.Timestamp:
        """End of the observation window (``start + days``)."""
        return self.truth.observation_end


def simulate_bgnbd(
    n: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: float | Sequence[float] | np.ndarray,
    random_seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    r"""Draw customers from the BG/NBD model (Fader, Hardie & Lee 2005).

    Parameters
    ----------
    n : int
        Number of customers.
    r, alpha : float
        Shape and rate of the Gamma distribution of the transaction rate.
    a, b : float
        Parameters of the Beta distribution of the dropout probability.
    T : float or array_like of shape (n,)
        Length of each customer's observation after the first transaction.
    random_seed : int, numpy.random.Generator or None, optional
        Source of randomness.

    Returns
    -------
    pandas.DataFrame
        One row per customer (dim ``customer``): ``frequency`` (repeat
        transactions), ``recency`` (time of the last one, 0 if none), ``T``,
        and the latent ``lam``, ``p`` and ``alive`` (still active at ``T``).

    Notes
    -----
    .. math::

        \lambda \sim \mathrm{Gamma}(r, \alpha), \quad p \sim \mathrm{Beta}(a, b),

    transactions arrive as a Poisson process with rate :math:`\lambda` after
    the first one at time 0, and after each *repeat* transaction the customer
    drops out with probability :math:`p` (no dropout at time 0, so
    :math:`P(X = 0 \mid \lambda, p) = e^{-\lambda T}` as in the BG/NBD
    likelihood).  Drawn exactly: the count while alive is
    :math:`N \sim \mathrm{Poisson}(\lambda T)`, the dropout index is
    :math:`J \sim \mathrm{Geometric}(p)`, :math:`x = \min(N, J)`, and the
    times are the first :math:`x` order statistics of :math:`N` uniforms.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting your
    customers" the easy way. Marketing Science 24(2), 275-284.

    Examples
    --------
    >>> from models.data.simulate import simulate_bgnbd
    >>> df = simulate_bgnbd(1000, r=0.5, alpha=2.0, a=1.5, b=4.0, T=30.0, random_seed=1)
    >>> list(df.columns)
    ['frequency', 'recency', 'T', 'lam', 'p', 'alive']
    >>> bool((df["recency"] <= df["T"]).all())
    True
    """
    func = "simulate_bgnbd"
    n = check_int(func, "n", n)
    r, alpha, a, b = (
        check_pos(v, k, func) for v, k in ((r, "r"), (alpha, "alpha"), (a, "a"), (b, "b"))
    )
    T_arr = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    check(bool(np.all(T_arr > 0) and np.all(np.isfinite(T_arr))), "T", func, "positive", T)
    rng, _ = make_rng(random_seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    x, times, dropped = bgnbd_draw(rng, lam, p, T_arr)
    recency = np.zeros(n)
    has = x > 0
    recency[has] = times[np.cumsum(x)[has] - 1]
    return pd.DataFrame(
        {"frequency": x, "recency": recency, "T": T_arr, "lam": lam, "p": p, "alive": ~dropped}
    )


def simulate_sbg(
    n: int,
    alpha: float,
    beta: float,
    n_periods: int,
    random_seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    r"""Draw a cohort from the shifted-beta-geometric model (Fader & Hardie 2007).

    Parameters
    ----------
    n : int
        Cohort size.
    alpha, beta : float
        Beta parameters of the per-period churn probability.
    n_periods : int
        Number of renewal periods to follow.
    random_seed : int, numpy.random.Generator or None, optional
        Source of randomness.

    Returns
    -------
    numpy.ndarray of int64, shape (n_periods + 1,)
        Survivors per period (dim ``period``): element ``t`` is the number of
        customers still active after ``t`` periods; element 0 is ``n``.

    Notes
    -----
    .. math::

        \theta \sim \mathrm{Beta}(\alpha, \beta), \quad
        P(T = t \mid \theta) = \theta (1 - \theta)^{t - 1}, \quad
        S(t) = \frac{B(\alpha, \beta + t)}{B(\alpha, \beta)}.

    References
    ----------
    Fader, P. S. and Hardie, B. G. S. (2007). How to project customer
    retention. Journal of Interactive Marketing 21(1), 76-90.

    Examples
    --------
    >>> from models.data.simulate import simulate_sbg
    >>> surv = simulate_sbg(1000, alpha=1.0, beta=3.0, n_periods=5, random_seed=1)
    >>> surv.shape, int(surv[0])
    ((6,), 1000)
    >>> bool((surv[1:] <= surv[:-1]).all())
    True
    """
    func = "simulate_sbg"
    n = check_int(func, "n", n)
    alpha, beta = check_pos(alpha, "alpha", func), check_pos(beta, "beta", func)
    n_periods = check_int(func, "n_periods", n_periods)
    rng, _ = make_rng(random_seed)
    lifetime = geometric(rng, rng.beta(alpha, beta, n))
    churned = np.bincount(
        np.minimum(lifetime, n_periods + 1).astype(np.int64), minlength=n_periods + 2
    )
    return (n - np.cumsum(churned)[: n_periods + 1]).astype(np.int64)


def simulate_bgbb(
    n: int,
    alpha: float,
    beta: float,
    gamma: float,
    delta: float,
    n_opportunities: int,
    random_seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    r"""Draw customers from the BG/BB model (Fader, Hardie & Shang 2010).

    Parameters
    ----------
    n : int
        Number of customers.
    alpha, beta : float
        Beta parameters of the transaction probability while alive.
    gamma, delta : float
        Beta parameters of the dropout probability per opportunity.
    n_opportunities : int
        Number of transaction opportunities after the first transaction.
    random_seed : int, numpy.random.Generator or None, optional
        Source of randomness.

    Returns
    -------
    pandas.DataFrame
        One row per customer (dim ``customer``): ``frequency`` (x),
        ``recency`` (t_x, the last opportunity with a transaction, 0 if none),
        ``n`` (opportunities), and the latent ``p``, ``theta`` and ``alive``.

    Notes
    -----
    .. math::

        p \sim \mathrm{Beta}(\alpha, \beta), \quad
        \theta \sim \mathrm{Beta}(\gamma, \delta).

    The customer is alive at opportunity 0 (the first transaction); at the
    start of each opportunity :math:`t = 1, \dots, n` a living customer dies
    with probability :math:`\theta`, and if still alive transacts with
    probability :math:`p`.  Uses an ``n x n_opportunities`` boolean matrix.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Shang, J. (2010). Customer-base analysis
    in a discrete-time noncontractual setting. Marketing Science 29(6), 1086-1108.

    Examples
    --------
    >>> from models.data.simulate import simulate_bgbb
    >>> df = simulate_bgbb(500, 1.2, 0.8, 0.6, 2.5, n_opportunities=6, random_seed=1)
    >>> bool((df["frequency"] <= df["recency"]).all()), int(df["n"].iloc[0])
    (True, 6)
    """
    func = "simulate_bgbb"
    n = check_int(func, "n", n)
    pars = [
        check_pos(v, k, func)
        for v, k in zip(
            (alpha, beta, gamma, delta), ("alpha", "beta", "gamma", "delta"), strict=True
        )
    ]
    n_opp = check_int(func, "n_opportunities", n_opportunities)
    rng, _ = make_rng(random_seed)
    p = rng.beta(pars[0], pars[1], n)
    theta = rng.beta(pars[2], pars[3], n)
    alive_for = np.minimum(geometric(rng, theta) - 1.0, n_opp)  # opportunities survived
    slots = np.arange(1, n_opp + 1)
    buys = (rng.random((n, n_opp)) < p[:, None]) & (slots[None, :] <= alive_for[:, None])
    return pd.DataFrame(
        {
            "frequency": buys.sum(axis=1).astype(np.int64),
            "recency": (buys * slots).max(axis=1).astype(np.int64),
            "n": np.full(n, n_opp, dtype=np.int64),
            "p": p,
            "theta": theta,
            "alive": alive_for >= n_opp,
        }
    )


def simulate_service(
    n_users: int = 2000,
    days: int = 365,
    *,
    users: UserOptions | None = None,
    churn: ChurnOptions | None = None,
    listening: ListeningOptions | None = None,
    network: NetworkOptions | None = None,
    start: str | pd.Timestamp = "2025-01-01",
    random_seed: int | np.random.Generator | None = None,
    **deprecated: Any,
) -> SimulatedService:
    r"""Simulate a music-streaming service: users, sessions, plays and skips.

    Parameters
    ----------
    n_users : int, default 2000
        Number of users.
    days : int, default 365
        Length of the observation window in days.
    start : str or pandas.Timestamp, default "2025-01-01"
        Start of the window (timezone-naive); ``observation_end = start + days``.
    random_seed : int, numpy.random.Generator or None, optional
        Source of randomness.  With ``None`` a fresh seed is drawn and recorded
        in ``truth.random_seed``, so every run can be reproduced.
    users : UserOptions, optional
        Countries, plans and signup times (:class:`~models.data.simulate.UserOptions`;
        its defaults if None).
    churn : ChurnOptions, optional
        BG/NBD session rates and dropout per plan
        (:class:`~models.data.simulate.ChurnOptions`).
    listening : ListeningOptions, optional
        Plays per session, weekday multipliers and the skip model
        (:class:`~models.data.simulate.ListeningOptions`).
    network : NetworkOptions, optional
        The catalogue and its genre communities
        (:class:`~models.data.simulate.NetworkOptions`).
    **deprecated
        The old flat settings (``n_artists=...``, ``plays_mean=...``, every field of
        the four option objects), accepted for one release with a
        :class:`FutureWarning` that names the option object now holding each.

    Returns
    -------
    SimulatedService
        ``events`` (one row per play), ``users`` and ``truth``
        (:class:`ServiceTruth`).

    Raises
    ------
    ValueError
        If a parameter is out of range; the message names it and its value.
    TypeError
        If ``random_seed`` is not an int, a Generator or None, an option object is of
        the wrong class, or a keyword is unknown.

    Notes
    -----
    The symbols below are fields of the option objects: ``plays_mean`` is
    ``listening.plays_mean``, ``zipf_exponent`` is ``network.zipf_exponent``, and so on.

    *Users.* Country ~ Categorical(weights); plan = premium with the
    country's premium share.  Signup time :math:`s_u` (days) is
    ``Uniform(0, 1)`` for the initial share and ``Uniform(0, days)`` otherwise.

    *Sessions: BG/NBD* (Fader, Hardie & Lee 2005), exactly, in days, per plan
    :math:`g`:

    .. math::

        \lambda_u \sim \mathrm{Gamma}(r_g, \alpha_g), \quad
        p_u \sim \mathrm{Beta}(a_g, b_g).

    The first session is at :math:`s_u`; repeat sessions follow a Poisson
    process with rate :math:`\lambda_u`; right after each *repeat* session
    the user drops out with probability :math:`p_u` (never right after the
    first session).  Observed for :math:`T_u = \text{days} - s_u`.  Day-of-week
    effects do not touch this process; they act on plays per session.

    *Plays per session* :math:`s` of user :math:`u` starting on weekday :math:`d`:

    .. math::

        n_s - 1 \sim \mathrm{NegBin}(\mu_s, \phi), \quad
        \mu_s = (\text{plays\_mean} - 1)\, \rho_u\, m_d, \quad
        \rho_u \sim \mathrm{Gamma}(k, k).

    *Catalogue and choice.* Artists get a community (even split) and a
    catalogue rank; each play draws a community
    :math:`c \sim \mathrm{Categorical}(\pi_u)`,
    :math:`\pi_u \sim \mathrm{Dirichlet}(\kappa \mathbf{1} + \delta e_{d_u})`,
    then an artist of :math:`c` with probability proportional to
    :math:`\mathrm{rank}^{-\text{zipf\_exponent}}`, then a track of that artist
    with probability proportional to its within-artist rank to the power
    :math:`-\text{track\_zipf\_exponent}`.

    *Skips.* For a play at position :math:`j` (1-based) in its session, whose
    own timestamp falls in hour bin :math:`h` (``hour // 6``):

    .. math::

        \operatorname{logit} P(\text{skip}) = \mu + b_u + b_t
        + \beta \log j + \eta_h, \quad
        b_u \sim N(0, \sigma_u^2), \; b_t \sim N(0, \sigma_t^2).

    ``ms_played`` is the track length, or ``Uniform(low, high)`` times it if
    skipped; the next play starts when this one ends, so the hour of each play
    is that of its own timestamp (plays are generated position by position).
    A session ends at the start of the user's
    next session or at ``observation_end``: plays that would start later are
    not emitted (``truth.sessions`` keeps both ``n_plays_drawn`` and
    ``n_plays``).  Session counts are never affected, since each session's
    first play is at its start.

    With the defaults a user has about 17 sessions and 88 plays a year: 100,000
    users over 365 days give about 1.7 million sessions and 8.8 million events
    (a few seconds, about 2.5 GB of peak memory).  Probabilities and timestamps
    are exact up to float64 rounding; timestamps are in nanoseconds.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting your
    customers" the easy way. Marketing Science 24(2), 275-284.

    Examples
    --------
    >>> from models.data.simulate import simulate_service
    >>> sim = simulate_service(200, 60, random_seed=7)
    >>> list(sim.events.columns)
    ['user_id', 'timestamp', 'session_id', 'track_id', 'artist_id', 'ms_played', 'skipped']
    >>> bool((sim.events["timestamp"] < sim.observation_end).all())
    True
    >>> sim.truth.population.loc["premium", "r"]
    np.float64(1.2)
    >>> small = simulate_service(200, 60, network=NetworkOptions(n_artists=40, n_communities=3),
    ...                          random_seed=7)
    >>> int(small.events["artist_id"].max()) < 40
    True
    """
    func = "simulate_service"
    svc = resolve_service(func, n_users, days, {"users": users, "churn": churn,
                                                 "listening": listening, "network": network},
                          deprecated)
    n, days, lst, net = svc.n_users, svc.days, svc.listening, svc.network
    c_share, c_prem = svc.users.shares()
    countries, initial_share = svc.users.countries, svc.users.initial_share
    activity = svc.churn.activity
    plays_mean, plays_dispersion = lst.plays_mean, lst.plays_dispersion
    play_propensity_shape = lst.play_propensity_shape
    skip_intercept, skip_beta_position = lst.skip_intercept, lst.skip_beta_position
    skip_sigma_user, skip_sigma_track = lst.skip_sigma_user, lst.skip_sigma_track
    skip_fraction = tuple(lst.skip_fraction)
    n_artists, n_communities = int(net.n_artists), int(net.n_communities)
    preference_concentration = net.preference_concentration
    preference_dominance = net.preference_dominance
    start_ts = pd.Timestamp(start)
    check(start_ts.tz is None, "start", func, "a timezone-naive timestamp", start)
    end_ts = start_ts + pd.Timedelta(days=days)
    start_ns, end_ns = start_ts.as_unit("ns").value, end_ts.as_unit("ns").value
    rng, seed = make_rng(random_seed)
    dow_mult = np.asarray(lst.day_of_week_multipliers, dtype=float)
    hour_eff = np.asarray(lst.skip_hour_effects, dtype=float)

    # Users and their BG/NBD sessions.
    country = np.minimum(
        np.searchsorted(np.cumsum(c_share), rng.random(n), side="right"), len(c_share) - 1
    )
    plan = (rng.random(n) < c_prem[country]).astype(np.int64)
    signup = np.where(rng.random(n) < initial_share, rng.random(n), rng.random(n) * days)
    T = days - signup
    pop = pd.DataFrame(
        {g: {k: float(activity[g][k]) for k in ("r", "alpha", "a", "b")} for g in PLANS}
    ).T.rename_axis(PLAN)
    lam = rng.gamma(pop["r"].to_numpy()[plan], 1.0 / pop["alpha"].to_numpy()[plan])
    p = rng.beta(pop["a"].to_numpy()[plan], pop["b"].to_numpy()[plan])
    x, times, dropped = bgnbd_draw(rng, lam, p, T)
    n_sess = x + 1
    first = np.cumsum(n_sess) - n_sess
    sess_user = np.repeat(np.arange(n), n_sess)
    rel = np.zeros(sess_user.size)
    is_first = np.zeros(sess_user.size, dtype=bool)
    is_first[first] = True
    rel[~is_first] = times
    recency = rel[first + x]
    sess_ns = np.minimum(
        start_ns + np.round((signup[sess_user] + rel) * NS_PER_DAY).astype(np.int64), end_ns - 1
    )

    # Plays per session.
    dow = (sess_ns // NS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday
    rho = rng.gamma(play_propensity_shape, 1.0 / play_propensity_shape, n)
    mu = (plays_mean - 1.0) * rho[sess_user] * dow_mult[dow]
    n_draw = 1 + rng.negative_binomial(plays_dispersion, plays_dispersion / (plays_dispersion + mu))
    off = np.cumsum(n_draw) - n_draw
    ev_sess = np.repeat(np.arange(sess_user.size), n_draw)
    ev_user = np.repeat(sess_user, n_draw)
    pos = np.arange(ev_sess.size) - np.repeat(off, n_draw) + 1

    # Catalogue, community preferences and the choice of artist and track.
    artists, tracks = draw_catalogue(
        rng,
        n_artists,
        n_communities,
        net.zipf_exponent,
        net.tracks_per_artist,
        net.track_zipf_exponent,
        net.track_length_median_s,
        net.track_length_sigma,
        skip_sigma_track,
    )
    dominant = rng.integers(0, n_communities, n)
    conc = np.full((n, n_communities), preference_concentration)
    conc[np.arange(n), dominant] += preference_dominance
    pref = rng.standard_gamma(conc)
    pref /= pref.sum(axis=1, keepdims=True)
    cum_pref = np.cumsum(pref, axis=1)
    plays_per_user = np.bincount(sess_user, weights=n_draw, minlength=n).astype(np.int64)
    u = rng.random(ev_sess.size)
    comm = np.zeros(ev_sess.size, dtype=np.int64)
    for k in range(n_communities - 1):
        comm += u >= np.repeat(cum_pref[:, k], plays_per_user)
    artist = grouped_choice(
        rng, comm, artists["community"].to_numpy(), artists["prob_in_community"].to_numpy()
    )
    track = grouped_choice(
        rng, artist, tracks[ARTIST_ID].to_numpy(), tracks["prob_in_artist"].to_numpy()
    )

    # Skips and timestamps, one position at a time (the hour of a play depends on
    # how long the earlier plays of its session lasted).
    user_eff = skip_sigma_user * rng.standard_normal(n)
    length = tracks["length_ms"].to_numpy()[track]
    base = (
        skip_intercept
        + user_eff[ev_user]
        + tracks["skip_effect"].to_numpy()[track]
        + skip_beta_position * np.log(pos)
    )
    u_skip = rng.random(ev_sess.size)
    short = np.maximum(1, np.round(rng.uniform(*skip_fraction, ev_sess.size) * length))
    ts, skipped, ms = play_sequence(sess_ns, n_draw, off, base, hour_eff, u_skip, length, short)

    # A session ends where the next one starts or at the end of the window.
    limit = np.append(sess_ns[1:], end_ns)
    limit[first + x] = end_ns
    keep = ts < np.repeat(limit, n_draw)
    keep[off] = True
    events = pd.DataFrame(
        {
            USER_ID: ev_user[keep],
            TIMESTAMP: ts[keep].view("datetime64[ns]"),
            SESSION_ID: ev_sess[keep],
            TRACK_ID: track[keep],
            ARTIST_ID: artist[keep],
            MS_PLAYED: ms[keep],
            SKIPPED: skipped[keep],
        },
        copy=False,
    )

    user_ids = np.arange(n, dtype=np.int64)
    plan_names = np.asarray(PLANS, dtype=object)[plan]
    users = pd.DataFrame(
        {
            USER_ID: user_ids,
            COUNTRY: np.asarray(list(countries), dtype=object)[country],
            PLAN: plan_names,
            SIGNUP_DATE: (sess_ns[first] // NS_PER_DAY * NS_PER_DAY).view("datetime64[ns]"),
        }
    )
    dropout_time = np.where(dropped, signup + recency, np.inf)
    dropout_ns = np.where(
        dropped,
        start_ns + np.round(dropout_time * NS_PER_DAY).clip(max=end_ns - start_ns - 1),
        np.iinfo(np.int64).min,
    )
    truth_users = pd.DataFrame(
        {
            USER_ID: user_ids,
            PLAN: plan_names,
            "signup_time": signup,
            "T": T,
            "lam": lam,
            "p": p,
            "frequency": x,
            "recency": recency,
            "n_sessions": n_sess,
            "dropout_time": dropout_time,
            "dropout_timestamp": dropout_ns.astype(np.int64).view("datetime64[ns]"),
            "alive": ~dropped,
            "play_propensity": rho,
            "skip_effect": user_eff,
            "dominant_community": dominant,
        }
    )
    sessions = pd.DataFrame(
        {
            SESSION_ID: np.arange(sess_user.size, dtype=np.int64),
            USER_ID: sess_user.astype(np.int64),
            "start": sess_ns.view("datetime64[ns]"),
            "day_of_week": dow,
            "mu": mu,
            "n_plays_drawn": n_draw,
            "n_plays": np.bincount(ev_sess[keep], minlength=sess_user.size),
        }
    )
    params = svc.params()
    truth = ServiceTruth(
        population=pop,
        users=truth_users,
        preferences=pd.DataFrame(
            pref,
            index=pd.Index(user_ids, name=USER_ID),
            columns=pd.RangeIndex(n_communities, name="community"),
        ),
        sessions=sessions,
        artists=artists,
        tracks=tracks,
        params=params,
        start=start_ts,
        observation_end=end_ts,
        random_seed=seed,
    )
    return SimulatedService(events=events, users=users, truth=truth)
