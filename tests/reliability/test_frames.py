"""Validating frames: times parsed one way, numbers never wrap, fake ids are missing ids."""

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest

from models.data import validate_events, validate_users
from models.exceptions import DataQualityWarning, DataValidationError

NOW = "2025-01-01"


def _log(timestamps, **columns):
    n = len(timestamps)
    base = {"user_id": [1] * n, "artist_id": list(range(n)), "timestamp": timestamps}
    return pd.DataFrame(base | columns)


def _unchanged(df):
    """Run validate_events and check that the caller's frame was not modified."""
    copy = df.copy(deep=True)

    def check():
        pd.testing.assert_frame_equal(df, copy)

    return check


def test_mixed_date_formats_are_an_error_naming_rows_and_the_fix():
    df = _log(["2024-03-01 10:00", "02/03/2024 10:00", "13/03/2024 10:00"])
    unchanged = _unchanged(df)
    with pytest.raises(DataValidationError, match=r"(?s)column 'timestamp'.*ISO 8601.*ambiguous"
                       r".*2 row\(s\).*row 1 \('02/03/2024 10:00'\), row 2.*format='%d/%m/%Y"):
        validate_events(df, now=NOW)
    unchanged()


def test_day_first_dates_are_never_guessed():
    df = _log(["13/03/2024", "14/03/2024"])
    with pytest.raises(DataValidationError, match=r"row 0 \('13/03/2024'\), row 1"):
        validate_events(df, now=NOW)


def test_the_fix_in_the_message_works():
    df = _log(["02/03/2024 10:00", "13/03/2024 10:00"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], format="%d/%m/%Y %H:%M")
    out = validate_events(df, now=NOW)
    assert out["timestamp"].dt.month.tolist() == [3, 3]


@pytest.mark.parametrize("text", ["2024-03-01T10:00:00Z", "2024-03-01 10:00", "2024-03-01",
                                  "2024-03-01T10:00:00.250+01:00"])
def test_iso_8601_strings_are_accepted(text):
    assert validate_events(_log([text]), now=NOW)["timestamp"].dt.year.tolist() == [2024]


def test_offsets_and_no_offsets_in_one_column_warn_naming_rows():
    df = _log(["2024-03-01T10:00:00+01:00", "2024-03-01 12:00", "2024-03-01 13:00"])
    with pytest.warns(DataQualityWarning, match=r"with a UTC offset \(1 row\(s\)\) and without "
                      r"one \(2 row\(s\), first: rows 1, 2\)"):
        out = validate_events(df, now=NOW)
    assert out["timestamp"].iloc[0] == pd.Timestamp("2024-03-01 09:00")


@pytest.mark.parametrize("year", ["1500", "2300"])
def test_years_outside_the_datetime_range_name_column_and_row(year):
    df = _log(["2024-01-01", f"{year}-06-01"])
    with pytest.raises(DataValidationError, match=rf"(?s)column 'timestamp': expected timestamps "
                       rf"between 1677-09-21 and 2262-04-11.*row 1 \('{year}-06-01'\).*check the "
                       r"year"):
        validate_events(df, now=NOW)


def test_a_reference_time_out_of_range_names_the_parameter():
    with pytest.raises(ValueError, match=r"The 'now' parameter must be between 1677-09-21 and "
                       r"2262-04-11. Got '2400-01-01' instead"):
        validate_events(_log(["2024-01-01"]), now="2400-01-01")


def test_second_resolution_column_out_of_range_is_named_not_a_pandas_error():
    stamps = pd.Series(np.array(["2024-01-01", "1500-01-01"], dtype="datetime64[s]"))
    df = _log(stamps)
    with pytest.raises(DataValidationError, match=r"column 'timestamp'.*row 1"):
        validate_events(df, now=NOW)


def test_python_datetimes_out_of_range_are_named():
    df = _log(pd.Series([dt.datetime(2024, 1, 1), dt.datetime(1200, 1, 1)], dtype=object))
    with pytest.raises(DataValidationError, match=r"between 1677.*row 1"):
        validate_events(df, now=NOW)


@pytest.mark.parametrize("value", [1e20, 10**30, 2.0**63])
def test_ms_played_beyond_int64_is_an_error_not_a_negative_number(value):
    df = _log(["2024-01-01", "2024-01-02"], ms_played=[value, 5])
    unchanged = _unchanged(df)
    with pytest.raises(DataValidationError, match=r"(?s)column 'ms_played': expected durations "
                       r"below 2\*\*63 ms.*wrap.*row 0.*check the unit"):
        validate_events(df, now=NOW)
    unchanged()


def test_large_but_valid_ms_played_is_kept_exactly():
    out = validate_events(_log(["2024-01-01"], ms_played=[2**53]), now=NOW)
    assert out["ms_played"].tolist() == [2**53]


@pytest.mark.parametrize("fake", ["", "nan", "NaN", "None", "null", "<NA>", "  "])
def test_text_standing_for_a_missing_id_is_a_missing_id(fake):
    df = _log(["2024-01-01", "2024-01-02"]).assign(user_id=["a", fake])
    unchanged = _unchanged(df)
    with pytest.raises(DataValidationError, match=r"(?s)column 'user_id': expected real ids.*"
                       r"1 row\(s\).*row 1.*fill 'user_id' with real ids"):
        validate_events(df, now=NOW)
    unchanged()


def test_fake_ids_are_dropped_with_a_warning_on_request():
    df = _log(["2024-01-01", "2024-01-02", "2024-01-03"]).assign(artist_id=["x", "", "nan"])
    with pytest.warns(DataQualityWarning, match=r"Dropped 2 of 3 rows"):
        out = validate_events(df, now=NOW, drop_invalid=True)
    assert out["artist_id"].tolist() == ["x"]


def test_empty_string_user_in_the_users_table_is_missing():
    with pytest.raises(DataValidationError, match=r"(?s)Invalid users.*'user_id'.*row 1 \(''\)"):
        validate_users(pd.DataFrame({"user_id": ["a", ""], "country": ["SE", "DE"]}))


def test_list_ids_are_an_error_naming_rows_not_a_type_error():
    df = _log(["2024-01-01", "2024-01-02"]).assign(user_id=[[1], [2]])
    with pytest.raises(DataValidationError, match=r"(?s)'user_id': expected one id per row.*"
                       r"row 0 \('\[1\]'\).*explode"):
        validate_events(df, now=NOW)


def test_valid_log_passes_without_warnings():
    df = _log(["2024-01-01 10:00", "2024-01-01T11:00:00"], ms_played=[1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = validate_events(df, now=NOW)
    assert len(out) == 2


@pytest.mark.parametrize("count", [2.5, 1e19, np.inf])
def test_play_counts_that_are_not_whole_int64_numbers_are_an_error(count):
    from models.data import user_artist_matrix

    table = pd.DataFrame({"user_id": [1, 2], "artist_id": ["x", "y"], "plays": [3.0, count]})
    copy = table.copy()
    with pytest.raises(DataValidationError, match=r"(?s)column 'plays': expected whole-number "
                       r"play counts below 2\*\*63.*row 1.*weight="):
        user_artist_matrix(table, count_col="plays")
    pd.testing.assert_frame_equal(table, copy)
    assert user_artist_matrix(table, weight="plays").matrix.shape == (2, 2)


def test_a_log_too_short_for_one_hazard_period_names_the_cause():
    # catalogue 65: a 30-day log with a 30-day inactivity threshold gave a silently empty table
    from models.churn import build_hazard_table

    log = pd.DataFrame({"user_id": ["a", "a", "b"],
                        "timestamp": pd.to_datetime(["2024-01-01", "2024-01-20", "2024-01-05"])})
    with pytest.raises(ValueError, match=r"(?s)no user has a fully observed period.*37 days in "
                       r"all.*\(19 days\).*shorter 'inactivity'"):
        build_hazard_table(log, inactivity="30D")
    assert len(build_hazard_table(log, inactivity="5D")) > 0


def test_all_zero_plays_and_a_hazard_table_without_events_warn_that_the_prior_decides():
    # catalogue 45: both fitted with only convergence warnings, the cause never named
    from models.churn import ChurnHazardModel
    from models.listening import PlayCountModel

    plays = pd.DataFrame({"user_id": np.repeat(["u1", "u2"], 7),
                          "period_start": np.tile(pd.date_range("2024-01-01", periods=7), 2),
                          "plays": 0})
    with pytest.warns(DataQualityWarning, match=r"Every one of the 14 play counts .* is 0"):
        PlayCountModel(groups=())._validate_data(plays)
    periods = pd.DataFrame({"user_id": [1, 1, 2], "tenure": [0, 1, 0], "event": 0,
                            "plays": [1.0, 2.0, 3.0]})
    with pytest.warns(DataQualityWarning, match=r"no churn event in its 3 rows"):
        ChurnHazardModel(covariates=["plays"], groups=[])._validate_data(periods)
    periods.loc[2, "event"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        ChurnHazardModel(covariates=["plays"], groups=[])._validate_data(periods)
