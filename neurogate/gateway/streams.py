"""Live streams: one signal pipeline per device stream, fanned out to governed apps.

The per-chunk path touches no database: an app's subscription carries the decision taken
when it subscribed, and delivery is gated per chunk by cheap checks only:

- ``open``: cleared *before* any transaction that changes consent for the subject or the
  app commits, and set again only if a fresh policy decision after the commit allows;
- ``valid_until``: the consent's end (or a child's majority), checked on the wall clock;
- the store lease: renewed while the consent store answers (``egress.StoreLease``); it
  ends ``NEUROGATE_STORE_LEASE_SECONDS`` after the store last answered, or at once when a
  read fails, and then nothing leaves the gateway (fail closed).

Each product is computed once per chunk, and only while some subscription that may
receive it takes it; a product is reduced once per (stream, product, resolution), whatever
the number of apps taking it at that resolution, and each reduced frame is rendered once
per format: every subscriber gets the same bytes, with its own sequence number patched in.

A slow app has a bounded queue that drops its oldest messages, and messages that waited
longer than ``MAX_QUEUE_AGE_SECONDS``, and tells the app how many it lost; it never slows
the device or other apps.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import random
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from neurogate_client.wire import (
    KIND_DEVICE,
    KIND_FILTERED,
    KIND_RAW,
    CloseCode,
    Hello,
    ProtocolError,
    decode_header,
    decode_samples,
    encode_frame,
)

from neurogate.errors import NeurogateError, SignalError
from neurogate.signal import (
    Frame,
    Resolution,
    ResolutionReducer,
    StreamPipeline,
    design_iir_sos,
)

log = logging.getLogger("neurogate.streams")

QUEUE_LIMIT = 256  # messages per app before the oldest are dropped
ANTI_ALIAS_ORDER = 8  # StreamingFilter.lowpass's default, which ResolutionReducer uses
MAX_QUEUE_AGE_SECONDS = 1.0  # a message that waited longer for a slow app is dropped
DEFAULT_LEASE_SECONDS = 0.5  # how long one answer of the store lets data flow
RATE_TOLERANCE = 1.5  # a device may send this much faster than its declared rate...
RATE_BURST_SECONDS = 2.0  # ...plus this much data at once
SEQUENCE_MASK = 0xFFFFFFFF

ChangeKey = tuple[str, str]  # ("subject", id) or ("app", id)
# Sent before closing with 4503, on a handshake or to a live subscription.
STORE_UNAVAILABLE = {
    "type": "error", "code": "store_unavailable",
    "message": "The consent store cannot be read, so no data may flow. Connect again "
               "later, with backoff."}


@dataclass
class Grant:
    """What one subscription may receive: products and their resolutions, until when."""

    products: dict[str, Resolution]
    valid_until: float  # seconds since the Unix epoch
    reasons: tuple[str, ...] = ()
    explanations: tuple[str, ...] = ()
    consent_id: str | None = None  # the consent the decision rested on


@dataclass
class Subscription:
    """One app receiving one subject's products for one purpose."""

    id: str
    app_id: str
    subject_id: str
    pseudonym: str
    purpose_id: str
    binary: bool
    grant: Grant
    open: bool = True
    generation: int = 0
    delivered: int = 0
    dropped: int = 0
    unreported_drops: int = 0
    closing: tuple[int, dict[str, Any]] | None = None
    queue: collections.deque[str | bytes] = field(
        default_factory=lambda: collections.deque(maxlen=QUEUE_LIMIT))
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    ending: asyncio.Event = field(default_factory=asyncio.Event)  # set by `end`
    sequence: int = 0
    # When each queued message was queued (monotonic), oldest first, beside ``queue``.
    queued_at: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=QUEUE_LIMIT))
    taken_at: float = 0.0  # when the message `take` returned last was queued
    # Set: only frames of the stream with this id (a recorder records one stream; an app
    # takes every stream of its subject).
    stream_only: str | None = None

    def enqueue(self, message: str | bytes) -> None:
        """Queue a message for the app (dropping the oldest when the queue is full)."""
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
            self.unreported_drops += 1
        self.queue.append(message)
        self.queued_at.append(time.monotonic())
        self.wakeup.set()

    def take(self, max_age: float = MAX_QUEUE_AGE_SECONDS) -> str | bytes | None:
        """The next queued message that waited at most ``max_age`` seconds, or None.

        Older ones are dropped and counted for the next ``gap``, so a slow app gets recent
        data and learns what it lost, never data that is seconds late."""
        queue, born = self.queue, self.queued_at
        while len(born) > len(queue):  # messages taken from ``queue`` directly
            born.popleft()
        oldest = time.monotonic() - max_age
        stale = 0
        while born and born[0] < oldest:
            born.popleft()
            queue.popleft()
            stale += 1
        if stale:
            self.dropped += stale
            self.unreported_drops += stale
        if not queue:
            return None
        self.taken_at = born.popleft() if born else time.monotonic()
        return queue.popleft()

    def withhold(self) -> None:
        """Drop everything queued (counted for the next ``gap``)."""
        withheld = len(self.queue)
        self.queue.clear()
        self.queued_at.clear()
        self.dropped += withheld
        self.unreported_drops += withheld

    def end(self, code: int, message: dict[str, Any]) -> None:
        """Stop delivery now and ask the sender to close with ``code`` after ``message``."""
        self.open = False
        self.queue.clear()
        self.queued_at.clear()
        self.closing = (code, message)
        self.wakeup.set()
        self.ending.set()


class LiveStream:
    """One device's stream: checks frames, runs the pipeline once, feeds subscribers."""

    def __init__(self, *, device_id: str, subject_id: str, hello: Hello,
                 line_freq: float = 50.0) -> None:
        self.id = uuid.uuid4().hex
        self.device_id = device_id
        self.subject_id = subject_id
        self.hello = hello
        self.scale = hello.scale_to_volts()
        # Each stream's windows end at a phase of its own: streams started together (a
        # ward, a lab's shared trigger) would otherwise all compute their windows, the
        # costliest chunk by far, in the same turn of the event loop.
        self.pipeline = StreamPipeline(hello.channel_names, hello.channel_types,
                                       hello.sampling_rate, line_freq,
                                       window_phase=random.random())
        _warm_anti_alias_designs(hello.sampling_rate)
        self.expected_sequence: int | None = None
        self.dropped_sequence: int | None = None  # last frame dropped for its content
        self.next_time: float | None = None
        self.frames = 0
        self.samples = 0
        self.rejected = 0
        self.missing = 0  # frames that never arrived (the sum of sequence_gap notices)
        self.ended: str | None = None  # set when the device is unpaired mid-stream
        # One reducer per (product, resolution delivered), shared by the subscriptions
        # that take the product at that resolution.
        self.reducers: dict[tuple[str, Resolution], ResolutionReducer] = {}
        # Per subscription id: the grant seen and the resolution of each product it takes.
        self.targets: dict[str, tuple[Grant, dict[str, Resolution]]] = {}
        # The last chunk's groups, with the subscriptions and grants they were made from.
        self.groups: tuple[tuple[Subscription, ...], tuple[Grant, ...],
                           dict[tuple[str, Resolution], list[Subscription]]] | None = None
        self.product_order = {name: i for i, name in enumerate(self.pipeline.resolutions)}
        self._budget = hello.sampling_rate * RATE_BURST_SECONDS
        self._budget_at: float | None = None  # the budget starts refilling at frame one

    def _spend(self, n_samples: int) -> None:
        now = time.monotonic()
        rate = self.hello.sampling_rate * RATE_TOLERANCE
        cap = self.hello.sampling_rate * RATE_BURST_SECONDS * RATE_TOLERANCE
        since = 0.0 if self._budget_at is None else now - self._budget_at
        self._budget = min(cap, self._budget + since * rate) - n_samples
        self._budget_at = now
        if self._budget < 0:
            msg = (f"The device sends samples faster than {RATE_TOLERANCE:g} x its declared "
                   f"{self.hello.sampling_rate:g} Hz; slow down to real time.")
            raise ProtocolError(msg, close_code=CloseCode.RATE_EXCEEDED)

    def check(self, frame: bytes) -> tuple[np.ndarray | None, float, list[dict[str, Any]]]:
        """Check one binary frame: (samples in volts or None if dropped, t0, notices)."""
        header = decode_header(frame)
        n_channels = len(self.hello.channel_names)
        if header.kind != KIND_DEVICE:
            msg = f"Frame kind {header.kind} is not device samples (kind {KIND_DEVICE})."
            raise ProtocolError(msg, close_code=CloseCode.BAD_FRAME)
        if header.n_channels != n_channels:
            msg = (f"Frame {header.sequence} has {header.n_channels} channels; the hello "
                   f"declared {n_channels}.")
            raise ProtocolError(msg, close_code=CloseCode.BAD_FRAME)
        self._spend(header.n_samples)
        notices: list[dict[str, Any]] = []

        def drop(code: str, message: str, *, arrived: bool = True
                 ) -> tuple[None, float, list[dict[str, Any]]]:
            self.rejected += 1
            if arrived:  # it came in order, only its content was unusable: not a gap later
                self.dropped_sequence = header.sequence
            notices.append({"type": "error", "code": code, "sequence": header.sequence,
                            "message": message + " The frame was dropped."})
            return None, header.timestamp, notices

        expected = self.expected_sequence
        # Sequence numbers are uint32 and wrap around: compare modulo 2**32.
        ahead = (header.sequence - expected) & SEQUENCE_MASK if expected is not None else 0
        if ahead >= 1 << 31:
            return drop("sequence_backwards",
                        f"Frame {header.sequence} repeats or precedes frame "
                        f"{((expected or 0) - 1) & SEQUENCE_MASK}.", arrived=False)
        dropped = self.dropped_sequence
        if ahead and dropped is not None and (dropped - (expected or 0)) & SEQUENCE_MASK < ahead:
            ahead -= 1  # the frame dropped for its content did arrive
        if ahead:
            self.missing += ahead
            notices.append({"type": "error", "code": "sequence_gap", "sequence": header.sequence,
                            "missing": ahead,
                            "message": f"Frames {expected} to "
                                       f"{(header.sequence - 1) & SEQUENCE_MASK} never "
                                       f"arrived; the stream continues."})
        period = 1.0 / self.hello.sampling_rate
        if self.next_time is not None and header.timestamp < self.next_time - period:
            return drop("time_backwards",
                        f"Frame {header.sequence} starts at {header.timestamp:.6f} s, before "
                        f"the previous frame ended ({self.next_time:.6f} s).")
        samples = decode_samples(frame, header)
        finite = np.isfinite(samples)
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            return drop("non_finite",
                        f"Frame {header.sequence} has {int((~finite).sum())} NaN or infinite "
                        f"samples (first at channel {int(bad[0])}, sample {int(bad[1])}).")
        self.expected_sequence = (header.sequence + 1) & SEQUENCE_MASK
        self.dropped_sequence = None
        self.next_time = header.timestamp + header.n_samples * period
        # A new C-ordered float64 array the pipeline may keep (the samples are a view).
        return np.multiply(samples, self.scale, order="C"), header.timestamp, notices


def _warm_anti_alias_designs(sfreq: float, factors: range = range(2, 9)) -> None:
    """Design (and cache) the anti-alias low-passes of the usual rate reductions now, while
    the stream is built off the event loop, not when a reducer meets its first frame."""
    for factor in factors:
        rate = sfreq / factor
        with contextlib.suppress(NeurogateError):
            design_iir_sos(sfreq, None, 0.4 * rate, order=ANTI_ALIAS_ORDER)


def target_resolution(allowed: Resolution, native: Resolution) -> Resolution:
    """The resolution to deliver: the purpose's, never finer than the product's finest."""
    levels = ("electrodes", "regions", "global")
    channels = levels[max(levels.index(allowed.channels), levels.index(native.channels))]
    if native.window_s <= 1.0 / native.output_rate_hz * 1.0001:  # a sample product
        factor = max(1, math.ceil(native.output_rate_hz / allowed.output_rate_hz - 1e-9))
        rate = native.output_rate_hz / factor
        return Resolution(1.0 / rate, rate, channels)
    return Resolution(max(allowed.window_s, native.window_s),
                      min(allowed.output_rate_hz, native.output_rate_hz), channels)


def render_json_parts(frame: Frame) -> tuple[str, str]:
    """The JSON ``data`` message of a frame, split where the sequence number goes.

    Values are written in full precision, each float as the shortest text that reads back
    as the same number (Python's ``repr``), so band power around 1e-13 V² keeps its
    digits."""
    data = frame.data
    head = json.dumps({"type": "data", "product": frame.product},
                      separators=(",", ":"))[:-1] + ',"seq":'
    tail = json.dumps({
        "t": frame.t, "labels": list(frame.labels), "columns": list(frame.columns),
        "window_s": frame.resolution.window_s, "rate_hz": frame.resolution.output_rate_hz,
        "data": data.tolist() if data.ndim else float(data),
    }, separators=(",", ":"))
    return head, "," + tail[1:]


def render_json(frame: Frame, sequence: int) -> str:
    """A product frame as the JSON ``data`` message of the protocol."""
    head, tail = render_json_parts(frame)
    return f"{head}{sequence}{tail}"


def with_sequence(frame: bytes, sequence: int) -> bytes:
    """A binary frame with its header's sequence number replaced."""
    return b"".join((frame[:_SEQUENCE_AT], _SEQUENCE.pack(sequence & SEQUENCE_MASK),
                     frame[_SEQUENCE_AT + _SEQUENCE.size:]))


_SEQUENCE = struct.Struct("<I")
_SEQUENCE_AT = 4  # magic (2 bytes), version, kind, then the uint32 sequence
_KINDS = {"raw": KIND_RAW, "filtered": KIND_FILTERED}


class FrameExport(Protocol):
    """Where products other nodes take go (the cluster's stream bus)."""

    def wanted(self, stream: LiveStream) -> frozenset[str]: ...

    def publish(self, stream: LiveStream, batch: dict[str, list[Frame]],
                products: frozenset[str]) -> None: ...


class StreamHub:
    """Every live stream and subscription of this gateway process."""

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        self.streams: dict[str, LiveStream] = {}  # by device id
        self.subscriptions: dict[str, Subscription] = {}
        # Per subject, replaced (never mutated) on change so the hot path needs no lock.
        self.by_subject: dict[str, tuple[Subscription, ...]] = {}
        self.lease_until = 0.0  # monotonic; 0 = no successful probe yet
        # A clustered node's NATS lease (monotonic), kept by its control plane: past it the
        # node may have missed a pause, so nothing is delivered. Unbounded on one node.
        self.cluster_until = math.inf
        self._lease_dropped_at = 0.0
        # How many consent changes touched each subject or app: a subscription decided
        # before a change it did not see must be decided again.
        self.changes: dict[ChangeKey, int] = collections.defaultdict(int)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.reevaluate: Callable[[Subscription], Any] | None = None  # set by the gateway
        self.exports: FrameExport | None = None  # set by the cluster's stream bus
        self._lock = threading.Lock()
        self._now = now

    # -- gates ---------------------------------------------------------------------
    def store_ok(self) -> bool:
        """Whether the consent store answered recently enough to let data flow."""
        return time.monotonic() < self.lease_until

    def renew_lease(self, seconds: float = DEFAULT_LEASE_SECONDS, *,
                    answered_at: float | None = None) -> None:
        """Let data flow until ``seconds`` after the store answered (monotonic time).

        An answer older than the last failure renews nothing, and a lease only grows."""
        answered_at = time.monotonic() if answered_at is None else answered_at
        if answered_at > self._lease_dropped_at:
            self.lease_until = max(self.lease_until, answered_at + seconds)

    def drop_lease(self) -> None:
        """A read of the store failed: stop every delivery at once."""
        self._lease_dropped_at = time.monotonic()
        self.lease_until = 0.0

    def may_deliver(self, sub: Subscription) -> bool:
        """The per-chunk check: open, within the consent's validity, store reachable (and,
        in a cluster, NATS)."""
        return (sub.open and self._now() < sub.grant.valid_until and self.store_ok()
                and time.monotonic() < self.cluster_until)

    def matching(self, keys: Iterable[ChangeKey]) -> list[Subscription]:
        keys = set(keys)
        return [s for s in list(self.subscriptions.values())
                if ("subject", s.subject_id) in keys or ("app", s.app_id) in keys]

    def freeze(self, keys: Iterable[ChangeKey]) -> list[Subscription]:
        """Stop delivery to every subscription a pending consent change touches."""
        with self._lock:
            keys = set(keys)
            for key in keys:
                self.changes[key] += 1
            frozen = self.matching(keys)
            for sub in frozen:
                sub.generation += 1
                sub.open = False
        return frozen

    # -- streams -------------------------------------------------------------------
    def open_stream(self, stream: LiveStream) -> None:
        with self._lock:
            if stream.device_id in self.streams:
                msg = "This device already has a live stream; close it before opening another."
                raise ProtocolError(msg, close_code=CloseCode.DUPLICATE_STREAM)
            self.streams[stream.device_id] = stream

    def close_stream(self, stream: LiveStream) -> None:
        with self._lock:
            if self.streams.get(stream.device_id) is stream:
                del self.streams[stream.device_id]

    def ingest(self, stream: LiveStream, frame: bytes) -> list[dict[str, Any]]:
        """Check a device frame, run the pipeline once, and feed every subscriber."""
        before = stream.expected_sequence, stream.next_time
        samples, t0, notices = stream.check(frame)
        if samples is None:
            return notices
        groups = self._groups(stream)
        exported = self.exports.wanted(stream) if self.exports is not None else frozenset()
        try:
            batch = stream.pipeline.push_checked(samples, t0,
                                                 products={p for p, _ in groups} | exported)
        except SignalError as exc:
            # Dropped for its content, like rows 6 and 7: the same number may come again.
            sequence = ((stream.expected_sequence or 0) - 1) & SEQUENCE_MASK
            stream.expected_sequence, stream.next_time = before
            stream.dropped_sequence = sequence
            stream.rejected += 1
            notices.append({"type": "error", "code": "bad_samples",
                            "sequence": sequence,
                            "message": exc.message + " The frame was dropped."})
            return notices
        stream.frames += 1
        stream.samples += samples.shape[1]
        for key, subs in groups.items():
            self._fan_out(stream, key, subs, batch[key[0]])
        if exported and self.exports is not None:
            self.exports.publish(stream, batch, exported)
        if len(stream.reducers) > len(groups):  # nobody takes these any more
            for key in [k for k in stream.reducers if k not in groups]:
                del stream.reducers[key]
        return notices

    def _groups(self, stream: LiveStream) -> dict[tuple[str, Resolution], list[Subscription]]:
        """The subscriptions that may receive data now, by (product, resolution delivered),
        in the pipeline's product order."""
        subs = tuple(sub for sub in self.by_subject.get(stream.subject_id, ())
                     if self.may_deliver(sub) and sub.stream_only in (None, stream.id))
        grants = tuple(sub.grant for sub in subs)
        cached_groups = stream.groups
        # The same subscriptions may deliver, under the same grants, as for the last chunk
        # (the usual case): the same groups. Tuples compare their items by identity first.
        if cached_groups is not None and cached_groups[0] == subs and cached_groups[1] == grants:
            return cached_groups[2]
        groups: dict[tuple[str, Resolution], list[Subscription]] = {}
        targets = stream.targets
        for sub in subs:
            cached = targets.get(sub.id)
            if cached is None or cached[0] is not sub.grant:
                native = stream.pipeline.resolutions
                cached = (sub.grant, {
                    product: target_resolution(allowed, native[product])
                    for product, allowed in sub.grant.products.items() if product in native})
                targets[sub.id] = cached
            for product, target in cached[1].items():
                groups.setdefault((product, target), []).append(sub)
        if len(targets) > len(subs) + 16:  # forget subscriptions that went away
            live = {sub.id for sub in self.by_subject.get(stream.subject_id, ())}
            for sub_id in [s for s in targets if s not in live]:
                del targets[sub_id]
        order = stream.product_order
        ordered = dict(sorted(groups.items(), key=lambda item: order[item[0][0]]))
        stream.groups = (subs, grants, ordered)
        return ordered

    def deliver_remote(self, stream: LiveStream, product: str, frames: list[Frame]) -> None:
        """Frames of a stream whose pipeline runs on another node (the cluster's stream
        bus): gated, reduced and fanned out to this node's subscriptions as a local
        stream's are."""
        for key, subs in self._groups(stream).items():
            if key[0] == product:
                self._fan_out(stream, key, subs, frames)

    @staticmethod
    def _fan_out(stream: LiveStream, key: tuple[str, Resolution], subs: list[Subscription],
                 frames: list[Frame]) -> None:
        """Reduce a product once, render each frame once per format, queue it for all."""
        if not frames:
            return
        product, target = key
        reducer = stream.reducers.get(key)
        if reducer is None:
            reducer = ResolutionReducer(product, stream.pipeline.resolutions[product], target)
            stream.reducers[key] = reducer
        kind = _KINDS.get(product)
        for out in reducer.process(frames):
            text: tuple[str, str] | None = None
            binary: bytes | None = None
            for sub in subs:
                sub.sequence += 1
                if sub.binary and kind is not None:
                    if binary is None:
                        binary = encode_frame(out.data, sequence=0, timestamp=out.t, kind=kind)
                    sub.enqueue(with_sequence(binary, sub.sequence))
                else:
                    if text is None:
                        text = render_json_parts(out)
                    sub.enqueue(f"{text[0]}{sub.sequence}{text[1]}")

    @staticmethod
    def render(sub: Subscription, frame: Frame) -> str | bytes:
        """One frame as the message ``sub`` gets, with its current sequence number."""
        if sub.binary and frame.product in ("raw", "filtered"):
            kind = KIND_RAW if frame.product == "raw" else KIND_FILTERED
            return encode_frame(frame.data, sequence=sub.sequence, timestamp=frame.t, kind=kind)
        return render_json(frame, sub.sequence)

    # -- subscriptions -------------------------------------------------------------
    def committed(self, keys: Iterable[ChangeKey], paused: Iterable[Subscription]
                  ) -> list[tuple[Subscription, int]]:
        """A change paused by ``freeze`` has committed (or rolled back): any mark or
        generation read between the pause and now may have seen the old state, so both are
        bumped again and such readers decide afresh. Returns each paused subscription with
        the generation its re-evaluation must still find to reopen it."""
        with self._lock:
            for key in set(keys):
                self.changes[key] += 1
            stamped = []
            for sub in paused:
                sub.generation += 1
                stamped.append((sub, sub.generation))
            return stamped

    def reopen(self, sub: Subscription, generation: int, grant: Grant) -> bool:
        """Reopen ``sub`` with ``grant`` if no change touched it since ``generation``."""
        with self._lock:
            if sub.generation != generation or sub.closing is not None:
                return False
            sub.grant = grant
            sub.open = True
            return True

    def change_mark(self, subject_id: str, app_id: str) -> tuple[int, int]:
        """A stamp of the consent changes seen so far for a subject and an app."""
        return self.changes[("subject", subject_id)], self.changes[("app", app_id)]

    def subscribe(self, sub: Subscription, mark: tuple[int, int] | None = None) -> int | None:
        """Register a subscription decided at ``mark``. If a consent change came in since,
        the subscription is paused and the generation to decide it again at is returned."""
        with self._lock:
            self.subscriptions[sub.id] = sub
            self._index(sub.subject_id)
            if mark is not None and mark != self.change_mark(sub.subject_id, sub.app_id):
                sub.generation += 1
                sub.open = False
                return sub.generation
        return None

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self.subscriptions.pop(sub.id, None)
            self._index(sub.subject_id)

    def _index(self, subject_id: str) -> None:
        subs = tuple(s for s in self.subscriptions.values() if s.subject_id == subject_id)
        if subs:
            self.by_subject[subject_id] = subs
        else:
            self.by_subject.pop(subject_id, None)

    def revoke(self, sub: Subscription, reasons: Iterable[str], explanations: Iterable[str],
               *, code: int = CloseCode.REVOKED) -> None:
        """End a subscription: a ``revoked`` message, then the socket closes."""
        reasons = list(reasons)
        sub.end(code, {"type": "revoked", "reason": reasons[0] if reasons else "revoked",
                       "reasons": reasons, "explanations": list(explanations)})

    def expired(self) -> list[Subscription]:
        """Open subscriptions whose consent has run out (wall clock)."""
        now = self._now()
        return [s for s in list(self.subscriptions.values())
                if s.closing is None and now >= s.grant.valid_until]

    def fail_closed(self) -> None:
        """The store cannot be read: end every subscription."""
        for sub in list(self.subscriptions.values()):
            if sub.closing is None:
                sub.end(CloseCode.STORE_UNAVAILABLE, dict(STORE_UNAVAILABLE))


def epoch_seconds(moment: datetime) -> float:
    """A timezone-aware datetime as seconds since the Unix epoch."""
    return moment.astimezone(UTC).timestamp()


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "Grant",
    "LiveStream",
    "STORE_UNAVAILABLE",
    "StreamHub",
    "Subscription",
    "epoch_seconds",
    "render_json",
    "render_json_parts",
    "target_resolution",
    "with_sequence",
]
