"""Real gateway processes on loopback, one PostgreSQL database and one NATS: each node
announces itself, every node lists the others, a SIGKILLed node drops out after its
lease, ``neurogate cluster status`` and ``/metrics`` show the nodes."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from neurogate.consent.db import get_engine
from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.e2e.conftest import ServerProcess, free_port, gateway_env, neurogate

pytestmark = [pytest.mark.nats, pytest.mark.postgres, pytest.mark.e2e]

LEASE = "2"


def _live(server: ServerProcess) -> set[str]:
    cluster = httpx.get(f"{server.url}/healthz", timeout=5).json()["cluster"]
    return {node["node_id"] for node in cluster["nodes"] or []}


def _until(server: ServerProcess, expected: set[str], within: float = 30) -> set[str]:
    """Poll the node list of ``server`` until it is ``expected`` (or ``within`` passed)."""
    deadline = time.monotonic() + within
    seen = _live(server)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = _live(server)
    return seen


def test_nodes_join_list_each_other_and_a_killed_node_leaves(
        postgres_database: str, nats_url: str, bucket: str, tmp_path: Path) -> None:
    """Three gateway nodes see each other; after SIGKILL, node 3 leaves the list within
    its lease while nodes 1 and 2 stay; the CLI and /metrics agree."""
    with get_engine(postgres_database).begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    build_gateway(Settings(data_dir=tmp_path, database_url=postgres_database,
                           environment="test"))  # schema and keys, before the nodes start
    common = {"NEUROGATE_DATABASE_URL": postgres_database, "NEUROGATE_NATS_URL": nats_url,
              "NEUROGATE_CLUSTER_BUCKET": bucket, "NEUROGATE_CLUSTER_LEASE_SECONDS": LEASE}
    servers = [ServerProcess(env=gateway_env(tmp_path, NEUROGATE_NODE_ID=f"node-{n}",
                                             **common), port=free_port())
               for n in (1, 2, 3)]
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(ServerProcess.start, servers))
        everyone = {"node-1", "node-2", "node-3"}
        assert _until(servers[0], everyone) == everyone
        assert _live(servers[2]) == everyone
        health = httpx.get(f"{servers[1].url}/healthz", timeout=5).json()["cluster"]
        assert (health["node_id"], health["nats"]) == ("node-2", "ok")
        addresses = {n["node_id"]: n["address"] for n in health["nodes"]}
        assert addresses["node-3"] == servers[2].url

        status = neurogate("cluster", "status", env=gateway_env(tmp_path, **common))
        assert status.returncode == 0, status.stderr
        assert "3 live nodes" in status.stdout
        assert all(f"node-{n}" in status.stdout for n in (1, 2, 3))

        metrics = httpx.get(f"{servers[1].url}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert 'neurogate_streams{node="node-2"} 0.0' in metrics.text
        assert 'neurogate_nats_up{node="node-2"} 1.0' in metrics.text

        servers[2].kill(signal.SIGKILL)
        assert _until(servers[0], {"node-1", "node-2"}) == {"node-1", "node-2"}
        assert _live(servers[1]) == {"node-1", "node-2"}
    finally:
        for server in servers:
            server.stop()
