"""Tests of skip_table and SkipModel: exact Binomial/Bernoulli agreement, predictions, recovery."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import special, stats

from models.exceptions import ConvergenceWarning, DataValidationError, NotFittedError
from models.listening import SkipModel, skip_table

HOURS = np.array([0.3, -0.2, 0.0, -0.1])

#: The simulated users' segment; tables and models have none unless asked.
PLAN = ("plan",)


def simulate_skips(n_users=60, n_tracks=40, n_sessions=6, session_len=8, *, intercept=-1.0,
                   sigma_user=0.6, sigma_track=0.4, beta_position=0.2, plan_shift=0.3, seed=0):
    """Draw a listening log from SkipModel's own process (vectorised)."""
    rng = np.random.default_rng(seed)
    b_user = sigma_user * rng.normal(size=n_users)
    b_track = sigma_track * rng.normal(size=n_tracks)
    plan = rng.choice(["free", "premium"], n_users)
    n = n_users * n_sessions * session_len
    user = np.repeat(np.arange(n_users), n_sessions * session_len)
    session = np.repeat(np.arange(n_users * n_sessions), session_len)
    position = np.tile(np.arange(1, session_len + 1), n_users * n_sessions)
    start = pd.Timestamp("2025-01-01") + pd.to_timedelta(
        np.repeat(rng.uniform(0, 28 * 24, n_users * n_sessions), session_len), unit="h")
    ts = start + pd.to_timedelta(position - 1, unit="min")
    track = rng.integers(0, n_tracks, n)
    hour_bin = ts.hour.to_numpy() // 6
    g = np.where(plan[user] == "premium", -plan_shift / 2, plan_shift / 2)
    eta = (intercept + b_user[user] + b_track[track] + beta_position * np.log(position)
           + HOURS[hour_bin] + g)
    skipped = rng.random(n) < special.expit(eta)
    events = pd.DataFrame({"user_id": np.array([f"u{i:03d}" for i in user], dtype=object),
                           "timestamp": ts, "session_id": session,
                           "track_id": np.array([f"t{i:03d}" for i in track], dtype=object),
                           "skipped": skipped})
    users = pd.DataFrame({"user_id": [f"u{i:03d}" for i in range(n_users)], "plan": plan})
    return events, users


@pytest.fixture(scope="module")
def log():
    return simulate_skips(20, 15, 3, 5, seed=1)


@pytest.fixture(scope="module")
def table(log):
    return skip_table(*log, group=PLAN)


def test_skip_table_positions_hours_and_aggregation():
    events = pd.DataFrame({
        "user_id": ["a"] * 4 + ["b"],
        "timestamp": pd.to_datetime(["2024-01-01 05:59", "2024-01-01 06:01", "2024-01-01 09:00",
                                     "2024-01-01 09:02", "2024-01-01 23:00"]),
        "track_id": ["x", "y", "x", "x", "x"], "skipped": [1, 0, 1, 0, 1],
        "plan": ["free"] * 4 + ["premium"]})
    out = skip_table(events, max_position=2, group=PLAN).set_index(["user_id", "track_id", "position"])
    # a: 05:59 and 06:01 are one session (gap < 30 min); 09:00 starts a new one
    assert out.loc[("a", "x", 1), "n_plays"].tolist() == [1, 1]  # hour bins 0 and 1
    assert out.loc[("a", "y", 2), "hour_bin"] == 1
    assert out.loc[[("a", "x", 2)]].to_dict("records") == [
        {"hour_bin": 1, "plan": "free", "n_plays": 1, "n_skips": 0}]
    assert out.loc[("b", "x", 1), "hour_bin"] == 3
    assert out["n_plays"].sum() == 5 and out["n_skips"].sum() == 3


def test_skip_table_joins_users_and_sums(log, table):
    events, users = log
    assert table["n_plays"].sum() == len(events)
    assert table["n_skips"].sum() == events["skipped"].sum()
    assert table["position"].max() == 5 and set(table["plan"]) == {"free", "premium"}


def test_skip_table_errors(log):
    events, users = log
    bad = events.astype({"skipped": float})
    bad.loc[3, "skipped"] = np.nan
    with pytest.raises(DataValidationError, match="column 'skipped'.*1 row"):
        skip_table(bad, users)
    with pytest.raises(DataValidationError, match="users listed in the users table"):
        skip_table(events, users.iloc[1:], group=PLAN)
    with pytest.raises(DataValidationError, match="column 'plan'.*pass users="):
        skip_table(events, group=PLAN)
    # no segments by default: a plain log needs no users table
    assert "plan" not in skip_table(events).columns
    with pytest.raises(ValueError, match="'hour_bins' parameter of skip_table must be a divisor"):
        skip_table(events, users, hour_bins=5)


def test_binomial_rows_equal_bernoulli_plays(log, table):
    events, users = log
    m = SkipModel(group=PLAN)
    model = m._build_model(m._validate_data(table))
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(scale=0.4, size=np.shape(v))
             for k, v in model.initial_point().items()}
    loglik = model.compile_fn(model.replace_rvs_by_values([model.logp(vars=model.observed_RVs)]),
                              inputs=model.value_vars, on_unused_input="ignore", mode="FAST_COMPILE")(point)[0]
    names = ["intercept", "sigma_user_id", "user_id_z", "sigma_track_id", "track_id_z",
             "plan_effect", "beta_position", "hour_effect"]
    fn = model.compile_fn(model.replace_rvs_by_values([model[n] for n in names]),
                          inputs=model.value_vars, on_unused_input="ignore", mode="FAST_COMPILE")
    v = dict(zip(names, fn(point), strict=True))
    full = skip_table(events, users, max_position=10**6, group=PLAN)  # positions per play
    rows = events.sort_values(["user_id", "timestamp"]).copy()
    rows["position"] = rows.groupby("session_id").cumcount() + 1
    rows = rows.merge(users, on="user_id")
    eta = (v["intercept"]
           + v["sigma_user_id"] * v["user_id_z"][pd.factorize(rows["user_id"], sort=True)[0]]
           + v["sigma_track_id"] * v["track_id_z"][pd.factorize(rows["track_id"], sort=True)[0]]
           + v["plan_effect"][(rows["plan"] == "premium").to_numpy().astype(int)]
           + v["beta_position"] * np.log(rows["position"].to_numpy())
           + v["hour_effect"][rows["timestamp"].dt.hour.to_numpy() // 6])
    y = rows["skipped"].to_numpy()
    bernoulli = np.sum(np.where(y, -np.logaddexp(0, -eta), -np.logaddexp(0, eta)))
    log_binom = np.sum(special.gammaln(table["n_plays"] + 1) - special.gammaln(table["n_skips"] + 1)
                       - special.gammaln(table["n_plays"] - table["n_skips"] + 1))
    assert len(full) == len(table)  # positions here never exceed the cap
    assert loglik - log_binom == pytest.approx(bernoulli, rel=1e-10)


@pytest.mark.parametrize(("column", "value", "match"), [
    ("n_skips", 99, "at most 'n_plays' skips"),
    ("n_skips", -1, "non-negative counts"),
    ("n_plays", 2.5, "whole numbers"),
    ("position", 0, "positions of 1 or more"),
    ("user_id", None, "no missing values"),
])
def test_table_errors(table, column, value, match):
    bad = table.astype({column: object if column == "user_id" else float})
    bad.loc[2, column] = value
    with pytest.raises(DataValidationError, match=f"column '{column}'.*{match}"):
        SkipModel(group=PLAN)._validate_data(bad)
    with pytest.raises(DataValidationError, match="column 'n_plays': expected a column"):
        SkipModel(group=PLAN)._validate_data(table.drop(columns="n_plays"))


@pytest.fixture(scope="module")
def fake_fit(table):
    m = SkipModel(group=PLAN)
    data = m._validate_data(table)
    levels = m._levels(data)
    rng = np.random.default_rng(0)

    def var(dim=None):
        size = (2, 3) + ((len(levels[dim]),) if dim else ())
        dims = ("chain", "draw") + ((dim,) if dim else ())
        return xr.DataArray(rng.normal(scale=0.5, size=size), dims=dims,
                            coords={dim: levels[dim]} if dim else None)

    post = xr.Dataset({"intercept": var(), "sigma_user_id": np.abs(var()),
                       "sigma_track_id": np.abs(var()), "user_id_z": var("user_id"),
                       "track_id_z": var("track_id"), "plan_effect": var("plan"),
                       "beta_position": var(), "hour_effect": var("hour_bin")})
    m.data_ = data
    m.idata_ = xr.DataTree.from_dict({"posterior": post})
    m.idata_.attrs["listening_models"] = json.dumps({"method": "nuts"})
    return m, post, data, levels


def test_probability_skip_matches_formula(fake_fit):
    m, post, data, levels = fake_fit
    p = {k: post[k].values.reshape(6, *post[k].shape[2:]) for k in post.data_vars}
    code = {c: pd.Categorical(data[c], categories=levels[c]).codes
            for c in ("user_id", "track_id", "plan")}
    eta = (p["intercept"][:, None] + p["sigma_user_id"][:, None] * p["user_id_z"][:, code["user_id"]]
           + p["sigma_track_id"][:, None] * p["track_id_z"][:, code["track_id"]]
           + p["plan_effect"][:, code["plan"]]
           + p["beta_position"][:, None] * np.log(data["position"].to_numpy())
           + p["hour_effect"][:, data["hour_bin"].to_numpy()])
    draws = m.probability_skip(return_draws=True, max_draws=None)
    assert draws.dims[:2] == ("chain", "draw") and draws.shape == (2, 3, len(data))
    np.testing.assert_allclose(draws.values.reshape(6, -1), special.expit(eta), rtol=1e-12)


def test_track_skip_excess(fake_fit):
    m, post, data, levels = fake_fit
    out = m.track_skip_excess()
    effect = post["sigma_track_id"] * post["track_id_z"]
    expected = effect.mean(("chain", "draw")).to_series()
    np.testing.assert_allclose(out["mean"], expected.loc[out.index])
    assert out["mean"].is_monotonic_decreasing
    t = out.index[0]
    assert out.loc[t, "prob_positive"] == pytest.approx(float((effect.sel(track_id=t) > 0).mean()))
    assert out["n_plays"].sum() == data["n_plays"].sum()


def test_prediction_errors(fake_fit):
    m, _, data, _ = fake_fit
    rows = data.iloc[:3].assign(track_id=["t999", data["track_id"].iloc[1], "t998"])
    with pytest.raises(DataValidationError, match=r"column 'track_id': expected labels seen in "
                                                  r"training.*2 row.*'t999'"):
        m.probability_skip(rows)
    with pytest.raises(DataValidationError, match="column 'plan'.*'gold'"):
        m.probability_skip(data.iloc[:1].assign(plan="gold"))
    with pytest.raises(NotFittedError):
        SkipModel(group=PLAN).track_skip_excess()


def test_fast_fit_and_save_load(table, tmp_path):
    m = SkipModel(group=PLAN).fit(table, draws=60, tune=60, chains=2, cores=1, random_seed=1)
    path = m.save(tmp_path / "skips.nc")
    loaded = SkipModel.load(path)
    np.testing.assert_allclose(loaded.probability_skip(random_seed=0)["mean"],
                               m.probability_skip(random_seed=0)["mean"])
    assert len(loaded.track_skip_excess()) == table["track_id"].nunique()


@pytest.mark.slow
def test_interval_coverage_over_repeated_simulations():
    """90% intervals cover the truth at about the nominal rate over 8 simulations.

    Each replication is a fresh draw of the effects and skips from the model's own process
    (30 users, 25 tracks, 1,200 plays); 5 population parameters are checked per replication.
    """
    truth = {"intercept": -1.0, "sigma_user": 0.6, "sigma_track": 0.4, "beta_position": 0.2,
             "premium": -0.15}
    covered = dict.fromkeys(truth, 0)
    n_rep, divergent = 8, 0
    for r in range(n_rep):
        events, users = simulate_skips(30, 25, 5, 8, seed=200 + r, plan_shift=0.3,
                                       **{k: v for k, v in truth.items() if k != "premium"})
        with warnings.catch_warnings():  # 2 x 150 draws: ESS flags are expected, not tested
            warnings.simplefilter("ignore", ConvergenceWarning)
            m = SkipModel(group=PLAN).fit(skip_table(events, users, group=PLAN), draws=150, tune=150, chains=2,
                                cores=1, random_seed=r, init="adapt_diag")
        divergent += m.fit_report_.n_divergent
        post = m.idata_["posterior"]
        draws = {"intercept": post["intercept"], "sigma_user": post["sigma_user_id"],
                 "sigma_track": post["sigma_track_id"], "beta_position": post["beta_position"],
                 "premium": post["plan_effect"].sel(plan="premium")}
        for name, x in draws.items():
            lo, hi = np.quantile(x.values.ravel(), [0.05, 0.95])
            covered[name] += bool(lo <= truth[name] <= hi)
    assert divergent <= 2, divergent
    low, high = stats.binom.ppf([0.001, 0.999], n_rep * len(truth), 0.9)
    assert low <= sum(covered.values()) <= high, covered
    assert min(covered.values()) >= 5, covered


@pytest.mark.slow
def test_skip_truth_of_simulated_service():
    simulate = pytest.importorskip("models.data.simulate")
    sim = simulate.simulate_service(80, 21, random_seed=9)
    table = skip_table(sim.events, sim.users)
    m = SkipModel(group=()).fit(table, draws=200, tune=200, chains=2, cores=1, random_seed=2,
                                init="adapt_diag")
    beta = m.idata_["posterior"]["beta_position"]
    truth = sim.truth.params.get("skip_beta_position", 0.2)
    assert float(beta.quantile(0.01)) <= truth <= float(beta.quantile(0.99))
    observed = table["n_skips"].sum() / table["n_plays"].sum()
    predicted = np.average(m.probability_skip()["mean"], weights=table["n_plays"])
    assert predicted == pytest.approx(observed, abs=0.02)
