"""docs/protocol.md, statement by statement, against a gateway process: each test pins
one behaviour the document states, using only raw ``websockets`` and ``httpx`` (and the
structure the document gives), as a vendor's or app developer's client would."""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.e2e.conftest import clinic_server
from tests.gateway.conftest import PASSWORD, Clinic

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
RATE = 250.0
CHUNK = 10


def _section(number: int) -> str:
    """Section ``number`` of the document, its whitespace runs made single spaces."""
    text = DOC.read_text(encoding="utf-8")
    return " ".join(text.split(f"\n## {number}. ", 1)[1].split("\n## ", 1)[0].split())


@dataclass
class Gateway:
    url: str
    clinic: Clinic
    http: httpx.Client

    def token(self, label: str) -> str:
        response = self.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                  auth=self.clinic.secrets[label])
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway process: dev1 paired with adult1, dev2 registered and not paired."""
    with clinic_server(tmp_path_factory.mktemp("protocol-doc")) as (server, clinic, http, _):
        yield Gateway(server.url, clinic, http)


# -- a client written from the document ------------------------------------------
def _frame(sequence: int, timestamp: float, n: int = CHUNK, value_uv: float = 20.0,
           channels: int = 2) -> bytes:
    """Section 6: the 24-byte header, then float32 samples, sample-major."""
    samples = np.full((channels, n), value_uv) * np.sin(np.arange(n) / 5.0)
    header = struct.pack("<2sBBIdHHI", b"NG", 1, 0, sequence, timestamp, channels, n, 0)
    return header + samples.T.astype("<f4").tobytes()


def _hello(names: tuple[str, ...] = ("C3", "C4"), types: tuple[str, ...] = ("eeg", "eeg"),
           rate: float = RATE) -> str:
    return json.dumps({"type": "hello", "protocol": 1, "sampling_rate": rate,
                       "channels": [{"name": n, "type": t, "unit": "uV"}
                                    for n, t in zip(names, types, strict=True)]})


def _connect(gw: Gateway, label: str) -> ClientConnection:
    return connect(gw.url.replace("http://", "ws://") + "/v1/stream/ingest",
                   additional_headers={"Authorization": f"Bearer {gw.token(label)}"},
                   legacy=True)


def _until_closed(sock: ClientConnection) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the gateway closes, and its close code."""
    messages: list[dict[str, Any]] = []
    try:
        while True:
            messages.append(json.loads(sock.recv(timeout=10)))
    except ConnectionClosed as exc:
        return messages, exc.rcvd.code if exc.rcvd is not None else None
    finally:
        sock.close()


def _wait_not_live(gw: Gateway, label: str = "dev1") -> None:
    """The vendor's view of the device's stream (section 1) says it has ended."""
    deadline = time.monotonic() + 10
    while gw.http.get(f"/v1/devices/{gw.clinic.ids[label]}/stream",
                      headers=gw.clinic.as_("vendor1")).json()["live"]:
        assert time.monotonic() < deadline, "the device's stream did not end"
        time.sleep(0.02)


def _session(gw: Gateway, messages: list[bytes | str]) -> tuple[list[dict[str, Any]],
                                                                 int | None]:
    """dev1: hello, the messages, bye; every notice and the close code."""
    _wait_not_live(gw)
    sock = _connect(gw, "dev1")
    sock.send(_hello())
    welcome = json.loads(sock.recv(timeout=10))
    assert welcome["type"] == "welcome", welcome
    try:
        for message in messages:
            sock.send(message)
        sock.send(json.dumps({"type": "bye"}))
    except ConnectionClosed:
        pass
    return _until_closed(sock)


def _last_accepted(notice: dict[str, Any]) -> int:
    """The frame a ``sequence_backwards`` notice names as the last one accepted."""
    assert notice["code"] == "sequence_backwards", notice
    found = re.search(r"repeats or precedes frame (\d+)\.", notice["message"])
    assert found is not None, notice
    return int(found.group(1))


# -- section 1 and 2: registration and tokens ------------------------------------
def test_registration_answer_holds_device_id_and_credentials(gw: Gateway) -> None:
    """Section 1: the device's id is at device.id; the secret comes once, in credentials."""
    response = gw.http.post("/v1/devices", headers=gw.clinic.as_("vendor1"), json={
        "model": "Cap", "serial": "SN-doc-1", "channel_names": ["C3", "C4"],
        "channel_types": ["eeg", "eeg"], "sampling_rate": 250})

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"device", "credentials"}
    assert body["device"]["paired"] is False and body["device"]["id"]
    assert set(body["credentials"]) == {"client_id", "client_secret", "token_endpoint"}
    assert body["credentials"]["client_id"].startswith("device_")
    assert "the device's id is `device.id`" in _section(1)


@pytest.mark.parametrize("how", ["basic", "form"])
def test_token_accepts_credentials_by_basic_or_form_body(gw: Gateway, how: str) -> None:
    """Section 2: HTTP Basic and the form body both work; nothing sent is invalid_client."""
    client_id, secret = gw.clinic.secrets["dev1"]
    form = {"grant_type": "client_credentials"}
    if how == "basic":
        response = gw.http.post("/oauth/token", data=form, auth=(client_id, secret))
    else:
        response = gw.http.post("/oauth/token", data={**form, "client_id": client_id,
                                                      "client_secret": secret})
    nothing = gw.http.post("/oauth/token", data=form)

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "stream:ingest"
    assert nothing.status_code == 401
    assert nothing.json()["error"] == "invalid_client"
    assert "not sent with HTTP Basic" not in _section(2)


def test_rotated_device_secret_is_refused_at_once(gw: Gateway) -> None:
    """Section 1: POST /v1/devices/{id}/credentials replaces the secret, same client_id."""
    created = gw.http.post("/v1/devices", headers=gw.clinic.as_("vendor1"), json={
        "model": "Cap", "serial": "SN-doc-2", "channel_names": ["C3"],
        "channel_types": ["eeg"], "sampling_rate": 250}).json()
    old = created["credentials"]
    issued_before = gw.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=(old["client_id"], old["client_secret"])).json()

    rotated = gw.http.post(f"/v1/devices/{created['device']['id']}/credentials",
                           headers=gw.clinic.as_("vendor1"))

    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["client_id"] == old["client_id"]
    form = {"grant_type": "client_credentials"}
    assert gw.http.post("/oauth/token", data=form,
                        auth=(old["client_id"], old["client_secret"])).status_code == 401
    assert gw.http.post("/oauth/token", data=form,
                        auth=(new["client_id"], new["client_secret"])).status_code == 200
    # A token issued before the rotation still opens a stream (this device is not paired,
    # so the hello is refused as unpaired, not the token as unauthenticated).
    sock = connect(gw.url.replace("http://", "ws://") + "/v1/stream/ingest", legacy=True,
                   additional_headers={"Authorization": f"Bearer {issued_before['access_token']}"})
    sock.send(_hello(names=("C3",), types=("eeg",)))
    messages, code = _until_closed(sock)
    assert (code, [m["code"] for m in messages]) == (4403, ["unpaired"])


def test_vendor_sees_its_device_stream_without_its_subject(gw: Gateway) -> None:
    """Section 1: GET /v1/devices/{id}/stream shows live, frames, drops and frames that
    never arrived, and nothing of the subject."""
    _wait_not_live(gw)
    sock = _connect(gw, "dev1")
    sock.send(_hello())
    welcome = json.loads(sock.recv(timeout=10))
    t0 = time.time()
    step = CHUNK / RATE
    for frame in [_frame(0, t0), _frame(3, t0 + step)]:  # frames 1 and 2 never arrive
        sock.send(frame)
    assert json.loads(sock.recv(timeout=10))["code"] == "sequence_gap"
    sock.send(_dropped("non_finite", 4, t0 + 2 * step))
    assert json.loads(sock.recv(timeout=10))["code"] == "non_finite"
    url = f"/v1/devices/{gw.clinic.ids['dev1']}/stream"
    try:
        status = gw.http.get(url, headers=gw.clinic.as_("vendor1"))
        other = gw.http.get(url, headers=gw.clinic.as_("vendor2"))
    finally:
        sock.send(json.dumps({"type": "bye"}))
        _until_closed(sock)

    assert status.status_code == 200, status.text
    assert status.json() == {"live": True, "stream": welcome["stream"], "frames": 2,
                             "samples": 2 * CHUNK, "dropped": 1, "missing": 2}
    assert other.status_code == 404
    assert gw.clinic.ids["adult1"] not in status.text


# -- section 5: hello refusals ---------------------------------------------------
@pytest.mark.parametrize(("hello", "field"), [
    pytest.param(_hello(rate=500.0), "sampling_rate", id="rate"),
    pytest.param(_hello(names=("C3", "Cz")), "channels[1].name", id="name"),
    pytest.param(_hello(types=("eeg", "eog")), "channels[1].type", id="type"),
    pytest.param(_hello(names=("C3",), types=("eeg",)), "channels", id="count"),
    pytest.param(_hello(names=("Cz", "C4"), rate=500.0), "channels[0].name", id="first-of-two"),
])
def test_hello_differing_from_registration_names_the_field(gw: Gateway, hello: str,
                                                           field: str) -> None:
    """Section 5: bad_hello, 4400, and field names the first differing field."""
    _wait_not_live(gw)
    sock = _connect(gw, "dev1")
    sock.send(hello)

    messages, code = _until_closed(sock)

    assert code == 4400
    assert [(m["code"], m["field"]) for m in messages] == [("bad_hello", field)]
    assert "does not match this device's registration" in messages[0]["message"]


def test_hello_of_unpaired_device_is_refused_as_unpaired(gw: Gateway) -> None:
    """Section 5: an unpaired device gets code unpaired and 4403."""
    sock = _connect(gw, "dev2")
    sock.send(_hello())

    messages, code = _until_closed(sock)

    assert code == 4403
    assert [(m["code"], m["field"]) for m in messages] == [("unpaired", None)]
    assert "| the device is not paired with a subject | `unpaired` | `null` | 4403 |" in (
        _section(5))


def test_second_stream_of_a_device_is_refused_as_duplicate_stream(gw: Gateway) -> None:
    """Section 5: while the device streams, a second hello gets duplicate_stream and 4409."""
    _wait_not_live(gw)
    first = _connect(gw, "dev1")
    first.send(_hello())
    assert json.loads(first.recv(timeout=10))["type"] == "welcome"
    try:
        second = _connect(gw, "dev1")
        second.send(_hello())
        messages, code = _until_closed(second)
    finally:
        first.send(json.dumps({"type": "bye"}))
        _until_closed(first)

    assert code == 4409
    assert [(m["code"], m["field"]) for m in messages] == [("duplicate_stream", None)]


# -- section 8: sequence numbers after a dropped frame ----------------------------
def _dropped(code: str, sequence: int, t: float) -> bytes:
    """A frame that rows 6, 7 or 8 drop for its content."""
    if code == "time_backwards":
        return _frame(sequence, t - 1.0)
    if code == "non_finite":
        bad = bytearray(_frame(sequence, t))
        bad[24:28] = struct.pack("<f", float("nan"))
        return bytes(bad)
    return _frame(sequence, t, value_uv=2e6)  # 2 V after conversion: bad_samples


CONTENT_DROPS = ["time_backwards", "non_finite", "bad_samples"]


@pytest.mark.parametrize("code", CONTENT_DROPS)
def test_frame_dropped_for_content_may_be_resent_under_its_number(gw: Gateway,
                                                                  code: str) -> None:
    """Section 8: a corrected frame under the dropped frame's number is accepted."""
    t0 = time.time()
    step = CHUNK / RATE
    notices, close = _session(gw, [
        _frame(0, t0), _frame(1, t0 + step), _dropped(code, 2, t0 + 2 * step),
        _frame(2, t0 + 2 * step), _frame(0, t0 + 3 * step)])  # the last one asks "which?"

    assert close == 1000
    assert [n["code"] for n in notices] == [code, "sequence_backwards"]
    assert notices[0]["sequence"] == 2
    assert _last_accepted(notices[1]) == 2


@pytest.mark.parametrize("code", CONTENT_DROPS)
def test_next_number_after_a_dropped_frame_reports_no_gap(gw: Gateway, code: str) -> None:
    """Section 8: moving on to the next number after a dropped frame is no sequence_gap."""
    t0 = time.time()
    step = CHUNK / RATE
    notices, close = _session(gw, [
        _frame(0, t0), _dropped(code, 1, t0 + step), _frame(2, t0 + 2 * step),
        _frame(0, t0 + 3 * step)])

    assert close == 1000
    assert [n["code"] for n in notices] == [code, "sequence_backwards"]
    assert _last_accepted(notices[1]) == 2
    section = _section(8)
    assert "neither gets a `sequence_gap` notice" in section
    assert "gets a `sequence_gap` notice for it as well" not in section


def test_gap_counts_only_frames_that_never_arrived(gw: Gateway) -> None:
    """Section 8: after a dropped frame, a jump reports only the frames never sent."""
    t0 = time.time()
    step = CHUNK / RATE
    notices, close = _session(gw, [
        _frame(0, t0), _dropped("non_finite", 1, t0 + step), _frame(4, t0 + 2 * step)])

    assert close == 1000
    assert [n["code"] for n in notices] == ["non_finite", "sequence_gap"]
    assert (notices[1]["sequence"], notices[1]["missing"]) == (4, 2)


def test_sequence_numbers_wrap_modulo_two_to_the_32(gw: Gateway) -> None:
    """Section 8: after 4294967295 comes 0, accepted without a notice."""
    t0 = time.time()
    step = CHUNK / RATE
    notices, close = _session(gw, [
        _frame(2**32 - 1, t0), _frame(0, t0 + step), _frame(2**32 - 1, t0 + 2 * step)])

    assert close == 1000
    assert [n["code"] for n in notices] == ["sequence_backwards"]
    assert _last_accepted(notices[0]) == 0
    assert "does not wrap" not in _section(8)


# -- section 9: the rate budget ---------------------------------------------------
@pytest.mark.parametrize(("samples", "close"), [(500, 1000), (501, 4429)])
def test_first_frame_may_hold_two_seconds(gw: Gateway, samples: int, close: int) -> None:
    """Section 9: the budget starts at the first frame, 2 s of samples, whenever it comes."""
    _wait_not_live(gw)
    sock = _connect(gw, "dev1")
    sock.send(_hello())
    assert json.loads(sock.recv(timeout=10))["type"] == "welcome"
    time.sleep(0.2)  # waiting after the welcome saves up nothing
    try:
        sock.send(_frame(0, time.time(), n=samples))
        sock.send(json.dumps({"type": "bye"}))
    except ConnectionClosed:
        pass

    messages, code = _until_closed(sock)

    assert code == close
    assert [m["code"] for m in messages] == ([] if close == 1000 else ["bad_frame"])
    assert "a first frame of 500 samples passes and one of 501 closes" in _section(9)


# -- section 7 and 11 ------------------------------------------------------------
def test_worked_example_imports_the_client_library() -> None:
    """Section 7's code runs with the client library and gives the section's bytes."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## 7. ", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    hex_dump = re.search(r"```hex\n(.*?)```", section, flags=re.DOTALL)
    assert code is not None and hex_dump is not None
    assert "from neurogate_client.wire import encode_frame" in code.group(1)
    assert "neurogate.devices" not in section
    pytest.importorskip("neurogate_client.wire", reason="pip install ./clients/python")
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)  # the document's own example

    documented = bytes(int(octet, 16) for line in hex_dump.group(1).splitlines()
                       for octet in line.split()[1:])
    assert namespace["frame"] == documented


def test_dbs_channels_are_neural_for_registration_and_doc(gw: Gateway) -> None:
    """Sections 5, 8 and 11 agree with registration: a dbs-only device is accepted."""
    response = gw.http.post("/v1/devices", headers=gw.clinic.as_("vendor1"), json={
        "model": "Lead", "serial": "SN-dbs", "channel_names": ["L0", "L1"],
        "channel_types": ["dbs", "dbs"], "sampling_rate": 250})
    refused = gw.http.post("/v1/devices", headers=gw.clinic.as_("vendor1"), json={
        "model": "Band", "serial": "SN-ecg", "channel_names": ["X"],
        "channel_types": ["ecg"], "sampling_rate": 250})

    assert response.status_code == 201, response.text
    assert refused.status_code == 422
    assert "`eeg`, `seeg`, `ecog` or `dbs`" in _section(11)
    assert "`eeg`/`seeg`/`ecog`/`dbs`" in _section(8)


def test_close_code_section_defines_what_it_names() -> None:
    """Section 11 names CloseCode only with the module that defines it."""
    section = _section(11)
    assert "`CloseCode` in `neurogate_client.wire`" in section
    assert section.count("CloseCode") == 1


# -- section 10: app onboarding, as documented ------------------------------------
def test_app_onboarding_steps_as_documented(gw: Gateway) -> None:
    """Section 10: register an app, connect a subject, consent, then subscribe."""
    clinic, http = gw.clinic, gw.http
    login = http.post("/v1/auth/login", json={"username": "owner1", "password": PASSWORD})
    assert login.status_code == 200, login.text
    owner = {"Authorization": f"Bearer {login.json()['session_token']}"}
    http.cookies.clear()
    created = http.post("/v1/apps", headers=owner, json={
        "name": "Doc app", "commercial": False, "declared_purposes": ["clinical_monitoring"]})
    assert created.status_code == 201, created.text
    app_id = created.json()["app"]["id"]
    creds = created.json()["credentials"]
    rotated = http.post(f"/v1/apps/{app_id}/credentials", headers=owner)
    assert rotated.status_code == 200, rotated.text
    creds = rotated.json()
    token = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                      auth=(creds["client_id"], creds["client_secret"])).json()["access_token"]
    app = {"Authorization": f"Bearer {token}"}

    connected = http.post(f"/v1/subjects/{clinic.ids['adult1']}/connections",
                          headers=clinic.as_("adult1"), json={"app_id": creds["client_id"]})
    assert connected.status_code == 201, connected.text
    pseudonym = connected.json()["subject"]
    assert http.get("/v1/connections", headers=app).json() == [{"subject": pseudonym}]

    purposes = http.get("/v1/purposes").json()["purposes"]
    notice = next(n for p in purposes if p["id"] == "clinical_monitoring"
                  for n in p["notices"] if (n["language"], n["variant"]) == ("en", "plain"))
    granted = http.post("/v1/consents", headers=clinic.as_("adult1"), json={
        "subject_id": clinic.ids["adult1"], "app_id": app_id,
        "purpose_id": "clinical_monitoring",
        "notice": {k: notice[k] for k in ("version", "language", "variant", "sha256")}})
    assert granted.status_code == 201, granted.text
    seen = http.get("/v1/consents", headers=app).json()
    assert [(c["subject"], c["status"]) for c in seen] == [(pseudonym, "active")]
    decision = http.post("/v1/decisions", headers=app, json={
        "app_id": creds["client_id"], "subject": pseudonym,
        "purpose_id": "clinical_monitoring", "product": "band_power"})
    assert decision.json()["allowed"] is True, decision.text

    url = (gw.url.replace("http://", "ws://") + f"/v1/stream/subscribe?subject={pseudonym}"
           "&purpose=clinical_monitoring&format=json")
    with connect(url, additional_headers=app) as sock:
        first = json.loads(sock.recv(timeout=10))
        assert first["type"] == "subscribed", first
        revoked = http.post(f"/v1/consents/{granted.json()['consent']['id']}/revoke",
                            headers=clinic.as_("adult1"), json={"reason": "done"})
        assert revoked.status_code == 200, revoked.text
        messages, code = _until_closed(sock)
    assert code == 4410
    assert [m["type"] for m in messages] == ["revoked"]
