"""Limits of ``neurogate serve``: uvicorn's options, and the request-read timeouts it lacks.

uvicorn (0.54) arms no timer while it reads a request: its only HTTP timer is the
keep-alive one, armed after a response and cancelled by the first byte of the next request.
A connection that sends half a request head (or half a body) stays open forever. The
``BoundedHttpToolsProtocol`` below adds one timer per connection:

- from the connection's start, or from the first byte after a finished response, the request
  head (request line and headers) must be complete within ``head_timeout`` seconds, else the
  gateway answers 408 and closes the connection (however slowly the bytes trickle in); a
  connection that sent nothing at all is closed without an answer (a browser's idle
  pre-connection must not read a 408 as the answer to its next request);
- from the end of the head, the body must be complete within ``body_timeout`` seconds, else
  the connection is closed (the handler sees a disconnect).

A WebSocket upgrade cancels the timer at the end of its head: a live stream is governed by
the WebSocket keep-alive instead. WebSocket messages above ``WS_MAX_MESSAGE_BYTES`` are
refused by the WebSocket layer from the frame header, before the payload is read (close
1009).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from neurogate_client.wire import MAX_FRAME_BYTES
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from neurogate.settings import Settings

# The largest binary frame the ingest protocol allows, plus room for the JSON messages
# (the largest, a 512-channel hello, is far below 64 KiB).
WS_MAX_MESSAGE_BYTES = MAX_FRAME_BYTES + 64 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on reading each request."""

    head_timeout: float = 10.0
    body_timeout: float = 30.0

    # uvicorn narrows asyncio's BaseTransport to Transport here, as its own class does.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._arm(self.head_timeout, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            # The first byte of a new request on a kept-alive connection.
            self._head_bytes = 0
            self._arm(self.head_timeout, self._head_expired)
        self._head_bytes += len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._arm(self.body_timeout, self._body_expired)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float, handler: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if not self._head_bytes:
            self.transport.close()
            return
        message = (f"The request head was not complete within {self.head_timeout:g} seconds; "
                   "send the request line and all headers at once.").encode("ascii")
        head = [STATUS_LINE[408]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: text/plain; charset=utf-8\r\n",
                 b"content-length: " + str(len(message)).encode("ascii") + b"\r\n",
                 b"connection: close\r\n\r\n", message]
        self.transport.write(b"".join(head))
        self.transport.close()

    def _body_expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def bounded_protocol(settings: Settings) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with the timeouts of ``settings``."""
    return type("NeurogateHttpProtocol", (BoundedHttpToolsProtocol,), {
        "head_timeout": settings.header_timeout_seconds,
        "body_timeout": settings.body_timeout_seconds,
    })


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` that apply the gateway's server limits."""
    return {
        "http": bounded_protocol(settings),
        "ws_max_size": WS_MAX_MESSAGE_BYTES,
        "server_header": False,
        "limit_concurrency": settings.limit_concurrency,
        "backlog": settings.backlog,
    }


__all__ = ["WS_MAX_MESSAGE_BYTES", "BoundedHttpToolsProtocol", "bounded_protocol",
           "uvicorn_options"]
