"""Real gateway processes on loopback, one PostgreSQL database and one NATS: each node
announces itself, every node lists the others, a SIGKILLed node drops out after its
lease, ``neurogate cluster status`` and ``/metrics`` show the nodes, and a revocation
committed through one node closes the app open on another."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.cluster.nodes import assert_revoked, cluster_env, three_nodes
from tests.e2e.conftest import ServerProcess, gateway_env, neurogate
from tests.e2e.live import DeviceThread, app_token, open_device, subscribe

pytestmark = [pytest.mark.nats, pytest.mark.postgres, pytest.mark.e2e]

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
    its lease while nodes 1 and 2 stay; the CLI and /metrics agree. A consent revoked
    through node 1 closes the app open on node 2 with ``revoked`` (4410), no frame
    produced after the commit reaches it, and a new subscription there is refused."""
    common = cluster_env(postgres_database, nats_url, bucket)
    with three_nodes(postgres_database, nats_url, bucket, tmp_path) as (
            servers, clinic, client):
        everyone = {"node-1", "node-2", "node-3"}
        assert _until(servers[0], everyone) == everyone
        assert _live(servers[2]) == everyone
        health = httpx.get(f"{servers[1].url}/healthz", timeout=5).json()["cluster"]
        assert (health["node_id"], health["nats"]) == ("node-2", "ok")
        assert (health["delivering"], health["reason"]) == (True, None)
        assert all(node["delivering"] for node in health["nodes"])
        addresses = {n["node_id"]: n["address"] for n in health["nodes"]}
        assert addresses["node-3"] == servers[2].url

        status = neurogate("cluster", "status",
                           env=gateway_env(tmp_path, COLUMNS="200", **common))
        assert status.returncode == 0, status.stderr
        assert "3 live nodes" in status.stdout
        assert all(f"node-{n}" in status.stdout for n in (1, 2, 3))
        rows = [line for line in status.stdout.splitlines() if "node-" in line]
        assert "delivering" in status.stdout and len(rows) == 3
        assert all(" yes " in row for row in rows), status.stdout

        servers[2].kill(signal.SIGKILL)
        assert _until(servers[0], {"node-1", "node-2"}) == {"node-1", "node-2"}
        assert _live(servers[1]) == {"node-1", "node-2"}

        # A device and an app on node 2; the consent is revoked through node 1.
        url = servers[1].url
        pseudonym = client.get("/v1/consents", headers=clinic.as_("clinic_app")).json()[
            0]["subject"]
        device_sock, _ = open_device(url, app_token(url, clinic.secrets["dev1"]))
        device = DeviceThread(device_sock).start()
        token = app_token(url, clinic.secrets["clinic_app"])
        app = subscribe(url, token, pseudonym, "clinical_monitoring")
        deadline = time.monotonic() + 20
        while not app.data() and time.monotonic() < deadline:
            time.sleep(0.1)
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert 'neurogate_streams{node="node-2"} 1.0' in metrics
        assert 'neurogate_subscribers{node="node-2"} 1.0' in metrics
        assert 'neurogate_nats_up{node="node-2"} 1.0' in metrics
        revoked = client.post(f"/v1/consents/{clinic.ids['c_adult1_clinic']}/revoke",
                              headers=clinic.as_("adult1"))
        assert revoked.status_code == 200, revoked.text
        acknowledged = time.time()
        again = subscribe(url, token, pseudonym, "clinical_monitoring")
        again.wait_closed(10)
        app.wait_closed(10)
        time.sleep(0.5)  # the device streams on past the revocation
        device.stop()
        app.close()
        assert again.first["type"] == "refused"
        assert again.first["reasons"] == ["consent.revoked"]
        assert_revoked(app, acknowledged, "node 2")
        assert device.sent_frames > 0
