"""Benchmarks of models.listening.PlayCountModel, printed as markdown tables.

1. PlayCountModel vs the same model written as a bambi formula: same data, draws, tuning,
   chains and seed; wall time, bulk ESS/s and their ratios. Two models: one bambi expresses
   exactly (intercept + user effect, NB), and the default model (segments and day of week),
   which bambi codes differently (treatment-coded day of week and hierarchical segment
   intercepts instead of sum-to-zero effects), so only its timings are comparable.
2. Centred vs non-centred user effects on sparse data (few periods and low rates per user)
   and dense data (many informative periods per user): divergences, R-hat, bulk ESS/s.
3. NUTS on N users x 28 days (default 100,000; target under 2 minutes on 2 cores), with
   lognormal user effects (one sampled parameter per user) and, 3b, with Gamma user rates
   integrated out (``user_effect="gamma"``, Poisson days; data from that model).
4. ADVI (full batch) on M users (default 1,000,000) x 14 days, and its accuracy against NUTS
   on a subset of users (posterior means and sds of the population parameters).

Minibatch ADVI does not pay here: every user has its own latent effect, so a minibatch of B
users updates only B of the U user parameters per step and needs about U / B times more steps
for the same progress; the full-batch gradient is already one compiled pass over the
users x day-of-week grid of sufficient statistics.

Usage: python benchmarks/bench_listening.py [--quick] [--users 100000] [--advi-users 1000000]
       [--draws 300] [--tune 300] [--sampler pymc|nutpie] [--gamma-draws 1000]
       [--skip bambi,param,nuts,gamma,advi]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor

from models.listening import PlayCountModel

DOW = np.array([-0.1, -0.1, -0.05, 0.0, 0.05, 0.15, 0.05])
POPULATION = ["intercept", "sigma_user", "alpha"]
#: The simulated users' segments: the benchmarked model has segment effects (opted into).
SEGMENTS = ("country", "plan")


def simulate(n_users, n_days, *, intercept=1.0, sigma_user=0.8, alpha=1.5, seed=0):
    """Plays of the default PlayCountModel's process (integer user ids to save memory)."""
    rng = np.random.default_rng(seed)
    country = rng.choice(np.array(["BR", "SE", "US"], dtype=object), n_users)
    plan = rng.choice(np.array(["free", "premium"], dtype=object), n_users)
    theta = (intercept + np.where(country == "SE", 0.2, 0.0) + np.where(plan == "premium", 0.3, 0)
             + sigma_user * rng.normal(size=n_users))
    days = pd.date_range("2025-01-06", periods=n_days, freq="D")
    mu = np.exp(theta[:, None] + DOW[days.day_of_week.to_numpy()][None, :])
    y = rng.poisson(rng.gamma(alpha, mu / alpha))
    return pd.DataFrame({"user_id": np.repeat(np.arange(n_users), n_days),
                         "period_start": np.tile(days, n_users),
                         "country": np.repeat(country, n_days), "plan": np.repeat(plan, n_days),
                         "plays": y.ravel()})


def min_ess(idata, names):
    ess = az.ess(idata, var_names=names, method="bulk")
    return min(float(np.min(ess[n].values)) for n in names)


def run(fit):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fit()
    return out, time.perf_counter() - t0


def n_divergent(idata):
    return int(idata["sample_stats"]["diverging"].sum())


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    print("\n".join(lines) + "\n", flush=True)


def bench_bambi(args):
    print(f"### PlayCountModel vs bambi ({args.bambi_users} users x 28 days, "
          f"{args.small_draws} draws + {args.small_draws} tune, 2 chains on 2 cores)\n")
    if importlib.util.find_spec("bambi") is None:
        print("bambi is not installed: skipped\n")
        return
    import bambi as bmb

    data = simulate(args.bambi_users, 28, seed=4)
    frame = data.assign(user_id=data["user_id"].astype(str),
                        dow=data["period_start"].dt.day_of_week.astype(str))
    kw = {"draws": args.small_draws, "tune": args.small_draws, "chains": 2, "cores": 2,
          "random_seed": 6}
    user_prior = bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=1.0))
    base_priors = {"Intercept": bmb.Prior("Normal", mu=0, sigma=2.5), "1|user_id": user_prior,
                   "alpha": bmb.Prior("Gamma", alpha=2.0, beta=0.5)}
    cases = [
        ("intercept + user, NB (identical model)", PlayCountModel(groups=(), period_effects=()),
         "plays ~ 1 + (1|user_id)", base_priors),
        ("segments + day of week (coding differs)", PlayCountModel(groups=SEGMENTS),
         "plays ~ 1 + dow + (1|country) + (1|plan) + (1|user_id)",
         {**base_priors,
          "1|country": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=0.5)),
          "1|plan": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=0.5))}),
    ]
    rows = []
    for label, ours, formula, priors in cases:
        _, wall = run(lambda ours=ours: ours.fit(data, sampler=args.sampler, **kw))
        ess = min_ess(ours.idata_, POPULATION)
        bm = bmb.Model(formula, frame, family="negativebinomial", priors=priors)
        theirs, wall_b = run(lambda bm=bm: bm.fit(progressbar=False, **kw))
        ess_b = min_ess(theirs, ["Intercept", "1|user_id_sigma", "alpha"])
        sig, sig_b = (float(ours.idata_["posterior"]["sigma_user"].mean()),
                      float(theirs["posterior"]["1|user_id_sigma"].mean()))
        rows.append([label, f"{wall:.1f}", f"{wall_b:.1f}", f"{wall_b / wall:.1f}x",
                     f"{ess / wall:.1f}", f"{ess_b / wall_b:.1f}",
                     f"{(ess / wall) / (ess_b / wall_b):.1f}x",
                     f"{n_divergent(ours.idata_)} / {n_divergent(theirs)}",
                     f"{sig:.3f} / {sig_b:.3f}"])
    table(["model", "ours wall s", "bambi wall s", "bambi/ours wall",
           "ours min bulk ESS/s", "bambi min bulk ESS/s", "ESS/s ratio", "divergences",
           "sigma_user mean ours / bambi"], rows)


def bench_parametrisation(args):
    n_sparse, n_dense = args.param_users
    print(f"### Centred vs non-centred user effects ({args.small_draws} draws + "
          f"{args.small_draws} tune, 2 chains)\n")
    cases = [(f"sparse: {n_sparse} users x 7 days, mean 0.3 plays",
              simulate(n_sparse, 7, intercept=-1.2, seed=2)),
             (f"dense: {n_dense} users x 28 days, mean 3 plays", simulate(n_dense, 28, seed=3))]
    rows = []
    for label, data in cases:
        for noncentered in (True, False):
            m = PlayCountModel(groups=SEGMENTS, noncentered=noncentered)
            _, wall = run(lambda m=m, data=data: m.fit(
                data, draws=args.small_draws, tune=args.small_draws, chains=2, cores=2,
                sampler=args.sampler, random_seed=5))
            ess = az.ess(m.idata_, var_names=["sigma_user", "intercept"], method="bulk")
            rhat = float(az.rhat(m.idata_, var_names=["sigma_user"])["sigma_user"])
            rows.append([label, "non-centred" if noncentered else "centred", f"{wall:.1f}",
                         n_divergent(m.idata_), f"{rhat:.3f}",
                         f"{float(ess['sigma_user']) / wall:.1f}",
                         f"{float(ess['intercept']) / wall:.1f}"])
    table(["data", "parametrisation", "wall s", "divergences", "R-hat sigma_user",
           "bulk ESS/s sigma_user", "bulk ESS/s intercept"], rows)


def bench_nuts(args):
    data = simulate(args.users, 28, seed=1)
    m = PlayCountModel(groups=SEGMENTS)
    t0 = time.perf_counter()
    clean = m._validate_data(data)
    cells, _ = m.cell_statistics(clean)
    prep = time.perf_counter() - t0
    auto = "non-centred" if m._is_noncentered(clean) else "centred"
    print(f"### NUTS on {args.users:,} users x 28 days ({len(data):,} rows -> {len(cells):,} "
          f"cells, validation + compression {prep:.1f} s; {args.draws} draws + {args.tune} "
          f"tune, 2 chains on 2 cores, sampler {args.sampler}; the default "
          f"noncentered='auto' picks {auto})\n")
    rows = []
    for noncentered in [{"non-centred": True, "centred": False}[p] for p in args.nuts_param]:
        m = PlayCountModel(groups=SEGMENTS, noncentered=noncentered)
        _, wall = run(lambda m=m: m.fit(data, draws=args.draws, tune=args.tune, chains=2,
                                        cores=2, sampler=args.sampler, random_seed=1))
        rhat = az.rhat(m.idata_, var_names=POPULATION)
        ess = min_ess(m.idata_, POPULATION)
        rows.append(["non-centred" if noncentered else "centred", f"{wall:.0f}",
                     "yes" if wall < 120 else "no", n_divergent(m.idata_),
                     f"{max(float(rhat[n].max()) for n in POPULATION):.3f}",
                     f"{ess:.0f}", f"{ess / wall:.2f}", m.fit_report_.verdict])
    table(["parametrisation", "wall s (total fit)", "< 2 min", "divergences",
           "max R-hat (population)", "min bulk ESS (population)", "min bulk ESS/s", "verdict"],
          rows)


def simulate_gamma(n_users, n_days, *, intercept=1.0, shape=1.5, seed=0):
    """Plays of PlayCountModel(user_effect="gamma")'s process: Gamma user rates, Poisson days."""
    rng = np.random.default_rng(seed)
    country = rng.choice(np.array(["BR", "SE", "US"], dtype=object), n_users)
    plan = rng.choice(np.array(["free", "premium"], dtype=object), n_users)
    log_m = intercept + np.where(country == "SE", 0.2, 0.0) + np.where(plan == "premium", 0.3, 0)
    lam = rng.gamma(shape, 1.0 / shape, n_users)
    days = pd.date_range("2025-01-06", periods=n_days, freq="D")
    y = rng.poisson(lam[:, None] * np.exp(log_m[:, None] + DOW[days.day_of_week.to_numpy()]))
    return pd.DataFrame({"user_id": np.repeat(np.arange(n_users), n_days),
                         "period_start": np.tile(days, n_users),
                         "country": np.repeat(country, n_days), "plan": np.repeat(plan, n_days),
                         "plays": y.ravel()})


def bench_nuts_gamma(args):
    """NUTS with the Gamma user rates integrated out, on data of its own process."""
    n_users, draws = args.users, args.gamma_draws
    data = simulate_gamma(n_users, 28, seed=3)
    truth = {"intercept": 1.0 + 0.2 / 3 + 0.15, "user_shape": 1.5,
             "saturday effect": DOW[5] - DOW.mean()}
    print(f"### NUTS with Gamma user rates integrated out: {n_users:,} users x 28 days "
          f"({len(data):,} rows; PlayCountModel(user_effect='gamma', likelihood='poisson'); "
          f"{draws} draws + {draws} tune, 2 chains on 2 cores; simulated from that model)\n")
    rows = []
    for sampler in args.gamma_samplers:
        m = PlayCountModel(user_effect="gamma", likelihood="poisson")
        _, wall = run(lambda m=m, sampler=sampler: m.fit(
            data, draws=draws, tune=draws, chains=2, cores=2, sampler=sampler, random_seed=1))
        names = ["intercept", "user_shape", "day_of_week_effect"]
        rhat = az.rhat(m.idata_, var_names=names)
        ess = min_ess(m.idata_, names)
        post = m.idata_["posterior"]
        est = {"intercept": post["intercept"].values.ravel(),
               "user_shape": post["user_shape"].values.ravel(),
               "saturday effect": post["day_of_week_effect"].values[..., 5].ravel()}
        cover = ", ".join(f"{k} {truth[k]:.3f} in [{np.quantile(v, 0.05):.3f}, "
                          f"{np.quantile(v, 0.95):.3f}]" for k, v in est.items())
        steps = float(m.idata_["sample_stats"]["n_steps"].mean())
        rows.append([sampler, f"{wall:.1f}", "yes" if wall < 120 else "no",
                     n_divergent(m.idata_), f"{max(float(rhat[n].max()) for n in names):.3f}",
                     f"{ess:.0f}", f"{ess / wall:.0f}", f"{steps:.1f}", m.fit_report_.verdict,
                     cover])
    table(["sampler", "wall s (total fit)", "< 2 min", "divergences", "max R-hat", "min bulk ESS",
           "min bulk ESS/s", "leapfrog steps per draw", "verdict", "truth in 90% interval"], rows)


def population_moments(post):
    """Mean and sd of the population parameters, from a posterior (dataset or dict)."""
    out = {n: np.asarray(post[n]).ravel() for n in POPULATION}
    dow = np.asarray(post["day_of_week_effect"]).reshape(-1, 7)
    out["saturday effect"] = dow[:, 5]
    return {k: (float(v.mean()), float(v.std())) for k, v in out.items()}


def fit_advi(data, steps, learning_rate, seed):
    """Mean-field ADVI on PlayCountModel's PyMC model with Adam (PyMC's default optimiser,
    adagrad_window at 0.001, has not converged after 5,000 steps at these sizes)."""
    model = PlayCountModel(groups=SEGMENTS).build_model(data)
    with model:
        approx = pm.fit(n=steps, method="advi", random_seed=seed, progressbar=False,
                        obj_optimizer=pm.adam(learning_rate=learning_rate))
        # draws of the population parameters only: 1000 draws of 1M user effects would
        # hold 8 GB (approx.sample(1000) was killed for memory on 1M users)
        names = [*POPULATION, "day_of_week_effect"]
        nodes = approx.sample_node([model[n] for n in names], size=1000)
        post = dict(zip(names, pytensor.function([], nodes)(), strict=True))
    return post, np.asarray(approx.hist)


def bench_advi(args):
    print(f"### ADVI (mean-field, full batch, Adam at {args.advi_lr}, {args.advi_steps} steps)\n")
    subset = simulate(args.subset_users, 28, seed=7)
    nuts = PlayCountModel(groups=SEGMENTS)
    _, wall_n = run(lambda: nuts.fit(subset, draws=args.draws, tune=args.tune, chains=2,
                                     cores=2, sampler=args.sampler, random_seed=2))
    (advi, _), wall_a = run(lambda: fit_advi(subset, args.advi_steps, args.advi_lr, 2))
    ref, approx = population_moments(nuts.idata_["posterior"]), population_moments(advi)
    rows = [[name, f"{ref[name][0]:.4f} ({ref[name][1]:.4f})",
             f"{approx[name][0]:.4f} ({approx[name][1]:.4f})",
             f"{(approx[name][0] - ref[name][0]) / ref[name][1]:+.2f}",
             f"{approx[name][1] / ref[name][1]:.2f}"] for name in ref]
    print(f"Accuracy on {args.subset_users:,} users x 28 days (NUTS {wall_n:.0f} s, "
          f"ADVI {wall_a:.0f} s):\n")
    table(["parameter", "NUTS mean (sd)", "ADVI mean (sd)", "mean error in NUTS sds",
           "ADVI sd / NUTS sd"], rows)
    data = simulate(args.advi_users, 14, seed=8)
    (big, loss), wall = run(lambda: fit_advi(data, args.advi_steps, args.advi_lr, 3))
    est = population_moments(big)
    truth = {"intercept": 1.0 + 0.2 / 3 + 0.15, "sigma_user": 0.8, "alpha": 1.5,
             "saturday effect": DOW[5] - DOW.mean()}
    print(f"ADVI on {args.advi_users:,} users x 14 days ({len(data):,} rows): {wall:.0f} s "
          f"total; loss over the last 10% of steps {np.mean(loss[-len(loss) // 10:]):.4g} "
          f"(first 10%: {np.mean(loss[:len(loss) // 10]):.4g})\n")
    table(["parameter", "truth", "ADVI mean (sd)"],
          [[n, f"{truth[n]:.4f}", f"{est[n][0]:.4f} ({est[n][1]:.4f})"] for n in truth])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, to check that the script runs")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--advi-users", type=int, default=1_000_000)
    parser.add_argument("--subset-users", type=int, default=5_000)
    parser.add_argument("--advi-steps", type=int, default=5_000)
    parser.add_argument("--advi-lr", type=float, default=0.1)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--small-draws", type=int, default=500)
    parser.add_argument("--bambi-users", type=int, default=300)
    parser.add_argument("--sampler", choices=["pymc", "nutpie"], default="pymc")
    parser.add_argument("--gamma-draws", type=int, default=1000)
    parser.add_argument("--gamma-samplers", default="pymc,nutpie")
    parser.add_argument("--skip", default="",
                        help="comma-separated: bambi,param,nuts,gamma,advi")
    parser.add_argument("--nuts-param", default="non-centred,centred",
                        help="parametrisations of the NUTS fit on --users (comma list)")
    args = parser.parse_args()
    args.nuts_param = [p for p in args.nuts_param.split(",") if p]
    args.gamma_samplers = [p for p in args.gamma_samplers.split(",") if p]
    if set(args.nuts_param) - {"non-centred", "centred"}:
        parser.error("--nuts-param takes non-centred and/or centred")
    args.param_users = (1000, 300)
    if args.quick:
        args.users, args.advi_users, args.subset_users = 500, 2_000, 200
        args.advi_steps, args.draws, args.tune, args.small_draws = 300, 100, 100, 100
        args.bambi_users, args.param_users, args.gamma_draws = 30, (100, 30), 100
    skip = set(filter(None, args.skip.split(",")))
    print(f"## bench_listening.py ({'quick' if args.quick else 'full'} run)\n")
    if "bambi" not in skip:
        bench_bambi(args)
    if "param" not in skip:
        bench_parametrisation(args)
    if "nuts" not in skip:
        bench_nuts(args)
    if "gamma" not in skip:
        bench_nuts_gamma(args)
    if "advi" not in skip:
        bench_advi(args)


if __name__ == "__main__":
    main()
