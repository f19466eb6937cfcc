"""Device to app through a real gateway process: governed products, refusals, revocation."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from neurogate.consent.purposes import load_catalog
from tests.e2e.conftest import ServerProcess, clinic_server
from tests.e2e.live import (
    DeviceThread,
    app_token,
    open_device,
    subscribe,
)
from tests.gateway.conftest import Clinic, notice

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Clinic]]:
    """One gateway process with a populated clinic; dev1 is paired with adult1."""
    with clinic_server(tmp_path_factory.mktemp("live")) as (server, clinic, _, _):
        yield server, clinic


def _pseudonym(clinic: Clinic, app: str) -> str:
    rows = clinic.client.get("/v1/consents", headers=clinic.as_(app)).json()
    return str(rows[0]["subject"])


def test_streaming_each_app_gets_only_its_purposes_products(live: tuple[ServerProcess, Clinic]
                                                            ) -> None:
    """A clinical app gets clinical products; a research app a smaller view; an app
    without consent is refused with the policy's reasons."""
    server, clinic = live
    granted = clinic.client.post("/v1/consents", headers=clinic.as_("adult1"), json={
        "subject_id": clinic.ids["adult1"], "app_id": clinic.ids["research_app"],
        "purpose_id": "research_noncommercial", "notice": notice("research_noncommercial"),
        "products": ["band_power", "signal_quality"]})
    assert granted.status_code == 201, granted.text
    device_sock, welcome = open_device(server.url, app_token(server.url, clinic.secrets["dev1"]))
    assert welcome["type"] == "welcome", welcome
    device = DeviceThread(device_sock).start()
    clinical = subscribe(server.url, app_token(server.url, clinic.secrets["clinic_app"]),
                         _pseudonym(clinic, "clinic_app"), "clinical_monitoring")
    research = subscribe(server.url, app_token(server.url, clinic.secrets["research_app"]),
                         _pseudonym(clinic, "research_app"), "research_noncommercial")
    # The guardian-less ad app is introduced to the adult but holds no consent.
    connected = clinic.client.post(f"/v1/subjects/{clinic.ids['adult1']}/connections",
                                   headers=clinic.as_("adult1"),
                                   json={"app_id": clinic.ids["ad_app"]})
    ad = subscribe(server.url, app_token(server.url, clinic.secrets["ad_app"]),
                   connected.json()["subject"], "neuromarketing")
    time.sleep(4.5)
    device.stop()
    clinical.close()
    research.close()
    ad.wait_closed()

    assert clinical.first["type"] == "subscribed"
    clinical_products = set(load_catalog().get("clinical_monitoring").products)
    assert set(clinical.first["products"]) == clinical_products
    assert clinical.products() == clinical_products
    assert research.first["type"] == "subscribed"
    assert set(research.first["products"]) == {"band_power", "signal_quality"}
    assert research.products() == {"band_power", "signal_quality"}
    assert ad.first["type"] == "refused"
    assert ad.first["reasons"] == ["default-deny"]
    assert ad.first["explanations"]
    assert ad.close_code == 4403
    # The research app never sees an internal id, serial or label beyond its products.
    for message in research.data():
        assert clinic.ids["adult1"] not in str(message)
        assert message["product"] in ("band_power", "signal_quality")
    # Raw samples arrive for the clinical app at the device's rate, in volts.
    raw = [m for m in clinical.data() if m["product"] == "raw"]
    assert raw and raw[0]["labels"] == ["C3", "C4"]
    samples = sum(len(m["data"][0]) for m in raw)
    assert samples >= 0.6 * device.sent_samples
    assert max(abs(v) for m in raw for row in m["data"] for v in row) < 1e-3


def test_streaming_revocation_closes_the_app_and_stops_frames(
        live: tuple[ServerProcess, Clinic]) -> None:
    """After the revoke call returns, the app gets 'revoked', its socket closes, and no
    frame produced after the commit reaches it."""
    server, clinic = live
    device_sock, _ = open_device(server.url, app_token(server.url, clinic.secrets["dev1"]))
    device = DeviceThread(device_sock).start()
    clinical = subscribe(server.url, app_token(server.url, clinic.secrets["clinic_app"]),
                         _pseudonym(clinic, "clinic_app"), "clinical_monitoring")
    time.sleep(1.5)
    assert clinical.data(), "data flows before the revocation"
    started = time.time()
    response = clinic.client.post(f"/v1/consents/{clinic.ids['c_adult1_clinic']}/revoke",
                                  headers=clinic.as_("adult1"))
    acknowledged = time.time()
    assert response.status_code == 200
    clinical.wait_closed(5)
    device.stop()
    assert clinical.close_code == 4410
    revoked = [m for _, m in clinical.messages if isinstance(m, dict)
               and m["type"] == "revoked"]
    assert revoked and revoked[0]["reason"] == "consent.revoked"
    # Data messages carry the stream time of their first sample (device clock = wall
    # clock here). The commit happened between the call and its answer: a frame whose
    # first sample came after the answer was certainly produced after the commit.
    late = [m for m in clinical.data() if m["t"] > acknowledged]
    assert late == [], f"{len(late)} frames after the revocation (call at {started})"


class _RawApp:
    """A WebSocket app client on a bare socket with a small receive buffer: no client
    library reads ahead, so what the app does not read stays with the gateway."""

    def __init__(self, url: str, path: str, token: str) -> None:
        host = urlsplit(url)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        self.sock.connect((host.hostname, host.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host.netloc}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Authorization: Bearer {token}\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(4096)
            assert chunk, "the gateway closed the connection"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self) -> dict[str, object]:
        """The next text message (server frames are unmasked and, here, unfragmented)."""
        first, size = self._read(2)
        assert first == 0x81, f"expected a text frame, got opcode byte {first:#x}"
        if size == 126:
            size = struct.unpack("!H", self._read(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._read(8))[0]
        return dict(json.loads(self._read(size)))


def test_streaming_a_slow_app_gets_a_gap_not_old_data(live: tuple[ServerProcess, Clinic]
                                                     ) -> None:
    """An app that stops reading for 6 s is told with a `gap` what it lost, the count
    matching the jump in `seq`, and then gets data again: the gateway does not keep
    seconds of its data in socket buffers (it used to deliver all of it, late, no gap)."""
    server, clinic = live
    granted = clinic.client.post("/v1/consents", headers=clinic.as_("adult1"), json={
        "subject_id": clinic.ids["adult1"], "app_id": clinic.ids["clinic_app"],
        "purpose_id": "clinical_monitoring", "notice": notice("clinical_monitoring")})
    assert granted.status_code == 201, granted.text  # anew: another test revokes the first
    device_sock, _ = open_device(server.url, app_token(server.url, clinic.secrets["dev1"]))
    device = DeviceThread(device_sock).start()
    subject = _pseudonym(clinic, "clinic_app")
    app = _RawApp(server.url, f"/v1/stream/subscribe?subject={subject}"
                              "&purpose=clinical_monitoring",
                  app_token(server.url, clinic.secrets["clinic_app"]))
    messages: list[dict[str, object]] = []
    try:
        assert app.recv()["type"] == "subscribed"
        messages.append(app.recv())
        time.sleep(6.0)  # the app reads nothing
        while len(messages) < 2000:
            messages.append(app.recv())
            if len(messages) > 2 and messages[-2]["type"] == "gap":
                break
    finally:
        app.sock.close()
        device.stop()
    gap = next(i for i, m in enumerate(messages) if m["type"] == "gap")
    assert gap > 0 and messages[gap - 1]["type"] == "data"
    assert messages[gap + 1]["type"] == "data"
    dropped = messages[gap]["dropped"]
    assert isinstance(dropped, int) and dropped > 0
    # The counter counts every message made for the app, delivered or not.
    after, before = messages[gap + 1]["seq"], messages[gap - 1]["seq"]
    assert isinstance(after, int) and isinstance(before, int)
    assert after - before - 1 == dropped
