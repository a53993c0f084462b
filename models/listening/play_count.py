r"""Hierarchical model of plays per user and period (negative binomial and relatives).

The likelihood is evaluated on *cell sufficient statistics*: rows of one user
that share every term of the linear predictor (the same day of week, the same
trend value) are exchangeable, so the model only needs, per cell, the number
of rows :math:`n`, of zero rows :math:`n_0` and the sum of plays :math:`S`,
plus one histogram of the play counts over the whole table. The cells form a
users x columns grid whose log-means are :math:`\theta_u + \phi_k` (plus a
per-cell covariate term), so the likelihood is one pass over dense arrays with
no indexing. This is exact, not an approximation (see :class:`PlayCountModel`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr

from models._deprecation import deprecated_alias
from models._pointwise import blocks, by_blocks, draw_arrays, sample_array, unit_array
from models._validation import add_problem, check_int
from models.base import BayesianModel, resolve_seed
from models.data.schema import USER_ID
from models.exceptions import DataQualityWarning, DataValidationError, Problem
from models.listening import _laplace, _play_count_predictions
from models.listening._pointwise import count_loglik, gamma_conditional_loglik
from models.listening.count_likelihood import NegBinGridLogp, cell_loglik
from models.listening.gamma_users import compress_users, draw_user_log_rates, gamma_user_loglik
from models.predict import (
    posterior_arrays,
    prediction_method,
    summarize_draws,
)
from models.priors import Prior

__all__ = ["PlayCountModel"]

PERIOD_START = "period_start"
PLAYS = "plays"
LIKELIHOODS = ("negbin", "zinb", "hurdle", "poisson")
USER_EFFECTS = ("lognormal", "gamma")
USER_INFERENCES = ("sample", "laplace")
#: Period effects: name -> (levels, function of the period_start column giving the level).
PERIOD_EFFECTS: dict[str, tuple[tuple[int, ...], Callable[[pd.Series], np.ndarray]]] = {
    "day_of_week": (tuple(range(7)), lambda s: s.dt.day_of_week.to_numpy(dtype="int64")),
    "month": (tuple(range(1, 13)), lambda s: s.dt.month.to_numpy(dtype="int64")),
}
_TABLE = "<table>"
_N_EXAMPLES = 5
_DAYS_PER_TREND_UNIT = 7.0
#: With ``noncentered="auto"``, users are sampled centred when the median user has at least
#: this many plays in the training data (see the ``noncentered`` parameter).
AUTO_CENTRED_FROM_PLAYS = 10


# ----------------------------------------------------------------- helpers
def check_columns(data: Any, columns: Sequence[str], owner: str, what: str, fix: str) -> None:
    """Raise for a non-DataFrame, missing columns or an empty table."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            f"The 'data' parameter of {owner} must be a pandas DataFrame. "
            f"Got {type(data).__name__} instead."
        )
    problems = [Problem(c, f"a column of the {what}", fix=fix)
                for c in columns if c not in data.columns]
    if not problems and len(data) == 0:
        problems.append(Problem(_TABLE, "at least one row", fix=fix))
    if problems:
        raise DataValidationError(problems, what=what)


def check_count_column(problems: list[Problem], data: pd.DataFrame, column: str) -> None:
    """Check a column holds non-negative whole numbers without missing values."""
    values = data[column]
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        problems.append(Problem(column, f"non-negative integer counts (got dtype {values.dtype})",
                                fix=f"convert '{column}' with pd.to_numeric"))
        return
    num = values.to_numpy(dtype=float, na_value=np.nan)
    add_problem(problems, column, "no missing values", np.isnan(num), num)
    add_problem(problems, column, "non-negative counts", num < 0, num)
    add_problem(problems, column, "whole numbers (integer counts)",
                np.isfinite(num) & (num != np.round(num)), num)


def check_labels(
    owner: str, name: str, values: Sequence[Any] | np.ndarray, valid: Sequence[Any]
) -> None:
    """Raise a ValueError naming the first unknown label and the valid ones."""
    valid_set = set(valid)
    unknown = [v for v in pd.unique(np.asarray(values, dtype=object)) if v not in valid_set]
    if unknown:
        shown = list(valid)[:20]
        more = "" if len(valid) <= 20 else f" (and {len(valid) - 20} more)"
        raise ValueError(
            f"Unknown {name} label(s) {unknown[:_N_EXAMPLES]!r} in {owner}; the labels seen "
            f"in the training data are {shown!r}{more}."
        )


def interval_summary(draws: np.ndarray, ci_prob: float, index: Sequence[Any]) -> pd.DataFrame:
    """Mean, sd, equal-tailed interval and P(draw > 0) of each column of a (draws x units) array."""
    frame = summarize_draws(draws, ci_prob=ci_prob, index=index)
    frame["prob_positive"] = (draws > 0).mean(axis=0)
    return frame


# ------------------------------------------------------------------ model
class PlayCountModel(_laplace.LaplaceCheckedFit, BayesianModel):
    r"""Hierarchical model of how many plays each user makes in each period.

    Parameters
    ----------
    priors : mapping of str to Prior, optional
        Replace default priors by name: ``intercept``, ``group_effect``,
        ``sigma_user``, ``period_effect``, ``trend``, ``beta``, ``alpha``,
        ``zero_logit``, ``user_shape`` (``user_effect="gamma"``).
    groups : sequence of str, default ()
        User attributes (columns, constant within a user) whose levels get
        sum-to-zero effects; users are partially pooled around their segment,
        e.g. ``groups=("country", "plan")``. By default there are none, so the
        model fits the plain log of ``user_id, period_start, plays``; segments
        are opted into.
    period_effects : sequence of str, default ("day_of_week",)
        Calendar effects computed from ``period_start``: ``"day_of_week"``
        (daily periods) and/or ``"month"``; sum-to-zero coded.
    trend : bool, default False
        Add a linear trend in calendar time, per week, measured from the mean
        ``period_start`` of the training rows (centring keeps the trend
        nearly uncorrelated with the intercept; uncentred, NUTS needed five
        times more gradient evaluations per draw).
    covariates : sequence of str, default ()
        Numeric per-row columns with linear effects; they are standardised
        with the training mean and standard deviation.
    likelihood : {"negbin", "zinb", "hurdle", "poisson"}, default "negbin"
        Negative binomial; zero-inflated negative binomial (extra structural
        zeros); hurdle negative binomial (zeros from their own process, counts
        from a zero-truncated negative binomial); Poisson.
    noncentered : bool or "auto", default "auto"
        Parametrisation of the user effects: non-centred (True), centred
        (False) or chosen from the data ("auto"): non-centred when the median
        user has fewer than 10 plays in the training data (the data say
        little about each user), centred otherwise. Only the sampling
        geometry changes, not the model. With ``benchmarks/bench_listening.py``
        (500 draws, 2 chains): on 300 users x 28 days with 3 plays a day the
        centred version had 17 times the bulk ESS/s of ``sigma_user`` and
        R-hat 1.002 against 1.027; on 1,000 users x 7 days with 0.3 plays a
        day the non-centred one had 3 times the bulk ESS/s of ``sigma_user``;
        neither had divergences.
    user_effect : {"lognormal", "gamma"}, default "lognormal"
        Distribution of the user effects. ``"lognormal"``: normal user
        log-rates (above), one sampled parameter per user. ``"gamma"`` (needs
        ``likelihood="poisson"``): the user rate multiplier is Gamma with mean
        1 and shape ``user_shape``, which is conjugate to the Poisson, so the
        user rates are integrated out exactly and NUTS samples only the
        population parameters; each user's rate is then drawn from its exact
        conditional Gamma for predictions. The marginal count of a user over
        any span is negative binomial (the classic NBD model of purchase and
        listening frequency); day-to-day variation within a user is Poisson.
        Use it for very many users (100,000 users x 28 days: seconds instead
        of many minutes, see ``benchmarks/README.md``), and check with a
        posterior predictive check that Poisson days fit. ``noncentered``
        does not apply.
    user_inference : {"sample", "laplace"}, default "sample"
        How the lognormal user effects are inferred. ``"sample"``: NUTS samples
        one parameter per user with the population parameters. ``"laplace"``
        (``likelihood`` "negbin" or "poisson", no covariates): each user's
        log-rate is integrated out with a second-order Laplace approximation
        (a normal around the mode of its conditional posterior, found by
        Newton steps over all users at once, corrected by its third and fourth
        derivatives), NUTS samples only the population parameters on that
        approximate marginal likelihood, and each user's log-rate is then
        drawn from its normal approximation once per posterior draw, so
        ``idata_`` holds ``user_log_rate`` as with ``"sample"``. The
        assumption is that each user's conditional posterior given the
        population parameters is close to normal; ``fit`` checks it with
        Pareto-smoothed importance weights on up to 1,000 users (half of them
        those with the fewest plays, half at random) and warns
        (:class:`~models.exceptions.ApproximationWarning`, and in
        ``fit_report_.cautions``) when more than an estimated 1% of all users
        have Pareto k above 0.7 and log-weights varying by more than 0.1 sd.
        The default ``target_accept`` is then 0.65 (see
        :meth:`default_target_accept`). Same model,
        far fewer sampled dimensions: see ``models.listening._laplace`` and
        ``benchmarks/README.md`` for its accuracy and speed. ``noncentered``
        does not apply.

    Notes
    -----
    For user :math:`u` in levels :math:`c_u, p_u` of the groups and period
    :math:`t` with day of week :math:`d_t`:

    .. math::

        \log \mu_{ut} = \beta_0 + a_{c_u} + b_{p_u} + \theta_u + \delta_{d_t}
            + \gamma\, w_t + x_{ut}^\top \beta, \qquad
        \theta_u \sim N(0, \sigma_u^2), \;
        \textstyle\sum_c a_c = \sum_p b_p = \sum_d \delta_d = 0,

    where :math:`w_t` is weeks from the mean training period. The
    likelihood of :math:`y_{ut}` is :math:`\mathrm{NegBin}(\mu, \alpha)`
    (variance :math:`\mu + \mu^2/\alpha`), a zero-inflated negative binomial
    with structural-zero probability :math:`\pi`, a hurdle negative binomial
    with :math:`P(y=0)=\pi`, or :math:`\mathrm{Poisson}(\mu)`;
    :math:`\operatorname{logit}\pi` is one parameter ``zero_logit``.
    Segment effects are sum-to-zero (a hierarchical scale over two or
    three levels is not identified and makes a funnel NUTS diverges in).
    Non-centred: :math:`\theta_u = \sigma_u z_u, z_u \sim N(0,1)`; centred:
    the user log-rate :math:`\eta_u = \beta_0 + a_{c_u} + b_{p_u} + \theta_u`
    is itself the sampled variable ``user_log_rate``.

    *Sufficient statistics.* The negative binomial log-likelihood of the
    :math:`n` rows of a cell (one user, one day of week) with sum :math:`S`,

    .. math::

        \sum_i \log \mathrm{NB}(y_i) = \sum_i [\log\Gamma(y_i+\alpha)
        - \log\Gamma(\alpha) - \log y_i!] + n\alpha\log\alpha
        - (n\alpha + S)\log(\alpha + \mu) + S \log \mu,

    splits into a global histogram term and a per-cell term in :math:`(n, S)`;
    the zero-inflated and hurdle versions add the number of zeros
    :math:`n_0`. 100,000 users x 28 days (2.8 million rows) become 700,000
    cells and one histogram. A cell is one user and one *column*, a
    combination of the terms all users share in a period: the day-of-week
    (and month) levels, plus the trend value with ``trend=True`` (then each
    period is its own column: the trend costs a grid of users x periods but
    stays one vectorised pass), plus the period itself with covariates (whose
    per-row values are then a users x periods x covariates array).

    *LOO and predictive checks.* The unit of the pointwise log-likelihood
    (:meth:`compute_log_likelihood`, variable ``plays``, dim ``user_period``:
    the rows of ``data_``, with coordinates ``user_id`` and ``period_start``) is
    one user-day, :math:`\log p(y_{ut} \mid \theta)` under the model's
    likelihood (hurdle included); the values sum to the model's log-likelihood.
    With ``user_effect="gamma"`` the user rates are integrated out and the days of
    a user are not independent given the parameters, so the value of a user-day
    is its log-probability given the user's other days,
    :math:`\log p(y_{ut} \mid y_{u,-t}, \theta)` (a negative binomial), which is what
    PSIS-LOO needs for a model that does not factorise (Bürkner, Gabry & Vehtari
    2021); they do not sum to the collapsed log-likelihood, but they are
    comparable, user-day by user-day, with those of the other likelihoods.
    :meth:`sample_posterior_predictive` replicates ``plays`` for every row (with
    ``"gamma"``, each user's rate drawn from its exact conditional).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> days = pd.date_range("2024-01-01", periods=14, freq="D")
    >>> data = pd.DataFrame({
    ...     "user_id": np.repeat([f"u{i}" for i in range(20)], 14),
    ...     "period_start": np.tile(days, 20),
    ...     "country": np.repeat(rng.choice(["SE", "US"], 20), 14),
    ...     "plan": np.repeat(rng.choice(["free", "premium"], 20), 14),
    ...     "plays": rng.poisson(3.0, 280),
    ... })
    >>> model = PlayCountModel(groups=("country", "plan"), likelihood="poisson").fit(
    ...     data, method="map", random_seed=1)
    >>> bool(abs(float(model.idata_["posterior"]["intercept"].mean()) - np.log(3)) < 0.5)
    True
    """

    default_priors: ClassVar[Mapping[str, Prior]] = {
        "intercept": Prior("Normal", mu=0.0, sigma=2.5),
        "group_effect": Prior("ZeroSumNormal", sigma=0.5),
        "sigma_user": Prior("HalfNormal", sigma=1.0),
        "period_effect": Prior("ZeroSumNormal", sigma=0.5),
        "trend": Prior("Normal", mu=0.0, sigma=0.2),
        "beta": Prior("Normal", mu=0.0, sigma=1.0),
        "alpha": Prior("Gamma", alpha=2.0, beta=0.5),
        "zero_logit": Prior("Normal", mu=0.0, sigma=1.5),
        "user_shape": Prior("Gamma", alpha=2.0, beta=0.5),
    }

    def __init__(
        self,
        *,
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
        groups: Sequence[str] = (),
        period_effects: Sequence[str] = ("day_of_week",),
        trend: bool = False,
        covariates: Sequence[str] = (),
        likelihood: Literal["negbin", "zinb", "hurdle", "poisson"] = "negbin",
        noncentered: bool | Literal["auto"] = "auto",
        user_effect: Literal["lognormal", "gamma"] = "lognormal",
        user_inference: Literal["sample", "laplace"] = "sample",
    ) -> None:
        self.groups = groups
        self.period_effects = period_effects
        self.trend = trend
        self.covariates = covariates
        self.likelihood = likelihood
        self.noncentered = noncentered
        self.user_effect = user_effect
        self.user_inference = user_inference
        owner = "PlayCountModel"
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"The 'likelihood' parameter of {owner} must be one of "
                             f"{list(LIKELIHOODS)}. Got {likelihood!r} instead.")
        for name, value in (("groups", groups), ("covariates", covariates),
                            ("period_effects", period_effects)):
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"The '{name}' parameter of {owner} must be a sequence of "
                                 f"column names. Got {value!r} instead.")
        bad = [p for p in period_effects if p not in PERIOD_EFFECTS]
        if bad:
            raise ValueError(f"The 'period_effects' parameter of {owner} must hold names from "
                             f"{list(PERIOD_EFFECTS)}. Got {bad[0]!r} instead.")
        if user_effect not in USER_EFFECTS:
            raise ValueError(f"The 'user_effect' parameter of {owner} must be one of "
                             f"{list(USER_EFFECTS)}. Got {user_effect!r} instead.")
        if user_effect == "gamma" and likelihood != "poisson":
            raise ValueError(
                f"The 'user_effect' parameter of {owner} is 'gamma', which needs "
                f"likelihood='poisson' (the Gamma user rates integrate out in closed form "
                f"only under a Poisson count). Got likelihood={likelihood!r}.")
        if user_inference not in USER_INFERENCES:
            raise ValueError(f"The 'user_inference' parameter of {owner} must be one of "
                             f"{list(USER_INFERENCES)}. Got {user_inference!r} instead.")
        if user_inference == "laplace" and (user_effect != "lognormal" or covariates
                                            or likelihood not in ("negbin", "poisson")):
            raise ValueError(
                f"The 'user_inference' parameter of {owner} is 'laplace', which needs "
                "user_effect='lognormal', likelihood 'negbin' or 'poisson' and no covariates. "
                f"Got user_effect={user_effect!r}, likelihood={likelihood!r}, "
                f"covariates={list(covariates)!r}.")
        if not (isinstance(noncentered, bool) or noncentered == "auto"):
            raise ValueError(f"The 'noncentered' parameter of {owner} must be True, False or "
                             f"'auto'. Got {noncentered!r} instead.")
        for name, value in (("trend", trend),):
            if not isinstance(value, bool):
                raise ValueError(f"The '{name}' parameter of {owner} must be True or False. "
                                 f"Got {value!r} instead.")
        super().__init__(priors=priors)

    # ---------------------------------------------------------------- data
    def _validate_data(self, data: Any) -> pd.DataFrame:
        owner, what = "PlayCountModel.fit", "play-count table"
        groups, covs = list(self.groups), list(self.covariates)
        columns = [USER_ID, PERIOD_START, PLAYS, *groups, *covs]
        check_columns(data, columns, owner, what,
                      "pass models.data.summaries.period_play_counts output with the user "
                      "attributes joined in")
        frame = data[columns].reset_index(drop=True)
        problems: list[Problem] = []
        check_count_column(problems, frame, PLAYS)
        self._check_rows(problems, frame)
        if problems:
            raise DataValidationError(problems, what=what)
        frame[PLAYS] = frame[PLAYS].astype("int64")
        dup = frame.duplicated([USER_ID, PERIOD_START]).to_numpy()
        add_problem(problems, PERIOD_START, "one row per user and period", dup,
                    frame[PERIOD_START].astype(str).to_numpy(), fix="aggregate duplicate rows")
        for g in groups:
            varies = frame.groupby(USER_ID, sort=False)[g].transform("nunique").to_numpy() > 1
            add_problem(problems, g, "one value per user (a user attribute)", varies,
                        frame[USER_ID].to_numpy(), fix="use each user's current attribute")
        if problems:
            raise DataValidationError(problems, what=what)
        self._check_periods(frame, what)
        if len(frame) and frame[PLAYS].sum() == 0:
            warnings.warn(DataQualityWarning(
                f"Every one of the {len(frame):,} play counts of the {what} is 0: the data say "
                "only that plays are rare, so the play rate's estimate and every user and group "
                "effect come from the priors. Check the log's period and filters."), stacklevel=3)
        return frame.sort_values([USER_ID, PERIOD_START], kind="stable").reset_index(drop=True)

    def _check_periods(self, frame: pd.DataFrame, what: str) -> None:
        """Raise for a period with no rows inside the data's range, or an effect level without rows.

        The periods are the distinct ``period_start`` values; their spacing is
        the smallest gap between two of them (calendar months when they are all
        month starts). A missing period means rows were dropped, which would
        silently bias a trend and the period effects.
        """
        periods = pd.DatetimeIndex(pd.unique(frame[PERIOD_START])).sort_values()
        problems: list[Problem] = []
        if len(periods) > 1:
            gaps = periods[1:] - periods[:-1]
            monthly = bool(periods.is_month_start.all()) and gaps.min() >= pd.Timedelta(days=28)
            full = pd.date_range(periods[0], periods[-1],
                                 freq="MS" if monthly else gaps.min())
            missing = full.difference(periods)
            if len(missing):
                shown = ", ".join(str(p.date()) for p in missing[:_N_EXAMPLES])
                problems.append(Problem(
                    PERIOD_START, f"rows for every period from {periods[0].date()} to "
                    f"{periods[-1].date()}; {len(missing)} period(s) have no rows: {shown}",
                    fix="keep the zero-play rows (period_play_counts includes them) or "
                        "restrict the data to an unbroken range of periods"))
        for name in self.period_effects:
            levels, func = PERIOD_EFFECTS[name]
            seen = set(np.unique(func(frame[PERIOD_START])).tolist())
            empty = [lv for lv in levels if lv not in seen]
            if empty:
                problems.append(Problem(
                    PERIOD_START, f"rows in every level of the '{name}' effect; levels "
                    f"{empty} have none", fix=f"drop '{name}' from period_effects or pass "
                    "data covering every level"))
        if problems:
            raise DataValidationError(problems, what=what)

    def _check_rows(self, problems: list[Problem], frame: pd.DataFrame) -> None:
        """Check ids, timestamps, group labels and covariates in place (no plays)."""
        add_problem(problems, USER_ID, "no missing values", frame[USER_ID].isna().to_numpy(),
                    frame[USER_ID].to_numpy())
        if pd.api.types.is_datetime64_any_dtype(frame[PERIOD_START]):
            add_problem(problems, PERIOD_START, "no missing timestamps",
                        frame[PERIOD_START].isna().to_numpy(), frame[PERIOD_START].to_numpy())
        else:
            problems.append(Problem(PERIOD_START, "timestamps (datetime64 dtype), got dtype "
                                    f"{frame[PERIOD_START].dtype}", fix="use pd.to_datetime"))
        for g in self.groups:
            if g in frame.columns:
                add_problem(problems, g, "no missing values", frame[g].isna().to_numpy(),
                            frame[g].to_numpy())
        for c in self.covariates:
            if not pd.api.types.is_numeric_dtype(frame[c]):
                problems.append(Problem(c, f"numbers (got dtype {frame[c].dtype})",
                                        fix=f"convert '{c}' with pd.to_numeric"))
                continue
            num = frame[c].to_numpy(dtype=float, na_value=np.nan)
            add_problem(problems, c, "finite numbers", ~np.isfinite(num), num)

    # ------------------------------------------------------- design pieces
    def _levels(self, data: pd.DataFrame | None = None) -> dict[str, list[Any]]:
        data = self.data_ if data is None else data
        return {g: sorted(pd.unique(data[g].astype(str))) for g in self.groups}

    def _row_terms(self, rows: pd.DataFrame, train: pd.DataFrame) -> dict[str, np.ndarray]:
        """Period-effect codes, trend values and standardised covariates of some rows."""
        out: dict[str, np.ndarray] = {}
        for name in self.period_effects:
            levels, func = PERIOD_EFFECTS[name]
            out[name] = func(rows[PERIOD_START]) - levels[0]
        if self.trend:
            out["trend"] = _weeks_since(rows[PERIOD_START], _trend_origin(train))
        if self.covariates:
            x = train[list(self.covariates)].to_numpy(dtype=float)
            sd = x.std(axis=0)
            sd = np.where(sd > 0, sd, 1.0)
            out["x"] = (rows[list(self.covariates)].to_numpy(dtype=float) - x.mean(axis=0)) / sd
        return out

    def _column_keys(self, data: pd.DataFrame) -> pd.DataFrame:
        """Per row, the terms shared by every user in a period (the grid column key)."""
        terms = self._row_terms(data, data)
        keys = pd.DataFrame({name: terms[name] for name in self.period_effects},
                            index=data.index)
        if self.trend:
            keys["trend"] = terms["trend"]
        if self.covariates:  # row-level covariates: every period is its own column
            keys["period"] = pd.factorize(data[PERIOD_START], sort=True)[0]
        return keys

    def cell_statistics(self, data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Compress validated rows into cells and a histogram of play counts.

        A cell is one user and one *column*: a combination of the terms that
        every user shares in a period (the period-effect levels; the trend
        value when ``trend=True``; the period itself when there are
        covariates, whose values then belong to the one row of the cell).

        Parameters
        ----------
        data : pandas.DataFrame
            Validated training rows (as in ``data_``).

        Returns
        -------
        cells : pandas.DataFrame
            One row per non-empty cell: ``user`` (code), ``column`` (code), the
            column's terms (period-effect codes, ``trend``, ``period``),
            ``n`` (rows), ``n_zero`` (rows with no plays) and ``plays`` (sum).
        histogram : pandas.DataFrame
            ``plays`` (distinct values) and ``n`` (how many rows have it).
        """
        keys = self._column_keys(data)
        if keys.shape[1]:
            column, _ = pd.factorize(pd.MultiIndex.from_frame(keys), sort=True)
        else:
            column = np.zeros(len(data), dtype="int64")
        y = data[PLAYS].to_numpy(dtype="int64")
        frame = keys.assign(user=pd.factorize(data[USER_ID], sort=True)[0], column=column,
                            _zero=y == 0, _plays=y)
        cells = (frame.groupby(["user", "column", *keys.columns], sort=True)
                 .agg(n=("_plays", "size"), n_zero=("_zero", "sum"), plays=("_plays", "sum"))
                 .reset_index())
        values, counts = np.unique(y, return_counts=True)
        return cells, pd.DataFrame({PLAYS: values, "n": counts})

    def _grid(self, data: pd.DataFrame) -> dict[str, Any]:
        """Users x columns arrays of the cell statistics (and covariates), and column terms."""
        cells, hist = self.cell_statistics(data)
        n_users = int(data[USER_ID].nunique())
        columns = cells.drop_duplicates("column").sort_values("column")
        shape = (n_users, len(columns))
        u, k = cells["user"].to_numpy(), cells["column"].to_numpy()
        out: dict[str, Any] = {"hist": hist, "columns": columns}
        for name in ("n", "n_zero", "plays"):
            arr = np.zeros(shape)
            arr[u, k] = cells[name].to_numpy(dtype=float)
            out[name] = arr
        if self.covariates:
            x = np.zeros((*shape, len(self.covariates)))
            rows = self._row_terms(data, data)["x"]
            keys = self._column_keys(data)
            x[pd.factorize(data[USER_ID], sort=True)[0],
              pd.factorize(pd.MultiIndex.from_frame(keys), sort=True)[0]] = rows
            out["x"] = x
        return out

    # --------------------------------------------------------------- model
    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        priors = self.resolved_priors()
        user_codes, users = pd.factorize(data[USER_ID], sort=True)
        users = users.to_numpy(dtype=object)
        first = np.unique(user_codes, return_index=True)[1]
        levels = self._levels(data)
        coords: dict[str, Any] = {"user": users, **levels}
        coords.update({name: list(PERIOD_EFFECTS[name][0]) for name in self.period_effects})
        if self.covariates:
            coords["covariate"] = list(self.covariates)
        grid = self._grid(data)
        if self.user_inference == "laplace":  # the user draws after the fit reuse it
            self._laplace_grid = (data, grid)
        columns = grid["columns"]
        # data enter as shared variables, not graph constants: models of the same shape
        # then compile to the same (cached) function, and big grids stay out of the graph
        shared = {k: pytensor.shared(v, name=f"grid_{k}") for k, v in grid.items()
                  if isinstance(v, np.ndarray)}
        with pm.Model(coords=coords) as model:
            intercept = priors["intercept"].create("intercept")
            mean_user = intercept
            for g in self.groups:
                codes = pd.Categorical(data[g].astype(str).to_numpy()[first],
                                       categories=levels[g]).codes
                effect = priors["group_effect"].create(f"{g}_effect", dims=g)
                mean_user = mean_user + effect[codes]
            if self.user_effect == "gamma":
                log_rate = None
            elif self.user_inference == "laplace":
                sigma_user = priors["sigma_user"].create("sigma_user")
                log_rate = None
            elif self._is_noncentered(data):
                sigma_user = priors["sigma_user"].create("sigma_user")
                z_user = pm.Normal("user_z", 0.0, 1.0, dims="user")
                log_rate = mean_user + sigma_user * z_user
            else:
                sigma_user = priors["sigma_user"].create("sigma_user")
                log_rate = pm.Normal("user_log_rate", mean_user, sigma_user, dims="user")
            # the period part of the log-mean, one value per grid column
            period = pt.zeros(len(columns))
            for name in self.period_effects:
                effect = priors["period_effect"].create(f"{name}_effect", dims=name)
                period = period + effect[columns[name].to_numpy()]
            if self.trend:
                period = period + priors["trend"].create("trend") * columns["trend"].to_numpy()
            offset = None
            if self.covariates:
                beta = priors["beta"].create("beta", dims="covariate")
                offset = pt.tensordot(shared["x"], beta, axes=[[2], [0]])
            alpha = None if self.likelihood == "poisson" else priors["alpha"].create("alpha")
            zero_logit = (priors["zero_logit"].create("zero_logit")
                          if self.likelihood in ("zinb", "hurdle") else None)
            hist = grid["hist"]
            hv, hn = hist[PLAYS].to_numpy(dtype=float), hist["n"].to_numpy(dtype=float)
            if self.user_effect == "gamma":
                shape = priors["user_shape"].create("user_shape")
                loglik = self._gamma_loglik(data, grid, shared, shape, mean_user, period,
                                            offset, first)
                loglik = loglik - pt.sum(hn * pt.gammaln(hv + 1.0))
            elif self.user_inference == "laplace":
                op = _laplace.LaplaceUserLogp(self.likelihood)
                a = pt.constant(1.0) if alpha is None else alpha
                m = mean_user + pt.zeros(len(users))
                # the Op runs over (columns, users) grids
                n_t, plays_t = (pytensor.shared(np.ascontiguousarray(grid[k].T),
                                                name=f"grid_{k}_by_column")
                                for k in ("n", "plays"))
                loglik = (op(n_t, plays_t, m, sigma_user, period, a)[0]
                          - pt.sum(hn * pt.gammaln(hv + 1.0)))
                if alpha is not None:
                    loglik = loglik + pt.sum(hn * (pt.gammaln(hv + alpha) - pt.gammaln(alpha)))
            elif self.likelihood == "negbin":  # one fused pass over the grid
                inputs = [shared["n"], shared["plays"], log_rate, period, alpha]
                inputs += [offset] if offset is not None else []
                loglik = (NegBinGridLogp(offset is not None)(*inputs)[0]
                          + pt.sum(hn * (pt.gammaln(hv + alpha) - pt.gammaln(alpha)
                                         - pt.gammaln(hv + 1.0))))
            else:
                eta = log_rate[:, None] + period[None, :]
                if offset is not None:
                    eta = eta + offset
                loglik = cell_loglik(self.likelihood, eta, alpha, zero_logit, shared["n"],
                                     shared["n_zero"], shared["plays"], hv, hn)
            pm.Potential("plays_loglik", loglik)
        return model

    def _complete_posterior(self, seed: int) -> None:
        """Draw the user log-rates that ``user_inference="laplace"`` integrated out."""
        if self.user_inference != "laplace":
            return
        post = self.idata_["posterior"].to_dataset()
        p = draw_arrays(post, self._parameter_names())
        cache = getattr(self, "_laplace_grid", None)
        grid = cache[1] if cache is not None and cache[0] is self.data_ else self._grid(self.data_)
        user_codes, users = pd.factorize(self.data_[USER_ID], sort=True)  # as the model's
        first = np.unique(user_codes, return_index=True)[1]
        codes = self._user_group_codes(self.data_, first)
        totals = grid["plays"].sum(axis=1)
        # the segment effects side by side; each user's codes index their columns
        effects = [p[f"{g}_effect"] for g in self.groups]
        offsets = np.cumsum([0, *(e.shape[1] for e in effects)])[:-1]
        rng = np.random.default_rng(seed)
        check, check_weights = _laplace.check_users(totals, 1000, rng)
        draws, lw = _laplace.draw_user_log_rates_laplace(
            grid["n"], grid["plays"], p["intercept"], p["sigma_user"],
            self._column_effects(p, grid), p.get("alpha"), rng,
            effects=np.concatenate([np.zeros((len(p["intercept"]), 0)), *effects], axis=1),
            codes=codes + offsets[None, :], check=check)
        shape = (post.sizes["chain"], post.sizes["draw"], len(codes))
        post["user_log_rate"] = xr.DataArray(draws.reshape(shape),
                                             coords={"user": users.to_numpy(dtype=object)},
                                             dims=("chain", "draw", "user"))
        self.idata_["posterior"] = xr.DataTree(post)
        summary = (_laplace.summarize_check(_laplace.laplace_pareto_k(lw), totals[check],
                                             check_weights)
                   if len(lw) >= 20 else {"n_checked": 0})
        self.idata_.attrs["laplace_check"] = json.dumps(summary)

    def _user_group_codes(self, data: pd.DataFrame, first: np.ndarray) -> np.ndarray:
        """Level codes (users x groups) of each user's segment."""
        levels = self._levels(data)
        cols = [pd.Categorical(data[g].astype(str).to_numpy()[first], categories=levels[g]).codes
                for g in self.groups]
        return (np.column_stack(cols) if cols else np.zeros((len(first), 0))).astype(np.int64)

    def _gamma_loglik(self, data: pd.DataFrame, grid: Mapping[str, Any],
                      shared: Mapping[str, Any], shape: Any, mean_user: Any, period: Any,
                      offset: Any, first: np.ndarray) -> Any:
        """Collapsed log-likelihood with the Gamma user rates integrated out (no log y!)."""
        plays = grid["plays"]
        if offset is None:  # users with the same segment, total and periods are one row
            rows = compress_users(self._user_group_codes(data, first), grid["n"], plays)
            log_mean = self._segment_log_mean(rows.codes)
            log_exposure = pt.log(pt.dot(rows.n, pt.exp(period)))
            by_period = pt.dot(plays.sum(axis=0), period)
            return gamma_user_loglik(shape, log_mean, log_exposure, rows.total,
                                     rows.weight) + by_period
        eta = period[None, :] + offset
        log_exposure = pt.log(pt.sum(shared["n"] * pt.exp(eta), axis=1))
        return (gamma_user_loglik(shape, mean_user, log_exposure, plays.sum(axis=1),
                                  np.ones(len(plays))) + pt.sum(shared["plays"] * eta))

    def _segment_log_mean(self, codes: np.ndarray) -> Any:
        """Log segment mean (intercept + group effects) of rows with level ``codes``."""
        model = pm.modelcontext(None)
        out = model["intercept"] + pt.zeros(len(codes))
        for j, g in enumerate(self.groups):
            out = out + model[f"{g}_effect"][codes[:, j]]
        return out

    def default_target_accept(self) -> float:
        """0.65 with the user effects integrated out, 0.9 otherwise.

        The users are integrated out with ``user_effect="gamma"`` or
        ``user_inference="laplace"``; that leaves NUTS a few smooth, nearly normal
        population parameters and no funnel. On 100,000 users x 28 days (nutpie, 2 x (300 +
        300) draws) 0.65 takes 3.1 leapfrog steps per draw against 6.9 at 0.9, for
        about the same bulk ESS (900-1,000) and no divergences.
        """
        collapsed = self.user_effect == "gamma" or self.user_inference == "laplace"
        return 0.65 if collapsed else super().default_target_accept()

    def _sample_defaults(self, model: pm.Model, sampler: str) -> dict[str, Any]:
        """Start PyMC's mass matrix from the gradient when the users are integrated out.

        Its posterior is narrow (many users, few parameters): from a unit mass
        matrix PyMC's warm-up takes long trees. On 100,000 users x 28 days,
        2 x (1000 + 1000) draws took 9.5 s with ``jitter+adapt_diag_grad`` and
        26.7 s with a dense mass matrix (108 leapfrog steps per warm-up draw),
        for the same 6.8 steps per draw after it. nutpie's default already
        starts from the gradient.
        """
        collapsed = self.user_effect == "gamma" or self.user_inference == "laplace"
        if collapsed and sampler == "pymc":
            return {"init": "jitter+adapt_diag_grad"}
        return {}

    def _is_noncentered(self, data: pd.DataFrame | None = None) -> bool:
        """Whether the user effects are sampled non-centred (resolves ``"auto"``)."""
        if self.user_inference == "laplace":  # the posterior holds user_log_rate draws
            return False
        if self.noncentered != "auto":
            return bool(self.noncentered)
        data = self.data_ if data is None else data
        per_user = data.groupby(USER_ID, sort=False)[PLAYS].sum()
        return float(per_user.median()) < AUTO_CENTRED_FROM_PLAYS

    def _parameter_names(self) -> list[str]:
        names = ["intercept"]
        for g in self.groups:
            names.append(f"{g}_effect")
        names.append("user_shape" if self.user_effect == "gamma" else "sigma_user")
        names += [f"{p}_effect" for p in self.period_effects]
        if self.trend:
            names.append("trend")
        if self.covariates:
            names.append("beta")
        if self.likelihood != "poisson":
            names.append("alpha")
        if self.likelihood in ("zinb", "hurdle"):
            names.append("zero_logit")
        return names

    # ------------------------------------------------ LOO and predictive checks
    def _row_draws(self, posterior: xr.Dataset) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Flattened posterior draws (user effects included) and each training row's user."""
        names = self._parameter_names()
        if self.user_effect != "gamma":
            names.append("user_z" if self._is_noncentered() else "user_log_rate")
        return draw_arrays(posterior, names), pd.factorize(self.data_[USER_ID], sort=True)[0]

    def _row_coords(self) -> dict[str, Any]:
        return {"extra_coords": {USER_ID: self.data_[USER_ID].astype(str).to_numpy(),
                                 PERIOD_START: self.data_[PERIOD_START].to_numpy()}}

    def _pointwise_log_likelihood(self, posterior: xr.Dataset) -> dict[str, xr.DataArray]:
        p, user = self._row_draws(posterior)
        y = self.data_[PLAYS].to_numpy(dtype=float)
        n_samples = p["intercept"].shape[0]
        if self.user_effect == "gamma":
            values = self._gamma_pointwise(p, user, y)
        else:
            log_rate = self._user_log_rate(p)
            extra = {k: p[k][:, None] for k in ("alpha", "zero_logit") if k in p}

            def rows(i: np.ndarray) -> np.ndarray:
                eta = log_rate[:, user[i]] + self._row_eta(p, self.data_.iloc[i])
                return count_loglik(self.likelihood, y[i], eta, extra.get("alpha"),
                                    extra.get("zero_logit"))

            values = by_blocks(rows, n_samples, len(y))
        return {PLAYS: sample_array(values, posterior, "user_period", **self._row_coords())}

    def _gamma_pointwise(self, p: Mapping[str, np.ndarray], user: np.ndarray,
                         y: np.ndarray) -> np.ndarray:
        """Each user-day given the user's other days (``user_effect="gamma"``)."""
        n_users = int(user.max()) + 1
        first = np.unique(user, return_index=True)[1]
        codes = self._user_group_codes(self.data_, first)
        log_mean = np.repeat(p["intercept"][:, None], n_users, axis=1)
        for j, g in enumerate(self.groups):
            log_mean = log_mean + p[f"{g}_effect"][:, codes[:, j]]
        n_samples = log_mean.shape[0]
        exposure = np.zeros((n_samples, n_users))  # E_u: the user's summed period means
        for i in blocks(n_samples, len(y)):
            e = np.exp(self._row_eta(p, self.data_.iloc[i]))
            np.add.at(exposure, (slice(None), user[i]), e)
        total = np.bincount(user, weights=y, minlength=n_users)
        shape = p["user_shape"][:, None]

        def rows(i: np.ndarray) -> np.ndarray:
            u = user[i]
            return gamma_conditional_loglik(shape, log_mean[:, u],
                                            self._row_eta(p, self.data_.iloc[i]),
                                            exposure[:, u], y[i], total[u])

        return by_blocks(rows, n_samples, len(y))

    def _posterior_predictive(self, posterior: xr.Dataset,
                              rng: np.random.Generator) -> dict[str, xr.DataArray]:
        p, user = self._row_draws(posterior)
        if self.user_effect == "gamma":  # each user's rate from its exact conditional
            log_rate = self._gamma_user_log_rate(p, np.arange(int(user.max()) + 1), rng)
        else:
            log_rate = self._user_log_rate(p)

        def rows(i: np.ndarray) -> np.ndarray:
            eta = log_rate[:, user[i]] + self._row_eta(p, self.data_.iloc[i])
            return _draw_counts(self.likelihood, p, eta, rng).astype(np.int64)

        values = by_blocks(rows, p["intercept"].shape[0], len(self.data_))
        return {PLAYS: sample_array(values, posterior, "user_period", **self._row_coords())}

    def _observed_data(self) -> dict[str, xr.DataArray]:
        return {PLAYS: unit_array(self.data_[PLAYS].to_numpy(), "user_period",
                                  **self._row_coords())}

    # ---------------------------------------------------------- predictions
    def _draws(self, max_draws: int | None, random_seed: Any, users: bool) -> dict[str, Any]:
        names = self._parameter_names()
        if users and self.user_effect != "gamma":
            names.append("user_z" if self._is_noncentered() else "user_log_rate")
        return posterior_arrays(self.idata_, names, max_draws=max_draws,
                                random_seed=resolve_seed(random_seed))

    def _gamma_stats(self) -> dict[str, Any]:
        """Training grid per user for the Gamma user conditionals (cached per ``data_``)."""
        cache = getattr(self, "_gamma_cache", None)
        if cache is not None and cache[0] is self.data_:
            return cache[1]
        grid = self._grid(self.data_)
        first = np.unique(pd.factorize(self.data_[USER_ID], sort=True)[0], return_index=True)[1]
        stats = {"n": grid["n"], "total": grid["plays"].sum(axis=1), "x": grid.get("x"),
                 "codes": self._user_group_codes(self.data_, first),
                 "columns": grid["columns"]}
        self._gamma_cache = (self.data_, stats)
        return stats

    def _gamma_user_log_rate(self, p: Mapping[str, np.ndarray], users: np.ndarray,
                             rng: np.random.Generator) -> np.ndarray:
        """Draws (draws x users) of the given users' log-rates from their exact conditionals."""
        st = self._gamma_stats()
        log_mean = np.repeat(p["intercept"][:, None], len(users), axis=1)
        for j, g in enumerate(self.groups):
            log_mean = log_mean + p[f"{g}_effect"][:, st["codes"][users, j]]
        col = self._column_effects(p, st)
        n = st["n"][users]
        if self.covariates:
            eta = col[:, None, :] + np.einsum("ukc,dc->duk", st["x"][users], p["beta"])
            exposure = np.einsum("uk,duk->du", n, np.exp(eta))
        else:
            exposure = np.exp(col) @ n.T
        return draw_user_log_rates(p["user_shape"], log_mean, exposure, st["total"][users], rng)

    def _column_effects(self, p: Mapping[str, np.ndarray], st: Mapping[str, Any]) -> np.ndarray:
        """Period part of the log-mean of each training grid column, (draws x columns)."""
        columns = st["columns"]
        col = np.zeros((len(p["intercept"]), len(columns)))
        for name in self.period_effects:
            col += p[f"{name}_effect"][:, columns[name].to_numpy()]
        if self.trend:
            col += p["trend"][:, None] * columns["trend"].to_numpy()[None, :]
        return col

    def _user_log_rate(self, p: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per-draw log-rate of every training user, (draws x users)."""
        if not self._is_noncentered():
            return p["user_log_rate"]
        out = p["intercept"][:, None] + p["sigma_user"][:, None] * p["user_z"]
        members = self.data_.drop_duplicates(USER_ID)
        levels = self._levels()
        for g in self.groups:
            codes = pd.Categorical(members[g].astype(str), categories=levels[g]).codes
            out = out + p[f"{g}_effect"][:, codes]
        return out

    def _row_eta(self, p: Mapping[str, np.ndarray], rows: pd.DataFrame) -> np.ndarray:
        """Period, trend and covariate part of the log-mean, (draws x rows)."""
        terms = self._row_terms(rows, self.data_)
        eta = np.zeros((next(iter(p.values())).shape[0], len(rows)))
        for name in self.period_effects:
            eta += p[f"{name}_effect"][:, terms[name]]
        if self.trend:
            eta += p["trend"][:, None] * terms["trend"][None, :]
        if self.covariates:
            eta += p["beta"] @ terms["x"].T
        return eta

    def _mean(self, p: Mapping[str, np.ndarray], eta: np.ndarray) -> np.ndarray:
        """Return the expected plays given the log-mean ``eta`` of the count part."""
        mu = np.exp(eta)
        if self.likelihood == "zinb":
            return mu * (1.0 - _sigmoid(p["zero_logit"]))[:, None]
        if self.likelihood == "hurdle":
            a = p["alpha"][:, None]
            p0 = np.exp(a * (np.log(a) - np.logaddexp(np.log(a), eta)))
            return (1.0 - _sigmoid(p["zero_logit"]))[:, None] * mu / -np.expm1(np.log(p0))
        return mu

    @prediction_method()
    def expected_plays(
        self,
        data: pd.DataFrame | None = None,
        *,
        ci_prob: float = 0.89,
        max_draws: int | None = 1000,
        random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        """Posterior expected plays of known users in given periods.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Rows with ``user_id`` (users of the training data), ``period_start``
            and the covariates; the training rows by default.
        ci_prob : float, default 0.89
            Probability mass of the equal-tailed interval.
        max_draws : int, optional
            Use a random subset of at most this many posterior draws.
        random_seed : int, numpy.random.Generator or None
            Seed of that subset.
        return_draws : bool, default False
            Return the draws instead of the summary.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            Per row of ``data`` (same index): ``user_id``, ``period_start``,
            ``mean``, ``sd``, ``ci_lower``, ``ci_upper``; or the draws, dims
            ``(chain, draw, row)`` with the data's index as the ``row`` coordinate
            and ``user_id`` and ``period_start`` as further coordinates of ``row``
            (one chain of ``max_draws`` draws when ``max_draws`` keeps a subset).

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        models.exceptions.DataValidationError
            For missing columns, bad values or users not in the training data.
        """
        return _play_count_predictions.expected_plays(self, data, ci_prob=ci_prob,
                                                      max_draws=max_draws, random_seed=random_seed,
                                                      return_draws=return_draws)

    @prediction_method(renamed={"n_periods": "horizon"}, collect="segment")
    def expected_plays_new_user(
        self,
        *,
        horizon: int = 7,
        segment: Mapping[str, Any] | None = None,
        start: Any = None,
        ci_prob: float = 0.89,
        max_draws: int | None = 4000,
        random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        """Predict the plays per period of a new user of a segment (a fresh user effect per draw).

        Parameters
        ----------
        horizon : int, default 7
            Number of periods from ``start``, in the training data's spacing
            (days, weeks or calendar months). (``n_periods`` is its deprecated
            name.)
        segment : mapping, optional
            One level per group, e.g. ``{"country": "SE", "plan": "free"}``;
            may be left out when the model has no groups. (Passing the levels
            as keyword arguments, ``country="SE"``, is deprecated.)
        start : timestamp-like, optional
            First period; the period after the training data by default.
        ci_prob : float, default 0.89
            Probability mass of the equal-tailed interval.
        max_draws : int, optional
            Use at most this many posterior draws.
        random_seed : int, numpy.random.Generator or None
            Seed of the draw subset and of the new user effects.
        return_draws : bool, default False
            Return the draws instead of the summary.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            One row per period (index ``period_start``): ``mean``, ``sd``,
            ``ci_lower``, ``ci_upper`` of the expected plays, which carry the
            uncertainty about who the new user is; or the draws, dims ``(chain,
            draw, period_start)``.

        Raises
        ------
        ValueError
            For an unknown group or level (the message lists the valid ones), or
            a bad option.
        """
        return _play_count_predictions.expected_plays_new_user(self, horizon=horizon,
                                                               segment=segment, start=start,
                                                               ci_prob=ci_prob,
                                                               max_draws=max_draws,
                                                               random_seed=random_seed,
                                                               return_draws=return_draws)

    @prediction_method()
    def sample_plays_new_user(
        self,
        *,
        horizon: int,
        segment: Mapping[str, Any] | None = None,
        start: Any = None,
        max_draws: int | None = 1000,
        random_seed: int | np.random.Generator | None = None,
    ) -> xr.DataArray:
        """Draw the plays per period of new users of a segment from the posterior predictive.

        Parameters
        ----------
        horizon : int
            Number of periods, in the training data's spacing.
        segment : mapping, optional
            One level per group, e.g. ``{"country": "SE", "plan": "free"}``;
            may be left out when the model has no groups.
        start : timestamp-like, optional
            First period; the period after the training data by default.
        max_draws : int, optional
            One simulated user per posterior draw, at most this many.
        random_seed : int, numpy.random.Generator or None
            Seed of the draws.

        Returns
        -------
        xarray.DataArray
            Integer plays, dims ``(chain, draw, period_start)``: one simulated new
            user per posterior draw (one chain of ``max_draws`` draws when
            ``max_draws`` keeps a subset).

        Raises
        ------
        ValueError
            For an unknown group or level, or a bad option.
        """
        return _play_count_predictions.sample_plays_new_user(self, horizon=horizon,
                                                             segment=segment, start=start,
                                                             max_draws=max_draws,
                                                             random_seed=random_seed)

    @prediction_method()
    def sample_plays(
        self,
        data: pd.DataFrame | None = None,
        *,
        horizon: int,
        start: Any = None,
        max_draws: int | None = 1000,
        random_seed: int | np.random.Generator | None = None,
    ) -> xr.DataArray:
        """Draw each known user's total plays over the next ``horizon`` periods.

        The posterior predictive of the future count, conditional on the user's
        history: per posterior draw, the user's effect as the data inform it, the
        period effects (and trend) of the future periods, and the likelihood's
        count noise, summed over the periods. :meth:`expected_plays` gives the
        interval of the *expected* plays, far narrower than that of the plays
        themselves; summarise these draws with
        :func:`models.predict.predictive_summary`.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Rows with ``user_id`` (users of the training data; one prediction per
            distinct user); every training user by default.
        horizon : int
            Number of future periods (in the training data's spacing: days,
            weeks or calendar months).
        start : timestamp-like, optional
            First future period; the period after the training data by default.
        max_draws : int, optional
            Use at most this many posterior draws.
        random_seed : int, numpy.random.Generator or None
            Seed of the draw subset and of the simulated counts.

        Returns
        -------
        xarray.DataArray
            Integer plays, dims ``(chain, draw, user)``, the user ids (sorted) as
            the ``user`` coordinate (one chain of ``max_draws`` draws when
            ``max_draws`` keeps a subset). Covariates, which the future does not
            reveal, are held at their training means.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        models.exceptions.DataValidationError
            For users not in the training data.
        ValueError
            If ``horizon`` is not a positive integer, or for a bad option.
        """
        self._require_fitted("sample_plays()")
        check_int("PlayCountModel.sample_plays", "horizon", horizon)
        return _play_count_predictions.sample_plays(self, data, horizon=horizon, start=start,
                                                   max_draws=max_draws,
                                                   random_seed=random_seed)

    @deprecated_alias("sample_plays_new_user")
    def simulate_new_user(
        self,
        segment: Mapping[str, Any],
        n_periods: int,
        *,
        start: Any = None,
        max_draws: int | None = 1000,
        random_seed: int | np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """Return ``sample_plays_new_user(horizon=n_periods, ...)`` as a table (deprecated name).

        Returns
        -------
        pandas.DataFrame
            One row per simulated user (index ``sample``), one column per period
            (``period_start``), integer plays.
        """
        draws = self.sample_plays_new_user(horizon=n_periods, segment=segment, start=start,
                                           max_draws=max_draws, random_seed=random_seed)
        y = draws.values.reshape(-1, draws.sizes[PERIOD_START])
        return pd.DataFrame(y, index=pd.RangeIndex(len(y), name="sample"),
                            columns=pd.Index(draws[PERIOD_START].values, name=PERIOD_START))

    @prediction_method()
    def segment_contrast(
        self, group: str, a: Any, b: Any, *, ci_prob: float = 0.89
    ) -> pd.DataFrame:
        r"""Posterior ratio of expected plays between two levels of one group.

        The ratio compares a typical user (user effect 0, other groups at the
        population mean, averaged over the period effects) in level ``a``
        with one in level ``b``; for the Poisson, negative binomial and
        zero-inflated likelihoods it is :math:`\exp(a_a - a_b)` for any user.

        Parameters
        ----------
        group : str
            One of the model's groups.
        a, b : label
            Two levels of that group.
        ci_prob : float, default 0.89
            Probability mass of the equal-tailed interval.

        Returns
        -------
        pandas.DataFrame
            One row (index ``"a/b"``): ``mean``, ``sd``, ``ci_lower``,
            ``ci_upper`` of the ratio and ``prob_greater_than_one``.
        """
        return _play_count_predictions.segment_contrast(self, group, a, b, ci_prob=ci_prob)


def _trend_origin(train: pd.DataFrame) -> pd.Timestamp:
    """Centre of the trend: the mean ``period_start`` of the training rows."""
    return train[PERIOD_START].mean()


def _weeks_since(periods: pd.Series, origin: pd.Timestamp) -> np.ndarray:
    return ((periods - origin) / pd.Timedelta(days=1)).to_numpy(dtype=float) / _DAYS_PER_TREND_UNIT


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _draw_counts(
    likelihood: str, p: Mapping[str, np.ndarray], eta: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Draw counts with log-means ``eta`` (draws x periods) from the likelihood."""
    mu = np.exp(eta)
    if likelihood == "poisson":
        return rng.poisson(mu)
    a = p["alpha"][:, None]
    y = rng.poisson(rng.gamma(a, mu / a))
    if likelihood == "zinb":
        y = np.where(rng.random(y.shape) < _sigmoid(p["zero_logit"])[:, None], 0, y)
    elif likelihood == "hurdle":
        zero = rng.random(y.shape) < _sigmoid(p["zero_logit"])[:, None]
        while ((y == 0) & ~zero).any():  # zero-truncated draws by rejection
            redo = (y == 0) & ~zero
            y[redo] = rng.poisson(rng.gamma(np.broadcast_to(a, y.shape)[redo], mu[redo]
                                            / np.broadcast_to(a, y.shape)[redo]))
        y = np.where(zero, 0, y)
    return y
