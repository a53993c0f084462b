"""Priors: a typo or an impossible value is an error when the prior is made, never ignored."""

import math

import pytest

from models.analysis.config import ConfigError, load_config
from models.analysis.runner import ANALYSES, check_priors
from models.churn import BetaGeoModel
from models.priors import Prior


@pytest.mark.parametrize(("distribution", "typo", "valid"), [
    ("LogNormal", "sd", r"\['mu', 'sigma', 'tau'\]"),
    ("LogNormal", "sigmaa", r"\['mu', 'sigma', 'tau'\]"),
    ("Gamma", "rate", r"\['alpha', 'beta', 'mu', 'sigma'\]"),
    ("HalfNormal", "scale", r"\['sigma', 'tau'\]"),
])
def test_a_parameter_the_distribution_lacks_is_an_error_listing_the_valid_ones(
        distribution, typo, valid):
    with pytest.raises(ValueError, match=rf"Prior\('{distribution}'\) has no parameter "
                       rf"'{typo}'; its parameters are {valid}"):
        Prior(distribution, **{typo: 0.01})


@pytest.mark.parametrize(("distribution", "params", "rule"), [
    ("LogNormal", {"mu": 0.0, "sigma": -1.0}, "sigma > 0"),
    ("HalfNormal", {"sigma": 0.0}, "sigma > 0"),
    ("Gamma", {"alpha": 2.0, "beta": -1.0}, "alpha > 0, beta > 0"),
    ("Uniform", {"lower": 1.0, "upper": 0.0}, "lower <= upper"),
])
def test_values_outside_the_parameter_space_fail_when_the_prior_is_made(distribution, params, rule):
    with pytest.raises(ValueError, match=rf"outside the distribution's parameter space: PyMC "
                       rf"requires {rule}\."):
        Prior(distribution, **params)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_parameters_fail_when_the_prior_is_made(value):
    with pytest.raises(ValueError, match=r"The parameter 'mu' of Prior\('Normal'\) must be finite"):
        Prior("Normal", mu=value, sigma=1.0)


def test_a_boolean_parameter_is_not_numeric():
    with pytest.raises(ValueError, match="must be numeric"):
        Prior("Normal", mu=True, sigma=1.0)


def test_valid_priors_are_still_accepted():
    assert Prior("LogNormal", mu=0.0, sigma=0.01).params == {"mu": 0.0, "sigma": 0.01}
    assert Prior("Dirichlet", a=1.0).params == {"a": 1.0}  # its shape comes from the model
    assert Prior("HalfFlat").params == {}


@pytest.mark.parametrize(("spec", "message"), [
    ({"params": {"sigma": 1.0}}, r"needs a 'distribution' \(e\.g\. \{'distribution': "),
    ({"distribution": "Normal", "sigma": 1.0}, r"only the keys \['distribution', 'params'\].*"
     r"'sigma' is not one"),
    ({"distribution": "Normal", "params": [1.0]}, r"The 'params' of a prior must be a mapping"),
    ({"distribution": 3}, r"must be a string such as 'HalfNormal'"),
])
def test_bad_prior_dicts_are_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        Prior.from_dict(spec)


def test_a_model_with_a_misspelt_prior_parameter_fails_at_construction():
    with pytest.raises(ValueError, match=r"has no parameter 'sd'"):
        BetaGeoModel(priors={"r": {"distribution": "LogNormal", "params": {"mu": 0.0, "sd": 1.0}}})


def _config_with_priors(priors):
    config = load_config("churn", quick=True)
    config["priors"] = priors
    return config


def test_config_prior_table_of_an_unknown_model_lists_the_models_of_the_analysis():
    config = _config_with_priors({"BetaGeoModle": {"r": {"distribution": "LogNormal",
                                                         "params": {"mu": 0.0, "sigma": 1.0}}}})
    with pytest.raises(ConfigError, match=r"Unknown model 'BetaGeoModle' under \[priors\] in "
                       r"c\.toml; the churn analysis fits \['BetaGeoBetaBinomModel', "
                       r"'BetaGeoModel', 'ChurnHazardModel', 'EngagementStateModel', "
                       r"'ReturnHazardModel', 'ShiftedBetaGeoModel'\]"):
        check_priors(ANALYSES["churn"], config, "c.toml")


def test_config_prior_of_a_model_of_another_analysis_is_refused():
    config = _config_with_priors({"PlayCountModel": {}})
    with pytest.raises(ConfigError, match=r"Unknown model 'PlayCountModel'.*churn analysis fits"):
        check_priors(ANALYSES["churn"], config, "c.toml")


def test_config_prior_with_a_misspelt_parameter_names_the_table():
    config = _config_with_priors({"BetaGeoModel": {"r": {"distribution": "LogNormal",
                                                         "params": {"mu": 0.0, "sd": 0.01}}}})
    with pytest.raises(ConfigError, match=r"In \[priors\.BetaGeoModel\] of c\.toml: "
                       r"Prior\('LogNormal'\) has no parameter 'sd'"):
        check_priors(ANALYSES["churn"], config, "c.toml")


def test_config_prior_with_an_unknown_prior_name_lists_the_valid_ones():
    config = _config_with_priors({"BetaGeoModel": {"rr": {"distribution": "HalfNormal"}}})
    with pytest.raises(ConfigError, match=r"no prior named 'rr'; valid names are \['a', 'alpha'"):
        check_priors(ANALYSES["churn"], config, "c.toml")


def test_valid_config_priors_pass():
    check_priors(ANALYSES["churn"], _config_with_priors(
        {"BetaGeoModel": {"r": {"distribution": "LogNormal",
                                "params": {"mu": 0.0, "sigma": 1.0}}}}), "c.toml")


@pytest.mark.parametrize("prior", [Prior("Normal", mu=0.0, sigma=1.0), Prior("StudentT", nu=3),
                                   Prior("Uniform", lower=-1.0, upper=2.0)])
def test_a_prior_with_mass_where_the_parameter_cannot_be_is_an_error(prior):
    # catalogue 50: a Normal prior on the positive r sampled, diverged and failed R-hat
    # without the cause being named
    with pytest.raises(ValueError, match=r"prior of 'r' in BetaGeoModel.*outside \(0, inf\).*"
                       r"LogNormal, Gamma"):
        BetaGeoModel(priors={"r": prior})


@pytest.mark.parametrize("prior", [Prior("Gamma", alpha=2.0, beta=1.0), Prior("HalfFlat"),
                                   Prior("TruncatedNormal", mu=1.0, sigma=1.0, lower=0.0),
                                   Prior("Uniform", lower=0.1, upper=5.0)])
def test_priors_inside_the_parameters_domain_are_accepted(prior):
    assert BetaGeoModel(priors={"r": prior}).resolved_priors()["r"] == prior
