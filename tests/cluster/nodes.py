"""Three real gateway nodes on loopback (one PostgreSQL database, one NATS), and what an
app revoked on one of them must have seen."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import sqlalchemy as sa

from neurogate.consent.db import get_engine
from tests.e2e.conftest import ServerProcess, clinic_server, free_port, gateway_env
from tests.e2e.live import AppReceiver
from tests.gateway.conftest import Clinic

LEASE = "2"  # seconds: short, so that the tests see nodes leave and leases lapse


def cluster_env(database: str, nats_url: str, bucket: str) -> dict[str, str]:
    """The settings every node of the test cluster shares."""
    return {"NEUROGATE_DATABASE_URL": database, "NEUROGATE_NATS_URL": nats_url,
            "NEUROGATE_CLUSTER_BUCKET": bucket, "NEUROGATE_CLUSTER_LEASE_SECONDS": LEASE}


@contextmanager
def three_nodes(database: str, nats_url: str, bucket: str, data_dir: Path
                ) -> Iterator[tuple[list[ServerProcess], Clinic, httpx.Client]]:
    """Nodes 1, 2 and 3 on one fresh PostgreSQL database and one NATS, the test clinic in
    it (node 1 seeds it)."""
    with get_engine(database).begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    common = cluster_env(database, nats_url, bucket)
    env = {n: gateway_env(data_dir, NEUROGATE_NODE_ID=f"node-{n}", **common) for n in (1, 2, 3)}
    with clinic_server(data_dir, env=env[1], database_url=database) as (
            first, clinic, client, _):
        servers = [first] + [ServerProcess(env=env[n], port=free_port()) for n in (2, 3)]
        try:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(ServerProcess.start, servers[1:]))
            yield servers, clinic, client
        finally:
            for server in servers[1:]:
                server.stop()


def assert_revoked(app: AppReceiver, acknowledged: float, where: str) -> None:
    """``app`` was closed with ``revoked`` (4410, ``consent.revoked``), and no frame that
    starts after ``acknowledged`` (when the revoke call returned) reached it.

    As in tests/e2e/test_streaming.py: data messages carry the stream time of their first
    sample (device clock = wall clock); the commit happened before the call returned, so
    a frame that starts after that was made after it."""
    assert app.close_code == 4410, f"the app on {where} closed with {app.close_code}"
    revoked = [m for _, m in app.messages if isinstance(m, dict) and m["type"] == "revoked"]
    assert revoked and revoked[0]["reason"] == "consent.revoked"
    late = [m for m in app.data() if m["t"] > acknowledged]
    assert late == [], f"{len(late)} frames after the commit reached the app on {where}"
