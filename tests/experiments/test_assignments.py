"""validate_assignments: every problem collected, named with rows and a fix; a clean copy."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from models.exceptions import DataValidationError
from models.experiments.assignments import validate_assignments

T = pd.Timestamp


@pytest.fixture
def table():
    return pd.DataFrame(
        {
            "user_id": [3, 1, 2, 4],
            "variant": ["treatment", "control", "control", "treatment"],
            "assigned_at": [
                "2024-01-02 10:00",
                "2024-01-01 09:00",
                "2024-01-01 10:00",
                "2024-01-03",
            ],
            "country": ["SE", "DE", None, "US"],
        }
    )


def test_clean_copy(table):
    before = table.copy(deep=True)
    out = validate_assignments(table, variants=["control", "treatment"], control="control")
    pd.testing.assert_frame_equal(table, before)  # input untouched
    assert list(out.columns) == ["user_id", "variant", "assigned_at", "country"]
    assert out["user_id"].tolist() == [1, 2, 3, 4]
    assert out["user_id"].dtype == "int64"
    assert out["assigned_at"].dtype == "datetime64[ns]"
    assert pd.api.types.is_string_dtype(out["variant"].dtype)
    assert out.loc[1, "assigned_at"] == pd.Timestamp("2024-01-01 10:00")
    assert out.loc[0, "assigned_at"] == pd.Timestamp("2024-01-01 09:00")
    assert out.index.equals(pd.RangeIndex(4))
    assert out.loc[1, "country"] is None or pd.isna(out.loc[1, "country"])


def test_utc_offsets_are_converted(table):
    offsets = [
        "2024-01-02 10:00Z",
        "2024-01-01T09:00+00:00",
        "2024-01-01T12:00+02:00",
        "2024-01-03T00:00-01:00",
    ]
    out = validate_assignments(table.assign(assigned_at=offsets))
    assert out["assigned_at"].tolist() == [
        T("2024-01-01 09:00"), T("2024-01-01 10:00"), T("2024-01-02 10:00"), T("2024-01-03 01:00")
    ]  # fmt: skip
    assert out["assigned_at"].dtype == "datetime64[ns]"


def test_datetime_and_tz_aware_columns(table):
    naive = table.assign(assigned_at=pd.to_datetime(["2024-01-02"] * 4).as_unit("us"))
    assert validate_assignments(naive)["assigned_at"].dtype == "datetime64[ns]"
    aware = table.assign(
        assigned_at=pd.to_datetime(["2024-01-02 01:00"] * 4).tz_localize("Europe/Stockholm")
    )
    out = validate_assignments(aware)
    assert (out["assigned_at"] == pd.Timestamp("2024-01-02 00:00")).all()


def test_string_ids_and_float_ids(table):
    out = validate_assignments(table.assign(user_id=["c", "a", "b", "d"]))
    assert out["user_id"].tolist() == ["a", "b", "c", "d"]
    assert pd.api.types.is_string_dtype(out["user_id"].dtype)
    out = validate_assignments(table.assign(user_id=[3.0, 1.0, 2.0, 4.0]))
    assert out["user_id"].dtype == "int64"


def test_required_columns_and_empty_table(table):
    with pytest.raises(DataValidationError, match="2 problem") as err:
        validate_assignments(table.drop(columns=["variant", "assigned_at"]))
    text = str(err.value)
    assert "column 'variant': expected a required column" in text
    assert "add or rename a column to 'assigned_at'" in text
    with pytest.raises(DataValidationError, match="at least one row"):
        validate_assignments(table.iloc[:0])


def test_missing_and_blank_ids(table):
    bad = table.assign(user_id=pd.Series(["a", "", "nan", None], dtype=object))
    with pytest.raises(
        DataValidationError,
        match=r"'user_id': expected no missing ids.*3 row\(s\).*row 1 \(''\), row 2 \('nan'\), "
        r"row 3 \(None\)\. Fix: drop the rows with a missing 'user_id'",
    ):
        validate_assignments(bad)


def test_ids_of_mixed_types(table):
    bad = table.assign(user_id=pd.Series([1, "2", 3, 4], dtype=object))
    with pytest.raises(
        DataValidationError,
        match=r"ids of one type \(most are int.*row 1 \('2'\)\. Fix: cast the column",
    ):
        validate_assignments(bad)


def test_blank_ids_do_not_make_mixed_types(table):
    bad = table.assign(user_id=pd.Series([1, "", 3, 4], dtype=object))
    with pytest.raises(DataValidationError, match="1 problem") as err:
        validate_assignments(bad)
    assert "no missing ids" in str(err.value)


def test_variant_names(table):
    bad = table.assign(variant=pd.Series(["treatment", None, " ", 1], dtype=object))
    with pytest.raises(DataValidationError) as err:
        validate_assignments(bad)
    text = str(err.value)
    assert re.search(r"no missing or empty variant names; 2 row\(s\).*row 1 \(None\), row 2", text)
    assert re.search(
        r"variant names as strings; 1 row\(s\).*row 3 \(1\)\. Fix: name the arms", text
    )


def test_variant_names_differing_in_case(table):
    bad = table.assign(variant=["treatment", "control", "Control ", "treatment"])
    with pytest.raises(
        DataValidationError,
        match=r"differ in more than case or spaces \(found 'Control ' vs 'control'\).*Fix: "
        r"normalise the names",
    ):
        validate_assignments(bad)


def test_mixed_time_formats_are_refused(table):
    bad = table.assign(assigned_at=["2024-01-02", "01/03/2024", "2024-01-02 10:00", "3 Jan 2024"])
    with pytest.raises(DataValidationError, match="1 problem") as err:
        validate_assignments(bad)
    text = str(err.value)
    assert re.search(r"ISO-8601 strings .*2 row\(s\).*row 1 \('01/03/2024'\), row 3", text)
    assert "pd.to_datetime(df['assigned_at'], format=...)" in text
    assert "no missing values" not in text  # reported once, not also as missing


def test_missing_and_numeric_times(table):
    with pytest.raises(
        DataValidationError, match=r"'assigned_at': expected no missing values; 1 row.*row 2"
    ):
        validate_assignments(
            table.assign(assigned_at=["2024-01-02", "2024-01-03", None, "2024-01-04"])
        )
    with pytest.raises(DataValidationError, match=r"not numbers .*Fix: convert epoch numbers"):
        validate_assignments(table.assign(assigned_at=[1.7e9] * 4))


def test_assignments_at_or_after_observation_end(table):
    with pytest.raises(
        DataValidationError,
        match=r"assignments before observation_end \(2024-01-02 10:00:00\); 2 row\(s\).*"
        r"row 0 \('2024-01-02 10:00'\), row 3 \('2024-01-03'\)\. Fix: users assigned at or after",
    ):
        validate_assignments(table, observation_end="2024-01-02 10:00")
    validate_assignments(table, observation_end="2024-01-03 00:00:01")


def test_declared_variants(table):
    with pytest.raises(DataValidationError, match="2 problem") as err:
        validate_assignments(table, variants=["control", "treatment_b"])
    text = str(err.value)
    assert re.search(
        r"one of the declared variants \['control', 'treatment_b'\]; 2 row\(s\).*row 0 "
        r"\('treatment'\), row 3 \('treatment'\)\. Fix: correct the variant names",
        text,
    )
    assert "users in every declared variant; none in ['treatment_b']" in text


def test_control_must_be_present(table):
    with pytest.raises(
        DataValidationError,
        match=r"the control variant 'ctrl' among the variants present \['control', 'treatment'\]"
        r"\. Fix: pass the right control=",
    ):
        validate_assignments(table, control="ctrl")


def test_repeated_assignment_and_two_variants(table):
    bad = pd.concat(
        [table, table.iloc[[1]], table.iloc[[0]].assign(variant="control")], ignore_index=True
    )
    with pytest.raises(DataValidationError, match="2 problem") as err:
        validate_assignments(bad)
    text = str(err.value)
    assert re.search(
        r"one row per user \(no repeated assignments\); 1 row\(s\).*row 4 \(\(1, 'control'\)\)"
        r"\. Fix: drop the repeated rows",
        text,
    )
    assert re.search(
        r"one variant per user; 1 user\(s\) were assigned to two or more variants: 3; 2 row\(s\)"
        r".*row 0 \(\(3, 'treatment'\)\), row 5 \(\(3, 'control'\)\)",
        text,
    )


def test_experiment_id_scopes_uniqueness(table):
    two = pd.concat(
        [table.assign(experiment_id="e1"), table.assign(experiment_id="e2", variant="control")],
        ignore_index=True,
    )
    out = validate_assignments(two)
    assert out[["experiment_id", "user_id"]].values.tolist()[:2] == [["e1", 1], ["e1", 2]]
    bad = pd.concat([two, two.iloc[[0]].assign(variant="control")], ignore_index=True)
    with pytest.raises(
        DataValidationError,
        match=r"'experiment_id/user_id': expected one variant per user; 1 user\(s\) .*"
        r"\('e1', 3\)",
    ):
        validate_assignments(bad)
    with pytest.raises(DataValidationError, match=r"'experiment_id': expected no missing ids"):
        validate_assignments(two.assign(experiment_id=[None] + ["e1"] * 7))


def test_every_problem_is_collected(table):
    bad = table.assign(
        user_id=[1, 1, None, 4],
        variant=["a", "b", "c", ""],
        assigned_at=["x", None, "2024", "2024"],
    )
    with pytest.raises(DataValidationError, match="5 problem"):
        validate_assignments(bad)


def test_parameter_errors(table):
    with pytest.raises(TypeError, match="'assignments' parameter .* DataFrame. Got list"):
        validate_assignments([1, 2])
    with pytest.raises(ValueError, match=r"'variants' parameter .* distinct variant names"):
        validate_assignments(table, variants="control")
    with pytest.raises(ValueError, match=r"'variants' parameter .* Got \['a', 'a'\]"):
        validate_assignments(table, variants=["a", "a"])
    with pytest.raises(
        ValueError, match=r"'control' parameter .* one of the variants \['a', 'b'\]"
    ):
        validate_assignments(table, variants=["a", "b"], control="c")
    with pytest.raises(ValueError, match=r"'control' parameter .* non-empty string\)\. Got 1"):
        validate_assignments(table, control=1)
    with pytest.raises(ValueError, match="'observation_end' parameter must be a timestamp"):
        validate_assignments(table, observation_end="soon")


def test_row_order_does_not_matter(table):
    expected = validate_assignments(table)
    shuffled = table.iloc[[2, 0, 3, 1]]
    pd.testing.assert_frame_equal(validate_assignments(shuffled), expected)
