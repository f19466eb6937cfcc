"""Subject access: the exported EDF reads back with MNE, matches what was recorded and
carries no identifying header field."""

from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np

from neurogate.consent.models import Recording
from neurogate.consent.receipts import verify_receipt
from neurogate.gateway.state import Gateway
from neurogate.recordings import Keyring, SegmentStore, export_files, write_segment
from tests.recordings.conftest import CHANNELS, RATE, add_recording, add_subject, samples


def test_exported_edf_reads_back_and_matches_the_recording(
        gateway: Gateway, store: SegmentStore, keyring: Keyring, tmp_path: Path) -> None:
    """Values within the EDF's digital resolution, channel names and rate; no name,
    birth date or subject id in the header; ledger proofs verify offline."""
    subject_id, consent_id = add_subject(gateway)
    recording_id = add_recording(gateway, subject_id, consent_id)
    recorded = [samples(i * 500, 500, seed=7) for i in range(4)]  # 8 s at 250 Hz
    with gateway.transaction() as session:
        row = session.get(Recording, recording_id)
        assert row is not None
        for index, segment in enumerate(recorded):
            write_segment(session=session, store=store, keyring=keyring, recording=row,
                          index=index, segment=segment)
    with gateway.transaction() as session:
        files = dict(export_files(session=session, store=store, keyring=keyring,
                                  ledger=gateway.ledger, subject_id=subject_id,
                                  actor_role="subject"))
    assert sorted(files) == sorted([f"{recording_id}.edf", "metadata.json",
                                    "ledger-proofs.json"])
    edf = tmp_path / "export.edf"
    edf.write_bytes(files[f"{recording_id}.edf"])
    header = files[f"{recording_id}.edf"][:256].decode("ascii")
    for identifying in ("Ada", "Example", "1990", "02-APR", subject_id[:8]):
        assert identifying not in header
    assert header[8:88].split() == ["X", "X", "X", "X"]  # patient: code, sex, birth, name
    raw = mne.io.read_raw_edf(edf, preload=True, verbose="error")
    assert raw.ch_names == list(CHANNELS)
    assert raw.info["sfreq"] == RATE
    expected = np.concatenate([s.data for s in recorded], axis=1)
    got = raw.get_data()[:, :expected.shape[1]]
    assert raw.n_times >= expected.shape[1]
    resolution = (expected.max() - expected.min()) / (2**16 - 1)
    assert np.max(np.abs(got - expected)) <= resolution
    subject_info = dict(raw.info.get("subject_info") or {})
    assert "birthday" not in subject_info and "first_name" not in subject_info
    assert {subject_info.get("his_id", "X"), subject_info.get("last_name", "X")} == {"X"}
    metadata = json.loads(files["metadata.json"])["recordings"]
    assert [(m["id"], m["segments"], m["products"]) for m in metadata] == [
        (recording_id, 4, ["raw"])]
    receipts = json.loads(files["ledger-proofs.json"])["receipts"]
    actions = [verify_receipt(r, gateway.ledger.signer.verifier).leaf["action"]
               for r in receipts]
    assert actions[-1] == "recording.export"


def test_subject_export_lists_recordings_without_signal_data(gateway: Gateway) -> None:
    """``GET /v1/subjects/{id}/export`` data names each recording, never its samples."""
    from neurogate.consent import rights
    from neurogate.consent.access import Principal

    subject_id, consent_id = add_subject(gateway)
    recording_id = add_recording(gateway, subject_id, consent_id)
    with gateway.transaction() as session:
        exported = rights.export_subject(
            session=session, ledger=gateway.ledger, subject_id=subject_id,
            principal=Principal("account", "acct", "subject", subject_id))
    assert [(r["id"], r["purpose"]) for r in exported["recordings"]] == [
        (recording_id, "clinical_monitoring")]
    assert set(exported["recordings"][0]) == {"id", "purpose", "app_id", "started_at",
                                              "stopped_at", "keep_until"}
