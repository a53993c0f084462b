"""Tests of the surrogate index (models.experiments.surrogate)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import optimize, special, stats

from models.exceptions import DataValidationError, ModelMismatchError, NotFittedError
from models.experiments._mixtures import normal_mixture_quantiles
from models.experiments._surrogate_index import arm_moments_by_block
from models.experiments.proxies import ProxyMetricModel
from models.experiments.surrogate import SurrogateIndexModel
from models.priors import Prior

SURROGATES = ["days_w1", "plays_w1"]
MEANS = np.array([4.0, 30.0])
SDS = np.array([2.0, 10.0])
COEF = np.array([3.0, 0.4])  # outcome units per unit of each surrogate
SHIFT = np.array([0.3, 1.0])  # treatment shift of the surrogates
FIT = {"draws": 500, "tune": 500, "chains": 2, "cores": 1}


@pytest.fixture
def rng():
    return np.random.default_rng(20240716)


def surrogates(rng, n, shift=0.0):
    return rng.normal(MEANS + shift, SDS, size=(n, 2))


def linear_reference(rng, n, noise=8.0):
    s = surrogates(rng, n)
    y = 5.0 + s @ COEF + rng.normal(0, noise, n)
    return pd.DataFrame({SURROGATES[0]: s[:, 0], SURROGATES[1]: s[:, 1], "days_m2_6": y})


def experiment(rng, n_arm, shift=SHIFT, arms=("control", "new")):
    parts = [surrogates(rng, n_arm, shift * (i > 0)) for i in range(len(arms))]
    s = np.vstack(parts)
    return pd.DataFrame({"variant": np.repeat(arms, n_arm), SURROGATES[0]: s[:, 0],
                         SURROGATES[1]: s[:, 1]},
                        index=pd.Index([f"u{i}" for i in range(len(s))], name="user_id"))


def fake_fit(model, data, intercept, beta, extra=None):
    """Attach a fixed posterior (draws of the internal-scale parameters), one chain."""
    model.data_ = model._validate_data(data)
    model.model_ = model._build_model(model.data_)
    beta = np.asarray(beta, float).reshape(-1, len(model.surrogates))
    post = {"intercept": (("chain", "draw"), np.asarray(intercept, float).reshape(1, -1)),
            "beta": (("chain", "draw", "surrogate"), beta[None])}
    for name, values in (extra or {}).items():
        post[name] = (("chain", "draw"), np.asarray(values, float).reshape(1, -1))
    model.idata_ = xr.DataTree.from_dict({"posterior": xr.Dataset(
        post, coords={"surrogate": list(model.surrogates)})})
    return model


def linear_model(**kwargs):
    return SurrogateIndexModel(surrogates=SURROGATES, outcome="days_m2_6", **kwargs)


# ---------------------------------------------------------------- exact math


def test_effect_from_fixed_posterior_is_the_shift_in_surrogate_means_times_the_coefficients(rng):
    ref = linear_reference(rng, 500)
    model = linear_model()
    beta_z = np.array([[0.5, 0.2], [0.6, 0.1], [0.4, 0.3]])
    fake_fit(model, ref, [0.1, -0.1, 0.0], beta_z, {"sigma": [0.5] * 3})
    sc = model.scaling_
    coef = beta_z * sc.outcome_scale / sc.scale  # outcome units per raw unit, per draw
    exp = experiment(rng, 300)
    treated = (exp["variant"] == "new").to_numpy()
    s = exp[SURROGATES].to_numpy()
    diff = s[treated].mean(axis=0) - s[~treated].mean(axis=0)
    delta = coef @ diff
    var_s = np.array([c @ np.cov(s[treated], rowvar=False) @ c / treated.sum()
                      + c @ np.cov(s[~treated], rowvar=False) @ c / (~treated).sum()
                      for c in coef])
    table = model.estimate_effect(exp, random_seed=1)
    row = table.loc["new"]
    assert row["effect"] == pytest.approx(delta.mean(), rel=1e-10)
    assert row["var_parameters"] == pytest.approx(delta.var(), rel=1e-10)
    assert row["var_sampling"] == pytest.approx(var_s.mean(), rel=1e-10)
    assert row["effect_sd"] == pytest.approx(np.sqrt(delta.var() + var_s.mean()), rel=1e-10)
    assert row["share_parameter_variance"] + row["share_sampling_variance"] == pytest.approx(1)
    # the interval is the quantile of the mixture of normals over the draws
    cdf = lambda x: special.ndtr((x - delta) / np.sqrt(var_s)).mean()  # noqa: E731
    lower = optimize.brentq(lambda x: cdf(x) - 0.025, -100, 100, xtol=1e-12)
    assert row["effect_ci_lower"] == pytest.approx(lower, abs=1e-8)
    assert row["prob_better"] == pytest.approx(special.ndtr(delta / np.sqrt(var_s)).mean())
    y_c = sc.outcome_center + sc.outcome_scale * (
        np.array([0.1, -0.1, 0.0]) + beta_z @ ((s[~treated] - sc.center) / sc.scale).mean(axis=0))
    assert row["mean_control"] == pytest.approx(y_c.mean())
    assert row["n_control"] == 300 and row["n_treatment"] == 300
    assert table.attrs == {"ci_prob": 0.95, "outcome": "days_m2_6", "control": "control"}


def test_one_draw_gives_a_normal_interval_with_only_sampling_variance(rng):
    model = fake_fit(linear_model(), linear_reference(rng, 200), [0.0], [[0.5, 0.5]],
                     {"sigma": [1.0]})
    row = model.estimate_effect(experiment(rng, 400), ci_prob=0.9).loc["new"]
    assert row["share_sampling_variance"] == 1.0 and row["var_parameters"] == 0.0
    half = stats.norm.ppf(0.95) * row["effect_sd"]
    assert row["effect_ci_lower"] == pytest.approx(row["effect"] - half, rel=1e-9)
    assert row["effect_ci_upper"] == pytest.approx(row["effect"] + half, rel=1e-9)


def test_direction_sets_prob_better(rng):
    ref = linear_reference(rng, 200)
    exp = experiment(rng, 300)
    up = fake_fit(linear_model(), ref, [0.0], [[0.5, 0.5]], {"sigma": [1.0]})
    down = fake_fit(linear_model(higher_is_better=False), ref, [0.0], [[0.5, 0.5]],
                    {"sigma": [1.0]})
    p_up = up.estimate_effect(exp).loc["new", "prob_better"]
    assert p_up > 0.9
    assert down.estimate_effect(exp).loc["new", "prob_better"] == pytest.approx(1 - p_up)


def test_mixture_quantile_matches_root_finding():
    rng = np.random.default_rng(3)
    means, sds = rng.normal(0, 1, 50), rng.uniform(0.1, 2, 50)
    for q in (0.025, 0.5, 0.975):
        target = optimize.brentq(lambda x, q=q: special.ndtr((x - means) / sds).mean() - q, -20, 20,
                                 xtol=1e-13)
        assert normal_mixture_quantiles(means, sds, [q])[0] == pytest.approx(target, abs=1e-9)
    # zero spreads: the quantile of the point masses
    assert normal_mixture_quantiles(np.array([1.0, 2.0, 3.0]), np.zeros(3), [0.5])[0] == (
        pytest.approx(2.0))


def test_general_moments_agree_with_the_linear_closed_form(rng):
    model = fake_fit(linear_model(), linear_reference(rng, 300), [0.1, 0.2],
                     [[0.5, 0.2], [0.3, 0.4]], {"sigma": [1.0, 1.0]})
    z = model._standardized(experiment(rng, 500), "experiment sample")
    params, _ = model._draws(None, np.random.default_rng(0))
    exact = model._arm_moments(params, z)
    by_block = arm_moments_by_block(params, z, model.scaling_, model.likelihood)
    np.testing.assert_allclose(by_block[0], exact[0], rtol=1e-10)
    np.testing.assert_allclose(by_block[1], exact[1], rtol=1e-8)


def test_logistic_index_is_the_mean_probability(rng):
    s = surrogates(rng, 400)
    ref = pd.DataFrame({SURROGATES[0]: s[:, 0], SURROGATES[1]: s[:, 1],
                        "active_m6": rng.binomial(1, 0.3, 400)})
    model = SurrogateIndexModel(surrogates=SURROGATES, outcome="active_m6",
                                likelihood="bernoulli")
    fake_fit(model, ref, [0.2, -0.2], [[0.5, -0.3], [0.4, 0.0]])
    exp = experiment(rng, 200)
    z = (exp[SURROGATES].to_numpy() - model.scaling_.center) / model.scaling_.scale
    offset = special.logit(ref["active_m6"].mean())
    p = special.expit(offset + np.array([0.2, -0.2])[:, None]
                      + np.array([[0.5, -0.3], [0.4, 0.0]]) @ z.T)
    treated = (exp["variant"] == "new").to_numpy()
    delta = p[:, treated].mean(axis=1) - p[:, ~treated].mean(axis=1)
    assert model.estimate_effect(exp).loc["new", "effect"] == pytest.approx(delta.mean())
    out = model.expected_outcome(exp, ci_prob=0.5)
    np.testing.assert_allclose(out["mean"], p.mean(axis=0))
    assert out.index.equals(exp.index) and out.attrs["ci_prob"] == 0.5
    assert list(out.columns) == ["mean", "sd", "ci_lower", "ci_upper"]


def test_draws_have_fixed_dims_and_share_the_control_noise(rng):
    model = fake_fit(linear_model(), linear_reference(rng, 300), np.zeros(50),
                     rng.normal(0.5, 0.05, (50, 2)), {"sigma": np.ones(50)})
    exp = experiment(rng, 200, arms=("control", "a", "b"))
    draws = model.estimate_effect(exp, return_draws=True, random_seed=4)
    assert draws.dims == ("draw", "variant") and list(draws["variant"].values) == ["a", "b"]
    again = model.estimate_effect(exp, return_draws=True, random_seed=4)
    xr.testing.assert_identical(draws, again)
    table = model.estimate_effect(exp, random_seed=4)
    assert list(table.index) == ["a", "b"]
    # a and b share the control arm's sampling error: their effects are correlated
    assert np.corrcoef(draws.sel(variant="a"), draws.sel(variant="b"))[0, 1] > 0.2
    assert draws.sizes["draw"] == 4000  # 80 sampling-error draws per posterior draw
    np.testing.assert_allclose(draws.mean("draw"), table["effect"], atol=0.1 * table["effect_sd"].max())
    sub = model.estimate_effect(exp, max_draws=10, return_draws=True, random_seed=4)
    assert sub.sizes["draw"] == 4000
    assert np.unique(model.estimate_effect(exp.iloc[[0, 1, 200, 201, 400, 401]], max_draws=1,
                                           return_draws=True).values[:, 0]).size > 100
    outcome = model.expected_outcome(exp.iloc[:5], return_draws=True)
    assert outcome.dims == ("chain", "draw", "user")
    assert list(outcome["user"].values) == list(exp.index[:5])


@pytest.mark.slow
def test_interval_coverage_with_exact_posteriors():
    """Coverage of estimate_effect over repeated reference samples and experiments.

    The posterior of the linear model with a known noise level is computed in
    closed form (flat prior), so hundreds of repetitions need no sampling. With
    the small reference sample about half the variance comes from the
    coefficients, so leaving out either source would drop the coverage to about
    80% or less.
    """
    rng = np.random.default_rng(11)
    noise, n_arm, reps, truth = 30.0, 300, 250, SHIFT @ COEF
    for n_ref, share in ((60, (0.35, 0.8)), (3000, (0.0, 0.1))):
        covered, shares = 0, []
        for _ in range(reps):
            ref = linear_reference(rng, n_ref, noise)
            model = linear_model()
            model.scaling_ = sc = model._scaling(ref)
            x = np.column_stack([np.ones(n_ref),
                                 (ref[SURROGATES].to_numpy() - sc.center) / sc.scale])
            y = (ref["days_m2_6"].to_numpy() - sc.outcome_center) / sc.outcome_scale
            xtx_inv = np.linalg.inv(x.T @ x)
            draws = rng.multivariate_normal(xtx_inv @ x.T @ y,
                                            (noise / sc.outcome_scale) ** 2 * xtx_inv, 400)
            model.idata_ = xr.DataTree.from_dict({"posterior": xr.Dataset({
                "intercept": (("chain", "draw"), draws[None, :, 0]),
                "beta": (("chain", "draw", "surrogate"), draws[None, :, 1:])})})
            row = model.estimate_effect(experiment(rng, n_arm)).loc["new"]
            covered += row["effect_ci_lower"] <= truth <= row["effect_ci_upper"]
            shares.append(row["share_parameter_variance"])
        assert 0.91 <= covered / reps <= 0.985, (n_ref, covered)
        assert share[0] <= np.mean(shares) <= share[1], (n_ref, np.mean(shares))


# --------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"surrogates": "days_w1", "outcome": "y"}, "'surrogates' .* list of distinct column"),
        ({"surrogates": ["a", "a"], "outcome": "y"}, "'surrogates'"),
        ({"surrogates": [], "outcome": "y"}, "'surrogates'"),
        ({"surrogates": ["a"], "outcome": "a"}, "'outcome' .* not a surrogate. Got 'a'"),
        ({"surrogates": ["a"], "outcome": "y", "likelihood": "logit"},
         "'likelihood' .* must be one of"),
        ({"surrogates": ["a"], "outcome": "y", "standardize": "yes"}, "'standardize' .* True"),
        ({"surrogates": ["a"], "outcome": "y", "likelihood": "bernoulli",
          "priors": {"sigma": Prior("HalfNormal", sigma=2.0)}}, "does not use the prior.*sigma"),
        ({"surrogates": ["a"], "outcome": "y", "priors": {"gamma": Prior("Normal")}},
         "no prior named 'gamma'"),
    ],
)
def test_parameter_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SurrogateIndexModel(**kwargs)


def test_reference_errors(rng):
    ref = linear_reference(rng, 100)
    model = linear_model()
    with pytest.raises(DataValidationError, match="column 'days_m2_6': expected the outcome column"):
        model.build_model(ref.drop(columns="days_m2_6"))
    with pytest.raises(DataValidationError, match=r"surrogate column\(s\) \['plays_w1'\]"):
        model.build_model(ref.drop(columns="plays_w1"))
    with pytest.raises(DataValidationError, match="did you mean 'plays_wk1' for 'plays_w1'"):
        model.build_model(ref.rename(columns={"plays_w1": "plays_wk1"}))
    bad = ref.copy()
    bad.iloc[[3, 7], 0] = [np.nan, np.inf]
    with pytest.raises(DataValidationError, match=r"'days_w1': expected finite .* 2 row\(s\).*row 3"):
        model.build_model(bad)
    with pytest.raises(DataValidationError, match="'days_w1': expected a surrogate that varies"):
        model.build_model(ref.assign(days_w1=2.0))
    with pytest.raises(DataValidationError, match="'plays_w1': expected numbers"):
        model.build_model(ref.assign(plays_w1="many"))
    with pytest.raises(DataValidationError, match="outcome that varies"):
        model.build_model(ref.assign(days_m2_6=3.0))
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        model.build_model(ref.to_numpy())


def test_too_small_a_reference_sample_says_how_many_rows_are_needed(rng):
    with pytest.raises(DataValidationError,
                       match=r"at least 10 rows per coefficient: 30 rows for 2 surrogate\(s\) .* got "
                             r"25.*or at most 1 surrogate\(s\) for 25 rows"):
        linear_model().build_model(linear_reference(rng, 25))


def test_outcome_must_fit_the_likelihood(rng):
    ref = linear_reference(rng, 100)
    binary = SurrogateIndexModel(surrogates=SURROGATES, outcome="days_m2_6",
                                 likelihood="bernoulli")
    with pytest.raises(DataValidationError, match="expected 0 or 1"):
        binary.build_model(ref)
    with pytest.raises(DataValidationError, match="both 0 and 1"):
        binary.build_model(ref.assign(days_m2_6=1))
    counts = SurrogateIndexModel(surrogates=SURROGATES, outcome="days_m2_6",
                                 likelihood="poisson")
    with pytest.raises(DataValidationError, match="non-negative integers"):
        counts.build_model(ref)
    assert counts._validate_data(ref.assign(days_m2_6=3))["days_m2_6"].dtype == "int64"


def test_experiment_errors(rng):
    model = fake_fit(linear_model(), linear_reference(rng, 200), [0.0], [[0.5, 0.5]],
                     {"sigma": [1.0]})
    exp = experiment(rng, 50)
    with pytest.raises(DataValidationError, match="did you mean 'plays_week1' for 'plays_w1'"):
        model.estimate_effect(exp.rename(columns={"plays_w1": "plays_week1"}))
    with pytest.raises(DataValidationError, match="column 'arm': expected the treatment column"):
        model.estimate_effect(exp, treatment="arm")
    with pytest.raises(DataValidationError, match=r"control arm 'ctrl'; the arms found are "
                                                  r"\['control', 'new'\]"):
        model.estimate_effect(exp, control="ctrl")
    with pytest.raises(DataValidationError, match="at least one arm besides the control"):
        model.estimate_effect(exp[exp["variant"] == "control"])
    with pytest.raises(DataValidationError, match=r"at least 2 users per arm; arm\(s\) \['new'\]"):
        model.estimate_effect(exp.iloc[:51])
    bad = exp.copy()
    bad.loc[bad.index[4], "variant"] = None
    with pytest.raises(DataValidationError, match="'variant': expected an arm for every user"):
        model.estimate_effect(bad)
    bad = exp.copy()
    bad.iloc[5, 1] = np.nan
    with pytest.raises(DataValidationError, match="'days_w1': expected finite numbers.*row 5"):
        model.estimate_effect(bad)
    with pytest.raises(DataValidationError, match="surrogate column"):
        model.expected_outcome(exp.drop(columns="days_w1"))
    with pytest.raises(ValueError, match="'ci_prob' parameter of SurrogateIndexModel.estimate_"
                                         "effect must be a number in \\(0, 1\\). Got 95 instead"):
        model.estimate_effect(exp, ci_prob=95)
    with pytest.raises(ValueError, match="'max_draws' .* positive integer. Got 0"):
        model.expected_outcome(max_draws=0)
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        model.estimate_effect(exp.to_numpy())


def test_methods_need_a_fit(rng):
    model = linear_model()
    for call in (lambda: model.estimate_effect(experiment(rng, 10)),
                 lambda: model.expected_outcome()):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()
    assert repr(model) == ("SurrogateIndexModel(surrogates=['days_w1', 'plays_w1'], "
                           "outcome='days_m2_6', likelihood='normal', standardize=True, "
                           "higher_is_better=True)")


# --------------------------------------------------------------- fitting


@pytest.fixture(scope="module")
def linear_fit():
    """A normal fit on a reference sample of 2000 users, and an experiment of 2 x 2000."""
    rng = np.random.default_rng(5)
    model = linear_model().fit(linear_reference(rng, 2000), random_seed=1, **FIT)
    return model, experiment(rng, 2000)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::models.exceptions.ConvergenceWarning")
def test_fit_save_load_round_trip(tmp_path, rng):
    ref = linear_reference(rng, 300).set_index(pd.Index(np.arange(300) + 7, name="user_id"))
    model = SurrogateIndexModel(surrogates=SURROGATES, outcome="days_m2_6",
                                priors={"beta": Prior("Normal", mu=0.0, sigma=1.0)})
    model.fit(ref, draws=100, tune=100, chains=1, random_seed=3)
    assert set(model.summary().index) >= {"intercept", "beta[days_w1]", "coef[plays_w1]", "sigma"}
    exp = experiment(rng, 200)
    before = model.estimate_effect(exp, random_seed=1)
    loaded = SurrogateIndexModel.load(model.save(tmp_path / "surrogate.nc"))
    assert loaded.get_params() == model.get_params()
    assert loaded.data_.index.equals(model.data_.index)
    pd.testing.assert_frame_equal(loaded.estimate_effect(exp, random_seed=1), before)
    pd.testing.assert_frame_equal(loaded.expected_outcome(), model.expected_outcome())
    with pytest.raises(ModelMismatchError, match="holds a SurrogateIndexModel fit"):
        ProxyMetricModel.load(tmp_path / "surrogate.nc")


@pytest.mark.slow
def test_linear_fit_recovers_the_coefficients_and_the_effect(linear_fit):
    big, exp = linear_fit
    assert big.converged_
    coef = big.summary(["coef"], ci_prob=0.99)
    assert ((coef["ci_lower"] <= COEF) & (COEF <= coef["ci_upper"])).all()
    row = big.estimate_effect(exp, random_seed=1).loc["new"]
    truth = SHIFT @ COEF
    assert row["effect_ci_lower"] <= truth <= row["effect_ci_upper"]
    assert row["effect_ci_upper"] - row["effect_ci_lower"] < 1.5
    assert 0 <= row["share_parameter_variance"] <= 1
    assert row["share_parameter_variance"] + row["share_sampling_variance"] == pytest.approx(1)
    mean_c = 5.0 + MEANS @ COEF
    assert row["lift_ci_lower"] <= truth / mean_c <= row["lift_ci_upper"]


@pytest.mark.slow
def test_parameter_share_rises_as_the_reference_sample_shrinks(linear_fit):
    big, exp = linear_fit
    small = linear_model().fit(linear_reference(np.random.default_rng(6), 150), random_seed=2,
                               **FIT)
    share_big = big.estimate_effect(exp).loc["new", "share_parameter_variance"]
    share_small = small.estimate_effect(exp).loc["new", "share_parameter_variance"]
    assert share_small > 3 * share_big
    assert small.estimate_effect(exp).loc["new", "effect_sd"] > (
        big.estimate_effect(exp).loc["new", "effect_sd"])


@pytest.mark.slow
def test_logistic_fit_covers_the_long_term_effect_on_retention():
    rng = np.random.default_rng(8)
    beta0, beta = -4.0, np.array([0.35, 0.05])

    def retained(s):
        return special.expit(beta0 + s @ beta)

    s = surrogates(rng, 2000)
    ref = pd.DataFrame({SURROGATES[0]: s[:, 0], SURROGATES[1]: s[:, 1],
                        "active_m6": rng.binomial(1, retained(s))})
    model = SurrogateIndexModel(surrogates=SURROGATES, outcome="active_m6",
                                likelihood="bernoulli").fit(ref, random_seed=4, **FIT)
    population = surrogates(rng, 1_000_000)
    truth = (retained(population + SHIFT) - retained(population)).mean()
    row = model.estimate_effect(experiment(rng, 2000), random_seed=5).loc["new"]
    assert row["effect_ci_lower"] <= truth <= row["effect_ci_upper"]
    assert 0 < row["effect_ci_lower"]
    assert 0.05 < row["share_parameter_variance"] < 0.95  # both sources matter here


@pytest.mark.slow
def test_negative_binomial_fit_of_active_days():
    rng = np.random.default_rng(9)
    s = surrogates(rng, 1500)
    mu = np.exp(1.0 + 0.25 * s[:, 0] + 0.02 * s[:, 1])
    days = rng.negative_binomial(2.0, 2.0 / (2.0 + mu))  # var = mu + mu^2 / 2
    ref = pd.DataFrame({SURROGATES[0]: s[:, 0], SURROGATES[1]: s[:, 1], "days_m2_6": days})
    model = SurrogateIndexModel(surrogates=SURROGATES, outcome="days_m2_6",
                                likelihood="negative_binomial").fit(
        ref, random_seed=6, **{**FIT, "tune": 1000})  # a shorter warm-up leaves R-hat ~1.011
    od = model.summary(["overdispersion"], ci_prob=0.99)
    assert od["ci_lower"].iloc[0] < np.sqrt(0.5) < od["ci_upper"].iloc[0]
    population = surrogates(rng, 1_000_000)

    def mean(x):
        return np.exp(1.0 + 0.25 * x[:, 0] + 0.02 * x[:, 1])

    truth = (mean(population + SHIFT) - mean(population)).mean()
    row = model.estimate_effect(experiment(rng, 2000), random_seed=7).loc["new"]
    assert row["effect_ci_lower"] <= truth <= row["effect_ci_upper"]
