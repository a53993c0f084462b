import numpy as np
import pandas as pd
import pytest
import xarray as xr

from models.predict import hdi_bounds, posterior_arrays, predict_in_batches, summarize_draws


def test_hdi_of_uniform_is_any_window_of_right_width():
    x = np.linspace(0, 1, 1001)[:, None]
    lo, hi = hdi_bounds(x, 0.5)
    assert hi[0] - lo[0] == pytest.approx(0.5, abs=2e-3)


def test_hdi_of_skewed_distribution_is_narrower_than_eti():
    x = np.random.default_rng(0).exponential(size=(50_000, 1))
    lo, hi = hdi_bounds(x, 0.9)
    assert lo[0] == pytest.approx(0.0, abs=0.01)
    assert hi[0] == pytest.approx(-np.log(0.1), rel=0.03)


def test_hdi_rejects_bad_prob():
    with pytest.raises(ValueError, match="Got 1.5"):
        hdi_bounds(np.ones((3, 1)), 1.5)


def test_batches_equal_one_block():
    rng = np.random.default_rng(1)
    params = {"a": rng.normal(size=400)}
    data = pd.DataFrame({"x": rng.normal(size=37)}, index=[f"u{i}" for i in range(37)])

    def f(p, block):
        return p["a"][:, None] * block["x"].to_numpy()[None, :] ** 2

    full = summarize_draws(f(params, data), index=data.index)
    for size in (1, 5, 37, 100):
        pd.testing.assert_frame_equal(predict_in_batches(f, params, data, batch_size=size), full)
    draws = predict_in_batches(f, params, data, batch_size=7, return_draws=True)
    np.testing.assert_allclose(draws, f(params, data))


def test_bad_function_shape():
    with pytest.raises(RuntimeError, match="expected \\(3, 2\\)"):
        predict_in_batches(lambda p, b: np.zeros((3, 1)), {"a": np.zeros(3)}, pd.DataFrame({"x": [1, 2]}))


def test_posterior_arrays_flattens_and_subsets():
    post = xr.Dataset({"a": (("chain", "draw"), np.arange(20.0).reshape(2, 10)),
                       "b": (("chain", "draw", "k"), np.zeros((2, 10, 3)))})
    arrays = posterior_arrays(post, ["a", "b"])
    assert arrays["a"].shape == (20,) and arrays["b"].shape == (20, 3)
    np.testing.assert_array_equal(arrays["a"], np.arange(20.0))
    sub = posterior_arrays(post, ["a", "b"], max_draws=5, random_seed=0)
    assert sub["a"].shape == (5,) and sub["b"].shape == (5, 3)
    assert set(sub["a"]) <= set(range(20))
