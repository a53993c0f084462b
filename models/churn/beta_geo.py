r"""BG/NBD model of activity and silent dropout (Fader, Hardie & Lee 2005).

Users are active (a listening day, a session) as a Poisson process until they
silently drop out; :class:`BetaGeoModel` fits the population distribution of
activity rates and dropout probabilities from each user's frequency, recency
and age, and predicts who is still active and how active they will be.

The likelihood depends on a user only through ``(frequency, recency, T)``, so
the model is built on the unique rows of that table, weighted by how many users
share each one, and terms that depend only on ``frequency`` are computed once
per unique frequency (see the Notes of :class:`BetaGeoModel`). Predictions are
computed on unique rows as well and mapped back to users.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from models._deprecation import deprecated_alias
from models._pointwise import by_blocks, draw_arrays, sample_array, unit_array, unit_coords
from models._validation import N_EXAMPLES, row_problem
from models.base import BayesianModel, resolve_seed
from models.churn._pointwise import bgnbd_loglik, simulate_bgnbd_summary
from models.churn.bgnbd_kernel import DATA_FIELDS, BGNBDLogp
from models.exceptions import DataValidationError, Problem
from models.predict import (
    DEFAULT_BLOCK_ELEMENTS,
    draws_to_dataarray,
    posterior_arrays,
    predict_in_batches,
    prediction_method,
    sample_shape,
)
from models.priors import Prior

__all__ = ["BetaGeoModel"]

FREQUENCY = "frequency"
RECENCY = "recency"
AGE = "T"
#: Above this many users PyMC's sampler keeps its diagonal mass matrix (see
#: ``BetaGeoModel._sample_defaults``).
PYMC_DENSE_MAX_USERS = 500_000
PARAMETERS = ("r", "alpha", "a", "b")
_SEG = "_segment_code"


# --------------------------------------------------------------------- compression
def _factorize(*columns: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Codes of the unique combinations of ``columns`` and the unique values per column.

    Hash-factorises one column at a time and folds its codes into the codes so far,
    so the cost is linear in the number of rows.
    """
    codes = np.zeros(len(columns[0]), dtype=np.int64)
    for col in columns:
        col_codes, col_uniques = pd.factorize(col)
        codes, _ = pd.factorize(codes * len(col_uniques) + col_codes)
    first = np.empty(codes.max() + 1 if len(codes) else 0, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    return codes, [np.asarray(col)[first] for col in columns]


@dataclass(frozen=True)
class _Compressed:
    """Weighted unique rows of (segment, x, t_x, T) and the indices into shared terms.

    ``sx_*``: unique (segment, x) pairs and their user counts (terms in x only);
    ``z_*``: users with x = 0 aggregated by (segment, T); ``u_*``: unique
    (segment, time) values used by users with x > 0; ``px_*``: unique
    (segment, x > 0) pairs; ``row_*``: unique rows with x > 0, with indices into
    ``u`` (for T and t_x) and ``px``. Segment arrays are None without segments.
    """

    sx_seg: np.ndarray | None
    sx_x: np.ndarray
    sx_w: np.ndarray
    z_seg: np.ndarray | None
    z_T: np.ndarray
    z_w: np.ndarray
    u_seg: np.ndarray | None
    u_val: np.ndarray
    px_seg: np.ndarray | None
    px_x: np.ndarray
    row_seg: np.ndarray | None
    row_x: np.ndarray
    row_px: np.ndarray
    row_T: np.ndarray
    row_t: np.ndarray
    row_w: np.ndarray
    n_users: int
    n_unique: int


def _compress(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, seg: np.ndarray | None) -> _Compressed:
    """Compress users into the weighted unique rows the likelihood needs."""
    s = np.zeros(len(x), dtype=np.int64) if seg is None else seg
    codes, (us, ux, ut, uT) = _factorize(s, x, t_x, T)
    w = np.bincount(codes).astype(float)
    sx_codes, (sx_s, sx_x) = _factorize(us, ux)
    sx_w = np.bincount(sx_codes, weights=w)
    zero = ux == 0
    z_codes, (z_s, z_T) = _factorize(us[zero], uT[zero])
    z_w = np.bincount(z_codes, weights=w[zero]) if zero.any() else np.zeros(0)
    pos = ~zero
    n_pos = int(pos.sum())
    u_codes, (u_s, u_v) = _factorize(np.concatenate([us[pos], us[pos]]),
                                     np.concatenate([uT[pos], ut[pos]]))
    px_codes, (px_s, px_x) = _factorize(us[pos], ux[pos])
    keep = None if seg is None else (lambda a: a.astype(np.int64))
    return _Compressed(
        sx_seg=keep and keep(sx_s), sx_x=sx_x.astype(float), sx_w=sx_w,
        z_seg=keep and keep(z_s), z_T=z_T.astype(float), z_w=z_w,
        u_seg=keep and keep(u_s), u_val=u_v.astype(float),
        px_seg=keep and keep(px_s), px_x=px_x.astype(float),
        row_seg=keep and keep(us[pos]), row_x=ux[pos].astype(float),
        row_px=px_codes.astype(np.int64), row_T=u_codes[:n_pos].astype(np.int64),
        row_t=u_codes[n_pos:].astype(np.int64), row_w=w[pos],
        n_users=len(x), n_unique=len(w),
    )


#: A data array of the same length as each segment-code array of ``_Compressed``.
_SEG_SIBLING = {"sx_seg": "sx_x", "z_seg": "z_T", "u_seg": "u_val", "px_seg": "px_x",
                "row_seg": "row_x"}


def _log_likelihood(r: Any, alpha: Any, a: Any, b: Any, c: _Compressed) -> pt.TensorVariable:
    """Total BG/NBD log-likelihood of the compressed data (one compiled Op with its gradient).

    ``r``, ``alpha``, ``a``, ``b`` are scalars, or vectors with one entry per segment.
    """
    params = [pt.as_tensor_variable(p, dtype="float64").reshape((-1,)) for p in (r, alpha, a, b)]
    data = []
    for name in DATA_FIELDS:
        value = getattr(c, name)
        if value is None:  # no segments: every row is segment 0
            value = np.zeros(len(getattr(c, _SEG_SIBLING[name])), dtype=np.int64)
        data.append(pt.constant(value))
    return BGNBDLogp()(*params, *data)[0]


# --------------------------------------------------------------- closed forms (numpy)
def _probability_alive(r, alpha, a, b, x, t_x, T):
    """P(active at T | x, t_x, T), the closed form of FHL (2005)."""
    x1 = np.maximum(x, 1.0)
    log_odds = (np.log(a) - np.log(b + (x1 - 1.0))
                + (r + x1) * np.log1p((T - t_x) / (alpha + t_x)))
    return np.where(x > 0, special.expit(-log_odds), 1.0)


def _survival_if_alive(r, alpha, a, b, x, T, horizon):
    r"""P(still active at T + horizon | active at T, x): no dropout after the next activities.

    Given activity at ``T``, :math:`\lambda \sim \mathrm{Gamma}(r+x, \alpha+T)` and
    :math:`p \sim \mathrm{Beta}(a, b+x)`; surviving ``horizon`` more periods has probability
    :math:`E[e^{-\lambda p h}] = E_p[(1 + p c)^{-(r+x)}]` with :math:`c = h/(\alpha+T)`, which is
    :math:`{}_2F_1(r+x, a; a+b+x; -c)`, evaluated through Pfaff's transformation as
    :math:`(1+c)^{-a}\,{}_2F_1(a, a+b-r; a+b+x; c/(1+c))` (argument in [0, 1)).
    """
    c = horizon / (alpha + T)
    return np.exp(-a * np.log1p(c)) * special.hyp2f1(a, a + b - r, a + b + x, c / (1.0 + c))


def _expected_if_alive(r, alpha, a, b, x, T, t):
    """E[transactions in (T, T+t] | active at T]; eq. (10) without the P(alive) factor.

    Uses Euler's transformation of the 2F1 in eq. (10):
    ``q^(r+x) 2F1(r+x, b+x; c; 1-q) = q^(a-1) 2F1(a+b-1-r, a-1; c; 1-q)`` with
    ``q = (alpha+T)/(alpha+T+t)`` and ``c = a+b+x-1``: the new parameters stay
    O(1) for large x, where the original form overflows.
    """
    log_q = np.log(alpha + T) - np.log(alpha + T + t)
    c = a + b + x - 1.0
    f = special.hyp2f1(a + b - 1.0 - r, a - 1.0, c, -np.expm1(log_q))
    u = (a - 1.0) * log_q
    return c / (a - 1.0) * (-np.expm1(u) - np.exp(u) * (f - 1.0))


def _probability_activity(r, alpha, a, b, n, t):
    """P(X(t) = n) for a new user, FHL (2005) eq. (8)."""
    log_p, log_1p = np.log(alpha) - np.log(alpha + t), np.log(t) - np.log(alpha + t)
    first = np.exp(special.betaln(a, b + n) - special.betaln(a, b) + special.gammaln(r + n)
                   - special.gammaln(r) - special.gammaln(n + 1.0) + r * log_p + n * log_1p)
    n1 = np.maximum(n, 1.0)
    second = np.exp(special.betaln(a + 1.0, b + n1 - 1.0) - special.betaln(a, b)) * \
        special.betainc(n1, r, np.exp(log_1p))
    return first + np.where(n > 0, second, 0.0)


# ---------------------------------------------------------------------- validation
def _validate_activity(data: Any, segment: str | None, what: str) -> pd.DataFrame:
    required = [FREQUENCY, RECENCY, AGE] + ([segment] if segment else [])
    if not isinstance(data, pd.DataFrame):
        raise DataValidationError(
            [Problem("<table>", f"a pandas DataFrame with columns {required}",
                     fix="use models.data.summaries.summarize_activity(events)")], what=what)
    missing = [c for c in required if c not in data.columns]
    if missing:
        raise DataValidationError(
            [Problem(c, "a column of this name", fix="use summarize_activity(events)")
             for c in missing], what=what)
    if len(data) == 0:
        raise DataValidationError([Problem("<table>", "at least one row")], what=what)
    problems: list[Problem] = []
    cols = {}
    for name in (FREQUENCY, RECENCY, AGE):
        col = data[name]
        if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
            problems.append(Problem(name, f"numbers, not dtype {col.dtype}"))
            continue
        v = col.to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isfinite(v)
        if bad.any():
            problems.append(row_problem(name, "finite values, no NaN", bad, v))
        if (v < 0).any():
            problems.append(row_problem(name, "non-negative values", v < 0, v))
        cols[name] = v
    if FREQUENCY in cols:
        f = cols[FREQUENCY]
        bad = np.isfinite(f) & (f != np.round(f))
        if bad.any():
            problems.append(row_problem(FREQUENCY, "whole numbers (repeat active periods)", bad, f))
    if len(cols) == 3:
        f, rec, T = cols[FREQUENCY], cols[RECENCY], cols[AGE]
        for bad, rule, pair, col in [
            (rec > T, "recency <= T; examples are (recency, T)", (rec, T), RECENCY),
            ((f > 0) & (rec == 0), "recency > 0 when frequency > 0; examples are "
             "(frequency, recency)", (f, rec), RECENCY),
            ((f == 0) & (rec > 0), "recency == 0 when frequency == 0; examples are "
             "(frequency, recency)", (f, rec), RECENCY),
        ]:
            if bad.any():
                rows = np.flatnonzero(bad)[:N_EXAMPLES]
                vals = [None] * len(f)
                for i in rows:
                    vals[i] = (pair[0][i].item(), pair[1][i].item())
                problems.append(row_problem(col, rule, bad, vals,
                                         "recency and T are measured from the first activity"))
    if segment:
        bad = data[segment].isna().to_numpy()
        if bad.any():
            problems.append(row_problem(segment, "a segment label on every row", bad,
                                     data[segment].tolist()))
    if problems:
        raise DataValidationError(problems, what=what)
    clean = pd.DataFrame({FREQUENCY: cols[FREQUENCY].astype(np.int64), RECENCY: cols[RECENCY],
                          AGE: cols[AGE]}, index=data.index)
    if segment:
        clean[segment] = data[segment].to_numpy()
    return clean


def _check_horizon(owner: str, name: str, value: Any, *, allow_zero: bool = False) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=float)) if _is_number_like(value) else None
    ok = arr is not None and arr.ndim == 1 and arr.size > 0 and bool(np.all(np.isfinite(arr)))
    ok = ok and bool(np.all(arr >= 0) if allow_zero else np.all(arr > 0))
    if not ok:
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"The '{name}' parameter of {owner} must be a {kind} number or 1-D "
                         f"array of them. Got {value!r} instead.")
    return arr


def _scalar_horizon(owner: str, value: Any) -> float:
    """Check a single positive horizon and return it as a float."""
    ok = _is_number_like(value) and np.ndim(value) == 0 and np.isfinite(value) and value > 0
    if not ok:
        raise ValueError(f"The 'horizon' parameter of {owner} must be a positive number. "
                         f"Got {value!r} instead.")
    return float(value)


def _is_number_like(value: Any) -> bool:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        return False
    return np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.bool_)


class BetaGeoModel(BayesianModel):
    r"""BG/NBD model: Poisson activity until a silent, geometric dropout.

    Parameters
    ----------
    priors : mapping of str to Prior or dict, optional
        Replace default priors by name: ``r``, ``alpha`` (shape and rate of the
        Gamma distribution of activity rates), ``a``, ``b`` (Beta distribution
        of the dropout probability) and ``segment_sigma`` (spread of the log
        parameters across segments; used only with ``segment``).
    segment : str, optional
        Column of the data holding a segment label (plan, country, ...). Each
        segment gets its own (r, alpha, a, b), partially pooled on the log scale.
    hierarchical : bool, default True
        With ``segment``: pool the segments (True) or give each segment's
        (r, alpha, a, b) the priors of ``r`` ... ``b`` independently (False: no
        pooling, no ``segment_sigma``). With two or three segments the data say
        almost nothing about the spread between them, and the pooled posterior
        has a funnel in ``segment_sigma`` that NUTS cannot follow (on 2 plans of
        about 900 users: 101 divergences of 4,000); use ``hierarchical=False``
        there, and pooling when there are many segments, some of them small.

    Attributes
    ----------
    idata_, model_, data_, fit_report_
        See :class:`~models.base.BayesianModel`. ``data_`` holds one row per
        user; ``model_`` is built on the compressed rows (see Notes).

    Notes
    -----
    User :math:`i` has activity rate and dropout probability

    .. math::

        \lambda_i \sim \mathrm{Gamma}(r, \alpha), \qquad p_i \sim \mathrm{Beta}(a, b),

    is active as a Poisson process with rate :math:`\lambda_i` and becomes
    inactive for good after each repeat activity with probability :math:`p_i`.
    With :math:`x` repeat active periods, the last at :math:`t_x`, and age
    :math:`T` (both measured from the first activity), the likelihood is [1]_

    .. math::

        L = \frac{\Gamma(r+x)\,\alpha^r}{\Gamma(r)}\frac{B(a, b+x)}{B(a, b)}
            \Big[(\alpha+T)^{-(r+x)} + \mathbb{1}_{x>0}\frac{a}{b+x-1}
            (\alpha+t_x)^{-(r+x)}\Big],

    evaluated as :math:`\log L = C(x) + \operatorname{logaddexp}(-(r+x)\log(\alpha+T),\;
    \log\frac{a}{b+x-1} - (r+x)\log(\alpha+t_x))`.

    *Compression.* :math:`L` depends on a user only through :math:`(x, t_x, T)`
    (and the segment), so users sharing them enter as one row weighted by their
    count; with data in whole days or weeks a million users give a few thousand
    rows. :math:`C(x)` (the Gamma and Beta function terms) is summed over unique
    :math:`x` with the total count per :math:`x`; users with :math:`x = 0`
    reduce to :math:`-r\log(\alpha+T)` aggregated by :math:`T`; for the rows
    with :math:`x > 0`, :math:`\log(\alpha+t)` is computed once per unique time
    and :math:`\log\frac{a}{b+x-1}` once per unique :math:`x`, then gathered.
    The value and its gradient come from one compiled pass over these rows
    (``models.churn.bgnbd_kernel.BGNBDLogp``, a few flops per unique row),
    so the model graph is a handful of nodes and compiles quickly: on small data
    such as CDNOW compilation, not sampling, is most of a fit.

    *Segments.* With ``segment``, :math:`\log\theta_s = \log\theta +
    \sigma_\theta z_{s,\theta}`, :math:`z \sim N(0, 1)` (non-centred) for
    :math:`\theta \in \{r, \alpha, a, b\}`; the priors of ``r`` ... ``b`` are
    then on the population values :math:`\theta` and ``segment_sigma`` on
    :math:`\sigma_\theta`. Segment values are ``r_segment`` ... ``b_segment``.
    With ``hierarchical=False`` each :math:`\theta_s` has the prior of
    :math:`\theta` and there are no population values.

    *MAP and maximum likelihood.* ``fit(method="map")`` maximises the log
    posterior on the log-transformed parameters *without* the Jacobian of the
    transform (PyMC's ``find_MAP`` uses ``model.logp(jacobian=False)``), i.e. the
    posterior density on the natural scale. With ``HalfFlat`` priors on r,
    alpha, a and b that density is the likelihood, so the MAP is the MLE of [1]_;
    including the Jacobian would instead maximise :math:`L \cdot r\alpha ab`
    and shift the estimates. The default priors are weakly informative
    log-normals (their MAP is close to, not equal to, the MLE).

    Time units are those of the data (days, weeks): ``alpha`` and the
    prediction horizons are in those units.

    *LOO and predictive checks.* The unit of the pointwise log-likelihood
    (:meth:`compute_log_likelihood`, variable ``activity``, dim ``user``) is a
    user: :math:`\log L` of their ``(frequency, recency, T)``, so the values sum
    to the model's log-likelihood. :meth:`sample_posterior_predictive` replicates
    each user's ``frequency`` and ``recency`` over their own ``T`` (continuous
    times, while the data count whole periods).

    References
    ----------
    .. [1] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting your
       customers" the easy way: an alternative to the Pareto/NBD model.
       Marketing Science 24(2), 275-284.

    Examples
    --------
    >>> from models.churn.beta_geo import BetaGeoModel
    >>> from models.data.simulate import simulate_bgnbd
    >>> from models.priors import Prior
    >>> users = simulate_bgnbd(2000, r=0.5, alpha=4.0, a=0.8, b=2.5, T=40.0, random_seed=1)
    >>> flat = {k: Prior("HalfFlat") for k in ("r", "alpha", "a", "b")}
    >>> model = BetaGeoModel(priors=flat).fit(users, method="map", random_seed=1)
    >>> r = float(model.posterior_draws("r").values.squeeze())
    >>> bool(0.35 < r < 0.65)
    True
    >>> model.probability_alive().shape
    (2000, 4)
    """

    #: a few strongly correlated parameters: NUTS adapts a dense mass matrix (see
    #: :class:`~models.base.BayesianModel`); with the default diagonal one it took
    #: twice the leapfrog steps per draw for half the ESS on CDNOW
    dense_mass_max_dim: ClassVar[int] = 40
    default_priors: ClassVar[Mapping[str, Prior]] = {
        "r": Prior("LogNormal", mu=0.0, sigma=1.5),
        "alpha": Prior("LogNormal", mu=1.0, sigma=2.0),
        "a": Prior("LogNormal", mu=0.0, sigma=1.5),
        "b": Prior("LogNormal", mu=1.0, sigma=1.5),
        "segment_sigma": Prior("HalfNormal", sigma=0.5),
    }

    def __init__(
        self, *, priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
        segment: str | None = None,
        hierarchical: bool = True,
    ) -> None:
        if segment is not None and not (isinstance(segment, str) and segment
                                        and segment not in (FREQUENCY, RECENCY, AGE)):
            raise ValueError("The 'segment' parameter of BetaGeoModel must be a column name "
                             f"other than {[FREQUENCY, RECENCY, AGE]}. Got {segment!r} instead.")
        if not isinstance(hierarchical, bool):
            raise ValueError("The 'hierarchical' parameter of BetaGeoModel must be True or "
                             f"False. Got {hierarchical!r} instead.")
        self.segment = segment
        self.hierarchical = hierarchical
        super().__init__(priors=priors)

    # ------------------------------------------------------------------ hooks
    def _validate_data(self, data: Any) -> pd.DataFrame:
        return _validate_activity(data, self.segment, "activity summary")

    def _segment_codes(self, clean: pd.DataFrame, labels: Sequence | None = None) -> np.ndarray:
        if not self.segment:
            return np.zeros(len(clean), dtype=np.int64)
        values = clean[self.segment]
        labels = pd.Index(labels if labels is not None else sorted(pd.unique(values)))
        codes = labels.get_indexer(values)
        if (codes < 0).any():
            raise DataValidationError(
                [row_problem(self.segment, f"segments seen in training {list(labels)}", codes < 0,
                          values.tolist(), "predict only for segments the model was fitted on")],
                what="activity summary")
        return codes.astype(np.int64)

    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        priors = self.resolved_priors()
        coords: dict[str, Any] = {}
        seg = None
        if self.segment:
            labels = sorted(pd.unique(data[self.segment]))
            coords = {"segment": labels, "bgnbd_parameter": list(PARAMETERS)}
            seg = self._segment_codes(data, labels)
        comp = _compress(data[FREQUENCY].to_numpy(float), data[RECENCY].to_numpy(),
                         data[AGE].to_numpy(), seg)
        with pm.Model(coords=coords) as model:
            if self.segment and not self.hierarchical:
                pop = [priors[name].create(f"{name}_segment", dims="segment")
                       for name in PARAMETERS]
            else:
                pop = [priors[name].create(name) for name in PARAMETERS]
            if self.segment and self.hierarchical:
                sigma = priors["segment_sigma"].create("segment_sigma", dims="bgnbd_parameter")
                z = pm.Normal("segment_offset", 0.0, 1.0, dims=("segment", "bgnbd_parameter"))
                pop = [pm.Deterministic(f"{name}_segment", p * pt.exp(sigma[i] * z[:, i]),
                                        dims="segment")
                       for i, (name, p) in enumerate(zip(PARAMETERS, pop, strict=True))]
            pm.Potential("log_likelihood", _log_likelihood(*pop, comp))
        model.bgnbd_compression = comp  # for diagnostics and benchmarks
        return model

    def _sample_defaults(self, model: pm.Model, sampler: str) -> dict[str, Any]:
        """Dense mass matrix, except with PyMC's sampler on very many users.

        PyMC's dense adaptation starts from a unit matrix and first updates it
        after 101 draws; with very many users (posterior sds about 0.002 at
        1,000,000) those draws take long trees, so above
        ``PYMC_DENSE_MAX_USERS`` users PyMC's diagonal default is kept: about
        the same ESS per second as the dense matrix, for a shorter wait. With
        fewer users the dense matrix gives more ESS at a similar time. nutpie's
        low-rank adaptation has no such cost. Figures in ``benchmarks/README.md``.
        """
        if sampler == "pymc" and model.bgnbd_compression.n_users > PYMC_DENSE_MAX_USERS:
            return {}
        return super()._sample_defaults(model, sampler)

    def _parameter_names(self) -> list[str]:
        if self.segment and not self.hierarchical:
            return [f"{p}_segment" for p in PARAMETERS]
        if self.segment:
            return [*PARAMETERS, "segment_sigma", *(f"{p}_segment" for p in PARAMETERS)]
        return list(PARAMETERS)

    # ------------------------------------------------ LOO and predictive checks
    def _user_draws(self, posterior: xr.Dataset) -> tuple[list[np.ndarray], np.ndarray]:
        """Draws ``(draws, segments)`` of r, alpha, a, b, and each training user's segment."""
        names = [f"{p}_segment" if self.segment else p for p in PARAMETERS]
        arrays = draw_arrays(posterior, names)
        params = [arrays[n].reshape(arrays[n].shape[0], -1) for n in names]
        labels = list(posterior["segment"].values) if self.segment else None
        return params, self._segment_codes(self.data_, labels)

    def _pointwise_log_likelihood(self, posterior: xr.Dataset) -> dict[str, xr.DataArray]:
        params, seg = self._user_draws(posterior)
        data = self.data_
        codes, (s, x, t_x, T) = _factorize(seg, data[FREQUENCY].to_numpy(float),
                                           data[RECENCY].to_numpy(), data[AGE].to_numpy())

        def rows(idx: np.ndarray) -> np.ndarray:  # unique (segment, x, t_x, T) rows
            return bgnbd_loglik(*(p[:, s[idx]] for p in params), x[idx], t_x[idx], T[idx])

        per_row = by_blocks(rows, params[0].shape[0], len(x))
        return {"activity": sample_array(per_row[:, codes], posterior, "user",
                                         unit_coords(data.index))}

    def _posterior_predictive(self, posterior: xr.Dataset,
                              rng: np.random.Generator) -> dict[str, xr.DataArray]:
        params, seg = self._user_draws(posterior)
        T = self.data_[AGE].to_numpy(float)
        freq, rec = by_blocks(
            lambda idx: simulate_bgnbd_summary(*(p[:, seg[idx]] for p in params), T[idx], rng),
            params[0].shape[0], len(T))
        users = unit_coords(self.data_.index)
        return {FREQUENCY: sample_array(freq, posterior, "user", users),
                RECENCY: sample_array(rec, posterior, "user", users)}

    def _observed_data(self) -> dict[str, xr.DataArray]:
        users = unit_coords(self.data_.index)
        return {c: unit_array(self.data_[c].to_numpy(), "user", users)
                for c in (FREQUENCY, RECENCY, AGE)}

    # ------------------------------------------------------------ predictions
    def _segment_labels(self) -> list:
        """Segment labels of the fit, read from the posterior (predictions need no PyMC graph)."""
        return list(self.idata_["posterior"]["segment"].values)

    def _draws(self, max_draws: int | None, random_seed: Any) -> dict[str, np.ndarray]:
        names = [f"{p}_segment" if self.segment else p for p in PARAMETERS]
        arrays = posterior_arrays(self.idata_, names, max_draws=max_draws, random_seed=random_seed)
        return {p: arrays[n].reshape(arrays[n].shape[0], -1) for p, n in zip(PARAMETERS, names,
                                                                             strict=True)}

    def _predict_users(self, what: str, data: Any, func: Callable, ci_prob: float,
                       max_draws: int | None, random_seed: Any, return_draws: bool):
        self._require_fitted(f"{what}()")
        clean = self.data_ if data is None else self._validate_data(data)
        labels = self._segment_labels() if self.segment else None
        seg = self._segment_codes(clean, labels)
        codes, (s, x, t_x, T) = _factorize(seg, clean[FREQUENCY].to_numpy(float),
                                           clean[RECENCY].to_numpy(), clean[AGE].to_numpy())
        rows = pd.DataFrame({_SEG: s, FREQUENCY: x, RECENCY: t_x, AGE: T})
        out = predict_in_batches(func, self._draws(max_draws, random_seed), rows,
                                 ci_prob=ci_prob, return_draws=return_draws,
                                 shape=sample_shape(self.idata_, max_draws), unit="user",
                                 name=what)
        if return_draws:
            return out.isel(user=codes).assign_coords(user=clean.index.to_numpy())
        result = out.iloc[codes].set_axis(clean.index, axis=0)
        result.attrs["ci_prob"] = ci_prob
        return result

    @staticmethod
    def _at(params: Mapping[str, np.ndarray], block: pd.DataFrame) -> list[np.ndarray]:
        """Draws of (r, alpha, a, b) for the rows of ``block``: (draw, row) or (draw, 1)."""
        if next(iter(params.values())).shape[1] == 1:
            return [params[p] for p in PARAMETERS]  # one segment: broadcast over rows
        seg = block[_SEG].to_numpy()
        return [params[p][:, seg] for p in PARAMETERS]

    @prediction_method()
    def probability_alive(
        self, data: pd.DataFrame | None = None, *, horizon: float = 0.0, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability that each user is still active at the end of observation (or later).

        .. math::

            P(\text{active} \mid x, t_x, T) = \Big[1 + \mathbb{1}_{x>0}\frac{a}{b+x-1}
            \Big(\frac{\alpha+T}{\alpha+t_x}\Big)^{r+x}\Big]^{-1}

        (FHL 2005, eq. A.13 in the technical note). With a ``horizon`` :math:`h > 0`, the
        probability of still being active at :math:`T + h`: an active user with rate
        :math:`\lambda` and dropout probability :math:`p` survives the Poisson number of
        activities in :math:`h` with probability :math:`e^{-\lambda p h}`, and given the
        history :math:`\lambda \sim \mathrm{Gamma}(r+x, \alpha+T)`,
        :math:`p \sim \mathrm{Beta}(a, b+x)`, so

        .. math::

            P(\text{active at } T+h) = P(\text{active at } T)\;
            {}_2F_1\Big(r+x, a; a+b+x; -\frac{h}{\alpha+T}\Big).

        Computed per unique ``(frequency, recency, T)`` row and mapped back to users.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Activity summary (``frequency``, ``recency``, ``T`` and the segment
            column); the training data by default.
        horizon : float, default 0
            Periods after the end of observation (time unit of the data); 0 gives
            the probability of being active now.
        ci_prob : float, default 0.89
            Probability mass of the equal-tailed interval.
        max_draws : int, optional
            Use a random subset of this many posterior draws.
        random_seed : int, numpy.random.Generator or None
            Seed of that subset.
        return_draws : bool, default False
            Return the draws instead of the summary (memory grows with draws x
            users).

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            Indexed like ``data`` (one row per user), columns ``mean``, ``sd``,
            ``ci_lower``, ``ci_upper``; or the draws, dims ``(chain, draw, user)``
            with the data's index as the ``user`` coordinate (one chain of
            ``max_draws`` draws when ``max_draws`` keeps a subset).

        Raises
        ------
        ValueError
            For a bad option (the message names it and the value).
        models.exceptions.NotFittedError
            Before ``fit``.
        models.exceptions.DataValidationError
            If ``data`` breaks the rules of the training data.
        """
        h = float(_check_horizon("BetaGeoModel.probability_alive", "horizon", horizon,
                                 allow_zero=True)[0]) if np.ndim(horizon) == 0 else None
        if h is None:
            raise ValueError("The 'horizon' parameter of BetaGeoModel.probability_alive must be "
                             f"a non-negative number. Got {horizon!r} instead.")

        def func(params, block):
            r, alpha, a, b = self._at(params, block)
            x, t_x, T = (block[c].to_numpy() for c in (FREQUENCY, RECENCY, AGE))
            alive = _probability_alive(r, alpha, a, b, x, t_x, T)
            if h > 0:
                alive = alive * _survival_if_alive(r, alpha, a, b, x, T, h)
            return alive

        return self._predict_users("probability_alive", data, func, ci_prob, max_draws,
                                   random_seed, return_draws)

    @prediction_method()
    def sample_activity(
        self, data: pd.DataFrame | None = None, *, horizon: float,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
    ) -> xr.DataArray:
        r"""Draw each user's number of activities over the next ``horizon`` periods.

        The posterior predictive of the future count: the parameters' uncertainty
        (one posterior draw at a time) and the user's own randomness, conditional on
        the user's history. For a posterior draw :math:`(r, \alpha, a, b)`, a user
        with history :math:`(x, t_x, T)` is still active with probability
        :meth:`probability_alive`; given active, :math:`\lambda \sim
        \mathrm{Gamma}(r + x, \alpha + T)` and :math:`p \sim \mathrm{Beta}(a, b +
        x)`. An active user's activities in :math:`(T, T + h]` are :math:`\min(N, G)`
        with :math:`N \sim \mathrm{Poisson}(\lambda h)` the activities while
        active and :math:`G \sim \mathrm{Geometric}(p)` the activity after which
        the user drops out; an inactive user has none.

        Use it to answer "how many days will this user be active next quarter?":
        :meth:`expected_activity` gives the interval of the *expected* count, which is
        much narrower than that of the count itself. Summarise the draws with
        :func:`models.predict.predictive_summary` (mean, sd and a predictive interval
        of counts per user).

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Activity summary (``frequency``, ``recency``, ``T`` and the segment
            column); the training data by default.
        horizon : float
            Periods after the end of observation (time unit of the data), > 0.
        max_draws : int, optional
            Use a random subset of this many posterior draws.
        random_seed : int, numpy.random.Generator or None
            Seed of the subset and of the simulated counts; the same seed gives the
            same draws.

        Returns
        -------
        xarray.DataArray
            Integer draws of dims ``(chain, draw, user)``, the data's index as the
            ``user`` coordinate (one chain of ``max_draws`` draws when ``max_draws``
            keeps a subset).

        Examples
        --------
        >>> from models.predict import predictive_summary
        >>> draws = model.sample_activity(horizon=39.0, random_seed=0)  # doctest: +SKIP
        >>> predictive_summary(draws, ci_prob=0.9).head()  # doctest: +SKIP

        Raises
        ------
        ValueError
            For a bad option (the message names it and the value).
        models.exceptions.NotFittedError
            Before ``fit``.
        """
        owner = "BetaGeoModel.sample_activity"
        h = _scalar_horizon(owner, horizon)
        self._require_fitted("sample_activity()")
        clean = self.data_ if data is None else self._validate_data(data)
        labels = self._segment_labels() if self.segment else None
        seg = np.asarray(self._segment_codes(clean, labels))
        params = self._draws(max_draws, random_seed)
        n_draws = next(iter(params.values())).shape[0]
        rng = np.random.default_rng([resolve_seed(random_seed), 1])  # not the subset's stream
        x_all = clean[FREQUENCY].to_numpy(float)
        tx_all, T_all = clean[RECENCY].to_numpy(float), clean[AGE].to_numpy(float)
        n = len(clean)
        out = np.empty((n_draws, n), dtype=np.int64)
        step = max(1, DEFAULT_BLOCK_ELEMENTS // max(n_draws, 1))
        for lo in range(0, n, step):
            sl = slice(lo, min(lo + step, n))
            block = pd.DataFrame({_SEG: seg[sl]})
            r, alpha, a, b = self._at(params, block)
            x, t_x, T = x_all[sl], tx_all[sl], T_all[sl]
            shape = (n_draws, x.size)
            alive = rng.random(shape) < _probability_alive(r, alpha, a, b, x, t_x, T)
            lam = rng.gamma(np.broadcast_to(r + x, shape)) / (alpha + T)
            p = rng.beta(np.broadcast_to(a, shape), np.broadcast_to(b + x, shape))
            poisson = rng.poisson(lam * h)
            dropout = rng.geometric(np.clip(p, 1e-300, 1.0))
            out[:, sl] = np.where(alive, np.minimum(poisson, dropout), 0)
        return draws_to_dataarray(out, index=clean.index,
                                  shape=sample_shape(self.idata_, max_draws), unit="user",
                                  name="sample_activity")

    @prediction_method(renamed={"t": "horizon"})
    def expected_activity(
        self, data: pd.DataFrame | None = None, *, horizon: float, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Predict the number of active periods of each user in the next ``horizon`` periods.

        FHL (2005) eq. (10):

        .. math::

            E[Y(t) \mid x, t_x, T] = P(\text{active})\,\frac{a+b+x-1}{a-1}\Big[1 -
            \Big(\frac{\alpha+T}{\alpha+T+t}\Big)^{r+x}
            {}_2F_1\Big(r+x, b+x; a+b+x-1; \frac{t}{\alpha+T+t}\Big)\Big],

        evaluated through Euler's transformation of :math:`{}_2F_1` (parameters
        :math:`a+b-1-r, a-1` instead of :math:`r+x, b+x`), which stays accurate
        for large :math:`x` and long horizons where the original form overflows.
        The formula has a removable singularity at :math:`a = 1`; within about
        1e-7 of it a few digits are lost.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Activity summary; the training data by default.
        horizon : float
            Periods after the end of observation, in the time unit of the data;
            positive. (``t`` is its deprecated name.)
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_alive`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`probability_alive`: one row per user, or draws
            ``(chain, draw, user)``.

        Raises
        ------
        ValueError
            If ``horizon`` is not a positive number, or for a bad option.
        models.exceptions.NotFittedError
            Before ``fit``.
        models.exceptions.DataValidationError
            If ``data`` breaks the rules of the training data.
        """
        t_ = _scalar_horizon("BetaGeoModel.expected_activity", horizon)

        def func(params, block):
            r, alpha, a, b = self._at(params, block)
            x, t_x, T = (block[c].to_numpy() for c in (FREQUENCY, RECENCY, AGE))
            # the 2F1 term does not depend on t_x: evaluate it once per unique (segment, x, T)
            codes, (s, ux, uT) = _factorize(block[_SEG].to_numpy(), x, T)
            sub = pd.DataFrame({_SEG: s})
            ru, alu, au, bu = self._at(params, sub)
            if_alive = _expected_if_alive(ru, alu, au, bu, ux, uT, t_)[:, codes]
            return _probability_alive(r, alpha, a, b, x, t_x, T) * if_alive

        return self._predict_users("expected_activity", data, func, ci_prob, max_draws,
                                   random_seed, return_draws)

    @prediction_method()
    def probability_active(
        self, data: pd.DataFrame | None = None, *, horizon: float, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability that each user is active at least once in the next ``horizon`` periods.

        The observable event of a holdout window (did the user come back?), unlike
        :meth:`probability_alive`, which is about the unobserved dropout.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Activity summary; the training data by default.
        horizon : float
            Periods after the end of observation, in the time unit of the data;
            positive.
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_alive`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`probability_alive`: one row per user, or draws
            ``(chain, draw, user)``.

        Raises
        ------
        ValueError
            If ``horizon`` is not a positive number, or for a bad option.
        models.exceptions.NotFittedError
            Before ``fit``.
        models.exceptions.DataValidationError
            If ``data`` breaks the rules of the training data.

        Notes
        -----
        A user alive at :math:`T` has rate :math:`\lambda \mid x, T \sim
        \mathrm{Gamma}(r+x, \alpha+T)` and can drop out only after an activity, so

        .. math::

            P(\text{active in } (T, T+h]) = P(\text{alive at } T)
            \Big[1 - \Big(\frac{\alpha+T}{\alpha+T+h}\Big)^{r+x}\Big].

        Examples
        --------
        >>> import numpy as np, pandas as pd, xarray as xr
        >>> users = pd.DataFrame({"frequency": [0, 3], "recency": [0.0, 20.0], "T": [30.0, 30.0]},
        ...                      index=pd.Index(["a", "b"], name="user_id"))
        >>> model = BetaGeoModel()
        >>> model.data_ = users
        >>> model.idata_ = xr.DataTree.from_dict({"posterior": xr.Dataset(
        ...     {p: (("chain", "draw"), np.full((1, 20), v)) for p, v in
        ...      [("r", 0.5), ("alpha", 4.0), ("a", 0.8), ("b", 2.5)]})})
        >>> model.probability_active(horizon=30.0)["mean"].round(3).tolist()
        [0.271, 0.556]
        """
        h = _scalar_horizon("BetaGeoModel.probability_active", horizon)

        def func(params, block):
            r, alpha, a, b = self._at(params, block)
            x, t_x, T = (block[c].to_numpy() for c in (FREQUENCY, RECENCY, AGE))
            alive = _probability_alive(r, alpha, a, b, x, t_x, T)
            return alive * -np.expm1((r + x) * (np.log(alpha + T) - np.log(alpha + T + h)))

        return self._predict_users("probability_active", data, func, ci_prob, max_draws,
                                   random_seed, return_draws)

    def _predict_new(self, what: str, grid: Mapping[str, np.ndarray], func: Callable,
                     ci_prob: float, max_draws: int | None, random_seed: Any,
                     return_draws: bool):
        """Predict on the product of the segments and the ``grid`` values (C order)."""
        self._require_fitted(f"{what}()")
        labels = self._segment_labels() if self.segment else [None]
        names = list(grid)
        product = pd.MultiIndex.from_product([np.arange(len(labels)), *grid.values()],
                                             names=[_SEG, *names])
        rows = product.to_frame(index=False)
        if self.segment:
            rows.index = pd.MultiIndex.from_arrays(
                [np.asarray(labels, dtype=object)[rows[_SEG].to_numpy()],
                 *(rows[n] for n in names)], names=["segment", *names])
        elif len(names) > 1:
            rows.index = pd.MultiIndex.from_frame(rows[names])
        else:
            rows.index = pd.Index(rows[names[0]].to_numpy(), name=names[0])
        return predict_in_batches(func, self._draws(max_draws, random_seed), rows,
                                  ci_prob=ci_prob, return_draws=return_draws,
                                  shape=sample_shape(self.idata_, max_draws), name=what)

    @prediction_method(renamed={"t": "horizon"}, positional=("horizon",))
    def expected_activity_new_user(
        self, *, horizon: float | Sequence[float] | np.ndarray, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Predict the number of repeat active periods of a new user within ``horizon`` periods.

        FHL (2005) eq. (7):

        .. math::

            E[X(t)] = \frac{a+b-1}{a-1}\Big[1 - \Big(\frac{\alpha}{\alpha+t}\Big)^r
            {}_2F_1\Big(r, b; a+b-1; \frac{t}{\alpha+t}\Big)\Big].

        Parameters
        ----------
        horizon : float or 1-D array of float
            Periods after the first activity (positive), in the time unit of the
            data. (``t`` is its deprecated name.)
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_alive`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            One row per ``horizon`` (index ``horizon``; ``(segment, horizon)`` with
            segments), columns ``mean``, ``sd``, ``ci_lower``, ``ci_upper``; or the
            draws, dims ``(chain, draw, horizon)`` (``(chain, draw, segment,
            horizon)`` with segments).

        Raises
        ------
        ValueError
            If ``horizon`` holds a value that is not a positive number, or for a
            bad option.
        models.exceptions.NotFittedError
            Before ``fit``.
        """
        values = _check_horizon("BetaGeoModel.expected_activity_new_user", "horizon", horizon)

        def func(params, block):
            r, alpha, a, b = self._at(params, block)
            return _expected_if_alive(r, alpha, a, b, 0.0, 0.0, block["horizon"].to_numpy())

        return self._predict_new("expected_activity_new_user", {"horizon": values}, func,
                                 ci_prob, max_draws, random_seed, return_draws)

    @prediction_method()
    def probability_alive_new_user(
        self, *, horizon: float | Sequence[float] | np.ndarray, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability that a new user is still active ``horizon`` periods after the first one.

        A user with rate :math:`\lambda` and dropout probability :math:`p` survives the
        Poisson number of activities in :math:`(0, h]` with probability
        :math:`e^{-\lambda p h}`; over the population distribution

        .. math::

            P(\text{active at } h) = E[e^{-\lambda p h}]
            = {}_2F_1\Big(r, a; a+b; -\frac{h}{\alpha}\Big).

        Parameters
        ----------
        horizon : float or 1-D array of float
            Periods after the first activity (non-negative), in the time unit of the data.
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_alive`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`expected_activity_new_user`.

        Raises
        ------
        ValueError
            If ``horizon`` holds a value that is not a non-negative number, or for
            a bad option.
        models.exceptions.NotFittedError
            Before ``fit``.
        """
        values = _check_horizon("BetaGeoModel.probability_alive_new_user", "horizon", horizon,
                                allow_zero=True)

        def func(params, block):
            r, alpha, a, b = self._at(params, block)
            return _survival_if_alive(r, alpha, a, b, 0.0, 0.0, block["horizon"].to_numpy())

        return self._predict_new("probability_alive_new_user", {"horizon": values}, func,
                                 ci_prob, max_draws, random_seed, return_draws)

    @prediction_method()
    def probability_repeat_count_new_user(
        self, *, count: int | Sequence[int] | np.ndarray,
        horizon: float | Sequence[float] | np.ndarray, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability of exactly ``count`` repeat active periods of a new user within ``horizon``.

        FHL (2005) eq. (8), with :math:`\rho = \alpha / (\alpha + h)`:

        .. math::

            P(X(h) = n) = \frac{B(a, b+n)}{B(a, b)}\,\mathrm{NB}(n; r, \rho)
            + \mathbb{1}_{n>0}\frac{B(a+1, b+n-1)}{B(a, b)}
            \Big[1 - \sum_{j<n}\mathrm{NB}(j; r, \rho)\Big],

        where :math:`\mathrm{NB}(j; r, \rho) = \frac{\Gamma(r+j)}{\Gamma(r)j!}
        \rho^r(1-\rho)^j`; the bracket is the regularised incomplete Beta
        function :math:`I_{1-\rho}(n, r)`.

        Parameters
        ----------
        count : int or 1-D array of int
            Numbers :math:`n` of repeat active periods (non-negative whole numbers).
        horizon : float or 1-D array of float
            Periods :math:`h` after the first activity (positive), in the time unit
            of the data.
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_alive`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            One row per (``count``, ``horizon``) pair of the grid of both (index
            ``(count, horizon)``; ``(segment, count, horizon)`` with segments),
            columns ``mean``, ``sd``, ``ci_lower``, ``ci_upper``; or the draws,
            dims ``(chain, draw, count, horizon)`` (``segment`` before ``count``
            with segments).

        Raises
        ------
        ValueError
            If ``count`` is not made of non-negative whole numbers, ``horizon`` of
            positive numbers, or for a bad option.
        models.exceptions.NotFittedError
            Before ``fit``.
        """
        owner = "BetaGeoModel.probability_repeat_count_new_user"
        counts = _check_horizon(owner, "count", count, allow_zero=True)
        if not np.all(counts == np.round(counts)):
            raise ValueError(f"The 'count' parameter of {owner} must be a non-negative whole "
                             f"number or 1-D array of them. Got {count!r} instead.")
        horizons = _check_horizon(owner, "horizon", horizon)

        def func(params, block):
            r, alpha, a, b = self._at(params, block)
            return _probability_activity(r, alpha, a, b, block["count"].to_numpy(),
                                         block["horizon"].to_numpy())

        return self._predict_new("probability_repeat_count_new_user",
                                 {"count": counts.astype(np.int64), "horizon": horizons}, func,
                                 ci_prob, max_draws, random_seed, return_draws)

    @deprecated_alias("probability_repeat_count_new_user")
    def probability_activity(
        self, n: int | Sequence[int] | np.ndarray, t: float, *, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        """Return ``probability_repeat_count_new_user(count=n, horizon=t)`` (deprecated name).

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            What :meth:`probability_repeat_count_new_user` returns.
        """
        return self.probability_repeat_count_new_user(
            count=n, horizon=t, ci_prob=ci_prob, max_draws=max_draws, random_seed=random_seed,
            return_draws=return_draws)
