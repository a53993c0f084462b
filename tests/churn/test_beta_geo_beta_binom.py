"""Tests of the BG/BB model of discrete-time activity and dropout."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import integrate, special, stats

from models.churn.beta_geo_beta_binom import (
    BetaGeoBetaBinomModel,
    _future_sum,
    _loglik,
    bgbb_summary,
)
from models.data.simulate import simulate_bgbb
from models.exceptions import DataValidationError, NotFittedError
from models.predict import flatten_draws
from models.priors import Prior

_HERE = Path(__file__).resolve()
# ../shared/data beside the checkout; parents[2] when tests sit inside a folder holding shared/.
DATA = next((p / "shared" / "data" for p in (_HERE.parents[3], _HERE.parents[2])
             if (p / "shared" / "data").is_dir()), _HERE.parents[3] / "shared" / "data")
NAMES = ["alpha", "beta", "gamma", "delta"]
FLAT = {k: Prior("HalfFlat") for k in NAMES}
# Fader, Hardie & Shang (2010), donations data, MLE.
MLE = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}
TRUTH = {"alpha": 1.2, "beta": 0.8, "gamma": 0.6, "delta": 2.5}


@pytest.fixture
def rng():
    return np.random.default_rng(20240602)


@pytest.fixture(scope="module")
def data_dir():
    if not DATA.is_dir():
        pytest.skip(f"reference data folder {DATA} is absent")
    return DATA


def brute_force(a, b, g, d, x, tx, n):
    """Likelihood by summing over the death opportunity and integrating p, theta numerically."""
    def moment(k, j, a_, b_):  # E[u^k (1-u)^j] for u ~ Beta(a_, b_), by quadrature
        f = lambda u: u**k * (1 - u) ** j * stats.beta.pdf(u, a_, b_)  # noqa: E731
        return integrate.quad(f, 0, 1, epsabs=1e-13, limit=200)[0]
    # alive through n, or died just before opportunity tx + i + 1 (i = 0..n-tx-1)
    total = moment(x, n - x, a, b) * moment(0, n, g, d)
    for i in range(n - tx):
        total += moment(x, tx - x + i, a, b) * moment(1, tx + i, g, d)
    return total


def exact_likelihood(a, b, g, d, x, tx, n):
    """Direct sum of the paper's formula (eq. 5), one term at a time."""
    B = special.beta
    total = B(a + x, b + n - x) / B(a, b) * B(g, d + n) / B(g, d)
    for i in range(n - tx):
        total += B(a + x, b + tx - x + i) / B(a, b) * B(g + 1, d + tx + i) / B(g, d)
    return total


def fake_fit(data: pd.DataFrame, draws: dict) -> BetaGeoBetaBinomModel:
    model = BetaGeoBetaBinomModel()
    model.data_ = model._validate_data(data)
    model.model_ = model._build_model(model.data_)
    post = xr.Dataset({k: (("chain", "draw"), np.asarray(v, float)[None]) for k, v in
                       draws.items()})
    model.idata_ = xr.DataTree.from_dict({"posterior": post})
    return model


def users(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["frequency", "recency", "n"])


# ---------------------------------------------------------------- exact math


@pytest.mark.parametrize(("x", "tx", "n"), [(0, 0, 6), (1, 1, 6), (2, 4, 6), (6, 6, 6), (3, 5, 9)])
def test_log_likelihood_matches_formula_and_integration(x, tx, n):
    pars = (1.2, 0.75, 0.66, 2.8)
    got = np.exp(_loglik(*pars, np.array([x]), np.array([tx]), np.array([n])))[0]
    assert got == pytest.approx(exact_likelihood(*pars, x, tx, n), rel=1e-12)
    assert got == pytest.approx(brute_force(*pars, x, tx, n), rel=1e-6)


def test_likelihoods_of_all_histories_sum_to_one():
    """Summed over every possible activity pattern (x, t_x counted with multiplicity)."""
    pars, n = (0.9, 1.7, 0.5, 3.0), 5
    total = 0.0
    for pattern in itertools.product([0, 1], repeat=n):
        x = sum(pattern)
        tx = max((i + 1 for i, v in enumerate(pattern) if v), default=0)
        total += np.exp(_loglik(*pars, np.array([x]), np.array([tx]), np.array([n])))[0]
    assert total == pytest.approx(1.0, rel=1e-10)


def test_compressed_likelihood_equals_per_user_sum(rng):
    data = simulate_bgbb(300, **TRUTH, n_opportunities=6, random_seed=rng)
    model = BetaGeoBetaBinomModel(priors=FLAT)
    pm_model = model.build_model(data)
    assert len(model.rows_) < 30 and model.rows_["weight"].sum() == 300
    point = {f"{k}_log__": np.log(v) for k, v in MLE.items()}
    got = pm_model.compile_logp(jacobian=False)(point)
    per_user = _loglik(*MLE.values(), *(data[k].to_numpy() for k in ["frequency", "recency", "n"]))
    assert got == pytest.approx(per_user.sum(), rel=1e-10)
    np.testing.assert_array_equal(model.rows_.iloc[model.row_of_user_][["frequency", "recency"]],
                                  data[["frequency", "recency"]])


def test_tabled_likelihood_value_and_gradient_equal_the_direct_sum(rng):
    """The model gathers Beta-function tables; value and gradient equal the per-row sum."""
    data = simulate_bgbb(500, **TRUTH, n_opportunities=40, random_seed=rng)
    model = BetaGeoBetaBinomModel(priors=FLAT)
    pm_model = model.build_model(data)
    cols = [data[k].to_numpy() for k in ["frequency", "recency", "n"]]

    def direct(log_params):
        return _loglik(*np.exp(log_params), *cols).sum()

    theta = np.log(np.array(list(MLE.values())))
    point = {f"{k}_log__": v for k, v in zip(MLE, theta, strict=True)}
    assert pm_model.compile_logp(jacobian=False)(point) == pytest.approx(direct(theta), rel=1e-10)
    grad = pm_model.compile_dlogp(jacobian=False)(point)
    eps = 1e-6
    numeric = [(direct(theta + eps * e) - direct(theta - eps * e)) / (2 * eps) for e in np.eye(4)]
    order = [v.name for v in pm_model.value_vars]
    got = dict(zip(order, grad, strict=True))
    for name, value in zip(MLE, numeric, strict=True):
        assert got[f"{name}_log__"] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_future_sum_closed_form_matches_direct_sum():
    B = special.beta
    for g in [0.3, 1.0, 1.0 + 1e-9, 2.5]:
        for start, length in [(0, 1), (0, 7), (6, 5)]:
            direct = sum(B(g, 2.0 + start + k) / B(g, 2.0) for k in range(1, length + 1))
            assert _future_sum(g, 2.0, start, length) == pytest.approx(direct, rel=1e-6)


def test_predictions_from_fixed_posterior_equal_closed_forms():
    draws = {"alpha": [1.2, 0.5], "beta": [0.75, 2.0], "gamma": [0.66, 1.5], "delta": [2.8, 1.0]}
    data = users([(0, 0, 6), (2, 4, 6), (2, 4, 6), (6, 6, 6)])
    data.index = pd.Index(["u1", "u2", "u3", "u4"], name="user_id")
    model = fake_fit(data, draws)
    B = special.beta
    alive = np.empty((2, 4))
    act = np.empty((2, 4))
    for j, (a, b, g, d) in enumerate(zip(*draws.values(), strict=True)):
        for u, (x, tx, n) in enumerate(data.to_numpy()):
            L = exact_likelihood(a, b, g, d, x, tx, n)
            alive[j, u] = B(a + x, b + n - x) / B(a, b) * B(g, d + n + 1) / B(g, d) / L
            # E[X(n, n+3)] = sum_k P(alive at n+k, active at n+k | data)
            act[j, u] = sum(B(a + x + 1, b + n - x) / B(a, b) * B(g, d + n + k) / B(g, d)
                            for k in (1, 2, 3)) / L
    got = model.probability_alive()
    assert list(got.index) == ["u1", "u2", "u3", "u4"]
    np.testing.assert_allclose(got["mean"], alive.mean(axis=0), rtol=1e-9)
    alive_draws = model.probability_alive(return_draws=True)
    assert alive_draws.dims == ("chain", "draw", "user")
    assert list(alive_draws["user"].values) == ["u1", "u2", "u3", "u4"]
    np.testing.assert_allclose(flatten_draws(alive_draws), alive, rtol=1e-9)
    np.testing.assert_allclose(
        flatten_draws(model.expected_activity(horizon=3, return_draws=True)), act, rtol=1e-6)
    new = users([(1, 3, 8)])
    later = flatten_draws(model.probability_alive(new, horizon=2, return_draws=True))[:, 0]
    for j, (a, b, g, d) in enumerate(zip(*draws.values(), strict=True)):
        expected = (B(a + 1, b + 7) / B(a, b) * B(g, d + 11) / B(g, d)
                    / exact_likelihood(a, b, g, d, 1, 3, 8))
        assert later[j] == pytest.approx(expected, rel=1e-9)


def test_new_user_predictions_match_enumeration():
    """P(X(n)=x) and E[X(n)] against the likelihoods of every activity pattern."""
    draws = {"alpha": [1.2, 0.5], "beta": [0.75, 2.0], "gamma": [0.66, 1.0], "delta": [2.8, 1.0]}
    model = fake_fit(users([(0, 0, 4)]), draws)
    n = 4
    dist = np.zeros((2, n + 1))
    for j, pars in enumerate(zip(*draws.values(), strict=True)):
        for pattern in itertools.product([0, 1], repeat=n):
            x = sum(pattern)
            tx = max((i + 1 for i, v in enumerate(pattern) if v), default=0)
            dist[j, x] += exact_likelihood(*pars, x, tx, n)
    got = model.probability_repeat_count_new_user(count=np.arange(n + 1), horizon=n,
                                                  return_draws=True)
    assert got.dims == ("chain", "draw", "count", "horizon")
    np.testing.assert_allclose(flatten_draws(got.squeeze("horizon", drop=True)), dist,
                               rtol=1e-10)
    mean = flatten_draws(model.expected_activity_new_user(horizon=[n], return_draws=True))[:, 0]
    np.testing.assert_allclose(mean, dist @ np.arange(n + 1), rtol=1e-6)
    grid = model.probability_repeat_count_new_user(count=[0, 1], horizon=[3, 4])
    assert grid.index.names == ["count", "horizon"] and len(grid) == 4
    # the deprecated name still gives P(X(n) = x) for the broadcast pairs, with a warning
    with pytest.warns(FutureWarning, match="probability_repeat_count_new_user"):
        old = model.probability_activity([0, 1], [4, 4])
    assert old.index.names == ["count", "horizon"]
    np.testing.assert_allclose(old["mean"], dist[:, :2].mean(axis=0), rtol=1e-10)


def test_predictions_come_in_blocks_sized_by_the_likelihood_sum(monkeypatch, rng):
    """Each row's likelihood sums up to max(n - t_x) terms on a trailing axis: the rows come in
    blocks of about DEFAULT_BLOCK_ELEMENTS draws x rows x terms (all rows in one block of
    4,000 draws took 8 GB in the churn analysis), and every prediction is the same to the last
    digit whatever the blocks."""
    import models.churn.beta_geo_beta_binom as bgbb
    import models.predict

    data = simulate_bgbb(400, **TRUTH, n_opportunities=30, random_seed=rng)
    n_draws = 40
    model = fake_fit(data, {k: v * np.exp(rng.normal(0, 0.1, n_draws)) for k, v in TRUTH.items()})
    width = int((model.rows_["n"] - model.rows_["recency"]).max())
    assert width >= 20 and len(model.rows_) > 50

    def predictions():
        return [flatten_draws(model.probability_alive(return_draws=True)),
                flatten_draws(model.expected_activity(horizon=5, return_draws=True)),
                model.probability_alive(data.iloc[::3], horizon=2)["mean"].to_numpy(),
                flatten_draws(model.probability_repeat_count_new_user(
                    count=np.arange(31), horizon=[10, 30], return_draws=True)).reshape(n_draws, -1)]

    for module in (bgbb, models.predict):
        monkeypatch.setattr(module, "DEFAULT_BLOCK_ELEMENTS", 10**12)  # one block of every row
    whole = predictions()

    sizes = []

    def spy(alpha, beta, gamma, delta, x, tx, n, lib=np, width=None):
        terms = width if width is not None else int(np.max(n - tx, initial=0))
        sizes.append(np.broadcast(alpha, x).size * max(terms, 1))
        return _loglik(alpha, beta, gamma, delta, x, tx, n, lib, width)

    budget = n_draws * width * 7  # seven rows of every term per block
    for module in (bgbb, models.predict):
        monkeypatch.setattr(module, "DEFAULT_BLOCK_ELEMENTS", budget)
    monkeypatch.setattr(bgbb, "_loglik", spy)
    blocked = predictions()
    assert len(sizes) >= 2 * (len(model.rows_) // 7) and max(sizes) <= budget
    for got, expected in zip(blocked, whole, strict=True):
        np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- data checks


def test_bgbb_summary_counts_the_first_period_as_trial():
    log = pd.DataFrame({"user_id": ["a", "a", "a", "a", "b"], "timestamp": pd.to_datetime(
        ["2024-01-01", "2024-01-02", "2024-01-09", "2024-01-23", "2024-01-16"])})
    summary = bgbb_summary(log, observation_end="2024-01-28 23:59")
    assert summary.loc["a"].tolist() == [2, 3, 3]  # weeks 0, 1, 3 of 0..3
    assert summary.loc["b"].tolist() == [0, 0, 1]
    BetaGeoBetaBinomModel()._validate_data(summary)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (users([(1, 7, 6)]), r"recency <= n.*\(1, 7, 6\)"),
        (users([(3, 2, 6)]), r"frequency <= recency.*\(3, 2, 6\)"),
        (users([(0, 2, 6)]), "recency 0 when frequency is 0"),
        (users([(-1, 0, 6)]), r"non-negative values.*row 0 \(-1\)"),
        (users([(1.5, 2, 6)]), r"integers.*row 0 \(1.5\)"),
        (users([(np.nan, 2, 6)]), "no missing values"),
        (users([(1, 2, 6)]).assign(n="6"), "integers \\(got dtype"),
        (users([(1, 2, 6)]).drop(columns="n"), "column 'n'"),
        (users([]), "at least one row"),
        (users([(1, 2, 6)]).assign(weight=0), "positive user counts"),
    ],
)
def test_invalid_data_is_rejected(data, match):
    with pytest.raises(DataValidationError, match=match):
        BetaGeoBetaBinomModel().fit(data)


def test_parameter_errors():
    with pytest.raises(ValueError, match="no prior named 'kappa'"):
        BetaGeoBetaBinomModel(priors={"kappa": Prior("HalfFlat")})
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        BetaGeoBetaBinomModel().fit(np.zeros((3, 3)))
    with pytest.raises(NotFittedError):
        BetaGeoBetaBinomModel().probability_alive()
    model = fake_fit(users([(0, 0, 4)]), {k: [1.0] for k in NAMES})
    with pytest.raises(ValueError, match="'horizon' .*expected_activity.* Got -1"):
        model.expected_activity(horizon=-1)
    with pytest.raises(ValueError, match="'horizon' .*probability_alive.* Got 1.5"):
        model.probability_alive(horizon=1.5)
    # more active opportunities than opportunities: probability 0 on the grid
    impossible = model.probability_repeat_count_new_user(count=5, horizon=4)
    assert impossible["mean"].tolist() == [0.0]
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="must not exceed n"):
        model.probability_activity(5, 4)
    with pytest.raises(DataValidationError, match="frequency <= recency"):
        model.probability_alive(users([(3, 2, 6)]))


# ---------------------------------------------------------------- fast fits


def test_tiny_fit_and_save_load_round_trip(tmp_path, rng):
    data = simulate_bgbb(200, **TRUTH, n_opportunities=5, random_seed=rng)[
        ["frequency", "recency", "n"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BetaGeoBetaBinomModel().fit(data, draws=100, tune=100, chains=2, cores=1,
                                            random_seed=rng)
    before = model.expected_activity(horizon=4)
    assert len(before) == 200 and before.index.equals(data.index)
    loaded = BetaGeoBetaBinomModel.load(model.save(tmp_path / "bgbb.nc"))
    pd.testing.assert_frame_equal(loaded.expected_activity(horizon=4), before)
    np.testing.assert_array_equal(loaded.row_of_user_, model.row_of_user_)


# ---------------------------------------------------------------- reference and recovery


@pytest.mark.slow
@pytest.mark.data
def test_donations_reference(data_dir):
    """Fader, Hardie & Shang (2010): MLE 1.204, 0.750, 0.657, 2.783 on 11,104 donors."""
    raw = pd.read_csv(data_dir / "clv-reference" / "bgbb_donations.csv")
    data = raw.rename(columns={"T": "n"}).set_index("customer_id")
    flat = BetaGeoBetaBinomModel(priors=FLAT).fit(data, method="map", random_seed=1)
    assert len(flat.rows_) == 22
    for name, value in MLE.items():
        got = float(flat.idata_["posterior"][name].values.ravel()[0])
        assert got == pytest.approx(value, rel=0.01, abs=0.005), name
    # The paper's P(X(6) = 0) of a new donor is 3464 / 11104 observed.
    p0 = flat.probability_repeat_count_new_user(count=0, horizon=6)["mean"].iloc[0]
    assert p0 == pytest.approx(3464 / 11104, abs=0.005)
    aggregated = pd.read_csv(data_dir / "cdnow" / "donations.csv").rename(
        columns={"periods": "n", "weights": "weight"})
    nuts = BetaGeoBetaBinomModel().fit(aggregated, draws=400, tune=400, chains=2, cores=1,
                                       random_seed=2)
    summary = nuts.summary(ci_prob=0.94)
    for name, value in MLE.items():
        assert summary.loc[name, "ci_lower"] < value < summary.loc[name, "ci_upper"], name


@pytest.mark.slow
def test_recovers_simulated_parameters_and_coverage(rng):
    """Recovery on 2,000 users, then the 90% intervals over R replicates.

    Each NUTS fit costs several seconds (mostly compilation), so R is small. The
    four indicators of one replicate are strongly correlated, so the 4R count is
    checked against 4 x the central 99% range of Binomial(R, 0.9), the bound for
    perfectly correlated indicators (a loose check that still fails when the
    intervals are systematically off).
    """
    reps, covered = 5, 0
    for rep in range(reps):
        data = simulate_bgbb(2000, **TRUTH, n_opportunities=8, random_seed=rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = BetaGeoBetaBinomModel().fit(data, draws=200, tune=250, chains=2, cores=1,
                                                random_seed=rng)
        summary = model.summary(ci_prob=0.90)
        if rep == 0:
            for name, value in TRUTH.items():
                assert summary.loc[name, "mean"] == pytest.approx(value, rel=0.35), name
        for name, value in TRUTH.items():
            covered += int(summary.loc[name, "ci_lower"] < value < summary.loc[name, "ci_upper"])
    low, high = 4 * stats.binom.ppf([0.005, 0.995], reps, 0.9)
    assert low <= covered <= high, (covered, low, high)
