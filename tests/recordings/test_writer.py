"""The recording writer: segments cut by signal time, and a failing disk that stops the
recording (with a ledger leaf) instead of raising into the stream."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import psutil
from neurogate_client.wire import KIND_RAW, encode_frame
from sqlmodel import select

from neurogate.consent.models import LedgerLeaf, Recording
from neurogate.gateway.recording_writer import RecordingWriter
from neurogate.gateway.state import Gateway
from neurogate.recordings import Keyring, SegmentStore, segments_of
from neurogate.recordings.segmenter import NICENESS
from tests.recordings.conftest import CHANNELS, RATE, add_recording, add_subject


def _feed(writer: RecordingWriter, recording_id: str, seconds: float) -> None:
    chunk = 25
    for k in range(int(seconds * RATE / chunk)):
        data = np.full((len(CHANNELS), chunk), k * 1e-6, dtype=np.float32)
        writer.put(recording_id, encode_frame(data, sequence=k, timestamp=k * chunk / RATE,
                                              kind=KIND_RAW))
    writer.put(recording_id, json.dumps({
        "type": "data", "product": "band_power", "seq": 1, "t": 1.0, "labels": ["C3"],
        "columns": ["alpha", "beta"], "window_s": 2.0, "rate_hz": 1.0, "data": [[1.0, 2.0]]}))


def _writer(gateway: Gateway, store: SegmentStore, keyring: Keyring) -> RecordingWriter:
    writer = RecordingWriter(gateway, store=store, keyring=keyring, segment_seconds=1.0)
    writer.start()
    return writer


def test_writer_cuts_segments_by_signal_time(gateway: Gateway, store: SegmentStore,
                                             keyring: Keyring) -> None:
    """3.5 s of raw becomes 1-s segments plus the rest at the stop; one feature segment."""
    subject_id, consent_id = add_subject(gateway)
    recording_id = add_recording(gateway, subject_id, consent_id)
    writer = _writer(gateway, store, keyring)
    writer.open(recording_id, subject_id=subject_id, channel_names=CHANNELS,
                rates={"raw": RATE})
    _feed(writer, recording_id, 3.5)
    writer.finish(recording_id, "stream_ended")
    assert writer.drain()
    writer.stop()
    with gateway.transaction() as session:
        rows = segments_of(session, recording_id)
        recording = session.get(Recording, recording_id)
        assert recording is not None and recording.stop_reason == "stream_ended"
    assert [(r.product, r.index) for r in rows] == [
        ("band_power", 0), ("raw", 0), ("raw", 1), ("raw", 2), ("raw", 3)]


def test_a_failing_disk_stops_the_recording_with_a_ledger_leaf(
        gateway: Gateway, keyring: Keyring, tmp_path) -> None:
    """A segment directory that cannot be written stops recording; nothing raises."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the segment directory should be")
    subject_id, consent_id = add_subject(gateway)
    recording_id = add_recording(gateway, subject_id, consent_id)
    failed: list[str] = []
    writer = RecordingWriter(gateway, store=SegmentStore(blocked), keyring=keyring,
                             segment_seconds=1.0, on_failed=failed.append)
    writer.start()
    writer.open(recording_id, subject_id=subject_id, channel_names=CHANNELS,
                rates={"raw": RATE})
    _feed(writer, recording_id, 2.5)
    assert writer.drain()
    writer.stop()
    assert failed == [recording_id]
    with gateway.transaction() as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None and recording.stop_reason == "write_failed"
        assert segments_of(session, recording_id) == []
        stops = [json.loads(leaf.entry) for leaf in session.exec(select(LedgerLeaf)).all()
                 if leaf.entry and b"recording.stop" in leaf.entry]
    assert [(s["recording"], s["reason_code"]) for s in stops] == [
        (recording_id, "write_failed")]


def test_one_recording_failing_leaves_the_others_of_the_same_batch_written(
        gateway: Gateway, store: SegmentStore, keyring: Keyring) -> None:
    """Segments of several recordings go to the store together; one that cannot be
    written (its subject's data key is gone) stops with ``write_failed``, and the other
    recording's segments of the same batches are all stored."""
    from neurogate.consent.models import Subject

    kept_subject, kept_consent = add_subject(gateway)
    lost_subject, lost_consent = add_subject(gateway)
    kept = add_recording(gateway, kept_subject, kept_consent)
    lost = add_recording(gateway, lost_subject, lost_consent)
    with gateway.transaction() as session:  # erased: no data key may be made for it
        subject = session.get(Subject, lost_subject)
        assert subject is not None
        subject.erased_at = subject.created_at
        session.add(subject)
    failed: list[str] = []
    writer = RecordingWriter(gateway, store=store, keyring=keyring, segment_seconds=1.0,
                             on_failed=failed.append)
    writer.start()
    for recording_id, subject_id in ((kept, kept_subject), (lost, lost_subject)):
        writer.open(recording_id, subject_id=subject_id, channel_names=CHANNELS,
                    rates={"raw": RATE})
    _feed(writer, kept, 3.5)
    _feed(writer, lost, 3.5)
    assert writer.drain()
    writer.finish(kept, "stream_ended")
    assert writer.drain()
    writer.stop()
    assert failed == [lost]
    with gateway.transaction() as session:
        assert [(r.product, r.index) for r in segments_of(session, kept)] == [
            ("band_power", 0), ("raw", 0), ("raw", 1), ("raw", 2), ("raw", 3)]
        assert segments_of(session, lost) == []
        stopped = {r.id: r.stop_reason for r in session.exec(select(Recording)).all()}
    assert stopped == {kept: "stream_ended", lost: "write_failed"}


def test_a_recording_process_that_dies_stops_its_recordings_with_a_ledger_leaf(
        gateway: Gateway, store: SegmentStore, keyring: Keyring) -> None:
    """Segments are written by a process of their own; if it is killed, each recording it
    had open stops with ``write_failed`` (what was written stays readable), and the
    gateway is told so that the recorder's subscription ends."""
    subject_id, consent_id = add_subject(gateway)
    recording_id = add_recording(gateway, subject_id, consent_id)
    failed: list[str] = []
    writer = RecordingWriter(gateway, store=store, keyring=keyring, segment_seconds=1.0,
                             on_failed=failed.append)
    writer.start()
    writer.open(recording_id, subject_id=subject_id, channel_names=CHANNELS,
                rates={"raw": RATE})
    _feed(writer, recording_id, 2.5)
    assert writer.drain()
    # It yields the CPU to the gateway's event loop: a lower priority than the gateway's.
    assert psutil.Process(writer._process.pid).nice() == min(19, os.nice(0) + NICENESS)
    writer._process.kill()  # a crash, not a stop
    writer._process.join(10)
    for _ in range(100):
        if failed:
            break
        time.sleep(0.05)
    writer.stop()
    assert failed == [recording_id]
    with gateway.transaction() as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None and recording.stop_reason == "write_failed"
        kept = [(r.product, r.index) for r in segments_of(session, recording_id)]
        stops = [json.loads(leaf.entry) for leaf in session.exec(select(LedgerLeaf)).all()
                 if leaf.entry and b"recording.stop" in leaf.entry]
    assert kept == [("raw", 0), ("raw", 1)]
    assert [(s["recording"], s["reason_code"], s["segments"]) for s in stops] == [
        (recording_id, "write_failed", 2)]
