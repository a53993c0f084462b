"""The ship / do not ship / keep running rule over success and guardrail metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy import special

from models.experiments.decision import VERDICTS, Decision, decide
from models.experiments.engine import analyze


def effects(rows, *, ci_prob=0.95):
    """An effect table from (metric, variant, lift, lift_sd, higher_is_better) rows."""
    records = []
    for metric, variant, lift, sd, up in rows:
        d = 1.0 if up else -1.0
        z = special.ndtri((1 + ci_prob) / 2)
        records.append({
            "metric": metric, "variant": variant, "lift": lift, "lift_sd": sd,
            "lift_ci_lower": lift - z * sd, "lift_ci_upper": lift + z * sd,
            "prob_better": special.ndtr(d * lift / sd),
            "expected_loss_ship": 0.01, "expected_loss_keep": 0.02,
            "method": "normal", "higher_is_better": up,
        })  # fmt: skip
    table = pd.DataFrame(records).set_index(["metric", "variant"])
    table.attrs["ci_prob"] = ci_prob
    return table


@dataclass
class Checks:
    ok: bool
    messages: tuple[str, ...]


def test_ship_when_success_better_and_guardrails_within_margin():
    table = effects([("plays", "b", 0.04, 0.01, True), ("skip_rate", "b", 0.005, 0.008, False)])
    decision = decide(table, success="plays", guardrails={"skip_rate": 0.02})
    assert isinstance(decision, Decision)
    assert (decision.verdict, decision.variant) == ("ship", "b")
    rows = decision.table
    assert rows.loc[("b", "plays"), "status"] == "better"
    assert rows.loc[("b", "skip_rate"), "status"] == "not worse"
    # lower is better: P(lift < margin)
    assert rows.loc[("b", "skip_rate"), "prob_noninferior"] == pytest.approx(
        special.ndtr((0.02 - 0.005) / 0.008))
    assert np.isnan(rows.loc[("b", "plays"), "prob_noninferior"])
    assert list(decision.expected_loss.index) == [("b", "plays"), ("b", "skip_rate")]
    assert str(decision).startswith("SHIP 'b'")
    assert "Expected loss of shipping" in str(decision)
    assert "<b>SHIP" in decision._repr_html_()


@pytest.mark.parametrize(
    ("rows", "verdict", "status"),
    [
        ([("plays", "b", 0.01, 0.01, True), ("skip_rate", "b", 0.0, 0.005, False)],
         "keep running", "inconclusive"),
        ([("plays", "b", -0.04, 0.01, True), ("skip_rate", "b", 0.0, 0.005, False)],
         "do not ship", "worse"),
        ([("plays", "b", 0.04, 0.01, True), ("skip_rate", "b", 0.05, 0.01, False)],
         "do not ship", "better"),
        ([("plays", "b", 0.04, 0.01, True), ("skip_rate", "b", 0.01, 0.01, False)],
         "keep running", "better"),
    ],
)
def test_verdicts(rows, verdict, status):
    decision = decide(effects(rows), success=["plays"], guardrails={"skip_rate": 0.02})
    assert decision.verdict == verdict
    assert decision.variant is None
    assert decision.table.loc[("b", "plays"), "status"] == status
    assert str(decision).upper().startswith(verdict.upper())
    # not shipping: the loss of keeping the control, for every variant and metric
    assert decision.expected_loss.tolist() == [0.02, 0.02]


def test_guardrail_breach_is_named():
    table = effects([("plays", "b", 0.04, 0.01, True), ("skip_rate", "b", 0.05, 0.01, False)])
    decision = decide(table, success="plays", guardrails={"skip_rate": 0.02})
    assert decision.table.loc[("b", "skip_rate"), "status"] == "worse"
    assert "skip_rate (guardrail 2.0%): worse than the margin" in str(decision)


def test_failed_checks_make_the_decision_invalid_first():
    table = effects([("plays", "b", 0.04, 0.01, True)])
    checks = Checks(False, ("Sample ratio mismatch: p = 1e-06.", "Variants: ok."))
    decision = decide(table, success="plays", checks=checks)
    assert decision.verdict == "invalid" and decision.variant is None
    assert str(decision).startswith("INVALID\n  The pre-analysis checks failed")
    assert decision.reasons[1] == "Sample ratio mismatch: p = 1e-06."
    assert decision.verdicts == {"b": "invalid"}  # no variant reads "ship" under it
    assert "(ship)" not in str(decision)
    assert decision.table.loc[("b", "plays"), "status"] == "better"  # still there to inspect
    assert decide(table, success="plays", checks=Checks(True, ())).verdict == "ship"


def test_invalid_decision_lists_only_the_failed_checks():
    from types import SimpleNamespace

    table = effects([("plays", "b", 0.04, 0.01, True)])
    checks = SimpleNamespace(ok=False, messages=["SRM failed", "balance fine"],
                             table=pd.DataFrame({"ok": [False, True],
                                                 "message": ["SRM failed", "balance fine"]}))
    decision = decide(table, success="plays", checks=checks)
    assert decision.reasons[1:] == ("SRM failed",)
    assert "balance fine" not in str(decision)


def test_several_variants():
    table = effects([("plays", "b", 0.03, 0.01, True), ("plays", "c", 0.05, 0.01, True),
                     ("plays", "d", -0.05, 0.01, True)])  # fmt: skip
    decision = decide(table, success="plays")
    assert decision.verdicts == {"b": "ship", "c": "ship", "d": "do not ship"}
    assert (decision.verdict, decision.variant) == ("ship", "c")
    assert "2 variants qualify" in decision.reasons[1]
    table = effects([("plays", "b", 0.0, 0.01, True), ("plays", "d", -0.05, 0.01, True)])
    assert decide(table, success="plays").verdict == "keep running"
    table = effects([("plays", "b", -0.04, 0.01, True), ("plays", "d", -0.05, 0.01, True)])
    assert decide(table, success="plays").verdict == "do not ship"


def test_one_credibly_better_success_metric_is_enough():
    table = effects([("plays", "b", 0.04, 0.01, True), ("minutes", "b", 0.0, 0.01, True)])
    assert decide(table, success=["plays", "minutes"]).verdict == "ship"
    assert decide(table, success=["minutes"]).verdict == "keep running"


def test_threshold():
    table = effects([("plays", "b", 0.02, 0.01, True)])  # P(better) = 0.977
    assert decide(table, success="plays").verdict == "ship"
    assert decide(table, success="plays", threshold=0.99).verdict == "keep running"


def test_zero_margin_guardrail_uses_prob_better():
    table = effects([("plays", "b", 0.04, 0.01, True), ("minutes", "b", 0.01, 0.004, True)])
    decision = decide(table, success="plays", guardrails={"minutes": 0.0})
    assert decision.table.loc[("b", "minutes"), "prob_noninferior"] == pytest.approx(
        table.loc[("minutes", "b"), "prob_better"])


def test_sequential_rows_read_the_interval():
    stats = pd.DataFrame({"metric": ["conv"] * 2 + ["skips"] * 2,
                          "variant": ["control", "treatment"] * 2, "kind": "binary",
                          "higher_is_better": [True, True, False, False], "n": 3000,
                          "sum_y": [900, 1100, 600, 604], "sum_yy": [900, 1100, 600, 604]})
    seq = analyze(stats, sequential=True, sequential_n=6000)
    decision = decide(seq, success="conv", guardrails={"skips": 0.2})
    rows = decision.table
    assert rows["prob_noninferior"].isna().all()
    assert rows.loc[("treatment", "conv"), "status"] == "better"
    assert rows.loc[("treatment", "skips"), "status"] == "not worse"
    assert "always-valid 95% interval" in rows.loc[("treatment", "conv"), "reason"]
    assert decision.verdict == "ship"
    tight = decide(seq, success="conv", guardrails={"skips": 0.01})
    assert tight.table.loc[("treatment", "skips"), "status"] == "inconclusive"


def test_with_the_engine_and_beta_binomial_rows():
    stats = pd.DataFrame({"metric": "conv", "variant": ["control", "treatment"],
                          "kind": "binary", "n": 5000, "sum_y": [1000, 1150],
                          "sum_yy": [1000, 1150]})  # fmt: skip
    table = analyze(stats)
    decision = decide(table, success="conv")
    assert decision.verdict == "ship"
    assert decision.table.loc[("treatment", "conv"), "prob_better"] == table.iloc[0][
        "prob_better"]  # fmt: skip
    assert decision.expected_loss.iloc[0] == table.iloc[0]["expected_loss_ship"]


def test_verdict_names():
    assert VERDICTS == ("invalid", "do not ship", "keep running", "ship")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"success": "minutes"}, r"metric\(s\) \['minutes'\] given to decide are not in"),
        ({"success": "plays", "guardrails": {"plays": 0.1}}, r"both success metrics and"),
        ({"success": "plays", "guardrails": {"skip_rate": -0.1}}, r"'guardrails\['skip_rate'\]'"),
        ({"success": "plays", "threshold": 0.5},
         r"'threshold' parameter of decide must be a number in \(0.5, 1\). Got 0.5 instead"),
        ({"success": "plays", "checks": object()}, r"'checks' parameter of decide must have"),
        ({"success": []}, r"'success' parameter of decide must name at least one"),
        ({"success": [1]}, r"'success' parameter of decide must be a metric name"),
    ],
)
def test_bad_arguments(kwargs, match):
    table = effects([("plays", "b", 0.04, 0.01, True), ("skip_rate", "b", 0.0, 0.01, False)])
    with pytest.raises(ValueError, match=match):
        decide(table, **kwargs)


def test_effects_must_be_an_effect_table():
    table = effects([("plays", "b", 0.04, 0.01, True)])
    with pytest.raises(ValueError, match=r"lacks the columns \['prob_better'\]"):
        decide(table.drop(columns="prob_better"), success="plays")
    with pytest.raises(ValueError, match=r"indexed by \('metric', 'variant'\)"):
        decide(table.reset_index(), success="plays")
