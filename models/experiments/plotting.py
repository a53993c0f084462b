"""Plots of an experiment: a forest plot of effects and a long-term projection band.

Every function takes ``ax=None`` (a new figure is made when none is given),
returns the Axes, and never touches pyplot's global state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_effects", "plot_projection"]

#: Colours of a decision status (from :class:`~models.experiments.Decision`).
_STATUS_COLOURS = {"better": "#1a7f37", "not worse": "#1f6feb", "worse": "#cf222e",
                   "inconclusive": "#57606a"}


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=size).subplots()


def plot_effects(
    effects: pd.DataFrame, *, scale: str = "lift", status: pd.Series | None = None,
    truth: pd.Series | None = None, ax: Axes | None = None,
) -> Axes:
    """Forest plot: each metric's effect with its credible interval.

    Parameters
    ----------
    effects : pandas.DataFrame
        An effect table (index ``(metric, variant)``) with ``<scale>``,
        ``<scale>_ci_lower`` and ``<scale>_ci_upper`` columns, such as the output of
        :func:`~models.experiments.analyze`.
    scale : {"lift", "effect"}, default "lift"
        Relative lift (shown in percent) or absolute effect.
    status : pandas.Series, optional
        A status per ``(variant, metric)`` or per metric (``"better"``,
        ``"not worse"``, ``"worse"``, ``"inconclusive"``), e.g. the ``status``
        column of a decision table; colours the rows.
    truth : pandas.Series, optional
        The true value per ``(metric, variant)`` or per metric, drawn as crosses
        (simulated experiments).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If ``scale`` is not one of the options or its columns are missing.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"lift": [0.05, -0.02], "lift_ci_lower": [0.01, -0.05],
    ...                       "lift_ci_upper": [0.09, 0.01]},
    ...                      index=pd.MultiIndex.from_tuples(
    ...                          [("plays", "treatment"), ("skip_rate", "treatment")],
    ...                          names=["metric", "variant"]))
    >>> ax = plot_effects(table)
    >>> len(ax.get_yticks())
    2
    """
    if scale not in ("lift", "effect"):
        raise ValueError(f"The 'scale' parameter of plot_effects must be one of ['lift', "
                         f"'effect']. Got {scale!r} instead.")
    cols = [scale, f"{scale}_ci_lower", f"{scale}_ci_upper"]
    missing = [c for c in cols if c not in effects.columns]
    if missing:
        raise ValueError(f"The effect table passed to plot_effects has no column(s) {missing}.")
    factor = 100.0 if scale == "lift" else 1.0
    rows = effects[cols].to_numpy(dtype=float) * factor
    labels = [" / ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in effects.index]
    n = len(effects)
    ax = _axes(ax, (7.5, 0.45 * n + 1.2))
    y = np.arange(n)[::-1]
    for i, key in enumerate(effects.index):
        colour = "#1f2328"
        if status is not None:
            metric = key[0] if isinstance(key, tuple) else key
            value = _lookup(status, key, metric, swap=True)
            colour = _STATUS_COLOURS.get(str(value), colour)
        ax.errorbar(rows[i, 0], y[i], xerr=[[rows[i, 0] - rows[i, 1]], [rows[i, 2] - rows[i, 0]]],
                    fmt="o", color=colour, capsize=3, ms=5)
        if truth is not None:
            metric = key[0] if isinstance(key, tuple) else key
            value = _lookup(truth, key, metric)
            if value is not None and np.isfinite(value):
                ax.plot(float(value) * factor, y[i], "x", color="#cf222e", ms=8,
                        label="truth" if i == 0 else None)
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_yticks(y, labels)
    ax.set_xlabel("relative lift (%)" if scale == "lift" else "absolute effect")
    if truth is not None:
        ax.legend(loc="best", fontsize=8)
    return ax


def _lookup(series: pd.Series, key: Any, metric: Any, *, swap: bool = False) -> Any:
    """Return ``series`` at ``key``, at the key reversed, or at the metric alone."""
    candidates = [key]
    if isinstance(key, tuple) and swap:
        candidates.append(tuple(reversed(key)))
    candidates.append(metric)
    for candidate in candidates:
        try:
            value = series.loc[candidate]
        except (KeyError, TypeError, pd.errors.IndexingError):
            continue
        if isinstance(value, pd.Series):
            if len(value) != 1:
                continue
            value = value.iloc[0]
        return value
    return None


def plot_projection(
    curve: pd.DataFrame, *, quantity: str = "active_days", truth: pd.Series | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Projected long-term effect over the horizon, with its credible band.

    Parameters
    ----------
    curve : pandas.DataFrame
        The output of :func:`~models.experiments.projection_curve`: index
        ``(quantity, variant, horizon)``, columns ``effect``, ``effect_ci_lower``,
        ``effect_ci_upper``.
    quantity : {"active_days", "share_active"}, default "active_days"
        Which projected quantity to draw.
    truth : pandas.Series, optional
        True effect per horizon (index ``horizon``), drawn as a line (simulated
        experiments).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax, (7.5, 4.0))
    part = curve.xs(quantity, level="quantity")
    for i, (variant, rows) in enumerate(part.groupby(level="variant", sort=False)):
        h = rows.index.get_level_values("horizon").to_numpy(dtype=float)
        ax.fill_between(h, rows["effect_ci_lower"], rows["effect_ci_upper"], color=f"C{i}",
                        alpha=0.25, lw=0)
        ax.plot(h, rows["effect"], color=f"C{i}", label=f"{variant} - control (projected)")
    if truth is not None:
        ax.plot(truth.index.to_numpy(dtype=float), truth.to_numpy(dtype=float), "k--", lw=1,
                label="truth")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xlabel("days after the experiment window")
    ax.set_ylabel("difference in cumulative active days" if quantity == "active_days"
                  else "difference in share still active")
    ax.legend(fontsize=8)
    return ax
