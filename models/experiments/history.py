r"""A meta-analytic prior from past experiments: the hierarchical model of their true effects.

:class:`ExperimentHistoryModel` learns, from the estimates and standard errors
of many past experiments on one metric, how large true effects usually are
(:math:`\mu`) and how much they vary (:math:`\tau`), and uses that learned prior
to shrink the noisy estimate of a new experiment toward what is plausible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special, stats

from models._validation import TABLE, check_choice, row_problem
from models.base import BayesianModel, resolve_seed
from models.exceptions import DataValidationError, Problem
from models.experiments._checks import check_bool, check_column_names, check_probability
from models.experiments._mixtures import normal_mixture_summary
from models.experiments._shrinkage import (
    check_new_estimates,
    estimate_heterogeneity,
    loo_pit,
    prior_components,
    shrink_estimates,
    tail_shrinkage,
)
from models.predict import posterior_arrays, summarize_draws
from models.priors import Prior

__all__ = ["ExperimentHistoryModel", "estimate_heterogeneity"]

PARAMETERIZATIONS = ("auto", "centred", "non-centred")
_WHAT = "experiment history"
_OWNER = "ExperimentHistoryModel"


class ExperimentHistoryModel(BayesianModel):
    r"""Hierarchical model of the true effects of past experiments on one metric.

    Parameters
    ----------
    robust : bool, default False
        Student-t instead of normal true effects: heavy tails, so that the rare
        big win is not shrunk away with the many small effects.
    experiment_id, estimate, std_error : str
        Columns of the history: the experiment's id, its estimated effect (for
        instance the relative lift of the metric, the ``lift`` and ``lift_sd``
        columns of the conjugate engine's effect table) and the standard error
        of that estimate (> 0).
    parameterization : {"auto", "centred", "non-centred"}, default "auto"
        How the true effects are written for the sampler (the model is the same):
        ``"auto"`` centres the experiments measured more precisely than the
        spread of true effects and writes the others non-centred (see Notes).
    priors : mapping of str to Prior, optional
        Replacements for the default priors ``mu``, ``tau`` and, with
        ``robust=True``, ``nu`` (see Notes).

    Attributes
    ----------
    experiments_ : list
        The past experiments' ids (dim ``experiment``).
    centred_ : list
        The experiments whose true effect is sampled centred.

    Notes
    -----
    Experiment :math:`j` reports estimate :math:`y_j` with standard error
    :math:`s_j` of its true effect :math:`\theta_j`. The true effects come from
    a common distribution:

    .. math::

        y_j \sim \mathrm{Normal}(\theta_j, s_j), \qquad
        \theta_j = \mu + \tau z_j, \qquad z_j \sim \mathrm{Normal}(0, 1),

    or, with ``robust=True``, :math:`z_j \sim t_\nu` (Student-t). A Student-t
    is a scale mixture of normals, :math:`z_j \mid w_j \sim \mathrm{Normal}(0,
    1/\sqrt{w_j})` with tail weight :math:`w_j \sim \mathrm{Gamma}(\nu/2,
    \nu/2)`: a small :math:`w_j` marks an experiment from the tail, which is
    shrunk less. The model samples the Student-t directly (sampling the
    :math:`w_j` gave ten times fewer effective draws of :math:`\nu`), and
    uses the mixture form for the shrinkage factors and the new-experiment
    computations.

    The sampler sees experiment :math:`j` either non-centred (:math:`z_j`, the
    variable ``z``) or centred (:math:`\theta_j \sim \mathrm{Normal}(\mu,
    \tau)` directly, ``theta_centred``). Non-centring suits experiments whose
    standard error exceeds :math:`\tau` (their :math:`\theta_j` is mostly
    prior), centring those measured more precisely (their :math:`\theta_j` is
    pinned by the data, and :math:`z_j = (\theta_j - \mu)/\tau` would be a
    funnel) [2]_. ``"auto"`` centres :math:`j` when :math:`s_j < \hat\tau`,
    with the DerSimonian-Laird moment estimate :math:`\hat\tau` [3]_
    (:func:`estimate_heterogeneity`). On 40 experiments with :math:`s_j <
    \tau` this raised the effective draws of :math:`\mu` from about 80 to
    2,000 per 1,000 draws.

    Default priors (``default_priors``), on the scale of relative lifts:
    ``mu`` Normal(0, 0.5), ``tau`` HalfNormal(0.2) (true lifts of tens of per
    cent are rare), ``nu`` Gamma(2, 0.1) (Juárez and Steel, 2010). For effects
    on another scale (absolute minutes, points) give priors on that scale.

    Learning the prior of effects from past experiments is the empirical side
    of Deng's objective Bayesian A/B test [4]_; the distribution of effects
    across experiments is often heavy-tailed, a few big wins among many
    near-zero effects [5]_, which ``robust=True`` allows for and
    :meth:`predictive_check` helps to detect.

    The learned prior of a new experiment's true effect is the posterior
    predictive :math:`\theta_\mathrm{new} = \mu + \tau z`
    (:meth:`predictive_prior`). Given a new estimate :math:`y` with standard
    error :math:`s`, each posterior draw :math:`d` of :math:`(\mu, \tau)` gives
    the conjugate update

    .. math::

        \theta \mid y, d \sim \mathrm{Normal}\big(B_d\,\mu_d + (1 - B_d)\,y,\;
        \sqrt{B_d}\,\tau_d\big), \qquad B_d = \frac{s^2}{s^2 + \tau_d^2},

    and :meth:`shrink` mixes them with weights :math:`\propto \mathrm{Normal}(y;
    \mu_d, \sqrt{\tau_d^2 + s^2})`: the new estimate's own evidence on
    :math:`(\mu, \tau)`, which makes the mixture the exact posterior of the
    hierarchical model with the new experiment added. With ``robust=True`` the
    same holds conditionally on a tail weight :math:`w` drawn from its Gamma
    prior for every draw (:math:`\tau_d^2/w` in place of :math:`\tau_d^2`):
    importance sampling with the prior as proposal. :math:`B` is the
    *shrinkage factor*: 0 keeps the estimate, 1 replaces it with :math:`\mu`.

    References
    ----------
    .. [1] Gelman, A., Carlin, J. B., Stern, H. S., Dunson, D. B., Vehtari, A.
       and Rubin, D. B. (2013). Bayesian Data Analysis, 3rd ed., sec. 5.5
       (eight schools) and 5.6 (meta-analysis).
    .. [2] Papaspiliopoulos, O., Roberts, G. O. and Sköld, M. (2007). A general
       framework for the parametrization of hierarchical models. Statistical
       Science 22(1), 59-73.
    .. [3] DerSimonian, R. and Laird, N. (1986). Meta-analysis in clinical
       trials. Controlled Clinical Trials 7(3), 177-188.
    .. [4] Deng, A. (2015). Objective Bayesian two sample hypothesis testing for
       online controlled experiments. Proceedings of WWW '15 Companion, 923-928.
    .. [5] Azevedo, E. M., Deng, A., Montiel Olea, J. L., Rao, J. and Weyl, E. G.
       (2020). A/B testing with fat tails. Journal of Political Economy 128(12),
       4614-4672.
    .. [6] Juárez, M. A. and Steel, M. F. J. (2010). Model-based clustering of
       non-Gaussian panel data based on skew-t distributions. Journal of
       Business & Economic Statistics 28(1), 52-66.
    .. [7] Vehtari, A., Gelman, A. and Gabry, J. (2017). Practical Bayesian
       model evaluation using leave-one-out cross-validation and WAIC.
       Statistics and Computing 27, 1413-1432.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(3)
    >>> theta = rng.normal(0.01, 0.02, size=40)
    >>> history = pd.DataFrame({"experiment_id": [f"exp{j}" for j in range(40)],
    ...                         "estimate": rng.normal(theta, 0.015),
    ...                         "std_error": 0.015})
    >>> model = ExperimentHistoryModel().fit(history, method="map", random_seed=1)
    >>> list(model.population_effect().index)
    ['mu', 'tau']
    >>> new = model.shrink(0.08, 0.03)
    >>> mu = float(model.population_effect().loc["mu", "mean"])
    >>> bool(mu < new["mean"].item() < 0.08), bool(0 < new["shrinkage"].item() < 1)
    (True, True)
    """

    default_priors: ClassVar[Mapping[str, Prior]] = {
        "mu": Prior("Normal", mu=0.0, sigma=0.5),
        "tau": Prior("HalfNormal", sigma=0.2),
        "nu": Prior("Gamma", alpha=2.0, beta=0.1),
    }

    def __init__(
        self,
        *,
        robust: bool = False,
        experiment_id: str = "experiment_id",
        estimate: str = "estimate",
        std_error: str = "std_error",
        parameterization: Literal["auto", "centred", "non-centred"] = "auto",
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
    ) -> None:
        self.robust = robust
        self.parameterization = parameterization
        check_choice(_OWNER, "parameterization", parameterization, PARAMETERIZATIONS)
        self.experiment_id = experiment_id
        self.estimate = estimate
        self.std_error = std_error
        self.robust = check_bool(_OWNER, "robust", robust)
        check_column_names(_OWNER, experiment_id=experiment_id, estimate=estimate,
                           std_error=std_error)
        super().__init__(priors=priors)
        if not robust and "nu" in (priors or {}):
            raise ValueError(f"{_OWNER}(robust=False) does not use the prior 'nu'; it uses "
                             "['mu', 'tau'].")

    # ------------------------------------------------------------------ data
    def _validate_data(self, data: Any) -> pd.DataFrame:
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"The 'data' parameter of {_OWNER}.fit must be a pandas DataFrame "
                            f"of past experiments. Got {type(data).__name__} instead.")
        columns = [self.experiment_id, self.estimate, self.std_error]
        problems = [Problem(c, "a column of the experiment history",
                            fix=f"pass one row per past experiment with columns {columns}")
                    for c in columns if c not in data.columns]
        if problems:
            raise DataValidationError(problems, what=_WHAT)
        frame = data[columns].reset_index(drop=True)
        ids = frame[self.experiment_id]
        if ids.isna().any():
            problems.append(row_problem(self.experiment_id, "no missing values",
                                         ids.isna().to_numpy(), ids))
        dup = (ids.duplicated(keep=False) & ids.notna()).to_numpy()
        if dup.any():
            problems.append(row_problem(self.experiment_id, "one row per experiment", dup, ids,
                                         fix="keep one estimate per experiment and metric"))
        for column, rule, fix in (
            (self.estimate, "finite numbers", "drop experiments without an estimate"),
            (self.std_error, "positive finite numbers",
             "a standard error must be > 0; drop experiments without one"),
        ):
            values = frame[column]
            if not (pd.api.types.is_numeric_dtype(values.dtype)
                    and not pd.api.types.is_bool_dtype(values.dtype)):
                problems.append(Problem(column, f"numbers (got dtype {values.dtype})",
                                        fix=f"convert '{column}' with pd.to_numeric"))
                continue
            num = values.to_numpy(dtype=float, na_value=np.nan)
            bad = ~np.isfinite(num)
            if column == self.std_error:
                bad |= np.isfinite(num) & (num <= 0)
            if bad.any():
                problems.append(row_problem(column, rule, bad, values, fix=fix))
        if len(frame) < 2:
            problems.append(Problem(TABLE, f"at least two past experiments (got {len(frame)})",
                                    fix="a prior learned from history needs a history"))
        if problems:
            raise DataValidationError(problems, what=_WHAT)
        frame[self.estimate] = frame[self.estimate].astype(float)
        frame[self.std_error] = frame[self.std_error].astype(float)
        return frame

    # --------------------------------------------------------------- model
    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        priors = self.resolved_priors()
        self.experiments_ = list(data[self.experiment_id])
        y = data[self.estimate].to_numpy()
        s = data[self.std_error].to_numpy()
        centred = self._centred(y, s)
        self.centred_ = [e for e, c in zip(self.experiments_, centred, strict=True) if c]
        coords = {"experiment": self.experiments_, "centred_experiment": self.centred_,
                  "noncentred_experiment": [e for e, c in zip(self.experiments_, centred,
                                                              strict=True) if not c]}
        with pm.Model(coords=coords) as model:
            mu = priors["mu"].create("mu")
            tau = priors["tau"].create("tau")
            nu = priors["nu"].create("nu") if self.robust else None
            parts = []
            for dim, loc, scale in (("noncentred_experiment", 0.0, 1.0),
                                    ("centred_experiment", mu, tau)):
                if not coords[dim]:
                    continue
                name = "z" if dim.startswith("non") else "theta_centred"
                if self.robust:
                    parts.append(pm.StudentT(name, nu=nu, mu=loc, sigma=scale, dims=dim))
                else:
                    parts.append(pm.Normal(name, loc, scale, dims=dim))
            if not centred.all():  # the non-centred part comes first
                parts[0] = mu + tau * parts[0]
            order = np.argsort(np.r_[np.flatnonzero(~centred), np.flatnonzero(centred)])
            theta = pt.concatenate(parts)[order] if len(parts) == 2 else parts[0]
            theta = pm.Deterministic("theta", theta, dims="experiment")
            pm.Normal("estimate", mu=theta, sigma=s, observed=y, dims="experiment")
        return model

    def _centred(self, y: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Which experiments get a centred true effect (the rest are non-centred)."""
        if self.parameterization != "auto":
            return np.full(y.size, self.parameterization == "centred")
        return s < estimate_heterogeneity(y, s)

    def _parameter_names(self) -> list[str]:
        return ["mu", "tau", *(["nu"] if self.robust else []), "theta"]

    def _ids(self) -> pd.Index:
        return pd.Index(self.data_[self.experiment_id], name=self.experiment_id)

    # ----------------------------------------------------------- learned prior
    def _draws(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        return posterior_arrays(self.idata_, names)

    def population_effect(self, *, ci_prob: float = 0.95) -> pd.DataFrame:
        r"""Posterior of the learned prior's parameters: the mean and spread of true effects.

        Parameters
        ----------
        ci_prob : float, default 0.95
            Probability mass of the equal-tailed credible interval.

        Returns
        -------
        pandas.DataFrame
            Rows ``mu`` (the average true effect), ``tau`` (the scale of true
            effects around it) and, with ``robust=True``, ``nu`` (the degrees of
            freedom: small values mean heavy tails); columns ``mean``, ``sd``,
            ``ci_lower``, ``ci_upper``. ``attrs["ci_prob"]``.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            If ``ci_prob`` is not in (0, 1).
        """
        self._require_fitted("population_effect()")
        check_probability(f"{_OWNER}.population_effect", "ci_prob", ci_prob)
        names = ["mu", "tau", *(["nu"] if self.robust else [])]
        draws = self._draws(names)
        return summarize_draws(np.column_stack([draws[n] for n in names]), ci_prob=ci_prob,
                               index=pd.Index(names, name="parameter"))

    def _components(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Means and sds of the prior of a new true effect: one normal per component."""
        draws = self._draws(["mu", "tau", *(["nu"] if self.robust else [])])
        return prior_components(draws["mu"], draws["tau"], draws.get("nu"), rng)

    def predictive_prior(
        self,
        *,
        ci_prob: float = 0.95,
        return_draws: bool = False,
        random_seed: int | np.random.Generator | None = None,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Summarise the learned prior: the distribution of a new experiment's true effect.

        Parameters
        ----------
        ci_prob : float, default 0.95
            Probability mass of the equal-tailed interval.
        return_draws : bool, default False
            Return draws of :math:`\mu + \tau z`, one per posterior draw.
        random_seed : int, numpy.random.Generator or None
            Seed of :math:`z` (and of the tail weights with ``robust=True``).

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            One row ``new_experiment``: ``mean``, ``sd``, ``ci_lower``,
            ``ci_upper`` and ``prob_positive`` (the share of new experiments whose
            true effect is positive). With ``return_draws=True``, dims
            ``(chain, draw)``.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            If ``ci_prob`` is not in (0, 1).

        Notes
        -----
        The summary is exact for the posterior draws: the mixture over draws of
        :math:`\mathrm{Normal}(\mu_d, \tau_d)` (with ``robust=True``, of
        :math:`\mathrm{Normal}(\mu_d, \tau_d/\sqrt{w})` with drawn tail weights
        :math:`w`), whose quantiles are found by a safeguarded Newton iteration on its CDF.
        """
        self._require_fitted("predictive_prior()")
        check_probability(f"{_OWNER}.predictive_prior", "ci_prob", ci_prob)
        rng = np.random.default_rng(resolve_seed(random_seed))
        if return_draws:
            post = self.idata_["posterior"]
            shape = post["mu"].shape
            z = rng.standard_normal(shape)
            if self.robust:
                nu = post["nu"].values
                z = z / np.sqrt(rng.gamma(nu / 2, 2 / nu))
            return (post["mu"] + post["tau"] * z).rename("theta_new")
        mean, sd = self._components(rng)
        frame = pd.DataFrame(normal_mixture_summary(mean[:, None], sd[:, None], ci_prob),
                             index=pd.Index(["new_experiment"]))
        frame.attrs["ci_prob"] = ci_prob
        return frame

    # -------------------------------------------------------------- shrinkage
    def shrink(
        self,
        estimate: float | Sequence[float] | np.ndarray | pd.Series,
        std_error: float | Sequence[float] | np.ndarray | pd.Series,
        *,
        ci_prob: float = 0.95,
        return_draws: bool = False,
        random_seed: int | np.random.Generator | None = None,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Posterior of new experiments' true effects given their estimates: the shrunken estimate.

        Parameters
        ----------
        estimate : float, array-like or pandas.Series
            Estimated effects of new experiments, on the scale of the history.
        std_error : float, array-like or pandas.Series
            Their standard errors (> 0); a scalar applies to every estimate.
        ci_prob : float, default 0.95
            Probability mass of the equal-tailed credible interval.
        return_draws : bool, default False
            Return Monte Carlo draws of the true effects instead of the summary.
        random_seed : int, numpy.random.Generator or None
            Seed of the draws (and of the tail weights with ``robust=True``); the
            summary of the normal model does not depend on it.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            One row per new experiment, indexed like ``estimate`` (a Series keeps
            its index): ``estimate``, ``std_error``, ``mean``, ``sd``,
            ``ci_lower``, ``ci_upper``, ``prob_positive`` and ``shrinkage`` (the
            posterior mean of :math:`B = s^2/(s^2 + \tau^2)`: 0 keeps the estimate,
            1 replaces it with the population mean). With ``return_draws=True``,
            dims ``(draw, experiment)``, as many draws as the posterior has.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            If the estimates are not finite, the standard errors not positive,
            their lengths differ or ``ci_prob`` is not in (0, 1).

        Notes
        -----
        See the class Notes: per posterior draw the conjugate normal update,
        mixed with weights proportional to the new estimate's marginal
        likelihood :math:`\mathrm{Normal}(y; \mu_d, \sqrt{\tau_d^2 + s^2})`.
        """
        self._require_fitted("shrink()")
        owner = f"{_OWNER}.shrink"
        check_probability(owner, "ci_prob", ci_prob)
        y, s, index = check_new_estimates(estimate, std_error, owner)
        rng = np.random.default_rng(resolve_seed(random_seed))
        mean, sd = self._components(rng)
        n_draws = self._draws(["mu"])["mu"].size if return_draws else None
        result = shrink_estimates(y, s, mean, sd, ci_prob=ci_prob, n_draws=n_draws, rng=rng)
        if return_draws:
            return xr.DataArray(result, dims=("draw", "experiment"),
                                coords={"experiment": index}, name="theta_new")
        result.index = index
        result.attrs["ci_prob"] = ci_prob
        return result

    def experiment_effects(
        self, *, ci_prob: float = 0.95, return_draws: bool = False
    ) -> pd.DataFrame | xr.DataArray:
        r"""Posterior of the past experiments' true effects: the history, shrunk.

        Parameters
        ----------
        ci_prob : float, default 0.95
            Probability mass of the equal-tailed credible interval.
        return_draws : bool, default False
            Return the posterior draws of :math:`\theta_j` instead of the summary.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            Indexed by experiment id: ``estimate``, ``std_error``, ``mean``,
            ``sd``, ``ci_lower``, ``ci_upper``, ``prob_positive`` and
            ``shrinkage`` (posterior mean of :math:`s_j^2/(s_j^2 + \tau^2)`, with
            ``robust=True`` of :math:`s_j^2/(s_j^2 + \tau^2/w_j)`, averaged over the
            tail weight's conditional posterior :math:`w_j \mid z_j, \nu \sim
            \mathrm{Gamma}((\nu + 1)/2, (\nu + z_j^2)/2)`). With
            ``return_draws=True``, dims ``(chain, draw, experiment)``.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            If ``ci_prob`` is not in (0, 1).
        """
        self._require_fitted("experiment_effects()")
        check_probability(f"{_OWNER}.experiment_effects", "ci_prob", ci_prob)
        if return_draws:
            return self.idata_["posterior"]["theta"]
        draws = self._draws(["theta", "tau", *(["mu", "nu"] if self.robust else [])])
        s2 = self.data_[self.std_error].to_numpy() ** 2
        if self.robust:
            factor = tail_shrinkage(draws["theta"], draws["mu"], draws["tau"], draws["nu"], s2)
        else:
            factor = s2 / (s2 + draws["tau"][:, None] ** 2)
        frame = summarize_draws(draws["theta"], ci_prob=ci_prob, index=self._ids())
        frame["prob_positive"] = (draws["theta"] > 0).mean(axis=0)
        frame.insert(0, "std_error", self.data_[self.std_error].to_numpy())
        frame.insert(0, "estimate", self.data_[self.estimate].to_numpy())
        frame["shrinkage"] = factor.mean(axis=0)
        return frame

    # ------------------------------------------------------------------ checks
    def predictive_check(
        self, *, random_seed: int | np.random.Generator | None = None
    ) -> pd.DataFrame:
        r"""Leave-one-out predictive check of every past experiment.

        How surprising is each past estimate to the model fitted to all the
        others? A well-specified model gives roughly uniform probability
        integral transforms (PIT); estimates in the far tails (PIT near 0 or 1)
        are experiments the learned prior cannot explain (a big win under a
        normal prior: try ``robust=True``), and a PIT histogram piled up in the
        middle means the standard errors are overstated.

        Parameters
        ----------
        random_seed : int, numpy.random.Generator or None
            Seed of the tail weights (``robust=True`` only).

        Returns
        -------
        pandas.DataFrame
            Indexed by experiment id: ``estimate``, ``std_error``, ``pit``
            (:math:`P(y^\mathrm{rep}_j \le y_j \mid y_{-j})`), ``z`` (the PIT as a
            standard normal score, :math:`\Phi^{-1}(\mathrm{pit})`), ``p_value``
            (two-sided, :math:`2\min(\mathrm{pit}, 1 - \mathrm{pit})`) and
            ``pareto_k`` (reliability of the importance weights: above 0.7 the
            leave-one-out estimate of that experiment is not to be trusted; refit
            without it; NaN when the draws do not vary, as after ``method="map"``).
            ``attrs["uniformity_p_value"]`` is the Kolmogorov-Smirnov
            test of the PITs against the uniform distribution.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.

        Notes
        -----
        With :math:`\theta_j` integrated out, :math:`y_j \mid \mu, \tau \sim
        \mathrm{Normal}(\mu, \sqrt{\tau^2 + s_j^2})` (with ``robust=True`` the
        average over tail weights :math:`w` of
        :math:`\mathrm{Normal}(\mu, \sqrt{\tau^2/w + s_j^2})`). The posterior
        draws of :math:`(\mu, \tau)` are reweighted to the posterior without
        experiment :math:`j` by Pareto-smoothed importance sampling with ratios
        :math:`1/p(y_j \mid \mu, \tau)` (Vehtari et al., 2017), and
        :math:`\mathrm{pit}_j = \sum_d W_{jd}\, P(y^\mathrm{rep}_j \le y_j \mid d)`.
        """
        self._require_fitted("predictive_check()")
        rng = np.random.default_rng(resolve_seed(random_seed))
        mean, sd = self._components(rng)
        y = self.data_[self.estimate].to_numpy()
        s = self.data_[self.std_error].to_numpy()
        pit, khat = loo_pit(y, s, mean, sd, self._draws(["mu"])["mu"].size)
        frame = pd.DataFrame({
            "estimate": y, "std_error": s, "pit": pit,
            "z": special.ndtri(pit), "p_value": 2 * np.minimum(pit, 1 - pit),
            "pareto_k": khat,
        }, index=self._ids())
        frame.attrs["uniformity_p_value"] = float(stats.kstest(pit, "uniform").pvalue)
        return frame
