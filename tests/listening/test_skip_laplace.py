"""Tests of SkipModel(user_inference="laplace"): the marginal, its gradient, the draws, the fit."""

from __future__ import annotations

import json
import warnings

import arviz as az
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import integrate, optimize, special

from models.exceptions import ConvergenceWarning
from models.listening import SkipModel, skip_table
from models.listening._laplace_logit import (
    LogitLaplaceLogp,
    draw_intercepts,
    laplace_logit,
    quadrature_rule,
    row_pointers,
)

from .test_skip import PLAN, simulate_skips


def _rows(n_levels=40, n_rows=300, seed=0):
    """Binomial rows grouped by level, with offsets: (o, n, k, ptr)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, n_levels, n_rows)
    codes[:n_levels] = np.arange(n_levels)  # every level has a row
    order, ptr = row_pointers(codes, n_levels)
    n = rng.integers(1, 6, n_rows).astype(float)
    o = rng.normal(-0.5, 1.0, n_rows)
    k = rng.binomial(n.astype(int), special.expit(o + rng.normal(0, 0.7, n_rows))).astype(float)
    return o[order], n[order], k[order], ptr


def _log_joint(b, o, n, k, sigma):
    x = o + b
    return (np.sum(k * x - n * np.logaddexp(0.0, x)) - 0.5 * b * b / sigma**2 - np.log(sigma)
            - 0.5 * np.log(2 * np.pi))


def test_row_pointers_group_rows_stably():
    codes = np.array([2, 0, 2, 1, 0])
    order, ptr = row_pointers(codes, 4)
    assert order.tolist() == [1, 4, 3, 0, 2]
    assert ptr.tolist() == [0, 2, 3, 5, 5]


def test_modes_and_values_match_a_direct_second_order_laplace():
    o, n, k, ptr = _rows()
    sigma = 0.8
    out = laplace_logit(o, n, k, ptr, sigma)
    for j in (0, 7, 39):
        s = slice(ptr[j], ptr[j + 1])
        mode = optimize.brentq(
            lambda b, s=s: np.sum(k[s] - n[s] * special.expit(o[s] + b)) - b / sigma**2, -20, 20,
            xtol=1e-14)
        assert out["b_hat"][j] == pytest.approx(mode, abs=1e-10)
        p = special.expit(o[s] + mode)
        prec = np.sum(n[s] * p * (1 - p)) + 1 / sigma**2
        assert out["prec"][j] == pytest.approx(prec, rel=1e-10)
        # the second-order terms, from the third and fourth derivatives in p
        f3 = -np.sum(n[s] * p * (1 - p) * (1 - 2 * p))
        f4 = -np.sum(n[s] * p * (1 - p) * (1 - 6 * p + 6 * p**2))
        direct = (_log_joint(mode, o[s], n[s], k[s], sigma) + 0.5 * np.log(2 * np.pi)
                  - 0.5 * np.log(prec) + f4 / (8 * prec**2) + 5 * f3**2 / (24 * prec**3))
        assert out["value_u"][j] == pytest.approx(direct, rel=1e-12)
    # the binomial coefficients are left out of the value: the kernel is their sum
    assert out["value"] == pytest.approx(out["value_u"].sum(), rel=1e-12)


def test_laplace_is_close_to_the_exact_marginal_and_importance_weights_correct_it():
    o, n, k, ptr = _rows(n_levels=5, n_rows=200, seed=3)
    sigma = 0.7
    out = laplace_logit(o, n, k, ptr, sigma)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((20_000, 5))
    lw = draw_intercepts(np.tile(o, (20_000, 1)), n, k, ptr, np.full(20_000, sigma), z,
                         check=np.arange(5))
    for j in range(5):
        s = slice(ptr[j], ptr[j + 1])
        exact = np.log(integrate.quad(lambda b, s=s: np.exp(_log_joint(b, o[s], n[s], k[s], sigma)),
                                      -15, 15, epsabs=0, epsrel=1e-12, limit=200)[0])
        assert abs(out["value_u"][j] - exact) < 0.02  # about 40 binary plays each
        # the importance-sampling estimate of the exact marginal from the draws
        is_est = out["value_u"][j] + special.logsumexp(lw[:, j]) - np.log(len(lw))
        assert is_est == pytest.approx(exact, abs=2e-3)
        # the draws: normal around the mode with variance 1 / P
        assert z[:, j].mean() == pytest.approx(out["b_hat"][j], abs=4 / np.sqrt(
            out["prec"][j] * 20_000))
        assert z[:, j].std() == pytest.approx(1 / np.sqrt(out["prec"][j]), rel=0.03)


def test_gradient_matches_finite_differences():
    o, n, k, ptr = _rows(seed=1)
    sigma, eps = 0.9, 1e-6
    out = laplace_logit(o, n, k, ptr, sigma)
    for r in (0, 13, 150, len(o) - 1):
        up, down = o.copy(), o.copy()
        up[r] += eps
        down[r] -= eps
        fd = (laplace_logit(up, n, k, ptr, sigma)["value"]
              - laplace_logit(down, n, k, ptr, sigma)["value"]) / (2 * eps)
        assert out["g_o"][r] == pytest.approx(fd, rel=1e-5, abs=1e-7)
    fd = (laplace_logit(o, n, k, ptr, sigma + eps)["value"]
          - laplace_logit(o, n, k, ptr, sigma - eps)["value"]) / (2 * eps)
    assert out["g_sigma"] == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("n_nodes", [3, 7])
def test_adaptive_quadrature_converges_to_the_exact_marginal_and_its_gradient(n_nodes):
    o, n, k, ptr = _rows(n_levels=6, n_rows=120, seed=4)  # about 20 plays per level
    sigma, eps = 0.9, 1e-6
    laplace = laplace_logit(o, n, k, ptr, sigma)
    out = laplace_logit(o, n, k, ptr, sigma, n_nodes=n_nodes)
    exact = []
    for j in range(6):
        s = slice(ptr[j], ptr[j + 1])
        exact.append(np.log(integrate.quad(
            lambda b, s=s: np.exp(_log_joint(b, o[s], n[s], k[s], sigma)), -15, 15, epsabs=0,
            epsrel=1e-12, limit=200)[0]))
    err, err_laplace = np.abs(out["value_u"] - exact), np.abs(laplace["value_u"] - exact)
    # 3 nodes are about as exact as the second-order Laplace approximation (both 1e-4 here),
    # 7 are far closer (3e-8)
    assert err.max() < (5e-4 if n_nodes == 3 else err_laplace.max() / 100), (err, err_laplace)
    if n_nodes == 7:
        assert err.max() < 1e-4, err
    # the gradient is Fisher's identity under the quadrature: the derivative of the exact
    # marginal up to the quadrature error
    if n_nodes == 7:
        fd = (laplace_logit(o, n, k, ptr, sigma + eps, n_nodes=7)["value"]
              - laplace_logit(o, n, k, ptr, sigma - eps, n_nodes=7)["value"]) / (2 * eps)
        assert out["g_sigma"] == pytest.approx(fd, rel=1e-3)
        for r in (0, 50, 119):
            up, down = o.copy(), o.copy()
            up[r] += eps
            down[r] -= eps
            fd = (laplace_logit(up, n, k, ptr, sigma, n_nodes=7)["value"]
                  - laplace_logit(down, n, k, ptr, sigma, n_nodes=7)["value"]) / (2 * eps)
            assert out["g_o"][r] == pytest.approx(fd, rel=1e-3, abs=1e-5)
    # one node is the Laplace approximation
    one = quadrature_rule(1)
    assert len(one[0]) == 0


def test_extreme_rows_give_finite_modes():
    # all skipped, none skipped, huge offsets: the prior keeps every mode finite
    o = np.array([30.0, 30.0, -30.0, -30.0, 0.0])
    n = np.array([50.0, 50.0, 50.0, 50.0, 1.0])
    k = np.array([50.0, 50.0, 0.0, 0.0, 1.0])
    out = laplace_logit(o, n, k, np.array([0, 2, 4, 5]), 2.0)
    assert np.all(np.isfinite(out["b_hat"])) and np.isfinite(out["value"])
    assert np.all(np.isfinite(out["g_o"]))


@pytest.mark.parametrize("n_nodes", [1, 7])
@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
def test_op_value_and_gradient_in_pytensor(mode, n_nodes):
    o, n, k, ptr = _rows(seed=2)
    ov, sv = pt.dvector("o"), pt.dscalar("sigma")
    value = LogitLaplaceLogp(n_nodes)(n, k, ptr, ov * 1.0, sv)[0]
    f = pytensor.function([ov, sv], [value, *pytensor.grad(value, [ov, sv])], mode=mode)
    got = f(o, 0.6)
    out = laplace_logit(o, n, k, ptr, 0.6, n_nodes=n_nodes)
    np.testing.assert_allclose(got[0], out["value"], rtol=1e-12)
    np.testing.assert_allclose(got[1], out["g_o"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got[2], out["g_sigma"], rtol=1e-10)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="'user_inference'.*'exact'"):
        SkipModel(user_inference="exact")
    with pytest.raises(ValueError, match="add 'user_id' to 'crossed'"):
        SkipModel(crossed=("session_id", "track_id"), user_inference="laplace")


@pytest.fixture(scope="module")
def laplace_fit():
    events, users = simulate_skips(40, 15, 4, 6, seed=5)
    table = skip_table(events, users, group=PLAN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = SkipModel(group=PLAN, user_inference="laplace").fit(
            table, draws=100, tune=100, chains=2, cores=1, random_seed=4)
    return m, table


def test_laplace_fit_has_user_draws_predictions_and_its_check(laplace_fit, tmp_path):
    m, table = laplace_fit
    post = m.idata_["posterior"]
    assert "user_id_z" in post and post["user_id_z"].shape == (2, 100, 40)
    assert list(post["user_id_z"]["user_id"].values) == sorted(table["user_id"].unique())
    assert "user_id_z" not in [rv.name for rv in m.model_.free_RVs]
    check = json.loads(m.idata_.attrs["laplace_check"])
    assert check["n_checked"] == 40
    assert "Laplace user effects" in " ".join(m.fit_report_.notes + m.fit_report_.cautions)
    p = m.probability_skip()
    assert p["mean"].between(0, 1).all() and len(p) == len(table)
    m.compute_log_likelihood()
    ll = m.idata_["log_likelihood"]["n_skips"]
    assert ll.shape == (2, 100, len(table)) and np.isfinite(ll.values).all()
    m.sample_posterior_predictive(random_seed=0)
    rep = m.idata_["posterior_predictive"]["n_skips"].values
    assert (rep >= 0).all() and (rep <= table["n_plays"].to_numpy()).all()
    loaded = SkipModel.load(m.save(tmp_path / "skips.nc"))
    assert loaded.user_inference == "laplace"
    assert loaded.fit_report_.notes == m.fit_report_.notes
    np.testing.assert_allclose(loaded.probability_skip(random_seed=0)["mean"],
                               m.probability_skip(random_seed=0)["mean"])


def test_pointwise_log_likelihood_is_the_binomial_given_the_draws(laplace_fit):
    m, table = laplace_fit
    post = m.idata_["posterior"]
    i = 5
    row = table.iloc[i]
    c, d = 1, 17
    q = {v: post[v].values[c, d] for v in post.data_vars}
    users = list(post["user_id"].values)
    tracks = list(post["track_id"].values)
    eta = (q["intercept"] + q["sigma_user_id"] * q["user_id_z"][users.index(row["user_id"])]
           + q["sigma_track_id"] * q["track_id_z"][tracks.index(row["track_id"])]
           + q["beta_position"] * np.log(row["position"]) + q["hour_effect"][row["hour_bin"]]
           + q["plan_effect"][list(post["plan"].values).index(row["plan"])])
    expected = (special.gammaln(row["n_plays"] + 1) - special.gammaln(row["n_skips"] + 1)
                - special.gammaln(row["n_plays"] - row["n_skips"] + 1)
                + row["n_skips"] * eta - row["n_plays"] * np.logaddexp(0, eta))
    m.compute_log_likelihood()
    got = m.idata_["log_likelihood"]["n_skips"].values[c, d, i]
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.slow
def test_integrated_fits_agree_with_full_nuts():
    """Same data and settings as full NUTS: population means and sds, and the users, alike.

    150 users with 40 plays each (the main job's skip model has about 23 per user).
    Each mean within 0.15 sd (Laplace) or 0.1 sd (quadrature) plus 4 Monte Carlo standard
    errors of the difference, sds within 20-25%. (The kernels' accuracy against exact
    integrals is tested above; here the fit's plumbing.)
    """
    events, users = simulate_skips(150, 30, 5, 8, seed=11)
    table = skip_table(events, users, group=PLAN)
    fits = {}
    for how in ("sample", "laplace", "quadrature"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[how] = SkipModel(group=PLAN, user_inference=how).fit(
                table, draws=1000, tune=400, chains=2, cores=1, random_seed=3)
    a = fits["sample"].idata_["posterior"]
    for how, tol in (("laplace", 0.15), ("quadrature", 0.1)):
        b = fits[how].idata_["posterior"]
        for name in ("intercept", "sigma_user_id", "sigma_track_id", "beta_position",
                     "plan_effect", "hour_effect"):
            x, y = a[name], b[name]
            sd, sd_y = x.std(("chain", "draw")).values, y.std(("chain", "draw")).values
            diff = np.abs(x.mean(("chain", "draw")).values - y.mean(("chain", "draw")).values)
            # the approximation's allowance plus 4 Monte Carlo standard errors of the difference
            mc = np.sqrt(sd**2 / np.asarray(az.ess(x)) + sd_y**2 / np.asarray(az.ess(y)))
            assert np.all(diff < tol * sd + 4 * mc), (how, name, diff / sd, mc / sd)
            ratio = sd_y / sd
            assert np.all((ratio > 0.8) & (ratio < 1.25)), (how, name, ratio)
        ua = a["user_id_z"] * a["sigma_user_id"]
        ub = b["user_id_z"] * b["sigma_user_id"]
        diff = np.abs(ua.mean(("chain", "draw")) - ub.mean(("chain", "draw"))) / ua.std(
            ("chain", "draw"))
        assert float(diff.max()) < 0.2, (how, float(diff.max()))
        assert float(ub.std(("chain", "draw")).mean() / ua.std(("chain", "draw")).mean()) == (
            pytest.approx(1.0, abs=0.05))
        report = fits[how].fit_report_  # the users' check ran (convergence is not tested here)
        assert "Laplace user effects" in " ".join(report.notes + report.cautions)
