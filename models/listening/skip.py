r"""Hierarchical logistic model of skips with crossed user and track effects.

Plays are aggregated to Binomial rows: plays that share the user, the track,
the position in the session, the hour bin and the plan have the same skip
probability under the model, so only their number and the number skipped
matter (:func:`skip_table`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from models._pointwise import by_blocks, draw_arrays, sample_array, unit_array
from models._validation import add_problem, check_choice
from models.base import BayesianModel, resolve_seed
from models.data.schema import SESSION_ID, SKIPPED, TIMESTAMP, USER_ID
from models.exceptions import DataValidationError, Problem
from models.listening import _laplace, _laplace_logit
from models.listening.play_count import (
    check_columns,
    check_count_column,
    interval_summary,
)
from models.predict import posterior_arrays, predict_in_batches, prediction_method, sample_shape
from models.priors import Prior

__all__ = ["SkipModel", "skip_table"]

POSITION = "position"
HOUR_BIN = "hour_bin"
N_PLAYS = "n_plays"
N_SKIPS = "n_skips"
_HOUR = "hour"
_GAP = pd.Timedelta(minutes=30)
USER_INFERENCES = ("sample", "laplace", "quadrature")


def skip_table(
    events: pd.DataFrame,
    users: pd.DataFrame | None = None,
    *,
    crossed: Sequence[str] = (USER_ID, "track_id"),
    group: Sequence[str] = (),
    max_position: int = 50,
    hour_bins: int = 4,
) -> pd.DataFrame:
    """Aggregate a listening log into Binomial skip counts per covariate pattern.

    Parameters
    ----------
    events : pandas.DataFrame
        Listening log with ``user_id``, ``timestamp``, ``skipped`` and the
        ``crossed`` columns; ``session_id`` if present (otherwise a new session
        starts after 30 minutes without a play).
    users : pandas.DataFrame, optional
        Users table with ``user_id`` and the ``group`` columns, joined in when
        ``events`` lacks them.
    crossed : sequence of str, default ("user_id", "track_id")
        Columns kept as identifiers (e.g. ``session_id``, ``artist_id``).
    group : sequence of str, default ()
        User attributes kept as columns, e.g. ``("plan",)`` (joined from
        ``users`` when ``events`` lacks them). None by default: segments are
        opted into.
    max_position : int, default 50
        Positions in the session above this are counted as this position.
    hour_bins : int, default 4
        Number of equal bins of the hour of day (4 gives [0, 6), [6, 12), ...).

    Returns
    -------
    pandas.DataFrame
        Columns ``*crossed``, ``position`` (1-based, capped), ``hour_bin``,
        ``*group``, ``n_plays`` and ``n_skips``, one row per distinct pattern.

    Raises
    ------
    models.exceptions.DataValidationError
        If columns are missing, ``skipped`` is not boolean (or 0/1) or missing,
        or a user has no row in ``users``.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({
    ...     "user_id": ["a", "a", "a"], "track_id": ["t1", "t2", "t1"],
    ...     "timestamp": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 09:03",
    ...                                  "2024-01-02 20:00"]),
    ...     "skipped": [True, False, False], "plan": ["free"] * 3})
    >>> skip_table(log)[["track_id", "position", "hour_bin", "n_plays", "n_skips"]]
      track_id  position  hour_bin  n_plays  n_skips
    0       t1         1         1        1        1
    1       t1         1         3        1        0
    2       t2         2         1        1        0
    """
    func = "skip_table"
    for name, value in (("max_position", max_position), ("hour_bins", hour_bins)):
        ok = isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0
        if not ok or (name == "hour_bins" and 24 % value):
            rule = "a divisor of 24" if name == "hour_bins" else "a positive integer"
            raise ValueError(f"The '{name}' parameter of {func} must be {rule}. "
                             f"Got {value!r} instead.")
    crossed, group = list(crossed), list(group)
    from_users = [g for g in group if g not in getattr(events, "columns", [])]
    check_columns(events, [USER_ID, TIMESTAMP, SKIPPED, *crossed], func, "events",
                  "pass a validated listening log")
    frame = events[list(dict.fromkeys([USER_ID, TIMESTAMP, SKIPPED, *crossed,
                                       *[g for g in group if g not in from_users]]))]
    if SESSION_ID in events.columns:
        frame = frame.assign(**{SESSION_ID: events[SESSION_ID]})
    problems: list[Problem] = []
    skipped = frame[SKIPPED]
    num = skipped.to_numpy(dtype=float, na_value=np.nan) if (
        pd.api.types.is_numeric_dtype(skipped) or pd.api.types.is_bool_dtype(skipped)) else None
    if num is None:
        problems.append(Problem(SKIPPED, f"booleans (got dtype {skipped.dtype})"))
    else:
        add_problem(problems, SKIPPED, "True/False (or 1/0) without missing values",
                    ~np.isin(num, [0.0, 1.0]), num)
    if not pd.api.types.is_datetime64_any_dtype(frame[TIMESTAMP]):
        problems.append(Problem(TIMESTAMP, f"timestamps (got dtype {frame[TIMESTAMP].dtype})",
                                fix="use pd.to_datetime"))
    if from_users:
        if users is None:
            problems += [Problem(g, "a column of events or of users", fix="pass users=")
                         for g in from_users]
        else:
            check_columns(users, [USER_ID, *from_users], func, "users", "pass the users table")
            attrs = users.drop_duplicates(USER_ID).set_index(USER_ID)[from_users]
            frame = frame.join(attrs, on=USER_ID)
            add_problem(problems, USER_ID, "users listed in the users table",
                        frame[from_users[0]].isna().to_numpy(), frame[USER_ID].to_numpy())
    if problems:
        raise DataValidationError(problems, what="events")
    frame = frame.assign(_skip=num.astype("int64")).sort_values(
        [USER_ID, TIMESTAMP], kind="stable")
    if SESSION_ID in frame.columns:
        session = frame[SESSION_ID]
    else:
        new = (frame[USER_ID] != frame[USER_ID].shift()) | (
            frame[TIMESTAMP].diff() > _GAP)
        session = new.cumsum()
    position = frame.groupby([frame[USER_ID], session], sort=False).cumcount().to_numpy() + 1
    frame = frame.assign(**{
        POSITION: np.minimum(position, max_position).astype("int64"),
        HOUR_BIN: (frame[TIMESTAMP].dt.hour.to_numpy() // (24 // hour_bins)).astype("int64"),
    })
    keys = list(dict.fromkeys([*crossed, POSITION, HOUR_BIN, *group]))
    out = (frame.groupby(keys, sort=True, observed=True)["_skip"]
           .agg(**{N_PLAYS: "size", N_SKIPS: "sum"}).reset_index())
    out[N_SKIPS] = out[N_SKIPS].astype("int64")
    return out


def _log_binom(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Log binomial coefficients ``log C(n, k)`` (elementwise)."""
    return special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)


class SkipModel(_laplace.LaplaceCheckedFit, BayesianModel):
    r"""Hierarchical logistic model of skips with crossed random effects.

    Parameters
    ----------
    priors : mapping of str to Prior, optional
        Replace default priors by name: ``intercept``, ``sigma_crossed``,
        ``beta_position``, ``hour_effect``, ``group_effect``, ``beta``.
    crossed : sequence of str, default ("user_id", "track_id")
        Columns whose levels get crossed random intercepts (e.g. user or
        session, track or artist).
    covariates : sequence of str, default ("position", "hour")
        ``"position"``: the log position in the session; ``"hour"``: a
        sum-to-zero effect per ``hour_bin``; any other name: a numeric column
        with a linear effect (standardised).
    group : sequence of str, default ()
        Categorical columns with sum-to-zero fixed effects, e.g. ``("plan",)``;
        none by default, so the table of :func:`skip_table` of a plain log fits.
    user_inference : {"sample", "laplace", "quadrature"}, default "sample"
        How the users' random intercepts (``user_id`` must be in ``crossed``) are
        inferred. ``"sample"``: NUTS samples them with everything else. ``"laplace"``:
        each user's intercept is integrated out with a Laplace approximation (a
        normal approximation of its conditional posterior given the other
        parameters, found by Newton steps per user), so NUTS samples only the other
        parameters, on the approximate marginal likelihood; the intercepts are then
        drawn from their normal conditionals, one per posterior draw, and appear in
        the posterior as ``user_id_z`` as with ``"sample"``. The assumption is that
        each user's conditional posterior is close to normal; the fit checks it on
        up to 1,000 users (those with the fewest plays first) with Pareto-smoothed
        importance weights, and its report cautions (with an
        :class:`~models.exceptions.ApproximationWarning`) when it does not hold.
        With binary outcomes the first-order Laplace approximation biases
        :math:`\sigma_u` low (by 0.37 posterior sd at 3,000 users with 30 plays
        each; more with more users); the second-order terms the option adds (third
        and fourth derivatives at the mode) bring that to about 0.14 sd.
        ``"quadrature"`` integrates each intercept out by
        adaptive Gauss-Hermite quadrature on ``quadrature_nodes`` nodes placed by
        the Laplace approximation instead: close to exact, about 4 times the
        cost of a Laplace gradient. See ``models.listening._laplace_logit``.

    Notes
    -----
    For the :math:`n` plays of one row (user :math:`u`, track :math:`t`,
    position :math:`j`, hour bin :math:`h`, plan :math:`g`), :math:`k` skipped:

    .. math::

        k \sim \mathrm{Binomial}(n, p), \quad
        \operatorname{logit} p = \mu + b_u + b_t + \beta \log j + \eta_h + \gamma_g
            + x^\top \beta_x, \\
        b_u = \sigma_u z_u, \; b_t = \sigma_t z_t, \; z \sim N(0, 1), \;
        \textstyle\sum_h \eta_h = \sum_g \gamma_g = 0.

    The Binomial rows give the same posterior as one Bernoulli row per play:
    the log-likelihoods differ by :math:`\sum \log\binom{n}{k}`, a constant.

    *LOO and predictive checks.* The unit of the pointwise log-likelihood
    (:meth:`compute_log_likelihood`, variable ``n_skips``, dim ``row``) is one
    row of the skip table, a covariate pattern (user, track, position, hour bin,
    plan) with its binomial log-probability; LOO leaves out a pattern's plays
    together. PyMC computes it, and the replicates of
    :meth:`sample_posterior_predictive`, from the observed ``n_skips``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> table = pd.DataFrame({
    ...     "user_id": rng.choice(["a", "b", "c"], 60), "track_id": rng.choice(["x", "y"], 60),
    ...     "position": rng.integers(1, 10, 60), "hour_bin": rng.integers(0, 4, 60),
    ...     "plan": rng.choice(["free", "premium"], 60), "n_plays": 5})
    >>> table["n_skips"] = rng.binomial(5, 0.3, 60)
    >>> model = SkipModel(group=("plan",)).fit(table, method="map", random_seed=0)
    >>> float(model.probability_skip()["mean"].mean()) < 0.5
    True
    """

    #: Gauss-Hermite nodes per user with ``user_inference="quadrature"``.
    quadrature_nodes: ClassVar[int] = 7
    default_priors: ClassVar[Mapping[str, Prior]] = {
        "intercept": Prior("Normal", mu=0.0, sigma=1.5),
        "sigma_crossed": Prior("HalfNormal", sigma=1.0),
        "beta_position": Prior("Normal", mu=0.0, sigma=1.0),
        "hour_effect": Prior("ZeroSumNormal", sigma=1.0),
        "group_effect": Prior("ZeroSumNormal", sigma=1.0),
        "beta": Prior("Normal", mu=0.0, sigma=1.0),
    }

    def __init__(
        self,
        *,
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
        crossed: Sequence[str] = (USER_ID, "track_id"),
        covariates: Sequence[str] = (POSITION, _HOUR),
        group: Sequence[str] = (),
        user_inference: Literal["sample", "laplace", "quadrature"] = "sample",
    ) -> None:
        self.crossed = crossed
        self.covariates = covariates
        self.group = group
        self.user_inference = user_inference
        for name, value in (("crossed", crossed), ("covariates", covariates), ("group", group)):
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"The '{name}' parameter of SkipModel must be a sequence of "
                                 f"column names. Got {value!r} instead.")
        check_choice("SkipModel", "user_inference", user_inference, USER_INFERENCES)
        if user_inference != "sample" and USER_ID not in crossed:
            raise ValueError(f"The 'user_inference' parameter of SkipModel is "
                             f"{user_inference!r}, which "
                             f"integrates out the random intercepts of '{USER_ID}'; add "
                             f"'{USER_ID}' to 'crossed' (got {list(crossed)!r}) or use "
                             "user_inference='sample'.")
        super().__init__(priors=priors)

    # ---------------------------------------------------------------- data
    @property
    def _numeric(self) -> list[str]:
        return [c for c in self.covariates if c not in (POSITION, _HOUR)]

    def _columns(self) -> list[str]:
        cols = [*self.crossed, *self.group]
        if POSITION in self.covariates:
            cols.append(POSITION)
        if _HOUR in self.covariates:
            cols.append(HOUR_BIN)
        return list(dict.fromkeys([*cols, *self._numeric]))

    def _check_rows(self, problems: list[Problem], frame: pd.DataFrame) -> None:
        for c in [*self.crossed, *self.group]:
            add_problem(problems, c, "no missing values", frame[c].isna().to_numpy(),
                        frame[c].to_numpy())
        for c in [POSITION, HOUR_BIN]:
            if c in frame.columns:
                check_count_column(problems, frame, c)
        if POSITION in frame.columns and pd.api.types.is_numeric_dtype(frame[POSITION]):
            pos = frame[POSITION].to_numpy(dtype=float, na_value=np.nan)
            add_problem(problems, POSITION, "positions of 1 or more", pos < 1, pos)
        for c in self._numeric:
            if not pd.api.types.is_numeric_dtype(frame[c]):
                problems.append(Problem(c, f"numbers (got dtype {frame[c].dtype})"))
                continue
            num = frame[c].to_numpy(dtype=float, na_value=np.nan)
            add_problem(problems, c, "finite numbers", ~np.isfinite(num), num)

    def _validate_data(self, data: Any) -> pd.DataFrame:
        what = "skip table"
        columns = [*self._columns(), N_PLAYS, N_SKIPS]
        check_columns(data, columns, "SkipModel.fit", what,
                      "build the table with models.listening.skip_table")
        frame = data[columns].reset_index(drop=True)
        problems: list[Problem] = []
        self._check_rows(problems, frame)
        check_count_column(problems, frame, N_PLAYS)
        check_count_column(problems, frame, N_SKIPS)
        if problems:
            raise DataValidationError(problems, what=what)
        n, k = frame[N_PLAYS].to_numpy(), frame[N_SKIPS].to_numpy()
        add_problem(problems, N_PLAYS, "at least one play per row", n < 1, n)
        add_problem(problems, N_SKIPS, f"at most '{N_PLAYS}' skips", k > n, k)
        if problems:
            raise DataValidationError(problems, what=what)
        for c in (N_PLAYS, N_SKIPS, *[c for c in (POSITION, HOUR_BIN) if c in frame.columns]):
            frame[c] = frame[c].astype("int64")
        return frame

    def _levels(self, data: pd.DataFrame | None = None) -> dict[str, list[Any]]:
        data = self.data_ if data is None else data
        levels = {c: sorted(pd.unique(data[c].astype(str))) for c in [*self.crossed, *self.group]}
        if _HOUR in self.covariates:
            levels[HOUR_BIN] = list(range(int(data[HOUR_BIN].max()) + 1))
        return levels

    def _design(self, rows: pd.DataFrame, train: pd.DataFrame) -> dict[str, np.ndarray]:
        """Codes and covariate values of rows (training levels and scaling)."""
        levels = self._levels(train)
        out = {c: pd.Categorical(rows[c].astype(str), categories=levels[c]).codes
               for c in [*self.crossed, *self.group]}
        if POSITION in self.covariates:
            out[POSITION] = np.log(rows[POSITION].to_numpy(dtype=float))
        if _HOUR in self.covariates:
            out[HOUR_BIN] = rows[HOUR_BIN].to_numpy(dtype="int64")
        if self._numeric:
            x = train[self._numeric].to_numpy(dtype=float)
            sd = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
            out["x"] = (rows[self._numeric].to_numpy(dtype=float) - x.mean(axis=0)) / sd
        return out

    # --------------------------------------------------------------- model
    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        priors = self.resolved_priors()
        levels = self._levels(data)
        coords: dict[str, Any] = {**levels, "row": np.arange(len(data))}
        if self._numeric:
            coords["covariate"] = self._numeric
        d = self._design(data, data)
        laplace = self.user_inference != "sample"
        with pm.Model(coords=coords) as model:
            eta = priors["intercept"].create("intercept")
            for c in self.crossed:
                sigma = priors["sigma_crossed"].create(f"sigma_{c}")
                if laplace and c == USER_ID:  # integrated out below
                    sigma_user = sigma
                    continue
                z = pm.Normal(f"{c}_z", 0.0, 1.0, dims=c)
                eta = eta + sigma * z[d[c]]
            for g in self.group:
                eta = eta + priors["group_effect"].create(f"{g}_effect", dims=g)[d[g]]
            if POSITION in self.covariates:
                eta = eta + priors["beta_position"].create("beta_position") * d[POSITION]
            if _HOUR in self.covariates:
                eta = eta + priors["hour_effect"].create("hour_effect", dims=HOUR_BIN)[d[HOUR_BIN]]
            if self._numeric:
                eta = eta + pt.dot(d["x"], priors["beta"].create("beta", dims="covariate"))
            if laplace:
                order, ptr = _laplace_logit.row_pointers(d[USER_ID], len(levels[USER_ID]))
                n = data[N_PLAYS].to_numpy(dtype=float)[order]
                k = data[N_SKIPS].to_numpy(dtype=float)[order]
                offset = (eta + pt.zeros(len(data)))[order]
                nodes = 1 if self.user_inference == "laplace" else self.quadrature_nodes
                loglik = _laplace_logit.LogitLaplaceLogp(nodes)(n, k, ptr, offset, sigma_user)[0]
                pm.Potential("skips_loglik", loglik + _log_binom(n, k).sum())
            else:
                pm.Binomial(N_SKIPS, n=data[N_PLAYS].to_numpy(), logit_p=eta,
                            observed=data[N_SKIPS].to_numpy(), dims="row")
        return model

    def _complete_posterior(self, seed: int) -> None:
        """Draw the user intercepts that were integrated out (Laplace or quadrature).

        From each user's Laplace normal in both cases (the quadrature corrects the
        marginal likelihood, which the population parameters were sampled on).
        """
        if self.user_inference == "sample":
            return
        post = self.idata_["posterior"].to_dataset()
        p = draw_arrays(post, [*self._parameter_names(),
                               *[f"{c}_z" for c in self.crossed if c != USER_ID]])
        d = self._design(self.data_, self.data_)
        users = self._levels()[USER_ID]
        order, ptr = _laplace_logit.row_pointers(d[USER_ID], len(users))
        n = self.data_[N_PLAYS].to_numpy(dtype=float)[order]
        k = self.data_[N_SKIPS].to_numpy(dtype=float)[order]
        rng = np.random.default_rng(seed)
        plays = np.bincount(d[USER_ID], weights=self.data_[N_PLAYS].to_numpy(dtype=float),
                            minlength=len(users))
        check, check_weights = _laplace.check_users(plays, 1000, rng)
        n_draws = len(p["intercept"])
        z = rng.standard_normal((n_draws, len(users)))
        lw = np.empty((n_draws, len(check)))
        sigma = p[f"sigma_{USER_ID}"]
        # a block of draws at a time: the offsets are draws x rows
        step = max(1, 2_000_000 // max(len(order), 1))
        for start in range(0, n_draws, step):
            i = np.arange(start, min(start + step, n_draws))
            offsets = self._row_eta({key: v[i] for key, v in p.items()}, d, order,
                                    without=USER_ID)
            block = np.ascontiguousarray(z[i])
            lw[i] = _laplace_logit.draw_intercepts(offsets, n, k, ptr, sigma[i], block, check)
            z[i] = block / sigma[i][:, None]  # stored standardised, as user_id_z
        # the check on evenly spaced draws, as for the play-count model
        lw = lw[np.unique(np.linspace(0, n_draws - 1, min(n_draws, _laplace.CHECK_DRAWS))
                          .round().astype(int))]
        shape = (post.sizes["chain"], post.sizes["draw"], len(users))
        post[f"{USER_ID}_z"] = xr.DataArray(z.reshape(shape), coords={USER_ID: users},
                                           dims=("chain", "draw", USER_ID))
        self.idata_["posterior"] = xr.DataTree(post)
        summary = (_laplace.summarize_check(_laplace.laplace_pareto_k(lw), plays[check],
                                             check_weights)
                   if len(lw) >= 20 else {"n_checked": 0})
        self.idata_.attrs["laplace_check"] = json.dumps(summary)

    def _pointwise_log_likelihood(self, posterior: xr.Dataset) -> dict[str, xr.DataArray] | None:
        if self.user_inference == "sample":  # PyMC's, from the observed Binomial
            return None
        p = draw_arrays(posterior, [*self._parameter_names(),
                                    *[f"{c}_z" for c in self.crossed]])
        d = self._design(self.data_, self.data_)
        n = self.data_[N_PLAYS].to_numpy(dtype=float)
        k = self.data_[N_SKIPS].to_numpy(dtype=float)

        def rows(i: np.ndarray) -> np.ndarray:
            eta = self._row_eta(p, d, i)
            return (_log_binom(n[i], k[i]) + k[i] * eta
                    - n[i] * np.logaddexp(0.0, eta))

        values = by_blocks(rows, len(p["intercept"]), len(n))
        return {N_SKIPS: sample_array(values, posterior, "row")}

    def _posterior_predictive(self, posterior: xr.Dataset,
                              rng: np.random.Generator) -> dict[str, xr.DataArray] | None:
        if self.user_inference == "sample":
            return None
        p = draw_arrays(posterior, [*self._parameter_names(),
                                    *[f"{c}_z" for c in self.crossed]])
        d = self._design(self.data_, self.data_)
        n = self.data_[N_PLAYS].to_numpy(dtype=np.int64)

        def rows(i: np.ndarray) -> np.ndarray:
            prob = 1.0 / (1.0 + np.exp(-self._row_eta(p, d, i)))
            return rng.binomial(n[i], prob).astype(np.int64)

        values = by_blocks(rows, len(p["intercept"]), len(n))
        return {N_SKIPS: sample_array(values, posterior, "row")}

    def _observed_data(self) -> dict[str, xr.DataArray]:
        if self.user_inference == "sample":
            return {}
        return {N_SKIPS: unit_array(self.data_[N_SKIPS].to_numpy(), "row")}

    def _row_eta(self, q: Mapping[str, np.ndarray], d: Mapping[str, np.ndarray],
                 i: np.ndarray, *, without: str | None = None) -> np.ndarray:
        """Log-odds of the rows ``i`` of design ``d``, per draw of ``q`` (draws x rows).

        ``without``: a crossed factor whose effects are left out (the offsets of
        the Laplace approximation).
        """
        eta = np.repeat(q["intercept"][:, None], len(i), axis=1)
        for c in self.crossed:
            if c != without:
                eta += q[f"sigma_{c}"][:, None] * q[f"{c}_z"][:, d[c][i]]
        for g in self.group:
            eta += q[f"{g}_effect"][:, d[g][i]]
        if POSITION in self.covariates:
            eta += q["beta_position"][:, None] * d[POSITION][i]
        if _HOUR in self.covariates:
            eta += q["hour_effect"][:, d[HOUR_BIN][i]]
        if self._numeric:
            eta += q["beta"] @ d["x"][i].T
        return eta

    def _parameter_names(self) -> list[str]:
        names = ["intercept", *[f"sigma_{c}" for c in self.crossed],
                 *[f"{g}_effect" for g in self.group]]
        if POSITION in self.covariates:
            names.append("beta_position")
        if _HOUR in self.covariates:
            names.append("hour_effect")
        if self._numeric:
            names.append("beta")
        return names

    # ---------------------------------------------------------- predictions
    @prediction_method()
    def probability_skip(
        self,
        data: pd.DataFrame | None = None,
        *,
        ci_prob: float = 0.89,
        max_draws: int | None = 1000,
        random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        """Posterior probability that a play with the given pattern is skipped.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Rows with the crossed ids (seen in training), ``position``,
            ``hour_bin``, the group columns and the numeric covariates; the
            training table by default.
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
            ``mean``, ``sd``, ``ci_lower``, ``ci_upper`` per row of ``data``
            (same index); or the draws, dims ``(chain, draw, row)`` with the
            data's index as the ``row`` coordinate (one chain of ``max_draws``
            draws when ``max_draws`` keeps a subset).

        Raises
        ------
        models.exceptions.DataValidationError
            For missing columns, bad values or labels not seen in training
            (the message lists the valid ones).
        """
        self._require_fitted("probability_skip()")
        rows = self.data_ if data is None else self._validate_prediction_rows(data)
        names = [*self._parameter_names(), *[f"{c}_z" for c in self.crossed]]
        p = posterior_arrays(self.idata_, names, max_draws=max_draws,
                             random_seed=resolve_seed(random_seed))
        d = self._design(rows, self.data_)
        frame = pd.DataFrame({"_row": np.arange(len(rows))}, index=rows.index)

        def func(q: Mapping[str, np.ndarray], block: pd.DataFrame) -> np.ndarray:
            eta = self._row_eta(q, d, block["_row"].to_numpy())
            return 1.0 / (1.0 + np.exp(-eta))

        return predict_in_batches(func, p, frame, ci_prob=ci_prob, return_draws=return_draws,
                                  shape=sample_shape(self.idata_, max_draws), unit="row",
                                  name="probability_skip")

    def _validate_prediction_rows(self, data: Any) -> pd.DataFrame:
        what = "prediction rows"
        columns = self._columns()
        check_columns(data, columns, "SkipModel.probability_skip", what,
                      "pass rows shaped like the skip_table output")
        frame = data[columns]
        problems: list[Problem] = []
        self._check_rows(problems, frame)
        levels = self._levels()
        if HOUR_BIN in frame.columns and not problems:
            hb = frame[HOUR_BIN].to_numpy()
            add_problem(problems, HOUR_BIN, f"hour bins seen in training {levels[HOUR_BIN]}",
                        hb > levels[HOUR_BIN][-1], hb)
        for c in [*self.crossed, *self.group]:
            labels = frame[c].astype(str).to_numpy(dtype=object)
            known = set(levels[c])
            shown = levels[c][:10] + (["..."] if len(levels[c]) > 10 else [])
            add_problem(problems, c, f"labels seen in training, one of {shown}",
                        np.array([v not in known for v in labels]), labels)
        if problems:
            raise DataValidationError(problems, what=what)
        return frame

    @prediction_method()
    def track_skip_excess(self, *, ci_prob: float = 0.89) -> pd.DataFrame:
        """Skips of each track (last crossed factor) beyond what its audience explains.

        The posterior of the random effect :math:`b_t` (log-odds): positive
        means the track is skipped more than its listeners, positions, hours
        and plans predict.

        Parameters
        ----------
        ci_prob : float, default 0.89
            Probability mass of the equal-tailed interval.

        Returns
        -------
        pandas.DataFrame
            One row per level (index named like the column), sorted by
            ``mean`` descending: ``mean``, ``sd``, ``ci_lower``, ``ci_upper``,
            ``prob_positive``, ``n_plays``, ``n_skips``.
        """
        self._require_fitted("track_skip_excess()")
        c = self.crossed[-1]
        p = posterior_arrays(self.idata_, [f"sigma_{c}", f"{c}_z"])
        effect = p[f"sigma_{c}"][:, None] * p[f"{c}_z"]
        levels = self._levels()[c]
        out = interval_summary(effect, ci_prob, pd.Index(levels, name=c))
        counts = self.data_.assign(**{c: self.data_[c].astype(str)}).groupby(c)[
            [N_PLAYS, N_SKIPS]].sum()
        out = out.join(counts)
        return out.sort_values("mean", ascending=False)
