"""Benchmark of BetaGeoModel (BG/NBD): compression, gradient cost, fit time, prediction memory.

Run from the repository root::

    python benchmarks/bench_beta_geo.py            # 1,000,000 users, both samplers, CDNOW
    python benchmarks/bench_beta_geo.py --n-users 100000 --samplers pymc

Everything is printed to stdout. The simulated users follow the BG/NBD process
(``models.data.simulate.simulate_bgnbd``) with r=0.5, alpha=10 (days), a=0.8,
b=4, each observed for T=365 whole days after the first active day; recency is
rounded up to whole days, as an activity summary in days would give.
"""

from __future__ import annotations

import argparse
import os
import resource
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


def fit_and_report(data: pd.DataFrame, sampler: str, label: str, **kwargs) -> BetaGeoModel:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BetaGeoModel(**kwargs).fit(data, draws=1000, tune=1000, chains=2, cores=2,
                                           sampler=sampler, random_seed=1)
    wall = time.perf_counter() - start
    summ = model.summary()
    ess = float(summ["ess_bulk"].astype(float).min())
    steps = float(model.idata_["sample_stats"]["n_steps"].mean())
    print(f"{label} sampler={sampler}: fit {wall:.1f} s including build and compilation; "
          f"max R-hat {summ['r_hat'].astype(float).max():.3f}; min bulk ESS {ess:.0f} "
          f"({ess / wall:.0f}/s of wall time); mean leapfrog steps {steps:.1f}")
    print(summ.to_string())
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
    args = parser.parse_args()
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
    print(f"gradient (compiled PyTensor C, model.compile_dlogp): {grad * 1e3:.2f} ms per "
          f"evaluation = {grad / comp.n_unique * 1e9:.0f} ns per unique row")

    fitted = None
    for sampler in args.samplers:
        fitted = fit_and_report(data, sampler, f"{len(data):,} users")

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
        for sampler in args.samplers:
            fit = fit_and_report(cdnow, sampler, "CDNOW")
            med = {k: round(float(fit.posterior_draws(k).median()), 4) for k in CDNOW_MLE}
            print(f"CDNOW posterior medians ({sampler}, default priors): {med}")


if __name__ == "__main__":
    main()
