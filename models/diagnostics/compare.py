"""Model comparison by PSIS-LOO, thin over :func:`arviz.loo` and :func:`arviz.compare`.

The PSIS-LOO itself runs vectorised over observations (:mod:`models.diagnostics._psis`,
the result of :func:`arviz.loo` in a fraction of its time).

Both functions take fitted models of the package, whose pointwise log-likelihood
they compute when it is missing (:meth:`~models.base.BayesianModel.compute_log_likelihood`),
or ArviZ fits (:class:`xarray.DataTree`) with a ``log_likelihood`` group, e.g. from
``pymc.sample(..., idata_kwargs={"log_likelihood": True})``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from models import _html
from models.diagnostics import _psis

__all__ = ["LooReport", "compare_models", "loo_report"]

#: Pareto-k above which a PSIS-LOO term is unreliable (Vehtari et al. 2024).
PARETO_K_HIGH = 0.7
#: Pareto-k above which the importance-sampling estimate has infinite mean.
PARETO_K_VERY_HIGH = 1.0


@dataclass(frozen=True)
class LooReport:
    r"""PSIS-LOO estimate of one fit, with its Pareto-k diagnostics.

    Parameters
    ----------
    elpd : float
        Expected log pointwise predictive density (higher is better).
    se : float
        Standard error of ``elpd``.
    p_loo : float
        Effective number of parameters.
    n_samples : int
        Posterior draws used.
    n_data_points : int
        Observations.
    good_k : float
        Sample-size dependent Pareto-k threshold, :math:`\min(1 - 1/\log_{10} S, 0.7)`.
    n_k_above_good : int
        Observations with Pareto k above ``good_k``.
    n_k_above_0_7 : int
        Observations with Pareto k above 0.7.
    n_k_above_1 : int
        Observations with Pareto k above 1.
    pareto_k_max : float
        Largest Pareto k.
    warning : bool
        True when the estimate is unreliable (some k above ``good_k``).
    var_name : str or None
        Log-likelihood variable used.

    Examples
    --------
    >>> import numpy as np
    >>> import arviz as az
    >>> from scipy import stats
    >>> from models.diagnostics import loo_report
    >>> rng = np.random.default_rng(0)
    >>> y = rng.poisson(3.0, size=30)
    >>> lam = rng.gamma(90.0, 1 / 30, size=(2, 200))
    >>> idata = az.from_dict({
    ...     "posterior": {"lam": lam},
    ...     "log_likelihood": {"y": stats.poisson.logpmf(y, lam[..., None])},
    ...     "observed_data": {"y": y},
    ... })
    >>> report = loo_report(idata)
    >>> report.n_data_points, report.warning
    (30, False)
    """

    elpd: float
    se: float
    p_loo: float
    n_samples: int
    n_data_points: int
    good_k: float
    n_k_above_good: int
    n_k_above_0_7: int
    n_k_above_1: int
    pareto_k_max: float
    warning: bool
    var_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-serialisable dict.

        Returns
        -------
        dict
            The fields, with numpy scalars converted to Python numbers.

        Examples
        --------
        >>> from models.diagnostics import LooReport
        >>> LooReport(-50.0, 4.0, 1.2, 400, 30, 0.62, 0, 0, 0, 0.3, False).to_dict()["elpd"]
        -50.0
        """
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in asdict(self).items()}

    def _repr_html_(self) -> str:
        """Notebook display: elpd with its standard error and the Pareto-k counts."""
        verdict = "warn" if self.warning else "pass"
        return _html.card("PSIS-LOO", _html.pairs_html({
            "reliability": _html.markup(_html.verdict_badge(verdict)),
            "elpd": f"{self.elpd:.1f} (se {self.se:.1f})",
            "p_loo": f"{self.p_loo:.1f}",
            "observations / draws": f"{self.n_data_points:,} / {self.n_samples:,}",
            f"Pareto k > {self.good_k:.2f} / > 0.7 / > 1":
                f"{self.n_k_above_good} / {self.n_k_above_0_7} / {self.n_k_above_1}",
            "largest Pareto k": f"{self.pareto_k_max:.2f}",
        }))

    def __str__(self) -> str:
        flag = " (unreliable: high Pareto k)" if self.warning else ""
        return (
            f"PSIS-LOO{flag}: elpd = {self.elpd:.1f} (se {self.se:.1f}), "
            f"p_loo = {self.p_loo:.1f}, {self.n_data_points} observations, "
            f"{self.n_samples} draws; Pareto k > {self.good_k:.2f}: {self.n_k_above_good}, "
            f"> 0.7: {self.n_k_above_0_7}, > 1: {self.n_k_above_1}"
        )


def loo_report(idata: xr.DataTree | Any, var_name: str | None = None) -> LooReport:
    r"""Estimate out-of-sample predictive accuracy by PSIS-LOO and summarise its reliability.

    Parameters
    ----------
    idata : xarray.DataTree or fitted model
        A fit with ``posterior`` and ``log_likelihood`` groups, or a fitted model of
        the package (its ``log_likelihood`` group is computed when missing).
    var_name : str, optional
        Log-likelihood variable to use; needed when the fit has more than one.

    Returns
    -------
    LooReport
        elpd, its standard error, p_loo and Pareto-k counts.

    Raises
    ------
    ValueError
        If the ``log_likelihood`` group is missing or empty, or ``var_name`` is not in it,
        or it has several variables and ``var_name`` is None.
    TypeError
        If ``idata`` is neither a DataTree nor a model of the package.

    Notes
    -----
    .. math:: \widehat{\mathrm{elpd}}_{loo} = \sum_{i=1}^n \log
              \frac{\sum_s w_i^{(s)} p(y_i \mid \theta^{(s)})}{\sum_s w_i^{(s)}}

    with Pareto-smoothed importance weights :math:`w_i^{(s)}` [1]_ [2]_. The fitted
    generalised Pareto shape :math:`\hat{k}_i` of each observation's weights tells how far
    the estimate can be trusted: above 0.7 (or the smaller sample-size dependent
    ``good_k``) the term is unreliable; refit without the observation, use k-fold
    cross-validation or moment matching.

    References
    ----------
    .. [1] Vehtari, A., Gelman, A. and Gabry, J. (2017). Practical Bayesian model evaluation
       using leave-one-out cross-validation and WAIC. *Statistics and Computing* 27(5),
       1413-1432. https://doi.org/10.1007/s11222-016-9696-4
    .. [2] Vehtari, A., Simpson, D., Gelman, A., Yao, Y. and Gabry, J. (2024). Pareto
       smoothed importance sampling. *Journal of Machine Learning Research* 25(72), 1-58.

    Examples
    --------
    >>> import numpy as np
    >>> import arviz as az
    >>> from scipy import stats
    >>> from models.diagnostics import loo_report
    >>> rng = np.random.default_rng(0)
    >>> y = rng.poisson(3.0, size=30)
    >>> lam = rng.gamma(90.0, 1 / 30, size=(2, 200))
    >>> idata = az.from_dict({
    ...     "posterior": {"lam": lam},
    ...     "log_likelihood": {"y": stats.poisson.logpmf(y, lam[..., None])},
    ... })
    >>> round(loo_report(idata).p_loo, 1)
    1.1
    """
    idata = _as_tree(idata, "the fit")
    name = _check_log_likelihood(idata, var_name, label="the fit")
    return _report_from_elpd(_loo(idata, name), name)


def compare_models(
    fits: Mapping[str, xr.DataTree | Any] | Sequence[Any],
    *,
    var_name: str | None = None,
    method: str = "stacking",
) -> pd.DataFrame:
    """Rank fits by PSIS-LOO expected log predictive density, with Pareto-k diagnostics.

    Parameters
    ----------
    fits : dict of str to (xarray.DataTree or fitted model), or list of fitted models
        Two or more fits of the same observations, keyed by model name (a list of
        models is keyed by class name, numbered when a class repeats). A DataTree
        needs a ``log_likelihood`` group; a fitted model of the package gets one from
        :meth:`~models.base.BayesianModel.compute_log_likelihood` when it has none.
    var_name : str, optional
        Log-likelihood variable to compare on; needed when the fits have more than one.
    method : {"stacking", "BB-pseudo-BMA", "pseudo-BMA"}, default "stacking"
        How the model weights are computed (see :func:`arviz.compare`).

    Returns
    -------
    pandas.DataFrame
        Indexed by model name, best first. The columns of :func:`arviz.compare`
        (``rank``, ``elpd``, ``p``, ``elpd_diff``, ``weight``, ``se``, ``dse``, ``warning``,
        ...), unrounded, plus ``pareto_k_max``, ``n_pareto_k_gt_0_7`` and
        ``n_pareto_k_gt_1``: the largest Pareto k and the number of observations with k
        above 0.7 and above 1.

    Raises
    ------
    ValueError
        If fewer than two fits are given, a list holds DataTree fits (which have no
        name; key them in a dict), a fit has no ``log_likelihood`` group (the
        message says how to get one), ``var_name`` is missing or ambiguous, or the fits
        do not have the same observation units (e.g. users in one, user-days in the
        other).
    TypeError
        If a fit is neither an :class:`xarray.DataTree` nor a model of the package.

    Notes
    -----
    A difference in ``elpd`` is meaningful when it is several times its standard error
    ``dse`` [1]_. Observations with Pareto k above 0.7 make a model's elpd unreliable; a
    model with many of them may look better (or worse) than it is.

    References
    ----------
    .. [1] Vehtari, A., Gelman, A. and Gabry, J. (2017). Practical Bayesian model evaluation
       using leave-one-out cross-validation and WAIC. *Statistics and Computing* 27(5),
       1413-1432. https://doi.org/10.1007/s11222-016-9696-4
    .. [2] Yao, Y., Vehtari, A., Simpson, D. and Gelman, A. (2018). Using stacking to
       average Bayesian predictive distributions. *Bayesian Analysis* 13(3), 917-1007.

    Examples
    --------
    Overdispersed counts are predicted better by a negative binomial than by a Poisson
    (here both "posteriors" are drawn around the true values instead of sampled):

    >>> import numpy as np
    >>> import arviz as az
    >>> from scipy import stats
    >>> from models.diagnostics import compare_models
    >>> rng = np.random.default_rng(0)
    >>> y = rng.negative_binomial(2, 2 / (2 + 5.0), size=100)
    >>> mu = rng.normal(y.mean(), 0.3, size=(2, 200))
    >>> def fit(loglik):
    ...     return az.from_dict({"posterior": {"mu": mu}, "log_likelihood": {"y": loglik}})
    >>> fits = {
    ...     "poisson": fit(stats.poisson.logpmf(y, mu[..., None])),
    ...     "negbinom": fit(stats.nbinom.logpmf(y, 2, 2 / (2 + mu[..., None]))),
    ... }
    >>> compare_models(fits).index[0]
    'negbinom'
    """
    if isinstance(fits, Sequence) and not isinstance(fits, str):
        if any(isinstance(fit, xr.DataTree) for fit in fits):
            raise ValueError(
                "compare_models needs a dict of at least two fits keyed by model name (or a "
                "list of fitted models, keyed by class name). Got list instead, holding "
                "DataTree fits, which have no name: pass them as a dict keyed by model name."
            )
        fits = _label_models(fits)
    if not isinstance(fits, Mapping) or len(fits) < 2:
        got = f"{len(fits)} fit(s)" if isinstance(fits, Mapping) else type(fits).__name__
        raise ValueError(
            "compare_models needs a dict of at least two fits keyed by model name (or a "
            f"list of fitted models). Got {got} instead."
        )
    trees = {label: _as_tree(fit, f"fit '{label}'") for label, fit in fits.items()}
    names: dict[str, str] = {}
    for label, idata in trees.items():
        names[label] = _check_log_likelihood(idata, var_name, label=f"fit '{label}'")
    _check_same_units(trees, names)
    elpds = {label: _loo(idata, names[label]) for label, idata in trees.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table = az.compare(elpds, method=method, round_to="none")
    for label, elpd in elpds.items():
        k = np.asarray(elpd.pareto_k.values, dtype=float).ravel()
        table.loc[label, "pareto_k_max"] = float(np.nanmax(k)) if k.size else math.nan
        table.loc[label, "n_pareto_k_gt_0_7"] = int(np.sum(k > PARETO_K_HIGH))
        table.loc[label, "n_pareto_k_gt_1"] = int(np.sum(k > PARETO_K_VERY_HIGH))
    return table.astype({"n_pareto_k_gt_0_7": int, "n_pareto_k_gt_1": int})


# --------------------------------------------------------------------------- helpers


def _label_models(models: Sequence[Any]) -> dict[str, Any]:
    """Key a list of fitted models by class name, numbering repeated classes."""
    names = [type(m).__name__ for m in models]
    out = {}
    for i, (name, model) in enumerate(zip(names, models, strict=True)):
        out[name if names.count(name) == 1 else f"{name} [{i}]"] = model
    return out


def _as_tree(fit: Any, label: str) -> xr.DataTree:
    """Return the DataTree of a fit: the tree itself, or a fitted model's ``idata_``.

    A model without a pointwise log-likelihood gets one from its
    ``compute_log_likelihood`` (an unfitted model raises ``NotFittedError`` there).
    """
    if isinstance(fit, xr.DataTree):
        return fit
    compute = getattr(fit, "compute_log_likelihood", None)
    if compute is None:
        raise TypeError(
            f"Expected an xarray.DataTree (ArviZ 1 fit) or a fitted listening-models model "
            f"for {label}. Got {type(fit).__name__} instead."
        )
    tree = getattr(fit, "idata_", None)
    if tree is None or not _has_log_likelihood(tree):
        compute()
    return fit.idata_


def _has_log_likelihood(idata: xr.DataTree) -> bool:
    return "log_likelihood" in idata.children and bool(idata["log_likelihood"].data_vars)


def _check_same_units(trees: Mapping[str, xr.DataTree], names: Mapping[str, str]) -> None:
    """Raise unless every fit's log-likelihood has the same observation dims and sizes."""
    shapes = {}
    for label, idata in trees.items():
        da = idata["log_likelihood"][names[label]]
        shapes[label] = {d: int(da.sizes[d]) for d in da.dims if d not in ("chain", "draw")}
    first, *rest = shapes.items()
    for label, shape in rest:
        if sorted(shape.values()) != sorted(first[1].values()):
            raise ValueError(
                "compare_models needs fits of the same observations, one log-likelihood "
                f"value per unit in each: fit '{first[0]}' has {first[1]} and fit '{label}' "
                f"has {shape}."
            )


def _check_log_likelihood(idata: xr.DataTree, var_name: str | None, *, label: str) -> str:
    if not isinstance(idata, xr.DataTree):
        raise TypeError(
            f"Expected an xarray.DataTree (ArviZ 1 fit) for {label}. Got "
            f"{type(idata).__name__} instead."
        )
    if not _has_log_likelihood(idata):
        state = ("an empty 'log_likelihood' group" if "log_likelihood" in idata.children
                 else "no 'log_likelihood' group")
        raise ValueError(
            f"PSIS-LOO needs the pointwise log-likelihood, but {label} has {state} (groups: "
            f"{sorted(idata.children)}). For a model of this package call "
            "model.compute_log_likelihood() (or fit(..., log_likelihood=True)); for a PyMC "
            "model sample with pm.sample(..., idata_kwargs={'log_likelihood': True}) or add "
            "it with pm.compute_log_likelihood(idata, model=model)."
        )
    available = sorted(idata["log_likelihood"].data_vars)
    if var_name is None:
        if len(available) > 1:
            raise ValueError(
                f"{label} has several log-likelihood variables {available}; choose one with "
                "var_name."
            )
        return available[0]
    if var_name not in available:
        raise ValueError(
            f"var_name '{var_name}' not in the log_likelihood group of {label}. "
            f"Available: {available}."
        )
    return var_name


def _loo(idata: xr.DataTree, var_name: str) -> Any:
    log_lik = idata["log_likelihood"][var_name]
    if "posterior" in idata.children and "draw" in log_lik.dims:
        posterior = idata["posterior"].to_dataset()
        if posterior.sizes.get("draw") != log_lik.sizes["draw"]:
            # a thinned log-likelihood: the relative efficiency of those draws only
            idata = xr.DataTree.from_dict({
                "posterior": posterior.sel(draw=log_lik["draw"].values),
                "log_likelihood": log_lik.to_dataset(name=var_name)})
    with warnings.catch_warnings():
        # High Pareto k is reported in the result, not as a stray warning.
        warnings.simplefilter("ignore", UserWarning)
        # az.loo(idata, pointwise=True, var_name=var_name), vectorised over observations
        # (the cases it does not cover go to az.loo or ArviZ's per-observation code).
        return _psis.loo(idata, var_name)


def _report_from_elpd(elpd: Any, var_name: str | None) -> LooReport:
    k = np.asarray(elpd.pareto_k.values, dtype=float).ravel()
    good_k = float(elpd.good_k)
    return LooReport(
        elpd=float(elpd.elpd),
        se=float(elpd.se),
        p_loo=float(elpd.p),
        n_samples=int(elpd.n_samples),
        n_data_points=int(elpd.n_data_points),
        good_k=good_k,
        n_k_above_good=int(np.sum(k > good_k)),
        n_k_above_0_7=int(np.sum(k > PARETO_K_HIGH)),
        n_k_above_1=int(np.sum(k > PARETO_K_VERY_HIGH)),
        pareto_k_max=float(np.nanmax(k)) if k.size else math.nan,
        warning=bool(np.any(k > good_k)),
        var_name=var_name,
    )
