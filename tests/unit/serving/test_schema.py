"""Request models derived from the contract: accepted columns, refusals by field."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from mlgitops.contract.check import load_valid_table
from mlgitops.serving.schema import (
    RECORDS_FIELD,
    UNKNOWN_FIELD,
    record_model,
    request_model,
)


@pytest.fixture(scope="module")
def record(params):
    return record_model(params.contract)


@pytest.fixture
def refusals():
    """Every (endpoint, field) the request model reports, in order."""
    return []


@pytest.fixture
def request_type(record, refusals):
    return request_model(
        "TestRequest",
        record,
        max_records=3,
        endpoint="predict",
        hook=lambda endpoint, field: refusals.append((endpoint, field)),
    )


@pytest.fixture(scope="module")
def row(params, raw_data_path):
    """One complete row of the raw table, as JSON: every contract column."""
    frame = load_valid_table(raw_data_path, params.contract).dropna()
    assert set(params.contract.columns) <= set(frame.columns), "a contract column is missing"
    return json.loads(frame.iloc[[0]].to_json(orient="records", date_format="iso"))[0]


def feature_values(row, params):
    return {name: row[name] for name in params.contract.features}


def test_other_contract_columns_are_accepted_and_never_dumped(request_type, row, params):
    # Given a whole row of the table (identifier, free text and target included), when
    # validated, then it is accepted and the record's features are exactly the contract's
    # features: nothing else reaches the model or a log line.
    others = set(params.contract.columns) - set(params.contract.features)
    assert others, "the contract has no column besides its features"
    body = request_type.model_validate_json(json.dumps({"records": [row]}))
    (record,) = body.records
    assert set(record.features()) == set(params.contract.features), record.features()
    assert not others & set(record.model_dump(by_alias=True)), "another column was dumped"


def test_refusals_are_reported_once_per_field(request_type, refusals, row, params):
    # Given a body with a wrong type in one feature (in two records) and a name the
    # contract does not know, when validated, then it fails and the hook hears each field
    # once: the feature by name, the unknown name as one fixed label.
    feature = next(
        name for name in params.contract.features if params.contract.columns[name].dtype == "float"
    )
    good = feature_values(row, params)
    bad = {**good, feature: "not a number"}
    body = {"records": [bad, bad, {**good, "no such column": 1}]}
    with pytest.raises(ValidationError):
        request_type.model_validate_json(json.dumps(body))
    assert sorted(refusals) == sorted([("predict", feature), ("predict", UNKNOWN_FIELD)])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"records": []}, RECORDS_FIELD),
        ({"records": [1, 2, 3, 4]}, RECORDS_FIELD),
        ({}, RECORDS_FIELD),
        ({"records": [{}], "extra": True}, UNKNOWN_FIELD),
        ("not json", RECORDS_FIELD),
    ],
    ids=["empty", "too-many", "no-records", "extra-key", "not-json"],
)
def test_refusals_of_the_body_itself_have_fixed_labels(request_type, refusals, body, expected):
    # Given a body that is wrong as a whole, when validated, then the reported field is one
    # of the fixed labels (so the metric's label set stays bounded).
    text = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(ValidationError):
        request_type.model_validate_json(text)
    assert ("predict", expected) in refusals, f"reported {refusals}"
    assert {field for _, field in refusals} <= {expected, RECORDS_FIELD, UNKNOWN_FIELD} | set(
        request_type.feature_names
    ), refusals
