r"""Long-term effects of an experiment from its short-term metrics: the surrogate index.

An experiment runs for a few weeks; the outcome that matters (active days over
the next months, still listening at month 6) is observed only much later. The
surrogate index (Athey, Chetty, Imbens & Kang 2019) bridges the gap: on a
reference sample where both are observed (an earlier cohort, or the control
arms of past experiments), :class:`SurrogateIndexModel` learns the expected
long-term outcome given the short-term metrics, :math:`h(s) = E[Y \mid S = s]`;
applied to each arm of a new experiment, the arm average of :math:`h(S_i)`
estimates the arm's long-term mean, and the difference estimates the long-term
effect, with an interval that carries both the uncertainty of :math:`h` and the
sampling noise of the experiment's arms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from models._validation import TABLE, check_choice, check_positive_int, row_problem
from models.base import BayesianModel
from models.exceptions import DataValidationError, Problem
from models.experiments._checks import check_bool, check_probability
from models.experiments._mixtures import normal_mixture_summary
from models.experiments._surrogate_index import (
    BLOCK_ELEMENTS,
    Scaling,
    arm_moments,
    column_problems,
    surrogate_index,
)
from models.predict import eti_bounds, posterior_arrays, sample_shape, summarize_draws
from models.priors import Prior

__all__ = ["SurrogateIndexModel"]

LIKELIHOODS = ("normal", "bernoulli", "poisson", "negative_binomial")
#: The reference sample needs at least this many rows per coefficient (surrogates + intercept).
ROWS_PER_COEFFICIENT = 10
_PRIORS_USED = {
    "normal": ("intercept", "beta", "sigma"),
    "bernoulli": ("intercept", "beta"),
    "poisson": ("intercept", "beta"),
    "negative_binomial": ("intercept", "beta", "overdispersion"),
}
_MIN_MC_DRAWS = 4000


class SurrogateIndexModel(BayesianModel):
    r"""Surrogate index: a Bayesian model of a long-term outcome given short-term metrics.

    Parameters
    ----------
    surrogates : list of str
        Columns holding the short-term metrics (active days, plays and skips in
        each of the first weeks, ...), present in both the reference and the
        experiment sample.
    outcome : str
        Column of the reference sample holding the long-term outcome.
    likelihood : {"normal", "bernoulli", "poisson", "negative_binomial"}, default "normal"
        ``"normal"`` for a continuous outcome (identity link); ``"bernoulli"``
        for a 0/1 outcome such as "still active at month 6" (logit link);
        ``"poisson"`` or ``"negative_binomial"`` for a count such as active days
        in months 2-6 (log link; the negative binomial allows overdispersion).
    standardize : bool, default True
        Centre and scale the surrogates by their reference-sample means and
        standard deviations (and, with the normal likelihood, the outcome too;
        with a link function, centre the intercept on the link of the mean
        outcome), so that the default priors are weakly informative whatever
        the units. With False every prior applies to the raw units.
    higher_is_better : bool, default True
        Direction of the outcome, used by ``prob_better`` in
        :meth:`estimate_effect` (False for an outcome such as "churned by month 6").
    priors : mapping of str to Prior, optional
        Replacements for the default priors ``intercept`` (Normal(0, 2.5)),
        ``beta`` (Normal(0, 2.5), one per surrogate), ``sigma`` (HalfNormal(1),
        normal likelihood) and ``overdispersion`` (HalfNormal(1), negative
        binomial). Naming a prior the likelihood does not use is an error.

    Attributes
    ----------
    scaling_ : object
        Means and scales of the surrogates and the outcome learnt from the
        reference sample (set by :meth:`fit`).

    Notes
    -----
    **Model.** With :math:`z_{ik} = (s_{ik} - \bar s_k)/\mathrm{sd}(s_k)` the
    standardised surrogates of user :math:`i` (reference-sample means and
    standard deviations) and :math:`\eta_i = c + \beta_0 + z_i^\top \beta`,

    .. math::

        \text{normal:} &\quad (y_i - \bar y)/\mathrm{sd}(y) \sim N(\eta_i, \sigma^2),
        \quad c = 0, \\
        \text{bernoulli:} &\quad y_i \sim \mathrm{Bernoulli}(\operatorname{logit}^{-1}
        \eta_i), \quad c = \operatorname{logit} \bar y, \\
        \text{poisson:} &\quad y_i \sim \mathrm{Poisson}(e^{\eta_i}),
        \quad c = \log \bar y, \\
        \text{negative binomial:} &\quad y_i \sim \mathrm{NegBin}(\mu_i = e^{\eta_i},
        \operatorname{var} = \mu_i + \phi^2 \mu_i^2), \quad c = \log \bar y,

    with :math:`\beta_0, \beta_k \sim N(0, 2.5^2)`, :math:`\sigma, \phi \sim
    \mathrm{HalfNormal}(1)`: the scaled-prior convention of Gelman et al. (2008)
    and rstanarm, a coefficient of 2.5 outcome standard deviations (or log-odds,
    or log-rate units) per standard deviation of a surrogate being large. The
    posterior also holds ``coef``, the change of the linear predictor per raw
    unit of each surrogate (outcome units for the normal likelihood).

    **Surrogate index and the effect.** For a posterior draw :math:`\theta_d`,
    the surrogate index of a user is :math:`\hat y_i(\theta_d) = E[Y \mid S_i,
    \theta_d]`, and the long-term mean of arm :math:`a` with :math:`n_a` users is
    estimated by :math:`m_a(\theta_d) = n_a^{-1}\sum_{i \in a} \hat y_i(\theta_d)`.
    The estimand is the population effect :math:`\tau = E[Y(T)] - E[Y(C)] =
    E[h(S(T))] - E[h(S(C))]`. Two sources of uncertainty enter:

    - the surrogate model's parameters: :math:`\Delta_d = m_T(\theta_d) -
      m_C(\theta_d)` varies over draws (the same draw is used for both arms,
      so much of it cancels);
    - the experiment's sampling noise: an arm mean of :math:`\hat y` from
      :math:`n_a` users estimates the population mean with variance
      :math:`v_a(\theta_d)/n_a`, :math:`v_a` the within-arm variance of
      :math:`\hat y_i(\theta_d)`.

    The posterior of :math:`\tau` is the mixture
    :math:`\frac1D \sum_d N\big(\Delta_d, V_d\big)`, :math:`V_d = v_T/n_T +
    v_C/n_C`; its mean, standard deviation, equal-tailed interval (found by a
    safeguarded Newton iteration on the mixture's distribution function) and
    :math:`P(\tau > 0) = \frac1D\sum_d \Phi(\Delta_d/\sqrt{V_d})` are exact
    given the draws. By the law of total variance
    :math:`\operatorname{var}(\tau) = \operatorname{var}_d(\Delta_d) +
    \operatorname{mean}_d(V_d)`: the parameter and sampling variances reported
    with their shares. The relative lift :math:`\tau / E[Y(C)]` is summarised
    from Monte Carlo draws: per posterior draw, one or more normal draws of each
    arm's sampling error (at least 4000 draws in all).

    **Assumptions.** The index answers the long-term question only if

    - *surrogacy* (Prentice 1989): the treatment affects the outcome only
      through the surrogates, :math:`Y \perp W \mid S`;
    - *comparability*: the relation :math:`E[Y \mid S]` learnt on the reference
      sample holds in the experiment's population (same kind of users, same
      season, same product apart from the treatment);
    - the experiment's surrogates lie within the range seen in the reference
      sample (the model extrapolates otherwise).

    What breaks it: a treatment whose effect shows only later, such as a change
    that raises dropout after the first weeks (a delayed effect on the churn
    hazard) while leaving the first weeks' activity unchanged. The surrogates
    cannot show it, so the index reports no long-term effect; compare the
    projection with the outcome observed so far as it accrues. Adding more
    surrogates (more weeks, more kinds of metrics) makes surrogacy more
    plausible.

    References
    ----------
    .. [1] Athey, S., Chetty, R., Imbens, G. W. and Kang, H. (2019). The surrogate
       index: combining short-term proxies to estimate long-term treatment
       effects more rapidly and precisely. NBER Working Paper 26463.
    .. [2] Prentice, R. L. (1989). Surrogate endpoints in clinical trials:
       definition and operational criteria. Statistics in Medicine 8(4), 431-440.
    .. [3] Gelman, A., Jakulin, A., Pittau, M. G. and Su, Y.-S. (2008). A weakly
       informative default prior distribution for logistic and other regression
       models. Annals of Applied Statistics 2(4), 1360-1383.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from models.experiments.surrogate import SurrogateIndexModel
    >>> rng = np.random.default_rng(4)
    >>> s = rng.normal(5.0, 2.0, size=(400, 2))
    >>> reference = pd.DataFrame({"days_w1": s[:, 0], "days_w2": s[:, 1],
    ...                           "days_m2_6": 10 + 2 * s[:, 0] + 3 * s[:, 1]
    ...                           + rng.normal(0, 4, 400)})
    >>> model = SurrogateIndexModel(surrogates=["days_w1", "days_w2"], outcome="days_m2_6")
    >>> model = model.fit(reference, method="map", random_seed=1)  # NUTS for real use
    >>> arm = np.repeat(["control", "new"], 1000)
    >>> s_exp = rng.normal(5.0, 2.0, size=(2000, 2)) + (arm == "new")[:, None] * [1.0, 0.0]
    >>> experiment = pd.DataFrame({"variant": arm, "days_w1": s_exp[:, 0],
    ...                            "days_w2": s_exp[:, 1]})
    >>> table = model.estimate_effect(experiment, random_seed=2)  # the truth is 1.0 x 2 = 2
    >>> table.loc["new", ["effect", "effect_ci_lower", "effect_ci_upper"]].round(1).tolist()
    [2.0, 1.4, 2.6]
    """

    default_priors: ClassVar[Mapping[str, Prior]] = {
        "intercept": Prior("Normal", mu=0.0, sigma=2.5),
        "beta": Prior("Normal", mu=0.0, sigma=2.5),
        "sigma": Prior("HalfNormal", sigma=1.0),
        "overdispersion": Prior("HalfNormal", sigma=1.0),
    }

    def __init__(
        self,
        *,
        surrogates: Sequence[str],
        outcome: str,
        likelihood: str = "normal",
        standardize: bool = True,
        higher_is_better: bool = True,
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
    ) -> None:
        self.surrogates = surrogates
        self.outcome = outcome
        self.likelihood = likelihood
        self.standardize = standardize
        self.higher_is_better = higher_is_better
        owner = "SurrogateIndexModel"
        if (isinstance(surrogates, str) or not isinstance(surrogates, Sequence)
                or not surrogates or not all(isinstance(c, str) for c in surrogates)
                or len(set(surrogates)) != len(surrogates)):
            raise ValueError(f"The 'surrogates' parameter of {owner} must be a non-empty list of "
                             f"distinct column names. Got {surrogates!r} instead.")
        if not isinstance(outcome, str) or outcome in surrogates:
            raise ValueError(f"The 'outcome' parameter of {owner} must be a column name that is "
                             f"not a surrogate. Got {outcome!r} instead.")
        check_choice(owner, "likelihood", likelihood, LIKELIHOODS)
        self.standardize = check_bool(owner, "standardize", standardize)
        self.higher_is_better = check_bool(owner, "higher_is_better", higher_is_better)
        super().__init__(priors=priors)
        unused = sorted(set(priors or {}) - set(_PRIORS_USED[likelihood]))
        if unused:
            raise ValueError(f"{owner}(likelihood={likelihood!r}) does not use the prior(s) "
                             f"{unused}; its priors are {sorted(_PRIORS_USED[likelihood])}.")

    # ------------------------------------------------------------------- data
    def _validate_data(self, data: Any) -> pd.DataFrame:
        if not isinstance(data, pd.DataFrame):
            raise TypeError("The reference sample of SurrogateIndexModel must be a pandas "
                            f"DataFrame. Got {type(data).__name__} instead.")
        surrogates = list(self.surrogates)
        problems = []
        if self.outcome not in data.columns:
            problems.append(Problem(self.outcome, "the outcome column in the reference sample",
                                    fix="add the long-term outcome of every reference user, or "
                                        "pass outcome=<the column that holds it>"))
        problems += column_problems(data, surrogates, "reference sample")
        if self.outcome in data.columns:
            problems += column_problems(data, [self.outcome], "reference sample")
        if problems:
            raise DataValidationError(problems, what="reference sample")

        clean = data[[*surrogates, self.outcome]].astype(float)
        n, k = clean.shape[0], len(surrogates)
        need = ROWS_PER_COEFFICIENT * (k + 1)
        if n < need:
            most = n // ROWS_PER_COEFFICIENT - 1
            fewer = (f"or at most {most} surrogate(s) for {n} rows" if most > 0
                     else "or fewer surrogates")
            problems.append(Problem(
                TABLE, f"at least {ROWS_PER_COEFFICIENT} rows per coefficient: {need} rows for "
                f"{k} surrogate(s) and an intercept; got {n}",
                fix="use a larger reference sample (more users, more cohorts or the control "
                    f"arms of more past experiments) {fewer}"))
        for column in surrogates:
            if n and clean[column].nunique() < 2:
                problems.append(Problem(
                    column, f"a surrogate that varies across users (it is always "
                    f"{clean[column].iloc[0]!r})",
                    fix=f"drop {column!r} from 'surrogates': a constant cannot predict the "
                        "outcome"))
        problems += self._outcome_problems(clean[self.outcome])
        if problems:
            raise DataValidationError(problems, what="reference sample")
        if self.likelihood != "normal":
            clean[self.outcome] = clean[self.outcome].astype("int64")
        return clean

    def _outcome_problems(self, y: pd.Series) -> list[Problem]:
        values = y.to_numpy()
        column = self.outcome
        if self.likelihood == "bernoulli":
            bad = (values != 0) & (values != 1)
            if bad.any():
                return [row_problem(column, "0 or 1 (bernoulli likelihood)", bad, y,
                                     "code the outcome as 0/1 or choose another likelihood")]
            if values.size and np.unique(values).size < 2:
                return [Problem(column, f"both 0 and 1 among the outcomes (all are {values[0]:g})",
                                fix="use a reference sample in which the outcome varies")]
        elif self.likelihood in ("poisson", "negative_binomial"):
            bad = (values < 0) | (values != np.round(values))
            if bad.any():
                return [row_problem(column, f"non-negative integers ({self.likelihood} "
                                     "likelihood)", bad, y,
                                     "use likelihood='normal' for a continuous outcome")]
            if values.size and not (values > 0).any():
                return [Problem(column, "at least one positive count (all are 0)")]
        elif values.size and np.unique(values).size < 2:
            return [Problem(column, f"an outcome that varies across users (always {values[0]:g})",
                            fix="check that the outcome column was filled in")]
        return []

    # ------------------------------------------------------------------ model
    def _scaling(self, data: pd.DataFrame) -> Scaling:
        return Scaling.fit(data[list(self.surrogates)].to_numpy(dtype=float),
                           data[self.outcome].to_numpy(dtype=float), self.likelihood,
                           self.standardize)

    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        self.scaling_ = sc = self._scaling(data)
        z = (data[list(self.surrogates)].to_numpy(dtype=float) - sc.center) / sc.scale
        y = data[self.outcome].to_numpy()
        priors = self.resolved_priors()
        coords = {"surrogate": list(self.surrogates), "user": np.arange(len(data))}
        with pm.Model(coords=coords) as model:
            intercept = priors["intercept"].create("intercept")
            beta = priors["beta"].create("beta", dims="surrogate")
            pm.Deterministic("coef", beta * sc.outcome_scale / sc.scale, dims="surrogate")
            eta = sc.offset + intercept + (z * beta).sum(axis=1)  # no BLAS needed
            if self.likelihood == "normal":
                sigma = priors["sigma"].create("sigma")
                pm.Normal("outcome", eta, sigma, dims="user",
                          observed=(y - sc.outcome_center) / sc.outcome_scale)
            elif self.likelihood == "bernoulli":
                pm.Bernoulli("outcome", logit_p=eta, observed=y, dims="user")
            elif self.likelihood == "poisson":
                pm.Poisson("outcome", mu=pt.exp(eta), observed=y, dims="user")
            else:
                phi = priors["overdispersion"].create("overdispersion")
                pm.NegativeBinomial("outcome", mu=pt.exp(eta), alpha=1.0 / phi**2, observed=y,
                                    dims="user")
        return model

    def _parameter_names(self) -> list[str]:
        extra = {"normal": ["sigma"], "negative_binomial": ["overdispersion"]}
        return ["intercept", "beta", "coef", *extra.get(self.likelihood, [])]

    # ------------------------------------------------------------ predictions
    def _standardized(self, frame: pd.DataFrame, sample: str) -> np.ndarray:
        problems = column_problems(frame, list(self.surrogates), sample)
        if problems:
            raise DataValidationError(problems, what=sample)
        s = frame[list(self.surrogates)].to_numpy(dtype=float)
        return (s - self.scaling_.center) / self.scaling_.scale

    def _index(self, params: Mapping[str, np.ndarray], z: np.ndarray) -> np.ndarray:
        """Surrogate index E[Y | S, theta_d], shape (draw, user)."""
        return surrogate_index(params, z, self.scaling_, self.likelihood)

    def _arm_moments(self, params: Mapping[str, np.ndarray],
                     z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per draw, the mean and variance (ddof=1) over users of the surrogate index."""
        return arm_moments(params, z, self.scaling_, self.likelihood)

    def _draws(self, max_draws: int | None,
               rng: np.random.Generator) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
        """Posterior draws flattened over chains, and the (chain, draw) shape they came from.

        With ``max_draws`` (fewer than the posterior has), a random subset of that
        many draws, as one chain: the package's one convention
        (:func:`models.predict.posterior_arrays`).
        """
        params = posterior_arrays(self.idata_, ["intercept", "beta"], max_draws=max_draws,
                                  random_seed=rng)
        params["beta"] = params["beta"].reshape(params["intercept"].size, -1)
        return params, sample_shape(self.idata_, max_draws)

    def _experiment_arms(self, experiment: Any, treatment: str, control: Any) -> pd.Series:
        sample = "experiment sample"
        if not isinstance(experiment, pd.DataFrame):
            raise TypeError("The 'experiment' parameter of SurrogateIndexModel.estimate_effect "
                            f"must be a pandas DataFrame. Got {type(experiment).__name__} "
                            "instead.")
        problems = []
        if treatment not in experiment.columns:
            problems.append(Problem(treatment, "the treatment column in the experiment sample",
                                    fix="pass treatment=<the column that holds each user's "
                                        "arm>"))
        problems += column_problems(experiment, list(self.surrogates), sample)
        if problems:
            raise DataValidationError(problems, what=sample)
        arms = experiment[treatment]
        missing = arms.isna().to_numpy()
        if missing.any():
            problems.append(row_problem(treatment, "an arm for every user", missing, arms,
                                         "drop the users without an assignment"))
        else:
            counts = arms.value_counts()
            found = sorted(counts.index, key=str)
            if control not in counts.index:
                problems.append(Problem(treatment, f"rows of the control arm {control!r}; the "
                                        f"arms found are {found}",
                                        fix="pass control=<the label of the control arm>"))
            elif len(counts) < 2:
                problems.append(Problem(treatment, f"at least one arm besides the control arm "
                                        f"{control!r}; found only {found}"))
            small = counts[counts < 2]
            if len(small):
                problems.append(Problem(treatment, f"at least 2 users per arm; arm(s) "
                                        f"{sorted(small.index, key=str)} have fewer"))
        if problems:
            raise DataValidationError(problems, what=sample)
        return arms

    def estimate_effect(
        self,
        experiment: pd.DataFrame,
        *,
        treatment: str = "variant",
        control: Any = "control",
        ci_prob: float = 0.95,
        max_draws: int | None = None,
        random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Estimate the long-term effect of each treatment arm of an experiment.

        Parameters
        ----------
        experiment : pandas.DataFrame
            One row per user of the experiment, with the surrogate columns and
            the ``treatment`` column (other columns are ignored).
        treatment : str, default "variant"
            Column naming each user's arm.
        control : label, default "control"
            Label of the control arm in that column.
        ci_prob : float, default 0.95
            Probability mass of the equal-tailed intervals.
        max_draws : int, optional
            Use at most this many posterior draws (a random subset).
        random_seed : int, numpy.random.Generator or None
            Seed of that subset and of the Monte Carlo draws of the arms'
            sampling errors (used by the lift and by ``return_draws``).
        return_draws : bool, default False
            Return the Monte Carlo draws of the effect instead of the table.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            One row per treatment arm (index ``variant``, the arms other than
            ``control``) with ``n_control``, ``n_treatment``, ``mean_control``,
            ``mean_treatment`` (posterior means of the arms' long-term means),
            ``effect`` (absolute), ``effect_sd``, ``effect_ci_lower``,
            ``effect_ci_upper``, ``lift`` (relative to the control mean),
            ``lift_sd``, ``lift_ci_lower``, ``lift_ci_upper``, ``prob_better``
            (posterior probability that the arm is better than control, using
            ``higher_is_better``), ``var_parameters``, ``var_sampling``,
            ``share_parameter_variance`` and ``share_sampling_variance``;
            ``attrs`` hold ``ci_prob``, ``outcome`` and ``control``. With
            ``return_draws``, the Monte Carlo draws of the effect (each posterior
            draw plus the arms' sampling errors, at least 4000) with dims
            ``(draw, variant)``.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        models.exceptions.DataValidationError
            If the experiment lacks a surrogate column (the message suggests
            similarly named columns) or the treatment column, has missing or
            non-finite surrogates, no control rows, no other arm, or an arm
            with fewer than 2 users.
        ValueError
            For invalid options.

        Notes
        -----
        See the Notes of :class:`SurrogateIndexModel` for the estimator, the
        variance decomposition and the assumptions it rests on.
        """
        owner = "SurrogateIndexModel.estimate_effect"
        self._require_fitted("estimate_effect()")
        check_probability(owner, "ci_prob", ci_prob)
        if max_draws is not None:
            check_positive_int(owner, "max_draws", max_draws)
        arms = self._experiment_arms(experiment, treatment, control)
        z = self._standardized(experiment, "experiment sample")
        rng = np.random.default_rng(random_seed)
        params, _ = self._draws(max_draws, rng)
        labels = arms.to_numpy()
        variants = [v for v in sorted(pd.unique(labels), key=str) if v != control]
        moments = {}
        repeat = -(-_MIN_MC_DRAWS // params["intercept"].size)  # noise draws per posterior draw
        for arm in [control, *variants]:
            rows = labels == arm
            mean, var = self._arm_moments(params, z[rows])
            noise = rng.standard_normal((repeat, mean.size)) * np.sqrt(var / rows.sum())
            moments[arm] = (int(rows.sum()), mean, var / rows.sum(), (mean + noise).reshape(-1))
        n_c, m_c, s2_c, draws_c = moments[control]
        records, effect_draws = [], []
        for arm in variants:
            n_t, m_t, s2_t, draws_t = moments[arm]
            delta, within = m_t - m_c, s2_t + s2_c
            var_p, var_s = float(delta.var()), float(within.mean())
            total = var_p + var_s
            effect = normal_mixture_summary(delta[:, None], np.sqrt(within)[:, None], ci_prob)
            p_up = effect["prob_positive"].item()
            lift = draws_t / draws_c - 1.0
            lift_lo, lift_hi = eti_bounds(lift, ci_prob)
            effect_draws.append(draws_t - draws_c)
            records.append({
                "n_control": n_c, "n_treatment": n_t,
                "mean_control": float(m_c.mean()), "mean_treatment": float(m_t.mean()),
                "effect": effect["mean"].item(), "effect_sd": effect["sd"].item(),
                "effect_ci_lower": effect["ci_lower"].item(),
                "effect_ci_upper": effect["ci_upper"].item(),
                "lift": float(lift.mean()),
                "lift_sd": float(lift.std(ddof=1)) if lift.size > 1 else np.nan,
                "lift_ci_lower": float(lift_lo), "lift_ci_upper": float(lift_hi),
                "prob_better": float(p_up if self.higher_is_better else 1.0 - p_up),
                "var_parameters": var_p, "var_sampling": var_s,
                "share_parameter_variance": var_p / total if total > 0 else np.nan,
                "share_sampling_variance": var_s / total if total > 0 else np.nan,
            })
        if return_draws:
            return xr.DataArray(np.column_stack(effect_draws), dims=("draw", "variant"),
                                coords={"variant": variants}, name="effect",
                                attrs={"outcome": self.outcome, "control": control})
        table = pd.DataFrame.from_records(records, index=pd.Index(variants, name="variant"))
        table.attrs.update(ci_prob=ci_prob, outcome=self.outcome, control=control)
        return table

    def expected_outcome(
        self,
        data: pd.DataFrame | None = None,
        *,
        ci_prob: float = 0.95,
        max_draws: int | None = None,
        random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Posterior of each user's expected long-term outcome given the surrogates.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Users with the surrogate columns (other columns are ignored); the
            reference sample by default.
        ci_prob : float, default 0.95
            Probability mass of the equal-tailed interval.
        max_draws : int, optional
            Use at most this many posterior draws (a random subset, returned as
            one chain of ``max_draws`` draws).
        random_seed : int, numpy.random.Generator or None
            Seed of that subset.
        return_draws : bool, default False
            Return the draws instead of the summary (memory grows with draws x users).

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            Indexed like ``data``: ``mean``, ``sd``, ``ci_lower``, ``ci_upper``
            of :math:`E[Y \mid S_i]` (for the bernoulli likelihood the
            probability of the outcome); with ``return_draws``, dims
            ``(chain, draw, user)`` with ``data``'s index as the ``user``
            coordinate.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        models.exceptions.DataValidationError
            If ``data`` lacks a surrogate column or has non-finite surrogates.

        Notes
        -----
        This is the surrogate index of each user: the mean of the outcome's
        predictive distribution, not a draw from it, so its interval reflects
        only the parameter uncertainty (a user's own outcome varies around it
        with the likelihood's noise).
        """
        owner = "SurrogateIndexModel.expected_outcome"
        self._require_fitted("expected_outcome()")
        check_probability(owner, "ci_prob", ci_prob)
        if max_draws is not None:
            check_positive_int(owner, "max_draws", max_draws)
        frame = self.data_ if data is None else data
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"The 'data' parameter of {owner} must be a pandas DataFrame. "
                            f"Got {type(frame).__name__} instead.")
        z = self._standardized(frame, "data")
        params, (n_chain, n_draw) = self._draws(max_draws, np.random.default_rng(random_seed))
        if return_draws:
            draws = self._index(params, z).reshape(n_chain, n_draw, -1)
            return xr.DataArray(draws, dims=("chain", "draw", "user"),
                                coords={"chain": np.arange(n_chain), "draw": np.arange(n_draw),
                                        "user": frame.index.to_numpy()},
                                name="expected_outcome")
        block = max(1, BLOCK_ELEMENTS // (n_chain * n_draw))
        parts = [summarize_draws(self._index(params, z[start:start + block]), ci_prob=ci_prob,
                                 index=frame.index[start:start + block])
                 for start in range(0, len(frame), block)]
        result = pd.concat(parts) if parts else summarize_draws(
            np.empty((n_chain * n_draw, 0)), ci_prob=ci_prob, index=frame.index)
        result.attrs["ci_prob"] = ci_prob
        return result
