"""Posterior predictive checks for count data: plots and posterior predictive p-values.

The functions read the ``posterior_predictive`` and ``observed_data`` groups of a fit (an
:class:`xarray.DataTree`), e.g. after
``pymc.sample_posterior_predictive(idata, extend_inferencedata=True)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr
from matplotlib.axes import Axes

from models._deprecation import deprecated_arguments
from models.predict import check_ci_prob

__all__ = ["STATISTICS", "plot_ppc_counts", "plot_ppc_stat", "ppc_pvalue"]


def _prop_zero(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x == 0, axis=axis)


def _dispersion(x: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.var(x, axis=axis, ddof=1) / np.mean(x, axis=axis)


#: Named test statistics for :func:`ppc_pvalue` and :func:`plot_ppc_stat`. Each maps an
#: array and an axis to the statistic over that axis.
STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    "mean": np.mean,
    "median": np.median,
    "sd": lambda x, axis=-1: np.std(x, axis=axis, ddof=1),
    "var": lambda x, axis=-1: np.var(x, axis=axis, ddof=1),
    "max": np.max,
    "min": np.min,
    "prop_zero": _prop_zero,
    "dispersion": _dispersion,
}

Statistic = str | Callable[[np.ndarray], float]


def ppc_pvalue(idata: xr.DataTree, var_name: str, stat: Statistic = "mean") -> float:
    r"""Posterior predictive p-value of a test statistic.

    Parameters
    ----------
    idata : xarray.DataTree
        A fit with ``posterior_predictive`` and ``observed_data`` groups.
    var_name : str
        Observed variable, present in both groups.
    stat : str or callable, default "mean"
        Test statistic :math:`T`: one of ``"mean"``, ``"median"``, ``"sd"``, ``"var"``,
        ``"max"``, ``"min"``, ``"prop_zero"`` (share of zeros) or ``"dispersion"``
        (variance over mean, 1 for Poisson counts), or a function of the 1-D array of
        observations returning a float.

    Returns
    -------
    float
        :math:`p = \Pr\{T(y^{rep}) \ge T(y) \mid y\}`, estimated over all posterior
        predictive draws. Values near 0 or 1 mean the model rarely reproduces the observed
        statistic.

    Raises
    ------
    ValueError
        If a group or the variable is missing, or ``stat`` is an unknown name.

    Notes
    -----
    Following Gelman et al. [1]_ (ch. 6), the statistic is computed over all observations
    (flattened) for the observed data and for each predictive draw. For discrete
    statistics (``max``, ``prop_zero``) ties count as "greater or equal", so the p-value of
    a statistic the model reproduces exactly is 1.

    References
    ----------
    .. [1] Gelman, A., Carlin, J. B., Stern, H. S., Dunson, D. B., Vehtari, A. and
       Rubin, D. B. (2013). *Bayesian Data Analysis*, 3rd ed., ch. 6. CRC Press.

    Examples
    --------
    >>> import numpy as np
    >>> import arviz as az
    >>> from models.diagnostics import ppc_pvalue
    >>> rng = np.random.default_rng(0)
    >>> idata = az.from_dict({
    ...     "posterior_predictive": {"plays": rng.poisson(3.0, size=(2, 100, 50))},
    ...     "observed_data": {"plays": rng.poisson(3.0, size=50)},
    ... })
    >>> p = ppc_pvalue(idata, "plays", "mean")
    >>> 0.05 < p < 0.95
    True
    """
    observed, predicted = _read_groups(idata, var_name)
    func, _ = _resolve_stat(stat)
    t_obs = float(func(observed[None, :])[0])
    t_rep = func(predicted)
    return float(np.mean(t_rep >= t_obs))


def plot_ppc_stat(
    idata: xr.DataTree,
    var_name: str,
    stat: Statistic = "mean",
    *,
    ax: Axes | None = None,
    bins: int = 30,
) -> Axes:
    """Plot the posterior predictive distribution of a test statistic against the observed.

    Parameters
    ----------
    idata : xarray.DataTree
        A fit with ``posterior_predictive`` and ``observed_data`` groups.
    var_name : str
        Observed variable, present in both groups.
    stat : str or callable, default "mean"
        Test statistic; see :func:`ppc_pvalue` for the names accepted.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. When None, a new :class:`matplotlib.figure.Figure` is made without
        pyplot (so the current figure is left alone); show it with ``ax.figure``.
    bins : int, default 30
        Number of histogram bins.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on: a histogram of :math:`T(y^{rep})` over predictive draws, a
        vertical line at :math:`T(y)` and the posterior predictive p-value (as computed by
        :func:`ppc_pvalue`) in the legend.

    Raises
    ------
    ValueError
        If a group or the variable is missing, ``stat`` is an unknown name, or ``bins`` is
        not a positive integer.

    See Also
    --------
    ppc_pvalue : The p-value shown in the legend.

    Examples
    --------
    >>> import numpy as np
    >>> import arviz as az
    >>> import matplotlib.pyplot as plt
    >>> from models.diagnostics import plot_ppc_stat
    >>> rng = np.random.default_rng(0)
    >>> idata = az.from_dict({
    ...     "posterior_predictive": {"plays": rng.poisson(3.0, size=(2, 100, 50))},
    ...     "observed_data": {"plays": rng.poisson(3.0, size=50)},
    ... })
    >>> ax = plot_ppc_stat(idata, "plays", "prop_zero")
    >>> ax.get_xlabel()
    'prop_zero(plays)'
    >>> plt.close(ax.figure)
    """
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(
            f"The 'bins' parameter of plot_ppc_stat must be a positive integer. Got {bins!r} "
            "instead."
        )
    observed, predicted = _read_groups(idata, var_name)
    func, label = _resolve_stat(stat)
    t_obs = float(func(observed[None, :])[0])
    t_rep = np.asarray(func(predicted), dtype=float)
    pvalue = float(np.mean(t_rep >= t_obs))
    ax = _new_axes(ax)
    finite = t_rep[np.isfinite(t_rep)]
    ax.hist(finite, bins=bins, color="C0", alpha=0.6, label=f"predictive {label}")
    ax.axvline(t_obs, color="k", linewidth=2, label=f"observed = {t_obs:.3g}")
    ax.plot([], [], " ", label=f"p = {pvalue:.2f}")
    ax.set_xlabel(f"{label}({var_name})")
    ax.set_ylabel("predictive draws")
    ax.set_title(f"Posterior predictive check: {label}")
    ax.legend(frameon=False)
    return ax


@deprecated_arguments(renamed={"prob": "ci_prob"})
def plot_ppc_counts(
    idata: xr.DataTree,
    var_name: str,
    *,
    ax: Axes | None = None,
    num_draws: int = 50,
    random_seed: int | np.random.Generator | None = None,
    max_count: int | None = None,
    ci_prob: float = 0.89,
) -> Axes:
    """Plot observed count frequencies against their posterior predictive intervals.

    Parameters
    ----------
    idata : xarray.DataTree
        A fit with ``posterior_predictive`` and ``observed_data`` groups.
    var_name : str
        Observed count variable (non-negative integers), present in both groups.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. When None, a new :class:`matplotlib.figure.Figure` is made without
        pyplot (so the current figure is left alone); show it with ``ax.figure``.
    num_draws : int, default 50
        Number of posterior predictive draws, chosen at random without replacement, used
        for the intervals (all draws when there are fewer).
    random_seed : int, numpy.random.Generator or None, optional
        Seed or generator for choosing the draws.
    max_count : int, optional
        Largest count shown on its own; larger counts are pooled into the last bar
        (labelled ``"max_count+"``). Defaults to the 99th percentile of the observed
        counts (at least 1), so that a few huge counts do not stretch the axis.
    ci_prob : float, default 0.89
        Probability mass of the equal-tailed predictive interval. (``prob`` is its
        deprecated name.)

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on: bars of the observed number of observations with each count,
        and for each count the predictive median (dot) and ``ci_prob`` interval (line).

    Raises
    ------
    ValueError
        If a group or the variable is missing, the observed values are not non-negative
        integers, or a parameter is out of range.

    Notes
    -----
    A count model fits when the observed bars sit inside the predictive intervals; bars
    above the intervals at 0 and in the tail are the signature of overdispersion that a
    Poisson model misses (Kleiber and Zeileis [1]_ show the same check as a rootogram).

    References
    ----------
    .. [1] Kleiber, C. and Zeileis, A. (2016). Visualizing count data regressions using
       rootograms. *The American Statistician* 70(3), 296-303.
       https://doi.org/10.1080/00031305.2016.1173590

    Examples
    --------
    >>> import numpy as np
    >>> import arviz as az
    >>> import matplotlib.pyplot as plt
    >>> from models.diagnostics import plot_ppc_counts
    >>> rng = np.random.default_rng(0)
    >>> idata = az.from_dict({
    ...     "posterior_predictive": {"plays": rng.poisson(3.0, size=(2, 100, 50))},
    ...     "observed_data": {"plays": rng.poisson(3.0, size=50)},
    ... })
    >>> ax = plot_ppc_counts(idata, "plays", random_seed=1)
    >>> ax.get_xlabel()
    'plays'
    >>> plt.close(ax.figure)
    """
    if isinstance(num_draws, bool) or not isinstance(num_draws, int | np.integer) or num_draws < 1:
        raise ValueError(
            "The 'num_draws' parameter of plot_ppc_counts must be a positive integer. "
            f"Got {num_draws!r} instead."
        )
    ci_prob = check_ci_prob("plot_ppc_counts", ci_prob)
    if max_count is not None and (
        isinstance(max_count, bool) or not isinstance(max_count, int | np.integer) or max_count < 1
    ):
        raise ValueError(
            "The 'max_count' parameter of plot_ppc_counts must be a positive integer. "
            f"Got {max_count!r} instead."
        )
    observed, predicted = _read_groups(idata, var_name)
    bad = ~((observed >= 0) & (observed == np.round(observed)))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"plot_ppc_counts needs non-negative integer counts in observed_data['{var_name}']; "
            f"{int(bad.sum())} value(s) are not, first at position {first} "
            f"({observed[first].item()!r}). Use plot_ppc_stat for continuous variables."
        )
    rng = np.random.default_rng(random_seed)
    n_total = predicted.shape[0]
    chosen = rng.choice(n_total, size=min(num_draws, n_total), replace=False)
    predicted = predicted[chosen]
    if max_count is None:
        max_count = max(1, int(np.ceil(np.quantile(observed, 0.99))))
    edges = np.arange(max_count + 1)
    obs_freq = _count_frequencies(observed[None, :], max_count)[0]
    rep_freq = _count_frequencies(np.round(predicted), max_count)
    lower, median, upper = np.quantile(rep_freq, [(1 - ci_prob) / 2, 0.5, (1 + ci_prob) / 2],
                                       axis=0)

    ax = _new_axes(ax)
    ax.bar(edges, obs_freq, width=0.8, color="C0", alpha=0.5, label="observed")
    ax.vlines(edges, lower, upper, color="C1", linewidth=2,
              label=f"predictive {ci_prob:.0%} interval")
    ax.plot(edges, median, "o", color="C1", markersize=4, label="predictive median")
    ax.set_xticks(edges)
    labels = [str(k) for k in edges]
    labels[-1] = f"{max_count}+"
    if len(labels) > 20:
        step = int(np.ceil(len(labels) / 20))
        labels = [
            lab if i % step == 0 or i == len(labels) - 1 else "" for i, lab in enumerate(labels)
        ]
    ax.set_xticklabels(labels)
    ax.set_xlabel(var_name)
    ax.set_ylabel("number of observations")
    ax.set_title("Posterior predictive check: count frequencies")
    ax.legend(frameon=False)
    return ax


# --------------------------------------------------------------------------- helpers


def _new_axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    # A Figure not registered with pyplot: no global state is touched and nothing leaks.
    return Figure().add_subplot()


def _count_frequencies(values: np.ndarray, max_count: int) -> np.ndarray:
    """Count, per row, how many values equal 0, 1, ..., with values >= max_count pooled."""
    clipped = np.clip(values, 0, max_count).astype(np.int64)
    out = np.zeros((clipped.shape[0], max_count + 1))
    for k in range(max_count + 1):
        out[:, k] = (clipped == k).sum(axis=1)
    return out


def _resolve_stat(stat: Statistic) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    if callable(stat):
        name = getattr(stat, "__name__", "statistic")

        def rowwise(x: np.ndarray) -> np.ndarray:
            return np.array([float(stat(row)) for row in x])

        return rowwise, name
    if isinstance(stat, str) and stat in STATISTICS:
        func = STATISTICS[stat]
        return (lambda x: np.asarray(func(x, axis=-1), dtype=float)), stat
    raise ValueError(
        f"The 'stat' parameter must be one of {sorted(STATISTICS)} or a callable. "
        f"Got {stat!r} instead."
    )


def _read_groups(idata: xr.DataTree, var_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return observed values (n,) and predictive draws (samples, n), NaN observations dropped."""
    if not isinstance(idata, xr.DataTree):
        raise TypeError(
            f"Expected an xarray.DataTree (ArviZ 1 fit). Got {type(idata).__name__} instead."
        )
    groups = sorted(idata.children)
    for group in ("posterior_predictive", "observed_data"):
        if group not in idata.children:
            hint = (
                " Add it with pymc.sample_posterior_predictive(idata, extend_inferencedata=True)."
                if group == "posterior_predictive"
                else " Fit the model with observed data so that pymc records it."
            )
            raise ValueError(
                f"Posterior predictive checks need a '{group}' group; the fit has {groups}." + hint
            )
        ds = idata[group]
        if var_name not in ds.data_vars:
            raise ValueError(
                f"Variable '{var_name}' not in the '{group}' group. Available: "
                f"{sorted(ds.data_vars)}."
            )
    obs_da = idata["observed_data"][var_name]
    pp_da = idata["posterior_predictive"][var_name]
    sample_dims = [d for d in ("chain", "draw") if d in pp_da.dims]
    obs_dims = [d for d in pp_da.dims if d not in sample_dims]
    if sorted(obs_dims) != sorted(obs_da.dims) or any(
        pp_da.sizes[d] != obs_da.sizes[d] for d in obs_dims
    ):
        raise ValueError(
            f"posterior_predictive['{var_name}'] has observation dims "
            f"{ {d: pp_da.sizes[d] for d in obs_dims} } but observed_data['{var_name}'] has "
            f"{dict(obs_da.sizes)}; they must match."
        )
    observed = np.asarray(obs_da.transpose(*obs_dims).values, dtype=float).ravel()
    predicted = np.asarray(pp_da.transpose(*sample_dims, *obs_dims).values, dtype=float).reshape(
        -1, observed.size
    )
    keep = np.isfinite(observed)
    return observed[keep], predicted[:, keep]
