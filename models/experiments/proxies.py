r"""Choosing a short-term proxy for a long-term outcome from the history of past experiments.

Every past experiment estimated, with a standard error, its effect on several
candidate short-term metrics and (later) on the long-term outcome. A good proxy
is a metric whose *true* effect predicts the *true* long-term effect. The raw
correlation of the estimates across experiments is a poor guide: estimation
noise attenuates it, and unequally so -- a precisely measured weak proxy can
beat a noisily measured strong one. :class:`ProxyMetricModel` fits the joint
distribution of the true effects with the known measurement error integrated
out, and ranks the candidates (and their best weighted combination) by how
much of the true long-term effect they explain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from models._validation import TABLE, check_positive_int, row_problem
from models.base import BayesianModel
from models.exceptions import DataValidationError, Problem
from models.experiments._checks import check_probability
from models.experiments._mvnormal import mvnormal_logp, mvnormal_random
from models.predict import eti_bounds, posterior_arrays, sample_shape, summarize_draws
from models.priors import Prior

__all__ = ["ProxyMetricModel"]

#: Suffix of the column holding the standard error of each estimate.
SE_SUFFIX = "_se"
#: Label of the row of :meth:`ProxyMetricModel.rank_proxies` for the weighted combination.
COMBINATION = "combination"
#: The history needs at least this many past experiments, and this many per metric.
MIN_EXPERIMENTS = 10
EXPERIMENTS_PER_METRIC = 5
_MIN_MC_DRAWS = 4000


class ProxyMetricModel(BayesianModel):
    r"""Measurement-error model of past experiments' short- and long-term effects.

    Parameters
    ----------
    candidates : list of str
        Names of the candidate short-term metrics.
    outcome : str, default "long_term"
        Name of the long-term outcome.
    noise_correlation : float or square array-like, default 0.0
        Correlation of the estimation errors of two metrics within one
        experiment (the same users produce all estimates, so it is often
        positive). A number applies to every pair; a matrix (nested lists,
        ordered as ``[*candidates, outcome]``, unit diagonal, positive
        definite) gives each pair its own. For difference-in-means
        estimates it is about the user-level correlation of the two metrics
        within an arm. 0 assumes independent errors.
    priors : mapping of str to Prior, optional
        Replacements for the default priors ``mean`` (Normal(0, 1)), ``sd``
        (HalfNormal(1)), both on the standardised scale, and ``corr``
        (LKJCorr(eta=2)).

    Notes
    -----
    **Input.** One row per past experiment :math:`j` (the index holds the
    experiment ids), with for each metric :math:`k` among the candidates and
    the outcome a column ``<k>`` (the estimated effect :math:`\hat x_{jk}`) and
    ``<k>_se`` (its standard error :math:`e_{jk}`). Other columns are ignored.

    **Model.** The true effects :math:`x_j = (s_{j1}, \dots, s_{jK}, l_j)` of
    experiment :math:`j` vary across experiments as

    .. math::

        x_j \sim N(m, \Sigma), \quad \Sigma = \operatorname{diag}(\tau)\, \Omega\,
        \operatorname{diag}(\tau), \quad \hat x_j \mid x_j \sim N(x_j, E_j R E_j),

    with :math:`E_j = \operatorname{diag}(e_j)` the known standard errors and
    :math:`R` the noise correlation. The true effects are integrated out
    analytically, :math:`\hat x_j \sim N(m, \Sigma + E_j R E_j)`, which samples
    far better than a model with one latent vector per experiment. Each metric
    is standardised by the mean and standard deviation of its estimates, and on
    that scale :math:`m_k \sim N(0, 1)`, :math:`\tau_k \sim \mathrm{HalfNormal}(1)`,
    :math:`\Omega \sim \mathrm{LKJ}(2)`. The posterior holds ``mean``, ``sd``
    and ``corr`` in the metrics' own units, and ``corr_outcome``, the
    correlation of each candidate's true effect with the true long-term effect.

    **How well a proxy predicts.** For a candidate :math:`k`, the share of the
    variance of the true long-term effect explained by its true effect and the
    slope of the regression of one on the other are

    .. math::

        R^2_k = \frac{\Sigma_{kl}^2}{\Sigma_{kk}\Sigma_{ll}}, \qquad
        b_k = \frac{\Sigma_{kl}}{\Sigma_{kk}},

    and the best linear combination of all candidates has weights and
    :math:`R^2`

    .. math::

        w = \Sigma_{ss}^{-1}\Sigma_{sl}, \qquad
        R^2_{\text{comb}} = \frac{\Sigma_{ls}\Sigma_{ss}^{-1}\Sigma_{sl}}{\Sigma_{ll}}.

    These describe true effects: a new experiment's noisy estimates predict
    less well (see :meth:`expected_long_term_effect`). The naive correlation
    of the estimates is attenuated towards
    :math:`\rho_{kl}\sqrt{\lambda_k \lambda_l}`, :math:`\lambda_k = \Sigma_{kk} /
    (\Sigma_{kk} + \bar e_k^2)` the reliability of metric :math:`k`'s estimates.

    References
    ----------
    .. [1] Tripuraneni, N., Richardson, L., D'Amour, A., Soriano, J. and Yadlowsky,
       S. (2023). Choosing a proxy metric from past experiments. arXiv:2309.07893.
    .. [2] Prentice, R. L. (1989). Surrogate endpoints in clinical trials:
       definition and operational criteria. Statistics in Medicine 8(4), 431-440.
    .. [3] Lewandowski, D., Kurowicka, D. and Joe, H. (2009). Generating random
       correlation matrices based on vines and extended onion method. Journal
       of Multivariate Analysis 100(9), 1989-2001.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from models.experiments.proxies import ProxyMetricModel
    >>> rng = np.random.default_rng(1)
    >>> true = rng.multivariate_normal([0, 0, 0], [[1, .2, .8], [.2, 1, .3], [.8, .3, 1]], 60)
    >>> se = np.full((60, 3), 0.3)
    >>> est = true + rng.normal(0, se)
    >>> history = pd.DataFrame({"days": est[:, 0], "days_se": se[:, 0],
    ...                         "skips": est[:, 1], "skips_se": se[:, 1],
    ...                         "long_term": est[:, 2], "long_term_se": se[:, 2]})
    >>> model = ProxyMetricModel(candidates=["days", "skips"])
    >>> model = model.fit(history, method="map", random_seed=1)  # NUTS for real use
    >>> ranking = model.rank_proxies()  # true R^2: 0.64, 0.09 and 0.66
    >>> ranking["r2"].round(2).to_dict()
    {'days': 0.61, 'skips': 0.06, 'combination': 0.63}
    """

    default_priors: ClassVar[Mapping[str, Prior]] = {
        "mean": Prior("Normal", mu=0.0, sigma=1.0),
        "sd": Prior("HalfNormal", sigma=1.0),
        "corr": Prior("LKJCorr", eta=2.0),
    }

    def __init__(
        self,
        *,
        candidates: Sequence[str],
        outcome: str = "long_term",
        noise_correlation: float | Sequence[Sequence[float]] = 0.0,
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
    ) -> None:
        self.candidates = candidates
        self.outcome = outcome
        self.noise_correlation = noise_correlation
        owner = "ProxyMetricModel"
        if (isinstance(candidates, str) or not isinstance(candidates, Sequence)
                or not candidates or not all(isinstance(c, str) for c in candidates)
                or len(set(candidates)) != len(candidates) or COMBINATION in candidates):
            raise ValueError(f"The 'candidates' parameter of {owner} must be a non-empty list of "
                             f"distinct metric names other than {COMBINATION!r}. "
                             f"Got {candidates!r} instead.")
        if not isinstance(outcome, str) or outcome in candidates:
            raise ValueError(f"The 'outcome' parameter of {owner} must be a metric name that is "
                             f"not a candidate. Got {outcome!r} instead.")
        self._noise_corr = self._noise_matrix(noise_correlation)
        super().__init__(priors=priors)

    def _noise_matrix(self, value: Any) -> np.ndarray:
        size = len(self.candidates) + 1
        message = (f"The 'noise_correlation' parameter of ProxyMetricModel must be a number in "
                   f"({-1 / (size - 1):.3g}, 1) or a {size} x {size} positive definite "
                   f"correlation matrix ordered as {[*self.candidates, self.outcome]}. "
                   f"Got {value!r} instead.")
        if isinstance(value, bool):
            raise ValueError(message)
        if isinstance(value, int | float | np.number):
            matrix = np.full((size, size), float(value))
            np.fill_diagonal(matrix, 1.0)
        else:
            try:
                matrix = np.asarray(value, dtype=float)
            except (TypeError, ValueError):
                raise ValueError(message) from None
            if (matrix.shape != (size, size) or not np.allclose(matrix, matrix.T)
                    or not np.allclose(np.diag(matrix), 1.0)):
                raise ValueError(message)
        if not np.isfinite(matrix).all() or np.linalg.eigvalsh(matrix).min() <= 1e-10:
            raise ValueError(message)
        return matrix

    def _config(self) -> dict[str, Any]:
        config = super()._config()
        if not isinstance(self.noise_correlation, int | float):
            config["noise_correlation"] = np.asarray(self.noise_correlation, float).tolist()
        return config

    @property
    def _metrics(self) -> list[str]:
        return [*self.candidates, self.outcome]

    # ------------------------------------------------------------------- data
    def _check_table(self, data: Any, metrics: Sequence[str], what: str) -> pd.DataFrame:
        """Estimates and standard errors of ``metrics``: present, numeric, finite, se >= 0."""
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"The {what} of ProxyMetricModel must be a pandas DataFrame. "
                            f"Got {type(data).__name__} instead.")
        columns = [c for m in metrics for c in (m, m + SE_SUFFIX)]
        missing = [c for c in columns if c not in data.columns]
        if missing:
            raise DataValidationError([Problem(
                TABLE, f"the column(s) {missing}: for every metric k in {list(metrics)} the "
                f"estimated effect 'k' and its standard error 'k{SE_SUFFIX}'",
                fix="rename the columns, or choose 'candidates' and 'outcome' to match them")],
                what=what)
        problems = []
        for column in columns:
            values = data[column]
            if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                problems.append(Problem(column, f"numbers (dtype is {values.dtype})"))
                continue
            arr = values.to_numpy(dtype=float, na_value=np.nan)
            rule, bad = "finite numbers (no NaN or infinity)", ~np.isfinite(arr)
            if not bad.any() and column.endswith(SE_SUFFIX):
                rule, bad = "non-negative standard errors", arr < 0
            if bad.any():
                problems.append(row_problem(column, rule, bad, values,
                                            "drop the experiments without an estimate"))
        if problems:
            raise DataValidationError(problems, what=what)
        return data[columns].astype(float)

    def _validate_data(self, data: Any) -> pd.DataFrame:
        what = "history of experiments"
        clean = self._check_table(data, self._metrics, what)
        problems = []
        need = max(MIN_EXPERIMENTS, EXPERIMENTS_PER_METRIC * len(self._metrics))
        if len(clean) < need:
            problems.append(Problem(
                TABLE, f"at least {need} past experiments for {len(self.candidates)} "
                f"candidate(s) and the outcome ({EXPERIMENTS_PER_METRIC} per metric, "
                f"{MIN_EXPERIMENTS} at least); got {len(clean)}",
                fix="add past experiments or compare fewer candidates at a time"))
        for metric in self._metrics:
            if clean[metric].nunique() < 2:
                problems.append(Problem(metric, "estimates that vary across experiments"))
        if problems:
            raise DataValidationError(problems, what=what)
        return clean

    # ------------------------------------------------------------------ model
    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        metrics = self._metrics
        est = data[metrics].to_numpy()
        se = data[[m + SE_SUFFIX for m in metrics]].to_numpy()
        self.center_ = est.mean(axis=0)
        self.scale_ = est.std(axis=0, ddof=1)
        x = (est - self.center_) / self.scale_
        e = se / self.scale_
        noise = e[:, :, None] * self._noise_corr[None] * e[:, None, :]
        priors = self.resolved_priors()
        coords = {"metric": metrics, "metric_bis": metrics, "candidate": list(self.candidates),
                  "experiment": np.arange(len(data))}
        with pm.Model(coords=coords) as model:
            mean_z = priors["mean"].create("mean_z", dims="metric")
            sd_z = priors["sd"].create("sd_z", dims="metric")
            chol = priors["corr"].create("corr_chol", n=len(metrics))
            corr = pm.Deterministic("corr", chol @ chol.T, dims=("metric", "metric_bis"))
            pm.Deterministic("mean", self.center_ + self.scale_ * mean_z, dims="metric")
            pm.Deterministic("sd", self.scale_ * sd_z, dims="metric")
            pm.Deterministic("corr_outcome", corr[:-1, -1], dims="candidate")
            cov = sd_z[:, None] * corr * sd_z[None, :]
            pm.CustomDist("estimates", mean_z, pt.as_tensor(noise) + cov[None],
                          logp=mvnormal_logp,
                          random=mvnormal_random, signature="(p),(p,p)->(p)",
                          observed=x, dims=("experiment", "metric"))
        return model

    def _parameter_names(self) -> list[str]:
        return ["mean", "sd", "corr_outcome"]

    def _posterior(self, max_draws: int | None = None,
                   random_seed: int | np.random.Generator | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Draws of the mean (draw, metric) and covariance (draw, metric, metric), own units."""
        arrays = posterior_arrays(self.idata_, ["mean", "sd", "corr"], max_draws=max_draws,
                                  random_seed=random_seed)
        sd = arrays["sd"]
        return arrays["mean"], sd[:, :, None] * arrays["corr"] * sd[:, None, :]

    # ------------------------------------------------------------- results
    def rank_proxies(self, *, ci_prob: float = 0.95) -> pd.DataFrame:
        r"""Rank the candidates by how well their true effect predicts the long-term one.

        Parameters
        ----------
        ci_prob : float, default 0.95
            Probability mass of the equal-tailed intervals.

        Returns
        -------
        pandas.DataFrame
            One row per candidate (index ``candidate``), sorted by the posterior
            mean of :math:`R^2`, then a last row ``"combination"`` for the best
            weighted combination. Columns: ``r2``, ``r2_sd``, ``r2_ci_lower``,
            ``r2_ci_upper`` (share of the true long-term effect's variance
            explained); ``corr`` with ``corr_ci_lower``, ``corr_ci_upper``
            (signed correlation of the true effects; for the combination the
            multiple correlation); ``slope`` with ``slope_ci_lower``,
            ``slope_ci_upper`` (long-term effect per unit of the candidate's
            effect); ``weight`` with ``weight_ci_lower``, ``weight_ci_upper``
            (the candidate's weight in the combination, in long-term units per
            unit of the candidate); ``prob_best`` (posterior probability that
            the candidate has the highest :math:`R^2` of the candidates);
            ``reliability`` (the share of the variance of the candidate's
            estimates across experiments that is signal, posterior mean);
            ``naive_corr`` and ``naive_r2`` (the correlation of the raw
            estimates with the long-term estimates, and its square, for
            contrast); ``rank`` (1 = best by ``r2``). ``attrs`` hold
            ``ci_prob``, ``outcome`` and ``n_experiments``.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            If ``ci_prob`` is not in (0, 1).

        Notes
        -----
        Formulas in the Notes of :class:`ProxyMetricModel`. The combination's
        weights are those of the regression of the true long-term effect on
        all candidates' true effects; with strongly correlated candidates they
        are individually uncertain even when the combination's :math:`R^2` is not.
        """
        self._require_fitted("rank_proxies()")
        check_probability("ProxyMetricModel.rank_proxies", "ci_prob", ci_prob)
        _, cov = self._posterior()
        k = len(self.candidates)
        var_s = np.diagonal(cov, axis1=1, axis2=2)[:, :k]
        cov_sl, var_l = cov[:, :k, k], cov[:, k, k]
        corr = cov_sl / np.sqrt(var_s * var_l[:, None])
        r2 = corr**2
        slope = cov_sl / var_s
        weight = np.linalg.solve(cov[:, :k, :k], cov_sl[..., None])[..., 0]
        r2_comb = (cov_sl * weight).sum(axis=1) / var_l
        best = np.bincount(r2.argmax(axis=1), minlength=k) / r2.shape[0]
        se2 = (self.data_[[c + SE_SUFFIX for c in self.candidates]].to_numpy() ** 2).mean(axis=0)
        reliability = (var_s / (var_s + se2)).mean(axis=0)
        est = self.data_[self._metrics].to_numpy()
        naive = np.corrcoef(est, rowvar=False)[:k, k]

        columns: dict[str, Any] = {}
        for name, draws, comb in (("r2", r2, r2_comb), ("corr", corr, np.sqrt(r2_comb)),
                                  ("slope", slope, None), ("weight", weight, None)):
            summary = summarize_draws(draws, ci_prob=ci_prob)
            combined = None if comb is None else summarize_draws(comb[:, None], ci_prob=ci_prob)
            for key in summary.columns:
                if key == "sd" and name != "r2":
                    continue
                extra = np.nan if combined is None else combined[key].iloc[0]
                label = name if key == "mean" else f"{name}_{key}"
                columns[label] = np.append(summary[key].to_numpy(), extra)
        columns["prob_best"] = np.append(best, np.nan)
        columns["reliability"] = np.append(reliability, np.nan)
        columns["naive_corr"] = np.append(naive, np.nan)
        columns["naive_r2"] = np.append(naive**2, np.nan)
        table = pd.DataFrame(columns, index=pd.Index([*self.candidates, COMBINATION],
                                                     name="candidate"))
        order = np.argsort(-table["r2"].to_numpy()[:k], kind="stable")
        table = table.iloc[[*order, k]]
        table["rank"] = [*range(1, k + 1), 0]
        table.attrs.update(ci_prob=ci_prob, outcome=self.outcome, n_experiments=len(self.data_))
        return table

    def expected_long_term_effect(
        self,
        data: pd.DataFrame | None = None,
        *,
        ci_prob: float = 0.95,
        max_draws: int | None = None,
        random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Posterior of the true long-term effect of experiments given their short-term estimates.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            One row per experiment with every candidate's estimate ``<k>`` and
            standard error ``<k>_se`` (long-term columns, if any, are ignored);
            the history the model was fitted on by default (its long-term
            estimates are then not used, so they can be compared with the
            prediction).
        ci_prob : float, default 0.95
            Probability mass of the equal-tailed interval.
        max_draws : int, optional
            Use at most this many posterior draws (a random subset).
        random_seed : int, numpy.random.Generator or None
            Seed of that subset and of the draws from each conditional normal.
        return_draws : bool, default False
            Return the draws instead of the summary.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            Indexed like ``data``: ``mean``, ``sd``, ``ci_lower``, ``ci_upper``
            and ``prob_positive`` (posterior probability that the long-term
            effect is positive), ``attrs["ci_prob"]``; with ``return_draws``,
            draws of the long-term effect, dims ``(chain, draw, experiment)``,
            one per posterior draw (the posterior's shape, or one chain of
            ``max_draws`` draws when ``max_draws`` keeps a subset).

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        models.exceptions.DataValidationError
            If a candidate's estimate or standard error column is missing,
            non-numeric, non-finite or (for standard errors) negative.

        Notes
        -----
        For each posterior draw, the estimates :math:`\hat s` of the candidates
        and the true long-term effect :math:`l` are jointly normal, so

        .. math::

            l \mid \hat s \sim N\big(m_l + \Sigma_{ls} V^{-1}(\hat s - m_s),\;
            \Sigma_{ll} - \Sigma_{ls} V^{-1} \Sigma_{sl}\big), \quad
            V = \Sigma_{ss} + E R_{ss} E,

        with :math:`E` the experiment's standard errors: a noisy estimate is
        shrunk towards the mean of past experiments. The result mixes these
        normals over the posterior draws: mean and standard deviation by the
        law of total variance, the interval from Monte Carlo draws (at least
        4000: one or more normal draws per posterior draw; ``return_draws``
        gives the first, one per posterior draw).
        """
        owner = "ProxyMetricModel.expected_long_term_effect"
        self._require_fitted("expected_long_term_effect()")
        check_probability(owner, "ci_prob", ci_prob)
        if max_draws is not None:
            check_positive_int(owner, "max_draws", max_draws)
        frame = self.data_ if data is None else data
        clean = self._check_table(frame, list(self.candidates), "data")
        rng = np.random.default_rng(random_seed)
        mean, cov = self._posterior(max_draws, rng)
        k = len(self.candidates)
        est = clean[list(self.candidates)].to_numpy()
        se = clean[[c + SE_SUFFIX for c in self.candidates]].to_numpy()
        noise = se[:, :, None] * self._noise_corr[None, :k, :k] * se[:, None, :]
        v = cov[:, None, :k, :k] + noise[None]  # (draw, experiment, k, k)
        cov_sl = np.broadcast_to(cov[:, None, :k, k], v.shape[:3])
        gain = np.linalg.solve(v, cov_sl[..., None])[..., 0]  # V^-1 Sigma_sl
        cond_mean = mean[:, None, k] + (gain * (est[None] - mean[:, None, :k])).sum(axis=-1)
        cond_var = np.maximum(cov[:, None, k, k] - (gain * cov_sl).sum(axis=-1), 0.0)
        repeat = -(-_MIN_MC_DRAWS // cond_mean.shape[0])  # normal draws per posterior draw
        z = rng.standard_normal((repeat, *cond_mean.shape))
        draws = (cond_mean + np.sqrt(cond_var) * z).reshape(-1, cond_mean.shape[1])
        if return_draws:  # one normal draw per posterior draw: the posterior's shape
            shape = sample_shape(self.idata_, max_draws)
            first = (cond_mean + np.sqrt(cond_var) * z[0]).reshape(*shape, -1)
            return xr.DataArray(first, dims=("chain", "draw", "experiment"),
                                coords={"chain": np.arange(shape[0]),
                                        "draw": np.arange(shape[1]),
                                        "experiment": frame.index.to_numpy()},
                                name="long_term_effect")
        sd = np.sqrt(cond_mean.var(axis=0) + cond_var.mean(axis=0))
        safe = np.sqrt(np.where(cond_var > 0, cond_var, 1.0))
        positive = np.where(cond_var > 0, special.ndtr(cond_mean / safe), cond_mean > 0)
        lower, upper = eti_bounds(draws, ci_prob)
        result = pd.DataFrame({"mean": cond_mean.mean(axis=0), "sd": sd, "ci_lower": lower,
                               "ci_upper": upper, "prob_positive": positive.mean(axis=0)},
                              index=frame.index)
        result.attrs["ci_prob"] = ci_prob
        return result
