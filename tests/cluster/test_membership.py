"""Cluster membership over a real NATS server: heartbeats, leases, the node list."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from neurogate.gateway.cluster import ClusterError, Membership, NodeRecord, connect_options
from neurogate.gateway.cluster.membership import read_nodes
from neurogate.settings import Settings
from tests.cluster.conftest import nats_server
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.nats


def _settings(nats_url: str, bucket: str, node_id: str, **extra: object) -> Settings:
    return Settings(environment="test", nats_url=nats_url, node_id=node_id,
                    cluster_bucket=bucket, cluster_lease_seconds=1, **extra)


def test_membership_nodes_see_each_other_and_a_leaver_goes(nats_url: str,
                                                           bucket: str) -> None:
    """Two members list each other with their counts; one that leaves is gone at once,
    and a record whose lease has passed is never listed."""

    async def run() -> tuple[list[NodeRecord], list[NodeRecord], list[NodeRecord]]:
        one = Membership(_settings(nats_url, bucket, "node-a"), address="http://a:1",
                         version="1", figures=lambda: (2, 5))
        two = Membership(_settings(nats_url, bucket, "node-b"), address="http://b:2",
                         version="1", figures=lambda: (0, 1))
        await one.start()
        await two.start()
        both = await one.nodes()
        assert one.healthy() and two.healthy()
        assert one.bucket is not None
        later = await read_nodes(one.bucket, now=max(n.lease_until for n in both) + 0.01)
        await two.stop()
        left = await one.nodes()
        await one.stop()
        return both, later, left

    both, later, left = asyncio.run(run())
    assert [(n.node_id, n.address, n.streams, n.subscribers) for n in both] == [
        ("node-a", "http://a:1", 2, 5), ("node-b", "http://b:2", 0, 1)]
    assert later == []
    assert [n.node_id for n in left] == ["node-a"]


def test_membership_unreachable_nats_fails_with_the_url() -> None:
    """A NATS URL where nothing listens fails to join with a sentence naming it."""
    settings = Settings(environment="test", nats_url="nats://127.0.0.1:9", node_id="node-x",
                        cluster_lease_seconds=1)
    member = Membership(settings, address="http://x:1", version="1", figures=lambda: (0, 0))
    with pytest.raises(ClusterError, match=r"NATS cannot be reached at nats://127\.0\.0\.1:9"):
        asyncio.run(member.start())


def test_membership_credentials_come_from_settings_and_stay_secret() -> None:
    """User and password (or token) reach the NATS client, never the settings' repr."""
    settings = Settings(environment="test", nats_url="nats://a:4222,tls://b:4222",
                        nats_user="gateway", nats_password="pw-123", nats_token="tok-456")
    options = connect_options(settings)
    assert options["servers"] == ["nats://a:4222", "tls://b:4222"]
    assert (options["user"], options["password"], options["token"]) == (
        "gateway", "pw-123", "tok-456")
    assert "pw-123" not in repr(settings) and "tok-456" not in repr(settings)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("nats_url", "http://127.0.0.1:4222", "NEUROGATE_NATS_URL. It must be nats://host:port"),
    ("nats_url", "nats://user:pw@127.0.0.1:4222", "not inside the URL"),
    ("node_id", "node 1", "NEUROGATE_NODE_ID. It must be 1 to 64 letters"),
    ("cluster_lease_seconds", 0.5, "NEUROGATE_CLUSTER_LEASE_SECONDS. Allowed values are"),
])
def test_membership_settings_refuse_bad_values(field: str, value: object,
                                               message: str) -> None:
    """Bad cluster settings are refused with a sentence naming the variable."""
    with pytest.raises(ValueError, match=message):
        Settings(environment="test", **{field: value})


def test_membership_node_id_defaults_to_a_new_id_per_process_start() -> None:
    """Without NEUROGATE_NODE_ID each start gets its own id."""
    assert Settings().node_id != Settings().node_id
    assert Settings().node_id.startswith("node-")


def test_membership_loses_nats_and_comes_back(tmp_path: Path) -> None:
    """A node whose NATS server goes away turns unhealthy within its lease (its /healthz
    section says so, with no node list); once a NATS server is back at the same address,
    its heartbeat and its record return."""
    port = free_port()
    server = nats_server(port, tmp_path / "one")
    settings = _settings(f"nats://127.0.0.1:{port}", "neurogate_nodes", "node-r")
    member = Membership(settings, address="http://r:1", version="1", figures=lambda: (0, 0))

    async def wait_for(healthy: bool, within: float = 20) -> bool:
        deadline = time.monotonic() + within
        while member.healthy() != healthy and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return member.healthy()

    async def run() -> tuple[bool, bool, bool, list[str]]:
        nonlocal server
        await member.start()
        first = member.healthy()
        server.kill()
        server.wait()
        down = await wait_for(False)
        section = await member.health()
        assert (section["node_id"], section["nats"], section["nodes"]) == (
            "node-r", "unavailable", None)
        server = nats_server(port, tmp_path / "two")  # a new server: the bucket is gone
        up = await wait_for(True)
        nodes = [n.node_id for n in await member.nodes()]
        await member.stop()
        return first, down, up, nodes

    try:
        assert asyncio.run(run()) == (True, False, True, ["node-r"])
    finally:
        server.kill()
        server.wait()


def test_membership_joins_a_nats_that_wants_credentials_only_with_them(
        tmp_path: Path) -> None:
    """A NATS server with a user and password admits a node given them in the settings,
    and refuses one with a wrong password (it does not start)."""
    port = free_port()
    server = nats_server(port, tmp_path, "--user", "gateway", "--pass", "pw-123")
    url = f"nats://127.0.0.1:{port}"

    async def join(password: str) -> list[str]:
        member = Membership(_settings(url, "neurogate_nodes", "node-c", nats_user="gateway",
                                      nats_password=password),
                            address="http://c:1", version="1", figures=lambda: (0, 0))
        await member.start()
        try:
            return [n.node_id for n in await member.nodes()]
        finally:
            await member.stop()

    try:
        assert asyncio.run(join("pw-123")) == ["node-c"]
        with pytest.raises(ClusterError, match="NATS cannot be reached"):
            asyncio.run(join("wrong"))
    finally:
        server.kill()
        server.wait()
