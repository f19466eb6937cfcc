"""The app subscriber against a small WebSocket server that speaks the protocol's subscribe
side (the real gateway: tests/clients/test_clean_install.py and tests/e2e): typed events,
the binary format, and reconnection that never retries after a refusal or a revocation."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from neurogate_client import (
    AppSubscription,
    ClientError,
    Data,
    Gap,
    Revoked,
    Subscribed,
    SubscriptionRefused,
    TokenSource,
    add_message_listener,
    remove_message_listener,
)
from neurogate_client.wire import KIND_RAW, encode_frame
from websockets.sync.server import ServerConnection, serve

from tests.clients import contract

SUBSCRIBED = {"type": "subscribed", "subject": "p_1", "purpose": "clinical_monitoring",
              "format": "json", "valid_until": 2e9,
              "products": {"raw": {"window_s": 0.004, "output_rate_hz": 250.0,
                                   "channels": "electrodes"}},
              "not_allowed": {"reasons": [], "explanations": []}}
DATA = {"type": "data", "product": "raw", "seq": 1, "t": 10.0, "labels": ["C3", "C4"],
        "columns": [], "window_s": 0.004, "rate_hz": 250.0, "data": [[1e-6, 2e-6], [3e-6, 4e-6]]}
REVOKED = {"type": "revoked", "reason": "consent.revoked", "reasons": ["consent.revoked"],
           "explanations": ["The subject revoked this consent."]}
REFUSED = {"type": "refused", "subject": "p_1", "purpose": "clinical_monitoring",
           "reasons": ["default-deny"], "explanations": ["No consent covers this."]}
STORE = {"type": "error", "code": "store_unavailable",
         "message": "The consent store cannot be read, so no data may flow."}

Script = Callable[[ServerConnection], None]


class FakeSubscribe:
    """The subscribe side of the protocol: one scripted behaviour per connection."""

    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.queries: list[str] = []
        self.server = serve(self._handle, "127.0.0.1", 0)
        self.port = int(self.server.socket.getsockname()[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handle(self, ws: ServerConnection) -> None:
        self.queries.append(ws.request.path if ws.request else "")
        script = self.scripts.pop(0) if self.scripts else _refuse
        script(ws)

    def close(self) -> None:
        self.server.shutdown()


def _send(*messages: dict[str, Any] | bytes, close: int | None = None,
          abrupt: bool = False) -> Script:
    def script(ws: ServerConnection) -> None:
        for message in messages:
            ws.send(message if isinstance(message, bytes) else json.dumps(message))
        if abrupt:
            ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: 1006 for the client
        elif close is not None:
            ws.close(close)
        else:
            for _ in ws:  # stay open until the client goes
                pass
    return script


_refuse = _send(REFUSED, close=4403)


def _tokens(url: str) -> TokenSource:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "tok", "expires_in": 600})
    return TokenSource(url, "app-id", "app-secret",
                       http=httpx.Client(transport=httpx.MockTransport(handler)))


@pytest.fixture
def fake() -> Iterator[Callable[[list[Script]], FakeSubscribe]]:
    servers: list[FakeSubscribe] = []

    def start(scripts: list[Script]) -> FakeSubscribe:
        servers.append(FakeSubscribe(scripts))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _subscription(server: FakeSubscribe, **options: Any) -> AppSubscription:
    return AppSubscription(server.url, client_id="app-id", client_secret="app-secret",
                           subject="p_1", purpose="clinical_monitoring",
                           backoff_initial_s=0.01, backoff_max_s=0.05,
                           tokens=_tokens(server.url), **options)


def test_subscriber_yields_typed_events_until_revoked(fake: Callable[..., FakeSubscribe]
                                                     ) -> None:
    """subscribed, data, gap and revoked arrive as Subscribed, Data (an array in volts),
    Gap and Revoked; the stream then ends with 4410 and is not resumed."""
    server = fake([_send(SUBSCRIBED, DATA, {"type": "gap", "dropped": 4}, REVOKED,
                         close=4410)])
    with _subscription(server, reconnect=True) as sub:
        assert sub.subscribed == SUBSCRIBED
        events = list(sub.events())
        assert sub.next_event(timeout=0.5) is None
    data, gap, revoked = events
    assert isinstance(data, Data) and data.product == "raw" and data.seq == 1
    np.testing.assert_array_equal(data.data, [[1e-6, 2e-6], [3e-6, 4e-6]])
    assert (data.labels, data.rate_hz, data.binary) == (("C3", "C4"), 250.0, False)
    assert gap == Gap(4)
    assert revoked == Revoked("consent.revoked", ("consent.revoked",),
                              ("The subject revoked this consent.",))
    assert sub.close_code == 4410 and sub.revoked == REVOKED
    assert (len(server.queries), sub.connections) == (1, 1)
    assert "format=json" in server.queries[0] and "subject=p_1" in server.queries[0]


def test_subscriber_decodes_binary_frames(fake: Callable[..., FakeSubscribe]) -> None:
    """With format=binary a raw frame (kind 1) becomes Data with binary=True, float32
    volts in (n_rows, n_samples), the subscription's seq and the frame's time."""
    samples = np.array([[1e-6, 2e-6, 3e-6], [-1e-6, -2e-6, -3e-6]])
    frame = encode_frame(samples, sequence=5, timestamp=12.5, kind=KIND_RAW)
    server = fake([_send({**SUBSCRIBED, "format": "binary"}, frame, close=1000)])
    with _subscription(server, format="binary") as sub:
        event = sub.next_event(timeout=5)
        assert sub.next_event(timeout=5) is None
    assert isinstance(event, Data)
    assert (event.product, event.seq, event.t, event.binary) == ("raw", 5, 12.5, True)
    np.testing.assert_allclose(event.data, samples.astype(np.float32), rtol=0, atol=0)
    assert "format=binary" in server.queries[0]
    assert sub.close_code == 1000


def test_subscriber_reconnects_after_a_break_and_says_so(fake: Callable[..., FakeSubscribe]
                                                        ) -> None:
    """A connection that ends without a close frame (1006), then one the store fails
    (4503): each time the subscription connects again and yields a new Subscribed."""
    server = fake([_send(SUBSCRIBED, DATA, abrupt=True), _send(SUBSCRIBED, STORE, close=4503),
                   _send(SUBSCRIBED, DATA, REVOKED, close=4410)])
    with _subscription(server, reconnect=True) as sub:
        kinds = [type(e).__name__ for e in sub.events()]
    assert kinds == ["Data", "Subscribed", "Notice", "Subscribed", "Data", "Revoked"]
    assert (len(server.queries), sub.connections, sub.close_code) == (3, 3, 4410)


def test_subscriber_without_reconnect_ends_at_a_break(fake: Callable[..., FakeSubscribe]
                                                     ) -> None:
    """reconnect=False (the default): a break ends the stream with its close code."""
    server = fake([_send(SUBSCRIBED, DATA, abrupt=True)])
    with _subscription(server) as sub:
        assert [type(e) for e in sub.events()] == [Data]
    assert (sub.close_code, len(server.queries)) == (1006, 1)


def test_subscriber_never_retries_after_a_refusal(fake: Callable[..., FakeSubscribe]) -> None:
    """A refusal on reconnecting (the consent ended while away: 4403) raises
    SubscriptionRefused with the policy's reasons, and nothing is tried again."""
    server = fake([_send(SUBSCRIBED, abrupt=True), _refuse,
                   _send(SUBSCRIBED, DATA, close=1000)])
    with _subscription(server, reconnect=True) as sub:
        with pytest.raises(SubscriptionRefused, match=r"close code 4403, reasons "
                                                      r"\['default-deny'\]") as info:
            list(sub.events())
        assert sub.next_event(timeout=0.2) is None
    assert info.value.reasons == ("default-deny",)
    assert (sub.close_code, len(server.queries)) == (4403, 2)


def test_subscriber_refused_at_first_raises(fake: Callable[..., FakeSubscribe]) -> None:
    """A subscription refused at once raises on open, with close code and reasons."""
    server = fake([_refuse])
    with pytest.raises(SubscriptionRefused) as info:
        _subscription(server, reconnect=True).open()
    assert (info.value.close_code, info.value.reasons) == (4403, ("default-deny",))
    assert len(server.queries) == 1


def test_subscriber_checks_its_parameters() -> None:
    """A bad format or an empty address list is refused with a message naming it."""
    with pytest.raises(ClientError, match=r"'format' parameter\. Allowed values are 'json' "
                                          r"and 'binary', but got 'xml' instead\."):
        AppSubscription("http://127.0.0.1:1", client_id="a", client_secret="b", subject="s",
                        purpose="p", format="xml")
    with pytest.raises(ClientError, match=r"'gateway_url' parameter is an empty list"):
        AppSubscription([], client_id="a", client_secret="b", subject="s", purpose="p")
    assert Subscribed("s", "p", "json", {}, 0.0).not_allowed == {}


def test_subscriber_message_listeners_see_each_json_message(
        fake: Callable[..., FakeSubscribe]) -> None:
    """add_message_listener gets ("subscribe", message) for each JSON message, until removed."""
    seen: list[tuple[str, str]] = []

    def listener(endpoint: str, message: dict[str, Any]) -> None:
        seen.append((endpoint, message["type"]))

    server = fake([_send(SUBSCRIBED, DATA, close=1000), _send(SUBSCRIBED, close=1000)])
    add_message_listener(listener)
    try:
        with _subscription(server) as sub:
            list(sub.events())
    finally:
        remove_message_listener(listener)
    with _subscription(server) as sub:
        list(sub.events())
    assert seen == [("subscribe", "subscribed"), ("subscribe", "data")]


def test_subscriber_messages_off_the_contract_are_caught(
        fake: Callable[..., FakeSubscribe]) -> None:
    """The tests' AsyncAPI check (tests/clients/contract.py) records a message that breaks
    the document (a gap whose count is a string), read by any client of the stream path."""
    server = fake([_send(SUBSCRIBED, {"type": "gap", "dropped": "3"}, close=1000)])
    contract.take_failures()
    with _subscription(server) as sub:
        list(sub.events())
    failures = contract.take_failures()
    assert len(failures) == 1
    assert "'3' is not of type 'integer'" in failures[0]
