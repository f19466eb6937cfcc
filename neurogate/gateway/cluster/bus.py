"""Streams across nodes: a device on node A, an app on node B, one pipeline on node A.

Interest, not a firehose. Every node announces, on ``neurogate.<bucket>.interest``, the
subjects it has granted subscribers for and the products those subscribers take, three
times per lease and at once when the set grows. A node that holds a live stream of such a
subject computes those products (and only those) and publishes them at the pipeline's
native resolution on ``neurogate.<bucket>.stream.<subject key>.<stream id>.<product>``.
An announcement lapses one lease after it was sent: a node that dies, or whose apps all
left, stops the publishing within a lease.

Node B feeds what arrives into its own hub (`StreamHub.deliver_remote`): its ordinary
subscriptions gate every frame (open flag, generation, valid-until, store lease) and its
reducers bring each product to the resolution each grant allows, exactly as for a stream of
its own. So a revocation, wherever it commits, is enforced by the node the app is on.

The subject key is a hash of the internal subject id: the bus names no subject. A batch is
a JSON description of the frames (times, labels, columns, resolutions, shapes), then their
values as little-endian float64, so node B reduces the very values node A computed (the
float32 sample frame of the device protocol would round them, and covers only ``raw`` and
``filtered``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import struct
import time
from typing import Any, cast

import numpy as np
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from neurogate.gateway.streams import LiveStream, StreamHub
from neurogate.settings import Settings
from neurogate.signal import Frame, Resolution

log = logging.getLogger("neurogate.cluster.bus")

ANNOUNCES_PER_LEASE = 3
CHANGE_POLL_SECONDS = 0.1  # how soon a new subscriber's interest goes out
PUBLISH_QUEUE_LIMIT = 4096  # batches waiting for NATS before new ones are dropped (counted)
_LENGTH = struct.Struct("<I")


def prefix(settings: Settings) -> str:
    """The NATS subject prefix of this cluster (one per node bucket)."""
    return f"neurogate.{settings.cluster_bucket}"


def subject_key(subject_id: str) -> str:
    """The name a subject goes by on the bus: no internal id, no pseudonym."""
    return hashlib.sha256(subject_id.encode()).hexdigest()[:32]


def _resolution(values: list[Any]) -> Resolution:
    return Resolution(float(values[0]), float(values[1]), values[2])


def _described(res: Resolution) -> list[Any]:
    return [res.window_s, res.output_rate_hz, res.channels]


def encode_batch(natives: dict[str, Resolution], frames: list[Frame]) -> bytes:
    """Frames of one product of one stream, with the stream's native resolutions."""
    meta = {"natives": {name: _described(res) for name, res in natives.items()},
            "frames": [[f.product, f.t, list(f.labels), list(f.columns), list(f.data.shape),
                        _described(f.resolution)] for f in frames]}
    head = json.dumps(meta, separators=(",", ":")).encode()
    values = [np.ascontiguousarray(f.data, dtype="<f8").tobytes() for f in frames]
    return b"".join([_LENGTH.pack(len(head)), head, *values])


def decode_batch(payload: bytes) -> tuple[dict[str, Resolution], list[Frame]]:
    """What `encode_batch` wrote: the native resolutions and the frames."""
    (size,) = _LENGTH.unpack_from(payload)
    meta = json.loads(payload[_LENGTH.size:_LENGTH.size + size])
    natives = {name: _resolution(values) for name, values in meta["natives"].items()}
    offset = _LENGTH.size + size
    frames = []
    for product, t, labels, columns, shape, res in meta["frames"]:
        count = int(np.prod(shape)) if shape else 1
        data = np.frombuffer(payload, dtype="<f8", count=count, offset=offset).reshape(shape)
        offset += 8 * count
        frames.append(Frame(product, float(t), data, tuple(labels), tuple(columns),
                            _resolution(res)))
    return natives, frames


class _Natives:
    """The one part of a pipeline the hub's fan-out reads: its products' resolutions."""

    def __init__(self, resolutions: dict[str, Resolution]) -> None:
        self.resolutions = resolutions


class RemoteStream:
    """A stream whose pipeline runs on another node, as this node's hub fans it out:
    its own reducers and per-subscription targets, keyed like a local stream's."""

    def __init__(self, *, stream_id: str, subject_id: str,
                 natives: dict[str, Resolution]) -> None:
        self.id = stream_id
        self.subject_id = subject_id
        self.pipeline = _Natives(natives)
        self.product_order = {name: i for i, name in enumerate(natives)}
        self.reducers: dict[tuple[str, Resolution], Any] = {}
        self.targets: dict[str, Any] = {}
        self.groups: Any = None  # the hub's last groups of subscriptions for it
        self.seen_at = time.monotonic()


class StreamBus:
    """This node's end of the cluster's stream bus: it announces what its apps take,
    publishes what other nodes' apps take from its devices, and delivers what other
    nodes publish to its own apps."""

    def __init__(self, hub: StreamHub, client: NATS, settings: Settings) -> None:
        self.hub = hub
        self.client = client
        self.node_id = settings.node_id
        self.lease = settings.cluster_lease_seconds
        self.prefix = prefix(settings)
        # Other nodes' interest: subject key -> node id -> (products, lapses at, monotonic).
        self.interest: dict[str, dict[str, tuple[frozenset[str], float]]] = {}
        self.remote: dict[str, RemoteStream] = {}  # streams of other nodes, by stream id
        self.published = 0  # batches handed to NATS
        self.dropped = 0  # batches dropped because NATS did not take them in time
        self.received = 0  # batches from other nodes delivered to this hub
        self._keys: dict[str, str] = {}  # subject id -> subject key (cached hashes)
        self._listening: dict[str, tuple[str, NatsSubscription]] = {}  # key -> (id, sub)
        self._announced: dict[str, list[str]] = {}
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(PUBLISH_QUEUE_LIMIT)
        self._tasks: list[asyncio.Task[None]] = []
        self._interest_sub: NatsSubscription | None = None

    # -- the publishing side (node A) ------------------------------------------------
    def _key(self, subject_id: str) -> str:
        key = self._keys.get(subject_id)
        if key is None:
            key = self._keys[subject_id] = subject_key(subject_id)
        return key

    def wanted(self, stream: LiveStream) -> frozenset[str]:
        """The products of ``stream`` some other node has a granted subscriber for."""
        nodes = self.interest.get(self._key(stream.subject_id))
        if not nodes:
            return frozenset()
        now = time.monotonic()
        products: set[str] = set()
        for node, (taken, lapses_at) in list(nodes.items()):
            if lapses_at > now:
                products |= taken
            else:
                del nodes[node]
        return frozenset(products)

    def publish(self, stream: LiveStream, batch: dict[str, list[Frame]],
                products: frozenset[str]) -> None:
        """Queue the frames other nodes take (called from the hub's ingest, on the loop)."""
        natives = stream.pipeline.resolutions
        base = f"{self.prefix}.stream.{self._key(stream.subject_id)}.{stream.id}"
        for product in products:
            frames = batch.get(product)
            if not frames:
                continue
            try:
                self._outbox.put_nowait((f"{base}.{product}", encode_batch(natives, frames)))
            except asyncio.QueueFull:
                self.dropped += 1

    async def _send_forever(self) -> None:
        while True:
            subject, payload = await self._outbox.get()
            try:
                await self.client.publish(subject, payload)
                self.published += 1
            except Exception as exc:  # NATS away: the batch is lost, the stream goes on
                self.dropped += 1
                log.warning("stream bus publish failed: %s", type(exc).__name__)

    async def _on_interest(self, msg: Msg) -> None:
        try:
            data = json.loads(msg.data)
            node, subjects = str(data["node"]), dict(data["subjects"])
        except (ValueError, KeyError, TypeError):
            log.warning("stream bus: an interest message that is not one was ignored")
            return
        if node == self.node_id:
            return
        lapses_at = time.monotonic() + self.lease
        for nodes in self.interest.values():  # what this node no longer wants
            if node in nodes and nodes[node][0]:
                nodes[node] = (frozenset(), 0.0)
        for key, products in subjects.items():
            self.interest.setdefault(key, {})[node] = (frozenset(products), lapses_at)

    # -- the receiving side (node B) ---------------------------------------------------
    def _granted(self) -> dict[str, set[str]]:
        """Per subject id, the products this node's open subscriptions take."""
        taken: dict[str, set[str]] = {}
        for sub in list(self.hub.subscriptions.values()):
            if sub.open and sub.closing is None:
                taken.setdefault(sub.subject_id, set()).update(sub.grant.products)
        return taken

    async def _announce(self, granted: dict[str, set[str]]) -> None:
        subjects = {self._key(s): sorted(p) for s, p in granted.items()}
        for key, subject_id in [(self._key(s), s) for s in granted]:
            if key not in self._listening:
                sub = await self.client.subscribe(f"{self.prefix}.stream.{key}.>",
                                                  cb=self._on_frames)
                self._listening[key] = (subject_id, sub)
        for key in [k for k in self._listening if k not in subjects]:
            _, sub = self._listening.pop(key)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        await self.client.publish(f"{self.prefix}.interest", json.dumps(
            {"node": self.node_id, "subjects": subjects}, separators=(",", ":")).encode())
        self._announced = subjects

    async def _announce_forever(self) -> None:
        cadence = self.lease / ANNOUNCES_PER_LEASE
        last = 0.0
        while True:
            try:
                granted = self._granted()
                subjects = {self._key(s): sorted(p) for s, p in granted.items()}
                grew = any(set(p) - set(self._announced.get(k, ()))
                           for k, p in subjects.items())
                if grew or time.monotonic() - last >= cadence:
                    await self._announce(granted)
                    last = time.monotonic()
                    self._forget_quiet_streams()
            except Exception as exc:  # NATS away: try again; interest lapses meanwhile
                log.warning("stream bus announcement failed: %s", type(exc).__name__)
            await asyncio.sleep(CHANGE_POLL_SECONDS)

    def _forget_quiet_streams(self) -> None:
        quiet_since = time.monotonic() - self.lease
        for stream_id in [i for i, s in self.remote.items() if s.seen_at < quiet_since]:
            del self.remote[stream_id]

    async def _on_frames(self, msg: Msg) -> None:
        parts = msg.subject.rsplit(".", 3)
        if len(parts) != 4:
            return
        _, key, stream_id, product = parts
        listening = self._listening.get(key)
        if listening is None:
            return  # nobody here takes this subject any more
        try:
            natives, frames = decode_batch(msg.data)
        except (ValueError, KeyError, TypeError, struct.error):
            log.warning("stream bus: a batch that cannot be read was dropped")
            return
        stream = self.remote.get(stream_id)
        if stream is None:
            stream = self.remote[stream_id] = RemoteStream(
                stream_id=stream_id, subject_id=listening[0], natives=natives)
        stream.seen_at = time.monotonic()
        self.received += 1
        # The hub reads only what RemoteStream has of a LiveStream (see its docstring).
        self.hub.deliver_remote(cast(LiveStream, stream), product, frames)

    def health(self) -> dict[str, Any]:
        """The ``bus`` part of ``/healthz``: counts and node ids only (no subject)."""
        now = time.monotonic()
        interested = sorted({node for nodes in self.interest.values()
                             for node, (products, lapses_at) in nodes.items()
                             if products and lapses_at > now})
        return {"interest_from": interested, "published": self.published,
                "received": self.received, "dropped": self.dropped,
                "remote_streams": len(self.remote)}

    # -- life --------------------------------------------------------------------------
    async def start(self) -> None:
        self._interest_sub = await self.client.subscribe(f"{self.prefix}.interest",
                                                         cb=self._on_interest)
        self._tasks = [asyncio.create_task(self._send_forever()),
                       asyncio.create_task(self._announce_forever())]
        self.hub.exports = self

    async def stop(self) -> None:
        self.hub.exports = None
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        subs = [s for _, s in self._listening.values()]
        if self._interest_sub is not None:
            subs.append(self._interest_sub)
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._listening.clear()


async def start_bus(hub: StreamHub, client: NATS, settings: Settings) -> StreamBus:
    """Open this node's end of the stream bus on the cluster's NATS connection."""
    bus = StreamBus(hub, client, settings)
    await bus.start()
    return bus


__all__ = ["RemoteStream", "StreamBus", "decode_batch", "encode_batch", "prefix",
           "start_bus", "subject_key"]
