"""The request guards and the schema helpers on their own, without a server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from helpers import call_asgi
from mlgitops.serving.guards import ApiKeyAuth, KnownPathsOnly
from mlgitops.serving.schema import RECORDS_FIELD, UNKNOWN_FIELD, rejected_field


def app(scope, receive, send):  # pragma: no cover - never reached by these tests
    raise AssertionError("the wrapped app must not be called")


def call(asgi: Any, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    """Run one HTTP request through an ASGI app; its status and JSON (or text) body."""
    answer = call_asgi(asgi, method, path, headers)
    try:
        return answer.status, json.loads(answer.body)
    except ValueError:
        return answer.status, answer.body.decode()


@pytest.fixture
def guarded(monkeypatch) -> tuple[Any, list[str], list[str]]:
    """A stand-in app with one route and one probe, guarded in the service's order: the key
    first, then unknown paths. Returns it, the paths that reached the stand-in and one entry
    per request counted as unknown."""
    monkeypatch.setenv("TEST_KEYS", "alpha-key")
    reached: list[str] = []

    async def answer(request):
        reached.append(request.url.path)
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/predict", answer), Route("/livez", answer)])
    unknown: list[str] = []
    known = KnownPathsOnly(inner, routes=inner.routes, on_unknown=lambda: unknown.append("x"))
    refused: list[str] = []
    guard = ApiKeyAuth(known, keys_env="TEST_KEYS", on_refuse=lambda: refused.append("x"))
    guard.refused = refused  # type: ignore[attr-defined]  # read by the tests
    return guard, reached, unknown


def test_every_configured_key_is_accepted_and_nothing_else(monkeypatch):
    # Given two keys (with spaces around them) in the environment, then each is accepted,
    # and a prefix, a longer string, an empty key and no key are not.
    monkeypatch.setenv("TEST_KEYS", " alpha-key , beta-key ,")
    auth = ApiKeyAuth(app, keys_env="TEST_KEYS")
    assert auth.is_valid(b"alpha-key"), "first key refused"
    assert auth.is_valid(b"beta-key"), "second key refused"
    for wrong in (b"alpha", b"alpha-key2", b"", None):
        assert not auth.is_valid(wrong), f"{wrong!r} accepted"


def test_no_configured_key_refuses_everything(monkeypatch, caplog):
    # Given no key in the environment, then nothing is accepted and the reason is logged.
    monkeypatch.delenv("TEST_KEYS", raising=False)
    auth = ApiKeyAuth(app, keys_env="TEST_KEYS")
    assert not auth.is_valid(b""), "an empty key opened the service"
    assert not auth.is_valid(b"anything"), "a key was accepted with none configured"
    assert "TEST_KEYS" in caplog.text, "the missing variable is not named in the log"


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        ((), RECORDS_FIELD),
        ((3,), RECORDS_FIELD),
        ((0, "Island"), "Island"),
        ((0, "Wingspan"), UNKNOWN_FIELD),
    ],
)
def test_rejected_field_is_a_feature_or_a_fixed_label(loc, expected):
    # Metric labels stay bounded: a feature name, `records`, or `unknown_field`.
    assert rejected_field(loc, frozenset({"Island"})) == expected, f"loc {loc}"


def test_without_a_key_known_and_unknown_paths_get_the_same_401(guarded):
    # Given no key, when a route and a made-up path are requested, then both get the same
    # 401 body, nothing reaches the app and no unknown path is counted (nothing is learned).
    asgi, reached, unknown = guarded
    known = call(asgi, "GET", "/predict", {})
    assert known[0] == 401, known
    for path in ("/made-up", "/livez/made-up", "/predict/made-up"):
        assert call(asgi, "GET", path, {}) == known, f"{path} answers differently from /predict"
    assert call(asgi, "GET", "/made-up", {"X-API-Key": "wrong"}) == known, "wrong key differs"
    assert reached == [], f"a request without a key reached the app: {reached}"
    assert unknown == [], "an unauthenticated path was counted as unknown"


def test_with_a_key_unknown_paths_get_404_and_routes_are_served(guarded):
    # Given a valid key, then a made-up path is a 404 naming the path, counted once, and a
    # route is served; a probe needs no key.
    asgi, reached, unknown = guarded
    status, body = call(asgi, "GET", "/made-up", {"Authorization": "Bearer alpha-key"})
    assert status == 404, body
    assert body["detail"][0]["loc"] == ["path"], body
    assert unknown == ["x"], "the unknown path was not counted once"
    assert call(asgi, "GET", "/predict", {"X-API-Key": "alpha-key"}) == (200, "ok")
    assert call(asgi, "GET", "/livez", {}) == (200, "ok"), "a probe needs a key"
    assert reached == ["/predict", "/livez"], reached


def test_every_refusal_is_counted_once_and_nothing_else(guarded):
    # Given requests without a key, with a wrong one, with a valid one and to a probe, then
    # only the two refused ones are counted (they never reach BentoML's request metrics).
    asgi, _, _ = guarded
    call(asgi, "GET", "/predict", {})
    call(asgi, "GET", "/made-up", {"X-API-Key": "wrong"})
    call(asgi, "GET", "/predict", {"X-API-Key": "alpha-key"})
    call(asgi, "GET", "/livez", {})
    assert asgi.refused == ["x", "x"], f"counted {asgi.refused}"


@pytest.mark.parametrize(
    ("headers", "opens"),
    [({}, False), ({"X-API-Key": "wrong"}, False), ({"X-API-Key": "alpha-key"}, True)],
    ids=["no-key", "wrong-key", "key"],
)
def test_websockets_need_a_key_too(headers, opens):
    # Given a WebSocket handshake, then without a valid key it is closed with 1008 (policy
    # violation) before the app sees it; with one it reaches the app.
    reached: list[str] = []

    async def inner(scope, receive, send):
        reached.append(scope["path"])
        await send({"type": "websocket.accept"})

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/predict",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TEST_KEYS", "alpha-key")
        asyncio.run(ApiKeyAuth(inner, keys_env="TEST_KEYS")(scope, receive, send))
    if opens:
        assert reached == ["/predict"], "a WebSocket with a valid key did not reach the app"
        assert sent == [{"type": "websocket.accept"}], sent
    else:
        assert reached == [], "a WebSocket without a valid key reached the app"
        assert sent == [{"type": "websocket.close", "code": 1008}], sent
