"""compute_user_metrics and sufficient_statistics: hand-computed values, Dask equality, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.data import simulate_service
from models.exceptions import DataQualityWarning, DataValidationError
from models.experiments.metrics import (
    DEFAULT_METRICS,
    ActiveDays,
    Binary,
    Count,
    Distinct,
    Ratio,
    Retained,
    Sum,
)
from models.experiments.user_metrics import (
    STAT_COLUMNS,
    UserMetrics,
    compute_user_metrics,
    sufficient_statistics,
)

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")

T = pd.Timestamp
END = "2024-01-16"

# Windows of 3 days and a pre-period of 2 days, counted from each user's assigned_at.
METRICS = (
    Count("plays"),
    ActiveDays(),
    Sum("minutes", "ms_played", scale=1 / 60_000),
    Sum("skips", "skipped"),
    Distinct("artists", "artist_id"),
    Retained("ret", start_day=1, end_day=3),
    Binary("long", Sum("ms", "ms_played"), threshold=100_000),
    Ratio("skip_rate", Sum("skips", "skipped"), Count("plays"), higher_is_better=False),
    Ratio("ms_per_day", Sum("ms", "ms_played"), ActiveDays()),
)


@pytest.fixture(autouse=True)
def synchronous_scheduler():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture
def assignments():
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            "variant": ["control", "treatment", "treatment", "control"],
            "assigned_at": [T("2024-01-10 12:00"), T("2024-01-11"), T("2024-01-12 06:00"),
                            T("2024-01-10")],
            "country": ["SE", "SE", "DE", "DE"],
        }
    )  # fmt: skip


@pytest.fixture
def events():
    rows = [
        # user 1, assigned 2024-01-10 12:00
        (1, "2024-01-08 11:59", 500, True, 9),  # day -3: before the pre-period
        (1, "2024-01-08 12:00", 1000, False, 1),  # day -2: first instant of the pre-period
        (1, "2024-01-10 11:00", 2000, True, 5),  # day -1
        (1, "2024-01-10 12:00", 60000, True, 1),  # day 0: the assignment instant is in
        (1, "2024-01-10 18:00", 30000, False, 2),  # day 0
        (1, "2024-01-11 11:59", 1, False, 2),  # day 0 (another calendar day)
        (1, "2024-01-12 12:00", 120000, True, 3),  # day 2
        (1, "2024-01-13 12:00", 999, False, 4),  # day 3 = assigned_at + 3 days: out
        # user 2, assigned 2024-01-11 00:00
        (2, "2024-01-10 23:00", 100, True, 7),  # day -1
        (2, "2024-01-11 23:59", 6000, False, 7),  # day 0
        (2, "2024-01-12 00:00", 6000, False, 7),  # day 1
        # user 3 has no events; user 4, assigned 2024-01-10 00:00
        (4, "2024-01-08 00:00", 20, False, 9),  # day -2
        (4, "2024-01-09 00:00", 10, False, 8),  # day -1
        (4, "2024-01-12 23:59:59", 0, True, 8),  # day 2
    ]
    frame = pd.DataFrame(
        rows, columns=["user_id", "timestamp", "ms_played", "skipped", "artist_id"]
    )
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], format="ISO8601").astype(
        "datetime64[ns]"
    )
    return frame.sample(frac=1, random_state=3).reset_index(drop=True)  # order must not matter


def compute(events, assignments, metrics=METRICS, **kwargs):
    kwargs = {"window_days": 3, "pre_days": 2, "observation_end": END, **kwargs}
    return compute_user_metrics(events, assignments, metrics, **kwargs)


def split(frame, n=3):
    out = dd.from_pandas(frame, npartitions=n, sort=False)
    assert out.npartitions > 1
    return out


# --------------------------------------------------------------------------- values


def expected_frame():
    """The per-user metrics of the hand-made log, worked out from the comments above."""
    ms = np.array([210001, 12000, 0, 0], dtype="float64")
    ms_pre = np.array([3000, 100, 0, 30], dtype="float64")
    plays = np.array([4, 2, 0, 1])
    plays_pre = np.array([2, 1, 0, 2])
    days = np.array([2, 2, 0, 1])  # user 1: days 0 and 2 (10 Jan 18:00 and 11 Jan 11:59 = day 0)
    days_pre = np.array([2, 1, 0, 2])
    skips = np.array([2.0, 0, 0, 1])
    skips_pre = np.array([1.0, 1, 0, 0])
    cols = {
        "variant": ["control", "treatment", "treatment", "control"],
        "assigned_at": [T("2024-01-10 12:00"), T("2024-01-11"), T("2024-01-12 06:00"),
                        T("2024-01-10")],
        "country": ["SE", "SE", "DE", "DE"],
        "plays": plays, "plays_pre": plays_pre,
        "active_days": days, "active_days_pre": days_pre,
        "minutes": ms * (1 / 60_000), "minutes_pre": ms_pre * (1 / 60_000),
        "skips": skips, "skips_pre": skips_pre,
        "artists": [3, 1, 0, 1], "artists_pre": [2, 1, 0, 2],
        "ret": [1, 1, 0, 1],  # active on day 1 or 2
        "ret_pre": [1, 1, 0, 1],  # active on day -2 or -1
        "long": [1, 0, 0, 0], "long_pre": [0, 0, 0, 0],
        "skip_rate_num": skips, "skip_rate_den": plays,
        "skip_rate_num_pre": skips_pre, "skip_rate_den_pre": plays_pre,
        "ms_per_day_num": ms, "ms_per_day_den": days,
        "ms_per_day_num_pre": ms_pre, "ms_per_day_den_pre": days_pre,
    }  # fmt: skip
    frame = pd.DataFrame(cols, index=pd.Index([1, 2, 3, 4], name="user_id"))
    ints = [c for c in frame.columns[3:] if frame[c].dtype.kind == "i"]
    frame[ints] = frame[ints].astype("int64")
    frame["assigned_at"] = frame["assigned_at"].astype("datetime64[ns]")
    frame["variant"] = frame["variant"].astype("str")
    frame["country"] = frame["country"].astype("str")
    return frame


def test_hand_computed_values(events, assignments):
    before = (events.copy(deep=True), assignments.copy(deep=True))
    um = compute(events, assignments)
    pd.testing.assert_frame_equal(events, before[0])
    pd.testing.assert_frame_equal(assignments, before[1])
    assert isinstance(um, UserMetrics)
    pd.testing.assert_frame_equal(um.frame, expected_frame(), check_exact=True)
    assert um.metrics == METRICS
    assert (um.window_days, um.pre_days) == (3, 2)
    assert um.variants == ("control", "treatment")
    assert um.observation_end == T(END)
    assert "4 users, 9 metrics" in repr(um)


def test_window_edges():
    a = T("2024-01-10 12:00")
    day = pd.Timedelta(days=1)
    one = pd.Timedelta("1ns")
    assignments = pd.DataFrame({"user_id": [1], "variant": ["control"], "assigned_at": [a]})
    times = {
        "assigned_at": a,  # in the window (day 0)
        "last instant": a + 3 * day - one,  # in (day 2)
        "window end": a + 3 * day,  # out (day 3)
        "pre start": a - 2 * day,  # in the pre-period (day -2)
        "before pre": a - 2 * day - one,  # out (day -3)
        "just before": a - one,  # in the pre-period (day -1)
    }
    events = pd.DataFrame({"user_id": 1, "timestamp": list(times.values())})
    frame = compute(events, assignments, [Count("plays"), ActiveDays()]).frame
    assert frame.loc[1, ["plays", "plays_pre"]].tolist() == [2, 2]
    assert frame.loc[1, ["active_days", "active_days_pre"]].tolist() == [2, 2]
    later = compute(events, assignments.assign(assigned_at=a + one), [Count("plays")]).frame
    assert later.loc[1, ["plays", "plays_pre"]].tolist() == [2, 2]  # a moves out, a + 3d in


def test_no_pre_period(events, assignments):
    for pre_days in (0, None):
        um = compute(events, assignments, [Count("plays"), METRICS[-1]], pre_days=pre_days)
        assert [c for c in um.frame.columns if c.endswith("_pre")] == []
        assert um.pre_days == 0
        stats = sufficient_statistics(um)
        assert (stats["sum_x"] == 0).all() and (stats["sum_w"] == stats["n"]).all()


def test_metric_windows(events, assignments):
    metrics = [
        Count("early", window=(0, 1)),
        Ratio("late_skips", Sum("skips", "skipped"), Count(), window=(1, 3)),
    ]
    frame = compute(events, assignments, metrics).frame
    assert frame["early"].tolist() == [3, 1, 0, 0]
    assert frame["late_skips_num"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert frame["late_skips_den"].tolist() == [1, 1, 0, 1]
    # pre-period of a 1-day window: day -1 only; of a 2-day window: days -2 and -1
    assert frame["early_pre"].tolist() == [1, 1, 0, 1]
    assert frame["late_skips_den_pre"].tolist() == [2, 1, 0, 2]


def test_active_days_follow_each_users_assignment():
    assignments = pd.DataFrame(
        {"user_id": [1, 2], "variant": ["control", "treatment"],
         "assigned_at": [T("2024-01-01 20:00"), T("2024-01-01 00:00")]}
    )  # fmt: skip
    # the same two calendar days for both users
    events = pd.DataFrame(
        {"user_id": [1, 1, 2, 2],
         "timestamp": [T("2024-01-01 21:00"), T("2024-01-02 19:00")] * 2}
    )  # fmt: skip
    frame = compute_user_metrics(
        events, assignments, ActiveDays(), window_days=3, pre_days=0, observation_end=END
    ).frame
    assert frame["active_days"].tolist() == [1, 2]


def test_experiment_id_and_attributes(events, assignments):
    two = pd.concat(
        [assignments.assign(experiment_id="e1"),
         assignments.assign(experiment_id="e2", variant="control")], ignore_index=True
    )  # fmt: skip
    um = compute(events, two, [Count("plays")])
    assert list(um.frame.columns) == [
        "variant", "assigned_at", "experiment_id", "country", "plays", "plays_pre"
    ]  # fmt: skip
    assert um.frame.index.tolist() == [1, 2, 3, 4, 1, 2, 3, 4]
    assert um.frame["plays"].tolist() == [4, 2, 0, 1] * 2
    with pytest.raises(ValueError, match=r"'by' parameter .* include 'experiment_id' .* 2 exp"):
        sufficient_statistics(um)
    stats = sufficient_statistics(um, by="experiment_id")
    assert stats.index.names == ["metric", "variant", "experiment_id"]
    assert stats.loc[("plays", "control", "e2"), "n"] == 4


def test_control_comes_first(events, assignments):
    um = compute(events, assignments.assign(variant=["b", "a", "a", "b"]), [Count()])
    assert um.variants == ("a", "b")
    um = compute(events, assignments.assign(variant=["b", "a", "a", "b"]), [Count()], control="b")
    assert um.variants == ("b", "a")
    assert sufficient_statistics(um).index.get_level_values("variant").tolist() == ["b", "a"]


def test_string_ids(events, assignments):
    ev = events.assign(user_id="u" + events["user_id"].astype(str))
    asg = assignments.assign(user_id="u" + assignments["user_id"].astype(str))
    frame = compute(ev, asg).frame
    expected = expected_frame()
    expected.index = pd.Index(["u1", "u2", "u3", "u4"], name="user_id", dtype="str")
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


# --------------------------------------------------------------------------- Dask


def test_dask_equals_pandas_on_the_hand_made_log(events, assignments):
    expected = compute(events, assignments).frame
    got = compute(split(events.sort_values("user_id", kind="stable")), assignments).frame
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.fixture(scope="module")
def sim():
    return simulate_service(300, 60, random_seed=1)


@pytest.fixture(scope="module")
def sim_assignments(sim):
    rng = np.random.default_rng(1)
    n = len(sim.users)
    offsets = pd.to_timedelta(rng.integers(0, 20 * 86_400, n), unit="s")
    return pd.DataFrame(
        {"user_id": sim.users["user_id"], "variant": rng.choice(["control", "treatment"], n),
         "assigned_at": T("2025-01-20") + offsets, "country": sim.users["country"]}
    )  # fmt: skip


def test_dask_equals_pandas_on_a_simulated_log(sim, sim_assignments):
    events = sim.events
    expected = compute_user_metrics(events, sim_assignments, observation_end="2025-03-01")
    lazy = split(events, 5)
    parts = [p.compute() for p in lazy.partitions]
    assert {p["user_id"].iloc[0] for p in parts[1:]} & {p["user_id"].iloc[-1] for p in parts[:-1]}
    got = compute_user_metrics(lazy, sim_assignments, observation_end="2025-03-01")
    pd.testing.assert_frame_equal(got.frame, expected.frame, check_exact=True)
    pd.testing.assert_frame_equal(sufficient_statistics(got), sufficient_statistics(expected))
    frame = expected.frame
    assert frame["plays"].sum() > 0 and (frame["plays"] == 0).any()  # users without events: 0
    assert (frame["retained"] <= (frame["active_days"] > 0)).all()
    assert (frame["minutes_per_active_day_den"] == frame["active_days"]).all()
    assert np.allclose(frame["minutes_per_active_day_num"], frame["minutes"])


# --------------------------------------------------------------------------- statistics


def test_sufficient_statistics_equal_numpy_sums(events, assignments):
    um = compute(events, assignments)
    stats = sufficient_statistics(um)
    assert list(stats.columns) == ["kind", "higher_is_better", "n", *STAT_COLUMNS]
    assert stats.index.names == ["metric", "variant"]
    assert stats.attrs == {"window_days": 3, "pre_days": 2}
    assert stats.index.get_level_values("metric").unique().tolist() == [m.name for m in METRICS]
    frame = um.frame
    for metric in METRICS:
        for variant in ("control", "treatment"):
            rows = frame[frame["variant"] == variant]
            if metric.kind == "ratio":
                y, d = rows[f"{metric.name}_num"], rows[f"{metric.name}_den"]
                x, w = rows[f"{metric.name}_num_pre"], rows[f"{metric.name}_den_pre"]
            else:
                y, x = rows[metric.name], rows[f"{metric.name}_pre"]
                d = w = pd.Series(1.0, index=rows.index)
            y, d, x, w = (np.asarray(v, dtype=float) for v in (y, d, x, w))
            row = stats.loc[(metric.name, variant)]
            assert row["kind"] == metric.kind
            assert row["higher_is_better"] == metric.higher_is_better
            assert row["n"] == len(rows) == 2
            direct = {
                "sum_y": y.sum(), "sum_d": d.sum(), "sum_x": x.sum(), "sum_w": w.sum(),
                "sum_yy": y @ y, "sum_dd": d @ d, "sum_xx": x @ x, "sum_ww": w @ w,
                "sum_yd": y @ d, "sum_yx": y @ x, "sum_yw": y @ w,
                "sum_dx": d @ x, "sum_dw": d @ w, "sum_xw": x @ w,
            }  # fmt: skip
            for column, value in direct.items():
                assert row[column] == pytest.approx(value, rel=1e-12), (metric.name, column)
    # hand check: skip rate in control = users 1 and 4: skips 2 + 1 over plays 4 + 1
    assert stats.loc[("skip_rate", "control"), ["sum_y", "sum_d", "sum_yd"]].tolist() == [
        3.0, 5.0, 9.0
    ]  # fmt: skip


def test_sufficient_statistics_by_group(events, assignments):
    um = compute(events, assignments)
    total = sufficient_statistics(um)
    with pytest.warns(DataQualityWarning, match=r"2 \(metric, variant, group\) cell\(s\)"):
        grouped = sufficient_statistics(um, by=["country"])  # treatment in DE: no plays
    assert grouped.index.names == ["metric", "variant", "country"]
    assert grouped.loc[("plays", "treatment", "DE"), "n"] == 1
    assert grouped.loc[("plays", "treatment", "SE"), "sum_y"] == 2.0
    summed = grouped.groupby(level=["metric", "variant"], sort=False)[["n", *STAT_COLUMNS]].sum()
    pd.testing.assert_frame_equal(summed, total[["n", *STAT_COLUMNS]])


def test_sufficient_statistics_errors(events, assignments):
    um = compute(events, assignments, [Count()])
    with pytest.raises(TypeError, match="must be the UserMetrics .* Got DataFrame"):
        sufficient_statistics(um.frame)
    with pytest.raises(ValueError, match=r"'by' parameter .* attribute columns \['country'\]"):
        sufficient_statistics(um, by="plays")
    missing = compute(events, assignments.assign(country=["SE", None, "DE", "DE"]), [Count()])
    with pytest.raises(
        DataValidationError,
        match=r"'country': expected no missing values in a grouping column; 1 row.*user 2.*fillna",
    ):
        sufficient_statistics(missing, by="country")


def test_zero_denominator(events, assignments):
    # nobody in treatment has a day-0 event: the ratio is undefined there
    metric = Ratio("r", Count(), Count("first", window=(0, 1)))
    frame_events = events[events["user_id"] != 2]
    um = compute(frame_events, assignments, [metric])
    with pytest.warns(DataQualityWarning, match=r"zero for every user of 1 .*\('r', 'treatment'\)"):
        stats = sufficient_statistics(um)
    assert stats.loc[("r", "treatment"), "sum_d"] == 0
    never = [Ratio("r", Count(), Sum("none", "nothing"))]
    with pytest.raises(
        DataValidationError,
        match=r"'r_den': expected a ratio denominator that is not zero for every user .*Fix: check",
    ):
        compute(events.assign(nothing=0), assignments, never)


# --------------------------------------------------------------------------- errors


def test_missing_event_columns(events, assignments):
    with pytest.raises(DataValidationError, match="2 problem") as err:
        compute(events.drop(columns=["ms_played", "artist_id"]), assignments)
    text = str(err.value)
    assert (
        "column 'ms_played': expected a column needed by metric(s) 'minutes', 'long', "
        "'ms_per_day'. Fix: add the column" in text
    )
    assert "column 'artist_id': expected a column needed by metric(s) 'artists'" in text
    with pytest.raises(DataValidationError, match="'timestamp': expected a column required"):
        compute(events.drop(columns="timestamp"), assignments, [Count()])


def test_bad_event_values(events, assignments):
    bad = events.assign(ms_played=events["ms_played"].where(events.index != 5, -3))
    with pytest.raises(
        DataValidationError,
        match=r"'ms_played': expected non-negative durations; 1 row.*row 5 \(-3\)",
    ):
        compute(bad, assignments)
    floats = events.assign(value=np.where(events.index.isin([2, 7]), np.nan, 1.5))
    with pytest.raises(
        DataValidationError,
        match=r"'value': expected no missing values in a summed column; 2 row.*row 2 \(nan\), row 7",
    ):
        compute(floats, assignments, [Sum("v", "value")])
    with pytest.raises(
        DataValidationError,
        match=r"'artist_id': expected numbers or booleans to sum for metric\(s\) 'a' \(got dtype",
    ):
        compute(events.assign(artist_id="x"), assignments, [Sum("a", "artist_id")])
    with pytest.raises(DataValidationError, match=r"'timestamp': expected no missing values"):
        compute(events.assign(timestamp=events["timestamp"].where(events.index != 0)), assignments)


def test_unassigned_users(events, assignments):
    extra = pd.DataFrame(
        {"user_id": [9, 8, 9], "timestamp": [T("2024-01-11")] * 3, "ms_played": 1,
         "skipped": False, "artist_id": 1}
    )  # fmt: skip
    more = pd.concat([events, extra], ignore_index=True)
    with pytest.raises(
        DataValidationError,
        match=r"events of assigned users only; 2 user\(s\) with events are not in the assignment "
        r"table: 8, 9; 3 row\(s\) break this, first: row 14 \(9\), row 15 \(8\), row 16 \(9\)\. "
        r"Fix: pass unassigned='drop'",
    ):
        compute(more, assignments)
    with pytest.warns(DataQualityWarning, match=r"Left out 3 event\(s\) of 2 user\(s\)"):
        dropped = compute(more, assignments, unassigned="drop")
    pd.testing.assert_frame_equal(dropped.frame, expected_frame())
    with pytest.warns(DataQualityWarning, match=r"Left out 3 event\(s\) of 2 user\(s\)"):
        lazy = compute(split(more), assignments, unassigned="drop")
    pd.testing.assert_frame_equal(lazy.frame, expected_frame())


def test_exposure_windows_past_observation_end(events, assignments):
    # default end: the last event, 2024-01-13 12:00; windows of 3 days must end by then
    with pytest.raises(
        DataValidationError,
        match=r"(?s)Invalid assignments.*'assigned_at': expected exposure windows of 3 days that end "
        r"by observation_end \(2024-01-13 12:00:00\), i\.e\. assigned_at at or before "
        r"2024-01-10 12:00:00; 2 row\(s\) break this, first: row 1 \('user 2'\), row 2 "
        r"\('user 3'\)\. Fix: shorten window_days, pass a later observation_end",
    ):
        compute(events, assignments, observation_end=None)
    # user 1's window ends exactly at the end: allowed
    ones = events[events["user_id"].isin([1, 4])]
    assert compute(ones, assignments.iloc[[0, 3]], observation_end=None).observation_end == T(
        "2024-01-13 12:00"
    )
    # rows are positions in the table as passed
    with pytest.raises(DataValidationError, match=r"exposure windows of 3 days .* first: row 0 "):
        compute(ones, assignments.iloc[[2, 0, 3]], observation_end="2024-01-15", unassigned="drop")


def test_integer_overflow(events, assignments):
    big = events.assign(big=np.where(events["user_id"] == 1, 2**62, 1).astype("int64"))
    with pytest.raises(
        DataValidationError,
        match=r"'big': expected integer sums within int64; the sums of 1 user\(s\) overflow, "
        r"first: 1\. Fix: rescale 'big'",
    ):
        compute(big, assignments, [Sum("b", "big")])
    ok = events.assign(big=np.where(events["user_id"] == 1, 2**60, 1).astype("int64"))
    assert compute(ok, assignments, [Sum("b", "big")], pre_days=0).frame.loc[1, "b"] == 4 * 2.0**60


def test_id_types_must_match(events, assignments):
    with pytest.raises(
        DataValidationError,
        match=r"ids of the same type in events \(str\) and assignments \(int64\)",
    ):
        compute(events.assign(user_id=events["user_id"].astype(str)), assignments)


def test_assignment_table_is_validated(events, assignments):
    bad = assignments.assign(variant=["control", "treatment", None, "control"])
    with pytest.raises(
        DataValidationError, match=r"(?s)Invalid assignments.*variant names; 1 row.*row 2 \(nan\)"
    ):
        compute(events, bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"window_days": 0},
            r"'window_days' parameter of compute_user_metrics must be a positive integer\. Got 0",
        ),
        ({"window_days": 2.5}, r"'window_days' .* positive integer\. Got 2\.5"),
        ({"window_days": True}, r"'window_days' .* positive integer\. Got True"),
        (
            {"pre_days": -1},
            r"'pre_days' parameter of compute_user_metrics must be a non-negative integer\. Got -1",
        ),
        (
            {"unassigned": "ignore"},
            r"'unassigned' parameter .* one of \['error', 'drop'\]\. Got 'ignore'",
        ),
        ({"observation_end": "soon"}, r"'observation_end' parameter must be a timestamp"),
        (
            {"window_days": 2},
            r"'window_days' .* at least 3 \(the end of the window of metric 'ret'\)\. Got 2",
        ),
    ],
)
def test_parameter_errors(events, assignments, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute(events, assignments, **kwargs)


def test_metric_list_errors(events, assignments):
    with pytest.raises(ValueError, match=r"'metrics' parameter .* unique names\. Got \['plays'\]"):
        compute(events, assignments, [Count(), Count()])
    with pytest.raises(
        ValueError, match=r"distinct output columns\. Got \['x_num', 'x_num_pre'\] from two metrics"
    ):
        compute(events, assignments, [Ratio("x", Count(), Count()), Count("x_num")])
    with pytest.raises(
        ValueError, match=r"must not name columns of the assignment table\. Got \['country'\]"
    ):
        compute(events, assignments, [Count("country")])
    with pytest.raises(ValueError, match=r"'metrics' parameter .* Got \[\]"):
        compute(events, assignments, [])
    with pytest.raises(ValueError, match=r"'metrics' parameter .* Got \['plays'\]"):
        compute(events, assignments, ["plays"])


def test_input_types(events, assignments):
    with pytest.raises(
        TypeError, match=r"'events' parameter .* pandas or Dask DataFrame\. Got dict"
    ):
        compute({"a": 1}, assignments)
    with pytest.raises(TypeError, match=r"'assignments' parameter .* pandas DataFrame\. Got list"):
        compute(events, [1])


def test_dask_errors_quote_global_rows(events, assignments):
    frame = events.sort_values("user_id", kind="stable").reset_index(drop=True)
    frame.loc[[1, 12], "ms_played"] = -1
    with pytest.raises(
        DataValidationError,
        match=r"non-negative durations; 2 row\(s\).*row 1 \(-1\), row 12 \(-1\)",
    ):
        compute(split(frame), assignments)


def test_default_metrics_on_the_hand_made_log(events, assignments):
    um = compute_user_metrics(events, assignments, DEFAULT_METRICS, window_days=14, pre_days=14,
                              observation_end="2024-02-01")  # fmt: skip
    frame = um.frame
    assert frame["plays"].tolist() == [5, 2, 0, 1]  # 14-day windows take every later event
    assert frame["plays_pre"].tolist() == [3, 1, 0, 2]
    assert frame["retained"].tolist() == [0, 0, 0, 0]  # nobody active on days 7-13
    assert frame["distinct_artists"].tolist() == [4, 1, 0, 1]


def test_tz_aware_timestamps_are_read_as_utc(events, assignments):
    local = events.assign(
        timestamp=events["timestamp"].dt.tz_localize("UTC").dt.tz_convert("Europe/Stockholm")
    )
    um = compute(local, assignments, observation_end=pd.Timestamp("2024-01-16 01:00+01:00"))
    pd.testing.assert_frame_equal(um.frame, expected_frame(), check_exact=True)
    assert um.observation_end == T(END)
