"""Data-subject rights: export everything held about a subject, and erasure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, delete, func, select

from neurogate.consent import access
from neurogate.consent.access import GUARDIAN, SELF, Principal
from neurogate.consent.concerns import concern_json
from neurogate.consent.consents import _close, list_consents
from neurogate.consent.ledger import Ledger
from neurogate.consent.models import (
    Account,
    App,
    AppPseudonym,
    CareRelationship,
    Concern,
    Consent,
    ConsentEvent,
    DataKey,
    Delivery,
    GuardianLink,
    Recording,
    RecordingSegment,
    utcnow,
)
from neurogate.consent.registry import subject_public
from neurogate.consent.schemas import ConsentEventPublic, ConsentPublic


def export_subject(*, session: Session, ledger: Ledger, principal: Principal, subject_id: str,
                   now: datetime | None = None) -> dict[str, Any]:
    """Everything held about a subject, as JSON-ready data (the subject, a guardian or a
    clinician in care); the export itself is written to the ledger."""
    now = now or utcnow()
    subject = access.get_subject(session, principal, subject_id)
    consents = list_consents(session=session, principal=principal, subject_id=subject.id)
    events = session.exec(
        select(ConsentEvent)
        .where(col(ConsentEvent.consent_id).in_([c.id for c in consents]))
        .order_by(col(ConsentEvent.at))
    ).all()
    guardians = session.exec(
        select(GuardianLink).where(GuardianLink.subject_id == subject.id)
    ).all()
    appended = ledger.append(
        session, action="subject.export", at=now, subject=subject.pseudonym,
        actor_role=principal.role, concerns=subject.id,
    )
    return {
        "exported_at": now.isoformat(),
        "ledger_index": appended.seq,
        "subject": subject_public(subject, now.date()).model_dump(mode="json"),
        "guardians": [
            {"relationship": g.relationship, "verified_at": g.verified_at.isoformat()}
            for g in guardians
        ],
        "consents": [ConsentPublic.model_validate(c).model_dump(mode="json") for c in consents],
        "history": [
            {
                "consent_id": e.consent_id,
                **ConsentEventPublic.model_validate(e).model_dump(mode="json"),
            }
            for e in events
        ],
        "recordings": [_recording_json(r) for r in session.exec(
            select(Recording).where(Recording.subject_id == subject.id)
            .order_by(col(Recording.started_at))).all()],
        "concerns": [concern_json(c) for c in session.exec(
            select(Concern).where(Concern.subject_id == subject.id)
            .order_by(col(Concern.created_at))
        ).all()],
        # The subject's own ledger entries with the salts that open their public leaves.
        "ledger": [e.as_json() for e in ledger.entries_for_subject(session, subject.id)],
    }


def _recording_json(recording: Recording) -> dict[str, Any]:
    """What is recorded (never signal data): the decrypted data is in the recordings
    export (``GET /v1/subjects/{id}/recordings/export``)."""
    return {"id": recording.id, "purpose": recording.purpose_id, "app_id": recording.app_id,
            "started_at": recording.started_at.isoformat(),
            "stopped_at": recording.stopped_at.isoformat() if recording.stopped_at else None,
            "keep_until": recording.keep_until.isoformat()}


@dataclass(frozen=True)
class Copy:
    """What one app received of the subject before the erasure (outside NeuroGate's
    control: the subject asks that app to delete it)."""

    app_id: str
    app: str
    purposes: tuple[str, ...]
    first_day: str
    last_day: str
    messages: int

    def as_json(self) -> dict[str, Any]:
        return {"app_id": self.app_id, "app": self.app, "purposes": list(self.purposes),
                "first_day": self.first_day, "last_day": self.last_day,
                "messages": self.messages}


@dataclass(frozen=True)
class Erasure:
    """The outcome of an erasure: its ledger index, the signed erasure receipt, the
    recordings whose rows were deleted (their files are deleted after the commit), and
    the copies outside the gateway."""

    ledger_index: int
    receipt: dict[str, Any]
    recording_ids: tuple[str, ...] = ()
    segments: int = 0
    data_key_destroyed: bool = False
    copies: tuple[Copy, ...] = field(default_factory=tuple)


def _copies(session: Session, subject_id: str) -> tuple[Copy, ...]:
    rows = session.exec(
        select(Delivery.app_id, Delivery.purpose_id, func.min(Delivery.day),
               func.max(Delivery.day), func.sum(Delivery.messages))
        .where(Delivery.subject_id == subject_id)
        .group_by(Delivery.app_id, Delivery.purpose_id)
    ).all()
    by_app: dict[str, list[Any]] = {}
    for app_id, purpose, first, last, messages in rows:
        if not messages:
            continue
        by_app.setdefault(app_id, []).append((purpose, first, last, int(messages)))
    copies = []
    for app_id, items in sorted(by_app.items()):
        app = session.get(App, app_id)
        copies.append(Copy(app_id, app.name if app else app_id,
                           tuple(sorted({i[0] for i in items})),
                           min(i[1] for i in items).isoformat(),
                           max(i[2] for i in items).isoformat(), sum(i[3] for i in items)))
    return tuple(copies)


def erase(*, session: Session, ledger: Ledger, principal: Principal, subject_id: str,
          shred: Callable[[str], bool] | None = None, now: datetime | None = None) -> Erasure:
    """Erase a subject (themselves, or a guardian): revoke every active consent, delete
    personal data, links and pseudonyms, destroy the subject's recording data key
    (crypto-shredding: no copy of the database and files taken before can decrypt their
    recordings any more) and the recordings' rows, and delete the entries and salts of
    every ledger leaf about them (the leaves stay in the tree, opaque).

    ``shred(subject_id)`` deletes the subject's wrapped data key where it is kept
    (outside the database), before the commit; it returns whether there was one.
    Consent history stays, keyed by a now-meaningless id, as the record of what was agreed.
    The erasure's own leaf names no one; it counts the leaves made opaque and the
    recordings deleted. Its signed receipt is returned with the copies apps received.
    """
    now = now or utcnow()
    access.require_role(principal, "subject", "guardian")
    subject = access.get_subject(session, principal, subject_id, (SELF, GUARDIAN))
    active = session.exec(
        select(Consent).where(Consent.subject_id == subject.id, Consent.status == "active")
    ).all()
    for consent in active:
        _close(session, ledger, consent, principal, "revoked", now, reason="erasure",
               reason_code="erasure")
    copies = _copies(session, subject.id)
    subject.display_name = None
    subject.date_of_birth = None
    subject.erased_at = now
    session.add(subject)
    key = session.get(DataKey, subject.id)
    if key is not None:
        session.delete(key)
    shredded = shred(subject.id) if shred is not None else False
    recording_ids = tuple(session.exec(
        select(Recording.id).where(Recording.subject_id == subject.id)).all())
    segments = len(session.exec(select(RecordingSegment.id).where(
        col(RecordingSegment.recording_id).in_(recording_ids))).all())
    session.exec(delete(RecordingSegment).where(  # type: ignore[call-overload]
        col(RecordingSegment.recording_id).in_(recording_ids)))
    session.exec(delete(Recording).where(col(Recording.subject_id) == subject.id))  # type: ignore[call-overload]
    for model in (AppPseudonym, GuardianLink, CareRelationship, Concern, Delivery):
        session.exec(delete(model).where(model.subject_id == subject.id))  # type: ignore[call-overload]
    for account in session.exec(select(Account).where(Account.subject_id == subject.id)).all():
        account.disabled = True
        session.add(account)
    session.flush()
    erased = ledger.erase_subject(session, subject.id)
    appended = ledger.append(
        session, action="subject.erase", at=now, actor_role=principal.role, erased=erased,
        segments=segments, count=len(recording_ids),
    )
    return Erasure(ledger_index=appended.seq, receipt=ledger.receipt(session, appended),
                   recording_ids=recording_ids, segments=segments,
                   data_key_destroyed=shredded or key is not None, copies=copies)


def erase_subject(*, session: Session, ledger: Ledger, principal: Principal, subject_id: str,
                  now: datetime | None = None) -> int:
    """``erase``, returning only the ledger index of the erasure."""
    return erase(session=session, ledger=ledger, principal=principal, subject_id=subject_id,
                 now=now).ledger_index


__all__ = ["Copy", "Erasure", "erase", "erase_subject", "export_subject"]
