"""Misbehaving devices and apps against a real gateway process, next to a healthy stream.

dev1 streams for adult1 to clinic_app the whole time (the healthy pair). Every bad
handshake and bad frame comes from a second connection, mostly dev2 (paired with child1);
each test ends by checking that the healthy app still receives data without a gap.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from neurogate_client.wire import HEADER, MAX_FRAME_BYTES, encode_frame
from sqlmodel import col, select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from neurogate.consent.models import LedgerLeaf
from neurogate.gateway.state import Gateway
from tests.e2e.conftest import ServerProcess, clinic_server
from tests.e2e.live import (
    RATE,
    AppReceiver,
    DeviceThread,
    app_token,
    hello,
    subscribe,
    synthetic_uv,
    ws_url,
)
from tests.gateway.conftest import Clinic

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
CHUNK = 10  # samples per frame


@dataclass
class Live:
    """The gateway process, the clinic in it, and an in-process view of its database."""

    server: ServerProcess
    clinic: Clinic
    gateway: Gateway

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, label: str) -> str:
        return app_token(self.url, self.clinic.secrets[label])


@dataclass
class Healthy:
    """dev1 streaming in real time for adult1, and clinic_app receiving it."""

    device: DeviceThread
    app: AppReceiver
    started: float  # wall clock just before the device's first frame


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One gateway process with a populated clinic: dev1 paired with adult1, dev2 with
    child1, dev3 registered and never paired."""
    with clinic_server(tmp_path_factory.mktemp("ingest"),
                       pairs=(("dev1", "adult1"), ("dev2", "child1"))) as (
            server, clinic, client, gateway):
        # The clinic's third device, registered and never paired.
        response = client.post("/v1/devices", headers=clinic.as_("vendor1"), json={
            "model": "Cap", "serial": "SN-dev3", "channel_names": ["C3", "C4"],
            "channel_types": ["eeg", "eeg"], "sampling_rate": 250})
        assert response.status_code == 201, response.text
        created = response.json()
        clinic.ids["dev3"] = created["device"]["id"]
        clinic.secrets["dev3"] = (created["credentials"]["client_id"],
                                  created["credentials"]["client_secret"])
        yield Live(server, clinic, gateway)


@pytest.fixture(scope="module")
def healthy(live: Live) -> Iterator[Healthy]:
    """clinic_app subscribed to adult1 first, then dev1 streaming, for the whole module."""
    rows = live.clinic.client.get("/v1/consents", headers=live.clinic.as_("clinic_app")).json()
    app = subscribe(live.url, live.token("clinic_app"), str(rows[0]["subject"]),
                    "clinical_monitoring")
    assert app.first["type"] == "subscribed", app.first
    sock = _open(live.url, "/v1/stream/ingest", live.token("dev1"))
    sock.send(json.dumps(hello()))
    welcome = json.loads(sock.recv(timeout=10))
    assert welcome["type"] == "welcome", welcome
    started = time.time()
    device = DeviceThread(sock, chunk=CHUNK).start()
    try:
        yield Healthy(device, app, started)
    finally:
        device.stop()
        app.close()


# -- helpers -------------------------------------------------------------------------
def _open(base: str, path: str, token: str | None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    return connect(ws_url(base, path), additional_headers=headers, legacy=True)


def _until_closed(sock: ClientConnection, timeout: float = 10.0
                  ) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the gateway closes, and its close code."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            raw = sock.recv(timeout=max(0.01, deadline - time.monotonic()))
            messages.append(json.loads(raw))
    except ConnectionClosed as exc:
        return messages, exc.rcvd.code if exc.rcvd is not None else None
    except TimeoutError:
        pytest.fail(f"The gateway kept the connection open for {timeout} s: {messages}")
    finally:
        sock.close()


def _device(live: Live, label: str = "dev2", message: Any = None
            ) -> tuple[ClientConnection, str]:
    """A device connection after its welcome; returns the socket and the stream id."""
    sock = _open(live.url, "/v1/stream/ingest", live.token(label))
    sock.send(json.dumps(message if message is not None else hello()))
    welcome = json.loads(sock.recv(timeout=10))
    assert welcome["type"] == "welcome", welcome
    return sock, str(welcome["stream"])


def _frames(t0: float, sequences: list[int], first_sample: int = 0) -> list[bytes]:
    """Consecutive good frames with the given sequence numbers, timed from ``t0``."""
    out = []
    for i, seq in enumerate(sequences):
        start = first_sample + i * CHUNK
        out.append(encode_frame(synthetic_uv(CHUNK, start), sequence=seq,
                                timestamp=t0 + start / RATE))
    return out


def _stream_stop(live: Live, stream_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The ledger's stream.stop entry of a device stream (frames, samples, dropped)."""
    deadline = time.monotonic() + timeout
    while True:
        with live.gateway.transaction() as session:
            leaves = session.exec(select(LedgerLeaf).order_by(col(LedgerLeaf.seq).desc())
                                  .limit(200)).all()
            for leaf in leaves:
                entry = json.loads(leaf.entry)
                if entry.get("action") == "stream.stop" and entry.get("stream") == stream_id:
                    return dict(entry)
        assert time.monotonic() < deadline, f"no stream.stop entry for stream {stream_id}"
        time.sleep(0.05)


def _assert_still_flowing(healthy: Healthy) -> None:
    """The healthy app gets data after this moment, and has had no gap or other message."""
    since = time.time()
    deadline = time.monotonic() + 5
    while not any(at > since for at, m in list(healthy.app.messages)
                  if isinstance(m, dict) and m.get("type") == "data"):
        assert time.monotonic() < deadline, "the healthy app received nothing for 5 s"
        time.sleep(0.02)
    messages = [m for _, m in list(healthy.app.messages)]
    assert [m for m in messages if not isinstance(m, dict) or m["type"] != "data"] == []
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(1, len(seqs) + 1))
    assert healthy.app.close_code is None


def _codes(messages: list[dict[str, Any]]) -> list[str]:
    return [m["code"] for m in messages]


# -- app side ------------------------------------------------------------------------
@pytest.mark.parametrize(("query", "token", "close_code", "error", "match"), [
    pytest.param("subject=p_nobody&purpose=clinical_monitoring", "clinic_app", 4404,
                 "not_found", r"No subject with id 'p_nobody' exists", id="unknown-subject"),
    pytest.param("subject={subject}&purpose=mind_reading", "clinic_app", 4400,
                 "invalid_request", r"'purpose_id' parameter\. Allowed values are "
                 r"'clinical_monitoring', .* but got 'mind_reading' instead",
                 id="unknown-purpose"),
    pytest.param("subject={subject}&purpose=clinical_monitoring&format=csv", "clinic_app", 4400,
                 "bad_request", r"'format' parameter\. Allowed values are 'json' and 'binary', "
                 r"but got 'csv' instead", id="bad-format"),
    pytest.param("subject={subject}&purpose=clinical_monitoring", "dev1", 4403, "forbidden",
                 r"needs a app access token with the scope 'stream:subscribe'",
                 id="device-token"),
    pytest.param("subject={subject}&purpose=clinical_monitoring", None, 4401,
                 "unauthenticated", r"Send 'Authorization: Bearer <access token>'",
                 id="no-token"),
])
def test_subscribe_bad_request_closes_with_code(live: Live, healthy: Healthy, query: str,
                                                token: str | None, close_code: int,
                                                error: str, match: str) -> None:
    """A bad subscription gets one error message and its close code; data keeps flowing."""
    rows = live.clinic.client.get("/v1/consents", headers=live.clinic.as_("clinic_app")).json()
    path = "/v1/stream/subscribe?" + query.format(subject=rows[0]["subject"])
    sock = _open(live.url, path, live.token(token) if token else None)

    messages, code = _until_closed(sock)

    assert code == close_code
    assert [m["type"] for m in messages] == ["error"]
    assert messages[0]["code"] == error
    assert re.search(match, messages[0]["message"]), messages[0]["message"]
    _assert_still_flowing(healthy)


# -- device handshake ----------------------------------------------------------------
@pytest.mark.parametrize(("token", "close_code", "error", "match"), [
    pytest.param(None, 4401, "unauthenticated", r"Send 'Authorization: Bearer <access token>'",
                 id="no-token"),
    pytest.param("not-a-token", 4401, "unauthenticated",
                 r"The access token is invalid or expired; request a new one", id="bad-token"),
    pytest.param("app", 4403, "forbidden",
                 r"needs a device access token with the scope 'stream:ingest'", id="app-token"),
])
def test_ingest_bad_token_closes_with_code(live: Live, healthy: Healthy, token: str | None,
                                           close_code: int, error: str, match: str) -> None:
    """A device connection without a valid device token is closed before any hello."""
    bearer = live.token("clinic_app") if token == "app" else token
    sock = _open(live.url, "/v1/stream/ingest", bearer)

    messages, code = _until_closed(sock)

    assert code == close_code
    assert _codes(messages) == [error]
    assert re.search(match, messages[0]["message"]), messages[0]["message"]
    _assert_still_flowing(healthy)


def _channels(*specs: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"name": n, "type": t, "unit": u} for n, t, u in specs]


@pytest.mark.parametrize(("message", "field", "match"), [
    pytest.param("hello", None, r"The hello is not valid JSON", id="not-json"),
    pytest.param(json.dumps(["hello"]), "type", r'must be a JSON object with "type": "hello"',
                 id="not-object"),
    pytest.param(json.dumps({**hello(), "type": "bye"}), "type", r'"type": "hello"',
                 id="wrong-type"),
    pytest.param(json.dumps({**hello(), "protocol": 2}), "protocol",
                 r"Allowed values are 1, but got 2 instead", id="wrong-protocol"),
    pytest.param(json.dumps({**hello(), "channels": _channels(("C3", "eeg", "uV"),
                                                              ("C4", "brain", "uV"))}),
                 "channels[1].type", r"but got 'brain' instead", id="unknown-channel-type"),
    pytest.param(json.dumps({**hello(), "channels": _channels(("C3", "eeg", "microvolt"),
                                                              ("C4", "eeg", "uV"))}),
                 "channels[0].unit", r"but got 'microvolt' instead", id="unknown-unit"),
    pytest.param(json.dumps({**hello(), "sampling_rate": 0}), "sampling_rate",
                 r"above 0 and at most 100000, but got 0 instead", id="zero-rate"),
    pytest.param(json.dumps({**hello(), "sampling_rate": "250"}), "sampling_rate",
                 r"but got '250' instead", id="rate-string"),
    pytest.param(json.dumps(hello(channels=["C3", "Cz"])), "channels[1].name",
                 r"channel names \['C3', 'Cz'\] differ from the registered \['C3', 'C4'\]",
                 id="names-differ"),
    pytest.param(json.dumps({**hello(), "channels": _channels(("C3", "eeg", "uV"),
                                                              ("C4", "eog", "uV"))}),
                 "channels[1].type", r"channel types \['eeg', 'eog'\] differ from the registered "
                       r"\['eeg', 'eeg'\]", id="types-differ"),
    pytest.param(json.dumps(hello(rate=500.0)), "sampling_rate",
                 r"sampling rate 500 Hz differs from the registered 250 Hz", id="rate-differs"),
    pytest.param(json.dumps(hello(channels=["C3", "C4", "Cz"])), "channels",
                 r"does not match this device's registration: channel names", id="3-channels"),
])
def test_ingest_bad_hello_closes_4400(live: Live, healthy: Healthy, message: str,
                                      field: str | None, match: str) -> None:
    """A hello that is malformed or differs from the registration closes with 4400."""
    sock = _open(live.url, "/v1/stream/ingest", live.token("dev2"))
    sock.send(message)

    messages, code = _until_closed(sock)

    assert code == 4400
    assert _codes(messages) == ["bad_hello"]
    assert messages[0]["field"] == field
    assert re.search(match, messages[0]["message"]), messages[0]["message"]
    _assert_still_flowing(healthy)


def test_ingest_unpaired_device_closes_4403(live: Live, healthy: Healthy) -> None:
    """A registered device that is paired with nobody may not stream."""
    sock = _open(live.url, "/v1/stream/ingest", live.token("dev3"))
    sock.send(json.dumps(hello()))

    messages, code = _until_closed(sock)

    assert code == 4403
    assert _codes(messages) == ["unpaired"]
    assert "This device is not paired with a subject" in messages[0]["message"]
    _assert_still_flowing(healthy)


def test_ingest_second_stream_for_device_closes_4409(live: Live, healthy: Healthy) -> None:
    """A second connection of the streaming dev1 is refused; the first keeps streaming."""
    sock = _open(live.url, "/v1/stream/ingest", live.token("dev1"))
    sock.send(json.dumps(hello()))

    messages, code = _until_closed(sock)

    assert code == 4409
    assert _codes(messages) == ["duplicate_stream"]
    assert "This device already has a live stream" in messages[0]["message"]
    _assert_still_flowing(healthy)


def test_ingest_without_hello_closes_4408(live: Live, healthy: Healthy) -> None:
    """A device that says nothing for 10 s is closed with 4408."""
    sock = _open(live.url, "/v1/stream/ingest", live.token("dev2"))
    opened = time.monotonic()

    messages, code = _until_closed(sock, timeout=15)

    assert code == 4408
    assert messages == [{"type": "error", "code": "hello_timeout",
                         "message": "No hello within 10 s."}]
    assert time.monotonic() - opened >= 9.5
    _assert_still_flowing(healthy)


# -- bad frames that end the stream --------------------------------------------------
def test_ingest_frame_too_big_closes_1009(live: Live, healthy: Healthy) -> None:
    """A frame above 1 MiB closes the stream with 1009."""
    sock, stream = _device(live)
    sock.send(bytes(MAX_FRAME_BYTES + 1))

    messages, code = _until_closed(sock)

    assert code == 1009
    assert messages == [{"type": "error", "code": "bad_frame",
                         "message": "The frame has 1048577 bytes; the maximum is 1048576."}]
    assert _stream_stop(live, stream)["frames"] == 0
    _assert_still_flowing(healthy)


def _raw_header(**fields: Any) -> bytes:
    values = {"magic": b"NG", "version": 1, "kind": 0, "sequence": 0, "timestamp": time.time(),
              "n_channels": 2, "n_samples": CHUNK, "reserved": 0} | fields
    return HEADER.pack(*values.values())


@pytest.mark.parametrize(("frame", "match"), [
    pytest.param(b"NG\x01\x00", r"has 4 bytes, fewer than the 24-byte header", id="short"),
    pytest.param(_raw_header(magic=b"GN") + bytes(8 * CHUNK),
                 r"starts with b'GN' version 1; expected b'NG' version 1", id="bad-magic"),
    pytest.param(_raw_header(version=2) + bytes(8 * CHUNK),
                 r"starts with b'NG' version 2", id="bad-version"),
    pytest.param(_raw_header() + bytes(8 * CHUNK - 4),
                 r"declares 2 channels x 10 samples \(104 bytes with the header\) but has 100",
                 id="size-mismatch"),
    pytest.param(_raw_header(n_samples=0), r"2 channels x 0 samples, so it holds no samples",
                 id="no-samples"),
    pytest.param(_raw_header(timestamp=float("nan")) + bytes(8 * CHUNK),
                 r"timestamp is nan; it must be a finite number", id="nan-timestamp"),
    pytest.param(_raw_header(kind=1) + bytes(8 * CHUNK),
                 r"Frame kind 1 is not device samples \(kind 0\)", id="egress-kind"),
    pytest.param(encode_frame(np.zeros((3, CHUNK)), sequence=0, timestamp=time.time()),
                 r"Frame 0 has 3 channels; the hello declared 2", id="wrong-channel-count"),
])
def test_ingest_malformed_frame_closes_4422(live: Live, healthy: Healthy, frame: bytes,
                                            match: str) -> None:
    """A malformed frame, after good ones, closes the stream with 4422."""
    sock, stream = _device(live)
    for good in _frames(time.time(), [0, 1]):
        sock.send(good)
    sock.send(frame)

    messages, code = _until_closed(sock)

    assert code == 4422
    assert _codes(messages) == ["bad_frame"]
    assert re.search(match, messages[0]["message"]), messages[0]["message"]
    assert _stream_stop(live, stream)["frames"] == 2
    _assert_still_flowing(healthy)


def test_ingest_faster_than_real_time_closes_4429(live: Live, healthy: Healthy) -> None:
    """Sending far faster than the declared rate exhausts the 2 s burst and closes 4429."""
    sock, stream = _device(live)
    frames = _frames(time.time(), list(range(200)))  # 8 s of data, sent at once
    sent = 0
    try:
        for frame in frames:
            sock.send(frame)
            sent += 1
    except ConnectionClosed:
        pass

    messages, code = _until_closed(sock)

    assert code == 4429
    assert _codes(messages) == ["bad_frame"]
    assert "faster than 1.5 x its declared 250 Hz" in messages[0]["message"]
    accepted = _stream_stop(live, stream)["frames"]
    assert 2 * RATE / CHUNK <= accepted < len(frames)  # the 2 s burst, and not all of it
    _assert_still_flowing(healthy)


# -- bad frames that are dropped, with a notice --------------------------------------
def _notices_then_bye(sock: ClientConnection, frames: list[bytes | str]
                      ) -> tuple[list[dict[str, Any]], int | None]:
    for frame in frames:
        sock.send(frame)
    sock.send(json.dumps({"type": "bye"}))
    return _until_closed(sock)


def test_ingest_non_finite_frame_is_dropped_and_stream_continues(live: Live,
                                                                 healthy: Healthy) -> None:
    """A frame with NaN is dropped with a non_finite notice; later frames are accepted."""
    sock, stream = _device(live)
    t0 = time.time()
    good = _frames(t0, [0, 1, 2])
    poisoned = synthetic_uv(CHUNK, CHUNK)
    poisoned[1, 4] = np.nan
    bad = encode_frame(poisoned, sequence=1, timestamp=t0 + CHUNK / RATE)

    notices, code = _notices_then_bye(sock, [good[0], bad, good[1], good[2]])

    assert code == 1000
    assert _codes(notices) == ["non_finite"]
    assert notices[0]["sequence"] == 1
    assert "1 NaN or infinite samples (first at channel 1, sample 4)" in notices[0]["message"]
    assert {k: _stream_stop(live, stream)[k] for k in ("frames", "samples", "dropped")} == {
        "frames": 3, "samples": 3 * CHUNK, "dropped": 1}
    _assert_still_flowing(healthy)


def test_ingest_sequence_backwards_is_dropped_and_stream_continues(live: Live,
                                                                   healthy: Healthy) -> None:
    """A repeated or older sequence number is dropped with a notice; the stream goes on."""
    sock, stream = _device(live)
    t0 = time.time()
    frames = _frames(t0, [0, 1, 2, 3])
    replay = _frames(t0 + 4 * CHUNK / RATE, [1], first_sample=4 * CHUNK)[0]

    notices, code = _notices_then_bye(sock, [*frames[:3], replay, frames[3]])

    assert code == 1000
    assert _codes(notices) == ["sequence_backwards"]
    assert notices[0]["sequence"] == 1
    assert "Frame 1 repeats or precedes frame 2" in notices[0]["message"]
    assert {k: _stream_stop(live, stream)[k] for k in ("frames", "dropped")} == {
        "frames": 4, "dropped": 1}
    _assert_still_flowing(healthy)


def test_ingest_time_backwards_is_dropped_and_stream_continues(live: Live,
                                                               healthy: Healthy) -> None:
    """A frame starting before the previous one ended is dropped with a notice."""
    sock, stream = _device(live)
    t0 = time.time()
    frames = _frames(t0, [0, 1, 2])
    early = encode_frame(synthetic_uv(CHUNK, 0), sequence=2, timestamp=t0)

    notices, code = _notices_then_bye(sock, [frames[0], frames[1], early, frames[2]])

    assert code == 1000
    assert _codes(notices) == ["time_backwards"]
    assert notices[0]["sequence"] == 2
    assert "before the previous frame ended" in notices[0]["message"]
    assert {k: _stream_stop(live, stream)[k] for k in ("frames", "dropped")} == {
        "frames": 3, "dropped": 1}
    _assert_still_flowing(healthy)


def test_ingest_sequence_gap_is_reported_and_frame_kept(live: Live, healthy: Healthy) -> None:
    """A jump in sequence numbers is reported; the frame after the gap is accepted."""
    sock, stream = _device(live)
    frames = _frames(time.time(), [0, 1, 5, 6])
    older = _frames(time.time(), [4], first_sample=10 * CHUNK)[0]  # behind frame 5 now

    notices, code = _notices_then_bye(sock, [*frames, older])

    assert code == 1000
    assert _codes(notices) == ["sequence_gap", "sequence_backwards"]
    assert {k: notices[0][k] for k in ("sequence", "missing")} == {"sequence": 5, "missing": 3}
    assert "Frames 2 to 4 never arrived; the stream continues." in notices[0]["message"]
    assert {k: _stream_stop(live, stream)[k] for k in ("frames", "dropped")} == {
        "frames": 4, "dropped": 1}
    _assert_still_flowing(healthy)


def test_ingest_samples_above_one_volt_are_dropped(live: Live, healthy: Healthy) -> None:
    """EEG samples above 1 V after unit conversion are dropped with bad_samples."""
    sock, stream = _device(live)
    t0 = time.time()
    frames = _frames(t0, [0, 1, 2])
    huge = encode_frame(np.full((2, CHUNK), 2e6), sequence=1, timestamp=t0 + CHUNK / RATE)

    notices, code = _notices_then_bye(sock, [frames[0], huge, frames[2]])

    assert code == 1000
    assert _codes(notices) == ["bad_samples"]
    assert "above max_abs_v=1 V" in notices[0]["message"]
    assert {k: _stream_stop(live, stream)[k] for k in ("frames", "dropped")} == {
        "frames": 2, "dropped": 1}
    _assert_still_flowing(healthy)


def test_ingest_unknown_text_message_gets_notice(live: Live, healthy: Healthy) -> None:
    """A text message other than bye gets unknown_message and the stream goes on."""
    sock, stream = _device(live)
    frames = _frames(time.time(), [0, 1])

    notices, code = _notices_then_bye(sock, [frames[0], "ping", '{"type": "pause"}', frames[1]])

    assert code == 1000
    assert _codes(notices) == ["unknown_message", "unknown_message"]
    assert _stream_stop(live, stream)["frames"] == 2
    _assert_still_flowing(healthy)


def test_ingest_invalid_json_text_gets_notice(live: Live, healthy: Healthy) -> None:
    """Text that looks like JSON but is not gets unknown_message; the stream goes on."""
    sock, stream = _device(live)
    frames = _frames(time.time(), [0, 1])

    notices, code = _notices_then_bye(sock, [frames[0], "{oops", frames[1]])

    assert code == 1000
    assert _codes(notices) == ["unknown_message"]
    assert _stream_stop(live, stream)["frames"] == 2
    _assert_still_flowing(healthy)


def test_ingest_binary_message_instead_of_hello_closes_4400(live: Live,
                                                            healthy: Healthy) -> None:
    """A binary frame where the hello belongs is a bad hello, closed with 4400."""
    sock = _open(live.url, "/v1/stream/ingest", live.token("dev2"))
    sock.send(_frames(time.time(), [0])[0])

    messages, code = _until_closed(sock)

    assert code == 4400
    assert _codes(messages) == ["bad_hello"]
    assert "sent as a text message" in messages[0]["message"]
    _assert_still_flowing(healthy)


def test_ingest_next_frame_after_a_dropped_one_reports_no_gap(live: Live,
                                                              healthy: Healthy) -> None:
    """After a frame dropped for NaN, moving on to the next number is not a gap."""
    sock, stream = _device(live)
    t0 = time.time()
    frames = _frames(t0, [0, 1, 2])
    poisoned = synthetic_uv(CHUNK, CHUNK)
    poisoned[0, 0] = np.inf
    bad = encode_frame(poisoned, sequence=1, timestamp=t0 + CHUNK / RATE)

    notices, code = _notices_then_bye(sock, [frames[0], bad, frames[2]])

    assert code == 1000
    assert _codes(notices) == ["non_finite"]
    assert _stream_stop(live, stream)["frames"] == 2
    _assert_still_flowing(healthy)


def test_ingest_sequence_wraps_around(live: Live, healthy: Healthy) -> None:
    """Sequence numbers continue from 2**32 - 1 to 0 without a notice."""
    sock, stream = _device(live)
    frames = _frames(time.time(), [2**32 - 2, 2**32 - 1, 0, 1])

    notices, code = _notices_then_bye(sock, frames)

    assert code == 1000
    assert notices == []
    assert _stream_stop(live, stream)["frames"] == 4
    _assert_still_flowing(healthy)


def test_token_endpoint_accepts_credentials_in_the_form_body(live: Live) -> None:
    """client_secret_post works as well as HTTP Basic."""
    client_id, secret = live.clinic.secrets["dev2"]
    response = httpx.post(f"{live.url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"
    wrong = httpx.post(f"{live.url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": "nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"


# -- the documented client, and the healthy stream -----------------------------------
def test_doc_client_streams_and_closes_normally(live: Live, healthy: Healthy,
                                                tmp_path: Path) -> None:
    """The minimal client of docs/protocol.md streams 3 s without a notice and ends with 1000."""
    section = DOC.read_text(encoding="utf-8").split("<!-- device-client -->", 1)[1]
    code = re.search(r"```python\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    assert code is not None
    script = tmp_path / "device.py"
    script.write_text(code.group(1), encoding="utf-8")
    client_id, secret = live.clinic.secrets["dev2"]

    result = subprocess.run([sys.executable, "-W", "error", str(script), live.url, client_id,
                             secret], capture_output=True, text=True, timeout=30, check=False)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("{'type': 'welcome', 'protocol': 1, 'stream': ")
    assert lines[1:] == ["closed with code 1000"]
    stream = re.search(r"'stream': '([0-9a-f]{32})'", lines[0])
    assert stream is not None
    assert {k: _stream_stop(live, stream.group(1))[k] for k in ("frames", "samples", "dropped")
            } == {"frames": 75, "samples": 750, "dropped": 0}
    _assert_still_flowing(healthy)


def test_healthy_stream_delivered_every_sample(live: Live, healthy: Healthy) -> None:
    """The healthy app got every raw sample of dev1, contiguous from the first, in order."""
    sent = healthy.device.sent_samples
    deadline = time.monotonic() + 5
    while sum(len(m["data"][0]) for m in healthy.app.data() if m["product"] == "raw") < sent:
        assert time.monotonic() < deadline, "raw samples stopped arriving"
        time.sleep(0.05)

    raw = [m for m in healthy.app.data() if m["product"] == "raw"]
    assert healthy.started <= raw[0]["t"] < healthy.started + CHUNK / RATE  # frame 0
    for before, after in zip(raw, raw[1:], strict=False):
        assert after["t"] == pytest.approx(before["t"] + len(before["data"][0]) / RATE,
                                           abs=1e-6)
    with pytest.raises(TimeoutError):
        healthy.device.sock.recv(timeout=0)  # the healthy device got no notice
    _assert_still_flowing(healthy)
