"""With the consent store unreachable mid-stream, nothing leaves the gateway."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from neurogate.gateway.state import build_gateway
from neurogate.gateway.streams import LEASE_SECONDS
from neurogate.settings import Settings
from tests.e2e.conftest import ServerProcess, free_port
from tests.e2e.live import DeviceThread, app_token, open_device, subscribe
from tests.e2e.tcp_proxy import TcpProxy
from tests.gateway.conftest import FAST_HASHING, build_clinic, notice

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
PROBE_SECONDS = 0.5  # neurogate.gateway.egress.PROBE_SECONDS


def test_fail_closed_when_the_store_becomes_unreachable(postgres_database: str,
                                                        tmp_path: Path) -> None:
    """Cutting the gateway's database connection stops every app's frames within the
    store lease, and their sockets close with 4503."""
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
    server = ServerProcess(env=env, port=free_port())
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
        sock, _ = open_device(server.url, tokens["dev1"])
        device = DeviceThread(sock).start()
        apps = [subscribe(server.url, tokens["clinic_app"], names["clinic_app"],
                          "clinical_monitoring"),
                subscribe(server.url, tokens["research_app"], names["research_app"],
                          "research_noncommercial")]
        time.sleep(2.5)
        assert all(app.data() for app in apps), "data flows while the store answers"
        cut_at = time.time()
        proxy.cut()
        for app in apps:
            app.wait_closed(10)
        device.stop()
    finally:
        server.stop()
    bound = cut_at + LEASE_SECONDS + PROBE_SECONDS + 0.5
    for app in apps:
        assert app.close_code == 4503
        errors = [m for _, m in app.messages if isinstance(m, dict) and m["type"] == "error"]
        assert errors and errors[-1]["code"] == "store_unavailable"
        late = [received for received, m in app.messages
                if isinstance(m, dict) and m["type"] == "data" and received > bound]
        assert late == [], f"{len(late)} frames reached an app after the store was cut"
