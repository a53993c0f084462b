"""Tests of the vectorisable logarithm and exponential of ``models._vecmath``."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from models._vecmath import vexp, vlog


@numba.njit(error_model="numpy", fastmath=True)
def _log_loop(x):  # pragma: no cover - compiled
    """vlog over an array in a fast-math loop, as in the kernels (inlined, vectorised)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vlog(x[i])
    return out


@numba.njit(error_model="numpy", fastmath=True)
def _exp_loop(x):  # pragma: no cover - compiled
    """vexp over an array in a fast-math loop."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vexp(x[i])
    return out


def _log_arguments():
    """Positive doubles over every decade, subnormals included, and the awkward ones."""
    rng = np.random.default_rng(0)
    tiny, huge = np.finfo(float).tiny, np.finfo(float).max
    edges = [5e-324, 1e-320, tiny, np.nextafter(tiny, 0), np.nextafter(tiny, 1), huge, 1.0,
             np.nextafter(1.0, 0), np.nextafter(1.0, 2), 2.0, 0.5, np.sqrt(0.5), np.sqrt(2.0),
             np.nextafter(np.sqrt(2.0), 0), np.nextafter(np.sqrt(2.0), 2), 1.5, 1 + 1e-10,
             1 - 1e-10]
    return np.concatenate([10.0 ** rng.uniform(-323, 308, 200_000),
                           rng.uniform(0.5, 2.0, 200_000), rng.uniform(0.0, 1e3, 100_000),
                           edges])


def _exp_arguments():
    """Arguments from below underflow to above overflow, and near 0 and the limits."""
    rng = np.random.default_rng(1)
    return np.concatenate([rng.uniform(-760.0, 720.0, 200_000), rng.uniform(-30, 30, 200_000),
                           rng.normal(0.0, 1e-3, 10_000),
                           [0.0, -0.0, 1e-300, -1e-300, 709.78, 709.782712893384,
                            709.7827128933841, -708.3964185322641, -745.1332191019411,
                            -745.1332191019412, -746.0, 710.0, 1e300, -1e300,
                            np.log(2.0), -np.log(2.0), 0.5 * np.log(2.0), 1.0]])


@pytest.mark.parametrize("loop", [False, True])
def test_vlog_is_np_log_to_an_ulp(loop):
    x = _log_arguments()
    got = _log_loop(x) if loop else np.array([vlog(v) for v in x])
    want = np.log(x)
    err = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(float).tiny)
    err[want == 0.0] = np.abs(got[want == 0.0])  # log(1) = 0 exactly
    assert err.max() < 1e-15


@pytest.mark.parametrize("loop", [False, True])
def test_vexp_is_np_exp_to_an_ulp(loop):
    x = _exp_arguments()
    got = _exp_loop(x) if loop else np.array([vexp(v) for v in x])
    with np.errstate(over="ignore", under="ignore"):
        want = np.exp(x)
    normal = np.isfinite(want) & (want >= np.finfo(float).tiny)
    np.testing.assert_array_less(np.abs(got[normal] / want[normal] - 1.0), 1e-15)
    # subnormal results: within one subnormal step of np.exp; overflow: infinity
    sub = (want < np.finfo(float).tiny) & np.isfinite(want)
    np.testing.assert_array_less(np.abs(got[sub] - want[sub]), 5e-324 * 1.5)
    assert (got[np.isinf(want)] == np.inf).all()


@pytest.mark.parametrize("loop", [False, True])
def test_special_values_are_those_of_numpy(loop):
    x = np.array([0.0, -0.0, -1.0, -np.inf, np.inf, np.nan, -np.nan, -5e-324])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        want_log, want_exp = np.log(x), np.exp(x)
    got_log = _log_loop(x) if loop else np.array([vlog(v) for v in x])
    got_exp = _exp_loop(x) if loop else np.array([vexp(v) for v in x])
    np.testing.assert_array_equal(got_log, want_log)
    np.testing.assert_array_equal(got_exp, want_exp)
