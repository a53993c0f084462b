r"""Normal random intercepts of a logistic model integrated out per level (Laplace).

With ``SkipModel(user_inference="laplace")`` NUTS samples every parameter but the users'
random intercepts :math:`b_u \sim N(0, \sigma_u^2)`, on the approximate marginal likelihood
of the skips. Given those parameters, row :math:`r` of user :math:`u` (:math:`n_r` plays,
:math:`k_r` skipped) has the log-odds :math:`o_r + b_u`, where the offset :math:`o_r` holds
everything else (intercept, track effect, position, hour, plan, covariates), so the users
are independent and each has a one-dimensional, strictly concave log joint

.. math::

    f_u(b) = \sum_{r \in u} \bigl[k_r (o_r + b) - n_r \log(1 + e^{o_r + b})\bigr]
        - \frac{b^2}{2\sigma_u^2} - \log \sigma_u - \tfrac12 \log 2\pi .

Its mode :math:`\hat b_u` is found by safeguarded Newton steps (compiled with numba), and

.. math::

    \log p(k_u \mid o, \sigma_u) \approx f_u(\hat b_u) + \tfrac12 \log 2\pi
        - \tfrac12 \log P_u - \frac{S^{(4)}_u}{8 P_u^2} + \frac{5 S_u^2}{24 P_u^3}, \qquad
    P_u = -f_u''(\hat b_u) = \sum_{r \in u} n_r p_r (1 - p_r) + \sigma_u^{-2}

(:math:`p_r` the skip probability at the mode; :math:`S_u = \sum_r n_r w_r (1 - 2p_r)`
and :math:`S^{(4)}_u = \sum_r n_r w_r (1 - 6 w_r)` with :math:`w_r = p_r(1 - p_r)` are
minus the third and fourth derivatives of :math:`f_u` at the mode): the second-order
Laplace approximation (Tierney & Kadane 1986), whose last two terms remove most of the
first-order error (of order :math:`1/n`, which biases variance components of binary
outcomes low). The gradient follows from the implicit-function theorem
(:math:`f_u' = 0` at the mode, :math:`\mathrm d\hat b_u/\mathrm d o_r = n_r w_r / P_u`),
each derivative at the mode moving with it (the fourth's slope needs the fifth,
:math:`-\sum_r n_r w_r (1 - 2p_r)(1 - 12 w_r)`), exactly as for the play counts in
:mod:`models.listening._laplace`. :class:`LogitLaplaceLogp` is that value and gradient
as a PyTensor Op; PyTensor carries the gradient from the offsets to every parameter in
them.
:func:`draw_intercepts` then draws each user's intercept from :math:`N(\hat b_u, 1/P_u)`
once per posterior draw and returns, for a subset of users, the importance log-weights
that :func:`models.listening._laplace.laplace_pareto_k` checks.

The assumption: each user's conditional posterior of :math:`b_u` is close to normal. With
binary outcomes it is least so for users with a handful of plays that are all skipped or
all completed; the fit's Pareto-k check looks at those first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from models._compiled import source_salt

__all__ = ["LogitLaplaceLogp", "draw_intercepts", "laplace_logit", "quadrature_rule",
           "row_pointers"]

_LOG_2PI = float(np.log(2.0 * np.pi))
#: Iterations per level at most, and the Newton step below which a level has converged
#: (the iterate is then within about that distance of the mode; Halley's steps converge
#: cubically, so the last one is usually far below it).
_MAX_ITER = 100
_TOL = 1e-9
#: Largest Newton step in log-odds; larger ones are clipped, or bisect the bracket.
_MAX_STEP = 2.0


def row_pointers(codes: np.ndarray, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Order of the rows grouped by level, and where each level's rows start and end.

    Returns ``order`` (stable: rows of a level keep their order) and ``ptr``
    (``n_levels + 1``): the rows of level ``j`` are ``order[ptr[j]:ptr[j + 1]]``.
    """
    codes = np.asarray(codes, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    ptr = np.zeros(n_levels + 1, dtype=np.int64)
    np.cumsum(np.bincount(codes, minlength=n_levels), out=ptr[1:])
    return order, ptr


@numba.njit(cache=True, error_model="numpy", inline="always")
def _from_e(x: float, e: float) -> tuple[float, float]:  # pragma: no cover - compiled
    """``p = 1 / (1 + exp(-x))`` and ``w = p (1 - p)`` from ``e = exp(-|x|)`` (no overflow)."""
    d = 1.0 / (1.0 + e)
    return (d if x >= 0.0 else e * d), e * d * d


@numba.njit(cache=True, error_model="numpy")
def _mode(o: np.ndarray, n: np.ndarray, k: np.ndarray, lo_r: int, hi_r: int,
          inv_s2: float, e: np.ndarray) -> float:  # pragma: no cover - compiled
    """Mode of one level's log joint (its rows ``lo_r .. hi_r``).

    Halley steps (cubic convergence: about four passes over the rows from the prior
    mean), safeguarded by a bracket of the mode and a largest step. Returns the
    last iterate, at which the Newton step was below ``_TOL``, and leaves
    ``exp(-|o_r + b|)`` at that iterate in ``e[r]``, so that the value and the
    gradient need no further ``exp``.
    """
    b = 0.0
    lo, hi = -np.inf, np.inf
    for _ in range(_MAX_ITER):
        g = -b * inv_s2
        h = inv_s2
        s3 = 0.0
        for r in range(lo_r, hi_r):
            x = o[r] + b
            er = np.exp(-abs(x))
            e[r] = er
            p, w = _from_e(x, er)
            g += k[r] - n[r] * p
            h += n[r] * w
            s3 += n[r] * w * (1.0 - 2.0 * p)
        if abs(g / h) < _TOL:  # converged: e holds this iterate
            return b
        if g > 0.0:
            lo = b
        else:
            hi = b
        # Halley's step 2 g h / (2 h^2 + g s3) (s3: minus the third derivative of the log
        # joint); Newton's g / h where Halley's correction is large
        factor = 1.0 + 0.5 * g * s3 / (h * h)
        step = g / h / factor if 0.5 < factor < 2.0 else g / h
        new = b + min(max(step, -_MAX_STEP), _MAX_STEP)
        if not (lo < new < hi) and lo > -np.inf and hi < np.inf:
            new = 0.5 * (lo + hi)
        b = new
    return b


@numba.njit(cache=True, error_model="numpy")
def _kernel(
    o: np.ndarray, n: np.ndarray, k: np.ndarray, ptr: np.ndarray, sigma: float, grad: bool,
    nodes: np.ndarray, log_weights: np.ndarray,
) -> tuple[float, np.ndarray, float, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """Marginal, its gradients, the modes, precisions and per-level values.

    With no ``nodes``, the Laplace approximation and its exact gradient; with
    Gauss-Hermite ``nodes`` and their ``log_weights``, adaptive quadrature around each
    level's mode (see :func:`laplace_logit`).
    """
    n_levels = len(ptr) - 1
    n_nodes = len(nodes)
    inv_s2 = 1.0 / (sigma * sigma)
    log_s = np.log(sigma)
    g_o = np.zeros(len(o) if grad else 0)
    e = np.empty(len(o))
    b_hat = np.empty(n_levels)
    prec = np.empty(n_levels)
    value_u = np.empty(n_levels)
    widest = 0
    for j in range(n_levels):
        widest = max(widest, ptr[j + 1] - ptr[j])
    p_q = np.empty((n_nodes, widest))  # skip probabilities of a level's rows at each node
    f_q = np.empty(n_nodes)
    total, g_s = 0.0, 0.0
    for j in range(n_levels):
        lo_r, hi_r = ptr[j], ptr[j + 1]
        b = _mode(o, n, k, lo_r, hi_r, inv_s2, e)
        ll, pj, sj, s4, s5 = 0.0, inv_s2, 0.0, 0.0, 0.0
        for r in range(lo_r, hi_r):
            x = o[r] + b
            p, w = _from_e(x, e[r])
            ll += k[r] * x - n[r] * (max(x, 0.0) + np.log1p(e[r]))
            nw, o1 = n[r] * w, 1.0 - 2.0 * p
            pj += nw
            sj += nw * o1
            s4 += nw * (1.0 - 6.0 * w)
            s5 += nw * o1 * (1.0 - 12.0 * w)
        b_hat[j], prec[j] = b, pj
        if n_nodes > 0:
            # nodes b + sqrt(2 / P) x_q; log joint (prior included, the 2 pi of the prior
            # and the sqrt(pi) of the weights cancel: log_weights carry it) at each node
            scale = np.sqrt(2.0 / pj)
            top = -np.inf
            for q in range(n_nodes):
                bq = b + scale * nodes[q]
                fq = -0.5 * bq * bq * inv_s2 - log_s
                for r in range(lo_r, hi_r):
                    x = o[r] + bq
                    er = np.exp(-abs(x))
                    p_q[q, r - lo_r] = _from_e(x, er)[0]
                    fq += k[r] * x - n[r] * (max(x, 0.0) + np.log1p(er))
                f_q[q] = fq + log_weights[q] + nodes[q] * nodes[q]
                top = max(top, f_q[q])
            acc = 0.0
            for q in range(n_nodes):
                f_q[q] = np.exp(f_q[q] - top)
                acc += f_q[q]
            v = top + np.log(acc) + 0.5 * np.log(2.0 / pj)
            value_u[j] = v
            total += v
            if grad:  # Fisher's identity: posterior expectations under the quadrature
                for r in range(lo_r, hi_r):
                    mean_p = 0.0
                    for q in range(n_nodes):
                        mean_p += f_q[q] * p_q[q, r - lo_r]
                    g_o[r] = k[r] - n[r] * mean_p / acc
                m2 = 0.0
                for q in range(n_nodes):
                    bq = b + scale * nodes[q]
                    m2 += f_q[q] * bq * bq
                g_s += (m2 / acc - sigma * sigma) / (sigma * sigma * sigma)
            continue
        # second order, with the derivatives f3 = -sj, f4 = -s4, f5 = -s5 and H = -pj
        hi = -1.0 / pj
        t, f4, f5 = -sj, -s4, -s5
        v = (ll - 0.5 * b * b * inv_s2 - log_s - 0.5 * np.log(pj)
             + f4 * hi * hi / 8.0 - 5.0 * t * t * hi * hi * hi / 24.0)
        value_u[j] = v
        total += v
        if grad:  # f_psi + c_h H_psi + c_t f3_psi + c_4 f4_psi - c_g g_psi, as for counts
            hi3 = hi * hi * hi
            c = -0.5 * hi
            a_h = -f4 * hi3 / 4.0 + 5.0 * t * t * hi3 * hi / 8.0
            a_t = -5.0 * t * hi3 / 12.0
            a_4 = hi * hi / 8.0
            c_h, c_t, c_4 = c + a_h, a_t, a_4
            c_g = (c * t + a_4 * f5 + a_h * t + a_t * f4) * hi
            for r in range(lo_r, hi_r):
                p, w = _from_e(o[r] + b, e[r])
                o1 = 1.0 - 2.0 * p
                g_o[r] = k[r] - n[r] * p - n[r] * w * (
                    c_h * o1 + c_t * (1.0 - 6.0 * w) + c_4 * o1 * (1.0 - 12.0 * w) - c_g)
            s3 = sigma * sigma * sigma
            g_s += (b * b - sigma * sigma) / s3 + 2.0 * c_h / s3 - 2.0 * c_g * b / s3
    return total, g_o, g_s, b_hat, prec, value_u


def quadrature_rule(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Gauss-Hermite nodes and log-weights for :func:`laplace_logit` (none for 1 node).

    The log-weights include the normal prior's :math:`-\tfrac12 \log 2\pi`, which the
    kernel leaves out of the log joint.
    """
    if n_nodes == 1:
        return np.empty(0), np.empty(0)
    x, w = np.polynomial.hermite.hermgauss(n_nodes)
    return x, np.log(w) - 0.5 * np.log(2.0 * np.pi)


def laplace_logit(
    o: np.ndarray, n: np.ndarray, k: np.ndarray, ptr: np.ndarray, sigma: float, *,
    grad: bool = True, n_nodes: int = 1,
) -> dict[str, Any]:
    r"""Laplace approximation of every level's marginal likelihood, and its gradient.

    With ``n_nodes > 1``, adaptive Gauss-Hermite quadrature instead: the integral over
    each level's intercept on ``n_nodes`` nodes :math:`\hat b_u + \sqrt{2/P_u}\,x_q`
    placed by the Laplace approximation (``n_nodes=1`` is the Laplace approximation
    itself). Its gradient is the posterior expectation, under the quadrature, of the
    log joint's gradient (Fisher's identity), which equals the derivative of the exact
    marginal up to the quadrature error; with a few nodes that error is far below the
    Laplace approximation's (which is of order :math:`1/n`, and biases variance
    components of binary outcomes low).

    Parameters
    ----------
    o : numpy.ndarray
        ``(rows,)``: each row's log-odds without the integrated intercept, rows grouped
        by level (see :func:`row_pointers`).
    n, k : numpy.ndarray
        ``(rows,)``: trials and successes of each row, in the same order.
    ptr : numpy.ndarray of int
        ``(levels + 1,)``: level ``j`` owns rows ``ptr[j]:ptr[j + 1]``.
    sigma : float
        Standard deviation of the intercepts' normal prior (mean 0).
    grad : bool, default True
        Compute the gradients too.
    n_nodes : int, default 1
        Quadrature nodes per level (1: the Laplace approximation).

    Returns
    -------
    dict
        ``value`` (the summed log marginal without the binomial coefficients),
        ``g_o`` (``(rows,)``, empty without ``grad``), ``g_sigma``, ``b_hat`` and
        ``prec`` (each level's mode and :math:`P_u`), ``value_u`` (each level's term).
    """
    nodes, log_weights = quadrature_rule(n_nodes)
    out = _kernel(np.ascontiguousarray(o, dtype=float), np.ascontiguousarray(n, dtype=float),
                  np.ascontiguousarray(k, dtype=float), np.ascontiguousarray(ptr, dtype=np.int64),
                  float(sigma), grad, nodes, log_weights)
    keys = ("value", "g_o", "g_sigma", "b_hat", "prec", "value_u")
    return dict(zip(keys, out, strict=True))


class LogitLaplaceLogp(Op):
    r"""Laplace-approximate log marginal likelihood of binomial rows, intercepts integrated out.

    Inputs: ``n``, ``k`` (trials and successes per row, rows grouped by level), ``ptr``
    (int64, ``levels + 1``), ``o`` (the rows' log-odds without the intercept) and
    ``sigma`` (). Outputs: the value and its gradients with respect to ``o`` and
    ``sigma`` (see the module docstring); the data inputs are not differentiated.

    Parameters
    ----------
    n_nodes : int, default 1
        1: the Laplace approximation; more: adaptive Gauss-Hermite quadrature on that
        many nodes per level (see :func:`laplace_logit`).
    """

    __props__ = ("n_nodes",)

    def __init__(self, n_nodes: int = 1) -> None:
        self.n_nodes = int(n_nodes)

    def make_node(self, n: Any, k: Any, ptr: Any, o: Any, sigma: Any) -> Apply:
        """Build the node from the data and the offsets and scale."""
        inputs = [pt.as_tensor_variable(v, dtype="float64") for v in (n, k)]
        inputs.append(pt.as_tensor_variable(ptr, dtype="int64"))
        inputs += [pt.as_tensor_variable(v, dtype="float64") for v in (o, sigma)]
        return Apply(self, inputs, [pt.dscalar(), pt.dvector(), pt.dscalar()])

    def perform(self, node: Apply, inputs: Sequence[np.ndarray], outputs: Any) -> None:
        """Solve for the modes and evaluate value and gradients (numba)."""
        n, k, ptr, o, sigma = inputs
        out = _kernel(o, n, k, ptr, float(sigma), True, *quadrature_rule(self.n_nodes))
        outputs[0][0] = np.asarray(out[0])
        outputs[1][0] = out[1]
        outputs[2][0] = np.asarray(out[2])

    def pullback(
        self, inputs: Sequence[Any], outputs: Sequence[Any], cotangents: Sequence[Any]
    ) -> list[Any]:
        """Chain rule through the value output (the data inputs are not differentiated)."""
        out = cotangents[0]
        return [disconnected_type()] * 3 + [out * outputs[1], out * outputs[2]]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Say which inputs feed which outputs: the data feed none."""
        n_out = len(node.outputs)
        return [[False] * n_out] * 3 + [[True] * n_out] * 2


_KERNEL_VERSION = source_salt(__file__)


@register_funcify_default_op_cache_key(LogitLaplaceLogp)
def _numba_logit_laplace(op: LogitLaplaceLogp, node: Any = None, **kwargs: Any) -> Any:
    """Compiled implementation of :class:`LogitLaplaceLogp` for the numba backend."""
    nodes, log_weights = quadrature_rule(op.n_nodes)

    @numba.njit(error_model="numpy")
    def logit_laplace_logp(n, k, ptr, o, sigma):  # pragma: no cover - compiled
        out = _kernel(o, n, k, ptr, sigma.item(), True, nodes, log_weights)
        return np.asarray(out[0]), out[1], np.asarray(out[2])

    return logit_laplace_logp, _KERNEL_VERSION


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _draw_kernel(
    o: np.ndarray, n: np.ndarray, k: np.ndarray, ptr: np.ndarray, sigma: np.ndarray,
    z: np.ndarray, check: np.ndarray, lw: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Turn standard normal ``z`` (draws x levels) into draws of the Laplace conditionals.

    ``o`` is ``(draws, rows)``. For the levels with ``check[j] >= 0``, writes the
    importance log-weight of the draw to ``lw[draw, check[j]]`` (when ``lw`` has rows).
    """
    n_draws, n_levels = z.shape
    for i in numba.prange(n_draws):
        s = sigma[i]
        inv_s2 = 1.0 / (s * s)
        oi = o[i]
        e = np.empty(len(oi))
        for j in range(n_levels):
            lo_r, hi_r = ptr[j], ptr[j + 1]
            b = _mode(oi, n, k, lo_r, hi_r, inv_s2, e)
            ll, pj = 0.0, inv_s2
            for r in range(lo_r, hi_r):
                x = oi[r] + b
                pj += n[r] * _from_e(x, e[r])[1]
                ll += k[r] * x - n[r] * (max(x, 0.0) + np.log1p(e[r]))
            zi = z[i, j]
            draw = b + zi / np.sqrt(pj)
            z[i, j] = draw
            if check[j] >= 0 and lw.shape[0] > 0:
                # exact log joint at the draw, minus the normal density of the draw, minus
                # the Laplace marginal (the 2 pi terms cancel)
                joint = -0.5 * draw * draw * inv_s2 - np.log(s)
                for r in range(lo_r, hi_r):
                    x = oi[r] + draw
                    joint += k[r] * x - n[r] * (max(x, 0.0) + np.log1p(np.exp(-abs(x))))
                log_q = 0.5 * np.log(pj) - 0.5 * zi * zi
                marginal = ll - 0.5 * b * b * inv_s2 - np.log(s) - 0.5 * np.log(pj)
                lw[i, check[j]] = joint - log_q - marginal


def draw_intercepts(
    offsets: np.ndarray, n: np.ndarray, k: np.ndarray, ptr: np.ndarray, sigma: np.ndarray,
    z: np.ndarray, check: np.ndarray | None = None,
) -> np.ndarray | None:
    r"""Draw each level's intercept from its Laplace conditional, in place of ``z``.

    Parameters
    ----------
    offsets : numpy.ndarray
        ``(draws, rows)``: each posterior draw's log-odds without the intercept, rows
        grouped by level.
    n, k, ptr : numpy.ndarray
        As for :func:`laplace_logit`.
    sigma : numpy.ndarray
        ``(draws,)``.
    z : numpy.ndarray
        ``(draws, levels)`` standard normal draws; overwritten with
        :math:`\hat b_u + z / \sqrt{P_u}` (the draws run in parallel).
    check : numpy.ndarray of int, optional
        Levels whose importance log-weights to return.

    Returns
    -------
    numpy.ndarray or None
        ``(draws, len(check))``: :math:`\log p(k_u, b_u \mid o, \sigma) - \log q(b_u)
        - \log \hat p(k_u \mid o, \sigma)`, exact joint over the approximate one.
    """
    n_draws, n_levels = z.shape
    pos = np.full(n_levels, -1, dtype=np.int64)
    if check is not None:
        pos[check] = np.arange(len(check))
    lw = np.empty((n_draws if check is not None else 0, 0 if check is None else len(check)))
    _draw_kernel(np.ascontiguousarray(offsets, dtype=float), np.ascontiguousarray(n, dtype=float),
                 np.ascontiguousarray(k, dtype=float), np.ascontiguousarray(ptr, dtype=np.int64),
                 np.ascontiguousarray(sigma, dtype=float), z, pos, lw)
    return lw if check is not None else None
