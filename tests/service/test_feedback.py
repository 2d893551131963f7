"""`POST /feedback`: ground truth by prediction id, appended durably beside the prediction log."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from mlgitops.monitor.logs import feedback_path


def _feedback_lines(serving_env: Path) -> list[dict]:
    path = feedback_path(serving_env / "predictions")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_feedback_for_a_known_prediction_is_recorded(client, auth, example, serving_env):
    # Given a prediction, when its true class is posted to /feedback, then it is answered 200
    # and appended to the feedback log with the id, the label and a timestamp.
    answer = client.post("/predict", json={"records": [example]}, headers=auth).json()[0]
    body = {"prediction_id": answer["request_id"], "label": answer["prediction"]}
    response = client.post("/feedback", json=body, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["prediction_id"] == answer["request_id"], "receipt names another id"
    recorded = [
        r for r in _feedback_lines(serving_env) if r["prediction_id"] == body["prediction_id"]
    ]
    assert len(recorded) == 1, f"expected one feedback line, found {recorded}"
    assert recorded[0]["label"] == answer["prediction"], "label differs"
    assert recorded[0]["timestamp"], "no timestamp"


def test_feedback_for_an_unknown_id_is_404_and_not_recorded(
    client, auth, serving_env, service_module
):
    # Given an id /predict never returned, when feedback is posted, then 404 says so and
    # nothing is appended.
    unknown = uuid.uuid4().hex
    before = len(_feedback_lines(serving_env))
    label = service_module.PACKAGED.classes[0]
    response = client.post(
        "/feedback", json={"prediction_id": unknown, "label": label}, headers=auth
    )
    assert response.status_code == 404, f"{response.status_code}: {response.text}"
    assert "no prediction with id" in response.text, f"unclear message: {response.text}"
    assert len(_feedback_lines(serving_env)) == before, "feedback for an unknown id was kept"


def test_feedback_for_a_known_id_with_an_unknown_class_is_400(client, auth, example):
    # Given a real prediction, when feedback names a class the model does not know, then 400.
    answer = client.post("/predict", json={"records": [example]}, headers=auth).json()[0]
    response = client.post(
        "/feedback",
        json={"prediction_id": answer["request_id"], "label": "Emperor penguin"},
        headers=auth,
    )
    assert response.status_code == 400, f"{response.status_code}: {response.text}"
    assert "classes" in response.text, f"unclear message: {response.text}"


def test_feedback_with_a_malformed_id_or_no_key_is_refused(client, auth):
    # Given an id that is not 32 hex digits, then 400; given no API key, then 401.
    bad = client.post("/feedback", json={"prediction_id": "../etc", "label": "x"}, headers=auth)
    assert bad.status_code == 400, f"{bad.status_code}: {bad.text}"
    anonymous = client.post("/feedback", json={"prediction_id": "a" * 32, "label": "x"})
    assert anonymous.status_code == 401, f"{anonymous.status_code}: {anonymous.text}"
