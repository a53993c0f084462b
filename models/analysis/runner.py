"""The registry of analyses, their inputs, and :func:`run_analysis`."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from models.analysis.config import ConfigError, dump_toml, load_config, merge_config, read_toml
from models.analysis.context import Analysis, AnalysisContext, Inputs
from models.analysis.outputs import AnalysisOutputs, hash_data
from models.analysis.report import file_sha256, write_manifest, write_report
from models.analysis.staging import (
    check_output_folder,
    discard_if_empty,
    prepare_work_folder,
    release_work_folder,
    replace_outputs,
)

__all__ = [
    "ANALYSES",
    "Analysis",
    "AnalysisContext",
    "Inputs",
    "check_enough_users",
    "check_priors",
    "load_inputs",
    "run_analysis",
]


def _registry() -> dict[str, Analysis]:
    from models.analysis import churn, experiment, listening, network

    return {a.name: a for a in (churn.ANALYSIS, listening.ANALYSIS, network.ANALYSIS,
                                experiment.ANALYSIS)}


#: Every analysis by name; ``run all`` runs them in this order.
ANALYSES: dict[str, Analysis] = _registry()


def csv_options(path: str | Path, config: dict[str, Any]) -> dict[str, Any]:
    """Reader options for an input file: the configured delimiter (``data.sep``) for CSV."""
    sep = config.get("data", {}).get("sep")
    return {"sep": sep} if sep is not None and ".csv" in Path(path).name.lower() else {}


def load_inputs(events: str | Path | None, users: str | Path | None,
                config: dict[str, Any], seed: int) -> Inputs:
    """Load ``events`` (and ``users``), or simulate a service from ``config["data"]``.

    A folder written by ``listening-models simulate --partitioned`` (with ``events/``
    and ``users/`` inside) can be passed as ``events``; a users file named like
    ``events_users.parquet`` beside ``events.parquet`` is picked up when ``users`` is
    not given.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    models.exceptions.DataValidationError
        If the log or the users table breaks a rule.
    """
    from models.data import NetworkOptions, load_events, load_users, simulate_service

    if events is None:
        d = config["data"]
        service = simulate_service(d["n_users"], d["days"],
                                   network=NetworkOptions(n_artists=d["n_artists"]),
                                   random_seed=seed)
        record = {"simulated": {"n_users": d["n_users"], "days": d["days"],
                                "n_artists": d["n_artists"], "random_seed": seed},
                  "events_sha256": hash_data(service.events),
                  "users_sha256": hash_data(service.users)}
        text = (f"Built-in simulated service: {d['n_users']:,} users over {d['days']} days "
                f"(seed {seed}), {len(service.events):,} plays; the truth is known.")
        return Inputs(service.events, service.users, service.truth.observation_end, text,
                      record, service.truth)
    events = Path(events)
    if not events.exists():
        raise FileNotFoundError(f"No events file or folder at {str(events)!r}.")
    if users is None and events.is_dir() and (events / "events").is_dir():
        users = events / "users" if (events / "users").is_dir() else None
        events = events / "events"
    elif users is None and events.is_file():
        beside = events.with_name(events.stem + "_users" + events.suffix)
        users = beside if beside.is_file() else None
    if users is not None and not Path(users).exists():
        raise FileNotFoundError(f"No users file or folder at {str(users)!r}.")
    log = load_events(events, **csv_options(events, config))
    table = load_users(users, **csv_options(users, config)) if users is not None else None
    record = {"events": file_sha256(events),
              "users": file_sha256(users) if users is not None else None}
    end = pd.Timestamp(log["timestamp"].max())
    text = (f"Listening log {events} ({len(log):,} plays, {log['user_id'].nunique():,} users, "
            f"{log['timestamp'].min()} to {end})"
            + (f" with users table {users}." if users is not None else ", no users table."))
    return Inputs(log, table, end, text, record)


def check_enough_users(analysis: Analysis, inputs: Inputs) -> None:
    """Raise when the log has fewer users than ``analysis.min_users``.

    Raises
    ------
    models.exceptions.DataValidationError
        Naming the number of users found and the minimum.
    """
    from models.exceptions import DataValidationError, Problem

    users = inputs.events["user_id"].unique()
    if len(users) >= analysis.min_users:
        return
    shown = ", ".join(repr(u.item() if hasattr(u, "item") else u) for u in users[:5])
    raise DataValidationError(
        [Problem("user_id", f"at least {analysis.min_users} distinct users for the "
                 f"{analysis.name} analysis, whose models describe a population of users; "
                 f"the log has {len(users)} ({shown})",
                 fix="pass the log of more users; to look at one user, fit a model from "
                 "models.churn or models.listening directly")],
        what="events")


def check_priors(analysis: Analysis, config: dict[str, Any], source: str) -> None:
    """Check the ``[priors]`` table of a configuration before anything is fitted.

    Every table must name a model the analysis fits, and every prior must be valid
    for that model (known prior name, known distribution and parameters).

    Raises
    ------
    ConfigError
        Naming the bad key and listing the valid ones.
    """
    from models import churn, experiments, listening, network  # noqa: F401 - register models
    from models.base import BayesianModel

    for model_name, table in config.get("priors", {}).items():
        if model_name not in analysis.models:
            raise ConfigError(
                f"Unknown model {model_name!r} under [priors] in {source}; the "
                f"{analysis.name} analysis fits {sorted(analysis.models)}.")
        cls = BayesianModel._registry[model_name]
        try:
            cls(priors=table)
        except ValueError as err:
            raise ConfigError(f"In [priors.{model_name}] of {source}: {err}") from None


def _resolve(name: str, config_path: str | Path | None, quick: bool, seed: int | None,
             all_mode: bool) -> dict[str, Any]:
    if config_path is not None and all_mode:
        table = read_toml(config_path)
        unknown = sorted(set(table) - set(ANALYSES))
        if unknown:
            raise ConfigError(f"Unknown key {unknown[0]!r} in {str(config_path)!r}; a config "
                              f"for 'run all' has one table per analysis: {sorted(ANALYSES)}.")
        config = load_config(name, quick=quick)
        config = merge_config(config, table.get(name, {}), source=f"[{name}] of {config_path}")
    else:
        config = load_config(name, config_path, quick=quick)
    if seed is not None:
        config["seed"] = seed
    return config


def run_analysis(
    name: str,
    *,
    events: str | Path | None = None,
    users: str | Path | None = None,
    assignments: str | Path | None = None,
    config: str | Path | None = None,
    out: str | Path | None = None,
    seed: int | None = None,
    quick: bool = False,
    quiet: bool = False,
    force: bool = False,
    sep: str | None = None,
    command: Sequence[str] | None = None,
) -> list[Path]:
    """Run one analysis (or ``"all"``) and write its output folder.

    Each analysis writes into a working folder beside its output folder and replaces
    the earlier outputs only when it has finished (``models.analysis.staging``);
    an error or an interrupt leaves them as they were and carries a note
    (``err.__notes__``) saying so and where the partial files are.

    Parameters
    ----------
    name : str
        An analysis of :data:`ANALYSES`, or ``"all"``.
    events, users : str or pathlib.Path, optional
        Listening log (CSV/Parquet file or a folder of Parquet files) and users
        table; without ``events`` the built-in simulated service is used.
    assignments : str or pathlib.Path, optional
        Assignment table of an experiment (CSV or Parquet: ``user_id``, ``variant``,
        ``assigned_at``), for the ``experiment`` analysis of your own log. With
        ``"all"``, ``events`` and no assignment table, the experiment analysis is
        skipped (with a message); without ``events`` it simulates an experiment.
    config : str or pathlib.Path, optional
        TOML file overriding the defaults (for ``"all"``: one table per analysis).
    out : str or pathlib.Path, optional
        Output folder; ``results/<name>`` by default (``<out>/<name>`` for ``"all"``).
    seed : int, optional
        Replaces the configuration's ``seed``.
    quick : bool, default False
        Small data and few draws.
    quiet : bool, default False
        No progress output and no sampler progress bars.
    force : bool, default False
        Refit models even when their cached fits are up to date.
    sep : str, optional
        Column delimiter of CSV inputs (events, users, assignments), e.g. ``";"`` or
        a tab; comma by default. Recorded as ``data.sep`` in the configuration.
    command : sequence of str, optional
        The command line, recorded in the manifest.

    Returns
    -------
    list of pathlib.Path
        The output folder of each analysis run.

    Raises
    ------
    ValueError
        For an unknown analysis name or a bad configuration (:class:`ConfigError`).
    FileNotFoundError
        For a missing input or config file.
    OSError
        When the output folder cannot be written (checked before any data is read),
        or another run is writing it (``FileExistsError``).
    models.exceptions.DataValidationError
        For invalid data, or a log with fewer users than the analysis needs.
    KeyboardInterrupt
        On Ctrl-C (:class:`models.exceptions.FitInterrupted` during a fit).
    """
    if name != "all" and name not in ANALYSES:
        raise ValueError(f"Unknown analysis {name!r}; choose one of {[*ANALYSES, 'all']}.")
    names = list(ANALYSES) if name == "all" else [name]
    if assignments is not None and not any(ANALYSES[n].load for n in names):
        raise ValueError(f"The {name} analysis takes no assignment table; --assignments is for "
                         "the experiment analysis.")
    if name == "all" and events is not None and assignments is None:
        names = [n for n in names if ANALYSES[n].load is None]
        if not quiet:
            print("[all] no --assignments given: the experiment analysis is skipped (it needs "
                  "the assignment table of your experiment).", file=sys.stderr, flush=True)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"The 'seed' must be a non-negative integer. Got {seed!r} instead.")
    if sep is not None and not (isinstance(sep, str) and len(sep) == 1 and sep not in "\n\r\"'"):
        raise ValueError(f"The 'sep' must be one character such as ';' or a tab. Got {sep!r} "
                         "instead.")
    configs = {n: _resolve(n, config, quick, seed, name == "all") for n in names}
    if sep is not None:
        for cfg in configs.values():
            cfg["data"]["sep"] = sep
    for n in names:
        check_priors(ANALYSES[n], configs[n], str(config) if config is not None else "the "
                     "defaults")
    written = []
    for n in names:
        cfg = configs[n]
        if name == "all":
            folder = Path(out) / n if out is not None else Path("results") / n
        else:
            folder = Path(out) if out is not None else Path("results") / n
        written.append(_run_one(ANALYSES[n], cfg, folder, events=events, users=users,
                                assignments=assignments, config_path=config, quiet=quiet,
                                force=force, command=command))
    return written


def _run_one(analysis: Analysis, config: dict[str, Any], folder: Path, *, events: Any,
             users: Any, assignments: Any, config_path: Any, quiet: bool, force: bool,
             command: Sequence[str] | None) -> Path:
    if not isinstance(config["seed"], int) or config["seed"] < 0:
        raise ConfigError(f"The key 'seed' must be a non-negative integer. "
                          f"Got {config['seed']!r} instead.")
    check_output_folder(folder)
    work = prepare_work_folder(folder)
    outputs = AnalysisOutputs(work, analysis.name, quiet=quiet, force=force,
                              cache_dirs=[folder / "posterior"])
    try:
        _run_in(analysis, config, outputs, events=events, users=users,
                assignments=assignments, config_path=config_path, quiet=quiet,
                command=command)
        replace_outputs(work, folder)
    except BaseException as err:
        release_work_folder(work)
        unchanged = (f"The outputs in {str(folder)!r} are unchanged"
                     if (folder / "diagnostics.json").is_file() else
                     f"No outputs were written to {str(folder)!r}")
        if discard_if_empty(work):
            err.add_note(f"The {analysis.name} run did not finish. {unchanged}.")
        else:
            err.add_note(f"The {analysis.name} run did not finish. {unchanged}; the partial "
                         f"files of this run are in {str(work)!r} (the next run reuses its "
                         "finished fits).")
        raise
    outputs.say(f"done in {outputs.timings['total']:.0f} s: verdict "
                f"{outputs.overall_verdict()}; report at {folder / 'report.html'}")
    return folder


def _run_in(analysis: Analysis, config: dict[str, Any], outputs: AnalysisOutputs, *,
            events: Any, users: Any, assignments: Any, config_path: Any, quiet: bool,
            command: Sequence[str] | None) -> None:
    """Run the analysis and write every output into ``outputs.out`` (the working folder)."""
    seed = int(config["seed"])
    start = time.perf_counter()
    with outputs.step("load the data"):
        if analysis.load is not None:
            inputs = analysis.load(events, users, assignments, config, seed)
        else:
            inputs = load_inputs(events, users, config, seed)
    outputs.say(inputs.description)
    check_enough_users(analysis, inputs)
    context = AnalysisContext(inputs, config, seed, outputs, quiet)
    loggers = [logging.getLogger(n) for n in ("pymc", "pymc.sampling", "pytensor")]
    levels = [lg.level for lg in loggers]
    if quiet:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
    try:
        analysis.run(context)
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    with outputs.step("write outputs"):
        outputs.write()
        (outputs.out / "config.toml").write_text(
            f"# Resolved configuration of the {analysis.name} analysis.\n" + dump_toml(config))
        write_report(outputs, title=f"listening-models: {analysis.name} analysis",
                     inputs_text=inputs.description)
        outputs.prune_posteriors()
    outputs.timings["total"] = round(time.perf_counter() - start, 3)
    record = dict(inputs.record)
    if config_path is not None:
        record["config_file"] = file_sha256(config_path)
    write_manifest(outputs, config=config, seed=seed, inputs=record,
                   command=list(command) if command is not None else None)
