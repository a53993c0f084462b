"""Benchmarks of models.listening.PlayCountModel.

1. NUTS on N users x 28 days (default 100,000), 2 chains on 2 cores: data preparation,
   compilation and sampling wall time, bulk ESS per second.
2. Centred vs non-centred parametrisation: divergences, bulk ESS/s of sigma_user, on data
   with few, sparse periods per user (where non-centring helps) and many (where it does not).
3. PlayCountModel vs the same model written as a bambi formula (same data, draws, seeds).

Usage: python benchmarks/bench_listening.py [--users 100000] [--draws 300] [--tune 300]
       [--sampler pymc|nutpie] [--skip-large] [--skip-bambi]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
import warnings

import arviz as az
import numpy as np
import pandas as pd

from models.listening import PlayCountModel

DOW = np.array([-0.1, -0.1, -0.05, 0.0, 0.05, 0.15, 0.05])


def simulate(n_users, n_days, *, intercept=1.0, sigma_user=0.8, alpha=1.5, seed=0):
    rng = np.random.default_rng(seed)
    country = rng.choice(["BR", "SE", "US"], n_users)
    plan = rng.choice(["free", "premium"], n_users)
    theta = (intercept + np.where(country == "SE", 0.2, 0.0) + np.where(plan == "premium", 0.3, 0)
             + sigma_user * rng.normal(size=n_users))
    days = pd.date_range("2025-01-06", periods=n_days, freq="D")
    mu = np.exp(theta[:, None] + DOW[days.day_of_week.to_numpy()][None, :])
    y = rng.poisson(rng.gamma(alpha, mu / alpha))
    ids = np.array([f"u{i:06d}" for i in range(n_users)], dtype=object)
    return pd.DataFrame({"user_id": np.repeat(ids, n_days), "period_start": np.tile(days, n_users),
                         "country": np.repeat(country, n_days), "plan": np.repeat(plan, n_days),
                         "plays": y.ravel()})


def ess_per_s(idata, names, seconds):
    ess = az.ess(idata, var_names=names, method="bulk")
    return {n: float(np.min(ess[n].values)) / seconds for n in names}


def timed_fit(model, data, **kw):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data, **kw)
    wall = time.perf_counter() - t0
    st = model.idata_["sample_stats"]
    return wall, int(st["diverging"].sum()) if "diverging" in st else -1


def bench_large(args):
    data = simulate(args.users, 28, seed=1)
    m = PlayCountModel()
    t0 = time.perf_counter()
    clean = m._validate_data(data)
    cells, _ = m.cell_statistics(clean)
    prep = time.perf_counter() - t0
    print(f"[large] {args.users} users x 28 days = {len(data):,} rows -> {len(cells):,} cells "
          f"(prep {prep:.1f}s)")
    for noncentered in (False, True):
        m = PlayCountModel(noncentered=noncentered)
        wall, div = timed_fit(m, data, draws=args.draws, tune=args.tune, chains=2, cores=2,
                              sampler=args.sampler, random_seed=1)
        sampling = float(m.idata_["posterior"].attrs.get("sampling_time", np.nan))
        e = ess_per_s(m.idata_, ["intercept", "sigma_user", "alpha"], wall)
        print(f"[large] noncentered={noncentered} sampler={args.sampler} draws={args.draws} "
              f"tune={args.tune}: wall {wall:.0f}s (sampling {sampling:.0f}s), divergences {div}, "
              f"min bulk ESS/s " + ", ".join(f"{k} {v:.2f}" for k, v in e.items()))


def bench_parametrisation(args):
    # Sparse: 1,000 users with 3 days each and low rates (little information per user).
    # Rich: 300 users with 28 days each (each user's rate is pinned down by the data).
    for label, data in [("sparse 1000x3, mean 0.5", simulate(1000, 3, intercept=-1.2, seed=2)),
                        ("rich 300x28, mean 3", simulate(300, 28, seed=3))]:
        for noncentered in (True, False):
            m = PlayCountModel(noncentered=noncentered)
            wall, div = timed_fit(m, data, draws=args.small_draws, tune=args.small_draws,
                                  chains=2, cores=2, random_seed=5)
            e = ess_per_s(m.idata_, ["sigma_user", "intercept"], wall)
            rhat = float(az.rhat(m.idata_, var_names=["sigma_user"])["sigma_user"])
            print(f"[param] {label}: noncentered={noncentered}: wall {wall:.0f}s, divergences "
                  f"{div}, R-hat(sigma_user) {rhat:.3f}, bulk ESS/s sigma_user "
                  f"{e['sigma_user']:.1f}, intercept {e['intercept']:.1f}")


def bench_bambi(args):
    if importlib.util.find_spec("bambi") is None:
        print("[bambi] skipped: bambi is not installed")
        return
    import bambi as bmb

    data = simulate(args.bambi_users, 28, seed=4)
    ours = PlayCountModel()
    wall, div = timed_fit(ours, data, draws=args.small_draws, tune=args.small_draws, chains=2,
                          cores=2, random_seed=6)
    e = ess_per_s(ours.idata_, ["intercept", "sigma_user", "alpha"], wall)
    print(f"[bambi] PlayCountModel {args.bambi_users}x28: wall {wall:.0f}s, divergences {div}, "
          "bulk ESS/s " + ", ".join(f"{k} {v:.1f}" for k, v in e.items()))
    frame = data.assign(dow=data["period_start"].dt.day_of_week.astype(str))
    priors = {"Intercept": bmb.Prior("Normal", mu=0, sigma=2.5),
              "1|user_id": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=1.0)),
              "1|country": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=0.5)),
              "1|plan": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=0.5)),
              "alpha": bmb.Prior("Gamma", alpha=2.0, beta=0.5)}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm = bmb.Model("plays ~ 1 + dow + (1|country) + (1|plan) + (1|user_id)", frame,
                       family="negativebinomial", priors=priors)
        theirs = bm.fit(draws=args.small_draws, tune=args.small_draws, chains=2, cores=2,
                        random_seed=6, progressbar=False)
    wall_b = time.perf_counter() - t0
    div_b = int(theirs["sample_stats"]["diverging"].sum())
    e = ess_per_s(theirs, ["Intercept", "1|user_id_sigma", "alpha"], wall_b)
    print(f"[bambi] bambi same model (treatment-coded dow): wall {wall_b:.0f}s, divergences "
          f"{div_b}, bulk ESS/s " + ", ".join(f"{k} {v:.1f}" for k, v in e.items()))
    for a, b in [("sigma_user", "1|user_id_sigma"), ("alpha", "alpha")]:
        print(f"[bambi] posterior mean {a}: ours {float(ours.idata_['posterior'][a].mean()):.4f}"
              f", bambi {float(theirs['posterior'][b].mean()):.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--small-draws", type=int, default=500)
    parser.add_argument("--bambi-users", type=int, default=500)
    parser.add_argument("--sampler", choices=["pymc", "nutpie"], default="pymc")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-bambi", action="store_true")
    parser.add_argument("--skip-param", action="store_true")
    args = parser.parse_args()
    if not args.skip_param:
        bench_parametrisation(args)
    if not args.skip_bambi:
        bench_bambi(args)
    if not args.skip_large:
        bench_large(args)


if __name__ == "__main__":
    main()
