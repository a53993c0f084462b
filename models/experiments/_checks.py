"""Checks of the options shared by the experiment functions (one message template)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "check_bool",
    "check_column_names",
    "check_prior",
    "check_probability",
    "check_real",
    "check_rope",
    "is_real",
]

PRIOR_KEYS = ("beta", "lift", "effect")
_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five"}


def is_real(value: Any, *, finite: bool = False) -> bool:
    """Whether ``value`` is a real number (a Python or numpy int or float, not a bool)."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    return ok and (not finite or bool(np.isfinite(value)))


def check_bool(owner: str, name: str, value: Any) -> bool:
    """Return ``value`` as a bool, or raise the parameter error if it is not True or False."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(
            f"The '{name}' parameter of {owner} must be True or False. Got {value!r} instead."
        )
    return bool(value)


def check_column_names(owner: str, **columns: Any) -> None:
    """Raise the parameter error unless every value is a column name (str) and all differ."""
    for name, value in columns.items():
        if not isinstance(value, str):
            raise ValueError(
                f"The '{name}' parameter of {owner} must be a column name (str). "
                f"Got {value!r} instead."
            )
    if len(set(columns.values())) < len(columns):
        names = _enumerate([f"'{n}'" for n in columns])
        count = _NUMBERS.get(len(columns), len(columns))
        raise ValueError(
            f"The {names} parameters of {owner} must name {count} different columns. "
            f"Got {_enumerate([repr(v) for v in columns.values()])} instead."
        )


def _enumerate(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1]


def check_probability(owner: str, name: str, value: Any, *, low: float = 0.0) -> float:
    """Return ``value`` as a float in ``(low, 1)`` or raise the parameter error."""
    if not (is_real(value) and low < value < 1):
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a number in ({low:g}, 1). "
            f"Got {value!r} instead."
        )
    return float(value)


def check_real(
    owner: str, name: str, value: Any, *, low: float | None = None, strict: bool = False
) -> float:
    """Return ``value`` as a finite float, at least (or above, ``strict``) ``low``."""
    ok = is_real(value, finite=True)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if not ok:
        what = "a finite number"
        if low is not None:
            what = f"a finite number {'>' if strict else '>='} {low:g}"
        raise ValueError(
            f"The '{name}' parameter of {owner} must be {what}. Got {value!r} instead."
        )
    return float(value)


def check_prior(
    owner: str, prior: Mapping[str, Any] | None
) -> tuple[tuple[float, float], tuple[str, float, float] | None]:
    """Parse ``prior``: the Beta prior of binary metrics and the normal prior on the effect.

    Returns ``((a, b), None | (scale, mean, sd))``; the Beta prior defaults to (1, 1).
    """
    beta: tuple[float, float] = (1.0, 1.0)
    normal = None
    if prior is None:
        return beta, normal
    if not isinstance(prior, Mapping):
        raise ValueError(
            f"The 'prior' parameter of {owner} must be a mapping with keys among "
            f"{list(PRIOR_KEYS)}, e.g. {{'beta': (1, 1), 'lift': (0.0, 0.05)}}. "
            f"Got {prior!r} instead."
        )
    unknown = sorted(set(prior) - set(PRIOR_KEYS))
    if unknown:
        raise ValueError(
            f"The 'prior' parameter of {owner} has unknown key(s) {unknown}; "
            f"valid keys are {list(PRIOR_KEYS)}."
        )
    if "lift" in prior and "effect" in prior:
        raise ValueError(
            f"The 'prior' parameter of {owner} may give a normal prior on 'lift' or on "
            "'effect', not both."
        )
    for key, value in prior.items():
        pair = tuple(value) if isinstance(value, tuple | list) else None
        if key == "beta":
            ok = pair is not None and len(pair) == 2 and all(
                is_real(p, finite=True) and p > 0 for p in pair
            )
            if not ok:
                raise ValueError(
                    f"The 'prior' parameter of {owner} must give 'beta' as two positive "
                    f"numbers (a, b). Got {value!r} instead."
                )
            beta = (float(pair[0]), float(pair[1]))
        else:
            ok = (
                pair is not None
                and len(pair) == 2
                and all(is_real(p, finite=True) for p in pair)
                and pair[1] > 0
            )
            if not ok:
                raise ValueError(
                    f"The 'prior' parameter of {owner} must give {key!r} as (mean, sd) "
                    f"with sd > 0. Got {value!r} instead."
                )
            normal = (key, float(pair[0]), float(pair[1]))
    return beta, normal


def check_rope(owner: str, rope: Any, names: list[str]) -> np.ndarray:
    """Half-width of the region of practical equivalence per metric name (NaN: none).

    ``rope`` is None, one non-negative number for every metric, or a mapping of
    metric name to number.
    """
    out = np.full(len(names), np.nan)
    if rope is None:
        return out
    if isinstance(rope, Mapping):
        unknown = sorted(set(rope) - set(names), key=str)
        if unknown:
            raise ValueError(
                f"The 'rope' parameter of {owner} names unknown metric(s) {unknown}; "
                f"the metrics are {sorted(set(names), key=str)}."
            )
        for key, value in rope.items():
            value = check_real(owner, f"rope[{key!r}]", value, low=0.0)
            out[[i for i, n in enumerate(names) if n == key]] = value
        return out
    out[:] = check_real(owner, "rope", rope, low=0.0)
    return out
