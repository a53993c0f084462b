r"""Engagement-state hidden Markov model: activity that pauses and returns.

Each user moves between a few engagement states (engaged, light, dormant and,
optionally, an absorbing churned state) from one period to the next and is
active on a number of days of each period that depends on the state.
:class:`EngagementStateModel` fits the emission and transition probabilities,
the transitions partially pooled across segments, with the states summed out by
the forward algorithm, so NUTS samples only the population parameters. Unlike
BG/NBD, silence is a state the user can leave: a dormant user may come back.

The input is an activity table, one row per user and one column per period
(:func:`~models.churn.activity_table` builds it from a listening log); users with identical
histories are fitted as one weighted row. With ``user_effects=True`` each user's
activity is shifted by an effect of its own, integrated out over a grid of
nodes, so identical histories still share one row.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pymc.distributions.transforms import ordered

from models._compiled import threadsafe_layer, usable_cpus
from models._pointwise import by_blocks, draw_arrays, sample_array, unit_array, unit_coords
from models.base import BayesianModel
from models.churn import _hmm
from models.churn._engagement_predict import EngagementPredictions
from models.churn.engagement_data import check_period_length, validate_activity_table
from models.churn.engagement_graph import emission_table, transition_matrices
from models.churn.engagement_states import StateSpace, compress, effect_nodes, first_periods
from models.churn.hmm_kernel import HMMLogp, hmm_layout
from models.exceptions import (
    DataValidationError,
    Problem,
    UninformativeDataWarning,
)
from models.priors import Prior

__all__ = ["EngagementStateModel"]

EMISSIONS = ("beta_binomial", "binomial")
_SEG = "_segment_code"


class EngagementStateModel(EngagementPredictions, BayesianModel):
    r"""Hidden Markov model of each user's engagement state, period by period.

    Parameters
    ----------
    n_states : int, default 3
        Engagement states that emit activity (at least 2). They are ordered by
        their mean activity, lowest first: with 3 they are ``dormant``,
        ``light``, ``engaged``; with more, ``dormant``, ``level_1``, ...,
        ``engaged``.
    period_length : int, default 7
        Days per period: the table counts active days per period, 0 to
        ``period_length`` (7 for weeks).
    emission : {"beta_binomial", "binomial"}, default "beta_binomial"
        Distribution of the active days in a period given the state. The
        beta-binomial's concentration per state allows days to cluster
        (over-dispersion); the binomial treats days as independent.
    churn_state : bool, default False
        Add an absorbing ``churned`` state that emits no activity and that
        every other state can enter: a dropout for good, next to pauses.
    churn_returns : bool, default False
        With ``churn_state``: let users leave the churned state too, with
        transition probabilities of its own (a deep pause, silent like the
        churned state but with a small chance of return) instead of absorbing.
    segment : str, optional
        Column of the table holding a segment label; the transition logits of
        each segment are partially pooled around the population's.
    covariates : sequence of str, default ()
        Columns of the table holding user covariates (numbers, or booleans
        taken as 0 and 1; one value per user, constant over the periods) that
        shift the user's transition logits: every move (from one state to
        another, against staying) has its own coefficient per covariate, on
        the covariates standardised by their training means and standard
        deviations (``transition_coef``; ``transition_coef_per_unit`` is the
        same per unit of the covariate). Users with equal covariate values
        (and segment) share a transition matrix; a continuous covariate gives
        every user its own (the compiled likelihood then mixes users of
        several matrices in each of its blocks).
    user_effects : bool, default False
        Give each user an activity level of its own: an effect
        :math:`u_i \sim N(0, \sigma_u)` added to the emission logits of
        every activity state (not the churned one), so that a heavy listener
        stays heavy within a state. The effects are integrated out (see
        Notes): NUTS samples only :math:`\sigma_u` besides the population
        parameters, and predictions average over each user's posterior of its
        effect given its history.
    user_transitions : bool, default False
        With ``user_effects``: let the same effect tilt the user's transitions
        as well, towards the active states for a high effect: the logit of
        every move up (to a more active state) gains :math:`\tau u_i` and of
        every move down (the churned state counts as the least active) loses
        it, with one loading :math:`\tau` (``transition_tilt``). A heavy
        listener then stays engaged longer and a light one drifts down, so
        long-range forecasts keep each user's own level instead of the
        population's mix of states.
    starts_active : bool, optional
        Condition the likelihood on each user's first period being active,
        :math:`P(y_i \mid y_{i t_0} > 0)`, as it is by construction when
        users enter the table at their first event
        (:func:`~models.churn.activity_table`). Without it the first period's
        activity counts as evidence of an active state, and
        ``initial_probability`` understates the dormant state: users who were
        dormant when the table caught them are in it only if they happened to
        listen then. With it, ``initial_probability`` is the mix of states of
        the users when the table catches them, dormant ones included, and
        replicated histories (posterior predictive,
        :func:`~models.churn.gap_check`) start active as the table does.
        ``None`` (the default) conditions when every user's first observed
        period is active (``starts_active_`` says what the fit did); ``True``
        on a table where some user starts silent is an error.
    threads : int, default 1
        Threads of the compiled likelihood pass within each chain: the users'
        blocks are dealt out to ``threads`` parts computed at once. Worth it
        on large tables when the machine has more CPUs than chains running at
        once: at 100,000 users x 52 weeks one gradient takes half the time on
        two threads. Keep ``threads`` times the chains at once at most the
        CPUs (the fit warns when it is more). The sums are then added in
        another order, so the draws differ from a one-thread fit's in the
        last digits (a rerun with the same ``threads`` repeats them exactly).
        Needs numba's OpenMP or TBB threading layer (the fit raises an error
        that says so when neither loads). Use it with ``sampler="nutpie"``,
        whose chains are threads of one process: PyMC's sampler starts each
        chain in a forked process, where OpenMP's threads do not survive, so
        there the fit keeps one thread and warns (unless ``cores=1``).
    priors : mapping of str to Prior or dict, optional
        Replace default priors by name: ``emission_logit`` (the logits of the
        states' mean activity per day, ordered), ``emission_concentration``
        (beta-binomial only), ``initial_logit`` (of each state but the dormant
        one, against it, in a user's first period), ``transition_logit`` (of
        moving from a state to another, against staying), ``segment_sigma``
        (spread of the transition logits across segments; with ``segment``)
        ``sigma_user`` (spread of the user effects on the logit scale; with
        ``user_effects``), ``transition_tilt`` (with ``user_transitions``) and
        ``transition_coef`` (each covariate's effect on each move logit, per
        standard deviation of the covariate; with ``covariates``).

    Attributes
    ----------
    idata_, model_, data_, fit_report_
        See :class:`~models.base.BayesianModel`. ``data_`` holds one row per
        user and one column per period.
    covariate_means_, covariate_sds_ : pandas.Series
        Standardisation of the covariates, from the training rows.

    Notes
    -----
    User :math:`i` is in state :math:`s_{it}` in period :math:`t` and active on
    :math:`y_{it}` of its :math:`n` days:

    .. math::

        s_{i,t_0} \sim \mathrm{Categorical}(\pi), \qquad
        P(s_{it} = k \mid s_{i,t-1} = j) = P^{(g_i)}_{jk}, \qquad
        y_{it} \mid s_{it} = k \sim \mathrm{BetaBinomial}(n, p_k \kappa_k,
        (1 - p_k) \kappa_k),

    from the user's first period :math:`t_0` (the first non-missing cell of
    the row) to the end of the table, with :math:`\operatorname{logit} p_1 <
    \dots < \operatorname{logit} p_K` (the ordering identifies the states), and
    rows of the transition matrix :math:`P^{(g)}_{j\cdot} =
    \operatorname{softmax}(\eta_{j\cdot} + \sigma z_{g j \cdot})` with
    :math:`\eta_{jj} = 0` (segments :math:`g`, non-centred, :math:`z \sim
    N(0, 1)`). With covariates :math:`x_i`, standardised to :math:`\tilde x_i`, user
    :math:`i`'s move logits are :math:`\eta_{jk} + \sigma z_{g jk} + \tilde
    x_i^\top \beta_{jk}` (``transition_probability`` is then the matrix at the
    covariates' training means). The likelihood of a history sums over the state paths with the
    scaled forward algorithm; its value and gradient (forward-backward) come
    from one compiled pass over the histories (``models.churn.hmm_kernel``),
    in which users with identical histories (and transition matrix: segment and
    covariates) enter once, weighted by their number.

    *User effects.* With ``user_effects=True`` the emission mean of state
    :math:`k` for user :math:`i` is :math:`\operatorname{logit}^{-1}(\operatorname{logit}
    p_k + u_i)` (``emission_probability`` is that of a user with :math:`u_i =
    0`) and :math:`u_i = \sigma_u z_i`, :math:`z_i \sim N(0, 1)`. The normal is
    replaced by :attr:`user_effect_nodes` equally spaced nodes :math:`z_q` on
    :math:`[-4, 4]` with probabilities :math:`\omega_q \propto \phi(z_q)`, and
    a user's likelihood is :math:`\sum_q \omega_q L_i(\sigma_u z_q)`: with
    spacing 0.27 this trapezoid rule integrates smooth likelihoods almost
    exactly, and it is in any case the likelihood of a discretised normal
    effect, so it stays a proper model. Summing the effect out keeps the
    sampled dimension small (no funnel between :math:`\sigma_u` and one
    parameter per user) and identical histories one weighted row. Every
    prediction and replicate weights the nodes by their posterior given the
    user's history and the draw's parameters, :math:`r_{iq} \propto
    \omega_q L_i(\sigma_u z_q)`: for a user in the fit this is the exact
    conditional posterior of its effect, and a user outside the fit is
    treated the same way (its effect conditioned on its own history, under the
    population distribution learnt from the fitted users).

    Predictions start from the filtered state :math:`P(s_{iT} \mid y_{i,
    t_0..T})` and run the chain forward: P(active at least once within a
    horizon), expected active days, draws of future activity. A ``horizon``
    is in periods and may end within a period (``horizon * period_length``
    whole days): days within a period are exchangeable, so the first
    :math:`r` days of a period with :math:`y` active days hold a
    hypergeometric number of them.

    *LOO.* The unit of :meth:`compute_log_likelihood` (variable ``activity``,
    dim ``user``) is a user's whole history.

    References
    ----------
    .. [1] Netzer, O., Lattin, J. M. and Srinivasan, V. (2008). A hidden Markov
       model of customer relationship dynamics. Marketing Science 27(2), 185-204.
    .. [2] Romero, J., van der Lans, R. and Wierenga, B. (2013). A partially
       hidden Markov model of customer dynamics for CLV measurement. Journal of
       Interactive Marketing 27(3), 185-208.

    Examples
    --------
    >>> from models.data import simulate_engagement
    >>> sim = simulate_engagement(300, 12, random_seed=1)
    >>> model = EngagementStateModel().fit(sim.activity, method="map", random_seed=1)
    >>> bool(model.probability_active(horizon=4)["mean"].between(0, 1).all())
    True
    """

    dense_mass_max_dim: ClassVar[int] = 40
    #: Nodes of the integral over each user's effect (``user_effects=True``).
    user_effect_nodes: ClassVar[int] = 31
    default_priors: ClassVar[Mapping[str, Prior]] = {
        "emission_logit": Prior("Normal", mu=0.0, sigma=2.5),
        "emission_concentration": Prior("LogNormal", mu=1.5, sigma=1.0),
        "initial_logit": Prior("Normal", mu=0.0, sigma=1.5),
        "transition_logit": Prior("Normal", mu=-2.0, sigma=1.5),
        "segment_sigma": Prior("HalfNormal", sigma=0.5),
        "sigma_user": Prior("HalfNormal", sigma=1.0),
        "transition_tilt": Prior("Normal", mu=0.0, sigma=1.0),
        "transition_coef": Prior("Normal", mu=0.0, sigma=1.0),
    }

    def __init__(
        self, *, n_states: int = 3, period_length: int = 7,
        emission: str = "beta_binomial", churn_state: bool = False,
        churn_returns: bool = False,
        segment: str | None = None, covariates: Sequence[str] = (),
        user_effects: bool = False, user_transitions: bool = False,
        starts_active: bool | None = None, threads: int = 1,
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
    ) -> None:
        owner = "EngagementStateModel"
        if isinstance(n_states, bool) or not isinstance(n_states, int | np.integer) \
                or n_states < 2:
            raise ValueError(f"The 'n_states' parameter of {owner} must be an integer of at "
                             f"least 2. Got {n_states!r} instead.")
        check_period_length(owner, period_length)
        if emission not in EMISSIONS:
            raise ValueError(f"The 'emission' parameter of {owner} must be one of "
                             f"{list(EMISSIONS)}. Got {emission!r} instead.")
        for name, value in (("churn_state", churn_state), ("churn_returns", churn_returns),
                            ("user_effects", user_effects),
                            ("user_transitions", user_transitions)):
            if not isinstance(value, bool):
                raise ValueError(f"The '{name}' parameter of {owner} must be True or False. "
                                 f"Got {value!r} instead.")
        if starts_active is not None and not isinstance(starts_active, bool):
            raise ValueError(f"The 'starts_active' parameter of {owner} must be True, False or "
                             f"None. Got {starts_active!r} instead.")
        if isinstance(threads, bool) or not isinstance(threads, int | np.integer) \
                or threads < 1:
            raise ValueError(f"The 'threads' parameter of {owner} must be a positive integer. "
                             f"Got {threads!r} instead.")
        if user_transitions and not user_effects:
            raise ValueError(f"The 'user_transitions' parameter of {owner} needs "
                             "user_effects=True. Got user_transitions=True instead.")
        if churn_returns and not churn_state:
            raise ValueError(f"The 'churn_returns' parameter of {owner} needs "
                             "churn_state=True. Got churn_returns=True instead.")
        if segment is not None and not (isinstance(segment, str) and segment):
            raise ValueError(f"The 'segment' parameter of {owner} must be a column name. "
                             f"Got {segment!r} instead.")
        bad = isinstance(covariates, str) or not isinstance(covariates, Sequence) or not all(
            isinstance(c, str) and c for c in covariates) or len(set(covariates)) < len(
            covariates) or segment in covariates
        if bad:
            raise ValueError(f"The 'covariates' parameter of {owner} must be a list of distinct "
                             "column names, other than the segment's. "
                             f"Got {covariates!r} instead.")
        self.n_states = n_states
        self.period_length = period_length
        self.emission = emission
        self.churn_state = churn_state
        self.churn_returns = churn_returns
        self.segment = segment
        self.covariates = list(covariates)
        self.user_effects = user_effects
        self.user_transitions = user_transitions
        self.starts_active = starts_active
        self.threads = threads
        super().__init__(priors=priors)

    # ------------------------------------------------------------------ hooks
    @property
    def _space(self) -> StateSpace:
        """The model's states, moves and nodes (the numpy side of its parameters)."""
        return StateSpace(self.n_states, self.period_length, self.churn_state, self.churn_returns,
                          bool(self.segment), bool(self.covariates), self.user_effects,
                          self.user_transitions, self._n_nodes())

    @property
    def _labels(self) -> list[str]:
        """Labels of every state, the churned one last."""
        return self._space.labels

    def _validate_data(self, data: Any) -> pd.DataFrame:
        return validate_activity_table(data, self.period_length, self.segment, self.covariates)

    def _first_active(self, data: pd.DataFrame) -> bool:
        """Whether the likelihood conditions on each user's first period being active."""
        if self.starts_active is False:
            return False
        codes = self._codes(data)
        first = codes[np.arange(len(codes)), first_periods(codes, self.period_length + 1)]
        silent = np.flatnonzero(first == 0)
        if self.starts_active is None:
            return not len(silent)
        if len(silent):
            raise DataValidationError([Problem(
                "<table>", "an active first period for every user (starts_active=True)",
                len(silent), tuple(int(i) for i in silent[:5]),
                tuple(str(data.index[i]) for i in silent[:5]),
                "leave starts_active to None (or False) for a table whose users may start "
                "silent")],
                what="activity table")
        return True

    def _periods(self, data: pd.DataFrame) -> list[str]:
        extra = {self.segment, *self.covariates}
        return [c for c in data.columns if c not in extra]

    @staticmethod
    def _scaling(train: pd.DataFrame, covs: list[str]) -> tuple[pd.Series, pd.Series]:
        means = train[covs].mean()
        sds = train[covs].std(ddof=0)
        return means, sds.where(sds > 0, 1.0)

    @property
    def starts_active_(self) -> bool:
        """Whether the fit conditioned on each user's first period being active."""
        self._require_fitted("starts_active_")
        return self._first_active(self.data_)

    @property
    def covariate_means_(self) -> pd.Series:
        """Training means of the covariates."""
        self._require_fitted("covariate_means_")
        return self._scaling(self.data_, self.covariates)[0]

    @property
    def covariate_sds_(self) -> pd.Series:
        """Training standard deviations of the covariates."""
        self._require_fitted("covariate_sds_")
        return self._scaling(self.data_, self.covariates)[1]

    def _groups(self, data: pd.DataFrame, seg_labels: list | None,
                train: pd.DataFrame | None = None) -> tuple[np.ndarray, dict | None]:
        """Each user's transition group, and the groups' segments and standardised covariates.

        Without covariates the group is the segment (and the design None); with
        them, the distinct (segment, covariates) rows, standardised with the
        training rows ``train`` (``data_`` by default).
        """
        seg = self._segment_codes(data, seg_labels)
        if not self.covariates:
            return seg, None
        means, sds = self._scaling(self.data_ if train is None else train, self.covariates)
        x = ((data[self.covariates] - means) / sds).to_numpy(dtype=float)
        keys, group = np.unique(np.column_stack([seg.astype(float), x]), axis=0,
                                return_inverse=True)
        return group.reshape(-1).astype(np.int64), {"segment": keys[:, 0].astype(np.int64),
                                                    "x": keys[:, 1:]}

    def _codes(self, data: pd.DataFrame) -> np.ndarray:
        """Observed values as integer codes; ``period_length + 1`` for a missing cell."""
        values = data[self._periods(data)].to_numpy(dtype=float)
        return np.where(np.isnan(values), self.period_length + 1,
                        np.nan_to_num(values)).astype(np.int64)

    def _segment_codes(self, data: pd.DataFrame, labels: list | None = None) -> np.ndarray:
        if not self.segment:
            return np.zeros(len(data), dtype=np.int64)
        values = data[self.segment]
        labels = pd.Index(labels if labels is not None else sorted(pd.unique(values)))
        codes = labels.get_indexer(values)
        if (codes < 0).any():
            rows = np.flatnonzero(codes < 0)
            raise DataValidationError([Problem(
                self.segment, f"segments seen in training {list(labels)}", len(rows),
                tuple(int(i) for i in rows[:5]), tuple(values.iloc[rows[:5]].tolist()),
                "predict only for segments the model was fitted on")], what="activity table")
        return codes.astype(np.int64)

    def _warn_uninformative(self, data: pd.DataFrame) -> None:
        """Warn when the table cannot inform the transitions or tell the states apart."""
        observed = data[self._periods(data)].notna().sum(axis=1)
        if (observed < 2).all():
            warnings.warn(
                "No user of the activity table has two observed periods, so no move between "
                "states is observed: the transition probabilities restate their prior, and so "
                "does every forecast beyond the last period. Give the users' histories over "
                "several periods.", UninformativeDataWarning, stacklevel=4)
        if (data[self._periods(data)].fillna(0) == 0).all(axis=None):
            warnings.warn(
                "No user of the activity table was active in any period, so the states cannot "
                "be told apart: their activity levels and moves restate the prior. Check the "
                "table (active days per period) and the log it came from.",
                UninformativeDataWarning, stacklevel=4)

    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        self._warn_uninformative(data)
        priors = self.resolved_priors()
        k, n = self.n_states, self.period_length
        labels = self._labels
        c = len(labels)
        rows = c if self.churn_returns else k  # states that can be left
        coords: dict[str, Any] = {"state": labels[:k], "to_state": labels,
                                  "from_state": labels[:rows], "initial_state": labels[1:k],
                                  "move": [f"{a}->{b}" for a in labels[:rows] for b in labels
                                           if a != b]}
        seg_labels = sorted(pd.unique(data[self.segment])) if self.segment else None
        if seg_labels is not None:
            coords["segment"] = seg_labels
        if self.covariates:
            coords["covariate"] = self.covariates
            constant = [c for c in self.covariates if data[c].nunique() < 2]
            if constant:
                raise DataValidationError([Problem(
                    c, "a covariate that varies across the users of the fit (its effect is "
                    f"not identified; every user has {data[c].iloc[0]!r})",
                    fix="leave it out of covariates") for c in constant], what="activity table")
        group, design = self._groups(data, seg_labels, train=data)
        rows, _, weights = compress(self._codes(data), group)
        seg, codes = rows[:, 0], rows[:, 1:]
        start = first_periods(codes, n + 1)
        z, log_nodes = effect_nodes(self._n_nodes())
        with pm.Model(coords=coords) as model:
            logit = priors["emission_logit"].create(
                "emission_logit", dims="state", transform=ordered,
                initval=np.linspace(-2.5, 1.0, k))
            pm.Deterministic("emission_probability", pm.math.sigmoid(logit), dims="state")
            shift = None
            if self.user_effects:  # (Q, 1, K): the emission means at each node of the effect
                sigma_user = priors["sigma_user"].create("sigma_user")
                if self.user_transitions:  # (Q, moves): each node's tilt of the move logits
                    tilt = priors["transition_tilt"].create("transition_tilt")
                    shift = tilt * sigma_user * z[:, None] * self._space.move_direction()[None, :]
                p = pm.math.sigmoid(logit[None, None, :] + sigma_user * z[:, None, None])
            else:
                p = pm.math.sigmoid(logit)[None, None, :]
            kappa = (priors["emission_concentration"].create("emission_concentration",
                                                             dims="state")
                     if self.emission == "beta_binomial" else None)
            table = emission_table(p, n, kappa, self.churn_state)
            init_free = priors["initial_logit"].create("initial_logit", dims="initial_state")
            initial = pm.Deterministic(
                "initial_probability",
                pt.special.softmax(pt.concatenate([pt.zeros(1), init_free]), axis=-1),
                dims="state")
            init_full = pt.concatenate([initial, pt.zeros(c - k)]) if c > k else initial
            move = priors["transition_logit"].create("transition_logit", dims="move")
            sds = self._scaling(data, self.covariates)[1].to_numpy() if self.covariates else None
            trans = transition_matrices(self._space, move, priors, seg_labels, shift, design, sds)
            blocks = hmm_layout(codes, start, seg, weights, n + 2, int(seg.max(initial=0)) + 1,
                                len(z))
            loglik = HMMLogp(c, n + 2, self._kernel_threads())(table, init_full, trans, *blocks,
                                                               log_nodes)[0]
            if self._first_active(data):  # minus log P(first period active), once per user
                reach = pt.sum(init_full[None, :] * (1.0 - table[:, 0, :]), axis=-1)  # (Q,)
                loglik = loglik - weights.sum() * pm.math.logsumexp(log_nodes + pt.log(reach))
            pm.Potential("log_likelihood", loglik)
        model.engagement_rows = len(weights)  # for benchmarks
        return model

    def _kernel_threads(self) -> int:
        """Threads of the compiled pass in the model being built (``threads``, or 1).

        In :meth:`fit` (``_fit_plan``): one, with a warning, when PyMC's sampler
        runs the chains in forked processes; a warning when the threads of the
        chains running at once exceed the CPUs. Without a thread-safe threading
        layer, an error, except for the graph of a fitted model (one saved where
        there was one and loaded here): one thread, with a warning.
        """
        owner = type(self).__name__
        if self.threads == 1:
            return 1
        plan = self._fit_plan or {}
        nuts = plan.get("method") == "nuts"
        chains, cores = plan.get("chains", 1), plan.get("cores")
        cpus = usable_cpus()
        # cores=None: PyMC's default, min(4, CPUs) chains at once
        at_once = min(chains, cores or min(4, cpus)) if nuts else 1
        if nuts and plan.get("sampler") == "pymc" and at_once > 1:
            warnings.warn(
                f"{owner}: threads={self.threads} is not used with sampler='pymc' running "
                "chains in processes (OpenMP's threads do not survive the fork that starts "
                "each one); the pass runs on one thread per chain. Fit with sampler='nutpie' "
                "(its chains are threads of one process) or cores=1 to use the threads.",
                UserWarning, stacklevel=4)
            return 1
        if at_once * self.threads > cpus:
            warnings.warn(
                f"{owner}: threads={self.threads} with {at_once} chain(s) at once asks for "
                f"{at_once * self.threads} threads on {cpus} CPU(s): they compete, and the "
                f"fit is slower than it need be. Use threads={max(1, cpus // at_once)} (or "
                "fewer cores).", UserWarning, stacklevel=4)
        try:
            threadsafe_layer(owner)
        except RuntimeError as err:
            if self._fit_plan is not None or "idata_" not in self.__dict__:
                raise  # a fit, or a graph built for one, asked for the threads: refuse
            # the graph of a fitted model (loaded elsewhere, rebuilt for a check): the
            # threads only set the speed, and one thread gives the same values
            warnings.warn(f"{err} This fitted model's graph runs its pass on one thread.",
                          UserWarning, stacklevel=4)
            return 1
        return self.threads

    def _parameter_names(self) -> list[str]:
        names = ["emission_probability", "initial_probability", "transition_probability"]
        if self.emission == "beta_binomial":
            names.insert(1, "emission_concentration")
        if self.segment:
            names.append("segment_sigma")
        if self.user_effects:
            names.append("sigma_user")
        if self.user_transitions:
            names.append("transition_tilt")
        if self.covariates:
            names.append("transition_coef")
        return names

    def _var_names(self) -> list[str]:
        names = ["emission_probability", "initial_probability"]
        if not self.covariates:  # with covariates, each user's matrix comes from the logits
            names.append("transition_probability_segment" if self.segment
                         else "transition_probability")
        if self.emission == "beta_binomial":
            names.append("emission_concentration")
        if self.user_effects:
            names.append("sigma_user")
        if self.user_transitions:
            names.append("transition_tilt")
        if self.user_transitions or self.covariates:
            names.append("transition_logit")
            if self.segment:
                names += ["segment_sigma", "segment_offset"]
        if self.covariates:
            names.append("transition_coef")
        return names

    def _n_nodes(self) -> int:
        return self.user_effect_nodes if self.user_effects else 1

    def _pointwise_log_likelihood(self, posterior: xr.Dataset) -> dict[str, xr.DataArray]:
        labels = list(posterior["segment"].values) if self.segment else None
        group, design = self._groups(self.data_, labels)
        params = self._space.params(draw_arrays(posterior, self._var_names()), design)
        rows, inverse, _ = compress(self._codes(self.data_), group)
        n_draws = params["emission"].shape[0]
        per_row = by_blocks(
            lambda idx: self._space.forward_filter(params, rows[idx, 1:], rows[idx, 0])[0].loglik,
            n_draws, len(rows), unit_width=self._width(rows.shape[1]))
        if self._first_active(self.data_):
            per_row = per_row - _hmm.log_first_active(params["emission"], params["initial"],
                                                      params["log_nodes"])[:, None]
        return {"activity": sample_array(per_row[:, inverse], posterior, "user",
                                         unit_coords(self.data_.index))}

    def _posterior_predictive(self, posterior: xr.Dataset,
                              rng: np.random.Generator) -> dict[str, xr.DataArray]:
        """Replicate each user's total active days over their own observed periods.

        With user effects, each user's effect is drawn from its posterior given
        its history (per posterior draw), then the history is replicated.
        """
        labels = list(posterior["segment"].values) if self.segment else None
        codes = self._codes(self.data_)
        seg, design = self._groups(self.data_, labels)
        params = self._space.params(draw_arrays(posterior, self._var_names()), design)
        start = first_periods(codes, self.period_length + 1)
        n_draws = params["emission"].shape[0]
        first_active = self._first_active(self.data_)

        def block(idx: np.ndarray) -> np.ndarray:
            if self.user_effects:
                nodes, trans = self._space.forward_filter(params, codes[idx], seg[idx])
                emission, _, trans = _hmm.draw_nodes(params["emission"], nodes, trans, rng)
            else:
                trans = self._space.transitions_for(params, seg[idx])[:, 0]
                emission = params["emission"][:, 0]
            return _hmm.sample_history_totals(params["initial"], emission, trans,
                                              self.period_length, codes.shape[1] - start[idx],
                                              rng, first_active=first_active)

        width = len(self._labels) ** 2 + (codes.shape[1] * len(self._labels) * self._n_nodes()
                                          if self.user_effects else 0)
        draws = by_blocks(block, n_draws, len(codes), unit_width=width)
        return {"total_activity": sample_array(draws, posterior, "user",
                                               unit_coords(self.data_.index))}

    def _observed_data(self) -> dict[str, xr.DataArray]:
        totals = np.nansum(self.data_[self._periods(self.data_)].to_numpy(float), axis=1)
        return {"total_activity": unit_array(totals.astype(np.int64), "user",
                                             unit_coords(self.data_.index))}
