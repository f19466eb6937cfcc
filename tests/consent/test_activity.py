"""Activity: per-day delivery counts and the ledger's stream leaves, for who may see them."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from neurogate.consent.access import Principal
from neurogate.consent.activity import MAX_DAYS, activity_for, record_delivery
from neurogate.consent.models import Account, Subject
from neurogate.errors import NotFoundError, ValidationError
from neurogate.gateway.demo import DemoWorld, seed
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings

TODAY = date(2026, 12, 1)


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Gateway, DemoWorld]:
    gateway = build_gateway(Settings(data_dir=tmp_path / "data", environment="test",
                                     password_hash_time_cost=1, password_hash_memory_kib=1024))
    return gateway, seed(gateway)


def _principal(gateway: Gateway, username: str) -> Principal:
    with gateway.transaction() as session:
        account = session.exec(select(Account).where(Account.username == username)).one()
        return Principal(kind="account", id=account.id, role=account.role,
                         subject_id=account.subject_id)


def test_activity_sums_counts_per_app_and_day_within_the_span(
        demo: tuple[Gateway, DemoWorld]) -> None:
    """Counts add up per day; days outside the span are left out; every day is present."""
    gateway, world = demo
    mia, focus = world.subjects["mia"], world.apps["focus"]
    guardian = _principal(gateway, "parent.chen")
    with gateway.transaction() as session:
        for day, messages in [(TODAY, 5), (TODAY, 7), (TODAY - timedelta(days=3), 2),
                              (TODAY - timedelta(days=30), 99)]:
            record_delivery(session=session, subject_id=mia, app_id=focus,
                            purpose_id="neurofeedback", day=day, messages=messages)
        activity = activity_for(session=session, ledger=gateway.ledger,
                                principal=guardian, subject_id=mia,
                                days=7, today=TODAY)
    table = activity.messages_by_app()
    assert list(table) == [focus]
    assert len(table[focus]) == 7
    assert table[focus][TODAY] == 12
    assert table[focus][TODAY - timedelta(days=3)] == 2
    assert sum(table[focus].values()) == 14
    assert activity.app_names[focus] == "FocusQuest Neurofeedback"


def test_activity_pairs_stream_leaves_into_connections(demo: tuple[Gateway, DemoWorld]) -> None:
    """A start and a stop become one connection; a start alone is still live; a denial is
    a refused request."""
    gateway, world = demo
    with gateway.transaction() as session:
        mia = session.get(Subject, world.subjects["mia"])
        assert mia is not None
        ledger, app = gateway.ledger, world.apps["focus"]
        ledger.append(session, action="stream.start", app=app, subject=mia.pseudonym,
                      purpose="neurofeedback", stream="a")
        ledger.append(session, action="stream.stop", app=app, subject=mia.pseudonym,
                      purpose="neurofeedback", stream="a", frames=30, dropped=1)
        ledger.append(session, action="stream.start", app=app, subject=mia.pseudonym,
                      purpose="neurofeedback", stream="b")
        ledger.append(session, action="stream.deny", app=world.apps["adlab"],
                      subject=mia.pseudonym, purpose="neuromarketing",
                      reasons=["child-no-neuromarketing"])
    child = _principal(gateway, "mia")
    with gateway.transaction() as session:
        activity = activity_for(session=session, ledger=gateway.ledger, principal=child,
                                subject_id=mia.id)
    by_stream = {s.stream: s for s in activity.sessions}
    assert by_stream["a"].messages == 30 and by_stream["a"].dropped == 1
    assert by_stream["a"].stopped_at is not None
    assert by_stream["b"].stopped_at is None and by_stream["b"].messages is None
    assert [r.reasons for r in activity.refusals] == [("child-no-neuromarketing",)]
    exported = activity.as_json()
    assert {s["stream"] for s in exported["streams"]} >= {"a", "b"}


def test_activity_of_someone_else_is_not_found(demo: tuple[Gateway, DemoWorld]) -> None:
    """Alex cannot read Mia's activity: it looks like no such subject."""
    gateway, world = demo
    alex = _principal(gateway, "alex")
    with gateway.transaction() as session, pytest.raises(NotFoundError):
        activity_for(session=session, ledger=gateway.ledger, principal=alex,
                     subject_id=world.subjects["mia"])


@pytest.mark.parametrize("days", [0, MAX_DAYS + 1])
def test_activity_span_outside_the_allowed_days_is_refused(
        demo: tuple[Gateway, DemoWorld], days: int) -> None:
    """The span is 1 to MAX_DAYS days; the message says so."""
    gateway, world = demo
    alex = _principal(gateway, "alex")
    with gateway.transaction() as session, pytest.raises(
            ValidationError, match=rf"Allowed values are 1 to {MAX_DAYS}, but got {days}"):
        activity_for(session=session, ledger=gateway.ledger, principal=alex,
                     subject_id=world.subjects["alex"], days=days)


def test_record_delivery_refuses_negative_counts(demo: tuple[Gateway, DemoWorld]) -> None:
    """A negative count is a programming error, named with its value."""
    gateway, world = demo
    with gateway.transaction() as session, pytest.raises(
            ValidationError, match="'messages' parameter. It must be zero or more, but got -1"):
        record_delivery(session=session, subject_id=world.subjects["mia"],
                        app_id=world.apps["focus"], purpose_id="neurofeedback", day=TODAY,
                        messages=-1)


def test_record_delivery_adds_up_on_every_store(db_url: str, tmp_path: Path) -> None:
    """SQLite and PostgreSQL: the second count of a day adds to the first (one upsert)."""
    gateway = build_gateway(Settings(data_dir=tmp_path / "data", database_url=db_url,
                                     environment="test", password_hash_time_cost=1,
                                     password_hash_memory_kib=1024))
    world = seed(gateway)
    for messages in (3, 4):
        with gateway.transaction() as session:
            record_delivery(session=session, subject_id=world.subjects["alex"],
                            app_id=world.apps["clinic"], purpose_id="clinical_monitoring",
                            day=TODAY, messages=messages, dropped=1, seconds=1.5)
    alex = _principal(gateway, "alex")
    with gateway.transaction() as session:
        activity = activity_for(session=session, ledger=gateway.ledger, principal=alex,
                                subject_id=world.subjects["alex"], days=1, today=TODAY)
    assert [(c.messages, c.dropped, c.seconds) for c in activity.counts] == [(7, 2, 3.0)]
    gateway.engine.dispose()


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_one_flush_adds_every_count_in_one_statement_and_drops_the_erased(
        store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A flush of many subscriptions, two of them for the same app, purpose and day, adds
    up in one row; a count for an erased subject leaves nothing; PostgreSQL and SQLite
    agree (a second flush increments the same rows)."""
    from neurogate.consent.activity import DeliveryCount, record_deliveries
    from neurogate.consent.models import Delivery

    DAY = date(2020, 1, 1)  # a day the demo's own activity does not touch
    url = request.getfixturevalue("postgres_database") if store == "postgres" else None
    gateway = build_gateway(Settings(data_dir=tmp_path / "data", environment="test",
                                     database_url=url, password_hash_time_cost=1,
                                     password_hash_memory_kib=1024))
    world = seed(gateway)
    mia, leo, focus = world.subjects["mia"], world.subjects["alex"], world.apps["focus"]
    with gateway.transaction() as session:
        erased = session.get(Subject, leo)
        assert erased is not None
        erased.erased_at = erased.created_at
        session.add(erased)
    counts = [DeliveryCount(mia, focus, "neurofeedback", DAY, 5, 1, 2.0),
              DeliveryCount(mia, focus, "neurofeedback", DAY, 7, 0, 3.0),
              DeliveryCount(mia, focus, "neurofeedback", DAY - timedelta(days=1), 2),
              DeliveryCount(mia, focus, "neurofeedback", DAY, 0, 0, 0.0),
              DeliveryCount(leo, focus, "neurofeedback", DAY, 9)]
    for _ in range(2):
        with gateway.transaction() as session:
            record_deliveries(session, counts)
    with gateway.transaction() as session:
        rows = {(r.subject_id, r.day): (r.messages, r.dropped, r.seconds)
                for r in session.exec(select(Delivery)).all() if r.day <= DAY}
    assert rows == {(mia, DAY): (24, 2, 10.0), (mia, DAY - timedelta(days=1)): (4, 0, 0.0)}
    with pytest.raises(ValidationError) as caught, gateway.transaction() as session:
        record_deliveries(session, [DeliveryCount(mia, focus, "neurofeedback", DAY, -1)])
    assert caught.value.field == "messages"
