r"""Collapsed Gibbs sampler of the Poisson (degree-corrected) stochastic block model.

Core of :class:`models.network.StochasticBlockModel`: block-edge counts, the
collapsed log joint :math:`\log p(A, z)`, the label conditional (numpy reference
:func:`label_log_probs` and its numba-compiled twin used by the sweeps), annealed
multi-start initialisation, Metropolis-Hastings merge-split moves (restricted
Gibbs reallocation of two blocks, and the split-merge moves of Jain & Neal 2004),
one chain of sweeps and moves (:class:`Chain`), iterated conditional modes and
label alignment between draws. The compiled kernels take their uniforms from a
numpy Generator, so a seed gives the same draws.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.special import gammaln


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters: Gamma(a, b) on omega, Dirichlet(eta) on theta, Dirichlet(gamma) on pi."""

    a: float
    b: float
    eta: float
    gamma: float
    degree_corrected: bool


def omega_scale(total_edges: float, n_nodes: int, n_blocks: int, degree_corrected: bool) -> float:
    """Average rate: total edges over total exposure (K^2/2 with DC, n^2/2 without)."""
    exposure = (n_blocks if degree_corrected else n_nodes) ** 2 / 2.0
    return total_edges / exposure


def block_counts(
    adj: sp.csr_matrix, z: np.ndarray, degree: np.ndarray, n_blocks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge counts between blocks (diagonal: within), block sizes and block degree sums."""
    onehot = sp.csr_matrix(
        (np.ones(z.size), (np.arange(z.size), z)), shape=(z.size, n_blocks)
    )
    m = (onehot.T @ adj @ onehot).toarray()  # ordered-pair sums; diagonal counts edges twice
    m[np.diag_indices(n_blocks)] /= 2.0
    sizes = np.bincount(z, minlength=n_blocks).astype(float)
    kappa = np.bincount(z, weights=degree, minlength=n_blocks)
    return m, sizes, kappa


def exposure(sizes: np.ndarray, degree_corrected: bool) -> np.ndarray:
    """Expected-edge exposure X_rs = Theta_r Theta_s (diagonal Theta_r^2 / 2)."""
    theta = (sizes > 0).astype(float) if degree_corrected else sizes.astype(float)
    x = np.outer(theta, theta)
    x[np.diag_indices(len(theta))] /= 2.0
    return x


def _exposures(sizes: np.ndarray, degree_corrected: bool) -> np.ndarray:
    """:func:`exposure` of every row of ``sizes`` (draws x blocks -> draws x blocks x blocks)."""
    theta = (sizes > 0).astype(float) if degree_corrected else sizes.astype(float)
    x = theta[:, :, None] * theta[:, None, :]
    diag = np.arange(sizes.shape[1])
    x[:, diag, diag] /= 2.0
    return x


def log_joint(
    e: np.ndarray, sizes: np.ndarray, kappa: np.ndarray, degree: np.ndarray, h: Hyper,
    log_factorial: float,
) -> float:
    """Collapsed log p(A, z): omega, theta and pi integrated out analytically."""
    upper = np.triu_indices(len(sizes))
    x = exposure(sizes, h.degree_corrected)[upper]
    ee = e[upper]
    value = np.sum(gammaln(ee + h.a) - (ee + h.a) * np.log(x + h.b))
    if h.degree_corrected:
        occupied = sizes > 0
        s = sizes[occupied]
        value += np.sum(gammaln(s * h.eta) - gammaln(kappa[occupied] + s * h.eta))
    value += np.sum(gammaln(sizes + h.gamma))
    return float(value) + log_joint_constant(degree, len(sizes), h, log_factorial)


def log_joint_constant(degree: np.ndarray, n_blocks: int, h: Hyper, log_factorial: float) -> float:
    """Return the terms of :func:`log_joint` that do not depend on z (the kernels omit them).

    Computed from the data alone, so every chain adds the very same number.
    """
    k = n_blocks
    value = k * (k + 1) / 2 * (h.a * np.log(h.b) - gammaln(h.a))
    if h.degree_corrected:
        value += np.sum(gammaln(degree + h.eta) - gammaln(h.eta))
    value += gammaln(k * h.gamma) - gammaln(degree.size + k * h.gamma) - k * gammaln(h.gamma)
    return float(value - log_factorial)


def log_likelihood(
    e: np.ndarray, sizes: np.ndarray, omega: np.ndarray, theta: np.ndarray | None,
    degree: np.ndarray, degree_corrected: bool, log_factorial: float,
) -> float:
    """Poisson log p(A | z, theta, omega) of the Karrer-Newman model."""
    upper = np.triu_indices(len(sizes))
    x = exposure(sizes, degree_corrected)[upper]
    value = np.sum(e[upper] * np.log(omega[upper]) - x * omega[upper])
    if degree_corrected and theta is not None:
        positive = degree > 0
        value += np.sum(degree[positive] * np.log(theta[positive]))
    return float(value - log_factorial)


def label_log_probs(
    e: np.ndarray, sizes: np.ndarray, kappa: np.ndarray, k: np.ndarray, degree_i: float,
    h: Hyper,
) -> np.ndarray:
    """Unnormalised log p(z_i = r | z_-i, A) for every block r, node i removed.

    ``e``, ``sizes`` and ``kappa`` describe the partition without node ``i``; ``k``
    holds the edges from ``i`` to each block and ``degree_i`` its degree. Only row
    ``r`` of the block matrices changes when ``i`` joins ``r``, so the change of the
    collapsed log joint is a sum over that row, computed for all ``r`` at once.
    """
    half, offdiag, eye_half = _masks(sizes.size)
    if h.degree_corrected:
        theta = (sizes > 0) * 1.0
        x_new = theta * offdiag + eye_half
    else:
        theta = sizes
        grown = sizes + 1.0
        x_new = np.outer(grown, sizes) * offdiag + eye_half * (grown * grown)[:, None]
    x_old = np.outer(theta, theta) * half
    e_new = e + k
    a = h.a
    logp = (gammaln(e_new + a) - gammaln(e + a) - (e_new + a) * np.log(x_new + h.b)
            + (e + a) * np.log(x_old + h.b)).sum(axis=1)
    if h.degree_corrected:
        grown = (sizes + 1.0) * h.eta
        safe = np.maximum(sizes, 1.0) * h.eta
        g = gammaln(np.concatenate((grown, kappa + degree_i + grown, safe, kappa + safe)))
        g = g.reshape(4, -1)
        logp += g[0] - g[1] - (sizes > 0) * (g[2] - g[3])
    return logp + np.log(sizes + h.gamma)


@functools.cache
def _masks(n_blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    eye = np.eye(n_blocks)
    return 1.0 - 0.5 * eye, 1.0 - eye, 0.5 * eye


def _tables(
    adj: sp.csr_matrix, h: Hyper
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """CSR arrays and lookup tables of the compiled kernels.

    Edge counts are integers (checked by the edge-list validation), so every
    ``gammaln(e_rs + a)`` of a block-edge count is a lookup in ``gammaln(m + a)``,
    ``m = 0, ..., sum of counts``, computed with the same scipy function as
    :func:`label_log_probs`. With degree correction the exposures take only the
    values 0, 1/2 and 1, so ``log(X + b)`` is a lookup too. Block sizes are
    integers, so ``gammaln(n_r eta)`` and ``log(n_r + gamma)`` are lookups; and
    where ``q eta`` is an integer for a small ``q`` (``eta = 1/2`` by default),
    so is ``gammaln(kappa_r + n_r eta)`` (in ``gammaln(j / q)``), the cost of the
    degree-corrected terms being these Gamma functions. The lookups go to the
    kernels as one tuple ``lut``: edge Gamma functions, ``log(X + b)``,
    ``gammaln(m eta)``, ``log(m + gamma)``, ``gammaln(j / q)`` (empty: no such
    ``q``) and ``(q, q eta)``.
    """
    indptr = adj.indptr.astype(np.int64)
    indices = adj.indices.astype(np.int64)
    weights = adj.data.astype(float)
    total = int(round(float(weights.sum()) / 2.0))
    n = adj.shape[0]
    lg_edge = gammaln(np.arange(total + 2, dtype=float) + h.a)
    log_x = np.log(np.array([0.0, 0.5, 1.0]) + h.b)
    counts = np.arange(n + 2, dtype=float)
    with np.errstate(divide="ignore"):
        lg_eta = gammaln(counts * h.eta)  # m = 0: inf, never used
    log_gamma = np.log(counts + h.gamma)
    lg_theta, scale = np.empty(0), np.zeros(2)
    for q in range(1, 17):
        q_eta = q * h.eta
        if abs(q_eta - round(q_eta)) < 1e-12 and round(q_eta) > 0:
            size = q * (2 * total) + int(round(q_eta)) * (n + 1) + 2
            if h.degree_corrected and size <= LUT_MAX:
                lg_theta = gammaln(np.arange(1, size + 1, dtype=float) / q)
                lg_theta = np.r_[np.inf, lg_theta]
                scale = np.array([float(q), float(round(q_eta))])
            break
    return indptr, indices, weights, (lg_edge, log_x, lg_eta, log_gamma, lg_theta, scale)


LUT_MAX = 20_000_000
"""Largest table of ``gammaln(j / q)`` (160 MB); beyond it the kernels call ``lgamma``."""


@numba.njit(cache=True, nogil=True)
def _lg_theta(kappa_r, m, eta, lg_theta, scale):  # pragma: no cover - compiled
    """``lgamma(kappa_r + m eta)``: a lookup in ``lg_theta`` when there is one."""
    if lg_theta.size > 0:
        return lg_theta[int(kappa_r * scale[0] + 0.5) + m * int(scale[1])]
    return math.lgamma(kappa_r + m * eta)


@numba.njit(cache=True, inline="always")
def _row_log_prob(
    r, e, sizes, kappa, k, degree_i, a, b, eta, gamma, dc, lut
):  # pragma: no cover - compiled
    """Unnormalised log p(z_i = r | z_-i, A) for one block ``r`` (node ``i`` removed).

    With degree correction as :func:`_dc_log_probs` (a sum over the blocks ``i`` has
    edges to).
    """
    lg_edge, log_x, lg_eta, log_gamma, lg_theta, scale = lut
    n_blocks = sizes.size
    n_r = sizes[r]
    m = int(n_r)
    total = 0.0
    if dc and n_r > 0.0:
        for s in range(n_blocks):
            k_s = k[s]
            if k_s != 0.0:
                e_old = e[r, s]
                total += (lg_edge[int(e_old + k_s)] - lg_edge[int(e_old)]
                          - k_s * (log_x[1] if s == r else log_x[2]))
        return (total + lg_eta[m + 1]
                - _lg_theta(kappa[r] + degree_i, m + 1, eta, lg_theta, scale)
                - lg_eta[m] + _lg_theta(kappa[r], m, eta, lg_theta, scale) + log_gamma[m])
    for s in range(n_blocks):
        if s != r and sizes[s] == 0.0:
            continue  # no edges to an empty block, and no exposure: the term is 0
        e_old = e[r, s]
        e_new = e_old + k[s]
        if dc:  # r is empty: exposures 0 -> 1 to occupied blocks, 0 -> 1/2 within r
            l_new = log_x[1] if s == r else log_x[2]
            l_old = log_x[0]
        elif s == r:
            l_new = math.log(0.5 * ((n_r + 1.0) * (n_r + 1.0)) + b)
            l_old = math.log(0.5 * (n_r * n_r) + b)
        else:
            l_new = math.log((n_r + 1.0) * sizes[s] + b)
            l_old = math.log(n_r * sizes[s] + b)
        term = (e_old + a) * l_old - (e_new + a) * l_new
        if k[s] != 0.0:  # the Gamma functions cancel where i has no edge to s
            term += lg_edge[int(e_new)] - lg_edge[int(e_old)]
        total += term
    if dc:
        total += lg_eta[1] - _lg_theta(degree_i, 1, eta, lg_theta, scale)
    return total + log_gamma[m]


@numba.njit(cache=True, inline="always")
def _dc_log_probs(logp, e, sizes, kappa, k, degree_i, a, eta, lut):  # pragma: no cover
    """:func:`_log_probs_kernel` with degree correction, from the blocks ``i`` has edges to.

    Between occupied blocks the exposures are 1 (1/2 within) whether or not ``i``
    joins ``r``, so the change of the log joint is a sum over the blocks ``s`` with
    ``k[s] > 0`` (Gamma functions of the counts, Poisson terms of ``i``'s edges) and
    the theta terms of ``r``; an empty ``r`` gains an exposure to every occupied block.
    """
    lg_edge, log_x, lg_eta, log_gamma, lg_theta, scale = lut
    n_blocks = sizes.size
    occupied = 0
    for s in range(n_blocks):
        if sizes[s] > 0.0:
            occupied += 1
    first_empty = -1
    for r in range(n_blocks):
        n_r = sizes[r]
        if n_r == 0.0:
            if first_empty >= 0:  # every empty block gives the same value
                logp[r] = logp[first_empty]
                continue
            first_empty = r
            total = (a * (log_x[0] - log_x[1]) + occupied * a * (log_x[0] - log_x[2])
                     - degree_i * log_x[2] + lg_eta[1]
                     - _lg_theta(degree_i, 1, eta, lg_theta, scale) + log_gamma[0])
            for s in range(n_blocks):
                if k[s] != 0.0:
                    total += lg_edge[int(k[s])] - lg_edge[0]
            logp[r] = total
            continue
        total = 0.0
        for s in range(n_blocks):
            k_s = k[s]
            if k_s != 0.0:
                e_old = e[r, s]
                total += (lg_edge[int(e_old + k_s)] - lg_edge[int(e_old)]
                          - k_s * (log_x[1] if s == r else log_x[2]))
        m = int(n_r)
        logp[r] = (total + lg_eta[m + 1] - _lg_theta(kappa[r] + degree_i, m + 1, eta, lg_theta,
                                                     scale)
                   - lg_eta[m] + _lg_theta(kappa[r], m, eta, lg_theta, scale) + log_gamma[m])


@numba.njit(cache=True, inline="always")
def _log_probs_kernel(
    logp, e, sizes, kappa, k, degree_i, a, b, eta, gamma, dc, lut
):  # pragma: no cover - compiled
    """Compiled :func:`label_log_probs`, written into ``logp``."""
    if dc:
        _dc_log_probs(logp, e, sizes, kappa, k, degree_i, a, eta, lut)
        return
    first_empty = -1
    for r in range(sizes.size):
        if sizes[r] == 0.0:
            if first_empty >= 0:  # every empty block gives the same value
                logp[r] = logp[first_empty]
                continue
            first_empty = r
        logp[r] = _row_log_prob(r, e, sizes, kappa, k, degree_i, a, b, eta, gamma, dc,
                                lut)


@numba.njit(cache=True, inline="always")
def _log_joint_terms(e, sizes, kappa, a, b, eta, gamma, dc):  # pragma: no cover - compiled
    """Return the terms of :func:`_log_joint_kernel`, in its order of summation."""
    n_blocks = sizes.size
    terms = np.zeros(n_blocks * (n_blocks + 1) // 2 + 2 * n_blocks)
    t = 0
    for r in range(n_blocks):
        for s in range(r, n_blocks):
            if dc:
                x = (0.5 if s == r else 1.0) if sizes[r] > 0 and sizes[s] > 0 else 0.0
            else:
                x = 0.5 * sizes[r] * sizes[r] if s == r else sizes[r] * sizes[s]
            terms[t] = math.lgamma(e[r, s] + a) - (e[r, s] + a) * math.log(x + b)
            t += 1
        if dc and sizes[r] > 0:
            terms[t] = math.lgamma(sizes[r] * eta) - math.lgamma(kappa[r] + sizes[r] * eta)
        t += 1  # a zero when the block is empty or without degree correction
        terms[t] = math.lgamma(sizes[r] + gamma)
        t += 1
    return terms


@numba.njit(cache=True, nogil=True)
def _log_joint_kernel(e, sizes, kappa, a, b, eta, gamma, dc):  # pragma: no cover - compiled
    """Collapsed log p(A, z) up to terms that do not depend on z (compiled)."""
    total = 0.0
    for term in _log_joint_terms(e, sizes, kappa, a, b, eta, gamma, dc):
        total += term
    return total


@numba.njit(cache=True, nogil=True)
def _label_free_log_joint_kernel(e, sizes, kappa, a, b, eta, gamma,
                                 dc):  # pragma: no cover - compiled
    """:func:`_log_joint_kernel` summed in sorted order: the same bits under any labelling.

    Relabelling the blocks permutes the terms (the block statistics are exact: integer
    counts), so two chains in the same partition under different labels record the very
    same value, and the R-hat of the recorded log joint sees a constant, not rounding.
    """
    total = 0.0
    for term in np.sort(_log_joint_terms(e, sizes, kappa, a, b, eta, gamma, dc)):
        total += term
    return total


@numba.njit(cache=True, inline="always")
def _remove(i, z, e, sizes, kappa, k, indptr, indices, weights, degree):  # pragma: no cover
    """Take node ``i`` out of its block; ``k`` receives its edges to every block."""
    k[:] = 0.0
    for p in range(indptr[i], indptr[i + 1]):
        k[z[indices[p]]] += weights[p]
    old = z[i]
    for s in range(k.size):
        e[old, s] -= k[s]
        e[s, old] -= k[s]
    e[old, old] += k[old]
    sizes[old] -= 1.0
    kappa[old] -= degree[i]


@numba.njit(cache=True, inline="always")
def _insert(i, new, z, e, sizes, kappa, k, degree):  # pragma: no cover - compiled
    """Put node ``i``, with edges ``k`` to every block, into block ``new``."""
    z[i] = new
    for s in range(k.size):
        e[new, s] += k[s]
        e[s, new] += k[s]
    e[new, new] -= k[new]
    sizes[new] += 1.0
    kappa[new] += degree[i]


@numba.njit(cache=True, nogil=True)
def _sweep_kernel(
    z, e, sizes, kappa, indptr, indices, weights, degree, order, uniforms,
    inverse_temperature, a, b, eta, gamma, dc, lut,
):  # pragma: no cover - compiled
    """One Gibbs sweep in place: node ``order[t]`` drawn by inversion of ``uniforms[t]``."""
    n_blocks = sizes.size
    k = np.zeros(n_blocks)
    logp = np.empty(n_blocks)
    cumulative = np.empty(n_blocks)
    for t in range(order.size):
        i = order[t]
        _remove(i, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        _log_probs_kernel(logp, e, sizes, kappa, k, degree[i], a, b, eta, gamma, dc,
                          lut)
        if inverse_temperature < 1.0:
            for r in range(n_blocks):
                logp[r] *= inverse_temperature
        top = logp.max()
        acc = 0.0
        for r in range(n_blocks):
            acc += math.exp(logp[r] - top)
            cumulative[r] = acc
        target = uniforms[t] * acc
        new = 0  # searchsorted(cumulative, target, side="right"), capped at the last block
        while new < n_blocks - 1 and cumulative[new] <= target:
            new += 1
        _insert(i, new, z, e, sizes, kappa, k, degree)


@numba.njit(cache=True, nogil=True)
def _climb_kernel(
    z, e, sizes, kappa, indptr, indices, weights, degree, max_sweeps,
    a, b, eta, gamma, dc, lut,
):  # pragma: no cover - compiled
    """Climb by iterated conditional modes in place, nodes in index order; return sweeps run."""
    n_blocks = sizes.size
    k = np.zeros(n_blocks)
    logp = np.empty(n_blocks)
    for sweep in range(max_sweeps):
        moved = 0
        for i in range(z.size):
            old = z[i]
            _remove(i, z, e, sizes, kappa, k, indptr, indices, weights, degree)
            _log_probs_kernel(logp, e, sizes, kappa, k, degree[i], a, b, eta, gamma, dc,
                              lut)
            new = old if logp[old] >= logp.max() - 1e-12 else np.argmax(logp)
            if new != old:
                moved += 1
            _insert(i, new, z, e, sizes, kappa, k, degree)
        if moved == 0:
            return sweep + 1
    return max_sweeps


@numba.njit(cache=True, inline="always")
def _pair_log_probs(r, s, e, sizes, kappa, k, degree_i, a, b, eta, gamma, dc,
                    lut):  # pragma: no cover - compiled
    """Probability of block ``r`` against ``s`` for a removed node, and both log probabilities.

    Returns ``(p_r, log p_r, log p_s)`` from the difference ``d`` of the two blocks'
    log probabilities, with one exponential and one ``log1p`` (of ``exp(-|d|)``, so
    neither overflows): the restricted Gibbs scans make several per node.
    """
    lr = _row_log_prob(r, e, sizes, kappa, k, degree_i, a, b, eta, gamma, dc, lut)
    ls = _row_log_prob(s, e, sizes, kappa, k, degree_i, a, b, eta, gamma, dc, lut)
    d = ls - lr
    t = math.exp(-abs(d))
    tail = math.log1p(t)
    if d > 0.0:  # s the likelier: log p_r = -d - log(1 + exp(-d))
        return t / (1.0 + t), -d - tail, -tail
    return 1.0 / (1.0 + t), -tail, d - tail


@numba.njit(cache=True, nogil=True)
def _shuffle(order, uniforms, pos):  # pragma: no cover - compiled
    """Fisher-Yates shuffle of ``order`` in place from ``uniforms[pos:]``; return new pos."""
    for t in range(order.size - 1, 0, -1):
        j = int(uniforms[pos] * (t + 1))
        pos += 1
        order[t], order[j] = order[j], order[t]
    return pos


@numba.njit(cache=True, nogil=True)
def _restricted_scan(members, order, target, r, s, z, e, sizes, kappa, indptr, indices,
                     weights, degree, uniforms, pos, a, b, eta, gamma, dc,
                     lut):  # pragma: no cover - compiled
    """One restricted Gibbs scan of ``members`` over blocks ``r`` and ``s``.

    Nodes ``members[order[t]]`` in turn. With ``target`` empty every label is drawn
    (uniforms from ``pos``); otherwise node ``members[q]`` is put into ``target[q]``.
    Returns the log probability of the labels chosen and the next uniform position.
    """
    k = np.zeros(sizes.size)
    forced = target.size > 0
    log_q = 0.0
    for t in range(order.size):
        q = order[t]
        i = members[q]
        _remove(i, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        p_r, log_pr, log_ps = _pair_log_probs(r, s, e, sizes, kappa, k, degree[i], a, b, eta,
                                              gamma, dc, lut)
        if forced:
            new = target[q]
        else:
            new = r if uniforms[pos] < p_r else s
            pos += 1
        log_q += log_pr if new == r else log_ps
        _insert(i, new, z, e, sizes, kappa, k, degree)
    return log_q, pos


@numba.njit(cache=True, nogil=True)
def _pair_choice_log_prob(r, s, sizes):  # pragma: no cover - compiled
    """Log probability that two nodes drawn with replacement pick the blocks {r, s}."""
    n = sizes.sum()
    others = sizes.size - 1.0
    p = 2.0 * sizes[r] * sizes[s] + (sizes[r] ** 2 + sizes[s] ** 2) / others
    return math.log(p / (n * n))


@numba.njit(cache=True, nogil=True)
def _merge_split_kernel(
    r, s, members, z, e, sizes, kappa, indptr, indices, weights, degree, uniforms,
    n_intermediate, a, b, eta, gamma, dc, lut,
):  # pragma: no cover - compiled
    """One Metropolis-Hastings merge-split move of the nodes of blocks ``r`` and ``s``.

    Restricted Gibbs sampling split-merge (Jain & Neal 2004), with the pair of
    blocks chosen through two random nodes. The launch state puts every member
    in ``r`` or ``s`` at random and makes ``n_intermediate`` restricted Gibbs scans;
    one more scan from it is the proposal; the reverse probability is that of the
    same scan (same order) from the launch state reaching the current labels.
    Returns True when the proposal is accepted (the state then holds it; otherwise
    the state is unchanged).
    """
    m = members.size
    original = np.empty(m, dtype=np.int64)
    for q in range(m):
        original[q] = z[members[q]]
    lp_old = _log_joint_kernel(e, sizes, kappa, a, b, eta, gamma, dc)
    pick_old = _pair_choice_log_prob(r, s, sizes)
    k = np.zeros(sizes.size)
    pos = 0
    for q in range(m):  # random launch allocation
        i = members[q]
        _remove(i, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        _insert(i, r if uniforms[pos] < 0.5 else s, z, e, sizes, kappa, k, degree)
        pos += 1
    order = np.arange(m)
    free = np.empty(0, dtype=np.int64)
    for _ in range(n_intermediate):
        pos = _shuffle(order, uniforms, pos)
        _, pos = _restricted_scan(members, order, free, r, s, z, e, sizes, kappa, indptr,
                                  indices, weights, degree, uniforms, pos, a, b, eta, gamma,
                                  dc, lut)
    launch = np.empty(m, dtype=np.int64)
    for q in range(m):
        launch[q] = z[members[q]]
    pos = _shuffle(order, uniforms, pos)
    log_q_forward, pos = _restricted_scan(members, order, free, r, s, z, e, sizes, kappa,
                                          indptr, indices, weights, degree, uniforms, pos,
                                          a, b, eta, gamma, dc, lut)
    proposal = np.empty(m, dtype=np.int64)
    for q in range(m):
        proposal[q] = z[members[q]]
    lp_new = _log_joint_kernel(e, sizes, kappa, a, b, eta, gamma, dc)
    pick_new = _pair_choice_log_prob(r, s, sizes)
    log_u = math.log(uniforms[uniforms.size - 1])  # no scan reaches the last uniform
    if log_u >= lp_new - lp_old + pick_new - pick_old - log_q_forward:
        # Rejected whatever the reverse scan's log probability (at most 0): skip it.
        for q in range(m):
            i = members[q]
            _remove(i, z, e, sizes, kappa, k, indptr, indices, weights, degree)
            _insert(i, original[q], z, e, sizes, kappa, k, degree)
        return False
    for q in range(m):  # back to the launch state for the reverse scan
        i = members[q]
        _remove(i, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        _insert(i, launch[q], z, e, sizes, kappa, k, degree)
    log_q_reverse, pos = _restricted_scan(members, order, original, r, s, z, e, sizes,
                                          kappa, indptr, indices, weights, degree, uniforms,
                                          pos, a, b, eta, gamma, dc, lut)
    log_ratio = lp_new - lp_old + pick_new - pick_old + log_q_reverse - log_q_forward
    if log_u >= log_ratio:
        return False  # the reverse scan left the state at the current labels
    for q in range(m):
        i = members[q]
        _remove(i, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        _insert(i, proposal[q], z, e, sizes, kappa, k, degree)
    return True


@numba.njit(cache=True, nogil=True)
def _split_merge_kernel(
    i, j, r, s, others, split, log_pick, z, e, sizes, kappa, indptr, indices, weights, degree,
    uniforms, n_intermediate, a, b, eta, gamma, dc, lut,
):  # pragma: no cover - compiled
    """One split-merge move of Jain & Neal (2004) with anchors ``i`` (block ``r``) and ``j``.

    ``split``: ``i`` and ``j`` share block ``r``; ``j`` moves to the empty block ``s``
    (chosen with log probability ``log_pick``) and ``others`` (the rest of ``r``)
    are split between ``r`` and ``s`` by a launch state (random, then
    ``n_intermediate`` restricted Gibbs scans) and one more restricted scan.
    Otherwise ``j`` is in ``s`` and the move merges ``r`` and ``s`` into ``r``; the
    reverse split chooses ``s`` with log probability ``log_pick`` and reaches the
    current labels from a launch state by the forced scan. Returns True if accepted.
    """
    m = others.size
    k = np.zeros(sizes.size)
    original = np.empty(m, dtype=np.int64)
    for q in range(m):
        original[q] = z[others[q]]
    lp_old = _log_joint_kernel(e, sizes, kappa, a, b, eta, gamma, dc)
    log_u = math.log(uniforms[uniforms.size - 1])  # a merge's; no scan reaches it
    if not split:
        # The merged labels first: with the reverse split's log probability (at most 0)
        # left out, a merge that fails is rejected without its scans.
        _move_all(j, others, r, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        lp_merged = _log_joint_kernel(e, sizes, kappa, a, b, eta, gamma, dc)
        if log_u >= lp_merged - lp_old + log_pick:
            _restore(j, s, others, original, z, e, sizes, kappa, k, indptr, indices, weights,
                     degree)
            return False
        _remove(j, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        _insert(j, s, z, e, sizes, kappa, k, degree)
    else:
        _remove(j, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        _insert(j, s, z, e, sizes, kappa, k, degree)
    pos = 0
    for q in range(m):  # random launch allocation
        node = others[q]
        _remove(node, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        _insert(node, r if uniforms[pos] < 0.5 else s, z, e, sizes, kappa, k, degree)
        pos += 1
    order = np.arange(m)
    free = np.empty(0, dtype=np.int64)
    for _ in range(n_intermediate):
        pos = _shuffle(order, uniforms, pos)
        _, pos = _restricted_scan(others, order, free, r, s, z, e, sizes, kappa, indptr,
                                  indices, weights, degree, uniforms, pos, a, b, eta, gamma,
                                  dc, lut)
    pos = _shuffle(order, uniforms, pos)
    if split:
        log_q, pos = _restricted_scan(others, order, free, r, s, z, e, sizes, kappa, indptr,
                                      indices, weights, degree, uniforms, pos, a, b, eta,
                                      gamma, dc, lut)
        lp_new = _log_joint_kernel(e, sizes, kappa, a, b, eta, gamma, dc)
        log_ratio = lp_new - lp_old - log_pick - log_q
        if math.log(uniforms[pos]) < log_ratio:
            return True
        _move_all(j, others, r, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        return False  # every node of the split back in r
    log_q, pos = _restricted_scan(others, order, original, r, s, z, e, sizes, kappa, indptr,
                                  indices, weights, degree, uniforms, pos, a, b, eta, gamma,
                                  dc, lut)  # the state is back at the labels
    if log_u < lp_merged - lp_old + log_pick + log_q:
        _move_all(j, others, r, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        return True
    return False


@numba.njit(cache=True, inline="always")
def _move_all(j, others, r, z, e, sizes, kappa, k, indptr, indices, weights,
              degree):  # pragma: no cover - compiled
    """Put node ``j`` and ``others`` into block ``r``."""
    _remove(j, z, e, sizes, kappa, k, indptr, indices, weights, degree)
    _insert(j, r, z, e, sizes, kappa, k, degree)
    for q in range(others.size):
        node = others[q]
        _remove(node, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        _insert(node, r, z, e, sizes, kappa, k, degree)


@numba.njit(cache=True, inline="always")
def _restore(j, s, others, original, z, e, sizes, kappa, k, indptr, indices, weights,
             degree):  # pragma: no cover - compiled
    """Put node ``j`` back into block ``s`` and ``others`` into their ``original`` blocks."""
    _remove(j, z, e, sizes, kappa, k, indptr, indices, weights, degree)
    _insert(j, s, z, e, sizes, kappa, k, degree)
    for q in range(others.size):
        node = others[q]
        _remove(node, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        _insert(node, original[q], z, e, sizes, kappa, k, degree)


@numba.njit(cache=True)
def merge_split_uniforms(n_members: int, n_intermediate: int) -> int:
    """Uniforms one merge-split move of ``n_members`` nodes consumes."""
    return n_members + (n_intermediate + 1) * (2 * n_members - 1) + 1


@numba.njit(cache=True, inline="always")
def _members(z, r, s):  # pragma: no cover - compiled
    """Nodes in block ``r`` or ``s``, in node order (``np.flatnonzero`` of the mask)."""
    count = 0
    for i in range(z.size):
        if z[i] == r or z[i] == s:
            count += 1
    out = np.empty(count, dtype=np.int64)
    count = 0
    for i in range(z.size):
        if z[i] == r or z[i] == s:
            out[count] = i
            count += 1
    return out


@numba.njit(cache=True, nogil=True)
def _merge_split_moves(
    rng, n_moves, n_intermediate, n_blocks, z, e, sizes, kappa, indptr, indices, weights,
    degree, a, b, eta, gamma, dc, lut,
):  # pragma: no cover - compiled
    """Make ``n_moves`` merge-split moves; return the number accepted.

    Even moves are :func:`_merge_split_kernel`, odd ones :func:`_split_merge_kernel`.
    Every random number comes from ``rng`` (a NumPy ``Generator``; numba reproduces its
    streams exactly) in the order of the earlier Python loop, so the draws are the same;
    compiled, the loop holds the GIL for none of the moves and costs no call per move.
    """
    n = z.size
    accepted = 0
    for move in range(n_moves):
        if move % 2 == 1:  # a split or a merge, anchored at two random nodes
            ij = rng.integers(0, n, 2)
            i, j = ij[0], ij[1]
            if i == j:
                continue
            r, s = z[i], z[j]
            split = r == s
            n_empty = 0
            for t in range(n_blocks):
                n_empty += sizes[t] == 0
            if split:
                if n_empty == 0:
                    continue
                pick = rng.integers(0, n_empty)
                for t in range(n_blocks):  # the pick-th empty block
                    if sizes[t] == 0:
                        if pick == 0:
                            s = t
                            break
                        pick -= 1
                log_pick = -math.log(n_empty)
            else:
                log_pick = -math.log(n_empty + 1)  # the reverse split's choice of s
            both = _members(z, r, s)
            others = np.empty(both.size, dtype=np.int64)
            m = 0
            for node in both:
                if node != i and node != j:
                    others[m] = node
                    m += 1
            others = others[:m]
            uniforms = rng.random(m + (n_intermediate + 1) * 2 * m + 2)
            accepted += _split_merge_kernel(
                i, j, r, s, others, split, log_pick, z, e, sizes, kappa, indptr, indices,
                weights, degree, uniforms, n_intermediate, a, b, eta, gamma, dc, lut)
            continue
        ij = rng.integers(0, n, 2)
        r, s = z[ij[0]], z[ij[1]]
        if s == r:  # a block other than r, empty ones included
            s = rng.integers(0, n_blocks - 1)
            s += s >= r
        members = _members(z, r, s)
        uniforms = rng.random(merge_split_uniforms(members.size, n_intermediate))
        accepted += _merge_split_kernel(
            r, s, members, z, e, sizes, kappa, indptr, indices, weights, degree, uniforms,
            n_intermediate, a, b, eta, gamma, dc, lut)
    return accepted


@numba.njit(cache=True, nogil=True)
def _rounds_kernel(
    rng, n_rounds, thin, merge_split, n_intermediate, z, e, sizes, kappa, indptr, indices,
    weights, degree, a, b, eta, gamma, dc, lut, z_out, e_out, sizes_out, kappa_out, lp_out,
    accept_out,
):  # pragma: no cover - compiled
    """``n_rounds`` rounds of ``thin`` Gibbs sweeps and the merge-split moves, in one loop.

    A sweep's order (a shuffle) and uniforms come from ``rng.random(2 n)``; the moves,
    ``merge_split`` per occupied block, from :func:`_merge_split_moves`. With ``z_out``
    holding at least ``n_rounds`` rows, each round's labels, block statistics,
    label-free log joint (without its z-free constant) and share of moves accepted
    are recorded; with an empty ``z_out`` nothing is (discarded sweeps). Compiled
    and without the GIL, so the rounds of a chain cost no Python step each.
    """
    n = z.size
    n_blocks = sizes.size
    record = z_out.shape[0] > 0
    order = np.arange(n)
    for d in range(n_rounds):
        for i in range(n):  # each round's first shuffle starts from node order
            order[i] = i
        for _ in range(thin):
            row = rng.random(2 * n)
            _shuffle(order, row, 0)
            _sweep_kernel(z, e, sizes, kappa, indptr, indices, weights, degree, order, row[n:],
                          1.0, a, b, eta, gamma, dc, lut)
        occupied = 0
        for r in range(n_blocks):
            occupied += sizes[r] > 0.0
        moves = merge_split * max(1, occupied)
        accepted = 0
        if n_blocks >= 2 and moves > 0:
            accepted = _merge_split_moves(rng, moves, n_intermediate, n_blocks, z, e, sizes,
                                          kappa, indptr, indices, weights, degree, a, b, eta,
                                          gamma, dc, lut)
        if not record:
            continue
        for i in range(n):
            z_out[d, i] = z[i]
        e_out[d] = e
        sizes_out[d] = sizes
        kappa_out[d] = kappa
        lp_out[d] = _label_free_log_joint_kernel(e, sizes, kappa, a, b, eta, gamma, dc)
        accept_out[d] = accepted / moves if moves > 0 else np.nan


MERGE_SPLIT_SCANS = 3
"""Intermediate restricted Gibbs scans from the random launch state of a merge-split move."""

ROUND_CHUNK = 200_000
"""Node updates of the Gibbs sweeps per compiled call of :meth:`Chain._rounds` (the chain
checks its cancel event between calls)."""


def draw_parameters(
    rng: np.random.Generator, e: np.ndarray, sizes: np.ndarray, z: np.ndarray,
    degree: np.ndarray, h: Hyper,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Draw omega, pi and theta from their exact conditionals given each labelling.

    ``e`` (draws x blocks x blocks), ``sizes`` (draws x blocks) and ``z`` (draws x
    nodes) describe the recorded labellings. Given z and A: omega_rs ~ Gamma(a +
    e_rs, b + X_rs) (symmetric), pi ~ Dirichlet(gamma + sizes) and, with degree
    correction, theta of block r's nodes ~ Dirichlet(eta + their degrees). Returns
    ``(omega, pi, theta, loglik)``: theta None without degree correction, and
    ``loglik`` the Poisson log-likelihood of each draw without the log-factorial
    term (as :func:`log_likelihood` with ``log_factorial=0``). Vectorised over the
    draws, one Dirichlet per draw for pi (numpy's, exact for small ``gamma``).
    """
    n_draws, n_blocks = sizes.shape
    x = _exposures(sizes, h.degree_corrected)
    omega = rng.gamma(h.a + e, 1.0 / (h.b + x))
    upper = np.triu_indices(n_blocks, 1)
    omega[:, upper[1], upper[0]] = omega[:, upper[0], upper[1]]
    pi = np.empty((n_draws, n_blocks))
    for d in range(n_draws):
        pi[d] = rng.dirichlet(h.gamma + sizes[d])
    rows, cols = np.triu_indices(n_blocks)
    loglik = (e[:, rows, cols] * np.log(omega[:, rows, cols])
              - x[:, rows, cols] * omega[:, rows, cols]).sum(axis=1)
    if not h.degree_corrected:
        return omega, pi, None, loglik
    g = rng.gamma(np.broadcast_to(h.eta + degree, (n_draws, degree.size)))
    codes = np.arange(n_draws)[:, None] * n_blocks + z
    sums = np.bincount(codes.ravel(), weights=g.ravel(), minlength=n_draws * n_blocks)
    theta = g / sums[codes]
    positive = degree > 0
    return omega, pi, theta, loglik + np.log(theta[:, positive]) @ degree[positive]


class _State:
    """Labels and block statistics of one chain, updated in place by the kernels."""

    def __init__(self, adj: sp.csr_matrix, degree: np.ndarray, z: np.ndarray, n_blocks: int,
                 h: Hyper) -> None:
        self.adj, self.n_blocks, self.h = adj, n_blocks, h
        self.degree = np.ascontiguousarray(degree, dtype=float)
        self.tables = _tables(adj, h)
        self.scalars = (float(h.a), float(h.b), float(h.eta), float(h.gamma),
                        bool(h.degree_corrected))
        self.reset(z)

    def reset(self, z: np.ndarray) -> None:
        """Set the labels (copied) and recount the block statistics."""
        self.z = np.array(z, dtype=np.int64)
        k = self.n_blocks
        self.e, self.sizes, self.kappa = np.empty((k, k)), np.empty(k), np.empty(k)
        indptr, indices, weights, _ = self.tables
        _recount(self.z, self.e, self.sizes, self.kappa, indptr, indices, weights, self.degree)

    def sweep(self, order: np.ndarray, uniforms: np.ndarray, inverse_temperature: float) -> None:
        """One Gibbs sweep (tempered when ``inverse_temperature < 1``)."""
        indptr, indices, weights, lut = self.tables
        _sweep_kernel(self.z, self.e, self.sizes, self.kappa, indptr, indices, weights,
                      self.degree, order.astype(np.int64), uniforms, float(inverse_temperature),
                      *self.scalars, lut)

    def climb(self, max_sweeps: int) -> None:
        """Climb to a local mode by iterated conditional modes."""
        indptr, indices, weights, lut = self.tables
        _climb_kernel(self.z, self.e, self.sizes, self.kappa, indptr, indices, weights,
                      self.degree, int(max_sweeps), *self.scalars, lut)

    def merge_split(self, rng: np.random.Generator, n_moves: int,
                    n_intermediate: int = MERGE_SPLIT_SCANS) -> int:
        """Make ``n_moves`` merge-split moves (:func:`_merge_split_moves`); return the accepted.

        Even moves reallocate the nodes of two blocks (:func:`_merge_split_kernel`), odd
        ones split a block or merge two (:func:`_split_merge_kernel`).
        """
        if self.n_blocks < 2 or n_moves <= 0:
            return 0
        indptr, indices, weights, lut = self.tables
        return int(_merge_split_moves(
            rng, int(n_moves), int(n_intermediate), int(self.n_blocks), self.z, self.e,
            self.sizes, self.kappa, indptr, indices, weights, self.degree, *self.scalars, lut))

    def log_joint(self, log_factorial: float) -> float:
        """Collapsed log p(A, z) of the current labels."""
        return log_joint(self.e, self.sizes, self.kappa, self.degree, self.h, log_factorial)


class Cancelled(Exception):
    """A chain stopped because its ``cancel`` event was set (another chain failed, or Ctrl-C)."""


def _raise_if_set(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled


START_SWEEPS = 50
"""Annealed sweeps of each starting run (inverse temperature 0.2 rising to 1)."""


@numba.njit(cache=True, nogil=True)
def _recount(z, e, sizes, kappa, indptr, indices, weights, degree):  # pragma: no cover
    """Recount ``e``, ``sizes`` and ``kappa`` of labels ``z`` in place (:func:`block_counts`)."""
    e[:] = 0.0
    sizes[:] = 0.0
    kappa[:] = 0.0
    for i in range(z.size):
        zi = z[i]
        sizes[zi] += 1.0
        kappa[zi] += degree[i]
        for p in range(indptr[i], indptr[i + 1]):
            e[zi, z[indices[p]]] += weights[p]
    for r in range(sizes.size):
        e[r, r] /= 2.0  # ordered pairs: each within-block edge was counted twice


@numba.njit(cache=True, nogil=True)
def _annealed_start_kernel(
    rng, sweeps, max_climb, z, e, sizes, kappa, indptr, indices, weights, degree, a, b, eta,
    gamma, dc, lut,
):  # pragma: no cover - compiled
    """One run of :func:`best_start` in place; returns its log joint without the z-free terms.

    Random labels from ``rng``, ``sweeps`` Gibbs sweeps at inverse temperature rising
    linearly from 0.2 to 1 (each sweep's order and uniforms from ``rng.random(2 n)``),
    then iterated conditional modes (at most ``max_climb`` sweeps).
    """
    n = z.size
    for i in range(n):
        z[i] = rng.integers(0, sizes.size)
    _recount(z, e, sizes, kappa, indptr, indices, weights, degree)
    order = np.arange(n)
    for sweep in range(sweeps):
        beta = 0.2 + 0.8 * sweep / max(1, sweeps - 1)
        row = rng.random(2 * n)
        _shuffle(order, row, 0)
        _sweep_kernel(z, e, sizes, kappa, indptr, indices, weights, degree, order, row[n:],
                      beta, a, b, eta, gamma, dc, lut)
    _climb_kernel(z, e, sizes, kappa, indptr, indices, weights, degree, max_climb, a, b, eta,
                  gamma, dc, lut)
    return _log_joint_kernel(e, sizes, kappa, a, b, eta, gamma, dc)


@numba.njit(cache=True, nogil=True)
def _merge_into(e, sizes, kappa, r, s, e2, sizes2, kappa2):  # pragma: no cover - compiled
    """Write the block statistics after moving every node of block ``r`` into ``s``."""
    e2[:, :] = e
    sizes2[:] = sizes
    kappa2[:] = kappa
    for t in range(sizes.size):
        e2[s, t] = e[s, t] + e[r, t]
        e2[t, s] = e2[s, t]
    e2[s, s] = e[s, s] + e[r, r] + e[r, s]
    for t in range(sizes.size):
        e2[r, t] = 0.0
        e2[t, r] = 0.0
    sizes2[s] += sizes[r]
    sizes2[r] = 0.0
    kappa2[s] += kappa[r]
    kappa2[r] = 0.0


def merged_counts(
    e: np.ndarray, sizes: np.ndarray, kappa: np.ndarray, r: int, s: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block statistics after moving every node of block ``r`` into block ``s`` (copies)."""
    e2, sizes2, kappa2 = np.empty_like(e), np.empty_like(sizes), np.empty_like(kappa)
    _merge_into(e, sizes, kappa, int(r), int(s), e2, sizes2, kappa2)
    return e2, sizes2, kappa2


@numba.njit(cache=True, nogil=True)
def _best_merge(e, sizes, kappa, a, b, eta, gamma, dc):  # pragma: no cover - compiled
    """Find the merge of two occupied blocks with the highest log joint: ``(lp, r, s)``.

    :func:`_merge_into` then :func:`_log_joint_kernel` for every pair ``r < s``
    (``r`` moved into ``s``); ``(-inf, -1, -1)`` with fewer than two occupied blocks.
    """
    n_blocks = sizes.size
    e2, sizes2, kappa2 = np.empty_like(e), np.empty_like(sizes), np.empty_like(kappa)
    best, best_r, best_s = -np.inf, -1, -1
    for r in range(n_blocks):
        if sizes[r] == 0.0:
            continue
        for s in range(r + 1, n_blocks):
            if sizes[s] == 0.0:
                continue
            _merge_into(e, sizes, kappa, r, s, e2, sizes2, kappa2)
            lp = _log_joint_kernel(e2, sizes2, kappa2, a, b, eta, gamma, dc)
            if lp > best:
                best, best_r, best_s = lp, r, s
    return best, best_r, best_s


CLEANUP_MIN_GAIN = 10.0
"""Least rise of the log joint (nats) for which a start's clean-up keeps a merge or swap.

Gains of a few nats are between nearby modes that the sampler joins by itself (on the
karate club, 0.6-4 nats); keeping them makes every chain start in the same mode and,
measured on karate seeds 0-9 with 2 blocks, left one fit's R-hat at 1.011. A block cut in
halves costs hundreds of nats (68-960 on planted 1,000-node graphs).
"""


def merge_greedily(state: _State, log_factorial: float, max_climb: int = 100,
                   min_gain: float = CLEANUP_MIN_GAIN) -> int:
    r"""Merge pairs of blocks while a merge raises the collapsed log joint; return the merges.

    Each round scores every merge of two occupied blocks from the block statistics
    alone (:func:`merged_counts`), makes the best one if it raises
    :math:`\log p(A, z)` by more than ``min_gain`` and climbs (iterated conditional
    modes) from there. For the starts only: an annealed run from random labels can
    end with a block cut in two (two halves with the same edges), a local mode that
    the merge-split moves leave only rarely, since the reverse split of a merge must
    reproduce the halves node by node.
    """
    merges = 0
    while True:
        occupied = np.flatnonzero(state.sizes > 0)
        if occupied.size < 2:
            return merges
        base = _log_joint_kernel(state.e, state.sizes, state.kappa, *state.scalars)
        lp, r, s = _best_merge(state.e, state.sizes, state.kappa, *state.scalars)
        if not lp > base + min_gain:
            return merges
        best_pair = (r, s)
        z = state.z.copy()
        z[z == best_pair[0]] = best_pair[1]
        state.reset(z)
        state.climb(max_climb)
        merges += 1


@numba.njit(cache=True, nogil=True)
def _split_trial_kernel(
    rng, r, s, scans, z, e, sizes, kappa, indptr, indices, weights, degree, a, b, eta, gamma,
    dc, lut,
):  # pragma: no cover - compiled
    """Split block ``r`` into ``r`` and the empty block ``s`` in place.

    Random halves, then ``scans`` restricted Gibbs scans of its nodes over the two
    blocks (uniforms from ``rng``).
    """
    members = _members(z, r, s)
    m = members.size
    k = np.zeros(sizes.size)
    launch = rng.random(m)
    for q in range(m):
        i = members[q]
        _remove(i, z, e, sizes, kappa, k, indptr, indices, weights, degree)
        _insert(i, r if launch[q] < 0.5 else s, z, e, sizes, kappa, k, degree)
    order = np.arange(m)
    free = np.empty(0, dtype=np.int64)
    for _ in range(scans):
        uniforms = rng.random(2 * m)
        pos = _shuffle(order, uniforms, 0)
        _restricted_scan(members, order, free, r, s, z, e, sizes, kappa, indptr, indices,
                         weights, degree, uniforms, pos, a, b, eta, gamma, dc, lut)


def split_greedily(state: _State, rng: np.random.Generator, log_factorial: float,
                   scans: int = 10, min_gain: float = CLEANUP_MIN_GAIN) -> int:
    """Split blocks into empty labels while a split raises the log joint; return the splits.

    Each round tries a split of every occupied block into the first empty label
    (random halves, ``scans`` restricted Gibbs scans, then iterated conditional modes
    over all nodes, as :func:`rebalance`) and keeps the best if it raises the log
    joint by more than ``min_gain``. For the starts with the number of blocks
    inferred: a run can end with two planted blocks joined, which a merge-split move
    splits only if its few restricted scans from random halves find the two
    communities, rarely for blocks of thousands of nodes.
    """
    splits = 0
    indptr, indices, weights, lut = state.tables
    while True:
        empty = np.flatnonzero(state.sizes == 0)
        if empty.size == 0:
            return splits
        start_z = state.z.copy()
        best_z, best_lp = None, state.log_joint(log_factorial) + min_gain
        for r in np.flatnonzero(state.sizes >= 2):
            state.reset(start_z)
            _split_trial_kernel(rng, r, empty[0], scans, state.z, state.e, state.sizes,
                                state.kappa, indptr, indices, weights, state.degree,
                                *state.scalars, lut)
            state.climb(100)
            lp = state.log_joint(log_factorial)
            if lp > best_lp:
                best_z, best_lp = state.z.copy(), lp
        state.reset(start_z if best_z is None else best_z)
        if best_z is None:
            return splits
        splits += 1


def rebalance(state: _State, rng: np.random.Generator, log_factorial: float,
              scans: int = 10, max_rounds: int | None = None,
              min_gain: float = CLEANUP_MIN_GAIN) -> int:
    """With every label occupied: merge two blocks and split another while that gains.

    For a fixed number of blocks, where an annealed start can end with one planted
    block cut in two and two others joined (all labels used, a local mode of the
    single-node moves, and of merge-split moves that reshuffle two blocks). A round
    makes the merge that costs least (scored from block statistics), then tries a
    split of every block into the label freed (random halves, ``scans`` restricted
    Gibbs scans, then iterated conditional modes over all nodes) and keeps the best
    result if its log joint beats the round's start by more than ``min_gain``;
    otherwise it restores the start and stops. Returns the rounds kept.
    """
    kept = 0
    indptr, indices, weights, lut = state.tables
    for _ in range(max_rounds or state.n_blocks):
        occupied = np.flatnonzero(state.sizes > 0)
        if occupied.size < 2 or occupied.size < state.n_blocks:
            return kept
        start_z, start_lp = state.z.copy(), state.log_joint(log_factorial)
        pair = _best_merge(state.e, state.sizes, state.kappa, *state.scalars)[1:]
        merged = start_z.copy()
        merged[merged == pair[0]] = pair[1]
        best_z, best_lp = None, start_lp + min_gain
        for r in occupied:
            if r == pair[0] or np.count_nonzero(merged == r) < 2:
                continue
            state.reset(merged)
            _split_trial_kernel(rng, r, pair[0], scans, state.z, state.e, state.sizes,
                                state.kappa, indptr, indices, weights, state.degree,
                                *state.scalars, lut)
            state.climb(100)
            lp = state.log_joint(log_factorial)
            if lp > best_lp + 1e-9:
                best_z, best_lp = state.z.copy(), lp
        if best_z is None:
            state.reset(start_z)
            return kept
        state.reset(best_z)
        kept += 1
    return kept


def best_start(
    state: _State, *, n_starts: int, rng: np.random.Generator, log_factorial: float,
    sweeps: int = START_SWEEPS, cancel: threading.Event | None = None, merge: bool = False,
    swap: bool = False,
) -> float:
    """Put ``state`` at the best of ``n_starts`` annealed, climbed runs from random labels.

    Each run draws a random labelling, makes ``sweeps`` Gibbs sweeps at inverse
    temperature rising linearly from 0.2 to 1 and climbs to a local mode
    (iterated conditional modes, as :func:`climb`); the run with the highest
    collapsed log joint is kept. A run is one compiled call
    (:func:`_annealed_start_kernel`); with ``merge`` it then merges blocks and splits
    blocks into empty labels while that raises the log joint (:func:`merge_greedily`,
    :func:`split_greedily`; for the number of blocks inferred), and with ``swap`` merges
    two blocks and splits another while that raises it (:func:`rebalance`; for a
    fixed number of blocks). Returns the kept run's
    log joint. Raises :class:`Cancelled` between runs once ``cancel`` is set.
    """
    indptr, indices, weights, lut = state.tables
    best_z, best_lp = state.z.copy(), -np.inf
    for _ in range(n_starts):
        _raise_if_set(cancel)
        lp = _annealed_start_kernel(rng, int(sweeps), 100, state.z, state.e, state.sizes,
                                    state.kappa, indptr, indices, weights, state.degree,
                                    *state.scalars, lut)
        changed = False
        while merge:  # merges, then splits, until neither raises the log joint
            step = merge_greedily(state, log_factorial) + split_greedily(state, rng,
                                                                          log_factorial)
            changed = changed or step > 0
            if not step:
                break
        changed = (swap and rebalance(state, rng, log_factorial)) or changed
        if changed:
            lp = _log_joint_kernel(state.e, state.sizes, state.kappa, *state.scalars)
        if lp > best_lp:
            best_z, best_lp = state.z.copy(), lp
    state.reset(best_z)
    return state.log_joint(log_factorial)


class Chain:
    """One chain of the sampler: start, discarded sweeps, then recorded draws.

    ``n_starts=1`` starts from one random labelling (and anneals the tuning sweeps);
    more start from the best of that many annealed runs (:func:`best_start`). A
    sweep updates every node's label once, in random order, from p(z_i | z_-i, A)
    with omega, theta and pi integrated out (compiled kernel; the order and the
    uniforms come from ``rng``). Every ``thin`` sweeps are followed by
    ``merge_split`` merge-split moves per occupied block (:meth:`_State.merge_split`)
    and one recorded
    draw, with omega, theta and pi drawn from their exact conditionals given z;
    ``accept`` records the share of those moves accepted. A chain owns its state and
    its ``rng``, and its compiled kernels release the GIL, so chains can run in
    parallel threads with the same draws as one after another; once ``cancel`` is
    set, the start, :meth:`tune` and :meth:`record` raise :class:`Cancelled` at their
    next step.
    """

    def __init__(self, adj: sp.csr_matrix, degree: np.ndarray, n_blocks: int, h: Hyper, *,
                 rng: np.random.Generator, log_factorial: float, n_starts: int = 1,
                 merge_split: int = 0, cancel: threading.Event | None = None,
                 merge_starts: bool = False, swap_starts: bool = False) -> None:
        n = adj.shape[0]
        self.h, self.rng, self.log_factorial = h, rng, log_factorial
        self.param_rng = rng.spawn(1)[0]  # omega, pi and theta: apart from the labels
        self.n_starts, self.merge_split = n_starts, merge_split
        self.cancel = cancel
        self.state = _State(adj, degree, np.zeros(n, dtype=np.int64), n_blocks, h)
        if n_starts > 1:
            best_start(self.state, n_starts=n_starts, rng=rng, log_factorial=log_factorial,
                       cancel=cancel, merge=merge_starts, swap=swap_starts)
        else:
            self.state.reset(rng.integers(0, n_blocks, n))
        self.draws: dict[str, list] = {k: [] for k in
                                       ("z", "omega", "pi", "theta", "lp", "log_likelihood",
                                        "accept")}

    def _sweep(self, inverse_temperature: float = 1.0) -> None:
        n = self.state.z.size
        self.state.sweep(self.rng.permutation(n), self.rng.random(n), inverse_temperature)

    def _moves(self) -> int:
        """Merge-split moves per round: ``merge_split`` per occupied block."""
        return self.merge_split * max(1, int(np.count_nonzero(self.state.sizes)))

    def tune(self, sweeps: int) -> None:
        """Discarded sweeps, each followed by the merge-split moves.

        From a single random start they are annealed (inverse temperature rising to 1)
        to escape a poor starting partition; after annealed starts they are plain Gibbs,
        as reheating could leave the mode found.
        """
        if self.n_starts > 1:
            self._rounds(sweeps, 1, record=False)
            return
        anneal = max(1, (2 * sweeps) // 3)
        for sweep in range(sweeps):
            _raise_if_set(self.cancel)
            self._sweep(min(1.0, 0.2 + 0.8 * sweep / anneal))
            self.state.merge_split(self.rng, self._moves())

    def _rounds(self, rounds: int, thin: int, *, record: bool) -> dict[str, np.ndarray]:
        """Run ``rounds`` rounds of :func:`_rounds_kernel`, in chunks between cancel checks.

        A chunk holds about ``ROUND_CHUNK`` node updates of the sweeps, so a cancelled
        chain stops within a fraction of a second. Returns the recorded arrays (empty
        without ``record``).
        """
        state = self.state
        n, k = state.z.size, state.n_blocks
        rows = rounds if record else 0
        out = {"z": np.empty((rows, n), dtype=np.int16), "e": np.empty((rows, k, k)),
               "sizes": np.empty((rows, k)), "kappa": np.empty((rows, k)),
               "lp": np.empty(rows), "accept": np.empty(rows)}
        indptr, indices, weights, lut = state.tables
        chunk = max(1, ROUND_CHUNK // (n * thin))
        for start in range(0, rounds, chunk):
            _raise_if_set(self.cancel)
            stop = min(rounds, start + chunk)
            part = slice(start, stop) if record else slice(0, 0)
            _rounds_kernel(self.rng, stop - start, int(thin), int(self.merge_split),
                           MERGE_SPLIT_SCANS, state.z, state.e, state.sizes, state.kappa,
                           indptr, indices, weights, state.degree, *state.scalars, lut,
                           out["z"][part], out["e"][part], out["sizes"][part],
                           out["kappa"][part], out["lp"][part], out["accept"][part])
        return out

    def record(self, draws: int, thin: int = 1) -> None:
        """Record ``draws`` draws, each after ``thin`` sweeps and the merge-split moves.

        The labels come from one compiled loop (:func:`_rounds_kernel`); omega, pi and
        theta are then drawn from their exact conditionals given each recorded
        labelling, all draws at once, from the chain's second random stream
        (``param_rng``), so the labels do not depend on them.
        """
        state = self.state
        out = self._rounds(draws, thin, record=True)
        # The compiled log joint omits terms that do not depend on z: add them back.
        offset = log_joint_constant(state.degree, state.n_blocks, self.h, self.log_factorial)
        omega, pi, theta, loglik = draw_parameters(self.param_rng, out["e"], out["sizes"],
                                                   out["z"], state.degree, self.h)
        loglik -= self.log_factorial
        if theta is None:
            theta = [None] * draws
        self.draws["z"].extend(out["z"])
        self.draws["omega"].extend(omega)
        self.draws["pi"].extend(pi)
        self.draws["theta"].extend(theta)
        self.draws["lp"].extend(offset + out["lp"])
        self.draws["log_likelihood"].extend(loglik)
        self.draws["accept"].extend(out["accept"])

    def keep_every_other(self) -> None:
        """Drop every other recorded draw (the earlier of each pair)."""
        for key, values in self.draws.items():
            self.draws[key] = values[1::2]

    def result(self) -> dict[str, np.ndarray | None]:
        """Return the recorded draws as arrays (``theta`` None without degree correction)."""
        out = {k: np.stack(v) if v[0] is not None else None for k, v in self.draws.items()}
        out["accept"] = np.asarray(self.draws["accept"], dtype=float)
        return out


def run_chain(
    adj: sp.csr_matrix,
    degree: np.ndarray,
    n_blocks: int,
    h: Hyper,
    *,
    draws: int,
    tune: int,
    rng: np.random.Generator,
    log_factorial: float,
    n_starts: int = 1,
    merge_split: int = 0,
    thin: int = 1,
) -> dict[str, np.ndarray | None]:
    """One :class:`Chain`: a start, ``tune`` discarded sweeps, ``draws`` recorded draws."""
    chain = Chain(adj, degree, n_blocks, h, rng=rng, log_factorial=log_factorial,
                  n_starts=n_starts, merge_split=merge_split)
    chain.tune(tune)
    chain.record(draws, thin)
    return chain.result()


def coassignment(z: np.ndarray, n_blocks: int, chunk: int = 256) -> np.ndarray:
    """Share of draws (rows of ``z``) in which each pair of nodes shares a block."""
    n_draws, n = z.shape
    total = np.zeros((n, n))
    for start in range(0, n_draws, chunk):
        block = z[start : start + chunk]
        onehot = np.zeros((n, block.shape[0] * n_blocks), dtype=np.float32)
        onehot[np.repeat(np.arange(n), block.shape[0]),
               (np.arange(block.shape[0]) * n_blocks + block.T).ravel()] = 1.0
        total += onehot @ onehot.T
    return total / n_draws


def least_squares_draw(z: np.ndarray, coassign: np.ndarray, n_blocks: int, chunk: int = 256) -> int:
    """Index of the draw closest, in squared error, to the co-assignment matrix (Dahl 2006).

    Uses sum_ij (S_ij - P_ij)^2 = sum_r n_r^2 - 2 sum_r 1_r' P 1_r + const for the
    draw's co-assignment S, so no n x n matrix is formed per draw.
    """
    n_draws, n = z.shape
    loss = np.empty(n_draws)
    for start in range(0, n_draws, chunk):
        block = z[start : start + chunk]
        m = block.shape[0]
        onehot = np.zeros((n, m * n_blocks))
        onehot[np.repeat(np.arange(n), m), (np.arange(m) * n_blocks + block.T).ravel()] = 1.0
        within = ((coassign @ onehot) * onehot).sum(axis=0).reshape(m, n_blocks).sum(axis=1)
        sizes = onehot.sum(axis=0).reshape(m, n_blocks)
        loss[start : start + m] = (sizes**2).sum(axis=1) - 2.0 * within
    return int(np.argmin(loss))


def canonical(z: np.ndarray) -> np.ndarray:
    """Relabel blocks in order of first appearance along the nodes."""
    _, first = np.unique(z, return_index=True)
    order = np.unique(z)[np.argsort(first)]
    mapping = np.empty(z.max() + 1, dtype=np.int64)
    mapping[order] = np.arange(order.size)
    return mapping[z]


def align_to(reference: np.ndarray, z: np.ndarray, n_blocks: int) -> np.ndarray:
    """Permutation ``perm`` (old label -> new) maximising agreement of ``z`` with ``reference``."""
    table = np.zeros((n_blocks, n_blocks))
    np.add.at(table, (z, reference), 1.0)
    rows, cols = linear_sum_assignment(-table)
    perm = np.empty(n_blocks, dtype=np.int64)
    perm[rows] = cols
    return perm


def align_all_to(reference: np.ndarray, z: np.ndarray, n_blocks: int,
                 max_entries: int = 2_000_000) -> np.ndarray:
    """:func:`align_to` for every row of ``z`` (draws x nodes): permutations, one per row.

    The contingency tables of all rows are counted at once, ``max_entries`` labels at a time.
    """
    n_rows, n = z.shape
    k2 = n_blocks * n_blocks
    perm = np.empty((n_rows, n_blocks), dtype=np.int64)
    step = max(1, max_entries // max(n, 1))
    for start in range(0, n_rows, step):
        block = z[start : start + step]
        m = block.shape[0]
        codes = (np.arange(m)[:, None] * k2 + block * n_blocks + reference[None, :]).ravel()
        tables = np.bincount(codes, minlength=m * k2).reshape(m, n_blocks, n_blocks)
        for t in range(m):
            rows, cols = linear_sum_assignment(-tables[t])
            perm[start + t, rows] = cols
    return perm


def climb(
    adj: sp.csr_matrix, degree: np.ndarray, z: np.ndarray, n_blocks: int, h: Hyper,
    log_factorial: float, max_sweeps: int = 100,
) -> tuple[np.ndarray, float]:
    """Climb to a local mode of p(z | A) by iterated conditional modes from ``z``.

    Nodes, in index order, move to their best block until none moves (compiled kernel).

    Every move raises the collapsed log joint, so this ends at a local mode of
    p(z | A); returns the partition and its log joint.
    """
    state = _State(adj, degree, z, n_blocks, h)
    state.climb(max_sweeps)
    return state.z, state.log_joint(log_factorial)
