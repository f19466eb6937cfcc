"""Streams across nodes, with real gateway processes on loopback, one PostgreSQL database
of this test's own and the NATS server: a device on node 1 reaches apps on nodes 2 and 3,
every sample of it, at the resolution each grant allows, reduced on the app's node exactly
as node 1 reduces it for an app of its own; and node 1 publishes nothing on the bus while
no other node has a granted subscriber."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import httpx
import nats
import numpy as np
import pytest
from neurogate_client import DeviceClient

from neurogate.devices import DeviceInfo
from tests.cluster.nodes import LEASE, assert_revoked, three_nodes
from tests.devices.live_gateway import (
    RealtimePusher,
    app_sample_count,
    assert_delivered,
    raw_samples,
    wait_until,
)
from tests.e2e.conftest import (
    gateway_env,
    neurogate,
)
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

LAYOUT = DeviceInfo(("C3", "C4"), ("eeg", "eeg"), ("V", "V"), RATE)


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


def _interest_reached(node: str, interested: set[str], within: float = 20) -> None:
    """Wait until ``node`` holds the stream-bus interest of every node in ``interested``."""
    held: set[str] = set()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        bus = httpx.get(f"{node}/healthz", timeout=5).json()["cluster"]["bus"]
        held = set(bus["interest_from"])
        if interested <= held:
            return
        time.sleep(0.1)
    msg = f"{node} holds the interest of {sorted(held)}, not of {sorted(interested)}"
    raise AssertionError(msg)


def _raw_samples(app: AppReceiver) -> np.ndarray:
    frames = sorted((m for m in app.data() if m["product"] == "raw"), key=lambda m: m["t"])
    assert frames, "no raw frame arrived"
    return np.hstack([np.asarray(m["data"]) for m in frames])


def _by_time(app: AppReceiver, product: str) -> dict[float, list[float]]:
    return {round(m["t"], 6): m["data"] for m in app.data() if m["product"] == product}


def test_a_device_on_node_1_reaches_apps_on_nodes_2_and_3(
        postgres_database: str, nats_url: str, bucket: str, tmp_path: Path) -> None:
    """Every sample at 250 Hz on nodes 2 and 3; the focus index reduced on node 3 equals
    node 1's own; nothing on the bus before any app subscribes, nor after they leave."""
    with three_nodes(postgres_database, nats_url, bucket, tmp_path) as (
            servers, clinic, client):
        watch = BusWatch(nats_url, f"neurogate.{bucket}.stream.>").start()
        try:
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
            _interest_reached(node1, {"node-2", "node-3"})
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
            assert httpx.get(f"{node1}/healthz", timeout=5).json()["cluster"]["bus"][
                "interest_from"] == []
            health = httpx.get(f"{node3}/healthz", timeout=5).json()["cluster"]
            assert health["node_id"] == "node-3"
            assert health["bus"]["received"] > 0
        finally:
            watch.stop()


def test_a_device_fails_over_when_its_node_dies(
        postgres_database: str, nats_url: str, bucket: str, tmp_path: Path) -> None:
    """The device streams to node 1 with nodes 1 and 2 in its list, the app is on node 3.
    Node 1 is SIGKILLed at a moment when the app holds every sample pushed so far; the
    client reconnects to node 2, and the app on node 3 then misses exactly the samples the
    client counts lost, all after the kill. The ledger verifies afterwards."""
    with three_nodes(postgres_database, nats_url, bucket, tmp_path) as (
            servers, clinic, client):
        node1, node2, node3 = (s.url for s in servers)
        pseudonym = client.get("/v1/consents", headers=clinic.as_("clinic_app")).json()[
            0]["subject"]
        app = subscribe(node3, app_token(node3, clinic.secrets["clinic_app"]), pseudonym,
                        "clinical_monitoring")
        assert app.first["type"] == "subscribed", app.first
        for node in (node1, node2):  # either may get the device
            _interest_reached(node, {"node-3"})
        client_id, secret = clinic.secrets["dev1"]
        device = DeviceClient([node1, node2], client_id=client_id, client_secret=secret,
                              info=LAYOUT, buffer_s=2.0, backoff_initial_s=0.1,
                              backoff_max_s=0.4)
        with device:
            assert device.wait_connected(10)
            pusher = RealtimePusher(device)
            pusher.pause_after = int(3 * RATE)
            pusher.start()
            assert pusher.paused.wait(10)
            assert device.flush(5)
            assert wait_until(lambda: app_sample_count(app) == pusher.pushed, 10), (
                "the app on node 3 gets the device's samples from node 1")
            at_kill = pusher.pushed
            servers[0].kill(signal.SIGKILL)
            pusher.resume.set()
            assert wait_until(lambda: device.stats().connections == 2, 15)
            assert device.stats().gateway_url == node2
            time.sleep(3.0)  # streaming goes on through node 2
            pusher.stop()
        stats = device.stats()
        assert wait_until(
            lambda: app_sample_count(app) >= stats.delivered_samples, 10), (
            "the app on node 3 gets data again, now from node 2")
        app.close()

    assert stats.buffered_samples == 0
    assert stats.pushed_samples == pusher.pushed == stats.delivered_samples + stats.lost_samples
    times, values, labels = raw_samples(app)
    assert labels == ["C3", "C4"]
    index = np.rint((times - pusher.t0) * RATE).astype(int)
    assert len(np.unique(index)) == len(index), "no sample arrived twice"
    missing = np.setdiff1d(np.arange(stats.pushed_samples), index)
    assert len(missing) == stats.lost_samples
    assert missing.size == 0 or missing.min() >= at_kill
    assert index.max() > at_kill + RATE, "samples pushed after the kill reached the app"
    source = pusher.source.astype(np.float32).astype(np.float64)
    assert_delivered(values, source[:, index])

    verify = neurogate("audit", "verify", env=gateway_env(
        tmp_path, NEUROGATE_DATABASE_URL=postgres_database))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_revocation_through_node_3_closes_the_apps_on_nodes_2_and_3(
        postgres_database: str, nats_url: str, bucket: str, tmp_path: Path) -> None:
    """A device on node 1 streams to the app on node 2 and on node 3 over the bus; the
    consent is revoked through node 3's REST API: both apps close with ``revoked`` (4410),
    no frame produced after the commit reaches either, and node 1 stops publishing."""
    with three_nodes(postgres_database, nats_url, bucket, tmp_path) as (
            servers, clinic, client):
        node1, node2, node3 = (s.url for s in servers)
        pseudonym = client.get("/v1/consents", headers=clinic.as_("clinic_app")).json()[
            0]["subject"]
        apps = [subscribe(node, app_token(node, clinic.secrets["clinic_app"]), pseudonym,
                          "clinical_monitoring") for node in (node2, node3)]
        for app in apps:
            assert app.first["type"] == "subscribed", app.first
        _interest_reached(node1, {"node-2", "node-3"})
        device_sock, _ = open_device(node1, app_token(node1, clinic.secrets["dev1"]))
        device = DeviceThread(device_sock).start()
        try:
            assert wait_until(lambda: all(app.data() for app in apps), 20), (
                "the apps on nodes 2 and 3 get the stream of node 1")
            with httpx.Client(base_url=node3, timeout=30) as rest:
                revoked = rest.post(f"/v1/consents/{clinic.ids['c_adult1_clinic']}/revoke",
                                    headers=clinic.as_("adult1"))
            assert revoked.status_code == 200, revoked.text
            acknowledged = time.time()  # the commit happened before the call returned
            for app in apps:
                app.wait_closed(10)
            time.sleep(0.5)  # the device streams on past the revocation
        finally:
            device.stop()
        for node, app in zip(("node 2", "node 3"), apps, strict=True):
            assert_revoked(app, acknowledged, node)
        assert device.sent_frames > 0
        assert wait_until(lambda: httpx.get(f"{node1}/healthz", timeout=5).json()[
            "cluster"]["bus"]["interest_from"] == [], float(LEASE) + 5)
