"""A bounded time for a client to send its request headers, in the server's HTTP protocol.

uvicorn (which `bentoml serve` runs in each worker) waits for request headers for as long as
a client keeps sending them, a byte at a time, and for ever on a connection that sends
nothing: a few slow clients hold every connection. The ASGI app cannot help, as it only
starts once the headers are complete. `HeaderTimeoutProtocol` is uvicorn's httptools
protocol with a timer from a connection's opening (or a request's first byte) to the end of
its headers: when it fires, the client gets a 408 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import uvicorn.config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

HEADER_TIMEOUT_MESSAGE = "request headers not received in time; send them at once"


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose headers come too slowly.

    The headers must be complete within `header_timeout_s` of the connection's opening or of
    its request's first byte.
    """

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Set up the protocol with no header timer running yet."""
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the header timer for the connection's first request."""
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        """Start the header timer for a new request."""
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        """The headers arrived in time: stop the timer."""
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer of a connection that closed."""
        self._disarm()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        logger.warning("request headers not complete within %g s: closed", self.header_timeout_s)
        # A keep-alive connection waiting for its next request has no response under way:
        # it gets the 408 (in the service's error shape); otherwise it is only closed.
        if self.cycle is None or self.cycle.response_complete:
            body = json.dumps(
                {
                    "error": HEADER_TIMEOUT_MESSAGE,
                    "detail": [
                        {"loc": ["header"], "msg": HEADER_TIMEOUT_MESSAGE, "type": "timeout"}
                    ],
                }
            ).encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\n"
                b"content-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + body
            )
        self.transport.close()


def bound_header_time(header_timeout_s: float) -> None:
    """Make the uvicorn servers of this process use `HeaderTimeoutProtocol`.

    BentoML builds each worker's `uvicorn.Config` itself with the default `http="auto"` and
    no option to pass another protocol (`_bentoml_impl/worker/service.py`), after importing
    the service; uvicorn resolves that name through `uvicorn.config.HTTP_PROTOCOLS` when the
    server starts, so the service, imported first, points the name at this protocol.
    """
    HeaderTimeoutProtocol.header_timeout_s = header_timeout_s
    uvicorn.config.HTTP_PROTOCOLS["auto"] = f"{__name__}:{HeaderTimeoutProtocol.__name__}"
