"""Labels typed from the contract's target, and error bodies in one bounded shape."""

from __future__ import annotations

import json
import logging

import pytest
from bentoml.exceptions import InternalServerError, InvalidArgument
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlgitops.contract import ContractParams
from mlgitops.serving.guards import (
    MAX_ERROR_DETAILS,
    MAX_ERROR_TEXT,
    MAX_LOC_PARTS,
    UNKNOWN_NAME,
    ClientErrorLogFilter,
    conforming_error,
)
from mlgitops.serving.schema import class_values, feedback_model

ID = "0123456789abcdef0123456789abcdef"


def _contract(target: dict) -> ContractParams:
    return ContractParams.model_validate(
        {
            "task": "regression" if target["dtype"] == "float" else "classification",
            "columns": {"x": {"dtype": "float"}, "y": {"role": "target", **target}},
        }
    )


@st.composite
def targets(draw):
    """A classification target of any dtype and the model's classes as stored (text)."""
    dtype = draw(st.sampled_from(["int", "bool", "category"]))
    if dtype == "int":
        values = draw(st.lists(st.integers(-1000, 1000), min_size=2, max_size=8, unique=True))
        return {"dtype": "int"}, [str(v) for v in values]
    if dtype == "bool":
        return {"dtype": "bool"}, ["False", "True"]
    text = st.text(min_size=0, max_size=12) | st.integers(0, 99).map(lambda n: f"{n:02d}")
    names = draw(st.lists(text, min_size=2, max_size=8, unique=True))
    return {"dtype": "category", "categories": names}, names


@settings(max_examples=60, deadline=None)
@given(target=targets(), data=st.data())
def test_feedback_accepts_each_class_as_the_data_holds_it_and_nothing_else(target, data):
    # Given any classification target and its classes, then /feedback's model accepts every
    # class typed as the target column holds it, and refuses a value of another JSON type or
    # a value that is no class, without the value in the error.
    spec, classes = target
    model = feedback_model(_contract(spec), classes)
    values = class_values(_contract(spec), classes)
    for value in values:
        parsed = model.model_validate_json(json.dumps({"prediction_id": ID, "label": value}))
        assert parsed.label == value, f"{value!r} parsed as {parsed.label!r}"
        assert type(parsed.label) is type(value), f"{value!r} parsed as another type"
    refused = data.draw(
        st.one_of(
            st.none(),
            st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != int(v)),
            st.text().filter(lambda v: v not in values),
            st.integers().filter(lambda v: v not in values or isinstance(values[0], bool)),
            st.booleans().filter(lambda _: not isinstance(values[0], bool)),
        ).filter(lambda v: not (type(v) is type(values[0]) and v in values))
    )
    with pytest.raises(ValidationError) as error:
        model.model_validate_json(json.dumps({"prediction_id": ID, "label": refused}))
    assert [item["loc"] for item in error.value.errors()] == [("label",)], "not about the label"
    if isinstance(refused, str) and len(refused) > 3:
        assert refused not in str(error.value), "the error echoes the label sent"


def test_a_regression_label_is_a_finite_number():
    # Given a regression target, then a number is accepted and text, booleans, null refused.
    model = feedback_model(_contract({"dtype": "float"}), [])
    assert model.model_validate_json(json.dumps({"prediction_id": ID, "label": 3})).label == 3.0
    for label in ("1.5", True, None, "NaN"):
        with pytest.raises(ValidationError):
            model.model_validate_json(json.dumps({"prediction_id": ID, "label": label}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=400),
    lambda children: st.lists(children, max_size=30) | st.dictionaries(st.text(), children),
    max_leaves=40,
)


@settings(max_examples=100, deadline=None)
@given(
    payload=json_values
    | st.fixed_dictionaries(
        {"error": st.text(max_size=5000)},
        optional={
            "detail": st.lists(
                st.dictionaries(st.sampled_from(["loc", "msg", "type"]), json_values), max_size=60
            )
        },
    ),
    status=st.sampled_from([400, 404, 408, 413, 500, 503]),
)
def test_any_error_body_becomes_the_documented_bounded_shape(payload, status):
    # Given any JSON an error response could carry, then it becomes `{"error", "detail":
    # [{loc, msg, type}]}` with at most MAX_ERROR_DETAILS (+1 summary) items, texts capped,
    # and only known names (or list indexes) in `loc`.
    known = frozenset({"records", "label"})
    body = conforming_error(payload, status=status, known_names=known)
    assert isinstance(body["error"], str), body
    assert len(body["error"]) <= MAX_ERROR_TEXT, "error text not capped"
    assert 1 <= len(body["detail"]) <= MAX_ERROR_DETAILS + 1, "detail not bounded"
    for item in body["detail"]:
        assert set(item) == {"loc", "msg", "type"}, item
        assert len(item["msg"]) <= MAX_ERROR_TEXT, "msg not capped"
        assert len(item["type"]) <= MAX_ERROR_TEXT, "type not capped"
        assert len(item["loc"]) <= MAX_LOC_PARTS, "loc not bounded"
        for part in item["loc"]:
            assert (type(part) is int) or part in known | {UNKNOWN_NAME}, f"loc part {part!r}"


def _record(error: Exception | None) -> logging.LogRecord:
    record = logging.LogRecord(
        "bentoml._internal.server.http_app",
        logging.ERROR,
        __file__,
        1,
        "Exception on %s [%s]",
        ("/feedback", "POST"),
        (type(error), error, None) if error else None,
    )
    return record


def test_client_errors_become_one_warning_line_and_server_errors_keep_the_traceback():
    # Given BentoML's log records of caught exceptions, then a validation error or a 4xx
    # BentoML exception becomes a WARNING without exc_info naming status and route; a 5xx or
    # any other exception stays an ERROR with its traceback.
    secret = "hostile-value-3c1e"
    try:
        feedback_model(_contract({"dtype": "float"}), []).model_validate({"label": secret})
    except ValidationError as error:
        validation = error
    for error, status in ((validation, 400), (InvalidArgument(secret), 400)):
        record = _record(error)
        assert ClientErrorLogFilter().filter(record), "the record was dropped"
        assert record.levelno == logging.WARNING, f"{type(error).__name__} not a warning"
        assert record.exc_info is None, "a client error keeps its traceback"
        message = record.getMessage()
        assert str(status) in message, message
        assert "/feedback" in message, message
        assert secret not in message, "the line echoes what was sent"
    for error in (InternalServerError("boom"), RuntimeError("boom")):
        record = _record(error)
        assert ClientErrorLogFilter().filter(record), "the record was dropped"
        assert record.levelno == logging.ERROR, "a server error lost its level"
        assert record.exc_info is not None, "a server error lost its traceback"
