import tomllib

import pytest

from models.analysis import ANALYSES, ConfigError, default_config, load_config
from models.analysis.config import dump_toml, merge_config


@pytest.mark.parametrize("name", ["churn", "listening", "network"])
def test_defaults_ship_for_every_analysis_and_quick_is_smaller(name):
    full = default_config(name)
    quick = default_config(name, quick=True)
    assert "quick" not in full and "quick" not in quick
    assert quick["data"]["n_users"] < full["data"]["n_users"]
    assert quick["sampler"]["draws"] < full["sampler"]["draws"]
    assert name in ANALYSES


def test_unknown_key_is_an_error_naming_it(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[sampler]\ndrawz = 10\n")
    with pytest.raises(ConfigError, match=r"Unknown key 'sampler.drawz'.*valid keys of \[sampler\]"):
        load_config("churn", path)


def test_unknown_top_level_table_and_bad_types(tmp_path):
    with pytest.raises(ConfigError, match="Unknown key 'samplers'"):
        merge_config(default_config("churn"), {"samplers": {}})
    with pytest.raises(ConfigError, match="'sampler.draws' .* must be a int.*Got 'many'"):
        merge_config(default_config("churn"), {"sampler": {"draws": "many"}})
    with pytest.raises(ConfigError, match="'churn.fit_bgbb' .* must be a bool"):
        merge_config(default_config("churn"), {"churn": {"fit_bgbb": 1}})
    with pytest.raises(ConfigError, match="must be a table"):
        merge_config(default_config("churn"), {"sampler": 3})


def test_override_replaces_only_given_keys_and_priors_pass_through(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('seed = 7\n[sampler]\ndraws = 50\n'
                    '[priors.BetaGeoModel.r]\ndistribution = "LogNormal"\n'
                    'params = { mu = 0.0, sigma = 1.0 }\n')
    base = default_config("churn", quick=True)
    cfg = load_config("churn", path, quick=True)
    assert cfg["seed"] == 7 and cfg["sampler"]["draws"] == 50
    assert cfg["sampler"]["chains"] == base["sampler"]["chains"]
    assert cfg["priors"]["BetaGeoModel"]["r"]["distribution"] == "LogNormal"


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="No config file at"):
        load_config("churn", tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[sampler\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config("churn", bad)
    with pytest.raises(ConfigError, match="No default configuration for an analysis named 'x'"):
        default_config("x")


def test_target_accept_zero_leaves_each_model_its_own_and_a_value_sets_every_one():
    from models.analysis.context import AnalysisContext

    def kwargs(cfg):
        return AnalysisContext(inputs=None, config=cfg, seed=0, out=None,
                               quiet=True).sampler_kwargs()

    for name in ("churn", "listening", "experiment", "network"):
        assert default_config(name)["sampler"]["target_accept"] == 0
        assert kwargs(default_config(name))["target_accept"] is None  # fit: the model's own
    chosen = merge_config(default_config("churn"), {"sampler": {"target_accept": 0.95}})
    assert kwargs(chosen)["target_accept"] == 0.95
    for bad in (1, 1.5, -0.1):
        with pytest.raises(ConfigError, match=r"'sampler.target_accept' .* must be 0 .*or in "
                                              r"\(0, 1\)"):
            merge_config(default_config("churn"), {"sampler": {"target_accept": bad}})
    with pytest.raises(ConfigError, match="'churn.engagement_threads' .* at least 1. Got 0"):
        merge_config(default_config("churn"), {"churn": {"engagement_threads": 0}})


@pytest.mark.parametrize("name", ["churn", "listening", "network"])
def test_dump_toml_round_trips_resolved_configs(name):
    cfg = default_config(name, quick=True)
    cfg["priors"] = {"M": {"p": {"distribution": "Normal", "params": {"mu": 0.0}}}}
    assert tomllib.loads(dump_toml(cfg)) == cfg
