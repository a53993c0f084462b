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
stored beside its posterior is loaded instead of refitted (unless ``force``), after
checking that the file reads and holds every chain and draw those settings ask for;
a cached fit that fails this is refitted, with a note. A posterior is written
atomically and its key only after it, so an interrupted run never leaves a key beside
a partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models._atomic import write_text_atomic
from models._version import __version__
from models.base import PosteriorModel
from models.exceptions import ConvergenceWarning, UninformativeDataWarning

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
    model: PosteriorModel
    description: str
    settings: dict[str, Any]
    cached: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)


#: Sections of the report a table or figure can go to, in the report's order.
SECTIONS = ("findings", "checks", "details")


@dataclass
class _Figure:
    name: str
    caption: str
    section: str = "details"
    order: int = 0


@dataclass
class _Table:
    name: str
    caption: str
    frame: pd.DataFrame
    section: str = "details"
    order: int = 0


def _check_section(section: str) -> str:
    if section not in SECTIONS:
        raise ValueError(f"The 'section' of a report item must be one of {list(SECTIONS)}. "
                         f"Got {section!r} instead.")
    return section


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
    cache_dirs : sequence of str or pathlib.Path, optional
        Further folders of ``<name>.nc`` / ``<name>.key`` pairs searched, after
        ``out_dir/posterior``, for an up-to-date fit (e.g. the ``posterior/`` folder
        of the outputs this run will replace). A fit found there is linked (or
        copied) into ``out_dir/posterior``.
    """

    def __init__(self, out_dir: str | Path, analysis: str, *, quiet: bool = False,
                 force: bool = False, cache_dirs: Sequence[str | Path] = ()) -> None:
        self.out = Path(out_dir)
        self.analysis = analysis
        self.quiet = quiet
        self.force = force
        self.cache_dirs = [Path(d) for d in cache_dirs]
        self.fits: dict[str, FitRecord] = {}
        self.tables: list[_Table] = []
        self.figures: list[_Figure] = []
        self.notes: list[str] = []
        self.findings: list[str] = []
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

    def finding(self, text: str) -> None:
        """Add a sentence to the findings the report opens with (and print it)."""
        self.findings.append(text)
        self.say(f"finding: {text}")

    # -------------------------------------------------------------------- fits
    def fit(self, name: str, model: PosteriorModel, data: Any, *, description: str,
            **fit_kwargs: Any) -> PosteriorModel:
        """Fit ``model`` to ``data``, or load the cached fit when nothing changed.

        Parameters
        ----------
        name : str
            File-safe name of this fit (``posterior/<name>.nc``).
        model : PosteriorModel
            An unfitted model.
        data : object
            Its training data.
        description : str
            One line for the report: what the model is for.
        **fit_kwargs
            Passed to ``model.fit``.

        Returns
        -------
        PosteriorModel
            The fitted (or loaded) model.
        """
        # the progress bar changes nothing in the fit, so it does not invalidate the cache
        settings = {"model": type(model).__name__, "params": _jsonable(model.get_params()),
                    "fit": _jsonable({k: v for k, v in fit_kwargs.items()
                                      if k != "progressbar"})}
        key = hashlib.sha256(json.dumps(
            {"settings": settings, "data": hash_data(data), "version": __version__},
            sort_keys=True, default=str).encode()).hexdigest()
        path = self.out / "posterior" / f"{name}.nc"
        key_path = path.with_suffix(".key")
        start = time.perf_counter()
        caught: list[str] = []
        loaded = None if self.force else self._load_cached(name, model, key, fit_kwargs)
        cached = loaded is not None
        if loaded is not None:
            model = loaded
        else:
            self.say(f"  fitting {name} ({type(model).__name__})")
            key_path.unlink(missing_ok=True)
            with warnings.catch_warnings(record=True) as records:
                warnings.simplefilter("always", ConvergenceWarning)
                warnings.simplefilter("always", UninformativeDataWarning)
                model.fit(data, **fit_kwargs)
            for rec in records:
                if issubclass(rec.category, ConvergenceWarning | UninformativeDataWarning):
                    caught.append(str(rec.message).splitlines()[0])
                else:
                    warnings.warn_explicit(rec.message, rec.category, rec.filename, rec.lineno)
            model.save(path)  # atomic: a complete file or none
            write_text_atomic(key_path, key + "\n")  # only after the posterior is complete
        seconds = round(time.perf_counter() - start, 3)
        verdict = model.diagnostics().verdict
        self.say(f"  {name}: verdict {verdict}")
        self.fits[name] = FitRecord(name, model, description, settings, cached, seconds, caught)
        self.timings[f"fit {name}"] = seconds
        return model

    def _load_cached(self, name: str, model: PosteriorModel, key: str,
                     fit_kwargs: Mapping[str, Any]) -> PosteriorModel | None:
        """Load an up-to-date cached fit that reads and is complete, or return None.

        Looks in ``posterior/`` and then in ``cache_dirs``; a fit found in a cache
        folder is linked into ``posterior/``. A fit whose key matches but whose file
        cannot be used is noted and skipped.
        """
        target = self.out / "posterior" / f"{name}.nc"
        for folder in [self.out / "posterior", *self.cache_dirs]:
            path = folder / f"{name}.nc"
            key_path = path.with_suffix(".key")
            try:
                if not (path.is_file() and key_path.is_file()
                        and key_path.read_text().strip() == key):
                    continue
                loaded = type(model).load(path)
                _check_settings(loaded, fit_kwargs)
            except Exception as err:  # noqa: BLE001 - any unusable cache means refit
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                self.note(f"The cached fit {path} could not be used ({reason}); {name} is "
                          "refitted.")
                continue
            if path != target:
                _link_or_copy(path, target)
                _link_or_copy(key_path, target.with_suffix(".key"))
            self.say(f"  {name}: inputs unchanged, loaded {path.name} (--force refits)")
            return loaded
        return None

    def prune_posteriors(self) -> None:
        """Remove files of ``posterior/`` that hold no fit of this run (left by an earlier one)."""
        keep = {f"{name}{suffix}" for name in self.fits for suffix in (".nc", ".key")}
        for path in (self.out / "posterior").iterdir():
            if path.name not in keep:
                path.unlink()

    # ------------------------------------------------------- tables and figures
    def add_table(self, name: str, frame: pd.DataFrame, caption: str, *,
                  section: str = "details") -> None:
        """Record a table (written to ``tables/<name>.csv`` and shown in the report).

        ``section`` places it in the report: ``"findings"`` (the answers the report
        opens with), ``"checks"`` (checks of the data, after the findings) or
        ``"details"`` (after the fit diagnostics).
        """
        order = len(self.tables) + len(self.figures)
        self.tables.append(_Table(name, caption, frame, _check_section(section), order))

    def add_figure(self, name: str, figure: Any, caption: str, *,
                   section: str = "details") -> None:
        """Save a matplotlib figure to ``figures/<name>.png`` and list it in the report.

        ``section`` as in :meth:`add_table`.
        """
        _check_section(section)
        figure.savefig(self.out / "figures" / f"{name}.png", dpi=90, bbox_inches="tight",
                       metadata={"Software": None})
        order = len(self.tables) + len(self.figures)
        self.figures.append(_Figure(name, caption, section, order))

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


def _check_settings(model: PosteriorModel, fit_kwargs: Mapping[str, Any]) -> None:
    """Raise when a loaded fit has other draws or chains than ``fit_kwargs`` ask for."""
    meta = json.loads(model.idata_.attrs.get("listening_models", "{}"))
    sizes = model.idata_["posterior"].sizes
    for name, dim in (("draws", "draw"), ("chains", "chain")):
        asked = fit_kwargs.get(name)
        if asked is None or meta.get("method") not in ("nuts", "gibbs"):
            continue
        if meta.get(name) != asked or int(sizes.get(dim, 0)) != asked:
            raise ValueError(f"it holds {int(sizes.get(dim, 0))} {dim}(s) where the settings "
                             f"ask for {asked}")


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` as ``target`` (a copy across file systems), replacing it."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copy2(source, tmp)
    os.replace(tmp, target)


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
