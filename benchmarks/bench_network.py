"""Benchmark: co-listening graph construction and block-model fit times.

Graph construction from simulated plays (Zipf artist popularity within genre communities;
users mostly listen to one community) with ``build_colistening_graph`` against networkx's
``bipartite.weighted_projected_graph`` and a pandas self-merge on (user, artist) pairs.
Each method runs in a fresh process (so peak memory is its own) on sizes growing 10x, and
stops after a size that took over a tenth of ``LIMIT_S`` (the next would take over the limit);
ratios are taken at the largest size both finished. "ours (edge list)" is
``colistening_edges``; "ours (nx.Graph)" adds building the networkx graph, whose cost is
networkx's object model (about 15 s per million edges here), not the computation.
Then model fit times vs graph size (100, 1,000, 5,000 nodes, planted 4-block graphs of
average degree about 10): StochasticBlockModel (collapsed Gibbs) and LatentSpaceModel (NUTS
up to ``NUTS_MAX_NODES`` nodes; above, ADVI with a case-control sample of 5 non-edges per
edge).

Run: python benchmarks/bench_network.py [--quick] [--models-only]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import threading
import time
import warnings

import networkx as nx
import numpy as np
import pandas as pd
import psutil
from networkx.algorithms import bipartite

from models.network import (
    LatentSpaceModel,
    StochasticBlockModel,
    build_colistening_graph,
    colistening_edges,
)

LIMIT_S = 60.0
#: Largest graph the LatentSpaceModel benchmark fits with NUTS (all pairs in the likelihood).
NUTS_MAX_NODES = 100
MODEL_SIZES = [100, 1_000, 5_000]
#: Largest pandas self-merge attempted (rows); ~200M rows need well over 10 GB.
MAX_MERGE_ROWS = 200_000_000
SIZES = [  # (plays, users, artists)
    (10_000, 100, 20),
    (100_000, 1_000, 200),
    (1_000_000, 10_000, 2_000),
    (10_000_000, 100_000, 20_000),
]


def simulate_plays(n_plays, n_users, n_artists, n_communities=20, seed=0):
    """Plays with numpy: each user has a home community (80% of plays), Zipf artists."""
    rng = np.random.default_rng(seed)
    community = np.arange(n_artists) % n_communities
    rank = np.empty(n_artists)
    for c in range(n_communities):
        members = np.flatnonzero(community == c)
        rank[members] = np.arange(1, members.size + 1)
    popularity = rank**-1.0
    home = rng.integers(0, n_communities, n_users)
    user = rng.integers(0, n_users, n_plays)
    comm = np.where(rng.random(n_plays) < 0.8, home[user], rng.integers(0, n_communities, n_plays))
    # Choose an artist within the community by inverse-CDF of its Zipf weights.
    order = np.argsort(community, kind="stable")
    weights = popularity[order]
    starts = np.searchsorted(community[order], np.arange(n_communities))
    cum = np.cumsum(weights)
    base = np.where(starts > 0, cum[starts - 1], 0.0)
    total = np.r_[cum[starts[1:] - 1], cum[-1]] - base
    target = base[comm] + rng.random(n_plays) * total[comm]
    artist = order[np.minimum(np.searchsorted(cum, target), n_artists - 1)]
    return pd.DataFrame({"user_id": user, "artist_id": artist})


class PeakMemory:
    """Peak resident memory above the starting level, sampled every 5 ms."""

    def __enter__(self):
        gc.collect()
        self.process = psutil.Process(os.getpid())
        self.base = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.mb = (self.peak - self.base) / 2**20


def ours(log):
    return build_colistening_graph(log, min_common=2).number_of_edges()


def ours_edge_list(log):
    return len(colistening_edges(log, min_common=2))


def with_networkx(log):
    pairs = log.drop_duplicates()
    g = nx.Graph()
    users = [("u", u) for u in pairs["user_id"].unique()]
    g.add_nodes_from(users, bipartite=0)
    g.add_edges_from(zip([("u", u) for u in pairs["user_id"]], pairs["artist_id"], strict=True))
    projected = bipartite.weighted_projected_graph(g, pairs["artist_id"].unique())
    return sum(1 for _, _, w in projected.edges(data="weight") if w >= 2)


def with_pandas(log):
    pairs = log[["user_id", "artist_id"]].drop_duplicates()
    merged = pairs.merge(pairs, on="user_id")
    merged = merged[merged["artist_id_x"] < merged["artist_id_y"]]
    common = merged.groupby(["artist_id_x", "artist_id_y"]).size()
    return int((common >= 2).sum())


def _child(name, plays, users, artists, queue):
    log = simulate_plays(plays, users, artists)
    with PeakMemory() as mem:
        start = time.perf_counter()
        edges = METHODS[name](log)
        elapsed = time.perf_counter() - start
    queue.put((elapsed, mem.mb, edges))


def measure(name, plays, users, artists):
    """Run one method on one size in a fresh process: (seconds, peak MB above start, edges)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, plays, users, artists, queue))
    proc.start()
    proc.join()
    return queue.get() if proc.exitcode == 0 else (float("nan"), float("nan"), -1)


def merge_rows(plays, users, artists):
    pairs = simulate_plays(plays, users, artists).drop_duplicates()
    return int((pairs.groupby("user_id").size() ** 2).sum())


METHODS = {
    "ours (edge list)": ours_edge_list,
    "ours (nx.Graph)": ours,
    "networkx": with_networkx,
    "pandas merge": with_pandas,
}


def bench_graph(sizes):
    rows = []
    for name in METHODS:
        previous = 0.0
        for plays, users, artists in sizes:
            # Sizes grow 10x: skip when the last size already took over a tenth of the limit.
            if previous > LIMIT_S / 10:
                print(f"  {name:>16} {plays:>11,} plays: skipped (last size took "
                      f"{previous:.1f} s; expected over {LIMIT_S:.0f} s)", flush=True)
                break
            if name == "pandas merge" and merge_rows(plays, users, artists) > MAX_MERGE_ROWS:
                print(f"  {name:>16} {plays:>11,} plays: skipped (self-merge would hold "
                      f"over {MAX_MERGE_ROWS:,} rows)", flush=True)
                break
            elapsed, mb, edges = measure(name, plays, users, artists)
            previous = elapsed
            rows.append({"method": name, "plays": plays, "users": users, "artists": artists,
                         "seconds": elapsed, "peak_mb": mb, "edges": edges})
            print(f"  {name:>16} {plays:>11,} plays: {elapsed:7.2f} s, {mb:8.0f} MB, "
                  f"{edges:,} edges", flush=True)
    table = pd.DataFrame(rows)
    print("\nGraph construction (min_common=2):")
    print(table.to_markdown(index=False, floatfmt=".2f"))
    mine = table[table["method"] == "ours (edge list)"].set_index("plays")
    for name in ("ours (nx.Graph)", "networkx", "pandas merge"):
        done = table[(table["method"] == name) & (table["seconds"] <= LIMIT_S)]
        if done.empty:
            continue
        last = done.iloc[-1]
        p = last["plays"]
        assert mine.loc[p, "edges"] == last["edges"], "edge counts disagree"
        print(f"At {p:,} plays (largest {name} finished within {LIMIT_S:.0f} s): "
              f"time {name}/ours = {last['seconds'] / mine.loc[p, 'seconds']:.1f}x, "
              f"peak memory {name}/ours = "
              f"{last['peak_mb'] / max(mine.loc[p, 'peak_mb'], 1):.1f}x.")
    return table


def planted_graph(n, k=4, degree=10.0, seed=1):
    """Planted partition with ``k`` equal blocks, average degree ``degree`` (80% within)."""
    size = n // k
    p_in = min(1.0, 0.8 * degree / size)
    p_out = 0.2 * degree / (n - size)
    return nx.stochastic_block_model([size] * k, [[p_in if i == j else p_out for j in range(k)]
                                                  for i in range(k)], seed=seed)


def bench_models(sizes, draws, tune, chains, advi_steps):
    rows = []
    for n in sizes:
        g = planted_graph(n)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sbm = StochasticBlockModel(n_blocks=4).fit(g, draws=draws, tune=tune, chains=chains,
                                                       random_seed=1)
        rows.append({"model": "StochasticBlockModel (Gibbs)", "nodes": n,
                     "edges": g.number_of_edges(), "seconds": time.perf_counter() - start,
                     "verdict": sbm.fit_report_.verdict})
        if n <= NUTS_MAX_NODES:
            model, kwargs, label = LatentSpaceModel(), {"method": "nuts", "draws": draws,
                                                         "tune": tune, "chains": chains,
                                                         "cores": 1}, "NUTS, all pairs"
        else:
            model = LatentSpaceModel(non_edge_sample=5 * g.number_of_edges())
            kwargs, label = {"method": "advi", "advi_steps": advi_steps, "draws": 500}, (
                "ADVI, case-control")
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(g, random_seed=1, **kwargs)
        rows.append({"model": f"LatentSpaceModel ({label})", "nodes": n,
                     "edges": g.number_of_edges(), "seconds": time.perf_counter() - start,
                     "verdict": model.fit_report_.verdict})
        print(f"  {n:>6} nodes: SBM {rows[-2]['seconds']:.1f} s, latent space "
              f"{rows[-1]['seconds']:.1f} s", flush=True)
    table = pd.DataFrame(rows)
    print(f"\nModel fit times (SBM: K=4, degree corrected, {chains} chains x ({tune} tune + "
          f"{draws} draws) sweeps; latent space: NUTS {chains} chains x ({tune} + {draws}) up "
          f"to {NUTS_MAX_NODES} nodes, else ADVI {advi_steps} steps):")
    print(table.to_markdown(index=False, floatfmt=".2f"))
    for name, part in table.groupby("model"):
        part = part.sort_values("nodes")
        if len(part) > 1:
            slope = np.polyfit(np.log(part["nodes"]), np.log(part["seconds"]), 1)[0]
            print(f"{name}: time grows as nodes^{slope:.2f}")
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--models-only", action="store_true", help="skip graph construction")
    args = parser.parse_args()
    if not args.models_only:
        bench_graph(SIZES[:2] if args.quick else SIZES)
    if args.quick:
        bench_models([100], draws=20, tune=20, chains=2, advi_steps=200)
    else:
        bench_models(MODEL_SIZES, draws=200, tune=200, chains=2, advi_steps=10_000)


if __name__ == "__main__":
    main()
