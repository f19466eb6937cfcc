"""Streams and the consent store: the store lease, and handshakes when reads fail."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from neurogate.gateway.app import create_app
from neurogate.gateway.egress import StoreLease
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.gateway.streams import StreamHub
from neurogate.settings import Settings
from tests.gateway.conftest import BASE_URL, FAST_HASHING


@pytest.fixture
def sqlite_gateway(tmp_path: Path) -> Gateway:
    return build_gateway(Settings(data_dir=tmp_path, environment="test", **FAST_HASHING))


def test_store_lease_ends_its_length_after_the_answer() -> None:
    """A renewal holds until the answer's time plus the lease; a failure drops it at once,
    and an answer older than the failure renews nothing."""
    hub = StreamHub()
    answered = time.monotonic()
    hub.renew_lease(0.5, answered_at=answered)
    assert hub.lease_until == answered + 0.5
    assert hub.store_ok()

    hub.drop_lease()
    hub.renew_lease(0.5, answered_at=answered)  # a probe that answered before the failure

    assert not hub.store_ok()
    hub.renew_lease(0.5)
    assert hub.store_ok()


def test_store_lease_probe_renews_and_a_failed_probe_drops(sqlite_gateway: Gateway,
                                                          tmp_path: Path) -> None:
    """The probe renews the lease while the store answers and drops it when it fails."""
    lease = StoreLease(sqlite_gateway, seconds=0.5)
    assert lease.cadence == pytest.approx(0.1)

    assert lease.renew()
    assert sqlite_gateway.hub.store_ok()
    assert sqlite_gateway.hub.lease_until - time.monotonic() <= 0.5

    sqlite_gateway.engine.dispose()
    lease._discard()
    (tmp_path / "neurogate.db").rename(tmp_path / "moved.db")
    (tmp_path / "neurogate.db").mkdir()  # the path is no longer a database

    assert not lease.renew()
    assert not sqlite_gateway.hub.store_ok()


@pytest.fixture
def client_over_a_failing_store(sqlite_gateway: Gateway, tmp_path: Path
                                ) -> Iterator[tuple[TestClient, Gateway]]:
    """A running gateway whose store lease holds (its probe keeps its own connection)
    while every other read of the store fails: its database file was moved away."""
    with TestClient(create_app(gateway=sqlite_gateway), base_url=BASE_URL) as client:
        assert sqlite_gateway.hub.store_ok()
        for name in os.listdir(tmp_path):
            if name.startswith("neurogate.db"):
                (tmp_path / name).rename(tmp_path / f"moved-{name}")
        (tmp_path / "neurogate.db").mkdir()
        # After the move, so that no pooled connection to the old file is left, even one a
        # background task (recorder, sweeper) opened a moment before.
        sqlite_gateway.engine.dispose()
        yield client, sqlite_gateway


@pytest.mark.parametrize(("path", "kind", "scope"), [
    ("/v1/stream/ingest", "device", "stream:ingest"),
    ("/v1/stream/subscribe?subject=p_x&purpose=clinical_monitoring", "app", "stream:subscribe"),
])
def test_handshake_closes_4503_when_the_store_cannot_be_read(
        client_over_a_failing_store: tuple[TestClient, Gateway], path: str, kind: str,
        scope: str) -> None:
    """A store read failing during a handshake (the lease still holding) closes the socket
    with 4503 store_unavailable instead of escaping as a server error."""
    client, gateway = client_over_a_failing_store
    token = gateway.tokens.issue(kind=kind, subject="someone", client_id=f"{kind}_x",
                                 scope=scope)

    deadline = time.monotonic() + 5  # a failed background read may have dropped the lease;
    while not gateway.hub.store_ok() and time.monotonic() < deadline:  # the probe renews it
        time.sleep(0.01)
    leased = gateway.hub.store_ok()  # so the handshake reads the store, and that fails
    with client.websocket_connect(path, headers={"Authorization": f"Bearer {token}"}) as ws:
        message = ws.receive_json()
        closed = ws.receive()

    assert leased
    assert message == {"type": "error", "code": "store_unavailable", "message": (
        "The consent store cannot be read, so no data may flow. Connect again later, "
        "with backoff.")}
    assert closed == {"type": "websocket.close", "code": 4503, "reason": ""}


async def _block_loop(started: threading.Event, release: threading.Event) -> None:
    started.set()
    release.wait(10)  # blocks the event loop, as a loop busy with other work would


def test_store_lease_holds_while_the_event_loop_is_blocked(sqlite_gateway: Gateway) -> None:
    """The lease is renewed from its own thread: an event loop blocked for three leases
    does not lapse it while the store answers."""
    seconds = sqlite_gateway.settings.store_lease_seconds
    with TestClient(create_app(gateway=sqlite_gateway), base_url=BASE_URL) as client:
        started, release = threading.Event(), threading.Event()
        client.portal.start_task_soon(_block_loop, started, release)
        assert started.wait(10)
        remaining = []
        until = time.monotonic() + 3 * seconds
        while time.monotonic() < until:
            remaining.append(sqlite_gateway.hub.lease_until - time.monotonic())
            time.sleep(0.01)
        release.set()
    print(f"\nlease {seconds} s, loop blocked {3 * seconds} s: least lease left "
          f"{min(remaining):.3f} s over {len(remaining)} samples")
    assert min(remaining) > 0
