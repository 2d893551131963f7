"""Drive one adopted project's real BentoML service in a process of its own.

`python service_check.py PROJECT OUTPUT.json`: packages PROJECT's model into the BentoML home
of the environment, builds the service's ASGI app and calls it over HTTP (Starlette's test
client): /predict on every held-out row (typed by the contract, as simulate-traffic sends
them), /explain, /feedback with each row's true label, /metadata, and bad requests. Writes
what it saw as JSON. A process per project, because BentoML fixes its model store, the
service's model and its Prometheus registry once per process.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

API_KEY = "adoption-key"


def check(project: Path) -> dict[str, Any]:
    """Every endpoint's status codes and answers for the project's held-out rows."""
    from mlgitops.contract.check import feature_frame, load_valid_table
    from mlgitops.monitor.traffic import draw_rows, to_records
    from mlgitops.params import load_params
    from mlgitops.serving.package import MODEL_TAG_ENV, package, workspace_model_tag

    params = load_params(project / "params.yaml")
    contract = params.contract
    package(project)
    # As `mlgitops serve` does from source: the service serves the model dvc.lock pins.
    os.environ[MODEL_TAG_ENV] = workspace_model_tag(project)
    import mlgitops.serving.service as service

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    test = load_valid_table(project / "artifacts" / "test.csv", contract)
    # The rows simulate-traffic would send, each with its true label for /feedback.
    rows = draw_rows(test, count=len(test), seed=params.seed)
    records = to_records(feature_frame(rows, contract))
    labels = to_records(rows[[contract.target]])
    auth = {"Authorization": f"Bearer {API_KEY}"}
    seen: dict[str, Any] = {"records": len(records)}
    with TestClient(service.MlgitopsService.to_asgi(), raise_server_exceptions=False) as client:
        answer = client.post("/predict", json={"records": records}, headers=auth)
        seen["predict"] = answer.status_code
        predictions = answer.json() if answer.status_code == 200 else []
        seen["predict_body"] = None if predictions else answer.text[:500]
        seen["predictions"] = [p["prediction"] for p in predictions]
        explained = client.post("/explain", json={"records": records[:3]}, headers=auth)
        seen["explain"] = explained.status_code
        seen["explain_body"] = explained.json() if explained.status_code == 200 else explained.text
        feedback = []
        for prediction, label in zip(predictions, labels, strict=False):
            body = {"prediction_id": prediction["request_id"], "label": label[contract.target]}
            feedback.append(client.post("/feedback", json=body, headers=auth).status_code)
        seen["feedback"] = sorted(set(feedback))
        metadata = client.get("/metadata", headers=auth)
        seen["metadata"] = metadata.status_code
        seen["metadata_body"] = metadata.json() if metadata.status_code == 200 else None
        unknown = {**records[0], "not a column of the contract": 1}
        seen["bad_record"] = client.post(
            "/predict", json={"records": [unknown]}, headers=auth
        ).status_code
        wrong_label = {"prediction_id": predictions[0]["request_id"], "label": [1, 2]}
        seen["bad_feedback"] = client.post("/feedback", json=wrong_label, headers=auth).status_code
        seen["no_key"] = client.post("/predict", json={"records": records[:1]}).status_code
    return seen


if __name__ == "__main__":
    project, output = Path(sys.argv[1]), Path(sys.argv[2])
    output.write_text(json.dumps(check(project), default=str), encoding="utf-8")
