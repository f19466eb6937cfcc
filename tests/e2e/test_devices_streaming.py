"""Sources into a real gateway process, out to a consenting app: BrainFlow's synthetic
board, a pylsl outlet and the shared recordings, checked sample for sample."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import mne
import numpy as np
import pylsl
import pytest
from neurogate_client import DeviceClient, StreamRefused

from neurogate.devices import (
    BrainFlowAdapter,
    Chunk,
    DeviceInfo,
    FileAdapter,
    LslInletAdapter,
    destroy_outlet,
    stream_adapter,
)
from tests.devices.live_gateway import (
    LiveClinic,
    app_sample_count,
    assert_delivered,
    expected_raw,
    live_clinic,
    raw_samples,
    shared_recording,
    wait_until,
)

pytestmark = pytest.mark.e2e
LSL_CHANNELS = ["C3", "C4", "Cz"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveClinic]:
    """One gateway process with a populated clinic (adult1 consents to clinical_monitoring)."""
    with live_clinic(tmp_path_factory.mktemp("devices")) as clinic:
        yield clinic


def _client(live: LiveClinic, info: DeviceInfo, creds: tuple[str, str],
            **options: float) -> DeviceClient:
    return DeviceClient(live.url, client_id=creds[0], client_secret=creds[1], info=info,
                        **options)


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neurogate.gateway.cli_devices", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_brainflow_synthetic_board_reaches_the_app_sample_for_sample(live: LiveClinic) -> None:
    """Every sample the synthetic board gave (µV, converted to V) reaches the app's raw."""
    chunks: list[Chunk] = []
    with BrainFlowAdapter("synthetic") as board:
        _, creds = live.register(board.info)
        app = live.subscribe()
        with _client(live, board.info, creds) as client, board.streaming():
            assert client.wait_connected(10)
            stream_adapter(board, client, duration_s=2.5, on_chunk=chunks.append)
        stats = client.stats()
    assert wait_until(lambda: app_sample_count(app) >= stats.delivered_samples, 10)
    app.close()
    source = np.concatenate([c.data for c in chunks], axis=1)
    times, data, labels = raw_samples(app)
    assert labels == list(board.info.channel_names)
    assert stats.lost_samples == 0
    assert stats.pushed_samples == stats.delivered_samples == source.shape[1] > 500
    expected, rate = expected_raw(source, 250.0)
    assert rate == 250.0
    assert_delivered(data, expected)
    # BrainFlow's synthetic EEG peaks near a millivolt: volts on the wire, not µV (µV
    # would be three orders of magnitude larger).
    assert 1e-6 < np.abs(data).max() < 1e-2


def _lsl_outlet(name: str, rate: float) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, "EEG", len(LSL_CHANNELS), rate, pylsl.cf_float32,
                            f"{name}-source")
    channels = info.desc().append_child("channels")
    for label in LSL_CHANNELS:
        channel = channels.append_child("channel")
        channel.append_child_value("label", label)
        channel.append_child_value("type", "EEG")
        channel.append_child_value("unit", "microvolts")
    return pylsl.StreamOutlet(info)


def _lsl_source(n: int, rate: float) -> np.ndarray:
    """Samples (n, 3) in microvolts, float32: alpha plus a ramp, unique per sample."""
    t = np.arange(n) / rate
    rows = [20 * np.sin(2 * np.pi * 10 * t + k) + 1e-3 * np.arange(n) for k in range(3)]
    return np.asarray(rows, dtype=np.float32).T


def test_lsl_outlet_reaches_the_app_sample_for_sample(live: LiveClinic) -> None:
    """A real pylsl outlet's samples, attached by name, reach the app's raw unchanged."""
    rate, chunk = 250.0, 10
    source = _lsl_source(int(2.5 * rate), rate)
    outlet = _lsl_outlet("ng-test-lsl-in", rate)
    chunks: list[Chunk] = []
    adapter = LslInletAdapter(name="ng-test-lsl-in", resolve_timeout=5)
    with adapter:
        assert adapter.info.channel_names == tuple(LSL_CHANNELS)
        assert adapter.info.units == ("uV",) * 3
        _, creds = live.register(adapter.info)
        app = live.subscribe()
        with _client(live, adapter.info, creds) as client, adapter.streaming():
            assert client.wait_connected(10)
            stop = threading.Event()
            reader = threading.Thread(target=stream_adapter, args=(adapter, client),
                                      kwargs={"stop": stop, "on_chunk": chunks.append})
            reader.start()
            start = time.monotonic()
            for i in range(0, len(source), chunk):
                outlet.push_chunk(source[i:i + chunk])
                time.sleep(max(0.0, start + (i + chunk) / rate - time.monotonic()))
            assert wait_until(lambda: sum(c.n_times for c in chunks) >= len(source), 5)
            stop.set()
            reader.join(5)
        stats = client.stats()
    assert wait_until(lambda: app_sample_count(app) >= stats.delivered_samples, 10)
    app.close()
    read = np.concatenate([c.data for c in chunks], axis=1)
    np.testing.assert_array_equal(read, source.T.astype(np.float64) * 1e-6)
    times, data, labels = raw_samples(app)
    assert labels == LSL_CHANNELS
    assert stats.lost_samples == 0 and stats.delivered_samples == len(source)
    expected, _ = expected_raw(read, rate)
    assert_delivered(data, expected)
    assert np.all(np.diff(times) > 0)
    destroy_outlet(outlet)


@pytest.mark.data
@pytest.mark.parametrize(("name", "start_s", "length_s"), [
    ("test_raw.set", 10.0, 4.0),           # EEGLAB, 32 EEG at 128 Hz: delivered as is
    ("test_reduced.edf", 0.0, 4.0),        # EDF+, 138 EEG + stim at 512 Hz: 170.7 Hz
    ("test_generator_2.bdf", 100.0, 4.0),  # BDF, 11 channels at 200 Hz: delivered as is
])
def test_recording_replay_reaches_the_app_at_the_purpose_rate(
        live: LiveClinic, name: str, start_s: float, length_s: float) -> None:
    """A slice of each shared recording, replayed faster than real time, reaches the app:
    every sample at rates up to 250 Hz, the gateway's decimation above."""
    path = shared_recording(name)
    raw = mne.io.read_raw(path, verbose="error")
    picks = mne.pick_types(raw.info, eeg=True, ecog=True, seeg=True, exclude=[])
    sfreq = raw.info["sfreq"]
    first = round(start_s * sfreq)
    # One contiguous read, like the adapter's: MNE's warning about edge artifacts of
    # mixed-rate EDF channels concerns reads in several segments.
    source = raw.get_data(picks=picks, start=first, stop=first + round(length_s * sfreq),
                          verbose="error")
    adapter = FileAdapter(path, start_s=start_s, duration_s=length_s, speed=4.0)
    with adapter:
        assert adapter.info.channel_names == tuple(raw.ch_names[i] for i in picks)
        assert adapter.info.sfreq == sfreq
        _, creds = live.register(adapter.info)
        app = live.subscribe()
        began = time.time()
        with _client(live, adapter.info, creds) as client, adapter.streaming():
            assert client.wait_connected(10)
            stream_adapter(adapter, client, block=True)
        stats = client.stats()
    expected, rate = expected_raw(source, sfreq)
    assert stats.lost_samples == 0 and stats.delivered_samples == source.shape[1]
    assert wait_until(lambda: app_sample_count(app) >= expected.shape[1], 10)
    app.close()
    times, data, labels = raw_samples(app)
    assert labels == list(adapter.info.channel_names)
    # Decimated values pass an IIR filter: allow float rounding of the filter too.
    assert_delivered(data, expected, atol=1e-15)
    assert {m["rate_hz"] for m in app.data() if m["product"] == "raw"} == {rate}
    # Timestamps start at the replay, not at the recording's date.
    assert abs(times[0] - began) < 5.0


def test_client_overflow_while_connected_is_reported_as_sequence_gaps(live: LiveClinic) -> None:
    """Pushing faster than the gateway accepts overflows the bounded buffer: the frames
    lost are counted, and the gateway reports exactly those as missing sequence numbers."""
    rate, chunk = 250.0, 25
    info = DeviceInfo(("C3", "C4"), ("eeg", "eeg"), ("V", "V"), rate)
    _, creds = live.register(info)
    app = live.subscribe()
    t0 = time.time()
    source = 1e-5 * np.sin(np.arange(2 * int(10 * rate)) / 7.0).reshape(2, -1)
    with _client(live, info, creds, buffer_s=1.0) as client:
        assert client.wait_connected(10)
        client.push(source[:, :chunk], t0)
        assert client.flush(5)
        for i in range(chunk, source.shape[1], chunk):  # 10 s of samples at once
            client.push(source[:, i:i + chunk], t0 + i / rate)
    stats = client.stats()
    gaps = [n for n in client.notices if n.get("code") == "sequence_gap"]
    assert stats.lost_frames > 0
    assert sum(g["missing"] for g in gaps) == stats.lost_frames
    assert stats.delivered_samples + stats.lost_samples == stats.pushed_samples == 2500
    assert wait_until(lambda: app_sample_count(app) >= stats.delivered_samples, 10)
    app.close()
    assert app_sample_count(app) == stats.delivered_samples
    assert not [n for n in client.notices if n.get("code") == "rate_exceeded"]


def test_client_of_an_unpaired_device_is_refused_for_good(live: LiveClinic) -> None:
    """A registered but unpaired device is refused (4403) with how to pair it, and the
    client stops instead of retrying."""
    info = DeviceInfo(("C3", "C4"), ("eeg", "eeg"), ("V", "V"), 250.0)
    device_id, creds = live.register(info, pair_with=None)
    client = _client(live, info, creds)
    with client:
        with pytest.raises(StreamRefused, match=rf"close code 4403.*not paired with a "
                                                rf"subject.*POST /v1/devices/{device_id}/"
                                                rf"pairing"):
            client.wait_connected(10)
        with pytest.raises(StreamRefused):
            client.push(np.zeros((2, 10)), time.time())
    assert client.stats().connections == 0


def test_cli_stream_synthetic_board_reports_what_the_app_received(live: LiveClinic) -> None:
    """``neurogate devices stream --board synthetic`` streams to a consenting app, and its
    summary counts what the gateway confirmed."""
    with BrainFlowAdapter("synthetic") as board:
        info = board.info
    _, (client_id, secret) = live.register(info)
    app = live.subscribe()
    done = _cli("stream", "--board", "synthetic", "--gateway", live.url, "--client-id",
                client_id, "--client-secret", secret, "--duration", "2", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["lost_samples"] == 0
    assert summary["delivered_samples"] == summary["pushed_samples"] > 300
    assert wait_until(lambda: app_sample_count(app) >= summary["delivered_samples"], 10)
    app.close()
    assert app_sample_count(app) == summary["delivered_samples"]


@pytest.mark.data
def test_cli_replay_shows_progress_and_streams_the_slice(live: LiveClinic) -> None:
    """``neurogate devices replay FILE`` shows a progress bar and streams the slice."""
    path = shared_recording("test_generator_2.bdf")
    info = FileAdapter(path)
    with info:
        layout = info.info
    _, (client_id, secret) = live.register(layout)
    app = live.subscribe()
    done = _cli("replay", str(path), "--start", "30", "--length", "2", "--speed", "2",
                "--gateway", live.url, "--client-id", client_id, "--client-secret", secret,
                "--json")
    assert done.returncode == 0, done.stderr
    assert "Replaying test_generator_2.bdf" in done.stdout and "100%" in done.stdout
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["delivered_samples"] == 400 and summary["lost_samples"] == 0
    assert wait_until(lambda: app_sample_count(app) >= 400, 10)
    app.close()
    assert app_sample_count(app) == 400


def test_cli_lsl_in_refuses_an_outlet_registered_with_another_layout(
        live: LiveClinic) -> None:
    """With the credentials of a device registered with another layout, the gateway
    refuses the hello and ``lsl-in`` prints the POST /v1/devices body for this outlet."""
    outlet = _lsl_outlet("ng-test-unregistered", 250.0)
    client_id, secret = live.clinic.secrets["dev2"]  # registered as C3, C4 only
    mismatched = _cli("lsl-in", "--name", "ng-test-unregistered", "--gateway", live.url,
                      "--client-id", client_id, "--client-secret", secret, "--duration", "3")
    destroy_outlet(outlet)
    assert mismatched.returncode == 1, mismatched.stderr
    text = " ".join(mismatched.stderr.split())
    assert "does not match this device's registration" in text and "4400" in text
    assert 'POST /v1/devices' in text and '"channel_names": ["C3", "C4", "Cz"]' in text
