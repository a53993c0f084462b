"""Tests of models.data.simulate: schema, determinism and agreement with the recorded truth.

Every statistical check compares an empirical mean with its expectation under the recorded
truth and allows Z standard errors, the standard error coming from the sample size (or the
model's own variance), never from a hand-tuned tolerance.
"""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special

from models.data import schema
from models.data import simulate as simulate_module
from models.data.simulate import (
    ChurnOptions,
    ListeningOptions,
    NetworkOptions,
    ServiceTruth,
    SimulatedService,
    UserOptions,
    simulate_bgbb,
    simulate_bgnbd,
    simulate_sbg,
    simulate_service,
)

Z = 4.5  # allowed standard errors: a false alarm about once in 150,000 checks
NS_PER_DAY = 86_400 * 10**9


@pytest.fixture(scope="module")
def seed() -> int:
    return 20250101


@pytest.fixture(scope="module")
def sim(seed) -> SimulatedService:
    return simulate_service(3000, 365, random_seed=seed)


def _within(observed: float, expected: float, se: float) -> None:
    assert abs(observed - expected) <= Z * se, (observed, expected, se)


# -- determinism and schema -------------------------------------------------------------------


def test_same_seed_same_output_and_different_seed_differs(seed):
    a = simulate_service(300, 90, random_seed=seed)
    b = simulate_service(300, 90, random_seed=seed)
    c = simulate_service(300, 90, random_seed=seed + 1)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.users, b.users)
    pd.testing.assert_frame_equal(a.truth.users, b.truth.users)
    pd.testing.assert_frame_equal(a.truth.artists, b.truth.artists)
    assert not a.events.equals(c.events)


def test_seed_is_recorded_and_generator_accepted(seed):
    drawn = simulate_service(100, 30)
    again = simulate_service(100, 30, random_seed=drawn.truth.random_seed)
    pd.testing.assert_frame_equal(drawn.events, again.events)
    from_gen = simulate_service(100, 30, random_seed=np.random.default_rng(seed))
    assert from_gen.truth.random_seed is None
    pd.testing.assert_frame_equal(
        from_gen.events, simulate_service(100, 30, random_seed=np.random.default_rng(seed)).events
    )


def test_schema_and_dtypes(sim):
    ev = sim.events
    assert list(ev.columns) == list(schema.EVENT_COLUMNS[:2]) + [
        schema.SESSION_ID,
        schema.TRACK_ID,
        schema.ARTIST_ID,
        schema.MS_PLAYED,
        schema.SKIPPED,
    ]
    assert ev[schema.TIMESTAMP].dtype == "datetime64[ns]"
    for col in (
        schema.USER_ID,
        schema.SESSION_ID,
        schema.TRACK_ID,
        schema.ARTIST_ID,
        schema.MS_PLAYED,
    ):
        assert ev[col].dtype == np.int64, col
    assert ev[schema.SKIPPED].dtype == bool
    assert list(sim.users.columns) == list(schema.USER_COLUMNS)
    assert sim.users[schema.SIGNUP_DATE].dtype == "datetime64[ns]"
    assert set(sim.users[schema.PLAN]) == {"free", "premium"}
    assert isinstance(sim.truth, ServiceTruth)
    assert sim.observation_end == pd.Timestamp("2025-01-01") + pd.Timedelta(days=365)
    # sorted by user then time; sessions are contiguous and belong to one user
    order = ev.sort_values([schema.USER_ID, schema.TIMESTAMP], kind="stable").index
    assert (order == ev.index).all()
    assert ev[schema.SESSION_ID].is_monotonic_increasing
    assert (ev.groupby(schema.SESSION_ID)[schema.USER_ID].nunique() == 1).all()
    # the truth tables agree with the log
    n_plays = ev.groupby(schema.SESSION_ID).size()
    assert (sim.truth.sessions.set_index(schema.SESSION_ID)["n_plays"] == n_plays).all()
    assert (sim.truth.sessions["n_plays"] <= sim.truth.sessions["n_plays_drawn"]).all()
    assert set(sim.truth.artists.columns) >= {"artist_id", "community", "popularity_rank"}
    assert np.allclose(sim.truth.preferences.sum(axis=1), 1.0)


def test_events_inside_window_and_after_signup(sim):
    ev, tu = sim.events, sim.truth.users
    assert (ev[schema.TIMESTAMP] < sim.observation_end).all()
    assert (ev[schema.TIMESTAMP] >= sim.truth.start).all()
    signup = ev[schema.USER_ID].map(sim.users.set_index(schema.USER_ID)[schema.SIGNUP_DATE])
    assert (ev[schema.TIMESTAMP] >= signup).all()
    first = ev.groupby(schema.USER_ID)[schema.TIMESTAMP].min()
    exact = sim.truth.start + pd.to_timedelta(tu["signup_time"].to_numpy(), unit="D")
    assert np.abs((first.to_numpy() - exact.to_numpy()) / np.timedelta64(1, "ms")).max() < 1
    # every user is in the log, with exactly the recorded number of sessions
    n_sess = ev.groupby(schema.USER_ID)[schema.SESSION_ID].nunique()
    assert (n_sess.to_numpy() == tu["n_sessions"].to_numpy()).all()


def test_dropout_and_recency_match_the_log(sim):
    ev, tu = sim.events, sim.truth.users
    starts = ev.groupby(schema.SESSION_ID).agg(
        user=(schema.USER_ID, "first"), t=(schema.TIMESTAMP, "first")
    )
    last = starts.groupby("user")["t"].max()
    days = (last.to_numpy() - sim.truth.start.to_datetime64()) / np.timedelta64(1, "D")
    recency = days - tu["signup_time"].to_numpy()
    assert np.allclose(recency, tu["recency"], atol=1e-6)
    dropped = ~tu["alive"].to_numpy()
    assert np.allclose(days[dropped], tu["dropout_time"].to_numpy()[dropped], atol=1e-6)
    assert np.isinf(tu.loc[tu["alive"], "dropout_time"]).all()
    assert tu.loc[tu["alive"], "dropout_timestamp"].isna().all()
    assert (tu.loc[dropped, "frequency"] >= 1).all()  # no dropout right after the first session


# -- the log reproduces the truth's moments ----------------------------------------------------


def test_repeat_sessions_match_bgnbd_expectation(sim):
    tu = sim.truth.users
    lam, p, T = tu["lam"].to_numpy(), tu["p"].to_numpy(), tu["T"].to_numpy()
    expected = (1.0 - np.exp(-lam * p * T)) / p  # E[X(T) | lambda, p], Fader et al. (2005) eq. 7
    observed = sim.events.groupby(schema.USER_ID)[schema.SESSION_ID].nunique().to_numpy() - 1
    resid = observed - expected
    _within(observed.mean(), expected.mean(), resid.std(ddof=1) / np.sqrt(resid.size))


def _skip_probabilities(sim):
    ev, truth = sim.events, sim.truth
    prm = truth.params
    position = ev.groupby(schema.SESSION_ID).cumcount().to_numpy() + 1
    hour = ev[schema.TIMESTAMP].dt.hour.to_numpy()
    logit = (
        prm["skip_intercept"]
        + truth.users["skip_effect"].to_numpy()[ev[schema.USER_ID].to_numpy()]
        + truth.tracks["skip_effect"].to_numpy()[ev[schema.TRACK_ID].to_numpy()]
        + prm["skip_beta_position"] * np.log(position)
        + np.asarray(prm["skip_hour_effects"])[hour // 6]
    )
    return special.expit(logit), hour // 6


def test_skip_rate_matches_logistic_probabilities(sim):
    prob, hour_bin = _skip_probabilities(sim)
    skipped = sim.events[schema.SKIPPED].to_numpy()
    for b in range(4):  # overall agreement in each hour bin checks the hour effects too
        pb, sb = prob[hour_bin == b], skipped[hour_bin == b]
        _within(sb.mean(), pb.mean(), np.sqrt(np.sum(pb * (1 - pb))) / pb.size)


def test_ms_played_full_or_short_fraction(sim):
    ev = sim.events
    length = sim.truth.tracks["length_ms"].to_numpy()[ev[schema.TRACK_ID].to_numpy()]
    ms, skipped = ev[schema.MS_PLAYED].to_numpy(), ev[schema.SKIPPED].to_numpy()
    assert (ms[~skipped] == length[~skipped]).all()
    low, high = sim.truth.params["skip_fraction"]
    frac = ms[skipped] / length[skipped]
    assert (frac >= low - 1e-3).all() and (frac <= high + 1e-3).all()
    # the next play of a session starts when the previous one ends
    ts = ev[schema.TIMESTAMP].to_numpy().astype(np.int64)
    same = ev[schema.SESSION_ID].to_numpy()[1:] == ev[schema.SESSION_ID].to_numpy()[:-1]
    assert (np.diff(ts)[same] == ms[:-1][same] * 10**6).all()
    # artist of each play is the artist of its track
    artist_of_track = sim.truth.tracks[schema.ARTIST_ID].to_numpy()
    assert (artist_of_track[ev[schema.TRACK_ID].to_numpy()] == ev[schema.ARTIST_ID]).all()


def test_share_of_plays_in_dominant_community(sim):
    ev, truth = sim.events, sim.truth
    user = ev[schema.USER_ID].to_numpy()
    dominant = truth.users["dominant_community"].to_numpy()[user]
    q = truth.preferences.to_numpy()[user, dominant]
    hit = truth.artists["community"].to_numpy()[ev[schema.ARTIST_ID].to_numpy()] == dominant
    _within(hit.mean(), q.mean(), np.sqrt(np.sum(q * (1 - q))) / q.size)


def test_day_of_week_play_multipliers(sim):
    s = sim.truth.sessions
    # Sessions with a day or more before the next one (or the end) are never truncated in
    # practice, and the gap is independent of the number of plays.
    nxt = s.groupby(schema.USER_ID)["start"].shift(-1).fillna(sim.observation_end)
    ok = ((nxt - s["start"]) > pd.Timedelta(days=1)).to_numpy()
    counts = sim.events.groupby(schema.SESSION_ID).size().to_numpy()[ok] - 1
    mu, dow = s["mu"].to_numpy()[ok], s["day_of_week"].to_numpy()[ok]
    phi = sim.truth.params["plays_dispersion"]
    assert (s["day_of_week"] == s["start"].dt.day_of_week).all()
    for d in range(7):
        m = dow == d
        var = np.sum(mu[m] + mu[m] ** 2 / phi)  # NegBin variance
        _within(counts[m].sum(), mu[m].sum(), np.sqrt(var))
    # and the multipliers are recorded as used
    rho = sim.truth.users["play_propensity"].to_numpy()[s[schema.USER_ID].to_numpy()]
    mult = np.asarray(sim.truth.params["day_of_week_multipliers"])
    assert np.allclose(
        s["mu"], (sim.truth.params["plays_mean"] - 1) * rho * mult[s["day_of_week"].to_numpy()]
    )


def test_zipf_exponent_recovered_within_communities(sim):
    art = sim.truth.artists
    n = np.bincount(sim.events[schema.ARTIST_ID].to_numpy(), minlength=len(art))
    log_rank = np.log(art["popularity_rank"].to_numpy())
    comm = art["community"].to_numpy()
    n_comm = np.bincount(comm, weights=n)

    def within(s):
        w = np.exp(-s * log_rank)
        return w / np.bincount(comm, weights=w)[comm]

    def nll(s):
        return -np.sum(n * np.log(within(s)))

    s_hat = optimize.minimize_scalar(nll, bounds=(0.05, 5.0), method="bounded").x
    prob = within(s_hat)
    mean = np.bincount(comm, weights=prob * log_rank)
    var = np.bincount(comm, weights=prob * log_rank**2) - mean**2
    se = 1.0 / np.sqrt(np.sum(n_comm * var))  # from the Fisher information
    _within(s_hat, sim.truth.params["zipf_exponent"], se)


# -- the small exact generators against closed forms -------------------------------------------


def test_sbg_survival_matches_beta_ratio(seed):
    n, a, b, periods = 50_000, 0.8, 2.5, 8
    surv = simulate_sbg(n, a, b, periods, random_seed=seed)
    t = np.arange(periods + 1)
    expected = np.exp(special.betaln(a, b + t) - special.betaln(a, b))
    assert surv[0] == n and (np.diff(surv) <= 0).all()
    for s_obs, s_exp in zip(surv[1:] / n, expected[1:], strict=True):
        _within(s_obs, s_exp, np.sqrt(s_exp * (1 - s_exp) / n))


def test_bgnbd_expected_frequency_matches_hyp2f1(seed):
    n, r, alpha, a, b, T = 40_000, 0.7, 4.0, 2.2, 5.0, 30.0
    df = simulate_bgnbd(n, r, alpha, a, b, T, random_seed=seed)
    expected = (
        (a + b - 1)
        / (a - 1)
        * (1 - (alpha / (alpha + T)) ** r * special.hyp2f1(r, b, a + b - 1, T / (alpha + T)))
    )
    x = df["frequency"].to_numpy()
    _within(x.mean(), expected, x.std(ddof=1) / np.sqrt(n))
    # P(X = 0) = E[exp(-lambda T)] = (alpha / (alpha + T))^r: no dropout at time 0
    p0 = (alpha / (alpha + T)) ** r
    _within((x == 0).mean(), p0, np.sqrt(p0 * (1 - p0) / n))
    assert ((df["recency"] > 0) == (x > 0)).all() and (df["recency"] <= T).all()
    assert (~df["alive"] <= (x > 0)).all()


def test_bgnbd_accepts_per_customer_T(seed):
    T = np.linspace(1.0, 50.0, 200)
    df = simulate_bgnbd(200, 1.0, 1.0, 2.0, 3.0, T, random_seed=seed)
    assert np.array_equal(df["T"], T) and (df["recency"] <= T).all()


def test_bgbb_mean_frequency_and_alive_share(seed):
    n, al, be, ga, de, n_opp = 40_000, 1.2, 0.8, 0.6, 2.5, 6
    df = simulate_bgbb(n, al, be, ga, de, n_opp, random_seed=seed)
    t = np.arange(1, n_opp + 1)
    surv = np.exp(special.betaln(ga, de + t) - special.betaln(ga, de))  # E[(1 - theta)^t]
    expected = al / (al + be) * surv.sum()  # E[X(n)] = E[p] * sum_t E[(1 - theta)^t]
    x = df["frequency"].to_numpy()
    _within(x.mean(), expected, x.std(ddof=1) / np.sqrt(n))
    alive = df["alive"].to_numpy()
    _within(alive.mean(), surv[-1], np.sqrt(surv[-1] * (1 - surv[-1]) / n))
    assert (df["recency"] <= n_opp).all() and (x <= df["recency"]).all()


# -- parameter errors and docs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"n_users": -5},
            r"'n_users' parameter of simulate_service must be a positive integer\. "
            r"Got -5 instead",
        ),
        ({"days": 0}, r"'days' parameter .* positive integer\. Got 0"),
        ({"start": "2025-01-01T00:00+01:00"}, r"'start' .* timezone-naive"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_service(**{"n_users": 10, "days": 10, **kwargs})


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: UserOptions(initial_share=1.5),
         r"'initial_share' parameter of UserOptions .* in \[0, 1\]\. Got 1\.5"),
        (lambda: UserOptions(countries={"US": (0.5, 1.5)}), r"'countries' parameter of UserOptions"),
        (lambda: ListeningOptions(day_of_week_multipliers=(1.0,) * 6),
         r"'day_of_week_multipliers' parameter of ListeningOptions"),
        (lambda: ChurnOptions(activity={"free": {"r": 1.0}}), r"'activity' parameter of ChurnOptions"),
        (lambda: NetworkOptions(n_communities=999),
         r"'n_communities' parameter of NetworkOptions .* at most n_artists \(500\)"),
        (lambda: ListeningOptions(skip_fraction=(0.5, 0.1)), r"'skip_fraction'"),
        (lambda: ListeningOptions(plays_dispersion=-1.0),
         r"'plays_dispersion' .* positive finite number"),
        (lambda: ListeningOptions(skip_intercept=float("nan")), r"'skip_intercept' .* finite"),
        (lambda: NetworkOptions(n_artists=2.5), r"'n_artists' parameter of NetworkOptions"),
    ],
)
def test_bad_options_raise_where_they_are_made(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_options_reach_the_simulation_and_old_keywords_warn():
    opts = {"users": UserOptions(countries={"SE": (1.0, 1.0)}, initial_share=1.0),
            "listening": ListeningOptions(plays_mean=1.0),
            "network": NetworkOptions(n_artists=12, n_communities=2)}
    sim = simulate_service(200, 30, random_seed=1, **opts)
    assert (sim.users["country"] == "SE").all() and (sim.users["plan"] == "premium").all()
    assert (sim.users["signup_date"] == sim.truth.start).all()  # all start on day one
    assert (sim.truth.sessions["n_plays_drawn"] == 1).all()  # plays_mean 1: one play each
    assert sim.events["artist_id"].max() < 12 and sim.truth.params["n_communities"] == 2
    with pytest.warns(FutureWarning, match=r"listening=ListeningOptions\(plays_mean=\.\.\.\)"):
        old = simulate_service(200, 30, random_seed=1, plays_mean=1.0, users=opts["users"],
                               network=opts["network"])
    pd.testing.assert_frame_equal(old.events, sim.events)
    with pytest.raises(TypeError, match="must be a NetworkOptions"):
        simulate_service(10, 10, network={"n_artists": 12})
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['n_artist'\]"):
        simulate_service(10, 10, n_artist=12)


def test_bad_seed_and_generator_parameters_raise():
    with pytest.raises(TypeError, match="'random_seed' parameter"):
        simulate_service(10, 10, random_seed="abc")
    with pytest.raises(ValueError, match="'n_periods' parameter of simulate_sbg"):
        simulate_sbg(10, 1.0, 1.0, 0)
    with pytest.raises(ValueError, match="'T' parameter of simulate_bgnbd"):
        simulate_bgnbd(10, 1.0, 1.0, 1.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="'gamma' parameter of simulate_bgbb"):
        simulate_bgbb(10, 1.0, 1.0, 0.0, 1.0, 5)


def test_docstring_examples_run():
    result = doctest.testmod(simulate_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
