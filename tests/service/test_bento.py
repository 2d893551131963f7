"""A real `bentoml build` of the bento, served by `mlgitops serve` on a free loopback port."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path

import httpx
import pytest
import yaml
from bad_input import API_KEYS, BAD_INPUT_CASES, check_refusal, send

from live_server import Home, build_bento, packaged_home, start_server, wait_ready
from mlgitops.layout import data_md5, locked_md5

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 90
BENTOML_DEFAULT_KEEP_ALIVE_S = 5


@dataclass(frozen=True)
class LiveServer:
    url: str
    bento_tag: str
    log: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, trained_project: Path) -> Iterator[LiveServer]:
    """`mlgitops package`, `bentoml build` and `mlgitops serve` of the bento, in a fresh home."""
    home = packaged_home(tmp_path_factory.mktemp("live"), trained_project, keys=API_KEYS)
    tag = build_bento(home)
    server = start_server(home, tag)
    try:
        wait_ready(server)
        yield LiveServer(url=server.url, bento_tag=tag, log=server.log)
    finally:
        server.stop()


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def live_example(packaged) -> dict:
    return dict(packaged.info.metadata["example"])


def test_served_bento_predicts_and_explains(http, auth, live_example):
    response = http.post("/predict", json={"records": [live_example]}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()[0]["probabilities"], "no probabilities"
    response = http.post("/explain", json={"records": [live_example]}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()[0]["contributions"], "no contributions"


def test_served_bento_refuses_each_bad_input_class(http, auth, live_example, params):
    # Given the real server, when each class of bad input is sent, then each gets its 4xx
    # with a JSON body naming the field.
    for case in BAD_INPUT_CASES:
        response = send(http, case, example=live_example, params=params, headers=auth)
        check_refusal(response, case, params)


def test_served_bento_requires_a_key_except_for_probes(http, live_example):
    response = http.post("/predict", json={"records": [live_example]})
    assert response.status_code == 401, response.text
    assert http.get("/metadata").status_code == 401, "/metadata is open"
    for probe in ("/livez", "/readyz", "/metrics"):
        assert http.get(probe).status_code == 200, f"{probe} needs a key"


def test_served_metadata_hashes_equal_the_lock(http, auth, live, trained_project):
    # Given the served bento, then /metadata reports the md5s that dvc.lock and data.dvc
    # record, the commit packaged and the bento that was built.
    meta = http.get("/metadata", headers=auth).json()
    lock = yaml.safe_load((trained_project / "dvc.lock").read_text())
    assert meta["model_md5"] == locked_md5(lock, "artifacts/model.joblib"), "model md5"
    pointer = yaml.safe_load((trained_project / "data.dvc").read_text())
    assert meta["data_md5"] == data_md5(pointer), "data md5"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=trained_project, capture_output=True, text=True
    ).stdout.strip()
    assert meta["git_commit"] == head, "commit"
    assert meta["bento_tag"] == live.bento_tag, "bento tag"
    assert meta["build_time"], "no build time"


def test_served_metrics_scrape(http, auth, live_example):
    # Given traffic (a prediction, a refusal, an unknown path), when /metrics is scraped,
    # then BentoML's request metrics and the service's own are there, and the unknown
    # path is not a series.
    assert http.post("/predict", json={"records": [live_example]}, headers=auth).status_code == 200
    first = next(iter(live_example))
    partial = {k: v for k, v in live_example.items() if k != first}
    assert http.post("/predict", json={"records": [partial]}, headers=auth).status_code == 400
    unknown = f"/made-up-{uuid.uuid4().hex}"
    assert http.get(unknown, headers=auth).status_code == 404, "unknown path is not 404"
    text = http.get("/metrics").text
    assert 'endpoint="/predict"' in text, "BentoML's request metrics are missing"
    assert "mlgitops_model_info{" in text, "no model_info gauge"
    assert "mlgitops_predictions_total{" in text, "no predictions by class"
    assert f'field="{first}"' in text, "no rejection by field"
    assert unknown not in text, "an unknown path became a series"


def test_idle_connection_outlives_bentomls_default_keep_alive(live):
    # Given a keep-alive connection left idle longer than BentoML's default keep-alive (5 s,
    # also httpx's idle expiry), when it is reused, then the server still answers on it.
    # (Regression: the soak's resets, where the server closed a connection as the client
    # reused it.)
    host, port = live.url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=10)
    try:
        for pause in (0, BENTOML_DEFAULT_KEEP_ALIVE_S + 2):
            time.sleep(pause)
            connection.request("GET", "/readyz")
            response = connection.getresponse()
            response.read()
            assert response.status == 200, f"after {pause} s idle: {response.status}"
            assert not response.will_close, "the server asked to close the connection"
    finally:
        connection.close()


def test_server_without_a_model_says_how_to_build_it(tmp_path):
    # Given an empty model store, when the service is served, then it stops with a message
    # naming the commands that build and package the model.
    server = start_server(Home(root=tmp_path))
    try:
        exit_code = server.process.wait(timeout=STARTUP_SECONDS)
    finally:
        server.stop()
    log = server.log.read_text()
    assert exit_code != 0, "the server started without a model"
    assert "make repro && mlgitops package" in log, log[-2000:]
