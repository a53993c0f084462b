"""Tests for models.data.summaries."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st

from models.data.summaries import (
    UserArtistCounts,
    cohort_table,
    period_play_counts,
    retention_matrix,
    summarize_activity,
    user_artist_matrix,
)
from models.exceptions import DataValidationError


def _log(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [u for u, _ in rows],
            "timestamp": pd.to_datetime([t for _, t in rows]).astype("datetime64[ns]"),
        }
    )


@pytest.fixture
def daily_log() -> pd.DataFrame:
    # 2024-01-01 is a Monday.
    return _log(
        [
            ("a", "2024-01-01 10:00"),
            ("a", "2024-01-01 23:59"),
            ("a", "2024-01-02 00:01"),  # two minutes later, but the next day
            ("a", "2024-01-05 12:00"),
            ("b", "2024-01-03 08:00"),
            ("c", "2024-01-07 00:00"),  # exactly at observation_end
        ]
    )


# ----------------------------------------------------------------------------- summarize_activity


def test_summarize_activity_daily_hand_computed(daily_log):
    # a: active days 0, 0, 1, 4 (from Jan 1) -> distinct {0, 1, 4}: frequency 2, recency 4;
    #    observation end Jan 7 is day 6 -> T = 6.
    # b: only day 2 -> frequency 0, recency 0, T = 6 - 2 = 4.
    # c: only day 6, at observation_end -> frequency 0, recency 0, T = 0.
    out = summarize_activity(daily_log, observation_end="2024-01-07 00:00")
    assert out.index.name == "user_id"
    assert out.index.tolist() == ["a", "b", "c"]
    assert out["frequency"].tolist() == [2, 0, 0]
    assert out["recency"].tolist() == [4, 0, 0]
    assert out["T"].tolist() == [6, 4, 0]
    assert out["n_events"].tolist() == [4, 1, 1]
    assert out.loc["a", "first_active"] == pd.Timestamp("2024-01-01 10:00")
    assert out.loc["a", "last_active"] == pd.Timestamp("2024-01-05 12:00")
    assert list(out.columns) == [
        "frequency",
        "recency",
        "T",
        "first_active",
        "last_active",
        "n_events",
    ]


def test_summarize_activity_default_end_is_last_event(daily_log):
    out = summarize_activity(daily_log)
    pd.testing.assert_frame_equal(out, summarize_activity(daily_log, observation_end="2024-01-07"))


def test_summarize_activity_weekly_edges():
    # Weeks start Monday: Jan 1, Jan 8, Jan 15, Jan 22 (2024) are weeks 0, 1, 2, 3.
    log = _log(
        [
            ("x", "2024-01-07 23:59"),  # Sunday -> week 0
            ("x", "2024-01-08 00:01"),  # Monday -> week 1
            ("x", "2024-01-21 12:00"),  # Sunday -> week 2
            ("y", "2024-01-15 00:00"),  # Monday 00:00 -> week 2
        ]
    )
    out = summarize_activity(log, period="W", observation_end="2024-01-22 00:00")
    assert out["frequency"].tolist() == [2, 0]
    assert out["recency"].tolist() == [2, 0]
    assert out["T"].tolist() == [3, 1]


def test_summarize_activity_monthly_edges():
    log = _log([("x", "2024-01-31 23:59"), ("x", "2024-02-01 00:01")])
    out = summarize_activity(log, period="M", observation_end="2024-03-15")
    assert out[["frequency", "recency", "T"]].iloc[0].tolist() == [1, 1, 2]


def test_summarize_activity_events_after_end(daily_log):
    with pytest.raises(
        DataValidationError,
        match=r"(?s)column 'timestamp'.*observation_end.*2 row\(s\).*row 3.*row 5",
    ):
        summarize_activity(daily_log, observation_end="2024-01-04")


def test_summarize_activity_missing_column(daily_log):
    with pytest.raises(DataValidationError, match="column 'timestamp'"):
        summarize_activity(daily_log.drop(columns=["timestamp"]))


def test_summarize_activity_empty(daily_log):
    with pytest.raises(DataValidationError, match="at least one row"):
        summarize_activity(daily_log.iloc[:0])


def test_summarize_activity_unvalidated_timestamps(daily_log):
    with pytest.raises(DataValidationError, match="datetime64"):
        summarize_activity(daily_log.assign(timestamp="2024-01-01"))


def test_summarize_activity_missing_user(daily_log):
    daily_log.loc[2, "user_id"] = None
    with pytest.raises(DataValidationError, match=r"column 'user_id'.*row 2"):
        summarize_activity(daily_log)


def test_summarize_activity_bad_period(daily_log):
    with pytest.raises(ValueError, match="'period' parameter of summarize_activity.*Got 'Y'"):
        summarize_activity(daily_log, period="Y")


# ----------------------------------------------------------------------------- cohort_table


@pytest.fixture
def monthly_log() -> pd.DataFrame:
    return _log(
        [
            ("a", "2024-01-05"),
            ("a", "2024-03-01"),
            ("b", "2024-01-20"),
            ("c", "2024-02-10"),
        ]
    )


def test_cohort_table_first_active_hand_computed(monthly_log):
    # Jan cohort {a, b}: active in Jan {a, b}, Feb {}, Mar {a}; last active a: Mar (k=2), b: Jan.
    # Feb cohort {c}: active in Feb {c}, Mar {}.
    out = cohort_table(monthly_log, period="M", observation_end="2024-03-31")
    assert list(out.columns) == [
        "cohort",
        "period",
        "n_users",
        "n_active",
        "n_surviving",
        "complete",
    ]
    assert (
        out["cohort"].tolist() == pd.to_datetime(["2024-01-01"] * 3 + ["2024-02-01"] * 2).tolist()
    )
    assert out["period"].tolist() == [0, 1, 2, 0, 1]
    assert out["n_users"].tolist() == [2, 2, 2, 1, 1]
    assert out["n_active"].tolist() == [2, 0, 1, 1, 0]
    assert out["n_surviving"].tolist() == [2, 1, 1, 1, 0]
    # March is not over at 2024-03-31 00:00.
    assert out["complete"].tolist() == [True, True, False, True, False]


def test_cohort_table_inactivity_counts_silent_users_as_surviving(monthly_log):
    # At 2024-03-31 c has been silent 50 days, b 71 days: with 60 days c has not churned
    # and survives February and March; b still churned after January.
    out = cohort_table(monthly_log, period="M", observation_end="2024-03-31", inactivity="60D")
    assert out["n_surviving"].tolist() == [2, 1, 1, 1, 1]
    assert out["n_active"].tolist() == [2, 0, 1, 1, 0]  # activity is unchanged
    out = cohort_table(monthly_log, period="M", observation_end="2024-03-31", inactivity="80D")
    assert out["n_surviving"].tolist() == [2, 2, 2, 1, 1]
    # a silence shorter than every gap to the end changes nothing
    same = cohort_table(monthly_log, period="M", observation_end="2024-03-31", inactivity="1D")
    pd.testing.assert_frame_equal(
        same, cohort_table(monthly_log, period="M", observation_end="2024-03-31"))
    for bad in ("soon", -5, "0D"):
        with pytest.raises(ValueError, match="'inactivity' parameter of cohort_table"):
            cohort_table(monthly_log, period="M", inactivity=bad)


def test_cohort_table_inactivity_matches_churn_labels():
    """With daily periods, survivors at the end are exactly the users churn_labels keeps."""
    from models.churn import churn_labels

    rng = np.random.default_rng(2)
    n = 800
    log = pd.DataFrame({
        "user_id": rng.integers(0, 80, n),
        "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(
            rng.uniform(0, 90, n) * rng.uniform(0.3, 1.0, n), "D"),
    })
    end = pd.Timestamp("2024-04-01")
    out = cohort_table(log, period="D", observation_end=end, inactivity="20D")
    last = out[out["cohort"] + pd.to_timedelta(out["period"], "D") == end.floor("D")]
    labels = churn_labels(log, inactivity="20D", observation_end=end)
    assert 5 < (~labels["churned"]).sum() < len(labels) - 5
    assert last["n_surviving"].sum() == (~labels["churned"]).sum()


def test_cohort_table_complete_when_end_reaches_next_period(monthly_log):
    out = cohort_table(monthly_log, period="M", observation_end="2024-04-01")
    # April is now a partially observed period too.
    assert out.groupby("cohort")["period"].max().tolist() == [3, 2]
    assert out["complete"].tolist() == [True, True, True, False, True, True, False]


def test_cohort_table_signup_hand_computed(monthly_log):
    users = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d", "e"],
            "signup_date": pd.to_datetime(
                ["2023-12-20", "2024-01-02", "2024-02-01", "2024-02-15", "2024-04-02"]
            ),
        }
    )
    # Dec cohort {a}: active Jan (k=1) and Mar (k=3); alive through k=3.
    # Jan cohort {b}: active Jan only.
    # Feb cohort {c, d}: c active Feb; d never played (not surviving even at k=0).
    # e signed up after observation_end: left out.
    out = cohort_table(
        monthly_log, users, period="M", cohort_by="signup", observation_end="2024-03-31"
    )
    assert (
        out["cohort"].dt.strftime("%Y-%m").tolist()
        == ["2023-12"] * 4 + ["2024-01"] * 3 + ["2024-02"] * 2
    )
    assert out["period"].tolist() == [0, 1, 2, 3, 0, 1, 2, 0, 1]
    assert out["n_users"].tolist() == [1, 1, 1, 1, 1, 1, 1, 2, 2]
    assert out["n_active"].tolist() == [0, 1, 0, 1, 1, 0, 0, 1, 0]
    assert out["n_surviving"].tolist() == [1, 1, 1, 1, 1, 0, 0, 1, 0]


def test_cohort_table_signup_needs_users(monthly_log):
    with pytest.raises(ValueError, match="users table"):
        cohort_table(monthly_log, cohort_by="signup")


def test_cohort_table_signup_unknown_user(monthly_log):
    users = pd.DataFrame({"user_id": ["a", "b"], "signup_date": pd.to_datetime(["2024-01-01"] * 2)})
    with pytest.raises(DataValidationError, match=r"(?s)column 'user_id'.*users table.*row 3"):
        cohort_table(monthly_log, users, cohort_by="signup")


def test_cohort_table_event_before_signup(monthly_log):
    users = pd.DataFrame(
        {"user_id": ["a", "b", "c"], "signup_date": pd.to_datetime(["2024-02-01"] * 3)}
    )
    with pytest.raises(DataValidationError, match=r"(?s)signup.*2 row\(s\).*row 0.*row 2"):
        cohort_table(monthly_log, users, cohort_by="signup")


def test_cohort_table_missing_signup_column(monthly_log):
    users = pd.DataFrame({"user_id": ["a", "b", "c"]})
    with pytest.raises(DataValidationError, match="column 'signup_date'"):
        cohort_table(monthly_log, users, cohort_by="signup")


def test_cohort_table_bad_options(monthly_log):
    with pytest.raises(ValueError, match="'cohort_by' parameter.*Got 'x'"):
        cohort_table(monthly_log, cohort_by="x")
    with pytest.raises(ValueError, match="'period' parameter.*Got 'Q'"):
        cohort_table(monthly_log, period="Q")


def test_cohort_table_empty(monthly_log):
    with pytest.raises(DataValidationError, match="at least one row"):
        cohort_table(monthly_log.iloc[:0])


def test_retention_matrix(monthly_log):
    table = cohort_table(monthly_log, period="M", observation_end="2024-03-31")
    counts = retention_matrix(table)
    assert counts.index.name == "cohort" and counts.columns.name == "period"
    np.testing.assert_array_equal(counts.to_numpy(), [[2, 1, 1], [1, 0, np.nan]])
    rates = retention_matrix(table, "n_active", normalize=True)
    np.testing.assert_array_equal(rates.to_numpy(), [[1, 0, 0.5], [1, 0, np.nan]])


def test_retention_matrix_errors(monthly_log):
    table = cohort_table(monthly_log)
    with pytest.raises(DataValidationError, match="column 'n_surviving'"):
        retention_matrix(table.drop(columns=["n_surviving"]))
    with pytest.raises(ValueError, match="'value' parameter.*Got 'plays'"):
        retention_matrix(table, "plays")


# ----------------------------------------------------------------------------- period_play_counts


@pytest.fixture
def play_log() -> pd.DataFrame:
    return _log(
        [
            ("a", "2024-01-01 09:00"),
            ("a", "2024-01-01 23:59"),
            ("a", "2024-01-03 10:00"),
            ("b", "2024-01-02 18:00"),
        ]
    )


def test_period_play_counts_first_active(play_log):
    out = period_play_counts(play_log)
    assert list(out.columns) == ["user_id", "period", "period_start", "day_of_week", "plays"]
    assert out["user_id"].tolist() == ["a", "a", "a", "b", "b"]
    assert out["period"].tolist() == [0, 1, 2, 0, 1]
    assert out["plays"].tolist() == [2, 0, 1, 1, 0]
    assert (
        out["period_start"].tolist()
        == pd.to_datetime(
            ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-02", "2024-01-03"]
        ).tolist()
    )
    assert out["day_of_week"].tolist() == [0, 1, 2, 1, 2]


def test_period_play_counts_signup(play_log):
    users = pd.DataFrame(
        {
            "user_id": ["a", "b", "z"],
            "signup_date": pd.to_datetime(
                ["2023-12-31 20:00", "2024-01-02 00:00", "2024-01-03 00:00"]
            ),
        }
    )
    # a: Dec 31 (Sunday) .. Jan 3 -> [0, 2, 0, 1]; b: Jan 2 .. Jan 3 -> [1, 0]; z: Jan 3 -> [0].
    out = period_play_counts(play_log, users, start_from="signup", end="2024-01-03 23:00")
    assert out["user_id"].tolist() == ["a"] * 4 + ["b"] * 2 + ["z"]
    assert out["plays"].tolist() == [0, 2, 0, 1, 1, 0, 0]
    assert out["day_of_week"].tolist() == [6, 0, 1, 2, 1, 2, 2]


def test_period_play_counts_fixed_start_window(play_log):
    # Events before start (both of a's Jan 1 plays) are not counted.
    out = period_play_counts(play_log, start="2024-01-02", start_from="start")
    assert out["user_id"].tolist() == ["a", "a", "b", "b"]
    assert out["period"].tolist() == [0, 1, 0, 1]
    assert out["plays"].tolist() == [0, 1, 1, 0]


def test_period_play_counts_fixed_start_with_users(play_log):
    users = pd.DataFrame({"user_id": ["a", "b", "z"]})
    out = period_play_counts(play_log, users, start="2024-01-03", start_from="start")
    assert out["user_id"].tolist() == ["a", "b", "z"]
    assert out["plays"].tolist() == [1, 0, 0]
    with pytest.raises(DataValidationError, match=r"(?s)users table.*row 3 \('b'\)"):
        period_play_counts(play_log, users.iloc[:1], start="2024-01-03", start_from="start")


def test_period_play_counts_end_cuts_window(play_log):
    # b's only play is after end, so b has no first activity in the window and no rows.
    out = period_play_counts(play_log, end="2024-01-02 00:00")
    assert out["user_id"].tolist() == ["a", "a"]
    assert out["plays"].tolist() == [2, 0]


def test_period_play_counts_weekly(play_log):
    out = period_play_counts(play_log, period="W", end="2024-01-15")
    assert "day_of_week" not in out.columns
    assert (
        out["period_start"].tolist()
        == pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-15"] * 2).tolist()
    )
    assert out["plays"].tolist() == [3, 0, 0, 1, 0, 0]


def test_period_play_counts_option_errors(play_log):
    with pytest.raises(ValueError, match="needs start="):
        period_play_counts(play_log, start_from="start")
    with pytest.raises(ValueError, match="'start' parameter.*at or before end"):
        period_play_counts(play_log, start="2025-01-01", start_from="start")
    with pytest.raises(ValueError, match="'start_from' parameter.*Got 'birth'"):
        period_play_counts(play_log, start_from="birth")
    with pytest.raises(DataValidationError, match="column 'user_id'"):
        period_play_counts(play_log.drop(columns=["user_id"]))


# ----------------------------------------------------------------------------- user_artist_matrix


def test_user_artist_matrix_hand_computed():
    log = pd.DataFrame(
        {"user_id": [2, 1, 2, 2, 5], "artist_id": ["x", "y", "x", "y", "z"], "ms": [1, 2, 3, 4, 5]}
    )
    counts = user_artist_matrix(log)
    assert isinstance(counts, UserArtistCounts)
    assert scipy.sparse.issparse(counts.matrix) and counts.matrix.format == "csr"
    assert counts.users.tolist() == [1, 2, 5]
    assert counts.artists.tolist() == ["x", "y", "z"]
    np.testing.assert_array_equal(counts.matrix.toarray(), [[0, 1, 0], [2, 1, 0], [0, 0, 1]])
    weighted = user_artist_matrix(log, weight="ms")
    np.testing.assert_array_equal(weighted.matrix.toarray(), [[0, 2, 0], [4, 4, 0], [0, 0, 5]])


def test_user_artist_matrix_from_aggregated_counts():
    # Last.fm hetrec user_artists.dat: userID, artistID, weight (renamed).
    agg = pd.DataFrame(
        {"user_id": [7, 7, 9], "artist_id": [51, 52, 51], "plays": [13883, 11690, 3]}
    )
    counts = user_artist_matrix(agg, count_col="plays")
    np.testing.assert_array_equal(counts.matrix.toarray(), [[13883, 11690], [3, 0]])
    assert counts.users.tolist() == [7, 9] and counts.artists.tolist() == [51, 52]


def test_user_artist_matrix_errors():
    agg = pd.DataFrame({"user_id": [7, 9], "artist_id": [51, 51], "plays": [3, -1]})
    with pytest.raises(DataValidationError, match=re.escape("column 'plays'") + ".*row 1 \\(-1\\)"):
        user_artist_matrix(agg, count_col="plays")
    with pytest.raises(DataValidationError, match="numeric"):
        user_artist_matrix(agg.assign(plays=["a", "b"]), count_col="plays")
    with pytest.raises(DataValidationError, match="column 'artist_id'"):
        user_artist_matrix(agg.drop(columns=["artist_id"]))
    with pytest.raises(DataValidationError, match="column 'n'"):
        user_artist_matrix(agg, count_col="n")
    with pytest.raises(DataValidationError, match="at least one row"):
        user_artist_matrix(agg.iloc[:0])
    with pytest.raises(ValueError, match="at most one"):
        user_artist_matrix(agg, weight="plays", count_col="plays")


# ----------------------------------------------------------------------------- properties

_BASE = pd.Timestamp("2023-12-25")  # a Monday


@st.composite
def event_logs(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 40))
    users = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    minutes = draw(st.lists(st.integers(0, 60 * 24 * 75), min_size=n, max_size=n))
    artists = draw(st.lists(st.sampled_from(["p", "q", "r", "s"]), min_size=n, max_size=n))
    return pd.DataFrame(
        {
            "user_id": users,
            "timestamp": _BASE + pd.to_timedelta(minutes, unit="min"),
            "artist_id": artists,
        }
    )


def _ordinals(ts: pd.Series, period: str) -> np.ndarray:
    return pd.PeriodIndex(ts.dt.to_period(period)).asi8


@settings(max_examples=40, deadline=None)
@given(log=event_logs(), period=st.sampled_from(["D", "W", "M"]))
def test_summarize_activity_matches_pandas_periods(log, period):
    out = summarize_activity(log, period=period)
    end = _ordinals(pd.Series([log["timestamp"].max()]), period)[0]
    brute = log.assign(p=_ordinals(log["timestamp"], period))
    for user, group in brute.groupby("user_id"):  # brute force, tests only
        row = out.loc[user]
        assert row["frequency"] == group["p"].nunique() - 1
        assert row["recency"] == group["p"].max() - group["p"].min()
        assert row["T"] == end - group["p"].min()
        assert row["n_events"] == len(group)
    assert ((out["frequency"] <= out["recency"]) | (period != "D")).all()
    assert (out["recency"] <= out["T"]).all()
    assert (out.loc[out["frequency"] == 0, "recency"] == 0).all()


@settings(max_examples=40, deadline=None)
@given(log=event_logs(), period=st.sampled_from(["D", "W", "M"]))
def test_period_play_counts_sum_and_length(log, period):
    out = period_play_counts(log, period=period)
    assert out["plays"].sum() == len(log)
    assert (out["plays"] >= 0).all()
    summary = summarize_activity(log, period=period)
    lengths = out.groupby("user_id").size()
    pd.testing.assert_series_equal(lengths, summary["T"] + 1, check_names=False, check_dtype=False)
    assert (out.groupby("user_id")["period"].min() == 0).all()


@settings(max_examples=40, deadline=None)
@given(log=event_logs(), period=st.sampled_from(["D", "W", "M"]))
def test_cohort_table_invariants(log, period):
    out = cohort_table(log, period=period)
    assert (out["n_active"] <= out["n_surviving"]).all()
    assert (out["n_surviving"] <= out["n_users"]).all()
    first = out[out["period"] == 0]
    assert (first["n_surviving"] == first["n_users"]).all()
    assert (first["n_active"] == first["n_users"]).all()
    assert first["n_users"].sum() == log["user_id"].nunique()
    surv = retention_matrix(out).to_numpy()
    with np.errstate(invalid="ignore"):
        assert not (np.diff(surv, axis=1) > 0).any()
    pairs = log.assign(p=_ordinals(log["timestamp"], period))[["user_id", "p"]]
    assert out["n_active"].sum() == len(pairs.drop_duplicates())


@settings(max_examples=40, deadline=None)
@given(log=event_logs())
def test_user_artist_matrix_matches_groupby(log):
    counts = user_artist_matrix(log)
    assert counts.matrix.sum() == len(log)
    brute = log.groupby(["user_id", "artist_id"]).size()
    dense = counts.matrix.toarray()
    for (user, artist), n in brute.items():
        assert dense[counts.users.get_loc(user), counts.artists.get_loc(artist)] == n
    assert counts.matrix.nnz == len(brute)
    assert counts.users.is_monotonic_increasing and counts.artists.is_monotonic_increasing
