"""The human-readable ``report.html``, the ``manifest.json`` and the trace/rank figure."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from models._version import __version__
from models.analysis.outputs import AnalysisOutputs, _jsonable

__all__ = ["file_sha256", "plot_trace_rank", "write_manifest", "write_report"]

#: Distributions whose versions go into the manifest.
DEPENDENCIES = ("pymc", "pytensor", "arviz", "numpy", "pandas", "scipy", "xarray", "networkx",
                "matplotlib", "pyarrow", "h5netcdf", "nutpie", "dask")

_VERDICT_TEXT = {
    "pass": "every convergence check passed",
    "warn": "usable, but some checks deserve attention (see cautions)",
    "fail": "NOT converged: do not use these numbers before fixing the problems listed",
    "not-applicable": "no MCMC fit failed or warned, but at least one fit is an optimisation "
                      "or variational fit, to which no convergence check applies",
}


def file_sha256(path: str | Path) -> dict[str, str]:
    """Return the sha256 of a file, or of every file under a directory, keyed by path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = p.write_text("abc")
    >>> file_sha256(p)[str(p)][:12]
    'ba7816bf8f01'
    """
    path = Path(path)
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    out = {}
    for f in files:
        digest = hashlib.sha256()
        with f.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        out[str(f)] = digest.hexdigest()
    return out


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"listening-models": __version__,
                                  "python": platform.python_version()}
    for name in DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_manifest(outputs: AnalysisOutputs, *, config: dict[str, Any], seed: int,
                   inputs: dict[str, Any], command: list[str] | None = None) -> Path:
    """Write ``manifest.json``: versions, git commit, input hashes, config, seed, timings."""
    files = {}
    for path in sorted(outputs.out.rglob("*")):
        if path.is_file() and path.name != "manifest.json" and path.suffix != ".key":
            files[str(path.relative_to(outputs.out))] = file_sha256(path)[str(path)]
    manifest = {
        "analysis": outputs.analysis,
        "versions": _versions(),
        "git_commit": _git_commit(),
        "platform": platform.platform(),
        "command": command,
        "seed": seed,
        "inputs": inputs,
        "config": config,
        "fits": {name: {"model": r.settings["model"], "cached": r.cached, "seconds": r.seconds}
                 for name, r in outputs.fits.items()},
        "timings_seconds": outputs.timings,
        "outputs_sha256": files,
    }
    path = outputs.out / "manifest.json"
    path.write_text(json.dumps(_jsonable(manifest), indent=2, sort_keys=True) + "\n")
    return path


def plot_trace_rank(model: Any, *, max_vars: int = 6) -> Figure:
    """Trace and rank plots of the first scalar elements of a fit's parameters.

    Parameters
    ----------
    model : BayesianModel
        A fitted model.
    max_vars : int, default 6
        At most this many scalar elements are drawn.

    Returns
    -------
    matplotlib.figure.Figure
        One row per element: the draws of every chain, and the histogram of their
        ranks per chain (flat when the chains mix, Vehtari et al. 2021).
    """
    posterior = model.idata_["posterior"].to_dataset()
    names = [n for n in model._parameter_names() if n in posterior.data_vars]
    series: list[tuple[str, np.ndarray]] = []
    for name in names:
        values = posterior[name].values
        flat = values.reshape(values.shape[0], values.shape[1], -1)
        for j in range(min(flat.shape[2], max_vars - len(series))):
            label = name if flat.shape[2] == 1 else f"{name}[{j}]"
            series.append((label, flat[:, :, j]))
        if len(series) >= max_vars:
            break
    fig = Figure(figsize=(9, 1.8 * max(len(series), 1)))
    if not series:
        fig.text(0.5, 0.5, "no scalar parameters to show", ha="center")
        return fig
    axes = fig.subplots(len(series), 2, squeeze=False)
    for (label, draws), (ax_trace, ax_rank) in zip(series, axes, strict=True):
        n_chains, n_draws = draws.shape
        for c in range(n_chains):
            ax_trace.plot(draws[c], lw=0.5, alpha=0.8)
        ax_trace.set_ylabel(label, fontsize=8)
        ranks = pd.Series(draws.ravel()).rank(method="average").to_numpy().reshape(draws.shape)
        bins = np.linspace(0.5, draws.size + 0.5, 11)
        for c in range(n_chains):
            counts, _ = np.histogram(ranks[c], bins=bins)
            ax_rank.step(np.arange(10), counts, where="mid", lw=1)
        ax_rank.axhline(n_draws / 10, color="k", ls=":", lw=0.8)
        ax_rank.set_yticks([])
    axes[0, 0].set_title("trace (one line per chain)", fontsize=9)
    axes[0, 1].set_title("rank histogram per chain (flat = mixing)", fontsize=9)
    fig.tight_layout()
    return fig


def _table_html(frame: pd.DataFrame, max_rows: int = 40) -> str:
    shown = frame.head(max_rows)
    text = shown.to_html(float_format=lambda v: f"{v:.4g}", border=0, classes="t",
                         na_rep="")
    if len(frame) > max_rows:
        text += f"<p class='small'>First {max_rows} of {len(frame):,} rows; all in the CSV.</p>"
    return text


def _figure_html(outputs: AnalysisOutputs, fig: Any) -> str:
    data = base64.b64encode((outputs.out / "figures" / f"{fig.name}.png").read_bytes())
    return (f"<h3>{html.escape(fig.caption)}</h3><img alt='{html.escape(fig.name)}' "
            f"src='data:image/png;base64,{data.decode()}'>")


def _section(outputs: AnalysisOutputs, section: str, heading: str, sentences: list[str],
             ) -> list[str]:
    """Return the HTML of a section: its sentences, then its figures and tables in order."""
    items = [("figure", f) for f in outputs.figures if f.section == section]
    items += [("table", t) for t in outputs.tables if t.section == section]
    items.sort(key=lambda item: item[1].order)
    if not items and not sentences:
        return []
    parts = [f"<h2>{html.escape(heading)}</h2>"]
    if sentences:
        parts.append("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
                     + "</ul>")
    for kind, item in items:
        if kind == "figure":
            parts.append(_figure_html(outputs, item))
        else:
            parts.append(f"<h3>{html.escape(item.caption)}</h3>{_table_html(item.frame)}")
    return parts


def write_report(outputs: AnalysisOutputs, *, title: str, inputs_text: str) -> Path:
    """Write ``report.html``: one page with figures embedded, readable offline.

    The page leads with the answers (the findings: sentences, figures and tables an
    analysis marked ``section="findings"``), then the checks of the data, then whether
    the fits can be trusted (verdicts, problems, advice), notes, the remaining figures
    and tables (trace plots, diagnostics), posterior summaries and predictions.
    """
    esc = html.escape
    verdict = outputs.overall_verdict()
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>",
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "line-height:1.4}table.t{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
        "table.t td,table.t th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        ".pass{color:#1a7f37}.warn{color:#9a6700}.fail{color:#cf222e}"
        ".not-applicable{color:#57606a}.small{font-size:0.8em;color:#57606a}"
        "img{max-width:100%;border:1px solid #eee}",
        "</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p><b>Overall verdict: <span class='{esc(verdict)}'>{esc(verdict.upper())}</span></b>"
        f" &mdash; {esc(_VERDICT_TEXT.get(verdict, ''))}.</p>",
        f"<p>{esc(inputs_text)}</p>",
    ]
    parts += _section(outputs, "findings", "Findings", outputs.findings)
    parts += _section(outputs, "checks", "Checks of the data", [])
    parts.append("<h2>What was fitted, and can it be trusted?</h2>")
    rows = []
    for name, r in outputs.fits.items():
        report = r.model.diagnostics()
        rows.append({
            "fit": name, "model": r.settings["model"], "what for": r.description,
            "method": report.method, "chains x draws": f"{report.n_chains} x {report.n_draws}",
            "divergences": report.n_divergent, "verdict": report.verdict,
            "from cache": r.cached})
    if rows:
        parts.append(pd.DataFrame(rows).to_html(index=False, border=0, classes="t"))
    for name, r in outputs.fits.items():
        report = r.model.diagnostics()
        items = ([f"Problem: {p}" for p in report.problems]
                 + [f"Caution: {c}" for c in report.cautions]
                 + [f"Advice: {a}" for a in report.advice])
        if items:
            parts.append(f"<h3>{esc(name)}: <span class='{esc(report.verdict)}'>"
                         f"{esc(report.verdict)}</span></h3><ul>")
            parts += [f"<li>{esc(i)}</li>" for i in items]
            parts.append("</ul>")
    if outputs.notes:
        parts.append("<h2>Notes</h2><ul>")
        parts += [f"<li>{esc(n)}</li>" for n in outputs.notes]
        parts.append("</ul>")
    figures = [f for f in outputs.figures if f.section == "details"]
    if figures:
        parts.append("<h2>Figures</h2>")
        parts += [_figure_html(outputs, fig) for fig in figures]
    tables = [t for t in outputs.tables if t.section == "details"]
    if tables:
        parts.append("<h2>Tables</h2>")
        parts += [f"<h3>{esc(t.caption)}</h3>{_table_html(t.frame)}" for t in tables]
    summary = outputs.summary_frame()
    if len(summary):
        parts.append("<h2>Posterior summaries (89% equal-tailed intervals)</h2>")
        parts.append(_table_html(summary, max_rows=80))
    if outputs.predictions is not None and len(outputs.predictions):
        parts.append("<h2>Predictions (first rows; 89% equal-tailed intervals)</h2>")
        parts.append(_table_html(outputs.predictions, max_rows=15))
    parts.append("<p class='small'>Files: summary.csv, diagnostics.json, predictions.csv, "
                 "tables/, posterior/ (reload with the model class's <code>load</code>), "
                 "figures/, config.toml, manifest.json.</p></body></html>")
    path = outputs.out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
