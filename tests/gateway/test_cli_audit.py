"""``neurogate audit verify`` where there is no data: it says what it looked for, where,
creates nothing and exits 2 without a traceback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neurogate.gateway.cli import app
from neurogate.settings import get_settings


@pytest.fixture
def no_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings pointing at a data directory that does not exist."""
    absent = tmp_path / "absent"
    for name in ("NEUROGATE_DATABASE_URL", "NEUROGATE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEUROGATE_DATA_DIR", str(absent))
    get_settings.cache_clear()
    yield absent
    get_settings.cache_clear()


def test_audit_verify_without_data_names_what_it_looked_for(no_data: Path) -> None:
    """No database and no key: both are named with their paths; nothing is created."""
    result = CliRunner().invoke(app, ["audit", "verify"])

    text = re.sub(r"\s+", " ", result.stderr)
    assert result.exit_code == 2
    assert (f"Nothing to verify: there is no database at {no_data / 'neurogate.db'} and no "
            f"ledger key at {no_data / 'keys' / 'ledger-ed25519.pem'}.") in text
    assert "NEUROGATE_DATA_DIR" in text and "Nothing was created." in text
    assert "Traceback" not in text
    assert isinstance(result.exception, SystemExit)  # a clean exit, no exception raised
    assert not no_data.exists()


def test_audit_verify_with_an_unreachable_database_says_which(
        no_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PostgreSQL URL that does not answer: the URL without its password, exit 2."""
    key = no_data / "keys" / "ledger-ed25519.pem"
    key.parent.mkdir(parents=True)
    key.write_text("placeholder")
    monkeypatch.setenv("NEUROGATE_DATABASE_URL",
                       "postgresql+psycopg://ng:s3cret@127.0.0.1:9/neurogate?connect_timeout=2")
    get_settings.cache_clear()

    result = CliRunner().invoke(app, ["audit", "verify"])

    text = re.sub(r"\s+", " ", result.stderr)
    assert result.exit_code == 2, text
    assert "Cannot open the database postgresql+psycopg://ng:***@127.0.0.1:9/neurogate" in text
    assert "s3cret" not in text
