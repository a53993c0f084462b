"""Turning posterior draws into per-unit predictions, in the one prediction vocabulary.

Models compute predictions such as P(active) or expected plays as a function of
the posterior draws of a few parameters and a block of users. Doing that for a
million users at once would build a (draws x users) array of many gigabytes, so
:func:`predict_in_batches` evaluates the function on blocks of users and keeps
only each user's posterior mean, sd and equal-tailed interval, unless the
caller asks for the draws.

Every prediction method of every model returns the same two things:

- a summary :class:`pandas.DataFrame` indexed like its input, with the columns
  ``mean``, ``sd``, ``ci_lower`` and ``ci_upper`` (the equal-tailed interval
  holding ``ci_prob`` of the posterior mass; ``attrs["ci_prob"]`` records it);
- with ``return_draws=True``, an :class:`xarray.DataArray` of dims
  ``(chain, draw, <unit>)``: the posterior's chains and draws, or, when
  ``max_draws`` keeps a random subset, one chain of ``max_draws`` draws (the
  convention of :func:`models.scoring.thin_posterior`).

:func:`prediction_method` checks the options of such a method (``ci_prob``,
``max_draws``, ``random_seed``, ``return_draws``) with the one message template.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import xarray as xr

from models._deprecation import deprecated_arguments

__all__ = [
    "OPTIONS",
    "SUMMARY_COLUMNS",
    "check_ci_prob",
    "check_max_draws",
    "draws_to_dataarray",
    "eti_bounds",
    "flatten_draws",
    "hdi_bounds",
    "posterior_arrays",
    "predict_in_batches",
    "prediction_method",
    "predictive_summary",
    "sample_shape",
    "summarize_draws",
]

#: Elements of one (draws x users) block; 4M float64 values are 32 MB.
DEFAULT_BLOCK_ELEMENTS = 4_000_000
#: Columns of every prediction summary, in this order.
SUMMARY_COLUMNS = ("mean", "sd", "ci_lower", "ci_upper")
#: The options every prediction method names the same way.
OPTIONS = ("ci_prob", "max_draws", "random_seed", "return_draws")

F = TypeVar("F", bound=Callable[..., Any])


# ------------------------------------------------------------------ option checks
def check_ci_prob(owner: str, value: Any) -> float:
    """Return ``value`` as a float in (0, 1), or raise the one parameter error.

    Examples
    --------
    >>> check_ci_prob("f", 0.9)
    0.9
    >>> check_ci_prob("f", 1.5)
    Traceback (most recent call last):
    ...
    ValueError: The 'ci_prob' parameter of f must be a number in (0, 1). Got 1.5 instead.
    """
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not (ok and 0 < value < 1):
        raise ValueError(f"The 'ci_prob' parameter of {owner} must be a number in (0, 1). "
                         f"Got {value!r} instead.")
    return float(value)


def check_max_draws(owner: str, value: Any) -> None:
    """Raise the one parameter error unless ``value`` is a positive integer or None."""
    ok = value is None or (isinstance(value, int | np.integer) and not isinstance(value, bool)
                           and value > 0)
    if not ok:
        raise ValueError(f"The 'max_draws' parameter of {owner} must be a positive integer "
                         f"(or None for every draw). Got {value!r} instead.")


def _check_options(owner: str, arguments: Mapping[str, Any]) -> None:
    if "ci_prob" in arguments:
        check_ci_prob(owner, arguments["ci_prob"])
    if "max_draws" in arguments:
        check_max_draws(owner, arguments["max_draws"])
    if "return_draws" in arguments and not isinstance(arguments["return_draws"], bool):
        raise ValueError(f"The 'return_draws' parameter of {owner} must be True or False. "
                         f"Got {arguments['return_draws']!r} instead.")
    if "random_seed" in arguments:
        seed = arguments["random_seed"]
        ok = seed is None or isinstance(seed, np.random.Generator) or (
            isinstance(seed, int | np.integer) and not isinstance(seed, bool) and seed >= 0)
        if not ok:
            raise ValueError(f"The 'random_seed' parameter of {owner} must be a non-negative "
                             f"integer, a numpy.random.Generator or None. Got {seed!r} instead.")


def prediction_method(
    *,
    renamed: Mapping[str, str] | None = None,
    positional: Sequence[str] = (),
    removed: Mapping[str, str] | None = None,
    collect: str | None = None,
) -> Callable[[F], F]:
    """Decorate a prediction method: check its options, accept its old argument names.

    The options ``ci_prob``, ``max_draws``, ``random_seed`` and ``return_draws``
    that the method takes are checked before it runs, with the one message
    template ("The 'ci_prob' parameter of BetaGeoModel.probability_alive must
    be ..."). Old argument names are accepted for one release with a
    :class:`FutureWarning` (see ``models._deprecation.deprecated_arguments``,
    which takes the same arguments).

    Returns
    -------
    callable
        The decorator; the method keeps its signature.
    """

    def decorate(func: F) -> F:
        sig = inspect.signature(func)

        @functools.wraps(func)
        def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            _check_options(f"{type(self).__name__}.{func.__name__}", bound.arguments)
            return func(self, *args, **kwargs)

        return deprecated_arguments(renamed=renamed, positional=positional, removed=removed,
                                    collect=collect)(checked)  # type: ignore[return-value]

    return decorate


# ---------------------------------------------------------------------- intervals
def eti_bounds(samples: np.ndarray, ci_prob: float = 0.89) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval of each column of a (draws x units) array.

    The ``(1 - ci_prob) / 2`` and ``(1 + ci_prob) / 2`` quantiles (linear
    interpolation), as in ArviZ's ``eti`` and :meth:`models.base.BayesianModel.summary`.

    Parameters
    ----------
    samples : numpy.ndarray
        Draws along axis 0; any further axes are units.
    ci_prob : float, default 0.89
        Probability mass of the interval, in (0, 1).

    Returns
    -------
    lower, upper : numpy.ndarray
        Interval bounds with the shape of ``samples.shape[1:]``.

    Raises
    ------
    ValueError
        If ``ci_prob`` is not in (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20_000, 2))
    >>> lo, hi = eti_bounds(x, 0.95)
    >>> bool(np.allclose(lo, -1.96, atol=0.06) and np.allclose(hi, 1.96, atol=0.06))
    True
    """
    ci_prob = check_ci_prob("eti_bounds", ci_prob)
    x = np.asarray(samples, dtype=float)
    if x.shape[0] == 0:
        nan = np.full(x.shape[1:], np.nan)
        return nan, nan.copy()
    lower, upper = np.quantile(x, [(1 - ci_prob) / 2, (1 + ci_prob) / 2], axis=0)
    return lower, upper


@deprecated_arguments(renamed={"prob": "ci_prob"})
def hdi_bounds(samples: np.ndarray, ci_prob: float = 0.89) -> tuple[np.ndarray, np.ndarray]:
    """Highest-density interval of each column of a (draws x units) array.

    The narrowest window containing ``ceil(ci_prob * n_draws)`` sorted draws, as
    in ArviZ's ``hdi(method="nearest")``, vectorised over columns. Predictions
    and summaries report equal-tailed intervals (:func:`eti_bounds`); this is
    for the few places that want the narrowest interval of a skewed posterior.

    Parameters
    ----------
    samples : numpy.ndarray
        Draws along axis 0; any further axes are units.
    ci_prob : float, default 0.89
        Probability mass of the interval, in (0, 1). (``prob`` is its deprecated
        name.)

    Returns
    -------
    lower, upper : numpy.ndarray
        Interval bounds with the shape of ``samples.shape[1:]``.

    Raises
    ------
    ValueError
        If ``ci_prob`` is not in (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20_000, 2))
    >>> lo, hi = hdi_bounds(x, 0.95)
    >>> bool(np.allclose(lo, -1.96, atol=0.06) and np.allclose(hi, 1.96, atol=0.06))
    True
    """
    ci_prob = check_ci_prob("hdi_bounds", ci_prob)
    x = np.sort(np.asarray(samples, dtype=float), axis=0)
    n = x.shape[0]
    n_in = int(np.ceil(ci_prob * n))
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
    """Posterior mean, sd and equal-tailed interval of each column of a (draws x units) array.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape ``(n_draws, n_units)``.
    ci_prob : float, default 0.89
        Probability mass of the equal-tailed interval.
    index : sequence, optional
        Labels of the units (the DataFrame index).

    Returns
    -------
    pandas.DataFrame
        Columns ``mean``, ``sd``, ``ci_lower``, ``ci_upper``; ``attrs["ci_prob"]``
        holds the interval probability.

    Examples
    --------
    >>> import numpy as np
    >>> summarize_draws(np.arange(101.0)[:, None], ci_prob=0.9).round(1)
       mean    sd  ci_lower  ci_upper
    0  50.0  29.3       5.0      95.0
    """
    draws = np.asarray(draws, dtype=float)
    lower, upper = eti_bounds(draws, ci_prob)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = draws.mean(axis=0) if draws.shape[0] else np.full(draws.shape[1:], np.nan)
    frame = pd.DataFrame(
        {
            "mean": mean,
            "sd": draws.std(axis=0, ddof=1) if draws.shape[0] > 1 else np.nan,
            "ci_lower": lower,
            "ci_upper": upper,
        },
        index=index,
    )
    frame.attrs["ci_prob"] = ci_prob
    return frame


# --------------------------------------------------------------------------- draws
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
        Each array has the draws on axis 0 (``chain * draw`` of them, chain
        major, or ``max_draws`` in their original order); :func:`sample_shape`
        gives the ``(chain, draw)`` shape they came from.

    Raises
    ------
    ValueError
        If ``max_draws`` is not a positive integer (or None).
    """
    check_max_draws("posterior_arrays", max_draws)
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


def sample_shape(posterior: xr.Dataset | xr.DataTree, max_draws: int | None = None
                 ) -> tuple[int, int]:
    """Return the ``(chain, draw)`` shape of the draws :func:`posterior_arrays` returns.

    The posterior's own shape, or ``(1, max_draws)`` when ``max_draws`` keeps a
    random subset (fewer draws than the posterior has).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> post = xr.Dataset({"a": (("chain", "draw"), np.zeros((4, 100)))})
    >>> sample_shape(post), sample_shape(post, 50), sample_shape(post, 1000)
    ((4, 100), (1, 50), (4, 100))
    """
    if isinstance(posterior, xr.DataTree):
        posterior = posterior["posterior"].to_dataset()
    chains, draws = int(posterior.sizes["chain"]), int(posterior.sizes["draw"])
    if max_draws is not None and chains * draws > max_draws:
        return 1, int(max_draws)
    return chains, draws


def _grid_levels(index: pd.MultiIndex) -> list[np.ndarray] | None:
    """Each level's values in order of appearance, if ``index`` is their product in C order."""
    levels = [pd.unique(index.get_level_values(i)) for i in range(index.nlevels)]
    if int(np.prod([len(v) for v in levels])) != len(index):
        return None
    product = pd.MultiIndex.from_product(levels, names=index.names)
    return levels if product.equals(index) else None


def draws_to_dataarray(
    values: np.ndarray,
    *,
    index: pd.Index,
    shape: tuple[int, int] | None = None,
    unit: str | None = None,
    name: str | None = None,
) -> xr.DataArray:
    """Wrap (sample x row) prediction draws as a DataArray of dims ``(chain, draw, ...)``.

    Parameters
    ----------
    values : numpy.ndarray
        Shape ``(n_samples, n_rows)``, samples in the order of
        :func:`posterior_arrays` (chain major).
    index : pandas.Index
        Labels of the rows (the summary's index).
    shape : tuple of int, optional
        ``(chain, draw)`` with ``chain * draw == n_samples`` (see
        :func:`sample_shape`); one chain by default.
    unit : str, optional
        Name of the row dimension, whose coordinate is ``index`` (a MultiIndex
        coordinate when ``index`` has several levels). Without it, a MultiIndex
        that is the product of its levels (a grid such as segment x horizon)
        gives one dimension per level, named like the level, and any other
        index one dimension named like the index (``"row"`` if unnamed).
    name : str, optional
        Name of the DataArray (the prediction method).

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, unit)`` or ``(chain, draw, level, ...)``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> idx = pd.MultiIndex.from_product([["a", "b"], [1, 2, 3]], names=["segment", "horizon"])
    >>> draws_to_dataarray(np.zeros((8, 6)), index=idx, shape=(2, 4)).sizes
    Frozen({'chain': 2, 'draw': 4, 'segment': 2, 'horizon': 3})
    """
    values = np.asarray(values)
    n_samples, n_rows = values.shape
    chains, draws = shape if shape is not None else (1, n_samples)
    if chains * draws != n_samples:
        raise ValueError(f"{n_samples} samples cannot have the shape (chain={chains}, "
                         f"draw={draws}).")
    coords: dict[str, Any] = {"chain": np.arange(chains), "draw": np.arange(draws)}
    if unit is None and isinstance(index, pd.MultiIndex):
        levels = _grid_levels(index)
        if levels is not None:
            dims = [str(n) if n is not None else f"level_{i}" for i, n in enumerate(index.names)]
            coords.update(zip(dims, levels, strict=True))
            return xr.DataArray(values.reshape(chains, draws, *(len(v) for v in levels)),
                                dims=("chain", "draw", *dims), coords=coords, name=name)
    dim = unit or (str(index.name) if index.name is not None else "row")
    if isinstance(index, pd.MultiIndex):
        da = xr.DataArray(values.reshape(chains, draws, n_rows), dims=("chain", "draw", dim),
                          coords=coords, name=name)
        return da.assign_coords(xr.Coordinates.from_pandas_multiindex(index, dim))
    coords[dim] = index.to_numpy()
    return xr.DataArray(values.reshape(chains, draws, n_rows), dims=("chain", "draw", dim),
                        coords=coords, name=name)


def predictive_summary(draws: xr.DataArray | np.ndarray, *, ci_prob: float = 0.89,
                       index: Sequence | pd.Index | None = None) -> pd.DataFrame:
    """Mean, sd and predictive interval of each unit's predictive count draws.

    ``draws`` is what a ``sample_*`` method returns (a DataArray of dims ``(chain,
    draw, <unit>)``, the unit coordinate becoming the index) or a (sample x unit)
    array. Like :func:`summarize_draws`, but the bounds are observable values: the
    smallest count whose predictive CDF reaches ``(1 - ci_prob) / 2`` and the
    smallest whose CDF reaches ``(1 + ci_prob) / 2`` (the inverted-CDF quantiles),
    so an interval of counts holds at least ``ci_prob`` of the predictive mass.

    Examples
    --------
    >>> import numpy as np
    >>> predictive_summary(np.repeat(np.arange(10), 10)[:, None], ci_prob=0.8).round(2)
       mean    sd  ci_lower  ci_upper
    0   4.5  2.89         0         8
    """
    ci_prob = check_ci_prob("predictive_summary", ci_prob)
    if isinstance(draws, xr.DataArray):
        if index is None and draws.ndim == 3:
            index = draws.indexes.get(draws.dims[2])
        x = flatten_draws(draws)
    else:
        x = np.asarray(draws)
    lower, upper = np.quantile(x, [(1 - ci_prob) / 2, (1 + ci_prob) / 2], axis=0,
                               method="inverted_cdf")
    frame = pd.DataFrame({"mean": x.mean(axis=0),
                          "sd": x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.nan,
                          "ci_lower": lower.astype(x.dtype), "ci_upper": upper.astype(x.dtype)},
                         index=index)
    frame.attrs["ci_prob"] = ci_prob
    return frame


def flatten_draws(draws: xr.DataArray) -> np.ndarray:
    """Return prediction draws as a numpy array with chains and draws merged on axis 0.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.zeros((2, 5, 3)), dims=("chain", "draw", "user"))
    >>> flatten_draws(da).shape
    (10, 3)
    """
    da = draws.transpose("chain", "draw", ...)
    return da.values.reshape(-1, *da.shape[2:])


@deprecated_arguments(renamed={"batch_size": "rows_per_block"})
def predict_in_batches(
    func: Callable[[Mapping[str, np.ndarray], pd.DataFrame], np.ndarray],
    params: Mapping[str, np.ndarray],
    data: pd.DataFrame,
    *,
    ci_prob: float = 0.89,
    rows_per_block: int | None = None,
    return_draws: bool = False,
    shape: tuple[int, int] | None = None,
    unit: str | None = None,
    name: str | None = None,
) -> pd.DataFrame | xr.DataArray:
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
        Probability mass of the equal-tailed interval.
    rows_per_block : int, optional
        Rows per block; by default chosen so a block holds at most 4 million
        values. (``batch_size`` is its deprecated name.)
    return_draws : bool, default False
        Return the draws instead of the summary. Their memory grows with
        draws x rows: ask for them only for few rows.
    shape, unit, name
        Shape of the draws, name of the row dimension and of the result, as in
        :func:`draws_to_dataarray` (with ``return_draws``).

    Returns
    -------
    pandas.DataFrame or xarray.DataArray
        ``mean``, ``sd``, ``ci_lower``, ``ci_upper`` per row of ``data`` (same
        index), or with ``return_draws`` the draws, dims ``(chain, draw, unit)``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> params = {"rate": np.array([1.0, 2.0, 3.0])}
    >>> users = pd.DataFrame({"t": [1.0, 2.0]}, index=pd.Index(["a", "b"], name="user"))
    >>> f = lambda p, b: p["rate"][:, None] * b["t"].to_numpy()[None, :]
    >>> predict_in_batches(f, params, users, rows_per_block=1)["mean"].tolist()
    [2.0, 4.0]
    >>> predict_in_batches(f, params, users, return_draws=True).dims
    ('chain', 'draw', 'user')
    """
    ci_prob = check_ci_prob("predict_in_batches", ci_prob)
    n_draws = next(iter(params.values())).shape[0]
    n_rows = len(data)
    if rows_per_block is None:
        rows_per_block = max(1, DEFAULT_BLOCK_ELEMENTS // max(n_draws, 1))
    if return_draws:
        out = np.empty((n_draws, n_rows))
    parts = []
    for start in range(0, n_rows, rows_per_block):
        block = data.iloc[start : start + rows_per_block]
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
        return draws_to_dataarray(out, index=data.index, shape=shape, unit=unit, name=name)
    if not parts:
        return summarize_draws(np.empty((n_draws, 0)), ci_prob=ci_prob, index=data.index)
    result = pd.concat(parts)
    result.attrs["ci_prob"] = ci_prob
    return result
