r"""Normal user effects integrated out per user with a Laplace approximation.

With ``PlayCountModel(user_inference="laplace")`` NUTS samples only the population
parameters :math:`\psi` (intercept, segment and period effects, :math:`\sigma_u`,
:math:`\alpha`) on the approximate marginal likelihood; the user log-rates
:math:`\eta_u \sim N(m_u, \sigma_u^2)` (:math:`m_u`: intercept plus segment effects)
are integrated out one user at a time. A user's cells (one per grid column :math:`k`,
with :math:`n_{uk}` rows summing to :math:`S_{uk}` plays and log-mean
:math:`\eta_u + \phi_k`) give the log joint

.. math::

    f_u(\eta) = \sum_k \ell(n_{uk}, S_{uk}, \eta + \phi_k) + \log N(\eta; m_u, \sigma_u^2),

which is strictly concave in :math:`\eta` for the negative binomial and the Poisson.
Its mode :math:`\hat\eta_u` is found by safeguarded Newton steps (vectorised over users,
compiled with numba), and with :math:`H_u = f_u''(\hat\eta_u)` and the third and
fourth derivatives :math:`f_u'''`, :math:`f_u''''` at the mode, the second-order
Laplace approximation (Tierney & Kadane 1986; Raudenbush, Yang & Yosef 2000) is

.. math::

    \log p(y_u \mid \psi) \approx f_u(\hat\eta_u) + \tfrac12 \log 2\pi
        - \tfrac12 \log(-H_u) + \frac{f_u''''}{8 H_u^2}
        + \frac{5 (f_u''')^2}{24 (-H_u)^3}.

The last two terms matter. Without them the error of a user is a few thousandths of a
log unit, but of the same sign for most users and varying with :math:`\sigma_u` and
:math:`\alpha`: summed over 100,000 users it moved their posterior means by 0.17 sd
against full NUTS. With them the error, and its slope in the parameters, is 25 to 300
times smaller (tested against quadrature).

The gradient with respect to :math:`\psi` follows from the implicit-function theorem:
at the mode :math:`f_u' = 0`, so
:math:`\mathrm d/\mathrm d\psi\, f_u(\hat\eta_u) = \partial f_u / \partial\psi`, and
each derivative :math:`D` (:math:`H_u`, :math:`f_u'''`, :math:`f_u''''`) moves with
the mode: :math:`\mathrm dD/\mathrm d\psi = \partial D/\partial\psi + D'\,
\mathrm d\hat\eta_u/\mathrm d\psi` with
:math:`\mathrm d\hat\eta_u/\mathrm d\psi = -(\partial f_u'/\partial\psi) / H_u` (the
fourth's slope needs the fifth derivative, a polynomial per cell like the others).
:class:`LaplaceUserLogp` is that value and gradient as a PyTensor Op (the Newton solve
is inside it); :func:`draw_user_log_rates_laplace` then draws each user's log-rate from
:math:`N(\hat\eta_u, -1/H_u)` once per posterior draw, and :func:`laplace_pareto_k`
checks the approximation on a subsample of users with Pareto-smoothed importance
weights (the users with the fewest plays, where it is worst, and a random set).

The assumption: each user's conditional posterior of :math:`\eta_u` given :math:`\psi`
is close to normal (the second-order terms correct the marginal for moderate skew;
the user draws are still normal). It is when a user has a few plays or more; with almost none, the
conditional is close to the normal prior, so the approximation is again good; it is
least accurate in between, and for a negative binomial with small :math:`\alpha`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numba
import numpy as np
import pytensor.tensor as pt
from arviz_stats.base.array import array_stats
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from models._compiled import source_salt
from models._vecmath import vexp, vlog
from models.diagnostics.report import FitReport
from models.exceptions import ApproximationWarning

__all__ = [
    "LaplaceCheckedFit",
    "LaplaceUserLogp",
    "check_users",
    "draw_user_log_rates_laplace",
    "laplace_pareto_k",
    "laplace_users",
    "report_check",
    "summarize_check",
]

_LOG_2PI = float(np.log(2.0 * np.pi))
#: Newton iterations per user at most, the convergence tolerance of a step (the step
#: below it is Chebyshev's, of cubic order: after a step of 1e-3 the mode is exact to
#: about 1e-9, which moves the value by about 1e-10 and the gradient by about 1e-9 of
#: itself; a plain Newton step would leave 1e-6) and the largest step (in log-rate
#: units; larger steps are clipped, or bisect the bracket).
_MAX_ITER = 100
_TOL = 1e-3
#: The same for the user draws, which need the modes only to far within their
#: conditional sds: the last step's error is about 1e-6 after a step of 1e-2.
_DRAW_TOL = 1e-2
#: Posterior draws per block of the draws' normals (one seed each; the blocks, not the
#: threads, fix the numbers, so the draws are the same with any number of threads).
_NORMAL_BLOCK = 64
_MAX_STEP = 2.0
#: Users per block of the kernels (each pass runs over one column of a block, so the
#: loops vectorise; the block's scratch stays in cache).
_BLOCK = 256
#: Floating-point reassociation for vectorised loops; NaN and infinity keep their meaning.
_FAST = {"nsz", "arcp", "contract", "reassoc"}
#: Posterior draws (evenly spaced) on which the users' importance weights are checked:
#: enough for a stable Pareto k, and the check's cost stays fixed as the draws grow.
CHECK_DRAWS = 500
#: Pareto k above which an importance-sampling check is unreliable (Vehtari et al. 2024).
K_THRESHOLD = 0.7
#: A user is flagged only if the sd of their log-weights is also above this: k is blind to
#: the weights' scale, and weights within a few percent of each other change no estimate.
LOG_WEIGHT_SD = 0.1
#: The fit warns when more than this share of the checked users is flagged (a few users
#: out of thousands with extreme play patterns move no population parameter).
WARN_SHARE = 0.01


@numba.njit(cache=True, error_model="numpy", fastmath=_FAST)
def _newton_derivatives(
    n: np.ndarray, total: np.ndarray, b0: int, j: int, m: float, inv_s2: float,
    e_phi: np.ndarray, a: float, poisson: bool, eta: float, work: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """First three derivatives of the log joint of one user, ``b0 + j``, at ``eta``.

    Writes them to ``work[0:3, j]``: the sums of the block pass of
    :func:`_newton_block`, for the few users still iterating there.
    """
    e = vexp(eta)
    g = -(eta - m) * inv_s2
    h = -inv_s2
    t = 0.0
    for k in range(n.shape[0]):
        nk, sk = n[k, b0 + j], total[k, b0 + j]
        mu = e * e_phi[k]
        if poisson:
            g += sk - nk * mu
            h -= nk * mu
            t -= nk * mu
        else:
            inv = 1.0 / (a + mu)
            wq = (nk * a + sk) * mu * inv
            hk = wq * a * inv
            g += sk - wq
            h -= hk
            t -= hk * (a - mu) * inv
    work[0, j], work[1, j], work[2, j] = g, h, t


@numba.njit(cache=True, error_model="numpy", fastmath=_FAST)
def _newton_step(
    eta: float, g: float, h: float, t: float, lo: float, hi: float, tol: float,
) -> tuple[float, float, float, bool]:  # pragma: no cover - compiled
    """One user's safeguarded step from ``eta`` (log joint derivatives ``g``, ``h``, ``t``).

    Returns the new ``eta``, the bracket ``lo``, ``hi`` of the mode, and whether the
    user goes on iterating (its Newton step was not below ``tol``). Branch-free but
    for the selects, so that a loop over users vectorises.
    """
    lo = eta if g > 0.0 else lo
    hi = hi if g > 0.0 else eta
    step = -g / h
    new = eta + min(max(step, -_MAX_STEP), _MAX_STEP)
    bisect = not (lo < new < hi) and lo > -np.inf and hi < np.inf
    new = 0.5 * (lo + hi) if bisect else new
    going = abs(step) >= tol
    return (new if going else eta + step - 0.5 * t * step * step / h), lo, hi, going


@numba.njit(cache=True, error_model="numpy", fastmath=_FAST)
def _newton_block(
    n: np.ndarray, total: np.ndarray, b0: int, nb: int, m: np.ndarray, inv_s2: float,
    e_phi: np.ndarray, a: float, poisson: bool, eta: np.ndarray, work: np.ndarray,
    active: np.ndarray, start: np.ndarray, tol: float = _TOL,
) -> None:  # pragma: no cover - compiled
    r"""Modes of the log joints of users ``b0 .. b0 + nb`` (``m``: their prior means).

    Writes them to ``eta[:nb]``, and each user's rows and plays to ``work[6:8]``.
    Safeguarded Newton steps, each user's until its step :math:`\delta` is below
    ``_TOL``; that last step is Chebyshev's (Newton's plus
    :math:`-f_u''' \delta^2 / (2 f_u'')`), which leaves an error of order
    :math:`\delta^3` instead of Newton's :math:`\delta^2`, so that a user stopping at
    a step just below ``_TOL`` has its mode exact to about 1e-9.

    While more than a quarter of the block iterates, a step is one pass over all the
    block's cells (vectorised; users that have stopped are computed and not moved);
    after that, only the users still iterating (their indices in ``active``, scratch
    of ``_BLOCK`` ints) are. ``work`` is scratch, ``(9, B)``. The steps start from
    ``start[b0 + j]`` when ``start`` is not empty (modes of nearby parameters), and
    otherwise from the normal prior times a normal approximation of the likelihood.
    """
    n_cols = n.shape[0]
    warm = start.shape[0] > 0
    g, h, t, lo, hi, e = work[0], work[1], work[2], work[3], work[4], work[5]
    rows, plays, going = work[6], work[7], work[8]
    # start: the normal prior times a normal approximation of the likelihood
    for j in range(nb):
        g[j] = 0.0  # exposure
        rows[j] = 0.0
        plays[j] = 0.0
    for k in range(n_cols):
        ek = e_phi[k]
        for j in range(nb):
            nk = n[k, b0 + j]
            g[j] += nk * ek
            rows[j] += nk
            plays[j] += total[k, b0 + j]
    for j in range(nb):  # branch-free, so that it vectorises
        r, s = rows[j], plays[j]
        has_rows = r > 0.0
        r = r if has_rows else 1.0
        prec = s if poisson else a * s * r / (a * r + s)
        first = (m[j] * inv_s2 + prec * vlog((s + 0.5) / (g[j] if has_rows else 1.0))) / (
            inv_s2 + prec)
        eta[j] = start[b0 + j] if warm else (first if has_rows else m[j])
        lo[j] = -np.inf
        hi[j] = np.inf
        going[j] = 1.0
    n_active = nb
    for _ in range(_MAX_ITER):
        if 4 * n_active > nb:  # the whole block, vectorised
            for j in range(nb):
                e[j] = vexp(eta[j])
                g[j] = -(eta[j] - m[j]) * inv_s2
                h[j] = -inv_s2
                t[j] = 0.0
            for k in range(n_cols):
                ek = e_phi[k]
                if poisson:
                    for j in range(nb):
                        nmu = n[k, b0 + j] * e[j] * ek
                        g[j] += total[k, b0 + j] - nmu
                        h[j] -= nmu
                        t[j] -= nmu
                else:
                    for j in range(nb):
                        mu = e[j] * ek
                        sk = total[k, b0 + j]
                        inv = 1.0 / (a + mu)
                        wq = (n[k, b0 + j] * a + sk) * mu * inv
                        hk = wq * a * inv
                        g[j] += sk - wq
                        h[j] -= hk
                        t[j] -= hk * (a - mu) * inv
            count = 0.0
            for j in range(nb):
                new, lo[j], hi[j], go = _newton_step(eta[j], g[j], h[j], t[j], lo[j], hi[j],
                                                     tol)
                was = going[j] > 0.0
                eta[j] = new if was else eta[j]
                going[j] = 1.0 if (was and go) else 0.0
                count += going[j]
            n_active = int(count)
            if 0 < 4 * n_active <= nb:  # from now on, the users still iterating only
                i = 0
                for j in range(nb):
                    if going[j] > 0.0:
                        active[i] = j
                        i += 1
        else:
            still = 0
            for i in range(n_active):
                j = active[i]
                _newton_derivatives(n, total, b0, j, m[j], inv_s2, e_phi, a, poisson,
                                    eta[j], work)
                eta[j], lo[j], hi[j], go = _newton_step(eta[j], g[j], h[j], t[j], lo[j],
                                                        hi[j], tol)
                if go:
                    active[still] = j
                    still += 1
            n_active = still
        if n_active == 0:
            break


@numba.njit(cache=True, error_model="numpy", fastmath=_FAST)
def _laplace_kernel(
    n: np.ndarray, total: np.ndarray, m: np.ndarray, s: float, phi: np.ndarray, a: float,
    poisson: bool, grad: bool, values: bool = True,
) -> tuple[float, np.ndarray, float, np.ndarray, float, np.ndarray, np.ndarray, np.ndarray]:
    r"""Second-order Laplace marginal, its gradient, the modes, Hessians and per-user values.

    ``n`` and ``total`` are ``(columns, users)``: each pass runs over one column of a
    block of ``_BLOCK`` users, so the loops vectorise. Returns ``(value, g_m, g_s,
    g_phi, g_a, eta_hat, hess, value_u)``; with ``values=False`` (and no ``grad``)
    only the modes and Hessians are computed (no logarithm per cell).

    Per cell, with :math:`q = \mu/(\alpha+\mu)`, :math:`r = q(1-q)` and
    :math:`w = n\alpha + S`, the derivatives of the negative binomial log-likelihood
    in the log-mean are :math:`S - wq`, :math:`-wr`, :math:`-wr(1-2q)`,
    :math:`-wr(1-6r)` and :math:`-wr(1-2q)(1-12r)` (the Poisson's: :math:`S - n\mu`,
    then :math:`-n\mu` for every order); the gradient carries the correction through
    the mode with the fifth.
    """
    n_cols, n_users = n.shape
    e_phi = np.exp(phi)
    inv_s2 = 1.0 / (s * s)
    log_s = np.log(s)
    log_a = np.log(a) if not poisson else 0.0
    inv_a = 1.0 / a
    full = values or grad
    g_m = np.zeros(n_users)
    g_phi = np.zeros(n_cols)
    eta_hat = np.empty(n_users)
    hess = np.empty(n_users)
    value_u = np.empty(n_users)
    g_s = 0.0
    g_a = 0.0
    value = 0.0
    work = np.empty((9, _BLOCK))
    active = np.empty(_BLOCK, dtype=np.int64)
    no_start = np.empty(0)  # no carried modes: a value depends on its arguments only
    # few arrays written per loop: with more, LLVM gives up proving they do not
    # overlap, and the loops no longer vectorise
    acc = np.empty((7, _BLOCK))
    grads = np.empty((5, _BLOCK))
    coef = np.empty((4, _BLOCK))
    e, ll, h, t, f4, f5, nlg = acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6]
    da, dg_a, dh_a, dt_a, d4_a = grads[0], grads[1], grads[2], grads[3], grads[4]
    c_h, c_t, c_4, c_g = coef[0], coef[1], coef[2], coef[3]
    for b0 in range(0, n_users, _BLOCK):
        nb = min(_BLOCK, n_users - b0)
        eta = eta_hat[b0:b0 + nb]
        mb = m[b0:b0 + nb]
        _newton_block(n, total, b0, nb, mb, inv_s2, e_phi, a, poisson, eta, work, active,
                      no_start)
        # pass 1: value and the derivatives in eta at the mode; the terms of ll that are
        # the same in every cell are added per user, from the rows and plays of
        # _newton_block (for the Poisson, h, f3, f4 and f5 all sum -n mu: kept in t)
        for j in range(nb):
            e[j] = vexp(eta[j])
            ll[j] = 0.0
            h[j] = -inv_s2
            t[j] = 0.0
            f4[j] = 0.0
            f5[j] = 0.0
            nlg[j] = 0.0
        for k in range(n_cols):
            ek, pk = e_phi[k], phi[k]
            if poisson:
                for j in range(nb):
                    nmu = n[k, b0 + j] * e[j] * ek
                    ll[j] += total[k, b0 + j] * pk - nmu
                    t[j] -= nmu
            elif not full:
                for j in range(nb):
                    mu = e[j] * ek
                    inv = 1.0 / (a + mu)
                    h[j] -= (n[k, b0 + j] * a + total[k, b0 + j]) * a * mu * inv * inv
            else:
                for j in range(nb):
                    nk = n[k, b0 + j]
                    sk = total[k, b0 + j]
                    mu = e[j] * ek
                    apm = a + mu
                    inv = 1.0 / apm
                    q = mu * inv
                    r = q * (a * inv)  # q (1 - q)
                    o1 = 1.0 - 2.0 * q
                    w = nk * a + sk
                    wr = w * r
                    lg = vlog(apm)
                    ll[j] += sk * pk - w * lg
                    nlg[j] += nk * lg
                    h[j] -= wr
                    t[j] -= wr * o1
                    f4[j] -= wr * (1.0 - 6.0 * r)
                    f5[j] -= wr * o1 * (1.0 - 12.0 * r)
        rows, plays = work[6], work[7]
        for j in range(nb):
            if poisson:
                h[j] += t[j]
                f4[j] = t[j]
                f5[j] = t[j]
            hess[b0 + j] = h[j]
            if not full:
                continue
            ll[j] += eta[j] * plays[j] + (0.0 if poisson else a * log_a * rows[j])
            d = eta[j] - mb[j]
            hi = 1.0 / h[j]
            hi2 = hi * hi
            hi3 = hi2 * hi
            tj = t[j]
            # second order: f4 / (8 H^2) + 5 f3^2 / (24 (-H)^3)
            val = (ll[j] - log_s - 0.5 * d * d * inv_s2 - 0.5 * vlog(-h[j])
                   + f4[j] * hi2 / 8.0 - 5.0 * tj * tj * hi3 / 24.0)
            value += val
            value_u[b0 + j] = val
            if not grad:
                continue
            # total derivative: f_psi + c_h H_psi + c_t f3_psi + c_4 f4_psi - c_g g_psi
            c = -0.5 * hi
            a_h = -f4[j] * hi3 / 4.0 + 5.0 * tj * tj * hi2 * hi2 / 8.0
            a_t = -5.0 * tj * hi3 / 12.0
            a_4 = hi2 / 8.0
            b = a_4 * f5[j] + a_h * tj + a_t * f4[j]
            c_h[j] = c + a_h
            c_t[j] = a_t
            c_4[j] = a_4
            c_g[j] = (c * tj + b) * hi
            g_m[b0 + j] = d * inv_s2 - c_g[j] * inv_s2
            g_s += (-1.0 / s + d * d * inv_s2 / s
                    + c_h[j] * 2.0 * inv_s2 / s - c_g[j] * 2.0 * d * inv_s2 / s)
        if not grad:
            continue
        # pass 2: per cell, the period gradient and the alpha partials of the cell
        # terms; d/dalpha of -w P(q) is -n P(q) + w P'(q) r / alpha
        for j in range(nb):
            da[j] = (log_a + 1.0) * rows[j] - nlg[j]
            dg_a[j] = 0.0
            dh_a[j] = 0.0
            dt_a[j] = 0.0
            d4_a[j] = 0.0
        for k in range(n_cols):
            ek = e_phi[k]
            total_k = 0.0
            if poisson:
                for j in range(nb):
                    nmu = n[k, b0 + j] * e[j] * ek
                    total_k += (total[k, b0 + j] - nmu
                                - nmu * (c_h[j] + c_t[j] + c_4[j] - c_g[j]))
            else:
                for j in range(nb):
                    nk = n[k, b0 + j]
                    sk = total[k, b0 + j]
                    mu = e[j] * ek
                    inv = 1.0 / (a + mu)
                    q = mu * inv
                    r = q * (a * inv)
                    o1 = 1.0 - 2.0 * q
                    p4 = 1.0 - 6.0 * r
                    p5 = 1.0 - 12.0 * r
                    w = nk * a + sk
                    wr = w * r
                    total_k += (sk - w * q
                                - wr * (c_h[j] * o1 + c_t[j] * p4 + c_4[j] * o1 * p5 - c_g[j]))
                    wra = wr * inv_a
                    nr = nk * r
                    da[j] -= w * inv
                    dg_a[j] += q * (sk - nk * mu) * inv
                    dh_a[j] += wra * o1 - nr
                    dt_a[j] += wra * p4 - nr * o1
                    d4_a[j] += wra * o1 * p5 - nr * p4
            g_phi[k] += total_k
        if not poisson:
            for j in range(nb):
                g_a += (da[j] + c_h[j] * dh_a[j] + c_t[j] * dt_a[j] + c_4[j] * d4_a[j]
                        - c_g[j] * dg_a[j])
    return value, g_m, g_s, g_phi, g_a, eta_hat, hess, value_u


def laplace_users(
    n: np.ndarray, total: np.ndarray, m: np.ndarray, sigma: float, phi: np.ndarray,
    alpha: float | None, *, grad: bool = True, values: bool = True,
) -> dict[str, Any]:
    r"""Laplace approximation of every user's marginal likelihood, and its gradient.

    Parameters
    ----------
    n, total : numpy.ndarray
        Rows and summed plays per cell, shape ``(users, columns)``.
    m : numpy.ndarray
        Prior mean of each user's log-rate (intercept plus segment effects), ``(users,)``.
    sigma : float
        Prior standard deviation of the user log-rates.
    phi : numpy.ndarray
        Period part of the log-mean of each column, ``(columns,)``.
    alpha : float or None
        Negative binomial dispersion; None for the Poisson.
    grad : bool, default True
        Also compute the gradient.
    values : bool, default True
        Compute the values; with ``values=False`` and ``grad=False`` only
        ``eta_hat`` and ``hess`` are meaningful.

    Returns
    -------
    dict
        ``value`` (the summed approximate log marginal, without the
        :math:`\log\Gamma` and :math:`\log y!` histogram terms), ``value_u`` (per
        user), ``eta_hat`` and ``hess`` (mode and second derivative of each
        user's log joint), and with ``grad`` the gradients ``g_m``, ``g_sigma``,
        ``g_phi`` and ``g_alpha``.
    """
    poisson = alpha is None
    out = _laplace_kernel(np.ascontiguousarray(np.asarray(n, dtype=float).T),
                          np.ascontiguousarray(np.asarray(total, dtype=float).T),
                          np.ascontiguousarray(m, dtype=float), float(sigma),
                          np.ascontiguousarray(phi, dtype=float),
                          1.0 if poisson else float(alpha), poisson, grad, values)
    keys = ("value", "g_m", "g_sigma", "g_phi", "g_alpha", "eta_hat", "hess", "value_u")
    return dict(zip(keys, out, strict=True))


class LaplaceUserLogp(Op):
    r"""Laplace-approximate log marginal likelihood of the plays, user effects integrated out.

    Inputs: ``n`` and ``total`` (rows and summed plays per cell, ``(columns,
    users)``, C-contiguous data), ``m`` (prior mean of each user's log-rate, ``(users,)``),
    ``sigma`` (), ``phi`` (``(columns,)``) and ``alpha`` () (ignored, with a zero
    gradient, for the Poisson). Outputs: the value and its gradients with respect
    to ``m``, ``sigma``, ``phi`` and ``alpha`` (see the module docstring).

    Parameters
    ----------
    likelihood : {"negbin", "poisson"}
        The count distribution of a cell's rows.
    """

    __props__ = ("likelihood",)

    def __init__(self, likelihood: str = "negbin") -> None:
        if likelihood not in ("negbin", "poisson"):
            raise ValueError("The 'likelihood' parameter of LaplaceUserLogp must be one of "
                             f"['negbin', 'poisson']. Got {likelihood!r} instead.")
        self.likelihood = likelihood

    def make_node(self, n: Any, total: Any, m: Any, sigma: Any, phi: Any, alpha: Any) -> Apply:
        """Build the node from the data grids and the population parameters."""
        inputs = [pt.as_tensor_variable(v, dtype="float64")
                  for v in (n, total, m, sigma, phi, alpha)]
        outputs = [pt.dscalar(), pt.dvector(), pt.dscalar(), pt.dvector(), pt.dscalar()]
        return Apply(self, inputs, outputs)

    def perform(self, node: Apply, inputs: Sequence[np.ndarray], outputs: Any) -> None:
        """Solve for the modes and evaluate value and gradients (numba)."""
        n, total, m, sigma, phi, alpha = inputs
        out = _laplace_kernel(np.ascontiguousarray(n), np.ascontiguousarray(total), m,
                              float(sigma), phi, float(alpha), self.likelihood == "poisson",
                              True)
        outputs[0][0] = np.asarray(out[0])
        outputs[1][0] = out[1]
        outputs[2][0] = np.asarray(out[2])
        outputs[3][0] = out[3]
        outputs[4][0] = np.asarray(out[4])

    def pullback(
        self, inputs: Sequence[Any], outputs: Sequence[Any], cotangents: Sequence[Any]
    ) -> list[Any]:
        """Chain rule through the value output (the data inputs are not differentiated)."""
        out = cotangents[0]
        return [disconnected_type(), disconnected_type(), *[out * g for g in outputs[1:]]]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Say which inputs feed which outputs: the data grids feed none."""
        n_out = len(node.outputs)
        return [[False] * n_out, [False] * n_out] + [[True] * n_out] * 4


_KERNEL_VERSION = source_salt(__file__)


@register_funcify_default_op_cache_key(LaplaceUserLogp)
def _numba_laplace(op: LaplaceUserLogp, node: Any = None, **kwargs: Any) -> Any:
    """Compiled implementation of :class:`LaplaceUserLogp` for the numba backend."""
    poisson = op.likelihood == "poisson"

    @numba.njit(error_model="numpy")
    def laplace_user_logp(n, total, m, sigma, phi, alpha):  # pragma: no cover - compiled
        out = _laplace_kernel(n, total, m, sigma.item(), phi, alpha.item(), poisson, True)
        return (np.asarray(out[0]), out[1], np.asarray(out[2]), out[3], np.asarray(out[4]))

    return laplace_user_logp, _KERNEL_VERSION


# ------------------------------------------------------------------ user draws and checks
@numba.njit(cache=True, error_model="numpy")
def _user_log_joint(
    n: np.ndarray, total: np.ndarray, eta: np.ndarray, m: np.ndarray, s: float,
    phi: np.ndarray, a: float, poisson: bool,
) -> np.ndarray:  # pragma: no cover - compiled
    r"""Exact log joint :math:`f_u(\eta_u)` of each user (no histogram terms)."""
    n_users, n_cols = n.shape
    out = np.empty(n_users)
    log_a = np.log(a) if not poisson else 0.0
    for u in range(n_users):
        e = np.exp(eta[u])
        d = eta[u] - m[u]
        v = -0.5 * _LOG_2PI - np.log(s) - 0.5 * d * d / (s * s)
        for k in range(n_cols):
            nk = n[u, k]
            if nk == 0.0:
                continue
            sk = total[u, k]
            mu = e * np.exp(phi[k])
            if poisson:
                v += sk * (eta[u] + phi[k]) - nk * mu
            else:
                v += nk * a * log_a - (nk * a + sk) * np.log(a + mu) + sk * (eta[u] + phi[k])
        out[u] = v
    return out


@numba.njit(parallel=True, cache=True, error_model="numpy", fastmath=_FAST)
def _draw_kernel(
    n: np.ndarray, total: np.ndarray, base: np.ndarray, effects: np.ndarray,
    codes: np.ndarray, sigma: np.ndarray, phi: np.ndarray, alpha: np.ndarray,
    poisson: bool, start: np.ndarray, check: np.ndarray, out: np.ndarray,
    z_check: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Turn standard normal ``out`` (draws x users) into draws of the Laplace conditionals.

    Posterior draws run in parallel; in each, a user's prior mean is ``base[i]`` plus
    ``effects[i, codes[u, g]]`` over the groups ``g``; ``n`` and ``total`` are
    ``(columns, users)``. The normals of the users in ``check`` are kept in
    ``z_check``; the Newton steps start from ``start`` and stop at ``_DRAW_TOL``.
    """
    n_draws = out.shape[0]
    n_cols, n_users = n.shape
    for i in numba.prange(n_draws):
        row = out[i]
        for c in range(check.shape[0]):
            z_check[i, c] = row[check[c]]
        inv_s2 = 1.0 / (sigma[i] * sigma[i])
        e_phi = np.exp(phi[i])
        a = alpha[i]
        work = np.empty((9, _BLOCK))
        active = np.empty(_BLOCK, dtype=np.int64)
        mb = np.empty(_BLOCK)
        eta = np.empty(_BLOCK)
        h = np.empty(_BLOCK)
        for b0 in range(0, n_users, _BLOCK):
            nb = min(_BLOCK, n_users - b0)
            for j in range(nb):
                v = base[i]
                for c in range(codes.shape[1]):
                    v += effects[i, codes[b0 + j, c]]
                mb[j] = v
            _newton_block(n, total, b0, nb, mb, inv_s2, e_phi, a, poisson, eta, work,
                          active, start, _DRAW_TOL)
            for j in range(nb):
                h[j] = -inv_s2
                work[4, j] = vexp(eta[j])
            for k in range(n_cols):
                ek = e_phi[k]
                if poisson:
                    for j in range(nb):
                        h[j] -= n[k, b0 + j] * work[4, j] * ek
                else:
                    for j in range(nb):
                        mu = work[4, j] * ek
                        inv = 1.0 / (a + mu)
                        h[j] -= (n[k, b0 + j] * a + total[k, b0 + j]) * a * mu * inv * inv
            for j in range(nb):
                row[b0 + j] = eta[j] + row[b0 + j] / np.sqrt(-h[j])


def _standard_normals(rng: np.random.Generator, n_draws: int, n_users: int) -> np.ndarray:
    """``(n_draws, n_users)`` standard normals, a block of draws per generator, two threads.

    Each block of ``_NORMAL_BLOCK`` draws has its own generator, spawned from one seed
    drawn from ``rng``, so the numbers do not depend on which thread fills which
    block; numpy releases the GIL while filling, and the threads also share the cost
    of first touching the (large) array.
    """
    out = np.empty((n_draws, n_users))
    starts = range(0, n_draws, _NORMAL_BLOCK)
    children = np.random.SeedSequence(int(rng.integers(2**63))).spawn(len(starts))

    def fill(job: tuple[int, np.random.SeedSequence]) -> None:
        b0, seed = job
        np.random.default_rng(seed).standard_normal(out=out[b0:b0 + _NORMAL_BLOCK])

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(fill, zip(starts, children, strict=True)))
    return out


def draw_user_log_rates_laplace(
    n: np.ndarray, total: np.ndarray, base: np.ndarray, sigma: np.ndarray,
    phi: np.ndarray, alpha: np.ndarray | None, rng: np.random.Generator, *,
    effects: np.ndarray | None = None, codes: np.ndarray | None = None,
    check: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Draw each user's log-rate from its Laplace conditional, once per posterior draw.

    Parameters
    ----------
    n, total : numpy.ndarray
        Rows and summed plays per cell, ``(users, columns)``.
    base : numpy.ndarray
        ``(draws,)``: the intercept, the prior mean of every user's log-rate before
        the segment effects.
    sigma : numpy.ndarray
        ``(draws,)``.
    phi : numpy.ndarray
        ``(draws, columns)``.
    alpha : numpy.ndarray or None
        ``(draws,)``; None for the Poisson.
    rng : numpy.random.Generator
        Source of the seeds of the normal draws (one per block of posterior draws,
        filled by two threads; the draws are the same whatever the threads).
    effects : numpy.ndarray, optional
        ``(draws, levels)``: segment effects, the levels of all groups side by side.
    codes : numpy.ndarray of int, optional
        ``(users, groups)``: each user's level of each group, as a column of
        ``effects``; a user's prior mean is ``base`` plus those effects.
    check : numpy.ndarray of int, optional
        Users whose importance log-weights to return.

    Returns
    -------
    draws : numpy.ndarray
        ``(draws, users)``: :math:`\eta_u \sim N(\hat\eta_u, -1/H_u)` given each draw
        (the draws run in parallel, compiled with numba).
    log_weights : numpy.ndarray or None
        ``(min(draws, CHECK_DRAWS), len(check))``: :math:`\log p(y_u, \eta_u \mid
        \psi) - \log q(\eta_u) - \log \hat p(y_u \mid \psi)`, exact joint over
        the approximate one, for the users in ``check``, on ``CHECK_DRAWS`` evenly
        spaced posterior draws (all of them when there are fewer).
    """
    n_draws, n_users = len(sigma), n.shape[0]
    if effects is None or codes is None:
        effects, codes = np.zeros((n_draws, 1)), np.zeros((n_users, 0), dtype=np.int64)
    effects = np.ascontiguousarray(effects, dtype=float)
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    base = np.ascontiguousarray(base, dtype=float)
    sigma = np.ascontiguousarray(sigma, dtype=float)
    phi = np.ascontiguousarray(phi, dtype=float)
    poisson = alpha is None
    a_all = np.ones(n_draws) if poisson else np.ascontiguousarray(alpha, dtype=float)
    n_t = np.ascontiguousarray(np.asarray(n, dtype=float).T)
    total_t = np.ascontiguousarray(np.asarray(total, dtype=float).T)
    # Newton starts from the modes at the posterior mean: a step or two from each draw's
    start = _laplace_kernel(n_t, total_t, base.mean() + effects.mean(axis=0)[codes].sum(axis=1),
                            float(sigma.mean()), phi.mean(axis=0), float(a_all.mean()),
                            poisson, False, False)[5]
    checked = np.zeros(0, dtype=np.int64) if check is None else np.asarray(check, np.int64)
    out = _standard_normals(rng, n_draws, n_users)
    z = np.empty((n_draws, len(checked)))
    _draw_kernel(n_t, total_t, base, effects, codes, sigma, phi, a_all, poisson, start,
                 checked, out, z)
    if check is None:
        return out, None
    kept = np.unique(np.linspace(0, n_draws - 1, min(n_draws, CHECK_DRAWS)).round().astype(int))
    lw = np.empty((len(kept), len(check)))
    n_c, total_c, codes_c = n[check], total[check], codes[check]
    for row, i in enumerate(kept):
        a = None if poisson else float(a_all[i])
        m = base[i] + effects[i][codes_c].sum(axis=1)
        sub = laplace_users(n_c, total_c, m, float(sigma[i]), phi[i], a, grad=False)
        joint = _user_log_joint(n_c, total_c, out[i, check], m, float(sigma[i]), phi[i],
                                float(a_all[i]), poisson)
        log_q = -0.5 * _LOG_2PI + 0.5 * np.log(-sub["hess"]) - 0.5 * z[i] ** 2
        lw[row] = joint - log_q - sub["value_u"]
    return out, lw


def laplace_pareto_k(log_weights: np.ndarray) -> np.ndarray:
    """Pareto k of each user's importance weights (``(draws, users)`` -> ``(users,)``).

    Users whose log-weights vary by less than ``LOG_WEIGHT_SD`` (sd) get k = 0: the
    approximation is then exact to a few percent whatever shape the tiny variation has.

    Uses the PSIS implementation of ``arviz_stats`` (Vehtari et al. 2024, "Pareto
    smoothed importance sampling"): k below 0.7 means the Laplace conditional and
    marginal of that user are close enough to the exact ones for importance
    sampling to correct them; above, they are measurably off.
    """
    _, khat = array_stats.psislw(np.ascontiguousarray(log_weights.T), axis=-1)
    return np.where(log_weights.std(axis=0) > LOG_WEIGHT_SD, np.asarray(khat, dtype=float), 0.0)


def check_users(
    totals: np.ndarray, n_check: int, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Users to check: half those with the fewest plays, half at random.

    Returns their indices (sorted, unique) and how many users each stands for: 1 for
    the lightest users, the rest of the users over the random ones' number for
    those; with ``n_check`` users or fewer, every user, each standing for one.
    """
    n_users = len(totals)
    if n_users <= n_check:
        return np.arange(n_users), np.ones(n_users)
    few = np.argsort(totals, kind="stable")[: n_check // 2]
    rest = np.setdiff1d(np.arange(n_users), few)
    rand = rng.choice(rest, n_check - len(few), replace=False)
    users = np.concatenate([few, rand])
    weights = np.concatenate([np.ones(len(few)), np.full(len(rand), len(rest) / len(rand))])
    order = np.argsort(users)
    return users[order], weights[order]


def summarize_check(
    khat: np.ndarray, totals: np.ndarray, weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """Summarise the Pareto k of the checked users (``totals``: their plays).

    Keys: ``n_checked``, ``n_high_k`` (k > 0.7), ``max_k``, ``max_plays_high_k`` (most
    plays of a user with k > 0.7, or -1), ``threshold`` and ``share_high_k``: the
    estimated share of *all* users with k > 0.7, each checked user counted ``weights``
    times (see :func:`check_users`; the lightest users are over-represented in the
    check, on purpose).
    """
    high = khat > K_THRESHOLD
    w = np.ones(len(khat)) if weights is None else np.asarray(weights, dtype=float)
    return dict(n_checked=int(len(khat)), n_high_k=int(high.sum()),
                max_k=float(np.max(khat)) if len(khat) else float("nan"),
                max_plays_high_k=int(totals[high].max()) if high.any() else -1,
                threshold=K_THRESHOLD,
                share_high_k=float(w[high].sum() / w.sum()) if len(w) else 0.0)


def report_check(report: FitReport, check: dict[str, Any]) -> FitReport:
    """Add a caution (and advice) when more than ``WARN_SHARE`` of the users have k > 0.7.

    The share is estimated from the checked users, each weighted by how many users it
    stands for (fits saved before the weights: the checked users' share). Otherwise
    a note says how many checked users were flagged.
    """
    share = check.get("share_high_k", check["n_high_k"] / max(check["n_checked"], 1))
    counted = (f"{check['n_high_k']:,} of the {check['n_checked']:,} users checked (half "
               f"of them those with the fewest plays) have Pareto k above "
               f"{check['threshold']} with log-weights varying by more than {LOG_WEIGHT_SD} "
               f"sd (max k {check['max_k']:.2f}; the most plays among them: "
               f"{check['max_plays_high_k']:,}); an estimated {share:.2%} of all users")
    if share <= WARN_SHARE:
        note = f"Laplace user effects: {counted}." + (
            " Their user effect draws (normal approximations) are off in the tails."
            if check["n_high_k"] else "")
        return replace(report, notes=[*report.notes, note])
    caution = (
        f"Laplace user effects: {counted}: their conditional posteriors are measurably "
        "non-normal, so their effects and, with many such users, the population "
        "parameters may be off.")
    advice = ("Refit with user_inference='sample' (on a subsample of users if the data are "
              "large) and compare; users with very few plays are the usual cause.")
    return replace(report, verdict="warn" if report.verdict == "pass" else report.verdict,
                   cautions=[*report.cautions, caution], advice=[*report.advice, advice])


class LaplaceCheckedFit:
    """Mixin of the models that can integrate their user effects out (Laplace).

    Their fit keeps the Pareto-k check of the users' Laplace conditionals in
    ``idata_.attrs["laplace_check"]`` (JSON of :func:`summarize_check`); this adds it
    to ``fit_report_`` (so a fit loaded from disk reports it too) and warns with an
    :class:`~models.exceptions.ApproximationWarning` when it cautions. Put it before
    the model's base class.
    """

    @property
    def fit_report_(self) -> FitReport:
        """Convergence checks of the fit (see :func:`models.diagnostics.check_fit`).

        With ``user_inference="laplace"`` they include the Pareto-k check of the
        users' Laplace conditionals, which the fit keeps in ``idata_.attrs``: a
        fit loaded with :meth:`load` reports it too.
        """
        try:
            report = self.__dict__["_fit_report"]
        except KeyError:
            raise AttributeError("fit_report_") from None
        if self.__dict__.get("_report_without_laplace") or not self.is_fitted:
            return report
        check = json.loads(self.idata_.attrs.get("laplace_check", '{"n_checked": 0}'))
        return report_check(report, check) if check["n_checked"] else report

    @fit_report_.setter
    def fit_report_(self, report: FitReport) -> None:
        self.__dict__["_fit_report"] = report

    def _check(self) -> None:
        self.__dict__["_report_without_laplace"] = True  # the base checks warn on their own
        try:
            super()._check()
        finally:
            del self.__dict__["_report_without_laplace"]
        report = self.fit_report_
        if report.cautions and report.cautions[-1].startswith("Laplace user effects"):
            warnings.warn(ApproximationWarning(report.cautions[-1]), stacklevel=4)
