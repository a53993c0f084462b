"""The engine on sufficient statistics: published numbers, CUPED, the delta method, coverage.

Statistics tables are built here from per-user numpy arrays by ``stats_table``
(independent of ``sufficient_statistics``), so every number the engine reports
can be checked against the per-user computation it replaces.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from models.exceptions import DataValidationError
from models.experiments.engine import EFFECT_COLUMNS, analyze, summarize_arms

PAIRS = {
    "sum_yy": "yy", "sum_dd": "dd", "sum_xx": "xx", "sum_ww": "ww", "sum_yd": "yd",
    "sum_yx": "yx", "sum_yw": "yw", "sum_dx": "dx", "sum_dw": "dw", "sum_xw": "xw",
}  # fmt: skip


def stats_table(
    arms: Mapping[str, Mapping[str, np.ndarray]],
    *,
    kind: str = "continuous",
    higher_is_better: bool = True,
    metric: str | None = None,
) -> pd.DataFrame:
    """Statistics table from per-user arrays.

    ``arms`` maps a variant to ``{"y": ..., "d": ..., "x": ..., "w": ...}`` (``d``,
    ``w`` default to 1 and ``x`` to 0), each of shape ``(n,)`` or ``(reps, n)``;
    every replication becomes a metric named ``metric`` or ``"rep<i>"``.
    """
    frames = []
    for variant, arrays in arms.items():
        y = np.atleast_2d(np.asarray(arrays["y"], dtype=float))
        v = {
            "y": y,
            "d": np.broadcast_to(np.asarray(arrays.get("d", 1.0), dtype=float), y.shape),
            "x": np.broadcast_to(np.asarray(arrays.get("x", 0.0), dtype=float), y.shape),
            "w": np.broadcast_to(np.asarray(arrays.get("w", 1.0), dtype=float), y.shape),
        }
        reps = y.shape[0]
        names = [metric] * reps if metric is not None else [f"rep{i}" for i in range(reps)]
        cols = {"metric": names, "variant": variant, "kind": kind,
                "higher_is_better": higher_is_better, "n": y.shape[1]}  # fmt: skip
        for s in "ydxw":
            cols[f"sum_{s}"] = v[s].sum(axis=1)
        for col, (a, b) in PAIRS.items():
            cols[col] = (v[a] * v[b]).sum(axis=1)
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames).set_index(["metric", "variant"])


@pytest.fixture
def rng():
    return np.random.default_rng(20260515)


def binary_table(counts, *, names=("control", "treatment"), metric="m"):
    return pd.DataFrame({
        "metric": metric, "variant": list(names), "kind": "binary",
        "n": [n for _, n in counts], "sum_y": [s for s, _ in counts],
        "sum_yy": [s for s, _ in counts],
    }).set_index(["metric", "variant"])  # fmt: skip


# ------------------------------------------------------------------ published numbers
def test_beta_binomial_published_numbers():
    table = binary_table([(42, 104), (500, 1009)])
    effects = analyze(table, prior={"beta": (0.5, 0.5)})
    row = effects.iloc[0]
    assert row["method"] == "beta-binomial"
    assert round(row["prob_better"], 5) == 0.96291
    arms = summarize_arms(table, prior={"beta": (0.5, 0.5)})
    # the published 0.52636 is 0.526366 (the 97.5% quantile of Beta(500.5, 509.5))
    # cut after five decimals; the others are rounded: compare to within 1e-5
    control = arms.loc[("m", "control"), ["ci_lower", "ci_upper"]].to_numpy(float)
    treatment = arms.loc[("m", "treatment"), ["ci_lower", "ci_upper"]].to_numpy(float)
    np.testing.assert_allclose(control, [0.31324, 0.49972], atol=1e-5, rtol=0)
    np.testing.assert_allclose(treatment, [0.46474, 0.52636], atol=1e-5, rtol=0)


def test_rates_by_the_delta_method_published_numbers():
    effects = analyze(binary_table([(49, 100), (51, 100)]), binary_model="normal")
    row = effects.iloc[0]
    assert row["method"] == "normal"
    assert round(row["lift"], 5) == 0.04082
    assert round(row["lift_sd"], 5) == 0.14725
    assert round(row["prob_better"], 5) == 0.60918
    assert round(row["lift_ci_lower"], 5) == -0.24779
    assert round(row["lift_ci_upper"], 5) == 0.32943


def test_means_from_totals_published_numbers():
    table = pd.DataFrame({
        "metric": "m", "variant": ["control", "treatment"], "kind": "continuous",
        "n": 10, "sum_y": [100.0, 105.0], "sum_yy": [1002.25, 1111.5],
    })  # fmt: skip
    row = analyze(table).iloc[0]
    assert row["lift"] == pytest.approx(0.05, abs=1e-12)
    assert round(row["lift_sd"], 6) == 0.035716
    assert round(row["prob_better"], 5) == 0.91923
    assert row["effect"] == pytest.approx(0.5)
    assert row["effect_sd"] == pytest.approx(np.sqrt(0.25 / 10 + 1.0 / 10))


# ------------------------------------------------------------------ the normal engine
def test_effect_table_layout(rng):
    arms = {v: {"y": rng.normal(10, 2, 50), "x": rng.normal(10, 2, 50)}
            for v in ("control", "b", "a")}  # fmt: skip
    table = pd.concat([stats_table(arms, metric="plays"),
                       stats_table(arms, metric="minutes")])  # fmt: skip
    effects = analyze(table, ci_prob=0.9)
    assert tuple(effects.columns) == EFFECT_COLUMNS
    assert list(effects.index) == [("plays", "b"), ("plays", "a"), ("minutes", "b"),
                                   ("minutes", "a")]  # fmt: skip
    assert effects.index.names == ["metric", "variant"]
    assert effects.attrs["ci_prob"] == 0.9
    assert effects.attrs["control"] == "control"
    assert (effects["n_control"] == 50).all()
    assert effects["prob_rope"].isna().all()
    assert (effects["method"] == "normal-cuped").all()


def test_ratio_metric_matches_per_user_linearisation(rng):
    plays = {v: rng.poisson(8, 300) + 1 for v in ("control", "treatment")}
    skips = {v: rng.binomial(plays[v], 0.3 if v == "control" else 0.33) for v in plays}
    table = stats_table({v: {"y": skips[v], "d": plays[v]} for v in plays}, kind="ratio",
                        metric="skip_rate", higher_is_better=False)  # fmt: skip
    row = analyze(table).iloc[0]
    est = {}
    for v in plays:
        r = skips[v].sum() / plays[v].sum()
        lin = (skips[v] - r * plays[v]) / plays[v].mean()
        est[v] = (r, lin.var(ddof=1) / lin.size)
    (ra, va), (rb, vb) = est["control"], est["treatment"]
    assert row["mean_control"] == pytest.approx(ra, rel=1e-12)
    assert row["effect"] == pytest.approx(rb - ra, rel=1e-10)
    assert row["effect_sd"] == pytest.approx(np.sqrt(va + vb), rel=1e-8)
    assert row["lift_sd"] == pytest.approx(np.sqrt(vb / ra**2 + rb**2 * va / ra**4), rel=1e-8)
    # lower is better: a higher skip rate makes the treatment worse
    assert row["prob_better"] == pytest.approx(special.ndtr(-row["lift"] / row["lift_sd"]))
    assert row["prob_better"] < 0.5


def test_cuped_for_means_is_ordinary_cuped(rng):
    x = {v: rng.normal(5, 1, 400) for v in ("control", "treatment")}
    y = {v: 2 + 1.5 * x[v] + rng.normal(0, 1, 400) + (0.2 if v == "treatment" else 0.0)
         for v in x}  # fmt: skip
    row = analyze(stats_table({v: {"y": y[v], "x": x[v]} for v in x}, metric="m")).iloc[0]
    cx = np.concatenate([x[v] - x[v].mean() for v in x])
    cy = np.concatenate([y[v] - y[v].mean() for v in x])
    theta = (cx @ cy) / (cx @ cx)
    pooled = np.concatenate(list(x.values())).mean()
    adj = {v: y[v].mean() - theta * (x[v].mean() - pooled) for v in x}
    var = {v: np.var(y[v] - theta * x[v], ddof=1) / 400 for v in x}
    raw = {v: np.var(y[v], ddof=1) / 400 for v in x}
    assert row["method"] == "normal-cuped"
    assert row["theta"] == pytest.approx(theta, rel=1e-10)
    assert row["mean_control"] == pytest.approx(adj["control"], rel=1e-12)
    assert row["effect"] == pytest.approx(adj["treatment"] - adj["control"], rel=1e-9)
    assert row["effect_sd"] == pytest.approx(np.sqrt(var["control"] + var["treatment"]),
                                             rel=1e-9)  # fmt: skip
    reduction = 1 - (var["control"] + var["treatment"]) / (raw["control"] + raw["treatment"])
    assert row["variance_reduction"] == pytest.approx(reduction, rel=1e-9)
    assert row["note"] == ""


def test_cuped_for_ratios_uses_linearised_covariate(rng):
    arms = {}
    for v in ("control", "treatment"):
        rate = rng.gamma(2.0, 3.0, 500)
        q = special.expit(rng.normal(-1, 0.6, 500))
        d, w = rng.poisson(rate) + 1, rng.poisson(rate) + 1
        arms[v] = {"y": rng.binomial(d, q), "d": d, "x": rng.binomial(w, q), "w": w}
    row = analyze(stats_table(arms, kind="ratio", metric="skip_rate")).iloc[0]
    lin = {}
    for v, a in arms.items():
        r, rx = a["y"].sum() / a["d"].sum(), a["x"].sum() / a["w"].sum()
        lin[v] = ((a["y"] - r * a["d"]) / a["d"].mean(), (a["x"] - rx * a["w"]) / a["w"].mean(),
                  r, rx)  # fmt: skip
    ly = np.concatenate([lin[v][0] for v in arms])
    lx = np.concatenate([lin[v][1] for v in arms])
    theta = (ly @ lx) / (lx @ lx)
    rx_pool = sum(a["x"].sum() for a in arms.values()) / sum(a["w"].sum() for a in arms.values())
    adj = {v: lin[v][2] - theta * (lin[v][3] - rx_pool) for v in arms}
    var = {v: np.var(lin[v][0] - theta * lin[v][1], ddof=1) / 500 for v in arms}
    assert row["theta"] == pytest.approx(theta, rel=1e-9)
    assert row["effect"] == pytest.approx(adj["treatment"] - adj["control"], rel=1e-9)
    assert row["effect_sd"] == pytest.approx(np.sqrt(sum(var.values())), rel=1e-9)
    assert row["variance_reduction"] > 0.1


def test_binary_with_covariate_uses_normal_cuped(rng):
    x = {v: rng.binomial(1, 0.4, 2000) for v in ("control", "treatment")}
    y = {v: np.where(rng.random(2000) < 0.7, x[v], rng.binomial(1, 0.4, 2000)) for v in x}
    table = stats_table({v: {"y": y[v], "x": x[v]} for v in x}, kind="binary", metric="ret")
    row = analyze(table).iloc[0]
    assert row["method"] == "normal-cuped"
    assert row["variance_reduction"] > 0.3
    assert analyze(table, cuped=False).iloc[0]["method"] == "beta-binomial"
    # binary variance uses ddof=0: p(1-p)/n per arm without the covariate
    plain = analyze(table, cuped=False, binary_model="normal").iloc[0]
    p = {v: y[v].mean() for v in y}
    assert plain["effect_sd"] == pytest.approx(
        np.sqrt(sum(q * (1 - q) / 2000 for q in p.values())), rel=1e-10)


def test_constant_or_absent_covariate_turns_cuped_off(rng):
    y = {v: rng.normal(3, 1, 100) for v in ("control", "treatment")}
    with_const = stats_table({v: {"y": y[v], "x": np.full(100, 7.0)} for v in y}, metric="m")
    no_pre = stats_table({v: {"y": y[v]} for v in y}, metric="m")  # x = 0: no pre-period
    bare = no_pre.drop(columns=[c for c in no_pre.columns if "x" in c or "w" in c])
    rows = [analyze(t).iloc[0] for t in (with_const, no_pre, bare)]
    for row in rows:
        assert row["method"] == "normal"
        assert row["theta"] == 0 and row["variance_reduction"] == 0
        assert row["effect"] == pytest.approx(rows[0]["effect"], rel=1e-12)
        assert row["effect_sd"] == pytest.approx(rows[0]["effect_sd"], rel=1e-12)
    assert "covariate constant" in rows[0]["note"]
    assert "covariate constant" in rows[1]["note"]
    assert rows[2]["note"] == ""  # no covariate columns at all: nothing to say


def test_higher_is_better_flips_probability_and_losses(rng):
    arms = {v: {"y": rng.normal(10 + (v == "treatment"), 3, 80)} for v in ("control", "treatment")}
    up = analyze(stats_table(arms, metric="m")).iloc[0]
    down = analyze(stats_table(arms, metric="m", higher_is_better=False)).iloc[0]
    assert down["prob_better"] == pytest.approx(1 - up["prob_better"], abs=1e-12)
    assert down["expected_loss_ship"] == pytest.approx(up["expected_loss_keep"])
    assert down["expected_loss_keep"] == pytest.approx(up["expected_loss_ship"])
    assert bool(down["higher_is_better"]) is False


def test_normal_expected_loss_by_integration():
    table = pd.DataFrame({"metric": "m", "variant": ["control", "treatment"],
                          "kind": "continuous", "n": 50, "sum_y": [500.0, 520.0],
                          "sum_yy": [5500.0, 5800.0]})  # fmt: skip
    row = analyze(table).iloc[0]
    dist = stats.norm(row["effect"], row["effect_sd"])
    ship = dist.expect(lambda e: max(-e, 0.0))
    keep = dist.expect(lambda e: max(e, 0.0))
    assert row["expected_loss_ship"] == pytest.approx(ship, rel=1e-6)
    assert row["expected_loss_keep"] == pytest.approx(keep, rel=1e-6)
    assert row["expected_loss_keep"] - row["expected_loss_ship"] == pytest.approx(row["effect"])


def test_normal_prior_is_a_conjugate_update():
    table = binary_table([(490, 1000), (520, 1000)])
    flat = analyze(table, binary_model="normal").iloc[0]
    post = analyze(table, binary_model="normal", prior={"lift": (0.0, 0.02)}).iloc[0]
    prec = 1 / flat["lift_sd"] ** 2 + 1 / 0.02**2
    assert post["lift_sd"] == pytest.approx(prec**-0.5, rel=1e-12)
    assert post["lift"] == pytest.approx(flat["lift"] / flat["lift_sd"] ** 2 / prec, rel=1e-12)
    assert abs(post["lift"]) < abs(flat["lift"])
    assert post["prob_better"] == pytest.approx(special.ndtr(post["lift"] / post["lift_sd"]))
    # the same prior on the absolute scale, carried through the control mean
    absolute = analyze(table, binary_model="normal", prior={"effect": (0.0, 0.02 * 0.49)})
    assert absolute.iloc[0]["effect"] == pytest.approx(post["effect"], rel=1e-12)
    # a Beta prior does not touch the normal model
    same = analyze(table, binary_model="normal", prior={"beta": (5, 5)}).iloc[0]
    assert same["lift"] == flat["lift"]


def test_rope_probability_normal_and_beta():
    table = binary_table([(4900, 10000), (4950, 10000)])
    row = analyze(table, binary_model="normal", rope=0.02).iloc[0]
    expect = (special.ndtr((0.02 - row["lift"]) / row["lift_sd"])
              - special.ndtr((-0.02 - row["lift"]) / row["lift_sd"]))  # fmt: skip
    assert row["prob_rope"] == pytest.approx(expect, rel=1e-12)
    beta = analyze(table, rope={"m": 0.02}).iloc[0]
    assert beta["prob_rope"] == pytest.approx(row["prob_rope"], abs=5e-3)
    assert np.isnan(analyze(table).iloc[0]["prob_rope"])


def test_segments_are_analysed_as_separate_metrics(rng):
    parts = []
    for country in ("se", "us"):
        arms = {v: {"y": rng.normal(5, 1, 40)} for v in ("control", "treatment")}
        part = stats_table(arms, metric="plays").reset_index()
        part["country"] = country
        parts.append(part)
    table = pd.concat(parts).set_index(["metric", "variant", "country"])
    effects = analyze(table)
    assert effects.index.names == ["metric", "variant", "country"]  # the input's order
    assert list(effects.index) == [("plays", "treatment", "se"), ("plays", "treatment", "us")]
    one = analyze(table.xs("us", level="country")).iloc[0]
    assert effects.iloc[1]["effect"] == pytest.approx(one["effect"], rel=1e-12)
    with pytest.raises(DataValidationError, match=r"'n'.*'plays/se', 'control'"):
        analyze(table.assign(n=[1] + [40] * 3))


def test_columns_instead_of_index_and_missing_higher_is_better():
    table = binary_table([(30, 100), (40, 100)]).reset_index()
    effects = analyze(table)
    assert effects.index.names == ["metric", "variant"]
    assert bool(effects.iloc[0]["higher_is_better"]) is True


def test_zero_control_mean_and_zero_variance_are_notes():
    table = pd.DataFrame({"metric": "m", "variant": ["control", "treatment"],
                          "kind": "continuous", "n": 10, "sum_y": [0.0, 5.0],
                          "sum_yy": [0.0, 5.0]})  # fmt: skip
    row = analyze(table).iloc[0]
    assert np.isnan(row["lift"]) and "lift is undefined" in row["note"]
    assert row["prob_better"] == pytest.approx(special.ndtr(row["effect"] / row["effect_sd"]))
    flat = table.assign(sum_y=[10.0, 20.0], sum_yy=[10.0, 40.0])  # 1s and 2s: no variance
    row = analyze(flat).iloc[0]
    assert row["effect_sd"] == 0 and "no variance" in row["note"]
    assert row["expected_loss_ship"] == 0 and row["expected_loss_keep"] == pytest.approx(1.0)


def test_summarize_arms_normal_arms(rng):
    arms = {v: {"y": rng.normal(2, 1, 30)} for v in ("control", "treatment")}
    out = summarize_arms(stats_table(arms, metric="m"), ci_prob=0.9)
    y = arms["treatment"]["y"]
    row = out.loc[("m", "treatment")]
    assert row["mean"] == pytest.approx(y.mean())
    assert row["sd"] == pytest.approx(y.std(ddof=1) / np.sqrt(30))
    assert row["ci_upper"] == pytest.approx(y.mean() + stats.norm.ppf(0.95) * row["sd"])
    assert list(out.columns) == ["kind", "n", "mean", "sd", "ci_lower", "ci_upper", "method"]


def test_thousands_of_rows_in_one_call(rng):
    arms = {v: {"y": rng.normal(1, 1, (1500, 20)), "x": rng.normal(1, 1, (1500, 20))}
            for v in ("control", "b", "c")}  # fmt: skip
    effects = analyze(stats_table(arms))
    assert len(effects) == 3000
    assert effects[["effect", "effect_sd", "prob_better"]].notna().all().all()


# ----------------------------------------------------------------------- validation
def _continuous():
    return pd.DataFrame({"metric": "m", "variant": ["control", "treatment"],
                         "kind": "continuous", "n": [10, 12], "sum_y": [10.0, 14.0],
                         "sum_yy": [20.0, 30.0]}).set_index(["metric", "variant"])  # fmt: skip


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.drop(columns="sum_yy"), r"columns \['sum_yy'\]"),
        (lambda t: t.assign(kind="ratio"), r"columns \['sum_d', 'sum_dd', 'sum_yd'\]"),
        (lambda t: t.assign(sum_x=1.0), r"columns \['sum_xx', 'sum_yx'\]"),
        (lambda t: t.assign(sum_y=[10.0, np.nan]), r"'sum_y': expected finite.*'treatment'"),
        (lambda t: t.assign(n=[1, 12]), r"'n': expected an integer of at least 2.*'control'"),
        (lambda t: t.assign(n=[-3, 12]), r"'n': expected an integer of at least 2"),
        (lambda t: t.assign(n=[10.5, 12]), r"'n': expected an integer"),
        (lambda t: t.assign(kind=["continuous", "count"]), r"'kind': expected one of"),
        (lambda t: t.assign(kind=["continuous", "ratio"], sum_d=[10.0, 12.0], sum_dd=[10.0,
                                                                                  12.0],
                            sum_yd=[10.0, 14.0]), r"same value in every arm"),  # fmt: skip
        (lambda t: t.assign(sum_yy=[-1.0, 30.0]), r"non-negative sum of squares"),
        (lambda t: t.assign(sum_yy=[5.0, 30.0]), r"at least sum_y\*\*2 / n"),
        (lambda t: t.assign(sum_d=[10.0, 13.0]), r"'sum_d': expected equal to n"),
        (lambda t: t.rename(index={"control": "c"}), r"control variant 'control'.*'c'"),
        (lambda t: t.drop(index=("m", "treatment")), r"at least one treatment"),
        (lambda t: pd.concat([t, t.iloc[[1]]]), r"one row per \(metric, variant\)"),
        (lambda t: t.reset_index(drop=True), r"index \(or columns\) named 'metric'"),
    ],
)
def test_bad_tables_are_named(change, match):
    with pytest.raises(DataValidationError, match=match):
        analyze(change(_continuous()))


def test_variant_missing_for_one_metric():
    table = pd.concat([_continuous(), _continuous().rename(index={"m": "k"})])
    table = table.drop(index=("k", "treatment"))
    with pytest.raises(DataValidationError, match=r"1 \(metric, variant\).*\('k', 'treatment'\)"):
        analyze(table)


def test_binary_and_ratio_rules():
    with pytest.raises(DataValidationError, match=r"between 0 and n.*'treatment', 120"):
        analyze(binary_table([(30, 100), (120, 100)]))
    bad = binary_table([(30, 100), (40, 100)]).assign(sum_yy=[30, 41])
    with pytest.raises(DataValidationError, match=r"equal to sum_y for a binary metric"):
        analyze(bad)
    ratio = pd.DataFrame({"metric": "skip_rate", "variant": ["control", "treatment"],
                          "kind": "ratio", "n": 10, "sum_y": [0.0, 3.0], "sum_yy": [0.0, 3.0],
                          "sum_d": [0.0, 10.0], "sum_dd": [0.0, 12.0], "sum_yd": [0.0, 4.0]})
    with pytest.raises(DataValidationError,
                       match=r"'sum_d': expected a positive sum of the denominator.*"
                             r"'skip_rate', 'control'.*Fix: the denominator is zero"):
        analyze(ratio)  # fmt: skip


def test_every_problem_is_reported_at_once():
    bad = _continuous().assign(n=[1, 12], sum_yy=[-1.0, np.nan])
    with pytest.raises(DataValidationError) as err:
        analyze(bad)
    assert len(err.value.problems) == 3


def test_stats_must_be_a_frame():
    with pytest.raises(TypeError, match="The 'stats' parameter of analyze must be a pandas"):
        analyze({"n": 3})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ci_prob": 1.5}, r"'ci_prob' parameter of analyze must be a number in \(0, 1\). Got 1.5"),
        ({"binary_model": "exact"}, r"'binary_model' parameter of analyze must be one of"),
        ({"prior": {"gamma": (1, 1)}}, r"unknown key\(s\) \['gamma'\]"),
        ({"prior": {"beta": (0, 1)}}, r"'beta' as two positive numbers"),
        ({"prior": {"lift": (0, -1)}}, r"'lift' as \(mean, sd\) with sd > 0"),
        ({"prior": {"lift": (0, 1), "effect": (0, 1)}}, r"not both"),
        ({"prior": (1, 1)}, r"'prior' parameter of analyze must be a mapping"),
        ({"rope": -0.1}, r"'rope' parameter of analyze must be a finite number >= 0"),
        ({"rope": {"plays": 0.1}}, r"unknown metric\(s\) \['plays'\]"),
        ({"sequential": True}, r"'sequential_n' parameter of analyze must be a positive"),
        ({"sequential": True, "sequential_n": 0}, r"'sequential_n' parameter of analyze must"),
        ({"sequential_n": 100}, r"used only with sequential=True"),
        ({"sequential": True, "sequential_n": 100, "prior": {"lift": (0, 1)}}, r"prior-free"),
        ({"cuped": "yes"}, r"'cuped' parameter of analyze must be True or False"),
        ({"control": 1}, r"'control' parameter of analyze must be a variant name"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        analyze(_continuous(), **kwargs)


def test_summarize_arms_takes_only_a_beta_prior():
    with pytest.raises(ValueError, match=r"takes only a 'beta' prior"):
        summarize_arms(_continuous(), prior={"lift": (0, 1)})


# ----------------------------------------------------------------------- statistics
def _arrays(dist, rng, reps, n, rho, lift, covariate):
    """Per-user arrays of control and treatment, and the true effect and lift."""
    out = {}
    for arm in ("control", "treatment"):
        scale = 1 + lift if arm == "treatment" else 1.0
        u = rng.standard_normal((reps, n))
        z = rho * u + np.sqrt(1 - rho**2) * rng.standard_normal((reps, n))
        if dist == "normal":
            y, x, truth = 10 * scale + 3 * z, 10 + 3 * u, 10.0
        elif dist == "lognormal":
            y, x, truth = scale * np.exp(0.5 + 0.8 * z), np.exp(0.5 + 0.8 * u), np.exp(0.82)
        elif dist == "bernoulli":
            p = 0.3
            y = (special.ndtr(z) < p * scale).astype(float)
            x, truth = (special.ndtr(u) < p).astype(float), p
        else:  # ratio of Poisson counts: skips of plays, per-user skip propensity
            q = special.expit(-1.2 + 0.8 * z)
            rate = np.exp(1.2 + 0.5 * rng.standard_normal((reps, n)))
            d = rng.poisson(rate)
            y = rng.binomial(d, np.minimum(q * scale, 1.0)).astype(float)
            w = rng.poisson(rate)
            x = rng.binomial(w, special.expit(-1.2 + 0.8 * u)).astype(float)
            nodes, weights = np.polynomial.hermite_e.hermegauss(80)
            truth = float(special.expit(-1.2 + 0.8 * nodes) @ weights / np.sqrt(2 * np.pi))
            out[arm] = {"y": y, "d": d.astype(float)}
            if covariate:
                out[arm].update(x=x, w=w.astype(float))
            continue
        out[arm] = {"y": y, "x": x} if covariate else {"y": y}
    return out, truth * lift, lift


@pytest.mark.slow
@pytest.mark.parametrize("dist", ["normal", "lognormal", "bernoulli", "ratio"])
@pytest.mark.parametrize("covariate", [False, True])
def test_coverage_of_effect_and_lift(dist, covariate, rng):
    kind = {"bernoulli": "binary", "ratio": "ratio"}.get(dist, "continuous")
    for lift in (0.0, 0.05):  # A/A and A/B
        arms, true_effect, true_lift = _arrays(dist, rng, 2000, 400, 0.6, lift, covariate)
        effects = analyze(stats_table(arms, kind=kind))
        expected = "normal-cuped" if covariate else (
            "beta-binomial" if kind == "binary" else "normal")  # fmt: skip
        assert (effects["method"] == expected).all()
        for scale, truth in (("effect", true_effect), ("lift", true_lift)):
            inside = ((effects[f"{scale}_ci_lower"] <= truth)
                      & (truth <= effects[f"{scale}_ci_upper"])).mean()  # fmt: skip
            assert 0.93 <= inside <= 0.97, (dist, covariate, lift, scale, inside)


@pytest.mark.slow
@pytest.mark.parametrize("rho", [0.3, 0.7])
def test_cuped_reduces_variance_by_rho_squared(rho, rng):
    arms, _, _ = _arrays("normal", rng, 1000, 500, rho, 0.0, covariate=True)
    table = stats_table(arms)
    adjusted, raw = analyze(table), analyze(table, cuped=False)
    assert adjusted["variance_reduction"].mean() == pytest.approx(rho**2, abs=0.01)
    # the spread of the estimates across experiments shrinks by 1 - rho^2 too
    ratio = adjusted["effect"].var() / raw["effect"].var()
    assert ratio == pytest.approx(1 - rho**2, abs=0.06)
    # and the reported sd matches that spread
    assert adjusted["effect_sd"].mean() ** 2 == pytest.approx(adjusted["effect"].var(), rel=0.1)
