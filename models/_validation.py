"""Validators shared across the package, under names public to the package.

One home for each check (see the style guide):

- parameter checks with the one message template, :func:`check_positive_int`
  and :func:`check_choice` ("The 'draws' parameter of PlayCountModel.fit must
  be a positive integer. Got -5 instead.");
- :func:`text_missing`: which values of an id column are text standing for a
  missing id ('', 'nan', 'None', ...), vectorised;
- the steps of a table validation as :func:`models.data.validation.validate_events`
  takes them, for validators of other tables: :class:`Report` (the problems
  found so far), :func:`row_problem` (a :class:`~models.exceptions.Problem` from
  a mask of rows), :func:`to_naive_utc`, :func:`parse_datetimes`,
  :func:`check_ids`, :func:`clean_ids` and :func:`raise_or_drop`;
- the checks of an event table before it is summarised, as the functions of
  :mod:`models.data.summaries` make them: :func:`check_table`, and for Dask
  frames :func:`lazy_checks` (computed with the result) and :func:`raise_lazy`.

The table-validation steps and the event-table checks are defined in
:mod:`models.data.validation` and :mod:`models.data.summaries`, with the data
validators they serve; modules elsewhere in the package import them from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.data.summaries import _check_table as check_table
from models.data.summaries import _lazy_checks as lazy_checks
from models.data.summaries import _raise_lazy as raise_lazy
from models.data.validation import N_EXAMPLES, TABLE
from models.data.validation import _check_ids as check_ids
from models.data.validation import _clean_ids as clean_ids
from models.data.validation import _parse_datetimes as parse_datetimes
from models.data.validation import _raise_or_drop as raise_or_drop
from models.data.validation import _Report as Report
from models.data.validation import _row_problem as row_problem
from models.data.validation import _to_naive_utc as to_naive_utc

__all__ = [
    "MISSING_ID_TEXT",
    "N_EXAMPLES",
    "TABLE",
    "Report",
    "check_choice",
    "check_ids",
    "check_positive_int",
    "check_table",
    "clean_ids",
    "lazy_checks",
    "parse_datetimes",
    "per_value",
    "raise_lazy",
    "raise_or_drop",
    "row_problem",
    "text_missing",
    "to_naive_utc",
]

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
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a {kind} integer. Got {value!r} instead."
        )


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
