r"""Numpy kernels of the engagement-state hidden Markov model, vectorised over draws and users.

:class:`~models.churn.engagement.EngagementStateModel` fits with a PyTensor
version of :func:`forward`; its pointwise log-likelihood, filtered states,
predictions and predictive draws use these functions on blocks of users. Every
function takes parameter draws with a leading draw axis ``D``:

- ``emission``: ``(D, n + 2, C)``, the probability of each observed value
  ``0..n`` in each state, and a last row of ones for a period that is not
  observed (before the user's first period); with a user effect integrated
  out over ``Q`` nodes, ``(D, Q, n + 2, C)`` (:func:`forward_nodes`,
  :func:`mix_nodes`), and the samplers take one table per user,
  ``(D, U, n + 2, C)``;
- ``initial``: ``(D, C)``; ``transition``: ``(D, C, C)`` or, per user,
  ``(D, U, C, C)``; the node functions take a node axis after the draws,
  ``(D, Q_t, C, C)`` or ``(D, Q_t, U, C, C)``, with ``Q_t = Q`` when the
  effect moves the transitions too and ``Q_t = 1`` when they are shared;
- observations ``y``: ``(U, T)`` integer codes ``0..n + 1`` and ``start``: ``(U,)``,
  the first observed period of each user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numba
import numpy as np
from scipy import special

__all__ = [
    "NodeFilter",
    "draw_nodes",
    "emission_table",
    "expected_future_activity",
    "forward",
    "forward_nodes",
    "mix_nodes",
    "partial_period_zero",
    "probability_no_activity",
    "sample_future_activity",
    "sample_history_totals",
]


def emission_table(p: np.ndarray, kappa: np.ndarray | None, n: int, churned: bool) -> np.ndarray:
    r"""Probabilities of ``0..n`` active days per state, plus a row of ones (missing).

    Beta-binomial with mean :math:`p_k` and concentration :math:`\kappa_k`
    (binomial when ``kappa`` is None); an absorbing churned state, last, emits 0.

    Parameters
    ----------
    p, kappa : numpy.ndarray
        ``(D, K)`` emission means and concentrations.
    n : int
        Days per period.
    churned : bool
        Add the churned state's column.

    Returns
    -------
    numpy.ndarray
        ``(D, n + 2, C)`` with ``C = K + churned``.
    """
    y = np.arange(n + 1, dtype=float)[None, :, None]
    p = np.asarray(p, dtype=float)[:, None, :]
    log_choose = (special.gammaln(n + 1.0) - special.gammaln(y + 1.0)
                  - special.gammaln(n - y + 1.0))
    if kappa is None:
        with np.errstate(divide="ignore"):
            log_pmf = log_choose + special.xlogy(y, p) + special.xlog1py(n - y, -p)
    else:
        kappa = np.asarray(kappa, dtype=float)[:, None, :]
        a, b = p * kappa, (1.0 - p) * kappa
        log_pmf = log_choose + special.betaln(y + a, n - y + b) - special.betaln(a, b)
    pmf = np.exp(log_pmf)
    table = np.concatenate([pmf, np.ones((pmf.shape[0], 1, pmf.shape[2]))], axis=1)
    if churned:
        dead = np.zeros((table.shape[0], n + 2, 1))
        dead[:, 0] = dead[:, -1] = 1.0
        table = np.concatenate([table, dead], axis=2)
    return table


def _per_user(transition: np.ndarray) -> np.ndarray:
    """Transitions ``(D, C, C)`` (shared by the users) or ``(D, U, C, C)`` as 4-d, contiguous."""
    transition = np.asarray(transition, dtype=float)
    if transition.ndim == 3:
        transition = transition[:, None]
    return np.ascontiguousarray(transition)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _forward_kernel(y, start, emission, initial, transition):  # pragma: no cover - compiled
    """Scaled forward pass of :func:`forward`, one draw and user at a time (draws in parallel)."""
    n_draws = emission.shape[0]
    n_users, n_periods = y.shape
    c = initial.shape[1]
    shared = transition.shape[1] == 1
    loglik = np.zeros((n_draws, n_users))
    filtered = np.empty((n_draws, n_users, c))
    for d in numba.prange(n_draws):
        a = np.empty(c)
        new = np.empty(c)
        for u in range(n_users):
            p = transition[d, 0 if shared else u]
            for k in range(c):
                a[k] = initial[d, k]
            ll = 0.0
            s = start[u]
            for t in range(s, n_periods):
                e = emission[d, y[u, t]]
                if t == s:
                    for k in range(c):
                        new[k] = initial[d, k] * e[k]
                else:
                    for k in range(c):
                        acc = 0.0
                        for j in range(c):
                            acc += a[j] * p[j, k]
                        new[k] = acc * e[k]
                tot = 0.0
                for k in range(c):
                    tot += new[k]
                ll += np.log(tot)
                for k in range(c):
                    a[k] = new[k] / tot
            loglik[d, u] = ll
            for k in range(c):
                filtered[d, u, k] = a[k]
    return loglik, filtered


def forward(y: np.ndarray, start: np.ndarray, emission: np.ndarray, initial: np.ndarray,
            transition: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Scaled forward algorithm: each user's log-likelihood and filtered state at the end.

    :math:`a_t \propto (a_{t-1} P)\odot e(y_t)`, normalised at every period with
    the normalising constants :math:`c_t`, so :math:`\log L = \sum_t \log c_t`.
    Before a user's first observed period the state distribution stays at
    ``initial``; at it, :math:`a \propto \pi \odot e(y_{\text{start}})`.

    Returns
    -------
    loglik : numpy.ndarray
        ``(D, U)``.
    filtered : numpy.ndarray
        ``(D, U, C)``, :math:`P(s_T = k \mid y_{1..T})`.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return _forward_kernel(np.ascontiguousarray(y, dtype=np.int64),
                               np.ascontiguousarray(start, dtype=np.int64),
                               np.ascontiguousarray(emission, dtype=float),
                               np.ascontiguousarray(initial, dtype=float), _per_user(transition))


class NodeFilter(NamedTuple):
    """Forward algorithm at each node of a user effect (:func:`forward_nodes`)."""

    loglik: np.ndarray  #: ``(D, U)`` log-likelihood, the effect integrated out
    weights: np.ndarray  #: ``(D, Q, U)`` posterior probability of each node
    filtered: np.ndarray  #: ``(D, Q, U, C)`` filtered state at each node


def _flat(x: np.ndarray) -> np.ndarray:
    """Merge the draw and node axes."""
    return x.reshape(-1, *x.shape[2:])


def forward_nodes(y: np.ndarray, start: np.ndarray, emission: np.ndarray, initial: np.ndarray,
                  transition: np.ndarray, log_nodes: np.ndarray) -> NodeFilter:
    r"""Forward algorithm with a user effect integrated out over nodes.

    ``emission`` ``(D, Q, n + 2, C)`` is the table at each node of the effect
    and ``log_nodes`` ``(Q,)`` the log-probabilities of the nodes. A user's
    likelihood is :math:`\sum_q \omega_q L_q` and the posterior probability of
    node :math:`q` given the history :math:`\omega_q L_q / \sum_{q'}
    \omega_{q'} L_{q'}`.
    """
    n_draws, n_nodes = emission.shape[:2]
    loglik, filtered = forward(y, start, _flat(emission), np.repeat(initial, n_nodes, axis=0),
                               _node_transitions(transition, n_nodes))
    loglik = loglik.reshape(n_draws, n_nodes, -1) + np.asarray(log_nodes)[None, :, None]
    total = special.logsumexp(loglik, axis=1)
    with np.errstate(invalid="ignore"):
        weights = np.nan_to_num(np.exp(loglik - total[:, None]))
    return NodeFilter(total, weights, filtered.reshape(n_draws, n_nodes, *filtered.shape[1:]))


def mix_nodes(func: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
              emission: np.ndarray, nodes: NodeFilter, transition: np.ndarray) -> np.ndarray:
    """Average ``func(emission, filtered, transition) -> (D, U)`` over each user's nodes.

    ``func`` runs on the draws and nodes merged into one leading axis; the
    result is weighted by the nodes' posterior probabilities, ``(D, U)``.
    """
    n_draws, n_nodes = emission.shape[:2]
    values = func(_flat(emission), _flat(nodes.filtered),
                  _node_transitions(transition, n_nodes))
    return (values.reshape(n_draws, n_nodes, -1) * nodes.weights).sum(axis=1)


def _node_transitions(transition: np.ndarray, n_nodes: int) -> np.ndarray:
    """Transitions ``(D, Q_t, ...)`` as ``(D * Q, ...)``, draws major, like :func:`_flat`."""
    if transition.shape[1] == 1:
        return np.repeat(transition[:, 0], n_nodes, axis=0)
    return _flat(transition)


def draw_nodes(emission: np.ndarray, nodes: NodeFilter, transition: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw each user's node from its posterior: the user's table, filtered state, transitions.

    Returns ``(D, U, n + 2, C)`` tables, ``(D, U, C)`` filtered states and
    ``(D, U, C, C)`` transitions (node-dependent ones at the drawn node); with
    one node, the draws' common ``(D, n + 2, C)`` table, the transitions without
    their node axis, and no random numbers drawn.
    """
    if emission.shape[1] == 1:
        return emission[:, 0], nodes.filtered[:, 0], transition[:, 0]
    node = _draw_categorical(np.moveaxis(nodes.weights, 1, 2), rng)  # (D, U)
    table, trans = at_nodes(emission, transition, node)
    d_idx = np.arange(node.shape[0])[:, None]
    return table, nodes.filtered[d_idx, node, np.arange(node.shape[1])[None, :]], trans


def at_nodes(emission: np.ndarray, transition: np.ndarray,
             node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each user's emission table ``(D, U, n + 2, C)`` and transitions at its node ``(D, U)``.

    ``transition`` ``(D, Q_t, C, C)`` or ``(D, Q_t, U, C, C)``; with ``Q_t = 1``
    (transitions that do not depend on the node) it loses its node axis only.
    """
    d_idx = np.arange(node.shape[0])[:, None]
    if transition.shape[1] == 1:
        trans = transition[:, 0]
    elif transition.ndim == 4:  # (D, Q, C, C)
        trans = transition[d_idx, node]
    else:  # (D, Q, U, C, C)
        trans = transition[d_idx, node, np.arange(node.shape[1])[None, :]]
    return emission[d_idx, node], trans


def partial_period_zero(emission: np.ndarray, n: int, days: int) -> np.ndarray:
    r"""P(no activity on the first ``days`` of a period | state), ``(D, C)``.

    Days within a period are exchangeable, so given :math:`y` active days of
    :math:`n`, none of the first :math:`r` is active with probability
    :math:`\binom{n-y}{r}/\binom{n}{r}`.
    """
    y = np.arange(n + 1)
    weight = special.comb(n - y, days) / special.comb(n, days)
    return np.einsum("dyc,y->dc", emission[:, : n + 1], weight)


def probability_no_activity(filtered: np.ndarray, emission: np.ndarray, transition: np.ndarray,
                            n: int, periods: int, days: int) -> np.ndarray:
    """P(no active day in the next ``periods`` periods and ``days`` days), ``(D, U)``."""
    zero = np.ascontiguousarray(emission[:, 0], dtype=float)
    last = partial_period_zero(emission, n, days) if days else zero
    return _projection(periods)(np.ascontiguousarray(filtered, dtype=float),
                                _per_user(transition), zero,
                                np.ascontiguousarray(last, dtype=float), periods, bool(days),
                                False)


def expected_future_activity(filtered: np.ndarray, emission: np.ndarray,
                             transition: np.ndarray, n: int, periods: int,
                             days: int) -> np.ndarray:
    """Return the expected active days in the next ``periods`` periods and ``days`` days."""
    mean = np.einsum("dyc,y->dc", emission[:, : n + 1], np.arange(n + 1.0))
    return _projection(periods)(np.ascontiguousarray(filtered, dtype=float),
                                _per_user(transition), np.ascontiguousarray(mean),
                                mean * (days / n), periods, bool(days), True)


#: Horizons of more whole periods than this are projected by repeated squaring
#: (:func:`_project_long`), in time logarithmic in the horizon.
STEPWISE_MAX_PERIODS = 64


def _projection(periods: int) -> Callable:
    """Return the period-by-period projection for short horizons, repeated squaring for long."""
    return _project if periods <= STEPWISE_MAX_PERIODS else _project_long


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _project(filtered, transition, weight, last, periods, partial,
             expect):  # pragma: no cover - compiled
    """Run each user's state distribution ``periods`` periods (and a partial one) forward.

    ``weight`` and ``last`` are ``(D, C)`` per-state values of a whole and of
    the partial period. ``expect=False``: the distribution is multiplied by
    them after every step (P(no activity) per state) and its sum returned;
    ``expect=True``: the sum over the steps of the distribution's dot product
    with them (expected active days).
    """
    n_draws, n_users, c = filtered.shape
    shared = transition.shape[1] == 1
    out = np.zeros((n_draws, n_users))
    for d in numba.prange(n_draws):  # draws on the CPUs
        v = np.empty(c)
        new = np.empty(c)
        for u in range(n_users):
            p = transition[d, 0 if shared else u]
            for k in range(c):
                v[k] = filtered[d, u, k]
            total = 0.0
            for step in range(periods + (1 if partial else 0)):
                w = weight[d] if step < periods else last[d]
                for k in range(c):
                    acc = 0.0
                    for j in range(c):
                        acc += v[j] * p[j, k]
                    new[k] = acc
                for k in range(c):
                    if expect:
                        total += new[k] * w[k]
                        v[k] = new[k]
                    else:
                        v[k] = new[k] * w[k]
            if not expect:
                for k in range(c):
                    total += v[k]
            out[d, u] = total
    return out


@numba.njit(cache=True, error_model="numpy")
def _power_and_sum(a, periods):  # pragma: no cover - compiled
    """Return ``(A^n, A + A^2 + ... + A^n)`` for ``n = periods``, by repeated squaring."""
    c = a.shape[0]
    r_pow = np.eye(c)
    r_sum = np.zeros((c, c))
    b_pow = a.copy()
    b_sum = a.copy()
    n = periods
    while n > 0:
        if n & 1:  # join the counts r and b: S_{r+b} = S_r + A^r S_b, A^{r+b} = A^r A^b
            r_sum = r_sum + r_pow @ b_sum
            r_pow = r_pow @ b_pow
        n >>= 1
        if n:
            b_sum = b_sum + b_pow @ b_sum
            b_pow = b_pow @ b_pow
    return r_pow, r_sum


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _project_long(filtered, transition, weight, last, periods, partial,
                  expect):  # pragma: no cover - compiled
    r""":func:`_project` by repeated squaring of each draw's (or user's) matrix.

    ``expect=False``: :math:`f (P W)^h` then the partial period, with
    :math:`W = \mathrm{diag}(w)`; ``expect=True``: :math:`f (\sum_{s \le h} P^s) w`
    plus the partial period's :math:`f P^{h+1} l`. Each matrix costs
    :math:`O(C^3 \log h)`, against :math:`O(C^2 h)` per user step by step.
    """
    n_draws, n_users, c = filtered.shape
    shared = transition.shape[1] == 1
    out = np.zeros((n_draws, n_users))
    for d in numba.prange(n_draws):
        w = weight[d]
        for u in range(n_users):
            if u == 0 or not shared:
                p = np.ascontiguousarray(transition[d, 0 if shared else u])
                # the sum of powers of P (expected days), or the power of P diag(w)
                power, total_pow = _power_and_sum(p if expect else p * w.reshape(1, c), periods)
                after = power @ p  # one step more: into the partial period
            v = filtered[d, u]
            total = 0.0
            if expect:
                for k in range(c):
                    acc = 0.0
                    for j in range(c):
                        acc += v[j] * total_pow[j, k]
                    total += acc * w[k]
                if partial:
                    for k in range(c):
                        acc = 0.0
                        for j in range(c):
                            acc += v[j] * after[j, k]
                        total += acc * last[d, k]
            else:
                for k in range(c):
                    acc = 0.0
                    for j in range(c):
                        acc += v[j] * (after[j, k] * last[d, k] if partial else power[j, k])
                    total += acc
            out[d, u] = total
    return out


def _draw_categorical(prob: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row of ``prob`` (last axis), by inverting the cumulative sums."""
    cum = np.cumsum(prob, axis=-1)
    u = rng.random(prob.shape[:-1])[..., None] * cum[..., -1:]
    return np.minimum((u > cum).sum(axis=-1), prob.shape[-1] - 1)


def _days_pmf(emission: np.ndarray, n: int) -> Callable:
    """``pmf(d, u, state)``: the active days' probabilities, from one table per draw or per user."""
    if emission.ndim == 3:
        pmf = np.moveaxis(emission[:, : n + 1], 1, 2)  # (D, C, n+1)
        return lambda d, u, state: pmf[d, state]
    pmf_u = np.moveaxis(emission[:, :, : n + 1], 2, 3)  # (D, U, C, n+1)
    return lambda d, u, state: pmf_u[d, u, state]


def sample_future_activity(filtered: np.ndarray, emission: np.ndarray, transition: np.ndarray,
                           n: int, periods: int, days: int,
                           rng: np.random.Generator) -> np.ndarray:
    """Draw the active days of each user in the next ``periods`` periods and ``days`` days.

    The state now is drawn from ``filtered``, then the chain runs forward and
    each period's active days are drawn from its state's emission (``emission``
    per draw or, ``(D, U, n + 2, C)``, per user); of the last, partial period
    the active days among its first ``days`` are hypergeometric.

    Returns
    -------
    numpy.ndarray
        Int64 ``(D, U)``.
    """
    n_draws, n_users, _ = filtered.shape
    d_idx = np.arange(n_draws)[:, None]
    u_idx = np.arange(n_users)[None, :]
    state = _draw_categorical(filtered, rng)
    pmf = _days_pmf(emission, n)
    total = np.zeros((n_draws, n_users), dtype=np.int64)
    for step in range(periods + (1 if days else 0)):
        rows = (transition[d_idx, state] if transition.ndim == 3
                else transition[d_idx, u_idx, state])
        state = _draw_categorical(rows, rng)
        active = _draw_categorical(pmf(d_idx, u_idx, state), rng)
        if step == periods:  # the partial period
            active = rng.hypergeometric(active, n - active, days) if days < n else active
        total += active
    return total


def log_first_active(emission: np.ndarray, initial: np.ndarray,
                     log_nodes: np.ndarray) -> np.ndarray:
    r"""Log-probability that a user's first period is active, per draw, ``(D,)``.

    :math:`\log \sum_q \omega_q \sum_k \pi_k (1 - e_{qk}(0))` from the
    emission tables ``(D, Q, V, C)`` at the nodes of the user effect, their
    log-probabilities ``(Q,)`` and the initial distribution ``(D, C)``.
    """
    reach = np.einsum("dc,dqc->dq", initial, 1.0 - emission[:, :, 0, :])
    with np.errstate(divide="ignore"):
        return special.logsumexp(np.log(reach) + np.asarray(log_nodes)[None, :], axis=1)


def _history_steps(initial: np.ndarray, emission: np.ndarray, transition: np.ndarray, n: int,
                   n_users: int, n_steps: int, rng: np.random.Generator,
                   first_active: bool = False) -> Iterator[np.ndarray]:
    r"""Yield each period's active days ``(D, U)`` of histories drawn from their first period.

    The first period's state is drawn from ``initial``, each next from its row of
    ``transition``; ``emission`` per draw or per user, as in
    :func:`sample_future_activity`. With ``first_active`` the first period is
    drawn given that it is active: its state with probabilities proportional
    to :math:`\pi_k (1 - e_k(0))`, its active days from the emission without
    the zero.
    """
    n_draws = emission.shape[0]
    d_idx = np.arange(n_draws)[:, None]
    pmf = _days_pmf(emission, n)
    u_idx = np.arange(n_users)[None, :]
    start = np.broadcast_to(initial[:, None, :], (n_draws, n_users, initial.shape[-1]))
    if first_active:
        zero = emission[:, None, 0, :] if emission.ndim == 3 else emission[:, :, 0, :]
        start = start * (1.0 - zero)
    state = _draw_categorical(start, rng)
    days = pmf(d_idx, u_idx, state)
    if first_active:
        days = np.concatenate([np.zeros_like(days[..., :1]), days[..., 1:]], axis=-1)
    yield _draw_categorical(days, rng)
    for _ in range(1, n_steps):
        rows = (transition[d_idx, state] if transition.ndim == 3
                else transition[d_idx, u_idx, state])
        state = _draw_categorical(rows, rng)
        yield _draw_categorical(pmf(d_idx, u_idx, state), rng)


def sample_history_totals(initial: np.ndarray, emission: np.ndarray, transition: np.ndarray,
                          n: int, lengths: np.ndarray, rng: np.random.Generator,
                          first_active: bool = False) -> np.ndarray:
    """Draw each user's total active days over a history of ``lengths`` periods, ``(D, U)``.

    The first period's state is drawn from ``initial`` (given an active first
    period with ``first_active``, see :func:`_history_steps`); replicated
    training data for posterior predictive checks. ``emission`` per draw or
    per user, as in :func:`sample_future_activity`.
    """
    lengths = np.asarray(lengths)
    total = np.zeros((emission.shape[0], len(lengths)), dtype=np.int64)
    steps = _history_steps(initial, emission, transition, n, len(lengths),
                           max(int(np.max(lengths, initial=0)), 1), rng, first_active)
    for step, active in enumerate(steps):
        total += np.where(step < lengths[None, :], active, 0)
    return total


def sample_history_active(initial: np.ndarray, emission: np.ndarray, transition: np.ndarray,
                          n: int, lengths: np.ndarray, rng: np.random.Generator,
                          first_active: bool = False) -> np.ndarray:
    """Draw whether each user is active in each period of its history, ``(D, U, T)`` booleans.

    Period 0 is the user's first; periods at or after ``lengths`` are False. As
    :func:`sample_history_totals` otherwise: the same draws give the same histories.
    """
    lengths = np.asarray(lengths)
    n_steps = max(int(np.max(lengths, initial=0)), 1)
    out = np.zeros((emission.shape[0], len(lengths), n_steps), dtype=bool)
    steps = _history_steps(initial, emission, transition, n, len(lengths), n_steps, rng,
                           first_active)
    for step, active in enumerate(steps):
        out[:, :, step] = (active > 0) & (step < lengths[None, :])
    return out
