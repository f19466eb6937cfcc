"""Recording on a real gateway process: several device streams recorded while their
consents keep data, every segment under a fresh nonce, the export equal to what the
devices sent, clinician reads under the consent check, revocation and erasure."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mne
import numpy as np
import pytest
from neurogate_client import DeviceClient
from sqlmodel import select

from neurogate.consent.models import Recording, RecordingSegment
from neurogate.devices import DeviceInfo
from neurogate.gateway.state import build_gateway
from neurogate.recordings import load_keyring, read_segment
from neurogate.recordings.store import SegmentStore
from neurogate.settings import Settings
from tests.devices.live_gateway import LiveClinic, RealtimePusher, live_clinic, wait_until
from tests.gateway.conftest import FAST_HASHING, notice

pytestmark = pytest.mark.e2e
RATE = 250.0
LAYOUT = DeviceInfo(("C3", "C4"), ("eeg", "eeg"), ("V", "V"), RATE)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveClinic, Path]]:
    """A gateway with recording on (half-second segments), its KEK file outside the data."""
    root = tmp_path_factory.mktemp("recordings-live")
    kek = root / "secrets" / "kek"
    with live_clinic(root / "data", NEUROGATE_RECORDING_KEK_FILE=str(kek),
                     NEUROGATE_RECORDING_SEGMENT_SECONDS="0.5") as clinic:
        yield clinic, kek


def _recordings(live: LiveClinic, who: str, subject: str) -> list[dict[str, Any]]:
    response = live.http.get(f"/v1/subjects/{live.clinic.ids[subject]}/recordings",
                             headers=live.clinic.as_(who))
    assert response.status_code == 200, response.text
    return list(response.json())


def _device(live: LiveClinic, subject: str, clinician: str, serial: str) -> DeviceClient:
    _, (client_id, secret) = live.register(LAYOUT, pair_with=None, serial=serial)
    device_id = next(iter(r["id"] for r in live.http.get(
        "/v1/devices", headers=live.clinic.as_("vendor1")).json()
        if r["serial"] == serial))
    paired = live.http.post(f"/v1/devices/{device_id}/pairing",
                            headers=live.clinic.as_(clinician),
                            json={"subject_id": live.clinic.ids[subject]})
    assert paired.status_code == 200, paired.text
    return DeviceClient(live.url, client_id=client_id, client_secret=secret, info=LAYOUT)


def test_streams_are_recorded_encrypted_and_exported_as_sent(
        live: tuple[LiveClinic, Path]) -> None:
    """Three recordings of two streams for a few seconds: fresh nonces per data key,
    segments equal to the samples sent, an EDF export, clinician reads in the ledger,
    revocation stopping one recording at once, and erasure deleting another's."""
    clinic, kek = live
    ids = clinic.clinic.ids
    granted = clinic.http.post("/v1/consents", headers=clinic.clinic.as_("adult1"), json={
        "subject_id": ids["adult1"], "app_id": ids["research_app"],
        "purpose_id": "research_noncommercial", "notice": notice("research_noncommercial")})
    assert granted.status_code == 201, granted.text
    research_consent = granted.json()["consent"]["id"]
    assented = clinic.http.post(f"/v1/consents/{ids['c_child2_research']}/assent",
                                headers=clinic.clinic.as_("child2"), json={"assent": "given"})
    assert assented.status_code == 200, assented.text
    adult = _device(clinic, "adult1", "clin1", "SN-REC-A")
    child = _device(clinic, "child2", "clin2", "SN-REC-B")
    with adult, child:
        assert adult.wait_connected(10) and child.wait_connected(10)
        pushers = [RealtimePusher(adult).start(), RealtimePusher(child).start()]
        assert wait_until(lambda: len(_recordings(clinic, "adult1", "adult1")) == 2, 10)
        assert wait_until(lambda: len(_recordings(clinic, "guard2", "child2")) == 1, 10)
        time.sleep(1.5)
        revoked = clinic.http.post(f"/v1/consents/{research_consent}/revoke",
                                   headers=clinic.clinic.as_("adult1"))
        assert revoked.status_code == 200, revoked.text
        revoked_at = time.time()  # the revocation has committed by now
        assert wait_until(lambda: any(
            r["stop_reason"] and r["purpose"] == "research_noncommercial"
            for r in _recordings(clinic, "adult1", "adult1")), 10)
        time.sleep(1.0)
        for pusher in pushers:
            pusher.stop()
    assert wait_until(lambda: all(r["stopped_at"] for r in
                                  _recordings(clinic, "adult1", "adult1")
                                  + _recordings(clinic, "guard2", "child2")), 15)
    adult_recordings = {r["purpose"]: r for r in _recordings(clinic, "adult1", "adult1")}
    assert adult_recordings["clinical_monitoring"]["stop_reason"] == "stream_ended"
    assert adult_recordings["research_noncommercial"]["stop_reason"] != "stream_ended"

    # Every stored segment decrypts; no nonce repeats under one subject's data key.
    view = build_gateway(Settings(data_dir=clinic.data_dir, environment="test",
                                  **FAST_HASHING), migrate=False)
    keyring = load_keyring(kek_file=kek, kek=None, data_dir=clinic.data_dir)
    assert keyring is not None
    store = SegmentStore(clinic.data_dir / "recordings")
    sources = {ids["adult1"]: pushers[0], ids["child2"]: pushers[1]}
    with view.transaction() as session:
        rows = session.exec(select(RecordingSegment)).all()
        recordings = {r.id: r for r in session.exec(select(Recording)).all()}
        assert len(recordings) == 3
        by_key: dict[str, list[bytes]] = {}
        for row in rows:
            by_key.setdefault(row.subject_id, []).append(bytes(row.nonce))
            segment = read_segment(session=session, store=store, keyring=keyring, row=row)
            if row.product != "raw":
                continue
            pusher = sources[row.subject_id]
            k = np.rint((segment.t - pusher.t0) * RATE).astype(int)
            np.testing.assert_allclose(segment.data, pusher.source[:, k], rtol=1e-6,
                                       atol=1e-12)
    assert {len(v) for v in by_key.values()} and all(
        len(v) == len(set(v)) for v in by_key.values())
    assert sum(len(v) for v in by_key.values()) >= 9  # several half-second segments, 3 recordings
    assert {r.recording_id for r in rows} == set(recordings)  # each has segments
    research_id = next(i for i, r in recordings.items()
                       if r.purpose_id == "research_noncommercial")
    with view.transaction() as session:
        last = max(float(read_segment(session=session, store=store, keyring=keyring,
                                      row=row).t.max())
                   for row in rows if row.recording_id == research_id)
    # Nothing produced after the revocation committed was recorded (a chunk of 10
    # samples carries timestamps up to 10 sample periods after it is sent).
    assert last <= revoked_at + 10 / RATE
    clinical_ids = {i for i, r in recordings.items() if r.purpose_id == "clinical_monitoring"}
    assert {r.recording_id for r in rows if r.product == "raw"} == clinical_ids
    assert len(clinical_ids) == 2
    view.engine.dispose()

    # Subject access: the export's EDF reads back with the device's channels and rate.
    exported = clinic.http.get(f"/v1/subjects/{ids['adult1']}/recordings/export",
                               headers=clinic.clinic.as_("adult1"))
    assert exported.status_code == 200, exported.text
    archive = zipfile.ZipFile(io.BytesIO(exported.content))
    clinical = adult_recordings["clinical_monitoring"]["id"]
    edf = clinic.data_dir.parent / "export.edf"
    edf.write_bytes(archive.read(f"{clinical}.edf"))
    raw = mne.io.read_raw_edf(edf, verbose="error")
    assert raw.ch_names == ["C3", "C4"] and raw.info["sfreq"] == RATE
    assert {"metadata.json", "ledger-proofs.json"} <= set(archive.namelist())

    # Clinician reads: in care and under a live consent only; each read is logged.
    read = clinic.http.get(f"/v1/subjects/{ids['adult1']}/recordings/{clinical}/edf",
                           headers=clinic.clinic.as_("clin1"))
    assert read.status_code == 200 and read.content[:8] == b"0       "
    research = adult_recordings["research_noncommercial"]["id"]
    refused = clinic.http.get(f"/v1/subjects/{ids['adult1']}/recordings/{research}/edf",
                              headers=clinic.clinic.as_("clin1"))
    assert refused.status_code == 409, refused.text
    stranger = clinic.http.get(f"/v1/subjects/{ids['adult1']}/recordings/{clinical}/edf",
                               headers=clinic.clinic.as_("clin2"))
    assert stranger.status_code == 404
    reads = [e for e in clinic.ledger() if e.get("action") == "recording.read"]
    assert [(e["recording"], e["actor_role"]) for e in reads] == [(clinical, "clinician")]

    # Erasure by the guardian: recordings crypto-shredded and deleted, a signed receipt.
    child_recording = _recordings(clinic, "guard2", "child2")[0]["id"]
    erased = clinic.http.post(f"/v1/subjects/{ids['child2']}/erasure",
                              headers=clinic.clinic.as_("guard2"))
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["recordings_deleted"] == 1 and body["data_key_destroyed"] is True
    assert body["receipt"]["leaf"]["action"] == "subject.erase"
    assert not (store.root / child_recording).exists()


def test_two_devices_of_one_subject_streaming_at_once_make_two_recordings(
        tmp_path: Path) -> None:
    """Two devices of one subject stream at the same time: each stream gets its own
    recording of the clinical consent, holding that device's samples and no other's."""
    kek = tmp_path / "secrets" / "kek"
    with live_clinic(tmp_path / "data", NEUROGATE_RECORDING_KEK_FILE=str(kek),
                     NEUROGATE_RECORDING_SEGMENT_SECONDS="0.5") as clinic:
        first = _device(clinic, "adult1", "clin1", "SN-TWO-A")
        second = _device(clinic, "adult1", "clin1", "SN-TWO-B")
        with first, second:
            assert first.wait_connected(10) and second.wait_connected(10)
            pushers = [RealtimePusher(first).start()]
            time.sleep(0.3)  # the second starts later: its timestamps differ from the first's
            pushers.append(RealtimePusher(second).start())
            assert wait_until(lambda: len(_recordings(clinic, "adult1", "adult1")) == 2, 10)
            time.sleep(1.5)
            for pusher in pushers:
                pusher.stop()
        assert wait_until(lambda: all(r["stopped_at"] for r in
                                      _recordings(clinic, "adult1", "adult1")), 15)
        listed = _recordings(clinic, "adult1", "adult1")
        assert {r["purpose"] for r in listed} == {"clinical_monitoring"}
        assert {r["stop_reason"] for r in listed} == {"stream_ended"}
        view = build_gateway(Settings(data_dir=clinic.data_dir, environment="test",
                                      **FAST_HASHING), migrate=False)
        keyring = load_keyring(kek_file=kek, kek=None, data_dir=clinic.data_dir)
        assert keyring is not None
        store = SegmentStore(clinic.data_dir / "recordings")
        with view.transaction() as session:
            recordings = {r.id: r for r in session.exec(select(Recording)).all()}
            devices = {r.device_id for r in recordings.values()}
            assert len(recordings) == 2 and len(devices) == 2
            matched: dict[str, set[int]] = {}
            for row in session.exec(select(RecordingSegment)).all():
                if row.product != "raw":
                    continue
                segment = read_segment(session=session, store=store, keyring=keyring, row=row)
                for which, pusher in enumerate(pushers):
                    k = np.rint((segment.t - pusher.t0) * RATE).astype(int)
                    if (k >= 0).all() and (k < pusher.pushed).all() and np.allclose(
                            segment.data, pusher.source[:, k], rtol=1e-6, atol=1e-12):
                        matched.setdefault(row.recording_id, set()).add(which)
                        break
                else:
                    msg = f"segment {row.index} of {row.recording_id}: neither device's samples"
                    raise AssertionError(msg)
        view.engine.dispose()
    # Each recording holds one device's samples, and the two recordings hold different ones.
    assert sorted(matched) == sorted(recordings)
    assert all(len(v) == 1 for v in matched.values())
    assert {next(iter(v)) for v in matched.values()} == {0, 1}
