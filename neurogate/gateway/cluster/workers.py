"""``neurogate serve --workers N``: N gateway nodes on one machine, sharing one port.

One gateway process uses one core. With ``--workers N`` the command starts N child
processes, each an ordinary cluster node with its own node id (``<node id>-1`` to
``<node id>-N``), and each binds the same address with ``SO_REUSEPORT``, so the kernel
spreads new connections over them. They are a cluster like nodes on several hosts: one
PostgreSQL database, one NATS; a device on one worker reaches an app on another over the
stream bus. So several workers are refused unless NATS and a PostgreSQL database are
configured: SQLite and several processes cannot keep the guarantees (one writer, and a
revocation must reach every process).

The parent migrates the database and creates the keys once, before any child starts (so
the children do not race to do it), then waits. When one child ends, the parent stops the
others and exits with that child's code: a supervisor (systemd, a container runtime)
restarts the whole set. SIGTERM or SIGINT to the parent stops every child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from neurogate.settings import Settings

STOP_TIMEOUT_SECONDS = 15.0


class WorkersRefused(ValueError):
    """``--workers`` asks for something this configuration cannot keep."""


def check_workers(settings: Settings, workers: int) -> None:
    """Refuse ``workers`` that this configuration cannot run safely, naming the fix."""
    if workers < 1:
        msg = f"Invalid value for '--workers': {workers}. It must be 1 or more."
        raise WorkersRefused(msg)
    if workers == 1:
        return
    missing = []
    if settings.nats_url is None:
        missing.append("NATS (--nats or NEUROGATE_NATS_URL)")
    if not settings.resolved_database_url.startswith("postgresql"):
        missing.append("a PostgreSQL database (NEUROGATE_DATABASE_URL=postgresql+psycopg://...)")
    if missing:
        msg = (f"'--workers {workers}' needs {' and '.join(missing)}: several processes on "
               "SQLite, or without NATS, cannot keep the consent guarantees. Configure "
               "them, or run one process (--workers 1).")
        raise WorkersRefused(msg)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening-ready socket bound to ``host:port`` that other workers may bind too."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(info[4])
    sock.set_inheritable(True)
    return sock


def _prepare(settings: Settings) -> None:
    """Migrate the database and create the keys once, before the workers start."""
    from neurogate.gateway.state import build_gateway

    gateway = build_gateway(settings)
    gateway.engine.dispose()


def run_workers(settings: Settings, workers: int, *, host: str, port: int) -> int:
    """Start ``workers`` nodes on ``host:port``, wait, and return the exit code."""
    _prepare(settings)
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for k in range(1, workers + 1):
            env = {**os.environ, "NEUROGATE_NODE_ID": f"{settings.node_id}-{k}",
                   "NEUROGATE_NATS_URL": settings.nats_url or ""}
            children.append(subprocess.Popen(
                [sys.executable, "-m", "neurogate", "serve", "--host", host, "--port",
                 str(port), "--reuse-port"], env=env))
        code = 0
        while not stopping:
            ended = [child for child in children if child.poll() is not None]
            if ended:
                returncode = ended[0].returncode
                code = returncode if returncode > 0 else 1  # an exit nobody asked for
                break
            time.sleep(0.2)
        return code
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)


__all__ = ["WorkersRefused", "check_workers", "reuse_port_socket", "run_workers"]
