"""Shared fixtures: databases (SQLite and PostgreSQL), gateways, and a small clinic."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_EEG = REPO.parent / "shared" / "data" / "eeg"
POSTGRES_URL = os.environ.get(
    "NEUROGATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def services_required() -> bool:
    """CI sets NEUROGATE_REQUIRE_SERVICES=1: then nothing may skip for want of a service."""
    return os.environ.get("NEUROGATE_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail when services are required."""
    if services_required():
        pytest.fail(f"{reason} (NEUROGATE_REQUIRE_SERVICES=1, so this cannot be skipped)")
    pytest.skip(reason)


def leakage_recording() -> Path:
    """The recording ``neurogate bench leakage`` reads (../shared/data/eeg/test_raw.set):
    skip without it, or fail when services are required."""
    from neurogate.bench.leakage import default_recording

    path: Path = default_recording()
    if not path.is_file():
        skip_or_fail(f"The shared EEG recordings are missing: {path} does not exist. Put the "
                     "shared data folder beside the repository (../shared/data/eeg).")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for this test run."""
    import sqlalchemy as sa

    try:
        admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any connection failure means "no server here"
        skip_or_fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {type(exc).__name__}")
    name = f"neurogate_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(
        hide_password=False
    )
    yield url
    from neurogate.consent.db import get_engine

    get_engine(url).dispose()
    get_engine.cache_clear()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: SQLite in a temporary folder, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'neurogate.db'}"
    import sqlalchemy as sa

    url: str = request.getfixturevalue("postgres_database")
    from neurogate.consent.db import get_engine

    with get_engine(url).begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database only (for tests that need no PostgreSQL variant)."""
    return f"sqlite:///{tmp_path / 'neurogate.db'}"
