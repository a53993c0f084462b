"""Tests of the shifted-beta-geometric cohort retention model."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from scipy import integrate, special, stats

from models.churn.shifted_beta_geo import ShiftedBetaGeoModel, melt_cohort_table
from models.data.simulate import simulate_sbg
from models.exceptions import DataValidationError, NotFittedError
from models.predict import flatten_draws
from models.priors import Prior

_HERE = Path(__file__).resolve()
# ../shared/data beside the checkout; parents[2] when tests sit inside a folder holding shared/.
DATA = next((p / "shared" / "data" for p in (_HERE.parents[3], _HERE.parents[2])
             if (p / "shared" / "data").is_dir()), _HERE.parents[3] / "shared" / "data")
FLAT = {"alpha": Prior("HalfFlat"), "beta": Prior("HalfFlat")}
# Fader & Hardie (2007), survivors per 1000 at years 0..12.
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491, 468, 445, 427, 409, 394]
MLE = {"regular": (0.704, 1.182), "highend": (0.668, 3.806)}
FIT = {"draws": 300, "tune": 300, "chains": 2, "cores": 1, "sampler": "pymc"}


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


@pytest.fixture(scope="module")
def data_dir():
    if not DATA.is_dir():
        pytest.skip(f"reference data folder {DATA} is absent")
    return DATA


def reference_table(n_years: int = 8) -> pd.DataFrame:
    return pd.concat([
        pd.DataFrame({"plan": plan, "cohort": "1999", "period": range(n_years),
                      "n_surviving": values[:n_years]})
        for plan, values in (("regular", REGULAR), ("highend", HIGH_END))
    ], ignore_index=True)


def table(survivors: dict) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"cohort": c, "period": range(len(v)), "n_surviving": v})
                      for c, v in survivors.items()], ignore_index=True)


def fake_fit(model: ShiftedBetaGeoModel, data: pd.DataFrame, alpha, beta) -> ShiftedBetaGeoModel:
    """Attach a fixed 'posterior' of known draws, shape (draw,) or (draw, segment)."""
    model.data_ = model._validate_data(data)
    model.model_ = model._build_model(model.data_)
    alpha, beta = np.asarray(alpha, float)[None], np.asarray(beta, float)[None]
    dims = ["chain", "draw"] + (["segment"] if alpha.ndim == 3 else [])
    post = xr.Dataset({"alpha": (dims, alpha), "beta": (dims, beta)})
    model.idata_ = xr.DataTree.from_dict({"posterior": post})
    return model


def brute_probs(alpha: float, beta: float, last: int) -> np.ndarray:
    """P(T = 1..last) and S(last) by numerical integration over theta ~ Beta(alpha, beta)."""
    def churn(t):
        f = lambda th: th * (1 - th) ** (t - 1) * stats.beta.pdf(th, alpha, beta)  # noqa: E731
        return integrate.quad(f, 0, 1)[0]
    p = np.array([churn(t) for t in range(1, last + 1)])
    return np.append(p, 1 - p.sum())


# ---------------------------------------------------------------- exact math


def test_log_likelihood_matches_multinomial_with_integrated_probabilities():
    data = table({"a": [100, 60, 45, 40], "b": [50, 30]})
    model = ShiftedBetaGeoModel(priors=FLAT)
    pm_model = model.build_model(data)
    logp = pm_model.compile_logp(vars=pm_model.observed_RVs, sum=False, jacobian=False)
    for alpha, beta in [(0.7, 1.2), (2.5, 0.4)]:
        point = {"alpha_log__": np.log(alpha), "beta_log__": np.log(beta)}
        got = logp(point)[0]
        expected = [
            stats.multinomial.logpmf([40, 15, 5, 40], 100, brute_probs(alpha, beta, 3)),
            stats.multinomial.logpmf([20, 30], 50, brute_probs(alpha, beta, 1)),
        ]
        np.testing.assert_allclose(got, expected, rtol=1e-7)


def test_predictions_from_fixed_posterior_equal_closed_forms():
    a = np.array([0.5, 1.0, 2.0])
    b = np.array([1.5, 3.0, 0.8])
    model = fake_fit(ShiftedBetaGeoModel(), table({"a": [10, 5, 3]}), a, b)
    t = np.array([0, 1, 4, 12])
    surv = special.beta(a[:, None], b[:, None] + t) / special.beta(a, b)[:, None]
    got = model.expected_survival_new_user(horizon=t)
    np.testing.assert_allclose(got["mean"], surv.mean(axis=0), rtol=1e-10)
    assert list(got.index) == list(t) and got.index.name == "horizon"
    assert list(got.columns) == ["mean", "sd", "ci_lower", "ci_upper"]
    np.testing.assert_allclose(got.loc[0, "mean"], 1.0)
    draws = model.expected_survival_new_user(horizon=t, return_draws=True)
    assert draws.dims == ("chain", "draw", "horizon") and list(draws["horizon"].values) == list(t)
    np.testing.assert_allclose(flatten_draws(draws), surv, rtol=1e-10)
    np.testing.assert_allclose(model.expected_survivors_new_user(n_start=500, horizon=t)["mean"],
                               500 * surv.mean(0))
    r = flatten_draws(model.expected_retention_rate_new_user(horizon=[1, 4, 12],
                                                             return_draws=True))
    s = special.beta(a[:, None], b[:, None] + np.arange(13)) / special.beta(a, b)[:, None]
    np.testing.assert_allclose(r, s[:, [1, 4, 12]] / s[:, [0, 3, 11]], rtol=1e-10)
    churn = flatten_draws(model.probability_churn_in_period_new_user(horizon=[1, 4, 12],
                                                                     return_draws=True))
    np.testing.assert_allclose(churn, s[:, [0, 3, 11]] - s[:, [1, 4, 12]], rtol=1e-9)
    by = flatten_draws(model.probability_churn_new_user(horizon=[1, 4, 12], return_draws=True))
    np.testing.assert_allclose(by, 1 - s[:, [1, 4, 12]], rtol=1e-9)
    # the old names still work for one release, with a FutureWarning
    with pytest.warns(FutureWarning, match="probability_churn_in_period_new_user"):
        old = model.probability_churn([1, 4, 12], return_draws=True)
    np.testing.assert_allclose(flatten_draws(old), s[:, [0, 3, 11]] - s[:, [1, 4, 12]],
                               rtol=1e-9)


def test_residual_lifetime_matches_discounted_series():
    a, b, d = np.array([0.7, 1.5]), np.array([1.2, 4.0]), 0.1
    model = fake_fit(ShiftedBetaGeoModel(), table({"a": [10, 5]}), a, b)
    got = model.expected_residual_lifetime(discount_rate=d, periods_survived=[1, 3],
                                           return_draws=True)
    assert got.dims == ("chain", "draw", "periods_survived")
    got = flatten_draws(got)
    k = np.arange(4000)
    for j, n in enumerate([1, 3]):
        # sum_k delta^k S(n + k) / S(n - 1), summed term by term
        log_s = special.betaln(a[:, None], b[:, None] + n + k) - special.betaln(a, b + n - 1)[
            :, None]
        series = (np.exp(log_s) / (1 + d) ** k).sum(axis=1)
        np.testing.assert_allclose(got[:, j], series, rtol=1e-8)


def test_segment_predictions_use_each_segment_draws():
    data = reference_table(3)
    model = fake_fit(ShiftedBetaGeoModel(segment="plan", hierarchical=False), data,
                     [[1.0, 2.0], [1.0, 2.0]], [[3.0, 1.0], [3.0, 1.0]])
    assert list(model.segments_) == ["highend", "regular"]
    got = model.expected_retention_rate_new_user(horizon=[1, 2])
    assert got.index.names == ["segment", "horizon"]
    assert list(got.index.get_level_values("segment")) == ["highend"] * 2 + ["regular"] * 2
    np.testing.assert_allclose(got["mean"], [3 / 4, 4 / 5, 1 / 3, 2 / 4])
    draws = model.expected_retention_rate_new_user(horizon=[1, 2], return_draws=True)
    assert draws.dims == ("chain", "draw", "segment", "horizon")
    np.testing.assert_allclose(draws.sel(segment="regular").values[0],
                               [[1 / 3, 2 / 4], [1 / 3, 2 / 4]])
    only = model.expected_retention_rate_new_user(horizon=[1], segment="regular")
    np.testing.assert_allclose(only["mean"], [1 / 3])
    with pytest.raises(ValueError, match="Unknown segment"):
        model.expected_survival_new_user(horizon=[1], segment="student")


# ---------------------------------------------------------------- data checks


def test_melt_cohort_table_gives_long_input():
    wide = pd.DataFrame({0: [100, 80], 1: [60, 50], 2: [45, np.nan]}, index=["jan", "feb"])
    long = melt_cohort_table(wide)
    assert long.columns.tolist() == ["cohort", "period", "n_surviving"]
    assert long["n_surviving"].tolist() == [80, 50, 100, 60, 45]
    clean = ShiftedBetaGeoModel()._validate_data(long)
    assert clean["period"].tolist() == [0, 1, 0, 1, 2]
    with pytest.raises(ValueError, match="2 level"):
        melt_cohort_table(wide, segment="plan")


def test_incomplete_periods_are_dropped():
    data = table({"a": [10, 8, 5]}).assign(complete=[True, True, False])
    assert ShiftedBetaGeoModel()._validate_data(data)["period"].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (table({"a": [10, 8]}).drop(columns="period"), "column 'period'"),
        (table({"a": [10, 8]}).iloc[:0], "at least one row"),
        (table({"a": [10, 12, 5]}), r"never increase.*cohort 'a', period 1: 10 -> 12"),
        (table({"a": [10, -1]}), r"non-negative.*row 1 \(-1\)"),
        (table({"a": [10, 8.5]}), r"integers.*row 1 \(8.5\)"),
        (table({"a": [0, 0]}), "not empty"),
        (table({"a": [10, np.nan]}), "no missing values"),
        (table({"a": [10, 8]}).assign(n_surviving=["10", "8"]), "integer counts"),
        (table({"a": [10, 8, 7]}).query("period != 1"), "no gaps"),
        (table({"a": [10, 8]}).query("period != 0"), "starting at period 0"),
        (pd.concat([table({"a": [10, 8]})] * 2), "one row per cohort and period"),
    ],
)
def test_invalid_data_is_rejected(data, match):
    with pytest.raises(DataValidationError, match=match):
        ShiftedBetaGeoModel().fit(data)


def test_segment_column_is_required_and_errors():
    with pytest.raises(DataValidationError, match="column 'plan'"):
        ShiftedBetaGeoModel(segment="plan").fit(table({"a": [10, 8]}))
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        ShiftedBetaGeoModel().fit([[1, 2]])


def test_parameter_errors():
    with pytest.raises(ValueError, match="does not use the prior"):
        ShiftedBetaGeoModel(priors={"mu_log_kappa": Prior("Normal")})
    with pytest.raises(ValueError, match="does not use the prior"):
        ShiftedBetaGeoModel(segment="plan", priors=FLAT)
    with pytest.raises(ValueError, match="no prior named 'gamma'"):
        ShiftedBetaGeoModel(priors={"gamma": Prior("HalfFlat")})
    with pytest.raises(ValueError, match="'hierarchical' parameter .* Got 'yes'"):
        ShiftedBetaGeoModel(hierarchical="yes")
    with pytest.raises(NotFittedError):
        ShiftedBetaGeoModel().expected_survival_new_user(horizon=[1])
    model = fake_fit(ShiftedBetaGeoModel(), table({"a": [10, 5]}), [1.0], [1.0])
    with pytest.raises(ValueError, match="'horizon' .*expected_retention_rate_new_user"
                                         " .* integers >= 1. Got 0"):
        model.expected_retention_rate_new_user(horizon=0)
    with pytest.raises(ValueError, match="'discount_rate' .* Got 0"):
        model.expected_residual_lifetime(discount_rate=0)
    with pytest.raises(ValueError, match="'n_start' .* Got -3"):
        model.expected_survivors_new_user(n_start=-3, horizon=[1])
    with pytest.raises(ValueError, match="without segments"):
        model.expected_survival_new_user(horizon=[1], segment="x")
    with pytest.raises(ValueError, match="'ci_prob' parameter of ShiftedBetaGeoModel"
                                         r".expected_survival_new_user .* Got 1.5"):
        model.expected_survival_new_user(horizon=[1], ci_prob=1.5)


# ---------------------------------------------------------------- fast fits


def test_tiny_pooled_fit_and_save_load_round_trip(tmp_path, rng):
    data = reference_table(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ShiftedBetaGeoModel(segment="plan").fit(
            data, draws=100, tune=100, chains=2, cores=1, random_seed=rng)
    assert model.idata_["posterior"]["alpha"].dims == ("chain", "draw", "segment")
    before = model.expected_survival_new_user(horizon=[1, 5])
    loaded = ShiftedBetaGeoModel.load(model.save(tmp_path / "sbg.nc"))
    assert loaded.segment == "plan" and loaded.hierarchical
    pd.testing.assert_frame_equal(loaded.expected_survival_new_user(horizon=[1, 5]), before)
    assert "sigma_log_kappa" in model.summary().index


def test_posterior_predictive_has_cohort_shape(rng):
    data = table({"a": [200, 120, 90], "b": [100, 70]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ShiftedBetaGeoModel().fit(data, draws=50, tune=100, chains=2, cores=1,
                                          random_seed=rng)
        pp = model.sample_posterior_predictive(random_seed=1)["posterior_predictive"]
    draws = pp["last_alive"].values
    assert draws.shape[-2:] == (2, 3)
    np.testing.assert_array_equal(draws.sum(axis=-1), np.broadcast_to([200, 100], draws.shape[:-1]))
    assert (draws[..., 1, 2] == 0).all()  # cohort b has no period 2


# ---------------------------------------------------------------- reference and recovery


@pytest.mark.slow
def test_fader_hardie_2007_reference():
    """MAP with flat priors = the published MLE; 7-year fit projects years 8-12.

    Projected minus actual survivors per 1000, years 8..12 (MLE): regular
    -2.9, -2.6, -2.8, -3.1, -3.0; high end -7.6, -9.2, -12.8, -13.9, -16.0.
    The projection tracks the regular cohort within 3 customers; it drifts
    below the high-end one by at most 1.6 percentage points, as in the
    paper's figure.
    """
    data = reference_table(8)
    model = ShiftedBetaGeoModel(segment="plan", hierarchical=False, priors=FLAT)
    model.fit(data, method="map", random_seed=1)
    post = model.idata_["posterior"]
    for plan, (alpha, beta) in MLE.items():
        assert post["alpha"].sel(segment=plan).item() == pytest.approx(alpha, abs=0.005)
        assert post["beta"].sel(segment=plan).item() == pytest.approx(beta, abs=0.005)
    projected = model.expected_survivors_new_user(n_start=1000,
                                                  horizon=list(range(8, 13)))["mean"]
    errors = {p: projected.loc[p].to_numpy() - np.array(v[8:])
              for p, v in (("regular", REGULAR), ("highend", HIGH_END))}
    assert np.abs(errors["regular"]).max() < 4, errors
    assert np.abs(errors["highend"]).max() < 17, errors

    nuts = ShiftedBetaGeoModel(segment="plan", hierarchical=False).fit(
        data, draws=500, tune=500, chains=2, cores=1, random_seed=2)
    summary = nuts.summary(ci_prob=0.94)
    for plan, (alpha, beta) in MLE.items():
        for name, value in (("alpha", alpha), ("beta", beta)):
            row = summary.loc[f"{name}[{plan}]"]
            assert row["ci_lower"] < value < row["ci_upper"], (name, plan, row)


@pytest.mark.slow
@pytest.mark.data
def test_customer_level_reference_cohorts(data_dir):
    """clv-reference/sbg_cohorts.csv: recency = periods paid, 8 = still active after year 7."""
    raw = pd.read_csv(data_dir / "clv-reference" / "sbg_cohorts.csv")
    periods = np.arange(8)
    rows = [pd.DataFrame({"plan": plan, "cohort": "1999", "period": periods,
                          "n_surviving": [(g["recency"] > t).sum() for t in periods]})
            for plan, g in raw.groupby("cohort")]
    data = pd.concat(rows, ignore_index=True)
    assert data.query("plan == 'regular'")["n_surviving"].tolist() == REGULAR[:8]
    model = ShiftedBetaGeoModel(segment="plan", hierarchical=False, priors=FLAT)
    model.fit(data, method="map", random_seed=1)
    alpha = model.idata_["posterior"]["alpha"].sel(segment="highend")
    assert alpha.item() == pytest.approx(MLE["highend"][0], abs=0.005)


def simulate_cohorts(alpha, beta, rng, sizes=(500, 500, 500, 500), lengths=(4, 6, 8, 10)):
    return table({f"c{i}": simulate_sbg(n, alpha, beta, k, rng)
                  for i, (n, k) in enumerate(zip(sizes, lengths, strict=True))})


@pytest.mark.slow
def test_recovers_simulated_parameters(rng):
    truth = {"alpha": 0.8, "beta": 2.5}
    data = simulate_cohorts(truth["alpha"], truth["beta"], rng)
    model = ShiftedBetaGeoModel().fit(data, draws=500, tune=500, chains=2, cores=1,
                                      random_seed=rng)
    summary = model.summary(ci_prob=0.94)
    for name, value in truth.items():
        assert summary.loc[name, "ci_lower"] < value < summary.loc[name, "ci_upper"]
        assert summary.loc[name, "mean"] == pytest.approx(value, rel=0.3)


@pytest.mark.slow
def test_interval_coverage_is_nominal(rng):
    """Over R simulated data sets the 90% intervals of alpha and beta cover the truth.

    R is kept small (each NUTS fit costs a few seconds, mostly compilation). alpha
    and beta are strongly correlated, so the 2R count is checked against 2 x the
    central 99% range of Binomial(R, 0.9), the bound for perfectly correlated
    indicators.
    """
    reps, truth = 8, (0.8, 2.5)
    covered = 0
    for _ in range(reps):
        data = simulate_cohorts(*truth, rng, sizes=(500, 500, 500, 500))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ShiftedBetaGeoModel().fit(data, draws=200, tune=200, chains=2, cores=1,
                                              random_seed=rng)
        summary = model.summary(ci_prob=0.90)
        for name, value in zip(("alpha", "beta"), truth, strict=True):
            row = summary.loc[name]
            covered += int(row["ci_lower"] < value < row["ci_upper"])
    low, high = 2 * stats.binom.ppf([0.005, 0.995], reps, 0.9)
    assert low <= covered <= high, (covered, low, high)


def test_find_map_ignores_jacobian():
    """find_MAP maximises the density on the natural scale (documented MAP = MLE)."""
    model = ShiftedBetaGeoModel(priors=FLAT).build_model(table({"a": REGULAR[:8]}))
    logp = model.compile_logp(jacobian=False)
    best = logp({"alpha_log__": np.log(0.7041), "beta_log__": np.log(1.1820)})
    for da, db in [(0.01, 0), (-0.01, 0), (0, 0.01), (0, -0.01)]:
        assert logp({"alpha_log__": np.log(0.7041 + da), "beta_log__": np.log(1.182 + db)}) < best
    assert isinstance(model, pm.Model)
