"""The compiled forward-backward kernel of the engagement HMM on many users and segments."""

from __future__ import annotations

import numpy as np
import pytest

from models.churn import _hmm
from models.churn.hmm_kernel import hmm_kernel


def _problem(n_users: int, n_periods: int, n_states: int, n_segments: int, seed: int):
    rng = np.random.default_rng(seed)
    n_codes = 6  # 0..4 active days and the missing code 5
    table = rng.uniform(0.05, 1.0, size=(n_codes, n_states))
    table[-1] = 1.0
    initial = rng.dirichlet(np.ones(n_states))
    trans = rng.dirichlet(np.ones(n_states), size=(n_segments, n_states))
    start = rng.integers(0, n_periods, n_users)
    codes = rng.integers(0, n_codes - 1, size=(n_users, n_periods))
    codes[np.arange(n_periods)[None, :] < start[:, None]] = n_codes - 1
    seg = rng.integers(0, n_segments, n_users)  # interleaved: blocks split by segment
    weights = rng.integers(1, 5, n_users).astype(float)
    return [table, initial, trans], (codes, start, seg, weights)


@pytest.mark.parametrize("n_states", [2, 5])
def test_blocked_kernel_value_equals_the_forward_algorithm_user_by_user(n_states):
    (table, initial, trans), (codes, start, seg, weights) = _problem(700, 23, n_states, 3, 1)
    value, *_ = hmm_kernel(table, initial, trans, codes, start, seg, weights)
    loglik, _ = _hmm.forward(codes, start, table[None], initial[None], trans[seg][None])
    assert value == pytest.approx(float(weights @ loglik[0]), rel=1e-12)


def test_blocked_kernel_gradient_equals_finite_differences_over_several_blocks():
    inputs, data = _problem(500, 17, 4, 2, 2)
    _, *grads = hmm_kernel(*inputs, *data)
    rng = np.random.default_rng(0)
    eps = 1e-6
    for which, grad in enumerate(grads):
        entries = list(np.ndindex(inputs[which].shape))
        for pick in rng.choice(len(entries), size=min(8, len(entries)), replace=False):
            idx = entries[pick]
            up = [x.copy() for x in inputs]
            down = [x.copy() for x in inputs]
            up[which][idx] += eps
            down[which][idx] -= eps
            num = (hmm_kernel(*up, *data)[0] - hmm_kernel(*down, *data)[0]) / (2 * eps)
            assert grad[idx] == pytest.approx(num, rel=1e-5, abs=1e-4), (which, idx)
    assert np.all(grads[0][-1] == 0.0)  # the missing code never enters the likelihood
