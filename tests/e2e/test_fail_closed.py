"""With the consent store unreachable, nothing leaves the gateway beyond the store lease.

The gateway's PostgreSQL connection runs through a TCP proxy that the test either cuts
(connections break: reads fail at once) or stalls (bytes are swallowed: reads hang, as
behind a dead link, and only the lease stops the data).

How the bound is measured: the device stamps each frame with the wall-clock time it sends
it (the same clock the test reads when it cuts the store), and a data message's ``t`` is
the time of a sample in a device frame, so a message with ``t`` after the cut came from a
frame the gateway took in after the cut. Every such ``t`` must be at most
``NEUROGATE_STORE_LEASE_SECONDS`` plus ``MARGIN_SECONDS`` after the cut; the margin covers a
message that starts inside a device frame (one frame is 40 ms here) and the clock reads
around the cut, not the machine's speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from neurogate_client.wire import encode_frame
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.e2e.conftest import ServerProcess, free_port
from tests.e2e.live import (
    RATE,
    AppReceiver,
    app_token,
    open_device,
    subscribe,
    synthetic_uv,
    ws_url,
)
from tests.e2e.tcp_proxy import TcpProxy
from tests.gateway.conftest import FAST_HASHING, build_clinic, notice

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
LEASE_SECONDS = Settings.model_fields["store_lease_seconds"].default  # not set: the default
MARGIN_SECONDS = 0.1
CHUNK = 10  # samples per device frame: 40 ms at 250 Hz


@dataclass
class StampedDevice:
    """Streams in real time, stamping each frame with the wall-clock time it is sent."""

    sock: ClientConnection
    stamps: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> StampedDevice:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        sent = 0
        while not self._stop.is_set():
            now = time.time()
            try:
                self.sock.send(encode_frame(synthetic_uv(CHUNK, sent), sequence=len(self.stamps),
                                            timestamp=now))
            except ConnectionClosed:
                return
            self.stamps.append(now)
            sent += CHUNK
            time.sleep(max(0.0, now + CHUNK / RATE - time.time()))  # never ahead of time

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()


@dataclass
class ProxiedGateway:
    server: ServerProcess
    proxy: TcpProxy
    tokens: dict[str, str]
    names: dict[str, str]
    log: Path


@contextmanager
def proxied_gateway(postgres_database: str, tmp_path: Path) -> Iterator[ProxiedGateway]:
    """A gateway process whose PostgreSQL connection runs through a TcpProxy, with a paired
    device and two apps whose consent covers the subject."""
    from neurogate.consent.db import get_engine

    with get_engine(postgres_database).begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    url = sa.engine.make_url(postgres_database)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    gateway = build_gateway(Settings(data_dir=tmp_path, database_url=postgres_database,
                                     environment="test", **FAST_HASHING))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    env.update(NEUROGATE_DATA_DIR=str(tmp_path), NEUROGATE_DATABASE_URL=proxied,
               NEUROGATE_PASSWORD_HASH_TIME_COST="1", NEUROGATE_PASSWORD_HASH_MEMORY_KIB="1024")
    log = tmp_path / "server.log"
    server = ServerProcess(env=env, port=free_port(), log=log)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            clinic = build_clinic(client, gateway)  # type: ignore[arg-type]
            client.post(f"/v1/devices/{clinic.ids['dev1']}/pairing", headers=clinic.as_("clin1"),
                        json={"subject_id": clinic.ids["adult1"]}).raise_for_status()
            granted = client.post("/v1/consents", headers=clinic.as_("adult1"), json={
                "subject_id": clinic.ids["adult1"], "app_id": clinic.ids["research_app"],
                "purpose_id": "research_noncommercial",
                "notice": notice("research_noncommercial")})
            assert granted.status_code == 201, granted.text
            names = {app: client.get("/v1/consents", headers=clinic.as_(app)).json()[0]["subject"]
                     for app in ("clinic_app", "research_app")}
            tokens = {app: app_token(server.url, clinic.secrets[app])
                      for app in ("clinic_app", "research_app", "dev1")}
        yield ProxiedGateway(server, proxy, tokens, names, log)
    finally:
        proxy.cut()  # also ends reads that hang on a stalled proxy
        server.stop()


def _handshake(url: str, token: str) -> tuple[int | None, list[Any]]:
    """Open a stream, send a hello on ingest; the messages and the close code it gets."""
    messages: list[Any] = []
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as sock:
        if url.endswith("/ingest"):
            with contextlib.suppress(ConnectionClosed):  # the gateway may have closed already
                sock.send(json.dumps({"type": "hello", "protocol": 1, "sampling_rate": RATE,
                                      "channels": [{"name": "C3", "type": "eeg"},
                                                   {"name": "C4", "type": "eeg"}]}))
        try:
            while True:
                messages.append(json.loads(sock.recv(timeout=10)))
        except ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd is not None else None), messages


def _data_times(app: AppReceiver) -> list[float]:
    return [m["t"] for _, m in app.messages if isinstance(m, dict) and m["type"] == "data"]


@pytest.mark.parametrize("failure", ["cut", "stall"])
def test_nothing_flows_beyond_the_lease_once_the_store_is_unreachable(
        postgres_database: str, tmp_path: Path, failure: str) -> None:
    """Cutting or stalling the gateway's database connection: no data message produced
    more than the store lease (+ margin) after the cut reaches an app, both apps close
    with 4503 store_unavailable, and new ingest and subscribe handshakes close with 4503
    too, without an unhandled error in the server."""
    with proxied_gateway(postgres_database, tmp_path) as live:
        sock, welcome = open_device(live.server.url, live.tokens["dev1"])
        assert welcome["type"] == "welcome", welcome
        device = StampedDevice(sock).start()
        apps = [subscribe(live.server.url, live.tokens["clinic_app"], live.names["clinic_app"],
                          "clinical_monitoring"),
                subscribe(live.server.url, live.tokens["research_app"],
                          live.names["research_app"], "research_noncommercial")]
        time.sleep(2.5)
        assert all(app.data() for app in apps), "data flows while the store answers"
        getattr(live.proxy, failure)()
        cut_at = time.time()
        for app in apps:
            app.wait_closed(10)
        closed_at = time.time()
        time.sleep(max(0.0, cut_at + LEASE_SECONDS + 1.0 - time.time()))  # stream on past it
        handshakes = {
            path: _handshake(ws_url(live.server.url, path), live.tokens[who])
            for path, who in (("/v1/stream/ingest", "dev1"),
                              (f"/v1/stream/subscribe?subject={live.names['clinic_app']}"
                               f"&purpose=clinical_monitoring", "clinic_app"))}
        device.stop()
        frames_after_cut = sum(stamp > cut_at for stamp in device.stamps)
    log = live.log.read_text(encoding="utf-8", errors="replace")

    bound = cut_at + LEASE_SECONDS + MARGIN_SECONDS
    last = max(t for app in apps for t in _data_times(app))
    print(f"\n{failure}: lease {LEASE_SECONDS} s; last data produced {last - cut_at:+.3f} s "
          f"after the cut (bound {LEASE_SECONDS + MARGIN_SECONDS:.3f} s); the device sent "
          f"{frames_after_cut} frames after the cut; apps closed within "
          f"{closed_at - cut_at:.2f} s")
    for app in apps:
        assert app.close_code == 4503
        errors = [m for _, m in app.messages if isinstance(m, dict) and m["type"] == "error"]
        assert errors and errors[-1]["code"] == "store_unavailable"
        late = [t for t in _data_times(app) if t > bound]
        assert late == [], (f"{len(late)} data messages produced up to {max(late) - cut_at:.3f} "
                            f"s after the store was cut reached an app")
    assert frames_after_cut > (LEASE_SECONDS + MARGIN_SECONDS) * RATE / CHUNK, (
        "the device must keep streaming past the bound for the check to mean anything")
    for path, (code, messages) in handshakes.items():
        assert code == 4503, (path, code, messages)
        assert messages and messages[-1]["code"] == "store_unavailable", (path, messages)
    assert "Exception in ASGI application" not in log
