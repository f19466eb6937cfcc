"""Encrypted segment files and their rows.

A segment file ``<root>/<recording id>/<product>-<index>.seg`` holds the AES-256-GCM
ciphertext and tag; its row (``recording_segments``) holds the nonce and the key
version. The plaintext of a segment is an ``.npz`` archive (no pickles) of ``t``
(frame start times, s), ``data`` and the ``labels`` and ``columns`` of its frames.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlmodel import Session, col, delete, select

from neurogate.consent.models import Recording, RecordingSegment
from neurogate.recordings.crypto import Keyring, RecordingError, decrypt, encrypt, segment_aad
from neurogate.recordings.keys import data_key


@dataclass
class SegmentData:
    """One product's frames: ``data`` shape (n_channels, n_times) in volts for raw and
    filtered (``t`` the time of each sample), else (n_frames, n_labels, n_columns)."""

    product: str
    t: np.ndarray
    data: np.ndarray
    labels: tuple[str, ...]
    columns: tuple[str, ...]


def encode(segment: SegmentData) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, t=np.asarray(segment.t, dtype=np.float64),
             data=np.asarray(segment.data, dtype=np.float32),
             labels=np.array(segment.labels, dtype=str),
             columns=np.array(segment.columns, dtype=str))
    return buffer.getvalue()


def decode(product: str, payload: bytes) -> SegmentData:
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        return SegmentData(product, archive["t"], archive["data"],
                           tuple(str(x) for x in archive["labels"]),
                           tuple(str(x) for x in archive["columns"]))


class SegmentStore:
    """The directory of segment files (``<data dir>/recordings``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, recording_id: str, product: str, index: int) -> Path:
        return self.root / recording_id / f"{product}-{index:06d}.seg"

    def write(self, path: Path, blob: bytes) -> None:
        """Write durably (temporary file, fsync, rename): OSError if the disk fails."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)

    def read(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            msg = "A segment file of the recording is missing or unreadable."
            raise RecordingError(msg) from exc

    def remove(self, recording_id: str) -> None:
        shutil.rmtree(self.root / recording_id, ignore_errors=True)


def seal_segment(key: bytes, version: int, recording_id: str, index: int,
                 segment: SegmentData) -> tuple[bytes, bytes]:
    """(nonce, ciphertext with tag) of one segment under its subject's data ``key``."""
    return encrypt(key, encode(segment), segment_aad(recording_id, index, segment.product,
                                                     version))


def segment_row(*, recording_id: str, subject_id: str, index: int, segment: SegmentData,
                version: int, nonce: bytes, sealed: bytes) -> RecordingSegment:
    """The row of a segment whose file is written."""
    return RecordingSegment(recording_id=recording_id, subject_id=subject_id,
                            product=segment.product, index=index, key_version=version,
                            nonce=nonce, size=len(sealed), t0=float(segment.t[0]))


def write_segment(*, session: Session, store: SegmentStore, keyring: Keyring,
                  recording: Recording, index: int, segment: SegmentData) -> RecordingSegment:
    """Encrypt and store one segment (file first, then its row in ``session``)."""
    key, version = data_key(session, keyring, recording.subject_id, create=True)
    nonce, sealed = seal_segment(key, version, recording.id, index, segment)
    store.write(store.path(recording.id, segment.product, index), sealed)
    row = segment_row(recording_id=recording.id, subject_id=recording.subject_id,
                      index=index, segment=segment, version=version, nonce=nonce,
                      sealed=sealed)
    session.add(row)
    return row


def read_segment(*, session: Session, store: SegmentStore, keyring: Keyring,
                 row: RecordingSegment) -> SegmentData:
    """Decrypt one segment (RecordingError if its key is gone or anything was changed)."""
    key, _ = data_key(session, keyring, row.subject_id)
    sealed = store.read(store.path(row.recording_id, row.product, row.index))
    aad = segment_aad(row.recording_id, row.index, row.product, row.key_version)
    return decode(row.product, decrypt(key, bytes(row.nonce), sealed, aad, what="segment"))


def segments_of(session: Session, recording_id: str) -> list[RecordingSegment]:
    return list(session.exec(
        select(RecordingSegment).where(RecordingSegment.recording_id == recording_id)
        .order_by(col(RecordingSegment.product), col(RecordingSegment.index))
    ).all())


def delete_recording(session: Session, recording_id: str) -> int:
    """Delete a recording's rows; returns how many segments it had (files: ``remove``)."""
    count = len(segments_of(session, recording_id))
    session.exec(delete(RecordingSegment).where(  # type: ignore[call-overload]
        col(RecordingSegment.recording_id) == recording_id))
    session.exec(delete(Recording).where(col(Recording.id) == recording_id))  # type: ignore[call-overload]
    return count


__all__ = ["SegmentData", "SegmentStore", "decode", "delete_recording", "encode",
           "read_segment", "seal_segment", "segment_row", "segments_of", "write_segment"]
