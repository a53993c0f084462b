"""The registry of analyses, their inputs, and :func:`run_analysis`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from models.analysis.config import ConfigError, dump_toml, load_config, merge_config, read_toml
from models.analysis.context import Analysis, AnalysisContext, Inputs
from models.analysis.outputs import AnalysisOutputs, hash_data
from models.analysis.report import file_sha256, write_manifest, write_report

__all__ = ["ANALYSES", "Analysis", "AnalysisContext", "Inputs", "load_inputs", "run_analysis"]


def _registry() -> dict[str, Analysis]:
    from models.analysis import churn, listening, network

    return {a.name: a for a in (churn.ANALYSIS, listening.ANALYSIS, network.ANALYSIS)}


#: Every analysis by name; ``run all`` runs them in this order.
ANALYSES: dict[str, Analysis] = _registry()


def _read_users(path: Path) -> pd.DataFrame:
    from models.data import load_users, validate_users

    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"No Parquet files under the users folder {str(path)!r}.")
        return validate_users(pd.concat([pd.read_parquet(f) for f in files],
                                        ignore_index=True))
    return load_users(path)


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
    from models.data import load_events, simulate_service

    if events is None:
        d = config["data"]
        service = simulate_service(d["n_users"], d["days"], n_artists=d["n_artists"],
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
    log = load_events(events)
    table = _read_users(Path(users)) if users is not None else None
    record = {"events": file_sha256(events),
              "users": file_sha256(users) if users is not None else None}
    end = pd.Timestamp(log["timestamp"].max())
    text = (f"Listening log {events} ({len(log):,} plays, {log['user_id'].nunique():,} users, "
            f"{log['timestamp'].min()} to {end})"
            + (f" with users table {users}." if users is not None else ", no users table."))
    return Inputs(log, table, end, text, record)


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
    config: str | Path | None = None,
    out: str | Path | None = None,
    seed: int | None = None,
    quick: bool = False,
    quiet: bool = False,
    force: bool = False,
    command: Sequence[str] | None = None,
) -> list[Path]:
    """Run one analysis (or ``"all"``) and write its output folder.

    Parameters
    ----------
    name : str
        An analysis of :data:`ANALYSES`, or ``"all"``.
    events, users : str or pathlib.Path, optional
        Listening log (CSV/Parquet file or a folder of Parquet files) and users
        table; without ``events`` the built-in simulated service is used.
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
    models.exceptions.DataValidationError
        For invalid data.
    """
    if name != "all" and name not in ANALYSES:
        raise ValueError(f"Unknown analysis {name!r}; choose one of {[*ANALYSES, 'all']}.")
    names = list(ANALYSES) if name == "all" else [name]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"The 'seed' must be a non-negative integer. Got {seed!r} instead.")
    configs = {n: _resolve(n, config, quick, seed, name == "all") for n in names}
    written = []
    for n in names:
        cfg = configs[n]
        if name == "all":
            folder = Path(out) / n if out is not None else Path("results") / n
        else:
            folder = Path(out) if out is not None else Path("results") / n
        written.append(_run_one(ANALYSES[n], cfg, folder, events=events, users=users,
                                config_path=config, quiet=quiet, force=force,
                                command=command))
    return written


def _run_one(analysis: Analysis, config: dict[str, Any], folder: Path, *, events: Any,
             users: Any, config_path: Any, quiet: bool, force: bool,
             command: Sequence[str] | None) -> Path:
    if not isinstance(config["seed"], int) or config["seed"] < 0:
        raise ConfigError(f"The key 'seed' must be a non-negative integer. "
                          f"Got {config['seed']!r} instead.")
    outputs = AnalysisOutputs(folder, analysis.name, quiet=quiet, force=force)
    seed = int(config["seed"])
    start = time.perf_counter()
    with outputs.step("load the data"):
        inputs = load_inputs(events, users, config, seed)
    outputs.say(inputs.description)
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
        (folder / "config.toml").write_text(
            f"# Resolved configuration of the {analysis.name} analysis.\n" + dump_toml(config))
        write_report(outputs, title=f"listening-models: {analysis.name} analysis",
                     inputs_text=inputs.description)
    outputs.timings["total"] = round(time.perf_counter() - start, 3)
    record = dict(inputs.record)
    if config_path is not None:
        record["config_file"] = file_sha256(config_path)
    write_manifest(outputs, config=config, seed=seed, inputs=record,
                   command=list(command) if command is not None else None)
    outputs.say(f"done in {outputs.timings['total']:.0f} s: verdict "
                f"{outputs.overall_verdict()}; report at {folder / 'report.html'}")
    return folder
