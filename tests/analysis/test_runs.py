"""End-to-end runs of every analysis in --quick mode (module-scoped: each runs once)."""

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from models.analysis import run_analysis
from models.analysis.churn import _engagement_covariates, _gap_check_step
from models.analysis.config import ConfigError
from models.base import PosteriorModel
from models.churn import BetaGeoModel
from models.network import StochasticBlockModel

pytestmark = pytest.mark.slow

DETERMINISTIC = ("summary.csv", "predictions.csv", "diagnostics.json")


def _run(folder, name, **kwargs):
    return run_analysis(name, out=folder, quick=True, quiet=True, **kwargs)[0]


@pytest.fixture(scope="module")
def churn_dir(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("churn"), "churn")


@pytest.fixture(scope="module")
def listening_dir(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("listening"), "listening")


@pytest.fixture(scope="module")
def network_dir(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("network"), "network")


@pytest.fixture(scope="module")
def experiment_dir(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("experiment"), "experiment")


def _check_layout(folder: Path, fits: list[str]) -> dict:
    summary = pd.read_csv(folder / "summary.csv")
    assert set(summary["model"]) == set(fits)
    assert {"parameter", "mean", "sd", "r_hat", "ess_bulk"} <= set(summary.columns)
    diagnostics = json.loads((folder / "diagnostics.json").read_text())
    assert set(diagnostics["fits"]) == set(fits)
    order = ["pass", "not-applicable", "warn", "fail"]
    worst = max((f["verdict"] for f in diagnostics["fits"].values()), key=order.index)
    assert diagnostics["verdict"] == worst
    assert len(pd.read_csv(folder / "predictions.csv")) > 0
    for fit in fits:
        assert (folder / "posterior" / f"{fit}.nc").is_file()
    figures = sorted((folder / "figures").glob("*.png"))
    assert figures and all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)
    report = (folder / "report.html").read_text()
    assert report.count("data:image/png;base64,") == len(figures)
    assert "Overall verdict" in report and "src='figures/" not in report
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, digest in manifest["outputs_sha256"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert manifest["versions"]["pymc"] and manifest["seed"] == manifest["config"]["seed"]
    assert manifest["inputs"]["simulated"]["n_users"] == manifest["config"]["data"]["n_users"]
    assert manifest["timings_seconds"]["total"] > 0
    assert (folder / "config.toml").is_file()
    return manifest


def test_churn_outputs(churn_dir):
    _check_layout(churn_dir, ["bgnbd", "sbg", "hazard", "return_hazard"])
    model = BetaGeoModel.load(churn_dir / "posterior" / "bgnbd.nc")
    preds = pd.read_csv(churn_dir / "predictions.csv")
    assert len(preds) == len(model.data_)
    lo, mid, hi = (preds[f"probability_alive_{c}"] for c in ("ci_lower", "mean", "ci_upper"))
    assert ((lo <= mid + 1e-12) & (mid <= hi + 1e-12) & (lo >= 0) & (hi <= 1)).all()
    metrics = pd.read_csv(churn_dir / "tables" / "holdout_metrics.csv", index_col=0)
    assert metrics["auc"].between(0, 1).all() and (metrics["brier"] >= 0).all()
    # the activity model must beat chance at telling who listens in the holdout
    assert metrics.iloc[0]["auc"] > 0.6
    # the BG/NBD probability is judged against its own uncertainty, bin by bin
    assert metrics.iloc[0]["calibration"] in {"ok", "MISCALIBRATED"}
    calib = pd.read_csv(churn_dir / "tables" / "holdout_calibration.csv")
    bgnbd = calib[calib["model"] == metrics.index[0]]
    assert {"predicted_lower", "predicted_upper", "p_value"} <= set(bgnbd.columns)
    assert (bgnbd["lower"] <= bgnbd["upper"]).all() and bgnbd["n"].sum() == len(preds)
    # BG/NBD's and the return hazard model's (engagement is off), on the same users
    assert metrics["mae_active_periods"].notna().sum() == 2
    ret = "return hazard P(active in holdout)"
    assert metrics.loc[ret, "users"] == len(preds)
    assert metrics.loc[ret, "calibration"] in {"ok", "MISCALIBRATED"}
    assert calib.loc[calib["model"] == ret, "n"].sum() == len(preds)
    mid = preds["return_probability_active_holdout_mean"]
    lo, hi = (preds[f"return_probability_active_holdout_{c}"] for c in ("ci_lower", "ci_upper"))
    assert ((lo <= mid + 1e-12) & (mid <= hi + 1e-12) & (lo >= 0) & (hi <= 1)).all()
    days = preds["return_expected_active_days_holdout_mean"]
    assert ((days >= 0) & (days <= 30)).all()  # the quick holdout is 30 days
    report = (churn_dir / "report.html").read_text()
    assert "of the models that forecast this event" in report
    assert "Return hazard model: fitted on 200 of the" in report  # the rest from their histories
    assert (churn_dir / "figures" / "retention_curves.png").is_file()
    loss = pd.read_csv(churn_dir / "tables" / "segments_losing_users.csv", index_col=0)
    assert set(loss.index) == {"free", "premium"}


ENGAGEMENT = """\
[data]
n_users = 120
days = 84
n_artists = 15
[sampler]
draws = 40
tune = 40
chains = 2
[churn]
holdout_days = 21
fit_bgbb = false
fit_hazard = false
fit_engagement = true
fit_return_hazard = false
engagement_states = 2
engagement_churn_state = false
engagement_threads = 2
engagement_churn_returns = false
engagement_max_users = 60
max_draws = 40
cohort_period = "W"
"""


def test_churn_with_the_engagement_model(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(ENGAGEMENT)
    folder = run_analysis("churn", out=tmp_path / "out", config=config, quiet=True)[0]
    _check_layout(folder, ["bgnbd", "sbg", "engagement"])
    preds = pd.read_csv(folder / "predictions.csv")
    metrics = pd.read_csv(folder / "tables" / "holdout_metrics.csv", index_col=0)
    calib = pd.read_csv(folder / "tables" / "holdout_calibration.csv")
    # fitted on 60 users, scored on the same holdout event for every user, against its
    # own uncertainty, with the error of its expected active days beside BG/NBD's
    hmm = "engagement states P(active in holdout)"
    assert metrics.loc[hmm, "users"] == len(preds) > 60
    assert metrics.loc[hmm, "calibration"] in {"ok", "MISCALIBRATED"}
    assert calib.loc[calib["model"] == hmm, "n"].sum() == len(preds)
    assert metrics["mae_active_periods"].notna().sum() == 2
    mid = preds["engagement_probability_active_holdout_mean"]
    lo, hi = (preds[f"engagement_probability_active_holdout_{c}"] for c in ("ci_lower", "ci_upper"))
    assert ((lo <= mid + 1e-12) & (mid <= hi + 1e-12) & (lo >= 0) & (hi <= 1)).all()
    assert (preds["engagement_expected_active_days_holdout_mean"] >= 0).all()
    report = (folder / "report.html").read_text()
    assert "fitted on 60 of the" in report
    # its own gap check, on the 60 users it was fitted on
    gaps = pd.read_csv(folder / "tables" / "gap_check_engagement.csv", index_col=0)
    assert gaps["observed"].iloc[:-1].sum() == pytest.approx(1.0)
    assert "Engagement-state model gap check" in report or "engagement-state model on the" in report
    # the configured threads reach the model (its pass; PyMC's chain processes keep one)
    from models.churn import EngagementStateModel

    assert EngagementStateModel.load(folder / "posterior" / "engagement.nc").threads == 2


def test_listening_outputs(listening_dir):
    _check_layout(listening_dir, ["plays_negbin", "plays_poisson", "skips"])
    loo = pd.read_csv(listening_dir / "tables" / "loo_comparison.csv", index_col=0)
    assert set(loo.index) == {"negbin", "poisson"}
    # the simulator's plays are overdispersed: negative binomial must win
    assert loo.index[0] == "negbin"
    assert (listening_dir / "figures" / "ppc_plays.png").is_file()
    assert (listening_dir / "figures" / "ppc_skips.png").is_file()


def test_network_outputs_and_reload(network_dir):
    _check_layout(network_dir, ["sbm", "sbm_train"])
    scores = pd.read_csv(network_dir / "tables" / "link_prediction.csv", index_col=0)
    assert list(scores.index) == ["block_model", "common_neighbours", "adamic_adar",
                                  "preferential_attachment"]
    assert scores["auc"].between(0, 1).all()
    sbm = PosteriorModel.load(network_dir / "posterior" / "sbm.nc")
    assert isinstance(sbm, StochasticBlockModel)
    preds = pd.read_csv(network_dir / "predictions.csv")
    assert sorted(preds["artist_id"]) == sorted(sbm.point_partition().index)


def test_experiment_outputs(experiment_dir):
    from models.experiments import DEFAULT_METRICS

    _check_layout(experiment_dir, ["segments", "surrogate_index", "projection"])
    effects = pd.read_csv(experiment_dir / "predictions.csv")
    assert sorted(effects["metric"]) == sorted(m.name for m in DEFAULT_METRICS)
    assert (effects["lift_ci_lower"] <= effects["lift_ci_upper"]).all()
    decision = pd.read_csv(experiment_dir / "tables" / "decision.csv")
    assert set(decision["role"]) == {"success", "guardrail"} and decision["reason"].notna().all()
    checks = pd.read_csv(experiment_dir / "tables" / "checks.csv")
    assert {"sample_ratio", "variants", "pre_period_balance"} <= set(checks["check"])
    long_term = pd.read_csv(experiment_dir / "tables" / "long_term.csv")
    assert set(long_term["route"]) == {"surrogate index", "churn-model projection"}
    assert long_term["truth"].notna().all()  # the built-in experiment's truth is known
    truth = pd.read_csv(experiment_dir / "tables" / "truth.csv")
    assert truth["covered"].mean() >= 0.7  # 95% intervals against the exact sample effects
    report = (experiment_dir / "report.html").read_text()
    # the report leads with the answer: findings (decision first), then checks, then the fits
    findings = report.index("<h2>Findings</h2>")
    assert findings < report.index("<h2>Checks of the data</h2>") < report.index(
        "<h2>What was fitted, and can it be trusted?</h2>")
    assert report.index("Decision: ") > findings
    assert "forest" in report.lower() and "Long-term projection" in report


def test_experiment_rerun_is_byte_identical(experiment_dir):
    before = {f: (experiment_dir / f).read_bytes() for f in DETERMINISTIC}
    _run(experiment_dir, "experiment")
    for f in DETERMINISTIC:
        assert (experiment_dir / f).read_bytes() == before[f], f


def test_reports_lead_with_findings(churn_dir, network_dir):
    for folder in (churn_dir, network_dir):
        report = (folder / "report.html").read_text()
        assert report.index("<h2>Findings</h2>") < report.index(
            "<h2>What was fitted, and can it be trusted?</h2>")


def test_rerun_loads_cached_fits_and_gives_identical_files(churn_dir):
    before = {f: (churn_dir / f).read_bytes() for f in DETERMINISTIC}
    _run(churn_dir, "churn")
    manifest = json.loads((churn_dir / "manifest.json").read_text())
    assert all(f["cached"] for f in manifest["fits"].values())
    for f in DETERMINISTIC:
        assert (churn_dir / f).read_bytes() == before[f], f


def test_same_seed_refit_is_byte_identical_and_other_seed_differs(network_dir, tmp_path):
    again = _run(tmp_path / "again", "network", force=True)
    for f in DETERMINISTIC:
        assert (again / f).read_bytes() == (network_dir / f).read_bytes(), f
    other = _run(tmp_path / "other", "network", seed=1)
    assert (other / "summary.csv").read_bytes() != (network_dir / "summary.csv").read_bytes()


def test_force_refits_and_changed_config_invalidates_cache(network_dir, tmp_path):
    folder = _run(tmp_path / "n", "network")
    _run(folder, "network", force=True)
    assert not any(f["cached"] for f in
                   json.loads((folder / "manifest.json").read_text())["fits"].values())
    config = tmp_path / "c.toml"
    config.write_text("[sampler]\ndraws = 40\n")
    _run(folder, "network", config=config)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert not manifest["fits"]["sbm"]["cached"]
    assert str(config) in manifest["inputs"]["config_file"]


def test_churn_engagement_model_with_covariates_from_the_users_table(tmp_path):
    """``engagement_covariates`` puts users-table columns on the HMM's transitions: a text
    column as one 0/1 column per level but the first; a column that is not there is a
    configuration error before anything is fitted."""
    config = tmp_path / "c.toml"
    config.write_text(ENGAGEMENT + 'engagement_covariates = ["plan"]\n')
    folder = run_analysis("churn", out=tmp_path / "out", config=config, quiet=True)[0]
    tree = xr.open_datatree(folder / "posterior" / "engagement.nc")
    coef = tree["posterior"]["transition_coef_per_unit"]
    assert list(coef["covariate"].values) == ["plan_premium"]
    assert np.isfinite(coef.values).all()
    assert "plan_premium shift the transitions" in (folder / "report.html").read_text()
    preds = pd.read_csv(folder / "predictions.csv")
    assert preds["engagement_probability_active_holdout_mean"].between(0, 1).all()
    config.write_text(ENGAGEMENT + 'engagement_covariates = ["plam"]\n')
    with pytest.raises(ConfigError, match=r"\['plam'\] are not .*'plan'"):
        run_analysis("churn", out=tmp_path / "out2", config=config, quiet=True)
    # a text column with one value would give no column at all: an error, not a silent drop
    users = pd.DataFrame({"user_id": [1, 2, 3], "tier": "gold", "age": [20, None, 40],
                          "plan": ["free", None, "family"]})
    ctx = SimpleNamespace(config={"churn": {"engagement_covariates": ["tier"]}},
                          inputs=SimpleNamespace(users=users))
    with pytest.raises(ConfigError, match=r"'tier' .* one value \['gold'\]"):
        _engagement_covariates(ctx)
    # numbers stay numbers; a missing value stays missing, never a 0
    ctx.config["churn"]["engagement_covariates"] = ["age", "plan"]
    got = _engagement_covariates(ctx)
    assert list(got.columns) == ["age", "plan_free"]
    assert got["age"].tolist()[::2] == [20.0, 40.0] and np.isnan(got.loc[2, "age"])
    assert got["plan_free"].tolist()[::2] == [1.0, 0.0] and np.isnan(got.loc[2, "plan_free"])


def test_a_gap_check_too_short_to_test_is_a_note_and_a_failed_one_a_finding():
    from models.churn import GapCheck, HistoryTooShortError
    from models.exceptions import ModelCheckWarning

    class Out:
        def __init__(self):
            self.notes, self.findings, self.tables = [], [], {}

        def note(self, text):
            self.notes.append(text)

        def finding(self, text):
            self.findings.append(text)

        def add_table(self, name, table, description):
            self.tables[name] = table

    def too_short():
        raise HistoryTooShortError("gap_check: the history is too short for heavy=10")

    out = Out()
    _gap_check_step(out, "gap_check_engagement", "Engagement-state model", too_short, "...")
    assert out.tables == {} and out.findings == []
    assert out.notes == ["Engagement-state model gap check not run: gap_check: the history is "
                         "too short for heavy=10"]
    table = pd.DataFrame({"observed": [1.0]})
    failed = GapCheck(table, 0.95, True, "Returns after long silences exceed the replicates.")
    with pytest.warns(ModelCheckWarning, match="Engagement-state model: Returns"):
        _gap_check_step(out, "gap_check_engagement", "Engagement-state model", lambda: failed,
                        "...", subject="engagement-state model")
    assert out.tables["gap_check_engagement"] is table
    assert out.findings == ["WARNING: engagement-state model on the calibration window: "
                            "Returns after long silences exceed the replicates."]
