"""The cluster control plane: a consent change pauses its streams on every node first.

Each clustered node runs this on a thread of its own, with its own asyncio loop and its
own NATS connection (the one its membership heartbeat uses), so that a transaction's
``before_commit`` hook, which runs on whatever thread commits (the gateway's event loop
included), can block on it safely.

The protocol, per consent change (the same change keys the local pause uses):

1. The committing node pauses its own subscriptions (``StreamHub.freeze``), then asks
   every other live node, one request per node on ``neurogate.<bucket>.pause.<node id>``,
   to pause the keys. A node freezes the keys in its hub and only then replies. The
   commit goes on once every node has replied or dropped out of the membership bucket
   (its lease lapsed); the wait is bounded by one lease, after which the change is
   refused (``PauseRefused``, nothing committed).
2. After the commit (or rollback) it publishes ``neurogate.<bucket>.committed``; each
   node that paused decides again for the subscriptions it paused, from the database,
   exactly as the local path does. A node that paused but never hears ``committed`` (the
   committing node died) decides again after one lease anyway: a decision reads the
   database, so deciding early or twice is safe.

Fail closed: the hub delivers only until ``StreamHub.cluster_until``, which only a
heartbeat NATS accepted moves on (one lease from when the record was made) and which a
lost connection ends at once. The other nodes stop waiting for a node's reply exactly
when its record's lease passes, and by then it has stopped delivering. A node whose lease
lapsed may have missed pauses: when its heartbeat works again, it pauses every
subscription and decides them all again before anything flows.

The messages carry change ids and change keys (kinds and internal ids of subjects, apps
and devices), never names, signals or other personal data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from neurogate.errors import StorageError
from neurogate.gateway.cluster.membership import ClusterError, Membership
from neurogate.gateway.state import Gateway
from neurogate.gateway.streams import ChangeKey, Subscription

log = logging.getLogger("neurogate.cluster")

ASK_SECONDS = 0.5  # one pause request's wait before the node list is read again
RETRY_SECONDS = 0.05  # between rounds of requests to nodes that did not answer
DECIDABLE = ("subject", "app")  # the kinds of key a subscription is decided on


class PauseRefused(StorageError):
    """A consent change could not pause every node in time: it is not committed."""

    code = "cluster_unavailable"


def pause_subject(bucket: str, node_id: str) -> str:
    """Where a node takes pause requests."""
    return f"neurogate.{bucket}.pause.{node_id}"


def committed_subject(bucket: str) -> str:
    """Where committing nodes announce that a change committed or rolled back."""
    return f"neurogate.{bucket}.committed"


@dataclass
class Paused:
    """A change another node paused here, waiting for its ``committed``."""

    keys: set[ChangeKey]
    subscriptions: list[Subscription]
    fallback: asyncio.TimerHandle  # decides again after one lease if ``committed`` never comes


def _encode(change: str, keys: Iterable[ChangeKey], node_id: str) -> bytes:
    return json.dumps({"change": change, "node": node_id,
                       "keys": sorted([kind, ident] for kind, ident in keys)}).encode()


def _decode(data: bytes) -> tuple[str, set[ChangeKey]]:
    message = json.loads(data)
    return str(message["change"]), {(str(kind), str(ident)) for kind, ident in message["keys"]}


class ControlPlane:
    """This node's side of cross-node pauses and its NATS delivery lease."""

    def __init__(self, gateway: Gateway, *, address: str, version: str) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self.node_id = self.settings.node_id
        self.lease_seconds = self.settings.cluster_lease_seconds
        hub = gateway.hub
        self.membership = Membership(
            self.settings, address=address, version=version,
            figures=lambda: (len(hub.streams), len(hub.subscriptions)),
            # A listed node's NATS lease holds by definition (the record lives as long),
            # so its record says whether its store lease does too.
            delivering=hub.store_ok, on_beat=self._beaten)
        self.pending: dict[str, Paused] = {}  # change id -> what it paused here
        self.recoveries = 0  # how often this node decided everything again after a lapse
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever,
                                        name="neurogate-cluster-control", daemon=True)
        self._subscriptions: list[NatsSubscription] = []
        self._leaving = False

    # -- running -------------------------------------------------------------------
    @property
    def client(self) -> NATS:
        assert self.membership.client is not None
        return self.membership.client

    def _run(self, coroutine: Any, timeout: float | None = None) -> Any:
        """Run a coroutine on the control loop from another thread and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def start(self) -> None:
        """Start the thread, subscribe, join the membership bucket (raises ClusterError)."""
        self.gateway.hub.cluster_until = 0.0  # nothing flows before the first heartbeat
        self._thread.start()
        try:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                self.membership.start(before_announce=self._subscribe,
                                      disconnected=self._disconnected), self.loop))
        except BaseException:
            self._halt()
            raise
        self.gateway.cluster = self

    async def stop(self) -> None:
        """Leave the cluster; this node delivers nothing more (it would miss pauses)."""
        self.gateway.cluster = None
        self.gateway.hub.cluster_until = 0.0
        self._leaving = True
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                self._leave(), self.loop))
        self._halt()

    async def _leave(self) -> None:
        for handle in self.pending.values():
            handle.fallback.cancel()
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        await self.membership.stop()

    def _halt(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    async def _subscribe(self, client: NATS) -> None:
        bucket = self.settings.cluster_bucket
        self._subscriptions = [
            await client.subscribe(pause_subject(bucket, self.node_id), cb=self._on_pause),
            await client.subscribe(committed_subject(bucket), cb=self._on_committed)]
        await client.flush()  # subscribed on the server before this node announces itself

    # -- the delivery lease ---------------------------------------------------------
    def delivering(self) -> bool:
        """Whether this node's store and NATS leases both let data flow now."""
        hub = self.gateway.hub
        return hub.store_ok() and time.monotonic() < hub.cluster_until

    def reason(self) -> str | None:
        """Why this node does not deliver, or None while it does."""
        hub = self.gateway.hub
        if time.monotonic() >= hub.cluster_until:
            return "nats_unreachable"
        if not hub.store_ok():
            return "store_unavailable"
        return None

    async def _disconnected(self) -> None:
        self.gateway.hub.cluster_until = 0.0  # pauses may be missed from now on
        if not self._leaving:
            log.warning("NATS connection lost: this node stops delivering")

    def _beaten(self, made: float) -> None:
        """NATS took a heartbeat made at ``made`` (monotonic): the lease runs to one lease
        from then. After a lapse, pause and decide everything again first."""
        hub = self.gateway.hub
        until = made + self.lease_seconds
        if time.monotonic() < hub.cluster_until:
            hub.cluster_until = max(hub.cluster_until, until)
            return
        # The lease lapsed (or the link dropped): a change committed meanwhile may not have
        # paused this node. Every key a decision here ever read a mark of is in
        # ``hub.changes`` (a defaultdict), so bumping them all makes such decisions stale.
        keys = {key for key in list(hub.changes) if key[0] in DECIDABLE}
        for sub in list(hub.subscriptions.values()):
            keys.update({("subject", sub.subject_id), ("app", sub.app_id)})
        paused = hub.freeze(keys)
        hub.cluster_until = until
        if self.recoveries or paused:
            log.info("NATS lease back: deciding %d subscriptions again", len(paused))
        self.recoveries += 1
        self._decide_again(keys, paused)

    def _decide_again(self, keys: set[ChangeKey], paused: list[Subscription]) -> None:
        """What the local path does after a commit: decide again from the database."""
        gateway = self.gateway
        stamped = gateway.hub.committed(keys, paused)
        if gateway.on_change is not None and gateway.loop is not None:
            gateway.loop.call_soon_threadsafe(gateway.on_change, set(keys), stamped, set())

    # -- this node pauses for a change committed elsewhere -----------------------------
    async def _on_pause(self, msg: Msg) -> None:
        try:
            change, keys = _decode(msg.data)
        except (ValueError, KeyError, TypeError):
            log.warning("a malformed pause request was ignored")
            return
        # Frozen from this thread, as the local path freezes from the committing thread:
        # the hub's lock makes it safe, and the reply does not wait for a busy event loop.
        paused = self.gateway.hub.freeze(keys)
        previous = self.pending.pop(change, None)
        if previous is not None:  # asked again (a retry): one entry, one decision
            previous.fallback.cancel()
            paused = list({id(s): s for s in previous.subscriptions + paused}.values())
        fallback = self.loop.call_later(self.lease_seconds, self._finish, change)
        self.pending[change] = Paused(keys, paused, fallback)
        with contextlib.suppress(Exception):  # the asker retries until our lease lapses
            await msg.respond(b'{"paused":true}')

    async def _on_committed(self, msg: Msg) -> None:
        try:
            change, _ = _decode(msg.data)
        except (ValueError, KeyError, TypeError):
            log.warning("a malformed commit notice was ignored")
            return
        self._finish(change)

    def _finish(self, change: str) -> None:
        entry = self.pending.get(change)
        if entry is None:
            return  # not paused here (the committing node itself, or already decided)
        entry.fallback.cancel()
        self._decide_again(entry.keys, entry.subscriptions)
        # Only now: whoever sees no change pending also finds its re-decisions queued.
        del self.pending[change]

    # -- this node commits a change ---------------------------------------------------
    def pause_everywhere(self, keys: Iterable[ChangeKey]) -> str:
        """Pause ``keys`` on every other live node (blocking; any thread but the control
        loop's). Returns the change id to pass to ``committed``; raises PauseRefused."""
        change = uuid.uuid4().hex
        keys = set(keys)
        try:
            self._run(self._pause_peers(change, keys), timeout=self.lease_seconds + 5)
        except PauseRefused:
            raise
        except Exception as exc:  # NATS away, the loop gone: refuse rather than risk it
            self.committed(change, keys)  # nodes that did pause decide again at once
            msg = ("The other gateway nodes could not be asked to pause the affected "
                   "streams, so nothing was changed. Try again shortly.")
            raise PauseRefused(msg) from exc
        return change

    async def _pause_peers(self, change: str, keys: set[ChangeKey]) -> None:
        deadline = self.loop.time() + self.lease_seconds
        payload = _encode(change, keys, self.node_id)
        bucket = self.settings.cluster_bucket
        if not self.client.is_connected:
            msg = "NATS is not connected."
            raise ClusterError(msg)
        waiting = {n.node_id for n in await self.membership.nodes()} - {self.node_id}

        async def ask(node_id: str) -> bool:
            wait = max(0.01, min(ASK_SECONDS, deadline - self.loop.time()))
            try:
                await self.client.request(pause_subject(bucket, node_id), payload,
                                          timeout=wait)
            except (TimeoutError, NoRespondersError, NatsTimeoutError):
                return False
            return True

        while waiting:
            order = sorted(waiting)
            answers = await asyncio.gather(*(ask(node_id) for node_id in order))
            waiting -= {node_id for node_id, ok in zip(order, answers, strict=True) if ok}
            if not waiting:
                return
            if self.loop.time() >= deadline:
                await self._publish_committed(change, keys)
                msg = (f"{len(waiting)} gateway nodes neither paused the affected streams "
                       f"nor dropped out within one lease ({self.lease_seconds:g} s), so "
                       "nothing was changed. Try again shortly.")
                raise PauseRefused(msg)
            await asyncio.sleep(RETRY_SECONDS)
            # A node that died or lost NATS leaves the list once its lease has passed, and
            # by then it has stopped delivering.
            waiting &= {n.node_id for n in await self.membership.nodes()}

    def committed(self, change: str, keys: Iterable[ChangeKey]) -> None:
        """Tell every node the change committed or rolled back (does not wait)."""
        with contextlib.suppress(RuntimeError):  # the loop has stopped: nodes fall back
            asyncio.run_coroutine_threadsafe(self._publish_committed(change, set(keys)),
                                             self.loop)

    async def _publish_committed(self, change: str, keys: set[ChangeKey]) -> None:
        try:
            await self.client.publish(committed_subject(self.settings.cluster_bucket),
                                      _encode(change, keys, self.node_id))
        except Exception as exc:  # the paused nodes decide again after one lease anyway
            log.warning("commit notice not sent: %s", type(exc).__name__)

    # -- health ------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        """The ``cluster`` section of ``/healthz`` (awaited on the gateway's loop)."""
        section: dict[str, Any] = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self.membership.health(), self.loop))
        section["delivering"] = self.delivering()
        section["reason"] = self.reason()
        return section


async def start_control_plane(gateway: Gateway, *, version: str) -> ControlPlane | None:
    """Join the cluster the settings name (None without ``NEUROGATE_NATS_URL``)."""
    settings = gateway.settings
    if settings.nats_url is None:
        return None
    address = settings.node_address or f"http://{settings.host}:{settings.port}"
    control = ControlPlane(gateway, address=address, version=version)
    await control.start()
    return control


__all__ = ["ControlPlane", "PauseRefused", "committed_subject", "pause_subject",
           "start_control_plane"]
