"""Validation of the assignment table of an experiment.

:func:`validate_assignments` checks an assignment table (see
:mod:`models.experiments.schema`) the way
:func:`models.data.validation.validate_events` checks a listening log: it
collects *every* broken rule and raises one
:class:`~models.exceptions.DataValidationError` listing them all (column, rule,
number of rows, the first rows and a fix), or returns a clean, typed copy.
Nothing is dropped or guessed: a table with a problem is never half-used.

Row positions in error messages are 0-based positions in the table as it was
passed in, so ``df.iloc[rows]`` shows the offenders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from models._validation import (
    N_EXAMPLES,
    TABLE,
    Report,
    check_ids,
    clean_ids,
    parse_datetimes,
    per_value,
    raise_or_drop,
    row_problem,
    text_missing,
    to_naive_utc,
)
from models.exceptions import DataValidationError, Problem
from models.experiments.schema import (
    ASSIGNED_AT,
    EXPERIMENT_ID,
    REQUIRED_ASSIGNMENT_COLUMNS,
    USER_ID,
    VARIANT,
)

__all__ = ["validate_assignments"]

#: Strings that mean "no id" (compared after stripping spaces, ignoring case): what
#: ``astype(str)`` makes of None, NaN and pd.NA, and what SQL exports write.
_BLANK_STRINGS = frozenset({"", "nan", "none", "null", "<na>"})


def _blank(s: pd.Series) -> np.ndarray:
    """Missing values, and strings that stand for a missing value ('', 'nan', ...)."""
    return s.isna().to_numpy(dtype=bool) | text_missing(s, _BLANK_STRINGS)


def _check_id_column(s: pd.Series, column: str, report: Report) -> np.ndarray:
    """Report missing (or blank) ids and ids of mixed types; return the missing mask."""
    blank = _blank(s)
    report.add_rows(
        column,
        "no missing ids (empty strings and 'nan' count as missing)",
        blank,
        s,
        f"drop the rows with a missing '{column}', or fill them with the real id",
    )
    if s.dtype == object or not pd.api.types.is_string_dtype(s.dtype):
        # a column of a string dtype holds only strings and missing values: no containers,
        # mixed types or fractional numbers for check_ids to find
        check_ids(s.mask(blank) if blank.any() else s, column, report, allow_missing=True)
    return blank


def _parse_assigned_at(s: pd.Series, report: Report) -> pd.Series:
    """Parse ``assigned_at`` strictly: datetime64 values or ISO-8601 strings only."""
    strings = not (
        pd.api.types.is_datetime64_any_dtype(s.dtype)
        or pd.api.types.is_numeric_dtype(s.dtype)
        or pd.api.types.is_bool_dtype(s.dtype)
    )
    if strings:
        missing = s.isna().to_numpy()
        iso = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
        not_iso = iso.isna().to_numpy() & ~missing
        if not_iso.any():
            report.add_rows(
                ASSIGNED_AT,
                "datetime64 values or ISO-8601 strings such as '2024-01-31 23:59:00'",
                not_iso,
                s,
                "write the times in ISO 8601 (an optional UTC offset is fine), or parse the "
                f"column yourself with pd.to_datetime(df['{ASSIGNED_AT}'], format=...) before "
                "validating; other and mixed formats (e.g. '01/02/2024') are ambiguous and are "
                "not guessed",
            )
            # Those rows are reported once, above; a placeholder keeps them out of the
            # "missing values" rule of the shared parser (the table is refused anyway).
            s = s.mask(not_iso, "1970-01-01")
    return parse_datetimes(s, ASSIGNED_AT, report)


def _check_variant_names(s: pd.Series, report: Report) -> tuple[np.ndarray, list[str]]:
    """Report missing, empty and non-string variants; return the valid mask and the names."""
    blank = s.isna().to_numpy()
    if pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
        blank = blank | per_value(s, lambda v: isinstance(v, str) and not v.strip())
    report.add_rows(
        VARIANT,
        "no missing or empty variant names",
        blank,
        s,
        f"drop the rows without a '{VARIANT}', or fill in the arm each user was given",
    )
    not_str = per_value(s, lambda v: not isinstance(v, str)) & ~blank
    report.add_rows(
        VARIANT,
        "variant names as strings",
        not_str,
        s,
        f"name the arms, e.g. df['{VARIANT}'] = df['{VARIANT}'].map({{0: 'control', "
        "1: 'treatment'}})",
    )
    valid = ~blank & ~not_str
    names = sorted({str(v) for v in pd.unique(s[valid])})
    folded: dict[str, list[str]] = {}
    for name in names:
        folded.setdefault(name.strip().casefold(), []).append(name)
    clashes = [group for group in folded.values() if len(group) > 1]
    if clashes:
        odd = s.isin([n for group in clashes for n in group]).to_numpy() & valid
        report.table.append(
            row_problem(
                VARIANT,
                "variant names that differ in more than case or spaces (found "
                + "; ".join(" vs ".join(repr(n) for n in group) for group in clashes)
                + ")",
                odd,
                s,
                "normalise the names, e.g. df['variant'].str.strip().str.lower()",
            )
        )
    return valid, names


def check_variants_param(variants: Any, func: str) -> tuple[str, ...] | None:
    """Check a ``variants`` parameter of ``func``; return it as a tuple (or None)."""
    if variants is None:
        return None
    ok = isinstance(variants, Sequence | pd.Index | np.ndarray) and not isinstance(variants, str)
    values = list(variants) if ok else []
    ok = ok and len(values) > 0 and all(isinstance(v, str) and v.strip() for v in values)
    ok = ok and len(set(values)) == len(values)
    if not ok:
        raise ValueError(
            f"The 'variants' parameter of {func} must be a sequence of distinct variant names "
            f"(non-empty strings). Got {variants!r} instead."
        )
    return tuple(values)


def check_control_param(control: Any, variants: tuple[str, ...] | None, func: str) -> None:
    """Check a ``control`` parameter of ``func`` (a name among ``variants`` when given)."""
    if control is None:
        return
    if not isinstance(control, str) or not control.strip():
        raise ValueError(
            f"The 'control' parameter of {func} must be a variant name (a non-empty string). "
            f"Got {control!r} instead."
        )
    if variants is not None and control not in variants:
        raise ValueError(
            f"The 'control' parameter of {func} must be one of the variants "
            f"{list(variants)}. Got {control!r} instead."
        )


def _check_repeats(data: pd.DataFrame, keys: list[str], valid: np.ndarray, report: Report) -> None:
    """Report repeated assignments and users assigned to two or more variants."""
    frame = data.loc[valid, [*keys, VARIANT]]
    positions = np.flatnonzero(valid)
    repeated = np.zeros(len(data), dtype=bool)
    repeated[positions] = frame.duplicated([*keys, VARIANT], keep="first").to_numpy()
    key_text = "/".join(keys)
    report.add_rows(
        key_text,
        "one row per user (no repeated assignments)",
        repeated,
        data[[*keys, VARIANT]],
        f"drop the repeated rows, e.g. df.drop_duplicates(subset={[*keys, VARIANT]}) "
        "(keeps the first); repeats after the first are reported",
    )
    n_variants = frame.groupby(keys, sort=False, dropna=False)[VARIANT].transform("nunique")
    conflict = np.zeros(len(data), dtype=bool)
    conflict[positions] = (n_variants > 1).to_numpy()
    if conflict.any():
        users = data.loc[conflict, keys].drop_duplicates()
        named = ", ".join(
            repr(row[0] if len(row) == 1 else tuple(row))
            for row in users.head(N_EXAMPLES).itertuples(index=False)
        )
        more = ", ..." if len(users) > N_EXAMPLES else ""
        report.add_rows(
            key_text,
            f"one variant per user; {len(users)} user(s) were assigned to two or more "
            f"variants: {named}{more}",
            conflict,
            data[[*keys, VARIANT]],
            "these users saw more than one arm: find out why the assignment leaked, and "
            "exclude them from the table (every variant alike), e.g. keep the rows where "
            f"df.groupby({keys})['{VARIANT}'].transform('nunique') == 1",
        )


def validate_assignments(
    assignments: pd.DataFrame,
    *,
    variants: Sequence[str] | None = None,
    control: str | None = None,
    observation_end: Any = None,
) -> pd.DataFrame:
    """Check an assignment table and return a clean, typed copy.

    Parameters
    ----------
    assignments : pandas.DataFrame
        One row per assigned user with columns ``user_id``, ``variant``
        (strings) and ``assigned_at`` (``datetime64`` or ISO-8601 strings), and
        optionally ``experiment_id``. Other columns (user attributes such as
        ``country``) pass through unchanged.
    variants : sequence of str, optional
        The variants the experiment declares. Rows of any other variant are an
        error, and so is a declared variant without users.
    control : str, optional
        Name of the control variant; an error if no user has it.
    observation_end : timestamp-like, optional
        End of the observation window; an assignment at or after it is an
        error (the user cannot have been observed after assignment).

    Returns
    -------
    pandas.DataFrame
        A new frame (the input is never modified) with ``user_id`` (and
        ``experiment_id``) typed as in
        :func:`~models.data.validation.validate_events` (``int64`` for
        whole-number ids, ``str`` for strings), ``variant`` as ``str``,
        ``assigned_at`` as tz-naive ``datetime64[ns]`` (tz-aware values and
        strings with a UTC offset converted to UTC first), the other columns as
        given, sorted by (``experiment_id``,) ``user_id`` with a fresh
        ``RangeIndex``.

    Raises
    ------
    DataValidationError
        Listing every problem found: missing required columns; an empty table;
        missing user ids (``None``, NaN, and the strings ``''``, ``'nan'``,
        ``'none'``, ``'null'``, ``'<NA>'``); ids of mixed types; missing,
        empty or non-string variants; variant names that differ only in case or
        spaces; ``assigned_at`` values that are missing, numbers, or strings
        that are not ISO 8601; assignments at or after ``observation_end``;
        variants not in ``variants``, declared variants without users, a
        ``control`` no user has; the same assignment repeated; users assigned
        to two or more variants (named). With an ``experiment_id`` column,
        users are unique per ``(experiment_id, user_id)``.
    TypeError
        If ``assignments`` is not a pandas DataFrame.
    ValueError
        If ``variants``, ``control`` or ``observation_end`` is malformed, or
        ``control`` is not among ``variants``.

    See Also
    --------
    models.data.validation.validate_events : the same for the listening log.
    models.experiments.checks.sample_ratio_test : is the split as designed?

    Examples
    --------
    >>> import pandas as pd
    >>> from models.experiments.assignments import validate_assignments
    >>> table = pd.DataFrame({
    ...     "user_id": [2, 1, 3],
    ...     "variant": ["treatment", "control", "control"],
    ...     "assigned_at": ["2024-01-02T10:00Z", "2024-01-01T09:00Z", "2024-01-02T08:00+01:00"],
    ... })
    >>> validate_assignments(table, control="control")
       user_id    variant         assigned_at
    0        1    control 2024-01-01 09:00:00
    1        2  treatment 2024-01-02 10:00:00
    2        3    control 2024-01-02 07:00:00
    >>> validate_assignments(table.assign(user_id=[2, 1, 2]))
    Traceback (most recent call last):
    ...
    models.exceptions.DataValidationError: Invalid assignments: 1 problem(s) found.
      - column 'user_id': expected one variant per user; 1 user(s) were assigned to two or more variants: 2; 2 row(s) break this, first: row 0 ((2, 'treatment')), row 2 ((2, 'control')). Fix: these users saw more than one arm: find out why the assignment leaked, and exclude them from the table (every variant alike), e.g. keep the rows where df.groupby(['user_id'])['variant'].transform('nunique') == 1
    """  # noqa: E501
    func = "validate_assignments"
    if not isinstance(assignments, pd.DataFrame):
        raise TypeError(
            f"The 'assignments' parameter of {func} must be a pandas DataFrame. "
            f"Got {type(assignments).__name__} instead."
        )
    variants = check_variants_param(variants, func)
    check_control_param(control, variants, func)
    end = None if observation_end is None else to_naive_utc(observation_end, "observation_end")

    report = Report(n_rows=len(assignments))
    for column in REQUIRED_ASSIGNMENT_COLUMNS:
        if column not in assignments.columns:
            report.table.append(
                Problem(column, "a required column", fix=f"add or rename a column to '{column}'")
            )
    if len(assignments) == 0:
        report.table.append(Problem(TABLE, "at least one row", fix="pass a non-empty table"))
    if report.table:
        raise DataValidationError(report.table, what="assignments")

    data = assignments.reset_index(drop=True)
    out = data.copy()
    has_experiment = EXPERIMENT_ID in data.columns
    keys = [EXPERIMENT_ID, USER_ID] if has_experiment else [USER_ID]
    valid = np.ones(len(data), dtype=bool)
    for column in keys:
        valid &= ~_check_id_column(data[column], column, report)
    named, present = _check_variant_names(data[VARIANT], report)
    valid &= named
    out[ASSIGNED_AT] = _parse_assigned_at(data[ASSIGNED_AT], report)

    if end is not None:
        report.add_rows(
            ASSIGNED_AT,
            f"assignments before observation_end ({end})",
            (out[ASSIGNED_AT] >= end).to_numpy(),
            data[ASSIGNED_AT],
            "users assigned at or after the end of the log were never observed in the "
            "experiment: drop them, or pass a later observation_end",
        )
    if variants is not None:
        unknown = named & ~data[VARIANT].isin(variants).to_numpy()
        report.add_rows(
            VARIANT,
            f"one of the declared variants {list(variants)}",
            unknown,
            data[VARIANT],
            "correct the variant names (case and spaces count), or declare every variant "
            "in 'variants'",
        )
        absent = [v for v in variants if v not in present]
        if absent:
            report.table.append(
                Problem(
                    VARIANT,
                    f"users in every declared variant; none in {absent}",
                    fix="check the variant names and the assignment export, or leave the "
                    "variants that did not run out of 'variants'",
                )
            )
    if control is not None and control not in present:
        report.table.append(
            Problem(
                VARIANT,
                f"the control variant {control!r} among the variants present {present}",
                fix="pass the right control=, or check the variant names",
            )
        )
    _check_repeats(data, keys, valid, report)

    out = raise_or_drop(report, out, what="assignments", drop_invalid=False)
    for column in keys:
        out[column] = clean_ids(out[column])
    out[VARIANT] = out[VARIANT].astype("str")
    out[ASSIGNED_AT] = out[ASSIGNED_AT].astype("datetime64[ns]")
    return out.sort_values(keys, kind="stable").reset_index(drop=True)
