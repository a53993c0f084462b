"""Tests of the base class contract, on a tiny normal-mean model."""

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

from models.base import BayesianModel, resolve_seed
from models.diagnostics import check_fit
from models.exceptions import (
    DataValidationError,
    ModelMismatchError,
    NotFittedError,
    Problem,
)
from models.priors import Prior


class NormalMeanModel(BayesianModel):
    """y ~ Normal(mu, sigma): the smallest model that exercises the base class."""

    default_priors = {"mu": Prior("Normal", mu=0.0, sigma=10.0), "sigma": Prior("HalfNormal", sigma=5.0)}

    def __init__(self, *, priors=None, center=False):
        self.center = center
        super().__init__(priors=priors)

    def _validate_data(self, data):
        if "y" not in data.columns:
            raise DataValidationError([Problem("y", "a column of numbers")], what="data")
        return data[["y"]].astype(float)

    def _build_model(self, data):
        priors = self.resolved_priors()
        with pm.Model(coords={"obs": data.index}) as model:
            mu = priors["mu"].create("mu")
            sigma = priors["sigma"].create("sigma")
            pm.Normal("y", mu, sigma, observed=data["y"].to_numpy(), dims="obs")
        return model


class OtherModel(NormalMeanModel):
    pass


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return pd.DataFrame({"y": rng.normal(3.0, 2.0, size=200)})


@pytest.fixture(scope="module")
def fitted(data):
    return NormalMeanModel().fit(data, draws=300, tune=300, chains=2, cores=1, random_seed=11)


def test_fit_recovers_mean_and_passes_checks(fitted):
    post = fitted.posterior_draws("mu").values
    assert abs(post.mean() - 3.0) < 0.5
    assert fitted.fit_report_.verdict == "pass"
    assert fitted.converged_
    summary = fitted.summary()
    assert {"mu", "sigma"} <= set(summary.index)


def test_same_seed_gives_identical_draws(data, fitted):
    again = NormalMeanModel().fit(data, draws=300, tune=300, chains=2, cores=1, random_seed=11)
    np.testing.assert_array_equal(again.posterior_draws("mu").values,
                                  fitted.posterior_draws("mu").values)
    other = NormalMeanModel().fit(data, draws=300, tune=300, chains=2, cores=1, random_seed=12)
    assert not np.array_equal(other.posterior_draws("mu").values,
                              fitted.posterior_draws("mu").values)


def test_seed_is_recorded(fitted):
    assert '"random_seed": 11' in fitted.idata_.attrs["listening_models"]


def test_save_load_round_trip(tmp_path, fitted):
    path = fitted.save(tmp_path / "fit.nc")
    back = NormalMeanModel.load(path)
    np.testing.assert_array_equal(back.posterior_draws("mu").values,
                                  fitted.posterior_draws("mu").values)
    pd.testing.assert_frame_equal(back.data_, fitted.data_)
    assert back.get_params() == fitted.get_params()
    assert back.fit_report_.verdict == fitted.fit_report_.verdict
    assert type(BayesianModel.load(path)) is NormalMeanModel


def test_save_load_keeps_custom_priors(tmp_path, data):
    model = NormalMeanModel(priors={"mu": Prior("Normal", mu=1.0, sigma=2.0)})
    model.fit(data, method="map", random_seed=1)
    back = NormalMeanModel.load(model.save(tmp_path / "map.nc"))
    assert back.resolved_priors()["mu"] == Prior("Normal", mu=1.0, sigma=2.0)


def test_load_refuses_other_model(tmp_path, fitted):
    path = fitted.save(tmp_path / "fit.nc")
    with pytest.raises(ModelMismatchError, match="holds a NormalMeanModel fit, not a OtherModel"):
        OtherModel.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No saved model"):
        NormalMeanModel.load(tmp_path / "nope.nc")


def test_map_fit_is_not_checked_as_mcmc(data):
    model = NormalMeanModel().fit(data, method="map", random_seed=3)
    assert model.fit_report_.verdict == "not-applicable"
    assert abs(float(model.posterior_draws("mu").values.squeeze()) - data["y"].mean()) < 0.05


def test_advi_fit(data):
    model = NormalMeanModel().fit(data, method="advi", draws=200, advi_steps=20_000, random_seed=3)
    assert abs(float(model.posterior_draws("mu").mean()) - data["y"].mean()) < 0.3
    assert model.fit_report_.verdict == "not-applicable"
    assert "advi_loss" in model.idata_.children
    assert any("loss had stopped falling" in n for n in model.fit_report_.notes)
    falling = model.idata_.copy()
    falling["advi_loss"] = xr.DataTree(xr.Dataset({"loss": ("step", np.linspace(900, 100, 5000))}))
    report = check_fit(falling, var_names=["mu"])
    assert report.verdict == "warn" and any("still falling" in c for c in report.cautions)
    assert not any("loss had stopped falling" in n for n in report.notes)


def test_not_fitted_errors():
    model = NormalMeanModel()
    for call in (model.summary, model.diagnostics, lambda: model.save("x.nc")):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()
    assert repr(model) == "NormalMeanModel(center=False)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"draws": -5}, "The 'draws' parameter of NormalMeanModel.fit must be a positive integer. Got -5"),
        ({"chains": 0}, "'chains' parameter .* positive integer. Got 0"),
        ({"method": "gibbs"}, "'method' parameter .* one of \\['nuts', 'advi', 'map'\\]. Got 'gibbs'"),
        ({"sampler": "stan"}, "'sampler' parameter .* Got 'stan'"),
        ({"target_accept": 1.5}, "'target_accept' .* in \\(0, 1\\). Got 1.5"),
        ({"random_seed": -1}, "'random_seed' must be non-negative"),
    ],
)
def test_bad_fit_parameters(data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        NormalMeanModel().fit(data, **kwargs)


def test_unknown_prior_name_lists_valid_ones():
    with pytest.raises(ValueError, match=r"no prior named 'tau'; valid names are \['mu', 'sigma'\]"):
        NormalMeanModel(priors={"tau": Prior("Normal", mu=0, sigma=1)})


def test_prior_given_as_dict():
    model = NormalMeanModel(priors={"mu": {"distribution": "Normal", "params": {"mu": 1, "sigma": 1}}})
    assert model.resolved_priors()["mu"] == Prior("Normal", mu=1, sigma=1)


def test_bad_data_raises_validation_error():
    with pytest.raises(DataValidationError, match="column 'y'"):
        NormalMeanModel().fit(pd.DataFrame({"x": [1.0]}))


def test_resolve_seed():
    assert resolve_seed(5) == 5
    assert 0 <= resolve_seed(None) < 2**32
    with pytest.raises(ValueError, match="Got 'a'"):
        resolve_seed("a")
