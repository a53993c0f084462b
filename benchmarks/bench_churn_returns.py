"""Scale of ReturnHazardModel: silence rows, NUTS fit and forecasts on simulated daily activity.

Run from the repository root::

    python benchmarks/bench_churn_returns.py --n-users 10000 --n-days 365

Users are simulated from the model itself (a renewal process: active on their first day, then
each day with the hazard of the current silence's bin plus a user effect of sd 0.7; first days
spread over the first 60 days). The script times the silence table
(:func:`models.churn.silence_table`), the fit (nutpie, 2 chains on 2 cores, ``--draws`` tune +
``--draws`` draws; compilation included), P(active) and the expected active days over the next
``--horizon`` days for every user (``--max-draws`` posterior draws), and prints the fit's
check, the rows and cells, and the peak memory of the process. ``--new-users M`` also
times P(active) for ``M`` users simulated apart from the fit: each of their effects is drawn,
per posterior draw, from its posterior given the user's own silences (the path of a model fitted
on a sample of users and forecasting everyone). ``--memory`` (with ``--new-users M``) measures
the forecast step on the table of the ``N`` fitted users and the ``M`` others, as the churn
analysis runs it: the time of P(active), the peak of the memory it allocates (tracemalloc, in a
second run of the same call) and the process's peak resident set before and after; then the
same for :func:`models.churn.silence_table` of that table.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from models.churn import ReturnHazardModel, silence_table

EDGES = np.array([1, 2, 3, 4, 5, 6, 7, 8, 11, 15, 22, 31, 61, 91, 181])
ALPHA = np.array([0.3, -0.6, -0.9, -1.1, -1.3, -1.4, -1.4, -1.9, -2.0, -2.4, -2.8, -3.4, -4.1,
                  -5.2, -5.2])


def simulate(n_users: int, n_days: int, seed: int = 0) -> pd.DataFrame:
    """Daily activity (0/1, NaN before each user's first day) from the renewal model."""
    rng = np.random.default_rng(seed)
    u = 0.7 * rng.standard_normal(n_users)
    start = rng.integers(0, 60, n_users)
    values = np.full((n_users, n_days), np.nan)
    silence = np.ones(n_users, dtype=np.int64)
    for t in range(n_days):
        values[start == t, t] = 1.0
        going = start < t
        b = np.searchsorted(EDGES, silence[going], side="right") - 1
        act = rng.random(going.sum()) < 1.0 / (1.0 + np.exp(-(ALPHA[b] + u[going])))
        values[going, t] = act
        silence[going] = np.where(act, 1, silence[going] + 1)
    return pd.DataFrame(values, index=pd.Index([f"u{i:06d}" for i in range(n_users)],
                                               name="user_id"))


def _peak_rss_mib() -> float:
    """Return the process's largest resident set so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measured(step: Callable[[], object]) -> tuple[float, float]:
    """Run ``step`` twice: return its time (s) and the peak of what it allocates (MiB).

    The first run is timed untraced; the second runs under tracemalloc, which
    sees numpy's and pandas' buffers, so its peak is the step's own memory on
    top of what existed before (its inputs are not counted).
    """
    t0 = time.perf_counter()
    step()
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def memory(model: ReturnHazardModel, days: pd.DataFrame, new: pd.DataFrame, horizon: int,
           max_draws: int) -> None:
    """Print the time and memory of the forecast and the silence table of ``days`` + ``new``."""
    table = pd.concat([days, new])
    # compile the kernels (or load them from numba's cache) outside the measurements
    model.probability_active(pd.concat([days.iloc[:5], new.iloc[:5]]), horizon=horizon,
                             max_draws=max_draws, random_seed=0)
    rss_before = _peak_rss_mib()
    forecast_s, forecast_peak = _measured(lambda: model.probability_active(
        table, horizon=horizon, max_draws=max_draws, random_seed=0))
    rss_forecast = _peak_rss_mib()
    rows_s, rows_peak = _measured(lambda: silence_table(table))
    print(f"table {len(table):,} users ({len(new):,} outside the fit) x {table.shape[1]} days "
          f"({table.size * 8 / 2**20:,.0f} MiB of float64); P(active) over {horizon} days from "
          f"{max_draws} draws: {forecast_s:.1f} s, peak allocated {forecast_peak:,.0f} MiB; "
          f"silence table: {rows_s:.1f} s, peak allocated {rows_peak:,.0f} MiB; peak RSS "
          f"{rss_before:,.0f} MiB before the forecast, {rss_forecast:,.0f} MiB after it, "
          f"{_peak_rss_mib():,.0f} MiB after the silence table")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-users", type=int, default=10_000)
    parser.add_argument("--n-days", type=int, default=365)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--horizon", type=int, default=93)
    parser.add_argument("--max-draws", type=int, default=500)
    parser.add_argument("--new-users", type=int, default=0)
    parser.add_argument("--memory", action="store_true",
                        help="measure the forecast step on the fitted + new users' table")
    args = parser.parse_args()
    if args.memory and not args.new_users:
        parser.error("--memory needs --new-users")
    t0 = time.perf_counter()
    days = simulate(args.n_users, args.n_days)
    sim_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = silence_table(days)
    rows_s = time.perf_counter() - t0
    n_cells = len(rows.groupby(["user_id", "tenure"]))
    model = ReturnHazardModel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        model.fit(days, draws=args.draws, tune=args.draws, chains=2, cores=2, sampler="nutpie",
                  random_seed=1)
        fit_s = time.perf_counter() - t0
    steps = float(model.idata_["sample_stats"]["n_steps"].mean())
    t0 = time.perf_counter()
    model.probability_active(horizon=args.horizon, max_draws=args.max_draws, random_seed=0)
    active_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.expected_activity(horizon=args.horizon, max_draws=args.max_draws, random_seed=0)
    expected_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| users x days | rows | cells | simulate (s) | silence table (s) | fit (s) | "
          "steps per draw | max R-hat | P(active) (s) | expected days (s) | peak RSS (MiB) | "
          "check |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print(f"| {args.n_users:,} x {args.n_days} | {len(rows):,} | {n_cells:,} | {sim_s:.1f} | "
          f"{rows_s:.1f} | {fit_s:.0f} | {steps:.1f} | "
          f"{model.fit_report_.variables['rhat'].max():.3f} | {active_s:.1f} | "
          f"{expected_s:.1f} | {peak:.0f} | {model.fit_report_.verdict} |")
    print(f"(nutpie 2 x ({args.draws} + {args.draws}); forecasts over {args.horizon} days from "
          f"{args.max_draws} draws)")
    if args.new_users:
        new = simulate(args.new_users, args.n_days, seed=1)
        new.index = "new-" + new.index.astype(str)
        if args.memory:
            memory(model, days, new, args.horizon, args.max_draws)
            return
        t0 = time.perf_counter()
        model.probability_active(new, horizon=args.horizon, max_draws=args.max_draws,
                                 random_seed=0)
        print(f"P(active) for {args.new_users:,} users outside the fit (their effects drawn "
              f"given their own silences), {args.max_draws} draws: "
              f"{time.perf_counter() - t0:.1f} s")
    print(model.fit_report_.variables.to_string())


if __name__ == "__main__":
    main()
