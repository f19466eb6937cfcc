"""The revocation state machine of tests/gateway/test_revocation_machine.py on a cluster.

Three gateway nodes in this process, each with its app lifespan on its own TestClient
event loop and its own control plane (thread, loop, NATS connection), share one
PostgreSQL database and one NATS. Each run places each streamed subject's device on a
random node, with every app subscription to that subject on the same node (streams do
not cross nodes in this test: each node's stream bus is stopped); every consent change
(grant, revoke, expiry sweep) commits through a random node. The machine's rules, model
and checks are the single-node machine's: nothing made after a revocation or expiry
committed is delivered, nothing is delivered while a consent is closed, no subscription
is open while its consent is closed (checked after every step, so right after a commit
made on another node), and once re-evaluations settle on every node, every consented
subscription is open and receives.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from neurogate.consent.db import get_engine
from neurogate.gateway.app import create_app
from neurogate.gateway.cluster.control import ControlPlane
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.gateway.streams import StreamHub
from neurogate.settings import Settings
from tests.gateway.conftest import BASE_URL, FAST_HASHING, build_clinic
from tests.gateway.test_revocation_machine import (
    KEYS,
    MACHINE_SETTINGS,
    MIN_STEPS,
    STREAMED,
    Device,
    RevocationMachine,
    Tracked,
    World,
    _build_world,
    _settle,
)

pytestmark = [pytest.mark.nats, pytest.mark.postgres]

NODES = 3
SETTLE_SECONDS = 10.0


@dataclass(eq=False)
class Node:
    gateway: Gateway
    client: TestClient

    @property
    def control(self) -> ControlPlane:
        control = self.client.app.state.control  # type: ignore[attr-defined]
        assert isinstance(control, ControlPlane)
        return control


@dataclass(eq=False)
class ClusterWorld(World):
    """The machine's world with several nodes: ``gateway`` and ``client`` are the node a
    step acts on (``on``); ``placement`` says on which node each subject streams."""

    nodes: list[Node] = field(default_factory=list)
    placement: dict[str, int] = field(default_factory=dict)  # subject label -> node

    @contextmanager
    def on(self, index: int) -> Iterator[None]:
        before = self.gateway, self.client
        self.gateway, self.client = self.nodes[index].gateway, self.nodes[index].client
        try:
            yield
        finally:
            self.gateway, self.client = before

    def node_of(self, label: str) -> int:
        """The node of a consent key's subscriptions: its subject's device's node."""
        return self.placement[self.keys[label].subject]

    def settle(self) -> None:
        """Wait until no node waits for a ``committed`` and every re-evaluation is done."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            quiet = not any(node.control.pending for node in self.nodes)
            for node in self.nodes:
                node.client.portal.call(_settle, node.gateway)
            if quiet and not any(node.control.pending for node in self.nodes):
                return
            assert time.monotonic() < deadline, "a node never heard a change's 'committed'"
            time.sleep(0.005)


class ClusterRevocationMachine(RevocationMachine):
    """The single-node machine's rules, with placements and committing nodes drawn."""

    world: ClusterWorld

    @initialize(binary=st.booleans(),
                placement=st.lists(st.integers(0, NODES - 1), min_size=len(STREAMED),
                                   max_size=len(STREAMED)))
    def start(self, binary: bool, placement: list[int]) -> None:  # type: ignore[override]
        """Move each streamed subject's device to its node, then start as on one node."""
        world = self.world
        for subject, index in zip(STREAMED, placement, strict=True):
            stream = world.devices[subject].stream
            world.nodes[world.placement[subject]].gateway.hub.close_stream(stream)
            world.nodes[index].gateway.hub.open_stream(stream)
            world.placement[subject] = index
        RevocationMachine.start(self, binary)

    def commit_on(self, index: int, labels: list[str]) -> None:
        self.world.count("commits")
        if any(self.world.node_of(label) != index for label in labels):
            self.world.count("commits on another node")

    # -- consent changes through a random node -----------------------------------------
    @rule(label=st.sampled_from(KEYS), days=st.integers(2, 360),
          node=st.integers(0, NODES - 1))
    def grant(self, label: str, days: int, node: int) -> None:  # type: ignore[override]
        self.commit_on(node, [label])
        with self.world.on(node):
            RevocationMachine.grant(self, label, days)

    @precondition(lambda self: self.active())
    @rule(data=st.data(), node=st.integers(0, NODES - 1))
    def revoke(self, data: st.DataObject, node: int) -> None:  # type: ignore[override]
        self.commit_on(node, self.active())
        with self.world.on(node):
            RevocationMachine.revoke(self, data)

    @precondition(lambda self: self.active())
    @rule(data=st.data(), node=st.integers(0, NODES - 1))
    def expire(self, data: st.DataObject, node: int) -> None:  # type: ignore[override]
        self.commit_on(node, self.active())
        with self.world.on(node):
            RevocationMachine.expire(self, data)

    # -- subscriptions and data on their subject's node --------------------------------
    def decide_now(self, label: str) -> None:
        with self.world.on(self.world.node_of(label)):
            super().decide_now(label)

    def register_oldest(self, binary: bool) -> None:
        with self.world.on(self.world.node_of(self.deciding[0][1])):
            super().register_oldest(binary)

    @precondition(lambda self: self.tracked)
    @rule(data=st.data())
    def unsubscribe(self, data: st.DataObject) -> None:
        self.step("unsubscribe")
        tracked = data.draw(st.sampled_from(self.tracked))
        self.world.nodes[self.world.node_of(tracked.key)].gateway.hub.unsubscribe(tracked.sub)
        self.tracked.remove(tracked)

    def push(self, batch: list[tuple[int, Device, bytes]]) -> None:
        subject_of = {id(device): subject for subject, device in self.world.devices.items()}
        for item in batch:
            with self.world.on(self.world.placement[subject_of[id(item[1])]]):
                super().push([item])

    @rule(subject=st.sampled_from(STREAMED), frames=st.integers(1, 3), on_loop=st.booleans())
    def stream(self, subject: str, frames: int, on_loop: bool) -> None:
        with self.world.on(self.world.placement[subject]):
            RevocationMachine.stream(self, subject, frames, on_loop)

    def deliver(self, tracked: Tracked) -> list[str | bytes]:
        with self.world.on(self.world.node_of(tracked.key)):
            return super().deliver(tracked)

    def hub_of(self, tracked: Tracked) -> StreamHub:
        return self.world.nodes[self.world.node_of(tracked.key)].gateway.hub


@pytest.fixture
def cluster_world(postgres_database: str, nats_url: str, bucket: str,
                  tmp_path: Path) -> Iterator[ClusterWorld]:
    """Three clustered gateways with their lifespans running, a clinic, three consents and
    two device streams (on node 0 until a run places them)."""
    with get_engine(postgres_database).begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    gateways = [build_gateway(Settings(
        data_dir=tmp_path / "data", database_url=postgres_database, environment="test",
        nats_url=nats_url, node_id=f"node-{n}", cluster_bucket=bucket,
        cluster_lease_seconds=2, **FAST_HASHING)) for n in range(NODES)]
    clients = [TestClient(create_app(gateway=gateway), base_url=BASE_URL)
               for gateway in gateways]
    entered: list[TestClient] = []
    try:
        for client in clients:
            entered.append(client.__enter__())
            # The model tracks what each device's own node delivers; a stream bus would
            # also carry frames to a previous run's subscriptions left on other nodes.
            # Streams across nodes are tests/cluster/test_cross_node.py's.
            bus = client.app.state.bus  # type: ignore[attr-defined]
            if bus is not None:
                client.portal.call(bus.stop)
                client.app.state.bus = None  # type: ignore[attr-defined]
        nodes = [Node(gateway, client) for gateway, client in zip(gateways, clients, strict=True)]
        world = _build_world(build_clinic(clients[0], gateways[0]), gateways[0])
        yield ClusterWorld(**vars(world), nodes=nodes,
                           placement=dict.fromkeys(STREAMED, 0))
    finally:
        for client in reversed(entered):
            client.__exit__(None, None, None)


def test_revocation_machine_across_nodes_never_delivers_after_revocation(
        cluster_world: ClusterWorld) -> None:
    """No message made after a revocation or expiry committed on any node reaches an app
    on any node, and none is open after such a commit."""
    world = cluster_world
    run_state_machine_as_test(lambda: ClusterRevocationMachine(world),
                              settings=MACHINE_SETTINGS)
    print(f"cluster revocation machine: {world.steps} steps, {world.counts}")
    assert world.steps >= MIN_STEPS, world.counts
    for what in ("revoke", "expire", "delivered", "liveness", "commits on another node"):
        assert world.counts.get(what, 0) > 0, f"no {what!r} in {world.counts}"
