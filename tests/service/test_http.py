"""The service over HTTP, through its ASGI app: good input, every bad-input class, auth, 404."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import schemathesis
import yaml
from bad_input import API_KEYS, BAD_INPUT_CASES, check_refusal, send

from mlgitops.serving.schema import Metadata, class_values


def metric_lines(text: str, name: str) -> list[str]:
    """The sample lines of one metric in a Prometheus text exposition."""
    return [line for line in text.splitlines() if line.startswith(name)]


def test_predict_answers_each_record(client, auth, example, service_module, params):
    # Given two records, when posted to /predict, then each gets a prediction, probabilities
    # over every class, its own request id and the model version.
    response = client.post("/predict", json={"records": [example, example]}, headers=auth)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert len(answers) == 2, f"expected 2 answers, got {len(answers)}"
    classes = service_module.PACKAGED.classes
    for answer in answers:
        if classes:
            typed = class_values(params.contract, classes)
            assert answer["prediction"] in typed, f"unknown class {answer['prediction']}"
        assert set(answer["probabilities"] or ()) == set(classes or ()), (
            "probabilities miss a class"
        )
        assert answer["model_version"] == service_module.PACKAGED.version, "model version"
    assert answers[0]["request_id"] != answers[1]["request_id"], "request ids repeat"


def test_explain_answers_top_contributions(client, auth, example, params):
    response = client.post("/explain", json={"records": [example]}, headers=auth)
    assert response.status_code == 200, response.text
    (answer,) = response.json()
    features = {*params.contract.features, *params.train.derived_features}
    expected = min(params.serve.explain_top_k, len(features))  # a small table has fewer
    assert len(answer["contributions"]) == expected, "wrong number of features"


@pytest.mark.parametrize("case", BAD_INPUT_CASES, ids=[c.name for c in BAD_INPUT_CASES])
def test_bad_input_gets_a_4xx_naming_the_field(client, auth, example, params, case):
    # Given a request with one kind of bad input, when sent, then the answer is the expected
    # 4xx (never a 500) with a JSON body whose detail names the field and the problem.
    response = send(client, case, example=example, params=params, headers=auth)
    check_refusal(response, case, params)


def test_unknown_category_is_accepted_where_the_contract_maps_it(client, auth, example, params):
    # Given a column whose on_unknown is map_to_unknown, when it holds an unseen value,
    # then the record is answered, with a warning naming the column.
    mapped = [
        name
        for name in params.contract.features
        if params.contract.columns[name].on_unknown == "map_to_unknown"
        and params.contract.columns[name].categories
    ]
    if not mapped:
        pytest.skip("the project's contract maps no column's unseen categories to unknown")
    column = mapped[0]
    record = {**example, column: "not a known value"}
    response = client.post("/predict", json={"records": [record]}, headers=auth)
    assert response.status_code == 200, response.text
    assert column in " ".join(response.json()[0]["warnings"]), "no warning names the column"


def test_missing_nullable_features_are_imputed(client, auth, example, params):
    nullable = [n for n in params.contract.features if params.contract.columns[n].nullable]
    record = {k: v for k, v in example.items() if k not in nullable}
    response = client.post("/predict", json={"records": [record]}, headers=auth)
    assert response.status_code == 200, response.text


def test_personal_fields_are_dropped_and_never_logged(
    client, auth, example, params, caplog, serving_env
):
    # Given a secret in the contract's personal and identifier columns, sent with good,
    # invalid and malformed requests, then the good one is answered and the secret appears in
    # no log record and no prediction log line.
    secret = f"secret-{uuid.uuid4().hex}"
    extra = {name: secret for name in (*params.contract.personal, *params.contract.identifiers)}
    caplog.set_level(logging.DEBUG)
    good = client.post("/predict", json={"records": [{**example, **extra}]}, headers=auth)
    assert good.status_code == 200, good.text
    bad = {**example, **extra, params.contract.features[0]: secret}
    assert client.post("/predict", json={"records": [bad]}, headers=auth).status_code == 400
    malformed = json.dumps({"records": [{**example, **extra}]})[:-3].encode()
    headers = {**auth, "Content-Type": "application/json"}
    assert client.post("/predict", content=malformed, headers=headers).status_code == 400
    assert secret not in caplog.text, "a personal value reached the server log"
    logged = "".join(p.read_text() for p in Path(serving_env, "predictions").rglob("*.log"))
    assert secret not in logged, "a personal value reached the prediction log"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Basic {API_KEYS[0]}"},
        {"X-API-Key": API_KEYS[0] + "x"},
    ],
    ids=["none", "wrong", "not-bearer", "prefix"],
)
def test_requests_without_a_valid_key_get_401(client, example, headers):
    for method, path, kwargs in [
        ("POST", "/predict", {"json": {"records": [example]}}),
        ("POST", "/explain", {"json": {"records": [example]}}),
        ("GET", "/metadata", {}),
        # The API documents stay behind the key too: they list every route and field.
        ("GET", "/docs.json", {}),
        ("GET", "/", {}),
    ]:
        response = client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 401, f"{method} {path} with {headers}: {response.text}"
        assert response.json()["detail"][0]["loc"] == ["header", "Authorization"], "no field"


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {API_KEYS[1]}"}, {"X-API-Key": API_KEYS[0]}],
    ids=["second-key", "x-api-key"],
)
def test_every_configured_key_and_header_form_is_accepted(client, example, headers):
    response = client.post("/predict", json={"records": [example]}, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics"])
def test_probes_and_metrics_need_no_key(client, path):
    assert client.get(path).status_code == 200, f"{path} needs a key"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"X-API-Key": API_KEYS[0] + "x"}],
    ids=["none", "wrong", "prefix"],
)
def test_without_a_valid_key_unknown_paths_look_like_known_ones(client, headers):
    # Given no valid key, when a made-up path is requested (including ones that start like a
    # probe), then the answer is the same 401 a real route gives, so an anonymous caller
    # cannot tell which paths exist; and the made-up path never becomes a metrics series.
    def refusal(method: str, path: str) -> tuple[int, dict, str | None]:
        response = client.request(method, path, headers=headers)
        return (
            response.status_code,
            response.json(),
            response.headers.get("www-authenticate"),
        )

    known = refusal("GET", "/metadata")
    assert known[0] == 401, f"GET /metadata without a valid key: {known}"
    unknown = [
        ("GET", f"/made-up-{uuid.uuid4().hex}"),
        ("POST", f"/made-up-{uuid.uuid4().hex}"),
        ("GET", f"/livez/made-up-{uuid.uuid4().hex}"),
        ("GET", f"/metrics-{uuid.uuid4().hex}"),
    ]
    for method, path in unknown:
        assert refusal(method, path) == known, f"{method} {path} differs from a known route"
    metrics = client.get("/metrics").text
    assert not [path for _, path in unknown if path in metrics], "a made-up path became a series"


def test_unknown_path_is_404_without_a_metrics_series(client, auth):
    # Given a valid key and a made-up path, when requested, then it is a JSON 404, counted
    # once, and the path appears nowhere in /metrics.
    def unknown_count() -> float:
        lines = metric_lines(client.get("/metrics").text, "mlgitops_unknown_path_requests_total")
        return float(lines[0].split()[-1]) if lines else 0.0

    before = unknown_count()
    path = f"/made-up-{uuid.uuid4().hex}"
    response = client.get(path, headers=auth)
    assert response.status_code == 404, response.text
    assert response.json()["detail"][0]["loc"] == ["path"], "404 body does not name the path"
    assert client.post(path, json={}, headers=auth).status_code == 404, "POST is not 404"
    assert path not in client.get("/metrics").text, "the unknown path became a metrics series"
    assert unknown_count() == before + 2, "unknown paths are not counted"


def test_metadata_reports_what_is_deployed(client, auth, trained_project, params):
    # Given the served model, then /metadata's hashes equal dvc.lock's and data.dvc's, and
    # it carries the params that were packaged and the headline metrics.
    from mlgitops.layout import data_md5, locked_md5
    from mlgitops.serving.package import params_sha256

    response = client.get("/metadata", headers=auth)
    assert response.status_code == 200, response.text
    meta = response.json()
    lock = yaml.safe_load((trained_project / "dvc.lock").read_text())
    assert meta["model_md5"] == locked_md5(lock, "artifacts/model.joblib"), "model md5"
    pointer = yaml.safe_load((trained_project / "data.dvc").read_text())
    assert meta["data_md5"] == data_md5(pointer), "data md5"
    raw = yaml.safe_load((trained_project / "params.yaml").read_text())
    assert meta["params"] == raw, "params differ from params.yaml"
    assert meta["params_sha256"] == params_sha256(raw), "params hash"
    assert meta["git_commit"], "no commit"
    assert meta["build_time"], "no build time"
    metrics = json.loads((trained_project / "reports/metrics.json").read_text())
    for name in params.evaluate.headline:
        assert meta["metrics"][name] == pytest.approx(metrics[name]), f"metric {name}"


def test_metadata_answer_matches_its_documented_schema(client, auth):
    # Given the published document, then GET /metadata is in it, keyed like every route, and
    # the real answer is valid against the schema documented for its 200.
    document = client.get("/docs.json", headers=auth).json()
    operation = document["paths"]["/metadata"]["get"]
    assert operation["security"], "/metadata is documented without a key"
    assert "401" in operation["responses"], "/metadata does not document its 401"
    response = client.get("/metadata", headers=auth)
    assert response.status_code == 200, response.text
    # The fuzzer's own validator: the body against the schema documented for its status (it
    # raises, naming each mismatch).
    schemathesis.openapi.from_dict(document)["/metadata"]["GET"].validate_response(response)


def test_describe_is_a_valid_metadata_with_and_without_a_bento(service_module):
    # Given the packaged model, when described as served from source and from a built bento,
    # then both are valid Metadata (no key missing, none undocumented) and name the bento.
    bento = SimpleNamespace(
        tag="mlgitops:0123456789abcdef",
        info=SimpleNamespace(creation_time=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
    )
    from_source = Metadata.model_validate(service_module.PACKAGED.describe())
    built = Metadata.model_validate(service_module.PACKAGED.describe(bento))
    assert from_source.bento_tag is None, "a bento is named when serving from source"
    assert built.bento_tag == "mlgitops:0123456789abcdef", "the bento is not named"
    assert built.build_time == "2026-01-02T03:04:05+00:00", "build time is not the bento's"


def test_metrics_show_model_predictions_and_rejections(
    client, auth, example, service_module, params
):
    # Given one good and one rejected request, then /metrics has the model_info gauge with
    # the commit and model hash, predictions by class and rejections by field.
    assert client.post("/predict", json={"records": [example]}, headers=auth).status_code == 200
    bad = {k: v for k, v in example.items() if k != params.contract.features[0]}
    assert client.post("/predict", json={"records": [bad]}, headers=auth).status_code == 400
    text = client.get("/metrics").text
    labels = service_module.PACKAGED.labels
    info = metric_lines(text, "mlgitops_model_info")
    assert any(
        f'git_commit="{labels["git_commit"]}"' in line
        and f'model_md5="{labels["model_md5"]}"' in line
        for line in info
    ), f"model_info lacks provenance: {info}"
    assert metric_lines(text, "mlgitops_predictions_total{predicted_class="), "no predictions"
    rejections = metric_lines(text, "mlgitops_validation_rejections_total")
    assert any('endpoint="predict"' in line for line in rejections), f"no rejections: {rejections}"
    assert metric_lines(text, "bentoml_service_request_total"), "BentoML's own metrics are gone"


def test_refused_keys_are_counted(client, example):
    # Given a request with a wrong key, then the 401 counter grows by one (refused requests
    # never reach BentoML's own request metrics).
    def refused() -> float:
        lines = metric_lines(client.get("/metrics").text, "mlgitops_unauthorized_requests_total")
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    before = refused()
    response = client.post("/predict", json={"records": [example]}, headers={"X-API-Key": "no"})
    assert response.status_code == 401, response.text
    assert refused() == before + 1, "the refusal was not counted"


def test_openapi_schema_has_the_contract_example(client, auth, example):
    response = client.get("/docs.json", headers=auth)
    assert response.status_code == 200, response.text
    schemas = response.json()["components"]["schemas"].values()
    documented = [schema.get("example") for schema in schemas]
    assert {"records": [example]} in documented, "the request example is not documented"
