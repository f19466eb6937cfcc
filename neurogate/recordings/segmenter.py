"""Cutting delivered messages into encrypted segments: the work of the recording process.

The gateway's recording writer (``neurogate.gateway.recording_writer``) starts one process
that runs ``serve``: it receives batches of ``(recording id, item)`` over a pipe, where an
item is a delivered message (a binary sample frame of the wire protocol for raw and
filtered, a JSON ``data`` message for the other products) or a control item (``Open``,
``("finish", reason)``, ``("drain", token)``, ``("stop",)``). The process decodes the
messages, cuts ``segment_seconds`` of each product into one segment, encrypts it under
the subject's data key, writes its file and then its row. It reports back, per batch, the
recordings that stopped (``("stopped", recording id, reason, why)``) and the drains that
are done; the gateway writes the ``recording.stop`` ledger leaf, so the ledger has one
writer per gateway process.

A batch's segments are written in three steps so that the store's write lock is never
held while files are written: one transaction checks that each recording still exists
and reads its subject's data key (made on first use); the files are written outside any
transaction; a second transaction stores their rows, and the files of a recording erased
or stopped meanwhile are deleted again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from neurogate_client.wire import HEADER_SIZE, KIND_RAW, decode_header
from sqlalchemy.engine import Engine

from neurogate.consent.db import get_engine, session_scope
from neurogate.consent.models import Recording
from neurogate.consent.purposes import SAMPLE_PRODUCTS
from neurogate.errors import NeurogateError
from neurogate.recordings.crypto import Keyring, RecordingError, parse_keyring
from neurogate.recordings.keys import data_key
from neurogate.recordings.store import SegmentData, SegmentStore, seal_segment, segment_row

log = logging.getLogger("neurogate.recording")
NICENESS = 10  # the recording process yields the CPU to the gateway's event loop


@dataclass
class Open:
    """One recording being written: its buffers and next segment index per product."""

    subject_id: str
    channel_names: tuple[str, ...]
    rates: dict[str, float]  # sample products: the delivered rate
    # Per product: decoded (t, data, labels, columns) of JSON messages, or the binary
    # frames themselves (decoded together when their segment is cut).
    buffers: dict[str, list[Any]] = field(default_factory=dict)
    first_t: dict[str, float] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)
    failed: bool = False


@dataclass(frozen=True)
class SegmenterConfig:
    """What the recording process needs: where the store, the files and the keys are."""

    database_url: str
    store_root: Path
    keyring: Keyring
    segment_seconds: float


@dataclass
class _Due:
    recording_id: str
    current: Open
    index: int
    segment: SegmentData


class Segmenter:
    """Every live recording of one gateway process, cut and written from one thread."""

    def __init__(self, engine: Engine, store: SegmentStore, keyring: Keyring,
                 segment_seconds: float) -> None:
        self.engine = engine
        self.store = store
        self.keyring = keyring
        self.segment_seconds = segment_seconds
        self.open: dict[str, Open] = {}
        self._due: list[_Due] = []
        self._stamp: int | None = None
        self.events: list[tuple[Any, ...]] = []  # for the gateway, sent after each batch

    # -- messages --------------------------------------------------------------------
    def take(self, recording_id: str, item: object) -> None:
        """One item of a batch (a message or a control item)."""
        if isinstance(item, Open):
            self.open[recording_id] = item
            return
        if isinstance(item, tuple):
            if item[0] == "finish":
                self.finish(recording_id, item[1])
            elif item[0] == "drain":
                self.write_due()
                self.events.append(("drained", item[1]))
            return
        current = self.open.get(recording_id)
        if current is None or current.failed:
            return
        try:
            if isinstance(item, bytes):
                self._take_frame(recording_id, current, item)
            else:
                self._take_json(recording_id, current, item)  # type: ignore[arg-type]
        except Exception as exc:  # a malformed message must not end the writer of all
            log.exception("recording %s: a delivered message could not be read",
                          recording_id)
            self.fail(recording_id, type(exc).__name__)

    def _take_frame(self, recording_id: str, current: Open, frame: bytes) -> None:
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
            self._cut(recording_id, current, product)

    def _take_json(self, recording_id: str, current: Open, message: str) -> None:
        body = json.loads(message)
        if body.get("type") != "data":
            return
        data = np.asarray(body["data"], dtype=np.float64)
        product = body["product"]
        labels, columns = tuple(body["labels"]), tuple(body["columns"])
        if product in SAMPLE_PRODUCTS:  # JSON sample frames: (labels, samples)
            t = body["t"] + np.arange(data.shape[-1]) / current.rates[product]
            data, columns = data.reshape(len(labels), -1), ()
        else:
            t, data = np.array([body["t"]]), data.reshape(1, len(labels), -1)
        buffer = current.buffers.setdefault(product, [])
        if not buffer:
            current.first_t[product] = float(t[0])
        buffer.append((t, data, labels, columns))
        if float(t[-1]) - current.first_t[product] >= self.segment_seconds:
            self._cut(recording_id, current, product)

    @staticmethod
    def _frames_segment(current: Open, product: str, frames: list[bytes]) -> SegmentData:
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

    def _cut(self, recording_id: str, current: Open, product: str) -> None:
        buffer = current.buffers.pop(product, [])
        if not buffer:
            return
        if isinstance(buffer[0], bytes):
            segment = self._frames_segment(current, product, buffer)
        else:
            axis = 1 if product in SAMPLE_PRODUCTS else 0
            segment = SegmentData(product, np.concatenate([b[0] for b in buffer]),
                                  np.concatenate([b[1] for b in buffer], axis=axis),
                                  buffer[0][2], buffer[0][3])
        index = current.index.get(product, 0)
        current.index[product] = index + 1
        self._due.append(_Due(recording_id, current, index, segment))

    # -- writing ---------------------------------------------------------------------
    def write_due(self) -> None:
        """Write every segment cut since the last call (see the module's docstring)."""
        due = [d for d in self._due if not d.current.failed]
        self._due = []
        if not due:
            return
        self._refresh()
        keys = self._keys(due)
        written: list[tuple[_Due, Any]] = []
        for item in due:
            if item.current.failed or item.recording_id not in keys:
                continue
            key, version = keys[item.recording_id]
            try:
                nonce, sealed = seal_segment(key, version, item.recording_id, item.index,
                                             item.segment)
                self.store.write(self.store.path(item.recording_id, item.segment.product,
                                                 item.index), sealed)
            except OSError as exc:
                self.fail(item.recording_id, type(exc).__name__)
                continue
            written.append((item, segment_row(
                recording_id=item.recording_id, subject_id=item.current.subject_id,
                index=item.index, segment=item.segment, version=version, nonce=nonce,
                sealed=sealed)))
        self._store_rows(written)

    def _keys(self, due: list[_Due]) -> dict[str, tuple[bytes, int]]:
        """The data key of each live recording in ``due`` (a recording erased or stopped
        meanwhile keeps nothing more; one whose key cannot be had fails)."""
        keys: dict[str, tuple[bytes, int]] = {}
        failed: dict[str, str] = {}
        try:
            with session_scope(self.engine) as session:
                for recording_id, current in {d.recording_id: d.current for d in due}.items():
                    recording = session.get(Recording, recording_id)
                    if recording is None or recording.stopped_at is not None:
                        current.failed = True  # erased or stopped meanwhile: no stop leaf
                        continue
                    try:
                        keys[recording_id] = self._data_key(session, current.subject_id)
                    except (OSError, RecordingError) as exc:
                        failed[recording_id] = type(exc).__name__
        except NeurogateError as exc:  # the store: nothing of this batch is written
            failed.update({d.recording_id: exc.code for d in due})
            keys = {}
        for recording_id, why in failed.items():
            self.fail(recording_id, why)
        return keys

    def _data_key(self, session: Any, subject_id: str) -> tuple[bytes, int]:
        try:
            return data_key(session, self.keyring, subject_id, create=True)
        except RecordingError:
            if not self._reload():  # the key file was rotated while recording: retry
                raise
            return data_key(session, self.keyring, subject_id, create=True)

    def _store_rows(self, written: list[tuple[_Due, Any]]) -> None:
        if not written:
            return
        gone: set[str] = set()
        try:
            with session_scope(self.engine) as session:
                live = {rid for rid in {item.recording_id for item, _ in written}
                        if (r := session.get(Recording, rid)) is not None
                        and r.stopped_at is None}
                for item, row in written:
                    if item.recording_id in live and not item.current.failed:
                        session.add(row)
                    else:
                        gone.add(item.recording_id)
        except NeurogateError as exc:  # the rows are not stored: neither are the files
            for item, _ in written:
                self._remove_file(item)
                self.fail(item.recording_id, exc.code)
            return
        for item, _ in written:
            if item.recording_id in gone:
                item.current.failed = True  # erased or stopped meanwhile: keep nothing
                self._remove_file(item)

    def _remove_file(self, item: _Due) -> None:
        path = self.store.path(item.recording_id, item.segment.product, item.index)
        path.unlink(missing_ok=True)

    def _refresh(self) -> None:
        """Read the key file again when it changed (a rotation), so that no data key is
        ever wrapped under a key-encryption key that was destroyed."""
        path = self.keyring.path
        if path is None:
            return
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return
        if stamp != self._stamp:
            self._stamp = stamp
            self._reload()

    def _reload(self) -> bool:
        """True when the key file now holds other keys than those in use."""
        path = self.keyring.path
        if path is None:
            return False
        try:
            fresh = parse_keyring(path.read_text(encoding="ascii"),
                                  "NEUROGATE_RECORDING_KEK_FILE", path, self.keyring.key_dir)
        except (OSError, NeurogateError):
            return False
        if fresh.keys == self.keyring.keys:
            return False
        self.keyring = fresh
        return True

    # -- ends ------------------------------------------------------------------------
    def finish(self, recording_id: str, reason: str) -> None:
        """Write what is left of a recording and report it stopped with ``reason``."""
        current = self.open.pop(recording_id, None)
        if current is None:
            return
        if not current.failed:
            for product in list(current.buffers):
                self._cut(recording_id, current, product)
            self.write_due()
        if not current.failed:
            self.events.append(("stopped", recording_id, reason, None))

    def fail(self, recording_id: str, why: str) -> None:
        """Stop a recording whose segments cannot be written (``write_failed``)."""
        current = self.open.get(recording_id)
        if current is None or current.failed:
            return
        current.failed = True
        current.buffers.clear()
        self.events.append(("stopped", recording_id, "write_failed", why))

    def finish_all(self, reason: str) -> None:
        for recording_id in list(self.open):
            self.finish(recording_id, reason)


def serve(inbox: Any, outbox: Any, config: SegmenterConfig) -> None:
    """The recording process: batches in, events out, until ``("stop",)`` or the
    gateway's end of the pipe closes (then every open recording is finished).

    It runs at a lower CPU priority than the gateway: writing may wait (the pipe and
    the gateway's buffer hold what is not yet written), the live streams may not."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: no os.nice here
        os.nice(NICENESS)
    segmenter = Segmenter(get_engine(config.database_url), SegmentStore(config.store_root),
                          config.keyring, config.segment_seconds)
    while True:
        try:
            batch = inbox.recv()
        except (EOFError, OSError):  # the gateway is gone: keep what was received
            segmenter.finish_all("gateway_stop")
            return
        for recording_id, item in batch:
            if item == ("stop",):
                segmenter.finish_all("gateway_stop")
                outbox.send([*segmenter.events, ("ended",)])
                return
            segmenter.take(recording_id, item)
        try:
            segmenter.write_due()
        except Exception:  # never let one batch end the writer of all
            log.exception("recordings: unexpected failure writing segments")
        events, segmenter.events = segmenter.events, []
        outbox.send(events)


__all__ = ["Open", "Segmenter", "SegmenterConfig", "serve"]
