"""Benchmarks of PlayCountModel(user_inference="laplace"), side by side with full NUTS and bambi.

1. Accuracy (``--part accuracy``): N users x 28 days (default 3,000) of the default model's
   process with segments; the same data, draws, tuning, chains and seed fitted with the user
   effects integrated out (Laplace) and sampled (full NUTS). Population parameters: difference
   of the posterior means in full-NUTS posterior sds, and the ratio of the posterior sds. Users:
   share of the simulated true log-rates inside each fit's 90% interval.
2. Speed (``--part speed``): the whole ``fit`` (validation, compilation, sampling, user draws,
   checks) with the Laplace option on each size of ``--users`` (default 10,000 and 100,000) x
   28 days, full NUTS on the sizes of ``--full-users`` and bambi (the same model as a formula,
   coding differs) on ``--bambi-users``. Each fit runs in its own process, so its peak memory
   (maximum resident set size) is its own.

Usage: python benchmarks/bench_listening_laplace.py [--part accuracy,speed]
       [--accuracy-users 3000] [--users 10000,100000] [--full-users 10000]
       [--bambi-users 3000] [--draws 300] [--tune 300] [--sampler nutpie|pymc]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
import warnings

import arviz as az
import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_listening import DOW, table  # noqa: E402

from models.listening import PlayCountModel  # noqa: E402

SEGMENTS = ("country", "plan")
POPULATION = ["intercept", "country_effect", "plan_effect", "sigma_user", "alpha",
              "day_of_week_effect"]


def simulate(n_users, n_days, *, intercept=1.0, sigma_user=0.8, alpha=1.5, seed=0):
    """``bench_listening.simulate``'s process, also returning each user's true log-rate."""
    rng = np.random.default_rng(seed)
    country = rng.choice(np.array(["BR", "SE", "US"], dtype=object), n_users)
    plan = rng.choice(np.array(["free", "premium"], dtype=object), n_users)
    theta = (intercept + np.where(country == "SE", 0.2, 0.0) + np.where(plan == "premium", 0.3, 0)
             + sigma_user * rng.normal(size=n_users))
    days = pd.date_range("2025-01-06", periods=n_days, freq="D")
    mu = np.exp(theta[:, None] + DOW[days.day_of_week.to_numpy()][None, :])
    y = rng.poisson(rng.gamma(alpha, mu / alpha))
    data = pd.DataFrame({"user_id": np.repeat(np.arange(n_users), n_days),
                         "period_start": np.tile(days, n_users),
                         "country": np.repeat(country, n_days), "plan": np.repeat(plan, n_days),
                         "plays": y.ravel()})
    return data, theta


def _coverage(rate, truth):
    q = rate.quantile([0.05, 0.95], dim=("chain", "draw")).values
    return float(((q[0] <= truth) & (truth <= q[1])).mean())


def _fit_ours(how, n_users, args, seed):
    data, truth = simulate(n_users, 28, seed=seed)
    t0 = time.perf_counter()
    m = PlayCountModel(groups=SEGMENTS, user_inference=how)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(data, draws=args.draws, tune=args.tune, chains=2, cores=2, sampler=args.sampler,
              random_seed=1)
    wall = time.perf_counter() - t0
    post = m.idata_["posterior"]
    steps = m.idata_["sample_stats"]["n_steps"] if "n_steps" in m.idata_["sample_stats"] \
        else m.idata_["sample_stats"]["tree_size"]
    return {"wall": wall, "rhat": float(max(float(az.rhat(post[v]).max()) for v in POPULATION)),
            "ess": float(min(float(az.ess(post[v]).min()) for v in POPULATION)),
            "steps": float(steps.mean()), "summary": m.summary(POPULATION),
            "coverage": _coverage(post["user_log_rate"], truth),
            "notes": [*m.fit_report_.notes[-1:], *m.fit_report_.cautions]}


def _fit_bambi(n_users, args, seed):
    import bambi as bmb

    data, truth = simulate(n_users, 28, seed=seed)
    frame = data.assign(user_id=data["user_id"].astype(str),
                        dow=data["period_start"].dt.day_of_week.astype(str))
    user_prior = bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=1.0))
    priors = {"Intercept": bmb.Prior("Normal", mu=0, sigma=2.5), "1|user_id": user_prior,
              "alpha": bmb.Prior("Gamma", alpha=2.0, beta=0.5),
              "1|country": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=0.5)),
              "1|plan": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=0.5))}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm = bmb.Model("plays ~ 1 + dow + (1|country) + (1|plan) + (1|user_id)", frame,
                       family="negativebinomial", priors=priors)
        idata = bm.fit(draws=args.draws, tune=args.tune, chains=2, cores=2, random_seed=1,
                       progressbar=False, inference_method=args.sampler)
    wall = time.perf_counter() - t0
    post = idata["posterior"]
    names = ["Intercept", "1|user_id_sigma", "alpha"]
    return {"wall": wall, "rhat": float(max(float(az.rhat(post[v]).max()) for v in names)),
            "ess": float(min(float(az.ess(post[v]).min()) for v in names)),
            "steps": float("nan"), "summary": None, "coverage": float("nan"), "notes": []}


def _child(queue, kind, n_users, args, seed):
    out = _fit_bambi(n_users, args, seed) if kind == "bambi" else _fit_ours(kind, n_users,
                                                                             args, seed)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(out)


def in_process(kind, n_users, args, seed):
    """Run one fit in a fresh process; its result and peak memory (MB)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, kind, n_users, args, seed))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def bench_accuracy(args):
    n = args.accuracy_users
    print(f"### Laplace vs full NUTS: {n:,} users x 28 days, {args.draws} draws + {args.tune} "
          f"tune, 2 chains, {args.sampler}\n")
    lap = in_process("laplace", n, args, seed=11)
    full = in_process("sample", n, args, seed=11)
    a, b = lap["summary"], full["summary"]
    sd = b["sd"].astype(float)
    rows = [[name, f"{float(b.loc[name, 'mean']):.3f}", f"{float(a.loc[name, 'mean']):.3f}",
             f"{(float(a.loc[name, 'mean']) - float(b.loc[name, 'mean'])) / sd[name]:+.2f}",
             f"{float(a.loc[name, 'sd']) / sd[name]:.2f}"] for name in b.index]
    table(["parameter", "full NUTS mean", "Laplace mean", "mean difference / sd",
           "sd ratio"], rows)
    table(["fit", "wall s", "max R-hat", "leapfrog steps per draw", "users' 90% coverage",
           "peak MB"],
          [[label, f"{r['wall']:.1f}", f"{r['rhat']:.3f}", f"{r['steps']:.1f}",
            f"{r['coverage']:.3f}", f"{r['peak_mb']:.0f}"]
           for label, r in (("Laplace", lap), ("full NUTS", full))])
    for note in lap["notes"]:
        print(f"Laplace fit report: {note}\n")


def bench_speed(args):
    print(f"### Speed: {args.draws} draws + {args.tune} tune, 2 chains on 2 cores, "
          f"{args.sampler}; load average {os.getloadavg()[0]:.1f}\n")
    rows = []
    runs = [("Laplace", "laplace", n) for n in args.users]
    runs += [("full NUTS", "sample", n) for n in args.full_users]
    runs += [("bambi", "bambi", n) for n in args.bambi_users]
    for label, kind, n in runs:
        load = os.getloadavg()[0]
        r = in_process(kind, n, args, seed=1)
        load = f"{load:.1f} / {os.getloadavg()[0]:.1f}"
        rows.append([label, f"{n:,}", f"{r['wall']:.1f}", f"{r['rhat']:.3f}", f"{r['ess']:.0f}",
                     f"{r['steps']:.1f}", f"{r['peak_mb']:.0f}", load])
        print(f"{label} {n:,}: {r['wall']:.1f} s (load {load}); notes {r['notes']}", flush=True)
    table(["fit", "users", "wall s (whole fit)", "max R-hat (population)",
           "min ESS (population)", "leapfrog steps per draw", "peak MB",
           "load average before / after"], rows)


def _ints(text):
    return [int(v) for v in text.split(",") if v]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="accuracy,speed")
    parser.add_argument("--accuracy-users", type=int, default=3000)
    parser.add_argument("--users", type=_ints, default=[10_000, 100_000])
    parser.add_argument("--full-users", type=_ints, default=[10_000])
    parser.add_argument("--bambi-users", type=_ints, default=[3_000])
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--sampler", default="nutpie", choices=["nutpie", "pymc"])
    args = parser.parse_args()
    parts = args.part.split(",")
    if "accuracy" in parts:
        bench_accuracy(args)
    if "speed" in parts:
        bench_speed(args)


if __name__ == "__main__":
    main()
