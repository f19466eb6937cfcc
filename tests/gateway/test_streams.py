"""The stream hub's fan-out: products computed once, reduced once, rendered once.

These drive a real `StreamHub`, `LiveStream` and pipeline in process (no sockets); the
end-to-end tests in tests/e2e cover the same path over WebSockets.
"""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest
from neurogate_client.wire import KIND_RAW, Hello, decode_header, decode_samples, encode_frame

from neurogate.gateway.streams import (
    MAX_QUEUE_AGE_SECONDS,
    Grant,
    LiveStream,
    StreamHub,
    Subscription,
    render_json,
    with_sequence,
)
from neurogate.signal import Resolution

RATE = 1000.0
NAMES = ("Fp1", "Fp2", "C3", "C4")


def _hub() -> tuple[StreamHub, LiveStream]:
    hub = StreamHub()
    hub.renew_lease(3600.0)
    hello = Hello(NAMES, ("eeg",) * 4, ("uV",) * 4, RATE)
    stream = LiveStream(device_id="device", subject_id="subject", hello=hello)
    stream._spend = lambda n_samples: None  # type: ignore[method-assign]  # faster than real time
    hub.open_stream(stream)
    return hub, stream


def _subscribe(hub: StreamHub, products: dict[str, Resolution], *, binary: bool = False
               ) -> Subscription:
    sub = Subscription(id=uuid.uuid4().hex, app_id=uuid.uuid4().hex, subject_id="subject",
                       pseudonym="p", purpose_id="purpose", binary=binary,
                       grant=Grant(products, time.time() + 3600.0))
    hub.subscribe(sub)
    return sub


def _feed(hub: StreamHub, stream: LiveStream, seconds: float, chunk: int = 20) -> None:
    rng = np.random.default_rng(0)
    first = stream.expected_sequence or 0  # continue the stream
    for k in range(first, first + round(seconds * RATE / chunk)):
        samples = 20.0 * rng.standard_normal((len(NAMES), chunk)) + 5000.0  # µV, DC offset
        frame = encode_frame(samples, sequence=k, timestamp=k * chunk / RATE)
        assert hub.ingest(stream, frame) == []


RAW_250 = Resolution(1 / 250, 250.0, "electrodes")


def test_apps_at_one_resolution_share_one_reducer_and_the_same_bytes() -> None:
    """Two JSON apps taking raw at 250 Hz share a reducer and get identical messages but
    for their own sequence numbers; a binary app gets the same samples as frames."""
    hub, stream = _hub()
    first, second = _subscribe(hub, {"raw": RAW_250}), _subscribe(hub, {"raw": RAW_250})
    second.sequence = 100  # its own numbering
    binary = _subscribe(hub, {"raw": RAW_250}, binary=True)
    _feed(hub, stream, 0.2)
    assert list(stream.reducers) == [("raw", RAW_250)]
    a = [json.loads(m) for m in first.queue]
    b = [json.loads(m) for m in second.queue]
    assert [m["seq"] for m in a] == list(range(1, 11))
    assert [m["seq"] for m in b] == list(range(101, 111))
    for x, y in zip(a, b, strict=True):
        assert {**x, "seq": 0} == {**y, "seq": 0}
        assert x["rate_hz"] == 250.0
    frames = list(binary.queue)
    assert [decode_header(f).sequence for f in frames] == list(range(1, 11))
    assert {decode_header(f).kind for f in frames} == {KIND_RAW}
    got = np.concatenate([decode_samples(f, decode_header(f)) for f in frames], axis=1)
    sent = np.concatenate([m["data"] for m in a], axis=1)
    np.testing.assert_allclose(got, sent, rtol=1e-6)  # float32 on the wire
    assert got[0, 0] == pytest.approx(5000e-6, rel=0.02)  # starts at the DC offset, not 0 V


def test_windowed_products_only_while_taken() -> None:
    """Nobody takes band power: none is computed; a subscription to it gets it."""
    hub, stream = _hub()
    _subscribe(hub, {"raw": RAW_250})
    _feed(hub, stream, 2.5)
    assert [key[0] for key in stream.reducers] == ["raw"]
    power = _subscribe(hub, {"band_power": stream.pipeline.resolutions["band_power"]})
    _feed(hub, stream, 1.0)
    products = {json.loads(m)["product"] for m in power.queue}
    assert products == {"band_power"}
    hub.unsubscribe(power)
    _feed(hub, stream, 0.1)
    assert [key[0] for key in stream.reducers] == ["raw"]  # its reducer is gone


def test_a_pause_or_a_new_grant_takes_effect_at_the_next_chunk() -> None:
    """Each chunk's groups are reused while the same subscriptions may deliver under the
    same grants; a pause stops delivery at the next chunk, and a re-decided grant with
    other products delivers those from the next chunk on."""
    hub, stream = _hub()
    sub = _subscribe(hub, {"raw": RAW_250})
    _feed(hub, stream, 0.1)
    assert len(sub.queue) == 5
    sub.open = False  # paused by a pending consent change
    _feed(hub, stream, 0.1)
    assert len(sub.queue) == 5
    filtered = Resolution(1 / 250, 250.0, "electrodes")
    sub.grant = Grant({"filtered": filtered}, time.time() + 3600.0)  # decided again
    sub.open = True
    _feed(hub, stream, 0.1)
    assert [json.loads(m)["product"] for m in sub.queue] == ["raw"] * 5 + ["filtered"] * 5
    sub.grant = Grant({"filtered": filtered}, time.time() - 1.0)  # its consent expired
    _feed(hub, stream, 0.1)
    assert len(sub.queue) == 10


def test_render_and_sequence_patch_round_trip() -> None:
    """render_json writes full precision; with_sequence changes only the header's number."""
    hub, stream = _hub()
    sub = _subscribe(hub, {"raw": RAW_250})
    _feed(hub, stream, 0.02)
    message = json.loads(sub.queue[0])
    assert message["seq"] == 1
    assert list(message) == ["type", "product", "seq", "t", "labels", "columns", "window_s",
                             "rate_hz", "data"]
    tiny = np.array([[1.234567890123e-13, 3.0e-14]])
    frame = encode_frame(tiny, sequence=7, timestamp=1.5, kind=KIND_RAW)
    patched = with_sequence(frame, 2**32 + 9)
    assert decode_header(patched).sequence == 9
    assert patched[8:] == frame[8:] and patched[:4] == frame[:4]
    from neurogate.signal import Frame

    band = Frame("band_power", 0.0, tiny, ("global",), ("a", "b"),
                 Resolution(2.0, 2.0, "global"))
    assert json.loads(render_json(band, 3))["data"] == [[1.234567890123e-13, 3e-14]]


def test_take_drops_messages_older_than_the_bound_and_counts_them() -> None:
    """A message that waited longer than MAX_QUEUE_AGE_SECONDS is dropped and counted for
    the next gap; newer ones are still delivered, oldest first."""
    sub = _subscribe(StreamHub(), {})
    for text in ("old-1", "old-2", "new"):
        sub.enqueue(text)
    now = time.monotonic()
    sub.queued_at[0] = sub.queued_at[1] = now - MAX_QUEUE_AGE_SECONDS - 0.5
    assert sub.take() == "new"
    assert (sub.dropped, sub.unreported_drops) == (2, 2)
    assert sub.take() is None
    sub.enqueue("a")
    sub.queue.popleft()  # taken directly, as an in-process subscriber may
    sub.enqueue("b")
    assert sub.take() == "b"


def test_protocol_doc_states_the_slow_app_bounds() -> None:
    """docs/protocol.md gives the queue's age bound, the buffer sizes and the close timeout
    the gateway uses, and no rounding of JSON values."""
    from pathlib import Path

    from neurogate.gateway.routes import streams as routes
    from neurogate.gateway.streams import QUEUE_LIMIT

    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert f"queue ({QUEUE_LIMIT} messages)" in doc
    assert f"in the queue longer than {MAX_QUEUE_AGE_SECONDS:g} s" in doc
    assert f"at most {routes.WRITE_BUFFER_BYTES // 1024} KiB in the connection's write" in doc
    assert f"{routes.SEND_BUFFER_BYTES // 1024} KiB (`SO_SNDBUF`" in doc
    assert f"closing\nmessage has {routes.CLOSE_TIMEOUT_SECONDS:g} s to go out" in doc
    assert "decimal places" not in doc
    assert "shortest decimal that\nreads back as the same IEEE 754 double" in doc


def test_take_records_when_the_message_was_queued() -> None:
    """`take` gives the sender the queue time of the message, from which its send
    deadline (queued + MAX_QUEUE_AGE_SECONDS) is counted."""
    sub = _subscribe(StreamHub(), {})
    sub.enqueue("a")
    queued = sub.queued_at[0]
    assert sub.take() == "a"
    assert sub.taken_at == queued


def test_streams_started_together_end_their_windows_at_phases_of_their_own() -> None:
    """Each stream's first 2 s window starts within its first hop (0.5 s), at a phase of
    its own, so streams started at once do not all compute windows in one turn."""
    firsts = []
    for _ in range(12):
        hub, stream = _hub()
        sub = _subscribe(hub, {"band_power": Resolution(2.0, 2.0, "electrodes")})
        _feed(hub, stream, 3.0)
        times = [json.loads(m)["t"] for m in sub.queue]
        assert times, "no band_power frame after 3 s"
        np.testing.assert_allclose(np.diff(times), 0.5)
        firsts.append(times[0])
    assert all(0.0 <= t < 0.5 for t in firsts), firsts
    assert len(set(firsts)) > 1, firsts
