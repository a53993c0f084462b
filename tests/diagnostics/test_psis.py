"""The vectorised PSIS-LOO (models.diagnostics._psis) against arviz.loo itself.

Tolerance: 1e-9 relative on every value (Pareto k: relative to max(|k|, 1), as a k near 0
is the difference of terms of order 1). The two differ only by rounding: the grid means
of the generalised Pareto fit use a vectorisable log1p (about an ulp from np.log1p) and
a sum in draw order, and the negligible grid weights are zeroed instead of dropped. At
22,265 observations x 4,000 draws the worst differences were 4e-15 (elpd_i), 5e-13
(log-weights), 3.4e-15 absolute for k (1.8e-8 relative at k = 1.4e-7), 2e-16 for elpd. Dropping the prior on k moves k by about 1e-2, and dropping the truncation of the
smoothed weights moves the log-weights and elpd_i of high-k observations by far more
than 1e-9, so both are caught.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from arviz_stats.base import array_stats

from models.diagnostics import _psis, compare_models
from models.diagnostics.compare import _loo

RTOL = 1e-9


def rel_diff(a, b, floor=1e-300) -> float:
    """Largest difference relative to ``max(|b|, floor)``, NaN required at the same places."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(same, 0.0, np.abs(a - b) / np.maximum(np.abs(b), floor))
    return float(d.max()) if d.size else 0.0


def ar1_draws(rng, chains, draws, size, rho=0.7):
    """Autocorrelated draws (relative efficiency well below 1) per chain."""
    e = rng.normal(size=(chains, draws, size))
    out = np.empty_like(e)
    out[:, 0] = e[:, 0]
    for t in range(1, draws):
        out[:, t] = rho * out[:, t - 1] + np.sqrt(1 - rho**2) * e[:, t]
    return out


def normal_fit(rng, n_obs=400, chains=4, draws=300, outliers=(4.0, 6.0, 9.0, 14.0)):
    """Normal model with a posterior of correlated draws; outliers give Pareto k > 0.7."""
    th = ar1_draws(rng, chains, draws, 3)
    mu, log_s, beta = 0.15 * th[..., 0], 0.08 * th[..., 1], 0.1 * th[..., 2]
    x = rng.normal(size=n_obs)
    y = rng.normal(size=n_obs)
    y[: len(outliers)] = outliers
    z = (y - mu[..., None] - beta[..., None] * x) / np.exp(log_s)[..., None]
    ll = -0.5 * z**2 - log_s[..., None] - 0.5 * np.log(2 * np.pi)
    posterior = xr.Dataset({"mu": (("chain", "draw"), mu), "log_s": (("chain", "draw"), log_s),
                            "beta": (("chain", "draw"), beta)})
    return posterior, ll


def tree(posterior, ll, dims=("obs",), coords=None):
    da = xr.DataArray(ll, dims=("chain", "draw", *dims), coords=coords or {}, name="y")
    return xr.DataTree.from_dict({"posterior": posterior,
                                  "log_likelihood": da.to_dataset()})


def reference(idata, var_name="y"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.loo(idata, pointwise=True, var_name=var_name)


def ours(idata, var_name="y"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _psis.loo(idata, var_name)


def assert_same_loo(new, ref, rtol=RTOL, log_lik=None):
    assert type(new) is type(ref)
    for field in ("elpd", "se", "p"):
        assert rel_diff(getattr(new, field), getattr(ref, field)) <= rtol, field
        assert type(getattr(new, field)) is type(getattr(ref, field)), field
    for field in ("n_samples", "n_data_points", "scale", "warning", "good_k",
                  "approx_posterior", "kind"):
        assert getattr(new, field) == getattr(ref, field), field
        assert type(getattr(new, field)) is type(getattr(ref, field)), field
    for field in ("log_jacobian", "p_loo_i", "influence_pareto_k", "n_eff_i"):
        assert getattr(new, field) is None and getattr(ref, field) is None
    for field in ("elpd_i", "pareto_k", "log_weights"):
        a, b = getattr(new, field), getattr(ref, field)
        # k near 0 is the difference of terms of order 1 (the prior's shift): relative to
        # max(|k|, 1) there
        floor = 1.0 if field == "pareto_k" else 1e-300
        if field == "log_weights" and log_lik is not None:
            # draws with equal log-likelihoods (ties) may take each other's smoothed weights:
            # their order is the sort's, and numpy's AVX-512 sort orders ties differently
            # from its AVX2 one (and from ArviZ's call). Observations with tied draws are
            # compared as a sorted set of weights; every other one draw by draw.
            obs = [d for d in a.dims if d not in ("chain", "draw")]
            flat = [x.transpose(*obs, "chain", "draw").values for x in (a, b, log_lik)]
            wa, wb, ll = (x.reshape(-1, x.shape[-2] * x.shape[-1]) for x in flat)
            tied = np.array([len(np.unique(row)) < len(row) for row in ll])
            assert rel_diff(wa[~tied], wb[~tied], floor) <= rtol, field
            assert rel_diff(np.sort(wa[tied], axis=1), np.sort(wb[tied], axis=1),
                            floor) <= rtol, field
        else:
            assert rel_diff(a.values, b.values, floor) <= rtol, field
        # names, dims, their order, coordinates and attributes as ArviZ's
        xr.testing.assert_identical(a.copy(data=b.values), b)


# ------------------------------------------------------------ random log-likelihoods


def test_heavy_tails_and_several_chains_match_arviz():
    rng = np.random.default_rng(3)
    posterior, ll = normal_fit(rng)
    idata = tree(posterior, ll)
    ref, new = reference(idata), ours(idata)
    k = ref.pareto_k.values
    assert (k > 0.7).sum() >= 2 and (k > 1).sum() >= 1 and (k < 0.5).sum() > 300
    r_eff = _psis.relative_efficiency(idata, 1200)
    assert 0.1 < r_eff < 0.6  # correlated draws: a longer tail than with r_eff = 1
    assert _psis.tail_length(1200, r_eff) > _psis.tail_length(1200, 1.0)
    assert new.warning
    assert_same_loo(new, ref)


def test_truncation_and_prior_are_exercised(monkeypatch):
    """The data of the tests hit the truncation of the smoothed weights and move k by
    the prior, so leaving either out fails the comparisons with ArviZ."""
    rng = np.random.default_rng(3)
    posterior, ll = normal_fit(rng)
    rows = np.ascontiguousarray(np.moveaxis(ll, -1, 0).reshape(ll.shape[-1], -1))
    lw, k, _, _ = _psis.psis_loo_rows(rows, 1.0)
    # truncated at the largest raw ratio: the smoothed quantiles increase strictly, so
    # ties at the top come from the truncation alone
    n_top = (lw == lw.max(axis=1, keepdims=True)).sum(axis=1)
    assert (n_top[k > 0.7] >= 2).any()
    # without the prior on k the values are off by far more than the tolerance
    idata = tree(posterior, ll)
    ref = reference(idata)
    monkeypatch.setattr(_psis, "_PRIOR_K", 0)
    no_prior = ours(idata)
    assert rel_diff(no_prior.pareto_k.values, ref.pareto_k.values) > 1e-3
    assert rel_diff(no_prior.elpd_i.values, ref.elpd_i.values) > 1e-6


def test_psis_rows_match_arviz_psislw():
    rng = np.random.default_rng(5)
    _, ll = normal_fit(rng, n_obs=60)
    rows = np.ascontiguousarray(np.moveaxis(ll, -1, 0).reshape(60, -1))
    for r_eff in (1.0, 0.3, 0.05):  # the last: S r_eff <= 225, tail S / 5
        lw, k, _, _ = _psis.psis_loo_rows(rows, r_eff)
        ref_lw, ref_k = array_stats.psislw(rows, r_eff=r_eff, axis=-1)
        assert rel_diff(lw, ref_lw) < RTOL
        assert rel_diff(k, ref_k, floor=1.0) < RTOL


def test_unusual_observations_match_arviz_and_only_they_leave_the_fast_path(monkeypatch):
    rng = np.random.default_rng(7)
    posterior, ll = normal_fit(rng, n_obs=40, chains=3, draws=200)
    ll[0, 5, 10] = -np.inf  # one impossible draw
    ll[:, :, 11] = -np.inf  # an impossible observation
    ll[1, 7, 12] = np.nan
    # 90% of the draws tied: the tail's first quartile is its minimum, k = NaN
    ll[:, :, 13] = np.where(rng.random((3, 200)) < 0.9, -1.0, -1.0 - rng.exponential(size=(3, 200)))
    calls = []
    row_arviz = _psis._psis_row_arviz
    monkeypatch.setattr(_psis, "_psis_row_arviz",
                        lambda row, r_eff: calls.append(row) or row_arviz(row, r_eff))
    idata = tree(posterior, ll)
    ref, new = reference(idata), ours(idata)
    assert len(calls) == 3  # the rows with non-finite values only
    assert np.isnan(ref.pareto_k.values[13]) and np.isnan(ref.elpd)
    assert_same_loo(new, ref)


def test_constant_observation_raises_as_arviz():
    rng = np.random.default_rng(8)
    posterior, ll = normal_fit(rng, n_obs=30, chains=2, draws=200)
    ll[:, :, 4] = -1.25
    idata = tree(posterior, ll)
    with pytest.raises(ValueError, match="All tail values are the same"):
        reference(idata)
    with pytest.raises(ValueError, match="All tail values are the same"):
        ours(idata)


def test_several_observation_dims_and_coordinates():
    rng = np.random.default_rng(9)
    posterior, ll = normal_fit(rng, n_obs=60, chains=2, draws=250)
    ll = ll.reshape(2, 250, 5, 12)
    coords = {"user": [f"u{i}" for i in range(5)], "day": np.arange(12) * 2,
              "plan": ("user", list("abcab"))}
    idata = tree(posterior, ll, dims=("user", "day"), coords=coords)
    assert_same_loo(ours(idata), reference(idata))
    # stored with the observations first: same result, ArviZ's dims
    moved = idata["log_likelihood"]["y"].transpose("day", "user", "chain", "draw")
    idata2 = xr.DataTree.from_dict({"posterior": posterior,
                                    "log_likelihood": moved.to_dataset()})
    assert_same_loo(ours(idata2), reference(idata2))


def test_single_chain_and_fallbacks():
    rng = np.random.default_rng(10)
    posterior, ll = normal_fit(rng, n_obs=30, chains=1, draws=500)
    idata = tree(posterior, ll)
    assert _psis.relative_efficiency(idata, 500) == 1.0
    assert_same_loo(ours(idata), reference(idata))
    # float32 log-likelihood: az.loo itself
    idata32 = tree(posterior, ll.astype(np.float32))
    assert_same_loo(ours(idata32), reference(idata32), rtol=0)
    # too few draws for a tail of 5: ArviZ's error
    small = tree(posterior.isel(draw=slice(0, 20)), ll[:, :20])
    with pytest.raises(ValueError, match="at least 5"):
        ours(small)


def test_compare_table_is_arviz_s():
    rng = np.random.default_rng(11)
    posterior, ll = normal_fit(rng, n_obs=200, chains=4, draws=250)
    fits = {"normal": tree(posterior, ll),
            "wider": tree(posterior, ll / 1.5 - 0.2),
            "narrow": tree(posterior, ll * 1.3)}
    table = compare_models(fits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = az.compare({name: reference(fit) for name, fit in fits.items()},
                         round_to="none")
    assert list(table.index) == list(ref.index)
    for col in ref.columns:
        if pd.api.types.is_numeric_dtype(ref[col]):
            assert rel_diff(table[col].astype(float), ref[col].astype(float)) < 1e-8, col
        else:
            assert table[col].tolist() == ref[col].tolist(), col


# ------------------------------------------------------------ a fit of the package


@pytest.fixture(scope="module")
def bgnbd_fit():
    from models.churn import BetaGeoModel
    from models.data.simulate import simulate_bgnbd

    users = simulate_bgnbd(60, r=0.5, alpha=4.0, a=0.8, b=2.5, T=30.0, random_seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BetaGeoModel().fit(users[["frequency", "recency", "T"]], draws=150, tune=150,
                                   chains=3, cores=1, random_seed=1, progressbar=False)
    return model


def test_a_fit_of_the_package_matches_arviz(bgnbd_fit):
    idata = bgnbd_fit.compute_log_likelihood()
    name = next(iter(idata["log_likelihood"].data_vars))
    assert_same_loo(_loo(idata, name), reference(idata, name),
                    log_lik=idata["log_likelihood"][name])


def test_a_thinned_log_likelihood_uses_the_thinned_draws(bgnbd_fit):
    idata = bgnbd_fit.compute_log_likelihood(max_draws=240)
    name = next(iter(idata["log_likelihood"].data_vars))
    ll = idata["log_likelihood"][name]
    assert ll.sizes["draw"] == 80 < idata["posterior"].sizes["draw"]
    thinned = xr.DataTree.from_dict({
        "posterior": idata["posterior"].to_dataset().sel(draw=ll["draw"].values),
        "log_likelihood": ll.to_dataset(name=name)})
    assert_same_loo(_loo(idata, name), reference(thinned, name), log_lik=ll)
