"""Shared pieces of the models' pointwise log-likelihoods and posterior predictive draws.

Models whose likelihood PyMC cannot expand observation by observation (a
``pm.Potential``, or observations compressed into weighted rows) compute both
from the posterior draws with numpy: :func:`by_blocks` evaluates a function of
the draws on blocks of observation units so that the intermediate arrays stay
bounded, and :func:`sample_array` wraps the result as a ``(chain, draw, unit)``
DataArray for the ``log_likelihood`` and ``posterior_predictive`` groups.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from models.predict import DEFAULT_BLOCK_ELEMENTS

__all__ = ["blocks", "by_blocks", "draw_arrays", "sample_array", "thin_draws", "unit_array",
           "unit_coords"]


def thin_draws(posterior: xr.Dataset, max_draws: int | None, owner: str) -> xr.Dataset:
    """Keep at most ``max_draws`` draws in all, evenly spaced within each chain.

    Thinning keeps the chain structure, so R-hat style diagnostics and the relative
    efficiency used by PSIS-LOO remain meaningful.

    Raises
    ------
    ValueError
        If ``max_draws`` is not a positive integer or None.
    """
    if max_draws is None:
        return posterior
    if isinstance(max_draws, bool) or not isinstance(max_draws, int | np.integer) or max_draws < 1:
        raise ValueError(f"The 'max_draws' parameter of {owner} must be a positive integer or "
                         f"None. Got {max_draws!r} instead.")
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    per_chain = max(1, int(max_draws) // chains)
    if per_chain >= draws:
        return posterior
    keep = np.unique(np.linspace(0, draws - 1, per_chain).round().astype(int))
    return posterior.isel(draw=keep)


def draw_arrays(posterior: xr.Dataset, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Return the named variables with chains and draws flattened to axis 0."""
    out = {}
    for name in names:
        da = posterior[name]
        rest = [d for d in da.dims if d not in ("chain", "draw")]
        arr = da.transpose("chain", "draw", *rest).values
        out[name] = arr.reshape(-1, *arr.shape[2:])
    return out


def blocks(n_samples: int, n_units: int, *, unit_width: int = 1,
           block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> Iterator[np.ndarray]:
    """Yield index arrays of consecutive units, about ``block_elements`` values per block.

    A block of ``k`` units holds ``n_samples * k * unit_width`` values (``unit_width``
    when the computation works on a further axis per unit).
    """
    step = max(1, block_elements // max(n_samples * max(unit_width, 1), 1))
    for start in range(0, n_units, step):
        yield np.arange(start, min(start + step, n_units))


def by_blocks(
    func: Callable[[np.ndarray], Any], n_samples: int, n_units: int, *,
    unit_width: int = 1, block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> Any:
    """Evaluate ``func(units)`` on :func:`blocks` of unit indices and assemble the results.

    ``func`` returns an ``(n_samples, len(units))`` array, or a tuple of them, so
    the temporary arrays of ``func`` are bounded whatever the data size and only
    the results are ``n_samples x n_units`` (their dtypes are those of the first
    block's).
    """
    outs: list[np.ndarray] | None = None
    single = True
    for idx in blocks(n_samples, n_units, unit_width=unit_width,
                      block_elements=block_elements):
        values = func(idx)
        single = not isinstance(values, tuple)
        parts = (values,) if single else values
        if outs is None:
            outs = [np.empty((n_samples, n_units), dtype=np.asarray(v).dtype) for v in parts]
        for out, v in zip(outs, parts, strict=True):
            out[:, idx] = v
    if outs is None:  # no units
        return np.empty((n_samples, 0))
    return outs[0] if single else tuple(outs)


def unit_coords(values: Any) -> np.ndarray:
    """Coordinate values of a unit dimension: the given labels when unique, else positions."""
    arr = np.asarray(values)
    if arr.ndim == 1 and len(np.unique(arr.astype(str))) == len(arr):
        return arr
    return np.arange(len(arr))


def sample_array(
    values: np.ndarray, posterior: xr.Dataset, dim: str, coords: Any = None, *,
    extra_coords: Mapping[Hashable, Any] | None = None, name: str | None = None,
) -> xr.DataArray:
    """Wrap a ``(chain * draw, unit)`` array as a DataArray with dims ``(chain, draw, dim)``."""
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    arr = np.asarray(values).reshape(chains, draws, -1)
    coords_ = {"chain": posterior["chain"].values, "draw": posterior["draw"].values,
               dim: np.arange(arr.shape[-1]) if coords is None else np.asarray(coords)}
    for key, value in (extra_coords or {}).items():
        coords_[key] = (dim, np.asarray(value))
    return xr.DataArray(arr, dims=("chain", "draw", dim), coords=coords_, name=name)


def unit_array(
    values: Any, dim: str, coords: Any = None, *,
    extra_coords: Mapping[Hashable, Any] | None = None,
) -> xr.DataArray:
    """Wrap observed values (one per unit) as a DataArray with dim ``dim`` (observed_data)."""
    arr = np.asarray(values)
    coords_: dict[Hashable, Any] = {dim: np.arange(len(arr)) if coords is None
                                    else np.asarray(coords)}
    for key, value in (extra_coords or {}).items():
        coords_[key] = (dim, np.asarray(value))
    return xr.DataArray(arr, dims=(dim,), coords=coords_)
