"""Streams across nodes, with real gateway processes on loopback, one PostgreSQL database
of this test's own and the NATS server: a device on node 1 reaches apps on nodes 2 and 3,
every sample of it, at the resolution each grant allows, reduced on the app's node exactly
as node 1 reduces it for an app of its own; and node 1 publishes nothing on the bus while
no other node has a granted subscriber."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import nats
import numpy as np
import pytest
import sqlalchemy as sa

from neurogate.consent.db import get_engine
from tests.e2e.conftest import ServerProcess, clinic_server, free_port, gateway_env
from tests.e2e.live import (
    RATE,
    AppReceiver,
    DeviceThread,
    app_token,
    open_device,
    subscribe,
    synthetic_uv,
)
from tests.gateway.conftest import notice

pytestmark = [pytest.mark.nats, pytest.mark.postgres, pytest.mark.e2e]

LEASE = "2"


class BusWatch:
    """A plain NATS client (no gateway) counting what is published under a subject."""

    def __init__(self, url: str, subject: str) -> None:
        self.url, self.subject = url, subject
        self.subjects: list[str] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        client = await nats.connect(self.url)

        async def seen(msg: nats.aio.msg.Msg) -> None:
            self.subjects.append(msg.subject)

        await client.subscribe(self.subject, cb=seen)
        await client.flush()
        self._ready.set()
        while not self._stop.is_set():
            await asyncio.sleep(0.05)
        await client.close()

    def start(self) -> BusWatch:
        self._thread.start()
        assert self._ready.wait(10), "the watching NATS client did not connect"
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _stream_for(url: str, token: str, seconds: float) -> DeviceThread:
    """Connect the device to ``url``, stream ``seconds`` of samples, say bye."""
    sock, welcome = open_device(url, token)
    assert welcome["type"] == "welcome", welcome
    device = DeviceThread(sock).start()
    time.sleep(seconds)
    device.stop()
    return device


def _raw_samples(app: AppReceiver) -> np.ndarray:
    frames = sorted((m for m in app.data() if m["product"] == "raw"), key=lambda m: m["t"])
    assert frames, "no raw frame arrived"
    return np.hstack([np.asarray(m["data"]) for m in frames])


def _by_time(app: AppReceiver, product: str) -> dict[float, list[float]]:
    return {round(m["t"], 6): m["data"] for m in app.data() if m["product"] == product}


def test_a_device_on_node_1_reaches_apps_on_nodes_2_and_3(
        postgres_database: str, nats_url: str, bucket: str, tmp_path: Path) -> None:
    with get_engine(postgres_database).begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    common = {"NEUROGATE_DATABASE_URL": postgres_database, "NEUROGATE_NATS_URL": nats_url,
              "NEUROGATE_CLUSTER_BUCKET": bucket, "NEUROGATE_CLUSTER_LEASE_SECONDS": LEASE}
    env = {n: gateway_env(tmp_path, NEUROGATE_NODE_ID=f"node-{n}", **common) for n in (1, 2, 3)}
    with clinic_server(tmp_path, env=env[1], database_url=postgres_database) as (
            first, clinic, client, _):
        servers = [first] + [ServerProcess(env=env[n], port=free_port()) for n in (2, 3)]
        watch = BusWatch(nats_url, f"neurogate.{bucket}.stream.>").start()
        try:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(ServerProcess.start, servers[1:]))
            node1, node2, node3 = (s.url for s in servers)
            pseudonym = client.get("/v1/consents", headers=clinic.as_("clinic_app")).json()[
                0]["subject"]
            granted = client.post("/v1/consents", headers=clinic.as_("adult1"), json={
                "subject_id": clinic.ids["adult1"], "app_id": clinic.ids["focus_app"],
                "purpose_id": "neurofeedback", "notice": notice("neurofeedback")})
            assert granted.status_code == 201, granted.text
            focus_pseudonym = client.get(
                "/v1/consents", headers=clinic.as_("focus_app")).json()[0]["subject"]
            device_token = app_token(node1, clinic.secrets["dev1"])

            # No app anywhere: the stream runs on node 1 and nothing goes on the bus.
            _stream_for(node1, device_token, 3.0)
            assert watch.subjects == []

            clinic_token = app_token(node2, clinic.secrets["clinic_app"])
            focus_token = app_token(node3, clinic.secrets["focus_app"])
            on_2 = subscribe(node2, clinic_token, pseudonym, "clinical_monitoring")
            on_3 = subscribe(node3, clinic_token, pseudonym, "clinical_monitoring")
            focus_on_3 = subscribe(node3, focus_token, focus_pseudonym, "neurofeedback")
            focus_on_1 = subscribe(node1, focus_token, focus_pseudonym, "neurofeedback")
            for app in (on_2, on_3, focus_on_3, focus_on_1):
                assert app.first["type"] == "subscribed", app.first
            time.sleep(1.5)  # the apps' nodes announce their interest
            device = _stream_for(node1, device_token, 8.0)
            time.sleep(2.0)  # the last frames cross the bus
            for app in (on_2, on_3, focus_on_3, focus_on_1):
                app.close()
            crossed = set(watch.subjects)

            # What the device sent: float32 microvolts, which the gateway scales to volts.
            sent = synthetic_uv(device.sent_samples, 0).astype(np.float32).astype(
                np.float64) * 1e-6
            for app in (on_2, on_3):  # every sample, in order, at the granted 250 Hz
                received = _raw_samples(app)
                assert received.shape == sent.shape
                np.testing.assert_array_equal(received, sent)
                assert {m["rate_hz"] for m in app.data() if m["product"] == "raw"} == {RATE}
            grant = focus_on_3.first["products"]["focus_index"]
            focus = [m for m in focus_on_3.data() if m["product"] == "focus_index"]
            assert focus, "no focus index reached node 3"
            assert {(m["window_s"], m["rate_hz"], tuple(m["labels"])) for m in focus} == {
                (grant["window_s"], grant["output_rate_hz"], ("global",))}
            assert focus_on_3.products() <= set(focus_on_3.first["products"])
            # Reduced on node 3 as node 1 reduces it for its own app: the same values.
            remote, local = _by_time(focus_on_3, "focus_index"), _by_time(
                focus_on_1, "focus_index")
            assert remote == local
            assert len(remote) >= 8
            # Node 1 published only the products subscribers take, per stream and product.
            products = {s.rsplit(".", 1)[1] for s in crossed}
            assert "raw" in products
            assert products <= {"raw", "filtered", "band_power", "signal_quality",
                                "focus_index", "relaxation_index"}
            assert all(s.startswith(f"neurogate.{bucket}.stream.") for s in crossed)
            assert pseudonym not in " ".join(crossed)
            assert clinic.ids["adult1"] not in " ".join(crossed)

            # The apps left: their nodes withdraw their interest and node 1 stops.
            time.sleep(float(LEASE) + 1.0)
            before = len(watch.subjects)
            _stream_for(node1, device_token, 3.0)
            assert len(watch.subjects) == before
            health = httpx.get(f"{node2}/healthz", timeout=5).json()
            assert health["cluster"]["node_id"] == "node-2"
        finally:
            watch.stop()
            for server in servers[1:]:
                server.stop()
