"""Processes the benchmark runs: the gateway and the bare relay as servers on loopback,
client worker processes, and CPU / memory accounting of all of them with psutil."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import psutil

FAST_HASHING_ENV = {"NEUROGATE_PASSWORD_HASH_TIME_COST": "1",
                    "NEUROGATE_PASSWORD_HASH_MEMORY_KIB": "1024"}


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Every stream step and revocation trial subscribes the benchmark's two apps anew, far more
# often than the per-app abuse limit allows (30 a minute); the benchmark measures the data
# path, so that limit is lifted here (tests/gateway/test_abuse.py checks the limit itself).
BENCH_LIMITS_ENV = {"NEUROGATE_SUBSCRIBE_ATTEMPTS_PER_MINUTE": "1000000"}


def gateway_env(data_dir: Path) -> dict[str, str]:
    """The environment of a benchmark gateway: its own data directory, cheap hashing, and
    no per-app subscribe limit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    env.update(NEUROGATE_DATA_DIR=str(data_dir), NEUROGATE_ENVIRONMENT="development",
               **FAST_HASHING_ENV, **BENCH_LIMITS_ENV)
    return env


class ServerProcess:
    """A server started as its own process, answering ``health`` on loopback."""

    def __init__(self, argv: list[str], *, port: int, env: dict[str, str], log: Path,
                 health: str = "/healthz") -> None:
        self.argv, self.port, self.env, self.log_path, self.health = argv, port, env, log, health
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> ServerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = (f"{self.argv[2:4]} exited with code {self.process.returncode} before "
                       f"answering; its log ends with:\n{self.log_tail()}")
                raise RuntimeError(msg)
            try:
                if httpx.get(self.url + self.health, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        msg = f"{self.argv[2:4]} did not answer {self.health} within {timeout:g} s."
        raise RuntimeError(msg)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_gateway(data_dir: Path, log: Path) -> ServerProcess:
    """``python -m neurogate serve`` on a free loopback port."""
    port = free_port()
    argv = [sys.executable, "-m", "neurogate", "serve", "--host", "127.0.0.1", "--port",
            str(port)]
    return ServerProcess(argv, port=port, env=gateway_env(data_dir), log=log).start()


def start_relay(log: Path) -> ServerProcess:
    """The bare relay (``python -m neurogate.bench.relay``) on a free loopback port."""
    port = free_port()
    argv = [sys.executable, "-m", "neurogate.bench.relay", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    return ServerProcess(argv, port=port, env=env, log=log).start()


class Worker:
    """A client worker process, driven by commands over a pipe (see ``_clients``)."""

    def __init__(self, target: Callable[[Connection], None], name: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child,), name=name, daemon=True)
        self.process.start()
        child.close()
        self.name = name

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def call(self, command: str, *args: Any, timeout: float = 120.0) -> Any:
        """Send a command and wait for its answer (re-raising the worker's error)."""
        self.conn.send((command, args))
        if not self.conn.poll(timeout):
            msg = f"The {self.name} worker did not answer {command!r} within {timeout:g} s."
            raise RuntimeError(msg)
        status, value = self.conn.recv()
        if status != "ok":
            msg = f"The {self.name} worker failed on {command!r}: {value}"
            raise RuntimeError(msg)
        return value

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(("stop", ()))
                if self.conn.poll(10):
                    self.conn.recv()
            except (OSError, EOFError):
                pass
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
        self.conn.close()


class Meter:
    """CPU time and resident memory of some processes, and of the whole machine.

    ``begin`` and ``end`` bracket a measurement window; a background thread samples the
    resident memory of each process every 0.25 s for its peak. A process counts with its
    child processes (a gateway that records has one that writes the segments: the same
    core budget), except the ``bench`` itself, whose children are the measured ones.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._start: dict[str, float] = {}
        self._wall = 0.0
        self._system: Any = None
        self._peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _family(name: str, proc: psutil.Process) -> list[psutil.Process]:
        if name == "bench":
            return [proc]
        try:
            return [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return [proc]

    def _cpu(self, name: str, proc: psutil.Process) -> float:
        total = 0.0
        for member in self._family(name, proc):
            try:
                times = member.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    def _rss(self, name: str, proc: psutil.Process) -> int:
        total = 0
        for member in self._family(name, proc):
            try:
                total += member.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            for name, proc in self.procs.items():
                self._peak[name] = max(self._peak.get(name, 0), self._rss(name, proc))

    def begin(self) -> None:
        self._start = {name: self._cpu(name, p) for name, p in self.procs.items()}
        self._wall = time.monotonic()
        self._system = psutil.cpu_times()
        self._peak = {}
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def end(self) -> dict[str, Any]:
        """CPU % of one core per process, RSS now and peak (MiB), machine busy %."""
        wall = time.monotonic() - self._wall
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        system = psutil.cpu_times()
        busy = (sum(system) - system.idle - system.iowait) - (
            sum(self._system) - self._system.idle - self._system.iowait)
        total = sum(system) - sum(self._system)
        out: dict[str, Any] = {"wall_s": round(wall, 3),
                               "machine_busy_pct": round(100.0 * busy / total, 1) if total else 0.0,
                               "load_avg_1m": round(os.getloadavg()[0], 2)}
        ours = 0.0
        for name, proc in self.procs.items():
            cpu = 100.0 * (self._cpu(name, proc) - self._start[name]) / wall if wall else 0.0
            ours += cpu
            rss = self._rss(name, proc)
            out[name] = {"cpu_pct": round(cpu, 1), "rss_mib": round(rss / 2**20, 2),
                         "rss_peak_mib": round(max(rss, self._peak.get(name, 0)) / 2**20, 2)}
        n_cpu = psutil.cpu_count() or 1
        # What other processes on the machine used meanwhile, in % of one core.
        out["others_cpu_pct"] = round(max(0.0, out["machine_busy_pct"] * n_cpu - ours), 1)
        return out


__all__ = ["Meter", "ServerProcess", "Worker", "free_port", "gateway_env", "start_gateway",
           "start_relay"]
