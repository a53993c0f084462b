"""Tests of the compiled BG/NBD likelihood Op: special functions, value, gradient, modes."""

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import ancestors
from scipy import special

from models.churn.beta_geo import BetaGeoModel, _compress, _log_likelihood
from models.churn.bgnbd_kernel import SIMD_MIN_ROWS, BGNBDLogp, digamma
from models.priors import Prior

PARAMS = ("r", "alpha", "a", "b")


def reference_loglik(x, t_x, T, r, alpha, a, b):
    """Per-user BG/NBD log-likelihood, straight from Fader, Hardie & Lee (2005), eq. 6."""
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - \
        special.gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300))
                  - (r + x) * np.log(alpha + t_x), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def random_users(n, seed, n_seg=1):
    rng = np.random.default_rng(seed)
    T = rng.choice([10.0, 20.0, 38.5, 52.0], n)
    x = rng.poisson(rng.gamma(0.6, 3.0, n))
    t_x = np.where(x > 0, np.round(T * rng.uniform(0.01, 1.0, n), 1 if n < 10_000 else 3), 0.0)
    seg = rng.integers(0, n_seg, n)
    return x, t_x, T, seg


def loglik_fn(n_seg, comp):
    """Compiled value and gradient of the Op at per-segment parameter vectors."""
    vec = [pt.dvector(name) for name in PARAMS]
    value = _log_likelihood(*vec, comp)
    return pytensor.function(vec, [value, *pytensor.grad(value, vec)])


@pytest.mark.parametrize("x", [1e-8, 0.01, 0.243, 0.5, 1.0, 2.5, 9.99, 10.0, 17.3, 1e3, 1e7])
def test_digamma_matches_scipy(x):
    assert digamma(x) == pytest.approx(special.digamma(x), rel=1e-14, abs=1e-14)


@pytest.mark.parametrize(("n_seg", "n_users"), [(1, 500), (3, 500), (2, 40_000)])
def test_value_matches_per_user_formula(n_seg, n_users):
    x, t_x, T, seg = random_users(n_users, seed=n_seg, n_seg=n_seg)
    comp = _compress(x.astype(float), t_x, T, seg if n_seg > 1 else None)
    assert comp.n_unique < len(x)  # compression is exercised
    # both paths of the compiled kernel: scalar exp/log1p, and numpy's above the threshold
    assert (len(comp.row_w) >= SIMD_MIN_ROWS) == (n_users > 500)
    rng = np.random.default_rng(7)
    theta = {k: rng.uniform(0.2, 3.0, n_seg) for k in PARAMS}
    value, *_ = loglik_fn(n_seg, comp)(*theta.values())
    expected = reference_loglik(x, t_x, T, *(theta[k][seg] for k in PARAMS)).sum()
    assert float(value) == pytest.approx(expected, rel=1e-11)


@pytest.mark.parametrize("which", ["only zeros", "no zeros", "heavy users"])
def test_edge_data_match_per_user_formula(which):
    x, t_x, T, _ = random_users(300, seed=4)
    if which == "only zeros":
        x, t_x = np.zeros_like(x), np.zeros_like(t_x)
    elif which == "no zeros":
        x, t_x = np.maximum(x, 1), np.where(x > 0, t_x, T / 2)
    else:
        x = x * 1000 + 1
        t_x = np.where(t_x > 0, t_x, T / 3)
    comp = _compress(x.astype(float), t_x, T, None)
    theta = [np.array([v]) for v in (0.7, 3.0, 1.3, 2.5)]
    value, *grads = loglik_fn(1, comp)(*theta)
    expected = reference_loglik(x, t_x, T, *(t[0] for t in theta)).sum()
    assert float(value) == pytest.approx(expected, rel=1e-11)
    assert all(np.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("n_seg", [1, 3])
def test_gradient_matches_finite_differences(n_seg):
    x, t_x, T, seg = random_users(300, seed=10 + n_seg, n_seg=n_seg)
    comp = _compress(x.astype(float), t_x, T, seg if n_seg > 1 else None)
    fn = loglik_fn(n_seg, comp)
    rng = np.random.default_rng(3)
    theta = [rng.uniform(0.2, 3.0, n_seg) for _ in PARAMS]
    _, *grads = fn(*theta)
    for i in range(4):
        for s in range(n_seg):
            h = 1e-6 * theta[i][s]
            up = [t.copy() for t in theta]
            down = [t.copy() for t in theta]
            up[i][s] += h
            down[i][s] -= h
            numeric = (float(fn(*up)[0]) - float(fn(*down)[0])) / (2 * h)
            assert grads[i][s] == pytest.approx(numeric, rel=1e-6, abs=1e-6), (PARAMS[i], s)


def test_python_and_numba_modes_agree():
    x, t_x, T, seg = random_users(200, seed=5, n_seg=2)
    comp = _compress(x.astype(float), t_x, T, seg)
    vec = [pt.dvector(name) for name in PARAMS]
    value = _log_likelihood(*vec, comp)
    outs = [value, *pytensor.grad(value, vec)]
    point = [np.array([0.4, 0.9]), np.array([4.0, 2.0]), np.array([0.8, 1.5]),
             np.array([2.4, 3.0])]
    numba_out = pytensor.function(vec, outs, mode="NUMBA")(*point)
    python_out = pytensor.function(vec, outs, mode="FAST_COMPILE")(*point)
    for got, want in zip(python_out, numba_out, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13)


def test_degenerate_parameters_give_non_finite_values_not_errors():
    """A sampler's underflowed proposal (alpha = 0) must be rejected, not crash the fit."""
    x, t_x, T, _ = random_users(50, seed=1)
    fn = loglik_fn(1, _compress(x.astype(float), t_x, T, None))
    value, *_ = fn(*(np.array([v]) for v in (0.0, 0.0, 1.0, 1.0)))
    assert not np.isfinite(value)


def test_hessian_is_refused_clearly():
    x, t_x, T, _ = random_users(50, seed=2)
    vec = [pt.dvector(name) for name in PARAMS]
    value = _log_likelihood(*vec, _compress(x.astype(float), t_x, T, None))
    g = pytensor.grad(value, vec[0]).sum()
    with pytest.raises(NotImplementedError, match="second derivatives"):
        pytensor.grad(g, vec[0])


def test_op_input_checks():
    with pytest.raises(TypeError, match="takes 20 inputs"):
        BGNBDLogp()(pt.dvector(), pt.dvector())
    with pytest.raises(TypeError, match="must be vectors"):
        BGNBDLogp()(*[pt.dscalar() for _ in range(4)], *[np.zeros(1)] * 16)


def test_model_graph_is_small():
    """The likelihood is one node, so compilation stays cheap (the reason for the Op)."""
    data = pd.DataFrame({"frequency": [0, 2, 5], "recency": [0.0, 3.0, 9.0],
                         "T": [10.0, 12.0, 12.0]})
    model = BetaGeoModel(priors={k: Prior("HalfFlat") for k in PARAMS}).build_model(data)
    graph = ancestors([model.logp()])
    ops = [v.owner.op for v in graph if v.owner is not None]
    assert sum(isinstance(op, BGNBDLogp) for op in ops) == 1
    assert len(ops) < 40
