"""The cluster control plane with real gateway processes, PostgreSQL and NATS: a node cut
off from NATS stops delivering within its lease and resumes once NATS is back; a node
paused for a change whose ``committed`` never comes decides again after one lease; a
change that cannot pause a live node is not committed."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import sqlalchemy as sa
from sqlmodel import select

from neurogate.consent.consents import revoke_consent
from neurogate.consent.db import get_engine
from neurogate.consent.models import Consent
from neurogate.gateway.cluster import NodeRecord
from neurogate.gateway.cluster.control import pause_subject
from neurogate.gateway.deps import principal_for_token
from tests.cluster.conftest import nats_server
from tests.e2e.conftest import ServerProcess, clinic_server, free_port, gateway_env
from tests.e2e.live import AppReceiver, app_token, open_device, subscribe
from tests.e2e.test_fail_closed import StampedDevice
from tests.gateway.conftest import notice

pytestmark = [pytest.mark.nats, pytest.mark.postgres, pytest.mark.e2e]

LEASE = 2.0  # NEUROGATE_CLUSTER_LEASE_SECONDS of these nodes
MARGIN = 0.1  # as in tests/e2e/test_fail_closed.py


def _reset(database_url: str) -> None:
    with get_engine(database_url).begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))


def _env(tmp_path: Path, node: str, nats_url: str, bucket: str, database_url: str
         ) -> dict[str, str]:
    return gateway_env(tmp_path, NEUROGATE_NODE_ID=node, NEUROGATE_DATABASE_URL=database_url,
                       NEUROGATE_NATS_URL=nats_url, NEUROGATE_CLUSTER_BUCKET=bucket,
                       NEUROGATE_CLUSTER_LEASE_SECONDS=str(LEASE))


def _cluster(server: ServerProcess) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/healthz", timeout=5).json()["cluster"])


def _wait(condition: Callable[[], bool], within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


def _times(app: AppReceiver) -> list[float]:
    return [m["t"] for m in app.data()]


def _pseudonym(client: httpx.Client, clinic: Any, app: str, purpose: str) -> str:
    """The app's pseudonym of the subject whose consent for ``purpose`` it holds."""
    consents = client.get("/v1/consents", headers=clinic.as_(app)).json()
    return str(next(c["subject"] for c in consents if c["purpose_id"] == purpose))


def _metric(server: ServerProcess, name: str) -> str:
    lines = httpx.get(f"{server.url}/metrics", timeout=5).text.splitlines()
    return next(line for line in lines if line.startswith(name + "{"))


def test_control_nats_stop_every_node_stops_delivering_and_resumes(
        postgres_database: str, tmp_path: Path) -> None:
    """Two nodes, each with a device and an app; the NATS server stops: no data message
    produced more than one lease (+ margin) after that reaches either app, each node's
    /healthz says it does not deliver because NATS is unreachable and /metrics has
    ``neurogate_nats_up`` 0. A NATS server back at the address: both apps get data again
    on the same sockets."""
    _reset(postgres_database)
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    server = nats_server(port, tmp_path / "nats-one")
    env = {n: _env(tmp_path, f"node-{n}", url, "neurogate_nodes", postgres_database)
           for n in (1, 2)}
    devices: list[StampedDevice] = []
    apps: list[AppReceiver] = []
    try:
        with clinic_server(tmp_path, env=env[1], database_url=postgres_database) as (
                first, clinic, client, _):
            # A second device of the same subject on node 2, and a second app's consent.
            paired = client.post(f"/v1/devices/{clinic.ids['dev2']}/pairing",
                                 headers=clinic.as_("clin1"),
                                 json={"subject_id": clinic.ids["adult1"]})
            assert paired.status_code == 200, paired.text
            granted = client.post("/v1/consents", headers=clinic.as_("adult1"), json={
                "subject_id": clinic.ids["adult1"], "app_id": clinic.ids["research_app"],
                "purpose_id": "research_noncommercial",
                "notice": notice("research_noncommercial")})
            assert granted.status_code == 201, granted.text
            second = ServerProcess(env=env[2], port=free_port())
            second.start()
            nodes = [first, second]
            try:
                for node, device, app, purpose in (
                        (first, "dev1", "clinic_app", "clinical_monitoring"),
                        (second, "dev2", "research_app", "research_noncommercial")):
                    sock, _ = open_device(node.url, app_token(node.url, clinic.secrets[device]))
                    devices.append(StampedDevice(sock).start())
                    apps.append(subscribe(node.url, app_token(node.url, clinic.secrets[app]),
                                          _pseudonym(client, clinic, app, purpose), purpose))
                assert _wait(lambda: all(app.data() for app in apps)), [
                    (app.first, app.close_code, app.messages[:3]) for app in apps]

                server.kill()
                server.wait()
                cut_at = time.time()
                assert _wait(lambda: not any(_cluster(n)["delivering"] for n in nodes))
                time.sleep(max(0.0, cut_at + LEASE + 1.0 - time.time()))  # stream on past it
                down = [_cluster(n) for n in nodes]
                metrics = [(_metric(n, "neurogate_nats_up"), _metric(n, "neurogate_delivering"))
                           for n in nodes]
                late = [t for app in apps for t in _times(app) if t > cut_at + LEASE + MARGIN]
                sent_past = [sum(s > cut_at + LEASE + MARGIN for s in d.stamps)
                             for d in devices]

                server = nats_server(port, tmp_path / "nats-two")  # the bucket is gone too
                back_at = time.time()
                assert _wait(lambda: all(_cluster(n)["delivering"] for n in nodes)), (
                    "the nodes deliver again once NATS is back")
                assert _wait(lambda: all(max(_times(app)) > back_at for app in apps)), (
                    "both apps receive data again")
                assert all(app.close_code is None for app in apps)
            finally:
                second.stop()
    finally:
        for device in devices:
            device.stop()
        for app in apps:
            app.close()
        server.kill()
        server.wait()
    print(f"\nNATS stopped: last data produced "
          f"{max(t for app in apps for t in _times(app) if t < back_at) - cut_at:+.3f} s "
          f"after the cut (bound {LEASE + MARGIN:.1f} s)")
    for section in down:
        assert (section["nats"], section["delivering"], section["reason"]) == (
            "unavailable", False, "nats_unreachable")
    for nats_up, delivering in metrics:
        assert nats_up.endswith(" 0.0") and delivering.endswith(" 0.0"), (nats_up, delivering)
    assert late == [], f"{len(late)} data messages made after the lease reached an app"
    assert all(n > 0 for n in sent_past), "the devices must stream past the bound"


async def _ask_pause(nats_url: str, subject: str, keys: list[list[str]]) -> bytes:
    """Ask a node to pause ``keys`` as a committing node would, and never say committed."""
    client = await nats.connect(nats_url)
    try:
        payload = {"change": uuid.uuid4().hex, "node": "node-gone", "keys": keys}
        reply = await client.request(subject, json.dumps(payload).encode(), timeout=5)
        return bytes(reply.data)
    finally:
        await client.close()


def test_control_node_never_told_committed_decides_again_after_one_lease(
        postgres_database: str, nats_url: str, bucket: str, tmp_path: Path) -> None:
    """A node paused by a peer that then dies (no ``committed``) stops delivering at once,
    and decides again from the database after one lease: with the consent unchanged the
    app gets data again; with the consent revoked meanwhile (by a process outside the
    cluster) it closes with ``revoked``, and no frame made after the pause reaches it."""
    _reset(postgres_database)
    env = _env(tmp_path, "node-p", nats_url, bucket, postgres_database)
    with clinic_server(tmp_path, env=env, database_url=postgres_database) as (
            node, clinic, client, outside):
        sock, _ = open_device(node.url, app_token(node.url, clinic.secrets["dev1"]))
        device = StampedDevice(sock).start()
        app = subscribe(node.url, app_token(node.url, clinic.secrets["clinic_app"]),
                        _pseudonym(client, clinic, "clinic_app", "clinical_monitoring"),
                        "clinical_monitoring")
        try:
            assert _wait(lambda: bool(app.data())), "data flows first"
            keys = [["subject", clinic.ids["adult1"]]]
            subject = pause_subject(bucket, "node-p")
            assert asyncio.run(_ask_pause(nats_url, subject, keys)) == b'{"paused":true}'
            paused_at = time.time()
            resumed = _wait(lambda: max(_times(app)) > paused_at + LEASE)

            assert asyncio.run(_ask_pause(nats_url, subject, keys)) == b'{"paused":true}'
            second_pause = time.time()
            token = clinic.as_("adult1")["Authorization"].removeprefix("Bearer ")
            with outside.transaction() as session:  # this gateway is not in the cluster
                revoke_consent(session=session, ledger=outside.ledger,
                               principal=principal_for_token(outside, token),
                               consent_id=clinic.ids["c_adult1_clinic"], reason="test")
            app.wait_closed(LEASE + 10)
            time.sleep(0.3)
        finally:
            device.stop()
            app.close()
    assert resumed, "a paused node never told 'committed' decides again after one lease"
    assert app.close_code == 4410
    revoked = [m for _, m in app.messages if isinstance(m, dict) and m["type"] == "revoked"]
    assert revoked and revoked[0]["reason"] == "consent.revoked"
    late = [t for t in _times(app) if t > second_pause]
    assert late == [], f"{len(late)} frames made after the pause reached the app"


@contextmanager
def _silent_peer(nats_url: str, bucket: str) -> Iterator[None]:
    """A node record kept alive in the bucket for a node that never answers a pause."""
    stop = threading.Event()

    async def beat() -> None:
        client = await nats.connect(nats_url)
        kv = await client.jetstream().key_value(bucket)
        try:
            while not stop.is_set():
                now = time.time()
                record = NodeRecord(node_id="node-silent", address="http://192.0.2.1:1",
                                    started_at=now, lease_until=now + LEASE, streams=0,
                                    subscribers=0, version="0")
                await kv.put(record.node_id, record.to_json())
                await asyncio.sleep(LEASE / 4)
            await kv.delete("node-silent")
        finally:
            await client.close()

    thread = threading.Thread(target=asyncio.run, args=(beat(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def test_control_change_that_cannot_pause_a_live_node_is_not_committed(
        postgres_database: str, nats_url: str, bucket: str, tmp_path: Path) -> None:
    """While a node is listed with a live lease but never answers, a revocation waits
    one lease and is refused with 503 ``cluster_unavailable``: the consent stays active
    and the ledger unchanged. Once that node's lease lapses, the revocation commits."""
    _reset(postgres_database)
    env = _env(tmp_path, "node-c", nats_url, bucket, postgres_database)
    with clinic_server(tmp_path, env=env, database_url=postgres_database) as (
            _node, clinic, client, outside):
        consent_id = clinic.ids["c_adult1_clinic"]
        size = client.get("/v1/ledger/checkpoint").text
        with _silent_peer(nats_url, bucket):
            time.sleep(LEASE / 2)  # the record is in the bucket
            refused = client.post(f"/v1/consents/{consent_id}/revoke",
                                  headers=clinic.as_("adult1"))
        with outside.transaction() as session:
            status = session.exec(select(Consent.status).where(Consent.id == consent_id)).one()
        unchanged = client.get("/v1/ledger/checkpoint").text
        time.sleep(LEASE)  # the silent node's record lapses
        accepted = client.post(f"/v1/consents/{consent_id}/revoke",
                               headers=clinic.as_("adult1"))
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "cluster_unavailable"
    assert status == "active"
    assert unchanged == size
    assert accepted.status_code == 200, accepted.text
