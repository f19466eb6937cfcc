"""Subject access: a subject's recordings, decrypted, as EDF plus JSON, with the ledger
proofs of everything the ledger holds about them.

``export_files`` yields ``(name, bytes)`` pairs, one at a time, so a caller can show
progress or stream a zip: per recording ``<id>.edf`` (raw, else filtered, samples in
µV as EDF stores them) and ``<id>-<product>.json`` for the other products, then
``metadata.json`` (what was recorded, for which purpose and app, kept until when) and
``ledger-proofs.json`` (a signed receipt, verifiable offline, for each ledger entry about
the subject). The EDF header carries no name, birth date, sex or other identifying field:
only the recording's start and the channel names.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import mne
import numpy as np
from sqlmodel import Session, col, select

from neurogate.consent.ledger import Ledger
from neurogate.consent.models import App, Recording
from neurogate.consent.purposes import SAMPLE_PRODUCTS
from neurogate.errors import NeurogateError
from neurogate.recordings.crypto import Keyring, RecordingError
from neurogate.recordings.store import SegmentData, SegmentStore, read_segment, segments_of


def recordings_of(session: Session, subject_id: str) -> list[Recording]:
    return list(session.exec(select(Recording).where(Recording.subject_id == subject_id)
                             .order_by(col(Recording.started_at))).all())


def _decrypted(session: Session, store: SegmentStore, keyring: Keyring,
               recording: Recording) -> dict[str, list[SegmentData]]:
    products: dict[str, list[SegmentData]] = {}
    for row in segments_of(session, recording.id):
        segment = read_segment(session=session, store=store, keyring=keyring, row=row)
        products.setdefault(row.product, []).append(segment)
    for segments in products.values():
        segments.sort(key=lambda s: float(s.t[0]))
    return products


def recording_edf(recording: Recording, segments: list[SegmentData]) -> bytes:
    """The samples of one sample product as an EDF file without identifying fields."""
    data = np.concatenate([s.data for s in segments], axis=1).astype(np.float64)
    times = np.concatenate([s.t for s in segments])
    rate = recording.sampling_rate  # the device's; a purpose may deliver every k-th sample
    if times.size > 1:
        rate /= max(1, round(recording.sampling_rate * float(np.median(np.diff(times)))))
    info = mne.create_info(list(segments[0].labels), rate, "eeg")
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_meas_date(recording.started_at.astimezone(UTC))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recording.edf"
        try:
            mne.export.export_raw(path, raw, fmt="edf", verbose="error")
        except (ValueError, RuntimeError) as exc:
            msg = f"The recording {recording.id} cannot be written as EDF: {exc}"
            raise RecordingError(msg) from exc
        return path.read_bytes()


def _features(segments: list[SegmentData]) -> dict[str, Any]:
    return {"product": segments[0].product, "labels": list(segments[0].labels),
            "columns": list(segments[0].columns),
            "t": np.concatenate([s.t for s in segments]).tolist(),
            "data": np.concatenate([s.data for s in segments], axis=0).tolist()}


def recordings_metadata(session: Session, recordings: list[Recording]) -> list[dict[str, Any]]:
    """What is recorded, in JSON-ready form (no signal data)."""
    out = []
    for r in recordings:
        app = session.get(App, r.app_id)
        rows = segments_of(session, r.id)
        out.append({
            "id": r.id, "purpose": r.purpose_id, "app": app.name if app else None,
            "app_id": r.app_id, "consent_id": r.consent_id, "device_id": r.device_id,
            "channel_names": list(r.channel_names), "sampling_rate": r.sampling_rate,
            "started_at": r.started_at.isoformat(),
            "stopped_at": r.stopped_at.isoformat() if r.stopped_at else None,
            "stop_reason": r.stop_reason, "keep_until": r.keep_until.isoformat(),
            "delete_after": r.delete_after.isoformat() if r.delete_after else None,
            "products": sorted({s.product for s in rows}), "segments": len(rows),
        })
    return out


def export_files(*, session: Session, store: SegmentStore, keyring: Keyring, ledger: Ledger,
                 subject_id: str, actor_role: str) -> Iterator[tuple[str, bytes]]:
    """Every file of a subject's export, in order; the export is logged in the ledger."""
    recordings = recordings_of(session, subject_id)
    ledger.append(session, action="recording.export", concerns=subject_id,
                  actor_role=actor_role, count=len(recordings))
    for recording in recordings:
        products = _decrypted(session, store, keyring, recording)
        for product in SAMPLE_PRODUCTS:
            if products.get(product):
                yield f"{recording.id}.edf", recording_edf(recording, products[product])
                break
        for product, segments in sorted(products.items()):
            if product not in SAMPLE_PRODUCTS or product != _edf_product(products):
                yield (f"{recording.id}-{product}.json",
                       json.dumps(_features(segments) if product not in SAMPLE_PRODUCTS
                                  else _samples(segments)).encode())
    yield "metadata.json", json.dumps(
        {"recordings": recordings_metadata(session, recordings)}, indent=2).encode()
    proofs = []
    for entry in ledger.entries_for_subject(session, subject_id):
        if entry.opaque:
            continue
        try:
            proofs.append(ledger.receipt_for(session, entry.seq))
        except NeurogateError:
            continue
    yield "ledger-proofs.json", json.dumps({"receipts": proofs}, indent=2).encode()


def _edf_product(products: dict[str, list[SegmentData]]) -> str | None:
    return next((p for p in SAMPLE_PRODUCTS if products.get(p)), None)


def _samples(segments: list[SegmentData]) -> dict[str, Any]:
    return {"product": segments[0].product, "labels": list(segments[0].labels),
            "t": np.concatenate([s.t for s in segments]).tolist(),
            "data_volts": np.concatenate([s.data for s in segments], axis=1).tolist()}


__all__ = ["export_files", "recording_edf", "recordings_metadata", "recordings_of"]
