"""Simulated listening logs with a recorded ground truth.

:func:`simulate_service` draws a whole streaming service (users, sessions,
plays, skips and a catalogue with genre communities) from exactly the
generative processes the package's models assume, and returns every
generating value in :class:`ServiceTruth`.  :func:`simulate_bgnbd`,
:func:`simulate_sbg` and :func:`simulate_bgbb` are small exact generators of
the three churn models' own processes, for recovery tests.

Everything is vectorised numpy; the only Python loops run over communities,
days of the week or positions within a session, never over users or sessions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models._validation import check_int
from models.data._generators import (
    NS_PER_DAY,
    PLANS,
    bgnbd_draw,
    check,
    check_pos,
    check_service_options,
    draw_catalogue,
    geometric,
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

__all__ = [
    "DEFAULT_ACTIVITY",
    "DEFAULT_COUNTRIES",
    "DEFAULT_DAY_OF_WEEK",
    "DEFAULT_HOUR_EFFECTS",
    "ServiceTruth",
    "SimulatedService",
    "simulate_bgbb",
    "simulate_bgnbd",
    "simulate_sbg",
    "simulate_service",
]

#: Default country mix: country -> (share of users, share of those on the premium plan).
DEFAULT_COUNTRIES: dict[str, tuple[float, float]] = {
    "US": (0.30, 0.55),
    "GB": (0.15, 0.50),
    "DE": (0.15, 0.45),
    "BR": (0.15, 0.25),
    "IN": (0.15, 0.15),
    "SE": (0.10, 0.65),
}
#: Default BG/NBD population parameters per plan (sessions per day, dropout per session).
DEFAULT_ACTIVITY: dict[str, dict[str, float]] = {
    "free": {"r": 0.8, "alpha": 3.0, "a": 1.2, "b": 8.0},
    "premium": {"r": 1.2, "alpha": 3.0, "a": 1.5, "b": 24.0},
}
#: Default multipliers of the mean extra plays per session, Monday first.
DEFAULT_DAY_OF_WEEK = (0.9, 0.9, 0.95, 1.0, 1.1, 1.25, 1.05)
#: Default skip log-odds shifts for the hour bins [0, 6), [6, 12), [12, 18), [18, 24).
DEFAULT_HOUR_EFFECTS = (0.3, -0.2, 0.0, 0.15)


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
    start: str | pd.Timestamp = "2025-01-01",
    random_seed: int | np.random.Generator | None = None,
    countries: Mapping[str, tuple[float, float]] | None = None,
    initial_share: float = 0.5,
    activity: Mapping[str, Mapping[str, float]] | None = None,
    plays_mean: float = 5.0,
    plays_dispersion: float = 2.0,
    play_propensity_shape: float = 4.0,
    day_of_week_multipliers: Sequence[float] = DEFAULT_DAY_OF_WEEK,
    n_artists: int = 500,
    n_communities: int = 8,
    zipf_exponent: float = 1.0,
    tracks_per_artist: float = 8.0,
    track_zipf_exponent: float = 0.8,
    track_length_median_s: float = 210.0,
    track_length_sigma: float = 0.3,
    preference_concentration: float = 0.2,
    preference_dominance: float = 4.0,
    skip_intercept: float = -1.0,
    skip_sigma_user: float = 0.6,
    skip_sigma_track: float = 0.4,
    skip_beta_position: float = 0.2,
    skip_hour_effects: Sequence[float] = DEFAULT_HOUR_EFFECTS,
    skip_fraction: tuple[float, float] = (0.02, 0.15),
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
    countries : mapping of str to (float, float), optional
        Country -> (weight among users, share of its users on the premium
        plan).  Default ``models.data.simulate.DEFAULT_COUNTRIES`` (six countries).
    initial_share : float, default 0.5
        Share of users whose first session falls on the first day; the others
        sign up uniformly over the window.
    activity : mapping, optional
        Plan (``"free"``, ``"premium"``) -> ``{"r", "alpha", "a", "b"}``, the
        BG/NBD population parameters of that segment (session rate per day,
        dropout per session).  Default ``models.data.simulate.DEFAULT_ACTIVITY``: mean rate
        0.27 (free) and 0.4 (premium) sessions a day, mean dropout probability
        0.13 and 0.06 per repeat session.
    plays_mean : float, default 5.0
        Mean plays per session for an average user on a day with multiplier 1.
    plays_dispersion : float, default 2.0
        NegBin size :math:`\phi` of the extra plays per session.
    play_propensity_shape : float, default 4.0
        Shape (and rate) of each user's Gamma play propensity, mean 1.
    day_of_week_multipliers : sequence of 7 float, optional
        Multipliers of the mean extra plays by the weekday of the session start,
        Monday first.  Default ``models.data.simulate.DEFAULT_DAY_OF_WEEK``,
        ``(0.9, 0.9, 0.95, 1.0, 1.1, 1.25, 1.05)``.
    n_artists : int, default 500
        Number of artists.
    n_communities : int, default 8
        Number of latent communities (genres); artists are split evenly.
    zipf_exponent : float, default 1.0
        Artist popularity is ``rank ** -zipf_exponent`` (catalogue rank).
    tracks_per_artist : float, default 8.0
        Mean tracks per artist (``1 + Poisson(tracks_per_artist - 1)``).
    track_zipf_exponent : float, default 0.8
        Track popularity within an artist is ``rank ** -track_zipf_exponent``.
    track_length_median_s, track_length_sigma : float, default 210.0 and 0.3
        Track lengths are log-normal with this median (seconds) and log-sd.
    preference_concentration, preference_dominance : float, default 0.2 and 4.0
        User community preferences are Dirichlet with concentration
        ``preference_concentration`` on every community plus
        ``preference_dominance`` on one dominant community drawn uniformly.
    skip_intercept : float, default -1.0
        :math:`\mu`, the skip log-odds intercept.
    skip_sigma_user, skip_sigma_track : float, default 0.6 and 0.4
        Standard deviations of the user and track skip effects.
    skip_beta_position : float, default 0.2
        Coefficient of log(position in session) in the skip log-odds.
    skip_hour_effects : sequence of 4 float, default (0.3, -0.2, 0.0, 0.15)
        Skip log-odds shifts for hours [0, 6), [6, 12), [12, 18), [18, 24).
    skip_fraction : (float, float), default (0.02, 0.15)
        A skipped play lasts ``Uniform(low, high)`` times the track length.

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
        If ``random_seed`` is not an int, a Generator or None.

    Notes
    -----
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
    """
    func = "simulate_service"
    countries = DEFAULT_COUNTRIES if countries is None else countries
    activity = DEFAULT_ACTIVITY if activity is None else activity
    positives = {
        "plays_dispersion": plays_dispersion,
        "play_propensity_shape": play_propensity_shape,
        "zipf_exponent": zipf_exponent,
        "tracks_per_artist": tracks_per_artist,
        "track_zipf_exponent": track_zipf_exponent,
        "track_length_median_s": track_length_median_s,
        "track_length_sigma": track_length_sigma,
        "preference_concentration": preference_concentration,
        "preference_dominance": preference_dominance,
        "skip_sigma_user": skip_sigma_user,
        "skip_sigma_track": skip_sigma_track,
        "skip_beta_position": skip_beta_position,
    }
    n, days, c_share, c_prem = check_service_options(
        func,
        n_users,
        days,
        countries,
        initial_share,
        activity,
        day_of_week_multipliers,
        skip_hour_effects,
        skip_fraction,
        n_artists,
        n_communities,
        plays_mean,
        positives,
    )
    check(tracks_per_artist >= 1, "tracks_per_artist", func, "at least 1", tracks_per_artist)
    start_ts = pd.Timestamp(start)
    check(start_ts.tz is None, "start", func, "a timezone-naive timestamp", start)
    end_ts = start_ts + pd.Timedelta(days=days)
    start_ns, end_ns = start_ts.as_unit("ns").value, end_ts.as_unit("ns").value
    rng, seed = make_rng(random_seed)
    dow_mult = np.asarray(day_of_week_multipliers, dtype=float)
    hour_eff = np.asarray(skip_hour_effects, dtype=float)

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
        zipf_exponent,
        tracks_per_artist,
        track_zipf_exponent,
        track_length_median_s,
        track_length_sigma,
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
    params = {
        "countries": {
            c: (float(s), float(q)) for c, s, q in zip(countries, c_share, c_prem, strict=True)
        },
        "initial_share": float(initial_share),
        "days": days,
        "plays_mean": float(plays_mean),
        "day_of_week_multipliers": tuple(float(v) for v in dow_mult),
        "n_artists": n_artists,
        "n_communities": n_communities,
        "skip_intercept": float(skip_intercept),
        "skip_hour_effects": tuple(float(v) for v in hour_eff),
        "skip_fraction": tuple(float(v) for v in skip_fraction),
        **{k: float(v) for k, v in positives.items()},
    }
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
