"""Crypto-shredding at erasure, and key rotation that leaves the old KEK unneeded."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from neurogate.consent import rights
from neurogate.consent.access import Principal
from neurogate.consent.models import Recording
from neurogate.gateway import recording
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.recordings import (
    Keyring,
    RecordingError,
    SegmentStore,
    commit_rotation,
    key_status,
    load_keyring,
    read_segment,
    rotate,
    segments_of,
    write_segment,
)
from neurogate.settings import Settings
from tests.conftest import skip_or_fail
from tests.gateway.conftest import FAST_HASHING
from tests.recordings.conftest import add_recording, add_subject, samples


def _record(gateway: Gateway, store: SegmentStore, keyring: Keyring, seed: int,
            n_segments: int = 3) -> str:
    subject_id, consent_id = add_subject(gateway)
    recording_id = add_recording(gateway, subject_id, consent_id)
    with gateway.transaction() as session:
        row = session.get(Recording, recording_id)
        assert row is not None
        for index in range(n_segments):
            write_segment(session=session, store=store, keyring=keyring, recording=row,
                          index=index, segment=samples(index * 250, 250, seed))
    return recording_id


def _read_all(gateway: Gateway, store: SegmentStore, keyring: Keyring,
              recording_id: str) -> list[np.ndarray]:
    with gateway.transaction() as session:
        return [read_segment(session=session, store=store, keyring=keyring, row=row).data
                for row in segments_of(session, recording_id)]


def _copy(gateway: Gateway, target: Path) -> Path:
    """A copy of the database and segment files, as a backup would take it."""
    data = gateway.settings.data_dir
    target.mkdir()
    url = gateway.settings.database_url
    if url:  # PostgreSQL: pg_dump into a database of the copy's own
        copy_url = _copy_postgres(url, f"{sa.engine.make_url(url).database}_copy")
        (target / "database_url").write_text(copy_url, encoding="utf-8")
    else:
        with sqlite3.connect(data / "neurogate.db") as source, \
                sqlite3.connect(target / "neurogate.db") as copy:
            source.backup(copy)
    shutil.copytree(data / "recordings", target / "recordings")
    shutil.copytree(data / "keys", target / "keys")
    return target


def _copy_postgres(url: str, name: str) -> str:
    """A copy of the database at ``url`` named ``name`` (``pg_dump`` into ``psql``)."""
    if not (shutil.which("pg_dump") and shutil.which("psql")):
        skip_or_fail("Copying a PostgreSQL database needs pg_dump and psql "
                     "(Debian: apt-get install postgresql-client)")
    source = sa.engine.make_url(url)
    admin = sa.create_engine(source.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    where = ["-h", source.host or "127.0.0.1", "-p", str(source.port or 5432),
             "-U", source.username or "postgres"]
    dump = subprocess.run(["pg_dump", *where, "--no-owner", source.database or ""],
                          check=True, capture_output=True)
    subprocess.run(["psql", *where, "-q", "-v", "ON_ERROR_STOP=1", "-d", name],
                   input=dump.stdout, check=True, capture_output=True)
    return source.set(database=name).render_as_string(hide_password=False)


def _drop_postgres(url: str) -> None:
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


def test_erasure_shreds_even_a_copy_taken_before(gateway: Gateway, store: SegmentStore,
                                                 keyring: Keyring, tmp_path: Path) -> None:
    """After erasure the subject's recordings decrypt from no copy; others' still do."""
    erased = _record(gateway, store, keyring, seed=1)
    kept = _record(gateway, store, keyring, seed=2)
    assert len(_read_all(gateway, store, keyring, erased)) == 3
    backup = _copy(gateway, tmp_path / "backup")
    with gateway.transaction() as session:
        subject_id = session.get(Recording, erased).subject_id  # type: ignore[union-attr]
    with gateway.transaction() as session:
        outcome = rights.erase(session=session, ledger=gateway.ledger,
                               principal=Principal("account", "acct", "subject", subject_id),
                               subject_id=subject_id, shred=recording.shredder(gateway))
    recording.remove_files(gateway, list(outcome.recording_ids))
    assert outcome.recording_ids == (erased,)
    assert outcome.segments == 3 and outcome.data_key_destroyed
    assert not (store.root / erased).exists()
    assert outcome.receipt["leaf"]["action"] == "subject.erase"
    assert subject_id not in str(outcome.receipt["leaf"])
    # The copy still holds the rows and the ciphertexts, and the KEK is unchanged.
    copied_url = backup / "database_url"
    restored = build_gateway(Settings(
        data_dir=backup, environment="test",
        database_url=copied_url.read_text(encoding="utf-8") if copied_url.exists() else None,
        recording_kek_file=gateway.settings.recording_kek_file, **FAST_HASHING))
    copy_store = SegmentStore(backup / "recordings")
    with restored.transaction() as session:
        rows = segments_of(session, erased)
        assert len(rows) == 3
        for row in rows:
            with pytest.raises(RecordingError, match="destroyed by erasure"):
                read_segment(session=session, store=copy_store, keyring=keyring, row=row)
    others = _read_all(restored, copy_store, keyring, kept)
    assert len(others) == 3
    np.testing.assert_allclose(others[0], samples(0, 250, 2).data, rtol=1e-6)
    restored.engine.dispose()
    if copied_url.exists():
        _drop_postgres(copied_url.read_text(encoding="utf-8"))


def test_rotation_rewraps_every_data_key_and_the_old_kek_goes(
        gateway: Gateway, store: SegmentStore, keyring: Keyring) -> None:
    """After rotation the key file holds only the new KEK, and everything decrypts."""
    ids = [_record(gateway, store, keyring, seed=s) for s in (3, 4, 5)]
    before = {rid: _read_all(gateway, store, keyring, rid) for rid in ids}
    with gateway.transaction() as session:
        assert key_status(session) == {1: 3}
        grown, count = rotate(session=session, ledger=gateway.ledger, keyring=keyring)
    assert count == 3
    commit_rotation(grown)
    kek_file = gateway.settings.recording_kek_file
    assert kek_file is not None
    assert [line.split()[0] for line in kek_file.read_text().splitlines()] == ["v2"]
    fresh = load_keyring(kek_file=kek_file, kek=None, data_dir=gateway.settings.data_dir)
    assert fresh is not None and sorted(fresh.keys) == [2]  # the old KEK is gone
    with gateway.transaction() as session:
        assert key_status(session) == {2: 3}
    for rid in ids:
        after = _read_all(gateway, store, fresh, rid)
        assert all(np.array_equal(a, b) for a, b in zip(after, before[rid], strict=True))
    with pytest.raises(RecordingError, match="version 2 is not in"):
        _read_all(gateway, store, keyring, ids[0])  # the old keyring alone opens nothing
