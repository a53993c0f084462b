"""Turning posterior draws into per-unit predictions with bounded memory.

Models compute predictions such as P(active) or expected plays as a function of
the posterior draws of a few parameters and a block of users. Doing that for a
million users at once would build a (draws x users) array of many gigabytes, so
:func:`predict_in_batches` evaluates the function on blocks of users and keeps
only each user's posterior mean and highest-density interval, unless the caller
asks for the draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "hdi_bounds",
    "posterior_arrays",
    "predict_in_batches",
    "summarize_draws",
]

#: Elements of one (draws x users) block; 4M float64 values are 32 MB.
DEFAULT_BLOCK_ELEMENTS = 4_000_000


def hdi_bounds(samples: np.ndarray, prob: float = 0.89) -> tuple[np.ndarray, np.ndarray]:
    """Highest-density interval of each column of a (draws x units) array.

    The narrowest window containing ``ceil(prob * n_draws)`` sorted draws, as in
    ArviZ's ``hdi(method="nearest")``, vectorised over columns.

    Parameters
    ----------
    samples : numpy.ndarray
        Draws along axis 0; any further axes are units.
    prob : float, default 0.89
        Probability mass of the interval, in (0, 1).

    Returns
    -------
    lower, upper : numpy.ndarray
        Interval bounds with the shape of ``samples.shape[1:]``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20_000, 2))
    >>> lo, hi = hdi_bounds(x, 0.95)
    >>> bool(np.allclose(lo, -1.96, atol=0.06) and np.allclose(hi, 1.96, atol=0.06))
    True
    """
    if not 0 < prob < 1:
        raise ValueError(f"The 'prob' of an interval must be in (0, 1). Got {prob!r} instead.")
    x = np.sort(np.asarray(samples, dtype=float), axis=0)
    n = x.shape[0]
    n_in = int(np.ceil(prob * n))
    if n_in >= n:
        return x[0], x[-1]
    widths = x[n_in:] - x[: n - n_in]
    start = np.argmin(widths, axis=0)
    lower = np.take_along_axis(x, start[None, ...], axis=0)[0]
    upper = np.take_along_axis(x, (start + n_in)[None, ...], axis=0)[0]
    return lower, upper


def summarize_draws(
    draws: np.ndarray, *, ci_prob: float = 0.89, index: Sequence | pd.Index | None = None
) -> pd.DataFrame:
    """Posterior mean, sd and HDI of each column of a (draws x units) array.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape ``(n_draws, n_units)``.
    ci_prob : float, default 0.89
        Probability mass of the highest-density interval.
    index : sequence, optional
        Labels of the units (the DataFrame index).

    Returns
    -------
    pandas.DataFrame
        Columns ``mean``, ``sd``, ``hdi_lower``, ``hdi_upper``; ``attrs["ci_prob"]``
        holds the interval probability.
    """
    draws = np.asarray(draws, dtype=float)
    lower, upper = hdi_bounds(draws, ci_prob)
    frame = pd.DataFrame(
        {
            "mean": draws.mean(axis=0),
            "sd": draws.std(axis=0, ddof=1) if draws.shape[0] > 1 else np.nan,
            "hdi_lower": lower,
            "hdi_upper": upper,
        },
        index=index,
    )
    frame.attrs["ci_prob"] = ci_prob
    return frame


def posterior_arrays(
    posterior: xr.Dataset | xr.DataTree,
    var_names: Sequence[str],
    *,
    max_draws: int | None = None,
    random_seed: int | np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Flatten chains and draws of some posterior variables into numpy arrays.

    Parameters
    ----------
    posterior : xarray.Dataset or xarray.DataTree
        The posterior group (or a tree that has one).
    var_names : sequence of str
        Variables to extract.
    max_draws : int, optional
        Keep a random subset of at most this many draws (the same subset for
        every variable), to bound the cost of predictions.
    random_seed : int, numpy.random.Generator or None
        Seed of that subset.

    Returns
    -------
    dict of str to numpy.ndarray
        Each array has the draws on axis 0 (``chain * draw`` of them, or ``max_draws``).

    Raises
    ------
    ValueError
        If ``max_draws`` is not a positive integer (or None).
    """
    if max_draws is not None and (isinstance(max_draws, bool)
                                  or not isinstance(max_draws, int | np.integer)
                                  or max_draws < 1):
        raise ValueError(
            f"The 'max_draws' parameter must be a positive integer (or None for every draw). "
            f"Got {max_draws!r} instead."
        )
    if isinstance(posterior, xr.DataTree):
        posterior = posterior["posterior"].to_dataset()
    out = {}
    for name in var_names:
        da = posterior[name]
        arr = da.stack(__sample__=("chain", "draw")).transpose("__sample__", ...).values
        out[name] = arr
    n = next(iter(out.values())).shape[0] if out else 0
    if max_draws is not None and n > max_draws:
        keep = np.sort(np.random.default_rng(random_seed).choice(n, max_draws, replace=False))
        out = {k: v[keep] for k, v in out.items()}
    return out


def predict_in_batches(
    func: Callable[[Mapping[str, np.ndarray], pd.DataFrame], np.ndarray],
    params: Mapping[str, np.ndarray],
    data: pd.DataFrame,
    *,
    ci_prob: float = 0.89,
    batch_size: int | None = None,
    return_draws: bool = False,
) -> pd.DataFrame | np.ndarray:
    """Evaluate a per-unit prediction on blocks of rows, keeping memory bounded.

    Parameters
    ----------
    func : callable
        ``func(params, block) -> array (n_draws, len(block))``: the prediction for
        every posterior draw and every row of ``block``.
    params : mapping of str to numpy.ndarray
        Posterior draws (draws on axis 0), e.g. from :func:`posterior_arrays`.
    data : pandas.DataFrame
        Rows to predict for (users, cohorts, ...).
    ci_prob : float, default 0.89
        Probability mass of the highest-density interval.
    batch_size : int, optional
        Rows per block; by default chosen so a block holds at most 4 million values.
    return_draws : bool, default False
        Return the full ``(n_draws, n_rows)`` array instead of the summary. Its
        memory grows with draws x rows: ask for it only for few rows.

    Returns
    -------
    pandas.DataFrame or numpy.ndarray
        ``mean``, ``sd``, ``hdi_lower``, ``hdi_upper`` per row of ``data`` (same
        index), or the draws when ``return_draws``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> params = {"rate": np.array([1.0, 2.0, 3.0])}
    >>> users = pd.DataFrame({"t": [1.0, 2.0]}, index=["a", "b"])
    >>> f = lambda p, b: p["rate"][:, None] * b["t"].to_numpy()[None, :]
    >>> predict_in_batches(f, params, users, batch_size=1)["mean"].tolist()
    [2.0, 4.0]
    """
    n_draws = next(iter(params.values())).shape[0]
    n_rows = len(data)
    if batch_size is None:
        batch_size = max(1, DEFAULT_BLOCK_ELEMENTS // max(n_draws, 1))
    if return_draws:
        out = np.empty((n_draws, n_rows))
    parts = []
    for start in range(0, n_rows, batch_size):
        block = data.iloc[start : start + batch_size]
        values = np.asarray(func(params, block), dtype=float)
        if values.shape != (n_draws, len(block)):
            raise RuntimeError(
                f"Prediction function returned shape {values.shape}; expected "
                f"{(n_draws, len(block))}."
            )
        if return_draws:
            out[:, start : start + len(block)] = values
        else:
            parts.append(summarize_draws(values, ci_prob=ci_prob, index=block.index))
    if return_draws:
        return out
    if not parts:
        return summarize_draws(np.empty((n_draws, 0)), ci_prob=ci_prob, index=data.index)
    result = pd.concat(parts)
    result.attrs["ci_prob"] = ci_prob
    return result
