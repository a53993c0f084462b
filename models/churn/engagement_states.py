"""The state space of the engagement HMM, and its parameters as the numpy kernels take them.

:class:`StateSpace` holds the structure of an
:class:`~models.churn.EngagementStateModel` (its states and moves, the nodes of
the user effect, whether segments and covariates shift the transitions) and
turns posterior draws into the arrays of :mod:`models.churn._hmm`: emission
tables at each node, initial distributions, each user's transition matrices,
and the forward filter of a block of histories. The model's PyMC graph and its
predictions build on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from models.churn import _hmm
from models.churn.engagement_data import state_labels

__all__ = ["StateSpace", "compress", "effect_nodes", "first_periods"]


def compress(codes: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the unique (segment, history) rows, each user's row and the users per row."""
    both = np.concatenate([seg[:, None], codes], axis=1)
    rows, inverse, counts = np.unique(both, axis=0, return_inverse=True, return_counts=True)
    return rows, inverse.reshape(-1), counts.astype(float)


def effect_nodes(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal nodes of a user effect and their log-probabilities.

    ``n_nodes`` equally spaced points on [-4, 4] with probabilities proportional
    to the normal density (the trapezoid rule); one node at 0 for ``n_nodes=1``.
    """
    if n_nodes == 1:
        return np.zeros(1), np.zeros(1)
    z = np.linspace(-4.0, 4.0, n_nodes)
    log_w = -0.5 * z**2
    return z, log_w - np.log(np.exp(log_w).sum())


def first_periods(codes: np.ndarray, missing: int) -> np.ndarray:
    """First observed period of each row of codes."""
    return np.argmax(codes != missing, axis=1)


@dataclass(frozen=True)
class StateSpace:
    """Structure of an engagement HMM: states, moves, nodes of the user effect.

    ``segment`` and ``covariates`` say whether segments and covariates shift
    the transitions; ``n_nodes`` is 1 without user effects.
    """

    n_states: int
    period_length: int
    churn_state: bool = False
    churn_returns: bool = False
    segment: bool = False
    covariates: bool = False
    user_effects: bool = False
    user_transitions: bool = False
    n_nodes: int = 1

    @property
    def labels(self) -> list[str]:
        """Labels of every state, the churned one last."""
        labels = state_labels(self.n_states)
        return [*labels, "churned"] if self.churn_state else labels

    def moves(self) -> list[tuple[int, int]]:
        """(from, to) states of the move logits, in the order of the ``move`` coordinate."""
        c = len(self.labels)
        k = c if self.churn_returns else self.n_states
        return [(i, j) for i in range(k) for j in range(c) if i != j]

    def move_direction(self) -> np.ndarray:
        """+1 for a move to a more active state, -1 to a less active one (churned least)."""
        rank = np.arange(len(self.labels), dtype=float)
        if self.churn_state:
            rank[-1] = -1.0
        return np.array([np.sign(rank[j] - rank[i]) for i, j in self.moves()])

    def params(self, arrays: Mapping[str, np.ndarray],
                      design: dict | None = None) -> dict[str, Any]:
        """Model parameters per draw as the numpy kernels take them.

        Emission tables ``(D, Q, V, C)`` at the nodes of the user effect (one
        node without), the nodes' log-probabilities ``log_nodes``, the initial
        distribution and the transition matrices ``(D, Q_t, C, C)`` (``(D, Q_t,
        S, C, C)`` with segments), ``Q_t = Q`` when the effect tilts them
        (``user_transitions``), else 1. With covariates, the pieces of each
        user's move logits instead, and the transition groups' ``design``
        (see :meth:`transitions_for`).
        """
        k = self.n_states
        c = len(self.labels)
        p = arrays["emission_probability"]
        kappa = arrays.get("emission_concentration")
        z, log_nodes = effect_nodes(self.n_nodes)
        p_nodes = p[:, None, :]
        if self.user_effects:
            with np.errstate(divide="ignore"):
                logit = np.log(p) - np.log1p(-p)
            p_nodes = special.expit(logit[:, None, :] + arrays["sigma_user"].reshape(-1, 1, 1)
                                    * z[None, :, None])
        q = len(z)
        flat_kappa = None if kappa is None else np.repeat(kappa, q, axis=0)
        emission = _hmm.emission_table(p_nodes.reshape(-1, k), flat_kappa, self.period_length,
                                       self.churn_state)
        emission = emission.reshape(p.shape[0], q, *emission.shape[1:])
        initial = np.concatenate([arrays["initial_probability"],
                                  np.zeros((p.shape[0], c - k))], axis=1)
        out = {"emission": emission, "log_nodes": log_nodes, "initial": initial}
        if self.covariates:  # each user's matrices, from its move logits (_transitions_for)
            out.update(logit=arrays["transition_logit"], coef=arrays["transition_coef"],
                       design=design)
            if self.segment:  # (D, S, moves)
                out["segment_shift"] = (arrays["segment_sigma"].reshape(-1, 1, 1)
                                        * arrays["segment_offset"])
            if self.user_transitions:  # (D, Q, moves)
                out["shift"] = (arrays["transition_tilt"] * arrays["sigma_user"]).reshape(
                    -1, 1, 1) * (z[:, None] * self.move_direction()[None, :])[None]
            return out
        if self.user_transitions:  # each node's own matrices, from the tilted move logits
            logits = arrays["transition_logit"]  # (D, moves)
            if self.segment:
                logits = logits[:, None, :] + (arrays["segment_sigma"].reshape(-1, 1, 1)
                                               * arrays["segment_offset"])
            shift = (arrays["transition_tilt"] * arrays["sigma_user"]).reshape(
                -1, *([1] * (logits.ndim - 1)))[:, None] * (
                z[:, None] * self.move_direction()[None, :]).reshape(
                1, q, *([1] * (logits.ndim - 2)), -1)
            trans = self.matrix(logits[:, None] + shift)
        else:
            name = ("transition_probability_segment" if self.segment
                    else "transition_probability")
            trans = arrays[name]
            if trans.shape[-2] < c:  # the absorbing churned state
                dead = np.zeros((*trans.shape[:-2], 1, c))
                dead[..., 0, c - 1] = 1.0
                trans = np.concatenate([trans, dead], axis=-2)
            trans = trans[:, None]
        return {**out, "transition": trans}

    def transitions_for(self, params: Mapping[str, Any], group: np.ndarray) -> np.ndarray:
        """Transition matrices of users of transition groups ``group``.

        ``(D, Q_t, C, C)`` shared by the users (no segments, no covariates), or
        ``(D, Q_t, U, C, C)``.
        """
        if not self.covariates:
            trans = params["transition"]
            return trans[:, :, group] if self.segment else trans
        design = params["design"]
        logits = params["logit"][:, None, :] + np.einsum(
            "uc,dcm->dum", design["x"][group], params["coef"])  # (D, U, moves)
        if self.segment:
            logits = logits + params["segment_shift"][:, design["segment"][group]]
        logits = logits[:, None] + params["shift"][:, :, None] if "shift" in params \
            else logits[:, None]
        return self.matrix(logits)

    def matrix(self, logits: np.ndarray) -> np.ndarray:
        """Transition matrices ``(..., C, C)`` from move logits ``(..., moves)`` (numpy)."""
        c = len(self.labels)
        rows = c if self.churn_returns else self.n_states
        full = np.zeros((*logits.shape[:-1], rows, c))
        for m, (i, j) in enumerate(self.moves()):
            full[..., i, j] = logits[..., m]
        probs = special.softmax(full, axis=-1)
        if rows < c:  # the absorbing churned state
            dead = np.zeros((*logits.shape[:-1], 1, c))
            dead[..., 0, c - 1] = 1.0
            probs = np.concatenate([probs, dead], axis=-2)
        return probs

    def forward_filter(self, params: Mapping[str, Any], codes: np.ndarray,
                seg: np.ndarray) -> tuple[_hmm.NodeFilter, np.ndarray]:
        """Forward algorithm at each node of rows ``codes`` (groups ``seg``); their transitions.

        The transitions keep their node axis: ``(D, Q_t, C, C)``, or ``(D, Q_t, U,
        C, C)`` with segments or covariates.
        """
        trans = self.transitions_for(params, seg)
        start = first_periods(codes, self.period_length + 1)
        nodes = _hmm.forward_nodes(codes, start, params["emission"], params["initial"], trans,
                                   params["log_nodes"])
        return nodes, trans
