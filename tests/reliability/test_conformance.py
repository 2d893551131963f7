"""Regression tests for what the fuzzer found: responses that contradict /docs.json, and a
route (`GET /metadata`) missing from it, so never fuzzed.

The defects come from BentoML and are corrected in `mlgitops.serving.guards`, around the
service's ASGI app; these tests drive that wrapper with a stand-in app, no server needed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from helpers import call_asgi
from mlgitops.serving.openapi import ConformingResponses, documented_openapi
from mlgitops.serving.schema import Metadata

ERROR_SCHEMAS = ("InvalidArgument", "NotFound", "InternalServerError")


def bentoml_spec() -> dict[str, Any]:
    """The shape of the document BentoML 1.4 publishes: `detail` declared a string."""
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "title": "Message"},
            "detail": {"type": "string", "title": "Error Detail"},
        },
    }
    responses = {
        "200": {"description": "ok"},
        "400": {
            "description": "Bad Request",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/InvalidArgument"}}
            },
        },
    }
    return {
        "openapi": "3.0.2",
        "paths": {
            "/predict": {
                "post": {
                    "responses": dict(responses),
                    "requestBody": {"content": {"application/json": {"schema": {}}}},
                }
            },
            "/livez": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
        "components": {"schemas": {name: json.loads(json.dumps(error)) for name in ERROR_SCHEMAS}},
    }


def call(app: Any, path: str, method: str = "GET") -> tuple[int, dict[bytes, bytes], bytes]:
    """Run one request through an ASGI app; its status, headers and whole body."""
    answer = call_asgi(app, method, path)
    return answer.status, answer.headers, answer.body


def json_app(status: int, payload: Any, *, chunks: int = 1):
    """An ASGI app that answers every request with `payload` as JSON, in `chunks` parts."""
    body = json.dumps(payload).encode()

    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        size = -(-len(body) // chunks)
        for i in range(chunks):
            part = body[i * size : (i + 1) * size]
            await send({"type": "http.response.body", "body": part, "more_body": i < chunks - 1})

    return app


def test_validation_error_detail_list_is_documented():
    # Given BentoML's document, where `detail` is a string, when it is documented by the guard,
    # then `detail` may be a string or the list of {loc, msg, type} that a 400 really carries.
    spec = documented_openapi(bentoml_spec())
    for name in ERROR_SCHEMAS:
        detail = spec["components"]["schemas"][name]["properties"]["detail"]
        kinds = {option.get("type") for option in detail["anyOf"]}
        assert kinds == {"string", "array"}, f"{name}.detail allows {kinds}"
    item = spec["components"]["schemas"]["ErrorDetail"]
    assert set(item["required"]) == {"loc", "msg", "type"}, item


def test_guard_refusals_and_security_are_documented():
    # Given BentoML's document, then each protected operation lists the guards' 401, 413 and
    # 415 and needs a key, and the probes stay open.
    spec = documented_openapi(bentoml_spec())
    predict = spec["paths"]["/predict"]["post"]
    assert {"401", "413", "415"} <= set(predict["responses"]), predict["responses"].keys()
    assert predict["security"], "/predict is documented without a key"
    assert predict["requestBody"]["required"], "/predict's body is documented as optional"
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert "security" not in spec["paths"]["/livez"]["get"], "a probe is documented as keyed"
    assert "401" not in spec["paths"]["/livez"]["get"]["responses"], "a probe documents 401"


def test_metadata_is_documented_from_its_model():
    # Given BentoML's document, which leaves out the mounted GET /metadata, then the guard adds
    # it: its 200 is the Metadata model's schema, it needs a key (401), and as a GET it has no
    # body to refuse (no 413 or 415).
    spec = documented_openapi(bentoml_spec())
    operation = spec["paths"]["/metadata"]["get"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Metadata"}, ok
    documented = spec["components"]["schemas"]["Metadata"]
    assert documented == Metadata.model_json_schema(), "schema is not the model's"
    assert set(documented["required"]) == set(Metadata.model_fields), "a field is optional"
    assert documented["additionalProperties"] is False, "undocumented fields are allowed"
    assert operation["security"] == [{"bearer": []}, {"apiKey": []}], operation.get("security")
    assert set(operation["responses"]) == {"200", "401"}, operation["responses"].keys()
    refusal = operation["responses"]["401"]["content"]["application/json"]["schema"]
    assert refusal == {"$ref": "#/components/schemas/GuardRefusal"}, refusal


def test_served_document_is_the_documented_one():
    # Given an app serving BentoML's document in pieces, when /docs.json passes the wrapper,
    # then the client gets the corrected document with a matching content-length.
    app = ConformingResponses(json_app(200, bentoml_spec(), chunks=3))
    status, headers, body = call(app, "/docs.json")
    assert status == 200, status
    assert int(headers[b"content-length"]) == len(body), "content-length not updated"
    served = json.loads(body)
    detail = served["components"]["schemas"]["InvalidArgument"]["properties"]["detail"]
    assert "anyOf" in detail, f"document served uncorrected: {detail}"
    assert "/metadata" in served["paths"], "GET /metadata is missing from the served document"


def response_headers(app: Any, path: str, method: str = "GET") -> list[tuple[bytes, bytes]]:
    """Every header of the response start an app sends, duplicates kept."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    return list(start["headers"])


@pytest.mark.parametrize(
    ("status", "payload", "path"),
    [(200, bentoml_spec(), "/docs.json"), (404, [{"error": "x"}], "/feedback")],
)
def test_rewritten_responses_carry_one_content_length_and_type(status, payload, path):
    # Given a response the wrapper rewrites (the document, an error), then it has exactly one
    # content-length (two conflicting ones make clients drop the response) and content-type.
    app = ConformingResponses(json_app(status, payload, chunks=2))
    names = [key.lower() for key, _ in response_headers(app, path)]
    assert names.count(b"content-length") == 1, f"content-length headers: {names}"
    assert names.count(b"content-type") == 1, f"content-type headers: {names}"


def test_error_body_wrapped_in_a_list_becomes_the_documented_object():
    # Given an endpoint raising a 4xx BentoML exception, which BentoML 1.4 sends as a one-item
    # list `[{"error": ...}]`, then the client gets the documented object
    # `{"error", "detail": [{loc, msg, type}]}`.
    app = ConformingResponses(json_app(404, [{"error": "no prediction here"}]))
    status, headers, body = call(app, "/feedback", method="POST")
    assert status == 404, status
    assert json.loads(body) == {
        "error": "no prediction here",
        "detail": [{"loc": [], "msg": "no prediction here", "type": "not_found"}],
    }, body
    assert int(headers[b"content-length"]) == len(body), "content-length not updated"


def test_other_responses_pass_through_unchanged():
    # Given a successful response that is a list, then it is not touched.
    app = ConformingResponses(json_app(200, [{"error": "a real value"}]))
    status, _, body = call(app, "/predict", method="POST")
    assert (status, json.loads(body)) == (200, [{"error": "a real value"}]), body
