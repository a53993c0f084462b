"""Block-model communities of Last.fm artists: co-listener counts as multiplicities vs a threshold.

The co-listening graph of the Last.fm HetRec 2011 artists with at least ``--min-listeners``
listeners (of 1,892 users) carries, for every pair of artists, the number of users who
played both (``common``). The degree-corrected ``StochasticBlockModel`` is fitted to it
three ways, each with the number of blocks inferred:

* ``binary``: the pairs with at least ``--threshold`` co-listeners, every edge once
  (the usual thresholded graph);
* ``counts, thresholded``: the same edges with ``weight="common"`` (each edge counted
  ``common`` times), which separates the effect of the multiplicities from that of the
  edge set;
* ``counts, all pairs``: every pair with a co-listener, ``weight="common"``, nothing
  thresholded away.

For each fit: the number of blocks of the MAP partition and its posterior, the fit
check's verdict and time; then the adjusted Rand index between the MAP partitions,
the block sizes and the most-listened artists of every block.

Each fit has a fixed budget (4 chains of 100 tuning and 200 recorded sweeps, ``thin=1``;
``--quick``: 2 chains of 50 + 100): with the counts the posterior of the labels is so
concentrated that chains from different starts stay in different local modes, so the
default ``thin=None``, which continues the chains until they agree, does not stop in
reasonable time. The spread of the chains' mean log-likelihoods is reported beside the
fit check.

Run: python benchmarks/bench_network_lastfm_counts.py [--data FOLDER] [--threshold 20]
[--quick]. The data folder defaults to ``shared/data/lastfm-hetrec2011`` beside the
checkout.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.analysis.network import adjusted_rand_index
from models.network import StochasticBlockModel, build_colistening_graph

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lastfm-hetrec2011"


def lastfm_graph(folder: Path, min_listeners: int) -> nx.Graph:
    """Co-listening graph of every pair of artists with at least one common listener."""
    plays = pd.read_csv(folder / "user_artists.dat", sep="\t")
    names = pd.read_csv(folder / "artists.dat", sep="\t", usecols=[0, 1]).set_index("id")["name"]
    users, user_codes = np.unique(plays["userID"], return_inverse=True)
    artists, artist_codes = np.unique(plays["artistID"], return_inverse=True)
    matrix = sp.csr_matrix((plays["weight"].to_numpy(), (user_codes, artist_codes)),
                           shape=(users.size, artists.size))
    return build_colistening_graph(matrix, artists=artists, min_common=1, weight="count",
                                   min_listeners=min_listeners, artist_names=names)


def thresholded(graph: nx.Graph, threshold: int) -> nx.Graph:
    """The pairs with at least ``threshold`` co-listeners (every artist kept)."""
    out = nx.Graph()
    out.add_nodes_from(graph.nodes(data=True))
    out.add_edges_from((u, v, d) for u, v, d in graph.edges(data=True)
                       if d["common"] >= threshold)
    return out


def fit(graph: nx.Graph, weight: str | None, max_blocks: int, settings: dict, seed: int):
    model = StochasticBlockModel(weight=weight, max_blocks=max_blocks)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(graph, random_seed=seed, **settings)
    return model, time.perf_counter() - start


def purity(fine: pd.Series, coarse: pd.Series) -> float:
    """Share of nodes in the majority ``coarse`` block of their ``fine`` block.

    1 when ``fine`` refines ``coarse`` (every fine block inside one coarse block).
    """
    table = pd.crosstab(fine, coarse.reindex(fine.index))
    return float(table.max(axis=1).sum() / len(fine))


def describe_blocks(graph: nx.Graph, partition: pd.Series, top: int = 5) -> pd.DataFrame:
    """Size and the ``top`` most-listened artists of every block, largest block first."""
    listeners = pd.Series(dict(graph.nodes(data="listeners")))
    rows = []
    for block, members in partition.groupby(partition).groups.items():
        best = listeners[members].sort_values(ascending=False).index[:top]
        rows.append({"block": block, "size": len(members),
                     "artists": ", ".join(graph.nodes[n]["name"] for n in best)})
    return pd.DataFrame(rows).sort_values("size", ascending=False).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA,
                        help="folder holding user_artists.dat and artists.dat")
    parser.add_argument("--min-listeners", type=int, default=80)
    parser.add_argument("--threshold", type=int, default=20,
                        help="co-listeners an edge of the binary graph needs")
    parser.add_argument("--max-blocks", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the partitions here")
    args = parser.parse_args()

    graph = lastfm_graph(args.data, args.min_listeners)
    binary = thresholded(graph, args.threshold)
    n = graph.number_of_nodes()
    total = sum(c for *_, c in graph.edges(data="common"))
    print(f"{n} artists with >= {args.min_listeners} listeners; {graph.number_of_edges():,} "
          f"pairs with a co-listener (multiplicity {total:,}), {binary.number_of_edges():,} "
          f"with >= {args.threshold}", flush=True)
    runs = {
        f"binary (>= {args.threshold})": (binary, None),
        f"counts (>= {args.threshold})": (binary, "common"),
        "counts (all pairs)": (graph, "common"),
    }
    settings = (dict(draws=100, tune=50, chains=2, thin=1) if args.quick
                else dict(draws=200, tune=100, chains=4, thin=1))
    rows, partitions = [], {}
    for name, (g, weight) in runs.items():
        model, seconds = fit(g, weight, args.max_blocks, settings, args.seed)
        loglik = model.idata_["posterior"]["log_likelihood"].mean("draw").values
        part = model.point_partition()
        post = model.n_blocks_posterior()
        partitions[name] = part
        rows.append({"fit": name, "edges": g.number_of_edges(), "blocks (MAP)": part.nunique(),
                     "blocks: 89% interval": f"{post.attrs['ci_lower']}-{post.attrs['ci_upper']}",
                     "fit check": model.fit_report_.verdict,
                     "log-lik spread of chains": round(float(np.ptp(loglik)), 1),
                     "s": round(seconds, 1)})
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
        print(describe_blocks(graph, part).to_string(index=False), flush=True)
    names = list(partitions)
    ari = pd.DataFrame(
        [[adjusted_rand_index(partitions[a].to_numpy(), partitions[b].reindex(
            partitions[a].index).to_numpy()) for b in names] for a in names],
        index=names, columns=names)
    nested = pd.DataFrame([[purity(partitions[a], partitions[b]) for b in names]
                           for a in names], index=names, columns=names)
    print()
    print(pd.DataFrame(rows).to_markdown(index=False))
    print()
    print("Adjusted Rand index between the MAP partitions")
    print(ari.round(3).to_markdown())
    print()
    print("Purity: share of the row fit's artists in the majority column block of their row "
          "block (1: the row partition refines the column one)")
    print(nested.round(3).to_markdown())
    if args.json:
        args.json.write_text(json.dumps(
            {name: {str(k): int(v) for k, v in part.items()} for name, part in partitions.items()},
            indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
