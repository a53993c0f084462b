"""Tests for models.data.io."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from models.data.io import load_events, load_users
from models.exceptions import DataQualityWarning, DataValidationError

NOW = pd.Timestamp("2025-01-01")


@pytest.fixture
def log() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [2, 1, 1],
            "timestamp": pd.to_datetime(
                ["2024-01-02 08:00", "2024-01-01 23:59", "2024-01-02 00:01"]
            ),
            "artist_id": [10, 20, 30],
            "ms_played": [1000, 250, 0],
            "skipped": [False, True, False],
        }
    )


@pytest.fixture
def users() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [2, 1],
            "country": ["SE", "DE"],
            "plan": ["free", "premium"],
            "signup_date": pd.to_datetime(["2024-01-02", "2023-12-30"]),
        }
    )


def _check_log(out: pd.DataFrame) -> None:
    assert out["user_id"].tolist() == [1, 1, 2]
    assert out["timestamp"].dtype == np.dtype("datetime64[ns]")
    assert out["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 23:59")
    assert out["skipped"].dtype == np.dtype(bool)
    assert out["ms_played"].dtype == np.dtype("int64")


@pytest.mark.parametrize("name", ["log.csv", "log.csv.gz", "log.parquet", "log.pq"])
def test_round_trip(tmp_path, log, name):
    path = tmp_path / name
    if ".csv" in name:
        log.to_csv(path, index=False)
    else:
        log.to_parquet(path, index=False)
    _check_log(load_events(path, now=NOW))


def test_parquet_tz_aware_timestamps(tmp_path, log):
    log["timestamp"] = log["timestamp"].dt.tz_localize("UTC").dt.tz_convert("America/New_York")
    path = tmp_path / "log.parquet"
    log.to_parquet(path)
    _check_log(load_events(str(path), now=NOW))


def test_read_kwargs_are_passed(tmp_path, log):
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False, sep=";")
    _check_log(load_events(path, sep=";", now=NOW))


def test_unknown_suffix(tmp_path):
    path = tmp_path / "log.xlsx"
    path.write_text("x")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_events(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load_events(path)


def test_bad_csv_reports_columns_and_rows(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "user_id,timestamp,artist_id,ms_played\n"
        "1,2024-01-01 10:00,5,100\n"
        "1,not a time,5,100\n"
        "2,2024-01-01 11:00,6,-7\n"
    )
    with pytest.raises(DataValidationError) as info:
        load_events(path, now=NOW)
    message = str(info.value)
    assert "column 'timestamp'" in message and "row 1 ('not a time')" in message
    assert "column 'ms_played'" in message and "row 2 (-7)" in message


def test_drop_invalid_is_passed(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,timestamp,track_id\n1,2024-01-01 10:00,a\n2,,b\n")
    with pytest.warns(DataQualityWarning, match="Dropped 1 of 2 rows"):
        out = load_events(path, drop_invalid=True, now=NOW)
    assert out["user_id"].tolist() == [1]


def test_observation_end_is_passed(tmp_path, log):
    path = tmp_path / "log.parquet"
    log.to_parquet(path)
    with pytest.raises(DataValidationError, match="observation_end"):
        load_events(path, observation_end="2024-01-02")


@pytest.mark.parametrize("name", ["users.csv", "users.parquet"])
def test_load_users(tmp_path, users, name):
    path = tmp_path / name
    if name.endswith(".csv"):
        users.to_csv(path, index=False)
    else:
        users.to_parquet(path, index=False)
    out = load_users(path)
    assert out["user_id"].tolist() == [1, 2]
    assert out["signup_date"].dtype == np.dtype("datetime64[ns]")
    assert out["signup_date"].iloc[0] == pd.Timestamp("2023-12-30")


def test_load_users_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="users.csv"):
        load_users(tmp_path / "users.csv")
    with pytest.raises(ValueError, match=re.escape("users.json")):
        load_users(tmp_path / "users.json")
    path = tmp_path / "users.csv"
    path.write_text("user_id,country\n1,SE\n1,DE\n")
    with pytest.raises(DataValidationError, match=re.escape("row 1 (1)")):
        load_users(path)
