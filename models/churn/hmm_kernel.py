r"""Compiled log-likelihood and gradient of the engagement-state HMM on compressed rows.

:class:`HMMLogp` is the total log-likelihood of
:class:`~models.churn.EngagementStateModel`'s weighted unique histories with
its gradient, one PyTensor Op computed by one compiled (numba, cached on disk)
pass of the scaled forward-backward algorithm. Written in PyTensor, the
forward recursion unrolled over periods is a graph of hundreds of nodes that
takes minutes to compile; this Op compiles in seconds.

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


@numba.njit(cache=True, error_model="numpy")
def hmm_kernel(table, initial, transition, codes, start, seg, weights):  # pragma: no cover
    """Weighted total log-likelihood and its gradients (table, initial, transition).

    ``table`` ``(V, C)`` emission probabilities per observed code, ``initial``
    ``(C,)``, ``transition`` ``(S, C, C)``; ``codes`` ``(U, T)``, ``start``,
    ``seg`` ``(U,)`` int64, ``weights`` ``(U,)``.
    """
    n_users, n_periods = codes.shape
    c = initial.shape[0]
    g_table = np.zeros_like(table)
    g_init = np.zeros_like(initial)
    g_trans = np.zeros_like(transition)
    a = np.empty((n_periods, c))
    scale = np.empty(n_periods)
    b = np.empty(c)
    b_prev = np.empty(c)
    m = np.empty(c)
    total = 0.0
    for u in range(n_users):
        s0 = start[u]
        p = transition[seg[u]]
        w = weights[u]
        # forward
        for t in range(s0, n_periods):
            e = table[codes[u, t]]
            tot = 0.0
            for k in range(c):
                if t == s0:
                    mk = initial[k]
                else:
                    mk = 0.0
                    for j in range(c):
                        mk += a[t - 1, j] * p[j, k]
                a[t, k] = mk * e[k]
                tot += a[t, k]
            scale[t] = tot
            for k in range(c):
                a[t, k] /= tot
            total += w * np.log(tot)
        # backward, accumulating the gradients
        for k in range(c):
            b[k] = 1.0
        for t in range(n_periods - 1, s0 - 1, -1):
            e = table[codes[u, t]]
            ct = scale[t]
            for k in range(c):
                if t == s0:
                    m[k] = initial[k]
                else:
                    mk = 0.0
                    for j in range(c):
                        mk += a[t - 1, j] * p[j, k]
                    m[k] = mk
            code = codes[u, t]
            for k in range(c):
                g_table[code, k] += w * m[k] * b[k] / ct
            if t == s0:
                for k in range(c):
                    g_init[k] += w * e[k] * b[k] / ct
            else:
                for j in range(c):
                    acc = 0.0
                    for k in range(c):
                        eb = e[k] * b[k] / ct
                        g_trans[seg[u], j, k] += w * a[t - 1, j] * eb
                        acc += p[j, k] * eb
                    b_prev[j] = acc
                for k in range(c):
                    b[k] = b_prev[k]
    return total, g_table, g_init, g_trans


class HMMLogp(Op):
    """Total engagement-HMM log-likelihood of compressed histories and its gradient.

    Inputs: ``table`` ``(V, C)``, ``initial`` ``(C,)``, ``transition`` ``(S, C, C)``,
    then the data ``codes``, ``start``, ``seg`` (int64) and ``weights``. Outputs:
    the value and its gradients with respect to the first three inputs (first
    derivatives only).
    """

    __props__ = ()

    def make_node(self, *inputs: Any) -> Apply:
        """Build the node from the three parameter arrays and the four data arrays."""
        if len(inputs) != 7:
            raise TypeError(f"HMMLogp takes 7 inputs, got {len(inputs)}")
        params = [pt.as_tensor_variable(p, dtype="float64") for p in inputs[:3]]
        data = [pt.as_tensor_variable(v, dtype=d) for v, d in
                zip(inputs[3:], ("int64", "int64", "int64", "float64"), strict=True)]
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
        return [out * g for g in outputs[1:]] + [disconnected_type()] * 4

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Say which inputs feed which outputs: the data arrays feed none."""
        n_out = len(node.outputs)
        return [[True] * n_out] * 3 + [[False] * n_out] * 4


@register_funcify_default_op_cache_key(HMMLogp)
def _numba_hmm(op: HMMLogp, node: Any = None, **kwargs: Any) -> Any:
    """Compiled implementation of :class:`HMMLogp` for the numba backend."""

    @numba.njit(error_model="numpy")
    def hmm_compiled(table, initial, transition, codes, start, seg,
                     weights):  # pragma: no cover - compiled
        value, g_table, g_init, g_trans = hmm_kernel(table, initial, transition, codes, start,
                                                     seg, weights)
        return np.asarray(value), g_table, g_init, g_trans

    return hmm_compiled, _KERNEL_VERSION
