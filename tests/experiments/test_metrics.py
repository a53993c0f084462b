"""Metric objects: validated at construction, frozen, with kinds, directions and windows."""

from __future__ import annotations

import dataclasses
import math

import pytest

from models.experiments.metrics import (
    DEFAULT_METRICS,
    ActiveDays,
    Binary,
    Count,
    Distinct,
    Metric,
    Ratio,
    Retained,
    Sum,
)


def test_defaults_and_kinds():
    assert Count().name == "plays"
    assert ActiveDays().name == "active_days"
    assert Retained().name == "retained"
    assert Sum("minutes", "ms_played", scale=1 / 60_000).scale == 1 / 60_000
    assert Sum("skips", "skipped").scale == 1.0
    assert [m.kind for m in (Count(), Sum("s", "x"), ActiveDays(), Distinct("d", "x"))] == [
        "continuous"
    ] * 4
    assert Binary("b", Count()).kind == "binary"
    assert Retained().kind == "binary"
    assert Ratio("r", Count(), ActiveDays()).kind == "ratio"
    assert all(isinstance(m, Metric) for m in DEFAULT_METRICS)


def test_default_metrics():
    names = [m.name for m in DEFAULT_METRICS]
    assert names == [
        "plays",
        "active_days",
        "minutes",
        "distinct_artists",
        "retained",
        "skip_rate",
        "minutes_per_active_day",
    ]
    by_name = {m.name: m for m in DEFAULT_METRICS}
    assert by_name["skip_rate"].higher_is_better is False
    assert sum(not m.higher_is_better for m in DEFAULT_METRICS) == 1
    assert by_name["retained"].window == (7, 14)
    assert by_name["skip_rate"].numerator == Sum("skips", "skipped")
    assert by_name["skip_rate"].denominator == Count("plays")
    assert by_name["minutes_per_active_day"].denominator == ActiveDays()


def test_windows():
    assert Count("first_week", window=(0, 7)).window == (0, 7)
    assert Count("x", window=[2, 5]).window == (2, 5)  # a list becomes a tuple
    assert Retained(start_day=0, end_day=7).window == (0, 7)
    assert Retained(window=(7, 14)).window == (7, 14)
    # parts without a window of their own take the ratio's window
    r = Ratio("r", Count(window=(0, 7)), ActiveDays(), window=(0, 7))
    assert r.window == (0, 7)


def test_frozen_and_hashable():
    metric = Sum("minutes", "ms_played")
    with pytest.raises(dataclasses.FrozenInstanceError):
        metric.scale = 2.0
    assert {metric, Sum("minutes", "ms_played")} == {metric}
    assert dataclasses.replace(Retained(), name="r2").window == (7, 14)


@pytest.mark.parametrize("name", ["my metric", "1st", "class", "", None, "a-b"])
def test_names_are_identifiers(name):
    with pytest.raises(ValueError, match=r"'name' parameter of Count must be a Python identifier"):
        Count(name)


@pytest.mark.parametrize("window", [(-1, 3), (3, 3), (5, 2), (0.0, 7), (0, 7, 9), "0-7", (True, 2)])
def test_bad_windows(window):
    with pytest.raises(
        ValueError, match=r"'window' parameter of Count must be a pair of integer days"
    ):
        Count("x", window=window)


def test_bad_retained_days():
    with pytest.raises(
        ValueError, match=r"'start_day/end_day' parameter of Retained .* Got \(7, 7\)"
    ):
        Retained(start_day=7, end_day=7)
    with pytest.raises(
        ValueError, match=r"'window' parameter of Retained must be left out or equal"
    ):
        Retained(window=(0, 7))


@pytest.mark.parametrize("scale", [0, -1.0, math.inf, math.nan, True, "1"])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match=r"'scale' parameter of Sum must be a finite positive"):
        Sum("s", "ms_played", scale=scale)


def test_bad_columns_and_flags():
    with pytest.raises(ValueError, match=r"'column' parameter of Sum must be the name"):
        Sum("s", "")
    with pytest.raises(ValueError, match=r"'column' parameter of Distinct must be the name"):
        Distinct("d", 3)
    with pytest.raises(ValueError, match=r"'higher_is_better' parameter of Count must be True or False"):
        Count("x", higher_is_better="no")


def test_bad_parts():
    ratio = Ratio("r", Count(), ActiveDays())
    with pytest.raises(
        ValueError, match=r"'of' parameter of Binary must be a metric of kind 'continuous'"
    ):
        Binary("b", ratio)
    with pytest.raises(ValueError, match=r"'of' parameter of Binary .* Got Retained"):
        Binary("b", Retained())
    with pytest.raises(
        ValueError, match=r"'numerator' parameter of Ratio must be a metric of kind"
    ):
        Ratio("r2", ratio, Count())
    with pytest.raises(ValueError, match=r"'denominator' parameter of Ratio .* Got 'plays'"):
        Ratio("r2", Count(), "plays")
    with pytest.raises(ValueError, match=r"'threshold' parameter of Binary must be a finite"):
        Binary("b", Count(), threshold=math.nan)


def test_part_windows_must_agree():
    with pytest.raises(
        ValueError,
        match=r"'numerator' parameter of Ratio must have no window or the window \(0, 7\) .* "
        r"Got window \(7, 14\)",
    ):
        Ratio("r", Count(window=(7, 14)), Count(), window=(0, 7))
    with pytest.raises(ValueError, match=r"'of' parameter of Binary must have no window"):
        Binary("b", Count(window=(0, 3)), window=(0, 7))
