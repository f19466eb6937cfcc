"""Time-bound duties (neurogate.consent.duties): deadlines by jurisdiction and the sweeper."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, delete, select

from neurogate.consent import consents, duties
from neurogate.consent.access import Principal
from neurogate.consent.models import Account, Subject, SubjectRequest
from neurogate.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from neurogate.gateway.demo import DemoWorld, seed
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings

FILED = datetime(2026, 8, 3, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Gateway, DemoWorld]:
    """The demo clinic over an embedded database, seeded once for this module."""
    gateway = build_gateway(Settings(data_dir=tmp_path_factory.mktemp("duties"),
                                     environment="test", password_hash_time_cost=1,
                                     password_hash_memory_kib=1024))
    return gateway, seed(gateway)


@pytest.fixture
def demo(clinic: tuple[Gateway, DemoWorld]) -> Iterator[tuple[Gateway, DemoWorld]]:
    """The shared clinic with no requests filed and its subjects under the default profile."""
    gateway, world = clinic
    with gateway.transaction() as session:
        session.exec(delete(SubjectRequest))  # type: ignore[call-overload]
        for subject in session.exec(select(Subject)).all():
            subject.jurisdiction = "CRC"
            session.add(subject)
    yield clinic


def _as(session: Session, username: str) -> Principal:
    account = session.exec(select(Account).where(Account.username == username)).one()
    return Principal(kind="account", id=account.id, role=account.role,
                     subject_id=account.subject_id)


def _move(session: Session, subject_id: str, jurisdiction: str) -> None:
    subject = session.get(Subject, subject_id)
    assert subject is not None
    subject.jurisdiction = jurisdiction
    session.add(subject)


@pytest.mark.parametrize(
    ("jurisdiction", "kind", "days"),
    [("US-CA", "delete", 45), ("US-CA", "limit_use", 45), ("CRC", "delete", 30),
     ("EU-FR", "access", 30), ("CL", "access", 30)],
)
def test_file_request_due_within_the_profile_deadline(
    demo: tuple[Gateway, DemoWorld], jurisdiction: str, kind: str, days: int,
) -> None:
    """A request is due the number of days its subject's profile sets for its kind."""
    gateway, world = demo
    with gateway.transaction() as session:
        _move(session, world.subjects["alex"], jurisdiction)
        request = duties.file_request(session=session, principal=_as(session, "alex"),
                                      subject_id=world.subjects["alex"], kind=kind, now=FILED)
        assert (request.status, request.kind, request.jurisdiction) == ("open", kind,
                                                                         jurisdiction)
        assert request.due_at == FILED + timedelta(days=days)
        assert request.free_of_charge is True
        assert request.filed_by == _as(session, "alex").id


def test_sweeper_flags_exactly_at_the_deadline_with_a_moved_clock(
    demo: tuple[Gateway, DemoWorld],
) -> None:
    """California's 45 days: not overdue on day 44, flagged once on day 45, never when done."""
    gateway, world = demo
    with gateway.transaction() as session:
        _move(session, world.subjects["alex"], "US-CA")
        _move(session, world.subjects["mia"], "US-CA")
        alex = duties.file_request(session=session, principal=_as(session, "alex"),
                                   subject_id=world.subjects["alex"], kind="limit_use",
                                   now=FILED)
        mia = duties.file_request(session=session, principal=_as(session, "parent.chen"),
                                  subject_id=world.subjects["mia"], kind="delete", now=FILED)
        duties.complete_request(session=session, principal=_as(session, "admin"),
                                request_id=mia.id, now=FILED + timedelta(days=2))
        deadline = FILED + timedelta(days=45)
        before = deadline - timedelta(seconds=1)
        assert duties.sweep_overdue(session=session, now=before) == []
        assert not duties.is_overdue(alex, before)
        assert duties.sweep_overdue(session=session, now=deadline) == [alex.id]
        assert alex.overdue_at == deadline
        assert duties.is_overdue(alex, deadline)
        assert not duties.is_overdue(mia, deadline + timedelta(days=100))
        assert duties.sweep_overdue(session=session, now=deadline + timedelta(days=1)) == []
        admin = _as(session, "admin")
        late = duties.list_requests(session=session, principal=admin, overdue=True, now=deadline)
        assert [r.id for r in late] == [alex.id]
        on_time = duties.list_requests(session=session, principal=admin, overdue=False,
                                       now=deadline)
        assert [r.id for r in on_time] == [mia.id]
        done = duties.list_requests(session=session, principal=admin, status="done")
        assert [(r.id, r.completed_by) for r in done] == [(mia.id, admin.id)]


def test_revoking_a_consent_that_keeps_data_files_a_deletion_duty(
    demo: tuple[Gateway, DemoWorld],
) -> None:
    """Clinical monitoring keeps data 30 days: revoking it files a delete request."""
    gateway, world = demo
    with gateway.transaction() as session:
        consent, _ = consents.revoke_consent(
            session=session, ledger=gateway.ledger, principal=_as(session, "alex"),
            consent_id=world.consents["alex-clinic"], now=FILED)
        found = session.exec(select(SubjectRequest).where(
            SubjectRequest.consent_id == consent.id)).all()
        assert [(r.kind, r.subject_id, r.due_at) for r in found] == [
            ("delete", world.subjects["alex"], FILED + timedelta(days=30))]


def test_revoking_a_live_only_consent_files_no_duty(demo: tuple[Gateway, DemoWorld]) -> None:
    """Neurofeedback keeps nothing (retention 0): there is nothing to delete."""
    gateway, world = demo
    with gateway.transaction() as session:
        consent_id = next(v for k, v in world.consents.items() if k.endswith("focus"))
        consents.revoke_consent(session=session, ledger=gateway.ledger,
                                principal=_as(session, "parent.chen"), consent_id=consent_id,
                                now=FILED)
        assert session.exec(select(SubjectRequest)).all() == []


def test_file_request_refuses_a_second_open_request_of_a_kind(
    demo: tuple[Gateway, DemoWorld],
) -> None:
    """One open request per kind: the second names the first one's deadline."""
    gateway, world = demo
    with gateway.transaction() as session:
        args = {"session": session, "principal": _as(session, "alex"),
                "subject_id": world.subjects["alex"], "kind": "access", "now": FILED}
        duties.file_request(**args)
        with pytest.raises(ConflictError) as caught:
            duties.file_request(**args)
        assert caught.value.message == (
            "A 'access' request for this subject is already open (due 2026-09-02); it will "
            "be answered by then.")


def test_requests_reach_only_the_subject_their_guardian_and_clinician(
    demo: tuple[Gateway, DemoWorld],
) -> None:
    """Another subject gets not-found; app owners, vendors and admins cannot file; only an
    admin lists everyone's or completes one."""
    gateway, world = demo
    with gateway.transaction() as session:
        mine = duties.file_request(session=session, principal=_as(session, "dr.rivera"),
                                   subject_id=world.subjects["mia"], kind="access", now=FILED)
        with pytest.raises(NotFoundError):
            duties.file_request(session=session, principal=_as(session, "alex"),
                                subject_id=world.subjects["mia"], kind="delete")
        with pytest.raises(NotFoundError):
            duties.list_requests(session=session, principal=_as(session, "parent.chen"),
                                 subject_id=world.subjects["alex"])
        for who in ("admin", "apps.owner", "acme.devices"):
            with pytest.raises(PermissionDenied):
                duties.file_request(session=session, principal=_as(session, who),
                                    subject_id=world.subjects["mia"], kind="delete")
        with pytest.raises(PermissionDenied, match="Only an administrator lists every"):
            duties.list_requests(session=session, principal=_as(session, "dr.rivera"))
        with pytest.raises(PermissionDenied):
            duties.complete_request(session=session, principal=_as(session, "dr.rivera"),
                                    request_id=mine.id)
        seen = duties.list_requests(session=session, principal=_as(session, "parent.chen"),
                                    subject_id=world.subjects["mia"])
        assert [r.id for r in seen] == [mine.id]
        duties.complete_request(session=session, principal=_as(session, "admin"),
                                request_id=mine.id)
        with pytest.raises(ConflictError, match="already done"):
            duties.complete_request(session=session, principal=_as(session, "admin"),
                                    request_id=mine.id)


def test_file_request_rejects_an_unknown_kind(demo: tuple[Gateway, DemoWorld]) -> None:
    """An unknown kind names the allowed kinds."""
    gateway, world = demo
    with gateway.transaction() as session, pytest.raises(ValidationError) as caught:
        duties.file_request(session=session, principal=_as(session, "alex"),
                            subject_id=world.subjects["alex"], kind="portability")
    assert caught.value.message == (
        "Invalid value for the 'kind' parameter. Allowed values are 'delete', 'limit_use', "
        "and 'access', but got 'portability' instead.")
