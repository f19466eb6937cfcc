"""Helpers for device tests against a real gateway process: a clinic, device registration,
what an app received, a TCP gate that holds connections back, and the shared recordings."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from neurogate.devices import DeviceInfo
from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.conftest import skip_or_fail
from tests.e2e.conftest import ServerProcess, free_port
from tests.e2e.live import AppReceiver, app_token, subscribe
from tests.gateway.conftest import FAST_HASHING, Clinic, build_clinic

SHARED_EEG = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "eeg"


def shared_recording(name: str) -> Path:
    """A file of the shared EEG data set, or skip (fail under NEUROGATE_REQUIRE_SERVICES=1)."""
    path = SHARED_EEG / name
    if not path.is_file():
        skip_or_fail(f"The shared recording {path} is absent (the tests expect the checkout "
                     "layout with ../shared/data/eeg next to the repository).")
    return path


@dataclass
class LiveClinic:
    """A gateway process with a populated clinic (see tests.gateway.conftest.build_clinic)."""

    server: ServerProcess
    clinic: Clinic
    data_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def http(self) -> Any:
        return self.clinic.client

    def register(self, info: DeviceInfo, *, pair_with: str | None = "adult1",
                 serial: str = "SN-TEST") -> tuple[str, tuple[str, str]]:
        """Register ``info``'s layout as vendor1 and pair it; returns (id, credentials)."""
        created = self.http.post("/v1/devices", headers=self.clinic.as_("vendor1"),
                                 json=info.registration(serial=serial))
        assert created.status_code == 201, created.text
        body = created.json()
        device_id = body["device"]["id"]
        if pair_with is not None:
            paired = self.http.post(f"/v1/devices/{device_id}/pairing",
                                    headers=self.clinic.as_("clin1"),
                                    json={"subject_id": self.clinic.ids[pair_with]})
            assert paired.status_code == 200, paired.text
        creds = body["credentials"]
        return device_id, (creds["client_id"], creds["client_secret"])

    def pseudonym(self, app: str, consent_id: str | None = None) -> str:
        """The subject's pseudonym as ``app`` knows it (in ``consent_id``, or its first)."""
        token = app_token(self.url, self.clinic.secrets[app])
        rows = self.http.get("/v1/consents", headers={"Authorization": f"Bearer {token}"})
        assert rows.status_code == 200, rows.text
        chosen = [r for r in rows.json() if consent_id in (None, r["id"])]
        return str(chosen[0]["subject"])

    def subscribe(self, app: str = "clinic_app", purpose: str = "clinical_monitoring"
                  ) -> AppReceiver:
        """Subscribe ``app`` (JSON format) and check the gateway said ``subscribed``."""
        receiver = subscribe(self.url, app_token(self.url, self.clinic.secrets[app]),
                             self.pseudonym(app), purpose)
        assert receiver.first["type"] == "subscribed", receiver.first
        return receiver

    def ledger(self) -> list[dict[str, Any]]:
        """Every ledger entry, as an auditor reads it (GET /v1/ledger/entries as admin).

        ``raw`` holds the entry's JSON and the public answer about its leaf
        (GET /v1/ledger/inclusion?index=i, which anyone can read), so a test can look
        for leaks in both.
        """
        import json

        leaves: list[dict[str, Any]] = []
        while True:
            page = self.http.get("/v1/ledger/entries", headers=self.clinic.as_("admin"),
                                 params={"start": len(leaves), "limit": 1000})
            assert page.status_code == 200, page.text
            rows = page.json()["entries"]
            if not rows:
                return leaves
            for row in rows:
                public = httpx.get(f"{self.url}/v1/ledger/inclusion",
                                   params={"index": row["seq"]}, timeout=10)
                leaves.append({"raw": json.dumps(row["entry"]) + public.text,
                               **(row["entry"] or {})})


@contextlib.contextmanager
def live_clinic(data_dir: Path, **env_extra: str) -> Iterator[LiveClinic]:
    """Start a gateway on loopback with its own data directory and populate a clinic."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    env.update(NEUROGATE_DATA_DIR=str(data_dir), NEUROGATE_ENVIRONMENT="development",
               NEUROGATE_PASSWORD_HASH_TIME_COST="1", NEUROGATE_PASSWORD_HASH_MEMORY_KIB="1024",
               **env_extra)
    gateway = build_gateway(Settings(data_dir=data_dir, environment="test", **FAST_HASHING))
    server = ServerProcess(env=env, port=free_port())
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            clinic = build_clinic(client, gateway)  # type: ignore[arg-type]
            yield LiveClinic(server, clinic, data_dir)
    finally:
        server.stop()


def raw_messages(receiver: AppReceiver, product: str = "raw") -> list[dict[str, Any]]:
    """The app's data messages of one product, in arrival order."""
    return [m for m in receiver.data() if m["product"] == product]


def raw_samples(receiver: AppReceiver, product: str = "raw"
                ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """What the app received of a sample product: (times, data, labels).

    ``times`` has shape (n_times,) (seconds since the epoch, from each message's ``t``
    and ``rate_hz``); ``data`` has shape (n_channels, n_times), in volts.
    """
    messages = raw_messages(receiver, product)
    if not messages:
        return np.empty(0), np.empty((0, 0)), []
    times = np.concatenate([m["t"] + np.arange(len(m["data"][0])) / m["rate_hz"]
                            for m in messages])
    data = np.concatenate([np.asarray(m["data"], dtype=np.float64) for m in messages], axis=1)
    return times, data, list(messages[0]["labels"])


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def app_sample_count(receiver: AppReceiver, product: str = "raw") -> int:
    """Samples (per channel) of a sample product the app has received so far."""
    return sum(len(m["data"][0]) for m in list(raw_messages(receiver, product)))


class GateProxy:
    """A loopback TCP forwarder whose gate can be closed: while closed, new connections
    are accepted and dropped at once (the client sees a failed handshake and retries)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self.is_open = threading.Event()
        self.is_open.set()
        self.refused = 0
        self._sockets: list[socket.socket] = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.is_open.is_set():
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


def expected_raw(source_v: np.ndarray, sfreq: float, purpose: str = "clinical_monitoring"
                 ) -> tuple[np.ndarray, float]:
    """What an app should receive as ``raw`` for samples the device sent, and at what rate.

    The device sends float32 volts; the purpose allows ``raw`` up to its catalog rate, so
    the gateway lowers a faster device's rate by the smallest integer factor that reaches
    it, after a causal 8th-order Butterworth low-pass at 40 % of the new rate (see
    ``neurogate.gateway.streams.target_resolution`` and
    ``neurogate.signal.ResolutionReducer``). Compare with `assert_delivered`.

    Parameters
    ----------
    source_v : ndarray, shape (n_channels, n_times)
        The samples the device pushed, in volts, from the first sample of the stream.
    sfreq : float
        The device's rate in Hz.

    Returns
    -------
    expected : ndarray, shape (n_channels, n_out)
        The values the app should see.
    rate : float
        The rate it should see them at.
    """
    from neurogate.consent.purposes import load_catalog
    from neurogate.signal import design_iir_sos, filter_offline

    allowed = load_catalog().get(purpose).products["raw"].output_rate_hz
    factor = max(1, int(np.ceil(sfreq / allowed - 1e-9)))
    sent = source_v.astype(np.float32).astype(np.float64)
    if factor > 1:
        rate = sfreq / factor
        sos = design_iir_sos(sfreq, None, 0.4 * rate, order=8)
        sent = filter_offline(sos, sent)[:, ::factor]  # from the steady state, as streamed
    return sent, sfreq / factor


#: The gateway may round JSON sample values to this step (``render_json``).
JSON_STEP = 1e-12


def assert_delivered(got: np.ndarray, expected: np.ndarray, *, atol: float = 0.0) -> None:
    """``got`` (what an app received, volts) equals ``expected`` up to JSON rounding.

    Without extra ``atol`` the only difference allowed is half the rounding step, so every
    sample must be the one sent (float32 volts, exactly, when the gateway does not round).
    """
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_allclose(got, expected, rtol=0, atol=JSON_STEP / 2 + 1e-18 + atol)


def synthetic_v(n_channels: int, start: int, n: int, rate: float) -> np.ndarray:
    """Deterministic EEG-like volts, shape (n_channels, n): alpha, beta and a slow ramp
    that makes every sample unique."""
    k = start + np.arange(n)
    t = k / rate
    rows = [20e-6 * np.sin(2 * np.pi * 10 * t + ch) + 5e-6 * np.sin(2 * np.pi * 21 * t)
            + 1e-9 * k for ch in range(n_channels)]
    return np.vstack(rows)


class RealtimePusher:
    """Pushes `synthetic_v` samples to a client in real time, from a thread, until stopped.

    ``source`` holds everything pushed, shape (n_channels, n_pushed); sample ``k`` has the
    timestamp ``t0 + k / rate``.
    """

    def __init__(self, client: Any, *, chunk: int = 10) -> None:
        self.client = client
        self.rate = float(client.info.sfreq)
        self.n_channels = client.info.n_channels
        self.chunk = chunk
        self.t0 = time.time()
        self.pushed = 0
        self.parts: list[np.ndarray] = []
        self.stop_event = threading.Event()
        self.pause_after: int | None = None
        self.paused = threading.Event()
        self.resume = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RealtimePusher:
        self._thread.start()
        return self

    def push_next(self) -> None:
        data = synthetic_v(self.n_channels, self.pushed, self.chunk, self.rate)
        self.client.push(data, self.t0 + self.pushed / self.rate)
        self.parts.append(data)
        self.pushed += self.chunk

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self.push_next()
            if self.pause_after is not None and self.pushed >= self.pause_after:
                self.pause_after = None
                self.paused.set()
                self.resume.wait()
            due = self.t0 + self.pushed / self.rate
            time.sleep(max(0.0, due - time.time()))

    @property
    def source(self) -> np.ndarray:
        return np.concatenate(self.parts, axis=1)

    def stop(self) -> None:
        self.stop_event.set()
        self.resume.set()
        self._thread.join(5)
