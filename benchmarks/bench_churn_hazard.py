"""Out-of-time validation of churn predictions: ChurnHazardModel vs lifelines (KM, Cox PH).

Run from the repository root::

    python benchmarks/bench_churn_hazard.py            # 5,000 users x 365 days
    python benchmarks/bench_churn_hazard.py --returns first_gap   # the other label rule
    python benchmarks/bench_churn_hazard.py --quick    # 1,000 users, short chains

(almost all of the time is NUTS)

lifelines pins ``pandas<3``, so it is not a dependency of the project: it runs as a
subprocess in its own virtual environment, a Python with ``lifelines`` and ``pyarrow``
installed, given as ``--lifelines-python`` or the ``LIFELINES_PYTHON`` environment
variable (make one with ``python3.12 -m venv VENV && VENV/bin/pip install lifelines
pyarrow``).
The data go to it as Parquet files in a temporary folder.

**Split.** A simulated service (``simulate_service``, seeded) is cut at
``cutoff = observation_end - holdout`` (default 90 days). Everything is fitted on
the calibration log (events before the cutoff): the person-period table is
``build_hazard_table(calibration log, period="W", inactivity="30D",
observation_end=cutoff)``, so it holds only weeks whose churn status is known at the
cutoff (a week is kept once ``inactivity`` has passed after it).

**Who is predicted.** Every user of that table with no churn event in it: the user
is at risk at the start of week ``t0 = last row + 1``, the first week whose outcome
the cutoff cannot yet tell. The prediction row for week ``t0`` (its covariates are
the engagement of week ``t0 - 1`` and the days since the last play before ``t0``)
is built from the calibration log alone; it is *not* the model's default (the last
training row, week ``t0 - 1``, which the user is already known to have survived).

**Outcome.** Churn in weeks ``t0 .. t0 + k - 1`` with ``k = holdout // 7`` (12),
read from ``build_hazard_table`` of the *full* log with the same rule (the stop as
``churn_labels`` dates it on the full log). Week ``t0`` starts between
``inactivity`` + 1 week and ``inactivity`` before the cutoff, so week ``t0 + k - 1``
ends at least ``inactivity`` before the end of the log: every user's outcome over the whole window
is known, nobody is censored inside it and nobody is dropped. (Scoring "stop in
``[cutoff, end)``" instead would need to drop the users active in the last
``inactivity`` days of the log, which drops only non-churners and biases the score.)
The script asserts this, that the outcome agrees with ``churn_labels`` on the full
log, and that the week-``t0`` covariates are the same on both logs.

**Label rule** (``--returns``). ``"ignore"`` (the default, as the project's churn
analysis builds its table): only the silence after a user's *last* event is churn, so
a calibration week counted as churn can stop being churn when the user comes back
in the holdout. Those reversals pile up in the last calibration weeks, which then
show a higher hazard than they will once the holdout is seen (the script prints
both). ``"first_gap"``: churn at the first silence of ``inactivity``; a week's label
is then final ``inactivity`` after the week ends, the same on both logs.

**Baselines** (lifelines, fitted on the same calibration data, predicting the same
conditional probability for the same users):

- Kaplan-Meier on per-user durations in weeks (``last row + 1``, churned or
  censored at the cutoff): ``P = 1 - S(t0 + k) / S(t0)``;
- Cox PH (``CoxPHFitter``) on the same durations with *baseline* covariates known
  at the end of week 0 (week-0 plays, skip rate, artists, days since the last play
  at the start of week 1, plus plan and country dummies), fitted on the users who
  survived week 0 (the week-0 engagement is measured while the user is at risk, so
  week-0 churners would leak their outcome into it);
- Cox time-varying (``CoxTimeVaryingFitter``) on the person-period table itself
  (rows ``[tenure, tenure + 1)``) with the same engagement covariates as the
  Bayesian model plus plan/country dummies, predicting with the week-``t0``
  covariates held fixed, as the Bayesian model does.

Cox on user-level durations with covariates measured at the *end* of the window is
the known pitfall (a user's last-week engagement depends on whether they churned),
so it is not used.

**Tails.** Half the simulated users sign up on day one, so their window lies beyond
the longest tenure seen in calibration. The Bayesian model holds its baseline at its
last fitted value there. lifelines' curves are flat past the last observed time (zero
hazard, so ``P = 0``); the ``tail`` rows extend each lifelines cumulative hazard
linearly at the mean hazard of its last ``--tail-periods`` (4) weeks, the ``flat``
rows are lifelines as it comes.

**Scores** on the same users and outcome: AUC, Brier score (and the Brier score of
the observed base rate), mean predicted vs observed churn rate, calibration tables
(``models.churn.validation``) and wall times. Markdown tables close the output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from models.churn import (
    ChurnHazardModel,
    brier_score,
    build_hazard_table,
    calibration_table,
    churn_labels,
    roc_auc,
)
from models.data import simulate_service

COVARIATES = ["log_plays_prev", "skip_rate_prev", "log_artists_prev", "days_since_last_play"]
GROUPS = ["country", "plan"]
PERIOD = pd.Timedelta(days=7)

LIFELINES_SCRIPT = r"""
import json, sys, time, warnings
import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, CoxTimeVaryingFitter, KaplanMeierFitter

warnings.simplefilter("ignore")
folder, k, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
train = pd.read_parquet(f"{folder}/train.parquet")    # person-period rows
pred = pd.read_parquet(f"{folder}/predict.parquet")   # one row per user at risk
meta = json.loads(open(f"{folder}/meta.json").read())
tv_cols, base_cols = meta["tv_cols"], meta["base_cols"]
t0 = pred["t0"].to_numpy()
t_end = int(t0.max()) + k


def on_grid(cum, last):
    # Step function at integer times 0..t_end; returns (flat, tail) arrays.
    grid = np.arange(t_end + 1)
    times = cum.index.to_numpy(dtype=float)
    values = cum.to_numpy(dtype=float)
    pos = np.searchsorted(times, grid, side="right") - 1
    flat = np.where(pos >= 0, values[np.maximum(pos, 0)], 0.0)
    slope = (flat[last] - flat[last - m]) / m
    tail = flat.copy()
    tail[last + 1:] = flat[last] + slope * (grid[last + 1:] - last)
    return flat, tail, slope


def window(cum, risk):
    return -np.expm1(-(cum[t0 + k] - cum[t0]) * risk)


out, info = {"user_id": pred["user_id"].to_numpy()}, {}
users = train.groupby("user_id").agg(last=("tenure", "max"), event=("event", "max"))
dur, ev = users["last"].to_numpy() + 1, users["event"].to_numpy()
last = int(dur.max())

# Kaplan-Meier on user durations (weeks at risk), churned or censored at the cutoff.
start = time.perf_counter()
km = KaplanMeierFitter().fit(dur, ev)
H = -np.log(km.survival_function_.iloc[:, 0].clip(lower=1e-300))
flat, tail, slope = on_grid(H, last)
out["km_flat"], out["km_tail"] = window(flat, 1.0), window(tail, 1.0)
info["km"] = {"wall": time.perf_counter() - start, "tail_hazard": float(-np.expm1(-slope))}

# Cox PH on the same durations, baseline (week-0) covariates, users who survived week 0.
start = time.perf_counter()
base = pd.read_parquet(f"{folder}/baseline.parquet").set_index("user_id")
data = base.join(users).dropna()
data = data[data["last"] >= 1]
frame = data[base_cols].assign(duration=data["last"] + 1, event=data["event"])
cph = CoxPHFitter().fit(frame, "duration", "event")
H = cph.baseline_cumulative_hazard_.iloc[:, 0]
flat, tail, slope = on_grid(H, last)
risk = cph.predict_partial_hazard(pred[[f"base_{c}" for c in base_cols]].set_axis(
    base_cols, axis=1)).to_numpy()
out["cox_flat"], out["cox_tail"] = window(flat, risk), window(tail, risk)
info["cox"] = {"wall": time.perf_counter() - start, "n": len(frame),
               "concordance": float(cph.concordance_index_),
               "coef": {c: round(float(v), 4) for c, v in cph.params_.items()}}

# Cox time-varying on the person-period table, predicting with the week-t0 covariates.
start = time.perf_counter()
tv = train[["user_id", "tenure", "event", *tv_cols]].assign(
    start=train["tenure"], stop=train["tenure"] + 1).drop(columns="tenure")
ctv = CoxTimeVaryingFitter().fit(tv, event_col="event", id_col="user_id",
                                 start_col="start", stop_col="stop")
H = ctv.baseline_cumulative_hazard_.iloc[:, 0]
flat, tail, slope = on_grid(H, last)
risk = ctv.predict_partial_hazard(pred[tv_cols]).to_numpy()
out["ctv_flat"], out["ctv_tail"] = window(flat, risk), window(tail, risk)
info["ctv"] = {"wall": time.perf_counter() - start, "n": len(tv),
               "coef": {c: round(float(v), 4) for c, v in ctv.params_.items()}}

pd.DataFrame(out).to_parquet(f"{folder}/lifelines_predictions.parquet")
print(json.dumps(info))
"""


def simulate(n_users: int, days: int, holdout_days: int, seed: int):
    sim = simulate_service(n_users, days, random_seed=seed)
    end = pd.Timestamp(sim.truth.observation_end)
    cutoff = end - pd.Timedelta(days=holdout_days)
    return sim.events, sim.users, end, cutoff


def prediction_rows(cal: pd.DataFrame, users: pd.DataFrame, train: pd.DataFrame,
                    cutoff: pd.Timestamp, inactivity: pd.Timedelta, returns: str) -> pd.DataFrame:
    """Row of week ``t0 = last training row + 1`` for each user at risk, from the calibration log.

    A later ``observation_end`` only lets ``build_hazard_table`` emit week ``t0``;
    its covariates use events before the start of week ``t0`` (<= cutoff - inactivity),
    and only the covariates are used, never its ``event`` column.
    """
    per_user = train.groupby("user_id").agg(last=("tenure", "max"), churned=("event", "max"))
    at_risk = per_user[per_user["churned"] == 0]
    wide = build_hazard_table(cal, users, period="W", inactivity=inactivity, returns=returns,
                              observation_end=cutoff + PERIOD + inactivity)
    wanted = pd.DataFrame({"user_id": at_risk.index.to_numpy(),
                           "tenure": (at_risk["last"] + 1).to_numpy()})
    rows = wanted.merge(wide, on=["user_id", "tenure"], how="left", validate="1:1")
    if rows[COVARIATES].isna().any().any():
        raise RuntimeError("a user at risk has no calibration row for week t0")
    return rows.drop(columns=["event"])


def outcomes(events: pd.DataFrame, users: pd.DataFrame, rows: pd.DataFrame, end: pd.Timestamp,
             inactivity: pd.Timedelta, k: int, returns: str) -> pd.Series:
    """Churn in weeks t0 .. t0+k-1 on the full log; checks it is never censored."""
    full = build_hazard_table(events, users, period="W", inactivity=inactivity, returns=returns,
                              observation_end=end)
    t0 = rows.set_index("user_id")["tenure"]
    f = full[full["user_id"].isin(t0.index)]
    rel = f["tenure"] - f["user_id"].map(t0)
    churn = f[(rel >= 0) & (rel < k)].groupby("user_id")["event"].max()
    churn = churn.reindex(t0.index, fill_value=0).astype(bool)
    # (a) no censoring inside the window: a non-churner has a full-log row for week t0+k-1
    reach = f.groupby("user_id")["tenure"].max().reindex(t0.index)
    censored = ~churn & ~(reach >= t0 + k - 1)
    if censored.any():
        raise RuntimeError(f"{int(censored.sum())} users are censored inside the window")
    # (b) no churn dated before t0 on the full log (returns="ignore" only moves stops later)
    if (f.loc[rel < 0, "event"] == 1).any():
        raise RuntimeError("a user at risk at t0 churns before t0 on the full log")
    # (c) the same outcome from churn_labels on the full log
    labels = churn_labels(events, inactivity=inactivity, observation_end=end,
                          returns=returns)
    lab = labels.reindex(t0.index)
    start = lab["first_activity"].dt.floor("D")
    period = ((lab["churn_time"] - start) // PERIOD).to_numpy(na_value=-1.0)
    from_labels = lab["churned"].to_numpy() & (period >= t0.to_numpy()) & (
        period < (t0 + k).to_numpy())
    if not np.array_equal(from_labels, churn.to_numpy()):
        raise RuntimeError("the window outcome disagrees with churn_labels on the full log")
    return churn


def leakage_check(rows: pd.DataFrame, events: pd.DataFrame, users: pd.DataFrame,
                  end: pd.Timestamp, inactivity: pd.Timedelta, returns: str) -> None:
    """The week-t0 covariates from the calibration log equal those from the full log."""
    full = build_hazard_table(events, users, period="W", inactivity=inactivity, returns=returns,
                              observation_end=end)
    both = rows[["user_id", "tenure", *COVARIATES]].merge(
        full[["user_id", "tenure", *COVARIATES]], on=["user_id", "tenure"], how="left",
        suffixes=("", "_full"))
    for c in COVARIATES:
        if not np.allclose(both[c], both[f"{c}_full"]):
            raise RuntimeError(f"covariate {c} of week t0 differs between the logs")


def label_drift(train: pd.DataFrame, events: pd.DataFrame, users: pd.DataFrame,
                end: pd.Timestamp, cutoff: pd.Timestamp, inactivity: pd.Timedelta,
                returns: str) -> dict:
    """How calibration labels change once the holdout is seen (diagnostic, not a predictor)."""
    full = build_hazard_table(events, users, period="W", inactivity=inactivity,
                              returns=returns, observation_end=end)
    both = train[["user_id", "tenure", "period_start", "event"]].merge(
        full[["user_id", "tenure", "event"]], on=["user_id", "tenure"], how="left",
        suffixes=("", "_full"))
    late = both["period_start"] >= cutoff - inactivity - 7 * PERIOD
    return {"events": int(both["event"].sum()),
            "reversed": int(((both["event"] == 1) & (both["event_full"] != 1)).sum()),
            "h_cal": float(both.loc[late, "event"].mean()),
            "h_full": float(both.loc[late, "event_full"].mean())}


def dummies(frame: pd.DataFrame, levels: dict[str, list[str]]) -> pd.DataFrame:
    """Plan/country indicator columns (first level of each dropped), same for every table."""
    out = pd.DataFrame(index=frame.index)
    for g, values in levels.items():
        for level in values[1:]:
            out[f"{g}_{level}"] = (frame[g].astype(str) == level).astype(float)
    return out


def run_lifelines(python: str, train: pd.DataFrame, rows: pd.DataFrame, cal: pd.DataFrame,
                  users: pd.DataFrame, cutoff: pd.Timestamp, inactivity: pd.Timedelta, k: int,
                  tail: int, returns: str) -> tuple[pd.DataFrame | None, dict, float]:
    if not Path(python).is_file():
        print(f"lifelines skipped: no interpreter at {python} (see the module docstring)")
        return None, {}, float("nan")
    levels = {g: sorted(train[g].astype(str).unique()) for g in GROUPS}
    group_cols = list(dummies(train.head(1), levels).columns)
    tv_cols = COVARIATES + group_cols
    base_cols = [f"wk0_{c}" for c in COVARIATES] + group_cols
    # Week-0 engagement = covariates of the tenure-1 row (known at the end of week 0).
    wide = build_hazard_table(cal, users, period="W", inactivity=inactivity, returns=returns,
                              observation_end=cutoff + PERIOD + inactivity)
    wk1 = wide[wide["tenure"] == 1].set_index("user_id")
    base = wk1[COVARIATES].add_prefix("wk0_").join(dummies(wk1, levels))
    train_out = pd.concat([train[["user_id", "tenure", "event", *COVARIATES]],
                           dummies(train, levels)], axis=1)
    pred = pd.concat([rows[["user_id", *COVARIATES]], dummies(rows, levels)], axis=1)
    pred["t0"] = rows["tenure"].to_numpy()
    pred_base = base.reindex(rows["user_id"].to_numpy())
    if pred_base.isna().any().any():
        raise RuntimeError("a user at risk has no week-0 covariates")
    for c in base_cols:
        pred[f"base_{c}"] = pred_base[c].to_numpy()
    with tempfile.TemporaryDirectory() as tmp:
        train_out.to_parquet(Path(tmp) / "train.parquet")
        pred.to_parquet(Path(tmp) / "predict.parquet")
        base.reset_index().to_parquet(Path(tmp) / "baseline.parquet")
        (Path(tmp) / "meta.json").write_text(json.dumps({"tv_cols": tv_cols,
                                                         "base_cols": base_cols}))
        start = time.perf_counter()
        out = subprocess.run([python, "-c", LIFELINES_SCRIPT, tmp, str(k), str(tail)],
                             capture_output=True, text=True, check=False)
        total = time.perf_counter() - start
        if out.returncode != 0:
            print(f"lifelines failed:\n{out.stderr[-3000:]}")
            return None, {}, total
        preds = pd.read_parquet(Path(tmp) / "lifelines_predictions.parquet")
    info = json.loads(out.stdout.strip().splitlines()[-1])
    return preds.set_index("user_id"), info, total


def score(name: str, y: np.ndarray, p: np.ndarray, seconds: float, note: str,
          n_bins: int) -> dict:
    cal = calibration_table(y, p, n_bins=n_bins)
    return {"model": name, "auc": roc_auc(y, p), "brier": brier_score(y, p),
            "mean_p": float(np.mean(p)), "inside": int(cal["inside"].sum()), "bins": len(cal),
            "seconds": seconds, "note": note, "calibration": cal}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--holdout-days", type=int, default=90)
    parser.add_argument("--inactivity", default="30D")
    parser.add_argument("--returns", choices=["ignore", "first_gap"], default="ignore",
                        help="churn rule for a long gap followed by a return (churn_labels)")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--sampler", choices=["pymc", "nutpie"], default="pymc")
    parser.add_argument("--tail-periods", type=int, default=4)
    parser.add_argument("--n-bins", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--lifelines-python", default=os.environ.get("LIFELINES_PYTHON"),
                        help="a Python with lifelines and pyarrow installed (default: the "
                             "LIFELINES_PYTHON environment variable)")
    args = parser.parse_args()
    if not args.lifelines_python:
        parser.error("the comparison runs lifelines in its own environment: pass "
                     "--lifelines-python PATH or set LIFELINES_PYTHON (see the module "
                     "docstring)")
    if not Path(args.lifelines_python).is_file():
        parser.error(f"--lifelines-python / LIFELINES_PYTHON: no interpreter at "
                     f"{args.lifelines_python}")
    if args.quick:
        args.n_users = min(args.n_users, 1000)
        args.draws, args.tune = min(args.draws, 200), min(args.tune, 200)
    inactivity = pd.Timedelta(args.inactivity)
    k = args.holdout_days // 7
    if k < 1:
        raise SystemExit("--holdout-days must cover at least one week")

    start = time.perf_counter()
    events, users, end, cutoff = simulate(args.n_users, args.days, args.holdout_days, args.seed)
    cal = events[events["timestamp"] < cutoff]
    train = build_hazard_table(cal, users, period="W", inactivity=inactivity, returns=args.returns,
                               observation_end=cutoff)
    rows = prediction_rows(cal, users, train, cutoff, inactivity, args.returns)
    leakage_check(rows, events, users, end, inactivity, args.returns)
    y_series = outcomes(events, users, rows, end, inactivity, k, args.returns)
    y = y_series.to_numpy().astype(int)
    cal_labels = churn_labels(cal, inactivity=inactivity, observation_end=cutoff,
                              returns=args.returns)
    silent = cal_labels["churned"].reindex(rows["user_id"]).to_numpy()
    prep = time.perf_counter() - start
    print(f"simulated {args.n_users:,} users x {args.days} days (seed {args.seed}): "
          f"{len(events):,} plays; cutoff {cutoff.date()}, end {end.date()}; data prep "
          f"{prep:.1f} s")
    print(f"calibration person-period table: {len(train):,} rows, "
          f"{train['user_id'].nunique():,} users, {int(train['event'].sum()):,} churn events, "
          f"tenure 0..{int(train['tenure'].max())}")
    print(f"users at risk at the start of week t0: {len(rows):,} (t0 {int(rows['tenure'].min())}"
          f"..{int(rows['tenure'].max())}); window k = {k} weeks; churned in the window: "
          f"{int(y.sum()):,} ({y.mean():.3f})")
    print(f"  of them silent for >= {args.inactivity} at the cutoff: {int(silent.sum()):,} "
          f"(churn rate {y[silent].mean() if silent.any() else float('nan'):.3f}); "
          f"active in the last {args.inactivity}: {int((~silent).sum()):,} (churn rate "
          f"{y[~silent].mean():.3f})")
    edge = label_drift(train, events, users, end, cutoff, inactivity, args.returns)
    print(f"label check ({args.returns}): {edge['reversed']:,} of {edge['events']:,} calibration "
          f"churn events are not churn on the full log; weekly hazard of the calibration rows "
          f"starting in the 7 weeks before cutoff - {args.inactivity}: "
          f"{edge['h_cal']:.4f} as labelled at the cutoff, {edge['h_full']:.4f} on the full log")

    # Bayesian discrete-time hazard model.
    fit = {"draws": args.draws, "tune": args.tune, "chains": 2, "cores": 2,
           "sampler": args.sampler, "random_seed": 1}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ChurnHazardModel(covariates=COVARIATES, groups=GROUPS).fit(train, **fit)
    fit_wall = time.perf_counter() - start
    report = model.fit_report_
    rhat = float(report.variables["rhat"].max())
    ess = float(report.variables[["ess_bulk", "ess_tail"]].min().min())
    start = time.perf_counter()
    pred = model.probability_churn(rows, horizon=k)
    pred_wall = time.perf_counter() - start
    p_bayes = pred["mean"].reindex(rows["user_id"].to_numpy()).to_numpy()
    print(f"ChurnHazardModel: NUTS {fit['chains']}x({args.tune}+{args.draws}) in {fit_wall:.1f} s"
          f", predict {pred_wall:.1f} s; verdict {report.verdict}, max R-hat {rhat:.3f}, "
          f"min ESS {ess:.0f}, divergences {report.n_divergent}")
    beta = model.idata_["posterior"]["beta"].mean(("chain", "draw")).to_numpy()
    print("  beta (per sd of covariate): "
          + ", ".join(f"{c} {b:+.2f}" for c, b in zip(COVARIATES, beta, strict=True)))
    # The default prediction rows (each user's last training row) for comparison only.
    default = model.probability_churn(horizon=k)["mean"].reindex(rows["user_id"].to_numpy())

    results = [score("listening-models ChurnHazardModel (posterior mean)", y, p_bayes,
                     fit_wall + pred_wall, f"NUTS, {report.verdict}", args.n_bins)]

    preds, info, total = run_lifelines(args.lifelines_python, train, rows, cal, users, cutoff,
                                       inactivity, k, args.tail_periods, args.returns)
    if preds is not None:
        preds = preds.reindex(rows["user_id"].to_numpy())
        print(f"lifelines subprocess: {total:.1f} s in all (imports and I/O included)")
        print(f"  KM tail hazard (mean of the last {args.tail_periods} weeks): "
              f"{info['km']['tail_hazard']:.4f} per week")
        print(f"  Cox PH on {info['cox']['n']:,} users (survived week 0), concordance "
              f"{info['cox']['concordance']:.3f}; coef {info['cox']['coef']}")
        print(f"  Cox time-varying on {info['ctv']['n']:,} rows; coef {info['ctv']['coef']}")
        for key, name, extra in (
            ("km", "lifelines Kaplan-Meier", "no covariates"),
            ("cox", "lifelines CoxPHFitter (week-0 covariates)", "baseline covariates"),
            ("ctv", "lifelines CoxTimeVaryingFitter (week t0-1 covariates)",
             "time-varying covariates"),
        ):
            for tail in ("tail", "flat"):
                note = f"{extra}; {tail} past last tenure"
                results.append(score(f"{name}, {tail}", y, preds[f"{key}_{tail}"].to_numpy(),
                                     info[key]["wall"], note, args.n_bins))

    base = brier_score(y, np.full(len(y), y.mean()))
    print(f"\n### Churn within {k} weeks of week t0: {len(y):,} users at risk, observed "
          f"rate {y.mean():.3f}, base-rate Brier {base:.4f}\n")
    print("| model | fit + predict (s) | AUC | Brier | Brier skill vs base rate | mean predicted "
          "| observed | calibration bins inside 95% | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(f"| {r['model']} | {r['seconds']:.1f} | {r['auc']:.3f} | {r['brier']:.4f} | "
              f"{1 - r['brier'] / base:+.3f} | {r['mean_p']:.3f} | {y.mean():.3f} | "
              f"{r['inside']}/{r['bins']} | {r['note']} |")
    d = default.to_numpy()
    print(f"\nFor reference, the model's default rows (last training row, week t0-1, already "
          f"survived): AUC {roc_auc(y, d):.3f}, Brier {brier_score(y, d):.4f}, mean predicted "
          f"{d.mean():.3f}.")
    for r in results:
        if r["note"].endswith("flat past last tenure"):
            continue
        table = r["calibration"].rename(columns={"mean_predicted": "mean predicted",
                                                 "observed_rate": "observed",
                                                 "lower": "95% lower", "upper": "95% upper"})
        print(f"\nCalibration, {r['model']} (equal-count bins of the prediction):\n")
        print(table.round(3).to_markdown())


if __name__ == "__main__":
    main()
