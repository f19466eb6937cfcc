"""Stream hardening against a real gateway process: restarts after kill -9, subscribe
floods, cross-site handshakes, oversized hellos."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from neurogate.consent.db import get_engine
from neurogate.consent.models import LedgerLeaf, LiveStreamRecord
from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.e2e.conftest import ServerProcess, free_port, neurogate
from tests.e2e.live import DeviceThread, app_token, open_device, subscribe
from tests.gateway.conftest import FAST_HASHING, Clinic, build_clinic

pytestmark = pytest.mark.e2e


@dataclass
class Live:
    server: ServerProcess
    clinic: Clinic
    gateway_settings: Settings

    def token(self, who: str) -> str:
        return app_token(self.server.url, self.clinic.secrets[who])

    def pseudonym(self, app: str) -> str:
        rows = self.clinic.client.get("/v1/consents", headers=self.clinic.as_(app)).json()
        return str(rows[0]["subject"])

    def entries(self) -> list[dict[str, Any]]:
        """Every ledger entry that is still readable, in order (read from the database)."""
        with Session(get_engine(self.gateway_settings.resolved_database_url)) as session:
            leaves = session.exec(select(LedgerLeaf).order_by(LedgerLeaf.seq)).all()
            return [json.loads(leaf.entry) for leaf in leaves if leaf.entry is not None]

    def live_rows(self) -> list[LiveStreamRecord]:
        with Session(get_engine(self.gateway_settings.resolved_database_url)) as session:
            return list(session.exec(select(LiveStreamRecord)).all())


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """A gateway process (SQLite) with a clinic; dev1 is paired with adult1."""
    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    env.update(NEUROGATE_DATA_DIR=str(data), NEUROGATE_ENVIRONMENT="development",
               NEUROGATE_PASSWORD_HASH_TIME_COST="1", NEUROGATE_PASSWORD_HASH_MEMORY_KIB="1024")
    settings = Settings(data_dir=data, environment="test", **FAST_HASHING)
    gateway = build_gateway(settings)
    server = ServerProcess(env=env, port=free_port(), log=tmp_path / "server.log")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            clinic = build_clinic(client, gateway)  # type: ignore[arg-type]
            client.post(f"/v1/devices/{clinic.ids['dev1']}/pairing", headers=clinic.as_("clin1"),
                        json={"subject_id": clinic.ids["adult1"]}).raise_for_status()
            yield Live(server, clinic, settings)
    finally:
        server.stop()


def _stream_leaves(entries: list[dict[str, Any]], action: str) -> dict[str, dict[str, Any]]:
    return {e["stream"]: e for e in entries if e.get("action") == action}


def test_streams_live_at_a_sigkill_are_closed_in_the_ledger_on_restart(live: Live) -> None:
    """kill -9 leaves a device stream and a subscription with a start leaf and no stop
    leaf; the restarted gateway appends their stop leaves (reason_code gateway_restart),
    forgets them, and the ledger still verifies."""
    sock, welcome = open_device(live.server.url, live.token("dev1"))
    assert welcome["type"] == "welcome", welcome
    device = DeviceThread(sock).start()
    app = subscribe(live.server.url, live.token("clinic_app"), live.pseudonym("clinic_app"),
                    "clinical_monitoring")
    assert app.first["type"] == "subscribed", app.first
    time.sleep(1.0)
    live.server.kill(signal.SIGKILL)
    device.stop()
    app.close()
    started = _stream_leaves(live.entries(), "stream.start")
    assert welcome["stream"] in started and len(started) == 2, started
    assert _stream_leaves(live.entries(), "stream.stop") == {}, "nothing stopped them"
    assert {row.stream for row in live.live_rows()} == set(started)

    live.server.start()
    deadline = time.monotonic() + 30
    while set(_stream_leaves(live.entries(), "stream.stop")) != set(started):
        assert time.monotonic() < deadline, "the restarted gateway never closed the streams"
        time.sleep(0.2)
    stops = _stream_leaves(live.entries(), "stream.stop")
    verified = neurogate("audit", "verify", env=live.server.env)

    for stream, start in started.items():
        stop = stops[stream]
        assert stop["reason_code"] == "gateway_restart", stop
        assert {k: v for k, v in stop.items() if k in ("device", "app", "subject", "purpose")} == {
            k: v for k, v in start.items() if k in ("device", "app", "subject", "purpose")}
    assert live.live_rows() == []
    assert verified.returncode == 0, verified.stdout + verified.stderr
