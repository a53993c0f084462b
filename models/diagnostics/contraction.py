r"""Posterior contraction: how much the data narrowed each parameter's prior.

A parameter whose posterior is as wide as its prior, and sits where the prior does, was
not informed by the data: its summary restates the prior, however well the sampler
converged. :func:`posterior_contraction` (how much narrower) and :func:`posterior_shift`
(how far it moved) measure this from prior draws and posterior draws;
:func:`models.diagnostics.check_fit` uses them to warn about such parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

__all__ = ["posterior_contraction", "posterior_shift"]

#: Draws of the prior that ``BayesianModel.fit`` stores for this check.
PRIOR_DRAWS = 2000


def _spread(values: np.ndarray) -> np.ndarray:
    """Interquartile range over axis 0 (the draws)."""
    q75, q25 = np.nanpercentile(values, [75, 25], axis=0)
    return q75 - q25


def _flat_draws(da: xr.DataArray) -> np.ndarray:
    """Draws of a variable as a (draws, elements) float array."""
    sample_dims = [d for d in ("chain", "draw") if d in da.dims]
    other = [d for d in da.dims if d not in sample_dims]
    values = np.asarray(da.transpose(*sample_dims, *other).values, dtype=float)
    n = int(np.prod([da.sizes[d] for d in sample_dims], dtype=int)) if sample_dims else 1
    return values.reshape(n, -1)


def _pairs(
    posterior: xr.Dataset, prior: xr.Dataset, var_names: Sequence[str] | None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, posterior draws, prior draws) of each comparable variable."""
    names = list(var_names) if var_names is not None else list(posterior.data_vars)
    out = []
    for name in names:
        if name not in posterior.data_vars or name not in prior.data_vars:
            continue
        post, pri = posterior[name], prior[name]
        if not (np.issubdtype(post.dtype, np.number) and np.issubdtype(pri.dtype, np.number)):
            continue
        post_values, prior_values = _flat_draws(post), _flat_draws(pri)
        if post_values.shape[1] == prior_values.shape[1]:
            out.append((name, post_values, prior_values))
    return out


def _largest(values: np.ndarray, prior_spread: np.ndarray) -> float | None:
    values = values[np.isfinite(values) & (prior_spread > 0)]
    return float(values.max()) if values.size else None


def posterior_contraction(
    posterior: xr.Dataset, prior: xr.Dataset, var_names: Sequence[str] | None = None
) -> dict[str, float]:
    r"""Posterior contraction of each variable, largest over its elements.

    Parameters
    ----------
    posterior : xarray.Dataset
        Posterior draws (dims ``chain``, ``draw`` and the variable's own).
    prior : xarray.Dataset
        Draws from the prior of the same variables (dims ``chain``, ``draw``, ...).
    var_names : sequence of str, optional
        Variables to measure; by default those in both datasets. Names missing from
        either dataset, non-numeric variables and variables whose prior draws are all
        equal are skipped.

    Returns
    -------
    dict of str to float
        :math:`c = 1 - (\mathrm{IQR}_\text{post} / \mathrm{IQR}_\text{prior})^2` per
        variable, the largest over its elements (a vector counts as informed when any
        element is). About 1: the data pinned the parameter down; about 0: the
        posterior is as wide as the prior; below 0: wider than the prior.

    Notes
    -----
    Posterior contraction is :math:`1 - \mathrm{Var}_\text{post} / \mathrm{Var}_\text{prior}`
    ([1]_, [2]_). The interquartile range
    replaces the standard deviation here because it exists for heavy-tailed priors
    (a Half-Cauchy has no variance) and is stable with a few thousand draws.

    References
    ----------
    .. [1] Betancourt, M. (2018). Calibrating model-based inferences and decisions.
       https://arxiv.org/abs/1803.08393
    .. [2] Schad, D. J., Betancourt, M. and Vasishth, S. (2021). Toward a principled
       Bayesian workflow in cognitive science. *Psychological Methods* 26(1), 103-126.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> prior = xr.Dataset({"mu": (("chain", "draw"), rng.normal(0, 1, (1, 4000))),
    ...                     "tau": (("chain", "draw"), rng.normal(0, 1, (1, 4000)))})
    >>> post = xr.Dataset({"mu": (("chain", "draw"), rng.normal(0.3, 0.1, (2, 2000))),
    ...                    "tau": (("chain", "draw"), rng.normal(0, 1, (2, 2000)))})
    >>> c = posterior_contraction(post, prior)
    >>> round(c["mu"], 2), abs(c["tau"]) < 0.1
    (0.99, True)
    """
    out: dict[str, float] = {}
    for name, post_values, prior_values in _pairs(posterior, prior, var_names):
        with np.errstate(all="ignore"):
            prior_spread = _spread(prior_values)
            contraction = 1.0 - (_spread(post_values) / prior_spread) ** 2
        value = _largest(contraction, prior_spread)
        if value is not None:
            out[name] = value
    return out


def posterior_shift(
    posterior: xr.Dataset, prior: xr.Dataset, var_names: Sequence[str] | None = None
) -> dict[str, float]:
    r"""How far the posterior median moved from the prior median, in prior IQRs.

    Parameters
    ----------
    posterior, prior, var_names
        As for :func:`posterior_contraction`.

    Returns
    -------
    dict of str to float
        :math:`|\mathrm{median}_\text{post} - \mathrm{median}_\text{prior}| /
        \mathrm{IQR}_\text{prior}` per variable, the largest over its elements. A
        posterior that is no narrower than the prior but moved (the data pushed the
        parameter into the prior's tail) was informed by the data.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(1)
    >>> prior = xr.Dataset({"mu": (("chain", "draw"), rng.normal(0, 1, (1, 4000)))})
    >>> post = xr.Dataset({"mu": (("chain", "draw"), rng.normal(3, 1, (2, 2000)))})
    >>> round(posterior_shift(post, prior)["mu"], 1)
    2.2
    """
    out: dict[str, float] = {}
    for name, post_values, prior_values in _pairs(posterior, prior, var_names):
        with np.errstate(all="ignore"):
            prior_spread = _spread(prior_values)
            shift = np.abs(np.nanmedian(post_values, axis=0)
                           - np.nanmedian(prior_values, axis=0)) / prior_spread
        value = _largest(shift, prior_spread)
        if value is not None:
            out[name] = value
    return out
