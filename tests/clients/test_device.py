"""The vendor SDK against a small WebSocket server that speaks the protocol's ingest side
(the real gateway is exercised in tests/e2e/test_devices_*.py): frames, sequence numbers,
timestamps, loss accounting, reconnects and refusals; and token handling."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from neurogate_client import (
    ClientError,
    CredentialsRejected,
    DeviceClient,
    GatewayUnavailable,
    StreamInfo,
    StreamRefused,
    TokenSource,
)
from neurogate_client.wire import decode_header, decode_samples
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

RATE = 250.0
INFO = StreamInfo(("C3", "C4"), ("eeg", "eeg"), RATE)


class FakeIngest:
    """The ingest side of the protocol: hello, welcome, binary frames; scripted refusals
    and dropped connections."""

    def __init__(self) -> None:
        self.connections: list[dict[str, Any]] = []
        self.handled = threading.Semaphore(0)  # released when a connection's handler ends
        self.refusals: list[tuple[int, str]] = []
        self.drop_after: int | None = None
        self.server = serve(self._handle, "127.0.0.1", 0)
        self.port = int(self.server.socket.getsockname()[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handle(self, ws: ServerConnection) -> None:
        try:
            self._serve_one(ws)
        finally:
            self.handled.release()

    def wait_handled(self, n: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``n`` connections were fully handled (the server runs in a thread)."""
        for _ in range(n):
            assert self.handled.acquire(timeout=timeout), "the fake ingest never finished"

    def _serve_one(self, ws: ServerConnection) -> None:
        seen: dict[str, Any] = {"auth": ws.request.headers.get("Authorization") if ws.request
                                else None, "hello": json.loads(ws.recv()), "frames": []}
        self.connections.append(seen)
        if self.refusals:
            code, text = self.refusals.pop(0)
            name = {4400: "bad_hello", 4401: "unauthenticated", 4403: "unpaired"}.get(
                code, "bad_frame")
            ws.send(json.dumps({"type": "error", "code": name, "message": text}))
            ws.close(code)
            return
        ws.send(json.dumps({"type": "welcome", "protocol": 1, "stream": "s1",
                            "max_frame_bytes": 1 << 20}))
        try:
            for message in ws:
                if isinstance(message, bytes):
                    seen["frames"].append(message)
                    if self.drop_after is not None and len(seen["frames"]) >= self.drop_after:
                        self.drop_after = None
                        ws.socket.shutdown(socket.SHUT_RDWR)  # abrupt: no close frame
                        return
                elif json.loads(message).get("type") == "bye":
                    seen["bye"] = True
                    ws.close(1000)
                    return
        except (ConnectionClosed, OSError):
            pass

    def frames(self) -> list[tuple[int, float, np.ndarray]]:
        """(sequence, timestamp, samples) of every frame received, over all connections."""
        out = []
        for seen in self.connections:
            for frame in seen["frames"]:
                header = decode_header(frame)
                out.append((header.sequence, header.timestamp, decode_samples(frame, header)))
        return out

    def close(self) -> None:
        self.server.shutdown()


class Tokens:
    """A token endpoint (an httpx mock transport) that counts and numbers its tokens."""

    def __init__(self, *, status: int = 200, lifetime: int = 600) -> None:
        self.status, self.lifetime, self.issued = status, lifetime, 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/oauth/token"
        assert b"grant_type=client_credentials" in request.content
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "invalid_client"})
        self.issued += 1
        return httpx.Response(200, json={"access_token": f"tok{self.issued}",
                                         "token_type": "Bearer", "expires_in": self.lifetime})

    def source(self, url: str, **kwargs: Any) -> TokenSource:
        http = httpx.Client(transport=httpx.MockTransport(self.handler))
        return TokenSource(url, "dev-id", "dev-secret", http=http, **kwargs)


@pytest.fixture
def ingest() -> Iterator[FakeIngest]:
    """A fake ingest endpoint on loopback."""
    server = FakeIngest()
    yield server
    server.close()


def _client(url: str, **options: Any) -> DeviceClient:
    return DeviceClient(url, client_id="dev-id", client_secret="dev-secret", info=INFO,
                        tokens=Tokens().source(url), **options)


def _samples(n: int, start: int = 0) -> np.ndarray:
    k = start + np.arange(n)
    return np.vstack([1e-6 * k, -1e-6 * k])


def test_client_sends_hello_then_numbered_frames(ingest: FakeIngest) -> None:
    """The hello is the layout's; frames carry consecutive sequence numbers, consistent
    timestamps and float32 volts; a long push is split into frames of max_frame_s."""
    t0 = 1_800_000_000.0
    with _client(ingest.url, max_frame_s=0.1) as client:
        assert client.wait_connected(5)
        client.push(_samples(10), t0)
        client.push(_samples(60, 10), t0 + 10 / RATE)  # 0.24 s: split into 25+25+10
        assert client.flush(5)
        stats = client.close()
    ingest.wait_handled()
    assert ingest.connections[0]["hello"] == INFO.hello()
    assert ingest.connections[0]["auth"] == "Bearer tok1"
    assert ingest.connections[0].get("bye") is True
    frames = ingest.frames()
    # How pushes are cut into frames depends on when the sender wakes; the invariants do
    # not: consecutive numbers, at most max_frame_s per frame, contiguous timestamps.
    sizes = [f[2].shape[1] for f in frames]
    assert [f[0] for f in frames] == list(range(len(frames)))
    assert sum(sizes) == 70 and max(sizes) <= 25 and len(frames) >= 3
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    np.testing.assert_allclose([f[1] for f in frames], t0 + starts / RATE)
    got = np.concatenate([f[2] for f in frames], axis=1)
    np.testing.assert_array_equal(got, _samples(70).astype(np.float32))
    assert stats.pushed_samples == stats.delivered_samples == 70
    assert stats.lost_samples == stats.buffered_samples == 0


def test_client_moves_a_timestamp_that_overlaps_the_previous_frame(ingest: FakeIngest
                                                                   ) -> None:
    """A device clock running slow would overlap frames; the client moves the timestamp
    to where the previous frame ended and counts it."""
    t0 = 1_800_000_000.0
    with _client(ingest.url) as client:
        client.push(_samples(10), t0)
        client.push(_samples(10), t0 + 0.01)  # the first frame ends at t0 + 0.04
        client.push(_samples(10), t0 + 1.0)  # a real gap is kept
        assert client.flush(5)
    assert [f[1] for f in ingest.frames()] == [t0, t0 + 10 / RATE, t0 + 1.0]
    assert client.stats().retimed_frames == 1


@pytest.mark.parametrize(("samples", "match"), [
    ([[0.0, 1.0]], r"real numeric numpy array .* got list"),
    (np.zeros((2, 3), dtype=complex), r"real numeric numpy array .* got complex128"),
    (np.zeros((3, 2)), r"shape \(2, n_times\) for the 2 declared channels, but got shape "
                       r"\(3, 2\); samples are \(n_channels, n_times\), not transposed"),
    (np.array([[0.0, np.nan], [0.0, 0.0]]), r"NaN or infinite"),
    (np.full((2, 3), 35.0), r"\|value\| 35, above 1 V: samples must be in volts\. Multiply "
                            r"microvolts by 1e-6"),
])
def test_client_push_refuses_malformed_samples(samples: Any, match: str) -> None:
    """Samples are checked before anything is queued."""
    client = _client("http://127.0.0.1:9")
    with pytest.raises(ClientError, match=match):
        client.push(samples, 1_800_000_000.0)
    assert client.stats().pushed_samples == 0


def test_client_counts_loss_while_the_gateway_is_away() -> None:
    """With no gateway, the bounded buffer keeps the newest frames and counts the rest
    lost; what is still buffered at close is lost too; pushed == delivered + lost."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    client = _client(f"http://127.0.0.1:{port}", buffer_s=0.2, backoff_initial_s=0.05,
                     backoff_max_s=0.1)
    with client:
        for i in range(20):
            client.push(_samples(10, 10 * i), 1_800_000_000.0 + i * 10 / RATE)
        deadline = time.monotonic() + 5
        while client.stats().last_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        middle = client.stats()
        assert middle.buffered_samples == 50 and middle.lost_samples == 150
        assert not middle.connected and "ConnectionRefusedError" in str(middle.last_error)
        stats = client.close(timeout=0.2)
    assert stats.pushed_samples == 200 and stats.delivered_samples == 0
    assert stats.lost_samples == 200 and stats.lost_frames == 20


def test_client_reconnects_and_numbers_continue(ingest: FakeIngest) -> None:
    """When the connection drops, the client reconnects; sequence numbers continue, and
    every frame reaches the server at least once (unconfirmed ones are sent again)."""
    ingest.drop_after = 3
    with _client(ingest.url, backoff_initial_s=0.05) as client:
        for i in range(8):
            client.push(_samples(10, 10 * i), 1_800_000_000.0 + i * 10 / RATE)
            time.sleep(0.03)
        assert client.flush(5)
        stats = client.close()
    ingest.wait_handled(2)
    assert len(ingest.connections) == 2 and stats.connections == 2
    first = [decode_header(f).sequence for f in ingest.connections[0]["frames"]]
    second = [decode_header(f).sequence for f in ingest.connections[1]["frames"]]
    assert first == [0, 1, 2]
    assert second == sorted(second) and second[-1] == 7
    assert set(first) | set(second) == set(range(8))
    assert stats.lost_samples == 0 and stats.delivered_samples == 80
    assert stats.sent_frames == len(first) + len(second)
    assert stats.resent_frames == len(set(first) & set(second))


def test_client_stops_for_good_when_the_hello_is_refused(ingest: FakeIngest) -> None:
    """A refused hello (4400) is fatal: the error says how to register the layout, and
    push raises it from then on."""
    ingest.refusals = [(4400, "The hello does not match this device's registration.")]
    client = _client(ingest.url)
    with client:
        with pytest.raises(StreamRefused, match=r"close code 4400.*does not match.*"
                                                r"\"channel_names\": \[\"C3\", \"C4\"\].*"
                                                r"POST /v1/devices") as refused:
            client.wait_connected(5)
        assert refused.value.close_code == 4400
        with pytest.raises(StreamRefused):
            client.push(_samples(10), 1_800_000_000.0)
    assert len(ingest.connections) == 1


def test_client_fetches_a_new_token_when_the_gateway_refuses_it(ingest: FakeIngest) -> None:
    """A 4401 (token expired or revoked) makes the client fetch a fresh token and retry."""
    ingest.refusals = [(4401, "The access token is invalid or expired.")]
    tokens = Tokens()
    client = DeviceClient(ingest.url, client_id="dev-id", client_secret="dev-secret",
                          info=INFO, tokens=tokens.source(ingest.url))
    with client:
        assert client.wait_connected(5)
    assert [c["auth"] for c in ingest.connections] == ["Bearer tok1", "Bearer tok2"]
    assert client.stats().token_fetches == 2


def test_client_push_is_thread_safe(ingest: FakeIngest) -> None:
    """Pushes from four threads get distinct, gap-free sequence numbers and all arrive."""
    with _client(ingest.url, buffer_s=60.0) as client:
        assert client.wait_connected(5)

        def pusher(offset: int) -> None:
            for i in range(25):
                client.push(_samples(2), 1_800_000_000.0 + offset * 1000 + i)

        threads = [threading.Thread(target=pusher, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.flush(10)
    assert sorted(f[0] for f in ingest.frames()) == list(range(100))
    assert client.stats().delivered_samples == 200


def test_token_source_refreshes_before_expiry() -> None:
    """A token is reused while fresh and replaced when 20 % (at most 30 s) of its life is
    left."""
    now = [0.0]
    tokens = Tokens(lifetime=100)
    source = tokens.source("http://gw.test", clock=lambda: now[0])
    assert source.token() == "tok1"
    now[0] = 79.0
    assert source.token() == "tok1"
    now[0] = 80.0
    assert source.token() == "tok2"
    source.invalidate()
    assert source.token() == "tok3" and source.fetches == 3
    assert "dev-secret" not in repr(source)


def test_token_source_tells_rejected_from_unreachable() -> None:
    """Wrong credentials are fatal and say how to register; a dead gateway is retryable."""
    with pytest.raises(CredentialsRejected, match=r"refused the client credentials of "
                                                  r"'dev-id' \(invalid_client\).*POST "
                                                  r"/v1/devices"):
        Tokens(status=401).source("http://gw.test").token()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(GatewayUnavailable, match=r"cannot be reached for a token"):
        TokenSource(f"http://127.0.0.1:{port}", "a", "b", timeout=1).token()
    with pytest.raises(ClientError, match=r"'gateway_url' parameter\. It must start with "
                                          r"'http://' or 'https://'"):
        TokenSource("ftp://gw", "a", "b")


def test_client_moves_to_the_next_gateway_address(ingest: FakeIngest) -> None:
    """With a list of addresses, a node that cannot be reached is skipped for the next one;
    a node that drops the connection hands the stream to the next, frames continuing."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"  # closed once the block ends
    second = FakeIngest()
    try:
        ingest.drop_after = 3
        urls = [dead, ingest.url, second.url]
        client = DeviceClient(urls, client_id="dev-id", client_secret="dev-secret", info=INFO,
                              tokens=Tokens().source(ingest.url), backoff_initial_s=0.01,
                              backoff_max_s=0.05)
        with client:
            assert client.wait_connected(timeout=10)
            for k in range(10):
                client.push(_samples(25, 25 * k), 1000.0 + k * 0.1)
            assert client.flush(timeout=10)
            stats = client.stats()
        assert stats.gateway_url == second.url
        assert stats.connections == 2
        assert stats.delivered_samples == stats.pushed_samples == 250
        assert stats.lost_samples == 0
        sequences = sorted({seq for seq, _, _ in ingest.frames() + second.frames()})
        assert sequences == list(range(10))
    finally:
        second.close()
