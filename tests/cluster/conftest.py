"""The NATS server the cluster tests join (JetStream on), or a skip saying why not."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
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
