"""Recording fixtures: an in-process gateway over SQLite or PostgreSQL with a key file
outside its data directory, and rows for subjects, apps, consents and recordings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from neurogate.consent.db import get_engine
from neurogate.consent.models import Account, App, Consent, Recording, Subject, new_id
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.recordings import Keyring, SegmentData, SegmentStore, load_keyring
from neurogate.settings import Settings
from tests.gateway.conftest import FAST_HASHING

RATE = 250.0
CHANNELS = ("C3", "C4", "Cz")


@pytest.fixture(params=["sqlite", "postgres"])
def gateway(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Gateway]:
    """A gateway over a migrated database, SQLite (the embedded default) or PostgreSQL
    (a cluster's store; its schema emptied first), its KEK file in a separate folder."""
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_database")
        with get_engine(url).begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    settings = Settings(data_dir=tmp_path / "data", environment="test", database_url=url,
                        recording_kek_file=tmp_path / "secrets" / "kek", **FAST_HASHING)
    gateway = build_gateway(settings)
    yield gateway
    gateway.engine.dispose()


@pytest.fixture
def keyring(gateway: Gateway) -> Keyring:
    settings = gateway.settings
    found = load_keyring(kek_file=settings.recording_kek_file, kek=None,
                         data_dir=settings.data_dir)
    assert found is not None
    return found


@pytest.fixture
def store(gateway: Gateway) -> SegmentStore:
    return SegmentStore(gateway.settings.data_dir / "recordings")


def add_subject(gateway: Gateway, *, dob: date | None = date(1990, 4, 2),
                purpose: str = "clinical_monitoring") -> tuple[str, str]:
    """A subject with an active consent of an app for ``purpose``: (subject, consent)."""
    with gateway.transaction() as session:
        owner = Account(username=f"owner-{new_id()}", password_hash="x", role="app_owner",
                        pseudonym=new_id())
        subject = Subject(pseudonym=new_id(), display_name="Ada Example", date_of_birth=dob)
        session.add(owner)
        session.add(subject)
        session.flush()
        app = App(name="Clinic", owner_account_id=owner.id, declared_purposes=[purpose])
        session.add(app)
        session.flush()
        now = datetime.now(UTC)
        consent = Consent(subject_id=subject.id, app_id=app.id, purpose_id=purpose,
                          products=["raw"], granted_capacity="self", recorded_by=owner.id,
                          notice_purpose_id=purpose, notice_version=1, notice_language="en",
                          notice_variant="plain", notice_sha256="0" * 64,
                          valid_until=now + timedelta(days=300))
        session.add(consent)
        session.flush()
        return subject.id, consent.id


def add_recording(gateway: Gateway, subject_id: str, consent_id: str, *,
                  started: datetime | None = None, keep_days: int = 30) -> str:
    with gateway.transaction() as session:
        consent = session.get(Consent, consent_id)
        assert consent is not None
        started = started or datetime.now(UTC)
        recording = Recording(subject_id=subject_id, app_id=consent.app_id,
                              consent_id=consent_id, purpose_id=consent.purpose_id,
                              device_id="dev", channel_names=list(CHANNELS), sampling_rate=RATE,
                              started_at=started, keep_until=started + timedelta(days=keep_days))
        session.add(recording)
        session.flush()
        return recording.id


def samples(start: int, n: int, seed: int = 0) -> SegmentData:
    """``n`` raw samples of 3 channels (volts) starting at sample ``start``."""
    rng = np.random.default_rng(seed + start)
    t = (start + np.arange(n)) / RATE
    data = rng.normal(0.0, 20e-6, (len(CHANNELS), n))
    return SegmentData("raw", t, data, CHANNELS, ())
