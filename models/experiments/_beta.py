r"""Exact comparison of two Beta posteriors by one-dimensional quadrature.

The engine's binary metrics have independent posteriors
:math:`p_A \sim \mathrm{Beta}(a_A, b_A)` (control) and
:math:`p_B \sim \mathrm{Beta}(a_B, b_B)` (treatment). Every quantity reported
about them is a one-dimensional integral over the *narrower* of the two
posteriors, with the other one entering through its CDF :math:`I_x(a, b)`:

.. math::

    P(p_B > p_A) &= \int f_B(x)\, I_x(a_A, b_A)\, dx
                  = 1 - \int f_A(x)\, I_x(a_B, b_B)\, dx, \\
    E[(p_A - p_B)^+] &= \int f_B(x)\, E[(p_A - x)^+]\, dx, \qquad
    E[(x - Y)^+] = x\, I_x(a, b) - \tfrac{a}{a+b}\, I_x(a + 1, b), \\
    P(p_B - p_A \le t) &= \int f_A(x)\, I_{x+t}(a_B, b_B)\, dx, \qquad
    P(p_B / p_A - 1 \le r) = \int f_A(x)\, I_{(1+r)x}(a_B, b_B)\, dx

(or the mirror images with the roles swapped). Integrating against the narrower
density keeps the other factor smooth on the scale of the nodes, so a fixed
number of nodes serves posteriors of any width: a Beta with :math:`n = 10^6` is
about :math:`10^{-3}` wide, and a fixed grid on [0, 1] would miss it. "Narrower"
is measured by the sd for the difference and by the sd of :math:`\log p` for the
ratio.

Nodes (:func:`_nodes`): Gauss-Legendre on the narrow posterior's central range
(32 nodes when both its shape parameters are at least 50, 64 otherwise);
tanh-sinh on an interval that reaches 0 (or 1) when a shape parameter is below
3, with the weights completed to the exact mass of the interval so that even a
density as singular as :math:`x^{-0.98}` is integrated to full accuracy. Where
:math:`z(x)`, the point at which the other CDF is read, leaves (0, 1) inside
the range, the integrand has a kink: the quadrature covers the part between the
kinks and the rest adds its mass in closed form. For the ratio, nodes are spaced
in :math:`\log x` where the other CDF behaves like :math:`z^{a}` with
:math:`a < 1`.

The other posterior's CDF is read many times per row (once per node and per step
of the quantile search), and ``betainc`` costs microseconds per value when the
shape parameters are in the thousands. For such posteriors a quintic Hermite
table of the CDF is built once per row from the density (cheap), accurate to
about :math:`10^{-11}`; smaller posteriors call ``betainc`` directly. Quantiles
of the difference and of the relative lift invert the CDFs with safeguarded
Newton steps (the density is the same quadrature), started from a
Cornish-Fisher approximation and kept inside a shrinking bracket; two steps
usually suffice. Arrays have shape ``(rows, nodes)`` and rows are processed in
blocks: one call handles every metric and variant. Against adaptive quadrature
(QUADPACK) the probabilities and the CDFs at the returned quantiles agree to
about :math:`10^{-8}` or better (``tests/experiments/test_conjugate.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

__all__ = ["BetaComparison", "compare_betas"]

#: Nodes per row: posteriors with a shape parameter below TABLE_MIN (few
#: successes or failures: skewed, possibly reaching a boundary) get more.
N_NODES = 32
N_NODES_SMALL = 64
#: Rows are processed in blocks of this many (the arrays stay in cache).
BLOCK = 256
TAIL = 1e-13
#: Below this shape parameter the nodes reach the boundary (tanh-sinh rule).
SHAPE_CUT = 3.0
#: Cells of the CDF tables, and the shape parameter from which a posterior gets one.
K_TABLE = 96
TABLE_MIN = 50.0
_MAX_ITER = 100
_Z_TAIL = -special.ndtri(TAIL)


def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gauss-Legendre rule on [0, 1] as (x, 1 - x, weights)."""
    s, w = np.polynomial.legendre.leggauss(n)
    return (1 + s) / 2, (1 - s) / 2, w / 2


def _tanh_sinh(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tanh-sinh rule on [0, 1] as (x, 1 - x, weights), both ends kept exact."""
    t = (np.arange(n) - (n - 1) / 2) * (8.0 / (n - 1))
    u = np.pi / 2 * np.sinh(t)
    plus, minus = special.expit(2 * u), special.expit(-2 * u)  # (1 +- tanh u) / 2
    w = (8.0 / (n - 1)) * np.pi * np.cosh(t) * plus * minus
    return plus, minus, w


# both rules of one size have the same node count so that rows can mix them
_RULES = {n: (_gauss_legendre(n), _tanh_sinh(n)) for n in (N_NODES, N_NODES_SMALL)}
_CELL_X, _, _CELL_W = _gauss_legendre(3)


class BetaComparison(NamedTuple):
    """Everything the engine reports about ``p_B`` against ``p_A``, one entry per row."""

    prob_b_greater: np.ndarray
    loss_a_greater: np.ndarray  # E[max(p_A - p_B, 0)]
    loss_b_greater: np.ndarray  # E[max(p_B - p_A, 0)]
    diff_ci: tuple[np.ndarray, np.ndarray]
    lift_mean: np.ndarray
    lift_sd: np.ndarray
    lift_ci: tuple[np.ndarray, np.ndarray]
    prob_rope: np.ndarray


# ------------------------------------------------------------------ one posterior
def _logpdf(a, b, x, xc):
    """Beta log-density from ``x`` and ``xc = 1 - x`` (-inf outside (0, 1))."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (a - 1) * np.log(x) + (b - 1) * np.log(xc) - special.betaln(a, b)
    return np.where((x > 0) & (xc > 0), out, -np.inf)


def _pdf(a, b, x):
    inside = (x > 0) & (x < 1)
    xs = np.where(inside, x, 0.5)
    return np.where(inside, np.exp(_logpdf(a, b, xs, 1 - xs)), 0.0)


class _Arm(NamedTuple):
    """One posterior per row: shape parameters, moments and central range."""

    a: np.ndarray
    b: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    skew: np.ndarray
    log_mean: np.ndarray  # E[log p]
    log_var: np.ndarray
    log_k3: np.ndarray  # third cumulant of log p
    lower: np.ndarray  # TAIL and 1 - TAIL quantiles
    upper: np.ndarray


def _arm(a: np.ndarray, b: np.ndarray) -> _Arm:
    mean = a / (a + b)
    var = mean * (1 - mean) / (a + b + 1)
    skew = 2 * (b - a) * np.sqrt(a + b + 1) / ((a + b + 2) * np.sqrt(a * b))
    # central range: exact quantiles for small posteriors; for large ones (nearly
    # normal) a Cornish-Fisher range widened by 10%, which only has to cover them
    sd = np.sqrt(var)
    lower = _cornish_fisher(mean, 1.1 * sd, skew, -_Z_TAIL)
    upper = _cornish_fisher(mean, 1.1 * sd, skew, _Z_TAIL)
    small = np.flatnonzero(np.minimum(a, b) < TABLE_MIN)
    lower[small] = special.betaincinv(a[small], b[small], TAIL)
    upper[small] = special.betainccinv(a[small], b[small], TAIL)
    return _Arm(
        a,
        b,
        mean,
        var,
        skew,
        special.digamma(a) - special.digamma(a + b),
        special.polygamma(1, a) - special.polygamma(1, a + b),
        special.polygamma(2, a) - special.polygamma(2, a + b),
        np.maximum(lower, 0.0),
        np.minimum(upper, 1.0),
    )


def _tables(arm: _Arm, needed: np.ndarray) -> np.ndarray:
    """Quintic Hermite tables of the CDF, shape (rows, K_TABLE + 1, 3).

    Per knot: the CDF, the density times the cell width ``h`` and its derivative
    times ``h**2``; cell integrals by 3-point Gauss-Legendre, summed and pinned to
    the exact CDF at both ends. Rows not ``needed`` are left at zero.
    """
    out = np.zeros((arm.a.size, K_TABLE + 1, 3))
    rows = np.flatnonzero(needed)
    if rows.size == 0:
        return out
    a, b = arm.a[rows, None], arm.b[rows, None]
    lower, upper = arm.lower[rows], arm.upper[rows]
    h = ((upper - lower) / K_TABLE)[:, None]
    knots = lower[:, None] + h * np.arange(K_TABLE + 1)
    pdf = np.exp(_logpdf(a, b, knots, 1 - knots))
    dpdf = pdf * ((a - 1) / knots - (b - 1) / (1 - knots))
    pts = knots[:, :-1, None] + h[..., None] * _CELL_X
    cells = (np.exp(_logpdf(a[..., None], b[..., None], pts, 1 - pts)) @ _CELL_W) * h
    cum = np.concatenate([np.zeros((rows.size, 1)), np.cumsum(cells, axis=1)], axis=1)
    first = special.betainc(arm.a[rows], arm.b[rows], lower)
    last = special.betainc(arm.a[rows], arm.b[rows], upper)
    scale = ((last - first) / cum[:, -1])[:, None]
    out[rows, :, 0] = first[:, None] + cum * scale
    out[rows, :, 1] = pdf * scale * h
    out[rows, :, 2] = dpdf * scale * h**2
    return out


def _interpolate(flat, base, lower, step, z):
    """CDF and density at ``z`` (rows, nodes) from tables; 0 / 1 outside them.

    ``flat`` holds the three table columns of every table, each flattened;
    ``base`` (rows, 1) is the flat index of each row's first knot.
    """
    u = (z - lower) / step
    j = np.clip(np.floor(u), 0, K_TABLE - 1)
    s = np.clip(u - j, 0.0, 1.0)
    idx = base + j.astype(np.intp)
    f0, d0, c0 = (np.take(col, idx) for col in flat)
    idx += 1
    f1, d1, c1 = (np.take(col, idx) for col in flat)
    r = 1 - s
    s2 = s * s
    h1 = s2 * s * (10 - 15 * s + 6 * s2)
    cdf = (
        f0
        + (f1 - f0) * h1
        + s * r**3 * (1 + 3 * s) * d0
        - s2 * s * (4 - 7 * s + 3 * s2) * d1
        + s2 * r**3 * c0 / 2
        + s2 * s * r * r * c1 / 2
    )
    dcdf = (
        30 * s2 * r * r * (f1 - f0)
        + r * r * (1 + 2 * s - 15 * s2) * d0
        - s2 * (12 - 28 * s + 15 * s2) * d1
        + s * r * r * (2 - 5 * s) * c0 / 2
        + s2 * r * (3 - 5 * s) * c1 / 2
    )
    below, above = u < 0, u > K_TABLE
    cdf = np.where(below, 0.0, np.where(above, 1.0, cdf))
    pdf = np.where(below | above, 0.0, dcdf / step)
    return cdf, pdf


# ------------------------------------------------------------------ a pair of them
class _Pair:
    """Both posteriors of each row, arranged for one scale (difference or ratio).

    Per row the narrow posterior gives the nodes and the other one the CDF.
    """

    def __init__(
        self, arm_a: _Arm, arm_b: _Arm, flat: tuple, tabled, *, ratio: bool, n_nodes: int
    ):
        self.ratio = ratio
        self.n_nodes = n_nodes
        if ratio:
            is_a = arm_a.log_var <= arm_b.log_var
        else:
            is_a = arm_a.var <= arm_b.var
        self.is_a = is_a
        n_rows = is_a.size

        def pick(field: str, narrow: bool) -> np.ndarray:
            va, vb = getattr(arm_a, field), getattr(arm_b, field)
            return np.where(is_a == narrow, va, vb)

        self.a, self.b = pick("a", True), pick("b", True)
        self.a_o, self.b_o = pick("a", False), pick("b", False)
        low_end, high_end = self.a < SHAPE_CUT, self.b < SHAPE_CUT
        self.lower = np.where(low_end, 0.0, pick("lower", True))
        self.upper = np.where(high_end, 1.0, pick("upper", True))
        self.tanh_sinh = low_end | high_end
        # the other posterior's table: A's tables come first in ``flat``
        rows = np.arange(n_rows)
        self.flat = flat
        self.tab_base = ((np.where(is_a, n_rows, 0) + rows) * (K_TABLE + 1))[:, None]
        self.tab_lower = pick("lower", False)
        self.tab_step = (pick("upper", False) - self.tab_lower) / K_TABLE
        self.tabled = np.where(is_a, tabled[1], tabled[0])
        self.log_space = ratio & (self.a_o < 1)
        self.x, self.w = _nodes(
            self.a, self.b, self.lower, self.upper, self.tanh_sinh, n_nodes,
            self.log_space & (self.lower > 0),
        )

    def other_cdf_pdf(self, rows: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CDF and density of the other posterior at ``z`` (len(rows), nodes)."""
        tab = self.tabled[rows]
        cdf, pdf = np.empty(z.shape), np.empty(z.shape)
        if tab.any():
            r = rows[tab]
            cdf[tab], pdf[tab] = _interpolate(
                self.flat,
                self.tab_base[r],
                self.tab_lower[r, None],
                self.tab_step[r, None],
                z[tab],
            )
        if not tab.all():
            r = rows[~tab]
            a, b = self.a_o[r, None], self.b_o[r, None]
            cdf[~tab] = special.betainc(a, b, np.clip(z[~tab], 0.0, 1.0))
            pdf[~tab] = _pdf(a, b, z[~tab])
        return cdf, pdf

    def cdf_pdf(self, t: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CDF and density of the difference (or of the lift) at ``t``, per row."""
        is_a = self.is_a[rows]
        if self.ratio:
            # narrow A: P(pB <= (1+t) x), z = (1+t) x, 1 above x = 1/(1+t)
            # narrow B: P(pA >= x/(1+t)), z = x/(1+t), 0 above x = 1+t
            kink_lo = np.zeros_like(t)
            kink_hi = np.where(is_a, 1 / (1 + t), 1 + t)
        else:
            # narrow A: P(pB <= x + t), z = x + t: 0 below -t, 1 above 1 - t
            # narrow B: P(pA >= x - t), z = x - t: 1 below t, 0 above 1 + t
            kink_lo = np.where(is_a, -t, t)
            kink_hi = np.where(is_a, 1 - t, 1 + t)
        lower, upper = self.lower[rows], self.upper[rows]
        cut_lo, cut_hi = kink_lo > lower, kink_hi < upper
        cut = cut_lo | cut_hi
        x, w = self.x[rows], self.w[rows]
        if cut.any():
            # at a kink the other CDF behaves like z^a_o (z -> 0) or 1 - (1-z)^b_o
            # (z -> 1): tanh-sinh where that exponent is small, Gauss-Legendre else
            c = rows[cut]
            lo = np.maximum(lower[cut], kink_lo[cut])
            ts = (
                self.tanh_sinh[c]
                | (cut_lo[cut] & (self.a_o[c] < SHAPE_CUT))
                | (cut_hi[cut] & (self.b_o[c] < SHAPE_CUT))
            )
            x[cut], w[cut] = _nodes(
                self.a[c],
                self.b[c],
                lo,
                np.maximum(np.minimum(upper[cut], kink_hi[cut]), lo),
                ts,
                self.n_nodes,
                self.log_space[c] & (lo > 0),
            )
        tt = t[:, None]
        ia = is_a[:, None]
        if self.ratio:
            z = np.where(ia, x * (1 + tt), x / (1 + tt))
            jac = np.where(ia, x, x / (1 + tt) ** 2)
        else:
            z = np.where(ia, x + tt, x - tt)
            jac = 1.0
        cdf_o, pdf_o = self.other_cdf_pdf(rows, z)
        a, b = self.a[rows], self.b[rows]
        outside = np.where(
            is_a,
            special.betaincc(a, b, np.clip(kink_hi, 0.0, 1.0)),
            special.betainc(a, b, np.clip(kink_lo, 0.0, 1.0)),
        )
        cdf = outside + np.sum(w * np.where(ia, cdf_o, 1 - cdf_o), axis=1)
        pdf = np.sum(w * pdf_o * jac, axis=1)
        return np.clip(cdf, 0.0, 1.0), pdf


def _nodes(a, b, lower, upper, tanh_sinh, n_nodes, log_space=None):
    r"""Nodes on ``[lower, upper]`` per row and weights times the Beta(a, b) density.

    Rows with ``log_space`` (``lower > 0``) have their nodes spaced in
    :math:`\log x`; the ratio uses them where the other posterior's CDF, read at
    :math:`x / (1 + r)`, behaves like :math:`x^{a}` with :math:`a < 1`: smooth in
    :math:`\log x`, not in :math:`x`.

    With a shape parameter well below 1 the density is strongly singular at an end
    (the CDF grows like :math:`x^a`) and even tanh-sinh misses part of its mass
    near that end. The weights of tanh-sinh rows are therefore completed to the
    exact mass of the interval (``betainc``), the difference going to the node
    nearest the singular end: the integral of ``f g`` becomes that of
    ``f (g - g(end))``, which is mild, plus ``g(end)`` times the exact mass.
    """
    gl, ts = _RULES[n_nodes]
    use_ts = tanh_sinh[:, None]
    plus = np.where(use_ts, ts[0], gl[0])
    minus = np.where(use_ts, ts[1], gl[1])
    w = np.where(use_ts, ts[2], gl[2])
    width = np.maximum(upper - lower, 0.0)[:, None]
    x = lower[:, None] + width * plus
    xc = (1 - upper)[:, None] + width * minus  # 1 - x without cancellation
    jac = width
    if log_space is not None and log_space.any():
        logs = log_space[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_lo, log_hi = np.log(lower)[:, None], np.log(upper)[:, None]
            x_log = np.exp(log_lo + (log_hi - log_lo) * plus)
        x = np.where(logs, x_log, x)
        xc = np.where(logs, 1 - x_log, xc)
        jac = np.where(logs, (log_hi - log_lo) * x_log, width)
    weight = w * jac * np.exp(_logpdf(a[:, None], b[:, None], x, xc))
    rows = np.flatnonzero(tanh_sinh & (width[:, 0] > 0))
    if rows.size:
        ar, br = a[rows], b[rows]
        mass = special.betainc(ar, br, upper[rows]) - special.betainc(ar, br, lower[rows])
        missing = mass - weight[rows].sum(axis=1)
        at_low = ar <= br
        weight[rows[at_low], 0] += missing[at_low]
        weight[rows[~at_low], -1] += missing[~at_low]
    return x, weight


def _solve(pair: _Pair, target: float, start, lower, upper, scale=None) -> np.ndarray:
    """Safeguarded Newton: the ``t`` per row with ``cdf(t) = target``.

    The difference stops at steps below ``1e-9 * scale`` (its sd); the lift, whose
    distribution can span many orders of magnitude, at steps below ``1e-10`` of
    ``1 + t``, and bisects the bracket geometrically in ``1 + t``.
    """
    t = np.clip(start, np.nextafter(lower, upper), np.nextafter(upper, lower))
    lo, hi = lower.astype(float), upper.astype(float)
    active = np.flatnonzero(np.isfinite(t))
    out = np.full(t.shape, np.nan)
    for _ in range(_MAX_ITER):
        if active.size == 0:
            break
        ta = t[active]
        cdf, pdf = pair.cdf_pdf(ta, active)
        resid = cdf - target
        lo[active] = np.where(resid < 0, ta, lo[active])
        hi[active] = np.where(resid >= 0, ta, hi[active])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = resid / pdf
        new = ta - step
        la, ha = lo[active], hi[active]
        bad = ~np.isfinite(new) | (new <= la) | (new >= ha)
        if pair.ratio:
            tol = 1e-10 * (1 + np.abs(ta))
            with np.errstate(invalid="ignore", over="ignore"):
                middle = np.where(la > -1, np.sqrt((1 + la) * (1 + ha)) - 1, (la + ha) / 2)
            middle = np.where(np.isfinite(ha), middle, 2 * la + 2)
        else:
            tol = 1e-9 * scale[active]
            middle = (la + ha) / 2
        new = np.where(bad, middle, new)
        done = (~bad & (np.abs(step) <= tol)) | (np.abs(resid) <= 1e-14) | (ha - la <= tol)
        t[active] = new
        out[active[done]] = np.where(np.abs(resid[done]) <= 1e-14, ta[done], new[done])
        active = active[~done]
    out[active] = t[active]
    return out


def _cornish_fisher(mean, sd, skew, z):
    return mean + sd * (z + (z**2 - 1) * skew / 6)


def compare_betas(
    a_a: np.ndarray,
    b_a: np.ndarray,
    a_b: np.ndarray,
    b_b: np.ndarray,
    *,
    ci_prob: float,
    rope: np.ndarray | None = None,
) -> BetaComparison:
    """Compare Beta posteriors of control (A) and treatment (B) row by row.

    Parameters
    ----------
    a_a, b_a, a_b, b_b : numpy.ndarray
        Posterior shape parameters, shape ``(rows,)``.
    ci_prob : float
        Probability of the equal-tailed intervals.
    rope : numpy.ndarray, optional
        Half-width of the region of practical equivalence of the relative lift,
        per row (NaN: none).

    Returns
    -------
    BetaComparison
    """
    params = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a_a, b_a, a_b, b_b)))
    params = [np.ravel(v) for v in params]
    n_rows = params[0].size
    rope = np.full(n_rows, np.nan) if rope is None else np.broadcast_to(rope, (n_rows,))
    small = np.min(params, axis=0) < TABLE_MIN
    parts = []
    groups = ((np.flatnonzero(~small), N_NODES), (np.flatnonzero(small), N_NODES_SMALL))
    for group, n_nodes in groups:
        for start in range(0, group.size, BLOCK):
            rows = group[start : start + BLOCK]
            parts.append((rows, _compare(*(v[rows] for v in params), ci_prob, rope[rows], n_nodes)))
    out = [np.empty(n_rows) for _ in range(10)]
    for rows, res in parts:
        flat_res = [res[0], res[1], res[2], *res[3], res[4], res[5], *res[6], res[7]]
        for target, value in zip(out, flat_res, strict=True):
            target[rows] = value
    return BetaComparison(
        out[0], out[1], out[2], (out[3], out[4]), out[5], out[6], (out[7], out[8]), out[9]
    )


def _compare(a_a, b_a, a_b, b_b, ci_prob, rope, n_nodes) -> BetaComparison:
    arm_a, arm_b = _arm(a_a, b_a), _arm(a_b, b_b)
    # a posterior gets a table where it is the wider one on either scale
    wide_a = (arm_a.var > arm_b.var) | (arm_a.log_var > arm_b.log_var)
    wide_b = (arm_a.var <= arm_b.var) | (arm_a.log_var <= arm_b.log_var)
    tabled = tuple(
        (arm.a >= TABLE_MIN) & (arm.b >= TABLE_MIN) & wide
        for arm, wide in ((arm_a, wide_a), (arm_b, wide_b))
    )
    stacked = np.concatenate([_tables(arm_a, tabled[0]), _tables(arm_b, tabled[1])])
    flat = tuple(np.ascontiguousarray(stacked[..., k]).ravel() for k in range(3))
    diff = _Pair(arm_a, arm_b, flat, tabled, ratio=False, n_nodes=n_nodes)
    lift = _Pair(arm_a, arm_b, flat, tabled, ratio=True, n_nodes=n_nodes)

    # P(better) and expected losses over the difference pair's nodes
    rows = np.arange(arm_a.a.size)
    x, w = diff.x, diff.w
    a_o, b_o = diff.a_o[:, None], diff.b_o[:, None]
    cdf_o, _ = diff.other_cdf_pdf(rows, x)
    with np.errstate(divide="ignore"):  # I_x(a + 1, b) = I_x(a, b) - x^a (1-x)^b / (a B(a, b))
        cdf_o1 = cdf_o - np.exp(
            a_o * np.log(x) + b_o * np.log1p(-x) - np.log(a_o) - special.betaln(a_o, b_o)
        )
    below = x * cdf_o - a_o / (a_o + b_o) * cdf_o1  # E[(x - Y)^+], Y the other posterior
    other_below = np.sum(w * cdf_o, axis=1)  # P(other <= narrow)
    loss_narrow = np.sum(w * below, axis=1)  # E[(narrow - other)^+]
    prob = np.clip(np.where(diff.is_a, 1 - other_below, other_below), 0.0, 1.0)
    gap = arm_b.mean - arm_a.mean
    loss_a = np.maximum(np.where(diff.is_a, loss_narrow, loss_narrow - gap), 0.0)
    loss_b = np.maximum(loss_a + gap, 0.0)

    probs = ((1 - ci_prob) / 2, (1 + ci_prob) / 2)
    ones = np.ones_like(gap)
    sd = np.sqrt(arm_a.var + arm_b.var)
    skew = (arm_b.skew * arm_b.var**1.5 - arm_a.skew * arm_a.var**1.5) / sd**3
    diff_ci = tuple(
        _solve(diff, q, _cornish_fisher(gap, sd, skew, special.ndtri(q)), -ones, ones, sd)
        for q in probs
    )
    # lift: Cornish-Fisher on log(pB) - log(pA), bracket (-1, q_B(hi) / q_A(lo) - 1)
    log_gap = arm_b.log_mean - arm_a.log_mean
    log_sd = np.sqrt(arm_a.log_var + arm_b.log_var)
    log_skew = (arm_b.log_k3 - arm_a.log_k3) / log_sd**3
    with np.errstate(divide="ignore"):
        upper = arm_b.upper / arm_a.lower - 1
    upper = np.where(np.isfinite(upper), upper, np.inf)
    lift_ci = tuple(
        _solve(
            lift,
            q,
            np.expm1(_cornish_fisher(log_gap, log_sd, log_skew, special.ndtri(q))),
            -ones,
            upper,
        )
        for q in probs
    )
    # exact moments of pB / pA - 1 (the mean is finite for a_A > 1, the sd for a_A > 2)
    aa, ba = arm_a.a, arm_a.b
    with np.errstate(divide="ignore", invalid="ignore"):
        inv1 = np.where(aa > 1, (aa + ba - 1) / (aa - 1), np.nan)
        inv2 = np.where(aa > 2, inv1 * (aa + ba - 2) / (aa - 2), np.nan)
        lift_mean = arm_b.mean * inv1 - 1
        second_b = arm_b.mean * (arm_b.a + 1) / (arm_b.a + arm_b.b + 1)
        lift_sd = np.sqrt(np.maximum(second_b * inv2 - (arm_b.mean * inv1) ** 2, 0.0))

    prob_rope = np.full(gap.shape, np.nan)
    rows = np.flatnonzero(np.isfinite(rope))
    if rows.size:
        r = rope[rows]
        inside, _ = lift.cdf_pdf(r, rows)
        below_rope, _ = lift.cdf_pdf(np.maximum(-r, np.nextafter(-1.0, 0.0)), rows)
        below_rope = np.where(r >= 1, 0.0, below_rope)
        prob_rope[rows] = np.clip(inside - below_rope, 0.0, 1.0)
    return BetaComparison(prob, loss_a, loss_b, diff_ci, lift_mean, lift_sd, lift_ci, prob_rope)
