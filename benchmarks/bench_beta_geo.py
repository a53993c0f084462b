"""Benchmark of BetaGeoModel (BG/NBD): compression, gradient cost, fit time, prediction memory.

Run from the repository root::

    python benchmarks/bench_beta_geo.py            # 1,000,000 users, both samplers, CDNOW
    python benchmarks/bench_beta_geo.py --n-users 100000 --samplers pymc
    python benchmarks/bench_beta_geo.py --quick    # a tiny check that the script runs

Side by side in the same run (``--compare``, on by default): pymc-marketing's
``BetaGeoModel`` in its own virtual environment (a Python with pymc-marketing
installed, given as ``--pmm-python`` or the ``PMM_PYTHON`` environment variable;
it pins an older PyMC, so it runs as a subprocess on the same data with the same
draws, tune and chains), and ``lifetimes``'
``BetaGeoFitter`` (the MLE a user would otherwise pick; ``pip install
lifetimes``, see the ``bench`` extra). A markdown table of wall time, bulk ESS
and ESS/s closes the output.

On CDNOW every NUTS fit, ours and pymc-marketing's alike, runs in a fresh
process that fits ``--repeats`` times with seeds 1, 2, ...: the first fit is
"cold" (compilation and lazy imports included, as in a script; the timer starts
after the package import) and the mean of the others "warm" (a notebook
re-fit). Ratios compare the same regime at the same ``target_accept``
(``--targets``: 0.8, pymc-marketing's and PyMC's default, and 0.9, ours).

Everything is printed to stdout. The simulated users follow the BG/NBD process
(``models.data.simulate.simulate_bgnbd``) with r=0.5, alpha=10 (days), a=0.8,
b=4, each observed for T=365 whole days after the first active day; recency is
rounded up to whole days, as an activity summary in days would give.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from models.churn.beta_geo import BetaGeoModel
from models.data.simulate import simulate_bgnbd
from models.priors import Prior

TRUTH = {"r": 0.5, "alpha": 10.0, "a": 0.8, "b": 4.0}
CDNOW = Path(__file__).resolve().parents[2] / "shared" / "data" / "cdnow" / (
    "cdnow_customers_summary.csv")
CDNOW_MLE = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def simulate_days(n: int, seed: int) -> pd.DataFrame:
    sim = simulate_bgnbd(n, T=365.0, random_seed=seed, **TRUTH)
    out = pd.DataFrame({"frequency": sim["frequency"], "recency": np.ceil(sim["recency"]),
                        "T": sim["T"]})
    out.index.name = "user_id"
    return out


def gradient_time(model, repeats: int = 300) -> float:
    dlogp = model.compile_dlogp()
    point = model.initial_point()
    dlogp(point)
    start = time.perf_counter()
    for _ in range(repeats):
        dlogp(point)
    return (time.perf_counter() - start) / repeats


ROWS: list[dict] = []  # the markdown table
SETTINGS = {"draws": 1000, "tune": 1000, "chains": 2}

# Each CDNOW comparison runs in a fresh process that fits twice: "cold" is the first fit
# (compilation and lazy imports included; the timer starts after the package import, as in a
# script) and "warm" the second, in the same process (a notebook re-fit).
PMM_SCRIPT = r"""
import json, sys, time, warnings
import arviz as az
import pandas as pd
from pymc_marketing.clv import BetaGeoModel
warnings.simplefilter("ignore")
path, draws, tune, chains, target = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                     int(sys.argv[4]), float(sys.argv[5]))
data = pd.read_csv(path)
names = ["r", "alpha", "a", "b"]
out = []
for seed in range(1, int(sys.argv[6]) + 1):
    start = time.perf_counter()
    model = BetaGeoModel()
    idata = model.fit(data, method="mcmc", draws=draws, tune=tune, chains=chains,
                      cores=chains, target_accept=target, random_seed=seed, progressbar=False)
    wall = time.perf_counter() - start
    ess = az.ess(idata, var_names=names, method="bulk")
    rhat = az.rhat(idata, var_names=names)
    post = idata["posterior"]
    out.append({"wall": wall, "ess": min(float(ess[n]) for n in names),
                "rhat": max(float(rhat[n]) for n in names),
                "steps": float(idata["sample_stats"]["n_steps"].mean()),
                "median": {n: float(post[n].median()) for n in names}})
print(json.dumps(out))
"""

OURS_SCRIPT = r"""
import json, sys, time, warnings
import pandas as pd
from models.churn.beta_geo import BetaGeoModel
warnings.simplefilter("ignore")
path, draws, tune, chains, target, sampler = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                              int(sys.argv[4]), float(sys.argv[5]), sys.argv[7])
data = pd.read_csv(path, index_col="customer_id")
out = []
for seed in range(1, int(sys.argv[6]) + 1):
    start = time.perf_counter()
    model = BetaGeoModel().fit(data, draws=draws, tune=tune, chains=chains, cores=chains,
                               sampler=sampler, target_accept=target, random_seed=seed)
    wall = time.perf_counter() - start
    summ = model.summary()
    out.append({"wall": wall, "ess": float(summ["ess_bulk"].astype(float).min()),
                "rhat": float(summ["r_hat"].astype(float).max()),
                "steps": float(model.idata_["sample_stats"]["n_steps"].mean()),
                "median": {n: float(model.posterior_draws(n).median())
                           for n in ["r", "alpha", "a", "b"]}})
print(json.dumps(out))
"""


def record(tool: str, data_label: str, n: int, wall: float, ess: float | None,
           rhat: float | None, note: str = "", *, fit: str = "", target: float | None = None
           ) -> None:
    ROWS.append({"tool": tool, "data": data_label, "users": n, "wall_s": wall, "ess": ess,
                 "rhat": rhat, "note": note, "fit": fit, "target": target})


def run_fresh(tool: str, python: str, script: str, data: pd.DataFrame, label: str,
              target: float, repeats: int, *extra: str, env: dict | None = None) -> None:
    """Fit ``repeats`` times in one fresh process; record the first (cold) and last (warm)."""
    if not Path(python).is_file():
        print(f"{tool} skipped: no interpreter at {python}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rfm.csv"
        frame = data[["frequency", "recency", "T"]].reset_index(drop=True)
        frame.insert(0, "customer_id", np.arange(len(frame)))
        frame.to_csv(path, index=False)
        cmd = [python, "-c", script, str(path), *(str(SETTINGS[k]) for k in
                                                  ("draws", "tune", "chains")),
               str(target), str(repeats), *extra]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        print(f"{tool} failed on {label}:\n{out.stderr[-2000:]}")
        return
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for i, res in enumerate(results):
        print(f"{label} {tool}, target_accept={target}, fit {i + 1} (seed {i + 1}, "
              f"{'cold' if i == 0 else 'warm'}): {res['wall']:.2f} s; R-hat {res['rhat']:.3f}; "
              f"min bulk ESS {res['ess']:.0f}; leapfrog steps per draw {res['steps']:.1f}; "
              f"medians { {k: round(v, 3) for k, v in res['median'].items()} }")
    groups = [("cold", results[:1])] + ([("warm", results[1:])] if len(results) > 1 else [])
    for fit, group in groups:
        n = len(group)
        wall, ess = (float(np.mean([g[k] for g in group])) for k in ("wall", "ess"))
        steps = float(np.mean([g["steps"] for g in group]))
        note = f"{steps:.1f} steps per draw" + (f"; mean of {n} seeds" if n > 1 else "")
        record(tool, label, len(data), wall, ess, max(g["rhat"] for g in group), note,
               fit=fit, target=target)


def run_pmm(data: pd.DataFrame, label: str, python: str, target: float = 0.8,
            repeats: int = 1) -> None:
    """Fit pymc-marketing's BetaGeoModel on the same rows in its own environment."""
    run_fresh("pymc-marketing BetaGeoModel (NUTS, own priors)", python, PMM_SCRIPT, data,
              label, target, repeats)


def run_ours_fresh(data: pd.DataFrame, label: str, sampler: str, target: float,
                   repeats: int) -> None:
    """Fit our BetaGeoModel in a fresh process, like pymc-marketing."""
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run_fresh(f"listening-models BetaGeoModel (NUTS, {sampler})", sys.executable, OURS_SCRIPT,
              data, label, target, repeats, sampler, env=env)


def run_lifetimes(data: pd.DataFrame, label: str) -> None:
    """lifetimes' BetaGeoFitter: the maximum-likelihood fit (point estimates only)."""
    try:
        from lifetimes import BetaGeoFitter
    except ImportError:
        print("lifetimes skipped: not importable in this Python (it needs pandas < 2; see "
              "benchmarks/README.md)")
        return
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter = BetaGeoFitter().fit(data["frequency"], data["recency"], data["T"])
    wall = time.perf_counter() - start
    params = {k: round(float(v), 4) for k, v in fitter.params_.items()}
    print(f"{label} lifetimes BetaGeoFitter (MLE): {wall:.2f} s; {params}")
    record("lifetimes BetaGeoFitter (MLE)", label, len(data), wall, None, None,
           "point estimate, no ESS")


def print_table() -> None:
    print("\n| tool | data | users | fit | target_accept | wall (s) | min bulk ESS | ESS/s "
          "| ESS/s vs pymc-marketing | max R-hat | note |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    ref = {(r["data"], r["fit"], r["target"]): r["ess"] / r["wall_s"] for r in ROWS
           if r["tool"].startswith("pymc-marketing") and r["ess"]}
    for r in ROWS:
        key = (r["data"], r["fit"], r["target"])
        rate = r["ess"] / r["wall_s"] if r["ess"] else None
        ratio = f"{rate / ref[key]:.1f}x" if rate and key in ref else ""
        cells = [r["tool"], r["data"], f"{r['users']:,}", r["fit"],
                 "" if r["target"] is None else f"{r['target']}", f"{r['wall_s']:.1f}",
                 f"{r['ess']:.0f}" if r["ess"] else "", f"{rate:.0f}" if rate else "", ratio,
                 f"{r['rhat']:.3f}" if r["rhat"] else "", r["note"]]
        print("| " + " | ".join(cells) + " |")


def fit_and_report(data: pd.DataFrame, sampler: str, label: str, **kwargs) -> BetaGeoModel:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BetaGeoModel(**kwargs).fit(data, cores=2, sampler=sampler, random_seed=1,
                                           **SETTINGS)
    wall = time.perf_counter() - start
    summ = model.summary()
    ess = float(summ["ess_bulk"].astype(float).min())
    steps = float(model.idata_["sample_stats"]["n_steps"].mean())
    print(f"{label} sampler={sampler}: fit {wall:.1f} s including build and compilation; "
          f"max R-hat {summ['r_hat'].astype(float).max():.3f}; min bulk ESS {ess:.0f} "
          f"({ess / wall:.0f}/s of wall time); mean leapfrog steps {steps:.1f}")
    print(summ.to_string())
    record(f"listening-models BetaGeoModel (NUTS, {sampler})", label, len(data), wall, ess,
           float(summ["r_hat"].astype(float).max()),
           f"{model.model_.bgnbd_compression.n_unique:,} unique rows", fit="in process",
           target=0.9)
    return model


def peak_memory(func) -> tuple[float, float]:
    tracemalloc.start()
    start = time.perf_counter()
    func()
    wall = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-users", type=int, default=1_000_000)
    parser.add_argument("--samplers", nargs="+", default=["pymc", "nutpie"])
    parser.add_argument("--skip-cdnow", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (2,000 users, 200 draws) to check the script runs")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="skip pymc-marketing and lifetimes")
    parser.add_argument("--pmm-python", default=os.environ.get("PMM_PYTHON"),
                        help="a Python with pymc-marketing installed (default: the "
                             "PMM_PYTHON environment variable)")
    parser.add_argument("--targets", nargs="+", type=float, default=[0.8, 0.9],
                        help="target_accept values of the CDNOW comparison (same for every "
                             "tool; 0.8 is pymc-marketing's default, 0.9 ours)")
    parser.add_argument("--repeats", type=int, default=4,
                        help="fits per fresh process on CDNOW, seeds 1..repeats: the first "
                             "is 'cold', the mean of the others 'warm'")
    parser.add_argument("--pmm-max-users", type=int, default=200_000,
                        help="largest simulated size given to pymc-marketing (it builds "
                             "per-user arrays)")
    args = parser.parse_args()
    if args.compare and not args.pmm_python:
        parser.error("the comparison runs pymc-marketing in its own environment: pass "
                     "--pmm-python PATH or set PMM_PYTHON (or skip the comparisons with "
                     "--no-compare)")
    if args.compare and not Path(args.pmm_python).is_file():
        parser.error(f"--pmm-python / PMM_PYTHON: no interpreter at {args.pmm_python}")
    if args.quick:
        args.n_users = min(args.n_users, 2000)
        SETTINGS.update(draws=200, tune=200)
    print(f"cores available: {os.cpu_count()}; load average at start: {os.getloadavg()}")

    start = time.perf_counter()
    data = simulate_days(args.n_users, seed=1)
    print(f"simulated {len(data):,} users in {time.perf_counter() - start:.1f} s; truth {TRUTH}")
    start = time.perf_counter()
    model = BetaGeoModel().build_model(data)
    comp = model.bgnbd_compression
    print(f"validation + compression + model build: {time.perf_counter() - start:.2f} s; "
          f"{comp.n_unique:,} unique (x, t_x, T) rows, {len(comp.sx_x)} unique x, "
          f"{len(comp.u_val)} unique times")
    grad = gradient_time(model)
    print(f"gradient (compiled PyTensor, numba, model.compile_dlogp): {grad * 1e3:.2f} ms per "
          f"evaluation = {grad / comp.n_unique * 1e9:.0f} ns per unique row")

    fitted = None
    label = f"simulated {len(data):,}"
    for sampler in args.samplers:
        fitted = fit_and_report(data, sampler, label)
    if args.compare:
        run_lifetimes(data, label)
        if len(data) <= args.pmm_max_users:
            run_pmm(data, label, args.pmm_python, 0.9)
        else:
            print(f"pymc-marketing skipped on {len(data):,} users (> --pmm-max-users)")

    if fitted is not None:
        for name, call in [
            ("probability_alive", lambda: fitted.probability_alive()),
            ("expected_activity(t=30)", lambda: fitted.expected_activity(t=30.0)),
        ]:
            mb, wall = peak_memory(call)
            print(f"{name} for {len(data):,} users, 2000 draws, default batched path: "
                  f"{wall:.1f} s, peak traced memory {mb:.0f} MiB")
        print(f"process max RSS so far: "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    if not args.skip_cdnow and CDNOW.is_file():
        cdnow = pd.read_csv(CDNOW, index_col="ID")
        flat = {k: Prior("HalfFlat") for k in CDNOW_MLE}
        start = time.perf_counter()
        mle = BetaGeoModel(priors=flat).fit(cdnow, method="map", random_seed=1)
        wall = time.perf_counter() - start
        est = {k: round(float(mle.posterior_draws(k).values.squeeze()), 4) for k in CDNOW_MLE}
        print(f"CDNOW ({len(cdnow)} customers) MAP with flat priors: {wall:.1f} s; {est}; "
              f"published {CDNOW_MLE}")
        if args.compare:
            run_lifetimes(cdnow, "CDNOW")
        # every NUTS fit on CDNOW in a fresh process, twice (cold, warm), at each
        # target_accept: pymc-marketing's default (PyMC's, 0.8) and ours (0.9)
        for target in args.targets:
            for sampler in args.samplers:
                run_ours_fresh(cdnow, "CDNOW", sampler, target, args.repeats)
            if args.compare:
                run_pmm(cdnow, "CDNOW", args.pmm_python, target, args.repeats)
    print(f"settings: {SETTINGS}, cores=2, random_seed=1")
    print_table()


if __name__ == "__main__":
    main()
