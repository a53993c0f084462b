"""ReturnHazardModel: silences as person-period rows, exact forecasts, recovery, real data."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.churn import ReturnHazardModel, activity_table, silence_table
from models.churn.returns import _forecast, _silences
from models.exceptions import DataValidationError
from models.predict import predictive_summary

_HERE = Path(__file__).resolve()
DATA_DIR = next((p / "shared" / "data" for p in (_HERE.parents[3], _HERE.parents[2])
                 if (p / "shared" / "data").is_dir()), _HERE.parents[3] / "shared" / "data")

EDGES = (1, 2, 3, 8, 31)
ALPHA = np.array([0.5, -0.5, -1.5, -2.5, -4.0])  # logit hazard per silence bin


def _simulate(n_users: int, n_periods: int, sigma: float, seed: int, alpha=ALPHA,
              start_spread: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Renewal activity from the model itself: active on day 0, then by the silence hazard.

    Returns the table, the users' effects and each user's silence at the end.
    """
    rng = np.random.default_rng(seed)
    u = sigma * rng.standard_normal(n_users)
    start = rng.integers(0, start_spread + 1, n_users)
    values = np.full((n_users, n_periods), np.nan)
    silence = np.zeros(n_users, dtype=int)
    for t in range(n_periods):
        begin = start == t
        values[begin, t] = 1.0
        silence[begin] = 1
        going = start < t
        b = np.searchsorted(EDGES, silence[going], side="right") - 1
        h = 1.0 / (1.0 + np.exp(-(alpha[b] + u[going])))
        act = rng.random(going.sum()) < h
        values[going, t] = act
        silence[going] = np.where(act, 1, silence[going] + 1)
    index = pd.Index([f"user-{i:03d}" for i in range(n_users)], name="user_id")
    return pd.DataFrame(values, index=index, columns=[f"d{t}" for t in range(n_periods)]), u, \
        silence


def test_silence_table_rows_count_periods_since_the_last_activity():
    days = pd.DataFrame([[np.nan, 1, 0, 0, 1, 1, 0],
                         [1, 0, 1, 0, 0, 0, 0]],
                        index=pd.Index(["b", "A"], name="user_id"),
                        columns=[f"d{i}" for i in range(7)])
    rows = silence_table(days, silence_bins=(1, 2, 4))
    b = rows[rows["user_id"] == "b"]
    assert b["period"].tolist() == ["d2", "d3", "d4", "d5", "d6"]
    assert b["silence"].tolist() == [1, 2, 3, 1, 1]
    assert b["tenure"].tolist() == [0, 1, 1, 0, 0]
    assert b["event"].tolist() == [0, 0, 1, 1, 0]
    a = rows[rows["user_id"] == "A"]  # ids keep their spelling, rows their order
    assert a["silence"].tolist() == [1, 2, 1, 2, 3, 4]
    assert a["tenure"].tolist() == [0, 1, 0, 1, 1, 2]
    _, _, upcoming = _silences(days.to_numpy(float))
    assert upcoming.tolist() == [2, 5]  # the silence of the period after the table


def test_bad_input_is_named():
    days = pd.DataFrame([[1, 0], [0, 0]], index=pd.Index(["a", "b"], name="user_id"))
    with pytest.raises(DataValidationError, match="at least one active period") as err:
        silence_table(days)
    assert "'b'" in str(err.value) or "b" in str(err.value)
    with pytest.raises(DataValidationError, match="whole numbers"):
        silence_table(pd.DataFrame([[1, 3]]))  # 3 active days in a 1-day period
    for bins in [(0, 2), (1, 1, 3), (2, 5), "1,2", (1, 2.5)]:
        with pytest.raises(ValueError, match="silence_bins"):
            ReturnHazardModel(silence_bins=bins)
    with pytest.raises(ValueError, match="user_effects"):
        ReturnHazardModel(user_effects=1)
    rows = silence_table(pd.DataFrame([[1, 0, 0, 0, 1]], index=["a"]), silence_bins=(1, 3))
    model = ReturnHazardModel(silence_bins=(1, 2, 3))  # rows binned otherwise
    with pytest.raises(DataValidationError, match="the bin of 'silence'") as err:
        model.build_model(rows)
    assert "3 row(s)" in str(err.value)  # silences 2, 3, 4: bins 0, 1, 1 there, 1, 2, 2 here
    assert len(ReturnHazardModel(silence_bins=(1, 3)).build_model(rows).free_RVs) == 5


def _brute_force(h: np.ndarray, s0: int, horizon: int) -> tuple[float, float]:
    """P(active at least once) and expected active periods, summing over every path."""
    cap = len(h) - 1
    p_any = expected = 0.0
    for path in itertools.product([0, 1], repeat=horizon):
        s, prob = s0, 1.0
        for a in path:
            hs = h[min(s, cap)]
            prob *= hs if a else 1.0 - hs
            s = 1 if a else s + 1
        p_any += prob * (sum(path) > 0)
        expected += prob * sum(path)
    return p_any, expected


def test_forecast_kernel_equals_the_sum_over_paths_and_its_draws_their_mean():
    rng = np.random.default_rng(3)
    alpha = rng.normal(-1.0, 1.0, size=(2, 3))  # draws, bins
    effect = rng.normal(0.0, 1.0, size=(2, 3))  # draws, users
    bin_of = np.array([0, 0, 1, 1, 2])  # silences 0..4; 4 and beyond in bin 2
    s0 = np.array([1, 3, 7])
    horizon = 9
    p_any, expected, _ = _forecast(alpha, effect, s0, bin_of, horizon, True,
                                   np.empty((0, 0, 0)))
    for d, i in np.ndindex(2, 3):
        h = 1.0 / (1.0 + np.exp(-(alpha[d, bin_of] + effect[d, i])))
        p, e = _brute_force(h, s0[i], horizon)
        assert p_any[d, i] == pytest.approx(p, rel=1e-12)
        assert expected[d, i] == pytest.approx(e, rel=1e-12)
    # one path per draw: many copies of the same draw average to the expectation
    many_alpha = np.repeat(alpha[:1], 20_000, axis=0)
    many_effect = np.repeat(effect[:1], 20_000, axis=0)
    _, exact, sampled = _forecast(many_alpha, many_effect, s0, bin_of, horizon, True,
                                  rng.random((20_000, 3, horizon)))
    se = sampled.std(axis=0) / np.sqrt(len(sampled))
    assert np.all(np.abs(sampled.mean(axis=0) - exact[0]) < 4 * se)


def _fit(table: pd.DataFrame, **options) -> ReturnHazardModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ReturnHazardModel(silence_bins=EDGES, **options).fit(
            table, draws=300, tune=300, chains=2, cores=1, random_seed=1)


@pytest.mark.slow
def test_recovers_the_hazards_and_the_spread_of_the_users():
    table, u, _ = _simulate(300, 120, 0.7, seed=1, start_spread=20)
    model = _fit(table)
    base = model.idata_["posterior"]["baseline"].stack(s=("chain", "draw")).values  # (B, S)
    z = (base.mean(axis=1) - ALPHA) / base.std(axis=1)
    assert np.all(np.abs(z) < 3.5), z
    sigma = model.idata_["posterior"]["group_sigma"].values.ravel()
    assert abs(sigma.mean() - 0.7) < 3 * sigma.std() + 0.03, sigma.mean()
    effect = model.idata_["posterior"]["u_user"].mean(("chain", "draw"))
    order = pd.Index([f"user-{i:03d}" for i in range(300)])
    assert np.corrcoef(effect.sel(user=order).values, u)[0, 1] > 0.8


@pytest.mark.slow
def test_forecasts_match_the_simulated_future():
    full, _, _ = _simulate(400, 150, 0.7, seed=2, start_spread=40)
    train, future = full.iloc[:, :120], full.iloc[:, 120:]
    model = _fit(train)
    p = model.probability_active(train, horizon=30)["mean"].to_numpy()
    e = model.expected_activity(train, horizon=30)["mean"].to_numpy()
    y = future.sum(axis=1).to_numpy()
    # calibrated by fifth (each fifth's share active within its binomial noise, plus slack)
    fifth = pd.qcut(pd.Series(p).rank(method="first"), 5, labels=False).to_numpy()
    for f in range(5):
        pf, yf = p[fifth == f].mean(), (y[fifth == f] > 0).mean()
        assert abs(pf - yf) < 3 * np.sqrt(pf * (1 - pf) / (fifth == f).sum()) + 0.03, (f, pf, yf)
    assert abs(e.mean() - y.mean()) < 0.05 * y.mean()
    # the users' effects carry information: the forecast beats one without them
    flat = _fit(train, user_effects=False).expected_activity(train, horizon=30)["mean"]
    assert np.mean(np.abs(e - y)) < 0.9 * np.mean(np.abs(flat.to_numpy() - y))
    s = predictive_summary(model.sample_activity(train, horizon=30, random_seed=0), ci_prob=0.9)
    inside = np.mean((y >= s["ci_lower"].to_numpy()) & (y <= s["ci_upper"].to_numpy()))
    assert inside >= 0.85, inside


def test_predictions_default_to_the_training_users_and_new_users_draw_an_effect():
    table, _, silence = _simulate(60, 40, 0.5, seed=4)
    model = _fit(table)
    p = model.probability_active(horizon=5)
    assert list(p.index) == list(table.index) and p.index.name == "user_id"
    assert p["mean"].between(0, 1).all()
    new = table.iloc[:3].copy()
    new.index = pd.Index(["new-1", "new-2", "new-3"], name="user_id")
    draws = model.expected_activity(new, horizon=5, return_draws=True)
    same = model.expected_activity(table.iloc[:3], horizon=5, return_draws=True)
    assert draws.dims == ("chain", "draw", "user")
    # same histories, but a population effect instead of the fitted one: wider
    assert float(draws.std(("chain", "draw")).mean()) > float(same.std(("chain", "draw")).mean())
    churn = model.probability_churn(horizon=3, return_draws=True)
    active = model.probability_active(horizon=3, return_draws=True)
    np.testing.assert_allclose(churn + active, 1.0, rtol=1e-12)
    np.testing.assert_array_equal(model.expected_survival(horizon=3, return_draws=True), active)
    with pytest.raises(ValueError, match="horizon"):
        model.probability_active(horizon=2.5)


# ------------------------------------------------------------------ real data
@pytest.mark.data
@pytest.mark.skipif(not (DATA_DIR / "lastfm-1k-events").is_dir(),
                    reason="../shared/data/lastfm-1k-events is absent")
def test_lastfm_split_holdout_scores():
    raw = pd.read_csv(DATA_DIR / "lastfm-1k-events" / "lastfm_jodie_prefix.csv",
                      usecols=[0, 2], header=0, names=["user_id", "seconds"])
    start = pd.Timestamp("2008-01-01")
    events = pd.DataFrame({"user_id": raw["user_id"],
                           "timestamp": start + pd.to_timedelta(raw["seconds"], unit="s")})
    cal = start + pd.Timedelta(days=273)
    days = activity_table(events, start=start, observation_end=cal, period_length=1)
    hold = activity_table(events, start=start, observation_end=cal + pd.Timedelta(days=93),
                          period_length=1).iloc[:, 273:]
    y = hold.reindex(days.index).sum(axis=1).to_numpy()
    assert len(days) == 187 and days.shape[1] == 273
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ReturnHazardModel().fit(days, draws=300, tune=300, chains=2, cores=1,
                                        random_seed=1)
    p = model.probability_active(days, horizon=93)["mean"].to_numpy()
    e = model.expected_activity(days, horizon=93)["mean"].to_numpy()
    # measured (2 x 500 draws): Brier 0.092, MAE 9.31-9.37; BG/NBD 0.104 and 9.52
    assert np.mean((p - (y > 0)) ** 2) <= 0.095
    assert np.mean(np.abs(e - y)) <= 9.5
    s = predictive_summary(model.sample_activity(days, horizon=93, random_seed=0), ci_prob=0.9)
    inside = np.mean((y >= s["ci_lower"].to_numpy()) & (y <= s["ci_upper"].to_numpy()))
    assert inside >= 0.83, inside  # measured 0.856-0.866
