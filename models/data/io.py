"""Reading listening logs and users tables from CSV or Parquet files.

The format is chosen by the file suffix: ``.csv`` (optionally compressed,
e.g. ``.csv.gz``) or ``.parquet`` / ``.pq``. What is read is passed through
:func:`models.data.validation.validate_events` or
:func:`~models.data.validation.validate_users`, so a loaded table is always a
clean, typed one. Row positions in validation errors are 0-based data rows of
the file (for a CSV with a header, file line = position + 2).

Ids in CSV files are read as text, so ``007`` and ``7`` stay two ids; a column whose
every id is a plain integer (no leading zeros, no sign but ``-``) is then stored as
``int64``, which changes no id. An unreadable CSV (empty, ragged rows, not text) is a
:class:`~models.exceptions.DataValidationError` that names the file.

Partitioned logs
----------------
:func:`load_events` also reads a directory of Parquet files (searched
recursively for ``*.parquet`` / ``*.pq``, in sorted path order) or a glob
pattern such as ``"log/part-*.parquet"``. A directory that also holds CSV files is
an error listing them (they would otherwise be left out). Each file is validated on its own, so
an error names the file and gives row positions within that file.

- Eagerly (``lazy=False``) the validated files are concatenated, exact
  duplicates *across* files are rejected too, and the whole log is sorted by
  ``user_id`` then ``timestamp``: the result equals validating the
  concatenated files at once, except that errors name a file.
- Lazily (``lazy=True``, needs Dask) every file becomes one partition of a
  ``dask.dataframe.DataFrame`` and is validated when that partition is
  computed. **Checked per partition (per file):** every rule of
  :func:`~models.data.validation.validate_events` that looks at a row or at
  the file alone (required columns, an empty file, missing or malformed ids
  and timestamps, ids of mixed types, ``ms_played``, ``skipped``, events after
  ``observation_end`` or ``now``) and exact duplicates *within* the file;
  each file is sorted by user and timestamp. The dtypes of every file must
  also equal those of the first file. **Not checked lazily:** duplicates
  across files, and the global order (users may span files; the summaries in
  :mod:`models.data.summaries` do not need any order). ``now`` is fixed once,
  when :func:`load_events` is called.
"""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from models.data._lazy import import_dask
from models.data.schema import ARTIST_ID, SESSION_ID, TIMESTAMP, TRACK_ID, USER_ID
from models.data.validation import (
    TABLE,
    _raise_or_drop,
    _Report,
    validate_events,
    validate_users,
)
from models.exceptions import DataValidationError, Problem

__all__ = ["load_events", "load_users"]

_CSV_SUFFIXES = (".csv",)
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")
_PARQUET_SUFFIXES = (".parquet", ".pq")
#: Columns read as text from CSV files, so that ids keep their identity ('007' != '7').
_ID_COLUMNS = (USER_ID, ARTIST_ID, TRACK_ID, SESSION_ID)
#: A plain integer id: no leading zeros, no '+', at most 18 digits (fits int64).
_PLAIN_INTEGER = r"-?(?:0|[1-9][0-9]{0,17})"


def _integer_ids(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Store text id columns whose every value is a plain integer as ``int64``.

    Lossless: ``str(int(v)) == v`` for every such value, so no two ids merge. A
    column with any other value ('007', 'a1', '1.0') stays text.
    """
    for column in columns:
        s = frame[column]
        if not (s.dtype == object or pd.api.types.is_string_dtype(s.dtype)):
            continue
        present = s.dropna()
        if present.empty or not present.map(lambda v: isinstance(v, str)).all():
            continue
        if present.str.fullmatch(_PLAIN_INTEGER).all():
            numbers = pd.array([int(v) if isinstance(v, str) else None for v in s],
                               dtype="Int64")
            frame[column] = numbers.astype("int64") if s.notna().all() else numbers
    return frame


def _read_csv(path: Path, func: str, read_kwargs: dict[str, Any]) -> pd.DataFrame:
    """Read a CSV with text ids, turning pandas' parser errors into errors naming the file."""
    user_dtype = read_kwargs.get("dtype")
    kwargs = dict(read_kwargs)
    if user_dtype is None or isinstance(user_dtype, dict):
        kwargs["dtype"] = {c: str for c in _ID_COLUMNS} | dict(user_dtype or {})
    what = f"CSV file '{path}'"
    try:
        frame = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise DataValidationError(
            [Problem(TABLE, "a header line naming the columns (the file is empty)",
                     fix="check that the file was written completely")], what=what) from None
    except pd.errors.ParserError as err:
        raise DataValidationError(
            [Problem(TABLE, f"the same number of fields on every line ({err})".replace("\n", " "),
                     fix="fix the line named (a stray delimiter or unquoted text?), or pass "
                     "sep=... if the file is not comma-separated")], what=what) from None
    except UnicodeDecodeError as err:
        raise DataValidationError(
            [Problem(TABLE, f"text in UTF-8 ({err.reason} at byte {err.start})",
                     fix="pass encoding=... (e.g. encoding='latin-1'), or check that the "
                     "file is a CSV file")], what=what) from None
    if "sep" not in read_kwargs and "delimiter" not in read_kwargs and frame.shape[1] == 1:
        header = str(frame.columns[0])
        for sep, name in ((";", "';'"), ("\t", "tab"), ("|", "'|'")):
            if sep in header:
                raise DataValidationError(
                    [Problem(TABLE, f"comma-separated columns; the header {header!r} looks "
                             f"separated by {name}",
                             fix=f"pass sep={sep!r} to {func}")], what=what)
    if user_dtype is None:
        frame = _integer_ids(frame, [c for c in _ID_COLUMNS if c in frame.columns])
    return frame


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
    return _read_csv(path, func, read_kwargs)


def _event_files(path: str | os.PathLike[str], func: str) -> list[Path] | None:
    """List the files of a directory or glob pattern, sorted; None when ``path`` is one file."""
    text = os.fspath(path)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file())
        if not files:
            raise FileNotFoundError(f"{func} found no file matching the pattern '{text}'.")
        return files
    folder = Path(path)
    if not folder.is_dir():
        return None
    files = sorted(
        f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in _PARQUET_SUFFIXES
    )
    csv = sorted(f for f in folder.rglob("*") if f.is_file() and _is_csv(f))
    if files and csv:
        shown = ", ".join(f"'{f}'" for f in csv[:5]) + (" ..." if len(csv) > 5 else "")
        raise ValueError(
            f"{func} reads a directory of Parquet files, but '{folder}' also holds "
            f"{len(csv)} CSV file(s) ({shown}) that would be left out. Convert them to "
            "Parquet (pd.read_csv(f, dtype=str).to_parquet(...)) or move them out of the "
            "directory."
        )
    if not files:
        hint = (f" It holds CSV files ({len(csv)}): pass one file, or convert them to Parquet."
                if csv else "")
        raise FileNotFoundError(
            f"{func} found no Parquet file ('*.parquet', '*.pq') in the directory '{folder}'."
            + hint
        )
    return files


def _is_csv(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in _CSV_SUFFIXES


def _validate_file(
    file: Path, options: dict[str, Any], read_kwargs: dict[str, Any], row_column: str | None
) -> pd.DataFrame:
    """Read and validate one file; errors and warnings name the file.

    With ``row_column``, the validated frame carries each row's position in the
    file under that name (used to quote rows of duplicates across files).
    """
    raw = _read_table(file, "load_events", read_kwargs)
    if row_column is not None:
        raw[row_column] = range(len(raw))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = validate_events(raw, **options)
    except DataValidationError as err:
        raise DataValidationError(err.problems, what=f"events in file '{file}'") from None
    for w in caught:
        warnings.warn(
            type(w.message)(f"In file '{file}': {w.message}", *w.message.args[1:]),
            stacklevel=4,
        )
    return out


def _check_like(frame: pd.DataFrame, expected: pd.DataFrame, file: Path, first: Path) -> None:
    """Raise if the columns or dtypes of a validated file differ from the first file's."""
    problems = [
        Problem(
            c,
            f"a column of every file (it is in the first file, '{first}')",
            fix="give every file of the log the same columns",
        )
        for c in expected.columns
        if c not in frame.columns
    ]
    problems += [
        Problem(
            c,
            f"only the columns of the first file ('{first}')",
            fix="give every file of the log the same columns",
        )
        for c in frame.columns
        if c not in expected.columns
    ]
    problems += [
        Problem(
            c,
            f"the dtype of the first file ('{first}': {expected[c].dtype}), got {frame[c].dtype}",
            fix=f"write '{c}' with one type in every file",
        )
        for c in expected.columns
        if c in frame.columns and frame[c].dtype != expected[c].dtype
    ]
    if problems:
        raise DataValidationError(problems, what=f"events in file '{file}'")


def _lazy_partition(
    file: Path,
    *,
    options: dict[str, Any],
    read_kwargs: dict[str, Any],
    expected: pd.DataFrame,
    first: Path,
) -> pd.DataFrame:
    """One partition of a lazy log: a validated file, checked against the first file."""
    frame = _validate_file(file, options, read_kwargs, None)
    _check_like(frame, expected, file, first)
    return frame


def _check_kind(value: Any, name: str, kind: type) -> None:
    if not isinstance(value, kind):
        raise TypeError(
            f"The '{name}' parameter of load_events must be a {kind.__name__}. "
            f"Got {value!r} instead."
        )


def load_events(
    path: str | os.PathLike[str],
    *,
    lazy: bool = False,
    observation_end: Any = None,
    drop_invalid: bool = False,
    now: Any = None,
    **read_kwargs: Any,
) -> Any:
    r"""Read a listening log from CSV or Parquet, or a folder of Parquet files, and validate it.

    Parameters
    ----------
    path : str or path-like
        A file ending in ``.csv`` (optionally ``.csv.gz`` etc.) or ``.parquet``
        / ``.pq``; a directory of Parquet files (searched recursively); or a
        glob pattern such as ``"log/*.parquet"``. See the module notes on
        partitioned logs.
    lazy : bool, default False
        Return a ``dask.dataframe.DataFrame`` with one partition per file,
        validated as each partition is computed, instead of reading everything
        now. Needs Dask (the ``dask`` extra). The first file is read and
        validated at once to fix the columns and dtypes.
    observation_end : timestamp-like, optional
        Passed to :func:`~models.data.validation.validate_events`.
    drop_invalid : bool, default False
        Passed to :func:`~models.data.validation.validate_events` (for each
        file). Eagerly, duplicates across files are dropped too.
    now : timestamp-like, optional
        Passed to :func:`~models.data.validation.validate_events`. For a
        partitioned log it defaults to the time of this call, the same for
        every file.
    **read_kwargs
        Passed to :func:`pandas.read_csv` or :func:`pandas.read_parquet`
        (e.g. ``sep="\t"`` or ``columns=[...]``), for every file.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        The validated log, as returned by
        :func:`~models.data.validation.validate_events` (sorted by
        ``user_id`` then ``timestamp``). With ``lazy=True``, a Dask frame whose
        partitions are the validated files in path order, each sorted, and
        whose index restarts at 0 in every partition. Timestamps in a CSV are
        parsed from their text (ISO 8601 preferred; offsets such as ``+01:00``
        are converted to UTC).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``, no Parquet file in the directory, or
        no file matching the pattern.
    ValueError
        If a suffix is not a CSV or Parquet one.
    DataValidationError
        If the table breaks any rule (see
        :func:`~models.data.validation.validate_events`); for several files,
        the message names the file and row positions are within that file.
        With ``lazy=True`` it is raised when the offending partition is
        computed. Files whose columns or dtypes differ from the first file's
        are an error too.
    TypeError
        If ``lazy`` or ``drop_invalid`` is not a bool.
    ImportError
        If ``lazy=True`` and Dask is not installed.

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

    A folder of Parquet files, eagerly and lazily:

    >>> import pandas as pd
    >>> log = pd.read_csv(folder / "log.csv")
    >>> (folder / "parts").mkdir()
    >>> log.iloc[:1].to_parquet(folder / "parts" / "part-0.parquet")
    >>> log.iloc[1:].to_parquet(folder / "parts" / "part-1.parquet")
    >>> len(load_events(folder / "parts"))
    2
    >>> lazy_log = load_events(folder / "parts", lazy=True)  # doctest: +SKIP
    >>> lazy_log.npartitions  # doctest: +SKIP
    2
    """
    func = "load_events"
    _check_kind(lazy, "lazy", bool)
    _check_kind(drop_invalid, "drop_invalid", bool)
    files = _event_files(path, func)
    if files is None:
        files = [Path(path)]
        if not lazy:
            raw = _read_table(path, func, read_kwargs)
            return validate_events(
                raw, observation_end=observation_end, drop_invalid=drop_invalid, now=now
            )
    if observation_end is None and now is None:
        now = pd.Timestamp.now("UTC").tz_localize(None).as_unit("ns")
    options = {"observation_end": observation_end, "drop_invalid": drop_invalid, "now": now}
    if lazy:
        dd = import_dask(func)
        first = _validate_file(files[0], options, read_kwargs, None)
        return dd.from_map(
            _lazy_partition,
            files,
            options=options,
            read_kwargs=read_kwargs,
            expected=first.iloc[:0],
            first=files[0],
            meta=first.iloc[:0],
            label="load-events",
            enforce_metadata=False,
        )
    return _concat_files(files, options, read_kwargs)


_ROW = "__row_in_file__"


def _concat_files(
    files: list[Path], options: dict[str, Any], read_kwargs: dict[str, Any]
) -> pd.DataFrame:
    """Validate every file, reject duplicates across files, concatenate and sort."""
    frames, rows = [], []
    for file in files:
        frame = _validate_file(file, options, read_kwargs, _ROW)
        rows.append(frame.pop(_ROW).to_numpy())
        if frames:
            _check_like(frame, frames[0], file, files[0])
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    if len(files) > 1:
        file_of = pd.Series(
            [str(f) for f, frame in zip(files, frames, strict=True) for _ in range(len(frame))]
        )
        row_of = pd.Series([r for block in rows for r in block])
        keys = [c for c in (USER_ID, TIMESTAMP, TRACK_ID, ARTIST_ID) if c in data.columns]
        dup = data[keys].duplicated(keep="first").to_numpy()
        report = _Report(n_rows=len(data))
        if dup.any():
            first = dup.nonzero()[0][:5]
            report.rows.append(
                (
                    Problem(
                        "/".join(keys),
                        "no exact duplicate events across files (rows are positions within "
                        "the file quoted)",
                        n_rows=int(dup.sum()),
                        rows=tuple(int(r) for r in row_of.iloc[first]),
                        examples=tuple(file_of.iloc[first]),
                        fix="remove the repeated rows; repeats after the first (in path order) "
                        "are reported",
                    ),
                    dup,
                )
            )
        data = _raise_or_drop(report, data, what="events", drop_invalid=options["drop_invalid"])
    if data.empty:
        raise DataValidationError([Problem(TABLE, "at least one row")], what="events")
    return data.sort_values([USER_ID, TIMESTAMP], kind="stable").reset_index(drop=True)


def load_users(path: str | os.PathLike[str], **read_kwargs: Any) -> pd.DataFrame:
    r"""Read a users table from CSV or Parquet, or a folder of Parquet files, and validate it.

    Parameters
    ----------
    path : str or path-like
        File ending in ``.csv`` (optionally ``.csv.gz`` etc.) or ``.parquet`` /
        ``.pq``; or a directory of Parquet files (searched recursively, read in
        sorted path order and concatenated; CSV files beside them are an error).
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
        If there is no file at ``path`` (or no Parquet file in the directory).
    ValueError
        If the suffix is not a CSV or Parquet one, or a directory mixes Parquet and
        CSV files.
    DataValidationError
        If the table breaks any rule (see
        :func:`~models.data.validation.validate_users`), or a CSV cannot be parsed
        (the message names the file).

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
    files = _event_files(path, "load_users")
    if files is None:
        return validate_users(_read_table(path, "load_users", read_kwargs))
    return validate_users(pd.concat([_read_table(f, "load_users", read_kwargs) for f in files],
                                    ignore_index=True))
