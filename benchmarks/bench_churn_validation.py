"""Out-of-time validation of BG/NBD activity predictions: listening-models vs lifetimes' MLE.

Run from the repository root::

    python benchmarks/bench_churn_validation.py            # 20,000 simulated users, CDNOW
    python benchmarks/bench_churn_validation.py --quick    # 2,000 users, short chains

A simulated service (``simulate_service``) is split at a calibration end; the
Bayesian ``BetaGeoModel`` (NUTS) and ``lifetimes.BetaGeoFitter`` (maximum
likelihood; in this process, or in a Python of its own passed as ``--lifetimes-python``
or ``LIFETIMES_PYTHON``, since it pins ``pandas<2``) are fitted on the
same calibration summary and both score the same holdout: AUC and Brier score of
P(active in the holdout), the share of calibration bins whose observed rate is
inside its binomial bounds, and predicted vs actual holdout activity by
calibration frequency. CDNOW (39 + 39 weeks) is scored the same way when
``../shared/data`` is present. Markdown tables close the output.
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

from models.churn import BetaGeoModel
from models.churn.validation import calibration_holdout_split, score_holdout
from models.data import NetworkOptions, simulate_service

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cdnow"


#: lifetimes in its own Python (it pins pandas < 2): fit, then P(active) and E[activity].
LIFETIMES_SCRIPT = r"""
import json, sys, time, warnings
import numpy as np, pandas as pd
from lifetimes import BetaGeoFitter
table = pd.read_csv(sys.argv[1]); h = float(sys.argv[2])
warnings.simplefilter("ignore")
start = time.perf_counter()
f = BetaGeoFitter().fit(table["frequency"], table["recency"], table["T"])
r, alpha, a, b = (float(f.params_[k]) for k in ("r", "alpha", "a", "b"))
alive = np.asarray(f.conditional_probability_alive(table["frequency"], table["recency"],
                                                   table["T"]))
expected = np.asarray(f.conditional_expected_number_of_purchases_up_to_time(
    h, table["frequency"], table["recency"], table["T"]))
wall = time.perf_counter() - start
x, T = table["frequency"].to_numpy(), table["T"].to_numpy()
p_active = alive * -np.expm1((r + x) * (np.log(alpha + T) - np.log(alpha + T + h)))
print(json.dumps({"p_active": p_active.tolist(), "expected": expected.tolist(), "wall": wall}))
"""


def lifetimes_predictions(table: pd.DataFrame, horizon: float, python: str | None):
    """lifetimes' MLE predictions: in ``python`` (its own environment) or in process."""
    if python:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "summary.csv"
            table[["frequency", "recency", "T"]].to_csv(path, index=False)
            out = subprocess.run([python, "-c", LIFETIMES_SCRIPT, str(path), str(horizon)],
                                 capture_output=True, text=True, check=True)
        res = json.loads(out.stdout)
        return np.asarray(res["p_active"]), np.asarray(res["expected"]), res["wall"]
    from lifetimes import BetaGeoFitter

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter = BetaGeoFitter().fit(table["frequency"], table["recency"], table["T"])
        r, alpha, a, b = (float(fitter.params_[k]) for k in ("r", "alpha", "a", "b"))
        alive = fitter.conditional_probability_alive(table["frequency"], table["recency"],
                                                     table["T"])
        expected = fitter.conditional_expected_number_of_purchases_up_to_time(
            horizon, table["frequency"], table["recency"], table["T"])
    x, T = table["frequency"].to_numpy(), table["T"].to_numpy()
    p_active = np.asarray(alive) * -np.expm1((r + x) * (np.log(alpha + T)
                                                        - np.log(alpha + T + horizon)))
    return p_active, np.asarray(expected), time.perf_counter() - start


def compare(label: str, table: pd.DataFrame, horizon: float, fit: dict, rows: list,
            lifetimes_python: str | None) -> None:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BetaGeoModel().fit(table[["frequency", "recency", "T"]], **fit)
    wall = time.perf_counter() - start
    bayes = score_holdout(table, model=model, horizon=horizon, max_draws=1000, random_seed=0)
    results = [("listening-models BetaGeoModel (posterior mean)", bayes, wall,
                model.fit_report_.verdict)]
    try:
        p, e, lt_wall = lifetimes_predictions(table, horizon, lifetimes_python)
        results.append(("lifetimes BetaGeoFitter (MLE)", score_holdout(
            table, p_active=p, expected_activity=e, horizon=horizon), lt_wall, "point"))
    except ImportError:
        print("lifetimes not importable here: pass --lifetimes-python (or LIFETIMES_PYTHON), "
              "a Python with lifetimes installed")
    print(f"\n### {label}: {len(table):,} users, holdout {horizon:g} periods\n")
    print("| tool | fit (s) | AUC | Brier | calibration bins inside | predicted / actual "
          "holdout activity | fit check |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, ev, seconds, verdict in results:
        ratio = ev.users["expected_activity"].sum() / ev.users["holdout_activity"].sum()
        print(f"| {name} | {seconds:.1f} | {ev.auc:.3f} | {ev.brier:.4f} | "
              f"{int(ev.calibration['inside'].sum())}/{len(ev.calibration)} | {ratio:.3f} | "
              f"{verdict} |")
        rows.append((label, name, ev))
    print("\nBy calibration frequency (last bucket is 7+): actual mean (se) | "
          + " | ".join(name for name, *_ in results))
    cols = [bayes.by_frequency[["n", "actual", "actual_se"]]]
    cols += [ev.by_frequency["predicted"].rename(name) for name, ev, *_ in results]
    table_out = pd.concat(cols, axis=1)
    table_out["ci (Bayes)"] = [f"[{lo:.2f}, {hi:.2f}]" for lo, hi in
                               zip(bayes.by_frequency["ci_lower"],
                                   bayes.by_frequency["ci_upper"], strict=True)]
    print(table_out.round(3).to_markdown())


def cdnow_table() -> pd.DataFrame:
    sample = pd.read_csv(DATA / "CDNOW_sample.txt", sep=r"\s+", header=None,
                         names=["master", "id", "date", "cds", "value"])
    sample["date"] = pd.to_datetime(sample["date"].astype(str), format="%Y%m%d")
    summary = pd.read_csv(DATA / "cdnow_customers_summary.csv", index_col="ID")
    days = sample[["id", "date"]].drop_duplicates()
    hold = days[days["date"] > pd.Timestamp("1997-09-30")].groupby("id").size()
    hold = hold.reindex(summary.index, fill_value=0)
    return summary.assign(holdout_activity=hold, active_in_holdout=hold > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-users", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--lifetimes-python", default=os.environ.get("LIFETIMES_PYTHON"),
                        help="a Python with lifetimes installed (it needs pandas < 2); "
                             "default: import lifetimes in this process")
    args = parser.parse_args()
    fit = {"draws": 1000, "tune": 1000, "chains": 2, "cores": 2, "random_seed": 1}
    if args.quick:
        args.n_users = min(args.n_users, 2000)
        fit.update(draws=300, tune=300)
    rows: list = []
    sim = simulate_service(args.n_users, 240, random_seed=5,
                           network=NetworkOptions(n_artists=50))
    table = calibration_holdout_split(sim.events, calibration_end="2025-05-01",
                                      holdout_end="2025-08-29")
    compare("simulated service (days)", table, table.attrs["horizon"], fit, rows,
            args.lifetimes_python)
    if DATA.is_dir():
        compare("CDNOW (weeks 1-39 / 40-78)", cdnow_table(), 39.0, fit, rows,
                args.lifetimes_python)


if __name__ == "__main__":
    main()
