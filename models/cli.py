"""The ``listening-models`` command line (also ``python -m models``).

Commands
--------
``listening-models simulate --users N --days D --seed S --out events.parquet``
    Write a simulated streaming service (events, and a users table beside it).
``listening-models simulate ... --partitioned --out DIR``
    Write a partitioned Parquet log block by block (for logs larger than memory).
``listening-models run ANALYSIS [--events PATH] [--users PATH] [--assignments PATH]
[--config FILE] [--out DIR] [--seed N] [--quick] [--quiet] [--force]``
    Run an analysis (``churn``, ``listening``, ``network``, ``experiment`` or ``all``)
    and write its outputs (see :mod:`models.analysis`).
``listening-models list``
    Name the analyses and what each needs.
``listening-models demo [--users N] [--days D] [--seed S] [--draws N]``
    The main job on built-in data: simulate a service, fit a BG/NBD activity model,
    print its diagnostics, its posterior against the true parameters and a few
    predictions.

Exit status
-----------
0
    Done; for ``run``, every fit passed or only warned.
2
    Bad usage, configuration, path or file (the message says which), or the output
    folder cannot be written (permission, read-only file system).
3
    Invalid data (the message names the file, column, rows and a fix).
4
    ``run`` finished and wrote its outputs, but at least one fit failed its checks
    (verdict "fail"): the report says which and why. ``--quick`` runs are exploratory;
    their short chains often end here.
130
    Interrupted (Ctrl-C). Earlier outputs are left as they were.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["EXIT_CHECKS_FAILED", "EXIT_DATA", "EXIT_ERROR", "EXIT_INTERRUPTED", "main"]

#: Bad usage, configuration, path or file; or outputs that cannot be written.
EXIT_ERROR = 2
#: Invalid data.
EXIT_DATA = 3
#: ``run`` finished, but at least one fit failed its checks.
EXIT_CHECKS_FAILED = 4
#: Interrupted (Ctrl-C), 128 + SIGINT as shells report it.
EXIT_INTERRUPTED = 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
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
    sim.add_argument("--out", type=Path, required=True,
                     help="events file (.parquet or .csv), or a folder with --partitioned")
    sim.add_argument("--partitioned", action="store_true",
                     help="write a partitioned Parquet folder block by block (events/, users/, "
                     "truth/), never holding the whole log in memory")
    sim.add_argument("--users-per-partition", type=_positive_int, default=100_000,
                     help="users per Parquet block with --partitioned")
    sim.add_argument("--overwrite", action="store_true",
                     help="replace an existing events file (and its users file) or an earlier "
                     "partitioned log at --out")

    run = sub.add_parser("run", help="run an analysis and write its outputs and report")
    run.add_argument("analysis", help="churn, listening, network, experiment or all")
    run.add_argument("--events", type=Path, help="listening log: CSV/Parquet file or folder "
                     "(default: the built-in simulated service)")
    run.add_argument("--users", type=Path, help="users table (CSV/Parquet file or folder)")
    run.add_argument("--assignments", type=Path, help="assignment table of an experiment "
                     "(CSV/Parquet: user_id, variant, assigned_at), for the experiment analysis")
    run.add_argument("--sep", help="column delimiter of CSV inputs, e.g. ';' or '\\t' for a tab "
                     "(default: comma)")
    run.add_argument("--config", type=Path, help="TOML file overriding the defaults")
    run.add_argument("--out", type=Path, help="output folder (default results/ANALYSIS)")
    run.add_argument("--seed", type=_non_negative_int, help="random seed (replaces the config's)")
    run.add_argument("--quick", action="store_true", help="small data, few draws: exploratory, "
                     "not for conclusions (short chains often fail the checks: exit status 4)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--force", action="store_true", help="refit even when cached fits are "
                     "up to date")

    sub.add_parser("list", help="name the analyses and what each needs")

    demo = sub.add_parser("demo", help="simulate a service, fit a BG/NBD model, print diagnostics")
    demo.add_argument("--users", type=_positive_int, default=3000, help="number of users")
    demo.add_argument("--days", type=_positive_int, default=365, help="days observed")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--draws", type=_positive_int, default=1000, help="draws per chain")
    demo.add_argument("--chains", type=_positive_int, default=4, help="chains")
    return parser


def _simulate(args: argparse.Namespace) -> int:
    from models._atomic import atomic_path

    out: Path = args.out
    if args.partitioned or (out.exists() and out.is_dir()):
        from models.data import simulate_service_partitioned

        earlier = (out / "manifest.json").exists() or any(
            any((out / sub).glob("*.parquet")) for sub in ("events", "users", "truth"))
        if earlier and not args.overwrite:
            raise FileExistsError(f"{str(out)!r} already holds a simulated log; pass --overwrite "
                                  "to replace it, or choose another --out")
        folder = simulate_service_partitioned(
            args.users, args.days, out, users_per_partition=args.users_per_partition,
            random_seed=args.seed, overwrite=args.overwrite)
        print(f"wrote a partitioned log of {args.users:,} users to {folder} "
              f"(events/, users/, truth/, manifest.json)")
        return 0
    from models.data.simulate import simulate_service

    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"--out must end in .parquet or .csv (or use --partitioned with a "
                         f"folder); got {str(out)!r}")
    users_path = out.with_name(out.stem + "_users" + out.suffix)
    existing = [str(p) for p in (out, users_path) if p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{' and '.join(map(repr, existing))} already exist(s); pass "
                              "--overwrite to replace, or choose another --out")
    service = simulate_service(n_users=args.users, days=args.days, random_seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    # both files are written completely before either replaces an existing one
    with atomic_path(out) as tmp_events, atomic_path(users_path) as tmp_users:
        if suffix == ".parquet":
            service.events.to_parquet(tmp_events, index=False)
            service.users.to_parquet(tmp_users, index=False)
        else:
            service.events.to_csv(tmp_events, index=False)
            service.users.to_csv(tmp_users, index=False)
    print(f"wrote {len(service.events):,} events to {out} and {len(service.users):,} users "
          f"to {users_path}")
    return 0


def _separator(text: str | None) -> str | None:
    r"""Return the --sep value, reading ``\t`` or ``tab`` (hard to type in a shell) as a tab."""
    return "\t" if text in ("\\t", "tab") else text


def _run(args: argparse.Namespace) -> int:
    import json

    from models.analysis import run_analysis

    folders = run_analysis(
        args.analysis, events=args.events, users=args.users, assignments=args.assignments,
        config=args.config, out=args.out,
        seed=args.seed, quick=args.quick, quiet=args.quiet, force=args.force,
        sep=_separator(args.sep), command=["listening-models", *args.argv])
    failed = []
    for folder in folders:
        print(f"{folder}")
        diagnostics = json.loads((folder / "diagnostics.json").read_text())
        failed += [f"{diagnostics['analysis']}/{name}" for name, fit in diagnostics["fits"].items()
                   if fit["verdict"] == "fail"]
    if failed:
        print(f"warning: the run finished and wrote its outputs, but {len(failed)} fit(s) "
              f"failed their checks: {', '.join(failed)}; see the report(s) before using the "
              f"numbers (exit status {EXIT_CHECKS_FAILED})"
              + ("; --quick runs are exploratory and their short chains often fail"
                 if args.quick else ""), file=sys.stderr)
        return EXIT_CHECKS_FAILED
    return 0


def _list(args: argparse.Namespace) -> int:
    from models.analysis import ANALYSES

    for analysis in ANALYSES.values():
        print(f"{analysis.name}\n  {analysis.description}\n  needs: {analysis.needs}")
    print("all\n  Runs every analysis above in turn.")
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
        print("P(active at the end of the log), 89% equal-tailed interval, for the first users:")
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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    commands = {"simulate": _simulate, "demo": _demo, "run": _run, "list": _list}
    from models.exceptions import DataValidationError

    try:
        return commands[args.command](args)
    except DataValidationError as err:
        _print_error(err)
        return EXIT_DATA
    except (ValueError, OSError) as err:  # OSError: missing, read-only, no permission, full
        _print_error(err)
        return EXIT_ERROR
    except KeyboardInterrupt as err:
        _print_error(err, prefix="interrupted (Ctrl-C)")
        return EXIT_INTERRUPTED


def _print_error(err: BaseException, *, prefix: str = "error") -> None:
    """Print one error and its notes to stderr, without a traceback."""
    if isinstance(err, OSError) and err.strerror and not str(err).startswith("[Errno"):
        text = str(err)
    elif isinstance(err, OSError) and err.strerror:
        text = err.strerror + (f": {err.filename!r}" if err.filename else "")
    else:
        text = str(err)
    print(f"{prefix}: {text}" if text else prefix, file=sys.stderr)
    for note in getattr(err, "__notes__", []):
        print(f"  {note}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
