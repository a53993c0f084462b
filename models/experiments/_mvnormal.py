r"""Multivariate normal rows with their own means and covariances: a compiled PyTensor Op.

:func:`mvnormal_logp` is the log-density of each row of a matrix under a normal
with that row's mean and covariance, with its gradients, computed by one
compiled loop over the rows (no C compilation, no BLAS, whatever the
dimension); :func:`mvnormal_random` draws from the same normals. Together they
are the likelihood of :class:`~models.experiments.ProxyMetricModel`, whose
experiments each add their own measurement noise to the covariance.
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

__all__ = ["mvnormal_logp", "mvnormal_random"]


@numba.njit(cache=True)
def _mvnormal_rows(value: np.ndarray, mu: np.ndarray, cov: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Log-density of each row and its gradients with respect to the mean and covariance."""
    n, p = value.shape
    logp, d_mu, d_cov = np.empty(n), np.empty((n, p)), np.empty((n, p, p))
    chol, inv_l = np.zeros((p, p)), np.zeros((p, p))
    white, alpha = np.empty(p), np.empty(p)
    const = -0.5 * p * np.log(2.0 * np.pi)
    for r in range(n):
        ok = True
        for i in range(p):  # Cholesky factor of this row's covariance
            for j in range(i + 1):
                s = cov[r, i, j]
                for k in range(j):
                    s -= chol[i, k] * chol[j, k]
                if i == j:
                    ok = s > 0.0
                    if not ok:
                        break
                    chol[i, i] = np.sqrt(s)
                else:
                    chol[i, j] = s / chol[j, j]
            if not ok:
                break
        if not ok:  # not positive definite: outside the support
            logp[r] = -np.inf
            d_mu[r] = 0.0
            d_cov[r] = 0.0
            continue
        half_logdet = 0.0
        for i in range(p):  # inverse of the factor, and the whitened residual
            half_logdet += np.log(chol[i, i])
            inv_l[i, i] = 1.0 / chol[i, i]
            for j in range(i):
                s = 0.0
                for k in range(j, i):
                    s += chol[i, k] * inv_l[k, j]
                inv_l[i, j] = -s / chol[i, i]
        quad = 0.0
        for i in range(p):
            s = 0.0
            for k in range(i + 1):
                s += inv_l[i, k] * (value[r, k] - mu[r, k])
            white[i] = s
            quad += s * s
        for i in range(p):  # alpha = cov^-1 (value - mu)
            s = 0.0
            for k in range(i, p):
                s += inv_l[k, i] * white[k]
            alpha[i] = s
            d_mu[r, i] = s
        for i in range(p):
            for j in range(p):
                s = 0.0
                for k in range(max(i, j), p):
                    s += inv_l[k, i] * inv_l[k, j]
                d_cov[r, i, j] = 0.5 * (alpha[i] * alpha[j] - s)
        logp[r] = const - 0.5 * quad - half_logdet
    return logp, d_mu, d_cov


class _BatchedMvNormalLogp(Op):
    r"""Log-densities of rows of ``value`` under normals with per-row means and covariances.

    Inputs ``value`` (rows, p) (data, not differentiated), ``mu`` (rows, p) and
    ``cov`` (rows, p, p); outputs the log-densities (rows,) and their
    gradients with respect to ``mu`` and ``cov`` (:math:`\alpha = \Sigma^{-1}(x - \mu)`
    and :math:`(\alpha\alpha^\top - \Sigma^{-1})/2`), computed together by a
    compiled loop over the rows. It needs no C compilation and no BLAS, whatever ``p``.
    """

    __props__ = ()

    def make_node(self, value: Any, mu: Any, cov: Any) -> Apply:
        """Build the node: value and mean matrices and a stack of covariances."""
        inputs = [pt.as_tensor_variable(v, dtype="float64") for v in (value, mu, cov)]
        return Apply(self, inputs, [pt.dvector(), pt.dmatrix(), pt.dtensor3()])

    def perform(self, node: Apply, inputs: Sequence[np.ndarray], outputs: Any) -> None:
        """Evaluate the log-densities and their gradients."""
        for out, result in zip(outputs, _mvnormal_rows(*inputs), strict=True):
            out[0] = result

    def pullback(self, inputs: Sequence[Any], outputs: Sequence[Any],
                 cotangents: Sequence[Any]) -> list[Any]:
        """Chain rule through the log-densities (the data input is not differentiated)."""
        out = cotangents[0]
        return [disconnected_type(), out[:, None] * outputs[1], out[:, None, None] * outputs[2]]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Say which inputs feed which outputs: the data input feeds none."""
        return [[False] * 3, [True] * 3, [True] * 3]


#: Salt of PyTensor's on-disk cache of the compiled Op (see models._compiled.source_salt).
_KERNEL_VERSION = source_salt(__file__)


@register_funcify_default_op_cache_key(_BatchedMvNormalLogp)
def _numba_mvnormal_rows(op: _BatchedMvNormalLogp, node: Any = None, **kwargs: Any) -> Any:
    """Compiled implementation of the Op for PyTensor's numba backend (nutpie)."""
    @numba.njit
    def mvnormal_rows(value, mu, cov):  # pragma: no cover - compiled
        return _mvnormal_rows(value, mu, cov)

    return mvnormal_rows, _KERNEL_VERSION


def mvnormal_logp(value: Any, mu: Any, cov: Any) -> Any:
    """Log-density of each row of ``value``; ``mu`` and ``cov`` broadcast over the rows."""
    rows, size = value.shape[0], value.shape[1]
    mu = pt.broadcast_to(mu, (rows, size))
    cov = pt.broadcast_to(cov, (rows, size, size))
    return _BatchedMvNormalLogp()(value, mu, cov)[0]


def mvnormal_random(mu: np.ndarray, cov: np.ndarray, rng: np.random.Generator | None = None,
                    size: tuple[int, ...] | None = None) -> np.ndarray:
    """Draws of multivariate normals (the ``random`` of the ``pm.CustomDist``)."""
    mu, cov = np.asarray(mu), np.asarray(cov)
    shape = tuple(np.atleast_1d(size)) if size is not None else np.broadcast_shapes(
        mu.shape[:-1], cov.shape[:-2])
    chol = np.linalg.cholesky(np.broadcast_to(cov, (*shape, *cov.shape[-2:])))
    z = rng.standard_normal((*shape, mu.shape[-1]))
    return mu + np.einsum("...ij,...j->...i", chol, z)
