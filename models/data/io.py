"""Reading listening logs and users tables from CSV or Parquet files.

The format is chosen by the file suffix: ``.csv`` (optionally compressed,
e.g. ``.csv.gz``) or ``.parquet`` / ``.pq``. What is read is passed through
:func:`models.data.validation.validate_events` or
:func:`~models.data.validation.validate_users`, so a loaded table is always a
clean, typed one. Row positions in validation errors are 0-based data rows of
the file (for a CSV with a header, file line = position + 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from models.data.validation import validate_events, validate_users

__all__ = ["load_events", "load_users"]

_CSV_SUFFIXES = (".csv",)
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def _read_table(
    path: str | os.PathLike[str], func: str, read_kwargs: dict[str, Any]
) -> pd.DataFrame:
    r"""Read a CSV or Parquet file chosen by suffix, with clear errors for the path."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in _CSV_SUFFIXES + _PARQUET_SUFFIXES:
        raise ValueError(
            f"{func} reads CSV ('.csv', '.csv.gz', ...) or Parquet ('.parquet', '.pq') files. "
            f"Got '{path}' (suffix {''.join(path.suffixes)!r}) instead."
        )
    if not path.is_file():
        raise FileNotFoundError(f"{func} found no file at '{path}'.")
    if suffix in _PARQUET_SUFFIXES:
        return pd.read_parquet(path, **read_kwargs)
    return pd.read_csv(path, **read_kwargs)


def load_events(
    path: str | os.PathLike[str],
    *,
    observation_end: Any = None,
    drop_invalid: bool = False,
    now: Any = None,
    **read_kwargs: Any,
) -> pd.DataFrame:
    r"""Read a listening log from CSV or Parquet and validate it.

    Parameters
    ----------
    path : str or path-like
        File ending in ``.csv`` (optionally ``.csv.gz`` etc.) or ``.parquet`` /
        ``.pq``.
    observation_end : timestamp-like, optional
        Passed to :func:`~models.data.validation.validate_events`.
    drop_invalid : bool, default False
        Passed to :func:`~models.data.validation.validate_events`.
    now : timestamp-like, optional
        Passed to :func:`~models.data.validation.validate_events`.
    **read_kwargs
        Passed to :func:`pandas.read_csv` or :func:`pandas.read_parquet`
        (e.g. ``sep="\t"`` or ``columns=[...]``).

    Returns
    -------
    pandas.DataFrame
        The validated log, as returned by
        :func:`~models.data.validation.validate_events`. Timestamps in a CSV
        are parsed from their text (ISO 8601 preferred; offsets such as
        ``+01:00`` are converted to UTC).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the suffix is not a CSV or Parquet one.
    DataValidationError
        If the table breaks any rule (see
        :func:`~models.data.validation.validate_events`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from models.data.io import load_events
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "log.csv").write_text(
    ...     "user_id,timestamp,artist_id\n2,2024-01-02 08:00,7\n1,2024-01-01 23:59,7\n")
    >>> load_events(folder / "log.csv")
       user_id           timestamp  artist_id
    0        1 2024-01-01 23:59:00          7
    1        2 2024-01-02 08:00:00          7
    """
    raw = _read_table(path, "load_events", read_kwargs)
    return validate_events(raw, observation_end=observation_end, drop_invalid=drop_invalid, now=now)


def load_users(path: str | os.PathLike[str], **read_kwargs: Any) -> pd.DataFrame:
    r"""Read a users table from CSV or Parquet and validate it.

    Parameters
    ----------
    path : str or path-like
        File ending in ``.csv`` (optionally ``.csv.gz`` etc.) or ``.parquet`` /
        ``.pq``.
    **read_kwargs
        Passed to :func:`pandas.read_csv` or :func:`pandas.read_parquet`.

    Returns
    -------
    pandas.DataFrame
        The validated users table, as returned by
        :func:`~models.data.validation.validate_users`.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the suffix is not a CSV or Parquet one.
    DataValidationError
        If the table breaks any rule (see
        :func:`~models.data.validation.validate_users`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from models.data.io import load_users
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "users.csv").write_text(
    ...     "user_id,country,signup_date\n2,SE,2024-01-02\n1,DE,2024-01-01\n")
    >>> load_users(folder / "users.csv")
       user_id country signup_date
    0        1      DE  2024-01-01
    1        2      SE  2024-01-02
    """
    raw = _read_table(path, "load_users", read_kwargs)
    return validate_users(raw)
