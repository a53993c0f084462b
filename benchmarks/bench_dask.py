"""Out-of-core per-user activity summaries with Dask, beside pandas.

Writes a partitioned Parquet log with ``simulate_service_partitioned`` (once;
reused when the folder already holds a run of the same size), then reduces it
to per-user summaries (``summarize_activity``) in a child process per engine:

- ``dask``: ``load_events(folder, lazy=True)`` (per-file validation) and the
  Dask aggregation, on the local threaded scheduler or a ``LocalCluster``;
- ``pandas``: ``load_events(folder)`` (eager: every file validated and
  concatenated) and the pandas aggregation, only up to ``--pandas-max-events``;
- ``dask-raw`` / ``pandas-raw``: the same without validation (``read_parquet``
  of the two columns the summary needs), to separate reading + reducing from
  validating.

Each engine runs in its own process so peak memory is measured cleanly: the
parent samples the resident memory (RSS) of the child and all its descendants
with psutil every 50 ms; ``ru_maxrss`` of the children is reported too.

Usage::

    python benchmarks/bench_dask.py --users 200000 --days 365

The log goes to ``--out`` (default ``benchmarks/results/dask``, relative to the
working directory).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import psutil

CHILD = r"""
import json, sys, time
import dask
from models.data import load_events, summarize_activity
engine, folder, scheduler = sys.argv[1], sys.argv[2], sys.argv[3]
validate = not engine.endswith("-raw")
start = time.perf_counter()
if engine.startswith("pandas"):
    if validate:
        log = load_events(folder, now="2100-01-01")
    else:
        import pandas as pd
        log = pd.read_parquet(folder, columns=["user_id", "timestamp"])
    n_events = len(log)
    summary = summarize_activity(log)
else:
    client = None
    if scheduler == "cluster":
        from distributed import Client, LocalCluster
        client = Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     memory_limit="6GiB", dashboard_address=None))
    else:
        dask.config.set(scheduler=scheduler)
    if validate:
        log = load_events(folder, lazy=True, now="2100-01-01")
    else:
        import dask.dataframe as dd
        log = dd.read_parquet(folder, columns=["user_id", "timestamp"])
    summary = summarize_activity(log)
    n_events = int(summary["n_events"].sum())
    if client is not None:
        client.close()
wall = time.perf_counter() - start
print(json.dumps({"wall_s": wall, "n_events": n_events, "n_users": len(summary)}))
"""


def run_child(engine: str, folder: Path, scheduler: str) -> dict:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, engine, str(folder), scheduler],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [parent, *parent.children(recursive=True)]
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(
        engine=engine if engine.startswith("pandas") else f"{engine} ({scheduler})",
        peak_rss_gib=peak / 2**30,
        rows_per_s=result["n_events"] / result["wall_s"],
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--users-per-partition", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dask"))
    parser.add_argument("--pandas-max-events", type=int, default=30_000_000)
    parser.add_argument(
        "--schedulers", default="threads,cluster", help="comma list of threads/processes/cluster"
    )
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    from models.data.partitioned import simulate_service_partitioned

    manifest = args.out / "manifest.json"
    expected = {"n_users": args.users, "days": args.days, "random_seed": args.seed}
    if not manifest.exists() or any(
        json.loads(manifest.read_text()).get(k) != v for k, v in expected.items()
    ):
        start = time.perf_counter()
        simulate_service_partitioned(
            args.users,
            args.days,
            args.out,
            users_per_partition=args.users_per_partition,
            random_seed=args.seed,
            overwrite=True,
        )
        print(f"simulated and wrote the log in {time.perf_counter() - start:.1f} s")
    info = json.loads(manifest.read_text())
    size = sum(f.stat().st_size for f in (args.out / "events").iterdir())
    print(
        f"log: {info['n_events']:,} events, {args.users:,} users, {len(info['blocks'])} files, "
        f"{size / 2**20:.0f} MiB of Parquet"
    )
    runs = [("dask", s) for s in args.schedulers.split(",")]
    runs += [("dask-raw", s) for s in args.schedulers.split(",")]
    if info["n_events"] <= args.pandas_max_events:
        runs += [("pandas", "-"), ("pandas-raw", "-")]
    results = []
    for engine, scheduler in runs:
        results.append(run_child(engine, args.out / "events", scheduler))
        print(json.dumps(results[-1]), flush=True)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"\nlargest child ru_maxrss: {children:.2f} GiB")
    print("\n| engine | events | users | wall s | peak RSS GiB | Mrows/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['engine']} | {r['n_events']:,} | {r['n_users']:,} | {r['wall_s']:.1f} | "
            f"{r['peak_rss_gib']:.2f} | {r['rows_per_s'] / 1e6:.2f} |"
        )


if __name__ == "__main__":
    main()
