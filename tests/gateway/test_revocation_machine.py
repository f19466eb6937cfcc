"""A state machine over consents and live streams: nothing flows after a revocation.

Hypothesis drives grant, revoke, expire, device frames, subscribe (decide, then register,
as the endpoint does across an await, so other steps may come between), unsubscribe,
delivery and "settle" steps against one gateway: real database (SQLite and PostgreSQL),
real consent functions, real stream hub, with the app lifespan running on the
TestClient's event loop, so that re-evaluations after commits run concurrently with the
steps as in production. Device frames are ingested on that loop (as in production) or
on the test thread.

Every consent commit and every device frame gets a stamp from one step clock; a message
maps back to the frame that made it through the subscription's ``seq``. A message taken
from a subscription's queue is "delivered" if it passes the checks `_send_loop` makes at
send time. The safety property: a delivered message was made while the consent was active
(after its last grant and before any later revocation or expiry commit), and nothing is
delivered while the consent is closed. Liveness: once re-evaluations settle, every
subscription whose consent is active is open and receives data.

The tests at the end force, one at a time, interleavings the machine's steps cannot reach.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from neurogate_client.wire import CloseCode, Hello, decode_header, encode_frame
from sqlalchemy import event
from sqlmodel import Session, select

from neurogate.consent.access import Principal
from neurogate.consent.consents import (
    REVOKED_KEY,
    app_pseudonym_of,
    expire_due,
    grant_consent,
    revoke_consent,
)
from neurogate.consent.models import Consent
from neurogate.consent.schemas import ConsentCreate
from neurogate.gateway import egress
from neurogate.gateway.app import create_app
from neurogate.gateway.deps import principal_for_token
from neurogate.gateway.egress import Refusal, decide_grant
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.gateway.streams import Grant, LiveStream, StreamHub, Subscription
from neurogate.settings import Settings
from tests.gateway.conftest import BASE_URL, FAST_HASHING, Clinic, build_clinic, notice

RATE_HZ = 250.0  # the clinic's devices
CHUNK = 5  # samples per device frame (20 ms)
BURST = 250  # samples a device may send ahead of real time (the hub allows more)
MAX_SUBSCRIPTIONS = 6
MIN_STEPS = 500
# derandomize: the same draws every run, so the coverage checks below cannot miss by chance
MACHINE_SETTINGS = settings(max_examples=20, stateful_step_count=50, deadline=None,
                            derandomize=True, database=None,
                            suppress_health_check=[HealthCheck.too_slow])
KEYS = ("clinic", "research", "child")
STREAMED = ("adult1", "child2")


@dataclass(eq=False)
class Key:
    """One (subject, app, purpose) consent and who grants and revokes it."""

    subject: str  # clinic label
    subject_id: str
    app_id: str
    purpose_id: str
    granter: Principal
    revokers: tuple[Principal, ...]
    terms: dict[str, Any]  # extra ConsentCreate fields of the granter
    pseudonym: str = ""
    consent_id: str | None = None  # the active consent, if any
    valid_until: datetime | None = None


@dataclass(eq=False)
class Device:
    """A device stream on the hub, paced to real time."""

    stream: LiveStream
    t0: float = field(default_factory=time.time)
    samples: int = 0
    sequence: int = 0
    credit: float = BURST  # a token bucket well inside the hub's rate limit
    credit_at: float = field(default_factory=time.monotonic)

    def frame(self) -> bytes:
        """The next frame: two sines in microvolts, timed right after the previous one."""
        now = time.monotonic()
        self.credit = min(BURST, self.credit + (now - self.credit_at) * RATE_HZ)
        if self.credit < CHUNK:
            time.sleep((CHUNK - self.credit) / RATE_HZ)
            self.credit = CHUNK
            now = time.monotonic()
        self.credit -= CHUNK
        self.credit_at = now
        t = (self.samples + np.arange(CHUNK)) / RATE_HZ
        data = np.vstack([20 * np.sin(2 * np.pi * 10 * t), 15 * np.cos(2 * np.pi * 7 * t)])
        frame = encode_frame(data, sequence=self.sequence,
                             timestamp=self.t0 + self.samples / RATE_HZ)
        self.samples += CHUNK
        self.sequence += 1
        return frame


@dataclass(eq=False)
class World:
    """The gateway and its clinic, shared by every run of the machine, and the counts."""

    gateway: Gateway
    client: TestClient
    keys: dict[str, Key]
    devices: dict[str, Device]
    clock: int = 0
    steps: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def settle(self) -> None:
        """Wait until every re-evaluation has finished and the store lease is fresh."""
        self.client.portal.call(_settle, self.gateway)


async def _settle(gateway: Gateway) -> None:
    deadline = asyncio.get_running_loop().time() + 10.0
    while True:
        await asyncio.sleep(0)  # let on_change callbacks queued by commits create tasks
        pending = [t for t in asyncio.all_tasks()
                   if getattr(t.get_coro(), "cr_code", None) is egress.reevaluate.__code__]
        if not pending and gateway.hub.store_ok():
            return
        assert asyncio.get_running_loop().time() < deadline, "re-evaluations never finished"
        if pending:
            await asyncio.wait(pending)
        else:
            await asyncio.sleep(0.05)


async def _send(gateway: Gateway, sub: Subscription) -> list[str | bytes]:
    """What `_send_loop` sends now, with the same checks in the same order."""
    sent: list[str | bytes] = []
    while sub.closing is None:
        item = sub.take(max_age=3600.0)  # the machine's steps are slow, not the app
        if item is None:
            break
        if not gateway.hub.may_deliver(sub):  # checked again at the last moment
            sub.withhold()
            sub.dropped += 1
            sub.unreported_drops += 1
            break
        sub.unreported_drops = 0  # a gap goes out before the next message
        sent.append(item)
        sub.delivered += 1
        await asyncio.sleep(0)  # the send awaits: other tasks run here
    return sent


def _sequence(message: str | bytes) -> int:
    if isinstance(message, bytes):
        return decode_header(message).sequence
    return int(json.loads(message)["seq"])


def _midnight(days: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days)


def _grant(world: World, key: Key, valid_until: datetime) -> None:
    gateway = world.gateway
    request = ConsentCreate.model_validate({
        "subject_id": key.subject_id, "app_id": key.app_id, "purpose_id": key.purpose_id,
        "notice": notice(key.purpose_id), "valid_until": valid_until, **key.terms})
    with gateway.transaction() as session:
        consent, _ = grant_consent(session=session, ledger=gateway.ledger,
                                   principal=key.granter, request=request)
        key.consent_id, key.valid_until = consent.id, valid_until


def _revoke(world: World, key: Key, who: Principal,
            before_commit: Callable[[Session], None] | None = None) -> None:
    """Revoke the key's consent; ``before_commit`` runs after the gateway paused streams."""
    gateway = world.gateway
    with gateway.transaction() as session:
        revoke_consent(session=session, ledger=gateway.ledger, principal=who,
                       consent_id=key.consent_id or "", reason="withdrawn in a test")
        if before_commit is not None:
            event.listen(session, "before_commit", before_commit)  # after the gateway's
    key.consent_id = key.valid_until = None


@dataclass(eq=False)
class Decision:
    """What the subscribe endpoint holds between deciding and registering."""

    key: Key
    mark: tuple[int, int]
    outcome: Grant | Refusal


def _decide(world: World, key: Key) -> Decision:
    """The subscribe endpoint's first half: note the change mark, then decide."""
    mark = world.gateway.hub.change_mark(key.subject_id, key.app_id)
    return Decision(key, mark, decide_grant(world.gateway, app_id=key.app_id,
                                            subject_id=key.subject_id,
                                            purpose_id=key.purpose_id))


def _register(world: World, decision: Decision, *, binary: bool = False) -> Subscription:
    """The second half: register; decide again if a consent change came in meanwhile."""
    key, grant = decision.key, decision.outcome
    assert isinstance(grant, Grant)
    sub = Subscription(id=uuid.uuid4().hex, app_id=key.app_id, subject_id=key.subject_id,
                       pseudonym=key.pseudonym, purpose_id=key.purpose_id, binary=binary,
                       grant=grant)
    stale = world.gateway.hub.subscribe(sub, decision.mark)
    if stale is not None:  # mirrors routes/streams.py::subscribe_stream
        world.count("decided again")
        world.client.portal.call(egress.spawn_reevaluation, world.gateway, sub, stale)
    return sub


def _active_ids(world: World, key: Key) -> list[str]:
    with world.gateway.transaction() as session:
        return list(session.exec(select(Consent.id).where(
            Consent.subject_id == key.subject_id, Consent.app_id == key.app_id,
            Consent.purpose_id == key.purpose_id, Consent.status == "active")).all())


def _build_world(clinic: Clinic, gateway: Gateway) -> World:
    def person(username: str) -> Principal:
        token = clinic.as_(username)["Authorization"].removeprefix("Bearer ")
        return principal_for_token(gateway, token)

    ids = clinic.ids
    guard2 = person("guard2")
    keys = {
        "clinic": Key("adult1", ids["adult1"], ids["clinic_app"], "clinical_monitoring",
                      person("adult1"), (person("adult1"), person("clin1")), {}),
        "research": Key("adult1", ids["adult1"], ids["research_app"], "clinical_monitoring",
                        person("clin1"), (person("adult1"), person("clin1")), {}),
        # A clinician records the guardian's consent and the child's assent together.
        "child": Key("child2", ids["child2"], ids["research_app"], "clinical_monitoring",
                     person("clin2"), (guard2, person("clin2")),
                     {"capacity": "guardian", "guardian_account_id": guard2.id,
                      "assent": "given"}),
    }
    world = World(gateway=gateway, client=clinic.client, keys=keys, devices={})
    for key in keys.values():
        _grant(world, key, _midnight(180))  # supersedes the clinic's own consents
        with gateway.transaction() as session:
            key.pseudonym = app_pseudonym_of(session, key.app_id, key.subject_id) or ""
    hello = Hello(("C3", "C4"), ("eeg", "eeg"), ("uV", "uV"), RATE_HZ)
    for subject, device, clinician in [("adult1", "dev1", "clin1"), ("child2", "dev2", "clin2")]:
        response = clinic.client.post(f"/v1/devices/{ids[device]}/pairing",
                                      headers=clinic.as_(clinician),
                                      json={"subject_id": ids[subject]})
        assert response.status_code == 200, response.text
        stream = LiveStream(device_id=ids[device], subject_id=ids[subject], hello=hello)
        gateway.hub.open_stream(stream)
        world.devices[subject] = Device(stream)
    return world


@dataclass(eq=False)
class Tracked:
    """A subscription of the machine and the step at which each of its messages was made."""

    sub: Subscription
    key: str
    created: int
    produced: dict[int, int] = field(default_factory=dict)  # message seq -> frame stamp


class RevocationMachine(RuleBasedStateMachine):
    """Consent changes and live data, checked against a model of what was committed."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.history: dict[str, list[tuple[int, str]]] = {}
        self.tracked: list[Tracked] = []
        self.deciding: list[tuple[int, str, Decision]] = []  # decided, not yet registered

    # -- the model ------------------------------------------------------------------
    def active_at(self, label: str, stamp: int) -> bool:
        """Whether the last commit for ``label`` before ``stamp`` left a consent active."""
        before = [kind for at, kind in self.history[label] if at < stamp]
        return bool(before) and before[-1] == "grant"

    def active(self) -> list[str]:
        return [label for label in KEYS if self.world.keys[label].consent_id is not None]

    def committed(self, label: str, kind: str) -> None:
        key = self.world.keys[label]
        self.history[label].append((self.world.tick(), kind))
        if kind == "expire":
            key.consent_id = key.valid_until = None
        assert _active_ids(self.world, key) == ([key.consent_id] if key.consent_id else [])

    def step(self, name: str) -> None:
        self.world.steps += 1
        self.world.count(name)

    # -- consent changes ------------------------------------------------------------
    @initialize(binary=st.booleans())
    def start(self, binary: bool) -> None:
        """Grant every consent afresh (runs must not depend on earlier ones); subscribe."""
        for label in KEYS:
            _grant(self.world, self.world.keys[label], _midnight(180))
        self.world.settle()  # the grants' and the previous run's re-evaluations
        stamp = self.world.tick()
        for label in KEYS:
            self.history[label] = [(stamp, "grant")]
        for label in KEYS:
            self.decide_now(label)
            self.register_oldest(binary)

    @rule(label=st.sampled_from(KEYS), days=st.integers(2, 360))
    def grant(self, label: str, days: int) -> None:
        self.step("grant")
        _grant(self.world, self.world.keys[label], _midnight(days))
        self.committed(label, "grant")

    @precondition(lambda self: self.active())
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        self.step("revoke")
        label = data.draw(st.sampled_from(self.active()))
        key = self.world.keys[label]
        _revoke(self.world, key, data.draw(st.sampled_from(key.revokers)))
        self.committed(label, "revoke")

    @precondition(lambda self: self.active())
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        """Run the expiry sweep as of an hour after one consent's end."""
        self.step("expire")
        keys = self.world.keys
        label = data.draw(st.sampled_from(self.active()))
        now = (keys[label].valid_until or _midnight(0)) + timedelta(hours=1)
        due = [x for x in self.active() if (keys[x].valid_until or now) <= now]
        gateway = self.world.gateway
        with gateway.transaction() as session:
            changed = expire_due(session=session, ledger=gateway.ledger, now=now)
        assert sorted(changed) == sorted(keys[x].subject_id for x in due)
        for x in due:
            self.committed(x, "expire")

    # -- subscriptions --------------------------------------------------------------
    # The subscribe endpoint decides, then awaits a thread, then registers: other steps
    # (a revocation, say) may run in between.
    @precondition(lambda self: len(self.tracked) + len(self.deciding) < MAX_SUBSCRIPTIONS)
    @rule(label=st.sampled_from(KEYS))
    def decide(self, label: str) -> None:
        self.step("decide")
        self.decide_now(label)

    def decide_now(self, label: str) -> None:
        """An app asks to subscribe: refused exactly when the consent is closed."""
        decision = _decide(self.world, self.world.keys[label])
        stamp = self.world.tick()
        refused = isinstance(decision.outcome, Refusal)
        assert refused == (not self.active_at(label, stamp)), decision.outcome
        if not refused:
            self.deciding.append((stamp, label, decision))

    @precondition(lambda self: self.deciding)
    @rule(binary=st.booleans())
    def register(self, binary: bool) -> None:
        self.step("register")
        self.register_oldest(binary)

    def register_oldest(self, binary: bool) -> None:
        """The oldest decision's subscription is registered (decided again if stale)."""
        stamp, label, decision = self.deciding.pop(0)
        sub = _register(self.world, decision, binary=binary)
        self.tracked.append(Tracked(sub, label, stamp))

    @precondition(lambda self: self.tracked)
    @rule(data=st.data())
    def unsubscribe(self, data: st.DataObject) -> None:
        self.step("unsubscribe")
        tracked = data.draw(st.sampled_from(self.tracked))
        self.world.gateway.hub.unsubscribe(tracked.sub)
        self.tracked.remove(tracked)

    # -- data -----------------------------------------------------------------------
    def push(self, batch: list[tuple[int, Device, bytes]]) -> None:
        """Ingest frames and note, for every message they made, the frame's stamp."""
        hub = self.world.gateway.hub
        for stamp, device, frame in batch:
            before = {id(t): t.sub.sequence for t in self.tracked}
            assert hub.ingest(device.stream, frame) == []
            for t in self.tracked:
                for seq in range(before[id(t)] + 1, t.sub.sequence + 1):
                    t.produced[seq] = stamp

    @rule(subject=st.sampled_from(STREAMED), frames=st.integers(1, 3), on_loop=st.booleans())
    def stream(self, subject: str, frames: int, on_loop: bool) -> None:
        """Device frames, ingested on the event loop (as in production) or on this thread."""
        self.step("stream")
        device = self.world.devices[subject]
        batch = [(self.world.tick(), device, device.frame()) for _ in range(frames)]
        if on_loop:
            self.world.client.portal.call(self.push, batch)
        else:
            self.push(batch)

    def deliver(self, tracked: Tracked) -> list[str | bytes]:
        at = self.world.tick()
        sent = self.world.client.portal.call(_send, self.world.gateway, tracked.sub)
        for message in sent:
            made = tracked.produced[_sequence(message)]
            label = tracked.key
            assert self.active_at(label, made), (
                f"A message made at step {made} was delivered for the {label!r} consent, "
                f"whose commits were {self.history[label]}.")
            assert self.active_at(label, at), (
                f"A message was delivered at step {at} while the {label!r} consent was "
                f"closed; its commits were {self.history[label]}.")
        self.world.count("delivered", len(sent))
        return sent

    @precondition(lambda self: self.tracked)
    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        self.step("send")
        self.deliver(data.draw(st.sampled_from(self.tracked)))

    @rule()
    def settle(self) -> None:
        self.step("settle")
        self.check_settled()

    def check_settled(self) -> None:
        """Once re-evaluations are done, subscriptions are open exactly while consented,
        and data reach every open one."""
        self.world.settle()
        now = self.world.tick()
        live = []
        for t in self.tracked:
            closes = [at for at, kind in self.history[t.key] if kind != "grant" and at > t.created]
            if t.sub.closing is not None:
                assert closes, f"{t.key!r} was revoked though its consent never closed"
                code, message = t.sub.closing
                assert (code, message["type"]) == (CloseCode.REVOKED, "revoked")
            else:
                assert self.active_at(t.key, now), f"{t.key!r} outlived its consent"
                assert t.sub.open, f"{t.key!r} stays paused though its consent is active"
                self.deliver(t)  # what was queued before
                live.append(t)
        subjects = {self.world.keys[t.key].subject for t in live}
        self.push([(self.world.tick(), self.world.devices[s], self.world.devices[s].frame())
                   for s in subjects])
        for t in live:
            assert self.deliver(t), f"nothing reached {t.key!r} though its consent is active"
            self.world.count("liveness")

    @invariant()
    def nothing_open_without_consent(self) -> None:
        """No subscription is open while the model says its consent is closed."""
        now = self.world.clock + 1
        for t in self.tracked:
            if not self.active_at(t.key, now):
                assert not t.sub.open, f"{t.key!r} is open after {self.history[t.key][-1]}"

    def teardown(self) -> None:
        try:
            while self.deciding:
                self.register_oldest(binary=False)
            self.check_settled()
        finally:
            for t in self.tracked:
                self.hub_of(t).unsubscribe(t.sub)

    def hub_of(self, tracked: Tracked) -> StreamHub:
        """The hub ``tracked`` is subscribed in (the one gateway's here)."""
        return self.world.gateway.hub


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    """A gateway with its lifespan running, a clinic, three consents and two device streams."""
    settings_ = Settings(data_dir=tmp_path / "data", database_url=db_url,
                         environment="test", **FAST_HASHING)
    gateway = build_gateway(settings_)
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as client:
        yield _build_world(build_clinic(client, gateway), gateway)


def test_revocation_machine_never_delivers_after_revocation(world: World) -> None:
    """No message made after a revocation or expiry committed ever reaches the app."""
    run_state_machine_as_test(lambda: RevocationMachine(world), settings=MACHINE_SETTINGS)
    print(f"revocation machine: {world.steps} steps, {world.counts}")
    assert world.steps >= MIN_STEPS, world.counts
    for what in ("revoke", "expire", "delivered", "liveness", "decided again"):
        assert world.counts.get(what, 0) > 0, f"no {what!r} in {world.counts}"


# -- Interleavings the machine's steps cannot reach, forced one at a time ------------------
# Each of these once reproduced a bug (a decision or a reopening that slipped in between a
# revocation's pause and its commit); they now guard the fixes.

REACHES = "A frame made after the revocation committed would reach the app."


def _subscribed(world: World, key: Key) -> Subscription:
    """A settled subscription to the key's (active) consent."""
    decision = _decide(world, key)
    if not isinstance(decision.outcome, Grant):
        pytest.fail(f"The {key.purpose_id!r} consent should be active: {decision.outcome}.")
    sub = _register(world, decision)
    world.settle()
    return sub


def _deliverable_after_revocation(world: World, key: Key, sub: Subscription) -> bool:
    """Whether a frame made now (after the revocation committed) would reach the app."""
    device = world.devices[key.subject]
    world.gateway.hub.ingest(device.stream, device.frame())
    return bool(sub.queue) and world.gateway.hub.may_deliver(sub)


async def _hold(started: threading.Event, release: threading.Event) -> None:
    started.set()
    release.wait(10)  # blocks the event loop: a loop busy with other streams


def _hold_loop(world: World) -> threading.Event:
    """Keep the event loop busy until the returned event is set."""
    started, release = threading.Event(), threading.Event()
    world.client.portal.start_task_soon(_hold, started, release)
    if not started.wait(10):
        pytest.fail("The event loop never ran the blocking task.")
    return release


def test_revocation_between_decision_and_registration_stops_delivery(world: World) -> None:
    """A revocation committed while the subscribe endpoint awaits revokes that subscription."""
    key = world.keys["clinic"]
    decision = _decide(world, key)
    assert isinstance(decision.outcome, Grant)
    _revoke(world, key, key.revokers[0])  # commits while the endpoint awaits a thread
    sub = _register(world, decision)
    world.settle()
    assert not _deliverable_after_revocation(world, key, sub), REACHES
    assert sub.closing is not None and sub.closing[0] == CloseCode.REVOKED


POSTGRES_ONLY = pytest.mark.parametrize(  # SQLite's BEGIN IMMEDIATE serialises the reads
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)


@POSTGRES_ONLY
def test_decision_read_before_revocation_commits_is_decided_again(world: World) -> None:
    """A subscribe decision read while a revocation commits does not open the subscription."""
    key = world.keys["clinic"]
    decisions: list[Decision] = []

    def meanwhile(session: Session) -> None:  # paused, not yet committed
        decisions.append(_decide(world, key))

    _revoke(world, key, key.revokers[0], before_commit=meanwhile)
    if not isinstance(decisions[0].outcome, Grant):
        pytest.fail("The decision should have read the consent before the revocation.")
    sub = _register(world, decisions[0])
    world.settle()
    assert not _deliverable_after_revocation(world, key, sub), REACHES


@POSTGRES_ONLY
def test_reevaluation_queued_before_revocation_does_not_reopen(world: World) -> None:
    """A re-evaluation from an earlier change cannot reopen after a later revocation."""
    key = world.keys["clinic"]
    sub = _subscribed(world, key)
    holds = [_hold_loop(world)]
    _grant(world, world.keys["research"], _midnight(90))  # pauses sub; re-evaluation waits

    def meanwhile(session: Session) -> None:
        if sub.open:
            pytest.fail("The revocation did not pause the subscription before committing.")
        holds[0].set()
        world.settle()  # the queued re-evaluation runs now, before the revocation commits
        holds.append(_hold_loop(world))  # the revocation's own re-evaluation waits

    try:
        _revoke(world, key, key.revokers[0], before_commit=meanwhile)
        assert not _deliverable_after_revocation(world, key, sub), REACHES
    finally:
        holds[-1].set()
        world.settle()


def test_revocation_between_generation_check_and_reopening_stops_delivery(
        world: World) -> None:
    """A revocation that pauses a subscription while it is being reopened still stops it."""
    key = world.keys["clinic"]
    sub = _subscribed(world, key)
    lines, first = inspect.getsourcelines(egress.reevaluate)
    reopen = first + next(i for i, line in enumerate(lines)
                          if "gateway.hub.reopen(" in line)
    checked, revoked, reopened, resume = (threading.Event() for _ in range(4))

    def trace_reevaluate(frame: Any, what: str, arg: Any) -> Any:
        # A thread switch on the loop right after the generation check, and again when
        # the re-evaluation returns (so the revocation's own one has not run yet).
        if what == "line" and frame.f_lineno == reopen and not checked.is_set():
            checked.set()
            revoked.wait(10)
        elif what == "return" and checked.is_set() and frame.f_lineno >= reopen:
            reopened.set()
            resume.wait(10)
        return trace_reevaluate

    def tracer(frame: Any, what: str, arg: Any) -> Any:
        return trace_reevaluate if frame.f_code is egress.reevaluate.__code__ else None

    previous = world.client.portal.call(sys.gettrace)
    world.client.portal.call(sys.settrace, tracer)
    try:
        _grant(world, world.keys["research"], _midnight(90))  # pauses sub, then reopens it
        if not checked.wait(10):
            pytest.fail("The re-evaluation never reached its reopening.")
        _revoke(world, key, key.revokers[0])
        revoked.set()
        if not reopened.wait(10):
            pytest.fail("The re-evaluation never finished.")
        assert not _deliverable_after_revocation(world, key, sub), REACHES
    finally:
        revoked.set()
        resume.set()
        world.client.portal.call(sys.settrace, previous)
        world.settle()


# -- A revoked consent ends what rested on it at once ---------------------------------------

def _decisions_counted(world: World, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The apps that ``decide_grant`` decides for from now on (re-evaluations included)."""
    decided: list[str] = []

    def counting(gateway: Gateway, **kwargs: Any) -> Grant | Refusal:
        decided.append(kwargs["app_id"])
        return decide_grant(gateway, **kwargs)

    monkeypatch.setattr(egress, "decide_grant", counting)
    return decided


def test_revoking_the_latest_consent_refuses_its_subscriptions_without_deciding_again(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The subscription resting on the revoked consent gets ``revoked`` (4410) with the
    reason a decision would give, and no decision is made for it; the subject's other
    subscription, paused by the same change, is decided again and reopens."""
    clinic, research = world.keys["clinic"], world.keys["research"]
    sub, other = _subscribed(world, clinic), _subscribed(world, research)
    decided = _decisions_counted(world, monkeypatch)
    _revoke(world, clinic, clinic.revokers[0])
    world.settle()
    assert sub.closing is not None and sub.closing[0] == CloseCode.REVOKED
    message = sub.closing[1]
    assert message["reasons"] == ["consent.revoked"] and message["reason"] == "consent.revoked"
    assert message["explanations"] and all(message["explanations"])
    assert decided == [research.app_id]  # the other app only
    assert other.open and other.closing is None
    assert not _deliverable_after_revocation(world, clinic, sub), REACHES


def test_a_revocation_that_rolls_back_decides_again_and_reopens(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit that fails after the pause revoked nothing: the paused subscription is
    decided again and receives again."""
    key = world.keys["clinic"]
    sub = _subscribed(world, key)
    consent_id = key.consent_id
    decided = _decisions_counted(world, monkeypatch)
    paused: list[bool] = []

    def failing(session: Session) -> None:  # after the gateway paused the streams
        paused.append(sub.open)
        failure = "the commit fails after the pause"
        raise RuntimeError(failure)

    with pytest.raises(RuntimeError, match="the commit fails"):
        _revoke(world, key, key.revokers[0], before_commit=failing)
    key.consent_id = consent_id
    world.settle()
    assert paused == [False]
    assert decided == [key.app_id]
    assert sub.open and sub.closing is None
    assert _active_ids(world, key) == [consent_id]
    assert _deliverable_after_revocation(world, key, sub)


def test_a_new_grant_supersedes_without_refusing_and_a_revocation_names_its_consent(
        world: World) -> None:
    """A grant that supersedes the consent a subscription rests on names no consent to
    refuse: the subscription is decided again onto the new one and stays open. Revoking
    that one names exactly it."""
    key = world.keys["clinic"]
    sub = _subscribed(world, key)
    older = key.consent_id
    with world.gateway.transaction() as session:
        request = ConsentCreate.model_validate({
            "subject_id": key.subject_id, "app_id": key.app_id, "purpose_id": key.purpose_id,
            "notice": notice(key.purpose_id), "valid_until": _midnight(90), **key.terms})
        consent, _ = grant_consent(session=session, ledger=world.gateway.ledger,
                                   principal=key.granter, request=request)
        superseding = set(session.info.get(REVOKED_KEY, ()))
    key.consent_id = consent.id
    world.settle()
    assert superseding == set()
    assert sub.open and sub.closing is None and sub.grant.consent_id == consent.id != older
    with world.gateway.transaction() as session:
        revoke_consent(session=session, ledger=world.gateway.ledger,
                       principal=key.revokers[0], consent_id=consent.id)
        revoking = set(session.info.get(REVOKED_KEY, ()))
    key.consent_id = None
    world.settle()
    assert revoking == {consent.id}
    assert sub.closing is not None and sub.closing[0] == CloseCode.REVOKED
