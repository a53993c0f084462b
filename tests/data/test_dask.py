"""Dask inputs: summaries equal the pandas ones, lazy loading, partitioned simulation."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")

import models.data.summaries as summaries  # noqa: E402
from models.data import (  # noqa: E402
    cohort_table,
    load_events,
    period_play_counts,
    simulate_service,
    summarize_activity,
    user_artist_matrix,
    validate_events,
)
from models.data._lazy import is_dask  # noqa: E402
from models.data.partitioned import simulate_service_partitioned  # noqa: E402
from models.exceptions import DataQualityWarning, DataValidationError  # noqa: E402


@pytest.fixture(autouse=True)
def synchronous_scheduler():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="module")
def sim():
    return simulate_service(150, 60, random_seed=11)


@pytest.fixture(scope="module")
def events(sim):
    return sim.events


def split(frame: pd.DataFrame, n: int = 6):
    """A Dask frame cut by row count, so users straddle partitions."""
    out = dd.from_pandas(frame, npartitions=n, sort=False)
    assert out.npartitions > 1
    return out


@pytest.fixture(scope="module")
def lazy(events):
    out = split(events)
    parts = [p.compute() for p in out.partitions]
    firsts = {p["user_id"].iloc[0] for p in parts[1:]}
    lasts = {p["user_id"].iloc[-1] for p in parts[:-1]}
    assert firsts & lasts, "the fixture must split some user over two partitions"
    return out


# --------------------------------------------------------------------------- summaries


@pytest.mark.parametrize("period", ["D", "W", "M"])
def test_summarize_activity_equals_pandas(events, lazy, period):
    expected = summarize_activity(events, period=period)
    got = summarize_activity(lazy, period=period)
    assert isinstance(got, pd.DataFrame)
    pd.testing.assert_frame_equal(got, expected)
    assert got["n_events"].sum() == len(events)


def test_summarize_activity_observation_end(events, lazy):
    end = "2025-04-01"
    pd.testing.assert_frame_equal(
        summarize_activity(lazy, observation_end=end),
        summarize_activity(events, observation_end=end),
    )


@pytest.mark.parametrize(
    ("period", "cohort_by", "inactivity"),
    [("D", "first_active", None), ("M", "first_active", None), ("W", "signup", None),
     ("M", "first_active", "30D"), ("W", "signup", "21D")],
)
def test_cohort_table_equals_pandas(sim, events, lazy, period, cohort_by, inactivity):
    kw = dict(period=period, cohort_by=cohort_by, inactivity=inactivity)
    expected = cohort_table(events, sim.users, **kw)
    got = cohort_table(lazy, sim.users, **kw)
    pd.testing.assert_frame_equal(got, expected)
    if inactivity is not None:  # silent users at the edge now count as surviving
        plain = cohort_table(events, sim.users, period=period, cohort_by=cohort_by)
        assert (expected["n_surviving"] >= plain["n_surviving"]).all()
        assert (expected["n_surviving"] > plain["n_surviving"]).any()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"period": "W", "start_from": "signup", "with_users": True},
        {"start": "2025-01-20", "end": "2025-03-01", "start_from": "start"},
        {"start": "2025-02-01", "start_from": "start", "with_users": True, "period": "M"},
        {"start": "2025-01-15", "end": "2025-02-20"},
    ],
)
def test_period_play_counts_equals_pandas(sim, events, lazy, monkeypatch, kwargs):
    kwargs = dict(kwargs)
    if kwargs.pop("with_users", False):
        kwargs["users"] = sim.users
    expected = period_play_counts(events, **kwargs)
    monkeypatch.setattr(summaries, "_GRID_ROWS_PER_PARTITION", 200)
    got = period_play_counts(lazy, **kwargs)
    assert is_dask(got)
    assert got.npartitions > 1
    pd.testing.assert_frame_equal(got.compute().reset_index(drop=True), expected)


@pytest.mark.parametrize("kwargs", [{}, {"weight": "ms_played"}])
def test_user_artist_matrix_equals_pandas(events, lazy, kwargs):
    expected = user_artist_matrix(events, **kwargs)
    got = user_artist_matrix(lazy, **kwargs)
    assert got.matrix.dtype == expected.matrix.dtype
    assert got.matrix.shape == expected.matrix.shape
    assert (got.matrix != expected.matrix).nnz == 0
    pd.testing.assert_index_equal(got.users, expected.users)
    pd.testing.assert_index_equal(got.artists, expected.artists)


def test_string_ids_equal_pandas(events):
    frame = events.assign(user_id="u" + events["user_id"].astype(str))
    with dask.config.set({"dataframe.convert-string": False}):
        lazy = split(frame, 4)
        pd.testing.assert_frame_equal(summarize_activity(lazy), summarize_activity(frame))
        pd.testing.assert_frame_equal(cohort_table(lazy), cohort_table(frame))
        got = period_play_counts(lazy).compute().reset_index(drop=True)
        pd.testing.assert_frame_equal(got, period_play_counts(frame))


def test_missing_values_are_reported_with_global_rows(events):
    frame = events.copy()
    frame["timestamp"] = frame["timestamp"].where(~frame.index.isin([3, 700]))
    with pytest.raises(
        DataValidationError, match=r"'timestamp'.*2 row\(s\).*row 3 \(NaT\), row 700"
    ):
        summarize_activity(split(frame))


def test_late_events_are_reported(events, lazy):
    with pytest.raises(
        DataValidationError, match=r"observation_end .*row\(s\) break this, first: row"
    ):
        summarize_activity(lazy, observation_end="2025-02-01")


def test_negative_weight_is_reported(events):
    frame = events.copy()
    frame.loc[[5, 900], "ms_played"] = -1
    with pytest.raises(
        DataValidationError, match=r"non-negative values; 2 row\(s\).*row 5 \(-1\), row 900"
    ):
        user_artist_matrix(split(frame), weight="ms_played")


def test_missing_column_and_empty_frame(events):
    with pytest.raises(DataValidationError, match="column 'timestamp': expected a column required"):
        summarize_activity(split(events[["user_id", "artist_id"]]))
    with pytest.raises(DataValidationError, match="at least one row"):
        summarize_activity(split(events).pipe(lambda d: d[d["user_id"] < 0]))


def test_other_inputs_are_rejected():
    with pytest.raises(TypeError, match="must be a pandas or Dask DataFrame. Got list instead"):
        summarize_activity([1, 2])


def test_importing_models_does_not_import_dask():
    code = "import sys, models, models.data; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- distributed


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_local_cluster_gives_the_same_results(client, sim, events, lazy):
    with dask.config.set(scheduler=client.get):
        pd.testing.assert_frame_equal(summarize_activity(lazy), summarize_activity(events))
        pd.testing.assert_frame_equal(
            cohort_table(lazy, period="W"), cohort_table(events, period="W")
        )
        got = user_artist_matrix(lazy)
        assert (got.matrix != user_artist_matrix(events).matrix).nnz == 0


# --------------------------------------------------------------------------- loading


@pytest.fixture(scope="module")
def parts(tmp_path_factory, events):
    folder = tmp_path_factory.mktemp("parts")
    bounds = [0, 700, 1500, len(events)]
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        events.iloc[a:b].sample(frac=1, random_state=i).to_parquet(folder / f"part-{i}.parquet")
    return folder


def test_load_directory_eagerly(events, parts):
    loaded = load_events(parts)
    pd.testing.assert_frame_equal(loaded, validate_events(events))
    pd.testing.assert_frame_equal(load_events(str(parts / "part-*.parquet")), loaded)


def test_load_directory_lazily(events, parts):
    loaded = load_events(parts, lazy=True)
    assert is_dask(loaded)
    assert loaded.npartitions == 3
    got = loaded.compute().sort_values(["user_id", "timestamp"], kind="stable")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), validate_events(events))
    pd.testing.assert_frame_equal(summarize_activity(loaded), summarize_activity(events))


def _bad_folder(tmp_path, events):
    bad = events.iloc[1000:1100].copy()
    bad["ms_played"] = bad["ms_played"].astype(str)
    bad.iloc[7, bad.columns.get_loc("ms_played")] = "12s"
    events.iloc[:1000].to_parquet(tmp_path / "a.parquet")
    bad.to_parquet(tmp_path / "b.parquet")


def test_errors_name_file_and_row(tmp_path, events):
    _bad_folder(tmp_path, events)
    pattern = r"(?s)events in file '.*b\.parquet'.*'ms_played': expected numeric milliseconds.*row 7 \('12s'\)"
    with pytest.raises(DataValidationError, match=pattern):
        load_events(tmp_path)
    lazy = load_events(tmp_path, lazy=True)  # the first file is fine: nothing raised yet
    with pytest.raises(DataValidationError, match=pattern):
        summarize_activity(lazy)


def test_drop_invalid_warning_names_file(tmp_path, events):
    _bad_folder(tmp_path, events)
    with pytest.warns(DataQualityWarning, match=r"In file '.*b\.parquet': Dropped 1 of 100 rows"):
        loaded = load_events(tmp_path, drop_invalid=True)
    assert len(loaded) == 1099


def test_dtype_mismatch_between_files(tmp_path, events):
    events.iloc[:100].to_parquet(tmp_path / "a.parquet")
    events.iloc[100:200].assign(user_id=lambda d: "u" + d["user_id"].astype(str)).to_parquet(
        tmp_path / "b.parquet"
    )
    pattern = r"(?s)events in file '.*b\.parquet'.*'user_id': expected the dtype of the first file"
    with pytest.raises(DataValidationError, match=pattern):
        load_events(tmp_path)
    with pytest.raises(DataValidationError, match=pattern):
        load_events(tmp_path, lazy=True).compute()


def test_duplicates_across_files(tmp_path, events):
    events.iloc[:100].to_parquet(tmp_path / "a.parquet")
    events.iloc[90:200].to_parquet(tmp_path / "b.parquet")
    with pytest.raises(
        DataValidationError,
        match=r"(?s)duplicate events across files.*10 row\(s\).*row 0 \('.*b\.parquet'\)",
    ):
        load_events(tmp_path)
    with pytest.warns(DataQualityWarning, match="Dropped 10 of 210"):
        assert len(load_events(tmp_path, drop_invalid=True)) == 200
    # Lazily, duplicates across files are not checked (documented).
    assert len(load_events(tmp_path, lazy=True).compute()) == 210


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="found no Parquet file"):
        load_events(tmp_path)
    with pytest.raises(FileNotFoundError, match="found no file matching the pattern"):
        load_events(str(tmp_path / "*.parquet"))
    with pytest.raises(
        TypeError, match="'lazy' parameter of load_events must be a bool. Got 'yes'"
    ):
        load_events(tmp_path, lazy="yes")


# --------------------------------------------------------------------------- simulation


def test_partitioned_simulation(tmp_path):
    first = simulate_service_partitioned(
        230, 40, tmp_path / "a", users_per_partition=100, random_seed=3
    )
    again = simulate_service_partitioned(
        230, 40, tmp_path / "b", users_per_partition=100, random_seed=3
    )
    other = simulate_service_partitioned(
        230, 40, tmp_path / "c", users_per_partition=100, random_seed=4
    )
    names = sorted(p.name for p in (first / "events").iterdir())
    assert names == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    for name in names:
        pd.testing.assert_frame_equal(
            pd.read_parquet(first / "events" / name), pd.read_parquet(again / "events" / name)
        )
    assert not pd.read_parquet(first / "events" / names[0]).equals(
        pd.read_parquet(other / "events" / names[0])
    )
    log = load_events(first / "events")
    users = pd.concat(pd.read_parquet(p) for p in sorted((first / "users").iterdir()))
    truth = pd.concat(pd.read_parquet(p) for p in sorted((first / "truth").glob("users-*")))
    np.testing.assert_array_equal(users["user_id"], np.arange(230))
    np.testing.assert_array_equal(truth["user_id"], np.arange(230))
    assert log["user_id"].isin(users["user_id"]).all()
    # session ids are unique across blocks
    assert log.groupby("session_id")["user_id"].nunique().max() == 1
    # one block can be redrawn from the seed in the manifest
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["n_events"] == len(log)
    block = manifest["blocks"][1]
    redrawn = simulate_service(block["n_users"], 40, random_seed=block["seed"]).events
    stored = pd.read_parquet(first / "events" / names[1])
    np.testing.assert_array_equal(stored["user_id"] - 100, redrawn["user_id"])
    np.testing.assert_array_equal(stored["timestamp"], redrawn["timestamp"])


def test_partitioned_simulation_errors(tmp_path):
    simulate_service_partitioned(10, 5, tmp_path, users_per_partition=5, random_seed=1)
    with pytest.raises(ValueError, match="must not hold an earlier run unless overwrite=True"):
        simulate_service_partitioned(10, 5, tmp_path, random_seed=1)
    simulate_service_partitioned(10, 5, tmp_path, random_seed=1, overwrite=True)
    assert len(list((tmp_path / "events").iterdir())) == 1
    with pytest.raises(
        ValueError, match="'users_per_partition' parameter .* positive integer. Got 0"
    ):
        simulate_service_partitioned(10, 5, tmp_path / "x", users_per_partition=0)
    with pytest.raises(ValueError, match="'random_seed' parameter .* an int or None. Got 1.5"):
        simulate_service_partitioned(10, 5, tmp_path / "x", random_seed=1.5)
