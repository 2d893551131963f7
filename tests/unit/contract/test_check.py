"""The data contract: typing, violations with column, check and rows, and the summary."""

from __future__ import annotations

import pandas as pd
import pytest

from mlgitops.contract import ContractParams
from mlgitops.contract.check import (
    ContractViolation,
    check_table,
    load_valid_table,
    read_table,
    violation_message,
)

CONTRACT = ContractParams.model_validate(
    {
        "task": "classification",
        "columns": {
            "id": {"dtype": "string", "role": "identifier", "unique": True},
            "size": {"dtype": "float", "min": 0, "max": 10, "nullable": True},
            "count": {"dtype": "int", "min": 0},
            "colour": {"dtype": "category", "categories": ["red", "blue"]},
            "flag": {"dtype": "bool", "nullable": True},
            "day": {"dtype": "date", "role": "ignored"},
            "label": {"dtype": "category", "role": "target", "categories": ["a", "b"]},
        },
    }
)


def table(**overrides: list) -> pd.DataFrame:
    data = {
        "id": ["x1", "x2", "x3"],
        "size": ["1.5", None, "9"],
        "count": ["1", "2", "3"],
        "colour": ["red", "blue", "red"],
        "flag": ["yes", "false", None],
        "day": ["2024-01-01", "2024-02-01", "2024-03-01"],
        "label": ["a", "b", "a"],
    }
    data.update(overrides)
    return pd.DataFrame(data, dtype=object)


def test_valid_table_is_typed():
    typed, report = check_table(table(), CONTRACT)
    assert report["valid"], report["failures"]
    assert typed["size"].dtype == "float64"
    assert str(typed["count"].dtype) == "Int64"
    assert typed["flag"].tolist()[:2] == [True, False], "yes/false words become booleans"
    assert str(typed["day"].dtype).startswith("datetime64")


@pytest.mark.parametrize(
    ("column", "values", "check", "bad_value", "row"),
    [
        ("size", ["1.5", "heavy", "2"], "coerce_dtype", "heavy", 3),
        ("size", ["1.5", "11", "2"], "less_than_or_equal_to(10", "11.0", 3),
        ("count", ["1", "-1", "2"], "greater_than_or_equal_to(0", "-1", 3),
        ("count", ["1", "2.5", "2"], "coerce_dtype", "2.5", 3),
        ("colour", ["red", "green", "red"], "isin", "green", 3),
        ("colour", ["red", None, "red"], "not_nullable", None, 3),
        ("id", ["x1", "x1", "x3"], "field_uniqueness", "x1", 2),
        ("day", ["2024-01-01", "someday", "2024-01-02"], "coerce_dtype", "someday", 3),
        ("flag", ["yes", "maybe", None], "coerce_dtype", "maybe", 3),
    ],
)
def test_violation_names_column_check_and_row(column, values, check, bad_value, row):
    # Given one bad column, when checked, then the report names it, the check and the CSV row.
    _, report = check_table(table(**{column: values}), CONTRACT)
    assert not report["valid"], "the table must be rejected"
    failures = [f for f in report["failures"] if f["column"] == column]
    assert failures, f"no failure reported for {column}: {report['failures']}"
    assert check in failures[0]["check"], f"expected check {check}, got {failures[0]['check']}"
    examples = failures[0]["examples"]
    assert {"row": row, "value": bad_value} in examples, f"offending row missing: {examples}"
    assert all(f["column"] == column for f in report["failures"]), "no knock-on failures"


def test_missing_and_unexpected_columns():
    frame = table().drop(columns=["colour"]).assign(extra="1")
    _, report = check_table(frame, CONTRACT)
    checks = {(f["column"], f["check"]) for f in report["failures"]}
    assert any("colour" in str(c) for c in checks), f"missing column not named: {checks}"
    assert any("extra" in str(c) for c in checks), f"unexpected column not named: {checks}"
    assert report["received_columns"][-1] == "extra"


def test_violation_message_reads_well():
    _, report = check_table(table(size=["1", "x", "2"]), CONTRACT)
    message = violation_message(report, "data/raw.csv")
    assert message.startswith("data/raw.csv violates the data contract (1 failed check(s))")
    assert "column 'size' failed coerce_dtype('float64') on 1 row(s) (row 3: 'x')" in message


def test_summary_has_null_rates_categories_and_ranges():
    _, report = check_table(table(), CONTRACT)
    assert report["rows"] == 3
    assert report["columns"]["size"]["null_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert report["columns"]["size"]["max"] == 9.0
    assert report["columns"]["colour"]["categories"] == {"blue": 1, "red": 2}


def test_load_valid_table_raises_with_report(tmp_path):
    path = tmp_path / "t.csv"
    table(count=["1", "two", "3"]).to_csv(path, index=False)
    with pytest.raises(ContractViolation, match="column 'count'") as error:
        load_valid_table(path, CONTRACT)
    assert error.value.report["valid"] is False


def test_reading_keeps_text_and_strips_spaces(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n 007 ,x\n,y\n")
    frame = read_table(path)
    assert frame["a"].tolist()[0] == "007", "leading zeros survive; spaces are stripped"
    assert pd.isna(frame["a"].tolist()[1])


def test_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data"):
        read_table(tmp_path / "raw.csv")


def test_table_level_failures_read_as_sentences():
    _, report = check_table(table().drop(columns=["colour"]), CONTRACT)
    message = violation_message(report, "x.csv")
    assert "column 'colour': required column is missing from the table" in message


def test_a_nullable_unique_column_is_unique_where_present():
    # Given a unique, nullable identifier with two blanks, then the table is valid and typed;
    # a repeated present value is a failure naming the column.
    contract = ContractParams.model_validate(
        {
            "task": "classification",
            "columns": {
                "id": {"dtype": "string", "role": "identifier", "unique": True, "nullable": True},
                "x": {"dtype": "float"},
                "y": {"dtype": "category", "role": "target", "categories": ["a", "b"]},
            },
        }
    )
    frame = pd.DataFrame(
        {"id": ["p", None, "q", None], "x": ["1.5", "2", "3", "4"], "y": ["a", "b", "a", "b"]},
        dtype=object,
    )
    typed, report = check_table(frame, contract)
    assert report["valid"], report["failures"]
    assert typed["x"].dtype == "float64", "the valid table was not typed"
    _, repeated = check_table(frame.assign(id=["p", None, "p", None]), contract)
    assert not repeated["valid"], "a repeated identifier passed"
    assert repeated["failures"][0]["column"] == "id", repeated["failures"]


# Rows sent for a prediction: the features only, checked as the service's request model does.
REQUEST_CONTRACT = ContractParams.model_validate(
    {
        "task": "classification",
        "columns": {
            "size": {"dtype": "float", "min": 0, "max": 10, "nullable": True},
            "weight": {"dtype": "float"},
            "count": {"dtype": "int", "min": 0, "unique": True},
            "colour": {"dtype": "category", "categories": ["red", "blue"]},
            "shade": {
                "dtype": "category",
                "categories": ["dark", "light"],
                "on_unknown": "map_to_unknown",
                "nullable": True,
            },
            "flag": {"dtype": "bool", "nullable": True},
            "label": {"dtype": "category", "role": "target", "categories": ["a", "b"]},
        },
    }
)


def request_rows(**overrides: list) -> pd.DataFrame:
    data = {
        "size": ["1.5", None, "9", "2"],
        "weight": ["-1e6", "0", "3.25", "7"],
        "count": ["1", "1", "3", "4"],  # a repeat: uniqueness is a table's, not a row's
        "colour": ["red", "blue", "red", "blue"],
        "shade": ["dark", "ultraviolet", None, "light"],  # an unknown shade is mapped, not refused
        "flag": ["yes", "false", None, "no"],
    }
    data.update(overrides)
    return pd.DataFrame(data, dtype=object)


def test_valid_request_rows_are_typed_without_target_or_other_columns():
    from mlgitops.contract.check import check_rows, request_schema

    rows = request_rows().assign(extra=["a", "b", "c", "d"])
    typed, rejected = check_rows(rows, request_schema(REQUEST_CONTRACT), REQUEST_CONTRACT)
    assert rejected.empty, rejected.to_dict("records")
    assert typed["size"].dtype == "float64"
    assert typed["flag"].tolist()[:2] == [True, False]


@pytest.mark.parametrize(
    ("column", "value", "check"),
    [
        ("size", "abc", "coerce_dtype"),
        ("size", "11", "less_than_or_equal_to"),
        ("weight", "inf", "values must be finite"),
        ("weight", "-inf", "values must be finite"),
        ("count", None, "not_nullable"),
        ("colour", "green", "isin"),
        ("flag", "perhaps", "coerce_dtype"),
    ],
)
def test_each_refused_row_names_its_column_and_check(column, value, check):
    from mlgitops.contract.check import check_rows, request_schema

    # Given one bad value in row 2 (a missing size elsewhere is no coercion failure)
    rows = request_rows()
    rows.loc[2, column] = value
    typed, rejected = check_rows(rows, request_schema(REQUEST_CONTRACT), REQUEST_CONTRACT)
    # Then only that row is refused, naming the column and the check, and the others are typed
    assert rejected["row"].tolist() == [2], rejected.to_dict("records")
    assert rejected["column"].tolist() == [column]
    assert rejected["check"].iloc[0].startswith(check), rejected["check"].iloc[0]
    assert typed.index.tolist() == [0, 1, 3]


def test_a_missing_feature_refuses_every_row():
    from mlgitops.contract.check import check_rows, request_schema

    rows = request_rows().drop(columns=["colour"])
    typed, rejected = check_rows(rows, request_schema(REQUEST_CONTRACT), REQUEST_CONTRACT)
    assert typed.empty
    assert rejected["row"].tolist() == [0, 1, 2, 3]
    assert set(rejected["column"]) == {"colour"}
