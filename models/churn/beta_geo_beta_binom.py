"""Beta-geometric/beta-Bernoulli (BG/BB) model of discrete-time activity and dropout.

Each opportunity (a week, say), a user who is still "alive" is active with a
probability ``p``; before each opportunity she drops out for good with a
probability ``theta``. Both vary across users as Beta distributions (Fader,
Hardie & Shang 2010). The likelihood depends on a user only through
``(frequency, recency, n)``, so users sharing those values are fitted as one
weighted row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from models._deprecation import deprecated_alias
from models._pointwise import by_blocks, draw_arrays, sample_array, unit_array, unit_coords
from models._validation import check_int, row_problem
from models.base import BayesianModel, resolve_seed
from models.churn._pointwise import simulate_bgbb_summary
from models.data.summaries import summarize_activity
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

__all__ = ["BetaGeoBetaBinomModel", "bgbb_summary"]

FREQUENCY = "frequency"
RECENCY = "recency"
N_OPPORTUNITIES = "n"
WEIGHT = "weight"
_KEYS = [FREQUENCY, RECENCY, N_OPPORTUNITIES]
_PARAMS = ["alpha", "beta", "gamma", "delta"]


def bgbb_summary(
    events: pd.DataFrame,
    *,
    period: Literal["D", "W", "M"] = "W",
    observation_end: Any = None,
) -> pd.DataFrame:
    """Per-user ``frequency``, ``recency`` and ``n`` of a log, the BG/BB input.

    Parameters
    ----------
    events : pandas.DataFrame
        Validated listening log with ``user_id`` and ``timestamp``.
    period : {"D", "W", "M"}, default "W"
        Length of one opportunity (calendar day, Monday week, calendar month).
    observation_end : timestamp-like, optional
        End of observation (default: the last event). Pass the last instant of a
        period (e.g. a Sunday 23:59:59 for weeks) so the last opportunity is
        whole.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``user_id``: ``frequency`` (x, active periods after the first),
        ``recency`` (t_x, the last active period counted from the first, 0 if
        x = 0) and ``n`` (opportunities after the first period up to
        ``observation_end``).

    Notes
    -----
    As in Fader, Hardie & Shang (2010), a user's first active period is
    opportunity 0 (the "trial"), not counted; opportunities ``1..n`` follow it.
    These are :func:`models.data.summaries.summarize_activity`'s ``frequency``,
    ``recency`` and ``T``.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "timestamp": pd.to_datetime(
    ...     ["2024-01-01", "2024-01-03", "2024-01-16", "2024-01-10"])})
    >>> bgbb_summary(log, observation_end="2024-01-28 23:59")  # doctest: +NORMALIZE_WHITESPACE
             frequency  recency  n
    user_id
    a                1        2  3
    b                0        0  2
    """
    summary = summarize_activity(events, period=period, observation_end=observation_end)
    return summary[[FREQUENCY, RECENCY, "T"]].rename(columns={"T": N_OPPORTUNITIES})


def _log_beta(a, b, lib=np):
    gammaln = pt.gammaln if lib is pt else special.gammaln
    return gammaln(a) + gammaln(b) - gammaln(a + b)


def _loglik(alpha, beta, gamma, delta, x, tx, n, lib=np, width=None):
    """BG/BB log-likelihood of rows ``(x, tx, n)``; parameters broadcast against them.

    The finite sum over ``i = 0 .. n - tx - 1`` is vectorised along a trailing
    axis of length ``width`` (default ``max(n - tx)`` of these rows) and masked:
    its temporaries hold draws x rows x ``width`` values. Callers that evaluate
    the rows in blocks pass the ``width`` of all rows, so that a row's sum, to
    the last digit, does not depend on the block it is in.
    """
    if lib is np:
        alpha, beta, gamma, delta = (np.asarray(v, dtype=float)
                                     for v in (alpha, beta, gamma, delta))
    stack = pt.stack if lib is pt else np.stack
    lse = pt.logsumexp if lib is pt else special.logsumexp
    where = pt.switch if lib is pt else np.where
    norm_ab = _log_beta(alpha, beta, lib)
    norm_gd = _log_beta(gamma, delta, lib)
    alive = _log_beta(alpha + x, beta + n - x, lib) - norm_ab + _log_beta(gamma, delta + n, lib)
    if width is None:
        width = int(np.max(np.asarray(n) - np.asarray(tx), initial=0))
    terms = [alive - norm_gd]
    if width:
        i = np.arange(width)
        gap = np.asarray(n - tx)[..., None]
        e = lambda v: v[..., None]  # noqa: E731
        dead = (_log_beta(e(alpha + x), e(beta + tx - x) + i, lib) - e(norm_ab)
                + _log_beta(e(gamma) + 1.0, e(delta + tx) + i, lib) - e(norm_gd))
        dead = where(i < gap, dead, -np.inf)
        terms.append(lse(dead, axis=-1))
    return lse(stack(terms, axis=-1), axis=-1)


def _sum_width(rows: pd.DataFrame) -> int:
    """Length ``max(n - recency)`` of the finite sum of :func:`_loglik` over ``rows``."""
    gap = rows[N_OPPORTUNITIES].to_numpy(dtype=float) - rows[RECENCY].to_numpy(dtype=float)
    return int(np.max(gap, initial=0))


def _rows_per_block(n_draws: int, width: int) -> int:
    """Rows per block of a prediction whose temporaries hold draws x rows x ``width`` values.

    About :data:`models.predict.DEFAULT_BLOCK_ELEMENTS` values per temporary, as for
    predictions without a trailing axis.
    """
    return max(1, DEFAULT_BLOCK_ELEMENTS // max(n_draws * max(width, 1), 1))


def _loglik_tables(alpha, beta, gamma, delta, x, tx, n):
    """:func:`_loglik` as a PyTensor expression, from tables of the Beta functions it needs.

    The finite sum's terms are ``log B(alpha + x, beta + m)`` with ``m = tx - x + i`` and
    ``log B(gamma + 1, delta + k)`` with ``k = tx + i``, integers in ``0 .. max(n)``: they
    are computed once per distinct ``(x, m)`` and ``k`` (a ``(N + 1) x (N + 1)`` table and
    a vector) and gathered, instead of once per row and ``i``. Same values as
    :func:`_loglik`; about ``rows x width / N**2`` times fewer Gamma-function
    evaluations (20x on a year of weekly opportunities).
    """
    x, tx, n = (np.asarray(v).astype(np.int64) for v in (x, tx, n))
    norm_ab = _log_beta(alpha, beta, pt)
    norm_gd = _log_beta(gamma, delta, pt)
    alive = (_log_beta(alpha + x, beta + n - x, pt) - norm_ab
             + _log_beta(gamma, delta + n, pt) - norm_gd)
    width = int(np.max(n - tx, initial=0))
    if not width:
        return alive
    top = np.arange(int(n.max()) + 1, dtype=float)
    lb_ab = _log_beta(alpha + top[:, None], beta + top[None, :], pt)  # [x, m]
    lb_gd = _log_beta(gamma + 1.0, delta + top, pt)  # [k]
    i = np.arange(width)
    valid = i[None, :] < (n - tx)[:, None]
    m = np.where(valid, (tx - x)[:, None] + i, 0)
    k = np.where(valid, tx[:, None] + i, 0)
    dead = lb_ab[np.broadcast_to(x[:, None], m.shape), m] + lb_gd[k] - norm_ab - norm_gd
    dead = pt.switch(valid, dead, -np.inf)
    return pt.logsumexp(pt.stack([alive, pt.logsumexp(dead, axis=-1)], axis=-1), axis=-1)


def _future_sum(gamma, delta, start, length):
    r"""Sum over k = 1..length of B(gamma, delta + start + k) / B(gamma, delta).

    Telescoping closed form of Fader, Hardie & Shang (2010), eqs. 9 and 13:
    :math:`\frac{\delta}{\gamma - 1}\frac{\Gamma(\gamma+\delta)}{\Gamma(1+\delta)}
    [\frac{\Gamma(1+\delta+s)}{\Gamma(\gamma+\delta+s)} -
    \frac{\Gamma(1+\delta+s+m)}{\Gamma(\gamma+\delta+s+m)}]`, evaluated as
    ``-expm1`` of a log-ratio; ``gamma`` within 1e-7 of 1 is nudged off the
    removable singularity.
    """
    g = np.where(np.abs(gamma - 1.0) < 1e-7, 1.0 + 1e-7, gamma)
    gl = special.gammaln
    log_first = np.log(delta) + gl(g + delta) - gl(1 + delta) + gl(1 + delta + start) - gl(
        g + delta + start)
    log_ratio = (gl(1 + delta + start + length) - gl(1 + delta + start)) - (
        gl(g + delta + start + length) - gl(g + delta + start))
    return np.exp(log_first) * -np.expm1(log_ratio) / (g - 1.0)


class BetaGeoBetaBinomModel(BayesianModel):
    r"""BG/BB model of activity and silent dropout over discrete opportunities.

    Parameters
    ----------
    priors : mapping of str to Prior, optional
        Replacements for the default priors of ``alpha``, ``beta``, ``gamma``
        and ``delta``.

    Attributes
    ----------
    rows_ : pandas.DataFrame
        Unique ``(frequency, recency, n)`` rows of the training data and their
        ``weight`` (number of users), dim ``row``: what the likelihood is fitted on.
    row_of_user_ : numpy.ndarray
        Position in ``rows_`` of every training user.

    Notes
    -----
    User :math:`i` is alive at opportunity 0. Before each opportunity
    :math:`t = 1, \dots, n` she drops out with probability :math:`\theta_i`;
    while alive she is active with probability :math:`p_i`;
    :math:`p \sim \mathrm{Beta}(\alpha, \beta)`,
    :math:`\theta \sim \mathrm{Beta}(\gamma, \delta)`. With :math:`x` active
    opportunities, the last at :math:`t_x`, the likelihood (Fader, Hardie &
    Shang 2010, eq. 5) is

    .. math::

        L = \frac{B(\alpha + x, \beta + n - x)}{B(\alpha, \beta)}
            \frac{B(\gamma, \delta + n)}{B(\gamma, \delta)}
          + \sum_{i=0}^{n - t_x - 1}
            \frac{B(\alpha + x, \beta + t_x - x + i)}{B(\alpha, \beta)}
            \frac{B(\gamma + 1, \delta + t_x + i)}{B(\gamma, \delta)}.

    It is added as ``pm.Potential("loglik", sum_r w_r log L_r)`` over the unique
    rows :math:`r` with user counts :math:`w_r`. Default priors are
    :math:`\mathrm{LogNormal}(0, 2)` on all four: weakly informative (0.02 to 50)
    and vanishing at infinity, where the likelihood of a homogeneous
    population has a flat ridge. Flat priors (``Prior("HalfFlat")``) with
    ``fit(method="map")`` give the maximum-likelihood estimate (PyMC's
    ``find_MAP`` drops the log-transform's Jacobian).

    *LOO and predictive checks.* The unit of the pointwise log-likelihood
    (:meth:`compute_log_likelihood`, variable ``activity``, dim ``user``) is a
    user: :math:`\log L` of their ``(frequency, recency, n)``; a data row with a
    ``weight`` stands for that many users (coordinate ``row``: its position in
    the data), so the values sum to the model's log-likelihood.
    :meth:`sample_posterior_predictive` replicates every user's ``frequency`` and
    ``recency`` over their ``n`` opportunities.

    References
    ----------
    .. [1] Fader, P. S., Hardie, B. G. S. and Shang, J. (2010). Customer-base
       analysis in a discrete-time noncontractual setting. Marketing Science
       29(6), 1086-1108.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.churn.beta_geo_beta_binom import BetaGeoBetaBinomModel
    >>> data = pd.DataFrame({"frequency": [0, 1, 2, 2, 3], "recency": [0, 1, 2, 3, 3],
    ...                      "n": 3, "weight": [50, 20, 10, 15, 30]})
    >>> model = BetaGeoBetaBinomModel().fit(data, method="map", random_seed=0)
    >>> model.probability_alive()["mean"].round(2).tolist()
    [0.02, 0.1, 0.39, 0.9, 0.9]
    """

    #: a few strongly correlated parameters: NUTS adapts a dense mass matrix (see
    #: :class:`~models.base.BayesianModel`); with the default diagonal one it took
    #: twice the leapfrog steps per draw for half the ESS on CDNOW
    dense_mass_max_dim: ClassVar[int] = 40
    default_priors: ClassVar[Mapping[str, Prior]] = {
        name: Prior("LogNormal", mu=0.0, sigma=2.0) for name in _PARAMS
    }

    def __init__(
        self, *, priors: Mapping[str, Prior | Mapping[str, Any]] | None = None
    ) -> None:
        super().__init__(priors=priors)

    # ------------------------------------------------------------------ data
    def _validate_data(self, data: Any) -> pd.DataFrame:
        if not isinstance(data, pd.DataFrame):
            raise TypeError(
                "The 'data' parameter of BetaGeoBetaBinomModel.fit must be a pandas DataFrame "
                f"with columns {_KEYS}. Got {type(data).__name__} instead.")
        return _validate_rows(data, with_weight=True)

    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        rows, codes = _compress(data)
        self.rows_, self.row_of_user_ = rows, codes
        priors = self.resolved_priors()
        x, tx, n = (rows[k].to_numpy(dtype=float) for k in _KEYS)
        with pm.Model(coords={"row": np.arange(len(rows))}) as model:
            params = [priors[name].create(name) for name in _PARAMS]
            ll = _loglik_tables(*params, x, tx, n)
            pm.Potential("loglik", pt.sum(rows[WEIGHT].to_numpy(dtype=float) * ll))
        return model

    def _parameter_names(self) -> list[str]:
        return list(_PARAMS)

    # ------------------------------------------------ LOO and predictive checks
    def _users(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Each user's data row (rows with a ``weight`` repeated) and the user coordinates."""
        data = self.data_
        if WEIGHT not in data.columns:
            return np.arange(len(data)), {"coords": unit_coords(data.index)}
        row = np.repeat(np.arange(len(data)), data[WEIGHT].to_numpy())
        return row, {"extra_coords": {"row": row}}

    def _pointwise_log_likelihood(self, posterior: xr.Dataset) -> dict[str, xr.DataArray]:
        rows, codes = _compress(self.data_)
        x, tx, n = (rows[k].to_numpy(dtype=float) for k in _KEYS)
        p = [v[:, None] for v in draw_arrays(posterior, _PARAMS).values()]
        width = max(1, int(np.max(n - tx, initial=0)))
        per_row = by_blocks(lambda i: _loglik(*p, x[i], tx[i], n[i]), p[0].shape[0], len(rows),
                            unit_width=width)
        user_row, coords = self._users()
        return {"activity": sample_array(per_row[:, codes[user_row]], posterior, "user",
                                         **coords)}

    def _posterior_predictive(self, posterior: xr.Dataset,
                              rng: np.random.Generator) -> dict[str, xr.DataArray]:
        p = [v[:, None] for v in draw_arrays(posterior, _PARAMS).values()]
        user_row, coords = self._users()
        n = self.data_[N_OPPORTUNITIES].to_numpy()[user_row]
        freq, rec = by_blocks(lambda i: simulate_bgbb_summary(*p, n[i], rng), p[0].shape[0],
                              len(n))
        return {FREQUENCY: sample_array(freq, posterior, "user", **coords),
                RECENCY: sample_array(rec, posterior, "user", **coords)}

    def _observed_data(self) -> dict[str, xr.DataArray]:
        user_row, coords = self._users()
        return {k: unit_array(self.data_[k].to_numpy()[user_row], "user", **coords)
                for k in _KEYS}

    # ----------------------------------------------------------- predictions
    def _draws(self, max_draws: int | None, random_seed: Any) -> dict[str, np.ndarray]:
        return posterior_arrays(self.idata_, _PARAMS, max_draws=max_draws,
                                random_seed=random_seed)

    def _predict(
        self, func: Callable[..., np.ndarray], data: pd.DataFrame | None, method: str,
        ci_prob: float, max_draws: int | None, random_seed: Any, return_draws: bool,
    ) -> pd.DataFrame | xr.DataArray:
        self._require_fitted(f"{method}()")
        if data is None:
            users, rows, codes = self.data_, self.rows_, self.row_of_user_
        else:
            if not isinstance(data, pd.DataFrame):
                raise TypeError(
                    f"The 'data' parameter of BetaGeoBetaBinomModel.{method} must be a pandas "
                    f"DataFrame or None. Got {type(data).__name__} instead.")
            users = _validate_rows(data, with_weight=False)
            rows, codes = _compress(users)
        params = self._draws(max_draws, random_seed)
        # the likelihood's finite sum holds draws x rows x width values: size the blocks of
        # rows by it (925 rows of up to 43 weeks in one block of 4,000 draws: 1.3 GB a
        # temporary, 8.4 GB at the peak)
        width = _sum_width(rows)
        n_draws = next(iter(params.values())).shape[0]

        def block_func(p: Mapping[str, np.ndarray], block: pd.DataFrame) -> np.ndarray:
            a, b, g, d = (p[k][:, None] for k in _PARAMS)
            x, tx, n = (block[k].to_numpy(dtype=float)[None, :] for k in _KEYS)
            return func(a, b, g, d, x, tx, n, width)

        out = predict_in_batches(block_func, params, rows, ci_prob=ci_prob,
                                 rows_per_block=_rows_per_block(n_draws, width),
                                 return_draws=return_draws,
                                 shape=sample_shape(self.idata_, max_draws), unit="user",
                                 name=method)
        if return_draws:
            return out.isel(user=codes).assign_coords(user=users.index.to_numpy())
        result = out.iloc[codes]
        result.index = users.index
        result.attrs["ci_prob"] = ci_prob
        return result

    @prediction_method(renamed={"future": "horizon"})
    def probability_alive(
        self, data: pd.DataFrame | None = None, *, horizon: int = 0, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability that each user is still alive at opportunity ``n + 1 + horizon``.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Users (``frequency``, ``recency``, ``n``); the training users by default.
        horizon : int, default 0
            Opportunities beyond the next one; 0 gives the probability of being
            alive now (at the next opportunity). (``future`` is its deprecated name.)
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
            Indexed like ``data`` (one row per user), columns ``mean``, ``sd``,
            ``ci_lower``, ``ci_upper``; or the draws, dims ``(chain, draw, user)``
            with the data's index as the ``user`` coordinate (one chain of
            ``max_draws`` draws when ``max_draws`` keeps a subset).

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            If ``horizon`` is not a non-negative integer, ``data`` is invalid, or
            for a bad option.

        Notes
        -----
        Fader, Hardie & Shang (2010), eq. 11, with :math:`m` = ``horizon``:

        .. math::

            P(\text{alive at } n + 1 + m \mid x, t_x, n) =
            \frac{B(\alpha + x, \beta + n - x)}{B(\alpha, \beta)}
            \frac{B(\gamma, \delta + n + 1 + m)}{B(\gamma, \delta)} \Big/ L.
        """
        check_int("BetaGeoBetaBinomModel.probability_alive", "horizon", horizon, minimum=0)

        def alive(a, b, g, d, x, tx, n, width):
            log_num = (_log_beta(a + x, b + n - x) - _log_beta(a, b)
                       + _log_beta(g, d + n + 1 + horizon) - _log_beta(g, d))
            return np.exp(log_num - _loglik(a, b, g, d, x, tx, n, width=width))

        return self._predict(alive, data, "probability_alive", ci_prob, max_draws, random_seed,
                             return_draws)

    @prediction_method(renamed={"n_future": "horizon"})
    def expected_activity(
        self, data: pd.DataFrame | None = None, *, horizon: int, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Predict each user's expected active opportunities among the next ``horizon``.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Users (``frequency``, ``recency``, ``n``); the training users by default.
        horizon : int
            Number of future opportunities :math:`n^*` (``n + 1 .. n + n*``).
            (``n_future`` is its deprecated name.)
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_alive`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`probability_alive`.

        Notes
        -----
        Fader, Hardie & Shang (2010), eq. 13:

        .. math::

            E[X(n, n + n^*) \mid x, t_x, n] = \frac{1}{L}
            \frac{B(\alpha + x + 1, \beta + n - x)}{B(\alpha, \beta)}
            \frac{\delta}{\gamma - 1} \frac{\Gamma(\gamma + \delta)}{\Gamma(1 + \delta)}
            \Big[\frac{\Gamma(1 + \delta + n)}{\Gamma(\gamma + \delta + n)}
            - \frac{\Gamma(1 + \delta + n + n^*)}{\Gamma(\gamma + \delta + n + n^*)}\Big].
        """
        check_int("BetaGeoBetaBinomModel.expected_activity", "horizon", horizon, minimum=0)

        def activity(a, b, g, d, x, tx, n, width):
            log_p = _log_beta(a + x + 1, b + n - x) - _log_beta(a, b)
            return (np.exp(log_p - _loglik(a, b, g, d, x, tx, n, width=width))
                    * _future_sum(g, d, n, horizon))

        return self._predict(activity, data, "expected_activity", ci_prob, max_draws,
                             random_seed, return_draws)

    @prediction_method()
    def sample_activity(
        self, data: pd.DataFrame | None = None, *, horizon: int,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
    ) -> xr.DataArray:
        r"""Draw each user's number of active opportunities among the next ``horizon``.

        The posterior predictive of the future count, conditional on each user's
        history: for a posterior draw :math:`(\alpha, \beta, \gamma, \delta)` the user is
        alive at opportunity :math:`n + 1` with probability :meth:`probability_alive`;
        given alive, :math:`p \sim \mathrm{Beta}(\alpha + x, \beta + n - x)` and
        :math:`\theta \sim \mathrm{Beta}(\gamma, \delta + n + 1)`, the user stays alive
        for :math:`K = \min(h, G)` of the next :math:`h` opportunities with :math:`G \sim
        \mathrm{Geometric}(\theta)`, and is active in :math:`\mathrm{Binomial}(K, p)` of
        them. Its mean is :meth:`expected_activity`; summarise the draws with
        :func:`models.predict.predictive_summary`.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Users (``frequency``, ``recency``, ``n``); the training users by default.
        horizon : int
            Number of future opportunities, >= 1.
        max_draws : int, optional
            Use a random subset of this many posterior draws.
        random_seed : int, numpy.random.Generator or None
            Seed of the subset and of the simulated counts.

        Returns
        -------
        xarray.DataArray
            Integer draws of dims ``(chain, draw, user)``, the data's index as the
            ``user`` coordinate.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            If ``horizon`` is not a positive integer, ``data`` is invalid, or for a
            bad option.
        """
        method = "sample_activity"
        check_int(f"BetaGeoBetaBinomModel.{method}", "horizon", horizon)
        self._require_fitted(f"{method}()")
        if data is None:
            users = self.data_
        else:
            if not isinstance(data, pd.DataFrame):
                raise TypeError(
                    f"The 'data' parameter of BetaGeoBetaBinomModel.{method} must be a pandas "
                    f"DataFrame or None. Got {type(data).__name__} instead.")
            users = _validate_rows(data, with_weight=False)
        seed = resolve_seed(random_seed)  # one seed: the same draws subset in both calls
        alive_now = self.probability_alive(users, max_draws=max_draws, random_seed=seed,
                                           return_draws=True)
        alive_p = alive_now.transpose("chain", "draw", "user").values
        alive_p = alive_p.reshape(-1, alive_p.shape[-1])
        params = self._draws(max_draws, seed)
        a, b, g, d = (params[k][:, None] for k in _PARAMS)
        rng = np.random.default_rng([seed, 1])  # not the subset's stream
        x_all, n_all = (users[k].to_numpy(dtype=float) for k in (FREQUENCY, N_OPPORTUNITIES))
        n_draws, n_users = alive_p.shape
        out = np.empty((n_draws, n_users), dtype=np.int64)
        step = max(1, DEFAULT_BLOCK_ELEMENTS // max(n_draws, 1))
        for lo in range(0, n_users, step):
            sl = slice(lo, min(lo + step, n_users))
            x, n = x_all[None, sl], n_all[None, sl]
            shape = (n_draws, x.shape[1])
            alive = rng.random(shape) < alive_p[:, sl]
            p = rng.beta(np.broadcast_to(a + x, shape), np.broadcast_to(b + n - x, shape))
            theta = rng.beta(np.broadcast_to(g, shape), np.broadcast_to(d + n + 1, shape))
            stays = np.minimum(rng.geometric(np.clip(theta, 1e-300, 1.0)), int(horizon))
            out[:, sl] = np.where(alive, rng.binomial(stays, p), 0)
        return draws_to_dataarray(out, index=users.index,
                                  shape=sample_shape(self.idata_, max_draws), unit="user",
                                  name=method)

    def _new_user(self, func: Callable[..., np.ndarray], rows: pd.DataFrame, ci_prob: float,
                  max_draws: int | None, random_seed: Any, return_draws: bool,
                  method: str, width: int = 1) -> pd.DataFrame | xr.DataArray:
        """Predict ``func`` on blocks of ``rows`` sized for temporaries of ``width`` per row."""
        self._require_fitted(f"{method}()")
        params = self._draws(max_draws, random_seed)
        n_draws = next(iter(params.values())).shape[0]

        def block_func(p: Mapping[str, np.ndarray], block: pd.DataFrame) -> np.ndarray:
            return func(*(p[k][:, None] for k in _PARAMS), block)

        return predict_in_batches(block_func, params, rows, ci_prob=ci_prob,
                                  rows_per_block=_rows_per_block(n_draws, width),
                                  return_draws=return_draws,
                                  shape=sample_shape(self.idata_, max_draws), name=method)

    @prediction_method(renamed={"n": "horizon"}, positional=("horizon",))
    def expected_activity_new_user(
        self, *, horizon: int | list[int] | np.ndarray, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Predict a new user's expected active opportunities :math:`E[X(n)]` in ``horizon``.

        Parameters
        ----------
        horizon : int or sequence of int
            Opportunities :math:`n` after the first (trial) one. (``n`` is its
            deprecated name.)
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_alive`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            Summary indexed by ``horizon``, or the draws, dims ``(chain, draw,
            horizon)``.

        Notes
        -----
        Fader, Hardie & Shang (2010), eq. 9:
        :math:`E[X(n)] = \frac{\alpha}{\alpha + \beta} \frac{\delta}{\gamma - 1}
        \big[1 - \frac{\Gamma(\gamma + \delta)\Gamma(1 + \delta + n)}
        {\Gamma(\gamma + \delta + n)\Gamma(1 + \delta)}\big]`.
        """
        ns = _int_array(horizon, "horizon", "expected_activity_new_user")
        rows = pd.DataFrame({"horizon": ns}, index=pd.Index(ns, name="horizon"))

        def func(a, b, g, d, block):
            n = block["horizon"].to_numpy(dtype=float)[None]
            return a / (a + b) * _future_sum(g, d, 0.0, n)

        return self._new_user(func, rows, ci_prob, max_draws, random_seed, return_draws,
                              "expected_activity_new_user")

    @prediction_method()
    def probability_repeat_count_new_user(
        self, *, count: int | list[int] | np.ndarray, horizon: int | list[int] | np.ndarray,
        ci_prob: float = 0.89, max_draws: int | None = None,
        random_seed: int | np.random.Generator | None = None, return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability :math:`P(X(n) = x)` of ``count`` active opportunities within ``horizon``.

        Parameters
        ----------
        count : int or sequence of int
            Numbers :math:`x` of active opportunities (non-negative).
        horizon : int or sequence of int
            Opportunities :math:`n` after the first (trial) one (non-negative).
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_alive`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            One row per (``count``, ``horizon``) pair of the grid of both (index
            ``(count, horizon)``; 0 where ``count > horizon``), columns ``mean``,
            ``sd``, ``ci_lower``, ``ci_upper``; or the draws, dims ``(chain, draw,
            count, horizon)``.

        Raises
        ------
        ValueError
            If ``count`` or ``horizon`` are not non-negative integers, or for a
            bad option.
        models.exceptions.NotFittedError
            Before :meth:`fit`.

        Notes
        -----
        Fader, Hardie & Shang (2010), eq. 8:

        .. math::

            P(X(n) = x) = \binom{n}{x}
            \frac{B(\alpha + x, \beta + n - x)}{B(\alpha, \beta)}
            \frac{B(\gamma, \delta + n)}{B(\gamma, \delta)}
            + \sum_{i=x}^{n-1} \binom{i}{x}
            \frac{B(\alpha + x, \beta + i - x)}{B(\alpha, \beta)}
            \frac{B(\gamma + 1, \delta + i)}{B(\gamma, \delta)}.
        """
        method = "probability_repeat_count_new_user"
        xs = _int_array(count, "count", method)
        ns = _int_array(horizon, "horizon", method)
        index = pd.MultiIndex.from_product([xs, ns], names=["count", "horizon"])
        return self._repeat_count(index, ci_prob, max_draws, random_seed, return_draws, method)

    def _repeat_count(self, index: pd.MultiIndex, ci_prob: float, max_draws: int | None,
                      random_seed: Any, return_draws: bool, method: str
                      ) -> pd.DataFrame | xr.DataArray:
        """P(X(n) = x) for the (count, horizon) rows of ``index``; 0 where count > horizon."""
        rows = index.to_frame(index=False).set_axis(index, axis=0)
        n_max = int(rows["horizon"].max())

        def func(a, b, g, d, block):
            bx, bn = (block[k].to_numpy(dtype=float)[None] for k in ("count", "horizon"))
            ok = bx <= bn
            bx = np.minimum(bx, bn)
            log_binom = special.gammaln(bn + 1) - special.gammaln(bx + 1) - special.gammaln(
                bn - bx + 1)
            alive = np.exp(log_binom + _log_beta(a + bx, b + bn - bx) - _log_beta(a, b)
                           + _log_beta(g, d + bn) - _log_beta(g, d))
            i = np.arange(n_max)
            e = lambda v: v[..., None]  # noqa: E731
            ii = np.maximum(i, e(bx))
            log_c = special.gammaln(ii + 1) - special.gammaln(e(bx) + 1) - special.gammaln(
                ii - e(bx) + 1)
            dead = np.exp(log_c + _log_beta(e(a + bx), e(b) + ii - e(bx)) - e(_log_beta(a, b))
                          + _log_beta(e(g) + 1, e(d) + ii) - e(_log_beta(g, d)))
            mask = (i >= e(bx)) & (i < e(bn))
            return np.where(ok, alive + np.where(mask, dead, 0.0).sum(axis=-1), 0.0)

        return self._new_user(func, rows, ci_prob, max_draws, random_seed, return_draws, method,
                              width=n_max)

    @deprecated_alias("probability_repeat_count_new_user")
    def probability_activity(
        self, x: int | list[int] | np.ndarray, n: int | list[int] | np.ndarray, *,
        ci_prob: float = 0.89, return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        """Return :math:`P(X(n) = x)` for the broadcast pairs of ``x`` and ``n`` (deprecated).

        Use :meth:`probability_repeat_count_new_user` (``count=x``,
        ``horizon=n``), which takes the grid of both.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            One row per pair (index ``(count, horizon)``), as
            :meth:`probability_repeat_count_new_user`.

        Raises
        ------
        ValueError
            If ``x`` or ``n`` are not non-negative integers, or ``x > n``.
        """
        xs, ns = np.broadcast_arrays(_int_array(x, "x", "probability_activity"),
                                     _int_array(n, "n", "probability_activity"))
        if (xs > ns).any():
            raise ValueError(
                "The 'x' parameter of BetaGeoBetaBinomModel.probability_activity must not "
                f"exceed n. Got x={xs.tolist()} for n={ns.tolist()} instead.")
        index = pd.MultiIndex.from_arrays([xs, ns], names=["count", "horizon"])
        return self._repeat_count(index, ci_prob, None, None, return_draws,
                                  "probability_activity")


# ------------------------------------------------------------------ helpers


def _int_array(value: Any, name: str, method: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value))
    if not (np.issubdtype(arr.dtype, np.integer) and arr.ndim == 1 and arr.size
            and (arr >= 0).all()):
        raise ValueError(
            f"The '{name}' parameter of BetaGeoBetaBinomModel.{method} must be non-negative "
            f"integers. Got {value!r} instead.")
    return arr.astype("int64")


def _validate_rows(data: pd.DataFrame, *, with_weight: bool) -> pd.DataFrame:
    """Check ``frequency``, ``recency``, ``n`` (and ``weight``) and return them as int64."""
    what = "BG/BB data"
    columns = list(_KEYS) + ([WEIGHT] if with_weight and WEIGHT in data.columns else [])
    problems = [Problem(c, "a column of the BG/BB data",
                        fix="build it with models.churn.beta_geo_beta_binom.bgbb_summary")
                for c in _KEYS if c not in data.columns]
    if not problems and len(data) == 0:
        problems.append(Problem("<table>", "at least one row", fix="pass a non-empty table"))
    if problems:
        raise DataValidationError(problems, what=what)
    for column in columns:
        values = data[column]
        dtype = values.dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            problems.append(Problem(column, f"integers (got dtype {dtype})",
                                    fix=f"convert '{column}' with pd.to_numeric"))
            continue
        num = values.to_numpy(dtype=float, na_value=np.nan)
        for rule, mask in (("no missing values", np.isnan(num)),
                           ("integers", np.isfinite(num) & (num != np.round(num))),
                           ("non-negative values", num < 0)):
            if mask.any():
                problems.append(row_problem(column, rule, mask, values))
        if column == WEIGHT and (num == 0).any():
            problems.append(row_problem(column, "positive user counts", num == 0, values,
                                     "drop rows without users"))
    if problems:
        raise DataValidationError(problems, what=what)
    frame = data[columns].astype("int64")
    x, tx, n = (frame[k].to_numpy() for k in _KEYS)
    pairs = frame[_KEYS]
    if (tx > n).any():
        problems.append(row_problem(RECENCY, "recency <= n", tx > n, pairs,
                                 "recency counts opportunities after the first, like n"))
    if (x > tx).any():
        problems.append(row_problem(FREQUENCY, "frequency <= recency", x > tx, pairs,
                                 "frequency counts active opportunities up to recency"))
    if ((x == 0) & (tx != 0)).any():
        problems.append(row_problem(RECENCY, "recency 0 when frequency is 0", (x == 0) & (tx != 0),
                                 pairs))
    if problems:
        raise DataValidationError(problems, what=what)
    return frame


def _compress(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the unique ``(frequency, recency, n)`` rows with user counts, and each user's row."""
    weight = frame[WEIGHT] if WEIGHT in frame.columns else pd.Series(1, index=frame.index)
    keys = frame[_KEYS].reset_index(drop=True)
    rows = (keys.assign(**{WEIGHT: weight.to_numpy()}).groupby(_KEYS, sort=True)[WEIGHT].sum()
            .reset_index())
    codes = pd.MultiIndex.from_frame(rows[_KEYS]).get_indexer(pd.MultiIndex.from_frame(keys))
    rows.index.name = "row"
    return rows, codes
