"""Delivery counters: live subscriptions counted per day, ended ones at once, none twice."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import select

from neurogate.consent.activity import record_delivery
from neurogate.consent.models import Delivery, utcnow
from neurogate.gateway.counters import DeliveryCounter
from neurogate.gateway.demo import DemoWorld, seed
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.gateway.streams import Grant, Subscription
from neurogate.settings import Settings


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _gateway(tmp_path: Path) -> tuple[Gateway, DemoWorld]:
    gateway = build_gateway(Settings(data_dir=tmp_path / "data", environment="test",
                                     password_hash_time_cost=1, password_hash_memory_kib=1024))
    return gateway, seed(gateway)


def _subscription(world: DemoWorld, ident: str) -> Subscription:
    return Subscription(id=ident, app_id=world.apps["focus"], subject_id=world.subjects["mia"],
                        pseudonym="p-mia", purpose_id="neurofeedback", binary=False,
                        grant=Grant(products={}, valid_until=utcnow().timestamp() + 3600))


def _rows(gateway: Gateway) -> list[tuple[int, int, float]]:
    with gateway.transaction() as session:
        return [(r.messages, r.dropped, r.seconds)
                for r in session.exec(select(Delivery)).all()]


def test_counter_adds_only_what_was_delivered_since_the_last_flush(tmp_path: Path) -> None:
    """Two flushes of a live subscription, then its end: the day's row holds the total."""
    gateway, world = _gateway(tmp_path)
    clock = Clock()
    counter = DeliveryCounter(clock=clock)
    sub = _subscription(world, "s1")
    gateway.hub.subscriptions[sub.id] = sub
    assert counter.flush(gateway, dict(gateway.hub.subscriptions)) == 0  # first seen, nothing
    sub.delivered, sub.dropped = 10, 1
    clock.now += 5
    assert counter.flush(gateway, dict(gateway.hub.subscriptions)) == 1
    assert _rows(gateway) == [(10, 1, 5.0)]
    sub.delivered = 25
    clock.now += 2
    del gateway.hub.subscriptions[sub.id]  # the app went away
    assert counter.flush(gateway, {}, everything=False) == 1
    assert _rows(gateway) == [(25, 1, 7.0)]
    clock.now += 5
    assert counter.flush(gateway, {}) == 0  # an ended subscription is never counted again
    assert _rows(gateway) == [(25, 1, 7.0)]


def test_counter_leaves_live_subscriptions_until_their_turn(tmp_path: Path) -> None:
    """Between full flushes only ended subscriptions are written."""
    gateway, world = _gateway(tmp_path)
    counter = DeliveryCounter(clock=Clock())
    live, ended = _subscription(world, "live"), _subscription(world, "ended")
    counter.flush(gateway, {"live": live, "ended": ended})
    live.delivered, ended.delivered = 5, 3
    assert counter.flush(gateway, {"live": live}, everything=False) == 1
    assert _rows(gateway) == [(3, 0, 0.0)]


def test_tick_runs_from_the_event_loop_and_close_counts_the_rest(tmp_path: Path) -> None:
    """``tick`` (as the lease watcher calls it) stores ended subscriptions; ``close``
    stores the live rest at shutdown."""
    gateway, world = _gateway(tmp_path)
    counter = DeliveryCounter(clock=Clock())
    sub = _subscription(world, "s1")
    gateway.hub.subscriptions[sub.id] = sub

    async def run() -> None:
        await counter.tick(gateway)  # sees the new subscription
        sub.delivered = 7
        await counter.tick(gateway)  # nothing ended, not yet time: nothing written

    # Its own thread: a browser test earlier in the session may hold this thread's loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()
    assert _rows(gateway) == []
    counter.close(gateway)
    assert _rows(gateway) == [(7, 0, 0.0)]


def test_counts_for_an_erased_subject_are_dropped(tmp_path: Path) -> None:
    """A count arriving after erasure writes nothing."""
    gateway, world = _gateway(tmp_path)
    from neurogate.consent.models import Subject

    with gateway.transaction() as session:
        subject = session.get(Subject, world.subjects["mia"])
        assert subject is not None
        subject.erased_at = datetime.now(UTC)
        session.add(subject)
    with gateway.transaction() as session:
        record_delivery(session=session, subject_id=world.subjects["mia"],
                        app_id=world.apps["focus"], purpose_id="neurofeedback",
                        day=datetime.now(UTC).date(), messages=4)
    assert _rows(gateway) == []
