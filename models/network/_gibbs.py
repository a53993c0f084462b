r"""Collapsed Gibbs sampler of the Poisson (degree-corrected) stochastic block model.

Numpy core of :class:`models.network.StochasticBlockModel`: block-edge counts, the
collapsed log joint :math:`\log p(A, z)`, one chain of single-node label updates
vectorised over blocks, and label alignment between draws.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

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


def log_joint(
    e: np.ndarray, sizes: np.ndarray, kappa: np.ndarray, degree: np.ndarray, h: Hyper,
    log_factorial: float,
) -> float:
    """Collapsed log p(A, z): omega, theta and pi integrated out analytically."""
    k = len(sizes)
    upper = np.triu_indices(k)
    x = exposure(sizes, h.degree_corrected)[upper]
    ee = e[upper]
    value = np.sum(h.a * np.log(h.b) - gammaln(h.a) + gammaln(ee + h.a)
                   - (ee + h.a) * np.log(x + h.b))
    if h.degree_corrected:
        occupied = sizes > 0
        s = sizes[occupied]
        value += np.sum(gammaln(s * h.eta) - gammaln(kappa[occupied] + s * h.eta))
        value += np.sum(gammaln(degree + h.eta) - gammaln(h.eta))
    n = sizes.sum()
    value += gammaln(k * h.gamma) - gammaln(n + k * h.gamma)
    value += np.sum(gammaln(sizes + h.gamma) - gammaln(h.gamma))
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
) -> dict[str, np.ndarray]:
    """One chain: ``tune`` discarded sweeps, then ``draws`` recorded sweeps.

    Each sweep updates every node's label once, in random order, from
    p(z_i | z_-i, A) with omega, theta and pi integrated out; after a sweep
    omega, theta and pi are drawn from their exact conditionals given z.
    """
    n = adj.shape[0]
    indptr, indices, weights = adj.indptr, adj.indices, adj.data.astype(float)
    z = rng.integers(0, n_blocks, n)
    e, sizes, kappa = block_counts(adj, z, degree, n_blocks)
    a, b, eta, gamma, dc = h.a, h.b, h.eta, h.gamma, h.degree_corrected
    out = {
        "z": np.empty((draws, n), dtype=np.int16),
        "omega": np.empty((draws, n_blocks, n_blocks)),
        "pi": np.empty((draws, n_blocks)),
        "theta": np.empty((draws, n)) if dc else None,
        "lp": np.empty(draws),
        "log_likelihood": np.empty(draws),
    }
    anneal = max(1, (2 * tune) // 3)
    for sweep in range(tune + draws):
        # Tuning sweeps are annealed (inverse temperature rising to 1) to escape poor
        # starting partitions; they are discarded. Recorded sweeps are exact Gibbs.
        inverse_temperature = min(1.0, 0.2 + 0.8 * sweep / anneal) if sweep < tune else 1.0
        order = rng.permutation(n)
        uniforms = rng.random(n)
        for t in range(n):
            i = order[t]
            old = z[i]
            lo, hi = indptr[i], indptr[i + 1]
            k = np.bincount(z[indices[lo:hi]], weights=weights[lo:hi], minlength=n_blocks)
            e[old] -= k
            e[:, old] -= k
            e[old, old] += k[old]
            sizes[old] -= 1
            kappa[old] -= degree[i]
            logp = label_log_probs(e, sizes, kappa, k, degree[i], h)
            if inverse_temperature < 1.0:
                logp *= inverse_temperature
            prob = np.exp(logp - logp.max())
            cumulative = np.cumsum(prob)
            new = int(np.searchsorted(cumulative, uniforms[t] * cumulative[-1], side="right"))
            new = min(new, n_blocks - 1)
            z[i] = new
            e[new] += k
            e[:, new] += k
            e[new, new] -= k[new]
            sizes[new] += 1
            kappa[new] += degree[i]
        if sweep < tune:
            continue
        d = sweep - tune
        x = exposure(sizes, dc)
        omega = rng.gamma(a + e, 1.0 / (b + x))
        omega = np.triu(omega) + np.triu(omega, 1).T
        theta_draw = None
        if dc:
            g = rng.gamma(eta + degree)
            theta_draw = g / np.bincount(z, weights=g, minlength=n_blocks)[z]
            out["theta"][d] = theta_draw
        out["z"][d] = z
        out["omega"][d] = omega
        out["pi"][d] = rng.dirichlet(gamma + sizes)
        out["lp"][d] = log_joint(e, sizes, kappa, degree, h, log_factorial)
        out["log_likelihood"][d] = log_likelihood(
            e, sizes, omega, theta_draw, degree, dc, log_factorial
        )
    return out


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


def climb(
    adj: sp.csr_matrix, degree: np.ndarray, z: np.ndarray, n_blocks: int, h: Hyper,
    log_factorial: float, max_sweeps: int = 100,
) -> tuple[np.ndarray, float]:
    """Climb to a local mode of p(z | A) by iterated conditional modes from ``z``.

    Nodes move to their best block until none moves.

    Every move raises the collapsed log joint, so this ends at a local mode of
    p(z | A); returns the partition and its log joint.
    """
    z = z.astype(np.int64).copy()
    e, sizes, kappa = block_counts(adj, z, degree, n_blocks)
    indptr, indices, weights = adj.indptr, adj.indices, adj.data.astype(float)
    for _ in range(max_sweeps):
        moved = 0
        for i in range(z.size):
            old = z[i]
            lo, hi = indptr[i], indptr[i + 1]
            k = np.bincount(z[indices[lo:hi]], weights=weights[lo:hi], minlength=n_blocks)
            e[old] -= k
            e[:, old] -= k
            e[old, old] += k[old]
            sizes[old] -= 1
            kappa[old] -= degree[i]
            logp = label_log_probs(e, sizes, kappa, k, degree[i], h)
            new = old if logp[old] >= logp.max() - 1e-12 else int(np.argmax(logp))
            moved += new != old
            z[i] = new
            e[new] += k
            e[:, new] += k
            e[new, new] -= k[new]
            sizes[new] += 1
            kappa[new] += degree[i]
        if not moved:
            break
    return z, log_joint(e, sizes, kappa, degree, h, log_factorial)
