"""Churn-model projections of an experiment: activity summaries, arm projections, checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import integrate, special

from models.churn import BetaGeoModel
from models.data.simulate import simulate_bgnbd
from models.exceptions import DataValidationError, NotFittedError
from models.experiments.projection import (
    compare_with_observed,
    exposure_activity,
    project_arms,
    projection_curve,
)

PARAMS = ("r", "alpha", "a", "b")
ARMS = {"control": dict(r=0.9, alpha=4.0, a=1.1, b=6.0),
        "treatment": dict(r=1.0, alpha=4.0, a=1.1, b=9.0)}


def fake_fit(model: BetaGeoModel, data: pd.DataFrame, draws: dict) -> BetaGeoModel:
    """A fixed fake posterior: ``draws[name]`` has shape (draw, segment)."""
    labels = sorted(data[model.segment].unique())
    posterior = xr.Dataset(
        {f"{k}_segment": (("chain", "draw", "segment"), np.asarray(v, float)[None])
         for k, v in draws.items()},
        coords={"chain": [0], "draw": np.arange(len(draws["r"])), "segment": labels})
    model.data_ = model._validate_data(data)
    model.idata_ = xr.DataTree.from_dict({"posterior": posterior})
    return model


def expected_repeat(r, alpha, a, b, t):
    """E[X(t)] of a new user by quadrature over lam ~ Gamma(r, alpha), p ~ Beta(a, b)."""
    def inner(p):
        # E[X(t) | p] = E_lam[(1 - exp(-lam p t)) / p]
        m = (1.0 - (alpha / (alpha + p * t)) ** r) / p
        return m * math.exp((a - 1) * math.log(p) + (b - 1) * math.log1p(-p)
                            - special.betaln(a, b))
    return integrate.quad(inner, 0, 1, epsabs=0, epsrel=1e-11, limit=200)[0]


def alive_new_user(r, alpha, a, b, t):
    def inner(p):
        return (alpha / (alpha + p * t)) ** r * math.exp(
            (a - 1) * math.log(p) + (b - 1) * math.log1p(-p) - special.betaln(a, b))
    return integrate.quad(inner, 0, 1, epsabs=0, epsrel=1e-11, limit=200)[0]


def two_arm_activity(n: int, seed: int, window: int = 14) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for k, (variant, p) in enumerate(ARMS.items()):
        sim = simulate_bgnbd(n, **p, T=float(window - 1), random_seed=rng)
        parts.append(pd.DataFrame({c: sim[c].to_numpy() for c in ("frequency", "recency", "T")},
                                  index=np.arange(n) + k * n).assign(variant=variant))
    return pd.concat(parts).rename_axis("user_id")


# ---------------------------------------------------------------- exposure_activity
def test_exposure_activity_counts_days_from_each_assignment():
    t0 = pd.Timestamp("2025-03-01 18:00")
    log = pd.DataFrame({
        "user_id": ["a", "a", "a", "a", "a", "b", "b", "c"],
        "timestamp": [t0 - pd.Timedelta(hours=1),        # before assignment: ignored
                      t0,                                 # day 0 (birth)
                      t0 + pd.Timedelta(hours=30),        # day 1
                      t0 + pd.Timedelta(hours=31),        # day 1 again
                      t0 + pd.Timedelta(days=7),          # day 7 = window end: outside
                      t0 + pd.Timedelta(days=2, hours=5), # b is assigned 2 days later: day 0
                      t0 + pd.Timedelta(days=8, hours=23),  # b: day 6
                      t0 + pd.Timedelta(days=20)],        # c is not assigned
    })
    table = pd.DataFrame({"user_id": ["b", "a"], "variant": ["treatment", "control"],
                          "assigned_at": [t0 + pd.Timedelta(days=2), t0]})
    out = exposure_activity(log, table, window_days=7)
    assert list(out.index) == ["b", "a"]
    assert out.loc["a"].tolist() == [1, 1, 6, "control"]
    assert out.loc["b"].tolist() == [1, 6, 6, "treatment"]
    assert len(log) == 8 and list(table["user_id"]) == ["b", "a"]  # inputs untouched


def test_exposure_activity_errors():
    t0 = pd.Timestamp("2025-03-01")
    log = pd.DataFrame({"user_id": [1, 2], "timestamp": [t0, t0 + pd.Timedelta(days=5)]})
    table = pd.DataFrame({"user_id": [1, 1], "variant": ["control", "treatment"],
                          "assigned_at": [t0, t0]})
    with pytest.raises(DataValidationError, match="one assignment per user"):
        exposure_activity(log, table, window_days=3)
    with pytest.raises(DataValidationError, match="column 'assigned_at'.*window that ends"):
        exposure_activity(log, table.iloc[:1], window_days=14)
    with pytest.raises(DataValidationError, match="column 'variant'"):
        exposure_activity(log, table.drop(columns="variant"), window_days=3)
    with pytest.raises(ValueError, match="'window_days' parameter of exposure_activity"):
        exposure_activity(log, table.iloc[:1], window_days=0)


# ------------------------------------------------------------------ project_arms math
def test_projection_from_fake_posterior_matches_quadrature():
    data = two_arm_activity(50, seed=1)
    draws = {k: np.array([[ARMS["control"][k], ARMS["treatment"][k]],
                          [ARMS["control"][k] * 1.1, ARMS["treatment"][k] * 0.9]])
             for k in PARAMS}
    model = fake_fit(BetaGeoModel(segment="variant", hierarchical=False), data, draws)
    out = project_arms(model, window_days=14, horizon=90, ci_prob=0.9)
    for d in range(2):
        for j in range(2):
            p = {k: draws[k][d, j] for k in PARAMS}
            days = expected_repeat(*p.values(), 13 + 90) - expected_repeat(*p.values(), 13)
            assert out.draws["active_days"].values[d, j] == pytest.approx(days, rel=1e-7)
            share = alive_new_user(*p.values(), 13 + 90)
            assert out.draws["share_active"].values[d, j] == pytest.approx(share, rel=1e-7)
    eff = out.effects.loc[("active_days", "treatment")]
    diff = out.draws["active_days"].values[:, 1] - out.draws["active_days"].values[:, 0]
    assert eff["effect"] == pytest.approx(diff.mean())
    assert eff["prob_better"] == np.mean(diff > 0)
    assert list(out.arms.columns) == ["mean", "sd", "ci_lower", "ci_upper"]
    assert out.arms.attrs["ci_prob"] == 0.9 and out.effects.attrs["ci_prob"] == 0.9
    assert set(out.effects.index) == {("active_days", "treatment"),
                                      ("share_active", "treatment")}


def test_project_arms_errors():
    data = two_arm_activity(20, seed=2)
    with pytest.raises(NotFittedError):
        project_arms(BetaGeoModel(segment="variant"))
    plain = fake_fit(BetaGeoModel(segment="variant", hierarchical=False), data,
                     {k: np.array([[1.0, 1.0]]) for k in PARAMS})
    with pytest.raises(ValueError, match="'control' parameter of project_arms"):
        project_arms(plain, control="baseline")
    with pytest.raises(ValueError, match="'horizon' parameter of project_arms"):
        project_arms(plain, horizon=-3)
    with pytest.raises(ValueError, match="'ci_prob' parameter of project_arms"):
        project_arms(plain, ci_prob=95)
    with pytest.raises(ValueError, match="segment='variant'"):
        project_arms(BetaGeoModel().fit(data.drop(columns="variant"), method="map",
                                        random_seed=1))


def test_compare_with_observed():
    out = compare_with_observed({"effect": 1.0, "effect_sd": 0.3},
                                pd.Series({"effect": 1.2, "effect_sd": 0.4}))
    assert out["gap"] == pytest.approx(0.2) and out["gap_sd"] == pytest.approx(0.5)
    assert out["consistent"] and out["p_value"] == pytest.approx(2 * (1 - 0.6554217), rel=1e-6)
    far = compare_with_observed({"effect": 1.0, "effect_sd": 0.1}, {"effect": 0.0,
                                                                    "effect_sd": 0.1})
    assert not far["consistent"] and far["z"] < -7
    with pytest.raises(ValueError, match="'observed' parameter of compare_with_observed"):
        compare_with_observed({"effect": 1.0, "effect_sd": 0.1}, {"effect": 1.0})
    with pytest.raises(ValueError, match="non-negative finite effect_sd"):
        compare_with_observed({"effect": 1.0, "effect_sd": -0.1}, {"effect": 1.0,
                                                                   "effect_sd": 0.1})


# --------------------------------------------------------------- fit and recovery
@pytest.mark.slow
def test_projection_covers_the_true_arm_difference():
    """Fitted on two BG/NBD arms, the 95% interval covers the true projected difference."""
    data = two_arm_activity(2000, seed=5)
    model = BetaGeoModel(segment="variant", hierarchical=False).fit(
        data, draws=1000, tune=1000, chains=2, random_seed=5)
    assert model.converged_
    out = project_arms(model, window_days=14, horizon=120)
    truth = {arm: (expected_repeat(*p.values(), 13 + 120) - expected_repeat(*p.values(), 13),
                   alive_new_user(*p.values(), 13 + 120)) for arm, p in ARMS.items()}
    for j, quantity in enumerate(("active_days", "share_active")):
        row = out.effects.loc[(quantity, "treatment")]
        true_diff = truth["treatment"][j] - truth["control"][j]
        assert row["effect_ci_lower"] < true_diff < row["effect_ci_upper"]
        for arm in ARMS:  # every arm within 3 posterior sd of its truth
            arm_row = out.arms.loc[(quantity, arm)]
            assert abs(arm_row["mean"] - truth[arm][j]) < 3 * arm_row["sd"]
    # two weeks say little about dropout: the share's interval is honest about it
    share = out.effects.loc[("share_active", "treatment")]
    assert share["effect_ci_upper"] - share["effect_ci_lower"] > 0.05


def test_projection_curve_matches_project_arms():
    data = two_arm_activity(50, seed=3)
    draws = {k: np.array([[ARMS["control"][k], ARMS["treatment"][k]]] * 3) * [[1.0], [1.1],
                                                                              [0.95]]
             for k in PARAMS}
    model = fake_fit(BetaGeoModel(segment="variant", hierarchical=False), data, draws)
    curve = projection_curve(model, window_days=14, horizons=[30, 90])
    assert list(curve.index.names) == ["quantity", "variant", "horizon"]
    for h in (30, 90):
        single = project_arms(model, window_days=14, horizon=h)
        for quantity in ("active_days", "share_active"):
            pd.testing.assert_series_equal(
                curve.loc[(quantity, "treatment", h)],
                single.effects.loc[(quantity, "treatment")], check_names=False)
    # cumulative activity grows with the horizon, the share still active falls
    days = curve.xs(("active_days", "treatment"), level=("quantity", "variant"))
    assert days.loc[90, "mean_control"] > days.loc[30, "mean_control"]
    with pytest.raises(ValueError, match="'horizons' parameter of projection_curve"):
        projection_curve(model, horizons=[0, 5])


def test_plots_return_axes():
    from models.experiments.plotting import plot_effects, plot_projection

    data = two_arm_activity(30, seed=4)
    draws = {k: np.array([[ARMS["control"][k], ARMS["treatment"][k]]] * 4) for k in PARAMS}
    model = fake_fit(BetaGeoModel(segment="variant", hierarchical=False), data, draws)
    curve = projection_curve(model, horizons=[7, 14, 28])
    ax = plot_projection(curve, truth=pd.Series([0.1, 0.2, 0.3], index=[7, 14, 28]))
    assert ax.get_xlabel() == "days after the experiment window"
    effects = project_arms(model).effects.rename_axis(["metric", "variant"])
    ax = plot_effects(effects, status=pd.Series({"active_days": "better"}),
                      truth=pd.Series({"active_days": 0.1, "share_active": 0.0}))
    assert len(ax.get_yticks()) == 2
    with pytest.raises(ValueError, match="'scale' parameter of plot_effects"):
        plot_effects(effects, scale="odds")
