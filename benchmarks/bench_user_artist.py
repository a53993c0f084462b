"""UserArtistModel on Last.fm HetRec 2011: likelihoods, samplers and the full 92k-pair fit.

Parts (``--part``):

* ``compare``: on the documented subset (artists with >= 150 listeners in the full data,
  user ids <= 300: 2,638 pairs, 265 users, 69 artists) fit the four likelihoods with NUTS,
  compare them by PSIS-LOO (with Pareto-k counts), compute posterior predictive p-values and
  draw posterior predictive count plots (``models.diagnostics.plot_ppc_counts``).
* ``samplers``: the same subset and the negative binomial, PyMC's NUTS against nutpie.
* ``full``: all 92,834 pairs (1,892 users, 17,632 artists) with nutpie NUTS and with ADVI.

Run from the repository root::

    python benchmarks/bench_user_artist.py --part compare --out benchmarks/results/user_artist

Each part writes ``<part>.json`` (times, diagnostics, tables) and figures to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from models.diagnostics import check_fit, compare_models, plot_ppc_counts, ppc_pvalue
from models.listening.user_artist import LIKELIHOODS, UserArtistModel

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lastfm-hetrec2011"


def load_lastfm(path: Path = DATA / "user_artists.dat") -> pd.DataFrame:
    return pd.read_csv(path, sep="\t").rename(
        columns={"userID": "user_id", "artistID": "artist_id", "weight": "plays"})


def lastfm_subset(data: pd.DataFrame, min_listeners: int = 150, max_user_id: int = 300):
    listeners = data.groupby("artist_id").size()
    keep = data["artist_id"].isin(listeners.index[listeners >= min_listeners])
    return data[keep & (data["user_id"] <= max_user_id)].reset_index(drop=True)


def fit_timed(model: UserArtistModel, data: pd.DataFrame, **kwargs) -> tuple:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data, **kwargs)
    return model, time.perf_counter() - start


def report_dict(model: UserArtistModel, seconds: float) -> dict:
    report = model.fit_report_
    post = model.idata_["posterior"]
    out = {"seconds": round(seconds, 1), "verdict": report.verdict,
           "summary": model.summary().round(4).to_dict(orient="index")}
    if "sample_stats" in model.idata_.children:
        stats = model.idata_["sample_stats"]
        out["divergences"] = int(stats["diverging"].sum()) if "diverging" in stats else None
        steps = next((stats[n] for n in ("n_steps", "tree_size") if n in stats), None)
        out["mean_leapfrog_steps"] = None if steps is None else float(steps.mean())
        names = model._parameter_names()
        rhat = check_fit(model.idata_, var_names=names).variables
        out["max_rhat"] = float(rhat["rhat"].max())
        out["min_ess_bulk"] = float(rhat["ess_bulk"].min())
    out["n_draws"] = int(post.sizes["chain"] * post.sizes["draw"])
    return out


def part_compare(data: pd.DataFrame, out: Path, draws: int, tune: int, seed: int) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    subset = lastfm_subset(data)
    fits, results = {}, {}
    fig = Figure(figsize=(14, 8))
    axes = fig.subplots(2, 2).ravel()
    for ax, likelihood in zip(axes, LIKELIHOODS, strict=True):
        model, seconds = fit_timed(UserArtistModel(likelihood=likelihood), subset, draws=draws,
                                   tune=tune, chains=2, cores=2, sampler="nutpie",
                                   random_seed=seed, log_likelihood=True)
        model.sample_posterior_predictive(random_seed=seed)
        results[likelihood] = report_dict(model, seconds)
        results[likelihood]["ppc_pvalues"] = {
            s: round(ppc_pvalue(model.idata_, "plays", s), 3) for s in ("median", "sd", "max")}
        plot_ppc_counts(model.idata_, "plays", ax=ax, max_count=40, random_seed=seed)
        ax.set_title(f"{likelihood} (zero-truncated)")
        fits[likelihood] = model.idata_
        print(likelihood, json.dumps({k: v for k, v in results[likelihood].items()
                                      if k != "summary"}), flush=True)
    fig.savefig(out / "ppc_counts_subset.png", dpi=110, bbox_inches="tight")
    table = compare_models(fits, var_name="plays")
    print(table.to_markdown(floatfmt=".3f"), flush=True)
    quantile_plot(fits, subset, out / "ppc_quantiles_subset.png")
    return {"n_pairs": len(subset), "n_users": int(subset["user_id"].nunique()),
            "n_artists": int(subset["artist_id"].nunique()), "fits": results,
            "loo": json.loads(table.to_json(orient="index"))}


def quantile_plot(fits: dict, subset: pd.DataFrame, path: Path) -> None:
    """Observed against posterior predictive quantiles of log10 plays (the heavy tail)."""
    from matplotlib.figure import Figure

    probs = np.linspace(0.01, 0.999, 80)
    observed = np.quantile(np.log10(subset["plays"]), probs)
    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    for name, idata in fits.items():
        pp = idata["posterior_predictive"]["plays"].values.reshape(-1, len(subset))[::10]
        q = np.quantile(np.log10(pp), probs, axis=1).mean(axis=1)
        ax.plot(observed, q, label=name)
    ax.plot(observed, observed, "k--", lw=1, label="observed = predicted")
    ax.set_xlabel("observed quantile of log10 plays")
    ax.set_ylabel("posterior predictive quantile of log10 plays")
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def part_samplers(data: pd.DataFrame, out: Path, draws: int, tune: int, seed: int) -> dict:
    subset = lastfm_subset(data)
    results = {}
    for sampler in ("nutpie", "pymc"):
        model, seconds = fit_timed(UserArtistModel(), subset, draws=draws, tune=tune, chains=2,
                                   cores=2, sampler=sampler, random_seed=seed)
        results[sampler] = report_dict(model, seconds)
        print(sampler, json.dumps({k: v for k, v in results[sampler].items() if k != "summary"}),
              flush=True)
    return results


def part_full(data: pd.DataFrame, out: Path, draws: int, tune: int, seed: int,
              likelihood: str, chains: int) -> dict:
    results = {"n_pairs": len(data), "likelihood": likelihood}
    model, seconds = fit_timed(UserArtistModel(likelihood=likelihood), data, method="advi",
                               advi_steps=30_000, draws=1000, random_seed=seed)
    results["advi"] = report_dict(model, seconds)
    loss = model.idata_["advi_loss"]["loss"].values
    results["advi"]["final_loss"] = float(np.mean(loss[-1000:]))
    print("advi", json.dumps(results["advi"]), flush=True)
    model, seconds = fit_timed(UserArtistModel(likelihood=likelihood), data, draws=draws,
                               tune=tune, chains=chains, cores=min(chains, os.cpu_count() or 1),
                               sampler="nutpie", random_seed=seed)
    results["nuts_nutpie"] = report_dict(model, seconds)
    print("nutpie", json.dumps(results["nuts_nutpie"]), flush=True)
    ranking = model.artist_popularity_ranking(random_seed=seed).head(15)
    results["top_artists"] = json.loads(ranking.to_json(orient="index"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["compare", "samplers", "full"], required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/user_artist"))
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--likelihood", choices=LIKELIHOODS, default="negbin")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_lastfm()
    start = time.perf_counter()
    if args.part == "compare":
        result = part_compare(data, args.out, args.draws, args.tune, args.seed)
    elif args.part == "samplers":
        result = part_samplers(data, args.out, args.draws, args.tune, args.seed)
    else:
        result = part_full(data, args.out, args.draws, args.tune, args.seed, args.likelihood,
                           args.chains)
    result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                         "total_seconds": round(time.perf_counter() - start, 1)}
    (args.out / f"{args.part}.json").write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
