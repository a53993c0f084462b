"""Tests of models.experiments.simulate: schema, assignment, common random numbers, effects.

Statistical checks compare an empirical mean with its expectation under the recorded truth and
allow Z standard errors computed from the sample, never a hand-tuned tolerance.  The
common-random-numbers checks are exact: they compare the potential logs of two variants user by
user (or session by session).
"""

from __future__ import annotations

import doctest
import inspect

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from models.data import schema
from models.data.simulate import (
    ChurnOptions,
    ListeningOptions,
    NetworkOptions,
    simulate_service,
)
from models.experiments import simulate as simulate_module
from models.experiments._potential import nbinom_quantile
from models.experiments.schema import ASSIGNED_AT, EXPERIMENT_ID, VARIANT
from models.experiments.simulate import (
    Effect,
    ExperimentTruth,
    SimulatedExperiment,
    simulate_experiment,
)

Z = 4.5  # allowed standard errors: a false alarm about once in 150,000 checks
DAY = pd.Timedelta(days=1)
#: Sessions at a near-constant rate and (almost) no dropout, per plan.
NO_DROPOUT = {g: {"r": 1.0, "alpha": 2.0, "a": 1.0, "b": 1e5} for g in ("free", "premium")}


@pytest.fixture(scope="module")
def seed() -> int:
    return 20250315


@pytest.fixture(scope="module")
def sim(seed) -> SimulatedExperiment:
    return simulate_experiment(3000, 120, enroll_start=40, random_seed=seed)


def _within(observed: float, expected: float, se: float) -> None:
    assert abs(observed - expected) <= Z * se, (observed, expected, se)


def _sessions(events: pd.DataFrame) -> pd.DataFrame:
    """One row per session: session_id (index), user_id, start, n_plays."""
    return events.groupby(schema.SESSION_ID).agg(
        user_id=(schema.USER_ID, "first"),
        start=(schema.TIMESTAMP, "first"),
        n_plays=(schema.USER_ID, "size"),
    )


def _user_rows(events: pd.DataFrame, users) -> pd.DataFrame:
    return events.loc[events[schema.USER_ID].isin(users)].reset_index(drop=True)


def _assigned_at(sim: SimulatedExperiment, events: pd.DataFrame) -> np.ndarray:
    """Assignment time of the user of each event (NaT when not assigned)."""
    at = sim.truth.users[ASSIGNED_AT].to_numpy()
    return at[events[schema.USER_ID].to_numpy()]


# -- schema and determinism -------------------------------------------------------------------


def test_schema_matches_simulate_service(sim):
    service = simulate_service(50, 30, random_seed=1)
    logs = [sim.events, *sim.truth.potential_events.values()]
    for ev in logs:
        assert list(ev.columns) == list(service.events.columns)
        assert (ev.dtypes == service.events.dtypes).all()
        assert isinstance(ev.index, pd.RangeIndex)
        order = ev.sort_values([schema.USER_ID, schema.TIMESTAMP], kind="stable").index
        assert (order == ev.index).all()
        assert (ev.groupby(schema.SESSION_ID)[schema.USER_ID].nunique() == 1).all()
        assert (ev[schema.TIMESTAMP] >= sim.truth.start).all()
        assert (ev[schema.TIMESTAMP] < sim.truth.observation_end).all()
        # the next play of a session starts when the previous one ends
        ts = ev[schema.TIMESTAMP].to_numpy().astype(np.int64)
        same = ev[schema.SESSION_ID].to_numpy()[1:] == ev[schema.SESSION_ID].to_numpy()[:-1]
        assert (np.diff(ts)[same] == ev[schema.MS_PLAYED].to_numpy()[:-1][same] * 10**6).all()
        tracks = sim.truth.tracks
        artist_of_track = tracks[schema.ARTIST_ID].to_numpy()[ev[schema.TRACK_ID].to_numpy()]
        assert (artist_of_track == ev[schema.ARTIST_ID].to_numpy()).all()
    assert list(sim.users.columns) == list(service.users.columns)
    assert (sim.users.dtypes == service.users.dtypes).all()
    assert len(sim.users) == 3000 and len(sim.truth.users) == 3000
    assert list(sim.assignments.columns) == [
        schema.USER_ID,
        VARIANT,
        ASSIGNED_AT,
        EXPERIMENT_ID,
        schema.COUNTRY,
        schema.PLAN,
    ]
    assert sim.assignments[ASSIGNED_AT].dtype == "datetime64[ns]"
    assert sim.assignments[schema.USER_ID].is_monotonic_increasing
    assert (sim.assignments[EXPERIMENT_ID] == "exp-1").all()
    assert isinstance(sim.truth, ExperimentTruth)
    assert sim.truth.control == "control" and list(sim.truth.potential_events) == [
        "control",
        "treatment",
    ]
    for v in sim.truth.variants:
        assert {f"n_sessions_{v}", f"alive_{v}", f"dropout_time_{v}"} <= set(sim.truth.users)
    assert sim.observation_end == sim.truth.observation_end == pd.Timestamp("2025-05-01")
    assert sim.truth.enroll_start == pd.Timestamp("2025-02-10")
    assert sim.truth.enroll_end == pd.Timestamp("2025-02-17")
    no_id = simulate_experiment(200, 30, enroll_start=5, experiment_id=None, random_seed=1)
    assert EXPERIMENT_ID not in no_id.assignments.columns


def test_service_options_are_those_of_simulate_service():
    ours = inspect.signature(simulate_experiment).parameters
    theirs = inspect.signature(simulate_service).parameters
    for name in ("users", "churn", "listening", "network"):
        assert ours[name].annotation == theirs[name].annotation, name
    net = NetworkOptions(n_artists=30, n_communities=3, tracks_per_artist=2.0)
    lst = ListeningOptions(plays_mean=9.0, skip_fraction=(0.1, 0.2))
    exp = simulate_experiment(300, 40, enroll_start=5, network=net, listening=lst,
                              random_seed=2)
    svc = simulate_service(300, 40, network=net, listening=lst, random_seed=2)
    shared = set(svc.truth.params) - {"days"}
    assert {k: exp.truth.params[k] for k in shared} == {k: svc.truth.params[k] for k in shared}
    # settings simulate_experiment did not expose before reach its catalogue and skips
    assert len(exp.truth.artists) == 30 and exp.truth.tracks["artist_id"].max() < 30
    assert len(exp.truth.tracks) < 30 * 4
    skipped = exp.events.loc[exp.events["skipped"]]
    length = skipped["track_id"].map(exp.truth.tracks.set_index("track_id")["length_ms"])
    assert ((skipped["ms_played"] >= 0.1 * length - 1) & (skipped["ms_played"] <= 0.2 * length + 1)).all()


def test_old_flat_service_settings_warn_and_give_the_same_experiment():
    with pytest.warns(FutureWarning, match=r"network=NetworkOptions\(n_artists=\.\.\.\)"):
        old = simulate_experiment(200, 30, enroll_start=5, n_artists=40, random_seed=4)
    new = simulate_experiment(200, 30, enroll_start=5, network=NetworkOptions(n_artists=40),
                              random_seed=4)
    pd.testing.assert_frame_equal(old.events, new.events)
    with pytest.raises(TypeError, match="unexpected keyword"):
        simulate_experiment(200, 30, enroll_start=5, n_artist=40)


def test_same_seed_same_output_and_different_seed_differs(seed):
    a = simulate_experiment(400, 60, enroll_start=20, random_seed=seed)
    b = simulate_experiment(400, 60, enroll_start=20, random_seed=seed)
    c = simulate_experiment(400, 60, enroll_start=20, random_seed=seed + 1)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.assignments, b.assignments)
    pd.testing.assert_frame_equal(a.truth.users, b.truth.users)
    for v in a.truth.variants:
        pd.testing.assert_frame_equal(a.truth.potential_events[v], b.truth.potential_events[v])
    assert not a.events.equals(c.events)
    drawn = simulate_experiment(200, 30, enroll_start=5)
    again = simulate_experiment(200, 30, enroll_start=5, random_seed=drawn.truth.random_seed)
    pd.testing.assert_frame_equal(drawn.events, again.events)
    gen = simulate_experiment(200, 30, enroll_start=5, random_seed=np.random.default_rng(seed))
    assert gen.truth.random_seed is None


def test_module_doctests():
    result = doctest.testmod(simulate_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# -- triggered assignment ---------------------------------------------------------------------


def test_assigned_at_the_first_session_in_the_window(sim):
    truth, asg = sim.truth, sim.assignments
    starts = _sessions(sim.events)
    in_window = starts.loc[
        (starts["start"] >= truth.enroll_start) & (starts["start"] < truth.enroll_end)
    ]
    first = in_window.groupby("user_id")["start"].min()
    # exactly the users with a session in the window are assigned, at their first one there
    assert set(first.index) == set(asg[schema.USER_ID])
    pd.testing.assert_series_equal(
        first.rename(ASSIGNED_AT).rename_axis(None),
        asg.set_index(schema.USER_ID)[ASSIGNED_AT].rename_axis(None),
    )
    tu = truth.users.set_index(schema.USER_ID)
    assert tu["assigned"].sum() == len(asg)
    assert (tu.loc[asg[schema.USER_ID], VARIANT].to_numpy() == asg[VARIANT].to_numpy()).all()
    assert tu.loc[~tu["assigned"], ASSIGNED_AT].isna().all()
    # unassigned users stay in the log and in the users table
    unassigned = tu.index[~tu["assigned"]]
    assert len(unassigned) > 0 and sim.events[schema.USER_ID].isin(unassigned).any()
    # the attributes pass through
    users = sim.users.set_index(schema.USER_ID)
    for col in (schema.COUNTRY, schema.PLAN):
        assert (users.loc[asg[schema.USER_ID], col].to_numpy() == asg[col].to_numpy()).all()
    # some users signed up in the window and were assigned at their first session
    signup = sim.events.groupby(schema.USER_ID)[schema.TIMESTAMP].min()
    assert (signup.loc[asg[schema.USER_ID]].to_numpy() == asg[ASSIGNED_AT].to_numpy()).any()


def test_allocation_shares_are_binomial(seed):
    alloc = {"control": 0.2, "b": 0.3, "c": 0.5}
    variants = {"control": Effect(), "b": Effect(), "c": Effect(plays=1.1)}
    sim = simulate_experiment(
        6000, 50, enroll_start=10, variants=variants, allocation=alloc, random_seed=seed
    )
    counts = sim.assignments[VARIANT].value_counts()
    n = counts.sum()
    assert n > 1000
    for v, share in alloc.items():
        _within(counts[v] / n, share, np.sqrt(share * (1 - share) / n))


# -- potential outcomes with common random numbers --------------------------------------------


def test_observed_log_is_the_potential_log_of_the_assigned_variant(sim):
    asg, truth = sim.assignments, sim.truth
    unassigned = truth.users.loc[~truth.users["assigned"], schema.USER_ID]
    pieces = []
    for v, potential in truth.potential_events.items():
        users = asg.loc[asg[VARIANT] == v, schema.USER_ID]
        assert len(users) > 0
        mine = _user_rows(potential, users)
        pd.testing.assert_frame_equal(_user_rows(sim.events, users), mine)
        pieces.append(mine)
    pieces.append(_user_rows(truth.potential_events["control"], unassigned))
    assert sum(len(p) for p in pieces) == len(sim.events)


def test_arms_agree_before_assignment_and_for_the_unassigned(sim):
    truth = sim.truth
    control, treatment = (truth.potential_events[v] for v in ("control", "treatment"))
    unassigned = truth.users.loc[~truth.users["assigned"], schema.USER_ID]
    pd.testing.assert_frame_equal(
        _user_rows(control, unassigned), _user_rows(treatment, unassigned)
    )

    def before(events):
        at = _assigned_at(sim, events)
        return events.loc[~pd.isna(at) & (events[schema.TIMESTAMP].to_numpy() < at)]

    pre_c, pre_t = before(control), before(treatment)
    assert len(pre_c) > 1000
    pd.testing.assert_frame_equal(pre_c.reset_index(drop=True), pre_t.reset_index(drop=True))
    # after the assignment the (default, non-trivial) effects make the arms differ
    assert len(control) != len(treatment)


def test_identical_effects_give_identical_logs(seed):
    variants = {
        "control": Effect(),
        "same": Effect(delay_days=3.0),  # identity: no delayed multiplier
        "other": Effect(skip_logodds=0.5),
    }
    sim = simulate_experiment(1500, 60, enroll_start=20, variants=variants, random_seed=seed)
    pe, tu = sim.truth.potential_events, sim.truth.users
    pd.testing.assert_frame_equal(pe["control"], pe["same"])
    assert (tu["alive_control"] == tu["alive_same"]).all()
    assert not pe["control"].equals(pe["other"])
    # a skip effect changes skips (and hence play lengths), never the sessions
    assert (tu["n_sessions_control"] == tu["n_sessions_other"]).all()


# -- the effects act in the right direction and by the right size -----------------------------


def _post_sessions(sim, variant, horizon_days):
    """Per assigned user, sessions in (assigned_at, assigned_at + horizon) under ``variant``."""
    starts = _sessions(sim.truth.potential_events[variant])
    at = sim.truth.users[ASSIGNED_AT].to_numpy()[starts["user_id"].to_numpy()]
    t = starts["start"].to_numpy()
    inside = ~pd.isna(at) & (t > at) & (t < at + np.timedelta64(horizon_days, "D"))
    users = sim.assignments[schema.USER_ID].to_numpy()
    counts = np.bincount(starts["user_id"].to_numpy()[inside], minlength=len(sim.truth.users))
    return counts[users]


def test_session_rate_multiplies_sessions_within_users(seed):
    variants = {"control": Effect(), "treatment": Effect(session_rate=1.5)}
    sim = simulate_experiment(
        3000, 50, enroll_start=12, variants=variants, churn=ChurnOptions(activity=NO_DROPOUT),
        random_seed=seed,
    )
    control = _post_sessions(sim, "control", 30)
    treated = _post_sessions(sim, "treatment", 30)
    # common random numbers: the faster clock only adds sessions, user by user
    assert (treated >= control).all()
    # after the (shared) assignment session: Poisson(1.5 lam W) against Poisson(lam W)
    ratio = treated.sum() / control.sum()
    resid = treated - ratio * control
    _within(ratio, 1.5, np.sqrt(np.sum(resid**2)) / control.sum())


def test_plays_multiply_the_extra_plays_per_session(seed):
    variants = {"control": Effect(), "treatment": Effect(plays=1.5)}
    sim = simulate_experiment(3000, 60, enroll_start=15, variants=variants, random_seed=seed)
    c, t = (_sessions(sim.truth.potential_events[v]) for v in ("control", "treatment"))
    # the same sessions at the same times; each has at least as many plays under treatment
    pd.testing.assert_series_equal(c["start"], t["start"])
    assert (t["n_plays"] >= c["n_plays"]).all()
    at = sim.truth.users[ASSIGNED_AT].to_numpy()[c["user_id"].to_numpy()]
    post = ~pd.isna(at) & (c["start"].to_numpy() >= at)
    assert (t["n_plays"][~post] == c["n_plays"][~post]).all()
    # the assignment session itself is treated
    at_assignment = c["start"].to_numpy() == at
    assert at_assignment.sum() == len(sim.assignments)
    assert (t["n_plays"][at_assignment] > c["n_plays"][at_assignment]).any()
    extra_c, extra_t = c["n_plays"][post] - 1, t["n_plays"][post] - 1
    ratio = extra_t.sum() / extra_c.sum()
    resid = extra_t - ratio * extra_c
    # a few plays are cut where the next session starts, which can only lower the ratio
    assert ratio <= 1.5 + Z * np.sqrt(np.sum(resid**2)) / extra_c.sum()
    assert ratio >= 1.4


def _skip_probability(sim, events, shift):
    prm, truth = sim.truth.params, sim.truth
    position = events.groupby(schema.SESSION_ID).cumcount().to_numpy() + 1
    hour_bin = events[schema.TIMESTAMP].dt.hour.to_numpy() // 6
    at = _assigned_at(sim, events)
    post = ~pd.isna(at) & (events[schema.TIMESTAMP].to_numpy() >= at)
    logit = (
        prm["skip_intercept"]
        + truth.users["skip_effect"].to_numpy()[events[schema.USER_ID].to_numpy()]
        + truth.tracks["skip_effect"].to_numpy()[events[schema.TRACK_ID].to_numpy()]
        + prm["skip_beta_position"] * np.log(position)
        + np.asarray(prm["skip_hour_effects"])[hour_bin]
        + shift * post
    )
    return special.expit(logit), post


def test_skip_logodds_shift_matches_logistic_probabilities(seed):
    variants = {"control": Effect(), "treatment": Effect(skip_logodds=0.8)}
    sim = simulate_experiment(2500, 50, enroll_start=10, variants=variants, random_seed=seed)
    rates = {}
    for v, shift in (("control", 0.0), ("treatment", 0.8)):
        ev = sim.truth.potential_events[v]
        prob, post = _skip_probability(sim, ev, shift)
        skipped = ev[schema.SKIPPED].to_numpy()
        for part in (post, ~post):
            p = prob[part]
            _within(skipped[part].mean(), p.mean(), np.sqrt(np.sum(p * (1 - p))) / p.size)
        rates[v] = skipped[post].mean()
    assert rates["treatment"] > rates["control"] + 0.1


def _hazard_after_assignment(sim, variant):
    """Dropouts per repeat session at risk after the assignment (constant p across users)."""
    starts = _sessions(sim.truth.potential_events[variant])
    user = starts["user_id"].to_numpy()
    at = sim.truth.users[ASSIGNED_AT].to_numpy()[user]
    repeat = np.ones(len(starts), dtype=bool)
    repeat[np.unique(user, return_index=True)[1]] = False  # the first session of each user
    at_risk = np.sum(repeat & ~pd.isna(at) & (starts["start"].to_numpy() >= at))
    assigned = sim.truth.users["assigned"].to_numpy()
    drops = np.sum(assigned & ~sim.truth.users[f"alive_{variant}"].to_numpy())
    return drops, at_risk


def test_dropout_multiplies_the_odds_of_dropping_out(seed):
    # p is nearly the same for every user, so the pooled hazard estimates p itself.
    activity = {g: {"r": 2.0, "alpha": 2.0, "a": 400.0, "b": 3600.0} for g in ("free", "premium")}
    variants = {"control": Effect(), "treatment": Effect(dropout=0.5)}
    sim = simulate_experiment(
        4000, 90, enroll_start=10, variants=variants, churn=ChurnOptions(activity=activity),
        random_seed=seed,
    )
    tu = sim.truth.users.loc[sim.truth.users["assigned"]]
    # common random numbers: a lower dropout probability only keeps users alive longer
    assert (tu["alive_treatment"] >= tu["alive_control"]).all()
    assert tu["alive_treatment"].mean() > tu["alive_control"].mean() + 0.05
    for v, p in (("control", 0.1), ("treatment", special.expit(special.logit(0.1) + np.log(0.5)))):
        drops, at_risk = _hazard_after_assignment(sim, v)
        assert at_risk > 5000
        # p varies a little between users (Beta(400, 3600), sd 0.005): allow for it
        _within(drops / at_risk, p, np.sqrt(p * (1 - p) / at_risk) + 0.005 / Z)


def test_delayed_dropout_acts_only_after_the_delay(seed):
    variants = {"control": Effect(), "treatment": Effect(delayed_dropout=0.3, delay_days=20)}
    sim = simulate_experiment(3000, 100, enroll_start=15, variants=variants, random_seed=seed)
    c, t = (sim.truth.potential_events[v] for v in ("control", "treatment"))

    def until_delay(events, before):
        at = _assigned_at(sim, events)
        cut = at + np.timedelta64(20, "D")
        inside = pd.isna(at) | (events[schema.TIMESTAMP].to_numpy() < cut)
        return events.loc[inside if before else ~inside].reset_index(drop=True)

    pd.testing.assert_frame_equal(until_delay(c, True), until_delay(t, True))
    assert len(until_delay(t, False)) > len(until_delay(c, False))
    tu = sim.truth.users.loc[sim.truth.users["assigned"]]
    assert (tu["alive_treatment"] >= tu["alive_control"]).all()
    assert tu["alive_treatment"].mean() > tu["alive_control"].mean()
    # nobody's dropout moved before the delay
    early = tu["dropout_time_control"] < tu["assigned_time"] + 20
    assert (tu.loc[early, "dropout_time_control"] == tu.loc[early, "dropout_time_treatment"]).all()


def test_effects_by_segment(seed):
    variants = {
        "control": Effect(),
        "treatment": {"free": Effect(session_rate=1.5), "premium": Effect()},
    }
    sim = simulate_experiment(
        1500, 60, enroll_start=20, variants=variants, effect_by="plan", random_seed=seed
    )
    pe, users = sim.truth.potential_events, sim.users
    premium = users.loc[users[schema.PLAN] == "premium", schema.USER_ID]
    free = users.loc[users[schema.PLAN] == "free", schema.USER_ID]
    pd.testing.assert_frame_equal(
        _user_rows(pe["control"], premium), _user_rows(pe["treatment"], premium)
    )
    assert not _user_rows(pe["control"], free).equals(_user_rows(pe["treatment"], free))


# -- before the assignment the service is the BG/NBD of simulate_service ----------------------


def test_sessions_before_enrollment_match_the_bgnbd_expectation(seed):
    sim = simulate_experiment(8000, 40, enroll_start=30, random_seed=seed)
    tu, pop = sim.truth.users, sim.truth.population.loc[sim.truth.users[schema.PLAN]]
    tau = np.clip(30.0 - tu["signup_time"].to_numpy(), 0.0, None)  # days of activity before
    r, alpha, a, b = (pop[k].to_numpy() for k in ("r", "alpha", "a", "b"))
    # E[X(tau)] of the BG/NBD, Fader, Hardie & Lee (2005) eq. 9
    expected = (
        (a + b - 1)
        / (a - 1)
        * (1 - (alpha / (alpha + tau)) ** r * special.hyp2f1(r, b, a + b - 1, tau / (alpha + tau)))
    )
    starts = _sessions(sim.events)
    before = starts.loc[starts["start"] < sim.truth.enroll_start]
    observed = np.bincount(before["user_id"].to_numpy(), minlength=len(tu)) - 1.0
    has = tau > 0
    resid = observed[has] - expected[has]
    _within(observed[has].mean(), expected[has].mean(), resid.std(ddof=1) / np.sqrt(has.sum()))


def test_nbinom_quantile_is_the_inverse_cdf():
    rng = np.random.default_rng(3)
    mu = np.concatenate([[0.0, 1e-9], rng.gamma(1.0, 5.0, 5000)])
    v = rng.random(mu.size)
    got = nbinom_quantile(v, 2.0, mu)
    want = stats.nbinom.ppf(v, 2.0, 2.0 / (2.0 + mu))
    assert (got == want).all()


# -- convenience views ------------------------------------------------------------------------


def test_observed_until_cuts_logs_and_assignments(sim):
    end = sim.truth.enroll_start + 3 * DAY
    cut = sim.observed_until(end)
    assert cut.observation_end == end and cut.truth.observation_end == sim.truth.observation_end
    assert (cut.events[schema.TIMESTAMP] < end).all()
    pd.testing.assert_frame_equal(
        cut.events, sim.events.loc[sim.events[schema.TIMESTAMP] < end].reset_index(drop=True)
    )
    assert (cut.assignments[ASSIGNED_AT] < end).all()
    assert 0 < len(cut.assignments) < len(sim.assignments)
    for v, ev in cut.truth.potential_events.items():
        assert (ev[schema.TIMESTAMP] < end).all()
        assert len(ev) < len(sim.truth.potential_events[v])
    assert set(cut.users[schema.USER_ID]) == set(cut.events[schema.USER_ID])
    pd.testing.assert_frame_equal(cut.truth.users, sim.truth.users)
    # the original is untouched
    assert sim.events[schema.TIMESTAMP].max() >= end


def test_potential_assignments(sim):
    for v in sim.truth.variants:
        pa = sim.potential_assignments(v)
        assert (pa[VARIANT] == v).all()
        assert pa[VARIANT].dtype == sim.assignments[VARIANT].dtype
        pd.testing.assert_frame_equal(
            pa.drop(columns=VARIANT), sim.assignments.drop(columns=VARIANT)
        )
    assert (sim.assignments[VARIANT] != "control").any()


# -- parameter errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"session_rate": -1.0}, "'session_rate' parameter of Effect must be a positive finite"),
        ({"plays": 0}, "'plays' parameter of Effect"),
        ({"plays": float("nan")}, "'plays' parameter of Effect"),
        ({"dropout": float("inf")}, "'dropout' parameter of Effect"),
        ({"dropout": True}, "'dropout' parameter of Effect"),
        ({"skip_logodds": float("inf")}, "'skip_logodds' parameter of Effect must be a finite"),
        ({"skip_logodds": "0.1"}, "'skip_logodds' parameter of Effect"),
        ({"delayed_dropout": 0.0, "delay_days": 5}, "'delayed_dropout' parameter of Effect"),
        ({"delayed_dropout": 0.5}, "'delay_days' parameter of Effect must be set when"),
        ({"delayed_dropout": 0.5, "delay_days": -1}, "'delay_days' parameter of Effect"),
        ({"delay_days": float("inf")}, "'delay_days' parameter of Effect"),
    ],
)
def test_effect_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Effect(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variants": {"control": Effect(plays=1.1), "b": Effect()}}, "the control, 'control'"),
        ({"variants": {"control": Effect()}}, "'variants' parameter"),
        ({"variants": {"control": Effect(), "b": 1.1}}, "'variants' parameter"),
        ({"variants": {"control": Effect(), "b": {"free": Effect()}}}, "'variants' parameter"),
        (
            {"variants": {"control": Effect(), "b": {"free": Effect()}}, "effect_by": "plan"},
            "every plan",
        ),
        ({"allocation": {"control": 0.5, "treatment": 0.6}}, "'allocation' parameter"),
        ({"allocation": {"control": 0.5, "other": 0.5}}, "'allocation' parameter"),
        ({"allocation": {"control": 0.0, "treatment": 1.0}}, "positive probabilities"),
        ({"enroll_start": 30}, "'enroll_start' parameter .* in \\[0, days = 30\\)"),
        ({"enroll_start": -1}, "'enroll_start' parameter"),
        ({"enroll_start": 25, "enroll_days": 7}, "'enroll_days' parameter .* <= days = 30"),
        ({"enroll_days": 0}, "'enroll_days' parameter"),
        ({"effect_by": "age"}, "'effect_by' parameter"),
        ({"experiment_id": 3}, "'experiment_id' parameter"),
        ({"n_users": 0}, "'n_users' parameter of simulate_experiment"),
        ({"start": "2025-01-01 00:00+01:00"}, "'start' parameter"),
    ],
)
def test_parameter_errors(kwargs, match):
    kwargs = {"n_users": 100, "days": 30, "enroll_start": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        simulate_experiment(random_seed=0, **kwargs)


def test_view_errors(sim):
    with pytest.raises(ValueError, match="'end' parameter of SimulatedExperiment.observed_until"):
        sim.observed_until(sim.truth.observation_end + DAY)
    with pytest.raises(ValueError, match="'end' parameter"):
        sim.observed_until(sim.truth.start)
    with pytest.raises(ValueError, match="'variant' parameter of .*potential_assignments"):
        sim.potential_assignments("nope")
    with pytest.raises(TypeError, match="'random_seed'"):
        simulate_experiment(100, 30, enroll_start=5, random_seed=1.5)
