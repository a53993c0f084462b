"""The engagement HMM's parameters as a PyMC graph: emission tables and transition matrices.

:class:`~models.churn.EngagementStateModel` builds its PyMC model from these two
pieces and the compiled likelihood of :mod:`models.churn.hmm_kernel`;
:class:`~models.churn.engagement_states.StateSpace` holds the numpy side of the
same parameters, for predictions. :func:`transition_matrices` adds the
transitions' random variables and deterministics, so it is called inside the
model's context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special

from models.churn.engagement_states import StateSpace
from models.priors import Prior

__all__ = ["emission_table", "transition_matrices"]


def emission_table(p: Any, n_days: int, kappa: Any = None, churn_state: bool = False) -> Any:
    """Probabilities ``(Q, V, C)`` of each code in each state, at each node of the user effect.

    ``p`` ``(Q, 1, K)`` is the activity states' mean share of active days at
    each node; ``kappa`` ``(K,)`` their beta-binomial concentration (binomial
    days without it). The codes are ``0..n_days`` active days and then the
    missing code, of probability 1 in every state; with ``churn_state`` a last,
    silent state emits 0 days or the missing code.
    """
    y = np.arange(n_days + 1.0)[None, :, None]
    n = float(n_days)
    # in numpy: PyTensor would take the Python float n + 1.0 as a float32 constant
    log_choose = special.gammaln(n + 1.0) - special.gammaln(y + 1.0) - special.gammaln(n - y + 1.0)
    if kappa is not None:
        a, b = p * kappa, (1.0 - p) * kappa
        log_pmf = (log_choose + pt.gammaln(y + a) + pt.gammaln(n - y + b)
                   - pt.gammaln(n + kappa) - pt.gammaln(a) - pt.gammaln(b) + pt.gammaln(kappa))
    else:
        log_pmf = log_choose + y * pt.log(p) + (n - y) * pt.log1p(-p)
    q, k = p.shape[0], p.shape[2]
    table = pt.concatenate([pt.exp(log_pmf), pt.ones((q, 1, k))], axis=1)
    if churn_state:
        dead = np.zeros((1, n_days + 2, 1))
        dead[:, 0] = dead[:, -1] = 1.0
        table = pt.concatenate([table, pt.zeros((q, 1, 1)) + dead], axis=2)
    return table


def transition_matrices(space: StateSpace, move: Any, priors: Mapping[str, Prior],
                        seg_labels: list | None = None, shift: Any = None,
                        design: dict | None = None, sds: np.ndarray | None = None) -> Any:
    """Transition matrices ``(Q_t, G, C, C)`` from the move logits ``move`` ``(moves,)``.

    ``G`` is 1 without segments, the segments, or with covariates the
    transition groups of ``design`` (their segments and standardised
    covariates; ``sds`` the covariates' training standard deviations);
    ``Q_t`` is 1, or the nodes of the user effect when ``shift`` ``(Q,
    moves)`` tilts each node's move logits. Adds ``transition_probability``,
    the segments' offsets and matrices, and the covariates' coefficients to the
    model in context.
    """
    c = len(space.labels)
    k = c if space.churn_returns else space.n_states  # states that can be left
    rows_, cols_ = zip(*space.moves(), strict=True)

    def matrix(logits: Any) -> Any:  # logits (..., moves) -> (..., C, C)
        lead = tuple(logits.shape[:-1])
        scatter = np.zeros((len(rows_), k * c))
        scatter[np.arange(len(rows_)), np.asarray(rows_) * c + np.asarray(cols_)] = 1.0
        full = pt.dot(logits, scatter).reshape((*lead, k, c))
        probs = pt.special.softmax(full, axis=-1)
        if c > k:
            dead = np.zeros((1, c))
            dead[0, c - 1] = 1.0
            dead = pt.zeros((*lead, 1, c)) + dead
            probs = pt.concatenate([probs, dead], axis=-2)
        return probs

    pm.Deterministic("transition_probability", matrix(move)[:k],
                     dims=("from_state", "to_state"))
    logits = move[None, :]
    if seg_labels is not None:
        sigma = priors["segment_sigma"].create("segment_sigma")
        z = pm.Normal("segment_offset", 0.0, 1.0, dims=("segment", "move"))
        logits = logits + sigma * z
        pm.Deterministic("transition_probability_segment", matrix(logits)[:, :k],
                         dims=("segment", "from_state", "to_state"))
    if design is not None:
        coef = priors["transition_coef"].create("transition_coef", dims=("covariate", "move"))
        pm.Deterministic("transition_coef_per_unit", coef / sds[:, None],
                         dims=("covariate", "move"))
        logits = logits[design["segment"]] + pt.dot(design["x"], coef)
    if shift is None:
        return matrix(logits)[None]
    return matrix(logits[None, :, :] + shift[:, None, :])
