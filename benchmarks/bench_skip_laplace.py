"""SkipModel's user intercepts integrated out (Laplace, quadrature), full NUTS and bambi.

Data: skips drawn from the skip model's own process (crossed user and track intercepts,
log position, hour bin, plan), ``--plays`` plays per user over ``--tracks`` tracks,
aggregated to the model's binomial rows. Each size is fitted with the user intercepts
integrated out by the Laplace approximation (sizes in ``--users``) and by adaptive
Gauss-Hermite quadrature (``--quadrature-users``), sampled (full NUTS, ``--full-users``)
and by bambi (``--bambi-users``; the same model as a formula, its sum-to-zero coding
differs), all on the same table. Each fit runs in its own process, so its peak memory
(maximum resident set size) is its own. Reported: wall time of the whole fit, leapfrog
steps per draw, largest R-hat and smallest bulk ESS of the population parameters;
against full NUTS, the difference of the posterior means in full-NUTS sds and the ratio
of the sds; the share of the true user intercepts inside each fit's 90% interval; the
Pareto-k check of the integrated fits.

Usage: python benchmarks/bench_skip_laplace.py [--users 300,3000] [--quadrature-users 300,3000]
       [--full-users 300,3000]
       [--bambi-users 300] [--plays 30] [--tracks 50] [--draws 500] [--tune 500]
       [--sampler pymc|nutpie]
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
from scipy import special

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_listening import table  # noqa: E402

from models.listening import SkipModel  # noqa: E402

HOURS = np.array([0.25, -0.2, -0.1, 0.05])
TRUTH = {"intercept": -1.0, "sigma_user_id": 0.7, "sigma_track_id": 0.4, "beta_position": 0.2}
POPULATION = ["intercept", "sigma_user_id", "sigma_track_id", "beta_position", "plan_effect",
              "hour_effect"]


def simulate(n_users, plays, n_tracks, seed=0):
    """Binomial skip rows of ``n_users`` users with ``plays`` plays each, and the true b_u."""
    rng = np.random.default_rng(seed)
    b_user = TRUTH["sigma_user_id"] * rng.normal(size=n_users)
    b_track = TRUTH["sigma_track_id"] * rng.normal(size=n_tracks)
    plan = rng.choice(np.array(["free", "premium"], dtype=object), n_users)
    user = np.repeat(np.arange(n_users), plays)
    track = rng.integers(0, n_tracks, len(user))
    position = np.minimum(rng.geometric(0.15, len(user)), 50)
    hour = rng.integers(0, 4, len(user))
    eta = (TRUTH["intercept"] + b_user[user] + b_track[track]
           + TRUTH["beta_position"] * np.log(position) + HOURS[hour]
           + np.where(plan[user] == "premium", -0.15, 0.15))
    skipped = rng.random(len(user)) < special.expit(eta)
    plays_frame = pd.DataFrame({
        "user_id": np.array([f"u{i:06d}" for i in range(n_users)], dtype=object)[user],
        "track_id": np.array([f"t{i:04d}" for i in range(n_tracks)], dtype=object)[track],
        "position": position, "hour_bin": hour, "plan": plan[user], "skipped": skipped})
    keys = ["user_id", "track_id", "position", "hour_bin", "plan"]
    rows = (plays_frame.groupby(keys, sort=True)["skipped"]
            .agg(n_plays="size", n_skips="sum").reset_index())
    rows["n_skips"] = rows["n_skips"].astype("int64")
    return rows, b_user


def _fit_ours(how, n_users, args):
    rows, truth = simulate(n_users, args.plays, args.tracks)
    t0 = time.perf_counter()
    m = SkipModel(crossed=("user_id", "track_id"), group=("plan",), user_inference=how)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(rows, draws=args.draws, tune=args.tune, chains=2, cores=2, sampler=args.sampler,
              random_seed=1)
    wall = time.perf_counter() - t0
    post = m.idata_["posterior"]
    stats = m.idata_["sample_stats"]
    steps = stats["n_steps"] if "n_steps" in stats else stats["tree_size"]
    b = post["user_id_z"] * post["sigma_user_id"]
    q = b.quantile([0.05, 0.95], dim=("chain", "draw")).values
    return {"wall": wall, "rows": len(rows),
            "rhat": float(max(float(az.rhat(post[v]).max()) for v in POPULATION)),
            "ess": float(min(float(az.ess(post[v]).min()) for v in POPULATION)),
            "steps": float(steps.mean()), "summary": m.summary(POPULATION),
            "coverage": float(((q[0] <= truth) & (truth <= q[1])).mean()),
            "notes": [n for n in [*m.fit_report_.notes, *m.fit_report_.cautions]
                      if n.startswith("Laplace")]}


def _fit_bambi(n_users, args):
    import bambi as bmb

    rows, _ = simulate(n_users, args.plays, args.tracks)
    frame = rows.assign(log_position=np.log(rows["position"]),
                        hour_bin=rows["hour_bin"].astype(str))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm = bmb.Model("p(n_skips, n_plays) ~ 1 + log_position + hour_bin + plan + (1|user_id)"
                       " + (1|track_id)", frame, family="binomial")
        idata = bm.fit(draws=args.draws, tune=args.tune, chains=2, cores=2, random_seed=1,
                       progressbar=False, inference_method=args.sampler)
    wall = time.perf_counter() - t0
    post = idata["posterior"]
    names = ["Intercept", "1|user_id_sigma", "1|track_id_sigma", "log_position"]
    stats = idata["sample_stats"]
    steps = stats["n_steps"] if "n_steps" in stats else stats["tree_size"]
    return {"wall": wall, "rows": len(rows),
            "rhat": float(max(float(az.rhat(post[v]).max()) for v in names)),
            "ess": float(min(float(az.ess(post[v]).min()) for v in names)),
            "steps": float(steps.mean()), "summary": None, "coverage": float("nan"),
            "notes": []}


def _child(queue, kind, n_users, args):
    out = _fit_bambi(n_users, args) if kind == "bambi" else _fit_ours(kind, n_users, args)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(out)


def in_process(kind, n_users, args):
    """Run one fit in a fresh process; its result and peak memory (MB)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, kind, n_users, args))
    proc.start()
    while True:  # a child that dies (an error in the fit) must not leave us waiting
        try:
            out = queue.get(timeout=5)
            break
        except Exception:  # queue.Empty
            if not proc.is_alive():
                raise RuntimeError(f"the {kind} fit on {n_users:,} users failed "
                                   "(see above)") from None
    proc.join()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ints = lambda text: [int(v) for v in text.split(",") if v]  # noqa: E731
    parser.add_argument("--users", type=ints, default=[300, 3000])
    parser.add_argument("--quadrature-users", type=ints, default=[300, 3000])
    parser.add_argument("--full-users", type=ints, default=[300, 3000])
    parser.add_argument("--bambi-users", type=ints, default=[300])
    parser.add_argument("--plays", type=int, default=30)
    parser.add_argument("--tracks", type=int, default=50)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--sampler", default="pymc", choices=["nutpie", "pymc"])
    args = parser.parse_args()
    print(f"### {args.plays} plays per user, {args.tracks} tracks; {args.draws} draws + "
          f"{args.tune} tune, 2 chains on 2 cores, {args.sampler}\n")
    speed, accuracy = [], []
    sizes = set(args.users) | set(args.quadrature_users) | set(args.full_users)
    for n in sorted(sizes | set(args.bambi_users)):
        fits = {}
        for label, kind, sizes in (("Laplace", "laplace", args.users),
                                   ("quadrature", "quadrature", args.quadrature_users),
                                   ("full NUTS", "sample", args.full_users),
                                   ("bambi", "bambi", args.bambi_users)):
            if n not in sizes:
                continue
            load = os.getloadavg()[0]
            r = fits[label] = in_process(kind, n, args)
            speed.append([label, f"{n:,}", f"{r['rows']:,}", f"{r['wall']:.1f}",
                          f"{r['steps']:.1f}", f"{r['rhat']:.3f}", f"{r['ess']:.0f}",
                          f"{r['coverage']:.3f}", f"{r['peak_mb']:.0f}",
                          f"{load:.1f} / {os.getloadavg()[0]:.1f}"])
            print(f"{label} {n:,} users: {r['wall']:.1f} s; {r['notes']}", flush=True)
        for label in ("Laplace", "quadrature"):
            if label not in fits or "full NUTS" not in fits:
                continue
            a, b = fits[label]["summary"], fits["full NUTS"]["summary"]
            sd = b["sd"].astype(float)
            for name in b.index:
                ma, mb = float(a.loc[name, "mean"]), float(b.loc[name, "mean"])
                accuracy.append([label, f"{n:,}", name, f"{mb:.3f}", f"{ma:.3f}",
                                 f"{(ma - mb) / sd[name]:+.2f}",
                                 f"{float(a.loc[name, 'sd']) / sd[name]:.2f}"])
    print()
    table(["fit", "users", "rows", "wall s (whole fit)", "leapfrog steps per draw",
           "max R-hat (population)", "min bulk ESS", "users' 90% coverage", "peak MB",
           "load before / after"], speed)
    if accuracy:
        table(["fit", "users", "parameter", "full NUTS mean", "its mean",
               "mean difference / full NUTS sd", "sd ratio"], accuracy)


if __name__ == "__main__":
    main()
