"""Checks before reading effects: sample ratio, variants, pre-assignment events, balance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.data import simulate_service
from models.exceptions import DataValidationError
from models.experiments.checks import (
    ExperimentChecks,
    SampleRatioResult,
    check_experiment,
    sample_ratio_test,
)

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")

T = pd.Timestamp


@pytest.fixture(autouse=True)
def synchronous_scheduler():
    with dask.config.set(scheduler="synchronous"):
        yield


# --------------------------------------------------------------------------- sample ratio


def test_sample_ratio_by_hand():
    result = sample_ratio_test(pd.Series({"control": 5000, "treatment": 5200}))
    assert isinstance(result, SampleRatioResult)
    statistic = (100**2 + 100**2) / 5100
    assert result.statistic == pytest.approx(statistic, rel=1e-12)
    # one degree of freedom: P(chi2_1 > x) = erfc(sqrt(x / 2))
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(statistic / 2)), rel=1e-10)
    assert result.p_value == pytest.approx(0.047670, abs=1e-6)
    assert result.ok
    assert result.observed.tolist() == [5000, 5200]
    assert result.expected.tolist() == [5100.0, 5100.0]
    assert result.message.startswith("Sample ratio OK")
    assert str(result) == result.message


def test_failing_sample_ratio_says_so_loudly():
    result = sample_ratio_test(pd.Series({"control": 5000, "treatment": 5600}))
    assert not result.ok
    assert result.p_value < 1e-8
    assert result.message.startswith("SAMPLE RATIO MISMATCH")
    assert "treatment 5600 (52.8%, expected 50.0%)" in result.message
    assert "Do not read the effects until the cause is found" in result.message


def test_designed_shares_and_threshold():
    counts = pd.Series({"a": 200, "b": 800})
    assert sample_ratio_test(counts, expected={"a": 1, "b": 4}).statistic == 0.0
    assert sample_ratio_test(counts, expected=pd.Series({"a": 0.2, "b": 0.8})).p_value == 1.0
    assert not sample_ratio_test(counts).ok
    # three variants, two degrees of freedom: P(chi2_2 > x) = exp(-x / 2)
    three = pd.Series({"a": 90, "b": 100, "c": 110})
    result = sample_ratio_test(three)
    assert result.statistic == pytest.approx(2.0)
    assert result.p_value == pytest.approx(math.exp(-1.0))
    assert not sample_ratio_test(three, threshold=0.5).ok


def test_expected_variant_without_users_fails():
    result = sample_ratio_test(pd.Series({"a": 500}), expected={"a": 0.5, "b": 0.5})
    assert result.observed.to_dict() == {"a": 500, "b": 0}
    assert not result.ok


def test_sample_ratio_from_an_assignment_table():
    table = pd.DataFrame(
        {"user_id": range(30), "variant": ["control"] * 10 + ["treatment"] * 20,
         "assigned_at": "2024-01-01"}
    )  # fmt: skip
    result = sample_ratio_test(table)
    assert result.observed.to_dict() == {"control": 10, "treatment": 20}
    assert result.statistic == pytest.approx(10 / 3)
    with pytest.raises(DataValidationError, match="one variant per user"):
        sample_ratio_test(pd.concat([table, table.iloc[[0]].assign(variant="treatment")]))


def test_sample_ratio_errors():
    with pytest.raises(
        ValueError, match=r"'assignments_or_counts' .* non-negative whole user counts"
    ):
        sample_ratio_test(pd.Series({"a": 10.5, "b": 3}))
    with pytest.raises(ValueError, match=r"non-negative whole user counts .* Got"):
        sample_ratio_test(pd.Series({"a": -1, "b": 3}))
    with pytest.raises(ValueError, match=r"non-negative whole user counts"):
        sample_ratio_test([10, 12])
    with pytest.raises(ValueError, match=r"at least two variants .* Got \{'a': 10\}"):
        sample_ratio_test(pd.Series({"a": 10}))
    with pytest.raises(ValueError, match=r"'expected' parameter .* every variant \['a', 'b'\]"):
        sample_ratio_test(pd.Series({"a": 10, "b": 12}), expected={"a": 1})
    with pytest.raises(ValueError, match=r"'expected' parameter .* positive share"):
        sample_ratio_test(pd.Series({"a": 10, "b": 12}), expected={"a": 1, "b": 0})
    with pytest.raises(
        ValueError, match=r"'threshold' parameter .* a number in \(0, 1\)\. Got 0"
    ):
        sample_ratio_test(pd.Series({"a": 10, "b": 12}), threshold=0)


# --------------------------------------------------------------------------- check_experiment


@pytest.fixture(scope="module")
def sim():
    return simulate_service(300, 60, random_seed=1)


@pytest.fixture(scope="module")
def random_assignments(sim):
    rng = np.random.default_rng(7)
    n = len(sim.users)
    offsets = pd.to_timedelta(rng.integers(0, 20 * 86_400, n), unit="s")
    return pd.DataFrame(
        {"user_id": sim.users["user_id"], "variant": rng.choice(["control", "treatment"], n),
         "assigned_at": T("2025-01-20") + offsets}
    )  # fmt: skip


def test_a_sound_experiment_passes(sim, random_assignments):
    checks = check_experiment(sim.events, random_assignments)
    assert isinstance(checks, ExperimentChecks)
    assert checks.ok, str(checks)
    assert list(checks.table.columns) == ["check", "variant", "value", "p_value", "ok", "message"]
    assert checks.table["check"].unique().tolist() == [
        "sample_ratio", "variants", "pre_assignment_events", "pre_period_balance"
    ]  # fmt: skip
    assert str(checks).startswith("Experiment checks: all passed.")
    assert checks.sample_ratio.observed.sum() == 300


def test_dask_gives_the_same_checks(sim, random_assignments):
    expected = check_experiment(sim.events, random_assignments)
    lazy = dd.from_pandas(sim.events, npartitions=4, sort=False)
    got = check_experiment(lazy, random_assignments)
    pd.testing.assert_frame_equal(got.table, expected.table)


def test_variant_without_users(sim, random_assignments):
    checks = check_experiment(
        sim.events, random_assignments, variants=["control", "treatment", "treatment_b"]
    )
    assert not checks.ok
    table = checks.table.set_index(["check", "variant"])
    assert not table.loc[("variants", "treatment_b"), "ok"]
    assert table.loc[("variants", "treatment_b"), "value"] == 0
    assert "'treatment_b' has no users" in table.loc[("variants", "treatment_b"), "message"]
    assert table.loc[("variants", "control"), "ok"]
    assert not checks.sample_ratio.ok  # 0 users where a third was expected
    text = str(checks)
    assert text.startswith("Experiment checks: 2 check(s) FAILED")
    lines = text.splitlines()
    assert "SAMPLE RATIO MISMATCH" in lines[1]
    assert lines[2].startswith("  - variants FAILED")
    assert checks.messages[0].startswith("SAMPLE RATIO MISMATCH")


def test_undeclared_variant(sim, random_assignments):
    table = random_assignments.assign(
        variant=np.where(random_assignments.index < 5, "oops", random_assignments["variant"])
    )
    checks = check_experiment(
        sim.events,
        table,
        variants=["control", "treatment"],
        expected={"control": 1, "treatment": 1, "oops": 0.02},
    )
    row = checks.table.set_index(["check", "variant"]).loc[("variants", "oops")]
    assert not row["ok"] and "not among the declared variants" in row["message"]


def hand_made(late_treatment: bool):
    """8 users; control assigned at the start, treatment 4 days later (or at the start)."""
    start = T("2024-01-01")
    later = start + pd.Timedelta(days=4) if late_treatment else start
    assignments = pd.DataFrame(
        {"user_id": range(1, 9), "variant": ["control"] * 4 + ["treatment"] * 4,
         "assigned_at": [start] * 4 + [later] * 4}
    )  # fmt: skip
    events = pd.DataFrame(
        {"user_id": [5, 6, 7, 1, 1, 2, 8],
         "timestamp": [T("2024-01-02")] * 3 + [T("2023-12-30"), T("2023-12-31"),
                                              T("2023-12-20"), T("2024-01-06 12:00")]}
    )  # fmt: skip
    return events, assignments


def test_events_before_assignment_by_hand():
    events, assignments = hand_made(late_treatment=True)
    checks = check_experiment(events, assignments, threshold=0.05)
    rows = checks.table[checks.table["check"] == "pre_assignment_events"].set_index("variant")
    # users 5, 6, 7 were active on 2 Jan, between the start and their assignment (5 Jan)
    assert rows["value"].to_dict() == {"control": 0.0, "treatment": 0.75}
    # Pearson chi-square of [[0, 4], [3, 1]]: expected 1.5 / 2.5 in each row
    statistic = 2 * (1.5**2 / 1.5 + 1.5**2 / 2.5)
    assert statistic == pytest.approx(4.8)
    p_value = math.erfc(math.sqrt(statistic / 2))
    assert rows["p_value"].tolist() == pytest.approx([p_value, p_value])
    assert not rows["ok"].any()
    assert "3 of 4 users of 'treatment' (75.0%)" in rows.loc["treatment", "message"]
    assert "logged late or differently" in rows.loc["treatment", "message"]
    assert not checks.ok
    same, assignments = hand_made(late_treatment=False)
    rows = check_experiment(same, assignments).table.query("check == 'pre_assignment_events'")
    assert rows["value"].tolist() == [0.0, 0.0] and rows["ok"].all()


def test_pre_period_balance_by_hand():
    events, assignments = hand_made(late_treatment=False)
    checks = check_experiment(events, assignments, pre_days=14)
    row = checks.table.set_index(["check", "variant"]).loc[("pre_period_balance", "treatment")]
    # events in the 14 days before 1 Jan: user 1 has 2, user 2 has 1; treatment none
    control = np.array([2.0, 1.0, 0.0, 0.0])
    treatment = np.zeros(4)
    smd = (treatment.mean() - control.mean()) / math.sqrt(
        (treatment.var(ddof=1) + control.var(ddof=1)) / 2
    )
    assert row["value"] == pytest.approx(smd)
    assert row["p_value"] == pytest.approx(
        stats.ttest_ind(treatment, control, equal_var=False).pvalue
    )
    short = check_experiment(events, assignments, pre_days=1)
    # only user 1's event of 31 Dec is in the last day
    assert short.table.set_index(["check", "variant"]).loc[
        ("pre_period_balance", "treatment"), "value"
    ] == pytest.approx(-0.25 / math.sqrt(0.25 / 2))


def test_rigged_assignment_is_caught(sim):
    when = T("2025-02-01")
    before = sim.events[(sim.events["timestamp"] >= when - pd.Timedelta(days=14))
                        & (sim.events["timestamp"] < when)]  # fmt: skip
    activity = before.groupby("user_id").size().reindex(sim.users["user_id"], fill_value=0)
    heavy = activity.rank(method="first") > len(activity) / 2
    table = pd.DataFrame(
        {"user_id": activity.index, "variant": np.where(heavy, "treatment", "control"),
         "assigned_at": when}
    )  # fmt: skip
    checks = check_experiment(sim.events, table)
    row = checks.table.set_index(["check", "variant"]).loc[("pre_period_balance", "treatment")]
    assert not row["ok"]
    assert row["value"] > 1 and row["p_value"] < 1e-6
    assert "the assignment is not random" in row["message"]
    assert checks.sample_ratio.ok  # the split itself is 150 / 150
    assert str(checks).splitlines()[1].startswith("  - pre_period_balance FAILED")


def test_check_experiment_errors(sim, random_assignments):
    events = sim.events
    with pytest.raises(
        ValueError, match=r"'control' parameter .* one of the variants \['a', 'b'\]"
    ):
        check_experiment(events, random_assignments.assign(variant=["a", "b"] * 150))
    with pytest.raises(ValueError, match=r"'pre_days' parameter .* positive integer\. Got 0"):
        check_experiment(events, random_assignments, pre_days=0)
    two = pd.concat([random_assignments.assign(experiment_id=e) for e in ("e1", "e2")])
    with pytest.raises(ValueError, match=r"must hold one experiment\. Got 2 experiments"):
        check_experiment(events, two)
    with pytest.raises(DataValidationError, match=r"ids of the same type in events"):
        check_experiment(events.assign(user_id=events["user_id"].astype(str)), random_assignments)
    with pytest.raises(DataValidationError, match="'timestamp': expected a column required"):
        check_experiment(events.drop(columns="timestamp"), random_assignments)
    checks = check_experiment(
        events, random_assignments.assign(variant=["a", "b"] * 150), control="b"
    )
    assert checks.table.query("check == 'pre_period_balance'")["variant"].tolist() == ["a"]
