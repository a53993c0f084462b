"""Block model: number of annealed starts per chain vs fit check, accuracy and time.

Every fit uses ``StochasticBlockModel.fit``'s default settings (4 chains x (200 tuning +
500 recorded sweeps), ``thin=None``: the chains continue, up to 64 sweeps per draw, until
the fit check passes) except ``n_starts``, on these graphs:

* ``gt240``, ``gt1000``: the planted degree-corrected 6-block graphs of
  ``bench_network_graph_tool.py`` (graph seed ``nodes + seed - 1``, so seed 1 is that
  benchmark's graph), number of blocks inferred;
* ``karate``: Zachary's karate club, 2 blocks (the slow test of ``tests/network``);
* ``bn100``, ``bn1000``, ``bn5000``: the planted 4-block graphs of ``bench_network.py``
  (graph seed ``seed``), 4 blocks.

Each fit's random seed is ``seed``. For each fit: the fit check's verdict, the adjusted Rand
index of the MAP partition against the planted one (karate: the two factions), wall time,
the spacing of the recorded draws reached (``thin``), the spread of the chains' mean
log joints and the 1-minute load average before and after (wall times stretch on a busy
machine). Then per graph and ``n_starts``: pass rate, mean ARI, median and total time.

Run: python benchmarks/bench_network_starts.py [--graphs gt240 gt1000 karate bn100 bn1000]
[--seeds 1 2 ... 8] [--n-starts 16 4] [--out rows.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import bench_network
import bench_network_graph_tool
import networkx as nx
import numpy as np
import pandas as pd

from models.analysis.network import adjusted_rand_index
from models.network import StochasticBlockModel


def graph(name, seed):
    """(graph, planted labels in node order, model) of one named graph."""
    if name.startswith("gt"):
        n = int(name[2:])
        edges, truth = bench_network_graph_tool.planted_graph(n, 6, seed=n + seed - 1)
        frame = pd.DataFrame({"source": edges[:, 0], "target": edges[:, 1]})
        frame.attrs["nodes"] = list(range(n))
        return frame, truth, StochasticBlockModel()
    if name.startswith("bn"):
        n = int(name[2:])
        return (bench_network.planted_graph(n, seed=seed), np.repeat(np.arange(4), n // 4),
                StochasticBlockModel(n_blocks=4))
    if name == "karate":
        g = nx.karate_club_graph()
        truth = np.array([g.nodes[v]["club"] == "Officer" for v in g], dtype=int)
        return g, truth, StochasticBlockModel(n_blocks=2)
    raise ValueError(f"unknown graph {name!r}")


def one_fit(name, seed, n_starts):
    data, truth, model = graph(name, seed)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data, random_seed=seed, n_starts=n_starts)
    seconds = time.perf_counter() - start
    part = model.point_partition()
    if isinstance(data, pd.DataFrame):
        part = part.reindex(data.attrs["nodes"])
    lp = model.idata_["sample_stats"]["lp"].to_numpy()
    return {
        "graph": name, "seed": seed, "n_starts": n_starts,
        "verdict": model.fit_report_.verdict,
        "ARI": adjusted_rand_index(part.to_numpy(), truth), "s": seconds,
        "thin": json.loads(model.idata_.attrs["listening_models"])["thin"],
        "blocks": part.nunique(), "lp spread": float(np.ptp(lp.mean(axis=1))),
        "load before": load, "load after": os.getloadavg()[0],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", nargs="+", default=["gt240", "gt1000", "karate", "bn100",
                                                        "bn1000"])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--n-starts", type=int, nargs="+", default=[16, 4])
    parser.add_argument("--out", type=Path, help="append each row to this JSON-lines file")
    args = parser.parse_args()
    rows = []
    for name in args.graphs:
        for seed in args.seeds:
            for n_starts in args.n_starts:  # interleaved: the same load for each setting
                rows.append(one_fit(name, seed, n_starts))
                print(json.dumps(rows[-1]), flush=True)
                if args.out:
                    with args.out.open("a") as f:
                        f.write(json.dumps(rows[-1]) + "\n")
    table = pd.DataFrame(rows)
    print()
    print(table.round(3).to_markdown(index=False))
    summary = table.groupby(["graph", "n_starts"], sort=False).agg(
        fits=("verdict", "size"), passed=("verdict", lambda v: int((v == "pass").sum())),
        mean_ARI=("ARI", "mean"), min_ARI=("ARI", "min"), median_s=("s", "median"),
        total_s=("s", "sum"), max_thin=("thin", "max"))
    print()
    print(summary.round(3).to_markdown())


if __name__ == "__main__":
    main()
