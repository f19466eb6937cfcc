"""Client-library tests: every JSON message the library's clients receive from a gateway
validates against its AsyncAPI document (tests/clients/contract.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def stream_contract() -> Iterator[None]:
    """Fail a test after which a received message did not validate."""
    from tests.clients import contract

    contract.take_failures()
    yield
    assert contract.take_failures() == []
