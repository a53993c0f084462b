"""The output folder of an analysis, the same layout for every analysis.

::

    OUT/
      summary.csv          ArviZ summary of every fitted model (column ``model``)
      diagnostics.json     each fit report with its verdict, and an overall verdict
      predictions.csv      the analysis's per-unit predictions, with intervals
      tables/*.csv         further tables (holdout metrics, contrasts, LOO, ...)
      posterior/<m>.nc     each fit, reloadable with ``<ModelClass>.load``
      figures/*.png        trace/rank plots, predictive checks, curves, networks
      report.html          one self-contained page
      config.toml          the resolved configuration (rerun with ``--config``)
      manifest.json        versions, git commit, input hashes, config, seed, timings

``summary.csv``, ``predictions.csv`` and ``diagnostics.json`` hold no timestamps or
timings, so the same inputs, configuration and seed give byte-identical files.
A fit whose inputs, model settings, fit settings and package version hash to the key
stored beside its posterior is loaded instead of refitted (unless ``force``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models._version import __version__
from models.base import BayesianModel
from models.exceptions import ConvergenceWarning

__all__ = ["AnalysisOutputs", "FitRecord", "hash_data"]

_VERDICT_ORDER = {"pass": 0, "not-applicable": 1, "warn": 2, "fail": 3}


def hash_data(data: Any) -> str:
    """Return a sha256 of a model input: a DataFrame, a networkx graph or JSON-able value.

    Parameters
    ----------
    data : pandas.DataFrame, networkx.Graph or JSON-serialisable value
        The data passed to a model's ``fit``.

    Returns
    -------
    str
        Hex digest; equal data give equal digests in every process.

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"x": [1, 2]})
    >>> hash_data(a) == hash_data(a.copy()), hash_data(a) == hash_data(a + 1)
    (True, False)
    """
    digest = hashlib.sha256()
    if isinstance(data, pd.DataFrame):
        digest.update(json.dumps([list(map(str, data.columns)),
                                  [str(t) for t in data.dtypes]]).encode())
        digest.update(pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes())
    elif hasattr(data, "edges") and hasattr(data, "nodes"):
        nodes = sorted(map(repr, data.nodes))
        edges = sorted(repr((sorted(map(repr, (u, v))), sorted(d.items())))
                       for u, v, d in data.edges(data=True))
        digest.update(json.dumps([nodes, edges]).encode())
    else:
        digest.update(json.dumps(data, sort_keys=True, default=str).encode())
    return digest.hexdigest()


@dataclass
class FitRecord:
    """One fitted model of an analysis: its name, the model and how it was obtained."""

    name: str
    model: BayesianModel
    description: str
    settings: dict[str, Any]
    cached: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Figure:
    name: str
    caption: str


@dataclass
class _Table:
    name: str
    caption: str
    frame: pd.DataFrame


class AnalysisOutputs:
    """Collect the fits, tables, figures and predictions of one run and write them.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        Output folder (created).
    analysis : str
        Analysis name, shown in progress lines and the report.
    quiet : bool, default False
        Print no progress.
    force : bool, default False
        Refit every model even when its cached fit is up to date.
    """

    def __init__(self, out_dir: str | Path, analysis: str, *, quiet: bool = False,
                 force: bool = False) -> None:
        self.out = Path(out_dir)
        self.analysis = analysis
        self.quiet = quiet
        self.force = force
        self.fits: dict[str, FitRecord] = {}
        self.tables: list[_Table] = []
        self.figures: list[_Figure] = []
        self.notes: list[str] = []
        self.predictions: pd.DataFrame | None = None
        self.timings: dict[str, float] = {}
        self._n_step = 0
        for sub in ("posterior", "figures", "tables"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- progress
    def say(self, message: str) -> None:
        """Print a progress line unless quiet."""
        if not self.quiet:
            print(f"[{self.analysis}] {message}", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Time one step of the analysis and announce it."""
        self._n_step += 1
        key = f"{self._n_step:02d} {title}"
        self.say(f"step {self._n_step}: {title}")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[key] = round(time.perf_counter() - start, 3)

    def note(self, text: str) -> None:
        """Add a sentence to the report's notes (and print it)."""
        self.notes.append(text)
        self.say(f"note: {text}")

    # -------------------------------------------------------------------- fits
    def fit(self, name: str, model: BayesianModel, data: Any, *, description: str,
            **fit_kwargs: Any) -> BayesianModel:
        """Fit ``model`` to ``data``, or load the cached fit when nothing changed.

        Parameters
        ----------
        name : str
            File-safe name of this fit (``posterior/<name>.nc``).
        model : BayesianModel
            An unfitted model.
        data : object
            Its training data.
        description : str
            One line for the report: what the model is for.
        **fit_kwargs
            Passed to ``model.fit``.

        Returns
        -------
        BayesianModel
            The fitted (or loaded) model.
        """
        settings = {"model": type(model).__name__, "params": _jsonable(model.get_params()),
                    "fit": _jsonable(fit_kwargs)}
        key = hashlib.sha256(json.dumps(
            {"settings": settings, "data": hash_data(data), "version": __version__},
            sort_keys=True, default=str).encode()).hexdigest()
        path = self.out / "posterior" / f"{name}.nc"
        key_path = path.with_suffix(".key")
        start = time.perf_counter()
        cached = (not self.force and path.is_file() and key_path.is_file()
                  and key_path.read_text().strip() == key)
        caught: list[str] = []
        if cached:
            self.say(f"  {name}: inputs unchanged, loading {path.name} (--force refits)")
            model = type(model).load(path)
        else:
            self.say(f"  fitting {name} ({type(model).__name__})")
            key_path.unlink(missing_ok=True)
            with warnings.catch_warnings(record=True) as records:
                warnings.simplefilter("always", ConvergenceWarning)
                model.fit(data, **fit_kwargs)
            for rec in records:
                if issubclass(rec.category, ConvergenceWarning):
                    caught.append(str(rec.message).splitlines()[0])
                else:
                    warnings.warn_explicit(rec.message, rec.category, rec.filename, rec.lineno)
            model.save(path)
            key_path.write_text(key + "\n")
        seconds = round(time.perf_counter() - start, 3)
        verdict = model.diagnostics().verdict
        self.say(f"  {name}: verdict {verdict}")
        self.fits[name] = FitRecord(name, model, description, settings, cached, seconds, caught)
        self.timings[f"fit {name}"] = seconds
        return model

    # ------------------------------------------------------- tables and figures
    def add_table(self, name: str, frame: pd.DataFrame, caption: str) -> None:
        """Record a table (written to ``tables/<name>.csv`` and shown in the report)."""
        self.tables.append(_Table(name, caption, frame))

    def add_figure(self, name: str, figure: Any, caption: str) -> None:
        """Save a matplotlib figure to ``figures/<name>.png`` and list it in the report."""
        figure.savefig(self.out / "figures" / f"{name}.png", dpi=90, bbox_inches="tight",
                       metadata={"Software": None})
        self.figures.append(_Figure(name, caption))

    def set_predictions(self, frame: pd.DataFrame) -> None:
        """Record the analysis's predictions (``predictions.csv``)."""
        self.predictions = frame

    # ------------------------------------------------------------------ writing
    def overall_verdict(self) -> str:
        """Worst verdict over the fits (``"not-applicable"`` without fits)."""
        verdicts = [r.model.diagnostics().verdict for r in self.fits.values()]
        if not verdicts:
            return "not-applicable"
        return max(verdicts, key=lambda v: _VERDICT_ORDER.get(v, 3))

    def summary_frame(self) -> pd.DataFrame:
        """ArviZ summary of every fit, stacked, with columns ``model`` and ``parameter``."""
        frames = []
        for name, record in self.fits.items():
            table = record.model.summary()
            table = table.rename_axis("parameter").reset_index()
            table.insert(0, "model", name)
            frames.append(table)
        if not frames:
            return pd.DataFrame(columns=["model", "parameter"])
        return pd.concat(frames, ignore_index=True)

    def diagnostics_dict(self) -> dict[str, Any]:
        """Every fit report with its verdict, and the overall verdict."""
        fits = {}
        for name, record in self.fits.items():
            report = record.model.diagnostics().to_dict()
            fits[name] = {"model": record.settings["model"], "description": record.description,
                          "verdict": report["verdict"], "report": report}
        return {"analysis": self.analysis, "verdict": self.overall_verdict(), "fits": fits}

    def write(self) -> dict[str, Path]:
        """Write the deterministic files; return their paths by name."""
        paths = {
            "summary": self.out / "summary.csv",
            "diagnostics": self.out / "diagnostics.json",
            "predictions": self.out / "predictions.csv",
        }
        self.summary_frame().to_csv(paths["summary"], index=False, float_format="%.10g")
        paths["diagnostics"].write_text(
            json.dumps(_jsonable(self.diagnostics_dict()), indent=2, sort_keys=True) + "\n")
        predictions = self.predictions if self.predictions is not None else pd.DataFrame()
        predictions.to_csv(paths["predictions"], index=False, float_format="%.10g")
        for table in self.tables:
            path = self.out / "tables" / f"{table.name}.csv"
            table.frame.to_csv(path, float_format="%.10g")
            paths[f"table {table.name}"] = path
        return paths


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars, tuples, NaN and Timestamps into plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
