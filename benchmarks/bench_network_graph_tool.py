"""Block-model partitions: listening-models' StochasticBlockModel vs graph-tool.

Planted degree-corrected partitions (Poisson edge counts between blocks, 90% of each
node's edges within its block, lognormal degree propensities, simple graph after
dropping repeats and self-loops) of growing size. graph-tool's
``minimize_blockmodel_dl(deg_corr=True)`` (Peixoto's description-length minimiser;
Debian's ``python3-graph-tool`` for the system Python) runs in a subprocess on the
same edge list. For each size: the adjusted Rand index of each partition against the
planted one, the number of blocks found, wall time, and both partitions scored under
one likelihood each way: our collapsed log p(A, z) (the model with the number of
blocks inferred) and graph-tool's description length (nats; lower is better).

Both wall times exclude one-time process start-up: graph-tool's is timed after its
import, ours after a first, untimed fit on a 34-node graph (our imports, numba's cache
load, xarray's first Dataset; the script prints that one-time cost as ``start-up s``).
Our chains run in parallel threads on the CPUs the process may use (``cores``);
``--cores 1`` runs them one after another.

Run: python benchmarks/bench_network_graph_tool.py --graph-tool-python PYTHON [--quick]
[--sizes 240 1000 4000], PYTHON being an interpreter that imports ``graph_tool`` (Debian's
system ``python3`` after ``apt-get install python3-graph-tool``), or set the
``GRAPH_TOOL_PYTHON`` environment variable.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import gammaln

from models._compiled import usable_cpus
from models.analysis.network import adjusted_rand_index
from models.network import StochasticBlockModel, _gibbs

GRAPH_TOOL_SCRIPT = r"""
import json, sys, time
import numpy as np
import graph_tool.all as gt
edges = np.loadtxt(sys.argv[1], dtype=np.int64, ndmin=2)
n = int(sys.argv[2])
ours = np.array(json.loads(sys.argv[3]))
g = gt.Graph(directed=False)
g.add_vertex(n)
g.add_edge_list(edges)
gt.seed_rng(1)
np.random.seed(1)
start = time.perf_counter()
state = gt.minimize_blockmodel_dl(g, state_args=dict(deg_corr=True))
seconds = time.perf_counter() - start
b = np.asarray(state.get_blocks().a)
mine = gt.BlockState(g, b=g.new_vp("int", vals=ours), deg_corr=True)
print(json.dumps({"blocks": b.tolist(), "seconds": seconds, "dl": state.entropy(),
                  "dl_ours": mine.entropy()}))
"""


def planted_graph(n_nodes, n_blocks, mean_degree=10.0, within=0.9, seed=0):
    """Degree-corrected planted partition: edge list (simple graph) and true blocks."""
    rng = np.random.default_rng(seed)
    z = np.sort(rng.integers(0, n_blocks, n_nodes))
    theta = rng.lognormal(0.0, 0.8, n_nodes)
    total = mean_degree * n_nodes / 2
    rows = []
    members = [np.flatnonzero(z == r) for r in range(n_blocks)]
    probs = [theta[m] / theta[m].sum() for m in members]
    for r in range(n_blocks):
        for s in range(r, n_blocks):
            share = within / n_blocks if r == s else 2 * (1 - within) / (n_blocks * (n_blocks - 1))
            count = rng.poisson(total * share)
            u = rng.choice(members[r], count, p=probs[r])
            v = rng.choice(members[s], count, p=probs[s])
            rows.append(np.c_[u, v])
    edges = np.concatenate(rows)
    edges = np.unique(np.sort(edges[edges[:, 0] != edges[:, 1]], axis=1), axis=0)
    return edges, z


def graph_tool_partition(python, edges, n_nodes, ours):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as tmp:
        np.savetxt(tmp, edges, fmt="%d")
    out = subprocess.run([python, "-c", GRAPH_TOOL_SCRIPT, tmp.name, str(n_nodes),
                          json.dumps([int(x) for x in ours])],
                         capture_output=True, text=True, check=False)
    Path(tmp.name).unlink()
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout)


def log_joint(model, frame, z, n_labels):
    """Our collapsed log p(A, z) of ``z`` (the model with the number of blocks inferred)."""
    data = model._validate_data(frame)
    nodes, adj, degree = model._arrays(data)
    h = model._hyper(float(data["count"].sum()), len(nodes))
    z = np.unique(np.asarray(z), return_inverse=True)[1]
    log_fact = float(gammaln(data["count"].to_numpy() + 1.0).sum())
    return _gibbs.log_joint(*_gibbs.block_counts(adj, z, degree, n_labels), degree, h, log_fact)


def warm_up():
    """Pay the one-time process costs with an untimed fit on the karate club; its seconds."""
    import networkx as nx
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        StochasticBlockModel().fit(nx.karate_club_graph(), draws=4, tune=2, chains=2, thin=1,
                                   random_seed=1)
    return time.perf_counter() - start


def run(sizes, n_blocks, draws, tune, chains, python, cores=None):
    print(f"start-up s (first fit in this process, 34 nodes): {warm_up():.2f}", flush=True)
    rows = []
    for n in sizes:
        edges, truth = planted_graph(n, n_blocks, seed=n)
        frame = pd.DataFrame({"source": edges[:, 0], "target": edges[:, 1]})
        frame.attrs["nodes"] = list(range(n))
        model = StochasticBlockModel()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(frame, draws=draws, tune=tune, chains=chains, thin=1, random_seed=1,
                      cores=cores)
        ours_s = time.perf_counter() - start
        ours = model.point_partition().reindex(range(n)).to_numpy()
        gt = graph_tool_partition(python, edges, n, ours)
        labels = max(model.max_blocks, len(set(gt["blocks"])))
        rows.append({
            "nodes": n, "edges": len(edges), "planted blocks": n_blocks,
            "ours: blocks": len(set(ours)), "graph-tool: blocks": len(set(gt["blocks"])),
            "ours: ARI": adjusted_rand_index(ours, truth),
            "graph-tool: ARI": adjusted_rand_index(gt["blocks"], truth),
            "ours: s": ours_s, "graph-tool: s": gt["seconds"],
            "ours: threads": min(chains, cores or usable_cpus()),
            "log p(A,z) ours": log_joint(model, frame, ours, labels),
            "log p(A,z) graph-tool's": log_joint(model, frame, gt["blocks"], labels),
            "DL ours": gt["dl_ours"], "DL graph-tool's": gt["dl"],
            "ours: fit check": model.fit_report_.verdict,
            "load avg (1 min)": os.getloadavg()[0],  # wall times stretch on a busy machine
        })
        print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="240 and 1,000 nodes")
    parser.add_argument("--sizes", type=int, nargs="+", default=[240, 1_000, 4_000])
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--cores", type=int, default=None,
                        help="threads for our chains (default: the CPUs this process may use)")
    parser.add_argument("--graph-tool-python", default=os.environ.get("GRAPH_TOOL_PYTHON"),
                        help="a Python that imports graph_tool (default: the GRAPH_TOOL_PYTHON "
                             "environment variable)")
    args = parser.parse_args()
    if not args.graph_tool_python:
        parser.error("graph-tool runs in its own interpreter: pass --graph-tool-python PATH or "
                     "set GRAPH_TOOL_PYTHON (Debian: the system python3 with python3-graph-tool)")
    sizes = [240, 1_000] if args.quick else args.sizes
    table = run(sizes, args.blocks, draws=200, tune=100, chains=2,
                python=args.graph_tool_python, cores=args.cores)
    print()
    print(table.round(3).to_markdown(index=False))


if __name__ == "__main__":
    main()
