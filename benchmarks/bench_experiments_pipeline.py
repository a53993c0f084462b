"""From a listening log to a decision table: each stage timed, beside tea-tasting.

Run from the repository root::

    python benchmarks/bench_experiments_pipeline.py              # 2M events
    python benchmarks/bench_experiments_pipeline.py --events 10_000_000 --cache DIR

(``--cache DIR`` keeps the simulated log for the next run.)

What one run measures:

1. **The log.** ``simulate_experiment`` (42 days; enrollment on days 14-28,
   so every user has a 14-day pre-period and a 14-day exposure window; the
   default treatment effects) in chunks of ``--chunk-users`` service users
   with independent seeds and consecutive user ids, until the log holds about
   ``--events`` events; each chunk is one Parquet file (the partitions Dask
   reads). The log holds every user of the service; the assignment table only
   those triggered in the enrollment window, so ``unassigned="drop"``. With
   ``--cache DIR`` the log is written under ``DIR`` once and reused by later
   runs with the same size and seed; without it, it lives in a temporary folder.
2. **Per-user metrics** of 20 metrics (10 counts and sums, 4 binary, 6 ratios;
   see ``METRICS``) over the exposure window and the pre-period:
   ``compute_user_metrics`` on the log read into pandas (the read timed
   apart), and on ``dask.dataframe.read_parquet`` of the same files (default
   scheduler, threads, ``--workers`` workers; the read is part of the
   computation). The two per-user frames are compared cell by cell.
3. **Statistics, effects, decision** on the log's users: ``sufficient_statistics``,
   ``analyze`` with CUPED (the pre-period value as covariate), ``decide``
   (success metrics minutes and active days; guardrails skip rate, retention,
   minutes per play).
4. **The target of issue #15**: the decision table of 20 metrics on
   ``--users`` users in under 10 s from per-user metrics, i.e.
   ``sufficient_statistics`` + ``analyze`` + ``decide`` on a per-user frame of
   that many rows. When the log has fewer assigned users (a 10M-event log has
   about 160,000), the frame is **resampled**: rows of the log's per-user frame
   drawn with replacement (whole rows, so variant, metrics and pre-period stay
   together) and given new user ids. ``analyze`` and ``decide`` see only the
   statistics table (metrics x variants rows), never per-user arrays.
5. **tea-tasting** on the same per-user frames: ``tt.Experiment({...}).analyze``
   on the pandas frame (``tt.Mean`` with the pre-period covariate for counts,
   sums and binaries; ``tt.RatioOfMeans`` with numerator and denominator
   covariates for ratios; ``use_t=False``), beside steps 3 and 4, as a ratio of
   times; and how far apart the two tools' 95% intervals of the relative lift
   are, in units of the engine's lift sd.

Wall times of the steps in 3 and 4 and of tea-tasting are medians of
``--repeats`` runs; the others are single runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from models.data.schema import ARTIST_ID, MS_PLAYED, SESSION_ID, SKIPPED, TRACK_ID
from models.exceptions import DataQualityWarning
from models.experiments import (
    ActiveDays,
    Binary,
    Count,
    Distinct,
    Ratio,
    Retained,
    Sum,
    UserMetrics,
    analyze,
    compute_user_metrics,
    decide,
    simulate_experiment,
    sufficient_statistics,
)

DAYS, ENROLL_START, ENROLL_DAYS, WINDOW_DAYS, PRE_DAYS = 42, 14, 14, 14, 14
START = pd.Timestamp("2025-01-01")
TARGET_S = 10.0
MIN = 1 / 60_000  # milliseconds to minutes


def _minutes(name: str = "minutes", **kw) -> Sum:
    return Sum(name, MS_PLAYED, scale=MIN, **kw)


#: 20 metrics: 10 counts and sums, 4 binary, 6 ratios.
METRICS = (
    Count("plays"),
    ActiveDays("active_days"),
    _minutes(),
    Distinct("distinct_artists", ARTIST_ID),
    Distinct("distinct_tracks", TRACK_ID),
    Distinct("sessions", SESSION_ID),
    Sum("skips", SKIPPED, higher_is_better=False),
    Count("plays_week1", window=(0, 7)),
    Count("plays_week2", window=(7, 14)),
    _minutes("minutes_week2", window=(7, 14)),
    Retained("retained", 7, 14),
    Retained("returned_days_2_7", 1, 7),
    Binary("listened_an_hour", _minutes(), threshold=60),
    Binary("active_3_days", ActiveDays(), threshold=2),
    Ratio("skip_rate", Sum("skips", SKIPPED), Count("plays"), higher_is_better=False),
    Ratio("skip_rate_week2", Sum("skips", SKIPPED), Count("plays"), higher_is_better=False,
          window=(7, 14)),
    Ratio("minutes_per_active_day", _minutes(), ActiveDays()),
    Ratio("minutes_per_play", _minutes(), Count("plays")),
    Ratio("plays_per_session", Count("plays"), Distinct("sessions", SESSION_ID)),
    Ratio("artists_per_active_day", Distinct("artists", ARTIST_ID), ActiveDays()),
)
SUCCESS = ["minutes", "active_days"]
GUARDRAILS = {"skip_rate": 0.02, "retained": 0.01, "minutes_per_play": 0.02}
SHOWN = ("minutes", "retained", "skip_rate")  # lift intervals printed side by side


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


# --------------------------------------------------------------------------- the log


def build_log(folder: Path, n_events: int, chunk_users: int, seed: int) -> dict:
    """Simulate chunks of users into ``folder/events/part-*.parquet``; return the meta data."""
    meta_file = folder / "meta.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        meta["cached"] = True
        return meta
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "events").mkdir(parents=True)
    seeds = np.random.SeedSequence(seed)
    start = time.perf_counter()
    events = users = 0
    per_user = 35.0  # events per service user with these settings, refined as chunks come
    assignments = []
    part = 0
    while events < n_events:
        size = int(min(chunk_users, max(1000, np.ceil((n_events - events) / per_user))))
        sim = simulate_experiment(size, DAYS, enroll_start=ENROLL_START, enroll_days=ENROLL_DAYS,
                                  start=START, random_seed=np.random.default_rng(seeds.spawn(1)[0]))
        log = sim.events.assign(user_id=sim.events["user_id"] + users)
        log.to_parquet(folder / "events" / f"part-{part:04d}.parquet", index=False)
        assignments.append(sim.assignments.assign(user_id=sim.assignments["user_id"] + users))
        events, users, part = events + len(log), users + size, part + 1
        per_user = events / users
    table = pd.concat(assignments, ignore_index=True)
    table.to_parquet(folder / "assignments.parquet", index=False)
    meta = {"events": events, "service_users": users, "assigned_users": len(table),
            "files": part, "build_s": time.perf_counter() - start,
            "parquet_mib": sum(f.stat().st_size for f in folder.rglob("*.parquet")) / 2**20}
    meta_file.write_text(json.dumps(meta))
    meta["cached"] = False
    return meta


# --------------------------------------------------------------------------- the two tools


def user_metrics(events, assignments: pd.DataFrame) -> UserMetrics:
    """``compute_user_metrics`` of the 20 metrics on pandas or Dask events."""
    with warnings.catch_warnings():  # the log holds users outside the experiment, by design
        warnings.filterwarnings("ignore", "Left out", DataQualityWarning)
        return compute_user_metrics(
            events, assignments, METRICS, window_days=WINDOW_DAYS, pre_days=PRE_DAYS,
            observation_end=START + pd.Timedelta(days=DAYS), unassigned="drop")


def tea_tasting_experiment(um: UserMetrics):
    import tea_tasting as tt

    metrics = {}
    for metric in um.metrics:
        cols = um.columns(metric)
        if metric.kind == "ratio":
            metrics[metric.name] = tt.RatioOfMeans(cols["y"], cols["d"], numer_covariate=cols["x"],
                                                   denom_covariate=cols["w"])
        else:
            metrics[metric.name] = tt.Mean(cols["y"], covariate=cols["x"])
    return tt.Experiment(metrics)


def tea_tasting_analyze(experiment, data: pd.DataFrame) -> pd.DataFrame:
    import tea_tasting as tt

    with tt.config_context(use_t=False), warnings.catch_warnings():
        # narwhals, inside tea-tasting, inserts one column at a time into pandas frames
        warnings.filterwarnings("ignore", "DataFrame is highly fragmented",
                                pd.errors.PerformanceWarning)
        result = experiment.analyze(data, control="control")
    return pd.DataFrame(
        {name: (r.rel_effect_size, r.rel_effect_size_ci_lower, r.rel_effect_size_ci_upper)
         for name, r in result.items()},
        index=["lift", "lift_ci_lower", "lift_ci_upper"],
    ).T


def interval_gap(effects: pd.DataFrame, theirs: pd.DataFrame) -> pd.Series:
    """Largest distance between the two 95% lift intervals' ends, in lift sds, per metric."""
    ours = effects.droplevel("variant")
    ends = ["lift_ci_lower", "lift_ci_upper"]
    return (ours[ends] - theirs.loc[ours.index, ends]).abs().max(axis=1) / ours["lift_sd"]


def frames_identical(a: pd.DataFrame, b: pd.DataFrame) -> str:
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        return "identical (every cell, dtypes and index)"
    except AssertionError as err:
        numeric = a.select_dtypes("number").columns
        diff = (a[numeric] - b[numeric]).abs().max().max() if a.shape == b.shape else np.nan
        return f"NOT identical: {str(err).splitlines()[0]} (max abs difference {diff:.3g})"


def side_by_side(um: UserMetrics, how: str, experiment, repeats: int, rows: list) -> dict:
    """Time statistics, effects and decision, and tea-tasting, on one per-user frame."""
    n_users = len(um.frame)
    size = f"{n_users:,} users x {len(um.metrics)} metrics ({how})"
    times = {}
    times["sufficient_statistics"], stats = median_time(lambda: sufficient_statistics(um),
                                                        repeats)
    times["analyze (CUPED)"], effects = median_time(lambda: analyze(stats, cuped=True), repeats)
    times["decide"], decision = median_time(
        lambda: decide(effects, success=SUCCESS, guardrails=GUARDRAILS), repeats)
    total = sum(times.values())
    for name, seconds in times.items():
        note = ""
        if name.startswith("analyze"):
            note = (f"input: {stats.shape[0]} rows x {stats.shape[1]} columns of sufficient "
                    "statistics, no per-user data")
        rows.append((f"`{name}`", size, f"{seconds:.3f}", note))
    verdict = decision.verdict + (f" '{decision.variant}'" if decision.variant else "")
    rows.append(("**per-user metrics -> decision** (the three above)", size, f"**{total:.3f}**",
                 f"verdict: {verdict}"))
    data = um.frame.reset_index(drop=True)
    tt_s, theirs = median_time(lambda: tea_tasting_analyze(experiment, data), repeats)
    gap = interval_gap(effects, theirs)
    rows.append(("tea-tasting `Experiment.analyze` (same metrics, CUPED)", size, f"{tt_s:.3f}",
                 f"{tt_s / total:.1f}x the engine's path; lift intervals within "
                 f"{gap.max():.3f} lift sds (max over {len(gap)} metrics)"))
    return {"users": n_users, "how": how, "effects": effects, "theirs": theirs, "gap": gap,
            "decision": decision, "total": total}


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=lambda s: int(s.replace("_", "")), default=2_000_000,
                        help="about how many events the simulated log holds")
    parser.add_argument("--users", type=lambda s: int(s.replace("_", "")), default=1_000_000,
                        help="users of the per-user frame for the 10 s target")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder to keep the simulated log in between runs")
    parser.add_argument("--chunk-users", type=int, default=25_000)
    parser.add_argument("--workers", type=int, default=2, help="Dask threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    import dask
    import dask.dataframe as dd
    import tea_tasting

    load = os.getloadavg()
    print(f"Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"dask {dask.__version__}, tea-tasting {tea_tasting.__version__}, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    print("Command: python " + " ".join(sys.argv))
    rows: list[tuple[str, str, str, str]] = []  # stage, size, seconds, note

    with tempfile.TemporaryDirectory() as tmp:
        root = args.cache if args.cache is not None else Path(tmp)
        folder = root / f"experiment_log_{args.events}_{args.chunk_users}_{args.seed}"
        meta = build_log(folder, args.events, args.chunk_users, args.seed)
        n_events, n_assigned = meta["events"], meta["assigned_users"]
        print(f"\nLog: {n_events:,} events of {meta['service_users']:,} users, "
              f"{n_assigned:,} assigned, {meta['files']} Parquet files "
              f"({meta['parquet_mib']:.0f} MiB), simulated in {meta['build_s']:.1f} s"
              + (" (read from the cache)" if meta["cached"] else ""))
        rows.append(("simulate the log (`simulate_experiment`, Parquet)", f"{n_events:,} events",
                     f"{meta['build_s']:.1f}", "cached from an earlier run" if meta["cached"]
                     else f"{meta['files']} chunks"))

        assignments = pd.read_parquet(folder / "assignments.parquet")
        start = time.perf_counter()
        events = pd.read_parquet(folder / "events")
        read_s = time.perf_counter() - start
        rows.append(("read the log into pandas", f"{n_events:,} events", f"{read_s:.2f}",
                     f"peak RSS so far {peak_rss_gib():.2f} GiB"))

        start = time.perf_counter()
        um_pandas = user_metrics(events, assignments)
        pandas_s = time.perf_counter() - start
        rows.append(("`compute_user_metrics`, pandas", f"{n_events:,} events -> "
                     f"{len(um_pandas.frame):,} users", f"{pandas_s:.2f}",
                     f"{pandas_s + read_s:.2f} s with the read; peak RSS so far "
                     f"{peak_rss_gib():.2f} GiB"))
        del events

        lazy = dd.read_parquet(folder / "events")
        with dask.config.set(scheduler="threads", num_workers=args.workers):
            start = time.perf_counter()
            um_dask = user_metrics(lazy, assignments)
            dask_s = time.perf_counter() - start
        same = frames_identical(um_pandas.frame, um_dask.frame)
        rows.append((f"`compute_user_metrics`, Dask ({lazy.npartitions} partitions, threads, "
                     f"{args.workers} workers)", f"{n_events:,} events -> "
                     f"{len(um_dask.frame):,} users", f"{dask_s:.2f}",
                     f"read included; {(pandas_s + read_s) / dask_s:.2f}x pandas with its read; "
                     f"frames {same}"))
        del um_dask
    print(f"Per-user frames from pandas and Dask: {same}")

    experiment = tea_tasting_experiment(um_pandas)
    log_side = side_by_side(um_pandas, "the log's users", experiment, args.repeats, rows)
    if len(um_pandas.frame) >= args.users:
        target_side = log_side
    else:
        picks = np.random.default_rng(args.seed).integers(0, len(um_pandas.frame), size=args.users)
        frame = um_pandas.frame.iloc[picks].set_axis(
            pd.RangeIndex(args.users, name=um_pandas.frame.index.name), axis=0)
        target_side = side_by_side(
            dataclasses.replace(um_pandas, frame=frame),
            f"resampled from the {len(um_pandas.frame):,} log users", experiment, args.repeats,
            rows)

    print("\n| stage | size | wall s | note |")
    print("|---|---|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")

    for side in (log_side, target_side) if target_side is not log_side else (log_side,):
        n_users, how, effects, theirs, gap = (side[k] for k in ("users", "how", "effects",
                                                               "theirs", "gap"))
        print(f"\n95% intervals of the relative lift, {n_users:,} users ({how}):\n")
        print("| metric | listening-models lift [95%] | tea-tasting lift [95%] | gap (lift sds) |")
        print("|---|---|---|---:|")
        ours = effects.droplevel("variant")
        for metric in SHOWN:
            a, b = ours.loc[metric], theirs.loc[metric]
            print(f"| {metric} | {a['lift']:+.4%} [{a['lift_ci_lower']:+.4%}, "
                  f"{a['lift_ci_upper']:+.4%}] | {b['lift']:+.4%} [{b['lift_ci_lower']:+.4%}, "
                  f"{b['lift_ci_upper']:+.4%}] | {gap[metric]:.3f} |")
    for side in (log_side, target_side) if target_side is not log_side else (log_side,):
        print(f"\nDecision, {side['users']:,} users ({side['how']}):\n{side['decision']}")

    load = os.getloadavg()
    target_total, target_users = target_side["total"], target_side["users"]
    met = target_total < TARGET_S
    print(f"\nTarget: decision table of {len(METRICS)} metrics on {target_users:,} users from "
          f"per-user metrics in < {TARGET_S:.0f} s: {'met' if met else 'NOT MET'} "
          f"({target_total:.2f} s). Peak RSS {peak_rss_gib():.2f} GiB; load average at the end "
          f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    if not met or not same.startswith("identical"):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
