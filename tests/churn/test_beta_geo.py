"""Tests of BetaGeoModel (BG/NBD): exact math, fast fits, reference and recovery checks."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import integrate, special, stats

from models.churn.beta_geo import BetaGeoModel
from models.exceptions import DataValidationError, NotFittedError
from models.predict import flatten_draws
from models.priors import Prior

PARAMS = ("r", "alpha", "a", "b")
FLAT = {k: Prior("HalfFlat") for k in PARAMS}
CDNOW_MLE = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


# ------------------------------------------------------------------ helpers
def simulate(n, r, alpha, a, b, T, seed):
    """Exact BG/NBD draw (independent of models.data.simulate)."""
    rng = np.random.default_rng(seed)
    T = np.broadcast_to(np.asarray(T, float), (n,))
    lam, p = rng.gamma(r, 1.0 / alpha, n), rng.beta(a, b, n)
    n_alive = rng.poisson(lam * T)                   # events while alive
    n_drop = rng.geometric(p)                        # dropout after this many repeats
    x = np.minimum(n_alive, n_drop)
    # the x-th of n_alive uniform order statistics on (0, T): Beta(x, n_alive - x + 1) * T
    rec = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(n_alive - x + 1, 1)), 0.0)
    return pd.DataFrame({"frequency": x, "recency": rec, "T": T},
                        index=pd.Index(np.arange(n), name="user_id"))


def integrate_lp(func, r, alpha, a, b):
    """Integral of func(lam, p) over lam ~ Gamma(r, alpha), p ~ Beta(a, b) by nested quad."""
    log_c_lam = r * math.log(alpha) - math.lgamma(r)
    log_c_p = -special.betaln(a, b)
    hi = stats.gamma.ppf(1 - 1e-14, r, scale=1.0 / alpha)

    def inner(p):
        def f(lam):
            return func(lam, p) * math.exp(log_c_lam + (r - 1) * math.log(lam) - alpha * lam)
        value = integrate.quad(f, 0, hi, limit=100, epsabs=0, epsrel=1e-10)[0]
        return value * math.exp(log_c_p + (a - 1) * math.log(p) + (b - 1) * math.log1p(-p))

    return integrate.quad(inner, 0, 1, limit=100, epsabs=0, epsrel=1e-9)[0]


def individual_lik(x, tx, T):
    """L(x, t_x, T | lam, p) and its 'alive at T' part."""

    def alive(lam, p):
        return (1 - p) ** x * lam**x * math.exp(-lam * T)

    def total(lam, p):
        dead = p * (1 - p) ** (x - 1) * lam**x * math.exp(-lam * tx) if x > 0 else 0.0
        return alive(lam, p) + dead

    return total, alive


def brute_loglik(x, tx, T, r, alpha, a, b):
    total, _ = individual_lik(x, tx, T)
    return np.log(integrate_lp(total, r, alpha, a, b))


def potential_fn(model):
    fn = model.compile_logp(vars=model.potentials, jacobian=False)
    return lambda point: float(fn(point))


def fake_fit(model, data, draws):
    """Attach a fixed fake posterior (chain x draw) to an unfitted model."""
    posterior = xr.Dataset({k: (("chain", "draw"), np.asarray(v, float).reshape(1, -1))
                            for k, v in draws.items()},
                           coords={"chain": [0], "draw": np.arange(len(draws["r"]))})
    model.data_ = model._validate_data(data)
    model.model_ = model._build_model(model.data_)
    model.idata_ = xr.DataTree.from_dict({"posterior": posterior})
    return model


USERS = pd.DataFrame({"frequency": [0, 2, 5, 1, 12], "recency": [0.0, 30.43, 9.5, 1.0, 38.0],
                      "T": [10.0, 38.86, 12.0, 40.0, 39.0]}, index=list("abcde"))
POINTS = [dict(r=0.7, alpha=3.0, a=1.3, b=2.5), dict(r=0.243, alpha=4.414, a=0.793, b=2.426)]


@pytest.fixture(scope="module")
def cdnow():
    here = Path(__file__).resolve()
    for base in (here.parents[2], here.parents[3]):
        path = base / "shared" / "data" / "cdnow" / "cdnow_customers_summary.csv"
        if path.is_file():
            return pd.read_csv(path, index_col="ID")
    pytest.skip("shared/data/cdnow is not available")


# ---------------------------------------------------------- tier 1: exact math
@pytest.mark.parametrize("point", POINTS)
def test_log_likelihood_matches_numerical_integration(point):
    model = BetaGeoModel(priors=FLAT).build_model(USERS)
    value = potential_fn(model)({f"{k}_log__": np.log(v) for k, v in point.items()})
    expected = sum(brute_loglik(*row, **point) for row in USERS.itertuples(index=False))
    assert value == pytest.approx(expected, rel=1e-8)


def test_compressed_equals_uncompressed():
    rng = np.random.default_rng(3)
    data = USERS.iloc[rng.integers(0, len(USERS), 40)].reset_index(drop=True)
    model = BetaGeoModel(priors=FLAT).build_model(data)
    comp = model.bgnbd_compression
    assert comp.n_users == 40 and comp.n_unique == len(USERS)
    point = POINTS[0]
    per_user = {row: brute_loglik(*row, **point) for row in USERS.itertuples(index=False)}
    expected = sum(per_user[row] for row in data.itertuples(index=False))
    value = potential_fn(model)({f"{k}_log__": np.log(v) for k, v in point.items()})
    assert value == pytest.approx(expected, rel=1e-8)


def test_segment_likelihood_uses_each_segments_parameters():
    data = pd.concat([USERS.assign(plan="free"), USERS.assign(plan="premium")])
    model = BetaGeoModel(priors=FLAT, segment="plan").build_model(data)
    pop = POINTS[0]
    sigma = np.array([0.3, 0.2, 0.4, 0.5])
    z = np.array([[1.0, -0.5, 0.2, 0.0], [-1.0, 0.7, -0.3, 1.2]])
    seg_params = {k: pop[k] * np.exp(sigma[i] * z[:, i]) for i, k in enumerate(PARAMS)}
    point = {f"{k}_log__": np.log(v) for k, v in pop.items()}
    point |= {"segment_sigma_log__": np.log(sigma), "segment_offset": z}
    expected = sum(brute_loglik(*row, **{k: seg_params[k][s] for k in PARAMS})
                   for s in range(2) for row in USERS.itertuples(index=False))
    assert potential_fn(model)(point) == pytest.approx(expected, rel=1e-8)


def test_predictions_from_fake_posterior_match_integrals():
    draws = {k: [p[k] for p in POINTS] for k in PARAMS}
    model = fake_fit(BetaGeoModel(), USERS, draws)
    alive_da = model.probability_alive(return_draws=True)
    expect_da = model.expected_activity(horizon=39.0, return_draws=True)
    assert alive_da.dims == expect_da.dims == ("chain", "draw", "user")
    assert alive_da.shape == expect_da.shape == (1, 2, len(USERS))
    alive, expect = flatten_draws(alive_da), flatten_draws(expect_da)
    for d, point in enumerate(POINTS):
        for u, (x, tx, T) in enumerate(USERS.itertuples(index=False)):
            total, alive_part = individual_lik(x, tx, T)
            lik = integrate_lp(total, **point)
            p_alive = integrate_lp(alive_part, **point) / lik
            e_next = integrate_lp(lambda lam, p, f=alive_part: f(lam, p) * -math.expm1(
                -lam * p * 39.0) / p, **point) / lik
            assert alive[d, u] == pytest.approx(p_alive, rel=1e-7)
            assert expect[d, u] == pytest.approx(e_next, rel=1e-7)
    summary = model.probability_alive()
    assert list(summary.index) == list("abcde")
    assert list(summary.columns) == ["mean", "sd", "ci_lower", "ci_upper"]
    np.testing.assert_allclose(summary["mean"], alive.mean(axis=0))
    assert summary.loc["a", "mean"] == 1.0  # no repeat activity: still active


def test_probability_alive_at_a_horizon_matches_integrals():
    draws = {k: [p[k] for p in POINTS] for k in PARAMS}
    model = fake_fit(BetaGeoModel(), USERS, draws)
    now = flatten_draws(model.probability_alive(return_draws=True))
    np.testing.assert_array_equal(
        flatten_draws(model.probability_alive(horizon=0, return_draws=True)), now)
    later = flatten_draws(model.probability_alive(horizon=52.0, return_draws=True))
    for d, point in enumerate(POINTS):
        for u, (x, tx, T) in enumerate(USERS.itertuples(index=False)):
            total, alive_part = individual_lik(x, tx, T)
            # alive at T and no dropout among the Poisson(lam * 52) activities after T
            survive = integrate_lp(lambda lam, p, f=alive_part: f(lam, p) * math.exp(
                -lam * p * 52.0), **point) / integrate_lp(total, **point)
            assert later[d, u] == pytest.approx(survive, rel=1e-7)
    assert np.all(later < now)
    with pytest.raises(ValueError, match="'horizon' parameter of BetaGeoModel.probability_alive"):
        model.probability_alive(horizon=-1.0)
    with pytest.raises(ValueError, match="'horizon' parameter"):
        model.probability_alive(horizon=[1.0, 2.0])


def test_probability_alive_new_user_matches_integrals():
    draws = {k: [p[k] for p in POINTS] for k in PARAMS}
    model = fake_fit(BetaGeoModel(), USERS, draws)
    out = flatten_draws(model.probability_alive_new_user(horizon=[0.0, 10.0, 80.0],
                                                         return_draws=True))
    for d, point in enumerate(POINTS):
        for j, h in enumerate([0.0, 10.0, 80.0]):
            expected = integrate_lp(lambda lam, p, h=h: math.exp(-lam * p * h), **point)
            assert out[d, j] == pytest.approx(expected, rel=1e-7)
    summary = model.probability_alive_new_user(horizon=[5.0, 50.0])
    assert list(summary.index) == [5.0, 50.0] and summary.index.name == "horizon"
    with pytest.raises(ValueError, match="'horizon' parameter of BetaGeoModel.probability_alive_new"):
        model.probability_alive_new_user(horizon=-2.0)


def test_published_cdnow_conditional_expectation():
    # FHL (2005): customer with x=2, t_x=30.43, T=38.86 at the MLE expects 1.226
    # purchases in weeks 40-78.
    model = fake_fit(BetaGeoModel(), USERS, {k: [CDNOW_MLE[k]] for k in PARAMS})
    user = pd.DataFrame({"frequency": [2], "recency": [30.43], "T": [38.86]})
    assert model.expected_activity(user, horizon=39.0)["mean"].iloc[0] == pytest.approx(1.226, abs=6e-4)


def test_new_user_predictions_match_integrals():
    draws = {k: [p[k] for p in POINTS] for k in PARAMS}
    model = fake_fit(BetaGeoModel(), USERS, draws)
    t = np.array([1.0, 39.0, 400.0])
    e_new = flatten_draws(model.expected_activity_new_user(horizon=t, return_draws=True))
    n = np.arange(0, 40)
    probs_da = model.probability_repeat_count_new_user(count=n, horizon=39.0, return_draws=True)
    assert probs_da.dims == ("chain", "draw", "count", "horizon")
    probs = flatten_draws(probs_da.squeeze("horizon", drop=True))
    for d, point in enumerate(POINTS):
        for j, tj in enumerate(t):
            ref = integrate_lp(lambda lam, p, tj=tj: -math.expm1(-lam * p * tj) / p, **point)
            assert e_new[d, j] == pytest.approx(ref, rel=1e-7)
        for k in (0, 1, 5):
            def pmf(lam, p, k=k):
                lt = lam * 39.0
                pois = [math.exp(j * math.log(lt) - lt - math.lgamma(j + 1)) if lt > 0 else
                        float(j == 0) for j in range(k + 1)]
                first = (1 - p) ** k * pois[k]
                return first + (p * (1 - p) ** (k - 1) * (1 - sum(pois[:k])) if k else 0)
            assert probs[d, k] == pytest.approx(integrate_lp(pmf, **point), rel=1e-6)
    # distribution sums to one and its mean is E[X(t)] (long tail for the first point)
    many = flatten_draws(model.probability_repeat_count_new_user(
        count=np.arange(0, 3000), horizon=39.0, return_draws=True).squeeze("horizon", drop=True))
    np.testing.assert_allclose(many.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(many @ np.arange(3000), e_new[:, 1], rtol=1e-5)
    frame = model.expected_activity_new_user(horizon=39.0)
    assert frame.index.name == "horizon" and frame.index.tolist() == [39.0]


def test_expected_activity_stable_for_heavy_users():
    # original 2F1 form overflows here (q^(r+x) underflows, 2F1 overflows)
    point = dict(r=0.8, alpha=3.0, a=1.5, b=24.0)
    model = fake_fit(BetaGeoModel(), USERS, {k: [point[k]] for k in PARAMS})
    heavy = pd.DataFrame({"frequency": [300], "recency": [9.0], "T": [10.0]})
    value = model.expected_activity(heavy, horizon=1000.0)["mean"].iloc[0]
    x, T, t = 300, 10.0, 1000.0
    a_post, b_post = point["a"], point["b"] + x
    ref = integrate.quad(lambda p: stats.beta.pdf(p, a_post, b_post) / p * -np.expm1(
        -(point["r"] + x) * np.log1p(p * t / (point["alpha"] + T))), 0, 1, epsrel=1e-11)[0]
    p_alive = model.probability_alive(heavy)["mean"].iloc[0]
    assert np.isfinite(value)
    assert value == pytest.approx(p_alive * ref, rel=1e-8)


def test_segment_predictions_use_segment_draws():
    data = pd.concat([USERS.assign(plan="free"), USERS.assign(plan="premium").rename(
        index=lambda i: i + "2")])
    model = BetaGeoModel(segment="plan")
    model.data_ = model._validate_data(data)
    model.model_ = model._build_model(model.data_)
    posterior = xr.Dataset({f"{k}_segment": (("chain", "draw", "segment"),
                                             [[[POINTS[0][k], POINTS[1][k]]]]) for k in PARAMS},
                           coords={"segment": ["free", "premium"]})
    model.idata_ = xr.DataTree.from_dict({"posterior": posterior})
    plain = fake_fit(BetaGeoModel(), USERS, {k: [POINTS[1][k]] for k in PARAMS})
    alive = model.probability_alive()
    np.testing.assert_allclose(alive["mean"].iloc[5:], plain.probability_alive()["mean"])
    assert not np.allclose(alive["mean"].iloc[:5].to_numpy(), alive["mean"].iloc[5:].to_numpy())
    new = model.expected_activity_new_user(horizon=[10.0, 20.0])
    assert new.index.names == ["segment", "horizon"] and len(new) == 4
    with pytest.raises(DataValidationError, match=r"column 'plan'.*segments seen in training"):
        model.probability_alive(USERS.assign(plan="family"))


# ------------------------------------------------------------ validation errors
@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.drop(columns="recency"), r"column 'recency': expected a column"),
        (lambda d: d.assign(T=[10.0, np.nan, 12.0, 40.0, 39.0]),
         r"column 'T': expected finite values.*row 1 \(nan\)"),
        (lambda d: d.assign(frequency=[0, -2, 5, 1, 12]),
         r"column 'frequency': expected non-negative.*1 row\(s\).*row 1 \(-2"),
        (lambda d: d.assign(frequency=[0.0, 2.5, 5, 1, 12]),
         r"column 'frequency': expected whole numbers.*row 1 \(2.5\)"),
        (lambda d: d.assign(recency=[0.0, 40.0, 9.5, 1.0, 38.0]),
         r"column 'recency': expected recency <= T.*row 1 \(\(40.0, 38.86\)\)"),
        (lambda d: d.assign(recency=[0.0, 0.0, 9.5, 1.0, 38.0]),
         r"expected recency > 0 when frequency > 0.*row 1 \(\(2.0, 0.0\)\)"),
        (lambda d: d.assign(recency=[3.0, 30.43, 9.5, 1.0, 38.0]),
         r"expected recency == 0 when frequency == 0.*row 0 \(\(0.0, 3.0\)\)"),
        (lambda d: d.assign(T=["x"] * 5), r"column 'T': expected numbers"),
        (lambda d: d.iloc[:0], r"expected at least one row"),
        (lambda d: d["T"], r"expected a pandas DataFrame"),
    ],
)
def test_invalid_data_is_reported(change, match):
    with pytest.raises(DataValidationError, match=match):
        BetaGeoModel().build_model(change(USERS))


def test_missing_segment_values_are_reported():
    data = USERS.assign(plan=["a", None, "b", "a", "b"])
    with pytest.raises(DataValidationError, match=r"column 'plan'.*1 row\(s\).*row 1"):
        BetaGeoModel(segment="plan").build_model(data)
    with pytest.raises(DataValidationError, match=r"column 'plan': expected a column"):
        BetaGeoModel(segment="plan").build_model(USERS)


def test_invalid_options():
    with pytest.raises(ValueError, match=r"'segment' parameter of BetaGeoModel.*Got 'T'"):
        BetaGeoModel(segment="T")
    with pytest.raises(ValueError, match=r"no prior named 'beta'"):
        BetaGeoModel(priors={"beta": Prior("HalfFlat")})


def test_prediction_errors():
    model = BetaGeoModel()
    with pytest.raises(NotFittedError, match="before probability_alive"):
        model.probability_alive()
    with pytest.raises(NotFittedError, match="before probability_repeat_count_new_user"):
        model.probability_repeat_count_new_user(count=1, horizon=10.0)
    model = fake_fit(model, USERS, {k: [POINTS[0][k]] for k in PARAMS})
    with pytest.raises(ValueError,
                       match=r"'horizon' parameter of BetaGeoModel.expected_activity.*-1"):
        model.expected_activity(horizon=-1.0)
    with pytest.raises(ValueError, match=r"'horizon' parameter.*expected_activity_new_user.*nan"):
        model.expected_activity_new_user(horizon=[1.0, np.nan])
    with pytest.raises(ValueError,
                       match=r"'count' parameter of.*probability_repeat_count_new_user.*1.5"):
        model.probability_repeat_count_new_user(count=1.5, horizon=10.0)
    with pytest.raises(ValueError,
                       match=r"'horizon' parameter of.*probability_repeat_count_new_user.*'soon'"):
        model.probability_repeat_count_new_user(count=1, horizon="soon")
    with pytest.raises(DataValidationError, match=r"recency <= T"):
        model.expected_activity(USERS.assign(T=1.0), horizon=10.0)
    # the old names still work for one release, with a FutureWarning
    with pytest.warns(FutureWarning, match="probability_repeat_count_new_user"):
        old = model.probability_activity(1, 10.0)
    pd.testing.assert_frame_equal(old, model.probability_repeat_count_new_user(count=1,
                                                                               horizon=10.0))
    with pytest.warns(FutureWarning, match="'t' parameter"):
        old = model.expected_activity(t=10.0)
    pd.testing.assert_frame_equal(old, model.expected_activity(horizon=10.0))


# --------------------------------------------------------------- tier 2: fast fits
@pytest.fixture(scope="module")
def small_fit():
    data = simulate(800, 0.6, 5.0, 1.0, 3.0, 52.0, seed=7)
    return BetaGeoModel().fit(data, draws=200, tune=300, chains=2, cores=1, random_seed=3)


def test_fast_fit_save_load_round_trip(small_fit, tmp_path):
    assert small_fit.summary().index.tolist() == list(PARAMS)
    assert small_fit.model_.bgnbd_compression.n_unique < 800
    alive = small_fit.probability_alive()
    assert alive.index.equals(small_fit.data_.index)
    assert ((alive["ci_lower"] <= alive["mean"]) & (alive["mean"] <= alive["ci_upper"])).all()
    path = small_fit.save(tmp_path / "bgnbd.nc")
    loaded = BetaGeoModel.load(path)
    pd.testing.assert_frame_equal(loaded.probability_alive(), alive)
    pd.testing.assert_frame_equal(loaded.expected_activity(horizon=10.0),
                                  small_fit.expected_activity(horizon=10.0))
    assert "BetaGeoModel" in repr(loaded) and "fitted: nuts" in repr(loaded)


def test_dense_mass_matrix_by_default_and_overridable(small_fit):
    attrs = json.loads(small_fit.idata_.attrs["listening_models"])
    assert attrs["mass_matrix"] == "dense"
    # on these data a diagonal metric gives a min bulk ESS of 126 from the 400 draws
    assert float(small_fit.summary()["ess_bulk"].astype(float).min()) > 200
    data = simulate(300, 0.6, 5.0, 1.0, 3.0, 52.0, seed=8)
    diag = BetaGeoModel().fit(data, draws=50, tune=50, chains=1, cores=1, random_seed=1,
                              init="jitter+adapt_diag")
    assert json.loads(diag.idata_.attrs["listening_models"])["mass_matrix"] == "diagonal"


def test_fast_segment_fit():
    data = pd.concat([simulate(300, 0.6, 5.0, 1.0, 3.0, 30.0, seed=1).assign(plan="free"),
                      simulate(300, 1.2, 5.0, 1.0, 9.0, 30.0, seed=2).assign(plan="premium")],
                     ignore_index=True)
    # ADVI keeps this end-to-end check fast (NUTS on a 2-segment hierarchy needs long trees)
    model = BetaGeoModel(segment="plan").fit(data, method="advi", advi_steps=3000, draws=300,
                                             random_seed=5)
    assert {"r_segment", "segment_sigma"} <= set(model.idata_["posterior"].data_vars)
    r_seg = model.posterior_draws("r_segment").median(("chain", "draw"))
    assert float(r_seg.sel(segment="premium")) > float(r_seg.sel(segment="free"))
    assert model.probability_alive().shape == (600, 4)


# --------------------------------------------------- tier 3: reference and recovery
@pytest.mark.data
def test_cdnow_map_is_the_published_mle(cdnow):
    assert len(cdnow) == 2357
    model = BetaGeoModel(priors=FLAT).fit(cdnow, method="map", random_seed=0)
    for k, v in CDNOW_MLE.items():
        assert float(model.posterior_draws(k).values.squeeze()) == pytest.approx(v, rel=0.01)


@pytest.mark.data
@pytest.mark.slow
def test_cdnow_posterior_medians(cdnow):
    model = BetaGeoModel().fit(cdnow, draws=500, tune=500, chains=2, cores=1, random_seed=2)
    assert model.summary()["r_hat"].astype(float).max() < 1.02
    for k, v in CDNOW_MLE.items():
        assert float(model.posterior_draws(k).median()) == pytest.approx(v, rel=0.10)


@pytest.mark.slow
def test_recovers_simulated_truth():
    truth = dict(r=0.5, alpha=10.0, a=0.8, b=4.0)
    data = simulate(4000, T=365.0, seed=11, **truth)
    model = BetaGeoModel().fit(data, draws=300, tune=300, chains=2, cores=1, random_seed=4)
    assert model.summary()["r_hat"].astype(float).max() < 1.05
    for k, v in truth.items():
        post = model.posterior_draws(k).values.ravel()
        lo, hi = np.quantile(post, [0.0005, 0.9995])
        assert lo < v < hi, (k, lo, hi)
        assert np.median(post) == pytest.approx(v, rel=0.15)


@pytest.mark.slow
def test_interval_coverage_over_repeated_simulations():
    truth = dict(r=0.6, alpha=4.0, a=0.9, b=3.0)
    n_reps, covered = 20, 0
    for rep in range(n_reps):
        data = simulate(600, T=np.repeat([26.0, 39.0, 52.0], 200), seed=100 + rep, **truth)
        model = BetaGeoModel().fit(data, draws=250, tune=250, chains=2, cores=1,
                                   random_seed=rep, progressbar=False)
        for k, v in truth.items():
            lo, hi = np.quantile(model.posterior_draws(k).values.ravel(), [0.05, 0.95])
            covered += bool(lo < v < hi)
    n = n_reps * len(truth)
    lo, hi = stats.binom.ppf([0.005, 0.995], n, 0.9)
    assert lo <= covered <= hi, (covered, lo, hi)


def test_special_functions_reference():
    # sanity of the independent helpers used above: Beta-Poisson identity for P(X(t)=0)
    point = POINTS[0]
    p0 = integrate_lp(lambda lam, p: math.exp(-lam * 39.0), **point)
    assert p0 == pytest.approx((point["alpha"] / (point["alpha"] + 39.0)) ** point["r"], rel=1e-8)
    assert special.betaln(2.0, 3.0) == pytest.approx(np.log(1 / 12))


def test_unpooled_segments_are_independent_fits():
    """hierarchical=False: the log-likelihood is the sum of each segment's own BG/NBD."""
    data = pd.concat([USERS.assign(plan="free"), USERS.assign(plan="premium")])
    model = BetaGeoModel(priors=FLAT, segment="plan", hierarchical=False).build_model(data)
    assert "segment_sigma" not in model.named_vars and "r" not in model.named_vars
    seg_params = {k: np.array([POINTS[0][k], POINTS[1][k]]) for k in PARAMS}
    point = {f"{k}_segment_log__": np.log(v) for k, v in seg_params.items()}
    expected = sum(brute_loglik(*row, **{k: seg_params[k][s] for k in PARAMS})
                   for s in range(2) for row in USERS.itertuples(index=False))
    assert potential_fn(model)(point) == pytest.approx(expected, rel=1e-8)
    with pytest.raises(ValueError, match=r"'hierarchical' parameter of BetaGeoModel.*Got 'no'"):
        BetaGeoModel(segment="plan", hierarchical="no")


@pytest.mark.slow
def test_unpooled_two_segment_nuts_fit_converges():
    data = pd.concat([simulate(400, 0.6, 5.0, 1.0, 3.0, 30.0, seed=1).assign(plan="free"),
                      simulate(400, 1.2, 5.0, 1.0, 9.0, 30.0, seed=2).assign(plan="premium")],
                     ignore_index=True)
    model = BetaGeoModel(segment="plan", hierarchical=False).fit(
        data, draws=1000, tune=1000, chains=4, cores=2, random_seed=3, progressbar=False)
    report = model.diagnostics()
    assert report.n_divergent == 0 and report.verdict in ("pass", "warn"), report
    assert model._parameter_names() == [f"{p}_segment" for p in PARAMS]
    b_seg = model.posterior_draws("b_segment").median(("chain", "draw"))
    assert float(b_seg.sel(segment="premium")) > float(b_seg.sel(segment="free"))
    assert model.probability_alive().shape == (800, 4)
