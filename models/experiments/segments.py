r"""Heterogeneous treatment effects across segments: a hierarchical model of one metric.

:class:`SegmentEffectModel` estimates an experiment's effect in every segment
(country, plan, cohort) with partial pooling: small, noisy segments borrow
strength from the others, large ones speak for themselves. Counts use a
negative binomial likelihood, 0/1 metrics a binomial one; both are evaluated
on the per-cell statistics (segment x variant), so the model's cost does not
grow with the number of users.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from models._validation import check_choice, row_problem
from models.base import BayesianModel
from models.exceptions import DataValidationError, Problem
from models.experiments._cells import cell_statistics, centre_segment_effects, sorted_labels
from models.experiments._checks import check_bool, check_column_names, check_probability
from models.listening.count_likelihood import cell_loglik
from models.predict import summarize_draws
from models.priors import Prior

__all__ = ["SegmentEffectModel"]

LIKELIHOODS = ("negative_binomial", "bernoulli")
SCALES = ("relative", "absolute")
PARAMETERIZATIONS = ("auto", "centred", "non-centred")
_WHAT = "per-user metrics"
_COUNT_PRIORS = ("intercept", "sigma_baseline", "effect", "sigma_effect", "alpha")
_BINARY_PRIORS = _COUNT_PRIORS[:-1]


def _summarize(draws: xr.DataArray, ci_prob: float, higher_is_better: bool) -> pd.DataFrame:
    """Mean, sd, equal-tailed interval and P(better) over (chain, draw) of each unit."""
    units = [d for d in draws.dims if d not in ("chain", "draw")]
    flat = draws.stack(__sample__=("chain", "draw")).transpose("__sample__", *units)
    if len(units) > 1:
        flat = flat.stack(__unit__=units)
        index = flat.indexes["__unit__"]
    else:
        index = flat.indexes[units[0]]
    arr = flat.values.reshape(flat.shape[0], -1)
    frame = summarize_draws(arr, ci_prob=ci_prob, index=index)
    frame["prob_better"] = (arr > 0 if higher_is_better else arr < 0).mean(axis=0)
    return frame


class SegmentEffectModel(BayesianModel):
    r"""Hierarchical model of an experiment's effect on one metric in every segment.

    Parameters
    ----------
    metric : str
        Column holding the metric of each user: counts (plays, active days,
        skips) with ``likelihood="negative_binomial"``, 0/1 values (retained,
        converted) with ``likelihood="bernoulli"``.
    segment : str
        Column naming each user's segment (``"country"``, ``"plan"``, ...).
    likelihood : {"negative_binomial", "bernoulli"}
        Distribution of the metric of one user.
    control : str, default "control"
        Label of the control variant.
    variant : str, default "variant"
        Column naming each user's variant.
    higher_is_better : bool, default True
        Direction of ``prob_better``: False for metrics one wants lower (skips).
    parameterization : {"auto", "centred", "non-centred"}, default "auto"
        How the segment effects are written for the sampler (the model is the
        same): centred when the segments' effects are measured more precisely
        than they differ (large experiments), non-centred otherwise; ``"auto"``
        decides from the data (see Notes).
    priors : mapping of str to Prior, optional
        Replacements for the default priors ``intercept``, ``sigma_baseline``,
        ``effect``, ``sigma_effect`` and, for counts, ``alpha`` (see Notes).

    Attributes
    ----------
    segments_ : list
        Segment labels (dim ``segment``), sorted.
    variants_ : list
        Variant labels, the control first (dim ``variant`` of the cells).
    treatments_ : list
        The variants other than the control (dim ``treatment`` of the effects).
    centred_effects_ : bool
        Whether the segment effects were sampled centred.

    Notes
    -----
    User :math:`i` of segment :math:`s` in variant :math:`v` has metric
    :math:`y_i` with mean :math:`\mu_{s,v}`. With :math:`g = \log` for counts
    and :math:`g = \operatorname{logit}` for 0/1 metrics, and treatments
    :math:`k = 1, \dots, K`:

    .. math::

        g(\mu_{s,\mathrm{control}}) &= \beta_0 + b_s, \qquad
        b \sim \mathrm{ZeroSumNormal}(\sigma_b), \\
        g(\mu_{s,k}) &= g(\mu_{s,\mathrm{control}}) + \tau_k + \delta_{s,k}, \qquad
        \delta_{\cdot,k} \sim \mathrm{ZeroSumNormal}(\sigma_\tau), \\
        y_i &\sim \mathrm{NegBin}(\mu_{s,v}, \alpha) \quad\text{or}\quad
        \sum_{i \in (s, v)} y_i \sim \mathrm{Binomial}(n_{s,v}, \mu_{s,v}).

    The baselines :math:`b_s` are independent :math:`\mathrm{Normal}(0, \sigma_b)`
    constrained to sum to zero, so :math:`\beta_0` is the mean log (logit)
    baseline over segments, and likewise the deviations :math:`\delta_{s,k}`
    of each treatment, so :math:`\tau_k` is the mean segment effect. This is
    the model with independent normal
    baselines, reparameterised: their mean :math:`\bar b \sim
    \mathrm{Normal}(0, \sigma_b/\sqrt{S})` is absorbed into the intercept
    (whose prior variance would grow by a negligible :math:`\sigma_b^2/S`).
    It removes the ridge between :math:`\beta_0` and the :math:`b_s`, which
    made NUTS take twice the leapfrog steps per draw on 8 simulated segments.

    The segment's effect ``segment_effect`` is :math:`\tau_k + \delta_{s,k}`
    on the log (rate ratio) or logit (odds ratio) scale; :math:`\tau_k`
    (``effect``) is the effect in a typical segment and :math:`\sigma_\tau`
    (``sigma_effect``) how much segments differ. The baselines are centred
    (well identified with a few hundred users per segment). The effects are
    non-centred, :math:`\delta_{s,k} = \sigma_\tau z_{s,k}` (``effect_z``), when
    segment effects are measured with noise as large as their spread (the
    usual case), and centred (``effect_deviation``) when they are measured more
    precisely, as with a million users, where the non-centred form is a funnel
    (four times the leapfrog steps and failed convergence checks on 1M users
    in 8 segments). ``parameterization="auto"`` centres them when the median
    standard error of the raw segment effects (delta method, from the cells'
    sums of squares) is below half their spread :math:`\hat\sigma_\tau`, estimated
    by DerSimonian-Laird per treatment
    (:func:`~models.experiments.estimate_heterogeneity`).
    The negative binomial has variance
    :math:`\mu + \mu^2/\alpha`, with one :math:`\alpha` for all cells.

    The likelihood is evaluated on cell statistics: per (segment, variant) the
    users :math:`n`, zeros and total, plus the histogram of the counts
    (``models.listening.count_likelihood.cell_loglik``); it equals the sum
    of the per-user log-pmfs, for a cost that does not depend on the users.

    Default priors (``default_priors``): ``intercept`` Normal(0, 5) (log mean
    or logit rate of a typical control segment); ``sigma_baseline``
    HalfNormal(1) (segments' baselines differ by factors around
    :math:`e^{\pm 1}`); ``effect`` Normal(0, 0.5) (a typical effect well within
    a halving or doubling); ``sigma_effect`` HalfNormal(0.1) (segment effects
    differing by tens of per cent are plausible, by a factor two not);
    ``alpha`` Gamma(2, 0.5).

    Effects are reported on the metric's scale: relative
    :math:`\mu_{s,k}/\mu_{s,\mathrm{control}} - 1` (for counts
    :math:`e^{\tau_k + \delta_{s,k}} - 1`) or absolute
    :math:`\mu_{s,k} - \mu_{s,\mathrm{control}}`.

    References
    ----------
    .. [1] Gelman, A., Carlin, J. B., Stern, H. S., Dunson, D. B., Vehtari, A.
       and Rubin, D. B. (2013). Bayesian Data Analysis, 3rd ed., ch. 5
       (hierarchical models) and ch. 16 (generalized linear models).
    .. [2] Betancourt, M. and Girolami, M. (2015). Hamiltonian Monte Carlo for
       hierarchical models. In Current Trends in Bayesian Methodology with
       Applications, CRC Press (centred and non-centred parameterisations).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> users = pd.DataFrame({"variant": np.tile(["control", "new"], 400),
    ...                       "country": np.repeat(["DE", "FR", "SE", "US"], 200)})
    >>> rate = np.where(users["variant"] == "new", 11.0, 10.0)
    >>> users["plays"] = rng.negative_binomial(2.0, 2.0 / (2.0 + rate))
    >>> model = SegmentEffectModel(metric="plays", segment="country",
    ...                            likelihood="negative_binomial")
    >>> model = model.fit(users, method="map", random_seed=1)
    >>> effects = model.segment_effects()
    >>> effects.index.names, list(effects.columns[:5])
    (FrozenList(['segment', 'variant']), ['mean', 'sd', 'ci_lower', 'ci_upper', 'prob_better'])
    >>> model.cell_statistics()[0].loc[("DE", "new"), "n"]
    np.int64(100)
    """

    default_priors: ClassVar[Mapping[str, Prior]] = {
        "intercept": Prior("Normal", mu=0.0, sigma=5.0),
        "sigma_baseline": Prior("HalfNormal", sigma=1.0),
        "effect": Prior("Normal", mu=0.0, sigma=0.5),
        "sigma_effect": Prior("HalfNormal", sigma=0.1),
        "alpha": Prior("Gamma", alpha=2.0, beta=0.5),
    }

    def __init__(
        self,
        *,
        metric: str,
        segment: str,
        likelihood: Literal["negative_binomial", "bernoulli"],
        control: str = "control",
        variant: str = "variant",
        higher_is_better: bool = True,
        parameterization: Literal["auto", "centred", "non-centred"] = "auto",
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
    ) -> None:
        self.metric = metric
        self.segment = segment
        self.likelihood = likelihood
        self.control = control
        self.variant = variant
        self.higher_is_better = higher_is_better
        self.parameterization = parameterization
        owner = "SegmentEffectModel"
        check_column_names(owner, metric=metric, segment=segment, variant=variant)
        check_choice(owner, "likelihood", likelihood, LIKELIHOODS)
        check_choice(owner, "parameterization", parameterization, PARAMETERIZATIONS)
        self.higher_is_better = check_bool(owner, "higher_is_better", higher_is_better)
        super().__init__(priors=priors)
        used = _COUNT_PRIORS if likelihood == "negative_binomial" else _BINARY_PRIORS
        unused = sorted(set(priors or {}) - set(used))
        if unused:
            raise ValueError(f"{owner}(likelihood={likelihood!r}) does not use the prior(s) "
                             f"{unused}; it uses {list(used)}.")

    # ------------------------------------------------------------------ data
    def _validate_data(self, data: Any) -> pd.DataFrame:
        if not isinstance(data, pd.DataFrame):
            raise TypeError("The 'data' parameter of SegmentEffectModel.fit must be a pandas "
                            f"DataFrame of per-user metrics. Got {type(data).__name__} instead.")
        columns = [self.variant, self.segment, self.metric]
        problems = [Problem(c, "a column of the per-user frame",
                            fix=f"pass a frame with columns {columns} (compute_user_metrics(...)"
                                ".frame has 'variant', the user attributes and the metrics)")
                    for c in columns if c not in data.columns]
        if problems:
            raise DataValidationError(problems, what=_WHAT)
        frame = data[columns].copy()
        for column in columns:
            if isinstance(frame[column].dtype, pd.CategoricalDtype):
                frame[column] = frame[column].astype(frame[column].cat.categories.dtype)
            missing = frame[column].isna().to_numpy()
            if missing.any():
                problems.append(row_problem(
                    column, "no missing values", missing, frame[column],
                    fix="drop those users or fill the values (e.g. a segment 'unknown')"))
        y = frame[self.metric]
        y_ok = ~y.isna().to_numpy()
        if self.likelihood == "negative_binomial":
            if not (pd.api.types.is_numeric_dtype(y.dtype) and not pd.api.types.is_bool_dtype(y)):
                problems.append(Problem(self.metric, f"counts (got dtype {y.dtype})",
                                        fix=f"convert '{self.metric}' with pd.to_numeric"))
            else:
                num = y.to_numpy(dtype=float, na_value=np.nan)
                for rule, bad in (
                    ("finite values", y_ok & ~np.isfinite(num)),
                    ("non-negative counts", np.isfinite(num) & (num < 0)),
                    ("integer counts", np.isfinite(num) & (num != np.round(num))),
                ):
                    if bad.any():
                        problems.append(row_problem(
                            self.metric, rule, bad, y,
                            fix="a negative binomial needs counts; use another model for "
                                "continuous metrics such as minutes"))
        elif not pd.api.types.is_bool_dtype(y.dtype):
            if not pd.api.types.is_numeric_dtype(y.dtype):
                problems.append(Problem(self.metric, f"0/1 values (got dtype {y.dtype})",
                                        fix=f"convert '{self.metric}' to 0/1 integers"))
            else:
                bad = y_ok & ~y.isin([0, 1]).to_numpy()
                if bad.any():
                    problems.append(row_problem(
                        self.metric, "0/1 values (a binary metric)", bad, y,
                        fix="use likelihood='negative_binomial' for counts"))
        if problems:
            raise DataValidationError(problems, what=_WHAT)
        frame[self.metric] = y.astype("int64")

        variants = sorted_labels(pd.unique(frame[self.variant]))
        if self.control not in variants:
            problems.append(Problem(
                self.variant, f"the control variant {self.control!r} among the variants "
                f"(found {variants})", fix="pass control=<the label of the control variant>"))
        if len(variants) < 2:
            problems.append(Problem(self.variant, "at least two variants: the control and a "
                                    "treatment", fix="pass the users of every variant"))
        if problems:
            raise DataValidationError(problems, what=_WHAT)
        counts = pd.crosstab(frame[self.segment], frame[self.variant])
        empty = [(s, v) for s in counts.index for v in counts.columns if counts.at[s, v] == 0]
        if empty:
            cells = ", ".join(f"segment {s!r} in variant {v!r}" for s, v in empty[:5])
            more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
            problems.append(Problem(
                self.segment, f"users in every variant of every segment; {len(empty)} cell(s) "
                f"have no data: {cells}{more}",
                fix="merge each such segment with a similar one, or drop its users"))
            raise DataValidationError(problems, what=_WHAT)
        return frame

    def _statistics(self, data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        return cell_statistics(data[self.segment], data[self.variant], data[self.metric],
                               self.control)

    def cell_statistics(
        self, data: pd.DataFrame | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Per-cell (segment x variant) statistics that the likelihood is computed from.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Per-user metrics as in :meth:`fit`; the training data by default.

        Returns
        -------
        cells : pandas.DataFrame
            Indexed by ``(segment, variant)`` (segments sorted, the control first):
            ``n`` (users), ``n_zero`` (users with metric 0), ``total`` (the
            summed metric; the successes of a 0/1 metric) and ``total_sq`` (the
            summed squares, used only to choose the parameterisation).
        histogram : pandas.DataFrame
            ``value`` (the distinct metric values over all users) and ``n`` (users
            with that value).

        Raises
        ------
        models.exceptions.NotFittedError
            Without ``data``, before :meth:`fit`.
        models.exceptions.DataValidationError
            If ``data`` is given and invalid.
        """
        if data is None:
            self._require_fitted("cell_statistics()")
            return self._statistics(self.data_)
        return self._statistics(self._validate_data(data))

    # --------------------------------------------------------------- model
    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        priors = self.resolved_priors()
        cells, hist = self._statistics(data)
        self.segments_ = list(cells.index.get_level_values("segment").unique())
        self.variants_ = list(cells.index.get_level_values("variant").unique())
        self.treatments_ = self.variants_[1:]
        self.centred_effects_ = self._centred_effects(cells)
        shape = (len(self.segments_), len(self.variants_))
        n, n_zero, total = (cells[c].to_numpy(dtype=float).reshape(shape)
                            for c in ("n", "n_zero", "total"))
        rate = total[:, 0].sum() / n[:, 0].sum()
        if self.likelihood == "negative_binomial":
            start = np.log(max(rate, 0.01))
        else:
            start = special.logit(np.clip(rate, 0.01, 0.99))
        coords = {"segment": self.segments_, "variant": self.variants_,
                  "treatment": self.treatments_}
        with pm.Model(coords=coords) as model:
            intercept = priors["intercept"].create("intercept", initval=start)
            sigma_b = priors["sigma_baseline"].create("sigma_baseline")
            baseline = pm.ZeroSumNormal("baseline", sigma=sigma_b, dims="segment")
            effect = priors["effect"].create("effect", dims="treatment")
            sigma_e = priors["sigma_effect"].create("sigma_effect")
            if self.centred_effects_:
                deviation = pm.ZeroSumNormal("effect_deviation", sigma=sigma_e,
                                             dims=("treatment", "segment")).T
            else:
                z = pm.ZeroSumNormal("effect_z", sigma=1.0, dims=("treatment", "segment"))
                deviation = sigma_e * z.T
            seg_effect = pm.Deterministic("segment_effect", effect[None, :] + deviation,
                                          dims=("segment", "treatment"))
            control = (intercept + baseline)[:, None]
            eta = pt.concatenate([control, control + seg_effect], axis=1)
            if self.likelihood == "negative_binomial":
                alpha = priors["alpha"].create("alpha")
                hv, hn = hist["value"].to_numpy(dtype=float), hist["n"].to_numpy(dtype=float)
                pm.Potential("metric_loglik", cell_loglik("negbin", eta, alpha, None, n, n_zero,
                                                          total, hv, hn))
            else:
                pm.Binomial("successes", n=n.astype("int64"), logit_p=eta,
                            observed=total.astype("int64"), dims=("segment", "variant"))
        return model

    def _centred_effects(self, cells: pd.DataFrame) -> bool:
        """Whether to sample the segment effects centred (see the class Notes)."""
        if self.parameterization != "auto":
            return self.parameterization == "centred"
        shape = (len(self.segments_), len(self.variants_))
        return centre_segment_effects(cells, shape, self.likelihood)

    def _parameter_names(self) -> list[str]:
        names = ["intercept", "sigma_baseline", "effect", "sigma_effect"]
        if self.likelihood == "negative_binomial":
            names.append("alpha")
        return [*names, "segment_effect"]

    # ----------------------------------------------------------- predictions
    def _cell_means(self) -> xr.DataArray:
        """Posterior draws of the cell means, dims ``(chain, draw, segment, variant)``."""
        post = self.idata_["posterior"]
        inverse = np.exp if self.likelihood == "negative_binomial" else special.expit
        base = post["intercept"] + post["baseline"]
        effect = post["segment_effect"].rename(treatment="variant")
        means = xr.concat([base.expand_dims(variant=[self.control]), base + effect],
                          dim="variant", coords="minimal", join="outer")
        return inverse(means.transpose("chain", "draw", "segment", "variant"))

    def _effect(self, treat: Any, control: Any, scale: str) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return treat / control - 1.0 if scale == "relative" else treat - control

    def _options(self, method: str, ci_prob: Any, scale: Any) -> None:
        self._require_fitted(f"{method}()")
        owner = f"SegmentEffectModel.{method}"
        check_probability(owner, "ci_prob", ci_prob)
        check_choice(owner, "scale", scale, SCALES)

    def segment_effects(
        self,
        *,
        ci_prob: float = 0.95,
        scale: Literal["relative", "absolute"] = "relative",
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Posterior of the treatment effect in every segment, with partial pooling.

        Parameters
        ----------
        ci_prob : float, default 0.95
            Probability mass of the equal-tailed credible interval.
        scale : {"relative", "absolute"}, default "relative"
            ``"relative"``: :math:`\mu_{s,k}/\mu_{s,\mathrm{control}} - 1` (the
            relative lift); ``"absolute"``: :math:`\mu_{s,k} - \mu_{s,\mathrm{control}}`
            on the metric's scale (a count per user, or a probability).
        return_draws : bool, default False
            Return the posterior draws instead of the summary.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            Indexed by ``(segment, variant)`` (the treatments): ``mean``, ``sd``,
            ``ci_lower``, ``ci_upper``, ``prob_better`` (the posterior probability
            that the treatment is better, in the direction of
            ``higher_is_better``), then ``n_control``, ``n_treatment``,
            ``mean_control``, ``mean_treatment`` (observed) and ``raw_effect``: the
            segment's own difference of observed means on the same scale (the
            "no pooling" estimate). ``attrs`` holds ``ci_prob`` and ``scale``.
            With ``return_draws=True``, an ``xarray.DataArray`` with dims
            ``(chain, draw, segment)``, and ``variant`` last when there are
            several treatments.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            If ``ci_prob`` is not in (0, 1) or ``scale`` is unknown.
        """
        self._options("segment_effects", ci_prob, scale)
        means = self._cell_means()
        draws = self._effect(means.sel(variant=self.treatments_),
                             means.sel(variant=self.control), scale)
        draws.name = f"{scale}_effect"
        if return_draws:
            return draws.isel(variant=0) if len(self.treatments_) == 1 else draws
        frame = _summarize(draws, ci_prob, self.higher_is_better)
        cells = self._statistics(self.data_)[0]
        ratio = cells["total"] / cells["n"]
        control = cells.xs(self.control, level="variant")
        frame["n_control"] = control["n"].reindex(frame.index, level="segment").to_numpy()
        frame["n_treatment"] = cells["n"].reindex(frame.index).to_numpy()
        frame["mean_control"] = (control["total"] / control["n"]).reindex(
            frame.index, level="segment").to_numpy()
        frame["mean_treatment"] = ratio.reindex(frame.index).to_numpy()
        frame["raw_effect"] = self._effect(frame["mean_treatment"], frame["mean_control"],
                                           scale)
        frame.attrs.update(ci_prob=ci_prob, scale=scale, metric=self.metric)
        return frame

    def average_effect(
        self,
        *,
        ci_prob: float = 0.95,
        scale: Literal["relative", "absolute"] = "relative",
        weights: Mapping[Any, float] | pd.Series | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Posterior of the population's average effect: segments weighted by their users.

        Parameters
        ----------
        ci_prob : float, default 0.95
            Probability mass of the equal-tailed credible interval.
        scale : {"relative", "absolute"}, default "relative"
            As in :meth:`segment_effects`.
        weights : mapping or pandas.Series of segment to weight, optional
            The segment mix of the population to average over (normalised to sum
            to one), e.g. each segment's share of the whole user base. By default
            the experiment's users (every variant) per segment.
        return_draws : bool, default False
            Return the posterior draws instead of the summary.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            Indexed by ``variant`` (the treatments): ``mean``, ``sd``,
            ``ci_lower``, ``ci_upper``, ``prob_better``, ``n_control``,
            ``n_treatment`` and ``raw_effect`` (the same weighted average of the
            observed cell means). With ``return_draws=True``, dims
            ``(chain, draw)``, and ``variant`` with several treatments.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            For a bad ``ci_prob`` or ``scale``, or weights that miss a segment,
            name an unknown one, are negative or sum to zero.

        Notes
        -----
        With weights :math:`w_s` (summing to one) the population means are
        :math:`\bar\mu_v = \sum_s w_s \mu_{s,v}`, and the average effect is
        :math:`\bar\mu_k / \bar\mu_\mathrm{control} - 1` (relative) or
        :math:`\bar\mu_k - \bar\mu_\mathrm{control}` (absolute): the effect on
        the population's mean, not an average of segment lifts.
        """
        self._options("average_effect", ci_prob, scale)
        cells = self._statistics(self.data_)[0]
        if weights is None:
            w = cells["n"].groupby(level="segment", sort=False).sum()
        else:
            w = self._weights(weights)
        w = xr.DataArray(w.to_numpy(dtype=float) / w.sum(), dims="segment",
                         coords={"segment": list(w.index)})
        means = (self._cell_means() * w).sum("segment")
        draws = self._effect(means.sel(variant=self.treatments_),
                             means.sel(variant=self.control), scale)
        draws.name = f"average_{scale}_effect"
        if return_draws:
            return draws.isel(variant=0) if len(self.treatments_) == 1 else draws
        frame = _summarize(draws, ci_prob, self.higher_is_better)
        observed = (cells["total"] / cells["n"]).unstack("variant").reindex(self.segments_)
        raw = observed.mul(w.to_series().reindex(self.segments_), axis=0).sum()
        by_variant = cells["n"].groupby(level="variant").sum()
        frame["n_control"] = int(by_variant[self.control])
        frame["n_treatment"] = by_variant.reindex(frame.index).to_numpy()
        frame["raw_effect"] = self._effect(raw.reindex(frame.index).to_numpy(),
                                           raw[self.control], scale)
        frame.attrs.update(ci_prob=ci_prob, scale=scale, metric=self.metric)
        return frame

    def _weights(self, weights: Mapping[Any, float] | pd.Series) -> pd.Series:
        owner = "The 'weights' parameter of SegmentEffectModel.average_effect"
        if not isinstance(weights, Mapping | pd.Series):
            raise ValueError(f"{owner} must be a mapping or Series of segment to weight. "
                             f"Got {weights!r} instead.")
        w = pd.Series(dict(weights) if isinstance(weights, Mapping) else weights, dtype=float)
        missing = [s for s in self.segments_ if s not in w.index]
        unknown = [s for s in w.index if s not in self.segments_]
        if missing or unknown:
            raise ValueError(f"{owner} must give a weight to each fitted segment "
                             f"{self.segments_}; missing {missing}, unknown {unknown}.")
        w = w.reindex(self.segments_)
        if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise ValueError(f"{owner} must be non-negative with a positive sum. "
                             f"Got {dict(w)} instead.")
        return w

