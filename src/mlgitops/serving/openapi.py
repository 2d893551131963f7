"""The service's OpenAPI document as it really answers, and a middleware keeping answers to it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from mlgitops.serving.guards import (
    JSON_MEDIA_TYPE,
    PROBE_PATHS,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    conforming_error,
)
from mlgitops.serving.schema import Metadata

DOCS_PATH = "/docs.json"
# The route that answers 404 for a prediction id it does not know.
FEEDBACK_PATH = "/feedback"
# Served by a Starlette app mounted into the service, which BentoML leaves out of its document.
METADATA_PATH = "/metadata"
# The error schemas BentoML puts in its OpenAPI document, and the refusals the guards add.
BENTOML_ERROR_SCHEMAS = ("InvalidArgument", "NotFound", "InternalServerError")
GUARD_RESPONSES = {
    "401": "Missing or invalid API key",
    "408": "Request body not received within serve.body_timeout_s",
    "413": "Request body larger than serve.max_body_bytes",
    "415": "Request body not sent as application/json",
    "404": "No prediction with this id in the prediction log",
}


def documented_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    """BentoML's OpenAPI document, corrected to describe what the service really answers.

    BentoML declares an error's `detail` a string, but a validation error (400) sends a list
    of `{loc, msg, type}`; and it knows nothing of the guards: the API key (401), the body's
    read time (408), size (413) and media type (415); nor of /feedback's 404 for an unknown
    prediction id; nor of `GET /metadata`, a mounted Starlette route;
    and it leaves request bodies optional, though every endpoint answers 400 without one.
    Returns a corrected copy.
    """
    spec = copy.deepcopy(spec)
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    metadata = Metadata.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(metadata.pop("$defs", {}))
    schemas["Metadata"] = metadata
    spec.setdefault("paths", {})[METADATA_PATH] = {
        "get": {
            "summary": "What is deployed",
            "description": Metadata.__doc__,
            "responses": {
                "200": {
                    "description": "Successful Response",
                    "content": {
                        JSON_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Metadata"}}
                    },
                }
            },
        }
    }
    schemas["ErrorDetail"] = {
        "type": "object",
        "title": "ErrorDetail",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
    }
    detail = {
        "title": "Error Detail",
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"$ref": "#/components/schemas/ErrorDetail"}},
        ],
    }
    for name in BENTOML_ERROR_SCHEMAS:
        if name in schemas:
            schemas[name].setdefault("properties", {})["detail"] = detail
    schemas["GuardRefusal"] = {
        "type": "object",
        "title": "GuardRefusal",
        "required": ["error", "detail"],
        "properties": {"error": {"type": "string"}, "detail": detail},
    }
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    refusal = {"$ref": "#/components/schemas/GuardRefusal"}
    for path, item in (spec.get("paths") or {}).items():
        if path in PROBE_PATHS:
            continue
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            if (
                "requestBody" in operation
            ):  # BentoML leaves it optional; a POST without one is a 400
                operation["requestBody"]["required"] = True
            codes = ("401", "408", "413", "415") if method in {"post", "put", "patch"} else ("401",)
            if path == FEEDBACK_PATH:
                codes = (*codes, "404")
            for code in codes:
                operation["responses"].setdefault(
                    code,
                    {
                        "description": GUARD_RESPONSES[code],
                        "content": {JSON_MEDIA_TYPE: {"schema": refusal}},
                    },
                )
    return spec


class ConformingResponses:
    """Make the service's answers match its OpenAPI document (both found by the fuzzer).

    - `GET /docs.json` is served as `documented_openapi` corrects it;
    - every error is sent as the documented `{"error", "detail": [{loc, msg, type}]}`,
      bounded in size and without names the client made up (`conforming_error`).

    Only those responses are buffered; every other one streams through untouched.
    """

    def __init__(self, app: ASGIApp, *, known_names: Iterable[str] = ()) -> None:
        """Wrap `app`; `known_names` are the request fields an error may name."""
        self.app = app
        self.known_names = frozenset(known_names)

    def __getattr__(self, name: str) -> Any:
        """Behave like the wrapped app for code that inspects it (state, router)."""
        return getattr(self.app, name)

    def _rewrite(self, body: bytes, *, docs: bool, status: int) -> bytes:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if docs and status < 400:
            if isinstance(payload, dict) and "paths" in payload:
                return json.dumps(documented_openapi(payload)).encode("utf-8")
            return body
        error = conforming_error(payload, status=status, known_names=self.known_names)
        return json.dumps(error).encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; buffer and rewrite only the docs and error responses."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] == DOCS_PATH and scope["method"] == "GET"
        start: Message | None = None
        body = bytearray()

        async def conforming_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and (docs or message["status"] >= 400):
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            status = start["status"]
            content = self._rewrite(bytes(body), docs=docs, status=status)
            replaced = (
                {b"content-length", b"content-type"} if status >= 400 else {b"content-length"}
            )
            headers = [
                (key, value)
                for key, value in start.get("headers") or ()
                if key.lower() not in replaced
            ]
            if status >= 400:
                headers.append((b"content-type", JSON_MEDIA_TYPE.encode()))
            headers.append((b"content-length", str(len(content)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": content})

        await self.app(scope, receive, conforming_send)
