"""The NATS server the cluster tests join (JetStream on), or a skip saying why not."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import skip_or_fail

NATS_URL = os.environ.get("NEUROGATE_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The test NATS server's URL, once something answers there."""
    parts = urlsplit(NATS_URL)
    try:
        with socket.create_connection((parts.hostname, parts.port or 4222), timeout=2):
            pass
    except OSError as exc:
        skip_or_fail(f"NATS is not reachable at {NATS_URL} ({type(exc).__name__}); start "
                     "'nats-server -js' there or set NEUROGATE_TEST_NATS_URL")
    return NATS_URL


@pytest.fixture
def bucket(nats_url: str) -> Iterator[str]:
    """A node bucket of this test's own, deleted afterwards."""
    import asyncio

    import nats

    name = f"neurogate_test_{uuid.uuid4().hex[:10]}"
    yield name

    async def delete() -> None:
        client = await nats.connect(nats_url)
        try:
            await client.jetstream().delete_key_value(name)
        except Exception:  # never created (the test failed early): nothing to delete
            pass
        finally:
            await client.close()

    asyncio.run(delete())


def nats_server(port: int, store: Path, *extra: str) -> subprocess.Popen[bytes]:
    """A ``nats-server -js`` of the test's own on ``port`` (storing under ``store``), once
    it listens."""
    if shutil.which("nats-server") is None:
        skip_or_fail("nats-server is not installed, so no NATS server of the test's own")
    process = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port),
                                "-sd", str(store), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    msg = f"nats-server did not listen on port {port}."
    raise RuntimeError(msg)
