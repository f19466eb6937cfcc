"""Device and app clients over WebSockets, run in worker processes (gateway and relay).

A worker process holds many connections on one asyncio loop and obeys commands from the
benchmark over a pipe: ``add`` (connect these clients), ``start`` (devices: begin
streaming in real time at a given wall-clock time), ``window`` (report what happened in a
measurement window), ``stop``.

Devices stamp each frame with the wall-clock time of its first sample on a real-time
schedule and send it when its last sample is due, so for an app

    latency = receive time - (t + n_samples / rate)

is the time added beyond the chunk itself (device clock = wall clock on one machine).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from neurogate_client.wire import HEADER, MAGIC, PROTOCOL_VERSION

CONNECT_TIMEOUT = 30.0
TAIL_S = 0.3  # how long after a window's end its last messages may still arrive


def synthetic_blocks(n_channels: int, rate: float, chunk: int, n_frames: int = 50
                     ) -> list[bytes]:
    """Sample-major float32 payloads of EEG-like microvolts (alpha, beta, noise)."""
    rng = np.random.default_rng(n_channels)
    t = np.arange(chunk * n_frames) / rate
    phases = rng.uniform(0, 2 * np.pi, (n_channels, 1))
    data = (20 * np.sin(2 * np.pi * 10 * t + phases) + 5 * np.sin(2 * np.pi * 20 * t)
            + rng.normal(0, 3, (n_channels, t.size)))
    frames = data.reshape(n_channels, n_frames, chunk).transpose(1, 2, 0)  # frame, time, ch
    return [np.ascontiguousarray(f, dtype="<f4").tobytes() for f in frames]


def hello(channel_names: list[str], rate: float) -> dict[str, Any]:
    """A device's hello (microvolts, EEG channels)."""
    return {"type": "hello", "protocol": PROTOCOL_VERSION, "sampling_rate": rate,
            "channels": [{"name": n, "type": "eeg", "unit": "uV"} for n in channel_names]}


@dataclass
class _Client:
    spec: dict[str, Any]
    index: int
    ws: Any = None
    closed: str | None = None
    started: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class _Runner:
    """The command loop of one worker process."""

    def __init__(self, conn: Connection, role: str) -> None:
        self.conn, self.role = conn, role
        self.clients: list[_Client] = []
        self.records: list[tuple[float, float, int, int, float]] = []
        self.notices: list[str] = []
        self.dropped: dict[int, int] = {}
        self.blocks: dict[tuple[int, float, int], list[bytes]] = {}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, args = await loop.run_in_executor(None, self.conn.recv)
            try:
                result = await getattr(self, f"do_{command}")(*args)
            except Exception:
                self.conn.send(("error", traceback.format_exc(limit=4)))
                continue
            self.conn.send(("ok", result))
            if command == "stop":
                return

    # -- commands ----------------------------------------------------------------------
    async def do_add(self, specs: list[dict[str, Any]]) -> dict[str, Any]:
        start = len(self.clients)
        new = [_Client(spec, start + i) for i, spec in enumerate(specs)]
        self.clients.extend(new)
        gate = asyncio.Semaphore(8)
        times = await asyncio.gather(*(self._connect(c, gate) for c in new))
        failed = [c.closed for c in new if c.closed]
        return {"connected": len(new) - len(failed), "failed": failed[:5],
                "handshake_ms": [t for t in times if t is not None]}

    async def do_start(self, t0: float) -> int:
        count = 0
        for client in self.clients:
            if not client.started and client.ws is not None and client.closed is None:
                client.started = True
                phase = random.uniform(0.0, client.spec["chunk"] / client.spec["rate"])
                client.tasks.append(asyncio.create_task(self._stream(client, t0 + phase)))
                count += 1
        return count

    async def do_window(self, a: float, b: float) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, b + TAIL_S - time.time()))
        rows = [r for r in self.records if a <= r[0] <= b]
        self.records[:] = [r for r in self.records if r[0] > b]  # in place: readers
        # hold its bound ``append``
        closed = [c.closed for c in self.clients if c.closed]
        report: dict[str, Any] = {"clients": len(self.clients), "closed": len(closed),
                                  "closed_reasons": sorted(set(closed))[:5],
                                  "notices": self.notices[:5], "n_notices": len(self.notices)}
        self.notices = []
        arr = np.array(rows, dtype=np.float64).reshape(-1, 5)
        if self.role == "device":
            report.update(frames=int(arr.shape[0]), values=int(arr[:, 2].sum()),
                          lag_ms=(arr[:, 1] * 1e3).astype(np.float32),
                          streaming=sum(c.started and c.closed is None for c in self.clients))
            return report
        per_client = np.bincount(arr[:, 3].astype(int), weights=arr[:, 4],
                                 minlength=len(self.clients)) / (b - a)
        labels = [c.spec["label"] for c in self.clients]
        for label in sorted(set(labels)):
            mine = np.array([lab == label for lab in labels])
            rows_mine = arr[mine[arr[:, 3].astype(int)]] if arr.size else arr
            report[label] = {
                "subscriptions": int(mine.sum()),
                "messages": int(rows_mine.shape[0]),
                "values": int(rows_mine[:, 2].sum()),
                "recv_t": (rows_mine[:, 0] - a).astype(np.float32),
                "latency_ms": (rows_mine[:, 1] * 1e3).astype(np.float32),
                "coverage": per_client[mine].astype(np.float32),
                "dropped": sum(self.dropped.get(c.index, 0) for c in self.clients
                               if c.spec["label"] == label),
            }
        self.dropped = {}
        return report

    async def do_stop(self) -> None:
        for client in self.clients:
            for task in client.tasks:
                task.cancel()
        await asyncio.gather(*(c.ws.close() for c in self.clients if c.ws is not None),
                             return_exceptions=True)

    # -- connections ---------------------------------------------------------------------
    async def _connect(self, client: _Client, gate: asyncio.Semaphore) -> float | None:
        from websockets.asyncio.client import connect

        spec = client.spec
        async with gate:
            began = time.perf_counter()
            for attempt in range(5):
                try:
                    client.ws = await connect(
                        spec["url"], additional_headers=spec.get("headers"), compression=None,
                        max_size=None, ping_interval=None, proxy=None,
                        open_timeout=CONNECT_TIMEOUT)
                    first = json.loads(await asyncio.wait_for(client.ws.recv(), CONNECT_TIMEOUT)
                                       ) if self.role == "app" else None
                    if self.role == "device":
                        await client.ws.send(json.dumps(spec["hello"]))
                        first = json.loads(await asyncio.wait_for(client.ws.recv(),
                                                                  CONNECT_TIMEOUT))
                except Exception as exc:  # any failure to connect is reported, not raised
                    client.closed = f"connect: {type(exc).__name__}: {exc}"[:200]
                    return None
                if first.get("type") in ("welcome", "subscribed"):
                    break
                await client.ws.close()
                client.closed = f"refused: {json.dumps(first)[:200]}"
                if "another" not in str(first.get("message", "")) or attempt == 4:
                    return None  # only a duplicate stream (previous run closing) is retried
                await asyncio.sleep(0.5)
                client.closed = None
            handshake = (time.perf_counter() - began) * 1e3
        reader = self._read_app if self.role == "app" else self._read_device
        client.tasks.append(asyncio.create_task(reader(client)))
        return handshake

    async def _read_device(self, client: _Client) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in client.ws:
                self.notices.append(str(message)[:200])
        except ConnectionClosed:
            pass
        if client.closed is None:
            client.closed = _why(client.ws)

    async def _read_app(self, client: _Client) -> None:
        from websockets.exceptions import ConnectionClosed

        rate_out = float(client.spec.get("rate_out", 1.0))
        index, append = client.index, self.records.append
        try:
            async for message in client.ws:
                now = time.time()
                if isinstance(message, bytes):
                    _, _, _, _, ts, n_ch, n_s, _ = HEADER.unpack_from(message)
                    append((now, now - (ts + n_s / rate_out), n_ch * n_s, index, n_s / rate_out))
                    continue
                body = json.loads(message)
                kind = body.get("type")
                if kind == "data":
                    data = body["data"]
                    if body["product"] in ("raw", "filtered"):
                        n_s = len(data[0])
                        span = n_s / body["rate_hz"]
                        append((now, now - (body["t"] + span), n_s * len(data), index, span))
                    else:
                        # Coverage counts the focus index only (one value per period).
                        span = 1.0 / body["rate_hz"] if body["product"] == "focus_index" else 0.0
                        append((now, now - (body["t"] + body["window_s"]), int(np.size(data)),
                                index, span))
                elif kind == "gap":
                    self.dropped[index] = self.dropped.get(index, 0) + int(body["dropped"])
                else:
                    self.notices.append(message[:200])
        except ConnectionClosed:
            pass
        if client.closed is None:
            client.closed = _why(client.ws)

    async def _stream(self, client: _Client, t0: float) -> None:
        from websockets.exceptions import ConnectionClosed

        spec = client.spec
        n_ch, rate, chunk = int(spec["n_channels"]), float(spec["rate"]), int(spec["chunk"])
        key = (n_ch, rate, chunk)
        if key not in self.blocks:
            self.blocks[key] = synthetic_blocks(n_ch, rate, chunk)
        blocks, span = self.blocks[key], chunk / rate
        pack, append, ws = HEADER.pack, self.records.append, client.ws
        k = 0
        while True:
            due = t0 + (k + 1) * span
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = pack(MAGIC, PROTOCOL_VERSION, 0, k & 0xFFFFFFFF, due - span, n_ch, chunk, 0)
            try:
                await ws.send(frame + blocks[k % len(blocks)])
            except ConnectionClosed:
                if client.closed is None:
                    client.closed = _why(ws)
                return
            sent = time.time()
            append((sent, sent - due, n_ch * chunk, client.index, span))
            k += 1


def _why(ws: Any) -> str:
    rcvd = getattr(ws, "close_rcvd", None)
    if rcvd is None:
        return "closed without a close frame"
    return f"closed {rcvd.code} {rcvd.reason}"[:200]


def _main(conn: Connection, role: str) -> None:
    runner = _Runner(conn, role)
    try:
        import uvloop
    except ImportError:  # plain asyncio then
        asyncio.run(runner.run())
    else:
        uvloop.run(runner.run())


def device_worker(conn: Connection) -> None:
    """Entry point of a device worker process."""
    _main(conn, "device")


def app_worker(conn: Connection) -> None:
    """Entry point of an app worker process."""
    _main(conn, "app")


__all__ = ["app_worker", "device_worker", "hello", "synthetic_blocks"]
