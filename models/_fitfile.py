"""Checks shared by ``BayesianModel.fit`` and ``load``: is a fit complete, is a file readable.

A fit is complete when its posterior has every chain and every draw that was asked
for. PyMC and nutpie return fewer when they are interrupted, and a file written by an
interrupted save cannot be read at all; both end here in one clear error.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from models.exceptions import FitInterrupted, SavedFitError

__all__ = ["METADATA_ATTR", "check_complete", "decode_labels", "encode_labels",
           "import_model_module", "missing_draws", "read_fit_file"]

#: Attribute of a fit's DataTree holding the model's metadata (JSON): class, method, draws.
METADATA_ATTR = "listening_models"
#: Attribute marking a variable whose labels were stored as JSON text (see encode_labels).
_JSON_LABELS = "listening_models_json_labels"

#: Methods whose posterior has exactly ``chains`` chains of ``draws`` draws.
_MCMC = ("nuts", "gibbs")
#: Packages whose modules ``load`` may import to find a model class named in a file.
_MODEL_PACKAGES = ("models.churn", "models.listening", "models.network")


def missing_draws(idata: xr.DataTree, meta: dict[str, Any]) -> str | None:
    """Say what the posterior lacks compared with ``meta`` (None when complete)."""
    if "posterior" not in idata.children:
        return "no posterior"
    sizes = idata["posterior"].sizes
    method = meta.get("method")
    draws, chains = meta.get("draws"), meta.get("chains")
    got_draws, got_chains = int(sizes.get("draw", 1)), int(sizes.get("chain", 1))
    if method in _MCMC and chains is not None and got_chains < chains:
        return f"{got_chains} of {chains} chain(s), {got_draws:,} of {draws:,} draw(s) each"
    if method in _MCMC + ("advi",) and draws is not None and got_draws < draws:
        return f"{got_draws:,} of {draws:,} draw(s) per chain"
    if meta.get("sampler") == "nutpie":
        # nutpie pads chains that stopped early with NaN
        first = next(iter(idata["posterior"].data_vars.values()), None)
        if first is not None and np.issubdtype(first.dtype, np.floating):
            values = np.asarray(first.values)
            rows = np.isnan(values.reshape(values.shape[0], values.shape[1], -1)).all(axis=2)
            if rows.any():
                return f"{int(rows.sum())} empty draw(s) (chains stopped early)"
    return None


def check_complete(idata: xr.DataTree, meta: dict[str, Any], owner: str) -> None:
    """Raise :class:`FitInterrupted` when a new fit has fewer chains or draws than asked."""
    missing = missing_draws(idata, meta)
    if missing is not None:
        raise FitInterrupted(
            f"{owner} was interrupted: the sampler returned {missing}. The partial draws "
            "were discarded and no fit is returned; run fit again to get a complete one."
        )


def _mixed(values: np.ndarray) -> bool:
    return values.dtype == object and len({type(v) for v in values.ravel()}) > 1


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def encode_labels(tree: xr.DataTree) -> xr.DataTree:
    """Store labels of mixed types (``1`` and ``"a"`` among one graph's nodes) as JSON text.

    netCDF has no column type that holds both; writing them as text would bring ``1``
    back as ``"1"``. Each such variable becomes the JSON of its values, marked so that
    :func:`decode_labels` restores the types on load. Other variables are untouched.
    """
    out = tree.copy()
    for node in out.subtree:
        ds = node.to_dataset(inherit=False)
        changed = False
        for name, var in ds.variables.items():
            if _mixed(var.values):
                text = np.array([json.dumps(_plain(v)) for v in var.values.ravel()])
                new = xr.Variable(var.dims, text.reshape(var.shape),
                                  {**var.attrs, _JSON_LABELS: 1})
                ds = ds.assign_coords({name: new}) if name in ds.coords else ds.assign(
                    {name: new})
                changed = True
        if changed:
            node.dataset = ds
    return out


def decode_labels(tree: xr.DataTree) -> xr.DataTree:
    """Inverse of :func:`encode_labels` (in place); returns ``tree``."""
    for node in tree.subtree:
        ds = node.to_dataset(inherit=False)
        changed = False
        for name, var in ds.variables.items():
            if var.attrs.get(_JSON_LABELS):
                values = np.empty(var.size, dtype=object)
                values[:] = [json.loads(str(v)) for v in var.values.ravel()]
                attrs = {k: v for k, v in var.attrs.items() if k != _JSON_LABELS}
                new = xr.Variable(var.dims, values.reshape(var.shape), attrs)
                ds = ds.assign_coords({name: new}) if name in ds.coords else ds.assign(
                    {name: new})
                changed = True
        if changed:
            node.dataset = ds
    return tree


def import_model_module(meta: dict[str, Any]) -> None:
    """Import the module that defines the model class a saved file names.

    Only modules of this package are imported (a file never chooses arbitrary code).
    """
    module = meta.get("module")
    candidates = [module] if isinstance(module, str) and module.startswith("models.") else []
    for name in [*candidates, *_MODEL_PACKAGES]:
        try:
            importlib.import_module(name)
        except ImportError:
            continue


def read_fit_file(path: Path, attr_key: str, data_group: str) -> tuple[xr.DataTree, dict]:
    """Read a file written by ``BayesianModel.save``; every failure is a clear error.

    Returns
    -------
    tree, meta
        The whole tree, loaded into memory, and the decoded metadata attribute.

    Raises
    ------
    SavedFitError
        If the file cannot be read (truncated, corrupt, not netCDF) or its posterior
        has fewer chains or draws than the fit it records.
    """
    from models.exceptions import ModelMismatchError

    text = str(path)
    fix = "Fit the model again and save it (in an analysis: rerun, or --force)."
    try:
        import h5py

        if not h5py.is_hdf5(path):
            raise SavedFitError(
                f"{text!r} is not a netCDF-4 (HDF5) file, so it holds no saved fit; it is "
                f"empty, truncated or of another format. {fix}"
            )
        with xr.open_datatree(path, engine="h5netcdf") as opened:
            tree = opened.load()
    except SavedFitError:
        raise
    except Exception as err:  # noqa: BLE001 - any reader failure means an unusable file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SavedFitError(
            f"{text!r} cannot be read as a saved fit ({type(err).__name__}: {reason}); "
            f"the file is truncated or corrupt, e.g. by an interrupted save. {fix}"
        ) from None
    if attr_key not in tree.attrs or data_group not in tree.children:
        raise ModelMismatchError(f"{text!r} was not written by a listening-models model's save().")
    try:
        meta = json.loads(tree.attrs[attr_key])
    except (TypeError, ValueError):
        raise SavedFitError(f"{text!r} has unreadable model metadata. {fix}") from None
    missing = missing_draws(tree, meta)
    if missing is not None:
        raise SavedFitError(
            f"{text!r} holds an incomplete fit: {missing} (an interrupted fit). {fix}"
        )
    return decode_labels(tree), meta
