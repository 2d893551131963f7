"""A real server of a model trained on a generated table with its own params: labels typed as
the target column holds them, binary /explain, and slow clients timed out as their error."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from generated_project import write_project

from live_server import Home, Server, packaged_home, start_server, wait_ready
from mlgitops.contract.check import load_valid_table
from mlgitops.estimators import ESTIMATOR_TASKS
from mlgitops.params import load_params
from mlgitops.serving.schema import class_values

pytestmark = pytest.mark.slow

# Short, so the test waits seconds; the defaults (serve params) are longer.
TIMEOUTS = {"body_timeout_s": 2.0, "header_timeout_s": 2.0}
# How long the slow clients keep trickling at most: far beyond the timeouts above, far below
# BentoML's 60 s request timeout, so only the service's own timeouts can end the request.
TRICKLE_S = 30.0
# Each target dtype with another classifier, so every classifier of the estimator registry
# answers /explain for a binary target on a real server (the one-column SHAP case among them).
TARGETS = {
    "int": {"name": "logistic_regression"},
    "bool": {"name": "hist_gradient_boosting", "max_iter": 20},
    "category": {"name": "random_forest", "n_estimators": 20},
}


@pytest.fixture(scope="module", params=list(TARGETS))
def generated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, seed: int
) -> Iterator[tuple[Home, Server, Path]]:
    """A binary classifier of a generated table (int, bool or numeric-looking text target,
    each with another estimator), packaged and served from source with short body and header
    timeouts."""
    folder = tmp_path_factory.mktemp(f"generated-{request.param}")
    project = write_project(
        folder / "project",
        seed=seed + list(TARGETS).index(request.param),
        target_dtype=request.param,
        estimator=TARGETS[request.param],
        serve=TIMEOUTS,
    )
    home = packaged_home(folder / "home", project)
    server = start_server(home)
    wait_ready(server)
    try:
        yield home, server, project
    finally:
        server.stop()


def _client(home: Home, server: Server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {home.keys[0]}"}, timeout=60
    )


def test_labels_are_typed_as_the_target_and_binary_explain_answers_every_class(generated):
    # Given a binary model of a target typed int, bool or text, when every test row is
    # predicted and explained, then each prediction is a class typed as the target holds it,
    # /explain answers 200 for records of both classes and explains the predicted class, and
    # /feedback accepts the predicted label as /predict returned it (label 0 of an int target).
    home, server, project = generated
    params = load_params(project / "params.yaml")
    rows = load_valid_table(project / "artifacts" / "test.csv", params.contract)
    records = json.loads(rows[list(params.contract.features)].to_json(orient="records"))
    with _client(home, server) as client:
        answers = client.post("/predict", json={"records": records})
        assert answers.status_code == 200, answers.text[:500]
        classes = list(answers.json()[0]["probabilities"])
        values = class_values(params.contract, classes)
        predicted = [answer["prediction"] for answer in answers.json()]
        assert {type(value) for value in predicted} == {type(values[0])}, (
            f"predictions {set(predicted)} not typed as the target ({params.contract.columns})"
        )
        assert set(predicted) == set(values), f"not every class is predicted: {set(predicted)}"
        explained = client.post("/explain", json={"records": records[:50]})
        assert explained.status_code == 200, explained.text[:500]
        for answer, prediction in zip(explained.json(), predicted[:50], strict=True):
            assert answer["prediction"] == prediction, "/explain predicts unlike /predict"
            assert answer["explained_output"] == prediction, (
                "/explain explains another class than the predicted one"
            )
            assert type(answer["explained_output"]) is type(prediction), (
                "the explained class is not typed as the target"
            )
        for answer in answers.json()[:5]:
            body = {"prediction_id": answer["request_id"], "label": answer["prediction"]}
            response = client.post("/feedback", json=body)
            assert response.status_code == 200, f"{body['label']!r}: {response.text[:300]}"


def _server_errors(text: str, endpoint: str) -> float:
    """How many requests to `endpoint` BentoML counted with a 5xx status."""
    # Imported here: prometheus_client fixes its multiprocess mode when first imported, and
    # the service tier sets that mode up after this module is collected.
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "bentoml_service_request_total"
        and sample.labels.get("endpoint") == endpoint
        and sample.labels.get("http_response_code", "").startswith("5")
    )


def _trickle(server: Server, head: bytes, trickled: bytes) -> bytes:
    """Send `head` at once, then `trickled` one byte every 0.5 s until the server answers or
    closes (or `TRICKLE_S` passes); everything the server sent."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TRICKLE_S) as connection:
        connection.sendall(head)
        connection.settimeout(0.5)
        deadline = time.monotonic() + TRICKLE_S
        received = b""
        for byte in trickled:
            if time.monotonic() > deadline:
                break
            try:
                connection.sendall(bytes([byte]))
                chunk = connection.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
        connection.settimeout(5)
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def test_slow_body_gets_408_and_is_no_server_error(generated):
    # Given a client that sends its headers, then its /predict body one byte every 0.5 s,
    # then the server answers 408 in the documented error shape (the client's error, before
    # BentoML's request timeout would answer 504), and /metrics counts no /predict 5xx.
    home, server, _ = generated
    body = json.dumps({"records": [{}]}).encode() + b" " * 200
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {home.keys[0]}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    received = _trickle(server, head, body)
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), f"expected 408, got {received[:300]!r}"
    payload = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert payload["detail"][0]["type"] == "timeout", f"not the documented shape: {payload}"
    with _client(home, server) as client:
        metrics = client.get("/metrics").text
    assert _server_errors(metrics, "/predict") == 0, "the slow client counted as a server error"
    assert "bentoml_service_request_total" in metrics, "no request metrics to judge by"


@pytest.mark.parametrize("started", [True, False], ids=["trickled-headers", "silent"])
def test_slow_headers_are_closed_with_408(generated, started):
    # Given a client that starts a request and trickles its headers one byte every 0.5 s (or
    # opens a connection and sends nothing), then the server answers 408 and closes the
    # connection well before the client would have finished.
    home, server, _ = generated
    if started:
        received = _trickle(server, b"POST /predict HTTP/1.1\r\n", b"X-Slow: " + b"a" * 60)
    else:
        received = _trickle(server, b"", b"")
    assert received.startswith(b"HTTP/1.1 408"), f"expected 408, got {received[:300]!r}"
    assert b"connection: close" in received.lower(), "the 408 does not close the connection"
    with _client(home, server) as client:
        assert client.get("/readyz").status_code == 200, "the server stopped answering"


def test_every_classifier_of_the_registry_is_served():
    # Given the estimator registry, then the generated servers above cover each classifier.
    classifiers = {name for name, tasks in ESTIMATOR_TASKS.items() if "classification" in tasks}
    served = {estimator["name"] for estimator in TARGETS.values()}
    assert served == classifiers, f"classifiers not served: {sorted(classifiers - served)}"
