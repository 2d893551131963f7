"""ASGI guards around the service: API keys, unknown paths, body size, media type, read time.

Also quiet logs of client errors. Each rejection is a JSON body shaped like BentoML's own
validation errors,
`{"error": ..., "detail": [{"loc": [...], "msg": ..., "type": ...}]}`, so a client handles
every 4xx the same way; no error body or log line carries a value the client sent.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from starlette.routing import BaseRoute, Match

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]

# Liveness, readiness and the Prometheus scrape stay open: orchestrators and scrapers do
# not carry API keys.
PROBE_PATHS: frozenset[str] = frozenset({"/livez", "/healthz", "/readyz", "/metrics"})
JSON_MEDIA_TYPE = "application/json"
# An error body keeps at most this many `detail` items, each text at most this long: a
# request of 1,000 bad records gets a bounded answer, and the body stays far below 64 KiB.
MAX_ERROR_DETAILS = 20
MAX_ERROR_TEXT = 300
MAX_LOC_PARTS = 10
# The `type` of an error body's `detail` when the error came without one, by status.
ERROR_KINDS = {400: "invalid", 404: "not_found", 408: "timeout", 503: "unavailable"}
# What a `loc` part that is not a name the service knows becomes (it came from the client).
UNKNOWN_NAME = "unknown_field"
# BentoML's logger of the exceptions its endpoint wrapper catches (`log_exception`).
BENTOML_EXCEPTION_LOGGER = "bentoml._internal.server.http_app"


def error_payload(message: str, *, loc: Sequence[str], kind: str) -> dict[str, Any]:
    """A rejection in the shape of BentoML's validation errors."""
    return {"error": message, "detail": [{"loc": list(loc), "msg": message, "type": kind}]}


def _text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


def conforming_error(payload: Any, *, status: int, known_names: frozenset[str]) -> dict[str, Any]:
    """Any error body as the documented `{"error", "detail": [{loc, msg, type}]}`, bounded.

    BentoML 1.4 answers a 4xx exception with a one-item list `[{"error": ...}]` and a 5xx
    with `{"error": ...}` alone: both get a `detail`. A `loc` part that is not one of
    `known_names` (field names, list indexes aside) is a name the client made up and becomes
    `unknown_field`; texts and the number of items are capped.
    """
    if isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], dict):
        payload = payload[0]
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), str):
        payload = {"error": f"request failed with status {status}"}
    message = _text(payload["error"])
    items = payload.get("detail")
    if not isinstance(items, list) or not items:
        items = [{"loc": [], "msg": message, "type": ERROR_KINDS.get(status, "error")}]
    details = []
    for item in items[:MAX_ERROR_DETAILS]:
        item = item if isinstance(item, dict) else {}
        raw_loc = item.get("loc")
        loc: list[Any] = raw_loc if isinstance(raw_loc, list) else []
        details.append(
            {
                "loc": [
                    part
                    if (isinstance(part, int) and not isinstance(part, bool))
                    or (isinstance(part, str) and part in known_names)
                    else UNKNOWN_NAME
                    for part in loc[:MAX_LOC_PARTS]
                ],
                "msg": _text(item.get("msg", message)),
                "type": _text(item.get("type", ERROR_KINDS.get(status, "error"))),
            }
        )
    if len(items) > MAX_ERROR_DETAILS:
        more = f"{len(items) - MAX_ERROR_DETAILS} more errors not listed"
        details.append({"loc": [], "msg": more, "type": "truncated"})
    return {"error": message, "detail": details}


class ClientErrorLogFilter(logging.Filter):
    """Log a client's error caught by BentoML's endpoint wrapper as one WARNING line.

    BentoML logs every exception its wrapper turns into a response at ERROR with the
    traceback (`log_exception`), a refused label or record included, and a validation
    error's text names what was sent. A client error (a pydantic `ValidationError`, or a
    BentoML exception below 500) becomes one line naming the status, route and error types,
    without values; server errors keep their traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Log a client error as one WARNING line; pass every other record."""
        from bentoml.exceptions import BentoMLException
        from pydantic import ValidationError

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            status = 400
            kinds = sorted({item["type"] for item in error.errors(include_input=False)})
        elif isinstance(error, BentoMLException) and error.error_code.value < 500:
            status = error.error_code.value
            kinds = [type(error).__name__]
        else:
            return True
        args = record.args if isinstance(record.args, tuple) and len(record.args) >= 2 else ()
        path, method = args[:2] if args else ("?", "?")
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.msg = "client error %d on %s [%s]: %s"
        record.args = (status, path, method, ", ".join(kinds[:MAX_ERROR_DETAILS]))
        record.exc_info, record.exc_text = None, None
        return True


def quiet_client_errors() -> None:
    """Install `ClientErrorLogFilter` on BentoML's exception logger (once per process)."""
    bentoml_logger = logging.getLogger(BENTOML_EXCEPTION_LOGGER)
    if not any(isinstance(f, ClientErrorLogFilter) for f in bentoml_logger.filters):
        bentoml_logger.addFilter(ClientErrorLogFilter())


async def send_json(
    send: Send,
    status: int,
    payload: dict[str, Any],
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send a complete JSON response."""
    body = json.dumps(payload).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", JSON_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (ASGI header names are lowercase)."""
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


class KnownPathsOnly:
    """Answer 404 for a path that no route serves, before any metrics middleware sees it.

    BentoML labels its request metrics with the raw path, so every made-up path would
    otherwise become a new series. Unknown paths are counted once, without the path. Wrap it
    in `ApiKeyAuth`, so that only a caller with a key learns whether a path exists.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[BaseRoute],
        on_unknown: Callable[[], None],
    ):
        """Wrap `app`; `routes` are the paths it serves."""
        self.app = app
        self.routes = list(routes)
        self.on_unknown = on_unknown

    def __getattr__(self, name: str) -> Any:
        """Behave like the wrapped app for code that inspects it (state, router)."""
        # Behave like the wrapped Starlette app for code that inspects it (state, router).
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 404 for a path no route serves; pass every other request on."""
        if scope["type"] == "http" and not any(
            route.matches(scope)[0] != Match.NONE for route in self.routes
        ):
            self.on_unknown()
            await send_json(send, 404, error_payload("not found", loc=["path"], kind="not_found"))
            return
        await self.app(scope, receive, send)


class ApiKeyAuth:
    """Require one of the API keys listed (comma-separated) in an environment variable.

    A key is sent as `Authorization: Bearer <key>` or `X-API-Key: <key>` and compared with
    every configured key in constant time. With no key configured every protected request
    is refused: a missing secret never opens the service.

    Outermost, it answers every path but the exempt ones with the same 401, whether or not
    a route serves it, before routing, metrics or the access log see the request.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys_env: str,
        exempt: Iterable[str] = PROBE_PATHS,
        on_refuse: Callable[[], None] | None = None,
    ):
        """Wrap `app`; the accepted keys are read from the variable `keys_env`."""
        self.app = app
        self.keys_env = keys_env
        self.exempt = frozenset(exempt)
        # Refused requests never reach BentoML's request metrics: this counts them instead.
        self.on_refuse = on_refuse
        self.keys = tuple(
            key.strip().encode("utf-8")
            for key in os.environ.get(keys_env, "").split(",")
            if key.strip()
        )
        if not self.keys:
            logger.error(
                "no API key in $%s: every request except %s is refused with 401; "
                "set it to one or more comma-separated keys",
                keys_env,
                ", ".join(sorted(self.exempt)),
            )

    def __getattr__(self, name: str) -> Any:
        """Behave like the wrapped app for code that inspects it (state, router)."""
        # Behave like the wrapped app for code that inspects it (state, router).
        return getattr(self.app, name)

    def _presented(self, scope: Scope) -> bytes | None:
        authorization = header(scope, b"authorization")
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip().encode("latin-1")
        api_key = header(scope, b"x-api-key")
        return api_key.strip().encode("latin-1") if api_key else None

    def is_valid(self, presented: bytes | None) -> bool:
        """Whether `presented` equals a configured key; every key is compared, always."""
        if presented is None:
            return False
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(presented, key)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a request without a valid key (probes excepted) with 401."""
        if scope["type"] not in {"http", "websocket"} or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if not self.is_valid(self._presented(scope)):
            if self.on_refuse is not None:
                self.on_refuse()
            if scope["type"] == "websocket":
                # 1008: policy violation; no route serves WebSockets, but none opens without a key.
                await send({"type": "websocket.close", "code": 1008})
                return
            message = (
                "missing or invalid API key: send 'Authorization: Bearer <key>' or "
                "'X-API-Key: <key>'"
            )
            await send_json(
                send,
                401,
                error_payload(message, loc=["header", "Authorization"], kind="unauthorized"),
                headers=[(b"www-authenticate", b'Bearer realm="mlgitops"')],
            )
            return
        await self.app(scope, receive, send)


class RequestGuard:
    """Refuse bodies that are too large (413), not JSON (415) or too slow to arrive (408).

    The limits are `max_body_bytes` and `body_timeout_s`.

    The body is read here, up to the limit, and handed on whole: the application never
    starts on a body that turns out to be too large halfway through. A client trickling its
    body is the client's error (408), answered before BentoML's request timeout would count
    it as the server's (504).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout_s: float | None = None,
        on_reject: Callable[[str, str], None] = lambda path, field: None,
    ):
        """Wrap `app` with the body size and read-time limits."""
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.on_reject = on_reject

    async def _too_large(self, scope: Scope, send: Send) -> None:
        self.on_reject(scope["path"], "body")
        message = f"request body is larger than the limit of {self.max_body_bytes} bytes"
        await send_json(send, 413, error_payload(message, loc=["body"], kind="too_large"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an oversized, slow or non-JSON body before the app reads it."""
        if scope["type"] != "http" or scope["method"] not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        media_type = (header(scope, b"content-type") or JSON_MEDIA_TYPE).split(";")[0]
        if media_type.strip().lower() != JSON_MEDIA_TYPE:
            self.on_reject(scope["path"], "content-type")
            # The media type sent is not repeated: nothing a client sends is echoed.
            message = f"send the body as {JSON_MEDIA_TYPE} (Content-Type: {JSON_MEDIA_TYPE})"
            await send_json(
                send,
                415,
                error_payload(message, loc=["header", "Content-Type"], kind="media_type"),
            )
            return
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, send)
            return
        body = bytearray()
        try:
            async with asyncio.timeout(self.body_timeout_s):
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.max_body_bytes:
                        await self._too_large(scope, send)
                        return
        except TimeoutError:
            self.on_reject(scope["path"], "body")
            logger.warning(
                "request body on %s not received within %g s: answered 408",
                scope["path"],
                self.body_timeout_s,
            )
            message_text = (
                f"request body not received within {self.body_timeout_s:g} s; send it at once"
            )
            await send_json(
                send,
                408,
                error_payload(message_text, loc=["body"], kind="timeout"),
                headers=[(b"connection", b"close")],
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
