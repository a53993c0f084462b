"""Hierarchical discrete-time churn hazard model on person-period data."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from models._pointwise import by_blocks, draw_arrays, sample_array, unit_array
from models.base import BayesianModel
from models.churn._pointwise import bernoulli_logit_loglik
from models.churn.features import (
    DAYS_SINCE_LAST_PLAY,
    EVENT,
    LOG_ARTISTS_PREV,
    LOG_PLAYS_PREV,
    SKIP_RATE_PREV,
    TENURE,
)
from models.data.schema import USER_ID
from models.exceptions import DataQualityWarning, DataValidationError, Problem
from models.predict import (
    posterior_arrays,
    predict_in_batches,
    prediction_method,
    sample_shape,
    summarize_draws,
)
from models.priors import Prior

__all__ = ["ChurnHazardModel"]

DEFAULT_COVARIATES = (LOG_PLAYS_PREV, SKIP_RATE_PREV, LOG_ARTISTS_PREV, DAYS_SINCE_LAST_PLAY)
_BASELINES = ("rw", "independent")


def _rows_problem(column: str, rule: str, mask: np.ndarray, values: pd.Series, fix: str) -> Problem:
    rows = np.flatnonzero(mask)[:5]
    return Problem(column, rule, n_rows=int(mask.sum()), rows=tuple(int(r) for r in rows),
                   examples=tuple(values.iloc[rows].tolist()), fix=fix)


def _softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))``, i.e. ``-log(1 - sigmoid(x))``, without overflow."""
    return np.logaddexp(0.0, x)


def _check_person_periods(
    data: Any, covs: list[str], groups: list[str], *, with_event: bool, what: str, owner: str
) -> pd.DataFrame:
    """Validate a person-period table; return its model columns with clean dtypes."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            f"The {what} of {owner} must be a pandas DataFrame. "
            f"Got {type(data).__name__} instead."
        )
    required = [TENURE] + ([EVENT] if with_event else []) + covs + groups
    problems = [
        Problem(c, "a column of the person-period table",
                fix="build the table with models.churn.build_hazard_table, or leave the "
                    "column out of the model's covariates/groups")
        for c in required if c not in data.columns
    ]
    if not problems and len(data) == 0:
        problems.append(Problem("<table>", "at least one row"))
    if problems:
        raise DataValidationError(problems, what=what)
    for c in covs:
        if not pd.api.types.is_numeric_dtype(data[c].dtype) or pd.api.types.is_bool_dtype(
            data[c].dtype
        ):
            problems.append(Problem(c, f"a numeric covariate (got dtype {data[c].dtype})"))
            continue
        bad = ~np.isfinite(data[c].to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            problems.append(_rows_problem(c, "finite covariate values (no NaN)", bad,
                                          data[c], "fill or drop the rows"))
    for c in groups:
        bad = data[c].isna().to_numpy()
        if bad.any():
            problems.append(_rows_problem(c, "no missing group labels", bad, data[c],
                                          "fill missing labels, e.g. with 'unknown'"))
    tenure = data[TENURE]
    if pd.api.types.is_numeric_dtype(tenure.dtype) and not pd.api.types.is_bool_dtype(
        tenure.dtype
    ):
        t = tenure.to_numpy(dtype=float, na_value=np.nan)
        bad = ~(np.isfinite(t) & (t >= 0) & (t == np.round(t)))
    else:
        bad = np.ones(len(data), dtype=bool)
    if bad.any():
        problems.append(_rows_problem(TENURE, "non-negative integer tenure periods", bad,
                                      tenure, "tenure counts periods from 0"))
    if with_event:
        ev = data[EVENT]
        ok = ev.isin([0, 1]).to_numpy() & ev.notna().to_numpy()
        if not ok.all():
            problems.append(_rows_problem(EVENT, "0 or 1 (churned in the period)", ~ok, ev,
                                          "event is 1 only in the churn period"))
    if problems:
        raise DataValidationError(problems, what=what)
    keep = ([USER_ID] if USER_ID in data.columns else []) + required
    out = data[keep].reset_index(drop=True)
    out[TENURE] = out[TENURE].astype("int64")
    if with_event:
        out[EVENT] = out[EVENT].astype("int64")
    for c in covs:
        out[c] = out[c].astype("float64")
    for c in groups:
        out[c] = out[c].astype(str)
    return out


class ChurnHazardModel(BayesianModel):
    r"""Hierarchical discrete-time hazard of churn by tenure period.

    Parameters
    ----------
    priors : mapping of str to Prior, optional
        Replace default priors by name: ``baseline_start`` (logit hazard in
        period 0; with ``baseline="independent"`` the prior of every period),
        ``baseline_sigma`` (random-walk step sd), ``beta`` (effects of the
        standardised covariates) and ``group_sigma`` (sd of each group's
        random effects).
    covariates : sequence of str, default ``DEFAULT_COVARIATES``
        Numeric columns of the person-period table, standardised internally; by
        default ``log_plays_prev``, ``skip_rate_prev``, ``log_artists_prev`` and
        ``days_since_last_play``.
        Leave out ``skip_rate_prev`` or ``log_artists_prev`` when the log had no
        ``skipped`` or ``artist_id``.
    groups : sequence of str, default ()
        Categorical columns, each with its own random intercepts, e.g.
        ``("country", "plan")`` (in the table when :func:`build_hazard_table`
        is given ``users``). None by default: segments are opted into.
    baseline : {"rw", "independent"}, default "rw"
        Baseline logit hazard over tenure: a Gaussian random walk (smooth) or
        independent values per period.

    Attributes
    ----------
    covariate_means_, covariate_sds_ : pandas.Series
        Standardisation of the covariates, from the training rows.

    Notes
    -----
    Each row is user :math:`i` at risk in tenure period :math:`t`, with
    covariates :math:`x_{it}` from period :math:`t - 1` (see
    :func:`~models.churn.features.build_hazard_table`):

    .. math::

        y_{it} &\sim \mathrm{Bernoulli}(h_{it}), \qquad
        \operatorname{logit} h_{it} = \alpha_t + z_{it}^\top \beta
            + \sum_g u^{(g)}_{g[i]}, \\
        \alpha_0 &\sim \text{baseline\_start}, \quad
        \alpha_t = \alpha_{t-1} + \sigma_\alpha \epsilon_t,\
        \epsilon_t \sim \mathcal N(0, 1), \quad
        \sigma_\alpha \sim \text{baseline\_sigma}, \\
        u^{(g)}_\ell &= \sigma_g \eta^{(g)}_\ell,\ \eta^{(g)}_\ell \sim \mathcal N(0, 1),
        \quad \sigma_g \sim \text{group\_sigma}, \quad \beta_j \sim \text{beta},

    with :math:`z = (x - \bar x) / s_x` the covariates standardised by their
    training means and standard deviations (a constant covariate gets
    :math:`s_x = 1`). The random walk and the random effects are non-centred.
    Rows with the same tenure, covariate values and group labels share
    :math:`h`, so they are collapsed into one cell of :math:`n` rows and
    :math:`y` events with the log-likelihood
    :math:`y \eta - n \log(1 + e^{\eta})`: exactly the sum of the rows'
    Bernoulli ones (a ``pm.Potential`` named ``churn``).

    **LOO and predictive checks.** The unit of the pointwise log-likelihood
    (:meth:`compute_log_likelihood`, variable ``event``, dim ``user_period``:
    the rows of the training table, with coordinates ``tenure`` and ``user_id``
    when the table has it) is one user-period row, the Bernoulli
    :math:`y_{it}\log h_{it} + (1 - y_{it})\log(1 - h_{it})`; the values sum to
    the model's log-likelihood. :meth:`sample_posterior_predictive` replicates
    ``event`` for every row (the risk set as observed, so censoring is kept).

    **Predictions.** From period :math:`t` on, with covariates held at their
    current values, the probability to churn within :math:`k` periods is
    :math:`1 - \prod_{j=0}^{k-1} (1 - h_{i, t+j})`. Beyond the last fitted
    tenure the baseline stays at its last value :math:`\alpha_T`: the random
    walk's forecast has that mean, and the model has no information on later
    changes (simulating the walk forward would only add width).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> n = 400
    >>> table = pd.DataFrame({
    ...     "user_id": np.arange(n), "tenure": rng.integers(0, 4, n),
    ...     "event": rng.binomial(1, 0.2, n), "log_plays_prev": rng.normal(size=n),
    ...     "plan": rng.choice(["free", "premium"], n),
    ... })
    >>> model = ChurnHazardModel(covariates=["log_plays_prev"], groups=["plan"])
    >>> sorted(rv.name for rv in model.build_model(table).free_RVs)
    ['baseline_sigma', 'baseline_start', 'baseline_z', 'beta', 'group_sigma', 'z_plan']

    ``model.fit(table)`` then samples the posterior, and
    ``model.probability_churn(horizon=4)`` gives each user's churn risk.
    """

    #: Sample the group effects themselves, constrained to sum to zero
    #: (``pm.ZeroSumNormal``, so that the baseline carries their mean), instead of their
    #: standardised values: better when every group has many rows that pin its effect
    #: down (users, each with a long history), worse for a few sparse groups (a funnel in
    #: ``group_sigma``).
    centred_groups: ClassVar[bool] = False
    #: Sample the random walk's steps themselves instead of their standardised values:
    #: better when every period has many rows (the walk's levels are pinned down by the
    #: data, and the standardised steps then trade off against ``baseline_sigma``).
    centred_baseline: ClassVar[bool] = False

    default_priors: ClassVar[Mapping[str, Prior]] = {
        "baseline_start": Prior("Normal", mu=-3.0, sigma=1.5),
        "baseline_sigma": Prior("HalfNormal", sigma=0.3),
        "beta": Prior("Normal", mu=0.0, sigma=1.0),
        "group_sigma": Prior("HalfNormal", sigma=0.5),
    }

    def __init__(
        self,
        *,
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
        covariates: Sequence[str] = DEFAULT_COVARIATES,
        groups: Sequence[str] = (),
        baseline: Literal["rw", "independent"] = "rw",
    ) -> None:
        self.covariates = covariates
        self.groups = groups
        self.baseline = baseline
        owner = type(self).__name__
        for name, value in (("covariates", covariates), ("groups", groups)):
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ValueError(
                    f"The '{name}' parameter of {owner} must be a sequence of column names. "
                    f"Got {value!r} instead."
                )
        if baseline not in _BASELINES:
            raise ValueError(
                f"The 'baseline' parameter of {owner} must be one of {list(_BASELINES)}. "
                f"Got {baseline!r} instead."
            )
        super().__init__(priors=priors)

    # ------------------------------------------------------------------ data
    def _validate_data(self, data: Any) -> pd.DataFrame:
        frame = _check_person_periods(
            data, list(self.covariates), list(self.groups), with_event=True,
            what="person-period table", owner=type(self).__name__,
        )
        if len(frame) and frame[EVENT].sum() == 0:
            warnings.warn(DataQualityWarning(
                f"The person-period table has no churn event in its {len(frame):,} rows: the "
                "data bound the hazard only from above, so its level and the covariate effects "
                "come mostly from the priors. Check the inactivity threshold and the "
                "observation end (build_hazard_table)."), stacklevel=3)
        return frame

    @staticmethod
    def _standardisation(data: pd.DataFrame, covs: list[str]) -> tuple[pd.Series, pd.Series]:
        means = data[covs].mean()
        sds = data[covs].std(ddof=0)
        return means, sds.where(sds > 0, 1.0)

    def _levels(self, data: pd.DataFrame) -> dict[str, list[str]]:
        return {g: sorted(data[g].unique().tolist()) for g in self.groups}

    @property
    def covariate_means_(self) -> pd.Series:
        """Training means of the covariates."""
        self._require_fitted("covariate_means_")
        return self._standardisation(self.data_, list(self.covariates))[0]

    @property
    def covariate_sds_(self) -> pd.Series:
        """Training standard deviations of the covariates (1 for a constant one)."""
        self._require_fitted("covariate_sds_")
        return self._standardisation(self.data_, list(self.covariates))[1]

    def _design(self, data: pd.DataFrame, train: pd.DataFrame) -> dict[str, np.ndarray]:
        """Standardised covariates and integer group codes of ``data``, using ``train``."""
        covs = list(self.covariates)
        means, sds = self._standardisation(train, covs)
        out = {"tenure": data[TENURE].to_numpy(dtype="int64"),
               "X": ((data[covs] - means) / sds).to_numpy(dtype=float)}
        for g, levels in self._levels(train).items():
            codes = pd.Categorical(data[g], categories=levels).codes
            out[g] = np.asarray(codes, dtype="int64")
        return out

    # ----------------------------------------------------------------- model
    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        covs, groups = list(self.covariates), list(self.groups)
        priors = self.resolved_priors()
        design = self._design(data, data)
        cells = pd.DataFrame(design["X"], columns=[f"x{j}" for j in range(len(covs))])
        cells["tenure"] = design["tenure"]
        for g in groups:
            cells[f"g_{g}"] = design[g]
        keys = list(cells.columns)
        cells[EVENT] = data[EVENT].to_numpy()
        agg = cells.groupby(keys, sort=True).agg(n=(EVENT, "size"), y=(EVENT, "sum"))
        agg = agg.reset_index()
        n_tenure = int(data[TENURE].max()) + 1
        coords: dict[str, Any] = {
            "tenure": np.arange(n_tenure),
            "covariate": covs,
            "factor": groups,
            "cell": np.arange(len(agg)),
            **self._levels(data),
        }
        with pm.Model(coords=coords) as model:
            if self.baseline == "rw":
                # Non-centred: centring the walk in its levels halves the leapfrog steps on
                # the main job's 39 weekly periods, but its funnel in baseline_sigma
                # diverges (3 divergences in 4 x 2000 draws) where this one did not.
                start = priors["baseline_start"].create("baseline_start")
                step_sd = priors["baseline_sigma"].create("baseline_sigma")
                if n_tenure > 1 and self.centred_baseline:
                    model.add_coord("tenure_step", np.arange(1, n_tenure))
                    steps = pm.Normal("baseline_step", 0.0, step_sd, dims="tenure_step")
                    path = pt.concatenate([pt.zeros(1), pt.cumsum(steps)])
                elif n_tenure > 1:
                    model.add_coord("tenure_step", np.arange(1, n_tenure))
                    steps = pm.Normal("baseline_z", 0.0, 1.0, dims="tenure_step")
                    path = pt.concatenate([pt.zeros(1), pt.cumsum(steps) * step_sd])
                else:
                    path = pt.zeros(1)
                alpha = pm.Deterministic("baseline", start + path, dims="tenure")
            else:
                alpha = priors["baseline_start"].create("baseline", dims="tenure")
            eta = alpha[agg["tenure"].to_numpy()]
            if covs:
                beta = priors["beta"].create("beta", dims="covariate")
                x = agg[[f"x{j}" for j in range(len(covs))]].to_numpy(dtype=float)
                eta = eta + pt.dot(x, beta)
            if groups:
                sigma = priors["group_sigma"].create("group_sigma", dims="factor")
                for i, g in enumerate(groups):
                    if self.centred_groups:
                        u = pm.ZeroSumNormal(f"u_{g}", sigma=sigma[i], dims=g)
                    else:
                        z = pm.Normal(f"z_{g}", 0.0, 1.0, dims=g)
                        u = pm.Deterministic(f"u_{g}", sigma[i] * z, dims=g)
                    eta = eta + u[agg[f"g_{g}"].to_numpy()]
            # The Bernoulli log-likelihood of the rows, summed within cells: y eta - n
            # log(1 + e^eta). Half the cost of pm.Binomial's logp, which also evaluates the
            # constant log binomial coefficients and its parameter checks at every gradient.
            y = pt.as_tensor_variable(agg["y"].to_numpy(dtype=float))
            n = pt.as_tensor_variable(agg["n"].to_numpy(dtype=float))
            pm.Potential("churn", pt.sum(y * eta - n * pt.softplus(eta)))
        return model

    def _parameter_names(self) -> list[str]:
        names = ["baseline_start", "baseline_sigma"] if self.baseline == "rw" else []
        names.append("baseline")
        if self.covariates:
            names.append("beta")
        if self.groups:
            names += ["group_sigma"] + [f"u_{g}" for g in self.groups]
        return names

    # ------------------------------------------------ LOO and predictive checks
    def _training_logits(self, posterior: xr.Dataset) -> tuple[Any, int, int]:
        """``logits(rows)``: draws ``(draws, rows)`` of the logit hazard of training rows."""
        names = ["baseline"] + (["beta"] if self.covariates else [])
        p = draw_arrays(posterior, names + [f"u_{g}" for g in self.groups])
        design = self._design(self.data_, self.data_)

        def logits(i: np.ndarray) -> np.ndarray:
            eta = p["baseline"][:, design["tenure"][i]]
            if self.covariates:
                eta = eta + p["beta"] @ design["X"][i].T
            for g in self.groups:
                eta = eta + p[f"u_{g}"][:, design[g][i]]
            return eta

        return logits, p["baseline"].shape[0], len(self.data_)

    def _row_coords(self) -> dict[str, Any]:
        extra = {TENURE: self.data_[TENURE].to_numpy()}
        if USER_ID in self.data_.columns:
            extra[USER_ID] = self.data_[USER_ID].astype(str).to_numpy()
        return {"extra_coords": extra}

    def _pointwise_log_likelihood(self, posterior: xr.Dataset) -> dict[str, xr.DataArray]:
        logits, n_samples, n_rows = self._training_logits(posterior)
        y = self.data_[EVENT].to_numpy()
        values = by_blocks(lambda i: bernoulli_logit_loglik(logits(i), y[i]), n_samples, n_rows)
        return {EVENT: sample_array(values, posterior, "user_period", **self._row_coords())}

    def _posterior_predictive(self, posterior: xr.Dataset,
                              rng: np.random.Generator) -> dict[str, xr.DataArray]:
        logits, n_samples, n_rows = self._training_logits(posterior)

        def draw(i: np.ndarray) -> np.ndarray:
            eta = logits(i)
            hazard = np.exp(-np.logaddexp(0.0, -eta))  # logistic, without overflow
            return (rng.random(eta.shape) < hazard).astype(np.int64)

        values = by_blocks(draw, n_samples, n_rows)
        return {EVENT: sample_array(values, posterior, "user_period", **self._row_coords())}

    def _observed_data(self) -> dict[str, xr.DataArray]:
        return {EVENT: unit_array(self.data_[EVENT].to_numpy(), "user_period",
                                  **self._row_coords())}

    # ----------------------------------------------------------- predictions
    def _prediction_rows(self, data: pd.DataFrame | None, what: str) -> pd.DataFrame:
        train = self.data_
        if data is None:
            rows = train
            if USER_ID in rows.columns:
                rows = rows.sort_values([USER_ID, TENURE], kind="stable")
                rows = rows.drop_duplicates(USER_ID, keep="last")
        else:
            rows = _check_person_periods(
                data, list(self.covariates), list(self.groups), with_event=False,
                what=f"data of {what}", owner=type(self).__name__,
            )
            problems = []
            for g, levels in self._levels(train).items():
                unknown = ~rows[g].isin(levels).to_numpy()
                if unknown.any():
                    problems.append(_rows_problem(
                        g, f"labels seen in training ({', '.join(levels)})", unknown, rows[g],
                        f"predict only for known '{g}' labels, or refit with them"))
            if problems:
                raise DataValidationError(problems, what=f"data of {what}")
        design = self._design(rows, train)
        frame = pd.DataFrame({"tenure": design["tenure"]})
        for j in range(len(self.covariates)):
            frame[f"x{j}"] = design["X"][:, j]
        for g in self.groups:
            frame[f"g_{g}"] = design[g]
        if USER_ID in rows.columns:
            frame.index = pd.Index(rows[USER_ID].to_numpy(), name=USER_ID)
        elif data is not None:
            frame.index = data.index
        return frame

    def _cumulative_hazard(
        self, params: Mapping[str, np.ndarray], block: pd.DataFrame, horizon: int
    ) -> np.ndarray:
        """``-log S``: sum over the horizon of ``-log(1 - h)``, shape (draws, rows)."""
        baseline = params["baseline"]
        eta = np.zeros((baseline.shape[0], len(block)))
        if self.covariates:
            x = block[[f"x{j}" for j in range(len(self.covariates))]].to_numpy()
            eta += params["beta"] @ x.T
        for g in self.groups:
            eta += params[f"u_{g}"][:, block[f"g_{g}"].to_numpy()]
        tenure = block["tenure"].to_numpy()
        last = baseline.shape[1] - 1
        total = np.zeros_like(eta)
        for j in range(horizon):
            total += _softplus(baseline[:, np.minimum(tenure + j, last)] + eta)
        return total

    def _predict(
        self, kind: str, data: pd.DataFrame | None, horizon: int, ci_prob: float,
        max_draws: int | None, random_seed: Any, return_draws: bool,
    ) -> pd.DataFrame | xr.DataArray:
        what = f"{type(self).__name__}.{kind}"
        self._require_fitted(f"{kind}()")
        if not (isinstance(horizon, int | np.integer) and not isinstance(horizon, bool)
                and horizon > 0):
            raise ValueError(
                f"The 'horizon' parameter of {what} must be a positive integer. "
                f"Got {horizon!r} instead."
            )
        rows = self._prediction_rows(data, what)
        names = ["baseline"] + (["beta"] if self.covariates else [])
        names += [f"u_{g}" for g in self.groups]
        params = posterior_arrays(self.idata_, names, max_draws=max_draws,
                                  random_seed=random_seed)

        def func(p: Mapping[str, np.ndarray], block: pd.DataFrame) -> np.ndarray:
            survival = np.exp(-self._cumulative_hazard(p, block, int(horizon)))
            return 1.0 - survival if kind == "probability_churn" else survival

        return predict_in_batches(func, params, rows, ci_prob=ci_prob, return_draws=return_draws,
                                  shape=sample_shape(self.idata_, max_draws), unit="user",
                                  name=kind)

    @prediction_method(removed={"batch_size": "memory is bounded by blocks of users chosen "
                                "automatically; pass max_draws to bound the cost."})
    def probability_churn(
        self,
        data: pd.DataFrame | None = None,
        *,
        horizon: int = 1,
        ci_prob: float = 0.89,
        max_draws: int | None = None,
        random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability that each user churns within the next ``horizon`` periods.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            One row per user: ``tenure`` (the first period of the horizon, the
            user being at risk at its start), the covariates (measured in the
            period before it) and the group columns; ``user_id`` becomes the
            index when present. To forecast from the end of observation pass
            ``build_hazard_table(..., forecast=True)`` with the arguments of the
            fitted table: one row per user still at risk, at the first period
            whose outcome is not known yet. By default each user's *last row of
            the training table*, users who churned in it included: an in-sample
            look at the last fitted period and the ones after it, not a forecast.
        horizon : int, default 1
            Number of periods :math:`k`.
        ci_prob : float, default 0.89
            Probability mass of the equal-tailed interval.
        max_draws : int, optional
            Use a random subset of this many posterior draws.
        random_seed : int, numpy.random.Generator or None
            Seed of that subset.
        return_draws : bool, default False
            Return the draws instead of the summary.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            ``mean``, ``sd``, ``ci_lower``, ``ci_upper`` per user (index
            ``user_id``, or the index of ``data`` without that column); or the
            draws, dims ``(chain, draw, user)`` (one chain of ``max_draws`` draws
            when ``max_draws`` keeps a subset). ``batch_size`` is deprecated and
            ignored: memory is bounded automatically.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ValueError
            If ``horizon`` is not a positive integer, or for a bad option.
        DataValidationError
            For missing columns, NaN covariates, negative tenure or group labels
            unseen in training (the message names them).

        Notes
        -----
        :math:`P = 1 - \prod_{j=0}^{k-1} (1 - h(t + j \mid x))` per draw, with the
        covariates held at their current values (no forecast of engagement) and
        the baseline held at its last fitted value beyond the fitted tenures.
        """
        return self._predict("probability_churn", data, horizon, ci_prob, max_draws,
                             random_seed, return_draws)

    @prediction_method(removed={"batch_size": "memory is bounded by blocks of users chosen "
                                "automatically; pass max_draws to bound the cost."})
    def expected_survival(
        self,
        data: pd.DataFrame | None = None,
        *,
        horizon: int = 1,
        ci_prob: float = 0.89,
        max_draws: int | None = None,
        random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability that each user is still retained after ``horizon`` periods.

        :math:`S = \prod_{j=0}^{k-1} (1 - h(t + j \mid x))`, i.e.
        ``1 - probability_churn``; parameters, returns and conventions as in
        :meth:`probability_churn`.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            As in :meth:`probability_churn`.
        horizon : int, default 1
            Number of periods.
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_churn`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`probability_churn`.
        """
        return self._predict("expected_survival", data, horizon, ci_prob, max_draws,
                             random_seed, return_draws)

    @prediction_method()
    def baseline_hazard(self, *, ci_prob: float = 0.89) -> pd.DataFrame:
        r"""Baseline hazard by tenure: :math:`\operatorname{logit}^{-1}(\alpha_t)`.

        The hazard of a user with every covariate at its training mean and
        zero group effects (an average group).

        Parameters
        ----------
        ci_prob : float, default 0.89
            Probability mass of the equal-tailed interval.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``tenure``: ``mean``, ``sd``, ``ci_lower``, ``ci_upper``.
        """
        self._require_fitted("baseline_hazard()")
        alpha = posterior_arrays(self.idata_, ["baseline"])["baseline"]
        tenure = pd.Index(np.arange(alpha.shape[1]), name=TENURE)
        return summarize_draws(1.0 / (1.0 + np.exp(-alpha)), ci_prob=ci_prob, index=tenure)
