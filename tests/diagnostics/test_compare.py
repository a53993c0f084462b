"""Tests for models.diagnostics.compare: PSIS-LOO reports and model comparison."""

from __future__ import annotations

import json
import warnings

import arviz as az
import numpy as np
import pymc as pm
import pytest
from scipy import stats

from models.diagnostics import LooReport, compare_models, loo_report


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(99)


@pytest.fixture
def overdispersed(rng):
    return rng.negative_binomial(2, 2 / (2 + 5.0), size=120)  # mean 5, variance 17.5


def fake_fits(y, rng):
    """Posteriors drawn around the truth; log-likelihoods in closed form (no sampling)."""
    mu = rng.normal(y.mean(), 0.3, size=(2, 300))

    def fit(loglik):
        return az.from_dict({"posterior": {"mu": mu}, "log_likelihood": {"y": loglik}})

    return {
        "poisson": fit(stats.poisson.logpmf(y, mu[..., None])),
        "negbinom": fit(stats.nbinom.logpmf(y, 2, 2 / (2 + mu[..., None]))),
    }


# ----------------------------------------------------------------- exact tier


def test_loo_report_matches_arviz(overdispersed, rng):
    fit = fake_fits(overdispersed, rng)["negbinom"]
    report = loo_report(fit)
    ref = az.loo(fit)
    assert isinstance(report, LooReport)
    assert report.elpd == pytest.approx(ref.elpd)
    assert report.se == pytest.approx(ref.se)
    assert report.p_loo == pytest.approx(ref.p)
    assert report.n_data_points == overdispersed.size
    assert report.n_samples == 600
    assert report.var_name == "y"
    assert report.n_k_above_1 <= report.n_k_above_0_7
    assert report.warning is (report.n_k_above_good > 0)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["n_data_points"] == overdispersed.size
    assert "PSIS-LOO" in str(report)


def test_compare_ranks_negbinom_first_on_fake_fits(overdispersed, rng):
    table = compare_models(fake_fits(overdispersed, rng))
    assert list(table.index) == ["negbinom", "poisson"]
    assert table.loc["negbinom", "rank"] == 0
    assert table.loc["poisson", "elpd_diff"] < 0
    for col in ("pareto_k_max", "n_pareto_k_gt_0_7", "n_pareto_k_gt_1"):
        assert col in table.columns
    assert table["n_pareto_k_gt_0_7"].dtype.kind == "i"


def test_high_pareto_k_is_counted(rng):
    y = np.r_[rng.poisson(2.0, size=40), 60]  # one wild outlier under a Poisson
    mu = rng.gamma(80.0, 2.0 / 80.0, size=(2, 200))
    fit = az.from_dict(
        {"posterior": {"mu": mu}, "log_likelihood": {"y": stats.poisson.logpmf(y, mu[..., None])}}
    )
    report = loo_report(fit)
    assert report.n_k_above_0_7 >= 1
    assert report.warning
    assert report.pareto_k_max > 0.7


# ----------------------------------------------------------------- errors


def test_missing_log_likelihood_says_how_to_get_it(rng):
    fit = az.from_dict({"posterior": {"mu": rng.normal(size=(2, 50))}})
    with pytest.raises(ValueError, match=r"no 'log_likelihood' group.*idata_kwargs.*compute_log"):
        loo_report(fit)
    fits = fake_fits(rng.poisson(3.0, size=20), rng)
    fits["bare"] = fit
    with pytest.raises(ValueError, match="fit 'bare' has no 'log_likelihood' group"):
        compare_models(fits)


def test_needs_two_fits(overdispersed, rng):
    fits = fake_fits(overdispersed, rng)
    with pytest.raises(ValueError, match="at least two fits.*Got 1 fit"):
        compare_models({"poisson": fits["poisson"]})
    with pytest.raises(ValueError, match="Got list instead, holding DataTree fits"):
        compare_models(list(fits.values()))


def test_a_list_of_models_is_keyed_by_class_name(overdispersed, rng):
    fits = fake_fits(overdispersed, rng)

    class Fitted:  # stands for a fitted model of the package: idata_ and compute_log_likelihood
        def __init__(self, idata):
            self.idata_ = idata

        def compute_log_likelihood(self):
            raise AssertionError("the fit already has its log-likelihood")

    class Poisson(Fitted):
        pass

    class NegBinom(Fitted):
        pass

    table = compare_models([Poisson(fits["poisson"]), NegBinom(fits["negbinom"])])
    assert list(table.index) == ["NegBinom", "Poisson"]
    same = compare_models([Fitted(fits["poisson"]), Fitted(fits["negbinom"])])
    assert list(same.index) == ["Fitted [1]", "Fitted [0]"]


def test_var_name_checks(rng):
    y = rng.poisson(3.0, size=20)
    mu = rng.gamma(60.0, 3.0 / 60.0, size=(2, 100))
    ll = stats.poisson.logpmf(y, mu[..., None])
    fit = az.from_dict({"posterior": {"mu": mu}, "log_likelihood": {"plays": ll, "skips": ll}})
    with pytest.raises(ValueError, match=r"several log-likelihood variables \['plays', 'skips'\]"):
        loo_report(fit)
    with pytest.raises(ValueError, match="var_name 'likes' not in the log_likelihood.*'plays'"):
        loo_report(fit, var_name="likes")
    assert loo_report(fit, var_name="skips").var_name == "skips"
    with pytest.raises(TypeError, match="Got dict instead"):
        loo_report({"log_likelihood": ll})


# ----------------------------------------------------------------- fast fits with PyMC


def test_negative_binomial_beats_poisson_on_overdispersed_counts(overdispersed):
    sample = {
        "draws": 300,
        "tune": 300,
        "chains": 2,
        "cores": 1,
        "nuts_sampler": "pymc",
        "progressbar": False,
        "compute_convergence_checks": False,
        "random_seed": 5,
        "idata_kwargs": {"log_likelihood": True},
    }
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pm.Model():
            rate = pm.Gamma("rate", 2.0, 0.5)
            pm.Poisson("y", rate, observed=overdispersed)
            fits["poisson"] = pm.sample(**sample)
        with pm.Model():
            mu = pm.Gamma("mu", 2.0, 0.5)
            alpha = pm.Gamma("alpha", 2.0, 1.0)
            pm.NegativeBinomial("y", mu=mu, alpha=alpha, observed=overdispersed)
            fits["negbinom"] = pm.sample(**sample)
    table = compare_models(fits)
    assert table.index[0] == "negbinom"
    assert table.loc["poisson", "elpd_diff"] < -2 * table.loc["poisson", "dse"]
    assert loo_report(fits["negbinom"]).elpd > loo_report(fits["poisson"]).elpd
