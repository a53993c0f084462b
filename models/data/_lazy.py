"""Helpers for Dask inputs: detection, a lazy import, one-pass computing and row problems.

Dask is an optional dependency (the ``dask`` extra). Nothing here imports it at
module level: :func:`is_dask` looks at the object's type, and :func:`import_dask`
imports it inside the functions that need it, with an error saying how to install
it when it is missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models._validation import N_EXAMPLES
from models._validation import scalar as _scalar
from models.exceptions import Problem

__all__ = ["compute", "dask_row_problem", "import_dask", "is_dask"]


def is_dask(obj: Any) -> bool:
    """Whether ``obj`` is a Dask collection (DataFrame, Series, scalar), without importing Dask.

    Parameters
    ----------
    obj : object
        Anything.

    Returns
    -------
    bool
        True for objects whose type lives in a ``dask`` module and that have a
        ``__dask_graph__`` method.
    """
    module = type(obj).__module__ or ""
    return module.split(".")[0] == "dask" and hasattr(obj, "__dask_graph__")


def import_dask(func: str) -> Any:
    """Import ``dask.dataframe``, or say how to install it.

    Parameters
    ----------
    func : str
        Name of the function that needs Dask, quoted in the error.

    Returns
    -------
    module
        ``dask.dataframe``.

    Raises
    ------
    ImportError
        If Dask (with its dataframe part) is not installed.
    """
    try:
        import dask.dataframe as dd
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"{func} needs Dask for lazy (out-of-core) data. Install it with "
            "`pip install 'listening-models[dask]'` (or `pip install 'dask[dataframe]' "
            "distributed`)."
        ) from err
    return dd


def compute(*objs: Any) -> tuple[Any, ...]:
    """Compute every Dask object among ``objs`` in one pass; pandas objects pass through.

    Parameters
    ----------
    *objs : object
        Dask collections, pandas objects or plain values.

    Returns
    -------
    tuple
        The objects with each Dask collection replaced by its computed value.
        Collections that read the same files share one read.
    """
    lazy = [i for i, o in enumerate(objs) if is_dask(o)]
    if not lazy:
        return objs
    import dask

    values = dask.compute(*(objs[i] for i in lazy))
    out = list(objs)
    for i, value in zip(lazy, values, strict=True):
        out[i] = value
    return tuple(out)


def _partition_hits(mask: pd.Series, values: pd.Series) -> tuple[int, int, np.ndarray, list]:
    m = mask.to_numpy(dtype=bool, na_value=False)
    rows = np.flatnonzero(m)
    first = rows[:N_EXAMPLES]
    return len(m), int(rows.size), first, [_scalar(v) for v in values.iloc[first]]


def dask_row_problem(
    column: str, rule: str, mask: Any, values: Any, fix: str = ""
) -> Problem | None:
    """Build a :class:`~models.exceptions.Problem` from a lazy boolean mask (one extra pass).

    Row positions are 0-based positions in the whole Dask frame, partitions
    taken in order; for a frame made with ``dask.dataframe.from_pandas`` they
    are the positions in the pandas frame. Use on the error path only: it
    reads the data again.

    Parameters
    ----------
    column, rule, fix : str
        As in :class:`~models.exceptions.Problem`.
    mask : dask.dataframe.Series
        True for offending rows.
    values : dask.dataframe.Series
        Values quoted as examples, aligned with ``mask`` partition by partition.

    Returns
    -------
    Problem or None
        None when no row is flagged.
    """
    import dask

    parts = dask.compute(
        *(
            dask.delayed(_partition_hits)(m, v)
            for m, v in zip(mask.to_delayed(), values.to_delayed(), strict=True)
        )
    )
    n_rows, offset, rows, examples = 0, 0, [], []
    for length, count, first, ex in parts:
        n_rows += count
        if len(rows) < N_EXAMPLES:
            take = N_EXAMPLES - len(rows)
            rows += [int(offset + r) for r in first[:take]]
            examples += ex[:take]
        offset += length
    if n_rows == 0:
        return None
    return Problem(
        column=column,
        rule=rule,
        n_rows=n_rows,
        rows=tuple(rows),
        examples=tuple(examples),
        fix=fix,
    )
