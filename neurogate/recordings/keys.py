"""Data keys: one per subject, created on first use, destroyed by erasure, re-wrapped by
key rotation. The database holds only wrapped keys."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlmodel import Session, col, select

from neurogate.consent.ledger import Ledger
from neurogate.consent.models import DataKey, Subject, utcnow
from neurogate.recordings.crypto import (
    Keyring,
    RecordingError,
    generate_key,
    unwrap_data_key,
    wrap_data_key,
    write_keyring,
)


def data_key(session: Session, keyring: Keyring, subject_id: str, *,
             create: bool = False) -> tuple[bytes, int]:
    """(the subject's data key, the KEK version it is wrapped under).

    With ``create`` a missing key is made, unless the subject was erased. Without it a
    missing key means the recordings were crypto-shredded: RecordingError."""
    row = session.get(DataKey, subject_id)
    if row is None:
        subject = session.get(Subject, subject_id)
        if not create or subject is None or subject.erased_at is not None:
            msg = "The subject's data key does not exist (it was destroyed by erasure)."
            raise RecordingError(msg, field="subject_id")
        key = generate_key()
        version, wrapped = wrap_data_key(keyring, subject_id, key)
        session.add(DataKey(subject_id=subject_id, wrapped=wrapped, kek_version=version))
        session.flush()
        return key, version
    return unwrap_data_key(keyring, subject_id, row.kek_version, bytes(row.wrapped)), \
        row.kek_version


def destroy_data_key(session: Session, subject_id: str) -> bool:
    """Delete the subject's data key (crypto-shredding); True if there was one."""
    row = session.get(DataKey, subject_id)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def key_status(session: Session) -> dict[int, int]:
    """How many data keys each KEK version wraps."""
    versions = session.exec(select(DataKey.kek_version)).all()
    return dict(sorted(Counter(versions).items()))


def rotate(*, session: Session, ledger: Ledger, keyring: Keyring,
           now: datetime | None = None) -> tuple[Keyring, int]:
    """Add a new KEK version, re-wrap every data key under it (in this transaction) and
    return the new keyring and the count. The caller commits, then calls ``retire``."""
    if keyring.path is None:
        msg = ("Key rotation needs a key file: set NEUROGATE_RECORDING_KEK_FILE (a key given "
               "in NEUROGATE_RECORDING_KEK cannot be rewritten by NeuroGate).")
        raise RecordingError(msg, field="recording_kek_file")
    now = now or utcnow()
    new_version = keyring.current + 1
    keys = {**keyring.keys, new_version: generate_key()}
    grown = Keyring(keys, keyring.source, keyring.path)
    write_keyring(keyring.path, keys)  # old and new side by side until the commit
    rows = session.exec(select(DataKey).order_by(col(DataKey.subject_id))).all()
    for row in rows:
        key = unwrap_data_key(keyring, row.subject_id, row.kek_version, bytes(row.wrapped))
        row.kek_version, row.wrapped = wrap_data_key(grown, row.subject_id, key, new_version)
        row.rotated_at = now
        session.add(row)
    ledger.append(session, action="keys.rotate", at=now, key_version=new_version,
                  count=len(rows))
    return grown, len(rows)


def retire(keyring: Keyring) -> Keyring:
    """Remove every KEK version but the current from the key file (after the commit)."""
    current = keyring.current
    kept = {current: keyring.keys[current]}
    if keyring.path is not None:
        write_keyring(keyring.path, kept)
    return Keyring(kept, keyring.source, keyring.path)


__all__ = ["data_key", "destroy_data_key", "key_status", "retire", "rotate"]
