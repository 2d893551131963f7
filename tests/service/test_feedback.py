"""`POST /feedback`: ground truth by prediction id, appended durably beside the prediction log."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import jsonschema
import pytest

from mlgitops.prediction_log import feedback_path
from mlgitops.serving.schema import class_values

# Far below the 1.9 MB an echoed label once made, far above any honest error body.
MAX_ERROR_BODY = 16 * 1024


def _feedback_lines(serving_env: Path) -> list[dict]:
    path = feedback_path(serving_env / "predictions")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _check_error_shape(response, status: int, field: str) -> dict:
    """The documented error body: `{"error", "detail": [{loc, msg, type}]}` naming `field`."""
    assert response.status_code == status, f"{response.status_code}: {response.text[:300]}"
    body = response.json()
    assert isinstance(body, dict), f"not an object: {body}"
    assert isinstance(body.get("error"), str), f"no error: {body}"
    assert body.get("detail"), f"no detail: {body}"
    for item in body["detail"]:
        assert set(item) == {"loc", "msg", "type"}, f"detail item not {{loc, msg, type}}: {item}"
    assert any(field in item["loc"] for item in body["detail"]), f"'{field}' not named: {body}"
    return body


@pytest.fixture
def prediction(client, auth, example):
    """One fresh /predict answer."""
    response = client.post("/predict", json={"records": [example]}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()[0]


def test_feedback_for_a_known_prediction_is_recorded(client, auth, prediction, serving_env):
    # Given a prediction, when its predicted label is posted back as /feedback (as the response
    # typed it: an int, bool, text or number), then it is answered 200 and appended to the
    # feedback log with the id, the label (as the model's class text) and a timestamp.
    body = {"prediction_id": prediction["request_id"], "label": prediction["prediction"]}
    response = client.post("/feedback", json=body, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["prediction_id"] == prediction["request_id"], "receipt names another id"
    recorded = [
        r for r in _feedback_lines(serving_env) if r["prediction_id"] == body["prediction_id"]
    ]
    assert len(recorded) == 1, f"expected one feedback line, found {recorded}"
    assert str(recorded[0]["label"]) == str(prediction["prediction"]), "label differs"
    assert recorded[0]["timestamp"], "no timestamp"


def test_predictions_and_feedback_labels_are_typed_as_the_target(
    client, auth, prediction, service_module, params
):
    # Given the model's classes, then /predict answers one of them typed as the contract's
    # target column holds it (int, bool, text), and every class so typed is accepted by
    # /feedback's request model.
    packaged = service_module.PACKAGED
    if params.contract.task == "regression":
        assert isinstance(prediction["prediction"], float), f"not a number: {prediction}"
        return
    values = class_values(params.contract, packaged.classes)
    assert prediction["prediction"] in values, f"{prediction['prediction']!r} not in {values}"
    assert type(prediction["prediction"]) is type(values[0]), "prediction typed unlike target"
    for value in values:
        body = {"prediction_id": prediction["request_id"], "label": value}
        parsed = service_module.Feedback.model_validate_json(json.dumps(body))
        assert parsed.label == value, f"{value!r} refused"
        assert type(parsed.label) is type(value), f"{value!r} parsed as another type"


def test_feedback_for_an_unknown_id_is_404_and_not_recorded(client, auth, prediction, serving_env):
    # Given an id /predict never returned, when feedback is posted, then 404 in the documented
    # error shape names the field (not the id) and nothing is appended.
    unknown = uuid.uuid4().hex
    before = len(_feedback_lines(serving_env))
    body = {"prediction_id": unknown, "label": prediction["prediction"]}
    response = client.post("/feedback", json=body, headers=auth)
    body = _check_error_shape(response, 404, "prediction_id")
    assert "no prediction with this id" in body["error"], f"unclear message: {body}"
    assert unknown not in response.text, "the 404 echoes the id sent"
    assert len(_feedback_lines(serving_env)) == before, "feedback for an unknown id was kept"


def _not_a_label(params, classes: list[str]) -> list:
    """Labels of the target's JSON type that are no class, and values of other JSON types."""
    values = class_values(params.contract, classes) if classes else ()
    others: list = [{"class": 1}, [1], None]
    if params.contract.task == "regression":
        return [*others, "1.5", True]
    if isinstance(values[0], bool):
        return [*others, int(values[0]), str(values[0])]
    if isinstance(values[0], int):
        return [*others, max(values) + 1, float(values[0]), str(values[0]), True]
    return [*others, "", "".join(values) + "?", 0]


def test_feedback_with_a_label_that_is_no_class_is_400_in_the_documented_shape(
    client, auth, prediction, params, service_module, serving_env
):
    # Given a real prediction, when feedback sends a label that is not one of the classes as
    # the target holds them (another value, or the class as another JSON type), then 400 in
    # the documented shape names `label`, and nothing is recorded.
    before = len(_feedback_lines(serving_env))
    for label in _not_a_label(params, service_module.PACKAGED.classes):
        body = {"prediction_id": prediction["request_id"], "label": label}
        response = client.post("/feedback", json=body, headers=auth)
        _check_error_shape(response, 400, "label")
    assert len(_feedback_lines(serving_env)) == before, "a refused label was recorded"


def test_feedback_schema_publishes_the_label_it_accepts(
    client, auth, prediction, params, service_module
):
    # Given the published OpenAPI document, then /feedback's body schema accepts every class
    # as the target holds it and refuses what the service refuses (`{"label": ""}` for one),
    # so a client generating requests from the document is never surprised by a 400.
    document = client.get("/docs.json", headers=auth).json()
    body_schema = document["paths"]["/feedback"]["post"]["requestBody"]["content"]
    # The body's schema, with the document's components so that its `$ref`s resolve.
    schema = {**body_schema["application/json"]["schema"], "components": document["components"]}
    accepted = (
        class_values(params.contract, service_module.PACKAGED.classes)
        if params.contract.task == "classification"
        else (1.5, -3)
    )
    for label in accepted:
        jsonschema.validate({"prediction_id": prediction["request_id"], "label": label}, schema)
    for label in _not_a_label(params, service_module.PACKAGED.classes):
        body = {"prediction_id": prediction["request_id"], "label": label}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(body, schema)
        assert client.post("/feedback", json=body, headers=auth).status_code == 400, label


def test_feedback_with_a_malformed_id_or_no_key_is_refused(client, auth, prediction):
    # Given an id that is not 32 hex digits, then 400 naming it; given no API key, then 401.
    label = prediction["prediction"]
    bad = client.post("/feedback", json={"prediction_id": "../etc", "label": label}, headers=auth)
    _check_error_shape(bad, 400, "prediction_id")
    anonymous = client.post("/feedback", json={"prediction_id": "a" * 32, "label": label})
    _check_error_shape(anonymous, 401, "Authorization")


def test_hostile_values_reach_no_error_body_or_log_line(
    client, auth, prediction, example, params, caplog
):
    # Given values of almost the body limit (a label, a feature value, a made-up field name),
    # when sent, then each is refused with 400 whose body is small and holds no part of the
    # value, and the log has one WARNING line per refusal, no ERROR and no traceback.
    marker = f"hostile-{uuid.uuid4().hex}"
    size = params.serve.max_body_bytes // 2
    huge = (marker * (size // len(marker) + 1))[:size]
    feature = params.contract.features[0]
    requests = [
        ("/feedback", {"prediction_id": prediction["request_id"], "label": huge}),
        ("/predict", {"records": [{**example, feature: {"nested": huge}}]}),
        ("/predict", {"records": [{**example, huge: 1}]}),
        ("/explain", {"records": [{**example, huge[:5000]: huge[:5000]}] * 3}),
    ]
    caplog.set_level(logging.DEBUG)
    for path, body in requests:
        caplog.clear()
        response = client.post(path, json=body, headers=auth)
        assert response.status_code == 400, f"{path}: {response.status_code}"
        assert len(response.content) <= MAX_ERROR_BODY, f"{path}: {len(response.content)} bytes"
        assert marker not in response.text, f"{path}: the error body echoes what was sent"
        assert marker not in caplog.text, f"{path}: the log echoes what was sent"
        problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not problems, f"{path}: a client error logged at ERROR or with a traceback"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, f"{path}: expected one WARNING line, got {caplog.text[:500]}"
        assert "400" in warnings[0].getMessage(), f"{path}: the WARNING names no status"
        assert path in warnings[0].getMessage(), f"{path}: the WARNING names no route"
