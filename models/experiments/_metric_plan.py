"""From metric objects to the per-user primitives that compute them, and back.

Internal to :mod:`models.experiments`. A metric (:mod:`models.experiments.metrics`)
is a tree of *leaves* (counts, sums, active days, distinct values) over windows
of days; :func:`plan` lists the distinct *primitives* ``(operation, column,
first_day, end_day)`` the metrics need, over the exposure window and the
pre-period, which :func:`models.experiments._windows.aggregate` computes per
user; :func:`value` reads a metric's per-user value back from them.
:func:`check_metrics` checks a ``metrics`` parameter and :func:`output_columns`
names the columns a metric gives in the per-user frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from models.experiments.metrics import ActiveDays, Binary, Distinct, Metric, Ratio, Retained, Sum

__all__ = ["check_metrics", "day_range", "leaves", "output_columns", "plan", "primitive", "value"]


def output_columns(metric: Metric, pre: bool) -> list[str]:
    """Columns of ``metric`` in the per-user frame (with the pre-period ones if ``pre``)."""
    name = metric.name
    names = [f"{name}_num", f"{name}_den"] if metric.kind == "ratio" else [name]
    return names + ([f"{c}_pre" for c in names] if pre else [])


def day_range(window: tuple[int, int] | None, pre: bool, window_days: int,
              pre_days: int) -> tuple[int, int]:
    """Return the days ``[first, end)`` of a leaf with ``window``, or of its pre-period.

    ``window`` None stands for the exposure window ``[0, window_days)``.
    """
    if not pre:
        return window if window is not None else (0, window_days)
    if window is None:
        return (-pre_days, 0)
    return (-min(window[1] - window[0], pre_days), 0)


def leaves(metric: Metric, inherited: tuple[int, int] | None = None
           ) -> Iterator[tuple[Metric, tuple[int, int] | None]]:
    """Yield (leaf metric, window or None) of a metric and its parts."""
    window = metric.window if metric.window is not None else inherited
    if isinstance(metric, Ratio):
        yield from leaves(metric.numerator, window)
        yield from leaves(metric.denominator, window)
    elif isinstance(metric, Binary):
        yield from leaves(metric.of, window)
    else:
        yield metric, window


def primitive(leaf: Metric, days: tuple[int, int]) -> tuple[str, str | None, int, int]:
    """Return the primitive ``(operation, column, first_day, end_day)`` of a leaf over ``days``."""
    if isinstance(leaf, Sum):
        return ("sum", leaf.column, *days)
    if isinstance(leaf, Distinct):
        return ("distinct", leaf.column, *days)
    if isinstance(leaf, ActiveDays | Retained):
        return ("days", None, *days)
    return ("count", None, *days)


def check_metrics(metrics: Any, window_days: int, func: str) -> tuple[Metric, ...]:
    """Check the ``metrics`` parameter of ``func``: metrics with unique names and columns."""
    if isinstance(metrics, Metric):
        metrics = (metrics,)
    ok = isinstance(metrics, Sequence) and not isinstance(metrics, str) and len(metrics) > 0
    if not (ok and all(isinstance(m, Metric) for m in metrics)):
        raise ValueError(
            f"The 'metrics' parameter of {func} must be a metric or a non-empty sequence of "
            f"metrics (Count, Sum, ...). Got {metrics!r} instead."
        )
    names = [m.name for m in metrics]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"The 'metrics' parameter of {func} must have unique names. Got {repeated} more "
            "than once instead."
        )
    columns = [c for m in metrics for c in output_columns(m, True)]
    clash = sorted({c for c in columns if columns.count(c) > 1})
    if clash:
        raise ValueError(
            f"The 'metrics' parameter of {func} must give distinct output columns. Got "
            f"{clash} from two metrics instead; rename one."
        )
    for metric in metrics:
        for _, window in leaves(metric):
            if window is not None and window[1] > window_days:
                raise ValueError(
                    f"The 'window_days' parameter of {func} must be at least {window[1]} (the "
                    f"end of the window of metric '{metric.name}'). Got {window_days} instead."
                )
    return tuple(metrics)


def plan(metrics: tuple[Metric, ...], window_days: int, pre_days: int) -> list[tuple]:
    """Every distinct primitive (operation, column, first day, end day) the metrics need."""
    periods = (False, True) if pre_days > 0 else (False,)
    prims = [
        primitive(leaf, day_range(window, pre, window_days, pre_days))
        for metric in metrics
        for leaf, window in leaves(metric)
        for pre in periods
    ]
    return list(dict.fromkeys(prims))


def value(metric: Metric, window, pre: bool, prim: pd.DataFrame, names: dict, sizes) -> pd.Series:
    """Per-user value of a non-ratio metric from the primitives table."""
    window = metric.window if metric.window is not None else window
    if isinstance(metric, Binary):
        inner = value(metric.of, window, pre, prim, names, sizes)
        return (inner > metric.threshold).astype("int64")
    column = prim[names[primitive(metric, day_range(window, pre, *sizes))]]
    if isinstance(metric, Sum):
        return column.astype("float64") * metric.scale
    if isinstance(metric, Retained):
        return (column > 0).astype("int64")
    return column.astype("int64")
