r"""Predictions of the engagement-state model: states now, activity and return ahead.

:class:`EngagementPredictions` holds the prediction methods of
:class:`~models.churn.EngagementStateModel` (which inherits them): each runs the
forward filter of every posterior draw over the users' unique histories, then
the chain of states ahead, in the package's prediction vocabulary (``horizon``,
``ci_prob``, ``max_draws``, ``random_seed``, ``return_draws``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from models._pointwise import by_blocks
from models.base import resolve_seed
from models.churn import _hmm
from models.churn.engagement_states import compress
from models.exceptions import DataQualityWarning
from models.predict import (
    draws_to_dataarray,
    posterior_arrays,
    predict_in_batches,
    prediction_method,
    sample_shape,
    summarize_draws,
)

__all__ = ["EngagementPredictions"]

_MAX_SAMPLED_DAYS = 36_525  # sample_activity draws its paths period by period
_FAR_SDS = 10.0  # covariates this many training sds from the mean: extrapolation, warned


class EngagementPredictions:
    """Prediction methods of :class:`~models.churn.EngagementStateModel` (a mixin).

    They use the model's fitted state (``idata_``, ``data_``) and its helpers
    (``_space``, ``_labels``, ``_groups``, ``_codes``, ``_var_names``, ...).
    """

    def _horizon(self, owner: str, horizon: Any) -> tuple[int, int]:
        """Whole periods and remaining days of a horizon in periods."""
        ok = isinstance(horizon, int | float | np.integer | np.floating) and not isinstance(
            horizon, bool) and np.isfinite(horizon) and horizon > 0
        days = float(horizon) * self.period_length if ok else np.nan
        if not (ok and abs(days - round(days)) < 1e-6):
            raise ValueError(
                f"The 'horizon' parameter of {owner} must be a positive number of periods "
                f"spanning whole days (a multiple of 1/{self.period_length}). "
                f"Got {horizon!r} instead.")
        total = int(round(days))
        return total // self.period_length, total % self.period_length

    def _unique_rows(self, data: Any) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict | None]:
        """Clean data, its unique (group, history) rows, each user's row and the groups' design."""
        clean = self.data_ if data is None else self._validate_data(data)
        if data is not None:
            self._warn_extrapolation(clean)
        labels = list(self.idata_["posterior"]["segment"].values) if self.segment else None
        group, design = self._groups(clean, labels)
        rows, inverse, _ = compress(self._codes(clean), group)
        return clean, rows, inverse, design

    def _warn_extrapolation(self, data: pd.DataFrame) -> None:
        """Warn when covariates lie far outside the training users' (beyond 10 sds)."""
        if not self.covariates:
            return
        means, sds = self._scaling(self.data_, self.covariates)
        z = ((data[self.covariates] - means) / sds).abs()
        far = [(c, np.flatnonzero(z[c].to_numpy() > _FAR_SDS)) for c in self.covariates]
        far = [(c, rows) for c, rows in far if len(rows)]
        if far:
            where = "; ".join(
                f"'{c}' in {len(rows)} row(s), first: row {rows[0]} ({data[c].iloc[rows[0]]!r}, "
                f"{z[c].iloc[rows[0]]:.0f} sds from the training mean {means[c]:.3g})"
                for c, rows in far)
            warnings.warn(
                f"Covariates far outside the training users' ({_FAR_SDS:g}+ standard "
                f"deviations): {where}. The forecasts of these users extrapolate the fitted "
                "effects on the transitions well beyond the data; check the values and "
                "their units.", DataQualityWarning, stacklevel=4)

    def _width(self, n_periods: int) -> int:
        """Numbers per user and draw of the filter: its forward variables and transitions."""
        return (n_periods + len(self._labels)) * len(self._labels) * self._n_nodes()

    def _block_rows(self, n_draws: int, n_periods: int) -> int:
        width = self._width(n_periods)
        return max(1, 4_000_000 // max(n_draws * width, 1))

    def _predict_users(self, what: str, data: Any, func: Callable, ci_prob: float,
                       max_draws: int | None, random_seed: Any, return_draws: bool):
        """Evaluate ``func(emission, filtered, transition) -> (D, rows)`` on unique rows.

        ``func`` runs at every node of the user effect; the nodes are averaged
        with their posterior probabilities (:func:`~models.churn._hmm.mix_nodes`).
        """
        self._require_fitted(f"{what}()")
        clean, rows, inverse, design = self._unique_rows(data)
        arrays = posterior_arrays(self.idata_, self._var_names(), max_draws=max_draws,
                                  random_seed=random_seed)
        params = self._space.params(arrays, design)

        def block_func(_: Any, block: pd.DataFrame) -> np.ndarray:
            idx = block["row"].to_numpy()
            nodes, trans = self._space.forward_filter(params, rows[idx, 1:], rows[idx, 0])
            return _hmm.mix_nodes(func, params["emission"], nodes, trans)

        frame = pd.DataFrame({"row": np.arange(len(rows))})
        out = predict_in_batches(
            block_func, arrays, frame, ci_prob=ci_prob, return_draws=return_draws,
            rows_per_block=self._block_rows(params["emission"].shape[0], rows.shape[1]),
            shape=sample_shape(self.idata_, max_draws), unit="user", name=what)
        if return_draws:
            return out.isel(user=inverse).assign_coords(user=clean.index.to_numpy())
        result = out.iloc[inverse].set_axis(clean.index, axis=0)
        result.attrs["ci_prob"] = ci_prob
        return result

    @prediction_method()
    def probability_states(
        self, data: pd.DataFrame | None = None, *, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability of each engagement state in the last period of the table.

        The filtered probabilities :math:`P(s_{iT} = k \mid y_{i,t_0..T})` of the
        forward algorithm, per posterior draw.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Activity table; the training data by default.
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
            One row per (user, state), index levels ``user`` and ``state``,
            columns ``mean``, ``sd``, ``ci_lower``, ``ci_upper``; or the draws,
            dims ``(chain, draw, user, state)``.

        Raises
        ------
        ValueError
            For a bad option.
        models.exceptions.NotFittedError
            Before ``fit``.
        models.exceptions.DataValidationError
            If ``data`` breaks the rules of the activity table.
        """
        self._require_fitted("probability_states()")
        clean, rows, inverse, design = self._unique_rows(data)
        params = self._space.params(posterior_arrays(
            self.idata_, self._var_names(), max_draws=max_draws, random_seed=random_seed), design)

        def block(idx: np.ndarray) -> tuple[np.ndarray, ...]:
            nodes = self._space.forward_filter(params, rows[idx, 1:], rows[idx, 0])[0]
            mixed = (nodes.filtered * nodes.weights[..., None]).sum(axis=1)  # (D, U, C)
            return tuple(np.moveaxis(mixed, -1, 0))

        filtered = by_blocks(block, params["emission"].shape[0], len(rows),
                             unit_width=self._width(rows.shape[1]))
        values = np.stack(filtered, axis=-1)[:, inverse]  # (D, users, C)
        n_draws = values.shape[0]
        index = pd.MultiIndex.from_product([clean.index.to_numpy(), self._labels],
                                           names=["user", "state"])
        flat = values.reshape(n_draws, -1)
        if return_draws:
            grid = pd.MultiIndex.from_product([np.arange(len(clean)), self._labels],
                                              names=["user", "state"])
            da = draws_to_dataarray(flat, index=grid, shape=sample_shape(self.idata_, max_draws),
                                    name="probability_states")
            return da.assign_coords(user=clean.index.to_numpy())
        return summarize_draws(flat, ci_prob=ci_prob, index=index)

    @prediction_method()
    def probability_active(
        self, data: pd.DataFrame | None = None, *, horizon: float, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Probability that each user is active at least once in the next ``horizon`` periods.

        .. math::

            1 - \mathbf 1^\top\big[(\dots(f_T P \odot z) P \odot z)\dots\big],
            \qquad z_k = P(y = 0 \mid k),

        with :math:`f_T` the filtered state (:meth:`probability_states`) and a
        last, partial period as described in the class Notes.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Activity table; the training data by default.
        horizon : float
            Periods after the end of the table, positive; it may end within a
            period (whole days: ``horizon * period_length`` an integer). Up
            to 64 periods the chain is run period by period; longer horizons
            take powers of the transition matrix by repeated squaring, so
            their time grows with the logarithm of the horizon.
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_states`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            Indexed like ``data`` (one row per user), columns ``mean``, ``sd``,
            ``ci_lower``, ``ci_upper``; or the draws, dims ``(chain, draw, user)``.

        Raises
        ------
        ValueError
            If ``horizon`` is not a positive number of whole days, or for a bad option.
        models.exceptions.NotFittedError
            Before ``fit``.
        models.exceptions.DataValidationError
            If ``data`` breaks the rules of the activity table.
        """
        periods, days = self._horizon("EngagementStateModel.probability_active", horizon)

        def func(emission, filtered, trans):
            return 1.0 - _hmm.probability_no_activity(filtered, emission, trans,
                                                      self.period_length, periods, days)

        return self._predict_users("probability_active", data, func, ci_prob, max_draws,
                                   random_seed, return_draws)

    @prediction_method()
    def probability_return(
        self, data: pd.DataFrame | None = None, *, horizon: float, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        """Probability that each dormant user comes back within ``horizon`` periods.

        :meth:`probability_active` for the users whose most probable state now
        (posterior mean of :meth:`probability_states`) is ``dormant`` (or
        ``churned``): who of the silent users will listen again. A return is any
        active day within the horizon, including the occasional active day of a
        user who stays in the dormant state; the choice of users takes the
        posterior mean of the states, not their uncertainty (see
        :meth:`probability_states` for that).

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Activity table; the training data by default.
        horizon : float
            As in :meth:`probability_active`.
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_states`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            One row per dormant user (a subset of ``data``'s rows, in its
            order), as in :meth:`probability_active`; no rows (no users) when
            no user is dormant.

        Raises
        ------
        ValueError
            If ``horizon`` is not a positive number of whole days, or for a bad option.
        models.exceptions.NotFittedError
            Before ``fit``.
        models.exceptions.DataValidationError
            If ``data`` breaks the rules of the activity table.
        """
        self._horizon("EngagementStateModel.probability_return", horizon)
        self._require_fitted("probability_return()")
        clean = self.data_ if data is None else self._validate_data(data)
        states = self.probability_states(clean, max_draws=max_draws, random_seed=random_seed)
        mean = states["mean"].to_numpy().reshape(len(clean), len(self._labels))
        silent = [0, len(self._labels) - 1] if self.churn_state else [0]
        dormant = np.flatnonzero(np.isin(mean.argmax(axis=1), silent))
        # no dormant user: the empty result, shaped by one user's prediction
        rows = dormant if len(dormant) else np.arange(1)
        out = self.probability_active(clean.iloc[rows], horizon=horizon, ci_prob=ci_prob,
                                      max_draws=max_draws, random_seed=random_seed,
                                      return_draws=return_draws)
        if len(dormant):
            return out
        return out.isel(user=slice(0, 0)) if return_draws else out.iloc[:0]

    @prediction_method()
    def expected_activity(
        self, data: pd.DataFrame | None = None, *, horizon: float, ci_prob: float = 0.89,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Predict the number of active days of each user in the next ``horizon`` periods.

        :math:`\sum_{s=1}^{h} f_T P^s m` with :math:`m_k = n\,p_k` the mean
        active days per period in state :math:`k` (and a share of the last,
        partial period).

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Activity table; the training data by default.
        horizon : float
            As in :meth:`probability_active`.
        ci_prob, max_draws, random_seed, return_draws
            As in :meth:`probability_states`.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            As in :meth:`probability_active`.

        Raises
        ------
        ValueError
            If ``horizon`` is not a positive number of whole days, or for a bad option.
        models.exceptions.NotFittedError
            Before ``fit``.
        models.exceptions.DataValidationError
            If ``data`` breaks the rules of the activity table.
        """
        periods, days = self._horizon("EngagementStateModel.expected_activity", horizon)

        def func(emission, filtered, trans):
            return _hmm.expected_future_activity(filtered, emission, trans,
                                                 self.period_length, periods, days)

        return self._predict_users("expected_activity", data, func, ci_prob, max_draws,
                                   random_seed, return_draws)

    @prediction_method()
    def sample_activity(
        self, data: pd.DataFrame | None = None, *, horizon: float,
        max_draws: int | None = None, random_seed: int | np.random.Generator | None = None,
    ) -> xr.DataArray:
        """Draw each user's number of active days in the next ``horizon`` periods.

        The posterior predictive of future activity: per posterior draw, the
        state now is drawn from the filtered distribution, the chain runs
        forward and each period's active days are drawn from its state.
        Summarise with :func:`models.predict.predictive_summary`.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Activity table; the training data by default.
        horizon : float
            As in :meth:`probability_active`.
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
            If ``horizon`` is not a positive number of whole days or spans more
            than 100 years, or for a bad option.
        models.exceptions.NotFittedError
            Before ``fit``.
        """
        periods, days = self._horizon("EngagementStateModel.sample_activity", horizon)
        if periods * self.period_length + days > _MAX_SAMPLED_DAYS:
            raise ValueError(
                "The 'horizon' parameter of EngagementStateModel.sample_activity must span at "
                f"most {_MAX_SAMPLED_DAYS:,} days (100 years): the paths are drawn period by "
                f"period. Got {horizon!r} periods of {self.period_length} days. "
                "probability_active and expected_activity take any horizon.")
        self._require_fitted("sample_activity()")
        clean, rows, inverse, design = self._unique_rows(data)
        params = self._space.params(posterior_arrays(
            self.idata_, self._var_names(), max_draws=max_draws, random_seed=random_seed), design)
        rng = np.random.default_rng([resolve_seed(random_seed), 1])
        n_draws = params["emission"].shape[0]

        def block(idx: np.ndarray) -> np.ndarray:
            user_rows = rows[inverse[idx]]
            nodes, trans = self._space.forward_filter(params, user_rows[:, 1:], user_rows[:, 0])
            emission, filtered, trans = _hmm.draw_nodes(params["emission"], nodes, trans, rng)
            return _hmm.sample_future_activity(filtered, emission, trans,
                                               self.period_length, periods, days, rng)

        out = by_blocks(block, n_draws, len(clean),
                        unit_width=self._width(rows.shape[1]))
        return draws_to_dataarray(out, index=clean.index, shape=sample_shape(self.idata_,
                                                                               max_draws),
                                  unit="user", name="sample_activity")
