r"""Compiled log-likelihood and gradient of the engagement-state HMM on compressed rows.

:class:`HMMLogp` is the total log-likelihood of
:class:`~models.churn.EngagementStateModel`'s weighted unique histories with
its gradient, one PyTensor Op computed by one compiled (numba, cached on disk)
pass of the scaled forward-backward algorithm. Written in PyTensor, the
forward recursion unrolled over periods is a graph of hundreds of nodes that
takes minutes to compile; this Op compiles in seconds.

The pass takes the histories in blocks of users with close first periods and
keeps the users of a block in the innermost loops, so that the compiler
vectorises the recursions over users; each user of a block carries its own
transition matrix (its segment's, or with covariates its transition group's),
so many small groups still fill whole blocks; the forward variables of a
block stay in cache for the backward pass. Scale factors are multiplied over
a few periods before one logarithm is taken.

With user effects integrated out over ``Q`` nodes, a user's likelihood is the
mixture :math:`\sum_q \omega_q L_q` of the likelihoods under the emission
table of each node: the pass runs the forward algorithm once per node, and the
forward-backward pass of each node with the user's weight times the node's
posterior probability :math:`r_q = \omega_q L_q / \sum_{q'} \omega_{q'} L_{q'}`
(the gradient of the log of a mixture).

With normalised forward variables :math:`\hat a_t`, constants :math:`c_t`
(:math:`\log L = \sum_t \log c_t`), :math:`m_t = \hat a_{t-1} P` (:math:`\pi`
in the first period) and backward variables :math:`\hat b_T = 1`,
:math:`\hat b_{t-1}(j) = \sum_k P_{jk} e_t(k) \hat b_t(k) / c_t`:

.. math::

    \frac{\partial \log L}{\partial e_t(k)} = \frac{m_t(k)\,\hat b_t(k)}{c_t},\quad
    \frac{\partial \log L}{\partial P_{jk}} = \sum_{t > t_0}
        \frac{\hat a_{t-1}(j)\,e_t(k)\,\hat b_t(k)}{c_t},\quad
    \frac{\partial \log L}{\partial \pi_k} = \frac{e_{t_0}(k)\,\hat b_{t_0}(k)}{c_{t_0}}.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from models._compiled import source_salt

__all__ = ["HMMLogp", "hmm_kernel"]

_KERNEL_VERSION = source_salt(__file__)


_BLOCK = 128  # users per block: the block's forward variables stay in cache
_BLOCK_NODES = 16  # users per block with several nodes (the variables of every node are kept)
_LOG_EVERY = 4  # periods whose scale factors are multiplied before one logarithm
_BANKS = 8  # copies (a power of 2) of the emission gradient, for neighbouring users
_FAST = {"reassoc", "contract", "arcp", "nsz"}  # no "nnan"/"ninf": a zero scale stays -inf


@numba.njit(cache=True, error_model="numpy", fastmath=_FAST)
def _forward_pass(table, initial, p, shared, cb, start, weights, n, e_, m_, a_, inv_c,
                  ll):  # pragma: no cover - compiled
    """Forward pass over the ``n`` users of a block; the weighted value.

    ``cb`` ``(T, n)`` holds the block's codes period by period, ``p`` ``(C, C,
    n)`` its users' transition matrices (all equal to the first one when
    ``shared``), ``start`` and ``weights`` their first periods and weights:
    users are the innermost (vectorised) loops. Each user's log-likelihood is written to ``ll``; the
    forward variables stay in ``e_``, ``m_``, ``a_``, ``inv_c`` for
    :func:`_backward_pass`.
    """
    n_periods = cb.shape[0]
    c = initial.shape[0]
    t_lo = n_periods
    for i in range(n):
        t_lo = min(t_lo, start[i])
    total = 0.0
    prod = np.ones(n)
    for i in range(n):
        ll[i] = 0.0
    # forward: normalised a_t, m_t = a_{t-1} P (initial at and before the start), 1 / c_t
    for t in range(t_lo, n_periods):
        for k in range(c):
            for i in range(n):
                m_[t, k, i] = 0.0
        if t > t_lo:
            for j in range(c):
                for k in range(c):
                    if shared:  # one matrix: a scalar times a vector
                        pjk = p[j, k, 0]
                        for i in range(n):
                            m_[t, k, i] += pjk * a_[t - 1, j, i]
                    else:
                        for i in range(n):
                            m_[t, k, i] += p[j, k, i] * a_[t - 1, j, i]
        tot = inv_c[t]
        for i in range(n):
            tot[i] = 0.0
        for k in range(c):
            ik = initial[k]
            for i in range(n):
                m_[t, k, i] = m_[t, k, i] if t > start[i] else ik
            for i in range(n):
                e_[t, k, i] = table[cb[t, i], k]
            for i in range(n):
                v = m_[t, k, i] * e_[t, k, i]
                a_[t, k, i] = v
                tot[i] += v
        for i in range(n):
            s = tot[i]
            prod[i] *= s if t >= start[i] else 1.0
            tot[i] = 1.0 / s
        for k in range(c):
            for i in range(n):
                a_[t, k, i] *= tot[i]
        if (t - t_lo) % _LOG_EVERY == _LOG_EVERY - 1 or t == n_periods - 1:
            for i in range(n):
                lp = np.log(prod[i])
                ll[i] += lp
                total += weights[i] * lp
                prod[i] = 1.0
    return total


@numba.njit(cache=True, error_model="numpy", fastmath=_FAST)
def _backward_pass(p, shared, cb, start, weights, n, e_, m_, a_, inv_c, b, b_new, eb, g_table,
                   g_init, g_p):  # pragma: no cover - compiled
    """Backward pass after :func:`_forward_pass`, the gradients weighted by ``weights``.

    Gradients accumulate in ``g_table`` ``(banks, V, C)`` (user ``i`` in bank
    ``i % banks``), ``g_init`` and ``g_p`` ``(C, C, n)`` (per user).
    """
    n_periods = cb.shape[0]
    c = p.shape[0]
    t_lo = n_periods
    for i in range(n):
        t_lo = min(t_lo, start[i])
    wl = np.empty(n)  # the weight of the lanes past their start
    # backward: b_T = 1, b_{t-1}(j) = sum_k P_jk e_t(k) b_t(k) / c_t, gradients on the way
    for k in range(c):
        for i in range(n):
            b[k, i] = 1.0
    for t in range(n_periods - 1, t_lo - 1, -1):
        for k in range(c):
            for i in range(n):
                eb[k, i] = e_[t, k, i] * b[k, i] * inv_c[t, i]
        for i in range(n):
            if t >= start[i]:
                wc = weights[i] * inv_c[t, i]
                bank = g_table[i & (_BANKS - 1), cb[t, i]]
                for k in range(c):
                    bank[k] += wc * m_[t, k, i] * b[k, i]
                if t == start[i]:
                    for k in range(c):
                        g_init[k] += weights[i] * eb[k, i]
        if t > t_lo:
            for i in range(n):
                wl[i] = weights[i] if t > start[i] else 0.0
            for j in range(c):
                for k in range(c):
                    for i in range(n):
                        g_p[j, k, i] += wl[i] * a_[t - 1, j, i] * eb[k, i]
            for j in range(c):
                for i in range(n):
                    b_new[j, i] = 0.0
                for k in range(c):
                    if shared:
                        pjk = p[j, k, 0]
                        for i in range(n):
                            b_new[j, i] += pjk * eb[k, i]
                    else:
                        for i in range(n):
                            b_new[j, i] += p[j, k, i] * eb[k, i]
            for j in range(c):
                for i in range(n):
                    b[j, i] = b_new[j, i]


@numba.njit(cache=True, error_model="numpy")
def _flush(g_lanes, g, seg, n):  # pragma: no cover - compiled
    """Add the per-user transition gradients ``(C, C, n)`` to ``g[seg[i]]`` and zero them."""
    c = g.shape[1]
    for j in range(c):
        for k in range(c):
            for i in range(n):
                g[seg[i], j, k] += g_lanes[j, k, i]
                g_lanes[j, k, i] = 0.0


@numba.njit(cache=True, error_model="numpy")
def _gather(transition, seg, n, pb):  # pragma: no cover - compiled
    """Each user's transition matrix, ``pb[j, k, i] = transition[seg[i], j, k]``."""
    c = transition.shape[1]
    for j in range(c):
        for k in range(c):
            for i in range(n):
                pb[j, k, i] = transition[seg[i], j, k]


@numba.njit(cache=True, error_model="numpy")
def hmm_kernel(table, initial, transition, codes, start, seg, weights,
               log_nodes):  # pragma: no cover - compiled
    """Weighted total log-likelihood and its gradients (table, initial, transition).

    ``table`` ``(Q, V, C)`` emission probabilities per observed code at each of
    ``Q`` nodes of a user effect, ``log_nodes`` ``(Q,)`` the log-probabilities
    of the nodes (a user's likelihood is the mixture over the nodes; one node
    of log-probability 0 without user effects), ``initial`` ``(C,)``,
    ``transition`` ``(Q_t, S, C, C)``, per node of the effect (``Q_t = Q``,
    when the effect moves the transitions too) or shared (``Q_t = 1``);
    ``codes`` ``(U, T)``, ``start``, ``seg``
    ``(U,)`` int64 (``seg`` indexes the ``S`` matrices), ``weights`` ``(U,)``.
    Users are taken in blocks of users with close first periods (sorted by
    start, then segment), the users of a block in the innermost (vectorised)
    loops, each with its own matrices.

    With several nodes, a forward pass per node gives each user's
    log-likelihood at the node and the posterior probability :math:`r_{iq}` of
    the node; the gradient is then the backward pass of each node with user
    weights :math:`w_i r_{iq}` (nodes of posterior probability below ``1e-12``
    for every user of the block are skipped).
    """
    n_users, n_periods = codes.shape
    n_nodes = table.shape[0]
    n_trans = transition.shape[0]
    c = initial.shape[0]
    g_banks = np.zeros((n_nodes, _BANKS, table.shape[1], c))
    g_init = np.zeros_like(initial)
    g_trans = np.zeros_like(transition)
    block = _BLOCK if n_nodes == 1 else _BLOCK_NODES
    g_lanes = np.zeros((c, c, block))
    cb = np.empty((n_periods, block), dtype=np.int64)
    sb = np.empty(block, dtype=np.int64)
    gb = np.empty(block, dtype=np.int64)
    pb = np.empty((n_trans, c, c, block))
    wb = np.empty(block)
    wq = np.empty(block)
    ll = np.empty((n_nodes, block))
    e_ = np.empty((n_nodes, n_periods, c, block))
    m_ = np.empty((n_nodes, n_periods, c, block))
    a_ = np.empty((n_nodes, n_periods, c, block))
    inv_c = np.empty((n_nodes, n_periods, block))
    b = np.empty((c, block))
    b_new = np.empty((c, block))
    eb = np.empty((c, block))
    n_seg = transition.shape[1]
    if n_users >= n_seg * block:  # large groups: blocks of one group, by start within it
        order = np.argsort(seg * (n_periods + 1) + start, kind="mergesort")
    else:  # many small groups (covariates): blocks by start, groups mixed
        order = np.argsort(start * (n_seg + 1) + seg, kind="mergesort")
    total = 0.0
    lo = 0
    while lo < n_users:
        n = 0
        while lo + n < n_users and n < block:
            u = order[lo + n]
            sb[n] = start[u]
            wb[n] = weights[u]
            gb[n] = seg[u]
            for t in range(n_periods):
                cb[t, n] = codes[u, t]
            n += 1
        shared = True
        for i in range(1, n):
            shared = shared and gb[i] == gb[0]
        for qt in range(n_trans):
            _gather(transition[qt], gb, n, pb[qt])
        if n_nodes == 1:
            total += _forward_pass(table[0], initial, pb[0], shared, cb, sb, wb, n, e_[0], m_[0],
                                   a_[0], inv_c[0], ll[0])
            _backward_pass(pb[0], shared, cb, sb, wb, n, e_[0], m_[0], a_[0], inv_c[0], b, b_new,
                           eb, g_banks[0], g_init, g_lanes)
            for i in range(n):
                total += wb[i] * log_nodes[0]
        else:
            for q in range(n_nodes):
                _forward_pass(table[q], initial, pb[min(q, n_trans - 1)], shared, cb, sb, wb,
                              n, e_[q], m_[q], a_[q], inv_c[q], ll[q])
            for i in range(n):  # log of the mixture, and the nodes' posterior probabilities
                top = -np.inf
                for q in range(n_nodes):
                    ll[q, i] += log_nodes[q]
                    top = max(top, ll[q, i])
                acc = 0.0
                for q in range(n_nodes):
                    acc += np.exp(ll[q, i] - top)
                lse = top + np.log(acc)
                total += wb[i] * lse
                for q in range(n_nodes):
                    ll[q, i] = np.exp(ll[q, i] - lse) if np.isfinite(lse) else 0.0
            for q in range(n_nodes):
                big = 0.0
                for i in range(n):
                    wq[i] = wb[i] * ll[q, i]
                    big = max(big, ll[q, i])
                if big > 1e-12:
                    qt = min(q, n_trans - 1)
                    _backward_pass(pb[qt], shared, cb, sb, wq, n, e_[q], m_[q], a_[q],
                                   inv_c[q], b, b_new, eb, g_banks[q], g_init, g_lanes)
                    if n_trans > 1:
                        _flush(g_lanes, g_trans[q], gb, n)
        _flush(g_lanes, g_trans[0], gb, n)
        lo += n
    return total, g_banks.sum(axis=1), g_init, g_trans


class HMMLogp(Op):
    """Total engagement-HMM log-likelihood of compressed histories and its gradient.

    Inputs: ``table`` ``(Q, V, C)``, ``initial`` ``(C,)``, ``transition``
    ``(Q_t, S, C, C)`` (``Q_t`` 1 or ``Q``), then the data ``codes``, ``start``, ``seg`` (int64),
    ``weights`` and ``log_nodes`` ``(Q,)`` (see :func:`hmm_kernel`). Outputs:
    the value and its gradients with respect to the first three inputs (first
    derivatives only).
    """

    __props__ = ()

    def make_node(self, *inputs: Any) -> Apply:
        """Build the node from the three parameter arrays and the five data arrays."""
        if len(inputs) != 8:
            raise TypeError(f"HMMLogp takes 8 inputs, got {len(inputs)}")
        params = [pt.as_tensor_variable(p, dtype="float64") for p in inputs[:3]]
        data = [pt.as_tensor_variable(v, dtype=d) for v, d in
                zip(inputs[3:], ("int64", "int64", "int64", "float64", "float64"), strict=True)]
        outputs = [pt.dscalar(), *(p.type() for p in params)]
        return Apply(self, params + data, outputs)

    def perform(self, node: Apply, inputs: Sequence[np.ndarray], outputs: Any) -> None:
        """Evaluate value and gradients (the compiled kernel)."""
        value, *grads = hmm_kernel(*inputs)
        outputs[0][0] = np.asarray(value)
        for out, g in zip(outputs[1:], grads, strict=True):
            out[0] = g

    def infer_shape(self, node: Apply, shapes: Sequence[Any]) -> list[Any]:
        """Scalar value; each gradient has its parameter's shape."""
        return [(), *shapes[:3]]

    def pullback(
        self, inputs: Sequence[Any], outputs: Sequence[Any], cotangents: Sequence[Any]
    ) -> list[Any]:
        """Chain rule through the value output (the data inputs are not differentiated)."""
        if any(not isinstance(c.type, DisconnectedType) for c in cotangents[1:]):
            raise NotImplementedError("HMMLogp has no second derivatives (Hessian)")
        out = cotangents[0]
        return [out * g for g in outputs[1:]] + [disconnected_type()] * 5

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Say which inputs feed which outputs: the data arrays feed none."""
        n_out = len(node.outputs)
        return [[True] * n_out] * 3 + [[False] * n_out] * 5


@register_funcify_default_op_cache_key(HMMLogp)
def _numba_hmm(op: HMMLogp, node: Any = None, **kwargs: Any) -> Any:
    """Compiled implementation of :class:`HMMLogp` for the numba backend."""

    @numba.njit(error_model="numpy")
    def hmm_compiled(table, initial, transition, codes, start, seg, weights,
                     log_nodes):  # pragma: no cover - compiled
        value, g_table, g_init, g_trans = hmm_kernel(table, initial, transition, codes, start,
                                                     seg, weights, log_nodes)
        return np.asarray(value), g_table, g_init, g_trans

    return hmm_compiled, _KERNEL_VERSION
