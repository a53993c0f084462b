"""Metrics of an experiment, declared once as small frozen objects.

:class:`Count`, :class:`Sum`, :class:`ActiveDays`, :class:`Distinct`,
:class:`Binary`, :class:`Retained` and :class:`Ratio` say *what* to measure
per user; :func:`models.experiments.user_metrics.compute_user_metrics`
measures it from a listening log. Every metric has a ``name`` (a Python
identifier, the column of the per-user frame), a ``kind`` ("continuous",
"binary" or "ratio"), a direction ``higher_is_better`` and an optional
``window``.

Windows
-------
Days are counted from each user's own ``assigned_at``: day :math:`k` is
:math:`[a + k, a + k + 1)` days, so the exposure window of
``window_days=14`` is days 0 to 13, ``[a, a + 14 days)`` (the assignment
instant is in it, ``a + 14 days`` is not), and the pre-period of
``pre_days=14`` is days -14 to -1. A metric with its own ``window=(s, e)``
(such as :class:`Retained`) covers days ``s`` to ``e - 1`` and needs
``e <= window_days``; its pre-period value covers the last ``min(e - s,
pre_days)`` days before assignment. The parts of a :class:`Ratio` or
:class:`Binary` without a window of their own use the window of the metric
they belong to.
"""

from __future__ import annotations

import keyword
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

import numpy as np

from models.data.schema import ARTIST_ID, MS_PLAYED, SKIPPED
from models.experiments._checks import check_bool, is_real

__all__ = [
    "DEFAULT_METRICS",
    "ActiveDays",
    "Binary",
    "Count",
    "Distinct",
    "Metric",
    "Ratio",
    "Retained",
    "Sum",
]


def _check_window(owner: str, name: str, value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    ok = isinstance(value, tuple | list) and len(value) == 2
    ok = ok and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value)
    if not (ok and 0 <= value[0] < value[1]):
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a pair of integer days (start, end) with "
            f"0 <= start < end. Got {value!r} instead."
        )
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class Metric:
    """Base class of the metrics: a name, a kind, a direction and an optional window.

    Parameters
    ----------
    name : str
        A Python identifier; the column (prefix) of the metric in the per-user
        frame.
    higher_is_better : bool, default True
        Direction used for "better" and for expected losses.
    window : tuple of int, optional
        ``(start_day, end_day)``: count days ``start_day`` to ``end_day - 1``
        after assignment instead of the whole analysis window.
    """

    name: str
    _: KW_ONLY
    higher_is_better: bool = True
    window: tuple[int, int] | None = None
    #: "continuous", "binary" or "ratio".
    kind: ClassVar[str] = "continuous"

    def __post_init__(self) -> None:
        owner = type(self).__name__
        name = self.name
        if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)):
            raise ValueError(
                f"The 'name' parameter of {owner} must be a Python identifier such as "
                f"'minutes_listened'. Got {self.name!r} instead."
            )
        check_bool(owner, "higher_is_better", self.higher_is_better)
        object.__setattr__(self, "window", _check_window(owner, "window", self.window))

    def _inherit(self, part: Metric, label: str) -> None:
        if self.window is not None and part.window not in (None, self.window):
            raise ValueError(
                f"The '{label}' parameter of {type(self).__name__} must have no window or the "
                f"window {self.window} of the metric. Got window {part.window} instead."
            )


def _check_part(owner: str, label: str, part: Any, allowed: tuple[str, ...]) -> None:
    if not (isinstance(part, Metric) and part.kind in allowed):
        raise ValueError(
            f"The '{label}' parameter of {owner} must be a metric of kind "
            f"{' or '.join(repr(k) for k in allowed)}. Got {part!r} instead."
        )


@dataclass(frozen=True)
class Count(Metric):
    """Number of events in the window.

    Examples
    --------
    >>> Count("plays")
    Count(name='plays', higher_is_better=True, window=None)
    >>> Count("first_week_plays", window=(0, 7)).window
    (0, 7)
    """

    name: str = "plays"


@dataclass(frozen=True)
class Sum(Metric):
    """Sum of a numeric or boolean event column, times ``scale``.

    Parameters
    ----------
    name : str
        Name of the metric.
    column : str
        Event column to sum; a boolean column counts its True values.
    scale : float, default 1.0
        Finite positive factor applied to the (integer) sum, e.g.
        ``1 / 60_000`` for minutes from ``ms_played``.

    Examples
    --------
    >>> Sum("minutes", "ms_played", scale=1 / 60_000).column
    'ms_played'
    >>> Sum("skips", "skipped").scale
    1.0
    """

    column: str
    scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.column, str) or not self.column:
            raise ValueError(
                f"The 'column' parameter of Sum must be the name of an event column. "
                f"Got {self.column!r} instead."
            )
        if not (is_real(self.scale, finite=True) and self.scale > 0):
            raise ValueError(
                f"The 'scale' parameter of Sum must be a finite positive number. "
                f"Got {self.scale!r} instead."
            )
        object.__setattr__(self, "scale", float(self.scale))


@dataclass(frozen=True)
class ActiveDays(Metric):
    """Number of distinct days with at least one event, counted from the assignment.

    Day :math:`k` is :math:`[a + k, a + k + 1)` days after the user's own
    assignment time :math:`a`, not a calendar day.

    Examples
    --------
    >>> ActiveDays().name
    'active_days'
    """

    name: str = "active_days"


@dataclass(frozen=True)
class Distinct(Metric):
    """Number of distinct values of an event column (e.g. artists) in the window.

    Parameters
    ----------
    name : str
        Name of the metric.
    column : str
        Event column whose distinct values are counted.

    Examples
    --------
    >>> Distinct("distinct_artists", "artist_id").column
    'artist_id'
    """

    column: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.column, str) or not self.column:
            raise ValueError(
                f"The 'column' parameter of Distinct must be the name of an event column. "
                f"Got {self.column!r} instead."
            )


@dataclass(frozen=True)
class Binary(Metric):
    """1 if a count or sum metric is above ``threshold``, else 0 (e.g. converted).

    Parameters
    ----------
    name : str
        Name of the metric.
    of : Metric
        A metric of kind "continuous" (:class:`Count`, :class:`Sum`,
        :class:`ActiveDays`, :class:`Distinct`).
    threshold : float, default 0
        The user counts as 1 when ``of > threshold``.

    Examples
    --------
    >>> Binary("converted", Sum("purchases", "purchase")).kind
    'binary'
    """

    of: Metric
    threshold: float = 0
    kind: ClassVar[str] = "binary"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_part("Binary", "of", self.of, ("continuous",))
        self._inherit(self.of, "of")
        if not is_real(self.threshold, finite=True):
            raise ValueError(
                f"The 'threshold' parameter of Binary must be a finite number. "
                f"Got {self.threshold!r} instead."
            )


@dataclass(frozen=True)
class Retained(Metric):
    """1 if the user is active on any of days ``start_day`` to ``end_day - 1``, else 0.

    The defaults are days 8-14 in 1-based counting (the second week). The
    window is also available as ``window``; passing ``window`` is allowed only
    when it equals ``(start_day, end_day)``.

    Parameters
    ----------
    name : str, default "retained"
        Name of the metric.
    start_day, end_day : int, default 7, 14
        ``0 <= start_day < end_day``.

    Examples
    --------
    >>> Retained().window
    (7, 14)
    """

    name: str = "retained"
    start_day: int = 7
    end_day: int = 14
    kind: ClassVar[str] = "binary"

    def __post_init__(self) -> None:
        super().__post_init__()
        days = _check_window("Retained", "start_day/end_day", (self.start_day, self.end_day))
        if self.window not in (None, days):
            raise ValueError(
                f"The 'window' parameter of Retained must be left out or equal "
                f"(start_day, end_day) = {days}. Got {self.window} instead."
            )
        object.__setattr__(self, "window", days)


@dataclass(frozen=True)
class Ratio(Metric):
    r"""Ratio of two sums over the users of a variant, with the user as the unit.

    The estimand is :math:`\sum_i y_i / \sum_i d_i` over the users of a variant
    (not the mean of per-user ratios, nor a per-event average); its variance
    comes from the delta method on the per-user pairs :math:`(y_i, d_i)`.

    Parameters
    ----------
    name : str
        Name of the metric.
    numerator, denominator : Metric
        Metrics of kind "continuous" or "binary".

    Examples
    --------
    >>> skip_rate = Ratio("skip_rate", Sum("skips", "skipped"), Count("plays"),
    ...                   higher_is_better=False)
    >>> skip_rate.kind, skip_rate.higher_is_better
    ('ratio', False)
    """

    numerator: Metric
    denominator: Metric
    kind: ClassVar[str] = "ratio"

    def __post_init__(self) -> None:
        super().__post_init__()
        for label in ("numerator", "denominator"):
            part = getattr(self, label)
            _check_part("Ratio", label, part, ("continuous", "binary"))
            self._inherit(part, label)


_MINUTES = 1 / 60_000
#: plays, active days, minutes, distinct artists, retained (days 8-14), skip rate (lower is
#: better) and minutes per active day.
DEFAULT_METRICS: tuple[Metric, ...] = (
    Count("plays"),
    ActiveDays("active_days"),
    Sum("minutes", MS_PLAYED, scale=_MINUTES),
    Distinct("distinct_artists", ARTIST_ID),
    Retained("retained", 7, 14),
    Ratio("skip_rate", Sum("skips", SKIPPED), Count("plays"), higher_is_better=False),
    Ratio("minutes_per_active_day", Sum("minutes", MS_PLAYED, scale=_MINUTES), ActiveDays()),
)
