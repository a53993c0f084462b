"""Validators shared across the package: the one home of each check.

- parameter checks with the one message template, :func:`check_int`,
  :func:`check_positive_int` and :func:`check_choice` ("The 'draws' parameter of
  PlayCountModel.fit must be a positive integer. Got -5 instead."), always called
  ``(owner, name, value, ...)``;
- the row-problem builders: :func:`row_problem` (a
  :class:`~models.exceptions.Problem` from a mask of rows, quoting the first
  offending rows and values) and :func:`add_problem` (append one when any row is
  bad);
- :func:`text_missing`: which values of an id column are text standing for a
  missing id ('', 'nan', 'None', ...), vectorised;
- the steps of a table validation as :func:`models.data.validation.validate_events`
  takes them, for validators of other tables: :class:`Report` (the problems
  found so far), :func:`to_naive_utc`, :func:`parse_datetimes`,
  :func:`check_ids`, :func:`clean_ids` and :func:`raise_or_drop`;
- the checks of an event table before it is summarised, as the functions of
  :mod:`models.data.summaries` make them: :func:`check_table`, and for Dask
  frames :func:`lazy_checks` (computed with the result) and :func:`raise_lazy`.

This module imports nothing else of the package at import time, so every module
can use it. The table-validation steps and the event-table checks are defined in
:mod:`models.data.validation` and :mod:`models.data.summaries`, with the data
validators they serve, and are loaded from there on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.exceptions import Problem

if TYPE_CHECKING:  # loaded on first use by __getattr__ below (no import cycle)
    from models.data.summaries import _check_table as check_table
    from models.data.summaries import _lazy_checks as lazy_checks
    from models.data.summaries import _raise_lazy as raise_lazy
    from models.data.validation import _check_ids as check_ids
    from models.data.validation import _clean_ids as clean_ids
    from models.data.validation import _parse_datetimes as parse_datetimes
    from models.data.validation import _raise_or_drop as raise_or_drop
    from models.data.validation import _Report as Report
    from models.data.validation import _to_naive_utc as to_naive_utc

__all__ = [
    "MISSING_ID_TEXT",
    "N_EXAMPLES",
    "TABLE",
    "Report",
    "add_problem",
    "check_choice",
    "check_ids",
    "check_int",
    "check_positive_int",
    "check_table",
    "clean_ids",
    "lazy_checks",
    "parse_datetimes",
    "per_value",
    "raise_lazy",
    "raise_or_drop",
    "row_problem",
    "scalar",
    "text_missing",
    "to_naive_utc",
]

#: How many offending rows a problem quotes.
N_EXAMPLES = 5
#: The column name of a rule about the table itself.
TABLE = "<table>"

#: Names defined where the tables they check are validated: name -> (module, attribute).
_ELSEWHERE = {
    "check_table": ("models.data.summaries", "_check_table"),
    "lazy_checks": ("models.data.summaries", "_lazy_checks"),
    "raise_lazy": ("models.data.summaries", "_raise_lazy"),
    "check_ids": ("models.data.validation", "_check_ids"),
    "clean_ids": ("models.data.validation", "_clean_ids"),
    "parse_datetimes": ("models.data.validation", "_parse_datetimes"),
    "raise_or_drop": ("models.data.validation", "_raise_or_drop"),
    "Report": ("models.data.validation", "_Report"),
    "to_naive_utc": ("models.data.validation", "_to_naive_utc"),
}


def __getattr__(name: str) -> Any:
    """Load the table-validation steps from their modules on first use (PEP 562)."""
    if name in _ELSEWHERE:
        module, attribute = _ELSEWHERE[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scalar(value: Any) -> Any:
    """Turn a numpy scalar into a plain Python value for messages."""
    return value.item() if isinstance(value, np.generic) else value


def row_problem(column: str, rule: str, mask: Any, values: Any, fix: str = "") -> Problem:
    """Build a :class:`~models.exceptions.Problem` from a boolean mask over row positions.

    Parameters
    ----------
    column : str
        The column the rule is about.
    rule : str
        What was expected, in words.
    mask : array-like of bool
        True at the offending row positions (0-based).
    values : pandas.Series, pandas.DataFrame, numpy.ndarray or list
        The values at every row position; the first offending ones are quoted (a
        tuple per row for a DataFrame).
    fix : str, optional
        A hint on how to fix the data.

    Examples
    --------
    >>> import numpy as np
    >>> str(row_problem("plays", "non-negative counts", np.array([False, True]), [3, -1]))
    "column 'plays': expected non-negative counts; 1 row(s) break this, first: row 1 (-1)"
    """
    rows = np.flatnonzero(np.asarray(mask, dtype=bool))
    first = rows[:N_EXAMPLES]
    if isinstance(values, pd.DataFrame):
        examples = tuple(tuple(scalar(v) for v in row)
                         for row in values.iloc[first].itertuples(index=False))
    elif isinstance(values, pd.Series):
        examples = tuple(scalar(v) for v in values.iloc[first])
    else:
        seq = values if isinstance(values, list) else np.asarray(values, dtype=object)
        examples = tuple(scalar(seq[i]) for i in first)
    return Problem(column=column, rule=rule, n_rows=int(rows.size),
                   rows=tuple(int(r) for r in first), examples=examples, fix=fix)


def add_problem(problems: list[Problem], column: str, rule: str, mask: Any, values: Any,
                fix: str = "") -> None:
    """Append :func:`row_problem` to ``problems`` when any row is bad (no-op otherwise)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        problems.append(row_problem(column, rule, mask, values, fix))


def check_int(owner: str, name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise the parameter error if it is not an integer >= minimum.

    Parameters
    ----------
    owner : str
        The function or method the parameter belongs to, quoted in the message.
    name : str
        The parameter's name.
    value : object
        Its value; booleans are not integers here.
    minimum : int, default 1
        The smallest valid value.

    Raises
    ------
    ValueError
        "The '<name>' parameter of <owner> must be a positive integer. Got <value>
        instead." ("a non-negative integer" for minimum 0, "an integer >= k" otherwise).

    Examples
    --------
    >>> check_int("simulate", "n_users", 100)
    100
    >>> check_int("simulate", "n_users", 0)
    Traceback (most recent call last):
    ...
    ValueError: The 'n_users' parameter of simulate must be a positive integer. Got 0 instead.
    """
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= minimum
    if not ok:
        rule = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}")
        raise ValueError(f"The '{name}' parameter of {owner} must be {rule}. "
                         f"Got {value!r} instead.")
    return int(value)


#: Text that stands for a missing id, compared after stripping spaces and ignoring case:
#: what ``astype(str)`` makes of None, NaN, NaT and pd.NA, and what exports write.
MISSING_ID_TEXT = frozenset({"", "nan", "none", "null", "nat", "<na>", "n/a"})


def check_positive_int(owner: str, name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise the parameter error unless ``value`` is a positive (or non-negative) integer.

    Parameters
    ----------
    owner : str
        The function or method the parameter belongs to, quoted in the message.
    name : str
        The parameter's name.
    value : object
        Its value; booleans are not integers here.
    allow_zero : bool, default False
        Accept 0 too.

    Raises
    ------
    ValueError
        "The '<name>' parameter of <owner> must be a positive integer. Got <value> instead."

    Examples
    --------
    >>> check_positive_int("fit", "draws", 1000)
    >>> check_positive_int("fit", "draws", -5)
    Traceback (most recent call last):
    ...
    ValueError: The 'draws' parameter of fit must be a positive integer. Got -5 instead.
    """
    check_int(owner, name, value, minimum=0 if allow_zero else 1)


def check_choice(owner: str, name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise the parameter error unless ``value`` is one of ``choices``.

    Parameters
    ----------
    owner : str
        The function or method the parameter belongs to, quoted in the message.
    name : str
        The parameter's name.
    value : object
        Its value.
    choices : sequence of str
        The valid values, listed in the message.

    Raises
    ------
    ValueError
        "The '<name>' parameter of <owner> must be one of [...]. Got <value> instead."

    Examples
    --------
    >>> check_choice("fit", "method", "nuts", ("nuts", "advi"))
    >>> check_choice("fit", "method", "mcmc", ("nuts", "advi"))
    Traceback (most recent call last):
    ...
    ValueError: The 'method' parameter of fit must be one of ['nuts', 'advi']. Got 'mcmc' instead.
    """
    if value not in choices:
        raise ValueError(
            f"The '{name}' parameter of {owner} must be one of {list(choices)}. "
            f"Got {value!r} instead."
        )


def per_value(s: pd.Series, test: Callable[[Any], bool]) -> np.ndarray:
    """``test(value)`` for every row, evaluated once per distinct value (missing: False).

    Parameters
    ----------
    s : pandas.Series
        Any column; unhashable values (lists, dicts) are tested row by row.
    test : callable
        A predicate of one value.

    Returns
    -------
    numpy.ndarray
        Boolean mask over the rows of ``s``.

    Examples
    --------
    >>> import pandas as pd
    >>> per_value(pd.Series(["a", 1, None, "a"], dtype=object), lambda v: isinstance(v, str))
    array([ True, False, False,  True])
    """
    try:
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
    except TypeError:  # unhashable values: one test per row
        flags = np.fromiter((bool(test(v)) for v in s.tolist()), dtype=bool, count=len(s))
        return flags & ~s.isna().to_numpy(dtype=bool)
    values = uniques.tolist()  # iterating an Arrow-backed array value by value is slow
    if not values:
        return np.zeros(len(s), dtype=bool)
    flags = np.fromiter((bool(test(v)) for v in values), dtype=bool, count=len(values))
    return np.where(codes >= 0, flags[np.maximum(codes, 0)], False)


def text_missing(s: pd.Series, text: frozenset[str] = MISSING_ID_TEXT) -> np.ndarray:
    """Positions of string values that stand for a missing id ('', 'nan', 'None', ...).

    Vectorised: string columns are compared with ``s.str.strip().str.lower()``,
    object columns once per distinct value; other dtypes hold no text.

    Parameters
    ----------
    s : pandas.Series
        An id column.
    text : frozenset of str, default MISSING_ID_TEXT
        Lower-case strings that count as missing after stripping spaces.

    Returns
    -------
    numpy.ndarray
        Boolean mask over the rows of ``s``; missing values (None, NaN) are False.

    Examples
    --------
    >>> import pandas as pd
    >>> text_missing(pd.Series(["u1", " NaN ", "", None], dtype="str"))
    array([False,  True,  True, False])
    """
    if isinstance(s.dtype, pd.StringDtype):
        found = s.str.strip().str.lower().isin(text)
        return found.fillna(False).to_numpy(dtype=bool)
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        return per_value(s, lambda v: isinstance(v, str) and v.strip().lower() in text)
    return np.zeros(len(s), dtype=bool)
