"""Score every user of a fitted model partition by partition, on pandas or Dask.

A fitted model's per-row predictions (``probability_alive``, ``expected_plays``,
...) take a frame of rows and return one row of posterior mean and interval per
input row. :func:`score_partitions` applies such a method to each partition of
a Dask DataFrame with ``map_partitions``, so the rows are never collected on one
machine. Workers receive a *thinned* copy of the model: the posterior cut to
``max_draws`` draws and without the PyMC graph, sent once per worker as one
task of the graph. Inside a partition the method works in blocks of rows (see
:func:`models.predict.predict_in_batches`), so the memory of a worker is bounded
by the partition size times the number of draws, plus the thinned model.

Dask is optional: nothing here imports it unless a Dask DataFrame is passed or
a lazy result is asked for.
"""

from __future__ import annotations

import copy
import inspect
import uuid
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from models.base import BayesianModel
from models.data._lazy import import_dask, is_dask

__all__ = ["score_partitions", "thin_posterior"]

_SAMPLE = "__sample__"
_RESERVED = ("return_draws",)


def _check_max_draws(max_draws: Any) -> None:
    ok = max_draws is None or (isinstance(max_draws, int | np.integer)
                               and not isinstance(max_draws, bool) and max_draws > 0)
    if not ok:
        raise ValueError("The 'max_draws' parameter of score_partitions must be a positive "
                         f"integer or None. Got {max_draws!r} instead.")


def thin_posterior(
    model: BayesianModel,
    *,
    max_draws: int | None = 1000,
    random_seed: int | np.random.Generator | None = None,
) -> BayesianModel:
    """Return a light copy of a fitted model for scoring: a thinned posterior, no PyMC graph.

    The copy keeps the configuration, the training data (``data_``, which some
    models need to encode ids and covariates) and the fit report; its ``idata_``
    holds only the posterior group, cut to at most ``max_draws`` draws as one
    chain, and it carries no PyMC graph (``model_`` is rebuilt from ``data_``
    only if something uses it). Its prediction methods give the same values
    as the original's called with the same ``max_draws`` and integer
    ``random_seed`` (the same draws are kept, in the same order, as
    :func:`models.predict.posterior_arrays` keeps).

    Parameters
    ----------
    model : models.base.BayesianModel
        A fitted model.
    max_draws : int or None, default 1000
        Keep a random subset of at most this many draws (all of them if None or
        if the fit has fewer).
    random_seed : int, numpy.random.Generator or None
        Seed of that subset.

    Returns
    -------
    models.base.BayesianModel
        The light copy (same class). Methods that need the PyMC graph
        (``sample_posterior_predictive``) or other groups of the fit do not work
        on it.

    Raises
    ------
    TypeError
        If ``model`` is not a listening-models model.
    models.exceptions.NotFittedError
        If ``model`` is not fitted.
    ValueError
        If ``max_draws`` is not a positive integer or None.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from models.churn import BetaGeoModel
    >>> model = BetaGeoModel()
    >>> model.idata_ = xr.DataTree.from_dict({"posterior": xr.Dataset(
    ...     {p: (("chain", "draw"), np.full((2, 50), v)) for p, v in
    ...      [("r", 0.5), ("alpha", 4.0), ("a", 0.8), ("b", 2.5)]})})
    >>> light = thin_posterior(model, max_draws=10, random_seed=0)
    >>> dict(light.idata_["posterior"].sizes)
    {'chain': 1, 'draw': 10}
    """
    if not isinstance(model, BayesianModel):
        raise TypeError("The 'model' parameter of thin_posterior must be a fitted "
                        f"listening-models model. Got {type(model).__name__} instead.")
    model._require_fitted("thin_posterior()")
    _check_max_draws(max_draws)
    posterior = model.idata_["posterior"].to_dataset()
    stacked = posterior.stack({_SAMPLE: ("chain", "draw")})
    n = stacked.sizes[_SAMPLE]
    keep = np.arange(n)
    if max_draws is not None and n > max_draws:
        # the same subset as models.predict.posterior_arrays(max_draws, random_seed)
        keep = np.sort(np.random.default_rng(random_seed).choice(n, max_draws, replace=False))
    thinned = (stacked.isel({_SAMPLE: keep})
               .drop_vars([_SAMPLE, "chain", "draw"])
               .rename({_SAMPLE: "draw"})
               .assign_coords(draw=np.arange(len(keep)))
               .expand_dims(chain=[0]))
    thinned = thinned.transpose("chain", "draw", ...)
    thinned.attrs = dict(posterior.attrs)
    light = copy.copy(model)
    light.idata_ = xr.DataTree.from_dict({"posterior": thinned})
    light.idata_.attrs = dict(model.idata_.attrs)
    light.__dict__.pop("model_", None)
    return light


def _score_partition(part: pd.DataFrame, model: BayesianModel, method: str,
                     kwargs: dict[str, Any], meta: pd.DataFrame, same_index: bool) -> pd.DataFrame:
    """Score one partition; an empty partition gives an empty frame shaped like ``meta``."""
    if len(part) == 0:
        return meta.iloc[:0].set_axis(part.index[:0], axis=0) if same_index else meta.iloc[:0]
    out = getattr(model, method)(part, **kwargs)
    if not isinstance(out, pd.DataFrame):
        raise TypeError(f"{type(model).__name__}.{method} returned {type(out).__name__}, not "
                        "a DataFrame of one row per input row; score_partitions needs that.")
    if same_index and not out.index.equals(part.index):
        raise RuntimeError(
            f"{type(model).__name__}.{method} changed the index of a partition (first input "
            f"label {part.index[0]!r}, first output label {out.index[0]!r}); pass "
            "keep_divisions=False.")
    return out


def score_partitions(
    model: BayesianModel,
    data: Any,
    method: str,
    *,
    max_draws: int | None = 1000,
    random_seed: int | np.random.Generator | None = None,
    meta: pd.DataFrame | None = None,
    keep_divisions: bool | None = None,
    **kwargs: Any,
) -> Any:
    """Apply a fitted model's per-row prediction method to every partition of a table.

    Parameters
    ----------
    model : models.base.BayesianModel
        A fitted model whose ``method`` takes a DataFrame of rows as its first
        argument and returns one row per input row (``mean``, ``sd``,
        ``ci_lower``, ``ci_upper``, possibly with id columns), e.g.
        ``BetaGeoModel.probability_alive``, ``expected_activity``,
        ``probability_active``,
        ``BetaGeoBetaBinomModel.probability_alive`` / ``expected_activity``,
        ``ChurnHazardModel.probability_churn`` / ``expected_survival``,
        ``PlayCountModel.expected_plays``, ``SkipModel.probability_skip``,
        ``UserArtistModel.expected_plays``.
    data : pandas.DataFrame or dask.dataframe.DataFrame
        The rows to score, in the form the method takes (e.g. an activity
        summary for the BG/NBD model).
    method : str
        Name of the prediction method.
    max_draws : int or None, default 1000
        Posterior draws used (a random subset, the same for every partition);
        None uses them all. Memory per block is rows x draws.
    random_seed : int, numpy.random.Generator or None
        Seed of that subset; with an integer the result equals
        ``getattr(model, method)(data, max_draws=max_draws, random_seed=seed)``
        for methods that take those arguments.
    meta : pandas.DataFrame, optional
        Empty frame with the output's columns and dtypes (Dask input only). By
        default it is found by scoring the first training row with the thinned
        model.
    keep_divisions : bool, optional
        Whether the output keeps the input's index, and so its divisions (Dask
        input only). By default, when the method's output on the training row
        has the input's index name; each partition is then checked.
    **kwargs
        Further keyword arguments of the method (``horizon=30.0``,
        ``ci_prob=0.9``, ...).

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        The method's output for every row: computed for pandas input, lazy (one
        output partition per input partition) for Dask input.

    Raises
    ------
    TypeError
        If ``data`` is neither a pandas nor a Dask DataFrame, or the method does
        not return a DataFrame.
    ValueError
        If ``method`` is not a prediction method of the model, or ``kwargs``
        holds ``return_draws``, or ``max_draws`` is invalid.
    models.exceptions.NotFittedError
        If the model is not fitted.

    Notes
    -----
    The model is thinned once (:func:`thin_posterior`) and enters the graph as
    one task, so each worker receives it once, not once per partition. When the
    method itself takes ``max_draws``, it is called with ``max_draws=None`` so
    every partition uses exactly the thinned draws. To run on a cluster, create
    a ``distributed.Client`` (for example ``Client("tcp://scheduler:8786")``)
    before calling ``.compute()`` on the result; nothing here needs one.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from models.churn import BetaGeoModel
    >>> users = pd.DataFrame({"frequency": [0, 3], "recency": [0.0, 20.0], "T": [30.0, 30.0]},
    ...                      index=pd.Index(["a", "b"], name="user_id"))
    >>> model = BetaGeoModel()
    >>> model.data_ = users
    >>> model.idata_ = xr.DataTree.from_dict({"posterior": xr.Dataset(
    ...     {p: (("chain", "draw"), np.full((1, 20), v)) for p, v in
    ...      [("r", 0.5), ("alpha", 4.0), ("a", 0.8), ("b", 2.5)]})})
    >>> score_partitions(model, users, "probability_alive", max_draws=10)["mean"].round(3)
    user_id
    a    1.000
    b    0.624
    Name: mean, dtype: float64
    """
    lazy = is_dask(data)
    if not lazy and not isinstance(data, pd.DataFrame):
        raise TypeError("The 'data' parameter of score_partitions must be a pandas or Dask "
                        f"DataFrame. Got {type(data).__name__} instead.")
    if not isinstance(model, BayesianModel):
        raise TypeError("The 'model' parameter of score_partitions must be a fitted "
                        f"listening-models model. Got {type(model).__name__} instead.")
    func = getattr(type(model), method, None) if isinstance(method, str) else None
    params = inspect.signature(func).parameters if callable(func) else {}
    if not callable(func) or method.startswith("_") or "data" not in params:
        options = sorted(name for name in dir(type(model))
                         if name.startswith(("expected_", "probability_"))
                         and "data" in inspect.signature(getattr(type(model), name)).parameters)
        raise ValueError(f"The 'method' parameter of score_partitions must name a prediction "
                         f"method of {type(model).__name__} that takes rows; one of {options}. "
                         f"Got {method!r} instead.")
    bad = [k for k in _RESERVED if k in kwargs]
    if bad:
        raise ValueError(f"score_partitions returns summaries, not draws; remove "
                         f"{bad} from the keyword arguments.")
    _check_max_draws(max_draws)
    light = thin_posterior(model, max_draws=max_draws, random_seed=random_seed)
    call = dict(kwargs)
    if "max_draws" in params:
        call["max_draws"] = None  # the light model holds exactly the draws to use
    if not lazy:
        return getattr(light, method)(data, **call)

    import dask

    import_dask("score_partitions")
    if meta is None or keep_divisions is None:
        sample = getattr(light, method)(light.data_.iloc[:1], **call)
        if meta is None:
            meta = sample.iloc[:0]
        if keep_divisions is None:
            keep_divisions = sample.index.name == data._meta.index.name
    if keep_divisions:
        meta = meta.iloc[:0].set_axis(data._meta.index, axis=0)
    shared = dask.delayed(light, name=f"score-model-{uuid.uuid4().hex}", pure=False)
    return data.map_partitions(
        _score_partition, shared, method, call, meta, bool(keep_divisions), meta=meta,
        clear_divisions=not keep_divisions, token=f"score-{method}",
    )
