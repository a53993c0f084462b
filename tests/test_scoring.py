"""Batch scoring partition by partition: Dask on a LocalCluster equals pandas for the same draws."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from models.churn import BetaGeoBetaBinomModel, BetaGeoModel, ChurnHazardModel  # noqa: E402
from models.data.simulate import simulate_bgnbd  # noqa: E402
from models.exceptions import NotFittedError  # noqa: E402
from models.listening import SkipModel  # noqa: E402
from models.scoring import score_partitions, thin_posterior  # noqa: E402

N_DRAWS = 4 * 60


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def fake_posterior(seed: int, **shapes) -> xr.DataTree:
    """A posterior of 4 chains x 60 draws; each variable log-normal around a given value."""
    rng = np.random.default_rng(seed)
    data = {}
    for name, (centre, dims, size) in shapes.items():
        shape = (4, 60, *([size] if size else []))
        values = centre * np.exp(0.2 * rng.normal(size=shape)) if centre > 0 else \
            centre + 0.3 * rng.normal(size=shape)
        data[name] = (("chain", "draw", *dims), values)
    return xr.DataTree.from_dict({"posterior": xr.Dataset(data)})


@pytest.fixture(scope="module")
def users():
    out = simulate_bgnbd(600, r=0.5, alpha=4.0, a=0.8, b=2.5, T=40.0, random_seed=3)
    out["recency"] = np.ceil(out["recency"])  # whole weeks, so users share rows
    out["plan"] = np.where(np.arange(len(out)) % 3 == 0, "premium", "free")
    out.index = pd.Index([f"u{i:04d}" for i in range(len(out))], name="user_id")
    return out


@pytest.fixture(scope="module")
def bgnbd(users):
    model = BetaGeoModel()
    model.data_ = model._validate_data(users)
    model.idata_ = fake_posterior(1, r=(0.5, (), 0), alpha=(4.0, (), 0), a=(0.8, (), 0),
                                  b=(2.5, (), 0))
    return model


@pytest.fixture(scope="module")
def bgnbd_segments(users):
    model = BetaGeoModel(segment="plan")
    model.data_ = model._validate_data(users)
    tree = fake_posterior(2, **{f"{p}_segment": (v, ("segment",), 2) for p, v in
                                [("r", 0.5), ("alpha", 4.0), ("a", 0.8), ("b", 2.5)]})
    tree["posterior"] = tree["posterior"].to_dataset().assign_coords(segment=["free", "premium"])
    model.idata_ = tree
    return model


def lazy(frame: pd.DataFrame, n: int = 4):
    with dask.config.set({"dataframe.convert-string": False}):  # keep pandas' own str dtype
        out = dd.from_pandas(frame, npartitions=n, sort=True)
    assert out.npartitions == n
    return out


# ----------------------------------------------------------------------------- thinning
def test_thin_posterior_keeps_the_draws_posterior_arrays_keeps(bgnbd):
    light = thin_posterior(bgnbd, max_draws=25, random_seed=4)
    assert dict(light.idata_["posterior"].sizes) == {"chain": 1, "draw": 25}
    # no PyMC graph is carried (model_ is a lazy property, rebuilt from data_ only on use)
    assert "model_" not in light.__dict__ and light.data_ is bgnbd.data_
    assert bgnbd.idata_["posterior"].sizes["draw"] == 60  # original untouched
    full = bgnbd.idata_["posterior"]["r"].values.reshape(-1)
    keep = np.sort(np.random.default_rng(4).choice(N_DRAWS, 25, replace=False))
    np.testing.assert_array_equal(light.idata_["posterior"]["r"].values[0], full[keep])
    everything = thin_posterior(bgnbd, max_draws=None)
    np.testing.assert_array_equal(everything.idata_["posterior"]["r"].values[0], full)


def test_thin_posterior_errors(bgnbd):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        thin_posterior(BetaGeoModel())
    with pytest.raises(ValueError, match="'max_draws' parameter of score_partitions must be a "
                                         "positive integer or None. Got 0 instead"):
        thin_posterior(bgnbd, max_draws=0)
    with pytest.raises(TypeError, match="Got str instead"):
        thin_posterior("model")


def test_light_model_pickles_and_predicts_the_same(bgnbd_segments, users):
    light = thin_posterior(bgnbd_segments, max_draws=50, random_seed=1)
    again = pickle.loads(pickle.dumps(light))
    pd.testing.assert_frame_equal(again.probability_alive(users), light.probability_alive(users),
                                  check_exact=True)


# ------------------------------------------------------------------------------ pandas
@pytest.mark.parametrize("method, kwargs", [("probability_alive", {}),
                                            ("expected_activity", {"horizon": 10.0})])
def test_pandas_equals_the_model_method_with_the_same_draws(bgnbd, users, method, kwargs):
    got = score_partitions(bgnbd, users, method, max_draws=40, random_seed=7, **kwargs)
    expected = getattr(bgnbd, method)(users, max_draws=40, random_seed=7, **kwargs)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    other = score_partitions(bgnbd, users, method, max_draws=40, random_seed=8, **kwargs)
    assert not np.array_equal(other["sd"], got["sd"])  # other draws, other values


# ------------------------------------------------------------------------ dask cluster
@pytest.mark.parametrize("method, kwargs", [("probability_alive", {"ci_prob": 0.8}),
                                            ("expected_activity", {"horizon": 10.0})])
def test_dask_on_cluster_equals_pandas(client, bgnbd, users, method, kwargs):
    ddf = lazy(users)
    result = score_partitions(bgnbd, ddf, method, max_draws=40, random_seed=7, **kwargs)
    assert isinstance(result, dd.DataFrame) and result.npartitions == ddf.npartitions
    assert list(result.columns) == ["mean", "sd", "ci_lower", "ci_upper"]
    assert result.known_divisions and result.divisions == ddf.divisions
    got = client.compute(result).result()
    expected = score_partitions(bgnbd, users, method, max_draws=40, random_seed=7, **kwargs)
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_freq=False)


def test_dask_segments_on_cluster(client, bgnbd_segments, users):
    result = score_partitions(bgnbd_segments, lazy(users, 3), "probability_alive",
                              max_draws=30, random_seed=2)
    got = client.compute(result).result()
    expected = bgnbd_segments.probability_alive(users, max_draws=30, random_seed=2)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # the segment matters: premium users get other values than the same row as free
    flipped = users.assign(plan=np.where(users["plan"] == "free", "premium", "free"))
    other = score_partitions(bgnbd_segments, flipped, "probability_alive", max_draws=30,
                             random_seed=2)
    assert not np.allclose(other["mean"], got["mean"])


def test_bgbb_on_cluster(client):
    rng = np.random.default_rng(5)
    n = np.full(300, 6)
    x = rng.integers(0, 7, 300)
    tx = np.where(x > 0, np.maximum(x, rng.integers(1, 7, 300)), 0)
    rows = pd.DataFrame({"frequency": x, "recency": tx, "n": n},
                        index=pd.RangeIndex(300, name="user"))
    model = BetaGeoBetaBinomModel()
    model.data_ = model._validate_data(rows)
    model._build_model(model.data_)  # sets the compressed training rows
    model.idata_ = fake_posterior(3, alpha=(1.2, (), 0), beta=(0.75, (), 0),
                                  gamma=(0.66, (), 0), delta=(2.8, (), 0))
    for method, kwargs in [("probability_alive", {"horizon": 2}),
                           ("expected_activity", {"horizon": 5})]:
        got = client.compute(score_partitions(model, lazy(rows), method, max_draws=50,
                                              random_seed=1, **kwargs)).result()
        light = thin_posterior(model, max_draws=50, random_seed=1)
        pd.testing.assert_frame_equal(got, getattr(light, method)(rows, **kwargs),
                                      check_exact=True)


def test_hazard_on_cluster_changes_the_index(client):
    rng = np.random.default_rng(6)
    n = 400
    table = pd.DataFrame({
        "user_id": [f"u{i:03d}" for i in range(n)], "tenure": rng.integers(0, 5, n),
        "event": rng.binomial(1, 0.2, n), "log_plays_prev": rng.normal(size=n),
        "plan": rng.choice(["free", "premium"], n),
    })
    model = ChurnHazardModel(covariates=["log_plays_prev"], groups=["plan"])
    model.data_ = model._validate_data(table)
    tree = fake_posterior(4, baseline=(-2.0, ("tenure",), 5), beta=(-0.4, ("covariate",), 1),
                          u_plan=(-0.1, ("plan",), 2))
    model.idata_ = tree
    rows = table.drop(columns="event")
    result = score_partitions(model, lazy(rows), "probability_churn", max_draws=60,
                              random_seed=3, horizon=3)
    assert not result.known_divisions  # output is indexed by user_id, input by row number
    got = client.compute(result).result()
    expected = score_partitions(model, rows, "probability_churn", max_draws=60,
                                random_seed=3, horizon=3)
    assert expected.index.name == "user_id" and len(expected) == n
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # a longer horizon can only raise the churn probability, draw by draw and so in mean
    longer = score_partitions(model, rows, "probability_churn", max_draws=60, random_seed=3,
                              horizon=4)
    assert (longer["mean"] > expected["mean"]).all()


def test_listening_model_on_cluster(client):
    rng = np.random.default_rng(0)
    n = 120
    table = pd.DataFrame({
        "user_id": rng.choice(["a", "b", "c", "d"], n), "track_id": rng.choice(["x", "y", "z"], n),
        "position": rng.integers(1, 10, n), "hour_bin": rng.integers(0, 4, n),
        "plan": rng.choice(["free", "premium"], n), "n_plays": 5})
    table["n_skips"] = rng.binomial(5, 0.3, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SkipModel().fit(table, method="advi", advi_steps=300, draws=80, random_seed=0)
    rows = table.drop(columns=["n_skips"])
    got = client.compute(score_partitions(model, lazy(rows, 3), "probability_skip",
                                          max_draws=50, random_seed=4)).result()
    expected = model.probability_skip(rows, max_draws=50, random_seed=4)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_empty_partitions_and_explicit_meta(client, bgnbd, users):
    ddf = lazy(users)
    ddf = ddf[ddf["T"] > 1e9]  # every partition empty
    result = score_partitions(bgnbd, ddf, "probability_alive", max_draws=10, random_seed=0)
    got = client.compute(result).result()
    assert len(got) == 0 and list(got.columns) == ["mean", "sd", "ci_lower", "ci_upper"]
    meta = pd.DataFrame({c: pd.Series(dtype=float)
                         for c in ["mean", "sd", "ci_lower", "ci_upper"]})
    same = score_partitions(bgnbd, lazy(users), "probability_alive", max_draws=10,
                            random_seed=0, meta=meta, keep_divisions=True)
    assert same.known_divisions
    assert len(client.compute(same).result()) == len(users)


def test_keep_divisions_is_checked_per_partition(bgnbd, users):
    frame = users.reset_index()  # the index is 0..n-1, the method keeps it
    shifted = lazy(frame).map_partitions(lambda p: p.set_axis(p.index + 10_000, axis=0))

    class Reindexing(BetaGeoModel):
        def probability_alive(self, data=None, **kwargs):
            return super().probability_alive(data, **kwargs).reset_index(drop=True)

    model = Reindexing()
    model.data_, model.idata_ = bgnbd.data_, bgnbd.idata_
    result = score_partitions(model, shifted, "probability_alive", max_draws=10,
                              keep_divisions=True)
    with dask.config.set(scheduler="synchronous"), \
            pytest.raises(RuntimeError, match="changed the index of a partition"):
        result.compute()


def test_errors(bgnbd, users):
    with pytest.raises(ValueError, match=r"must name a prediction method of BetaGeoModel that "
                                         r"takes rows; one of \['expected_activity', "
                                         r"'probability_active', 'probability_alive'\]. "
                                         r"Got 'summary' instead"):
        score_partitions(bgnbd, users, "summary")
    with pytest.raises(ValueError, match="Got '_draws' instead"):
        score_partitions(bgnbd, users, "_draws")
    with pytest.raises(ValueError, match=r"remove \['return_draws'\]"):
        score_partitions(bgnbd, users, "probability_alive", return_draws=True)
    with pytest.raises(TypeError, match="pandas or Dask DataFrame. Got ndarray instead"):
        score_partitions(bgnbd, users.to_numpy(), "probability_alive")
    with pytest.raises(TypeError, match="fitted listening-models model. Got dict instead"):
        score_partitions({}, users, "probability_alive")
    with pytest.raises(NotFittedError, match="not fitted yet"):
        score_partitions(BetaGeoModel(), users, "probability_alive")
