"""Fits: never a cut-short fit, never an uninformed "pass", files complete or refused."""

import os
import signal
import subprocess
import sys
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

from models.base import BayesianModel
from models.churn import BetaGeoModel
from models.data import simulate_service, summarize_activity
from models.diagnostics import check_fit
from models.exceptions import (
    ConvergenceWarning,
    FitInterrupted,
    SavedFitError,
    UninformativeDataWarning,
)

QUICK = {"draws": 60, "tune": 60, "chains": 2, "cores": 1, "random_seed": 1}


@pytest.fixture(scope="module")
def activity():
    service = simulate_service(n_users=150, days=90, random_seed=1)
    return summarize_activity(service.events, period="D",
                              observation_end=service.truth.observation_end)


@pytest.fixture(scope="module")
def saved_fit(activity, tmp_path_factory):
    """A small BG/NBD fit and the file it was saved to."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BetaGeoModel().fit(activity, **QUICK)
    path = model.save(tmp_path_factory.mktemp("fit") / "bgnbd.nc")
    return model, path


# ---------------------------------------------------------------- interrupted sampling


def _short_trace(chains, draws, *, nan_tail=0):
    rng = np.random.default_rng(0)
    posterior = {v: rng.gamma(2.0, size=(chains, draws)) for v in ("r", "alpha", "a", "b")}
    if nan_tail:
        for values in posterior.values():
            values[-1, -nan_tail:] = np.nan
    return az.from_dict({"posterior": posterior,
                         "sample_stats": {"diverging": np.zeros((chains, draws), bool)}})


def _sampler_swallowing_ctrl_c(chains, draws, **kwargs):
    """Stand in for pm.sample: receive SIGINT, swallow it as PyMC does, return a short trace."""

    def sample(**_):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
        return _short_trace(chains, draws, **kwargs)

    return sample


@pytest.mark.parametrize("sampler", ["pymc", "nutpie"])
@pytest.mark.parametrize(("chains", "draws"), [(2, 37), (1, 100)])
def test_ctrl_c_during_sampling_raises_instead_of_returning_a_short_fit(
        monkeypatch, activity, sampler, chains, draws):
    monkeypatch.setattr(pm, "sample", _sampler_swallowing_ctrl_c(chains, draws))
    model = BetaGeoModel()
    with pytest.raises(FitInterrupted, match=r"BetaGeoModel\.fit was interrupted \(Ctrl-C\) "
                       r"before nuts finished.*no fit is returned"):
        model.fit(activity, draws=100, tune=10, chains=2, sampler=sampler, random_seed=1)
    assert not model.is_fitted


def test_ctrl_c_before_the_first_draw_is_an_interrupt_not_a_sampler_error(monkeypatch, activity):
    def sample(**_):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
        raise ValueError("Not enough samples to build a trace.")  # PyMC, cores > 1

    monkeypatch.setattr(pm, "sample", sample)
    with pytest.raises(FitInterrupted, match=r"interrupted \(Ctrl-C\) before any draw was kept"):
        BetaGeoModel().fit(activity, draws=100, tune=10, chains=2, cores=2, random_seed=1)


def test_a_deferred_ctrl_c_arrives_after_the_critical_step():
    from models._interrupts import defer_interrupts

    done = []
    with pytest.raises(KeyboardInterrupt):
        with defer_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("renamed")
    assert done == ["renamed"]


def test_interrupted_fit_is_a_keyboard_interrupt_not_an_exception():
    assert issubclass(FitInterrupted, KeyboardInterrupt)
    assert not issubclass(FitInterrupted, Exception)


def test_a_short_trace_without_a_signal_is_refused_too(monkeypatch, activity):
    monkeypatch.setattr(pm, "sample", lambda **_: _short_trace(2, 40))
    with pytest.raises(FitInterrupted, match=r"the sampler returned 40 of 100 draw\(s\)"):
        BetaGeoModel().fit(activity, draws=100, tune=10, chains=2, random_seed=1)


def test_missing_chains_are_refused(monkeypatch, activity):
    monkeypatch.setattr(pm, "sample", lambda **_: _short_trace(1, 100))
    with pytest.raises(FitInterrupted, match=r"1 of 2 chain\(s\)"):
        BetaGeoModel().fit(activity, draws=100, tune=10, chains=2, random_seed=1)


def test_nutpie_chains_padded_with_nan_are_refused(monkeypatch, activity):
    monkeypatch.setattr(pm, "sample", lambda **_: _short_trace(2, 100, nan_tail=30))
    with pytest.raises(FitInterrupted, match=r"30 empty draw\(s\) \(chains stopped early\)"):
        BetaGeoModel().fit(activity, draws=100, tune=10, chains=2, sampler="nutpie",
                           random_seed=1)


def test_an_interrupted_refit_keeps_the_earlier_fit(monkeypatch, activity, saved_fit):
    model = BetaGeoModel.load(saved_fit[1])
    before = model.idata_
    monkeypatch.setattr(pm, "sample", _sampler_swallowing_ctrl_c(2, 10))
    with pytest.raises(FitInterrupted):
        model.fit(activity, draws=100, tune=10, chains=2, random_seed=1)
    assert model.idata_ is before


def test_ctrl_c_during_advi_raises(monkeypatch, activity):
    real_fit = pm.fit

    def interrupted_fit(*args, **kwargs):
        def ctrl_c(approx, loss, i):
            if i == 50:
                os.kill(os.getpid(), signal.SIGINT)
        # keep the callbacks the fit passes (its progress tracker) and add the Ctrl-C
        callbacks = [*(kwargs.pop("callbacks", None) or []), ctrl_c]
        return real_fit(*args, callbacks=callbacks, **kwargs)

    monkeypatch.setattr(pm, "fit", interrupted_fit)
    with pytest.raises(FitInterrupted, match=r"before advi finished \(\d+ of 5,000 steps\)"):
        BetaGeoModel().fit(activity, method="advi", advi_steps=5000, random_seed=1)


@pytest.mark.parametrize(("name", "value"), [("cores", -1), ("cores", 0), ("cores", 1.5),
                                             ("draws", 0), ("chains", -2)])
def test_bad_sampler_settings_name_the_parameter(activity, name, value):
    with pytest.raises(ValueError, match=rf"The '{name}' parameter of BetaGeoModel\.fit must be "
                       rf"a positive integer\. Got {value!r} instead\."):
        BetaGeoModel().fit(activity, **{name: value})


def test_max_draws_zero_names_the_parameter(saved_fit):
    model = saved_fit[0]
    with pytest.raises(ValueError, match=r"The 'max_draws' parameter of BetaGeoModel\."
                       r"probability_alive must be a positive integer "
                       r"\(or None for every draw\)\. Got 0 instead"):
        model.probability_alive(max_draws=0)


# ------------------------------------------------------------------ what the data taught


@pytest.mark.parametrize(("label", "data"), [
    ("one user", pd.DataFrame({"frequency": [29], "recency": [58.0], "T": [91.0]})),
    ("no observation time", pd.DataFrame({"frequency": [0] * 30, "recency": [0.0] * 30,
                                          "T": [0.0] * 30})),
])
def test_bgnbd_that_learned_nothing_warns_and_does_not_pass(label, data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = BetaGeoModel().fit(data, draws=200, tune=200, chains=2, cores=1, random_seed=1)
    report = model.diagnostics()
    assert report.verdict != "pass"
    assert report.uninformed, label
    uninformed = [w for w in caught if issubclass(w.category, UninformativeDataWarning)]
    assert len(uninformed) == 1
    message = str(uninformed[0].message)
    assert "The data did not inform" in message
    for name in report.uninformed:
        assert f"{name} (" in message
    assert any("The data did not inform" in c for c in report.cautions)
    assert set(report.to_dict()["uninformed"]) == set(report.uninformed)


@pytest.mark.slow
def test_bgnbd_without_repeat_activity_names_the_dropout_parameters():
    data = pd.DataFrame({"frequency": [0] * 100, "recency": [0.0] * 100,
                         "T": np.linspace(10, 100, 100)})
    with pytest.warns(UninformativeDataWarning, match=r"did not inform .*\bb \("):
        model = BetaGeoModel().fit(data, draws=300, tune=300, chains=2, cores=1, random_seed=1)
    assert "b" in model.diagnostics().uninformed


def test_the_prior_check_survives_save_and_load(saved_fit):
    model, path = saved_fit
    loaded = BetaGeoModel.load(path)
    assert loaded.diagnostics().contraction == model.diagnostics().contraction
    assert set(model.diagnostics().contraction) == {"r", "alpha", "a", "b"}


def _tree(posterior, prior):
    return az.from_dict({"posterior": posterior, "prior": prior,
                         "sample_stats": {"diverging": np.zeros((4, 500), bool)}})


def test_contraction_passes_informed_and_flags_uninformed_parameters():
    rng = np.random.default_rng(7)
    tree = _tree({"informed": rng.normal(2.0, 0.05, (4, 500)), "same": rng.normal(0, 1, (4, 500)),
                  "moved": rng.normal(4.0, 1.0, (4, 500))},
                 {v: rng.normal(0, 1, (1, 2000)) for v in ("informed", "same", "moved")})
    report = check_fit(tree)
    assert report.uninformed == ["same"]
    assert report.verdict == "warn"
    assert report.contraction["informed"] > 0.9


def test_no_prior_group_means_no_contraction_check():
    rng = np.random.default_rng(8)
    tree = az.from_dict({"posterior": {"mu": rng.normal(size=(4, 500))},
                         "sample_stats": {"diverging": np.zeros((4, 500), bool)}})
    report = check_fit(tree)
    assert report.contraction == {} and "contraction" not in report.to_dict()


def test_advi_that_ran_too_few_steps_warns(activity):
    with pytest.warns(ConvergenceWarning, match=r"ADVI ran 10 step\(s\); at least 1,000"):
        model = BetaGeoModel().fit(activity, method="advi", advi_steps=10, random_seed=1)
    assert model.diagnostics().verdict == "warn"


def test_advi_loss_still_falling_is_a_caution():
    loss = np.linspace(1000.0, 100.0, 5000) + np.random.default_rng(1).normal(0, 1, 5000)
    rng = np.random.default_rng(2)
    tree = az.from_dict({"posterior": {"mu": rng.normal(size=(1, 500))}})
    tree["advi_loss"] = xr.DataTree(xr.Dataset({"loss": ("step", loss)}))
    tree.attrs["inference_method"] = "advi"
    report = check_fit(tree)
    assert report.verdict == "warn"
    assert any("The ADVI loss was still falling" in c for c in report.cautions)


# ------------------------------------------------------------------------ saved files


@pytest.mark.parametrize("damage", ["empty", "truncated", "text", "random"])
def test_a_damaged_file_is_one_clear_error_naming_it(saved_fit, tmp_path, damage, snapshot):
    data = saved_fit[1].read_bytes()
    path = tmp_path / "damaged.nc"
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2],
                      "text": b"user_id,timestamp\n1,2024\n",
                      "random": np.random.default_rng(0).bytes(4096)}[damage])
    before = snapshot(path)
    with pytest.raises(SavedFitError, match=rf"'{path}' .*(truncated|corrupt).*Fit the model "
                       "again"):
        BetaGeoModel.load(path)
    assert snapshot(path) == before


def test_a_file_with_fewer_draws_than_its_fit_is_refused(saved_fit, tmp_path):
    model = saved_fit[0]
    short = model.idata_.copy()
    short["posterior"] = xr.DataTree(short["posterior"].to_dataset().isel(draw=slice(0, 20)))
    from models.base import _FIT_DATA_GROUP

    short[_FIT_DATA_GROUP] = xr.DataTree(model._data_to_dataset(model.data_))
    path = tmp_path / "short.nc"
    short.to_netcdf(path, engine="h5netcdf")
    with pytest.raises(SavedFitError, match=r"holds an incomplete fit: 20 of 60 draw\(s\) per "
                       "chain"):
        BetaGeoModel.load(path)


def test_load_from_the_base_class_imports_the_model_module(saved_fit):
    code = ("import sys\nfrom models.base import BayesianModel\n"
            "assert 'models.churn' not in sys.modules\n"
            f"m = BayesianModel.load({str(saved_fit[1])!r})\nprint(type(m).__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "BetaGeoModel"


def test_a_failed_save_leaves_the_earlier_file_and_no_temporary_file(
        saved_fit, tmp_path, monkeypatch, snapshot):
    model, source = saved_fit
    path = tmp_path / "fit.nc"
    path.write_bytes(source.read_bytes())
    before = snapshot(tmp_path)

    def disk_full(self, target, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"\x89HDF\r\n\x1a\n partial")
        raise OSError(28, "No space left on device", str(target))

    monkeypatch.setattr(xr.DataTree, "to_netcdf", disk_full)
    with pytest.raises(OSError, match="No space left"):
        model.save(path)
    assert snapshot(tmp_path) == before


def test_an_interrupted_save_leaves_the_earlier_file(saved_fit, tmp_path, monkeypatch, snapshot):
    model, source = saved_fit
    path = tmp_path / "fit.nc"
    path.write_bytes(source.read_bytes())
    before = snapshot(tmp_path)

    def interrupted(self, target, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"\x89HDF partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.DataTree, "to_netcdf", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    assert snapshot(tmp_path) == before
    assert BetaGeoModel.load(path).is_fitted


def test_load_is_not_fooled_by_a_base_class_name(saved_fit):
    assert isinstance(BayesianModel.load(saved_fit[1]), BetaGeoModel)
