"""Small HTML building blocks for the notebook display (``_repr_html_``) of models and reports.

Everything is escaped; the markup is plain tables and inline styles, so it renders
in Jupyter, VS Code and a saved notebook on GitHub alike.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

__all__ = ["card", "frame_html", "items_html", "markup", "pairs_html", "verdict_badge"]

#: Background colour of each verdict's badge.
VERDICT_COLOURS = {"pass": "#15803d", "warn": "#b45309", "fail": "#b91c1c",
                   "not-applicable": "#4b5563"}
_MAX_ROWS = 12


def verdict_badge(verdict: str) -> str:
    """Return a coloured label with the verdict of a fit check."""
    colour = VERDICT_COLOURS.get(verdict, "#4b5563")
    return (f"<span style='background:{colour};color:white;border-radius:3px;"
            f"padding:1px 6px;font-weight:bold'>{html.escape(str(verdict))}</span>")


def pairs_html(pairs: Mapping[str, Any]) -> str:
    """Return a two-column table of names and values (values marked with :func:`markup` as is)."""
    rows = []
    for key, value in pairs.items():
        shown = value if isinstance(value, _Markup) else html.escape(_short(value))
        rows.append(f"<tr><th style='text-align:left;padding-right:12px'>{html.escape(key)}</th>"
                    f"<td style='text-align:left'>{shown}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


def frame_html(frame: pd.DataFrame, *, max_rows: int = _MAX_ROWS, digits: int = 3) -> str:
    """Return a DataFrame as an HTML table, at most ``max_rows`` rows, numbers rounded."""
    shown = frame.head(max_rows)
    out = shown.to_html(float_format=lambda v: f"{v:.{digits}g}", border=0, na_rep="",
                        escape=True)
    if len(frame) > max_rows:
        out += f"<div style='font-size:0.85em'>... {len(frame) - max_rows:,} more rows</div>"
    return out


def items_html(title: str, items: Iterable[str]) -> str:
    """Return a titled bullet list; an empty string when there are no items."""
    items = list(items)
    if not items:
        return ""
    lis = "".join(f"<li>{html.escape(str(i))}</li>" for i in items)
    return f"<div><strong>{html.escape(title)}</strong><ul style='margin:0'>{lis}</ul></div>"


def card(title: str, *parts: str) -> str:
    """Wrap the parts under a bold title."""
    body = "".join(p for p in parts if p)
    return (f"<div style='font-family:sans-serif'><div style='font-weight:bold;"
            f"margin-bottom:4px'>{html.escape(title)}</div>{body}</div>")


class _Markup(str):
    """A string that :func:`pairs_html` inserts without escaping (already HTML)."""


def markup(text: str) -> _Markup:
    """Mark ``text`` as HTML for :func:`pairs_html`."""
    return _Markup(text)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."
