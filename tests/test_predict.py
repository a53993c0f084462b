import numpy as np
import pandas as pd
import pytest
import xarray as xr

from models.predict import (
    check_ci_prob,
    check_max_draws,
    draws_to_dataarray,
    eti_bounds,
    flatten_draws,
    hdi_bounds,
    posterior_arrays,
    predict_in_batches,
    sample_shape,
    summarize_draws,
)


def test_hdi_of_uniform_is_any_window_of_right_width():
    x = np.linspace(0, 1, 1001)[:, None]
    lo, hi = hdi_bounds(x, 0.5)
    assert hi[0] - lo[0] == pytest.approx(0.5, abs=2e-3)


def test_hdi_of_skewed_distribution_is_narrower_than_eti():
    x = np.random.default_rng(0).exponential(size=(50_000, 1))
    lo, hi = hdi_bounds(x, 0.9)
    assert lo[0] == pytest.approx(0.0, abs=0.01)
    assert hi[0] == pytest.approx(-np.log(0.1), rel=0.03)
    e_lo, e_hi = eti_bounds(x, 0.9)
    assert hi[0] - lo[0] < e_hi[0] - e_lo[0]


def test_hdi_rejects_bad_prob():
    with pytest.raises(ValueError, match="'ci_prob' parameter of hdi_bounds.*Got 1.5"):
        hdi_bounds(np.ones((3, 1)), 1.5)


def test_hdi_prob_keyword_is_deprecated():
    x = np.linspace(0, 1, 1001)[:, None]
    with pytest.warns(FutureWarning, match="'prob' parameter of hdi_bounds.*'ci_prob'"):
        old = hdi_bounds(x, prob=0.5)
    np.testing.assert_array_equal(old, hdi_bounds(x, ci_prob=0.5))


def test_eti_is_the_central_quantiles():
    x = np.random.default_rng(2).normal(size=(4000, 3))
    lo, hi = eti_bounds(x, 0.8)
    np.testing.assert_allclose(lo, np.quantile(x, 0.1, axis=0))
    np.testing.assert_allclose(hi, np.quantile(x, 0.9, axis=0))


def test_summarize_draws_columns_and_equal_tails():
    x = np.random.default_rng(3).exponential(size=(20_000, 2))
    table = summarize_draws(x, ci_prob=0.9, index=["a", "b"])
    assert list(table.columns) == ["mean", "sd", "ci_lower", "ci_upper"]
    assert table.attrs["ci_prob"] == 0.9
    # equal tails: 5% of the mass below the lower bound, 5% above the upper one
    assert (x < table["ci_lower"].to_numpy()).mean(axis=0) == pytest.approx([0.05, 0.05], abs=1e-3)
    assert (x > table["ci_upper"].to_numpy()).mean(axis=0) == pytest.approx([0.05, 0.05], abs=1e-3)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, True, "0.9", None])
def test_check_ci_prob_rejects_in_the_template(bad):
    with pytest.raises(ValueError, match=r"The 'ci_prob' parameter of M\.f must be a number in "
                                         r"\(0, 1\)\. Got .* instead\."):
        check_ci_prob("M.f", bad)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10"])
def test_check_max_draws_rejects_in_the_template(bad):
    with pytest.raises(ValueError, match=r"The 'max_draws' parameter of M\.f must be a positive "
                                         r"integer \(or None for every draw\)\. Got .* instead\."):
        check_max_draws("M.f", bad)


def test_batches_equal_one_block():
    rng = np.random.default_rng(1)
    params = {"a": rng.normal(size=400)}
    data = pd.DataFrame({"x": rng.normal(size=37)},
                        index=pd.Index([f"u{i}" for i in range(37)], name="user_id"))

    def f(p, block):
        return p["a"][:, None] * block["x"].to_numpy()[None, :] ** 2

    full = summarize_draws(f(params, data), index=data.index)
    for size in (1, 5, 37, 100):
        pd.testing.assert_frame_equal(predict_in_batches(f, params, data, rows_per_block=size), full)
    draws = predict_in_batches(f, params, data, rows_per_block=7, return_draws=True,
                               shape=(4, 100), unit="user")
    assert isinstance(draws, xr.DataArray) and draws.dims == ("chain", "draw", "user")
    assert draws.sizes == {"chain": 4, "draw": 100, "user": 37}
    assert list(draws["user"].values) == list(data.index)
    np.testing.assert_allclose(flatten_draws(draws), f(params, data))


def test_batch_size_is_a_deprecated_name():
    params = {"a": np.ones(3)}
    data = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.warns(FutureWarning, match="'batch_size' parameter of predict_in_batches"):
        out = predict_in_batches(lambda p, b: p["a"][:, None] * b["x"].to_numpy(), params, data,
                                 batch_size=1)
    assert out["mean"].tolist() == [1.0, 2.0]


def test_bad_function_shape():
    with pytest.raises(RuntimeError, match="expected \\(3, 2\\)"):
        predict_in_batches(lambda p, b: np.zeros((3, 1)), {"a": np.zeros(3)}, pd.DataFrame({"x": [1, 2]}))


def test_draws_of_a_grid_get_one_dim_per_level_in_order():
    idx = pd.MultiIndex.from_product([["b", "a"], [30.0, 10.0, 20.0]], names=["segment", "horizon"])
    values = np.arange(2 * 6, dtype=float).reshape(2, 6)
    da = draws_to_dataarray(values, index=idx, shape=(1, 2))
    assert da.dims == ("chain", "draw", "segment", "horizon")
    assert list(da["segment"].values) == ["b", "a"]
    assert list(da["horizon"].values) == [30.0, 10.0, 20.0]
    assert float(da.sel(segment="a", horizon=10.0).isel(chain=0, draw=1)) == values[1, 4]


def test_draws_of_pairs_keep_a_multiindex_on_one_dim():
    idx = pd.MultiIndex.from_arrays([[0, 0, 2], [1, 9, 3]], names=["source", "target"])
    da = draws_to_dataarray(np.zeros((3, 3)), index=idx, unit="pair")
    assert da.dims == ("chain", "draw", "pair")
    assert da.sizes["draw"] == 3 and da.sizes["chain"] == 1
    assert list(da["source"].values) == [0, 0, 2]


def test_draws_shape_must_match():
    with pytest.raises(ValueError, match="cannot have the shape"):
        draws_to_dataarray(np.zeros((5, 2)), index=pd.RangeIndex(2), shape=(2, 3))


def test_posterior_arrays_flattens_and_subsets():
    post = xr.Dataset({"a": (("chain", "draw"), np.arange(20.0).reshape(2, 10)),
                       "b": (("chain", "draw", "k"), np.zeros((2, 10, 3)))})
    arrays = posterior_arrays(post, ["a", "b"])
    assert arrays["a"].shape == (20,) and arrays["b"].shape == (20, 3)
    np.testing.assert_array_equal(arrays["a"], np.arange(20.0))
    sub = posterior_arrays(post, ["a", "b"], max_draws=5, random_seed=0)
    assert sub["a"].shape == (5,) and sub["b"].shape == (5, 3)
    assert set(sub["a"]) <= set(range(20))
    assert sample_shape(post) == (2, 10)
    assert sample_shape(post, 5) == (1, 5)
    assert sample_shape(post, 20) == (2, 10)


def test_one_home_for_each_metric():
    import models.churn
    import models.metrics
    import models.network

    for name in ("roc_auc", "brier_score", "calibration_table"):
        assert getattr(models.churn, name) is getattr(models.metrics, name)
    for name in ("roc_auc", "average_precision"):
        assert getattr(models.network, name) is getattr(models.metrics, name)
