"""The engagement HMM's emission tables and transition matrices as PyMC graph pieces."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytest
from scipy import stats

from models.churn.engagement_graph import emission_table, transition_matrices
from models.churn.engagement_states import StateSpace
from models.priors import Prior


@pytest.mark.parametrize("beta_binomial", [True, False])
@pytest.mark.parametrize("churn_state", [False, True])
def test_emission_table_is_the_pmf_of_each_state_at_each_node(beta_binomial, churn_state):
    rng = np.random.default_rng(3)
    q, k, n = 4, 3, 7
    p = rng.uniform(0.05, 0.95, size=(q, 1, k))
    kappa = rng.uniform(0.5, 20.0, size=k)
    table = emission_table(p, n, kappa if beta_binomial else None, churn_state).eval()
    assert table.shape == (q, n + 2, k + churn_state)
    days = np.arange(n + 1)[:, None]
    for node in range(q):
        mean = p[node, 0]
        want = (stats.betabinom.pmf(days, n, mean * kappa, (1 - mean) * kappa) if beta_binomial
                else stats.binom.pmf(days, n, mean))
        np.testing.assert_allclose(table[node, : n + 1, :k], want, rtol=1e-10)
    np.testing.assert_allclose(table[:, : n + 1, :k].sum(axis=1), 1.0, rtol=1e-10)
    assert np.all(table[:, n + 1] == 1.0)  # a missing period is certain in every state
    if churn_state:  # churned users are silent: no active day, or nothing recorded
        expected = np.zeros(n + 2)
        expected[[0, n + 1]] = 1.0
        assert np.all(table[:, :, k] == expected)


def _priors() -> dict[str, Prior]:
    return {"segment_sigma": Prior("HalfNormal", sigma=0.5),
            "transition_coef": Prior("Normal", mu=0.0, sigma=1.0)}


@pytest.mark.parametrize("churn_returns", [False, True])
def test_transition_matrices_are_stochastic_and_churn_absorbs_unless_it_returns(churn_returns):
    space = StateSpace(n_states=3, period_length=7, churn_state=True, churn_returns=churn_returns,
                       segment=True)
    labels = space.labels
    moves = space.moves()
    rng = np.random.default_rng(4)
    move = rng.normal(-1.0, 1.0, len(moves))
    coords = {"segment": ["a", "b"], "move": [f"{labels[i]}->{labels[j]}" for i, j in moves],
              "from_state": labels[: 4 if churn_returns else 3], "to_state": labels}
    with pm.Model(coords=coords) as model:
        trans = transition_matrices(space, move, _priors(), seg_labels=["a", "b"])
    point = model.initial_point()  # the segment offsets at 0
    (values,) = model.replace_rvs_by_values([trans])
    mats = pytensor.function(model.value_vars, values, on_unused_input="ignore")(
        *[point[v.name] for v in model.value_vars])
    assert mats.shape == (1, 2, 4, 4)
    np.testing.assert_allclose(mats.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(mats > 0.0) if churn_returns else np.all(mats[..., 3, :] == [0, 0, 0, 1])
    # with the segment offsets at 0 both segments take the population's matrix: the softmax
    # of each row's move logits against 0 for staying
    for i, j in moves:
        stay = 1.0 / (1.0 + np.exp([move[m] for m, (a, _) in enumerate(moves) if a == i]).sum())
        assert mats[0, 0, i, j] == pytest.approx(stay * np.exp(move[moves.index((i, j))]))
