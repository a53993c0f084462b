"""Tests for models.diagnostics.checks: exact checks on fake posteriors, then fast fits."""

from __future__ import annotations

import dataclasses
import json
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

from models.diagnostics import FitReport, check_fit, warn_if_not_converged
from models.exceptions import ConvergenceWarning

CHAINS, DRAWS = 4, 1000


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


def fake_fit(posterior, sample_stats=None, attrs=None, **groups):
    data = {"posterior": posterior}
    if sample_stats is not None:
        data["sample_stats"] = sample_stats
    data.update(groups)
    dt = az.from_dict(data)
    if attrs:
        dt["posterior"].attrs.update(attrs)
    return dt


def good_stats(rng, chains=CHAINS, draws=DRAWS, treedepth_name="reached_max_treedepth"):
    return {
        "diverging": np.zeros((chains, draws), dtype=bool),
        treedepth_name: np.zeros((chains, draws), dtype=bool),
        "energy": rng.normal(size=(chains, draws)),
    }


@pytest.fixture
def good_fit(rng):
    posterior = {
        "mu": rng.normal(size=(CHAINS, DRAWS)),
        "theta": rng.normal(size=(CHAINS, DRAWS, 3)),
    }
    return fake_fit(posterior, good_stats(rng))


# ----------------------------------------------------------------- exact tier: fake posteriors


def test_iid_draws_pass(good_fit):
    report = check_fit(good_fit)
    assert report.verdict == "pass"
    assert report.ok
    assert report.problems == [] and report.cautions == []
    assert report.n_chains == CHAINS and report.n_draws == DRAWS
    assert report.n_divergent == 0 and report.treedepth_hits == 0
    assert len(report.ebfmi) == CHAINS
    assert report.thresholds["ess_min"] == 100 * CHAINS
    table = report.variables
    assert list(table.columns) == ["variable", "size", "rhat", "ess_bulk", "ess_tail", "flags"]
    assert table.set_index("variable")["size"].to_dict() == {"mu": 1, "theta": 3}
    assert (table["rhat"] < 1.01).all()
    assert (table["flags"] == "").all()


def test_rhat_matches_arviz_rank_rhat(good_fit):
    report = check_fit(good_fit)
    expected = float(az.rhat(good_fit["posterior"].to_dataset(), method="rank")["theta"].max())
    got = report.variables.set_index("variable").loc["theta", "rhat"]
    assert got == pytest.approx(expected)
    expected_tail = float(az.ess(good_fit["posterior"].to_dataset(), method="tail")["theta"].min())
    assert report.variables.set_index("variable").loc["theta", "ess_tail"] == pytest.approx(
        expected_tail
    )


def test_chains_with_different_means_fail_rhat(rng):
    draws = rng.normal(size=(CHAINS, DRAWS))
    draws[3] += 3.0
    dt = fake_fit({"mu": draws, "ok": rng.normal(size=(CHAINS, DRAWS))}, good_stats(rng))
    report = check_fit(dt)
    assert report.verdict == "fail"
    assert not report.ok
    row = report.variables.set_index("variable").loc["mu"]
    assert row["rhat"] > 1.1
    assert "rhat" in row["flags"]
    assert report.variables.set_index("variable").loc["ok", "flags"] == ""
    assert any("R-hat above 1.01" in p and "mu (" in p for p in report.problems)
    assert any("R-hat" in a for a in report.advice)
    text = str(report)
    assert "FAIL" in text and "mu" in text and "R-hat above 1.01" in text
    # the log density was not recorded, and no chain is named as stuck
    assert not any("poorer mode" in p for p in report.problems)


@pytest.mark.parametrize("name", ["lp", "logp"])  # PyMC's and nutpie's names
def test_a_chain_stuck_in_a_poorer_mode_is_named(rng, name):
    # chain 2 sits in a minor mode: other values and a log density far below the others'
    draws = rng.normal(size=(CHAINS, DRAWS))
    draws[2] = 6.0 + 0.1 * rng.normal(size=DRAWS)
    lp = -10.0 + 1.5 * rng.normal(size=(CHAINS, DRAWS))
    lp[2] -= 300.0
    report = check_fit(fake_fit({"mu": draws}, {**good_stats(rng), name: lp}))
    assert report.verdict == "fail"
    stuck = [p for p in report.problems if "poorer mode" in p]
    assert len(stuck) == 1
    assert stuck[0].startswith("Chain(s) 2 sample") and "below chain " in stuck[0]
    gap = float(stuck[0].split("averages ")[1].split(" below")[0].replace(",", ""))
    assert gap == pytest.approx(lp[np.arange(CHAINS) != 2].mean(axis=1).max() - lp[2].mean(),
                                abs=0.06)
    assert any("random_seed" in a and "tune" in a for a in report.advice)
    # a non-finite log density in a draw is left out of the averages, not spread into them
    lp[0, 5], lp[2, 7] = -np.inf, np.nan
    again = check_fit(fake_fit({"mu": draws}, {**good_stats(rng), name: lp}))
    stuck_again = [p for p in again.problems if "poorer mode" in p]
    assert len(stuck_again) == 1 and "inf" not in stuck_again[0] and "nan" not in stuck_again[0]


def test_chains_that_disagree_at_one_log_density_are_not_called_stuck(rng):
    # R-hat fails (chain 3 is shifted), but every chain's log density is alike: no mode
    # is poorer, so nothing beyond the R-hat problem is said
    draws = rng.normal(size=(CHAINS, DRAWS))
    draws[3] += 3.0
    lp = -10.0 + 1.5 * rng.normal(size=(CHAINS, DRAWS))
    lp[3] -= 2.0  # a bit lower, within two sds
    report = check_fit(fake_fit({"mu": draws}, {**good_stats(rng), "lp": lp}))
    assert report.verdict == "fail"
    assert not any("poorer mode" in p for p in report.problems)
    # and a good fit with a recorded log density has no such problem either
    good = rng.normal(size=(CHAINS, DRAWS))
    assert check_fit(fake_fit({"mu": good}, {**good_stats(rng), "lp": lp[:, ::-1]})).ok


def test_ess_bands_give_warn_then_fail(good_fit):
    base = check_fit(good_fit)
    lowest = min(base.variables["ess_bulk"].min(), base.variables["ess_tail"].min())
    warn = check_fit(good_fit, ess_min=lowest * 1.5)  # lowest in [ess_min/2, ess_min)
    assert warn.verdict == "warn"
    assert any("ESS between" in c for c in warn.cautions)
    fail = check_fit(good_fit, ess_min=lowest * 2.5)  # lowest < ess_min/2
    assert fail.verdict == "fail"
    assert any("ESS below" in p for p in fail.problems)


def test_divergences_fail_unless_tolerated(rng):
    stats = good_stats(rng)
    stats["diverging"][1, [5, 50, 500]] = True
    dt = fake_fit({"mu": rng.normal(size=(CHAINS, DRAWS))}, stats)
    report = check_fit(dt)
    assert report.verdict == "fail"
    assert report.n_divergent == 3
    assert any(p.startswith("3 divergent transition(s) of 4000") for p in report.problems)
    assert any("target_accept" in a for a in report.advice)
    tolerated = check_fit(dt, max_divergences=5)
    assert tolerated.verdict == "warn"
    assert any("tolerated" in c for c in tolerated.cautions)


@pytest.mark.parametrize("name", ["reached_max_treedepth", "maxdepth_reached"])
def test_treedepth_hits_warn_for_pymc_and_nutpie_names(rng, name):
    stats = good_stats(rng, treedepth_name=name)
    stats[name][0, :10] = True
    dt = fake_fit({"mu": rng.normal(size=(CHAINS, DRAWS))}, stats)
    report = check_fit(dt)
    assert report.treedepth_hits == 10
    assert report.verdict == "warn"
    assert any("maximum tree depth" in c for c in report.cautions)


def test_ebfmi_is_per_chain_and_low_values_fail(rng):
    energy = rng.normal(size=(CHAINS, DRAWS))
    energy[2] = np.cumsum(rng.normal(size=DRAWS))  # a random walk: tiny E-BFMI
    stats = good_stats(rng)
    stats["energy"] = energy
    report = check_fit(fake_fit({"mu": rng.normal(size=(CHAINS, DRAWS))}, stats))
    expected = np.square(np.diff(energy, axis=1)).mean(axis=1) / np.var(energy, axis=1, ddof=1)
    np.testing.assert_allclose(report.ebfmi, expected)
    assert report.verdict == "fail"
    assert any("E-BFMI below 0.3 in 1 chain(s): chain 2" in p for p in report.problems)


def test_missing_sampler_stats_are_not_recorded_not_zero(rng):
    stats = {"accept": rng.uniform(size=(CHAINS, DRAWS))}  # e.g. a Metropolis fit
    report = check_fit(fake_fit({"mu": rng.normal(size=(CHAINS, DRAWS))}, stats))
    assert report.n_divergent is None and report.treedepth_hits is None
    assert report.ebfmi == ()
    assert any("Divergences not recorded" in n for n in report.notes)
    assert "not recorded" in str(report)


def test_single_draw_map_like_posterior_is_not_applicable(rng):
    dt = fake_fit({"mu": rng.normal(size=(1, 1))})
    report = check_fit(dt)
    assert report.verdict == "not-applicable"
    assert not report.ok
    assert any("several MCMC chains" in n for n in report.notes)
    assert report.variables["rhat"].isna().all()
    assert "NOT-APPLICABLE" in str(report)


@pytest.mark.parametrize("method", ["map", "advi", "vi", "ADVI"])
def test_method_attribute_marks_fit_not_applicable(rng, method):
    dt = fake_fit({"mu": rng.normal(size=(CHAINS, DRAWS))}, good_stats(rng), {"method": method})
    report = check_fit(dt)
    assert report.verdict == "not-applicable"
    assert report.method == method.lower()


def test_method_attribute_on_tree_root(rng):
    dt = fake_fit({"mu": rng.normal(size=(CHAINS, DRAWS))}, good_stats(rng))
    dt.attrs["fit_method"] = "map"
    assert check_fit(dt).verdict == "not-applicable"


def test_vi_like_fit_without_sample_stats_is_not_applicable(rng):
    report = check_fit(fake_fit({"mu": rng.normal(size=(1, 500))}))
    assert report.verdict == "not-applicable"
    assert any("sample_stats" in n for n in report.notes)


def test_optimizer_result_group_means_map(rng):
    dt = fake_fit({"mu": rng.normal(size=(1, 1))})
    dt["optimizer_result"] = xr.Dataset({"fun": 26.5, "success": True})
    report = check_fit(dt)
    assert report.verdict == "not-applicable" and report.method == "map"


def test_single_chain_is_at_best_warn(rng):
    dt = fake_fit({"mu": rng.normal(size=(1, DRAWS))}, good_stats(rng, chains=1))
    report = check_fit(dt)
    assert report.verdict == "warn"
    assert report.variables["rhat"].isna().all()
    assert any("Only one chain" in c for c in report.cautions)
    assert report.thresholds["ess_min"] == 100


def test_constant_variable_is_noted_and_skipped(rng):
    posterior = {"mu": rng.normal(size=(CHAINS, DRAWS)), "fixed": np.full((CHAINS, DRAWS), 2.0)}
    report = check_fit(fake_fit(posterior, good_stats(rng)))
    assert report.verdict == "pass"
    assert any("fixed" in n for n in report.notes)


def test_non_finite_draws_fail(rng):
    draws = rng.normal(size=(CHAINS, DRAWS))
    draws[0, 3] = np.nan
    report = check_fit(fake_fit({"mu": draws}, good_stats(rng)))
    assert report.verdict == "fail"
    assert any("Non-finite" in p and "mu" in p for p in report.problems)


def test_var_names_select_and_exclude(rng):
    bad = rng.normal(size=(CHAINS, DRAWS))
    bad[0] += 5
    dt = fake_fit({"mu": rng.normal(size=(CHAINS, DRAWS)), "derived": bad}, good_stats(rng))
    assert check_fit(dt).verdict == "fail"
    assert check_fit(dt, var_names=["mu"]).verdict == "pass"
    assert check_fit(dt, var_names="~derived").verdict == "pass"
    assert list(check_fit(dt, var_names=["~derived"]).variables["variable"]) == ["mu"]


def test_unknown_var_name_raises(good_fit):
    with pytest.raises(ValueError, match=r"\['nope'\] not in the posterior.*'mu'"):
        check_fit(good_fit, var_names=["nope"])
    with pytest.raises(ValueError, match="all start with '~'"):
        check_fit(good_fit, var_names=["mu", "~theta"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rhat_max": 0.9}, r"'rhat_max' parameter of check_fit .* Got 0.9 instead"),
        ({"ess_min": -1}, r"'ess_min' parameter .* Got -1 instead"),
        ({"bfmi_min": "low"}, r"'bfmi_min' parameter .* Got 'low' instead"),
        ({"max_divergences": -2}, r"'max_divergences' parameter .* Got -2 instead"),
    ],
)
def test_bad_thresholds_raise(good_fit, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_fit(good_fit, **kwargs)


def test_input_validation(good_fit):
    with pytest.raises(TypeError, match="Got dict instead"):
        check_fit({"posterior": 1})
    no_post = az.from_dict({"sample_stats": {"diverging": np.zeros((2, 10), dtype=bool)}})
    with pytest.raises(ValueError, match="needs a 'posterior' group.*sample_stats"):
        check_fit(no_post)


def test_report_is_frozen_and_serialisable(rng):
    draws = rng.normal(size=(CHAINS, DRAWS))
    draws[0] += 4
    stats = good_stats(rng)
    stats["diverging"][0, 0] = True
    report = check_fit(
        fake_fit({"mu": draws, "c": np.zeros((CHAINS, DRAWS))}, stats, {"sampler": "fake"})
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.verdict = "pass"
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["verdict"] == "fail" and data["ok"] is False
    assert data["sampler"] == "fake"
    assert data["n_divergent"] == 1
    assert {v["variable"] for v in data["variables"]} == {"mu", "c"}
    assert data["variables"][1]["rhat"] is None  # NaN becomes null
    frame = report.to_frame()
    assert list(frame.columns) == ["value", "threshold", "status"]
    assert frame.loc["max_rhat", "status"] == "fail"
    assert frame.loc["n_divergent", "status"] == "fail"
    assert frame.loc["min_ebfmi", "status"] == "ok"
    assert repr(report).startswith("FitReport(verdict='fail'")


def test_not_applicable_report_serialises(rng):
    report = check_fit(fake_fit({"mu": rng.normal(size=(1, 1))}))
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["verdict"] == "not-applicable"
    assert (report.to_frame()["status"] == "n/a").all()


# ----------------------------------------------------------------- warn_if_not_converged


def test_warn_if_not_converged_on_fail(rng):
    draws = rng.normal(size=(CHAINS, DRAWS))
    draws[0] += 4
    report = check_fit(fake_fit({"mu": draws}, good_stats(rng)))
    with pytest.warns(ConvergenceWarning, match=r"(?s)verdict: fail.*R-hat above.*Try:") as rec:
        assert warn_if_not_converged(report) is True
    assert rec[0].filename == __file__  # stacklevel=2 points at the caller


def test_warn_levels(good_fit, rng):
    stats = good_stats(rng)
    stats["reached_max_treedepth"][0, 0] = True
    warn_report = check_fit(fake_fit({"mu": rng.normal(size=(CHAINS, DRAWS))}, stats))
    assert warn_report.verdict == "warn"
    with pytest.warns(ConvergenceWarning, match="verdict: warn"):
        warn_if_not_converged(warn_report)
    na_report = check_fit(fake_fit({"mu": rng.normal(size=(1, 1))}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_not_converged(warn_report, level="fail") is False
        assert warn_if_not_converged(check_fit(good_fit)) is False
        assert warn_if_not_converged(na_report) is False


def test_warn_if_not_converged_validates(good_fit):
    with pytest.raises(ValueError, match="'level' parameter .* Got 'always' instead"):
        warn_if_not_converged(check_fit(good_fit), level="always")
    with pytest.raises(TypeError, match="Got str instead"):
        warn_if_not_converged("fail")


# ----------------------------------------------------------------- fast fits with PyMC


def _sample(model, sampler, **kwargs):
    if sampler == "nutpie":
        pytest.importorskip("nutpie")
    options = {
        "chains": 4,
        "cores": 1,
        "nuts_sampler": sampler,
        "progressbar": False,
        "compute_convergence_checks": False,
    }
    options.update(kwargs)
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pm.sample(**options)


@pytest.fixture(scope="module", params=["pymc", "nutpie"])
def normal_fit(request):
    y = np.random.default_rng(11).normal(1.0, 1.0, size=30)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 5.0)
        sigma = pm.HalfNormal("sigma", 2.0)
        pm.Deterministic("mu_twice", 2 * mu)
        pm.Normal("y", mu, sigma, observed=y)
    return request.param, _sample(model, request.param, draws=500, tune=500, random_seed=1)


def test_good_fit_passes_with_either_sampler(normal_fit):
    sampler, idata = normal_fit
    report = check_fit(idata)
    assert report.verdict == "pass", str(report)
    assert report.sampler.startswith(sampler)
    # each sampler's own stat names are found: nothing reported as "not recorded"
    assert report.n_divergent == 0
    assert report.treedepth_hits is not None
    assert len(report.ebfmi) == 4
    assert set(report.variables["variable"]) == {"mu", "sigma", "mu_twice"}
    assert list(check_fit(idata, var_names="~mu_twice").variables["variable"]) == ["mu", "sigma"]


def test_centred_funnel_with_short_tuning_fails():
    with pm.Model() as funnel:
        v = pm.Normal("v", 0.0, 3.0)
        pm.Normal("x", 0.0, pm.math.exp(v / 2), shape=9)
    # a low target acceptance makes the funnel's neck diverge for every seed tried (1-6)
    idata = _sample(funnel, "pymc", chains=2, draws=500, tune=200, random_seed=2,
                    target_accept=0.6)
    report = check_fit(idata)
    assert report.verdict == "fail"
    assert report.n_divergent > 0
    assert any("divergent transition" in p for p in report.problems)
    assert any("non-centred" in a for a in report.advice)
    assert "v" in set(report.variables.loc[report.variables["flags"] != "", "variable"])
    assert isinstance(report, FitReport) and isinstance(report.variables, pd.DataFrame)
