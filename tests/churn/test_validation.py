"""Out-of-time validation: metrics on hand cases, the split, simulator and CDNOW holdouts."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from models.churn import BetaGeoModel
from models.churn.validation import (
    brier_score,
    calibration_holdout_split,
    calibration_table,
    holdout_evaluation,
    probability_active_within,
    roc_auc,
    score_holdout,
)
from models.data import ChurnOptions, NetworkOptions, simulate_service

_HERE = Path(__file__).resolve()
DATA = next((p / "shared" / "data" for p in (_HERE.parents[3], _HERE.parents[2])
             if (p / "shared" / "data").is_dir()), _HERE.parents[3] / "shared" / "data")
FIT = {"draws": 500, "tune": 1000, "chains": 2, "cores": 1, "random_seed": 1}


@pytest.fixture(scope="module")
def data_dir():
    if not DATA.is_dir():
        pytest.skip(f"reference data folder {DATA} is absent")
    return DATA


# ------------------------------------------------------------------ metrics, by hand
def test_roc_auc_hand_cases():
    # pairs (pos, neg): (0.35 > 0.1), (0.35 < 0.4), (0.8 > both): 3 of 4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([1, 0], [0.5, 0.5]) == 0.5  # a tie counts one half
    assert roc_auc([True, False, True], [0.9, 0.1, 0.2]) == 1.0
    assert roc_auc([1, 1, 0], [0.1, 0.2, 0.9]) == 0.0
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))
    rng = np.random.default_rng(0)  # against the definition, with ties
    y, p = rng.integers(0, 2, 200), rng.integers(0, 5, 200) / 4
    pairs = [(a > b) + 0.5 * (a == b) for a in p[y == 1] for b in p[y == 0]]
    assert roc_auc(y, p) == pytest.approx(np.mean(pairs), abs=1e-12)


def test_brier_score_hand_cases():
    assert brier_score([0, 1], [0.2, 0.6]) == pytest.approx((0.04 + 0.16) / 2, abs=1e-15)
    assert brier_score([1, 0, 1], [1.0, 0.0, 1.0]) == 0.0
    assert brier_score([1, 0], [0.5, 0.5]) == 0.25


def test_calibration_table_hand_case_and_bounds():
    y = [0, 0, 1, 1, 1, 0]
    p = [0.1, 0.2, 0.9, 0.8, 0.7, 0.3]
    table = calibration_table(y, p, n_bins=2, ci_prob=0.9)
    assert table.attrs["ci_prob"] == 0.9
    assert table["n"].tolist() == [3, 3]
    np.testing.assert_allclose(table["mean_predicted"], [0.2, 0.8])
    np.testing.assert_allclose(table["observed_rate"], [0.0, 1.0])
    lo = stats.binom.ppf(0.05, 3, 0.2) / 3
    hi = stats.binom.ppf(0.95, 3, 0.8) / 3
    assert table["lower"].iloc[0] == lo and table["upper"].iloc[1] == hi
    assert table["inside"].tolist() == [True, True]
    # calibrated draws fall inside about 95% of the time; miscalibrated ones do not
    rng = np.random.default_rng(1)
    p = rng.uniform(size=20_000)
    assert calibration_table(rng.uniform(size=p.size) < p, p)["inside"].mean() >= 0.8
    assert not calibration_table(rng.uniform(size=p.size) < p**2, p)["inside"].any()


def test_metric_errors():
    with pytest.raises(ValueError, match="same, non-zero length. Got 2 outcomes and 1"):
        roc_auc([0, 1], [0.5])
    with pytest.raises(ValueError, match=r"must be 0 or 1 \(or booleans\). Got 2.0"):
        brier_score([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]. Got 1.5"):
        calibration_table([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="'n_bins' parameter of calibration_table must be a "
                                         "positive integer. Got 0 instead"):
        calibration_table([0, 1], [0.5, 0.5], n_bins=0)


# -------------------------------------------------------------------------- the split
def test_split_by_hand():
    log = pd.DataFrame({"user_id": ["a", "a", "a", "a", "b", "c"], "timestamp": pd.to_datetime(
        ["2024-01-01 00:00", "2024-01-03 10:00", "2024-01-03 12:00", "2024-01-12 00:00",
         "2024-01-05 00:00", "2024-01-11 00:00"])})
    table = calibration_holdout_split(log, calibration_end="2024-01-08", holdout_end="2024-01-15")
    assert table.index.tolist() == ["a", "b"]  # c starts in the holdout
    assert table.loc["a"].tolist() == [1, 2, 6, 1, True]  # two plays on the 3rd: one day
    assert table.loc["b"].tolist() == [0, 0, 2, 0, False]
    assert table.attrs["horizon"] == 7
    weeks = calibration_holdout_split(log, calibration_end="2024-01-08",
                                      holdout_end="2024-01-22", period="W")
    assert weeks.attrs["horizon"] == 2 and weeks.loc["a", "T"] == 0


def test_split_errors():
    log = pd.DataFrame({"user_id": ["a"], "timestamp": pd.to_datetime(["2024-01-01"])})
    with pytest.raises(ValueError, match="'calibration_end' parameter of calibration_holdout_"
                                         "split must be the start of a period"):
        calibration_holdout_split(log, calibration_end="2024-01-08 12:00",
                                  holdout_end="2024-01-15")
    with pytest.raises(ValueError, match="must be the start of a period \\('W'\\), so both windows "
                                         "hold whole periods. Got '2024-01-10'"):
        calibration_holdout_split(log, calibration_end="2024-01-10", holdout_end="2024-01-15",
                                  period="W")
    with pytest.raises(ValueError, match="'holdout_end' .* must be after calibration_end"):
        calibration_holdout_split(log, calibration_end="2024-01-08", holdout_end="2024-01-08")
    with pytest.raises(TypeError, match="must be a BetaGeoModel. Got str instead"):
        holdout_evaluation("model", log, calibration_end="2024-01-08", holdout_end="2024-01-15")


# ------------------------------------------------------------------ exact prediction
def test_probability_active_within_closed_form():
    model = BetaGeoModel()
    model.data_ = pd.DataFrame({"frequency": [0, 2], "recency": [0.0, 5.0], "T": [10.0, 10.0]})
    r, alpha, a, b = 0.7, 3.0, 0.9, 2.0
    model.idata_ = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {k: (("chain", "draw"), np.full((1, 1), v)) for k, v in
         [("r", r), ("alpha", alpha), ("a", a), ("b", b)]})})
    got = model.probability_active(horizon=4.0)["mean"].to_numpy()
    alive = model.probability_alive()["mean"].to_numpy()
    # Monte Carlo of the definition: lam | alive ~ Gamma(r + x, alpha + T); any event in t
    rng = np.random.default_rng(2)
    for i, x in enumerate([0, 2]):
        lam = rng.gamma(r + x, 1.0 / (alpha + 10.0), 400_000)
        mc = alive[i] * np.mean(rng.poisson(lam * 4.0) > 0)
        assert got[i] == pytest.approx(mc, abs=3e-3)
    assert got[0] < alive[0] and got[1] < alive[1]
    with pytest.raises(ValueError, match="'horizon' parameter of BetaGeoModel.probability_active "
                                         r"must be a positive number. Got \[1.0, 2.0\]"):
        model.probability_active(horizon=[1.0, 2.0])
    # the deprecated function still gives the same numbers, with a FutureWarning
    with pytest.warns(FutureWarning, match="probability_active_within"):
        old = probability_active_within(model, t=4.0)
    pd.testing.assert_frame_equal(old, model.probability_active(horizon=4.0))


def test_score_holdout_point_predictions_and_errors():
    table = pd.DataFrame({"frequency": [0, 1, 3, 9], "recency": [0, 2, 5, 9], "T": [9] * 4,
                          "holdout_activity": [0, 1, 2, 6],
                          "active_in_holdout": [False, True, True, True]})
    ev = score_holdout(table, p_active=[0.1, 0.6, 0.8, 0.9],
                       expected_activity=[0.2, 1.0, 2.5, 5.0], horizon=5, n_bins=2,
                       top_frequency=3)
    assert ev.auc == 1.0 and ev.brier == pytest.approx((0.01 + 0.16 + 0.04 + 0.01) / 4)
    assert ev.by_frequency.index.tolist() == [0, 1, 3]  # 3 and 9 share the "3+" bucket
    assert ev.by_frequency.loc[3, "actual"] == 4.0 and ev.by_frequency.loc[3, "predicted"] == 3.75
    with pytest.raises(ValueError, match="needs a fitted model= or both p_active="):
        score_holdout(table, p_active=[0.1] * 4, horizon=5)
    with pytest.raises(ValueError, match="needs the holdout length"):
        score_holdout(table, p_active=[0.1] * 4, expected_activity=[0.1] * 4)


# ------------------------------------------------------------------- simulated service
@pytest.fixture(scope="module")
def simulated():
    # one activity process for both plans, slow enough that two sessions rarely share a day:
    # the daily summary is then (nearly) the exact BG/NBD of the sessions
    act = {"r": 0.8, "alpha": 15.0, "a": 1.0, "b": 5.0}
    sim = simulate_service(2000, 240, random_seed=5,
                           churn=ChurnOptions(activity={"free": act, "premium": act}),
                           network=NetworkOptions(n_artists=50))
    model = BetaGeoModel()
    result = holdout_evaluation(model, sim.events, calibration_end="2025-05-01",
                                holdout_end="2025-08-29", fit_kwargs=FIT, max_draws=500,
                                random_seed=0)
    return sim, model, result


@pytest.mark.slow
def test_simulated_holdout_is_discriminating_and_calibrated(simulated):
    sim, model, result = simulated
    assert model.converged_, model.fit_report_
    assert result.horizon == 120
    assert result.auc > 0.7
    assert result.brier < 0.2
    # every bin's observed rate of activity in the holdout lies in its binomial bounds
    # (a miscalibrated prediction, p squared, fails them)
    assert result.calibration["inside"].all(), result.calibration
    y = result.users["active_in_holdout"]
    assert not calibration_table(y, result.users["p_active"] ** 2)["inside"].all()
    # P(alive at calibration end) ranks the truly alive users first
    users = sim.truth.users.set_index("user_id")
    cal_day = (pd.Timestamp("2025-05-01") - sim.truth.start).days
    alive = (users["dropout_time"] >= cal_day).reindex(result.users.index)
    p_alive = model.probability_alive(result.users[["frequency", "recency", "T"]])["mean"]
    assert roc_auc(alive, p_alive) > 0.8
    # repeat activity per calibration-frequency bucket: predicted within 3 standard
    # errors of the actual mean, and in total within 10%
    by = result.by_frequency
    assert (np.abs(by["predicted"] - by["actual"]) < 3 * by["actual_se"] + 0.05).all(), by
    total = result.users[["holdout_activity", "expected_activity"]].sum()
    assert total["expected_activity"] == pytest.approx(total["holdout_activity"], rel=0.1)
    assert (by["ci_lower"] <= by["predicted"]).all() and (by["predicted"] <= by["ci_upper"]).all()


# ------------------------------------------------------------------------------ CDNOW
@pytest.mark.data
@pytest.mark.slow
def test_cdnow_conditional_expectations(data_dir):
    """FHL (2005), Figure 4: holdout (weeks 40-78) transactions by calibration frequency."""
    sample = pd.read_csv(data_dir / "cdnow" / "CDNOW_sample.txt", sep=r"\s+", header=None,
                         names=["master", "id", "date", "cds", "value"])
    sample["date"] = pd.to_datetime(sample["date"].astype(str), format="%Y%m%d")
    summary = pd.read_csv(data_dir / "cdnow" / "cdnow_customers_summary.csv", index_col="ID")
    days = sample[["id", "date"]].drop_duplicates()
    end = pd.Timestamp("1997-09-30")
    # the published summary is the calibration window of this log (weeks = days / 7)
    cal = days[days["date"] <= end].groupby("id")["date"]
    assert (cal.nunique() - 1).reindex(summary.index).eq(summary["frequency"]).all()
    assert np.allclose(((end - cal.min()).dt.days / 7).reindex(summary.index), summary["T"],
                       atol=0.005)
    hold = days[days["date"] > end].groupby("id").size().reindex(summary.index, fill_value=0)
    table = summary.assign(holdout_activity=hold, active_in_holdout=hold > 0)
    model = BetaGeoModel().fit(summary, draws=500, tune=1000, chains=2, cores=1, random_seed=1)
    ev = score_holdout(table, model=model, horizon=39.0, max_draws=500, random_seed=0)
    by = ev.by_frequency
    # the published actual means, x = 0..7+: 0.24 0.70 1.39 1.56 2.53 2.95 3.86 6.36
    np.testing.assert_allclose(by["actual"], [0.24, 0.70, 1.39, 1.56, 2.53, 2.95, 3.86, 6.36],
                               atol=0.006)
    # predictions follow them: increasing in x, each within 30% (the BG/NBD under-predicts
    # x = 1, 2 on CDNOW, as in the paper's figure)
    assert np.all(np.diff(by["predicted"]) > 0)
    np.testing.assert_allclose(by["predicted"], by["actual"], rtol=0.3)
    assert ev.auc > 0.7


@pytest.mark.data
@pytest.mark.skipif(not (DATA / "lastfm-1k-events").is_dir(),
                    reason="../shared/data/lastfm-1k-events is absent")
def test_checks_flag_bgnbd_on_real_listening_with_pauses():
    """Last.fm 1K, calibration days 0-272, holdout the next 93 days: BG/NBD's lowest fifth of
    P(active) predicts about 0.15 where half the users listen again (silence was a pause). The
    check, which allows for the predictions' uncertainty, must call this a miscalibration."""
    import warnings

    from models.exceptions import ConvergenceWarning
    from models.metrics import calibration_check

    raw = pd.read_csv(DATA / "lastfm-1k-events" / "lastfm_jodie_prefix.csv", usecols=[0, 2],
                      header=0, names=["user_id", "seconds"])
    start = pd.Timestamp("2008-01-01")
    events = pd.DataFrame({"user_id": raw["user_id"],
                           "timestamp": start + pd.to_timedelta(raw["seconds"], unit="s")})
    split = calibration_holdout_split(events, calibration_end=start + pd.Timedelta(days=273),
                                      holdout_end=start + pd.Timedelta(days=366))
    assert len(split) == 187 and split.attrs["horizon"] == 93
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = BetaGeoModel().fit(split.drop(columns=["holdout_activity", "active_in_holdout"]),
                                   draws=300, tune=300, chains=2, cores=1, random_seed=1)
    draws = model.probability_active(horizon=93, return_draws=True)
    check = calibration_check(split["active_in_holdout"], draws, n_bins=5, random_seed=0)
    assert check.miscalibrated, check.table
    low = check.table.loc[0]
    assert low["mean_predicted"] < 0.25 and low["observed_rate"] > 0.4 and not low["inside"]
    # ... and the predictive check of the gaps says why: heavy listeners who fell silent for
    # a month and came back, far more of them than BG/NBD's population produces
    from models.churn import gap_check

    end = start + pd.Timedelta(days=273)
    gaps = gap_check(model, events[events["timestamp"] < end], observation_end=end,
                     random_seed=0)
    returns = gaps.table.iloc[-1]
    assert gaps.cannot_reproduce and returns["observed"] > returns["ci_upper"], gaps.table
    assert "come back" in gaps.message
