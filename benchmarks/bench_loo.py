"""PSIS-LOO: ``models.diagnostics`` (vectorised over observations) vs ``arviz.loo``.

A normal regression's pointwise log-likelihood with autocorrelated posterior draws (so the
relative efficiency is below 1 and the Pareto tails are long), the size of the main job's
listening comparison by default (22,265 observations x 4 chains x 1,000 draws), a few
outlying observations (Pareto k above 0.7). Both functions run in this process on the same
tree, best of ``--repeats``; the script prints their times, the ratio and the largest
differences of the results (elpd, its standard error, p_loo, every pointwise elpd and
Pareto k).

Run: python benchmarks/bench_loo.py [--observations 22265] [--draws 1000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time
import warnings

import arviz as az
import numpy as np
import xarray as xr

from models.diagnostics.compare import _loo


def simulate(n_obs, chains, draws, seed=0):
    """Tree with a posterior (mu, log_s, beta) and the pointwise normal log-likelihood."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(chains, draws, 3))
    th = np.empty_like(e)
    th[:, 0] = e[:, 0]
    for t in range(1, draws):  # AR(1) draws: relative efficiency well below 1
        th[:, t] = 0.7 * th[:, t - 1] + np.sqrt(1 - 0.49) * e[:, t]
    mu, log_s, beta = 0.05 * th[..., 0], 0.03 * th[..., 1], 0.04 * th[..., 2]
    x, y = rng.normal(size=n_obs), rng.normal(size=n_obs)
    y[:5] = [4.0, 6.0, 9.0, 14.0, -8.0]
    ll = np.empty((chains, draws, n_obs))
    for c in range(chains):  # one chain at a time keeps the temporaries small
        z = (y - mu[c, :, None] - beta[c, :, None] * x) / np.exp(log_s[c])[:, None]
        ll[c] = -0.5 * z**2 - log_s[c][:, None] - 0.5 * np.log(2 * np.pi)
    posterior = xr.Dataset({"mu": (("chain", "draw"), mu), "log_s": (("chain", "draw"), log_s),
                            "beta": (("chain", "draw"), beta)})
    loglik = xr.DataArray(ll, dims=("chain", "draw", "obs"), name="y").to_dataset()
    return xr.DataTree.from_dict({"posterior": posterior, "log_likelihood": loglik})


def best_of(func, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - start)
    return min(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=22_265)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    idata = simulate(args.observations, args.chains, args.draws)
    _loo(simulate(200, 2, 100), "y")  # compile the numba kernels outside the timing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s_ours, ours = best_of(lambda: _loo(idata, "y"), args.repeats)
        s_az, ref = best_of(lambda: az.loo(idata, pointwise=True, var_name="y"), args.repeats)

    def rel(a, b):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)))

    print(f"| observations x draws | ours s | az.loo s | ratio | max k | elpd | se | p_loo | "
          f"pointwise elpd | Pareto k |\n|---|---|---|---|---|---|---|---|---|---|\n"
          f"| {args.observations:,} x {args.chains * args.draws:,} | {s_ours:.1f} | {s_az:.1f} "
          f"| {s_ours / s_az:.2f}x | {float(np.nanmax(ref.pareto_k)):.2f} "
          f"| {rel(ours.elpd, ref.elpd):.1e} | {rel(ours.se, ref.se):.1e} "
          f"| {rel(ours.p, ref.p):.1e} | {rel(ours.elpd_i, ref.elpd_i):.1e} "
          f"| {rel(ours.pareto_k, ref.pareto_k):.1e} |")


if __name__ == "__main__":
    main()
