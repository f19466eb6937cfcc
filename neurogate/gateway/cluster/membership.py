"""Cluster membership: each node heartbeats itself into a NATS JetStream key-value bucket.

A node's key is its id; its value is a small JSON record (id, announced address, start
time, lease expiry, how many streams and subscribers it holds). The bucket has a TTL of
one lease, so the record of a node that dies (or loses NATS) vanishes from the bucket
within one lease of its last heartbeat; readers also drop any record whose lease has
passed. A node beats three times per lease. Nothing here runs without a NATS URL.

The record holds no personal data: node ids, addresses and counts only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from neurogate.errors import NeurogateError
from neurogate.settings import Settings

log = logging.getLogger("neurogate.cluster")

BEATS_PER_LEASE = 3
HEALTH_READ_SECONDS = 1.0


class ClusterError(NeurogateError):
    """NATS cannot be reached, or the cluster's bucket cannot be opened."""

    code = "cluster_unavailable"


@dataclass(frozen=True)
class NodeRecord:
    """One node as it last announced itself."""

    node_id: str
    address: str
    started_at: float  # seconds since the Unix epoch
    lease_until: float  # seconds since the Unix epoch
    streams: int
    subscribers: int
    version: str
    delivering: bool = True  # whether its store and NATS leases let data flow

    @classmethod
    def from_json(cls, value: bytes) -> NodeRecord:
        data = json.loads(value)  # a field a record lacks (an older node) takes its default
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


def connect_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect`` from the settings (credentials included)."""
    assert settings.nats_url is not None
    options: dict[str, Any] = {
        "servers": [part.strip() for part in settings.nats_url.split(",")],
        "name": f"neurogate-{settings.node_id}",
        "connect_timeout": 2,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "allow_reconnect": True,
        # A silent link is found dead within about two leases, not the default 4 minutes
        # (the delivery lease already stops streams after one).
        "ping_interval": max(1, round(settings.cluster_lease_seconds)),
        "max_outstanding_pings": 2,
    }
    if settings.nats_user is not None:
        options["user"] = settings.nats_user
        if settings.nats_password is not None:
            options["password"] = settings.nats_password.get_secret_value()
    if settings.nats_token is not None:
        options["token"] = settings.nats_token.get_secret_value()
    return options


async def connect(settings: Settings, *,
                  disconnected: Callable[[], Awaitable[None]] | None = None,
                  reconnected: Callable[[], Awaitable[None]] | None = None) -> NATS:
    """Connect to the NATS servers the settings name, or raise ClusterError.

    The first connection must succeed within one lease; once connected, a lost
    connection is retried forever (``Membership.healthy`` says when it is down).
    ``disconnected`` and ``reconnected`` are called when the link drops and returns.
    """
    options = connect_options(settings)
    if disconnected is not None:
        options["disconnected_cb"] = disconnected
    if reconnected is not None:
        options["reconnected_cb"] = reconnected

    async def quiet(exc: Exception) -> None:  # never log the credentials or the payloads
        log.warning("NATS: %s", type(exc).__name__)

    try:  # with reconnects on, nats.connect itself would retry a dead server forever
        return await asyncio.wait_for(nats.connect(**options, error_cb=quiet),
                                      settings.cluster_lease_seconds)
    except Exception as exc:  # nats raises several unrelated types for one failure
        msg = (f"NATS cannot be reached at {', '.join(options['servers'])} "
               f"({type(exc).__name__}); check NEUROGATE_NATS_URL and the NATS credentials.")
        raise ClusterError(msg) from exc


async def open_bucket(client: NATS, settings: Settings) -> KeyValue:
    """The node bucket, created with a TTL of one lease when it does not exist yet."""
    js = client.jetstream()
    try:
        return await js.key_value(settings.cluster_bucket)
    except BucketNotFoundError:
        config = KeyValueConfig(bucket=settings.cluster_bucket, history=1,
                                ttl=settings.cluster_lease_seconds,
                                storage=StorageType.MEMORY,
                                description="NeuroGate gateway nodes and their leases")
        return await js.create_key_value(config)


async def read_nodes(bucket: KeyValue, *, now: float | None = None) -> list[NodeRecord]:
    """Every node whose lease holds, by id."""
    now = time.time() if now is None else now
    try:
        keys = await bucket.keys()
    except NoKeysError:
        return []
    records = []
    for key in keys:
        try:
            entry = await bucket.get(key)
        except KeyNotFoundError:
            continue  # expired or deleted meanwhile
        if entry.value:
            record = NodeRecord.from_json(entry.value)
            if record.lease_until > now:
                records.append(record)
    return sorted(records, key=lambda r: r.node_id)


class Membership:
    """This node's place in the cluster: its heartbeat and the node list."""

    def __init__(self, settings: Settings, *, address: str, version: str,
                 figures: Callable[[], tuple[int, int]],
                 delivering: Callable[[], bool] = lambda: True,
                 on_beat: Callable[[float], None] | None = None) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self.address = address
        self.version = version
        self.figures = figures  # () -> (streams, subscribers)
        self.delivering = delivering
        # Called after NATS took a heartbeat, with the monotonic time the record was made
        # (its lease runs one lease from then).
        self.on_beat = on_beat
        self.started_at = time.time()
        self.client: NATS | None = None
        self.bucket: KeyValue | None = None
        self.last_beat = 0.0  # time.time() of the last heartbeat NATS accepted
        self.failing = False  # the last heartbeat failed
        self._task: asyncio.Task[None] | None = None

    @property
    def lease_seconds(self) -> float:
        return self.settings.cluster_lease_seconds

    def healthy(self) -> bool:
        """Whether NATS accepted the last heartbeat, within the last lease."""
        return (self.client is not None and self.client.is_connected and not self.failing
                and time.time() - self.last_beat < self.lease_seconds)

    async def start(self, *, before_announce: Callable[[NATS], Awaitable[None]] | None = None,
                    disconnected: Callable[[], Awaitable[None]] | None = None) -> None:
        """Connect, run ``before_announce`` (subscribe, say), open the bucket, announce this
        node, and keep beating."""
        self.client = await connect(self.settings, disconnected=disconnected)
        try:
            if before_announce is not None:
                await before_announce(self.client)
            self.bucket = await open_bucket(self.client, self.settings)
            await self.beat()
        except Exception as exc:
            await self.client.close()
            msg = (f"The NATS cluster bucket {self.settings.cluster_bucket!r} cannot be "
                   f"used ({type(exc).__name__}); NATS must run with JetStream (-js).")
            raise ClusterError(msg) from exc
        self._task = asyncio.create_task(self._beat_forever())
        log.info("joined the cluster as node %s", self.node_id)

    def record(self) -> NodeRecord:
        streams, subscribers = self.figures()
        return NodeRecord(node_id=self.node_id, address=self.address,
                          started_at=self.started_at,
                          lease_until=time.time() + self.lease_seconds,
                          streams=streams, subscribers=subscribers, version=self.version,
                          delivering=self.delivering())

    async def beat(self) -> None:
        """Announce this node once (its lease runs one lease from now)."""
        assert self.client is not None
        if self.bucket is None:  # after a failed beat: the bucket may be gone (NATS restarted)
            self.bucket = await open_bucket(self.client, self.settings)
        made = time.monotonic()
        await self.bucket.put(self.node_id, self.record().to_json())
        self.last_beat, self.failing = time.time(), False
        if self.on_beat is not None:
            self.on_beat(made)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / BEATS_PER_LEASE)
            try:
                await asyncio.wait_for(self.beat(), self.lease_seconds)
            except Exception as exc:  # NATS away: keep trying; healthy() says so meanwhile
                self.bucket, self.failing = None, True
                log.warning("cluster heartbeat failed: %s", type(exc).__name__)

    async def nodes(self) -> list[NodeRecord]:
        """Every live node of the cluster (this one included while its lease holds)."""
        if self.bucket is None:
            assert self.client is not None
            return await read_nodes(await open_bucket(self.client, self.settings))
        return await read_nodes(self.bucket)

    async def health(self) -> dict[str, Any]:
        """The ``cluster`` section of ``/healthz``: this node, NATS, and the live nodes."""
        section: dict[str, Any] = {
            "node_id": self.node_id, "nats": "ok" if self.healthy() else "unavailable",
            "lease_seconds": self.lease_seconds, "nodes": None}
        if self.client is not None and self.client.is_connected:
            try:
                nodes = await asyncio.wait_for(self.nodes(), HEALTH_READ_SECONDS)
            except Exception as exc:  # NATS slow or away: say so, answer anyway
                section["nats"] = "unavailable"
                log.warning("cluster node list unreadable: %s", type(exc).__name__)
            else:
                section["nodes"] = [asdict(node) for node in nodes]
        return section

    async def stop(self) -> None:
        """Leave the cluster: stop beating, remove this node's record, disconnect."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.bucket is not None:
            with contextlib.suppress(Exception):
                await self.bucket.delete(self.node_id)
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()


async def join(settings: Settings, *, version: str,
               figures: Callable[[], tuple[int, int]]) -> Membership | None:
    """Join the cluster the settings name (None without ``NEUROGATE_NATS_URL``)."""
    if settings.nats_url is None:
        return None
    address = settings.node_address or f"http://{settings.host}:{settings.port}"
    membership = Membership(settings, address=address, version=version, figures=figures)
    await membership.start()
    return membership


__all__ = ["ClusterError", "Membership", "NodeRecord", "connect", "connect_options",
           "join", "open_bucket", "read_nodes"]
