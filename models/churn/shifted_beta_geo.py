"""Shifted-beta-geometric (sBG) model of contractual cohort retention.

Each subscriber renews at the end of every period with a probability that is
constant for her and Beta-distributed across subscribers (Fader & Hardie 2007).
The model is fitted on cohort survivor counts -- the sufficient statistics --
and several segments are partially pooled.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from models._deprecation import deprecated_alias
from models._pointwise import by_blocks, draw_arrays, sample_array
from models.base import BayesianModel
from models.churn._pointwise import sbg_transition_loglik
from models.exceptions import DataValidationError, Problem
from models.predict import posterior_arrays, predict_in_batches, prediction_method, sample_shape
from models.priors import Prior

__all__ = ["ShiftedBetaGeoModel", "melt_cohort_table"]

COHORT = "cohort"
PERIOD = "period"
N_SURVIVING = "n_surviving"
COMPLETE = "complete"
_TABLE = "<table>"
_ROW = "_row"
_N_EXAMPLES = 5
_FLAT = ("alpha", "beta")
_POOLED = ("mu_logit_churn", "sigma_logit_churn", "mu_log_kappa", "sigma_log_kappa")


def melt_cohort_table(wide: pd.DataFrame, *, segment: str | None = None) -> pd.DataFrame:
    """Turn a wide cohort x period table of survivors into the long input of the model.

    Parameters
    ----------
    wide : pandas.DataFrame
        One row per cohort (the index holds the cohort ids; with ``segment``, a
        two-level index ``(segment, cohort)``), one column per period ``0, 1, ...``
        holding the number of users alive at the start of that period (counts,
        not fractions). Missing values mark periods not observed yet and must
        come after the observed ones.
    segment : str, optional
        Name to give the segment level of the index.

    Returns
    -------
    pandas.DataFrame
        Columns ``[segment,] cohort, period, n_surviving``, one row per observed
        cohort and period, sorted.

    Examples
    --------
    >>> import pandas as pd
    >>> wide = pd.DataFrame({0: [100, 80], 1: [60, 50], 2: [45, None]}, index=["jan", "feb"])
    >>> melt_cohort_table(wide)
      cohort  period  n_surviving
    0    feb       0           80
    1    feb       1           50
    2    jan       0          100
    3    jan       1           60
    4    jan       2           45
    """
    if not isinstance(wide, pd.DataFrame):
        raise TypeError(
            "The 'wide' parameter of melt_cohort_table must be a pandas DataFrame. "
            f"Got {type(wide).__name__} instead."
        )
    names = [segment, COHORT] if segment is not None else [COHORT]
    if wide.index.nlevels != len(names):
        raise ValueError(
            f"melt_cohort_table needs an index with {len(names)} level(s) {names}. "
            f"Got {wide.index.nlevels} level(s) instead."
        )
    frame = wide.copy()
    frame.index = frame.index.set_names(names)
    frame.columns = [int(c) for c in frame.columns]
    long = frame.stack(future_stack=True).rename(N_SURVIVING).reset_index()
    long = long.rename(columns={long.columns[len(names)]: PERIOD})
    long = long[long[N_SURVIVING].notna()]
    values = long[N_SURVIVING].to_numpy(dtype=float)
    if (values == np.round(values)).all():
        long[N_SURVIVING] = long[N_SURVIVING].astype("int64")
    return long.sort_values([*names, PERIOD]).reset_index(drop=True)


def _log_beta(a, b, lib=pt):
    """Log B(a, b) with pytensor (``lib=pt``) or scipy (``lib=np``)."""
    gammaln = pt.gammaln if lib is pt else special.gammaln
    return gammaln(a) + gammaln(b) - gammaln(a + b)


def _period_logp(alpha, beta, periods, last, lib=pt):
    """Log-probability of each 'last period alive' cell of a cohort (0 beyond ``last``)."""
    where = pt.switch if lib is pt else np.where
    equal = pt.eq if lib is pt else np.equal
    norm = _log_beta(alpha, beta, lib)
    churn = _log_beta(alpha + 1.0, beta + periods, lib) - norm  # P(T = k + 1)
    survive = _log_beta(alpha, beta + periods, lib) - norm  # S(k) = P(T > k)
    return where(periods < last, churn, where(equal(periods, last), survive, 0.0))


def _cohort_logp(value, alpha, beta, n0, last, periods):
    lp = _period_logp(alpha[..., None], beta[..., None], periods, last[..., None])
    coef = pt.gammaln(n0 + 1.0) - pt.sum(pt.gammaln(value + 1.0), axis=-1)
    return coef + pt.sum(value * lp, axis=-1)


def _cohort_random(alpha, beta, n0, last, periods, rng=None, size=None):
    alpha, beta, n0, last = np.broadcast_arrays(alpha, beta, n0, last)
    if size is not None:
        shape = tuple(np.atleast_1d(size))
        alpha, beta, n0, last = (np.broadcast_to(v, shape) for v in (alpha, beta, n0, last))
    logp = _period_logp(alpha[..., None], beta[..., None], periods, last[..., None], lib=np)
    probs = np.where(periods < last[..., None], np.exp(logp), 0.0)
    censored = np.clip(1.0 - probs.sum(axis=-1), 0.0, 1.0)
    probs = np.where(periods == last[..., None], censored[..., None], probs)
    return rng.multinomial(n0.astype(np.int64), probs / probs.sum(axis=-1, keepdims=True))


def _survival(alpha, beta, t):
    return np.exp(_log_beta(alpha, beta + t, np) - _log_beta(alpha, beta, np))


class ShiftedBetaGeoModel(BayesianModel):
    r"""Shifted-beta-geometric retention model of subscriber cohorts.

    Parameters
    ----------
    priors : mapping of str to Prior, optional
        Replacements for the default priors. Without segments (or with
        ``hierarchical=False``) the priors are ``alpha`` and ``beta`` (one pair
        per segment); with pooled segments they are ``mu_logit_churn``,
        ``sigma_logit_churn``, ``mu_log_kappa`` and ``sigma_log_kappa``. Naming
        a prior the chosen structure does not use is an error.
    segment : str, optional
        Column of the cohort table naming each cohort's segment (plan,
        country, ...). Cohorts are identified by ``(segment, cohort)``.
    hierarchical : bool, default True
        With a ``segment``, partially pool the segments' parameters; with
        ``False`` every segment gets independent ``alpha`` and ``beta``.

    Attributes
    ----------
    segments_ : pandas.Index
        Segment labels (dim ``segment``), present when ``segment`` is set.

    Notes
    -----
    A subscriber's churn probability per period is
    :math:`\theta \sim \mathrm{Beta}(\alpha, \beta)`; she renews at the end of
    each period with probability :math:`1 - \theta`, so her lifetime
    :math:`T \in \{1, 2, \dots\}` (periods paid for) is geometric and

    .. math::

        P(T = t) = \frac{B(\alpha + 1, \beta + t - 1)}{B(\alpha, \beta)}, \quad
        S(t) = P(T > t) = \frac{B(\alpha, \beta + t)}{B(\alpha, \beta)}, \quad
        r_t = \frac{S(t)}{S(t - 1)} = \frac{\beta + t - 1}{\alpha + \beta + t - 1}.

    The input counts :math:`s_{c,k}`, users of cohort :math:`c` alive in period
    :math:`k = 0, \dots, K_c` (so :math:`s_{c,k}/s_{c,0}` estimates
    :math:`S(k)`), are turned into the numbers last seen alive in period
    :math:`k`: :math:`d_{c,k} = s_{c,k} - s_{c,k+1}` churned after period
    :math:`k` (:math:`T = k + 1`) and :math:`s_{c,K_c}` right-censored, which are
    multinomial:

    .. math::

        (d_{c,0}, \dots, d_{c,K_c - 1}, s_{c,K_c}) \sim \mathrm{Multinomial}
        \big(s_{c,0}; P(T = 1), \dots, P(T = K_c), S(K_c)\big).

    Up to the multinomial coefficient this is the sBG likelihood of Fader &
    Hardie (2007). The observed variable ``last_alive`` has dims
    ``(cohort, period)``.

    *LOO and predictive checks.* The unit of the pointwise log-likelihood
    (:meth:`compute_log_likelihood`, variable ``churned``, dim
    ``cohort_period`` with coordinates ``cohort`` and ``period``) is one
    cohort-period transition: of the :math:`s_{c,k}` users alive in period
    :math:`k < K_c`, :math:`d_{c,k}` do not renew,
    :math:`d_{c,k} \sim \mathrm{Binomial}(s_{c,k}, \alpha/(\alpha+\beta+k))`
    given the cohort's earlier periods. These binomials multiply to the
    multinomial above, coefficient included, so the values sum to the model's
    log-likelihood; leaving one out asks how well the other periods and cohorts
    predict that period's churn. :meth:`sample_posterior_predictive` replicates
    ``last_alive`` (cohort x period).

    Priors. Without pooling, :math:`\alpha, \beta \sim \mathrm{LogNormal}(0, 2)`:
    weakly informative over 0.02 to 50 and vanishing as :math:`\alpha, \beta \to
    \infty` (a homogeneous population), where the likelihood has a flat ridge.
    ``priors={"alpha": Prior("HalfFlat"), "beta": Prior("HalfFlat")}`` with
    ``fit(method="map")`` gives the maximum-likelihood estimate: PyMC's
    ``find_MAP`` maximises the log density without the Jacobian of the
    log-transform, i.e. on the natural scale.

    With pooled segments :math:`s` the model is written in the mean churn
    probability :math:`m_s = \alpha_s/(\alpha_s + \beta_s)` (the first-period
    churn rate) and the concentration :math:`\kappa_s = \alpha_s + \beta_s`
    (polarisation :math:`1/(1 + \kappa_s)`), non-centred:

    .. math::

        \operatorname{logit} m_s = \mu_m + \sigma_m z_{m,s}, \quad
        \log \kappa_s = \mu_\kappa + \sigma_\kappa z_{\kappa,s}, \quad
        z \sim \mathrm{Normal}(0, 1),

    with :math:`\mu_m \sim N(-1, 1.5)`, :math:`\sigma_m \sim \mathrm{HalfNormal}(1)`,
    :math:`\mu_\kappa \sim N(1, 1.5)`, :math:`\sigma_\kappa \sim
    \mathrm{HalfNormal}(0.5)`. Pooling :math:`(\alpha, \beta)` on their own log
    scales would tie together two quantities whose posterior is a narrow
    ridge (both grow with :math:`\kappa`); :math:`m` is pinned down by the
    first-period churn while :math:`\kappa` (how fast retention rises) needs
    long cohorts, so they are nearly orthogonal, can be pooled with different
    strength, and have priors one can state in words.

    References
    ----------
    .. [1] Fader, P. S. and Hardie, B. G. S. (2007). How to project customer
       retention. Journal of Interactive Marketing 21(1), 76-90.
    .. [2] Fader, P. S. and Hardie, B. G. S. (2010). Customer-base valuation in
       a contractual setting: the perils of ignoring heterogeneity. Marketing
       Science 29(1), 85-93.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.churn.shifted_beta_geo import ShiftedBetaGeoModel
    >>> from models.priors import Prior
    >>> table = pd.DataFrame({"cohort": "2001", "period": range(8),
    ...     "n_surviving": [1000, 631, 468, 382, 326, 289, 262, 241]})
    >>> flat = {"alpha": Prior("HalfFlat"), "beta": Prior("HalfFlat")}
    >>> model = ShiftedBetaGeoModel(priors=flat).fit(table, method="map", random_seed=1)
    >>> round(float(model.posterior_draws("alpha").mean()), 3)
    0.704
    >>> model.expected_survivors_new_user(n_start=1000, horizon=[8])["mean"].round().tolist()
    [220.0]
    """

    #: a few strongly correlated parameters: NUTS adapts a dense mass matrix (see
    #: :class:`~models.base.BayesianModel`); with the default diagonal one it took
    #: twice the leapfrog steps per draw for half the ESS on CDNOW
    dense_mass_max_dim: ClassVar[int] = 40
    default_priors: ClassVar[Mapping[str, Prior]] = {
        "alpha": Prior("LogNormal", mu=0.0, sigma=2.0),
        "beta": Prior("LogNormal", mu=0.0, sigma=2.0),
        "mu_logit_churn": Prior("Normal", mu=-1.0, sigma=1.5),
        "sigma_logit_churn": Prior("HalfNormal", sigma=1.0),
        "mu_log_kappa": Prior("Normal", mu=1.0, sigma=1.5),
        "sigma_log_kappa": Prior("HalfNormal", sigma=0.5),
    }

    def __init__(
        self,
        *,
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
        segment: str | None = None,
        hierarchical: bool = True,
    ) -> None:
        self.segment = segment
        self.hierarchical = hierarchical
        if segment is not None and not isinstance(segment, str):
            raise ValueError(
                "The 'segment' parameter of ShiftedBetaGeoModel must be a column name (str) "
                f"or None. Got {segment!r} instead."
            )
        if not isinstance(hierarchical, bool):
            raise ValueError(
                "The 'hierarchical' parameter of ShiftedBetaGeoModel must be a bool. "
                f"Got {hierarchical!r} instead."
            )
        super().__init__(priors=priors)
        unused = sorted(set(priors or {}) - set(self._used_priors()))
        if unused:
            raise ValueError(
                f"ShiftedBetaGeoModel(segment={segment!r}, hierarchical={hierarchical}) does "
                f"not use the prior(s) {unused}; it uses {list(self._used_priors())}."
            )

    @property
    def _pooled(self) -> bool:
        return self.segment is not None and self.hierarchical

    def _used_priors(self) -> tuple[str, ...]:
        return _POOLED if self._pooled else _FLAT

    # ------------------------------------------------------------------ data
    def _keys(self) -> list[str]:
        return [self.segment, COHORT] if self.segment is not None else [COHORT]

    def _validate_data(self, data: Any) -> pd.DataFrame:
        if not isinstance(data, pd.DataFrame):
            raise TypeError(
                "The 'data' parameter of ShiftedBetaGeoModel.fit must be a pandas DataFrame "
                f"(a long cohort table). Got {type(data).__name__} instead."
            )
        what = "cohort table"
        keys = self._keys()
        columns = [*keys, PERIOD, N_SURVIVING]
        problems = [
            Problem(c, "a column of the cohort table",
                    fix="pass models.data.summaries.cohort_table output (or melt_cohort_table)")
            for c in columns if c not in data.columns
        ]
        if problems:
            raise DataValidationError(problems, what=what)
        frame = data[columns].copy()
        frame[_ROW] = np.arange(len(data))
        if COMPLETE in data.columns:
            frame = frame[data[COMPLETE].fillna(False).to_numpy(dtype=bool)]
        if len(frame) == 0:
            raise DataValidationError(
                [Problem(_TABLE, "at least one row of a complete period",
                         fix="pass a non-empty cohort table")], what=what)
        for column in columns:
            _add(problems, frame, column, "no missing values", frame[column].isna().to_numpy())
        for column in (PERIOD, N_SURVIVING):
            values = frame[column]
            if not _is_number(values):
                problems.append(Problem(column, f"integer counts (got dtype {values.dtype})",
                                        fix=f"convert '{column}' with pd.to_numeric"))
                continue
            num = values.to_numpy(dtype=float, na_value=np.nan)
            _add(problems, frame, column, "integers", np.isfinite(num) & (num != np.round(num)))
            _add(problems, frame, column, "non-negative values", num < 0)
        if problems:
            raise DataValidationError(problems, what=what)
        frame[PERIOD] = frame[PERIOD].astype("int64")
        frame[N_SURVIVING] = frame[N_SURVIVING].astype("int64")
        frame = frame.sort_values([*keys, PERIOD], kind="stable").reset_index(drop=True)

        unit = frame.groupby(keys, sort=False).ngroup().to_numpy()
        first = np.r_[True, unit[1:] != unit[:-1]]
        period = frame[PERIOD].to_numpy()
        surv = frame[N_SURVIVING].to_numpy()
        prev_p = np.r_[-1, period[:-1]]
        prev_s = np.r_[0, surv[:-1]]
        dup = frame.duplicated([*keys, PERIOD], keep="first").to_numpy()
        _add(problems, frame, PERIOD, "one row per cohort and period", dup)
        if dup.any():
            raise DataValidationError(problems, what=what)
        _add(problems, frame, PERIOD, "each cohort starting at period 0", first & (period != 0),
             fix="number periods from the cohort's start, 0, 1, 2, ...")
        _add(problems, frame, PERIOD, "consecutive periods within a cohort (no gaps)",
             ~first & (period != prev_p + 1), fix="fill in the missing periods")
        _add(problems, frame, N_SURVIVING, "cohorts with users at period 0 (not empty)",
             (period == 0) & (surv == 0), fix="drop empty cohorts")
        grow = ~first & (surv > prev_s)
        if grow.any():
            rows = np.flatnonzero(grow)[:_N_EXAMPLES]
            examples = tuple(
                f"{self._label(frame.loc[r, keys].tolist())}, period {period[r]}: "
                f"{prev_s[r]} -> {surv[r]}" for r in rows)
            problems.append(Problem(
                N_SURVIVING, "survivors that never increase over a cohort's periods",
                n_rows=int(grow.sum()), rows=tuple(int(frame[_ROW].iloc[r]) for r in rows),
                examples=examples,
                fix="n_surviving counts users alive at the start of each period; "
                "a user who returns was alive all along"))
        if problems:
            raise DataValidationError(problems, what=what)
        return frame.drop(columns=_ROW)

    def _label(self, key: list) -> str:
        if self.segment is None:
            return f"cohort {key[0]!r}"
        return f"segment {key[0]!r} cohort {key[1]!r}"

    def _statistics(self, data: pd.DataFrame) -> dict[str, Any]:
        keys = self._keys()
        wide = data.set_index([*keys, PERIOD])[N_SURVIVING].unstack(PERIOD).sort_index()
        counts = (wide - wide.shift(-1, axis=1).fillna(0)).fillna(0)
        periods = wide.columns.to_numpy(dtype="int64")
        units = wide.index
        if self.segment is not None:
            segments = pd.Index(units.get_level_values(0).unique().sort_values(),
                                name=self.segment)
            seg_idx = segments.get_indexer(units.get_level_values(0))
            labels = [f"{s}/{c}" for s, c in units]
        else:
            segments, seg_idx = None, np.zeros(len(units), dtype=int)
            labels = list(units)
        return {
            "counts": counts.to_numpy(dtype="int64"),
            "n0": wide[0].to_numpy(dtype="int64"),
            "last": wide.notna().sum(axis=1).to_numpy(dtype="int64") - 1,
            "periods": periods,
            "segments": segments,
            "seg_idx": seg_idx,
            "labels": labels,
        }

    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        stats = self._statistics(data)
        priors = self.resolved_priors()
        coords: dict[str, Any] = {COHORT: stats["labels"], PERIOD: stats["periods"]}
        dims: str | None = None
        if stats["segments"] is not None:
            coords["segment"] = list(stats["segments"])
            dims = "segment"
        self.segments_ = stats["segments"]
        with pm.Model(coords=coords) as model:
            if self._pooled:
                mu_m = priors["mu_logit_churn"].create("mu_logit_churn")
                sd_m = priors["sigma_logit_churn"].create("sigma_logit_churn")
                mu_k = priors["mu_log_kappa"].create("mu_log_kappa")
                sd_k = priors["sigma_log_kappa"].create("sigma_log_kappa")
                z_m = pm.Normal("z_logit_churn", 0.0, 1.0, dims=dims)
                z_k = pm.Normal("z_log_kappa", 0.0, 1.0, dims=dims)
                mean = pm.math.sigmoid(mu_m + sd_m * z_m)
                kappa = pt.exp(mu_k + sd_k * z_k)
                alpha = pm.Deterministic("alpha", mean * kappa, dims=dims)
                beta = pm.Deterministic("beta", (1.0 - mean) * kappa, dims=dims)
            else:
                alpha = priors["alpha"].create("alpha", dims=dims)
                beta = priors["beta"].create("beta", dims=dims)
            idx = stats["seg_idx"]
            a = alpha[idx] if dims else pt.repeat(alpha, len(idx))
            b = beta[idx] if dims else pt.repeat(beta, len(idx))
            pm.CustomDist(
                "last_alive", a, b, stats["n0"].astype(float), stats["last"].astype(float),
                stats["periods"].astype(float),
                logp=_cohort_logp, random=_cohort_random,
                signature="(),(),(),(),(p)->(p)",
                observed=stats["counts"], dims=(COHORT, PERIOD),
            )
        return model

    def _parameter_names(self) -> list[str]:
        if self._pooled:
            return [*_POOLED, "alpha", "beta"]
        return list(_FLAT)

    # ------------------------------------------------ LOO and predictive checks
    def _cohort_draws(self, posterior: xr.Dataset,
                      seg_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Draws ``(draws, cohorts)`` of each cohort's alpha and beta."""
        p = draw_arrays(posterior, ["alpha", "beta"])
        return tuple(v.reshape(v.shape[0], -1)[:, seg_idx] for v in (p["alpha"], p["beta"]))

    def _pointwise_log_likelihood(self, posterior: xr.Dataset) -> dict[str, xr.DataArray]:
        stats = self._statistics(self.data_)
        counts, last = stats["counts"], stats["last"]
        cohort = np.repeat(np.arange(len(last)), last)  # one unit per observed transition
        period = np.concatenate([np.arange(k) for k in last]).astype(np.int64)
        churned = counts[cohort, period].astype(float)
        lost_before = np.cumsum(counts, axis=1) - counts  # churned in earlier periods
        at_risk = stats["n0"][cohort] - lost_before[cohort, period]
        a, b = self._cohort_draws(posterior, stats["seg_idx"])
        values = by_blocks(
            lambda i: sbg_transition_loglik(a[:, cohort[i]], b[:, cohort[i]], period[i],
                                            at_risk[i], churned[i]),
            a.shape[0], len(cohort))
        labels = np.asarray(stats["labels"], dtype=object)[cohort].astype(str)
        return {"churned": sample_array(values, posterior, "cohort_period",
                                        extra_coords={COHORT: labels, PERIOD: period})}

    def _posterior_predictive(self, posterior: xr.Dataset,
                              rng: np.random.Generator) -> dict[str, xr.DataArray]:
        stats = self._statistics(self.data_)
        a, b = self._cohort_draws(posterior, stats["seg_idx"])
        periods = stats["periods"].astype(float)
        draws = _cohort_random(a, b, stats["n0"][None, :].astype(float),
                               stats["last"][None, :].astype(float), periods, rng=rng)
        chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
        return {"last_alive": xr.DataArray(
            draws.reshape(chains, n_draws, *draws.shape[1:]),
            dims=("chain", "draw", COHORT, PERIOD),
            coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values,
                    COHORT: stats["labels"], PERIOD: stats["periods"]})}

    def _observed_data(self) -> dict[str, xr.DataArray]:
        stats = self._statistics(self.data_)
        coords = {COHORT: stats["labels"], PERIOD: stats["periods"]}
        # users alive at the start of each period, NaN after the cohort's last observed one
        lost = np.cumsum(stats["counts"], axis=1) - stats["counts"]
        alive = (stats["n0"][:, None] - lost).astype(float)
        alive[stats["periods"][None, :] > stats["last"][:, None]] = np.nan
        return {"last_alive": xr.DataArray(stats["counts"], dims=(COHORT, PERIOD), coords=coords),
                N_SURVIVING: xr.DataArray(alive, dims=(COHORT, PERIOD), coords=coords)}

    # ----------------------------------------------------------- predictions
    def _predict(
        self,
        func: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
        values: Sequence[float] | np.ndarray,
        name: str,
        segment: Hashable | Sequence[Hashable] | None,
        ci_prob: float,
        max_draws: int | None,
        random_seed: Any,
        return_draws: bool,
        method: str,
    ) -> pd.DataFrame | xr.DataArray:
        params = posterior_arrays(self.idata_, ["alpha", "beta"], max_draws=max_draws,
                                  random_seed=random_seed)
        values = np.atleast_1d(np.asarray(values))
        if self.segments_ is None:
            if segment is not None:
                raise ValueError(
                    f"The 'segment' parameter of ShiftedBetaGeoModel.{method} must be None for "
                    f"a model fitted without segments. Got {segment!r} instead.")
            rows = pd.DataFrame({"_seg": 0, "_v": values}, index=pd.Index(values, name=name))
        else:
            chosen = list(self.segments_) if segment is None else (
                list(segment) if isinstance(segment, list | tuple) else [segment])
            codes = self.segments_.get_indexer(chosen)
            if (codes < 0).any():
                raise ValueError(
                    f"Unknown segment(s) {[c for c, i in zip(chosen, codes, strict=True) if i < 0]}"
                    f"; the fitted segments are {list(self.segments_)}.")
            index = pd.MultiIndex.from_product([chosen, values], names=["segment", name])
            rows = pd.DataFrame({"_seg": np.repeat(codes, len(values)),
                                 "_v": np.tile(values, len(codes))}, index=index)

        def block_func(p: Mapping[str, np.ndarray], block: pd.DataFrame) -> np.ndarray:
            a, b = p["alpha"], p["beta"]
            seg = block["_seg"].to_numpy()
            a = a[:, seg] if a.ndim == 2 else a[:, None]
            b = b[:, seg] if b.ndim == 2 else b[:, None]
            return func(a, b, block["_v"].to_numpy()[None, :])

        return predict_in_batches(block_func, params, rows, ci_prob=ci_prob,
                                  return_draws=return_draws,
                                  shape=sample_shape(self.idata_, max_draws), name=method)

    def _horizon(self, horizon: Any, minimum: int, method: str, name: str = "horizon"
                 ) -> np.ndarray:
        self._require_fitted(f"{method}()")
        arr = np.atleast_1d(np.asarray(horizon))
        if not (np.issubdtype(arr.dtype, np.integer) and arr.ndim == 1 and arr.size
                and (arr >= minimum).all()):
            raise ValueError(
                f"The '{name}' parameter of ShiftedBetaGeoModel.{method} must be integers "
                f">= {minimum}. Got {horizon!r} instead.")
        return arr.astype("int64")

    @prediction_method()
    def expected_survival_new_user(
        self, *, horizon: int | Sequence[int], segment: Hashable | None = None,
        ci_prob: float = 0.89, max_draws: int | None = None,
        random_seed: int | np.random.Generator | None = None, return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Survival curve :math:`S(t)`: share of a new cohort still subscribed in period :math:`t`.

        Parameters
        ----------
        horizon : int or sequence of int
            Periods :math:`t \ge 0` after the cohort's first (period 0, where
            :math:`S(0) = 1`).
        segment : label or list of labels, optional
            Segments to predict for (all by default); only with ``segment`` set.
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
            ``mean``, ``sd``, ``ci_lower``, ``ci_upper`` indexed by ``horizon``
            (``(segment, horizon)`` with segments); or the draws, dims ``(chain,
            draw, horizon)`` (``(chain, draw, segment, horizon)`` with segments; one
            chain of ``max_draws`` draws when ``max_draws`` keeps a subset).

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            If ``horizon`` is not non-negative integers, a segment is unknown, or
            for a bad option.

        Notes
        -----
        :math:`S(t) = B(\alpha, \beta + t) / B(\alpha, \beta)`, for every posterior draw.
        """
        method = "expected_survival_new_user"
        t = self._horizon(horizon, 0, method)
        return self._predict(_survival, t, "horizon", segment, ci_prob, max_draws, random_seed,
                             return_draws, method)

    @prediction_method()
    def expected_retention_rate_new_user(
        self, *, horizon: int | Sequence[int], segment: Hashable | None = None,
        ci_prob: float = 0.89, max_draws: int | None = None,
        random_seed: int | np.random.Generator | None = None, return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Retention rate :math:`r_t = S(t)/S(t-1)`: share of period ``t - 1``'s users renewing.

        Parameters and returns are those of :meth:`expected_survival_new_user`,
        with ``horizon`` :math:`t \ge 1`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`expected_survival_new_user`.

        Notes
        -----
        :math:`r_t = (\beta + t - 1)/(\alpha + \beta + t - 1)`, rising with
        :math:`t` as the users most likely to churn leave first. The conditional
        churn probability is :math:`1 - r_t`.
        """
        method = "expected_retention_rate_new_user"
        t = self._horizon(horizon, 1, method)
        return self._predict(lambda a, b, v: (b + v - 1) / (a + b + v - 1), t, "horizon",
                             segment, ci_prob, max_draws, random_seed, return_draws, method)

    @prediction_method()
    def probability_churn_new_user(
        self, *, horizon: int | Sequence[int], segment: Hashable | None = None,
        ci_prob: float = 0.89, max_draws: int | None = None,
        random_seed: int | np.random.Generator | None = None, return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability :math:`P(T \le t) = 1 - S(t)` of a new subscriber churning by ``horizon``.

        The same event as :meth:`ChurnHazardModel.probability_churn
        <models.churn.ChurnHazardModel.probability_churn>`: gone by period
        ``horizon``. Parameters and returns are those of
        :meth:`expected_survival_new_user`, with ``horizon`` :math:`t \ge 0`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`expected_survival_new_user`.
        """
        method = "probability_churn_new_user"
        t = self._horizon(horizon, 0, method)
        return self._predict(lambda a, b, v: 1.0 - _survival(a, b, v), t, "horizon", segment,
                             ci_prob, max_draws, random_seed, return_draws, method)

    @prediction_method()
    def probability_churn_in_period_new_user(
        self, *, horizon: int | Sequence[int], segment: Hashable | None = None,
        ci_prob: float = 0.89, max_draws: int | None = None,
        random_seed: int | np.random.Generator | None = None, return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability :math:`P(T = t)` that a new subscriber pays for exactly ``horizon`` periods.

        Parameters and returns are those of :meth:`expected_survival_new_user`,
        with ``horizon`` :math:`t \ge 1`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`expected_survival_new_user`.

        Notes
        -----
        :math:`P(T = t) = B(\alpha + 1, \beta + t - 1)/B(\alpha, \beta) = S(t - 1) - S(t)`:
        the share of a cohort lost between periods ``t - 1`` and ``t``. The
        churn probability conditional on reaching period ``t - 1`` is
        ``1 - expected_retention_rate_new_user(horizon=t)``; the probability of
        churning by period ``t`` is :meth:`probability_churn_new_user`.
        """
        method = "probability_churn_in_period_new_user"
        t = self._horizon(horizon, 1, method)

        def churn(a, b, v):
            return np.exp(_log_beta(a + 1, b + v - 1, np) - _log_beta(a, b, np))

        return self._predict(churn, t, "horizon", segment, ci_prob, max_draws, random_seed,
                             return_draws, method)

    @prediction_method()
    def expected_survivors_new_user(
        self, *, n_start: float, horizon: int | Sequence[int], segment: Hashable | None = None,
        ci_prob: float = 0.89, max_draws: int | None = None,
        random_seed: int | np.random.Generator | None = None, return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Predict the users still subscribed in period ``horizon`` out of ``n_start`` new ones.

        Parameters
        ----------
        n_start : float
            Cohort size at period 0.
        horizon, segment, ci_prob, max_draws, random_seed, return_draws
            As in :meth:`expected_survival_new_user`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`expected_survival_new_user`: :math:`n_\text{start}\, S(t)`.
        """
        method = "expected_survivors_new_user"
        if not (isinstance(n_start, int | float | np.number) and not isinstance(n_start, bool)
                and n_start >= 0):
            raise ValueError(
                f"The 'n_start' parameter of ShiftedBetaGeoModel.{method} must be a "
                f"non-negative number. Got {n_start!r} instead.")
        t = self._horizon(horizon, 0, method)
        return self._predict(lambda a, b, v: n_start * _survival(a, b, v), t, "horizon",
                             segment, ci_prob, max_draws, random_seed, return_draws, method)

    @prediction_method(positional=("discount_rate",))
    def expected_residual_lifetime(
        self, *, discount_rate: float, periods_survived: int | Sequence[int] = 1,
        segment: Hashable | None = None, ci_prob: float = 0.89, max_draws: int | None = None,
        random_seed: int | np.random.Generator | None = None, return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Discounted expected residual lifetime (DERL) of a current subscriber.

        Parameters
        ----------
        discount_rate : float
            Discount rate per period :math:`d > 0`.
        periods_survived : int or sequence of int, default 1
            Periods :math:`n \ge 1` the subscriber has paid for (she has made
            :math:`n - 1` renewals); she is at the end of period :math:`n`,
            about to decide on her next renewal.
        segment, ci_prob, max_draws, random_seed, return_draws
            As in :meth:`expected_survival_new_user`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            Indexed by ``periods_survived`` (and segment): the expected number of
            further periods she pays for, each discounted to now; multiply by the
            margin per period for her residual value. Or the draws, dims
            ``(chain, draw, periods_survived)`` (``segment`` before it with segments).

        Notes
        -----
        Fader & Hardie (2010), eq. 6, with :math:`\delta = 1/(1 + d)`:

        .. math::

            \mathrm{DERL} = \sum_{k \ge 0} \delta^k P(T > n + k \mid T > n - 1)
            = \frac{\beta + n - 1}{\alpha + \beta + n - 1}\,
            {}_2F_1\big(1, \beta + n; \alpha + \beta + n; \delta\big).
        """
        method = "expected_residual_lifetime"
        if not (isinstance(discount_rate, int | float | np.number)
                and not isinstance(discount_rate, bool) and discount_rate > 0):
            raise ValueError(
                f"The 'discount_rate' parameter of ShiftedBetaGeoModel.{method} must be a "
                f"positive number. Got {discount_rate!r} instead.")
        n = self._horizon(periods_survived, 1, method, "periods_survived")
        delta = 1.0 / (1.0 + discount_rate)

        def derl(a, b, v):
            return (b + v - 1) / (a + b + v - 1) * special.hyp2f1(1.0, b + v, a + b + v, delta)

        return self._predict(derl, n, "periods_survived", segment, ci_prob, max_draws,
                             random_seed, return_draws, method)

    # ------------------------------------------------- deprecated names (one release)
    @deprecated_alias("expected_survival_new_user")
    def expected_survival(
        self, periods: int | Sequence[int], segment: Hashable | None = None, *,
        ci_prob: float = 0.89, return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        """Return ``expected_survival_new_user(horizon=periods, ...)`` (deprecated name).

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            What :meth:`expected_survival_new_user` returns.
        """
        return self.expected_survival_new_user(horizon=periods, segment=segment,
                                               ci_prob=ci_prob, return_draws=return_draws)

    @deprecated_alias("expected_retention_rate_new_user")
    def expected_retention_rate(
        self, periods: int | Sequence[int], segment: Hashable | None = None, *,
        ci_prob: float = 0.89, return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        """Return ``expected_retention_rate_new_user(horizon=periods, ...)`` (deprecated name).

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            What :meth:`expected_retention_rate_new_user` returns.
        """
        return self.expected_retention_rate_new_user(horizon=periods, segment=segment,
                                                     ci_prob=ci_prob, return_draws=return_draws)

    @deprecated_alias("probability_churn_in_period_new_user")
    def probability_churn(
        self, periods: int | Sequence[int], segment: Hashable | None = None, *,
        ci_prob: float = 0.89, return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        """Return ``probability_churn_in_period_new_user(horizon=periods, ...)`` (deprecated).

        The old name meant :math:`P(T = t)`; ``probability_churn`` now means churn
        *within* a horizon everywhere (:meth:`probability_churn_new_user`).

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            What :meth:`probability_churn_in_period_new_user` returns.
        """
        return self.probability_churn_in_period_new_user(
            horizon=periods, segment=segment, ci_prob=ci_prob, return_draws=return_draws)

    @deprecated_alias("expected_survivors_new_user")
    def expected_survivors(
        self, n_start: float, periods: int | Sequence[int], segment: Hashable | None = None, *,
        ci_prob: float = 0.89, return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        """Return ``expected_survivors_new_user(n_start=..., horizon=periods)`` (deprecated name).

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            What :meth:`expected_survivors_new_user` returns.
        """
        return self.expected_survivors_new_user(n_start=n_start, horizon=periods,
                                                segment=segment, ci_prob=ci_prob,
                                                return_draws=return_draws)


def _is_number(values: pd.Series) -> bool:
    dtype = values.dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _add(problems: list[Problem], frame: pd.DataFrame, column: str, rule: str, mask: np.ndarray,
         fix: str = "") -> None:
    """Append a row problem, reporting positions in the caller's table."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return
    rows = np.flatnonzero(mask)[:_N_EXAMPLES]
    values = frame[column].iloc[rows].tolist()
    problems.append(Problem(column, rule, n_rows=int(mask.sum()),
                            rows=tuple(int(frame[_ROW].iloc[r]) for r in rows),
                            examples=tuple(values), fix=fix))
