"""The demo's client credentials: kept beside its data, the same on every start."""

from __future__ import annotations

import stat
from pathlib import Path

from neurogate.gateway.demo import CREDENTIALS_FILE, load_credentials, seed
from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.gateway.conftest import FAST_HASHING


def test_demo_seed_keeps_credentials_for_every_later_start(tmp_path: Path) -> None:
    """A second seed finds the demo and returns the first seed's credentials; the file
    holding them is readable by its owner only."""
    gateway = build_gateway(Settings(data_dir=tmp_path, environment="test", **FAST_HASHING))
    try:
        first = seed(gateway)
        again = seed(gateway)
    finally:
        gateway.engine.dispose()

    assert first.created and not again.created
    assert set(first.credentials) == {"clinic", "focus", "adlab", "cap", "band"}
    assert again.credentials == first.credentials == load_credentials(tmp_path)
    mode = stat.S_IMODE((tmp_path / CREDENTIALS_FILE).stat().st_mode)
    assert mode == 0o600


def test_demo_credentials_are_empty_without_a_demo(tmp_path: Path) -> None:
    """A data directory the demo never seeded holds no credentials."""
    assert load_credentials(tmp_path) == {}
