r"""Compiled BG/NBD log-likelihood and gradient on compressed rows.

:class:`BGNBDLogp` is the total BG/NBD log-likelihood of
:class:`~models.churn.BetaGeoModel`'s weighted unique rows, with its gradient,
as one PyTensor Op computed in one compiled pass (numba, cached on disk). The
model graph is then a handful of nodes instead of the few hundred of the same
sum written in PyTensor, so compiling it (PyTensor's rewrites, numba's code
generation, PyMC's and nutpie's wrappers) takes a fraction of the time; on
CDNOW compilation is most of a fit's wall time (see ``benchmarks/README.md``).

Per user, with :math:`\rho = r + x` and :math:`\ell(t) = \log(\alpha + t)`,

.. math::

    \log L = \log\Gamma(r + x) - \log\Gamma(r) + r\log\alpha
             + \log B(a, b + x) - \log B(a, b)
             + \operatorname{logaddexp}\bigl(-\rho\,\ell(T),\;
               [x > 0](\log a - \log(b + x - 1) - \rho\,\ell(t_x))\bigr),

the terms in :math:`x` alone are summed once per unique (segment, x), users with
:math:`x = 0` once per unique (segment, T), and the rest once per unique row.
"""

from __future__ import annotations

import math
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

__all__ = ["BGNBDLogp", "digamma"]

#: Salt of PyTensor's on-disk cache of the compiled Op: a hash of this file, so an
#: edited kernel is never loaded stale (the cache key is the Op's class and props).
_KERNEL_VERSION = source_salt(__file__)
#: Names of the data inputs, in order (arrays of :class:`models.churn.beta_geo._Compressed`).
DATA_FIELDS = ("sx_seg", "sx_x", "sx_w", "z_seg", "z_T", "z_w", "u_seg", "u_val",
               "px_seg", "px_x", "row_seg", "row_x", "row_px", "row_T", "row_t", "row_w")
_INT_FIELDS = {"sx_seg", "z_seg", "u_seg", "px_seg", "row_seg", "row_px", "row_T", "row_t"}

# Asymptotic series of digamma: B_2k / (2k) for k = 1..7.
_PSI_SERIES = (1.0 / 12.0, -1.0 / 120.0, 1.0 / 252.0, -1.0 / 240.0, 1.0 / 132.0,
               -691.0 / 32760.0, 1.0 / 12.0)


@numba.njit(cache=True, error_model="numpy")
def digamma(x: float) -> float:  # pragma: no cover - compiled
    """Digamma function for ``x > 0`` (recurrence up to 10, then the asymptotic series).

    Relative error below 1e-14 against :func:`scipy.special.digamma` (tested).
    """
    shift = 0.0
    while x < 10.0:
        shift -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    tail = 0.0
    for k in range(len(_PSI_SERIES) - 1, -1, -1):
        tail = (tail + _PSI_SERIES[k]) * f
    return shift + math.log(x) - 0.5 / x - tail


@numba.njit(cache=True, error_model="numpy")
def _bgnbd_terms(
    r: np.ndarray, al: np.ndarray, a: np.ndarray, b: np.ndarray,
    sx_seg: np.ndarray, sx_x: np.ndarray, sx_w: np.ndarray,
    z_seg: np.ndarray, z_T: np.ndarray, z_w: np.ndarray,
    u_seg: np.ndarray, u_val: np.ndarray, px_seg: np.ndarray, px_x: np.ndarray,
    row_seg: np.ndarray, row_x: np.ndarray, row_px: np.ndarray, row_T: np.ndarray,
    row_t: np.ndarray, d: np.ndarray,
) -> tuple:  # pragma: no cover - compiled
    """Every term but the rows' logaddexp; fills ``d`` with each row's logaddexp argument.

    Returns the partial value, the partial gradients (per segment) and the
    per-time and per-x terms the rows gather.
    """
    n_seg = r.shape[0]
    g_r, g_al, g_a, g_b = (np.zeros(n_seg), np.zeros(n_seg), np.zeros(n_seg),
                           np.zeros(n_seg))
    log_al = np.log(al)
    lg_r, lg_b, lg_ab = np.empty(n_seg), np.empty(n_seg), np.empty(n_seg)
    dg_r, dg_b, dg_ab = np.empty(n_seg), np.empty(n_seg), np.empty(n_seg)
    for s in range(n_seg):
        lg_r[s], lg_b[s], lg_ab[s] = math.lgamma(r[s]), math.lgamma(b[s]), math.lgamma(a[s] + b[s])
        dg_r[s], dg_b[s], dg_ab[s] = digamma(r[s]), digamma(b[s]), digamma(a[s] + b[s])
    value = 0.0
    # terms in x only, once per unique (segment, x)
    for i in range(sx_x.shape[0]):
        s, x, w = sx_seg[i], sx_x[i], sx_w[i]
        rs, bs, abs_ = r[s], b[s], a[s] + b[s]
        value += w * (math.lgamma(rs + x) - lg_r[s] + rs * log_al[s] + math.lgamma(bs + x)
                      - math.lgamma(abs_ + x) - lg_b[s] + lg_ab[s])
        dg_abx = digamma(abs_ + x)
        g_r[s] += w * (digamma(rs + x) - dg_r[s] + log_al[s])
        g_al[s] += w * rs / al[s]
        g_a[s] += w * (dg_ab[s] - dg_abx)
        g_b[s] += w * (digamma(bs + x) - dg_abx - dg_b[s] + dg_ab[s])
    # users with x = 0: only "alive at T", once per unique (segment, T)
    for i in range(z_T.shape[0]):
        s, w = z_seg[i], z_w[i]
        lt = math.log(al[s] + z_T[i])
        value -= w * r[s] * lt
        g_r[s] -= w * lt
        g_al[s] -= w * r[s] / (al[s] + z_T[i])
    # users with x > 0: logaddexp(alive, dead) = alive + softplus(dead - alive), with
    # "alive at T" = -(r + x) log(alpha + T), "dropped out after t_x" = dead
    log_time, inv_time = np.empty(u_val.shape[0]), np.empty(u_val.shape[0])
    for j in range(u_val.shape[0]):
        inv_time[j] = 1.0 / (al[u_seg[j]] + u_val[j])
        log_time[j] = math.log(al[u_seg[j]] + u_val[j])
    log_odds, inv_bx = np.empty(px_x.shape[0]), np.empty(px_x.shape[0])
    for j in range(px_x.shape[0]):
        s = px_seg[j]
        inv_bx[j] = 1.0 / (b[s] + px_x[j] - 1.0)
        log_odds[j] = math.log(a[s]) + math.log(inv_bx[j])
    for i in range(row_x.shape[0]):
        rx = r[row_seg[i]] + row_x[i]
        d[i] = log_odds[row_px[i]] - rx * (log_time[row_t[i]] - log_time[row_T[i]])
    return value, g_r, g_al, g_a, g_b, log_time, inv_time, inv_bx


#: From this many rows on, the compiled kernel computes the rows' ``exp`` and ``log1p``
#: with numpy in object mode; below it, the GIL and the call (about 3 us, more when
#: nutpie's chain threads contend for the GIL) cost more than the scalar loop.
SIMD_MIN_ROWS = 8192


def _row_exp(d: np.ndarray, e: np.ndarray, lp: np.ndarray) -> None:
    """``e = exp(-|d|)`` and ``lp = log1p(e)`` in place, with numpy's SIMD loops.

    numba's scalar ``exp`` and ``log1p`` cost about 11-18 ns per row here against
    1.5 ns for numpy's vectorised ones; this is the kernel's only per-row
    transcendental work.
    """
    np.abs(d, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.log1p(e, out=lp)


@numba.njit(cache=True, error_model="numpy")
def _row_exp_scalar(d: np.ndarray, e: np.ndarray, lp: np.ndarray) -> None:  # pragma: no cover
    """:func:`_row_exp` as a compiled scalar loop (for few rows)."""
    for i in range(d.shape[0]):
        e[i] = math.exp(-abs(d[i]))
        lp[i] = math.log1p(e[i])


@numba.njit(cache=True, error_model="numpy")
def _flush(acc: np.ndarray, s: int, g_r: np.ndarray, g_al: np.ndarray, g_a: np.ndarray,
           g_b: np.ndarray, a: np.ndarray) -> None:  # pragma: no cover - compiled
    """Add one segment's accumulated row gradients to its entries, then reset them."""
    g_r[s] += acc[0]
    g_al[s] += acc[1]
    g_a[s] += acc[2] / a[s]
    g_b[s] += acc[3]
    acc[:] = 0.0


@numba.njit(cache=True, error_model="numpy")
def _bgnbd_rows(
    value: float, g_r: np.ndarray, g_al: np.ndarray, g_a: np.ndarray, g_b: np.ndarray,
    log_time: np.ndarray, inv_time: np.ndarray, inv_bx: np.ndarray, r: np.ndarray,
    a: np.ndarray, row_seg: np.ndarray, row_x: np.ndarray, row_px: np.ndarray,
    row_T: np.ndarray, row_t: np.ndarray, row_w: np.ndarray, d: np.ndarray, e: np.ndarray,
    lp: np.ndarray,
) -> float:  # pragma: no cover - compiled
    """Add the rows' logaddexp terms to ``value`` (returned) and to the gradients (in place).

    ``softplus(d) = max(d, 0) + log1p(exp(-|d|))`` and its derivative
    ``sigmoid(d)``, both stable for any ``d``.
    """
    # accumulate in registers and flush when the segment changes (rows are grouped by
    # segment; any order is still correct): per-row array updates would chain on memory
    n = row_w.shape[0]
    cur = row_seg[0] if n else 0
    acc = np.zeros(4)  # r, alpha, a (before the 1/a factor), b
    for i in range(n):
        s, w, iT, it = row_seg[i], row_w[i], row_T[i], row_t[i]
        if s != cur:
            _flush(acc, cur, g_r, g_al, g_a, g_b, a)
            cur = s
        rx = r[s] + row_x[i]
        inv = 1.0 / (1.0 + e[i])
        sig = inv if d[i] > 0.0 else e[i] * inv
        value += w * (max(d[i], 0.0) + lp[i] - rx * log_time[iT])
        acc[0] -= w * ((1.0 - sig) * log_time[iT] + sig * log_time[it])
        acc[1] -= w * rx * ((1.0 - sig) * inv_time[iT] + sig * inv_time[it])
        acc[2] += w * sig
        acc[3] -= w * sig * inv_bx[row_px[i]]
    if n:
        _flush(acc, cur, g_r, g_al, g_a, g_b, a)
    return value


def bgnbd_kernel(
    r: np.ndarray, al: np.ndarray, a: np.ndarray, b: np.ndarray, *data: np.ndarray,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Value and gradient (per segment) of the compressed BG/NBD log-likelihood.

    ``data`` are the arrays named in :data:`DATA_FIELDS`, in that order. The
    numba backend runs the same three steps inside one compiled function.
    """
    row_seg, row_x, row_px, row_T, row_t, row_w = data[10:]
    d, e, lp = np.empty(len(row_x)), np.empty(len(row_x)), np.empty(len(row_x))
    value, g_r, g_al, g_a, g_b, log_time, inv_time, inv_bx = _bgnbd_terms(
        r, al, a, b, *data[:-1], d)
    _row_exp(d, e, lp)
    value = _bgnbd_rows(value, g_r, g_al, g_a, g_b, log_time, inv_time, inv_bx, r, a,
                        row_seg, row_x, row_px, row_T, row_t, row_w, d, e, lp)
    return value, g_r, g_al, g_a, g_b


class BGNBDLogp(Op):
    """Total BG/NBD log-likelihood of compressed rows and its gradient, in one Op.

    Inputs: the per-segment parameters ``r``, ``alpha``, ``a``, ``b`` (vectors
    of the same length, one entry without segments), then the data arrays named
    in :data:`DATA_FIELDS`. Outputs: the value and its gradients with respect to
    the four parameter vectors. Differentiating the value gives those outputs
    (first derivatives only: a Hessian of this Op is not implemented).
    """

    __props__ = ()

    def make_node(self, *inputs: Any) -> Apply:
        """Build the node from four parameter vectors and the 16 data arrays."""
        if len(inputs) != 4 + len(DATA_FIELDS):
            raise TypeError(f"BGNBDLogp takes {4 + len(DATA_FIELDS)} inputs, got {len(inputs)}")
        params = [pt.as_tensor_variable(p, dtype="float64") for p in inputs[:4]]
        if any(p.ndim != 1 for p in params):
            raise TypeError("BGNBDLogp's parameters must be vectors (one entry per segment)")
        data = [pt.as_tensor_variable(v, dtype="int64" if name in _INT_FIELDS else "float64")
                for name, v in zip(DATA_FIELDS, inputs[4:], strict=True)]
        outputs = [pt.dscalar(), *(p.type() for p in params)]
        return Apply(self, params + data, outputs)

    def perform(self, node: Apply, inputs: Sequence[np.ndarray], outputs: Any) -> None:
        """Evaluate value and gradients (the same compiled kernel)."""
        value, *grads = bgnbd_kernel(*inputs)
        outputs[0][0] = np.asarray(value)
        for out, g in zip(outputs[1:], grads, strict=True):
            out[0] = g

    def infer_shape(self, node: Apply, shapes: Sequence[Any]) -> list[Any]:
        """Scalar value; each gradient has its parameter's shape."""
        return [(), *shapes[:4]]

    def pullback(
        self, inputs: Sequence[Any], outputs: Sequence[Any], cotangents: Sequence[Any]
    ) -> list[Any]:
        """Chain rule through the value output (the data inputs are not differentiated)."""
        if any(not isinstance(c.type, DisconnectedType) for c in cotangents[1:]):
            raise NotImplementedError("BGNBDLogp has no second derivatives (Hessian)")
        out = cotangents[0]
        return [out * g for g in outputs[1:]] + [disconnected_type()] * len(DATA_FIELDS)

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Say which inputs feed which outputs: the data arrays feed none."""
        n_out = len(node.outputs)
        return [[True] * n_out] * 4 + [[False] * n_out] * len(DATA_FIELDS)


@register_funcify_default_op_cache_key(BGNBDLogp)
def _numba_bgnbd(op: BGNBDLogp, node: Any = None, **kwargs: Any) -> Any:
    """Compiled implementation of :class:`BGNBDLogp` for the numba backend."""

    @numba.njit(error_model="numpy")
    def bgnbd_compiled(r, al, a, b, sx_seg, sx_x, sx_w, z_seg, z_T, z_w, u_seg, u_val,
                       px_seg, px_x, row_seg, row_x, row_px, row_T, row_t,
                       row_w):  # pragma: no cover - compiled
        n_rows = row_x.shape[0]
        d, e, lp = np.empty(n_rows), np.empty(n_rows), np.empty(n_rows)
        value, g_r, g_al, g_a, g_b, log_time, inv_time, inv_bx = _bgnbd_terms(
            r, al, a, b, sx_seg, sx_x, sx_w, z_seg, z_T, z_w, u_seg, u_val, px_seg, px_x,
            row_seg, row_x, row_px, row_T, row_t, d)
        if n_rows >= SIMD_MIN_ROWS:
            with numba.objmode():  # numpy's SIMD exp and log1p (numba's loops are scalar)
                _row_exp(d, e, lp)
        else:
            _row_exp_scalar(d, e, lp)
        value = _bgnbd_rows(value, g_r, g_al, g_a, g_b, log_time, inv_time, inv_bx, r, a,
                            row_seg, row_x, row_px, row_T, row_t, row_w, d, e, lp)
        return np.asarray(value), g_r, g_al, g_a, g_b

    return bgnbd_compiled, _KERNEL_VERSION
