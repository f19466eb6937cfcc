"""Server limits of ``neurogate serve`` over real sockets: half-sent requests, huge messages.

One gateway process with short read timeouts (head 2 s, body 3 s) and a populated clinic
in which dev1 is paired with adult1.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from neurogate_client.wire import encode_frame

from neurogate.gateway.security import CONTENT_SECURITY_POLICY
from neurogate.settings import Settings
from tests.e2e.conftest import ServerProcess, clinic_server, gateway_env
from tests.e2e.live import app_token, open_device, synthetic_uv
from tests.gateway.conftest import Clinic

pytestmark = pytest.mark.e2e

HEAD_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0
HALF_OPEN = 200
# Far above the timeouts: a socket still open after this was never going to be closed.
CLOSE_WITHIN = 60.0
HALF_HEAD = (b"POST /v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Content-Type: application/json\r\nContent-Le")
SIXTEEN_MIB = 16 * 1024 * 1024


@dataclass
class Limits:
    """The gateway process and its clinic."""

    server: ServerProcess
    clinic: Clinic

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, label: str) -> str:
        return app_token(self.url, self.clinic.secrets[label])


@pytest.fixture(scope="module")
def limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limits]:
    """A gateway with short read timeouts and dev1 paired with adult1."""
    data = tmp_path_factory.mktemp("limits")
    env = gateway_env(data, NEUROGATE_HEADER_TIMEOUT_SECONDS=str(HEAD_TIMEOUT),
                      NEUROGATE_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT))
    with clinic_server(data, env=env) as (server, clinic, _, _):
        yield Limits(server, clinic)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setblocking(False)
    return sock


def _read_until_closed(socks: list[socket.socket], within: float) -> dict[socket.socket, bytes]:
    """What each socket received until the server closed it; a socket still open after
    ``within`` seconds is missing from the result."""
    received = dict.fromkeys(socks, b"")
    closed: dict[socket.socket, bytes] = {}
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + within
    while len(closed) < len(socks) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                received[sock] += chunk
                continue
            selector.unregister(sock)
            closed[sock] = received[sock]
    selector.close()
    return closed


def test_half_sent_heads_are_closed_while_a_device_still_connects(limits: Limits) -> None:
    """200 half-sent request heads and a trickling one do not stop a device from connecting
    and streaming; the server answers each with 408 and closes it."""
    half = [_connect(limits.server.port) for _ in range(HALF_OPEN)]
    for sock in half:
        sock.sendall(HALF_HEAD)
    trickler = _connect(limits.server.port)
    trickler.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    stop = threading.Event()

    def trickle() -> None:  # one header byte every 0.2 s: never a complete head
        while not stop.wait(0.2):
            try:
                trickler.send(b"a")
            except (BlockingIOError, OSError):
                return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        # Meanwhile: a device gets a token, connects, is welcomed and streams a frame.
        assert httpx.get(f"{limits.url}/healthz", timeout=10).status_code == 200
        device, welcome = open_device(limits.url, limits.token("dev1"))
        assert welcome["type"] == "welcome", welcome
        device.send(encode_frame(synthetic_uv(10, 0), sequence=0, timestamp=time.time()))

        closed = _read_until_closed([*half, trickler], within=CLOSE_WITHIN)
        assert len(closed) == HALF_OPEN + 1, (
            f"{HALF_OPEN + 1 - len(closed)} half-sent requests were still open after "
            f"{CLOSE_WITHIN:g} s")
        for answer in closed.values():
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:200]
            assert answer.endswith(b"The request head was not complete within 2 seconds; "
                                   b"send the request line and all headers at once.")
        # The device's WebSocket outlives both read timeouts: they end with its upgrade.
        time.sleep(BODY_TIMEOUT + 1)
        device.send(encode_frame(synthetic_uv(10, 10), sequence=1, timestamp=time.time()))
        device.ping().wait(timeout=10)
        device.send(json.dumps({"type": "bye"}))
        device.close()
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in [*half, trickler]:
            sock.close()


def test_silent_connection_is_closed_without_an_answer(limits: Limits) -> None:
    """A connection that never sends a byte is closed, with no 408 (it asked nothing)."""
    sock = _connect(limits.server.port)
    try:
        closed = _read_until_closed([sock], within=CLOSE_WITHIN)
        assert closed == {sock: b""}, f"The silent connection got {closed.get(sock)!r}"
    finally:
        sock.close()


def test_half_sent_body_is_closed(limits: Limits) -> None:
    """A complete head whose body never finishes is closed once the body timeout passes."""
    sock = _connect(limits.server.port)
    try:
        sock.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                     b'{"username"')
        closed = _read_until_closed([sock], within=CLOSE_WITHIN)
        assert sock in closed, f"The half-sent body was still open after {CLOSE_WITHIN:g} s"
    finally:
        sock.close()


def test_keep_alive_connection_outlives_the_head_timeout(limits: Limits) -> None:
    """Complete requests on one kept-alive connection are answered, even when together they
    take longer than the head timeout (the timer runs per request, not per connection)."""
    sock = socket.create_connection(("127.0.0.1", limits.server.port), timeout=10)
    try:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while not answer.endswith(b"}"):
                chunk = sock.recv(4096)
                assert chunk, f"The gateway closed a kept-alive connection after {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
            time.sleep(HEAD_TIMEOUT * 0.75)
    finally:
        sock.close()


def _ws_handshake(port: int, path: str, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
                  ).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"The gateway closed the handshake: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_sixteen_mib_message_is_refused_from_its_header(limits: Limits) -> None:
    """A 16 MiB WebSocket message is refused with 1009 after its frame header alone: the
    gateway closes before the client has sent more than 1 KiB of it."""
    sock = _ws_handshake(limits.server.port, "/v1/stream/ingest", limits.token("dev1"))
    try:
        mask = os.urandom(4)
        header = struct.pack("!BBQ", 0x82, 0x80 | 127, SIXTEEN_MIB) + mask
        sock.sendall(header + bytes(1024))
        frame = b""
        while len(frame) < 4:
            chunk = sock.recv(4096)
            assert chunk, f"The gateway closed without a close frame after {frame!r}"
            frame += chunk
        assert frame[0] == 0x88, frame  # FIN + close
        length = frame[1] & 0x7F
        assert length >= 2
        (code,) = struct.unpack("!H", frame[2:4])
        assert code == 1009
    finally:
        sock.close()


def test_protocol_document_states_the_message_limit() -> None:
    """docs/protocol.md names the WebSocket message limit the server applies."""
    from neurogate.gateway._server import WS_MAX_MESSAGE_BYTES

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text("utf-8")
    assert f"{WS_MAX_MESSAGE_BYTES} bytes" in doc


def test_responses_carry_security_headers_and_no_server_header(limits: Limits) -> None:
    """A real process sends no Server header and the security headers."""
    response = httpx.get(f"{limits.url}/healthz", timeout=10)
    assert "server" not in response.headers
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("header_timeout_seconds", 0, r"NEUROGATE_HEADER_TIMEOUT_SECONDS\. Allowed values are "
     r"greater than 0 and at most 300 seconds, but got 0\.0 instead"),
    ("body_timeout_seconds", 301, r"NEUROGATE_BODY_TIMEOUT_SECONDS\. Allowed values are "
     r"greater than 0 and at most 300 seconds, but got 301\.0 instead"),
    ("limit_concurrency", 0, r"NEUROGATE_LIMIT_CONCURRENCY\. It must be at least 1, but got 0"),
    ("backlog", -1, r"NEUROGATE_BACKLOG\. It must be at least 1, but got -1"),
])
def test_server_limit_settings_name_a_bad_value(field: str, value: float, message: str) -> None:
    """A timeout or limit out of range is refused at start-up, naming the setting."""
    with pytest.raises(ValueError, match=message):
        Settings(**{field: value})
