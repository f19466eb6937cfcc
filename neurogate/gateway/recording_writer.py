"""The recording writer: a thread of its own that turns delivered messages into
encrypted segments, so that nothing of it runs on the event loop.

The event loop only appends ``(recording id, message)`` to an unbounded deque, without
waking the thread: the thread takes what has gathered every ``BATCH_SECONDS`` (at once
for an open, a finish, a stop or a drain), so that a message costs no thread switch of
its own (a wake-up per message, and the GIL changing hands with it, cost more than the
writing itself). The thread decodes the messages (the protocol's binary frames for raw
and filtered, its JSON ``data`` messages for the other products), cuts
``segment_seconds`` of each product into one segment, encrypts and writes it. A write
that fails (a full disk, a missing directory, a lost key) stops that recording with a
``recording.stop`` ledger leaf (``reason_code`` ``write_failed``) and a warning in the
log; the live stream goes on.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from neurogate_client.wire import HEADER_SIZE, KIND_RAW, decode_header
from sqlmodel import Session

from neurogate.consent.models import Recording, utcnow
from neurogate.errors import NeurogateError
from neurogate.gateway.state import Gateway
from neurogate.recordings import (
    Keyring,
    RecordingError,
    SegmentData,
    SegmentStore,
    write_segment,
)

log = logging.getLogger("neurogate.recording")
SAMPLE_PRODUCTS = ("raw", "filtered")
BATCH_SECONDS = 0.5  # how long delivered messages may gather before the thread takes them
# Messages taken between two releases of the GIL: the event loop (which delivers to apps)
# waits at most this much writer work (about 0.2 ms) instead of a whole batch.
YIELD_EVERY = 64


@dataclass
class _Open:
    """One recording being written: its buffers and next segment index per product."""

    subject_id: str
    channel_names: tuple[str, ...]
    rates: dict[str, float]  # sample products: the delivered rate
    # Per product: decoded (t, data, labels, columns) of JSON messages, or the binary
    # frames themselves (decoded together when their segment is cut).
    buffers: dict[str, list[Any]] = field(default_factory=dict)
    first_t: dict[str, float] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)
    segments: int = 0
    failed: bool = False


_STOP = object()


class RecordingWriter:
    """Writes the segments of every live recording of this process, from one thread."""

    def __init__(self, gateway: Gateway, *, store: SegmentStore, keyring: Keyring,
                 segment_seconds: float,
                 on_failed: Callable[[str], None] | None = None,
                 reload_keyring: Callable[[], Keyring | None] | None = None) -> None:
        self.gateway = gateway
        self.reload_keyring = reload_keyring  # after `neurogate keys rotate` meanwhile
        self._stamp: int | None = None
        self.store = store
        self.keyring = keyring
        self.segment_seconds = segment_seconds
        self.on_failed = on_failed
        self._queue: collections.deque[tuple[str, object]] = collections.deque()
        self._wake = threading.Event()  # set for what must not wait for the next batch
        self._open: dict[str, _Open] = {}
        # Segments cut and not yet written: (recording id, its state, index, segment).
        self._due: list[tuple[str, _Open, int, SegmentData]] = []
        self._thread: threading.Thread | None = None
        self.idle = threading.Event()

    # -- called from the event loop ------------------------------------------------
    def put(self, recording_id: str, message: str | bytes) -> None:
        self._queue.append((recording_id, message))  # deque.append is thread-safe

    def _control(self, recording_id: str, item: object) -> None:
        self._queue.append((recording_id, item))
        self._wake.set()

    def open(self, recording_id: str, *, subject_id: str, channel_names: tuple[str, ...],
             rates: dict[str, float]) -> None:
        self._control(recording_id, _Open(subject_id, channel_names, rates))

    def finish(self, recording_id: str, reason: str) -> None:
        self._control(recording_id, ("finish", reason))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="neurogate-recording",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish every open recording (reason ``gateway_stop``) and end the thread."""
        self._control("", _STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (for tests and shutdown)."""
        done = threading.Event()
        self._control("", done)
        return done.wait(timeout)

    # -- the writer thread ---------------------------------------------------------
    def _run(self) -> None:
        pending = self._queue
        while True:
            self._wake.wait(BATCH_SECONDS)
            self._wake.clear()
            taken = 0
            while pending:
                taken += 1
                if taken % YIELD_EVERY == 0:
                    time.sleep(0)  # let the event loop have the GIL: no long stall of it
                recording_id, item = pending.popleft()
                if item is _STOP:
                    for rid in list(self._open):
                        self._finish(rid, "gateway_stop")
                    return
                if isinstance(item, threading.Event):
                    self._write_due()
                    item.set()
                    continue
                try:
                    self._handle(recording_id, item)
                except Exception:  # never let one recording end the writer of all
                    log.exception("recording %s: unexpected writer failure", recording_id)
                    self._fail(recording_id, "write_failed")
            try:
                self._write_due()
            except Exception:  # as above: the writer goes on for the others
                log.exception("recordings: unexpected failure writing segments")

    def _handle(self, recording_id: str, item: object) -> None:
        if isinstance(item, _Open):
            self._open[recording_id] = item
            return
        if isinstance(item, tuple):
            self._finish(recording_id, item[1])
            return
        current = self._open.get(recording_id)
        if current is None or current.failed:
            return
        if isinstance(item, bytes):
            self._take_frame(recording_id, current, item)
            return
        decoded = self._decode(current, item)  # type: ignore[arg-type]
        if decoded is None:
            return
        product, t, data, labels, columns = decoded
        buffer = current.buffers.setdefault(product, [])
        if not buffer:
            current.first_t[product] = float(t[0])
        buffer.append((t, data, labels, columns))
        if float(t[-1]) - current.first_t[product] >= self.segment_seconds:
            self._flush(recording_id, current, product)

    def _take_frame(self, recording_id: str, current: _Open, frame: bytes) -> None:
        """Keep a binary sample frame as it is; only its header is read now."""
        header = decode_header(frame)
        if header.n_channels != len(current.channel_names):
            return  # not the layout this recording was opened with: not its stream
        product = "raw" if header.kind == KIND_RAW else "filtered"
        buffer = current.buffers.setdefault(product, [])
        if not buffer:
            current.first_t[product] = header.timestamp
        buffer.append(frame)
        last = header.timestamp + (header.n_samples - 1) / current.rates[product]
        if last - current.first_t[product] >= self.segment_seconds:
            self._flush(recording_id, current, product)

    @staticmethod
    def _frames_segment(current: _Open, product: str, frames: list[bytes]) -> SegmentData:
        """One segment of consecutive binary frames, decoded in one go."""
        headers = [decode_header(frame) for frame in frames]
        counts = np.array([h.n_samples for h in headers])
        starts = np.array([h.timestamp for h in headers])
        payload = b"".join(memoryview(frame)[HEADER_SIZE:] for frame in frames)
        n_channels = len(current.channel_names)
        data = np.frombuffer(payload, dtype="<f4").reshape(-1, n_channels).T
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        t = np.repeat(starts, counts) + within / current.rates[product]
        return SegmentData(product, t, np.ascontiguousarray(data), current.channel_names, ())

    @staticmethod
    def _decode(current: _Open, message: str
                ) -> tuple[str, np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]] | None:
        body = json.loads(message)
        if body.get("type") != "data":
            return None
        data = np.asarray(body["data"], dtype=np.float64)
        product = body["product"]
        labels, columns = tuple(body["labels"]), tuple(body["columns"])
        if product in SAMPLE_PRODUCTS:  # JSON sample frames: (labels, samples)
            rate = current.rates[product]
            t = body["t"] + np.arange(data.shape[-1]) / rate
            return product, t, data.reshape(len(labels), -1), labels, ()
        return product, np.array([body["t"]]), data.reshape(1, len(labels), -1), labels, columns

    def _flush(self, recording_id: str, current: _Open, product: str) -> None:
        buffer = current.buffers.pop(product, [])
        if not buffer:
            return
        time.sleep(0)  # a segment is the writer's largest piece of work: let the loop in first
        if isinstance(buffer[0], bytes):
            segment = self._frames_segment(current, product, buffer)
        else:
            axis = 1 if product in SAMPLE_PRODUCTS else 0
            segment = SegmentData(product, np.concatenate([b[0] for b in buffer]),
                                  np.concatenate([b[1] for b in buffer], axis=axis),
                                  buffer[0][2], buffer[0][3])
        index = current.index.get(product, 0)
        current.index[product] = index + 1
        self._due.append((recording_id, current, index, segment))

    def _write_due(self) -> None:
        """Write every segment cut since the last call, in one transaction: a transaction
        per segment cost the event loop more (in the GIL) than the writing itself."""
        due = [d for d in self._due if not d[1].failed]
        self._due = []
        if not due:
            return
        self._refresh()
        failed: dict[str, str] = {}
        written: list[_Open] = []
        try:
            with self.gateway.transaction() as session:
                for recording_id, current, index, segment in due:
                    if recording_id in failed or current.failed:
                        continue
                    recording = session.get(Recording, recording_id)
                    if recording is None or recording.stopped_at is not None:
                        current.failed = True  # erased or stopped meanwhile: keep nothing
                        continue
                    try:
                        self._write_one(session, recording, index, segment)
                    except (OSError, RecordingError) as exc:
                        failed[recording_id] = type(exc).__name__
                        continue
                    written.append(current)
        except NeurogateError as exc:  # the store: nothing of this batch was stored
            failed.update({d[0]: exc.code for d in due if d[0] not in failed})
            written = []
        for current in written:
            current.segments += 1
        for recording_id, why in failed.items():
            log.warning("recording %s stopped: writing a segment failed (%s)", recording_id,
                        why)
            self._fail(recording_id, "write_failed")

    def _write_one(self, session: Session, recording: Recording, index: int,
                   segment: SegmentData) -> None:
        try:
            write_segment(session=session, store=self.store, keyring=self.keyring,
                          recording=recording, index=index, segment=segment)
        except RecordingError:
            fresh = self.reload_keyring() if self.reload_keyring is not None else None
            if fresh is None or fresh.keys == self.keyring.keys:
                raise
            self.keyring = fresh  # the key file was rotated while recording: retry
            write_segment(session=session, store=self.store, keyring=self.keyring,
                          recording=recording, index=index, segment=segment)

    def _refresh(self) -> None:
        """Reload the keyring when its key file changed (a rotation), so that no data key
        is ever wrapped under a key-encryption key that was destroyed."""
        path = self.keyring.path
        if path is None or self.reload_keyring is None:
            return
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return
        if stamp != self._stamp:
            self._stamp = stamp
            fresh = self.reload_keyring()
            if fresh is not None:
                self.keyring = fresh

    def _finish(self, recording_id: str, reason: str) -> None:
        current = self._open.get(recording_id)
        if current is None:
            return
        if not current.failed:
            for product in list(current.buffers):
                self._flush(recording_id, current, product)
            self._write_due()
        if not current.failed:
            self._close(recording_id, reason, current.segments)
        self._open.pop(recording_id, None)

    def _fail(self, recording_id: str, reason: str) -> None:
        current = self._open.get(recording_id)
        if current is None or current.failed:
            return
        current.failed = True
        current.buffers.clear()
        self._close(recording_id, reason, current.segments)
        if self.on_failed is not None:
            self.on_failed(recording_id)

    def _close(self, recording_id: str, reason: str, segments: int) -> None:
        try:
            with self.gateway.transaction() as session:
                recording = session.get(Recording, recording_id)
                if recording is None or recording.stopped_at is not None:
                    return
                recording.stopped_at = utcnow()
                recording.stop_reason = reason
                session.add(recording)
                self.gateway.ledger.append(
                    session, action="recording.stop", concerns=recording.subject_id,
                    recording=recording_id, segments=segments, reason_code=reason)
        except NeurogateError as exc:
            log.warning("recording %s: its stop was not stored (%s)", recording_id, exc.code)


__all__ = ["RecordingWriter"]
