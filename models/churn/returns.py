r"""Hazard of the return from silence: activity as a renewal process in which any pause ends.

:class:`ReturnHazardModel` models, period by period, the hazard that a silent
user is active again as a function of how long the silence has lasted (and of
the user), so that a long silence makes a return less likely without ever
making it impossible. It is the hazard model of churn turned around: where
:class:`~models.churn.ChurnHazardModel` asks when a user stops, this one asks
when a silent user comes back, which is what a forecast of activity needs when
silence is usually a pause.

:func:`silence_table` turns an activity table (:func:`~models.churn.activity_table`,
usually with ``period_length=1``: active days) into its person-period rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numba
import numpy as np
import pandas as pd
import xarray as xr

from models._pointwise import by_blocks
from models.base import resolve_seed
from models.churn.engagement_data import validate_activity_table
from models.churn.features import EVENT, TENURE
from models.churn.hazard import ChurnHazardModel, _check_person_periods
from models.data.schema import USER_ID
from models.exceptions import DataValidationError, Problem
from models.predict import (
    draws_to_dataarray,
    posterior_arrays,
    prediction_method,
    sample_shape,
    summarize_draws,
)
from models.priors import Prior

__all__ = ["DEFAULT_SILENCE_BINS", "ReturnHazardModel", "silence_table"]

#: Lower edges of the silence bins, in periods: a silence of ``s`` periods (``s = 1``:
#: the user was active in the period before) falls in the last bin whose edge is
#: ``<= s``. Days 1-7 apart (weekly habits), then wider bins.
DEFAULT_SILENCE_BINS = (1, 2, 3, 4, 5, 6, 7, 8, 11, 15, 22, 31, 61, 91, 181)
SILENCE = "silence"
_GROUP = "user"


def _check_bins(bins: Any, owner: str) -> tuple[int, ...]:
    try:
        edges = tuple(int(b) for b in bins)
        ok = all(int(b) == b for b in bins) and len(edges) >= 1 and edges[0] == 1 and all(
            b < c for b, c in zip(edges, edges[1:], strict=False))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"The 'silence_bins' parameter of {owner} must be increasing whole "
                         f"numbers of periods starting at 1, e.g. {DEFAULT_SILENCE_BINS}. "
                         f"Got {bins!r} instead.")
    return edges


def _bin_of(edges: Sequence[int], n_bins: int) -> np.ndarray:
    """Bin of each silence ``0..cap``, ``cap`` the edge of bin ``n_bins - 1`` (or the last edge).

    A silence ``s`` is in the last bin whose edge is ``<= s``, at most bin
    ``n_bins - 1``; a silence beyond ``cap`` is in the bin of ``cap`` (entry 0,
    a silence of 0, is never looked up).
    """
    edges = np.asarray(edges)
    cap = int(max(edges[min(n_bins, len(edges)) - 1], 1))
    return np.minimum(np.searchsorted(edges, np.arange(cap + 1), side="right") - 1,
                      n_bins - 1).clip(0).astype(np.int64)


# The kernels below read the activity table once, cell by cell (a cell is active when its
# value is > 0, so NaN, before a user's first period, is not), and keep only per-user
# results: no users x periods temporary. They loop over periods outside and users inside,
# the order in which pandas stores a float table (column-major: a column is contiguous).
# The silence of period t is t minus the user's last active period before t; a user has
# one at every period after the first active one.


@numba.njit(cache=True)
def _activity_span(values):  # pragma: no cover - compiled
    """First and last active period of each row of ``values`` ``(U, T)``, -1 if never active."""
    n_users, n_periods = values.shape
    first = np.full(n_users, -1, dtype=np.int64)
    last = np.full(n_users, -1, dtype=np.int64)
    for t in range(n_periods):
        for i in range(n_users):
            if values[i, t] > 0.0:
                if first[i] < 0:
                    first[i] = t
                last[i] = t
    return first, last


@numba.njit(cache=True)
def _silence_counts(values, rows, bin_of, n_bins):  # pragma: no cover - compiled
    """Count the returns and periods at risk ``(len(rows), n_bins)`` of table rows, by bin.

    ``bin_of`` is :func:`_bin_of`: the bin of each silence up to its last
    entry, longer silences in the bin of the last. The counts are whole
    numbers held as floats (exact).
    """
    n_periods = values.shape[1]
    cap = bin_of.shape[0] - 1
    events = np.zeros((rows.shape[0], n_bins))
    exposures = np.zeros((rows.shape[0], n_bins))
    before = np.full(rows.shape[0], -1, dtype=np.int64)  # last active period so far
    for t in range(n_periods):
        for k in range(rows.shape[0]):
            on = values[rows[k], t] > 0.0
            if before[k] >= 0:
                b = bin_of[min(t - before[k], cap)]
                exposures[k, b] += 1.0
                if on:
                    events[k, b] += 1.0
            if on:
                before[k] = t
    return events, exposures


@numba.njit(cache=True)
def _silence_rows(values, first, offset, bin_of, silence, tenure, event,
                  period):  # pragma: no cover - compiled
    """Fill the person-period rows of :func:`silence_table` in place, by user, then period.

    User ``i`` (first active in period ``first[i]``) has the rows
    ``offset[i]:offset[i + 1]``, one per period after ``first[i]``:
    ``silence``, its bin (``bin_of``, as in :func:`_silence_counts`), ``event``
    (1 if active) and the ``period`` index.
    """
    n_users, n_periods = values.shape
    cap = bin_of.shape[0] - 1
    before = first.copy()
    for t in range(n_periods):
        for i in range(n_users):
            if t > first[i]:
                r = offset[i] + t - first[i] - 1
                s = t - before[i]
                on = values[i, t] > 0.0
                silence[r] = s
                tenure[r] = bin_of[min(s, cap)]
                event[r] = 1 if on else 0
                period[r] = t
                if on:
                    before[i] = t


def _activity(data: Any, period_length: int, what: str
              ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Validate an activity table: return it, its values, and each user's first and last activity.

    The values ``(U, T)`` are a read-only view of the clean table's float
    array, column-major as pandas stores it (no copy). A user never active is
    an error naming the users.
    """
    clean = validate_activity_table(data, period_length)
    # pandas hands out its float block as a column-major view: asfortranarray keeps it
    # as it is (it would copy only a table stored otherwise)
    values = np.asfortranarray(clean.to_numpy(dtype=float))
    first, last = _activity_span(values)
    never = first < 0
    if never.any():
        rows = np.flatnonzero(never)
        raise DataValidationError([Problem(
            "<row>", "at least one active period per user (a silence starts at an activity)",
            n_rows=int(never.sum()), rows=tuple(int(r) for r in rows[:5]),
            examples=tuple(clean.index[rows[:5]].tolist()),
            fix="leave out users who were never active, or start their rows at their first "
                "activity")], what=what)
    return clean, values, first, last


def silence_table(activity: pd.DataFrame, *, silence_bins: Sequence[int] = DEFAULT_SILENCE_BINS,
                  period_length: int = 1) -> pd.DataFrame:
    """Person-period rows of the silences of an activity table: at risk of returning, and did they.

    Every observed period after a user's first active one is a row: the
    ``silence`` (periods since the user's last active period: 1 if it was
    active in the period before), its bin ``tenure`` (index into
    ``silence_bins``) and ``event`` (1 if the user was active in the period,
    ending the silence). The last silence of each user is right-censored at
    the end of the table.

    Parameters
    ----------
    activity : pandas.DataFrame
        Activity table, one row per user (index ``user_id``) and one column per
        period in time order, NaN before a user's first period (see
        :func:`~models.churn.activity_table`; ``period_length=1`` gives days).
    silence_bins : sequence of int, default ``DEFAULT_SILENCE_BINS``
        Lower edges of the silence bins, increasing from 1.
    period_length : int, default 1
        Days per period of the table (its largest allowed value).

    Returns
    -------
    pandas.DataFrame
        Columns ``user_id`` (the table's index values, in its dtype),
        ``period`` (the column name), ``silence``, ``tenure`` and ``event``,
        ordered by user and period.

    Raises
    ------
    ValueError
        For bad ``silence_bins``.
    models.exceptions.DataValidationError
        For an invalid table (a value that is not a whole number of active
        days in ``[0, period_length]``, a missing value after an observed one, a
        user with no observed period) or a user who is never active; the
        message names the column, the rows and the values.

    Examples
    --------
    >>> import pandas as pd
    >>> days = pd.DataFrame([[1, 0, 0, 1, 1]], index=pd.Index(["a"], name="user_id"),
    ...                     columns=[f"d{i}" for i in range(5)])
    >>> silence_table(days, silence_bins=(1, 2, 3))[["silence", "tenure", "event"]]
       silence  tenure  event
    0        1       0      0
    1        2       1      0
    2        3       2      1
    3        1       0      1
    """
    edges = _check_bins(silence_bins, "silence_table")
    clean, values, first, _ = _activity(activity, period_length, "activity table")
    n_periods = values.shape[1]
    counts = n_periods - 1 - first  # rows per user: the periods after its first activity
    offset = np.concatenate([[0], np.cumsum(counts)])
    n_rows = int(offset[-1])
    silence, tenure, event = (np.empty(n_rows, dtype=np.int64) for _ in range(3))
    period = np.empty(n_rows, dtype=np.int32 if n_periods < 2**31 else np.int64)
    _silence_rows(values, first, offset, _bin_of(edges, len(edges)), silence, tenure, event,
                  period)
    # the columns are new arrays of this function: the frame takes them without a copy; the
    # ids and period names are repeated as indexes, so they keep their dtype and are not
    # converted from object arrays (that conversion was most of the memory on a big table)
    return pd.DataFrame({
        USER_ID: clean.index.repeat(counts).rename(None),
        "period": clean.columns.take(period).rename(None),
        SILENCE: silence,
        TENURE: tenure,
        EVENT: event,
    }, copy=False)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _forecast(alpha, effect, s0, bin_of, horizon, expected_too,
              uniforms):  # pragma: no cover - compiled
    """P(active within ``horizon``), expected active periods and (with uniforms) a draw.

    The logit hazard of user ``i`` in silence bin ``b`` is ``alpha[d, b] +
    effect[d, i]`` (``alpha`` ``(D, B)``, ``effect`` ``(D, N)``), ``s0`` ``(N,)`` the
    silence of each user's next period, ``bin_of`` the bin of silences
    ``0..S`` (silences beyond ``S`` in the last bin), ``uniforms`` ``(D, N,
    horizon)`` or empty. The expectation (NaN unless ``expected_too``) runs the
    distribution of the silence forward (its states ``1..S``; a longer silence
    has the hazard of ``S``).
    """
    n_draws, n_users = effect.shape
    cap = bin_of.shape[0] - 1
    p_any = np.empty((n_draws, n_users))
    expected = np.empty((n_draws, n_users))
    sampled = np.zeros((n_draws, n_users), dtype=np.int64)
    simulate = uniforms.shape[0] > 0
    for d in numba.prange(n_draws):  # draws on the CPUs
        h = np.empty(cap + 1)
        dist = np.zeros(cap + 2)
        new = np.zeros(cap + 2)
        for i in range(n_users):
            for s in range(1, cap + 1):
                x = alpha[d, bin_of[s]] + effect[d, i]
                h[s] = 1.0 / (1.0 + np.exp(-x))
            start = min(s0[i], cap)
            silent = 1.0
            for j in range(horizon):
                silent *= 1.0 - h[min(s0[i] + j, cap)]
            p_any[d, i] = 1.0 - silent
            if not expected_too:
                expected[d, i] = np.nan
            else:
                for s in range(cap + 2):
                    dist[s] = 0.0
                dist[start] = 1.0
                total = 0.0
                top = start  # the largest silence with mass so far
                for _ in range(horizon):
                    for s in range(top + 2):
                        new[s] = 0.0
                    back = 0.0
                    for s in range(1, top + 1):
                        m = dist[s]
                        if m > 0.0:
                            a = m * h[s]
                            back += a
                            new[min(s + 1, cap)] += m - a
                    new[1] += back
                    total += back
                    top = min(top + 1, cap)
                    for s in range(top + 1):
                        dist[s] = new[s]
                expected[d, i] = total
            if simulate:
                s = start
                count = 0
                for j in range(horizon):
                    if uniforms[d, i, j] < h[s]:
                        count += 1
                        s = 1
                    else:
                        s = min(s + 1, cap)
                sampled[d, i] = count
    return p_any, expected, sampled


_GRID = 32  # points of each user's log posterior over its mode +- 6 Laplace sd
_SPAN = 6.0


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _condition_effects(alpha, sigma, events, exposures, uniforms):  # pragma: no cover
    r"""Draw each user's effect from its posterior given its own silences, per draw.

    ``alpha`` ``(D, B)`` bin logits and ``sigma`` ``(D,)`` the effects' spread
    of each posterior draw; ``events`` and ``exposures`` ``(N, B)`` a user's
    returns and periods at risk by bin; ``uniforms`` ``(D, N, 2)``. The log
    posterior of an effect :math:`u`, :math:`\sum_b e_b (\alpha_b + u) - n_b
    \log(1 + e^{\alpha_b + u}) - u^2 / 2\sigma^2`, is concave: Newton's method
    finds its mode (started from the user's mode in the previous draw), and the
    draw comes from the density whose logarithm interpolates the log posterior
    linearly between ``_GRID`` points over the mode +- 6 of its Laplace sd
    (sampled exactly: a cell by its mass, then the point by inverting the
    cell's exponential). A user with no silence gets a draw from
    :math:`N(0, \sigma)`.
    """
    n_draws, n_bins = alpha.shape
    n_users = events.shape[0]
    out = np.empty((n_draws, n_users))
    for i in numba.prange(n_users):  # users on the CPUs
        logp = np.empty(_GRID)
        mass = np.empty(_GRID - 1)
        u = 0.0
        for d in range(n_draws):
            prec = 1.0 / (sigma[d] * sigma[d])
            curv = prec
            for _ in range(50):
                grad = -u * prec
                curv = prec
                for b in range(n_bins):
                    n = exposures[i, b]
                    if n > 0.0:
                        h = 1.0 / (1.0 + np.exp(-(alpha[d, b] + u)))
                        grad += events[i, b] - n * h
                        curv += n * h * (1.0 - h)
                step = max(-5.0, min(5.0, grad / curv))
                u += step
                if abs(step) < 1e-9:
                    break
            sd = 1.0 / np.sqrt(curv)
            width = 2.0 * _SPAN * sd / (_GRID - 1)
            lo = u - _SPAN * sd
            top = -np.inf
            for g in range(_GRID):
                x = lo + g * width
                lp = -0.5 * x * x * prec
                for b in range(n_bins):
                    n = exposures[i, b]
                    if n > 0.0:
                        z = alpha[d, b] + x
                        soft = z + np.log1p(np.exp(-z)) if z > 0.0 else np.log1p(np.exp(z))
                        lp += events[i, b] * z - n * soft
                logp[g] = lp
                top = max(top, lp)
            total = 0.0
            for g in range(_GRID - 1):  # mass of each cell under the interpolated density
                a, c = logp[g] - top, logp[g + 1] - top
                diff = c - a
                if abs(diff) < 1e-9:
                    m = np.exp(a)
                else:
                    m = (np.exp(c) - np.exp(a)) / diff
                mass[g] = m
                total += m
            target = uniforms[d, i, 0] * total
            acc = 0.0
            cell = _GRID - 2
            for g in range(_GRID - 1):
                acc += mass[g]
                if acc >= target:
                    cell = g
                    break
            diff = logp[cell + 1] - logp[cell]
            v = uniforms[d, i, 1]
            if abs(diff) < 1e-9:
                frac = v
            else:  # inverse of the cell's cdf, proportional to exp(diff * frac)
                frac = np.log1p(v * np.expm1(diff)) / diff
            out[d, i] = lo + (cell + frac) * width
    return out


class ReturnHazardModel(ChurnHazardModel):
    r"""Hazard of activity after a silence, by its length: a renewal model of activity.

    Fitted on an activity table (one row per user, one column per period; by
    default periods of one day, :func:`~models.churn.activity_table` with
    ``period_length=1``), it forecasts each user's activity from where their
    current silence stands: the probability of being active at least once in a
    horizon, the expected number of active periods, and draws of it (``fit``
    also takes the table's :func:`silence_table` rows, made with the model's
    ``silence_bins``). A user
    silent for months keeps a (small) chance of return that the data set, where
    a dropout model such as BG/NBD gives it up for good.

    Parameters
    ----------
    silence_bins : sequence of int, default ``DEFAULT_SILENCE_BINS``
        Lower edges of the silence bins (periods), increasing from 1: the
        baseline hazard is one value per bin.
    period_length : int, default 1
        Days per period of the activity table.
    user_effects : bool, default True
        Give each user a random intercept on the logit hazard (partially pooled),
        so that a frequent listener returns sooner than a rare one after the
        same silence.
    baseline : {"rw", "independent"}, default "rw"
        Baseline logit hazard over the silence bins: a random walk (smooth) or
        independent values.
    priors : mapping of str to Prior or dict, optional
        As in :class:`~models.churn.ChurnHazardModel`: ``baseline_start``,
        ``baseline_sigma`` and ``group_sigma`` (the spread of the user effects).

    Attributes
    ----------
    idata_, model_, data_, fit_report_
        See :class:`~models.base.BayesianModel`; ``data_`` is the
        :func:`silence_table` of the training table.

    Notes
    -----
    With :math:`s_{it}` the silence of user :math:`i` in period :math:`t`
    (periods since its last active period; 1 after an active period) and
    :math:`b(s)` its bin, user :math:`i` is active in period :math:`t` with
    probability

    .. math::

        h_{it} = \operatorname{logit}^{-1}\bigl(\alpha_{b(s_{it})} + u_i\bigr),
        \qquad u_i = \sigma_u \eta_i,\ \eta_i \sim N(0, 1),

    :math:`\alpha` a random walk over the bins as in
    :class:`~models.churn.ChurnHazardModel` (whose likelihood, on cells of
    equal bin and user, this model shares). Silences end at an activity and
    restart after it, so activity is a renewal process in discrete time:
    heavy and light listeners differ through :math:`u_i`, pauses and
    returns through the shape of :math:`\alpha`. A silence longer than the
    longest one seen in training has the hazard of the last fitted bin.

    *Predictions* start in the period after the table's last and run
    ``horizon`` periods. :math:`P(\text{active}) = 1 - \prod_{j<H}(1 -
    h(s_i + j))` from the current silence :math:`s_i`; the expected count runs
    the distribution of the silence forward (exact, per posterior draw);
    :meth:`sample_activity` draws one path per posterior draw (the posterior
    predictive). A user of ``data`` whose effect was not fitted (not in the
    training table, or with no silence there) gets, in each posterior draw, an
    effect drawn from its posterior given its own silences in ``data`` and that
    draw's hazards and :math:`\sigma_u` (on a grid around its mode, the log
    density interpolated between the points), as a fitted user's effect is: so
    a model fitted on a sample of users forecasts the others from their own
    histories (with none, from :math:`N(0, \sigma_u)`).

    *LOO* (``compute_log_likelihood``, variable ``event``, dim
    ``user_period``) leaves out one user-period, as in the churn hazard model.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> days = pd.DataFrame(rng.binomial(1, 0.4, size=(30, 40)).astype(float),
    ...                     index=pd.Index([f"u{i}" for i in range(30)], name="user_id"))
    >>> days.iloc[:, 0] = 1.0
    >>> model = ReturnHazardModel(silence_bins=(1, 2, 4, 8))
    >>> sorted(rv.name for rv in model.build_model(days).free_RVs)
    ['baseline_sigma', 'baseline_start', 'baseline_step', 'group_sigma', 'u_user']

    ``model.fit(days)`` samples the posterior; then
    ``model.probability_active(horizon=30)`` and
    ``model.expected_activity(horizon=30)`` forecast the next 30 days.
    """

    centred_groups: ClassVar[bool] = True  # each user has many periods,
    centred_baseline: ClassVar[bool] = True  # each bin many rows
    default_priors: ClassVar[Mapping[str, Prior]] = {
        "baseline_start": Prior("Normal", mu=0.0, sigma=2.0),
        "baseline_sigma": Prior("HalfNormal", sigma=1.0),
        "beta": Prior("Normal", mu=0.0, sigma=1.0),
        "group_sigma": Prior("HalfNormal", sigma=1.5),
    }

    def __init__(
        self,
        *,
        silence_bins: Sequence[int] = DEFAULT_SILENCE_BINS,
        period_length: int = 1,
        user_effects: bool = True,
        baseline: Literal["rw", "independent"] = "rw",
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
    ) -> None:
        owner = type(self).__name__
        self.silence_bins = _check_bins(silence_bins, owner)
        if isinstance(period_length, bool) or not isinstance(period_length, int | np.integer) \
                or period_length < 1:
            raise ValueError(f"The 'period_length' parameter of {owner} must be a positive "
                             f"integer. Got {period_length!r} instead.")
        if not isinstance(user_effects, bool):
            raise ValueError(f"The 'user_effects' parameter of {owner} must be True or False. "
                             f"Got {user_effects!r} instead.")
        self.period_length = int(period_length)
        self.user_effects = user_effects
        super().__init__(priors=priors, covariates=(), groups=(_GROUP,) if user_effects else (),
                         baseline=baseline)

    # ------------------------------------------------------------------ data
    def _validate_data(self, data: Any) -> pd.DataFrame:
        if isinstance(data, pd.DataFrame) and {USER_ID, SILENCE, TENURE, EVENT} <= set(
                data.columns):  # already silence rows (a saved fit's data)
            rows = data[[USER_ID, SILENCE, TENURE, EVENT]].copy()
            s = pd.to_numeric(rows[SILENCE], errors="coerce").to_numpy(dtype=float)
            expected = np.searchsorted(np.asarray(self.silence_bins), s, side="right") - 1
            bad = ~((s >= 1) & (expected == rows[TENURE].to_numpy()))
            if bad.any():
                raise DataValidationError([Problem(
                    TENURE, f"the bin of '{SILENCE}' in silence_bins {self.silence_bins}",
                    n_rows=int(bad.sum()), rows=tuple(int(r) for r in np.flatnonzero(bad)[:5]),
                    examples=tuple(rows[TENURE].to_numpy()[bad][:5].tolist()),
                    fix="build the rows with silence_table(..., silence_bins=...) of the "
                        "model")], what="silence table")
        else:
            rows = silence_table(data, silence_bins=self.silence_bins,
                                 period_length=self.period_length)
        if rows.empty:
            raise DataValidationError([Problem(
                "<table>", "at least one period after a user's first active one",
                fix="pass a table with more than one period")], what="activity table")
        rows[_GROUP] = rows[USER_ID].astype(str)
        frame = _check_person_periods(rows, [], list(self.groups), with_event=True,
                                      what="silence table", owner=type(self).__name__)
        frame[SILENCE] = rows[SILENCE].to_numpy()
        return frame

    # ----------------------------------------------------------- predictions
    def _start(self, data: Any) -> tuple[pd.Index, np.ndarray, np.ndarray | None]:
        """Users to forecast, the silence of their next period, and ``data``'s values.

        The values ``(U, T)`` are those of a table ``data`` (for the histories
        of users outside the fit, :func:`_silence_counts`), None by default
        (the training users, every one fitted).
        """
        if data is None:
            last = self.data_.groupby(USER_ID, sort=False).tail(1)
            upcoming = np.where(last[EVENT].to_numpy() == 1, 1, last[SILENCE].to_numpy() + 1)
            return (pd.Index(last[USER_ID].to_numpy(), name=USER_ID),
                    upcoming.astype(np.int64), None)
        clean, values, _, last = _activity(data, self.period_length, "data of the forecast")
        return clean.index, (values.shape[1] - last).astype(np.int64), values

    def _forecast(self, what: str, data: Any, horizon: Any, max_draws: int | None,
                  random_seed: Any) -> tuple[pd.Index, np.ndarray]:
        """Return the users and the draws ``(D, N)`` of the prediction ``what`` (a method)."""
        simulate = what == "sample_activity"
        owner = f"{type(self).__name__}.{what}"
        self._require_fitted(f"{what}()")
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
            raise ValueError(f"The 'horizon' parameter of {owner} must be a positive integer "
                             f"number of periods. Got {horizon!r} instead.")
        users, upcoming, values = self._start(data)
        names = ["baseline"] + ([f"u_{_GROUP}", "group_sigma"] if self.user_effects else [])
        params = posterior_arrays(self.idata_, names, max_draws=max_draws,
                                  random_seed=random_seed)
        alpha = params["baseline"]  # (D, B_fit)
        n_draws = alpha.shape[0]
        rng = np.random.default_rng([resolve_seed(random_seed), 2])
        # silences longer than the fitted bins have the hazard of the last fitted bin
        bin_of = _bin_of(self.silence_bins, alpha.shape[1])
        known = np.ones(len(users), dtype=bool)  # a fitted effect, or no effects at all
        if self.user_effects:
            levels = pd.Index(self.idata_["posterior"][_GROUP].values.astype(str))
            pos = levels.get_indexer(users.astype(str))  # each user's fitted effect, -1: none
            known = pos >= 0
        # users not in the fit (only in a table ``data``): effects given their own silences,
        # of which only the counts by bin are kept (the table is let go before the forecasts)
        unknown = np.flatnonzero(~known)
        slot = np.full(len(users), -1)
        slot[unknown] = np.arange(len(unknown))
        if len(unknown):
            events, exposures = _silence_counts(values, unknown, bin_of, alpha.shape[1])
            sigma = np.ascontiguousarray(params["group_sigma"][:, 0])
        del values
        none = np.empty((0, 0, 0))

        def block(idx: np.ndarray) -> np.ndarray:  # bounded memory: users in blocks
            sub = np.zeros((n_draws, len(idx)))  # effects: fitted, drawn, or 0 (none)
            if self.user_effects:
                fitted = np.flatnonzero(known[idx])
                sub[:, fitted] = params[f"u_{_GROUP}"][:, pos[idx[fitted]]]
            new = np.flatnonzero(~known[idx])
            if len(new):
                rows = slot[idx[new]]
                sub[:, new] = _condition_effects(alpha, sigma, events[rows], exposures[rows],
                                                 rng.random((n_draws, len(new), 2)))
            uniforms = rng.random((n_draws, len(idx), int(horizon))) if simulate else none
            p_any, expected, sampled = _forecast(
                alpha, sub, upcoming[idx], bin_of, int(horizon), what == "expected_activity",
                uniforms)
            if what == "probability_churn":
                return 1.0 - p_any
            return {"expected_activity": expected, "sample_activity": sampled}.get(what, p_any)

        return users, by_blocks(block, n_draws, len(users),
                                unit_width=int(horizon) if simulate else 1)

    def _summary(self, what: str, data: Any, horizon: Any, ci_prob: float,
                 max_draws: int | None, random_seed: Any,
                 return_draws: bool) -> pd.DataFrame | xr.DataArray:
        """Return the prediction ``what`` summarised per user, or its draws."""
        users, values = self._forecast(what, data, horizon, max_draws, random_seed)
        if return_draws:
            return draws_to_dataarray(values, index=users, shape=sample_shape(self.idata_,
                                                                                max_draws),
                                      unit="user", name=what)
        return summarize_draws(values, ci_prob=ci_prob, index=users)

    @prediction_method()
    def probability_active(
        self, data: pd.DataFrame | None = None, *, horizon: int, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability that each user is active at least once in the next ``horizon`` periods.

        :math:`1 - \prod_{j<H} (1 - h(s_i + j))` per posterior draw, from the
        silence :math:`s_i` of the user's next period.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Activity table of the users to forecast, ending where the forecast
            starts. By default the training table's users that have a period
            after their first active one (a user first active in the table's
            last period has no row to fit; pass the table to forecast it too).
        horizon : int
            Number of periods.
        ci_prob : float, default 0.89
            Probability mass of the equal-tailed interval.
        max_draws : int, optional
            Use a random subset of this many posterior draws.
        random_seed : int, numpy.random.Generator or None
            Seed of that subset (and of the effects of users without a fitted one).
        return_draws : bool, default False
            Return the draws instead of the summary.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            ``mean``, ``sd``, ``ci_lower``, ``ci_upper`` per user (index
            ``user_id``), or the draws of dims ``(chain, draw, user)``.

        Raises
        ------
        ValueError
            If ``horizon`` is not a positive integer, or for a bad option.
        models.exceptions.DataValidationError
            For an invalid table, or a user never active in it.
        models.exceptions.NotFittedError
            Before ``fit``.
        """
        return self._summary("probability_active", data, horizon, ci_prob, max_draws,
                             random_seed, return_draws)

    @prediction_method()
    def expected_activity(
        self, data: pd.DataFrame | None = None, *, horizon: int, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        """Return the expected number of active periods of each user in the next ``horizon``.

        Exact per posterior draw: the distribution of the silence is run forward
        period by period. Parameters, returns and errors as in
        :meth:`probability_active`.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            As in :meth:`probability_active`.
        horizon : int
            Number of periods.
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_active`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`probability_active`.
        """
        return self._summary("expected_activity", data, horizon, ci_prob, max_draws,
                             random_seed, return_draws)

    @prediction_method()
    def sample_activity(
        self, data: pd.DataFrame | None = None, *, horizon: int,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
    ) -> xr.DataArray:
        """Draw each user's number of active periods in the next ``horizon`` periods.

        The posterior predictive: per posterior draw, one path of the renewal
        process from the user's current silence. Summarise with
        :func:`models.predict.predictive_summary`.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            As in :meth:`probability_active`.
        horizon : int
            Number of periods.
        max_draws : int, optional
            Use a random subset of this many posterior draws.
        random_seed : int, numpy.random.Generator or None
            Seed of the subset and of the simulated activity.

        Returns
        -------
        xarray.DataArray
            Integer draws of dims ``(chain, draw, user)``.

        Raises
        ------
        ValueError
            If ``horizon`` is not a positive integer, or for a bad option.
        models.exceptions.DataValidationError
            For an invalid table, or a user never active in it.
        models.exceptions.NotFittedError
            Before ``fit``.
        """
        users, sampled = self._forecast("sample_activity", data, horizon, max_draws,
                                        random_seed)
        return draws_to_dataarray(sampled, index=users, shape=sample_shape(self.idata_,
                                                                             max_draws),
                                  unit="user", name="sample_activity")

    @prediction_method()
    def probability_churn(
        self, data: pd.DataFrame | None = None, *, horizon: int = 1, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability that each user stays silent through the next ``horizon`` periods.

        Churn in the sense of a silence of at least ``horizon`` periods from now,
        :math:`\prod_{j<H} (1 - h(s_i + j))`: ``1 - probability_active``. It is
        not a dropout for good: the model lets every silence end.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            As in :meth:`probability_active`.
        horizon : int, default 1
            Number of periods.
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_active`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`probability_active`.
        """
        return self._summary("probability_churn", data, horizon, ci_prob, max_draws,
                             random_seed, return_draws)

    @prediction_method()
    def expected_survival(
        self, data: pd.DataFrame | None = None, *, horizon: int = 1, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        """Probability that each user is still a listener over the next ``horizon`` periods.

        Retained meaning active at least once within the horizon: the same as
        :meth:`probability_active` and ``1 - probability_churn``, kept so that
        the model answers the churn hazard model's questions.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            As in :meth:`probability_active`.
        horizon : int, default 1
            Number of periods.
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_active`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`probability_active`.
        """
        return self._summary("expected_survival", data, horizon, ci_prob, max_draws,
                             random_seed, return_draws)
