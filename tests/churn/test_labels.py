"""Tests of churn_labels and build_hazard_table: hand-computed logs and brute-force checks."""

import numpy as np
import pandas as pd
import pytest

from models.churn.features import build_hazard_table
from models.churn.labels import churn_labels
from models.exceptions import DataValidationError

END = pd.Timestamp("2024-03-01")


def _log(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], format="ISO8601")
    return frame


@pytest.fixture
def small_log():
    return _log([
        ("churned", "2024-01-01"), ("churned", "2024-01-10"),
        ("censored", "2024-01-05"), ("censored", "2024-02-20"),
        ("single_old", "2024-01-15"),
        ("single_recent", "2024-02-25"),
        ("boundary", "2024-01-20"), ("boundary", "2024-01-31 00:00:00"),
        ("inside", "2024-01-31 00:00:01"),
        ("returned", "2024-01-01"), ("returned", "2024-02-15"),
    ])


# ------------------------------------------------------------------ churn_labels


def test_labels_hand_computed(small_log):
    out = churn_labels(small_log, inactivity="30D", observation_end=END)
    assert out.index.name == "user_id"
    assert list(out.index) == sorted(small_log["user_id"].unique())
    churned = {"churned": True, "censored": False, "single_old": True, "single_recent": False,
               "boundary": True, "inside": False, "returned": False}
    assert out["churned"].to_dict() == churned
    assert (out["censored"] == ~out["churned"]).all()
    tenure = {"churned": 9.0, "censored": 56.0, "single_old": 0.0, "single_recent": 5.0,
              "boundary": 11.0, "inside": 30 - 1 / 86400, "returned": 60.0}
    np.testing.assert_allclose(out["tenure_days"].to_numpy(),
                               [tenure[u] for u in out.index], rtol=0, atol=1e-9)
    # Churn is dated at the last activity; censored users have no churn time.
    assert out.loc["churned", "churn_time"] == pd.Timestamp("2024-01-10")
    assert out.loc["boundary", "churn_time"] == pd.Timestamp("2024-01-31")
    assert out.loc["single_old", "churn_time"] == pd.Timestamp("2024-01-15")
    assert out.loc[~out["churned"], "churn_time"].isna().all()
    assert out.loc["returned", "n_events"] == 2
    assert out.loc["returned", "last_activity"] == pd.Timestamp("2024-02-15")
    assert out.attrs["observation_end"] == END


def test_labels_first_gap_dates_churn_at_first_long_gap(small_log):
    out = churn_labels(small_log, inactivity="30D", observation_end=END, returns="first_gap")
    assert out.loc["returned", "churned"]
    assert out.loc["returned", "churn_time"] == pd.Timestamp("2024-01-01")
    assert out.loc["returned", "tenure_days"] == 0.0
    # "censored" also had a 46-day gap (2024-01-05 to 2024-02-20) before returning.
    assert out.loc["censored", "churn_time"] == pd.Timestamp("2024-01-05")
    returned = ["returned", "censored"]
    same = out.drop(index=returned)
    base = churn_labels(small_log, inactivity="30D", observation_end=END).drop(index=returned)
    pd.testing.assert_frame_equal(same, base)


def test_labels_default_end_is_last_event_and_timezone_is_utc(small_log):
    out = churn_labels(small_log)
    assert out.attrs["observation_end"] == pd.Timestamp("2024-02-25")
    assert not out.loc["single_recent", "churned"]
    aware = small_log.assign(timestamp=small_log["timestamp"].dt.tz_localize("Europe/Paris"))
    shifted = churn_labels(aware, observation_end=pd.Timestamp("2024-03-01", tz="Europe/Paris"))
    assert shifted["churn_time"].dropna().iloc[0] == pd.Timestamp("2024-01-30 23:00")


def test_labels_join_users_and_count_silent_users(small_log):
    users = pd.DataFrame({"user_id": [*small_log["user_id"].unique(), "silent"]})
    users["country"] = "SE"
    out = churn_labels(small_log, observation_end=END, users=users)
    assert (out["country"] == "SE").all()
    assert "silent" not in out.index
    assert out.attrs["n_users_without_events"] == 1


def test_labels_match_brute_force_on_random_log():
    rng = np.random.default_rng(3)
    n = 2000
    log = pd.DataFrame({
        "user_id": rng.integers(0, 150, n),
        "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.uniform(0, 200, n), "D"),
    }).sample(frac=1.0, random_state=1)
    end = pd.Timestamp("2024-07-20")
    for returns in ("ignore", "first_gap"):
        out = churn_labels(log, inactivity="20D", observation_end=end, returns=returns)
        for user, ts in log.groupby("user_id")["timestamp"]:
            ts = np.sort(ts.to_numpy())
            stop = ts[-1]
            if returns == "first_gap":
                gaps = np.flatnonzero(np.diff(ts) >= pd.Timedelta("20D"))
                stop = ts[gaps[0]] if gaps.size else ts[-1]
            churned = end - stop >= pd.Timedelta("20D")
            assert out.loc[user, "churned"] == churned
            until = stop if churned else end
            assert out.loc[user, "tenure_days"] == pytest.approx(
                (until - ts[0]) / pd.Timedelta("1D"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"inactivity": "-3D"}, "The 'inactivity' parameter of churn_labels must be a positive"),
        ({"inactivity": "soon"}, "Got 'soon' instead"),
        ({"returns": "never"}, "The 'returns' parameter of churn_labels must be one of"),
        ({"observation_end": "not a date"}, "The 'observation_end' parameter"),
    ],
)
def test_labels_reject_bad_parameters(small_log, kwargs, match):
    with pytest.raises(ValueError, match=match):
        churn_labels(small_log, **kwargs)


def test_labels_reject_bad_data(small_log):
    with pytest.raises(TypeError, match="must be a pandas DataFrame. Got list instead"):
        churn_labels([1, 2])
    with pytest.raises(DataValidationError, match="column 'timestamp': expected a column"):
        churn_labels(small_log.drop(columns="timestamp"))
    with pytest.raises(DataValidationError, match="at least one row"):
        churn_labels(small_log.iloc[:0])
    with pytest.raises(DataValidationError, match="'timestamp': expected a datetime64"):
        churn_labels(small_log.assign(timestamp=small_log["timestamp"].astype(str)))
    bad = small_log.copy()
    bad.loc[2, "timestamp"] = pd.NaT
    with pytest.raises(DataValidationError, match=r"no missing values; 1 row\(s\)"):
        churn_labels(bad)
    with pytest.raises(DataValidationError, match="at or before observation_end"):
        churn_labels(small_log, observation_end="2024-02-01")
    users = pd.DataFrame({"user_id": ["churned", "churned"]})
    with pytest.raises(DataValidationError, match="one row per user"):
        churn_labels(small_log, users=users)
    with pytest.raises(DataValidationError, match="users listed in the users table.*'censored'"):
        churn_labels(small_log, users=users.iloc[:1])


# ------------------------------------------------------------ build_hazard_table


@pytest.fixture
def hazard_log():
    rows = [
        ("a", "2024-01-01 10:00", "X", False),
        ("a", "2024-01-03 09:00", "Y", True),
        ("a", "2024-01-03 22:00", "Y", False),
        ("a", "2024-01-16 08:00", "X", True),  # churn period 2; must not leak into its row
        ("b", "2024-02-01 12:00", "X", False),
        ("b", "2024-02-10 12:00", "Y", True),  # period 1, only in period 2's covariates
        ("b", "2024-02-27 12:00", "Y", True),
        ("c", "2024-02-05 12:00", "X", False),
        ("c", "2024-02-14 12:00", "X", False),  # churned, but period 1 not fully observed
        ("d", "2024-02-20 12:00", "X", False),  # no fully observed period
        ("e", "2024-02-09 12:00", "X", False),  # period 0 ends exactly 14 days before END
        ("e", "2024-02-28 12:00", "X", False),
        ("f", "2024-02-10 12:00", "X", False),  # one day later: no row
    ]
    log = pd.DataFrame(rows, columns=["user_id", "timestamp", "artist_id", "skipped"])
    log["timestamp"] = pd.to_datetime(log["timestamp"])
    return log


def test_hazard_table_hand_computed(hazard_log):
    users = pd.DataFrame({"user_id": list("abcdef"), "country": list("UUSSUS"),
                          "plan": ["free"] * 6, "signup_date": pd.Timestamp("2024-01-01")})
    out = build_hazard_table(hazard_log, users, period="W", inactivity="14D",
                             observation_end=END)
    assert list(out.columns) == ["user_id", "tenure", "period_start", "event", "log_plays_prev",
                                 "skip_rate_prev", "log_artists_prev", "days_since_last_play",
                                 "country", "plan"]
    assert len(out) == 7
    assert out["user_id"].tolist() == ["a", "a", "a", "b", "b", "c", "e"]
    assert out["tenure"].tolist() == [0, 1, 2, 0, 1, 0, 0]
    assert out["event"].tolist() == [0, 0, 1, 0, 0, 0, 0]
    assert out["period_start"].tolist() == pd.to_datetime(
        ["2024-01-01", "2024-01-08", "2024-01-15", "2024-02-01", "2024-02-08", "2024-02-05",
         "2024-02-09"]).tolist()
    np.testing.assert_allclose(out["log_plays_prev"],
                               np.log1p([0, 3, 0, 0, 1, 0, 0]))
    np.testing.assert_allclose(out["skip_rate_prev"], [0, 1 / 3, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(out["log_artists_prev"], np.log1p([0, 2, 0, 0, 1, 0, 0]))
    assert out["days_since_last_play"].tolist() == [0, 5, 12, 0, 7, 0, 0]
    assert out["country"].tolist() == ["U", "U", "U", "U", "U", "S", "U"]
    # The churn label of c is observed, but its churn period is not fully observed here.
    labels = churn_labels(hazard_log, inactivity="14D", observation_end=END)
    assert labels.loc["c", "churned"]


def test_hazard_table_without_optional_columns(hazard_log):
    out = build_hazard_table(hazard_log[["user_id", "timestamp"]], period="W",
                             inactivity="14D", observation_end=END)
    assert "skip_rate_prev" not in out and "log_artists_prev" not in out
    assert "country" not in out
    assert len(out) == 7


def test_hazard_table_first_gap_stops_at_risk_rows(hazard_log):
    out = build_hazard_table(hazard_log, period="W", inactivity="7D", observation_end=END,
                             returns="first_gap")
    a = out[out["user_id"] == "a"]
    # a's first gap of at least 7 days starts at 2024-01-03 22:00, in period 0.
    assert a["tenure"].tolist() == [0] and a["event"].tolist() == [1]


def test_hazard_forecast_rows_hand_computed(hazard_log):
    out = build_hazard_table(hazard_log, period="W", inactivity="14D", observation_end=END,
                             forecast=True)
    assert "event" not in out
    # a churned in a fully observed period: no row; c's churn period is not fully observed
    assert out["user_id"].tolist() == ["b", "c", "d", "e", "f"]
    assert out["tenure"].tolist() == [2, 1, 0, 1, 0]
    assert out["period_start"].tolist() == pd.to_datetime(
        ["2024-02-15", "2024-02-12", "2024-02-20", "2024-02-16", "2024-02-10"]).tolist()
    np.testing.assert_allclose(out["log_plays_prev"], np.log1p([1, 1, 0, 1, 0]))
    np.testing.assert_allclose(out["skip_rate_prev"], [1, 0, 0, 0, 0])
    np.testing.assert_allclose(out["log_artists_prev"], np.log1p([1, 1, 0, 1, 0]))
    assert out["days_since_last_play"].tolist() == [5, 7, 0, 7, 0]
    assert out.attrs["forecast"] is True
    with pytest.raises(TypeError, match="The 'forecast' parameter of build_hazard_table"):
        build_hazard_table(hazard_log, forecast="yes")


@pytest.mark.parametrize("returns", ["ignore", "first_gap"])
def test_hazard_forecast_rows_are_the_next_periods_rows(returns):
    """A forecast row equals that period's row once one more period is observed."""
    rng = np.random.default_rng(8)
    n_users, n = 150, 6000
    first = rng.uniform(0, 90, n_users)
    life = rng.exponential(60, n_users)
    user = rng.integers(0, n_users, n)
    day = first[user] + rng.uniform(0, 1, n) * np.minimum(life[user], 124 - first[user])
    log = pd.DataFrame({
        "user_id": user,
        "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(day, "D"),
        "artist_id": rng.integers(0, 6, n),
        "skipped": rng.random(n) < 0.3,
    })
    end, length = pd.Timestamp("2024-05-05"), pd.Timedelta("5D")
    kw = dict(period=length, inactivity="10D", returns=returns)
    history = build_hazard_table(log, observation_end=end, **kw)
    forecast = build_hazard_table(log, observation_end=end, forecast=True, **kw)
    churned = set(history.loc[history["event"] == 1, "user_id"])
    assert set(forecast["user_id"]) == set(log["user_id"]) - churned
    assert 30 < len(forecast) < n_users - 30
    last = history.groupby("user_id")["tenure"].max()
    expected = last.reindex(forecast["user_id"]).fillna(-1).to_numpy() + 1
    np.testing.assert_array_equal(forecast["tenure"], expected)
    later = build_hazard_table(log, observation_end=end + length, **kw)
    both = forecast.merge(later, on=["user_id", "tenure"], suffixes=("", "_later"))
    assert len(both) > 40
    for col in ["period_start", "log_plays_prev", "skip_rate_prev", "log_artists_prev",
                "days_since_last_play"]:
        np.testing.assert_array_equal(both[col], both[f"{col}_later"], err_msg=col)


def _brute_force_table(log, end, length, delta):
    """Reference person-period table built with plain loops over users and periods."""
    out = []
    for user, ev in log.groupby("user_id"):
        ev = ev.sort_values("timestamp")
        start = ev["timestamp"].min().floor("D")
        last = ev["timestamp"].max()
        churned = end - last >= delta
        k = 0
        while start + (k + 1) * length + delta <= end:
            lo, hi = start + k * length, start + (k + 1) * length
            prev = ev[(ev["timestamp"] >= lo - length) & (ev["timestamp"] < lo)]
            before = ev[ev["timestamp"] < lo]
            days = 0 if before.empty else (lo - before["timestamp"].max().floor("D")).days
            event = int(churned and lo <= last < hi)
            out.append((user, k, event, np.log1p(len(prev)),
                        prev["skipped"].mean() if len(prev) else 0.0,
                        np.log1p(prev["artist_id"].nunique()), days))
            if event:
                break
            k += 1
    return pd.DataFrame(out, columns=["user_id", "tenure", "event", "log_plays_prev",
                                      "skip_rate_prev", "log_artists_prev",
                                      "days_since_last_play"])


def test_hazard_table_matches_brute_force():
    rng = np.random.default_rng(5)
    n = 1500
    log = pd.DataFrame({
        "user_id": rng.integers(0, 60, n),
        "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(
            rng.uniform(0, 120, n) * rng.uniform(0.2, 1.0, n), "D"),
        "artist_id": rng.integers(0, 6, n),
        "skipped": rng.random(n) < 0.3,
    })
    end = pd.Timestamp("2024-05-15")
    out = build_hazard_table(log, period="5D", inactivity="10D", observation_end=end)
    ref = _brute_force_table(log, end, pd.Timedelta("5D"), pd.Timedelta("10D"))
    pd.testing.assert_frame_equal(out[ref.columns], ref, check_dtype=False)
    assert out["event"].sum() > 5 and (out["tenure"] > 3).sum() > 50


def test_hazard_table_rejects_bad_parameters(hazard_log):
    with pytest.raises(ValueError, match="The 'period' parameter of build_hazard_table"):
        build_hazard_table(hazard_log, period="M")
    with pytest.raises(ValueError, match="The 'returns' parameter of build_hazard_table"):
        build_hazard_table(hazard_log, returns="last")
    with pytest.raises(DataValidationError, match="users listed in the users table"):
        build_hazard_table(hazard_log, pd.DataFrame({"user_id": ["a"]}))
