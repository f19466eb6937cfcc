"""Delivery counters: what each live subscription sent, written to the store per day.

Nothing here runs per frame. The store-lease watcher pokes `DeliveryCounter` on each of
its rounds (``poke`` starts a background ``tick`` and returns at once, so a slow store
never delays the lease): a subscription that ended since the last round is counted then,
live ones at most every `FLUSH_SECONDS`, and whatever is left when the watcher stops
(``close``). Only counts are written (messages delivered and dropped, seconds live), added
to the subject's row for the app, purpose and UTC day (`record_deliveries`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi.concurrency import run_in_threadpool

from neurogate.consent.activity import DeliveryCount, record_deliveries
from neurogate.errors import NeurogateError
from neurogate.gateway.state import Gateway
from neurogate.gateway.streams import Subscription

log = logging.getLogger("neurogate.counters")
FLUSH_SECONDS = 5.0


@dataclass
class _Counted:
    """How much of one subscription is already in the store."""

    sub: Subscription
    delivered: int = 0
    dropped: int = 0
    live_since: float = 0.0  # monotonic time up to which its live seconds are counted


@dataclass(frozen=True)
class _Delta:
    subject_id: str
    app_id: str
    purpose_id: str
    messages: int
    dropped: int
    seconds: float


class DeliveryCounter:
    """Counts what the hub's subscriptions delivered, a few seconds at a time."""

    def __init__(self, *, every: float = FLUSH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._counted: dict[str, _Counted] = {}
        self._last_flush = clock()
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # one flush at a time: each counts from the last

    def _pending(self, live: dict[str, Subscription], everything: bool
                 ) -> list[tuple[str, _Delta, bool]]:
        now = self._clock()
        for sub_id, sub in live.items():
            if sub_id not in self._counted:
                self._counted[sub_id] = _Counted(sub=sub, live_since=now)
        out = []
        for sub_id, counted in self._counted.items():
            ended = sub_id not in live
            if not (ended or everything):
                continue
            sub = counted.sub
            delta = _Delta(sub.subject_id, sub.app_id, sub.purpose_id,
                           max(0, sub.delivered - counted.delivered),
                           max(0, sub.dropped - counted.dropped),
                           max(0.0, now - counted.live_since))
            out.append((sub_id, delta, ended))
        return out

    def flush(self, gateway: Gateway, live: dict[str, Subscription], *,
              everything: bool = True) -> int:
        """Write the counts not yet stored, of every subscription or only of those no longer
        in ``live`` (a snapshot of the hub's); returns how many had something to add.
        Runs in a worker thread."""
        with self._lock:
            return self._flush(gateway, live, everything)

    def _flush(self, gateway: Gateway, live: dict[str, Subscription], everything: bool
               ) -> int:
        pending = self._pending(live, everything)
        written = [d for _, d, _ in pending if d.messages or d.dropped or d.seconds]
        if written:
            day = datetime.now(UTC).date()
            with gateway.transaction() as session:
                record_deliveries(session, [
                    DeliveryCount(d.subject_id, d.app_id, d.purpose_id, day, d.messages,
                                  d.dropped, d.seconds) for d in written])
        # Only once the transaction has committed do these counts count as stored.
        now = self._clock()
        for sub_id, delta, ended in pending:
            if ended:
                del self._counted[sub_id]
                continue
            counted = self._counted[sub_id]
            counted.delivered += delta.messages
            counted.dropped += delta.dropped
            counted.live_since = now
        return len(written)

    async def tick(self, gateway: Gateway) -> None:
        """Count ended subscriptions now, live ones if `every` seconds have passed."""
        live = {key: sub for key, sub in gateway.hub.subscriptions.items()
                if not getattr(sub, "internal", False)}  # apps only, not the recorder
        everything = self._clock() - self._last_flush >= self.every
        if not everything and live.keys() == self._counted.keys():
            return
        try:
            await run_in_threadpool(self.flush, gateway, live, everything=everything)
        except NeurogateError as exc:  # the store is down: keep the counts for next time
            log.warning("delivery counts not stored yet: %s", exc.code)
            return
        except Exception as exc:  # never let counting break the watcher; retried later
            log.warning("delivery counts not stored yet: %s", type(exc).__name__)
            return
        if everything:
            self._last_flush = self._clock()

    def poke(self, gateway: Gateway) -> None:
        """Start a `tick` in the background unless one is still running: the caller (the
        store-lease watcher) never waits for the store on the counters' behalf."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.tick(gateway))

    def close(self, gateway: Gateway) -> None:
        """Count everything not yet stored, as if every subscription had ended (when the
        watcher stops, at shutdown)."""
        try:
            self.flush(gateway, {})
        except NeurogateError as exc:
            log.warning("delivery counts lost at shutdown: %s", exc.code)


__all__ = ["FLUSH_SECONDS", "DeliveryCounter"]
