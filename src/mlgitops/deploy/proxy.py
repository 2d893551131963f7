"""The local target's front door: a reverse proxy to whichever release is active.

Switching releases rewrites one small JSON file; the proxy reads it when it changes, so a
new version takes traffic only after it is healthy and the old one keeps serving until then.
Run as `python -m mlgitops.deploy.proxy --port 3000 --active STATE/active.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

logger = logging.getLogger(__name__)

# Headers that describe one hop, not the message; they must not be forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class ActiveBackend:
    """The backend URL in the active-release file, re-read whenever the file changes."""

    def __init__(self, path: Path):
        """Follow the active release recorded in `path`."""
        self.path = path
        self._stamp: int | None = None
        self._url: str | None = None

    def url(self) -> str | None:
        """The active release's base URL, re-read when the file changes."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if stamp != self._stamp:
            try:
                self._url = json.loads(self.path.read_text(encoding="utf-8"))["backend"]
                self._stamp = stamp
            except (json.JSONDecodeError, KeyError):
                return self._url  # a half-written file: keep the last good backend
        return self._url


def create_app(active: Path, *, timeout: float = 60.0) -> Starlette:
    """The proxy app: every request goes to the release `active` names."""
    backend = ActiveBackend(active)
    client = httpx.AsyncClient(timeout=timeout)

    async def forward(request: Request) -> Response:
        url = backend.url()
        if url is None:
            return JSONResponse({"detail": "no release is active"}, status_code=503)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            upstream = await client.request(
                request.method,
                url + request.url.path,
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
        except httpx.HTTPError as error:
            return JSONResponse({"detail": f"active release unreachable: {error}"}, status_code=502)
        kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        kept.pop("content-encoding", None)  # httpx already decoded the body
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)], lifespan=lifespan)


def main(argv: list[str] | None = None) -> int:
    """Run the proxy (`python -m mlgitops.deploy.proxy`) until it is stopped."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--active", type=Path, required=True, help="active-release JSON file")
    parser.add_argument(
        "--keep-alive", type=int, required=True, help="seconds an idle connection stays open"
    )
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.active),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_keep_alive=args.keep_alive,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
