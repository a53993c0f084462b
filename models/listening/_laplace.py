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
compiled with numba), and

.. math::

    \log p(y_u \mid \psi) \approx f_u(\hat\eta_u) + \tfrac12 \log 2\pi
        - \tfrac12 \log(-f_u''(\hat\eta_u)).

The gradient with respect to :math:`\psi` follows from the implicit-function theorem:
at the mode :math:`f_u' = 0`, so
:math:`\mathrm d/\mathrm d\psi\, f_u(\hat\eta_u) = \partial f_u / \partial\psi`, and
:math:`\mathrm d H_u/\mathrm d\psi = \partial H_u/\partial\psi + f_u'''\,
\mathrm d\hat\eta_u/\mathrm d\psi` with
:math:`\mathrm d\hat\eta_u/\mathrm d\psi = -(\partial f_u'/\partial\psi) / H_u`.
:class:`LaplaceUserLogp` is that value and gradient as a PyTensor Op (the Newton solve
is inside it); :func:`draw_user_log_rates_laplace` then draws each user's log-rate from
:math:`N(\hat\eta_u, -1/H_u)` once per posterior draw, and :func:`laplace_pareto_k`
checks the approximation on a subsample of users with Pareto-smoothed importance
weights (the users with the fewest plays, where it is worst, and a random set).

The assumption: each user's conditional posterior of :math:`\eta_u` given :math:`\psi`
is close to normal. It is when a user has a few plays or more; with almost none, the
conditional is close to the normal prior, so the approximation is again good; it is
least accurate in between, and for a negative binomial with small :math:`\alpha`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from models.diagnostics.report import FitReport

__all__ = [
    "LaplaceUserLogp",
    "check_users",
    "draw_user_log_rates_laplace",
    "laplace_pareto_k",
    "laplace_users",
    "report_check",
    "summarize_check",
]

_LOG_2PI = float(np.log(2.0 * np.pi))
#: Newton iterations per user at most, the convergence tolerance of a step (Newton
#: converges quadratically: after a step of 1e-3 the mode is exact to about 1e-6, which
#: moves the value by about 1e-12 and the gradient by about 1e-6 of itself) and the
#: largest step (in log-rate units; larger steps are clipped, or bisect the bracket).
_MAX_ITER = 100
_TOL = 1e-3
_MAX_STEP = 2.0
#: Pareto k above which an importance-sampling check is unreliable (Vehtari et al. 2024).
K_THRESHOLD = 0.7
#: A user is flagged only if the sd of their log-weights is also above this: k is blind to
#: the weights' scale, and weights within a few percent of each other change no estimate.
LOG_WEIGHT_SD = 0.1
#: The fit warns when more than this share of the checked users is flagged (a few users
#: out of thousands with extreme play patterns move no population parameter).
WARN_SHARE = 0.01


@numba.njit(cache=True, error_model="numpy")
def _laplace_kernel(
    n: np.ndarray, total: np.ndarray, m: np.ndarray, s: float, phi: np.ndarray, a: float,
    poisson: bool, grad: bool, init: np.ndarray, values: bool = True,
) -> tuple[float, np.ndarray, float, np.ndarray, float, np.ndarray, np.ndarray, np.ndarray]:
    """Laplace marginal, its gradient, the modes, Hessians and per-user values.

    Newton starts from ``init`` (from ``m`` when it is empty). Returns ``(value, g_m,
    g_s, g_phi, g_a, eta_hat, hess, value_u)``; with ``values=False`` (and no
    ``grad``) only the modes and Hessians are computed (no logarithm per cell).
    """
    n_users, n_cols = n.shape
    e_phi = np.exp(phi)
    s2 = s * s
    log_a = np.log(a) if not poisson else 0.0
    g_m = np.zeros(n_users)
    g_phi = np.zeros(n_cols)
    eta_hat = np.empty(n_users)
    hess = np.empty(n_users)
    value_u = np.empty(n_users)
    g_s = 0.0
    g_a = 0.0
    value = 0.0
    h_k = np.empty(n_cols)
    t_k = np.empty(n_cols)
    g_k = np.empty(n_cols)
    warm = init.shape[0] == n_users
    for u in range(n_users):
        mu_u = m[u]
        if warm:
            eta = init[u]
        else:  # the normal prior times a normal approximation of the likelihood
            exposure = 0.0
            rows = 0.0
            plays = 0.0
            for k in range(n_cols):
                exposure += n[u, k] * e_phi[k]
                rows += n[u, k]
                plays += total[u, k]
            eta = mu_u
            if rows > 0.0:
                prec = plays if poisson else a * plays / (a + plays / rows)
                eta = ((mu_u / s2 + prec * np.log((plays + 0.5) / exposure))
                       / (1.0 / s2 + prec))
        lo, hi = -np.inf, np.inf
        for _ in range(_MAX_ITER):
            e = np.exp(eta)
            g = -(eta - mu_u) / s2
            h = -1.0 / s2
            for k in range(n_cols):
                nk = n[u, k]
                if nk == 0.0:
                    continue
                sk = total[u, k]
                mu = e * e_phi[k]
                if poisson:
                    g += sk - nk * mu
                    h -= nk * mu
                else:
                    inv = 1.0 / (a + mu)
                    w = nk * a + sk
                    g += sk - w * mu * inv
                    h -= w * a * mu * inv * inv
            if g > 0.0:
                lo = eta
            else:
                hi = eta
            step = -g / h
            if abs(step) < _TOL:
                eta += step
                break
            step = min(max(step, -_MAX_STEP), _MAX_STEP)
            new = eta + step
            if not (lo < new < hi):
                new = 0.5 * (lo + hi) if np.isfinite(lo) and np.isfinite(hi) else new
            eta = new
        # value and derivatives at the mode
        e = np.exp(eta)
        d = eta - mu_u
        ll = 0.0
        h = -1.0 / s2
        t = 0.0
        da = 0.0
        dh_a = 0.0
        dg_a_sum = 0.0
        for k in range(n_cols):
            nk = n[u, k]
            h_k[k] = 0.0
            if nk == 0.0:
                continue
            sk = total[u, k]
            mu = e * e_phi[k]
            lin = sk * (eta + phi[k])
            if poisson:
                ll += lin - nk * mu
                hk = -nk * mu
                tk = hk
                g_k[k] = sk - nk * mu
            elif not (values or grad):
                inv = 1.0 / (a + mu)
                hk = -(nk * a + sk) * a * mu * inv * inv
                tk = 0.0
            else:
                apm = a + mu
                inv = 1.0 / apm
                w = nk * a + sk
                lg = np.log(apm)
                ll += nk * a * log_a - w * lg + lin
                hk = -w * a * mu * inv * inv
                tk = hk * (a - mu) * inv
                g_k[k] = sk - w * mu * inv
                if grad:
                    da += nk * (log_a + 1.0) - nk * lg - w * inv
                    dga = mu * (sk - nk * mu) * inv * inv
                    dg_a_sum += dga
                    dh_a += -mu * ((nk * a + w) * apm - 2.0 * w * a) * inv * inv * inv
            h += hk
            t += tk
            h_k[k] = hk
            t_k[k] = tk
        val = ll - np.log(s) - 0.5 * d * d / s2 - 0.5 * np.log(-h)
        value += val
        value_u[u] = val
        eta_hat[u] = eta
        hess[u] = h
        if not grad:
            continue
        c = -0.5 / h
        ratio = t / h
        g_m[u] = d / s2 - c * ratio / s2
        g_s += -1.0 / s + d * d / (s2 * s) + c * (2.0 / (s2 * s) - ratio * 2.0 * d / (s2 * s))
        for k in range(n_cols):
            if n[u, k] != 0.0:
                g_phi[k] += g_k[k] + c * (t_k[k] - ratio * h_k[k])
        if not poisson:
            g_a += da + c * (dh_a - ratio * dg_a_sum)
    return value, g_m, g_s, g_phi, g_a, eta_hat, hess, value_u


def laplace_users(
    n: np.ndarray, total: np.ndarray, m: np.ndarray, sigma: float, phi: np.ndarray,
    alpha: float | None, *, grad: bool = True, init: np.ndarray | None = None,
    values: bool = True,
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
    init : numpy.ndarray, optional
        Starting points of the Newton steps, ``(users,)``; ``m`` by default.
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
    out = _laplace_kernel(np.ascontiguousarray(n, dtype=float),
                          np.ascontiguousarray(total, dtype=float),
                          np.ascontiguousarray(m, dtype=float), float(sigma),
                          np.ascontiguousarray(phi, dtype=float),
                          1.0 if poisson else float(alpha), poisson, grad,
                          np.empty(0) if init is None else np.asarray(init, dtype=float),
                          values)
    keys = ("value", "g_m", "g_sigma", "g_phi", "g_alpha", "eta_hat", "hess", "value_u")
    return dict(zip(keys, out, strict=True))


class LaplaceUserLogp(Op):
    r"""Laplace-approximate log marginal likelihood of the plays, user effects integrated out.

    Inputs: ``n`` and ``total`` (rows and summed plays per cell, ``(users,
    columns)``, data), ``m`` (prior mean of each user's log-rate, ``(users,)``),
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
        out = _laplace_kernel(n, total, m, float(sigma), phi, float(alpha),
                              self.likelihood == "poisson", True, np.empty(0))
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
        out = _laplace_kernel(n, total, m, sigma.item(), phi, alpha.item(), poisson, True,
                              np.empty(0))
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


def draw_user_log_rates_laplace(
    n: np.ndarray, total: np.ndarray, mean: Callable[[int], np.ndarray], sigma: np.ndarray,
    phi: np.ndarray, alpha: np.ndarray | None, rng: np.random.Generator, *,
    check: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Draw each user's log-rate from its Laplace conditional, once per posterior draw.

    Parameters
    ----------
    n, total : numpy.ndarray
        Rows and summed plays per cell, ``(users, columns)``.
    mean : callable
        ``mean(i)``: prior means of the user log-rates in posterior draw ``i``,
        ``(users,)`` (a function, so that no draws x users array of them is kept).
    sigma : numpy.ndarray
        ``(draws,)``.
    phi : numpy.ndarray
        ``(draws, columns)``.
    alpha : numpy.ndarray or None
        ``(draws,)``; None for the Poisson.
    rng : numpy.random.Generator
        Source of the normal draws.
    check : numpy.ndarray of int, optional
        Users whose importance log-weights to return.

    Returns
    -------
    draws : numpy.ndarray
        ``(draws, users)``: :math:`\eta_u \sim N(\hat\eta_u, -1/H_u)` given each draw.
    log_weights : numpy.ndarray or None
        ``(draws, len(check))``: :math:`\log p(y_u, \eta_u \mid \psi) -
        \log q(\eta_u) - \log \hat p(y_u \mid \psi)`, exact joint over the
        approximate one, for the users in ``check``.
    """
    n_draws, n_users = len(sigma), n.shape[0]
    out = np.empty((n_draws, n_users))
    lw = None if check is None else np.empty((n_draws, len(check)))
    init = None
    for i in range(n_draws):
        a = None if alpha is None else float(alpha[i])
        m = mean(i)
        res = laplace_users(n, total, m, float(sigma[i]), phi[i], a, grad=False, init=init,
                            values=False)
        init = res["eta_hat"]
        sd = 1.0 / np.sqrt(-res["hess"])
        z = rng.standard_normal(n_users)
        out[i] = res["eta_hat"] + sd * z
        if check is not None:
            sub = laplace_users(n[check], total[check], m[check], float(sigma[i]), phi[i], a,
                                grad=False, init=init[check])
            joint = _user_log_joint(n[check], total[check], out[i, check], m[check],
                                    float(sigma[i]), phi[i], 1.0 if a is None else a,
                                    a is None)
            log_q = -0.5 * _LOG_2PI - np.log(sd[check]) - 0.5 * z[check] ** 2
            lw[i] = joint - log_q - sub["value_u"]
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


def check_users(totals: np.ndarray, n_check: int, rng: np.random.Generator) -> np.ndarray:
    """Users to check: half those with the fewest plays, half at random (sorted, unique)."""
    n_users = len(totals)
    if n_users <= n_check:
        return np.arange(n_users)
    few = np.argsort(totals, kind="stable")[: n_check // 2]
    rest = np.setdiff1d(np.arange(n_users), few)
    rand = rng.choice(rest, n_check - len(few), replace=False)
    return np.sort(np.concatenate([few, rand]))


def summarize_check(khat: np.ndarray, totals: np.ndarray) -> dict[str, Any]:
    """Summarise the Pareto k of the checked users (``totals``: their plays).

    Keys: ``n_checked``, ``n_high_k`` (k > 0.7), ``max_k``, ``max_plays_high_k`` (most
    plays of a user with k > 0.7, or -1) and ``threshold``.
    """
    high = khat > K_THRESHOLD
    return dict(n_checked=int(len(khat)), n_high_k=int(high.sum()),
                        max_k=float(np.max(khat)) if len(khat) else float("nan"),
                        max_plays_high_k=int(totals[high].max()) if high.any() else -1,
                        threshold=K_THRESHOLD)


def report_check(report: FitReport, check: dict[str, Any]) -> FitReport:
    """Add a caution (and advice) to ``report`` when many checked users have Pareto k > 0.7.

    With at most ``WARN_SHARE`` of the checked users flagged, a note says how many.
    """
    if check["n_high_k"] <= WARN_SHARE * check["n_checked"]:
        note = (f"Laplace user effects: {check['n_high_k']:,} of the {check['n_checked']:,} "
                f"users checked have Pareto k above {check['threshold']} with log-weights "
                f"varying by more than {LOG_WEIGHT_SD} sd (max k {check['max_k']:.2f}).")
        return replace(report, notes=[*report.notes, note])
    caution = (
        f"Laplace user effects: {check['n_high_k']:,} of the {check['n_checked']:,} users "
        f"checked (half of them those with the fewest plays) have Pareto k above "
        f"{check['threshold']} (max {check['max_k']:.2f}; the most plays among them: "
        f"{check['max_plays_high_k']:,}): their conditional posteriors are measurably "
        "non-normal, so their effects and, with many such users, the population "
        "parameters may be off.")
    advice = ("Refit with user_inference='sample' (on a subsample of users if the data are "
              "large) and compare; users with very few plays are the usual cause.")
    return replace(report, verdict="warn" if report.verdict == "pass" else report.verdict,
                   cautions=[*report.cautions, caution], advice=[*report.advice, advice])
