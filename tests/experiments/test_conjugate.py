"""Two-arm models on plain numbers: exact Beta-binomial quadrature and the normal model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from models.experiments.conjugate import beta_binomial, beta_posterior, normal_effect


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _reference(a_a, b_a, a_b, b_b, ci_prob):
    """P(B > A), E[(A - B)+] and the CDFs of B - A and B/A - 1, by adaptive quadrature."""
    fa, fb = stats.beta(a_a, b_a), stats.beta(a_b, b_b)
    lo = min(fa.ppf(1e-15), fb.ppf(1e-15))
    hi = max(fa.isf(1e-15), fb.isf(1e-15))
    kw = {"epsabs": 1e-13, "epsrel": 1e-12, "limit": 500, "points": [fa.mean(), fb.mean()]}
    prob = integrate.quad(lambda x: fb.pdf(x) * fa.cdf(x), lo, hi, **kw)[0]
    fa1 = stats.beta(a_a + 1, b_a)

    def above(x):  # E[(p_A - x)+]
        return fa.mean() - x + x * fa.cdf(x) - fa.mean() * fa1.cdf(x)

    loss = integrate.quad(lambda x: fb.pdf(x) * above(x), lo, hi, **kw)[0]

    def diff_cdf(t):
        return integrate.quad(lambda x: fa.pdf(x) * fb.cdf(x + t), 0, 1, limit=500,
                              epsabs=1e-13)[0]  # fmt: skip

    def lift_cdf(r):
        return integrate.quad(lambda x: fa.pdf(x) * fb.cdf(x * (1 + r)), 0, 1, limit=500,
                              epsabs=1e-13)[0]  # fmt: skip

    return prob, loss, diff_cdf, lift_cdf


@pytest.mark.parametrize(
    ("s_a", "n_a", "s_b", "n_b", "prior"),
    [
        (42, 104, 500, 1009, (0.5, 0.5)),
        (0, 100, 3, 100, (0.5, 0.5)),  # no control success: singular density at 0
        (1, 1000, 0, 2000, (1, 1)),
        (18, 20, 20, 20, (1, 1)),  # all successes: mass at 1
        (9, 18, 0, 20, (1, 1)),
        (49, 100, 51, 100, (1, 1)),
    ],
)
def test_beta_binomial_matches_adaptive_quadrature(s_a, n_a, s_b, n_b, prior):
    a0, b0 = prior
    a_a, b_a, a_b, b_b = a0 + s_a, b0 + n_a - s_a, a0 + s_b, b0 + n_b - s_b
    prob, loss, diff_cdf, lift_cdf = _reference(a_a, b_a, a_b, b_b, 0.9)
    row = beta_binomial(s_a, n_a, s_b, n_b, prior=prior, ci_prob=0.9).iloc[0]
    assert row["prob_better"] == pytest.approx(prob, abs=1e-7)
    assert row["expected_loss_ship"] == pytest.approx(loss, abs=1e-8)
    gap = a_b / (a_b + b_b) - a_a / (a_a + b_a)
    assert row["expected_loss_keep"] == pytest.approx(loss + gap, abs=1e-8)
    assert diff_cdf(row["effect_ci_lower"]) == pytest.approx(0.05, abs=1e-6)
    assert diff_cdf(row["effect_ci_upper"]) == pytest.approx(0.95, abs=1e-6)
    assert lift_cdf(row["lift_ci_lower"]) == pytest.approx(0.05, abs=1e-6)
    assert lift_cdf(row["lift_ci_upper"]) == pytest.approx(0.95, abs=1e-6)


@pytest.mark.parametrize("a0", [0.02, 0.1, 0.5])
@pytest.mark.parametrize(("n_a", "s_b", "n_b"), [(100, 3, 100), (5000, 2, 5000), (20, 9, 18)])
def test_strongly_singular_posteriors(a0, n_a, s_b, n_b):
    # no control success under a small prior: the density is x^(a0 - 1) near 0 and
    # the reference integrates that weight exactly (QUADPACK's algebraic weight)
    a_a, b_a, a_b, b_b = a0, a0 + n_a, a0 + s_b, a0 + n_b - s_b
    fb, norm = stats.beta(a_b, b_b), special.beta(a_a, b_a)

    def against_a(g):
        return integrate.quad(lambda x: (1 - x) ** (b_a - 1) * g(x) / norm, 0, 1,
                              weight="alg", wvar=(a_a - 1, 0), limit=500, epsabs=1e-15)[0]

    row = beta_binomial(0, n_a, s_b, n_b, prior=(a0, a0)).iloc[0]
    assert row["prob_better"] == pytest.approx(against_a(fb.sf), abs=1e-8)
    for col, q in (("effect_ci_lower", 0.025), ("effect_ci_upper", 0.975)):
        assert against_a(lambda x, t=row[col]: fb.cdf(x + t)) == pytest.approx(q, abs=1e-8)
    for col, q in (("lift_ci_lower", 0.025), ("lift_ci_upper", 0.975)):
        assert against_a(lambda x, r=row[col]: fb.cdf(x * (1 + r))) == pytest.approx(q, abs=1e-8)


def test_narrow_posteriors_agree_with_monte_carlo(rng):
    # n = 1e6 per arm: each posterior is about 1e-3 wide
    s_a, s_b, n = 100_000, 100_600, 1_000_000
    row = beta_binomial(s_a, n, s_b, n, ci_prob=0.95, rope=0.005).iloc[0]
    draws = 2_000_000
    pa = rng.beta(1 + s_a, 1 + n - s_a, draws)
    pb = rng.beta(1 + s_b, 1 + n - s_b, draws)
    diff, lift = pb - pa, pb / pa - 1
    se = np.sqrt(0.25 / draws)
    assert row["prob_better"] == pytest.approx((diff > 0).mean(), abs=4 * se)
    assert row["expected_loss_ship"] == pytest.approx(np.maximum(-diff, 0).mean(), rel=0.02)
    assert row["expected_loss_keep"] == pytest.approx(np.maximum(diff, 0).mean(), rel=0.01)
    sd = diff.std()
    for col, q in (("effect_ci_lower", 0.025), ("effect_ci_upper", 0.975)):
        assert row[col] == pytest.approx(np.quantile(diff, q), abs=0.01 * sd)
    for col, q in (("lift_ci_lower", 0.025), ("lift_ci_upper", 0.975)):
        assert row[col] == pytest.approx(np.quantile(lift, q), abs=0.01 * lift.std())
    assert row["lift"] == pytest.approx(lift.mean(), abs=0.01 * lift.std())
    assert row["lift_sd"] == pytest.approx(lift.std(), rel=0.01)
    assert row["prob_rope"] == pytest.approx((np.abs(lift) < 0.005).mean(), abs=4 * se)


def test_lift_moments_are_exact_and_undefined_when_infinite():
    row = beta_binomial(30, 100, 40, 100).iloc[0]
    a_a, b_a, a_b, b_b = 31, 71, 41, 61
    inv = stats.beta(a_a, b_a).expect(lambda p: 1 / p)
    inv2 = stats.beta(a_a, b_a).expect(lambda p: 1 / p**2)
    mb = a_b / (a_b + b_b)
    m2b = mb * (a_b + 1) / (a_b + b_b + 1)
    assert row["lift"] == pytest.approx(mb * inv - 1, rel=1e-8)
    assert row["lift_sd"] == pytest.approx(np.sqrt(m2b * inv2 - (mb * inv) ** 2), rel=1e-7)
    none = beta_binomial(0, 100, 5, 100).iloc[0]  # control posterior Beta(1, 101): E[1/p] = inf
    assert np.isnan(none["lift"]) and np.isnan(none["lift_sd"])
    assert np.isfinite(none["lift_ci_upper"]) and none["lift_ci_lower"] > -1


def test_beta_binomial_is_vectorised_and_directional():
    out = beta_binomial([10, 20, 30], 100, [12, 18, 30], 100, higher_is_better=[True, False, True])
    single = [beta_binomial(s, 100, t, 100).iloc[0] for s, t in ((10, 12), (20, 18), (30, 30))]
    assert out.loc[0, "prob_better"] == pytest.approx(single[0]["prob_better"], abs=1e-12)
    assert out.loc[1, "prob_better"] == pytest.approx(1 - single[1]["prob_better"], abs=1e-12)
    assert out.loc[1, "expected_loss_ship"] == pytest.approx(single[1]["expected_loss_keep"])
    assert out.loc[2, "prob_better"] == pytest.approx(0.5, abs=1e-9)
    assert out.attrs["ci_prob"] == 0.95
    assert list(out["n_control"]) == [100, 100, 100]


def test_beta_posterior_matches_scipy():
    out = beta_posterior([0, 7, 50], [10, 20, 50], prior=(0.5, 0.5), ci_prob=0.8)
    for i, (s, n) in enumerate(((0, 10), (7, 20), (50, 50))):
        dist = stats.beta(0.5 + s, 0.5 + n - s)
        assert out.loc[i, "mean"] == pytest.approx(dist.mean())
        assert out.loc[i, "sd"] == pytest.approx(dist.std())
        assert out.loc[i, "ci_lower"] == pytest.approx(dist.ppf(0.1))
        assert out.loc[i, "ci_upper"] == pytest.approx(dist.ppf(0.9))


def test_normal_effect_published_numbers():
    row = normal_effect(0.49, 0.49 * 0.51 / 100, 0.51, 0.51 * 0.49 / 100).iloc[0]
    assert round(row["lift"], 5) == 0.04082
    assert round(row["lift_sd"], 5) == 0.14725
    assert round(row["prob_better"], 5) == 0.60918
    assert (round(row["lift_ci_lower"], 5), round(row["lift_ci_upper"], 5)) == (-0.24779,
                                                                                 0.32943)


def test_normal_effect_closed_forms():
    out = normal_effect([10.0, 10.0], [0.04, 0.04], [10.3, 9.9], [0.05, 0.05],
                        higher_is_better=[True, False], rope=0.01, ci_prob=0.9)  # fmt: skip
    sd = np.sqrt(0.09)
    assert out.loc[0, "effect_sd"] == pytest.approx(sd)
    assert out.loc[0, "effect_ci_upper"] == pytest.approx(0.3 + stats.norm.ppf(0.95) * sd)
    lift_sd = np.sqrt(0.05 / 100 + 10.3**2 * 0.04 / 10**4)
    assert out.loc[0, "lift_sd"] == pytest.approx(lift_sd)
    assert out.loc[1, "prob_better"] == pytest.approx(special.ndtr(0.01 / out.loc[1, "lift_sd"]))
    m, s = -0.1, sd  # lower is better: the gain of shipping is -effect = +0.1
    assert out.loc[1, "expected_loss_ship"] == pytest.approx(
        stats.norm(-m, s).expect(lambda g: max(-g, 0.0)), rel=1e-6)
    assert out.loc[0, "prob_rope"] == pytest.approx(
        stats.norm(0.03, lift_sd).cdf(0.01) - stats.norm(0.03, lift_sd).cdf(-0.01))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: beta_binomial(11, 10, 5, 10), r"'successes_a' parameter of beta_binomial"),
        (lambda: beta_binomial(1, 10, -1, 10), r"'successes_b' parameter of beta_binomial"),
        (lambda: beta_binomial(np.nan, 10, 1, 10), r"'successes_a' .* finite numbers"),
        (lambda: beta_binomial(1, 10, 1, 10, prior=(0, 1)), r"'beta' as two positive numbers"),
        (lambda: beta_binomial(1, 10, 1, 10, ci_prob=0), r"'ci_prob' parameter of beta_binomial"),
        (lambda: beta_binomial(1, 10, 1, 10, rope=-1.0), r"'rope' parameter of beta_binomial"),
        (lambda: beta_posterior(5, 3), r"'successes' parameter of beta_posterior"),
        (lambda: normal_effect(1.0, -0.1, 1.0, 0.1), r"'var_a' parameter of normal_effect"),
        (lambda: normal_effect(1.0, 0.1, 1.0, 0.1, prior={"lift": 0.1}), r"'lift' as \(mean"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
