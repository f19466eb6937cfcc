"""The recording writer: a process of its own turns delivered messages into encrypted
segments, so that recording neither runs on the event loop nor competes with it for the
interpreter (a writer thread in the gateway's process held the GIL while it decoded and
wrote, and every live stream waited for it).

The event loop only appends ``(recording id, message)`` to an unbounded deque, without
waking anything. A courier thread ships what has gathered every ``BATCH_SECONDS`` (at
once for an open, a finish, a stop or a drain) to the recording process over a pipe, in
one message; the process (``neurogate.recordings.segmenter``) cuts, encrypts and writes
the segments and their rows. A receiving thread applies what the process reports: a
recording that stopped gets its ``recording.stop`` ledger leaf here, in the gateway
(``reason_code`` ``write_failed`` when a write failed: a full disk, a missing directory,
a lost key; then a warning in the log and ``on_failed``, and the live stream goes on).
If the recording process dies, every recording it had open stops the same way.
"""

from __future__ import annotations

import collections
import itertools
import logging
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

from sqlmodel import func, select

from neurogate.consent.models import Recording, RecordingSegment, utcnow
from neurogate.errors import NeurogateError
from neurogate.gateway.state import Gateway
from neurogate.recordings import Keyring, SegmentStore
from neurogate.recordings.segmenter import Open, SegmenterConfig, serve

log = logging.getLogger("neurogate.recording")
BATCH_SECONDS = 0.5  # how long delivered messages may gather before they are shipped
_STOP = ("stop",)


class RecordingWriter:
    """Writes the segments of every live recording of this gateway process."""

    def __init__(self, gateway: Gateway, *, store: SegmentStore, keyring: Keyring,
                 segment_seconds: float,
                 on_failed: Callable[[str], None] | None = None) -> None:
        self.gateway = gateway
        self.on_failed = on_failed
        self._config = SegmenterConfig(
            database_url=gateway.engine.url.render_as_string(hide_password=False),
            store_root=store.root, keyring=keyring, segment_seconds=segment_seconds)
        self._queue: collections.deque[tuple[str, object]] = collections.deque()
        self._wake = threading.Event()  # set for what must not wait for the next batch
        self._opened: set[str] = set()  # opened and not reported stopped
        self._drains: dict[int, threading.Event] = {}
        self._tokens = itertools.count()
        self._process: Any = None
        self._gone = False  # the recording process ended without being asked
        self._threads: list[threading.Thread] = []

    # -- called from the event loop ------------------------------------------------
    def put(self, recording_id: str, message: str | bytes) -> None:
        self._queue.append((recording_id, message))  # deque.append is thread-safe

    def _control(self, recording_id: str, item: object) -> None:
        self._queue.append((recording_id, item))
        self._wake.set()

    def open(self, recording_id: str, *, subject_id: str, channel_names: tuple[str, ...],
             rates: dict[str, float]) -> None:
        self._opened.add(recording_id)
        self._control(recording_id, Open(subject_id, channel_names, rates))

    def finish(self, recording_id: str, reason: str) -> None:
        self._control(recording_id, ("finish", reason))

    def start(self) -> None:
        """Start the recording process (a fresh interpreter: never a fork of a process
        with threads) and the two threads that talk to it."""
        context = multiprocessing.get_context("spawn")
        inbox_out, inbox_in = context.Pipe(duplex=False)
        events_in, events_out = context.Pipe(duplex=False)
        self._process = context.Process(target=serve, args=(inbox_out, events_out,
                                                            self._config),
                                        name="neurogate-recording", daemon=True)
        self._process.start()
        inbox_out.close()
        events_out.close()
        self._threads = [
            threading.Thread(target=self._ship, args=(inbox_in,), daemon=True,
                             name="neurogate-recording-courier"),
            threading.Thread(target=self._receive, args=(events_in,), daemon=True,
                             name="neurogate-recording-events")]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish every open recording (reason ``gateway_stop``) and end the process."""
        self._control("", _STOP)
        for thread in self._threads:
            thread.join(timeout)
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():
                self._process.kill()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (for tests and shutdown)."""
        if self._gone:
            return False
        token = next(self._tokens)
        done = self._drains[token] = threading.Event()
        self._control("", ("drain", token))
        return done.wait(timeout)

    # -- the courier and the receiver ----------------------------------------------
    def _ship(self, pipe: Any) -> None:
        pending = self._queue
        while True:
            self._wake.wait(BATCH_SECONDS)
            self._wake.clear()
            batch = []
            while pending:
                batch.append(pending.popleft())
            if not batch:
                continue
            try:
                pipe.send(batch)
            except (OSError, ValueError):  # the process is gone: the receiver stops all
                return
            if any(item == _STOP for _, item in batch):
                return

    def _receive(self, pipe: Any) -> None:
        while True:
            try:
                events = pipe.recv()
            except (EOFError, OSError):
                self._lost()
                return
            for event in events:
                if event[0] == "ended":
                    return
                if event[0] == "drained":
                    done = self._drains.pop(event[1], None)
                    if done is not None:
                        done.set()
                    continue
                _, recording_id, reason, why = event
                self._stopped(recording_id, reason, why)

    def _lost(self) -> None:
        """The recording process ended without being asked: stop what it had open."""
        self._gone = True
        if self._opened:
            log.warning("the recording process ended: %d recordings stopped",
                        len(self._opened))
        for recording_id in list(self._opened):
            self._stopped(recording_id, "write_failed", "recording process ended")
        for done in list(self._drains.values()):
            done.set()

    def _stopped(self, recording_id: str, reason: str, why: str | None) -> None:
        self._opened.discard(recording_id)
        self._close(recording_id, reason)
        if why is not None:
            log.warning("recording %s stopped: writing a segment failed (%s)", recording_id,
                        why)
            if self.on_failed is not None:
                self.on_failed(recording_id)

    def _close(self, recording_id: str, reason: str) -> None:
        try:
            with self.gateway.transaction() as session:
                recording = session.get(Recording, recording_id)
                if recording is None or recording.stopped_at is not None:
                    return
                segments = session.exec(select(func.count()).select_from(RecordingSegment)
                                        .where(RecordingSegment.recording_id == recording_id)
                                        ).one()
                recording.stopped_at = utcnow()
                recording.stop_reason = reason
                session.add(recording)
                self.gateway.ledger.append(
                    session, action="recording.stop", concerns=recording.subject_id,
                    recording=recording_id, segments=int(segments), reason_code=reason)
        except NeurogateError as exc:
            log.warning("recording %s: its stop was not stored (%s)", recording_id, exc.code)


__all__ = ["RecordingWriter"]
