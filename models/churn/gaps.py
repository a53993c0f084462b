r"""Posterior predictive check of the gaps between a user's active periods.

Silence in streaming is usually a pause: people stop for weeks and come back. A
model in which silence can only be a slow rate or a permanent dropout (BG/NBD)
cannot produce heavy listeners who pause for a month and return. Counting the
gaps between consecutive active periods, in the log and in logs replicated from
the fitted model, shows whether the model can produce what the users did:

- :func:`observed_gaps` turns a log into each user's gaps;
- :func:`gap_check` compares their distribution, and the number of heavy users
  who return after a long pause, with replicates from a fitted
  :class:`~models.churn.BetaGeoModel` (from the log) or
  :class:`~models.churn.EngagementStateModel` (from its activity table, whose
  periods it models).

The replicates are *mixed* predictive: the population parameters are posterior
draws, each user's rate and dropout probability (BG/NBD) or states and user
effect (engagement states) are drawn afresh from the population, and each
replicated user is observed for as many periods as the real one (from their
first period to the end of the log). So the check asks
whether the model's population of users can look like this one, not whether it
fits each user.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models import _html
from models._pointwise import draw_arrays
from models.base import resolve_seed
from models.churn import _hmm
from models.churn.beta_geo import PARAMETERS
from models.churn.engagement_states import first_periods
from models.data.schema import TIMESTAMP, USER_ID
from models.data.summaries import _period_index
from models.exceptions import DataQualityWarning
from models.predict import check_ci_prob

__all__ = ["GapCheck", "HistoryTooShortError", "gap_check", "observed_gaps"]


class HistoryTooShortError(ValueError):
    """The histories are too short for any statistic of :func:`gap_check` to occur."""

#: Lower edges of the gap bins, in periods (a gap of 1 is two active periods in a row).
GAP_EDGES = (1, 2, 8, 31)
PERIODS = ("D", "W", "M")
#: Replicated users (populations x users) simulated at once.
_MAX_CELLS = 2_000_000


def _labels(edges: tuple[int, ...]) -> list[str]:
    out = []
    for lo, hi in zip(edges, (*edges[1:], None), strict=True):
        out.append(f"{lo}+" if hi is None else (f"{lo}" if hi == lo + 1 else f"{lo}-{hi - 1}"))
    return out


def observed_gaps(events: pd.DataFrame, *, period: str = "D",
                  observation_end: Any = None) -> pd.DataFrame:
    """Each user's active periods and observation length, from a log.

    Parameters
    ----------
    events : pandas.DataFrame
        Listening log with ``user_id`` and ``timestamp`` (datetime64).
    period : {"D", "W", "M"}, default "D"
        Period of activity: calendar day, Monday-starting week or calendar month.
    observation_end : timestamp-like, optional
        End of the log; by default its last timestamp. An event after it is an
        error.

    Returns
    -------
    pandas.DataFrame
        One row per user (index ``user_id``): ``active`` (sorted active periods,
        counted from the user's first, as a tuple), ``n_active``, ``T`` (periods
        observed after the first, as in :func:`~models.data.summarize_activity`),
        ``longest_gap`` (0 with one active period).

    Raises
    ------
    ValueError
        If a column is missing, ``timestamp`` is not datetime64, the log is empty,
        ``period`` is not an option or an event falls after ``observation_end``.
    """
    if period not in PERIODS:
        raise ValueError(f"The 'period' parameter of observed_gaps must be one of "
                         f"{list(PERIODS)}. Got {period!r} instead.")
    missing = [c for c in (USER_ID, TIMESTAMP) if c not in getattr(events, "columns", ())]
    if missing:
        raise ValueError(f"observed_gaps needs the columns {missing} in events.")
    if len(events) == 0:
        raise ValueError("observed_gaps needs at least one event; the log is empty.")
    ts = events[TIMESTAMP]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        raise ValueError(f"column '{TIMESTAMP}': expected datetime64 values. Got {ts.dtype}.")
    end = ts.max() if observation_end is None else pd.Timestamp(observation_end)
    late = np.flatnonzero((ts > end).to_numpy())
    if late.size:
        raise ValueError(f"column '{TIMESTAMP}': {late.size} event(s) after observation_end "
                         f"{end}, first at row {late[0]}.")
    frame = pd.DataFrame({USER_ID: events[USER_ID].to_numpy(),
                          "p": _period_index(ts, period).to_numpy()}).drop_duplicates()
    frame = frame.sort_values([USER_ID, "p"], kind="stable", ignore_index=True)
    end_p = int(_period_index(pd.Series([end]), period).iloc[0])
    users = frame.groupby(USER_ID, sort=True)["p"]
    first = users.transform("min")
    frame["active"] = (frame["p"] - first).astype("int64")
    gap = frame.groupby(USER_ID, sort=True)["active"].diff().fillna(0).astype("int64")
    out = pd.DataFrame({"active": frame.groupby(USER_ID, sort=True)["active"].agg(tuple),
                        "n_active": users.size(), "T": end_p - users.min(),
                        "longest_gap": gap.groupby(frame[USER_ID], sort=True).max()})
    out.index.name = USER_ID
    return out


@dataclass(frozen=True)
class GapCheck:
    """Result of :func:`gap_check`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per statistic (index ``statistic``): the share of gaps in each
        length bin, and ``heavy users returning after a long pause`` (a count).
        Columns ``observed``, the replicates' ``mean``, ``ci_lower``,
        ``ci_upper`` and the two-sided predictive ``p_value``. A statistic that
        cannot occur in histories as short as the data's (a gap longer than
        the longest history, a heavy return that needs more periods, the share
        of the only gap length possible) stays in the table, with a p-value of
        1, but is not tested; ``table.attrs["untested"]`` lists such statistics.
    ci_prob : float
        Probability of the intervals.
    cannot_reproduce : bool
        Some tested statistic is outside what the model produces at the
        family-wise level ``ci_prob`` (Bonferroni over the tested statistics).
    message : str
        One sentence saying so, naming the worst statistic, and the statistics
        left out of the verdict, if any.
    """

    table: pd.DataFrame
    ci_prob: float
    cannot_reproduce: bool
    message: str

    def _repr_html_(self) -> str:
        return _html.card("GapCheck", _html.verdict_badge("fail" if self.cannot_reproduce
                                                          else "pass"),
                          f"<p>{html.escape(self.message)}</p>", _html.frame_html(self.table))


def _possible(edges: tuple[int, ...], span: int, heavy: int, long: int) -> np.ndarray:
    """Which statistics can differ between populations whose longest history is ``span``.

    ``span``: the most periods a user is observed after their first, so no gap is
    longer. A gap bin can occur if its lower edge is at most ``span``; the shares
    tell something only if two bins can (with one, its share is 1 by construction).
    A heavy return needs ``max(heavy, 2)`` active periods, one gap of ``long`` and
    the others of 1: ``max(heavy, 2) - 2 + long`` periods after the first.
    Returns booleans, bins then the returns, as the statistics.
    """
    bins = np.asarray(edges) <= span
    if bins.sum() < 2:
        bins[:] = False
    return np.append(bins, max(heavy, 2) - 2 + long <= span)


def _min_replicates(threshold: float) -> int:
    """Count the fewest replicates whose smallest p-value, 2 / (n + 1), is below threshold."""
    n = max(1, int(np.floor(2 / threshold)) - 2)
    while not 2 / (n + 1) < threshold:
        n += 1
    while n > 1 and 2 / n < threshold:
        n -= 1
    return n


def _bgnbd_draws(model: Any, users: pd.Index, n_draws: int, rng: np.random.Generator
                 ) -> np.ndarray:
    """Pick ``n_draws`` posterior draws of each user's (r, alpha, a, b), shape (draws, users, 4).

    Without replacement while the posterior has enough draws; a segmented model gives
    each user their segment's parameters (the users must be in the model's data).
    """
    post = model.idata_["posterior"]
    names = [f"{p}_segment" for p in PARAMETERS] if model.segment else list(PARAMETERS)
    flat = np.stack([post[n].stack(sample=("chain", "draw")).transpose("sample", ...).values
                     for n in names], axis=-1)  # (S, 4) or (S, segments, 4)
    pick = rng.choice(len(flat), size=n_draws, replace=len(flat) < n_draws)
    if not model.segment:
        return flat[np.sort(pick)][:, None, :]
    known = model.data_.index.get_indexer(users)
    if (known < 0).any():
        raise ValueError(f"gap_check: {int((known < 0).sum())} user(s) of events are not in the "
                         f"model's data, e.g. {users[known < 0][0]!r}; fit the model on the "
                         "activity of these events.")
    labels = pd.Index(post[names[0]]["segment"].values)
    codes = labels.get_indexer(model.data_[model.segment].to_numpy()[known])
    return flat[np.sort(pick)][:, codes, :]


def _gap_statistics(active: np.ndarray, edges: tuple[int, ...], heavy: int, long: int
                    ) -> np.ndarray:
    """Share of gaps per bin and the count of heavy users with a long gap, per replicate.

    ``active``: (replicates, users, periods) booleans. Returns (replicates, bins + 1).
    """
    rep, user, t = np.nonzero(active)
    return _point_statistics(rep, user, t, active.shape[:2], edges, heavy, long)


def _point_statistics(rep: np.ndarray, user: np.ndarray, t: np.ndarray, shape: tuple[int, int],
                      edges: tuple[int, ...], heavy: int, long: int) -> np.ndarray:
    """:func:`_gap_statistics` of active periods given as points sorted by (rep, user, t)."""
    n_rep = shape[0]
    same = (rep[1:] == rep[:-1]) & (user[1:] == user[:-1])
    gaps, g_rep, g_user = (t[1:] - t[:-1])[same], rep[1:][same], user[1:][same]
    bins = np.searchsorted(np.asarray(edges), gaps, side="right") - 1
    counts = np.zeros((n_rep, len(edges)))
    np.add.at(counts, (g_rep, bins), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n_active = np.zeros(shape)
    np.add.at(n_active, (rep, user), 1)
    longest = np.zeros(shape)
    np.maximum.at(longest, (g_rep, g_user), gaps)
    returners = ((n_active >= heavy) & (longest >= long)).sum(axis=1)
    return np.column_stack([shares, returners])


def _replicate_bgnbd(params: np.ndarray, T: np.ndarray, edges: tuple[int, ...], heavy: int,
                     long: int, rng: np.random.Generator) -> np.ndarray:
    """Gap statistics of populations replicated from BG/NBD draws, shape (draws, bins + 1).

    Each replicated user starts with a transaction at time 0 and is observed to ``T``;
    while alive, the next transaction comes after an Exp(lambda) time, and after each
    repeat transaction the user drops out with probability p (never right after the
    first, as in the BG/NBD likelihood): the model's own continuous-time story. The
    transactions are then seen as the log is: a period with one or more is an active
    period, and the gaps are between active periods.
    """
    r, alpha, a, b = (params[..., k] for k in range(4))
    shape = (len(params), T.size)
    lam = rng.gamma(r, 1.0 / alpha, size=shape)
    p = rng.beta(a, b, size=shape)
    edges_ = np.asarray(edges)
    counts = np.zeros((shape[0], len(edges)))
    n_active = np.ones(shape)
    longest = np.zeros(shape)
    t = np.zeros(shape)
    last = np.zeros(shape)  # the last active period
    alive = np.ones(shape, dtype=bool)  # no dropout before the first repeat transaction
    rows = np.broadcast_to(np.arange(shape[0])[:, None], shape)
    while alive.any():
        t = t + rng.exponential(1.0, size=shape) / lam
        on = alive & (t <= T)
        period = np.floor(t)
        new = on & (period > last)  # a transaction in a new period: a gap ends
        gap = period - last
        bins = np.searchsorted(edges_, gap[new], side="right") - 1
        np.add.at(counts, (rows[new], bins), 1)
        n_active += new
        longest = np.where(new, np.maximum(longest, gap), longest)
        last = np.where(new, period, last)
        alive = on & (rng.uniform(size=shape) >= p)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    returners = ((n_active >= heavy) & (longest >= long)).sum(axis=1)
    return np.column_stack([shares, returners])


def _engagement_observed(model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Periods observed per user and the active periods (user, period from its first)."""
    codes = model._codes(model.data_)
    missing = model.period_length + 1
    start = first_periods(codes, missing)
    user, t = np.nonzero((codes > 0) & (codes != missing))
    return codes.shape[1] - start, user, t - start[user]


def _replicate_engagement(model: Any, lengths: np.ndarray, n_draws: int, edges: tuple[int, ...],
                          heavy: int, long: int, rng: np.random.Generator) -> np.ndarray:
    """Gap statistics of populations replicated from an engagement-state model's draws.

    Each replicated user's history runs for as many periods as the real one's,
    from a state drawn from the initial distribution through the user's own
    transition matrices (its segment, covariates); with user effects its effect
    (node) is drawn from the population, not from its posterior. A model fitted
    with ``starts_active`` replicates users whose first period is active, as in
    its table: the node with probability proportional to its weight times its
    chance of an active first period, then the first period given it.
    """
    post = model.idata_["posterior"]
    arrays = draw_arrays(post, model._var_names())
    n_total = next(iter(arrays.values())).shape[0]
    pick = np.sort(rng.choice(n_total, size=n_draws, replace=n_total < n_draws))
    labels = list(post["segment"].values) if model.segment else None
    group, design = model._groups(model.data_, labels)
    n_users = len(lengths)
    first_active = model._first_active(model.data_)
    chunk = max(1, _MAX_CELLS // (n_users * max(int(lengths.max(initial=1)), 1)))
    out = []
    for i in range(0, n_draws, chunk):
        params = model._space.params({k: v[pick[i:i + chunk]] for k, v in arrays.items()},
                                     design)
        trans = model._space.transitions_for(params, group)  # (D, Q_t, [U,] C, C)
        emission = params["emission"]  # (D, Q, V, C)
        if emission.shape[1] == 1:
            emission, trans = emission[:, 0], trans[:, 0]
        elif not first_active:  # each user's effect from the population, by the nodes' weights
            weights = np.exp(params["log_nodes"] - np.max(params["log_nodes"]))
            node = rng.choice(len(weights), size=(emission.shape[0], n_users),
                              p=weights / weights.sum())
            emission, trans = _hmm.at_nodes(emission, trans, node)
        else:  # ... among the users whose first period is active: by weight x P(active)
            reach = np.einsum("dc,dqc->dq", params["initial"], 1.0 - emission[:, :, 0, :])
            weights = np.exp(params["log_nodes"] - np.max(params["log_nodes"]))[None] * reach
            node = _hmm._draw_categorical(
                np.broadcast_to(weights[:, None, :], (len(weights), n_users, weights.shape[1])),
                rng)
            emission, trans = _hmm.at_nodes(emission, trans, node)
        active = _hmm.sample_history_active(params["initial"], emission, trans,
                                            model.period_length, lengths, rng,
                                            first_active=first_active)
        out.append(_gap_statistics(active, edges, heavy, long))
    return np.concatenate(out)


def gap_check(model: Any, events: pd.DataFrame | None = None, *, period: str | None = None,
              observation_end: Any = None, heavy: int | None = None, long: int | None = None,
              n_replicates: int = 1000, ci_prob: float = 0.95,
              random_seed: int | np.random.Generator | None = None) -> GapCheck:
    r"""Check whether a fitted model can produce the pauses its users took.

    Parameters
    ----------
    model : BetaGeoModel or EngagementStateModel
        A fitted model. A :class:`~models.churn.BetaGeoModel` of the activity
        of ``events`` in ``period`` (the same period as its data); with a
        segment, each user is replicated with their segment's parameters. An
        :class:`~models.churn.EngagementStateModel` is checked on its own
        activity table (its periods; leave ``events``, ``period`` and
        ``observation_end`` out), each user replicated with its own segment and
        covariates.
    events : pandas.DataFrame, optional
        The log the BG/NBD model was fitted on (``user_id``, ``timestamp``).
    period : {"D", "W", "M"}, optional
        Period of activity, as in the BG/NBD model's data; ``"D"`` by default.
    observation_end : timestamp-like, optional
        End of that log (default: its last timestamp).
    heavy, long : int, optional
        The statistic of returns: users with at least ``heavy`` active periods
        and a gap of at least ``long`` periods between two of them. By default
        20 and 31 for BG/NBD (days: 20 active days, a month's silence), and for
        an engagement model 10 and the periods of about a month
        (``ceil(31 / period_length)``, 5 for weeks). A heavy return needs
        ``max(heavy, 2) - 2 + long`` periods after a user's first: when no
        history is that long (for BG/NBD, from the first period of the log to
        its end; for an engagement model, its longest user history), the
        statistic cannot occur and is left out of the verdict, as is a gap bin
        whose shortest gap is longer than any history (and the shares, when one
        bin holds every possible gap); a
        :class:`~models.exceptions.DataQualityWarning` and the message say so.
    n_replicates : int, default 1000
        Replicated populations, each from one posterior draw (drawn without
        replacement while the posterior has enough). The smallest p-value is
        ``2 / (n_replicates + 1)``; it must be below the verdict's threshold,
        ``(1 - ci_prob) / m`` with ``m`` the statistics tested (5 when all can
        occur), or no statistic could fail and the check refuses: at least 200
        replicates with ``ci_prob=0.95`` and 5 statistics. The default passes
        up to ``ci_prob=0.99``; keep the smallest p-value well below the
        threshold for a check with power.
    ci_prob : float, default 0.95
        Probability of the replicates' intervals and family-wise level of the
        verdict (Bonferroni over the statistics tested).
    random_seed : int or numpy.random.Generator, optional
        Seed of the draws and replicates.

    Returns
    -------
    GapCheck

    Raises
    ------
    NotFittedError
        Before the model is fitted.
    ValueError
        For a model other than those two, users of ``events`` missing from a
        segmented model's data, bad options, a bad log (see
        :func:`observed_gaps`), or a log given with an engagement model; when
        ``n_replicates`` is too small for any statistic to fail (the message
        gives the smallest p-value, the threshold and the fewest replicates that
        can reach it); :class:`~models.churn.HistoryTooShortError` (a ``ValueError``) when
        the history is too short for any statistic to occur (at most one gap
        length, and no heavy return with this ``heavy`` and ``long``).

    Warns
    -----
    DataQualityWarning
        When some statistics cannot occur in histories this short and are
        left out of the verdict.

    Notes
    -----
    The replicated process is BG/NBD's own: from a transaction at time 0, while
    the user is alive the next comes after an exponential time of rate
    :math:`\lambda`, and after each the user drops out with probability :math:`p`, with
    :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)`, :math:`p \sim
    \mathrm{Beta}(a, b)` and :math:`(r, \alpha, a, b)` a posterior draw. In that
    story a heavy listener's gaps are short, so many heavy listeners with a long
    pause say that silence was a pause the model cannot represent.

    An engagement model's replicates run its hidden Markov chain over each
    user's periods, from a state drawn from the initial distribution, with the
    active days of each period drawn from its state's emission; with user
    effects, each replicated user's effect is drawn from the population.
    """
    from models.churn.beta_geo import BetaGeoModel
    from models.churn.engagement import EngagementStateModel

    hmm = isinstance(model, EngagementStateModel)
    if not (hmm or isinstance(model, BetaGeoModel)):
        raise ValueError("gap_check replicates a BetaGeoModel or an EngagementStateModel. Got "
                         f"{type(model).__name__} instead.")
    if hmm and (events is not None or period is not None or observation_end is not None):
        raise ValueError("gap_check checks an EngagementStateModel on its own activity table: "
                         "leave events, period and observation_end out.")
    if not hmm and events is None:
        raise ValueError("gap_check needs the events a BetaGeoModel was fitted on.")
    model._require_fitted("gap_check")
    if heavy is None:
        heavy = 10 if hmm else 20
    if long is None:
        long = int(np.ceil(31 / model.period_length)) if hmm else 31
    ci_prob = check_ci_prob("gap_check", ci_prob)
    if not (isinstance(n_replicates, int | np.integer) and not isinstance(n_replicates, bool)
            and n_replicates >= 1):
        raise ValueError("The 'n_replicates' parameter of gap_check must be a positive integer. "
                         f"Got {n_replicates!r} instead.")
    for name, value in (("heavy", heavy), ("long", long)):
        if not (isinstance(value, int | np.integer) and not isinstance(value, bool)
                and value >= 1):
            raise ValueError(f"The '{name}' parameter of gap_check must be a positive integer. "
                             f"Got {value!r} instead.")
    rng = np.random.default_rng(resolve_seed(random_seed))
    edges = GAP_EDGES
    if hmm:
        lengths, user, points = _engagement_observed(model)
        n_users = len(lengths)
    else:
        obs = observed_gaps(events, period="D" if period is None else period,
                            observation_end=observation_end)
        T = obs["T"].to_numpy(dtype=np.int64)
        points = np.concatenate([np.asarray(a, dtype=np.int64) for a in obs["active"]])
        user = np.repeat(np.arange(len(obs)), obs["n_active"].to_numpy())
        n_users = len(obs)
    stat_obs = _point_statistics(np.zeros_like(user), user, points, (1, n_users), edges, heavy,
                                 long)[0]
    names = [f"share of gaps of {label} {'period' if label == '1' else 'periods'}"
             for label in _labels(edges)]
    names.append(f"heavy users (>= {heavy} active) returning after >= {long} silent")
    # no gap is longer than the longest history: statistics that cannot occur are not tested
    span = int(lengths.max(initial=1)) - 1 if hmm else int(T.max(initial=0))
    need = max(heavy, 2) - 2 + long
    tested = _possible(edges, span, heavy, long)
    if not tested.any():
        raise HistoryTooShortError(
            f"gap_check: the history is too short for heavy={heavy} and long={long}: the "
            f"longest user history runs {span} period(s) after its first, so at most one gap "
            f"length can occur, and a heavy return (>= {heavy} active periods, a gap of >= "
            f"{long}) needs {need}. Nothing is left to test: use a longer history or a "
            "smaller heavy and long.")
    # rounded, so that 1 - 0.95 is 0.05: (1 - ci_prob) / 5 = 0.01 needs 200 replicates, not 199
    threshold = round((1 - ci_prob) / int(tested.sum()), 12)
    if not 2 / (n_replicates + 1) < threshold:
        raise ValueError(
            f"The 'n_replicates' parameter of gap_check is too small: with {n_replicates} "
            f"replicates the smallest p-value is 2 / ({n_replicates} + 1) = "
            f"{2 / (n_replicates + 1):.3g}, not below the verdict's threshold {threshold:.3g} "
            f"((1 - ci_prob) / {int(tested.sum())} statistics tested), so no statistic could "
            f"fail. Use n_replicates >= {_min_replicates(threshold)}.")
    untested = [name for name, ok in zip(names, tested, strict=True) if not ok]
    note = ""
    if untested:
        why = []
        if not tested[:-1].all():
            why.append(f"no gap is longer than {span}" if tested[:-1].any() else
                       "every gap falls in one bin, whose share is 1")
        if not tested[-1]:
            why.append(f"a heavy return needs {need} periods after the first")
        note = (f" Not tested, as they cannot occur when the longest user history runs {span} "
                f"period(s) after its first ({'; '.join(why)}): {'; '.join(untested)}.")
        warnings.warn(DataQualityWarning(f"gap_check: {note.strip()}"), stacklevel=2)
    if hmm:
        replicated = _replicate_engagement(model, lengths, n_replicates, edges, heavy, long, rng)
    else:
        params = _bgnbd_draws(model, obs.index, n_replicates, rng)
        chunk = max(1, _MAX_CELLS // T.size)  # replicated populations per block, memory bounded
        replicated = np.concatenate([
            _replicate_bgnbd(params[i:i + chunk], T, edges, heavy, long, rng)
            for i in range(0, len(params), chunk)])
    q = [(1 - ci_prob) / 2, (1 + ci_prob) / 2]
    rows = []
    for j, name in enumerate(names):
        rep, o = replicated[:, j], stat_obs[j]
        tail = min((rep <= o).sum(), (rep >= o).sum())
        lo, hi = np.quantile(rep, q)
        rows.append({"statistic": name, "observed": o, "mean": rep.mean(), "ci_lower": lo,
                     "ci_upper": hi, "p_value": min(1.0, 2 * (tail + 1) / (rep.size + 1))})
    table = pd.DataFrame(rows).set_index("statistic")
    table.attrs["ci_prob"] = ci_prob
    table.attrs["untested"] = untested
    # the smallest p-value of the tested statistics; among ties (at the Monte Carlo floor)
    # the farthest from the mean
    spread = (replicated.std(axis=0) + 1e-12)
    distance = np.abs(table["observed"].to_numpy() - table["mean"].to_numpy()) / spread
    rank = np.lexsort((-distance, table["p_value"].to_numpy(), ~tested))
    worst = table.iloc[int(rank[0])]
    bad = bool(worst["p_value"] < threshold)
    where = (f"{worst.name}: observed {worst['observed']:.3g}, replicates {worst['mean']:.3g} "
             f"[{worst['ci_lower']:.3g}, {worst['ci_upper']:.3g}]")
    # long silences followed by a return, more than the model produces: pauses
    long_rows = [i for i, lo in enumerate(edges) if lo >= long] + [len(table) - 1]
    pauses = [table.index[i] for i in long_rows
              if tested[i] and table.iloc[i]["p_value"] < threshold
              and table.iloc[i]["observed"] > table.iloc[i]["ci_upper"]]
    if not bad:
        message = f"The replicated gaps are consistent with the log (worst: {where})."
    elif pauses:
        message = (f"The model cannot reproduce the gaps between active periods: {where} "
                   f"(p = {worst['p_value']:.2g}). More users fall silent for long and come "
                   f"back than it allows ({'; '.join(pauses)}): silence was often a pause, so "
                   + ("its forecasts of their return" if hmm else
                      "its P(alive) and holdout predictions") + " will be too low for them.")
    else:
        message = (f"The model cannot reproduce the gaps between active periods: {where} "
                   f"(p = {worst['p_value']:.2g}): the users' activity is spread over time "
                   + ("unlike the model's states and transitions." if hmm else
                      "unlike a constant rate with one dropout."))
    return GapCheck(table, ci_prob, bad, message + note)
