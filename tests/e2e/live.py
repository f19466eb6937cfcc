"""Helpers for end-to-end streaming tests: a seeded gateway process, a device, an app."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from neurogate_client.wire import encode_frame
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.clients import contract

RATE = 250.0
CHANNELS = ["C3", "C4"]


def ws_url(base: str, path: str) -> str:
    """The ws:// address of a path on the gateway."""
    return base.replace("http://", "ws://") + path


def synthetic_uv(n: int, start: int, rate: float = RATE, n_channels: int = 2) -> np.ndarray:
    """Deterministic EEG-like samples in microvolts: 10 Hz alpha plus 20 Hz beta."""
    t = (start + np.arange(n)) / rate
    rows = [20 * np.sin(2 * np.pi * 10 * t + ch) + 5 * np.sin(2 * np.pi * 20 * t)
            for ch in range(n_channels)]
    return np.vstack(rows)


def hello(channels: list[str] | None = None, rate: float = RATE) -> dict[str, Any]:
    """A device hello matching the test registration."""
    names = channels or CHANNELS
    return {"type": "hello", "protocol": 1, "sampling_rate": rate,
            "channels": [{"name": n, "type": "eeg", "unit": "uV"} for n in names]}


def open_device(base: str, token: str, message: dict[str, Any] | None = None
                ) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect a device and send its hello; returns the socket and the gateway's answer."""
    sock = connect(ws_url(base, "/v1/stream/ingest"),
                   additional_headers={"Authorization": f"Bearer {token}"}, legacy=True)
    sock.send(json.dumps(message or hello()))
    answer = json.loads(sock.recv(timeout=10))
    contract.check("ingest", answer)
    return sock, answer


@dataclass
class DeviceThread:
    """Streams synthetic samples in real time until stopped."""

    sock: ClientConnection
    chunk: int = 10
    sent_frames: int = 0
    sent_samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    notices: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> DeviceThread:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.time()
        seq = 0
        while not self._stop.is_set():
            data = synthetic_uv(self.chunk, self.sent_samples)
            try:
                self.sock.send(encode_frame(data, sequence=seq,
                                            timestamp=t0 + self.sent_samples / RATE))
            except ConnectionClosed:
                return
            seq += 1
            self.sent_frames += 1
            self.sent_samples += self.chunk
            due = t0 + self.sent_samples / RATE
            time.sleep(max(0.0, due - time.time()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.sock.send(json.dumps({"type": "bye"}))
        except ConnectionClosed:
            pass
        self.sock.close()


@dataclass
class AppReceiver:
    """An app's socket, read in a background thread."""

    sock: ClientConnection
    first: dict[str, Any]
    messages: list[tuple[float, Any]] = field(default_factory=list)
    close_code: int | None = None
    _thread: threading.Thread | None = None

    def start(self) -> AppReceiver:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while True:
                raw = self.sock.recv()
                item = raw if isinstance(raw, bytes) else json.loads(raw)
                if not isinstance(item, bytes):
                    contract.record("subscribe", item)
                self.messages.append((time.time(), item))
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else None

    def data(self) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if isinstance(m, dict) and m["type"] == "data"]

    def products(self) -> set[str]:
        return {m["product"] for m in self.data()}

    def wait_closed(self, timeout: float = 10) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        self.sock.close()
        self.wait_closed()


def subscribe(base: str, token: str, subject: str, purpose: str,
              fmt: str = "json") -> AppReceiver:
    """Subscribe an app; the first message (subscribed or refused) is read at once."""
    sock = connect(ws_url(base, f"/v1/stream/subscribe?subject={subject}&purpose={purpose}"
                                f"&format={fmt}"),
                   additional_headers={"Authorization": f"Bearer {token}"}, legacy=True)
    first = json.loads(sock.recv(timeout=10))
    contract.check("subscribe", first)
    return AppReceiver(sock, first).start()


def app_token(base: str, creds: tuple[str, str]) -> str:
    """An access token for an app or device."""
    response = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=creds)
    response.raise_for_status()
    return str(response.json()["access_token"])
