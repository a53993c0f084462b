"""Plots of churn fits: holdout calibration, retention, the lifetimes-style matrices, checks.

Every function takes ``ax=None`` (a new :class:`matplotlib.figure.Figure`, not
registered with pyplot, when None), draws on the Axes and returns it; none
touches pyplot's global state.

The posterior predictive checks read the ``posterior_predictive`` and
``observed_data`` groups that ``model.sample_posterior_predictive()`` adds to
``model.idata_``; pass the fitted model or that tree.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from models.diagnostics.ppc import plot_ppc_counts
from models.predict import check_ci_prob

__all__ = [
    "plot_expected_activity_matrix",
    "plot_holdout_calibration",
    "plot_ppc_gaps",
    "plot_ppc_repeat_activity",
    "plot_ppc_survival",
    "plot_probability_alive_matrix",
    "plot_retention_curves",
]

_GRID_DRAWS = 500


def _axes(ax: Axes | None, size: tuple[float, float] = (6.0, 4.5)) -> Axes:
    return ax if ax is not None else Figure(figsize=size).add_subplot()


def _tree(fit: Any, owner: str, groups: tuple[str, ...]) -> xr.DataTree:
    """Return the fit's DataTree (a fitted model's ``idata_``), checked to have ``groups``."""
    tree = fit if isinstance(fit, xr.DataTree) else getattr(fit, "idata_", None)
    if tree is None:
        raise TypeError(f"{owner} needs a fitted model or its idata_ (an xarray.DataTree). "
                        f"Got {type(fit).__name__} instead.")
    missing = [g for g in groups if g not in tree.children]
    if missing:
        raise ValueError(f"{owner} needs the group(s) {missing} of the fit (groups: "
                         f"{sorted(tree.children)}); call model.sample_posterior_predictive() "
                         "first.")
    return tree


def _variable(tree: xr.DataTree, group: str, name: str, owner: str) -> xr.DataArray:
    ds = tree[group]
    if name not in ds.data_vars:
        raise ValueError(f"{owner} needs {group}[{name!r}], which this fit does not have "
                         f"(variables: {sorted(ds.data_vars)}); it checks BG/NBD, BG/BB, "
                         "sBG and hazard fits.")
    return ds[name]


def _replicates(da: xr.DataArray) -> np.ndarray:
    """Draws of a predictive variable as ``(chain * draw, ...)``."""
    rest = [d for d in da.dims if d not in ("chain", "draw")]
    arr = da.transpose("chain", "draw", *rest).values
    return arr.reshape(-1, *arr.shape[2:])


# ------------------------------------------------------------------ holdout and retention
def plot_holdout_calibration(
    evaluation: Any, *, ax: Axes | None = None, label: str | None = None,
    color: str | None = None,
) -> Axes:
    """Plot the observed share active in the holdout against the predicted probability.

    Parameters
    ----------
    evaluation : HoldoutEvaluation or pandas.DataFrame
        A :func:`~models.churn.holdout_evaluation` (or ``score_holdout``) result, or
        a :func:`~models.churn.calibration_table`: ``mean_predicted`` and
        ``observed_rate`` per bin, and ``lower``/``upper`` when the table has them.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure (not registered with pyplot) when None. Call
        again with the same ``ax`` to overlay several models.
    label : str, optional
        Legend label (the AUC is appended for a ``HoldoutEvaluation``).
    color : str, optional
        Colour of the points (matplotlib's next colour by default).

    Returns
    -------
    matplotlib.axes.Axes
        The Axes: the diagonal, each bin's observed share (dots), and, when the table
        has them, the range the share falls in with ``ci_prob`` probability if the
        predictions are right (vertical bars around the diagonal). Dots outside
        their bar are bins the model gets wrong.

    Raises
    ------
    ValueError
        If the table lacks ``mean_predicted`` or ``observed_rate``.

    Examples
    --------
    >>> import numpy as np
    >>> from models.churn import calibration_table
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=500)
    >>> table = calibration_table(rng.uniform(size=500) < p, p, n_bins=5)
    >>> ax = plot_holdout_calibration(table, label="model")
    >>> ax.get_xlabel()
    'predicted probability of activity in the holdout'
    """
    table = getattr(evaluation, "calibration", evaluation)
    if not isinstance(table, pd.DataFrame) or not {"mean_predicted", "observed_rate"} <= set(
            table.columns):
        raise ValueError("plot_holdout_calibration needs a HoldoutEvaluation or a calibration "
                         "table with columns 'mean_predicted' and 'observed_rate'. Got "
                         f"{type(table).__name__} instead.")
    ax = _axes(ax, (5.5, 5.0))
    if not ax.lines:
        ax.plot([0, 1], [0, 1], color="0.4", lw=0.8, ls=":", label="perfect calibration")
    if label is not None and hasattr(evaluation, "auc"):
        label = f"{label} (AUC {evaluation.auc:.2f})"
    x = table["mean_predicted"].to_numpy(float)
    y = table["observed_rate"].to_numpy(float)
    line = ax.plot(x, y, "o-", color=color, ms=4, lw=1, label=label)[0]
    if {"lower", "upper"} <= set(table.columns):
        ax.vlines(x, table["lower"], table["upper"], color=line.get_color(), alpha=0.35, lw=4)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("predicted probability of activity in the holdout")
    ax.set_ylabel("observed share active in the holdout")
    ax.set_title("Holdout calibration")
    if label is not None:
        ax.legend(fontsize=8, frameon=False)
    return ax


def plot_retention_curves(
    model: Any, data: pd.DataFrame | None = None, *, horizon: int | None = None,
    ci_prob: float = 0.89, ax: Axes | None = None,
) -> Axes:
    """Plot the survival curve of a cohort model with its band, against the observed cohorts.

    Parameters
    ----------
    model : ShiftedBetaGeoModel
        A fitted model; one curve per segment when it has segments.
    data : pandas.DataFrame, optional
        Cohort table to set beside the curves (``cohort``, ``period``,
        ``n_surviving`` and the segment column; rows with ``complete`` False are
        left out); the training table by default.
    horizon : int, optional
        Last period drawn; the last observed period by default.
    ci_prob : float, default 0.89
        Probability mass of the bands.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure (not registered with pyplot) when None.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes: per segment the posterior mean of :math:`S(t)` (line) with its
        ``ci_prob`` band, and the share of the pooled observed cohorts still there
        (dots: survivors over starting users, of the cohorts observed that long).

    Raises
    ------
    ValueError
        If ``horizon`` is not a positive integer or ``ci_prob`` is not in (0, 1).

    Examples
    --------
    >>> ax = plot_retention_curves(fitted_sbg, horizon=12)  # doctest: +SKIP
    """
    owner = "plot_retention_curves"
    check_ci_prob(owner, ci_prob)
    frame = model.data_ if data is None else data
    if "complete" in frame.columns:
        frame = frame[frame["complete"].fillna(False).to_numpy(dtype=bool)]
    if horizon is None:
        horizon = int(frame["period"].max())
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"The 'horizon' parameter of {owner} must be a positive integer. "
                         f"Got {horizon!r} instead.")
    curve = model.expected_survival_new_user(horizon=list(range(int(horizon) + 1)),
                                             ci_prob=ci_prob)
    seg = model.segment
    groups = ([(None, curve, frame)] if seg is None else
              [(level, curve.xs(level, level=0), frame[frame[seg] == level])
               for level in curve.index.get_level_values(0).unique()])
    ax = _axes(ax, (7.0, 4.5))
    for i, (level, c, obs) in enumerate(groups):
        colour = f"C{i % 10}"
        name = "all users" if level is None else str(level)
        t = c.index.to_numpy()
        ax.fill_between(t, c["ci_lower"], c["ci_upper"], color=colour, alpha=0.25, lw=0)
        ax.plot(t, c["mean"], color=colour, label=f"{name} (model, {ci_prob:.0%} band)")
        keys = [seg, "cohort"] if seg is not None else ["cohort"]
        start = obs[obs["period"] == 0].set_index(keys)["n_surviving"]
        first = obs.set_index(keys).index.map(start).to_numpy(dtype=float)
        pooled = obs.assign(n0=first).groupby("period").agg(s=("n_surviving", "sum"),
                                                            n0=("n0", "sum"))
        pooled = pooled[pooled.index <= horizon]
        ax.plot(pooled.index, pooled["s"] / pooled["n0"], "o", color=colour, ms=4,
                label=f"{name} (observed cohorts)")
    ax.set_xlabel("periods since the cohort started")
    ax.set_ylabel("share of the cohort still subscribed")
    ax.set_ylim(0, 1.02)
    ax.set_title("Retention curves")
    ax.legend(fontsize=7, frameon=False)
    return ax


# --------------------------------------------------------- frequency x recency matrices
def _grid(model: Any, max_frequency: int | None, age: float | None,
          segment: Hashable | None, owner: str
          ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Return the valid (frequency, recency) rows for a user of age ``age``, and the axes."""
    data = model.data_
    age_col = "T" if "T" in data.columns else "n"
    discrete = age_col == "n"  # BG/BB: whole opportunities, frequency <= recency
    if age is None:
        age = float(data[age_col].max())
    if max_frequency is None:
        max_frequency = max(1, int(np.ceil(np.quantile(data["frequency"], 0.99))))
    for name, value in (("max_frequency", max_frequency), ("age", age)):
        if isinstance(value, bool) or not (isinstance(value, int | float | np.number)
                                           and value > 0):
            raise ValueError(f"The '{name}' parameter of {owner} must be a positive number. "
                             f"Got {value!r} instead.")
    frequency = np.arange(int(max_frequency) + 1)
    recency = (np.arange(int(age) + 1, dtype=float) if discrete or age <= 200
               else np.linspace(0.0, age, 201))
    f, r = (a.ravel() for a in np.meshgrid(frequency, recency, indexing="ij"))
    valid = ((f == 0) & (r == 0)) | ((f > 0) & (r > 0))
    if discrete:
        valid &= f <= r
    rows = pd.DataFrame({"frequency": f[valid], "recency": r[valid], age_col: age})
    if discrete:
        rows = rows.astype({"recency": np.int64, age_col: np.int64})
    seg = getattr(model, "segment", None)
    if seg is not None:
        if segment is None:
            raise ValueError(f"{owner} needs segment= for a model with segments ('{seg}').")
        rows[seg] = segment
    return rows, frequency, recency, valid


def _matrix(model: Any, predict: Callable[[pd.DataFrame], pd.DataFrame], title: str,
            colour_label: str, max_frequency: int | None, age: float | None,
            segment: Hashable | None, ax: Axes | None, owner: str, **imshow: Any) -> Axes:
    rows, frequency, recency, valid = _grid(model, max_frequency, age, segment, owner)
    values = np.full(valid.shape, np.nan)
    values[valid] = predict(rows)["mean"].to_numpy(float)
    grid = values.reshape(len(frequency), len(recency))
    ax = _axes(ax, (7.0, 5.0))
    image = ax.imshow(grid, origin="lower", aspect="auto", interpolation="nearest",
                      extent=(recency[0], recency[-1], frequency[0] - 0.5, frequency[-1] + 0.5),
                      **imshow)
    ax.figure.colorbar(image, ax=ax, label=colour_label)
    ax.set_xlabel("recency (time of the last repeat activity)")
    ax.set_ylabel("frequency (repeat active periods)")
    age_col = rows.columns[2]
    ax.set_title(f"{title}\n(a user of age {age_col} = {rows[age_col].iloc[0]:g})")
    return ax


def plot_probability_alive_matrix(
    model: Any, *, max_frequency: int | None = None, age: float | None = None,
    segment: Hashable | None = None, max_draws: int | None = _GRID_DRAWS,
    random_seed: int | np.random.Generator | None = 0, ax: Axes | None = None,
) -> Axes:
    """Plot P(still active) over frequency and recency, as the ``lifetimes`` matrix.

    Parameters
    ----------
    model : BetaGeoModel or BetaGeoBetaBinomModel
        A fitted model.
    max_frequency : int, optional
        Largest frequency shown; the 99th percentile of the training data by default.
    age : float, optional
        The users' age (``T``; ``n`` opportunities for BG/BB); the largest in the
        training data by default.
    segment : label, optional
        The segment drawn, for a model with segments (required there).
    max_draws : int, optional, default 500
        Posterior draws averaged for each cell.
    random_seed : int, numpy.random.Generator or None, default 0
        Seed of that subset.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure (not registered with pyplot) when None.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes: the posterior mean of the model's ``probability_alive`` for every possible
        (frequency, recency) of a user of that age (blank where no user can be: a
        repeat activity needs a recency above 0). Users with many activities long ago
        are the likely churners (bottom right is high, top left low).

    Raises
    ------
    ValueError
        If ``max_frequency`` or ``age`` is not positive, or ``segment`` is missing
        for a model with segments.

    Examples
    --------
    >>> from models.churn import BetaGeoModel
    >>> from models.data import simulate_bgnbd
    >>> users = simulate_bgnbd(300, r=0.5, alpha=4.0, a=0.8, b=2.5, T=20.0, random_seed=1)
    >>> model = BetaGeoModel().fit(users, method="map", random_seed=1)
    >>> ax = plot_probability_alive_matrix(model, max_frequency=8)
    >>> ax.get_ylabel()
    'frequency (repeat active periods)'
    """
    owner = "plot_probability_alive_matrix"
    return _matrix(model, lambda rows: model.probability_alive(
        rows, max_draws=max_draws, random_seed=random_seed), "Probability still active",
        "P(active)", max_frequency, age, segment, ax, owner, vmin=0.0, vmax=1.0,
        cmap="viridis")


def plot_expected_activity_matrix(
    model: Any, *, horizon: float, max_frequency: int | None = None, age: float | None = None,
    segment: Hashable | None = None, max_draws: int | None = _GRID_DRAWS,
    random_seed: int | np.random.Generator | None = 0, ax: Axes | None = None,
) -> Axes:
    """Plot the expected activity in the next ``horizon`` periods over frequency and recency.

    Parameters
    ----------
    model : BetaGeoModel or BetaGeoBetaBinomModel
        A fitted model.
    horizon : float
        Periods ahead (opportunities for BG/BB), as in the model's ``expected_activity``.
    max_frequency, age, segment, max_draws, random_seed, ax
        As in :func:`plot_probability_alive_matrix`.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes: the posterior mean of the model's ``expected_activity`` for every possible
        (frequency, recency) of a user of that age; the best users are frequent and
        recent (top right).

    Raises
    ------
    ValueError
        As :func:`plot_probability_alive_matrix`, or for an invalid ``horizon``.

    Examples
    --------
    >>> from models.churn import BetaGeoModel
    >>> from models.data import simulate_bgnbd
    >>> users = simulate_bgnbd(300, r=0.5, alpha=4.0, a=0.8, b=2.5, T=20.0, random_seed=1)
    >>> model = BetaGeoModel().fit(users, method="map", random_seed=1)
    >>> ax = plot_expected_activity_matrix(model, horizon=10.0, max_frequency=8)
    >>> ax.get_title().splitlines()[0]
    'Expected active periods in the next 10'
    """
    owner = "plot_expected_activity_matrix"
    return _matrix(model, lambda rows: model.expected_activity(
        rows, horizon=horizon, max_draws=max_draws, random_seed=random_seed),
        f"Expected active periods in the next {horizon:g}", "expected active periods",
        max_frequency, age, segment, ax, owner, cmap="magma")


# ------------------------------------------------------------- posterior predictive checks
def plot_ppc_repeat_activity(
    fit: Any, *, max_count: int | None = None, ci_prob: float = 0.89, num_draws: int = 200,
    random_seed: int | np.random.Generator | None = 0, ax: Axes | None = None,
) -> Axes:
    """Plot how many users have 0, 1, 2, ... repeat active periods: observed against predicted.

    The classic check of a BG/NBD (or BG/BB) fit (Fader, Hardie & Lee 2005, fig. 2).

    Parameters
    ----------
    fit : BetaGeoModel, BetaGeoBetaBinomModel or xarray.DataTree
        A fitted model after ``sample_posterior_predictive()``, or its ``idata_``.
    max_count : int, optional
        Frequencies at or above this share the last bar ("7+"); the 99th percentile
        of the observed frequencies by default.
    ci_prob : float, default 0.89
        Probability mass of the predictive intervals.
    num_draws : int, default 200
        Replicates used for the intervals.
    random_seed : int, numpy.random.Generator or None, default 0
        Seed of the choice of replicates.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure (not registered with pyplot) when None.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes: bars of the observed number of users per frequency, and for each
        frequency the predictive median and ``ci_prob`` interval.

    Raises
    ------
    ValueError
        If the fit has no ``posterior_predictive`` group or no ``frequency`` in it.

    Examples
    --------
    >>> ax = plot_ppc_repeat_activity(fitted_bgnbd)  # doctest: +SKIP
    """
    owner = "plot_ppc_repeat_activity"
    tree = _tree(fit, owner, ("posterior_predictive", "observed_data"))
    _variable(tree, "posterior_predictive", "frequency", owner)
    ax = plot_ppc_counts(tree, "frequency", ax=_axes(ax), num_draws=num_draws,
                         random_seed=random_seed, max_count=max_count, ci_prob=ci_prob)
    ax.set_xlabel("repeat active periods (frequency)")
    ax.set_ylabel("users")
    ax.set_title("Repeat activity: observed and posterior predictive")
    return ax


def plot_ppc_gaps(
    fit: Any, *, gap: str = "since_last", max_gap: float | None = None, bins: int = 20,
    ci_prob: float = 0.89, ax: Axes | None = None,
) -> Axes:
    """Plot the distribution of gaps between active periods, observed against predicted.

    Parameters
    ----------
    fit : BetaGeoModel, BetaGeoBetaBinomModel or xarray.DataTree
        A fitted model after ``sample_posterior_predictive()``, or its ``idata_``.
    gap : {"since_last", "between"}, default "since_last"
        ``"since_last"``: each user's silence at the end of observation, age minus
        recency (``T - recency``; ``n - recency`` for BG/BB), the gap a model reads as
        dropout. ``"between"``: each active user's mean gap between active periods,
        ``recency / frequency`` (users with ``frequency > 0``).
    max_gap : float, optional
        Gaps above this share the last bin; the 99th percentile observed by default.
    bins : int, default 20
        Number of bins from 0 to ``max_gap``.
    ci_prob : float, default 0.89
        Probability mass of the predictive intervals.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure (not registered with pyplot) when None.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes: the observed share of users per bin (bars) and the predictive
        median and ``ci_prob`` interval of that share. Observed long silences above
        the predicted ones are users who pause and return, whom the model declares
        dead too early.

    Raises
    ------
    ValueError
        For an unknown ``gap``, bad ``bins``, or a fit without the groups.

    Examples
    --------
    >>> ax = plot_ppc_gaps(fitted_bgnbd, gap="between")  # doctest: +SKIP
    """
    owner = "plot_ppc_gaps"
    if gap not in ("since_last", "between"):
        raise ValueError(f"The 'gap' parameter of {owner} must be one of ['since_last', "
                         f"'between']. Got {gap!r} instead.")
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"The 'bins' parameter of {owner} must be a positive integer. "
                         f"Got {bins!r} instead.")
    check_ci_prob(owner, ci_prob)
    tree = _tree(fit, owner, ("posterior_predictive", "observed_data"))
    obs = tree["observed_data"]
    age_name = "T" if "T" in obs.data_vars else "n"
    age = _variable(tree, "observed_data", age_name, owner).values.astype(float)
    freq_obs = _variable(tree, "observed_data", "frequency", owner).values.astype(float)
    rec_obs = _variable(tree, "observed_data", "recency", owner).values.astype(float)
    freq_rep = _replicates(_variable(tree, "posterior_predictive", "frequency", owner))
    rec_rep = _replicates(_variable(tree, "posterior_predictive", "recency", owner))

    def gaps(f: np.ndarray, r: np.ndarray) -> np.ndarray:
        if gap == "since_last":
            return np.broadcast_to(age, r.shape) - r
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(f > 0, r / f, np.nan)

    observed = gaps(freq_obs, rec_obs)
    replicated = gaps(freq_rep.astype(float), rec_rep.astype(float))
    finite = observed[np.isfinite(observed)]
    if max_gap is None:
        max_gap = float(np.quantile(finite, 0.99)) if finite.size else 1.0
    edges = np.linspace(0.0, max(max_gap, 1e-9), bins + 1)

    def shares(values: np.ndarray) -> np.ndarray:
        values = np.atleast_2d(values)
        idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
        ok = np.isfinite(values)
        counts = np.stack([np.bincount(i[k], minlength=bins) for i, k in zip(idx, ok,
                                                                              strict=True)])
        return counts / np.maximum(ok.sum(axis=1, keepdims=True), 1)

    lo, mid, hi = np.quantile(shares(replicated), [(1 - ci_prob) / 2, 0.5, (1 + ci_prob) / 2],
                              axis=0)
    centres = (edges[:-1] + edges[1:]) / 2
    ax = _axes(ax)
    ax.bar(centres, shares(observed)[0], width=np.diff(edges) * 0.9, color="C0", alpha=0.5,
           label="observed")
    ax.vlines(centres, lo, hi, color="C1", lw=2, label=f"predictive {ci_prob:.0%} interval")
    ax.plot(centres, mid, "o", color="C1", ms=3, label="predictive median")
    what = ("periods since the last activity (age - recency)" if gap == "since_last"
            else "mean gap between active periods (recency / frequency)")
    ax.set_xlabel(f"{what}; the last bin is {max_gap:.3g} or more")
    ax.set_ylabel("share of users")
    ax.set_title("Gaps between active periods: observed and posterior predictive")
    ax.legend(fontsize=8, frameon=False)
    return ax


def _km(events: np.ndarray, at_risk: np.ndarray) -> np.ndarray:
    """Discrete-time Kaplan-Meier survival after each period from events and risk sets."""
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, events / at_risk, 0.0)
    return np.cumprod(1.0 - hazard, axis=-1)


def _survival_curves(tree: xr.DataTree, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """Observed and replicated ``(draws, periods)`` KM survival after each period."""
    pp = tree["posterior_predictive"]
    if "event" in pp.data_vars:  # discrete-time hazard: one row per user and period
        rep = _replicates(_variable(tree, "posterior_predictive", "event", owner))
        obs = _variable(tree, "observed_data", "event", owner)
        tenure = obs["tenure"].values.astype(np.int64)
        onehot = np.eye(int(tenure.max()) + 1)[tenure]  # rows x periods
        at_risk = onehot.sum(axis=0)
        return _km(obs.values @ onehot, at_risk), _km(rep @ onehot, at_risk[None, :])
    # cohorts: users last seen alive in each period; the last observed period is censored
    rep = _replicates(_variable(tree, "posterior_predictive", "last_alive", owner))
    alive = _variable(tree, "observed_data", "n_surviving", owner).values
    observed = _variable(tree, "observed_data", "last_alive", owner).values.astype(float)
    last = np.isfinite(alive).sum(axis=1) - 1
    transition = np.arange(alive.shape[1])[None, :] < last[:, None]  # churn in k is seen
    n0 = alive[:, 0]

    def curve(counts: np.ndarray) -> np.ndarray:
        lost = np.cumsum(counts, axis=-1) - counts
        risk = np.where(transition, n0[:, None] - lost, 0.0).sum(axis=-2)
        return _km(np.where(transition, counts, 0.0).sum(axis=-2), risk)[..., :last.max()]

    return curve(observed), curve(rep.astype(float))


def plot_ppc_survival(
    fit: Any, *, ci_prob: float = 0.89, ax: Axes | None = None,
) -> Axes:
    r"""Plot the censored (Kaplan-Meier) survival of the data against its posterior replicates.

    Parameters
    ----------
    fit : ChurnHazardModel, ShiftedBetaGeoModel or xarray.DataTree
        A fitted model after ``sample_posterior_predictive()``, or its ``idata_``.
    ci_prob : float, default 0.89
        Probability mass of the predictive band.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure (not registered with pyplot) when None.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes: the discrete-time Kaplan-Meier curve of the observed data (steps)
        and the median and ``ci_prob`` band of the same curve computed on each
        replicate. The replicates keep the observed risk sets (who was observed in
        which period), so censoring is handled the same way on both sides.

    Raises
    ------
    ValueError
        If the fit has no replicates of ``event`` (hazard) or ``last_alive`` (cohorts).

    Notes
    -----
    With :math:`d_k` churned out of :math:`n_k` at risk in period :math:`k` (pooled
    over cohorts observed past :math:`k`), :math:`\hat S(k+1) = \prod_{j \le k}
    (1 - d_j / n_j)`.

    Examples
    --------
    >>> ax = plot_ppc_survival(fitted_hazard)  # doctest: +SKIP
    """
    owner = "plot_ppc_survival"
    check_ci_prob(owner, ci_prob)
    tree = _tree(fit, owner, ("posterior_predictive", "observed_data"))
    observed, replicated = _survival_curves(tree, owner)
    lo, mid, hi = np.quantile(replicated, [(1 - ci_prob) / 2, 0.5, (1 + ci_prob) / 2], axis=0)
    x = np.arange(len(observed) + 1)  # survival after each period, from 1 at the start
    ax = _axes(ax)
    ax.fill_between(x, np.r_[1.0, lo], np.r_[1.0, hi], step="post", color="C1", alpha=0.3,
                    lw=0, label=f"replicates, {ci_prob:.0%} band")
    ax.step(x, np.r_[1.0, mid], where="post", color="C1", lw=1, label="replicates, median")
    ax.step(x, np.r_[1.0, observed], where="post", color="k", lw=1.5,
            label="observed (Kaplan-Meier)")
    ax.set_xlabel("periods")
    ax.set_ylabel("share still retained")
    ax.set_ylim(0, 1.02)
    ax.set_title("Censored survival: observed and posterior predictive")
    ax.legend(fontsize=8, frameon=False)
    return ax
