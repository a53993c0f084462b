"""Progress of fits: shown in interactive sessions, quiet in scripts, tests and the docs build.

``fit(progressbar=None)`` (the default) is resolved here when the fit starts:
on in IPython and Jupyter, off elsewhere, and whatever the environment variable
:data:`PROGRESSBAR_ENV` says when it is set (the docs build sets it to ``0``).

In a terminal the samplers' own bars are used. In a Jupyter notebook they draw
into a widget, which a saved notebook shows as an empty box (or, without
``ipywidgets``, not at all); there :class:`NotebookProgress` writes the
progress as ordinary output instead, updated in place, so the saved notebook
keeps the last state: draws per chain, divergences and the time taken.
"""

from __future__ import annotations

import html
import os
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["PROGRESSBAR_ENV", "NotebookProgress", "in_notebook", "resolve_progressbar"]

#: Environment variable that decides ``progressbar=None``: ``0`` (quiet) or ``1`` (shown),
#: whatever the session; unset, progress is shown in IPython and Jupyter only.
PROGRESSBAR_ENV = "LISTENING_MODELS_PROGRESSBAR"
_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")
_INTERACTIVE_SHELLS = ("ZMQInteractiveShell", "TerminalInteractiveShell")


def _shell_name() -> str | None:
    """Class name of the running IPython shell, or None outside IPython."""
    ipython = sys.modules.get("IPython")  # not imported: certainly not an IPython session
    get = getattr(ipython, "get_ipython", None)
    shell = get() if get is not None else None
    return None if shell is None else type(shell).__name__


def in_notebook() -> bool:
    """Whether the code runs in a Jupyter kernel (notebook, JupyterLab, VS Code)."""
    return _shell_name() == "ZMQInteractiveShell"


def resolve_progressbar(progressbar: bool | None, owner: str) -> bool:
    """Turn the ``progressbar`` argument of a fit into True or False.

    Parameters
    ----------
    progressbar : bool or None
        True or False are kept; None means: the value of :data:`PROGRESSBAR_ENV`
        when it is set, otherwise True in IPython and Jupyter and False in
        scripts and tests.
    owner : str
        Method named in the error message, e.g. ``"BetaGeoModel.fit"``.

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        If ``progressbar`` is not a bool or None, or the environment variable
        holds something other than 0/1 (true/false, yes/no, on/off).
    """
    if progressbar is None:
        env = os.environ.get(PROGRESSBAR_ENV)
        if env is not None and env.strip():
            value = env.strip().lower()
            if value in _OFF:
                return False
            if value in _ON:
                return True
            raise ValueError(f"The environment variable {PROGRESSBAR_ENV} must be 0 or 1 (or "
                             f"true/false, yes/no, on/off). Got {env!r} instead.")
        return _shell_name() in _INTERACTIVE_SHELLS
    if not isinstance(progressbar, bool):
        raise ValueError(f"The 'progressbar' parameter of {owner} must be True, False or None. "
                         f"Got {progressbar!r} instead.")
    return progressbar


class _Snapshot:
    """What is displayed: text for plain front ends, HTML for notebooks."""

    def __init__(self, text: str, markup: str) -> None:
        self.text = text
        self.markup = markup

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return self.markup


class NotebookProgress:
    """Progress of a fit written as notebook output, updated in place.

    Parameters
    ----------
    title : str
        What runs, e.g. ``"BetaGeoModel.fit: NUTS"``.
    chains : int
        Number of chains (bars); 1 for optimisation.
    total : int
        Steps per chain (tuning included).
    tune : int, default 0
        Leading steps of each chain that are tuning.
    display : callable, optional
        ``display(obj, display_id=True)`` returning a handle with ``update(obj)``;
        IPython's by default.
    clock : callable, optional
        Seconds, for the elapsed time and the update interval (``time.monotonic``).
    min_interval : float, default 0.5
        Seconds between two updates of the display (the last one is always shown).
    """

    def __init__(self, title: str, *, chains: int, total: int, tune: int = 0,
                 display: Callable[..., Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, min_interval: float = 0.5) -> None:
        if display is None:
            from IPython.display import display
        self.title = title
        self.total = max(int(total), 1)
        self.tune = int(tune)
        self.done = [0] * max(int(chains), 1)
        self.divergences = 0
        self._clock = clock
        self._start = clock()
        self._last = -float("inf")
        self._min_interval = min_interval
        self._handle = display(self.snapshot(), display_id=True)

    # ------------------------------------------------------------------ updates
    def callback(self, trace: Any = None, draw: Any = None) -> None:
        """Record one draw (the signature of :func:`pymc.sample`'s ``callback``)."""
        chain = int(getattr(draw, "chain", 0)) % len(self.done)
        self.done[chain] += 1
        if not getattr(draw, "tuning", False):
            for stats in getattr(draw, "stats", None) or ():
                if isinstance(stats, dict) and stats.get("diverging"):
                    self.divergences += 1
        self._maybe_update()

    def advance(self, steps: int = 1) -> None:
        """Record ``steps`` steps of a single-chain run (optimisation)."""
        self.done[0] += int(steps)
        self._maybe_update()

    def optimisation_callback(self, approx: Any, losses: Any, i: int) -> None:
        """Record one optimisation step (the signature of :func:`pymc.fit`'s ``callbacks``)."""
        self.advance()

    def close(self, note: str = "") -> None:
        """Show the final state, with an optional closing note (e.g. the verdict)."""
        self._handle.update(self.snapshot(note=note, final=True))

    def _maybe_update(self) -> None:
        now = self._clock()
        if now - self._last >= self._min_interval:
            self._last = now
            self._handle.update(self.snapshot())

    # ------------------------------------------------------------------ rendering
    def snapshot(self, note: str = "", final: bool = False) -> _Snapshot:
        """Return the current state as a displayable object (text and HTML)."""
        elapsed = self._clock() - self._start
        done = sum(self.done)
        total = self.total * len(self.done)
        state = "done" if final else f"{done:,} of {total:,} steps"
        div = (f"; {self.divergences} divergence{'s' * (self.divergences != 1)}"
               if self.divergences else "")
        head = f"{self.title}: {state}{div}; {elapsed:.1f} s"
        if note:
            head += f"; {note}"
        lines = [head]
        rows = []
        for c, n in enumerate(self.done):
            share = min(n / self.total, 1.0)
            phase = "tuning" if n < self.tune else ("sampling" if n < self.total else "done")
            label = f"chain {c}" if len(self.done) > 1 else "progress"
            lines.append(f"  {label}: {min(n, self.total):,}/{self.total:,} ({phase})")
            rows.append(
                f"<tr><td style='padding:0 8px 0 0'>{label}</td>"
                "<td style='width:220px'><div style='background:#e5e7eb;height:8px;width:100%'>"
                f"<div style='background:#1764f4;height:8px;width:{share:.1%}'></div></div></td>"
                f"<td style='padding:0 0 0 8px'>{min(n, self.total):,}/{self.total:,} {phase}"
                "</td></tr>")
        markup = (f"<div><div>{html.escape(head)}</div>"
                  f"<table style='font-size:0.85em;border:none'>{''.join(rows)}</table></div>")
        return _Snapshot("\n".join(lines), markup)
