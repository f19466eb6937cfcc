"""Recording live streams where a consent's purpose keeps data (docs/recordings.md).

The recorder is one more subscriber of the stream hub, built exactly like an app's:
one ``RecorderSubscription`` per active consent whose purpose is recorded, decided by
the same ``decide_grant`` and paused, re-decided and revoked by the same consent
machinery. So a pause stops recording at once, and a revocation, an expiry, an erasure
or a store outage ends it: the hub calls ``end`` and the recording is closed. What it
receives goes to the ``RecordingWriter``'s process, never written on the event loop.

``keep`` watches the hub's live streams (a cheap look every ``POLL_SECONDS``): each live
stream gets a recorder per recorded consent of its subject (the consents are read when
the stream opens, when the hub has seen a consent change of the subject since, and at
the latest every ``RESCAN_SECONDS``), which takes that stream's frames only, so two
devices of one subject streaming at once make two recordings. When the stream ends, its
recorders end. It also runs the retention sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session, select

from neurogate.consent.models import Consent, Recording, Subject
from neurogate.errors import NeurogateError
from neurogate.gateway import egress
from neurogate.gateway.recording_writer import RecordingWriter
from neurogate.gateway.state import Gateway
from neurogate.gateway.streams import Grant, LiveStream, Subscription, target_resolution
from neurogate.recordings import (
    Keyring,
    SegmentStore,
    delete_recording,
    load_keyring,
    load_rules,
    shred,
    sweep,
)

log = logging.getLogger("neurogate.recording")
POLL_SECONDS = 0.2  # how often the hub's live streams are looked at
# How often a live stream's consents are read again with no change of the subject seen
# (a change of an app or a device, e.g. an app reinstated, is not a subject change).
RESCAN_SECONDS = 30.0


@dataclass
class RecorderSubscription(Subscription):
    """A subscription whose messages go to the recording writer, not to a socket."""

    writer: RecordingWriter | None = None
    recording_id: str = ""
    stream_id: str = ""
    consent_id: str = ""
    finished: bool = field(default=False)
    internal: bool = True  # not an app: not counted in what apps received

    def enqueue(self, message: str | bytes) -> None:
        self.writer.put(self.recording_id, message)  # type: ignore[union-attr]

    def end(self, code: int, message: dict[str, Any]) -> None:
        super().end(code, message)
        self.finish(str(message.get("reason") or message.get("code") or "ended"))

    def finish(self, reason: str) -> None:
        if not self.finished:
            self.finished = True
            self.open = False
            self.writer.finish(self.recording_id, reason)  # type: ignore[union-attr]


def segment_store(gateway: Gateway) -> SegmentStore:
    """Where this gateway keeps segment files."""
    return SegmentStore(gateway.settings.data_dir / "recordings")


def keyring_of(gateway: Gateway) -> Keyring | None:
    """The configured key-encryption keys (None: recording is off)."""
    settings = gateway.settings
    secret = settings.recording_kek.get_secret_value() if settings.recording_kek else None
    return load_keyring(kek_file=settings.recording_kek_file, kek=secret,
                        data_dir=settings.data_dir, key_dir=settings.recording_key_dir)


def shredder(gateway: Gateway) -> Any:
    """The ``shred`` collaborator of ``rights.erase``: deletes a subject's wrapped data key
    (a no-op returning False when recording is off)."""
    keyring = keyring_of(gateway)

    def shred_key(subject_id: str) -> bool:
        return keyring is not None and shred(keyring, subject_id)

    return shred_key


def remove_files(gateway: Gateway, recording_ids: list[str]) -> None:
    """Delete the segment files of recordings whose rows are gone (after the commit)."""
    store = segment_store(gateway)
    for recording_id in recording_ids:
        store.remove(recording_id)


def sweep_retention(gateway: Gateway, now: Any = None) -> int:
    """Delete every recording that is due (rows, then files); returns how many."""
    with gateway.transaction() as session:
        found = sweep(session=session, ledger=gateway.ledger, delete=delete_recording,
                      now=now)
    remove_files(gateway, [d.recording_id for d in found])
    return len(found)


@dataclass
class _Plan:
    consent_id: str
    app_id: str
    purpose_id: str
    grant: Grant
    mark: tuple[int, int]
    recording_id: str


class Recorders:
    """The recorders of one gateway process."""

    def __init__(self, gateway: Gateway, keyring: Keyring) -> None:
        self.gateway = gateway
        self.writer = RecordingWriter(
            gateway, store=segment_store(gateway), keyring=keyring,
            segment_seconds=gateway.settings.recording_segment_seconds,
            on_failed=self._failed)
        self.active: dict[tuple[str, str], RecorderSubscription] = {}  # (stream, consent)
        # stream id -> (monotonic time of its last scan, the subject's change mark then)
        self._scanned: dict[str, tuple[float, int]] = {}
        self._done: set[tuple[str, str]] = set()  # (stream, consent) recorded and ended
        self.rules = load_rules()

    def _failed(self, recording_id: str) -> None:  # the writer's receiving thread
        loop = self.gateway.loop
        for sub in list(self.active.values()):
            if sub.recording_id == recording_id and loop is not None:
                loop.call_soon_threadsafe(sub.finish, "write_failed")

    def _plan(self, stream: LiveStream, skip: set[str]) -> list[_Plan]:
        """Decide, for each recorded consent of the stream's subject (worker thread)."""
        gateway = self.gateway
        with gateway.transaction() as session:
            consents = [(c.id, c.app_id, c.purpose_id) for c in session.exec(
                select(Consent).where(Consent.subject_id == stream.subject_id,
                                      Consent.status == "active")).all()
                        if c.id not in skip and self.rules.records(c.purpose_id)]
        plans = []
        for consent_id, app_id, purpose_id in consents:
            mark = gateway.hub.change_mark(stream.subject_id, app_id)
            try:
                outcome = egress.decide_grant(gateway, app_id=app_id,
                                              subject_id=stream.subject_id,
                                              purpose_id=purpose_id)
            except NeurogateError:
                continue
            if not isinstance(outcome, Grant):
                continue
            plans.append(_Plan(consent_id, app_id, purpose_id, outcome, mark,
                               self._start(stream, consent_id, app_id, purpose_id)))
        return plans

    def _start(self, stream: LiveStream, consent_id: str, app_id: str, purpose_id: str) -> str:
        gateway = self.gateway
        with gateway.transaction() as session:
            subject = session.get(Subject, stream.subject_id)
            assert subject is not None
            recording = Recording(
                subject_id=subject.id, app_id=app_id, consent_id=consent_id,
                purpose_id=purpose_id, device_id=stream.device_id,
                channel_names=list(stream.hello.channel_names),
                sampling_rate=float(stream.hello.sampling_rate))
            recording.keep_until = self.rules.keep_until(
                purpose_id=purpose_id, subject=subject, start=recording.started_at)
            session.add(recording)
            gateway.ledger.append(session, action="recording.start", concerns=subject.id,
                                  recording=recording.id, app=app_id, consent=consent_id,
                                  purpose=purpose_id, device=stream.device_id)
            return recording.id

    def _attach(self, stream: LiveStream, plan: _Plan) -> None:
        rates = {}
        for product in ("raw", "filtered"):
            native = stream.pipeline.resolutions.get(product)
            allowed = plan.grant.products.get(product)
            if native is not None and allowed is not None:
                rates[product] = target_resolution(allowed, native).output_rate_hz
        sub = RecorderSubscription(
            id=f"recorder-{plan.recording_id}", app_id=plan.app_id,
            subject_id=stream.subject_id, pseudonym="recorder", purpose_id=plan.purpose_id,
            binary=True, grant=plan.grant, writer=self.writer, recording_id=plan.recording_id,
            stream_id=stream.id, consent_id=plan.consent_id, stream_only=stream.id)
        self.writer.open(plan.recording_id, subject_id=stream.subject_id,
                         channel_names=tuple(stream.hello.channel_names), rates=rates)
        self.active[(stream.id, plan.consent_id)] = sub
        generation = self.gateway.hub.subscribe(sub, plan.mark)
        if generation is not None:
            egress.spawn_reevaluation(self.gateway, sub, generation)

    def _detach(self, sub: RecorderSubscription, reason: str) -> None:
        sub.finish(reason)
        self._done.add((sub.stream_id, sub.consent_id))  # not again for this stream
        self.gateway.hub.unsubscribe(sub)
        self.active.pop((sub.stream_id, sub.consent_id), None)

    async def tick(self) -> None:
        """Start and end recorders to match the hub's live streams."""
        hub = self.gateway.hub
        live = {stream.id: stream for stream in list(hub.streams.values())}
        for sub in list(self.active.values()):
            if sub.finished or sub.closing is not None:
                self._detach(sub, "ended")
            elif sub.stream_id not in live:
                self._detach(sub, "stream_ended")
        now = time.monotonic()
        for stream in live.values():
            mark = hub.changes.get(("subject", stream.subject_id), 0)
            scanned_at, scanned_mark = self._scanned.get(stream.id, (-1e9, -1))
            if mark == scanned_mark and now - scanned_at < RESCAN_SECONDS:
                continue
            self._scanned[stream.id] = (now, mark)
            skip = {c for s, c in self.active if s == stream.id}
            skip |= {c for s, c in self._done if s == stream.id}
            try:
                plans = await run_in_threadpool(self._plan, stream, skip)
            except NeurogateError as exc:
                log.warning("recorders not started: %s", exc.code)
                continue
            for plan in plans:
                if hub.streams.get(stream.device_id) is stream:
                    self._attach(stream, plan)
                else:
                    self.writer.open(plan.recording_id, subject_id=stream.subject_id,
                                     channel_names=(), rates={})
                    self.writer.finish(plan.recording_id, "stream_ended")
        for stream_id in list(self._scanned):
            if stream_id not in live:
                del self._scanned[stream_id]
        self._done = {(s, c) for s, c in self._done if s in live}

    def close(self) -> None:
        for sub in list(self.active.values()):
            self._detach(sub, "gateway_stop")
        self.writer.stop()


async def keep(gateway: Gateway) -> None:
    """Record what may be kept, and sweep what is due, while the gateway runs."""
    settings = gateway.settings
    try:
        keyring = keyring_of(gateway) if settings.recording_enabled else None
    except NeurogateError as exc:  # e.g. a key file inside the data directory
        log.warning("recording is off: %s", exc.message)
        keyring = None
    recorders = Recorders(gateway, keyring) if keyring is not None else None
    if recorders is None:
        log.info("recording is off (no key-encryption key configured, or disabled)")
    else:
        recorders.writer.start()
    swept_at = 0.0
    try:
        while True:
            if recorders is not None:
                await recorders.tick()
            if time.monotonic() - swept_at >= settings.retention_sweep_seconds:
                swept_at = time.monotonic()
                try:
                    removed = await run_in_threadpool(sweep_retention, gateway)
                    if removed:
                        log.info("retention sweep deleted %d recordings", removed)
                except NeurogateError as exc:
                    log.warning("retention sweep failed: %s", exc.code)
            await asyncio.sleep(POLL_SECONDS)
    finally:
        if recorders is not None:
            with contextlib.suppress(Exception):
                await run_in_threadpool(recorders.close)


def recording_ids_of(session: Session, subject_id: str) -> list[str]:
    return list(session.exec(select(Recording.id).where(Recording.subject_id == subject_id)))


__all__ = ["RecorderSubscription", "Recorders", "keep", "keyring_of", "remove_files",
           "segment_store", "shredder", "sweep_retention"]
