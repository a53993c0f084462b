r"""The numpy core of :class:`~models.experiments.SurrogateIndexModel`.

:class:`Scaling` standardises the surrogates (and the outcome) as learnt from
the reference sample; :func:`surrogate_index` evaluates
:math:`E[Y \mid S_i, \theta_d]` for every posterior draw and user, and
:func:`arm_moments` its mean and variance over the users of an arm per draw
(in closed form for the normal likelihood, by blocks of users otherwise).
:func:`column_problems` checks the surrogate columns of a sample.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from models._validation import TABLE, row_problem
from models.exceptions import Problem

__all__ = ["Scaling", "arm_moments", "arm_moments_by_block", "column_problems",
           "surrogate_index"]

#: Draws x users evaluated at once.
BLOCK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Scaling:
    """Standardisation learnt from the reference sample (identity without ``standardize``)."""

    center: np.ndarray
    scale: np.ndarray
    outcome_center: float
    outcome_scale: float
    offset: float  # link of the reference mean outcome (GLMs)

    @classmethod
    def fit(cls, s: np.ndarray, y: np.ndarray, likelihood: str, standardize: bool) -> Scaling:
        """Learn the scaling from the surrogates ``s`` (users, k) and outcomes ``y``."""
        k = s.shape[1]
        if not standardize:
            return cls(np.zeros(k), np.ones(k), 0.0, 1.0, 0.0)
        center, scale = s.mean(axis=0), s.std(axis=0, ddof=1)
        if likelihood == "normal":
            return cls(center, scale, float(y.mean()), float(y.std(ddof=1)), 0.0)
        link = special.logit if likelihood == "bernoulli" else np.log
        return cls(center, scale, 0.0, 1.0, float(link(y.mean())))


def surrogate_index(params: Mapping[str, np.ndarray], z: np.ndarray, scaling: Scaling,
                    likelihood: str) -> np.ndarray:
    """Surrogate index E[Y | S, theta_d] of standardised surrogates ``z``, shape (draw, user)."""
    sc = scaling
    eta = sc.offset + params["intercept"][:, None] + params["beta"] @ z.T
    if likelihood == "normal":
        return sc.outcome_center + sc.outcome_scale * eta
    if likelihood == "bernoulli":
        return special.expit(eta)
    return np.exp(eta)


def arm_moments(params: Mapping[str, np.ndarray], z: np.ndarray, scaling: Scaling,
                likelihood: str) -> tuple[np.ndarray, np.ndarray]:
    """Per draw, the mean and variance (ddof=1) over users of the surrogate index."""
    if likelihood == "normal":  # linear: exact from the arm's mean and covariance
        sc = scaling
        mean = sc.outcome_center + sc.outcome_scale * (
            params["intercept"] + params["beta"] @ z.mean(axis=0))
        cov = np.atleast_2d(np.cov(z, rowvar=False))
        var = sc.outcome_scale**2 * np.einsum("dk,kl,dl->d", params["beta"], cov,
                                              params["beta"])
        return mean, var
    return arm_moments_by_block(params, z, scaling, likelihood)


def arm_moments_by_block(params: Mapping[str, np.ndarray], z: np.ndarray, scaling: Scaling,
                         likelihood: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`arm_moments` from the index of blocks of users (any likelihood)."""
    n_draws, n = params["intercept"].shape[0], z.shape[0]
    block = max(1, BLOCK_ELEMENTS // max(n_draws, 1))
    # a per-draw shift keeps the sums accurate
    shift = surrogate_index(params, z[:1], scaling, likelihood)[:, 0]
    total, squares = np.zeros(n_draws), np.zeros(n_draws)
    for start in range(0, n, block):
        dev = surrogate_index(params, z[start:start + block], scaling, likelihood) - shift[:, None]
        total += dev.sum(axis=1)
        squares += (dev**2).sum(axis=1)
    return shift + total / n, np.maximum(squares - total**2 / n, 0.0) / (n - 1)


def column_problems(frame: pd.DataFrame, columns: Sequence[str], sample: str) -> list[Problem]:
    """Missing, non-numeric and non-finite columns among ``columns`` of ``frame``."""
    problems = []
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        others = [str(c) for c in frame.columns if c not in columns]
        hints = {c: difflib.get_close_matches(str(c), others, n=1, cutoff=0.6) for c in missing}
        hints = {c: h[0] for c, h in hints.items() if h}
        fix = "give both samples the same surrogate columns, named as in 'surrogates'"
        if hints:
            fix += "; did you mean " + ", ".join(f"{h!r} for {c!r}" for c, h in hints.items())
        problems.append(Problem(TABLE, f"the surrogate column(s) {missing} in the {sample}; "
                                f"its other columns are {others[:20]}", fix=fix))
    for column in (c for c in columns if c in frame.columns):
        values = frame[column]
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
            problems.append(Problem(column, f"numbers (dtype is {values.dtype})",
                                    fix=f"convert {column!r} to a numeric dtype"))
            continue
        bad = ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            problems.append(row_problem(column, "finite numbers (no NaN or infinity)", bad, values,
                                        "drop or impute the rows with missing values"))
    return problems
