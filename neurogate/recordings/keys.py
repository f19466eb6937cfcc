"""Data keys: one per subject, created on first use, destroyed by erasure, re-wrapped by
key rotation. A wrapped key is a file ``<key dir>/<subject id>.key`` (nonce and
AES-256-GCM ciphertext of the key under the KEK); the ``data_keys`` row records which
KEK version wraps it."""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime
from pathlib import Path

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

_SHREDDED = "The subject's data key does not exist (it was destroyed by erasure)."


def _key_path(keyring: Keyring, subject_id: str) -> Path:
    if keyring.key_dir is None:
        msg = "No key directory is configured (NEUROGATE_RECORDING_KEY_DIR)."
        raise RecordingError(msg, field="recording_key_dir")
    return keyring.key_dir / f"{subject_id}.key"


def _write(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def data_key(session: Session, keyring: Keyring, subject_id: str, *,
             create: bool = False) -> tuple[bytes, int]:
    """(the subject's data key, the KEK version it is wrapped under).

    With ``create`` a missing key is made, unless the subject was erased. A key that
    is gone means the recordings were crypto-shredded: RecordingError."""
    row = session.get(DataKey, subject_id)
    path = _key_path(keyring, subject_id)
    if row is None:
        subject = session.get(Subject, subject_id)
        if not create or subject is None or subject.erased_at is not None:
            raise RecordingError(_SHREDDED, field="subject_id")
        key = generate_key()
        version, wrapped = wrap_data_key(keyring, subject_id, key)
        _write(path, wrapped)
        session.add(DataKey(subject_id=subject_id, kek_version=version))
        session.flush()
        return key, version
    try:
        wrapped = path.read_bytes()
    except FileNotFoundError:
        raise RecordingError(_SHREDDED, field="subject_id") from None
    try:
        return unwrap_data_key(keyring, subject_id, row.kek_version, wrapped), row.kek_version
    except RecordingError:
        staged = path.with_name(path.name + ".new")  # a rotation committed, not yet in place
        if not staged.exists():
            raise
        return (unwrap_data_key(keyring, subject_id, row.kek_version, staged.read_bytes()),
                row.kek_version)


def shred(keyring: Keyring, subject_id: str) -> bool:
    """Delete the subject's wrapped data key file; True if there was one. Their
    recordings can never be decrypted again, from any copy of the database and files."""
    path = _key_path(keyring, subject_id)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def destroy_data_key(session: Session, keyring: Keyring, subject_id: str) -> bool:
    """Crypto-shred: delete the key file and the row; True if there was a key."""
    row = session.get(DataKey, subject_id)
    if row is not None:
        session.delete(row)
        session.flush()
    return shred(keyring, subject_id) or row is not None


def key_status(session: Session) -> dict[int, int]:
    """How many data keys each KEK version wraps."""
    versions = session.exec(select(DataKey.kek_version)).all()
    return dict(sorted(Counter(versions).items()))


def rotate(*, session: Session, ledger: Ledger, keyring: Keyring,
           now: datetime | None = None) -> tuple[Keyring, int]:
    """Add a new KEK version to the key file and re-wrap every data key under it; the
    rows change in this transaction. The caller commits, then calls ``commit_rotation``.

    Until ``commit_rotation`` the key file holds both versions, so a failure part-way leaves
    every key readable (a re-wrapped file is read with the new version, as its row
    says once committed; a file not yet re-wrapped still opens with the old one)."""
    if keyring.path is None:
        msg = ("Key rotation needs a key file: set NEUROGATE_RECORDING_KEK_FILE (a key given "
               "in NEUROGATE_RECORDING_KEK cannot be rewritten by NeuroGate).")
        raise RecordingError(msg, field="recording_kek_file")
    now = now or utcnow()
    new_version = keyring.current + 1
    keys = {**keyring.keys, new_version: generate_key()}
    grown = Keyring(keys, keyring.source, keyring.path, keyring.key_dir)
    write_keyring(keyring.path, keys)  # old and new side by side until retired
    rows = session.exec(select(DataKey).order_by(col(DataKey.subject_id))).all()
    for row in rows:
        path = _key_path(keyring, row.subject_id)
        if not path.exists():
            continue
        key = unwrap_data_key(keyring, row.subject_id, row.kek_version, path.read_bytes())
        _, wrapped = wrap_data_key(grown, row.subject_id, key, new_version)
        _write(path.with_name(path.name + ".new"), wrapped)
        row.kek_version = new_version
        row.rotated_at = now
        session.add(row)
    ledger.append(session, action="keys.rotate", at=now, key_version=new_version,
                  count=len(rows))
    return grown, len(rows)


def commit_rotation(keyring: Keyring) -> Keyring:
    """After the rotation's commit: put the re-wrapped key files in place and remove
    every KEK version but the current from the key file (the old KEK is destroyed)."""
    if keyring.key_dir is not None and keyring.key_dir.exists():
        for staged in keyring.key_dir.glob("*.key.new"):
            staged.replace(staged.with_suffix(""))
    current = keyring.current
    kept = {current: keyring.keys[current]}
    if keyring.path is not None:
        write_keyring(keyring.path, kept)
    return Keyring(kept, keyring.source, keyring.path, keyring.key_dir)


__all__ = ["commit_rotation", "data_key", "destroy_data_key", "key_status", "rotate",
           "shred"]
