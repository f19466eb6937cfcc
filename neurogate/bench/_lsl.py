"""Lab Streaming Layer baseline: pylsl outlets and inlets in worker processes.

The same commands as ``_clients`` (``add``, ``start``, ``window``, ``stop``), the same
real-time schedule and the same latency definition: an outlet pushes each chunk with the
wall-clock time of its last sample, and for the chunk's last sample an inlet records

    latency = receive time - (timestamp of the last sample + 1 / rate)

i.e. the time added beyond the chunk itself. Each inlet has a thread blocked in
``pull_chunk`` (liblsl releases the GIL), woken when samples arrive.
"""

from __future__ import annotations

import heapq
import os
import tempfile
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from neurogate.bench._clients import TAIL_S, synthetic_blocks


def lsl_available() -> str | None:
    """None if pylsl and liblsl load, else why not."""
    _quiet_liblsl()
    try:
        import pylsl

        pylsl.local_clock()
    except Exception as exc:  # ImportError, or liblsl missing (RuntimeError)
        return f"pylsl cannot be used: {type(exc).__name__}: {exc}"
    return None


def _quiet_liblsl() -> None:
    """Keep liblsl's informational log off the console (it writes to stderr)."""
    cfg = Path(tempfile.gettempdir()) / "neurogate-bench-lsl.cfg"
    cfg.write_text("[log]\nlevel = -3\n", encoding="utf-8")
    os.environ.setdefault("LSLAPICFG", str(cfg))


class _Lsl:
    def __init__(self, conn: Connection, role: str) -> None:
        self.conn, self.role = conn, role
        self.lock = threading.Lock()
        self.records: list[tuple[float, float, int, int, float]] = []
        self.items: list[dict[str, Any]] = []  # outlet or inlet with its spec and state
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None  # the outlets' scheduler
        self.threads: list[threading.Thread] = []  # one per inlet
        self.pending: list[tuple[float, int, int]] = []  # (due, item index, frame) heap
        self.wake = threading.Event()

    def run(self) -> None:
        while True:
            command, args = self.conn.recv()
            try:
                result = getattr(self, f"do_{command}")(*args)
            except Exception:
                self.conn.send(("error", traceback.format_exc(limit=4)))
                continue
            self.conn.send(("ok", result))
            if command == "stop":
                return

    def do_add(self, specs: list[dict[str, Any]]) -> dict[str, Any]:
        import pylsl

        began = time.perf_counter()
        if self.role == "device":
            for spec in specs:
                info = pylsl.StreamInfo(spec["key"], spec["type"], spec["n_channels"],
                                        spec["rate"], "float32", spec["source_id"])
                outlet = pylsl.StreamOutlet(info)
                blocks = [np.frombuffer(b, dtype="<f4").reshape(spec["chunk"], -1)
                          for b in synthetic_blocks(spec["n_channels"], spec["rate"],
                                                    spec["chunk"])]
                self.items.append({"spec": spec, "outlet": outlet, "blocks": blocks,
                                   "started": False})
            return {"connected": len(specs), "failed": [], "handshake_ms": []}
        wanted = {spec["source_id"]: spec for spec in specs}
        found: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while len(found) < len(set(wanted)) and time.monotonic() < deadline:
            for info in pylsl.resolve_byprop("type", specs[0]["type"], 0, 2.0):
                if info.source_id() in wanted:
                    found[info.source_id()] = info
        failed = []
        for spec in specs:
            info = found.get(spec["source_id"])
            if info is None:
                failed.append(f"not resolved: {spec['source_id']}")
                continue
            inlet = pylsl.StreamInlet(info, max_buflen=360, recover=False)
            inlet.open_stream(timeout=10)
            item = {"spec": spec, "inlet": inlet, "count": 0, "index": len(self.items),
                    "buf": np.empty((4096, spec["n_channels"]), np.float32)}
            with self.lock:
                self.items.append(item)
            thread = threading.Thread(target=self._pull, args=(item,), daemon=True)
            thread.start()
            self.threads.append(thread)
        took = (time.perf_counter() - began) * 1e3
        return {"connected": len(specs) - len(failed), "failed": failed[:5],
                "handshake_ms": [took / max(1, len(specs))] * (len(specs) - len(failed))}

    def do_start(self, t0: float) -> int:
        import random

        count = 0
        with self.lock:
            for index, item in enumerate(self.items):
                if "outlet" in item and not item["started"]:
                    item["started"] = True
                    span = item["spec"]["chunk"] / item["spec"]["rate"]
                    item["t0"] = t0 + random.uniform(0.0, span)
                    heapq.heappush(self.pending, (item["t0"] + span, index, 0))
                    count += 1
        if self.thread is None:
            self.thread = threading.Thread(target=self._push, daemon=True)
            self.thread.start()
        self.wake.set()
        return count

    def do_window(self, a: float, b: float) -> dict[str, Any]:
        time.sleep(max(0.0, b + TAIL_S - time.time()))
        with self.lock:
            rows = [r for r in self.records if a <= r[0] <= b]
            self.records[:] = [r for r in self.records if r[0] > b]
        arr = np.array(rows, dtype=np.float64).reshape(-1, 5)
        lost = sum(bool(i.get("lost")) for i in self.items)
        report: dict[str, Any] = {"clients": len(self.items), "closed": lost,
                                  "closed_reasons": ["stream lost"] if lost else [],
                                  "notices": [], "n_notices": 0}
        if self.role == "device":
            report.update(frames=int(arr.shape[0]), values=int(arr[:, 2].sum()),
                          lag_ms=(arr[:, 1] * 1e3).astype(np.float32),
                          streaming=sum(bool(i["started"]) for i in self.items))
            return report
        per_item = np.bincount(arr[:, 3].astype(int), weights=arr[:, 4],
                               minlength=len(self.items)) / (b - a)
        labels = [i["spec"]["label"] for i in self.items]
        for label in sorted(set(labels)):
            mine = np.array([lab == label for lab in labels])
            sel = arr[mine[arr[:, 3].astype(int)]] if arr.size else arr
            report[label] = {"subscriptions": int(mine.sum()), "messages": int(sel.shape[0]),
                             "values": int(sel[:, 2].sum()),
                             "recv_t": (sel[:, 0] - a).astype(np.float32),
                             "latency_ms": (sel[:, 1] * 1e3).astype(np.float32),
                             "coverage": per_item[mine].astype(np.float32), "dropped": 0}
        return report

    def do_stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        for thread in [*self.threads, *([self.thread] if self.thread else [])]:
            thread.join(timeout=5)
        self.items.clear()

    # -- threads ---------------------------------------------------------------------------
    def _push(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                head = self.pending[0] if self.pending else None
            if head is None:
                self.wake.wait(0.1)
                self.wake.clear()
                continue
            due, index, k = head
            delay = due - time.time()
            if delay > 0:
                time.sleep(min(delay, 0.05))
                continue
            with self.lock:
                heapq.heappop(self.pending)
                item = self.items[index]
            spec = item["spec"]
            block = item["blocks"][k % len(item["blocks"])]
            item["outlet"].push_chunk(block, timestamp=due - 1.0 / spec["rate"],
                                      pushthrough=True)
            sent = time.time()
            span = spec["chunk"] / spec["rate"]
            with self.lock:
                self.records.append((sent, sent - due, block.size, index, span))
                heapq.heappush(self.pending, (due + span, index, k + 1))

    def _pull(self, item: dict[str, Any]) -> None:
        """One inlet's thread: block (GIL released) until samples arrive, record chunk ends."""
        import pylsl

        buf, inlet, spec = item["buf"], item["inlet"], item["spec"]
        chunk, rate, values = spec["chunk"], spec["rate"], spec["chunk"] * spec["n_channels"]
        while not self.stopping.is_set():
            try:
                _, stamps = inlet.pull_chunk(timeout=0.2, max_samples=buf.shape[0], dest_obj=buf,
                                             min_samples=1, as_numpy=True)
            except pylsl.LostError:
                item["lost"] = True
                return
            if len(stamps) == 0:
                continue
            now = time.time()
            first = item["count"]
            item["count"] += len(stamps)
            # The last sample of each device chunk: (count + 1) % chunk == 0.
            ends = range((-(first + 1)) % chunk, len(stamps), chunk)
            with self.lock:
                for j in ends:
                    self.records.append((now, now - (float(stamps[j]) + 1.0 / rate), values,
                                         item["index"], chunk / rate))


def _main(conn: Connection, role: str) -> None:
    _quiet_liblsl()
    _Lsl(conn, role).run()


def outlet_worker(conn: Connection) -> None:
    """Entry point of an LSL outlet (device) worker process."""
    _main(conn, "device")


def inlet_worker(conn: Connection) -> None:
    """Entry point of an LSL inlet (app) worker process."""
    _main(conn, "app")


__all__ = ["inlet_worker", "lsl_available", "outlet_worker"]
