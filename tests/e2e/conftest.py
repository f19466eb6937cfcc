"""Real gateway processes: uvicorn on loopback, started and killed like in production."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from neurogate.gateway.state import Gateway
    from tests.gateway.conftest import Clinic


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def neurogate(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the ``neurogate`` command line to completion."""
    return subprocess.run(
        [sys.executable, "-m", "neurogate", *args], env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


@dataclass
class ServerProcess:
    """A gateway process listening on loopback."""

    env: dict[str, str]
    port: int
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None  # where the server's stderr goes (appended), if anywhere

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        stderr = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "neurogate", "serve", "--host", "127.0.0.1",
             "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
        if self.log is not None:
            stderr.close()  # type: ignore[union-attr]  # the child holds its own copy
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"The gateway exited early with code {self.process.returncode}."
                raise RuntimeError(msg)
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        msg = "The gateway did not answer /healthz within 60 s."
        raise RuntimeError(msg)

    def kill(self, sig: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(autouse=True)
def stream_contract() -> Iterator[None]:
    """Every JSON message a test client reads from a stream validates against the gateway's
    AsyncAPI document (see tests/clients/contract.py)."""
    from tests.clients import contract

    contract.take_failures()
    yield
    assert contract.take_failures() == []


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    """Environment of a gateway with its own data directory (embedded SQLite)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    env["NEUROGATE_DATA_DIR"] = str(tmp_path / "var")
    env["NEUROGATE_ENVIRONMENT"] = "development"
    return env


@pytest.fixture
def server(server_env: dict[str, str]) -> Iterator[ServerProcess]:
    """A gateway process (started by the test, so it can also be killed and restarted)."""
    proc = ServerProcess(env=server_env, port=free_port())
    yield proc
    proc.stop()


FAST_HASHING_ENV = {"NEUROGATE_PASSWORD_HASH_TIME_COST": "1",
                    "NEUROGATE_PASSWORD_HASH_MEMORY_KIB": "1024"}


def gateway_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a gateway process with its own data directory and cheap hashing
    (no NEUROGATE_ variable of the test run leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    env.update(NEUROGATE_DATA_DIR=str(data_dir), NEUROGATE_ENVIRONMENT="development",
               **FAST_HASHING_ENV, **extra)
    return env


@contextmanager
def clinic_server(data_dir: Path, *, env: dict[str, str] | None = None,
                  database_url: str | None = None, log: Path | None = None,
                  pairs: Sequence[tuple[str, str]] = (("dev1", "adult1"),),
                  ) -> Iterator[tuple[ServerProcess, Clinic, httpx.Client, Gateway]]:
    """A gateway process on loopback holding the test clinic (``build_clinic``), with each
    (device, subject) of ``pairs`` paired by clin1; yields the process, the clinic, an
    HTTP client on it and an in-process view of the same store."""
    from neurogate.gateway.state import build_gateway
    from neurogate.settings import Settings
    from tests.gateway.conftest import FAST_HASHING, build_clinic

    gateway = build_gateway(Settings(data_dir=data_dir, database_url=database_url,
                                     environment="test", **FAST_HASHING))
    server = ServerProcess(env=env or gateway_env(data_dir), port=free_port(), log=log)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            clinic = build_clinic(client, gateway)  # type: ignore[arg-type]
            for device, subject in pairs:
                response = client.post(f"/v1/devices/{clinic.ids[device]}/pairing",
                                       headers=clinic.as_("clin1"),
                                       json={"subject_id": clinic.ids[subject]})
                assert response.status_code == 200, response.text
            yield server, clinic, client, gateway
    finally:
        server.stop()
        gateway.engine.dispose()
