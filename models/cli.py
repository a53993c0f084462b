"""The ``listening-models`` command line (also ``python -m models``).

Commands
--------
``listening-models simulate --users N --days D --seed S --out events.parquet``
    Write a simulated streaming service (events, and a users table beside it).
``listening-models demo [--users N] [--days D] [--seed S] [--draws N]``
    The main job on built-in data: simulate a service, fit a BG/NBD activity model,
    print its diagnostics, its posterior against the true parameters and a few
    predictions.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="listening-models",
        description="Bayesian models of listening, churn and artist networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write a simulated streaming service to Parquet or CSV")
    sim.add_argument("--users", type=_positive_int, default=2000, help="number of users")
    sim.add_argument("--days", type=_positive_int, default=365, help="days observed")
    sim.add_argument("--seed", type=int, default=0, help="random seed")
    sim.add_argument("--out", type=Path, required=True, help="events file (.parquet or .csv)")

    demo = sub.add_parser("demo", help="simulate a service, fit a BG/NBD model, print diagnostics")
    demo.add_argument("--users", type=_positive_int, default=3000, help="number of users")
    demo.add_argument("--days", type=_positive_int, default=365, help="days observed")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--draws", type=_positive_int, default=1000, help="draws per chain")
    demo.add_argument("--chains", type=_positive_int, default=4, help="chains")
    return parser


def _simulate(args: argparse.Namespace) -> int:
    from models.data.simulate import simulate_service

    service = simulate_service(n_users=args.users, days=args.days, random_seed=args.seed)
    out: Path = args.out
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise SystemExit(f"error: --out must end in .parquet or .csv; got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    users_path = out.with_name(out.stem + "_users" + out.suffix)
    if suffix == ".parquet":
        service.events.to_parquet(out, index=False)
        service.users.to_parquet(users_path, index=False)
    else:
        service.events.to_csv(out, index=False)
        service.users.to_csv(users_path, index=False)
    print(f"wrote {len(service.events):,} events to {out} and {len(service.users):,} users "
          f"to {users_path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from models.churn import BetaGeoModel
    from models.data import simulate_service, summarize_activity

    t0 = time.perf_counter()
    service = simulate_service(n_users=args.users, days=args.days, random_seed=args.seed)
    truth = service.truth
    print(f"Simulated {len(service.users):,} users and {len(service.events):,} plays over "
          f"{args.days} days (seed {args.seed}) in {time.perf_counter() - t0:.1f} s.")

    # Active days are the "transactions" of BG/NBD.
    activity = summarize_activity(service.events, period="D",
                                  observation_end=truth.observation_end)
    print(f"Activity summary: {len(activity):,} users, mean repeat active days "
          f"{activity['frequency'].mean():.2f}, mean age {activity['T'].mean():.0f} days.\n")

    t0 = time.perf_counter()
    model = BetaGeoModel().fit(activity, draws=args.draws, tune=args.draws, chains=args.chains,
                               random_seed=args.seed)
    print(f"Fitted {model!r} in {time.perf_counter() - t0:.1f} s.\n")
    print(model.diagnostics())
    print()
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(model.summary())
        print()
        alive = model.probability_alive()
        alive_true = truth.users.set_index("user_id").reindex(alive.index)["alive"]
        print("P(active at the end of the log), 89% HDI, for the first users:")
        print(alive.assign(truly_active=alive_true).head(8).round(3))
        brier = float(np.mean((alive["mean"] - alive_true.astype(float)) ** 2))
        print(f"\nBrier score of P(active) against the simulated truth: {brier:.3f} "
              f"(predicting the base rate scores "
              f"{float(alive_true.mean() * (1 - alive_true.mean())):.3f}).")
    verdict = model.diagnostics().verdict
    print(f"\nVerdict: {verdict}.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (``sys.argv[1:]`` by default).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name.

    Returns
    -------
    int
        Process exit status.
    """
    args = _parser().parse_args(argv)
    commands = {"simulate": _simulate, "demo": _demo}
    try:
        return commands[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
