"""Tests for models.data.validation."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from models.data.validation import validate_events, validate_users
from models.exceptions import DataQualityWarning, DataValidationError

NOW = pd.Timestamp("2025-01-01")


@pytest.fixture
def log() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [2, 1, 1, 2],
            "timestamp": [
                "2024-01-02 08:00",
                "2024-01-01 23:59",
                "2024-01-02 00:01",
                "2024-01-01 10:00",
            ],
            "track_id": ["t1", "t2", "t3", "t1"],
            "artist_id": [10, 20, 30, 10],
            "ms_played": [1000, 250, 0, 30_000],
            "skipped": [False, True, False, True],
            "session_id": ["s1", "s2", "s2", "s3"],
        }
    )


def _match(*parts: str) -> str:
    """Regex requiring every part, in order, anywhere in the message."""
    return "(?s)" + ".*".join(re.escape(p) for p in parts)


# ----------------------------------------------------------------------------- clean input


def test_valid_log_is_typed_sorted_and_not_modified(log):
    before = log.copy()
    out = validate_events(log, now=NOW)
    pd.testing.assert_frame_equal(log, before)
    assert isinstance(out.index, pd.RangeIndex)
    assert out["timestamp"].dtype == np.dtype("datetime64[ns]")
    assert out["user_id"].dtype == np.dtype("int64")
    assert out["ms_played"].dtype == np.dtype("int64")
    assert out["skipped"].dtype == np.dtype(bool)
    assert out["user_id"].tolist() == [1, 1, 2, 2]
    assert (
        out["timestamp"].tolist()
        == pd.to_datetime(
            ["2024-01-01 23:59", "2024-01-02 00:01", "2024-01-01 10:00", "2024-01-02 08:00"]
        ).tolist()
    )
    assert out["track_id"].tolist() == ["t2", "t3", "t1", "t1"]
    assert list(out.columns) == list(log.columns)


def test_tz_aware_timestamps_become_naive_utc(log):
    log["timestamp"] = pd.to_datetime(log["timestamp"]).dt.tz_localize("Europe/Stockholm")
    out = validate_events(log, now=NOW)
    assert out["timestamp"].dt.tz is None
    # 2024-01-01 23:59 in Stockholm (UTC+1) is 22:59 UTC
    assert out["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 22:59")


def test_strings_with_offsets_are_converted_to_utc(log):
    log["timestamp"] = [
        "2024-01-02T08:00:00+02:00",
        "2024-01-01 23:59",
        "2024-01-02 00:01",
        "2024-01-01 10:00",
    ]
    # strings without an offset are read as UTC; mixing the two conventions is flagged
    with pytest.warns(DataQualityWarning, match=r"mixes datetimes with a UTC offset.*rows 1, 2, 3"):
        out = validate_events(log, now=NOW)
    assert pd.Timestamp("2024-01-02 06:00") in set(out["timestamp"])


def test_only_artist_id_is_enough(log):
    out = validate_events(log.drop(columns=["track_id"]), now=NOW)
    assert "track_id" not in out.columns


def test_whole_float_ids_become_int(log):
    log["user_id"] = log["user_id"].astype(float)
    assert validate_events(log, now=NOW)["user_id"].dtype == np.dtype("int64")


def test_string_ids_keep_strings(log):
    log["user_id"] = ["b", "a", "a", "b"]
    out = validate_events(log, now=NOW)
    assert pd.api.types.is_string_dtype(out["user_id"].dtype)
    assert out["user_id"].tolist() == ["a", "a", "b", "b"]


@pytest.mark.parametrize(
    "values", [[0, 1, 0, 1], [0.0, 1.0, 1.0, 0.0], ["true", "False", "1", "0"]]
)
def test_boolean_like_skipped_is_accepted(log, values):
    log["skipped"] = values
    assert validate_events(log, now=NOW)["skipped"].dtype == np.dtype(bool)


def test_event_exactly_at_observation_end_is_valid(log):
    out = validate_events(log, observation_end="2024-01-02 08:00")
    assert len(out) == 4


# ----------------------------------------------------------------------------- table-level


def test_not_a_dataframe():
    with pytest.raises(TypeError, match="must be a pandas DataFrame. Got list"):
        validate_events([1, 2])


def test_missing_required_column(log):
    with pytest.raises(DataValidationError, match=_match("column 'user_id'", "a required column")):
        validate_events(log.drop(columns=["user_id"]), now=NOW)


def test_missing_track_and_artist(log):
    with pytest.raises(DataValidationError, match=_match("track_id/artist_id", "at least one")):
        validate_events(log.drop(columns=["track_id", "artist_id"]), now=NOW)


def test_empty_frame(log):
    with pytest.raises(DataValidationError, match=_match("'<table>'", "at least one row")):
        validate_events(log.iloc[:0], now=NOW)


def test_numeric_timestamps_are_a_type_error(log):
    log["timestamp"] = [1_700_000_000, 1_700_000_001, 1_700_000_002, 1_700_000_003]
    with pytest.raises(
        DataValidationError, match=_match("column 'timestamp'", "not numbers", "row 0", "unit=")
    ):
        validate_events(log, now=NOW)


def test_mixed_id_types(log):
    log["user_id"] = pd.Series([1, 1, "x", 2], dtype=object)
    with pytest.raises(
        DataValidationError, match=_match("column 'user_id'", "one type", "row 2 ('x')")
    ):
        validate_events(log, now=NOW)


def test_table_problems_raise_even_with_drop_invalid(log):
    with pytest.raises(DataValidationError, match="a required column"):
        validate_events(log.drop(columns=["timestamp"]), drop_invalid=True, now=NOW)


# ----------------------------------------------------------------------------- row-level


def test_missing_user_id(log):
    log["user_id"] = [2, None, 1, 2]
    with pytest.raises(
        DataValidationError, match=_match("column 'user_id'", "no missing ids", "1 row(s)", "row 1")
    ):
        validate_events(log, now=NOW)


def test_missing_artist_id(log):
    log["artist_id"] = [10, 20, np.nan, 10]
    with pytest.raises(DataValidationError, match=_match("column 'artist_id'", "row 2 (nan)")):
        validate_events(log, now=NOW)


def test_fractional_float_ids(log):
    log["artist_id"] = [10.0, 20.5, 30.0, 10.0]
    with pytest.raises(DataValidationError, match=_match("'artist_id'", "whole-number", "row 1")):
        validate_events(log, now=NOW)


def test_unparseable_timestamp(log):
    log["timestamp"] = ["2024-01-02 08:00", "yesterday", "2024-01-02 00:01", "2024-13-45"]
    with pytest.raises(
        DataValidationError,
        match=_match("column 'timestamp'", "parseable", "2 row(s)", "row 1 ('yesterday')", "row 3"),
    ):
        validate_events(log, now=NOW)


def test_missing_timestamp(log):
    log["timestamp"] = ["2024-01-02 08:00", None, "2024-01-02 00:01", "2024-01-01 10:00"]
    with pytest.raises(
        DataValidationError, match=_match("column 'timestamp'", "no missing", "row 1")
    ):
        validate_events(log, now=NOW)


def test_non_numeric_ms_played(log):
    log["ms_played"] = ["1000", "2 min", "0", "30000"]
    with pytest.raises(
        DataValidationError,
        match=_match("column 'ms_played'", "numeric", "1 row(s)", "row 1 ('2 min')"),
    ):
        validate_events(log, now=NOW)


def test_negative_ms_played(log):
    log["ms_played"] = [1000, -5, 0, -1]
    with pytest.raises(
        DataValidationError,
        match=_match("column 'ms_played'", "non-negative", "2 row(s)", "row 1 (-5)", "row 3 (-1)"),
    ):
        validate_events(log, now=NOW)


def test_fractional_ms_played(log):
    log["ms_played"] = [1000.0, 2.5, 0.0, 1.0]
    with pytest.raises(
        DataValidationError, match=_match("column 'ms_played'", "whole", "row 1 (2.5)")
    ):
        validate_events(log, now=NOW)


def test_missing_ms_played(log):
    log["ms_played"] = [1000.0, np.nan, 0.0, 1.0]
    with pytest.raises(DataValidationError, match=_match("'ms_played'", "no missing", "row 1")):
        validate_events(log, now=NOW)


def test_skipped_not_boolean_like(log):
    log["skipped"] = [True, "maybe", 2, None]
    with pytest.raises(
        DataValidationError,
        match=_match("column 'skipped'", "boolean-like", "3 row(s)", "row 1 ('maybe')", "row 2"),
    ):
        validate_events(log, now=NOW)


def test_exact_duplicate_events(log):
    dup = pd.concat([log, log.iloc[[1]]], ignore_index=True)
    with pytest.raises(
        DataValidationError,
        match=_match("user_id/timestamp/track_id/artist_id", "duplicate", "1 row(s)", "row 4"),
    ):
        validate_events(dup, now=NOW)


def test_same_time_different_track_is_not_a_duplicate(log):
    extra = log.iloc[[1]].assign(track_id="t9")
    out = validate_events(pd.concat([log, extra], ignore_index=True), now=NOW)
    assert len(out) == 5


def test_events_after_observation_end(log):
    with pytest.raises(
        DataValidationError,
        match=_match("column 'timestamp'", "observation_end", "2 row(s)", "row 0", "row 2"),
    ):
        validate_events(log, observation_end="2024-01-02 00:00")


def test_events_in_the_future(log):
    with pytest.raises(
        DataValidationError, match=_match("column 'timestamp'", "future", "4 row(s)", "row 0")
    ):
        validate_events(log, now="2023-06-01")


def test_rows_are_positions_not_index_labels(log):
    log.index = [100, 50, 7, 3]
    log["ms_played"] = [1, 2, -3, 4]
    with pytest.raises(DataValidationError, match=re.escape("row 2 (-3)")):
        validate_events(log, now=NOW)


def test_every_problem_is_reported_at_once(log):
    log["user_id"] = [2, None, 1, 2]
    log["timestamp"] = ["2024-01-02 08:00", "2024-01-01 23:59", "nope", "2024-01-01 10:00"]
    log["ms_played"] = [1000, 250, 0, -1]
    log["skipped"] = [False, True, "x", True]
    with pytest.raises(DataValidationError) as info:
        validate_events(log, now=NOW)
    err = info.value
    assert isinstance(err, ValueError)
    assert len(err.problems) == 4
    assert {(p.column, p.rows) for p in err.problems} == {
        ("user_id", (1,)),
        ("timestamp", (2,)),
        ("ms_played", (3,)),
        ("skipped", (2,)),
    }
    assert "4 problem(s)" in str(err)


def test_drop_invalid_warns_with_count_and_drops(log):
    log["ms_played"] = [1000, -5, 0, 30_000]
    log["skipped"] = [False, "x", "y", True]
    with pytest.warns(DataQualityWarning, match=_match("Dropped 2 of 4 rows", "ms_played")) as rec:
        out = validate_events(log, drop_invalid=True, now=NOW)
    assert len(out) == 2
    assert out["ms_played"].tolist() == [30_000, 1000]
    assert issubclass(DataQualityWarning, UserWarning)
    assert len(rec[0].message.problems) == 2


def test_drop_invalid_is_silent_on_clean_data(log):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(validate_events(log, drop_invalid=True, now=NOW)) == 4


def test_drop_invalid_all_rows_bad_raises(log):
    log["ms_played"] = -1
    with (
        pytest.warns(DataQualityWarning),
        pytest.raises(DataValidationError, match="at least one valid row"),
    ):
        validate_events(log, drop_invalid=True, now=NOW)


def test_error_pickles(log):
    import pickle

    log["ms_played"] = [1, -1, 1, 1]
    with pytest.raises(DataValidationError) as info:
        validate_events(log, now=NOW)
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)


# ----------------------------------------------------------------------------- users


@pytest.fixture
def users() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [3, 1, 2],
            "country": ["SE", "DE", None],
            "plan": ["free", "premium", "free"],
            "signup_date": ["2024-01-03", "2024-01-01", "2024-01-02"],
        }
    )


def test_valid_users(users):
    out = validate_users(users)
    assert out["user_id"].tolist() == [1, 2, 3]
    assert out["signup_date"].dtype == np.dtype("datetime64[ns]")
    assert pd.api.types.is_string_dtype(out["country"].dtype)
    assert out["country"].isna().tolist() == [False, True, False]
    assert isinstance(out.index, pd.RangeIndex)


def test_users_missing_column(users):
    with pytest.raises(DataValidationError, match=_match("column 'user_id'", "required")):
        validate_users(users.drop(columns=["user_id"]))


def test_users_empty(users):
    with pytest.raises(DataValidationError, match="at least one row"):
        validate_users(users.iloc[:0])


def test_users_duplicate_ids(users):
    users["user_id"] = [3, 1, 3]
    with pytest.raises(
        DataValidationError, match=_match("column 'user_id'", "one row per user", "row 2 (3)")
    ):
        validate_users(users)


def test_users_missing_ids(users):
    users["user_id"] = [3, np.nan, 2]
    with pytest.raises(DataValidationError, match=_match("column 'user_id'", "missing", "row 1")):
        validate_users(users)


def test_users_non_string_country(users):
    users["country"] = pd.Series(["SE", 46, None], dtype=object)
    with pytest.raises(
        DataValidationError, match=_match("column 'country'", "strings", "row 1 (46)")
    ):
        validate_users(users)


def test_users_bad_signup_date(users):
    users["signup_date"] = ["2024-01-03", "soon", None]
    with pytest.raises(DataValidationError) as info:
        validate_users(users)
    message = str(info.value)
    assert "column 'signup_date'" in message
    assert "row 1 ('soon')" in message
    assert "row 2" in message
