"""LSL out: an app's governed products as local LSL outlets, read back with pylsl; the
outlets disappear when the consent is revoked."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pylsl
import pytest
from neurogate_client import AppSubscription, DeviceClient

from neurogate.devices import DeviceInfo, LslOutBridge
from neurogate.devices.lsl import BridgeResult
from tests.devices.live_gateway import LiveClinic, RealtimePusher, live_clinic, wait_until
from tests.gateway.conftest import notice

pytestmark = pytest.mark.e2e
RATE = 250.0
LAYOUT = DeviceInfo(("C3", "C4"), ("eeg", "eeg"), ("V", "V"), RATE)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveClinic]:
    """A gateway with a clinic; each test streams a device paired with adult1."""
    with live_clinic(tmp_path_factory.mktemp("lsl-out")) as clinic:
        yield clinic


@pytest.fixture
def device(live: LiveClinic) -> Iterator[RealtimePusher]:
    """A device paired with adult1, streaming synthetic EEG in real time."""
    _, (client_id, secret) = live.register(LAYOUT)
    client = DeviceClient(live.url, client_id=client_id, client_secret=secret, info=LAYOUT)
    with client:
        assert client.wait_connected(10)
        pusher = RealtimePusher(client).start()
        yield pusher
        pusher.stop()


def _outlets(prefix: str, wait: float = 1.0) -> list[str]:
    return sorted(s.name() for s in pylsl.resolve_bypred(
        f"starts-with(name,'{prefix} ')", 0, wait))


def _revoke(live: LiveClinic, consent_id: str) -> None:
    response = live.http.post(f"/v1/consents/{consent_id}/revoke",
                              headers=live.clinic.as_("adult1"))
    assert response.status_code == 200, response.text


def test_lsl_out_carries_only_the_allowed_product_and_vanishes_on_revocation(
        live: LiveClinic, device: RealtimePusher) -> None:
    """A research consent limited to band_power yields one LSL outlet, band_power, whose
    samples are what the gateway delivered; after revocation the outlet is gone."""
    granted = live.http.post("/v1/consents", headers=live.clinic.as_("adult1"), json={
        "subject_id": live.clinic.ids["adult1"], "app_id": live.clinic.ids["research_app"],
        "purpose_id": "research_noncommercial", "notice": notice("research_noncommercial"),
        "products": ["band_power"]})
    assert granted.status_code == 201, granted.text
    consent_id = granted.json()["consent"]["id"]
    client_id, secret = live.clinic.secrets["research_app"]
    subscription = AppSubscription(live.url, client_id=client_id, client_secret=secret,
                                   subject=live.pseudonym("research_app", consent_id),
                                   purpose="research_noncommercial")
    assert set(subscription.open()["products"]) == {"band_power"}
    messages: list[dict[str, Any]] = []
    bridge = LslOutBridge(subscription, name_prefix="ng-research", on_message=messages.append)
    results: list[BridgeResult] = []
    runner = threading.Thread(target=lambda: results.append(bridge.run()))
    runner.start()
    found = pylsl.resolve_byprop("source_id", bridge.source_id("band_power"), 1, 10)
    assert found, "the band_power outlet appears once the first window is delivered"
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(5)
    pulled: list[list[float]] = []
    while len(pulled) < 2:
        sample, _ = inlet.pull_sample(timeout=5)
        assert sample is not None
        pulled.append(sample)
    assert _outlets("ng-research") == ["ng-research band_power"]
    bands = [m for m in messages if m.get("type") == "data"]
    assert {m["product"] for m in bands} == {"band_power"}
    columns = bands[0]["columns"]
    assert inlet.info().channel_count() == 2 * len(columns)
    delivered = [np.asarray(m["data"], dtype=np.float32).reshape(-1) for m in bands]
    for sample in pulled:
        assert any(np.array_equal(np.asarray(sample, dtype=np.float32), d) for d in delivered)

    _revoke(live, consent_id)
    runner.join(10)
    assert results and results[0].close_code == 4410
    assert results[0].reason == "consent.revoked"
    assert pylsl.resolve_byprop("source_id", bridge.source_id("band_power"), 1, 1.5) == []
    assert _outlets("ng-research") == []


def test_cli_lsl_out_publishes_clinical_products_until_revoked(
        live: LiveClinic, device: RealtimePusher) -> None:
    """``neurogate devices lsl-out`` publishes the clinical purpose's products (raw at the
    device rate, readable by pylsl and equal to the device's samples) and exits when the
    consent is revoked, leaving no outlet behind."""
    client_id, secret = live.clinic.secrets["clinic_app"]
    process = subprocess.Popen(
        [sys.executable, "-m", "neurogate.gateway.cli_devices", "lsl-out", "--subject",
         live.pseudonym("clinic_app"), "--purpose", "clinical_monitoring", "--name-prefix",
         "ng-clinic", "--gateway", live.url, "--client-id", client_id, "--client-secret",
         secret], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        found = pylsl.resolve_byprop("name", "ng-clinic raw", 1, 15)
        assert found, "the raw outlet appears"
        inlet = pylsl.StreamInlet(found[0])
        inlet.open_stream(5)
        assert inlet.info().nominal_srate() == RATE
        got: list[np.ndarray] = []
        while sum(len(g) for g in got) < 100:
            chunk, _ = inlet.pull_chunk(timeout=2.0)
            got.extend(np.asarray([row], dtype=np.float32) for row in chunk)
        assert wait_until(lambda: len(_outlets("ng-clinic", 0.5)) == 4, 8)
        assert _outlets("ng-clinic") == ["ng-clinic band_power", "ng-clinic filtered",
                                         "ng-clinic raw", "ng-clinic signal_quality"]
        _revoke(live, live.clinic.ids["c_adult1_clinic"])
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "The consent ended (consent.revoked); the outlets are gone." in " ".join(err.split())
    result = json.loads(out.strip().splitlines()[-1])
    assert result["close_code"] == 4410 and result["published"]["raw"] >= 100
    assert _outlets("ng-clinic") == []
    # The raw outlet carried the device's own samples (float32 volts), in order.
    received = np.concatenate(got, axis=0).T
    source = device.source.astype(np.float32)
    first = int(np.argmin(np.abs(source[0] - received[0, 0])))
    np.testing.assert_allclose(received, source[:, first:first + received.shape[1]],
                               rtol=1e-6, atol=1e-12)
