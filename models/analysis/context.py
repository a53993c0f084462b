"""What an analysis step function receives: its inputs, configuration, seed and outputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from models._compiled import usable_cpus
from models.analysis.outputs import AnalysisOutputs

__all__ = ["Analysis", "AnalysisContext", "Inputs"]


@dataclass
class Inputs:
    """The data an analysis runs on.

    Attributes
    ----------
    events : pandas.DataFrame
        Validated listening log.
    users : pandas.DataFrame or None
        Validated users table.
    observation_end : pandas.Timestamp
        End of the observation window (the simulator's, or the last event).
    description : str
        One sentence for the report.
    record : dict
        What goes into the manifest: file paths and their sha256, or the
        simulation settings and a hash of the simulated tables.
    truth : models.data.ServiceTruth, models.experiments.SimulatedExperiment or None
        Ground truth of a simulated service (or experiment).
    assignments : pandas.DataFrame or None
        Validated assignment table of an experiment (``user_id``, ``variant``,
        ``assigned_at``).
    """

    events: pd.DataFrame
    users: pd.DataFrame | None
    observation_end: pd.Timestamp
    description: str
    record: dict[str, Any]
    truth: Any = None
    assignments: pd.DataFrame | None = None


@dataclass
class AnalysisContext:
    """Everything one analysis step function needs."""

    inputs: Inputs
    config: dict[str, Any]
    seed: int
    out: AnalysisOutputs
    quiet: bool

    def sampler_kwargs(self, offset: int = 0) -> dict[str, Any]:
        """Keyword arguments of ``BayesianModel.fit`` from the ``[sampler]`` table."""
        s = self.config["sampler"]
        kwargs = {"method": s["method"], "sampler": s["sampler"], "draws": s["draws"],
                  "tune": s["tune"], "chains": s["chains"],
                  # 0: None, each model's own default_target_accept (0.65 where the users
                  # are integrated out, 0.9 otherwise); fit rejects a value outside (0, 1)
                  "target_accept": s["target_accept"] or None,
                  "random_seed": self.seed + offset, "progressbar": not self.quiet}
        # 0: one process per chain, up to the CPUs this process may use (PyMC's own default
        # assumes half the CPUs are hyper-threads and samples sequentially on 2 cores)
        kwargs["cores"] = s["cores"] or min(s["chains"], usable_cpus())
        return kwargs


@dataclass(frozen=True)
class Analysis:
    """One registered analysis.

    Attributes
    ----------
    name : str
        Command-line name.
    description : str
        What it does, in a sentence.
    needs : str
        Which inputs (columns, users table) it uses.
    run : callable
        ``run(context) -> None``, filling ``context.out``.
    models : tuple of str
        Names of the model classes it fits (the valid tables of ``[priors]``).
    min_users : int
        Fewest distinct users in the log it can describe; fewer is an error up front.
    load : callable, optional
        ``load(events, users, assignments, config, seed) -> Inputs`` for an analysis
        with inputs of its own (an assignment table, a simulated experiment); the
        listening log and users table of ``load_inputs`` otherwise.
    """

    name: str
    description: str
    needs: str
    run: Callable[[AnalysisContext], None] = field(repr=False)
    models: tuple[str, ...] = ()
    min_users: int = 1
    load: Callable[..., Inputs] | None = field(default=None, repr=False)
