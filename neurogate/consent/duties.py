"""Time-bound duties: requests a law sets a deadline for, tracked until they are done.

A subject (or their guardian, or a clinician in their care) files a request to delete
their data, to limit its use, or to access it; revoking a consent whose purpose keeps data
files a deletion request by itself. Each request is due within the days the subject's
jurisdiction profile sets for its kind (``request_deadline_days`` in jurisdictions.toml:
45 in California, 30 by default). An administrator completes it; :func:`sweep_overdue`,
run by the gateway's background sweeper, stamps the open ones whose deadline has passed so
that the console and the API show them as overdue.

Requests hold no free text: only the subject, the kind, who filed it and the dates.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from neurogate.consent import access
from neurogate.consent.access import CLINICIAN, GUARDIAN, SELF, Principal
from neurogate.consent.jurisdictions import REQUEST_KINDS, get_profile
from neurogate.consent.models import Consent, Subject, SubjectRequest, utcnow
from neurogate.consent.purposes import _check_option, load_catalog
from neurogate.errors import ConflictError, PermissionDenied, not_found

FILERS = ("subject", "guardian", "clinician")


def due_at(*, subject: Subject, kind: str, filed_at: datetime) -> datetime:
    """When a request of ``kind`` filed at ``filed_at`` must be answered for ``subject``."""
    _check_option("kind", kind, REQUEST_KINDS)
    days = get_profile(subject.jurisdiction).request_deadline_days[kind]
    return filed_at + timedelta(days=days)


def is_overdue(request: SubjectRequest, now: datetime | None = None) -> bool:
    """Whether an open request is past its deadline at ``now``."""
    return request.status == "open" and (now or utcnow()) >= request.due_at


def _new(session: Session, subject: Subject, kind: str, filed_by: str | None,
         consent_id: str | None, now: datetime) -> SubjectRequest:
    profile = get_profile(subject.jurisdiction)
    request = SubjectRequest(
        subject_id=subject.id, kind=kind, filed_by=filed_by, consent_id=consent_id,
        jurisdiction=profile.code, free_of_charge=profile.access_free_of_charge or kind != "access",
        filed_at=now, due_at=due_at(subject=subject, kind=kind, filed_at=now),
    )
    session.add(request)
    session.flush()
    return request


def file_request(
    *, session: Session, principal: Principal, subject_id: str, kind: str,
    now: datetime | None = None,
) -> SubjectRequest:
    """File a request of ``kind`` (delete, limit_use, access) for a subject: the subject,
    their guardian, or a clinician in their care. One open request per kind at a time."""
    _check_option("kind", kind, REQUEST_KINDS)
    access.require_role(principal, *FILERS)
    subject = access.get_subject(session, principal, subject_id, (SELF, GUARDIAN, CLINICIAN))
    open_same = session.exec(select(SubjectRequest).where(
        SubjectRequest.subject_id == subject.id, SubjectRequest.kind == kind,
        SubjectRequest.status == "open", col(SubjectRequest.consent_id).is_(None),
    )).first()
    if open_same is not None:
        msg = (f"A {kind!r} request for this subject is already open (due "
               f"{open_same.due_at.date().isoformat()}); it will be answered by then.")
        raise ConflictError(msg)
    return _new(session, subject, kind, principal.id, None, now or utcnow())


def file_deletion_after_revocation(
    *, session: Session, consent: Consent, principal: Principal | None,
    now: datetime | None = None,
) -> SubjectRequest | None:
    """After a revocation, a deletion duty for what the app may have kept under the purpose
    (none when the purpose keeps nothing: retention_days 0)."""
    if load_catalog().get(consent.purpose_id).retention_days == 0:
        return None
    subject = session.get(Subject, consent.subject_id)
    if subject is None:
        return None
    filed_by = principal.id if principal is not None and principal.kind == "account" else None
    return _new(session, subject, "delete", filed_by, consent.id, now or utcnow())


def list_requests(
    *, session: Session, principal: Principal, subject_id: str | None = None,
    overdue: bool | None = None, status: str | None = None, now: datetime | None = None,
) -> list[SubjectRequest]:
    """Requests, soonest deadline first: every one for an admin; a subject's for the
    subject, their guardian or a clinician in care (``subject_id`` required then)."""
    access.require_role(principal, "admin", *FILERS)
    if status is not None:
        _check_option("status", status, ("open", "done"))
    query = select(SubjectRequest).order_by(col(SubjectRequest.due_at))
    if principal.role != "admin" or subject_id is not None:
        if subject_id is None:
            msg = "Only an administrator lists every subject's requests; list one subject's."
            raise PermissionDenied(msg)
        if principal.role != "admin":
            access.get_subject(session, principal, subject_id, (SELF, GUARDIAN, CLINICIAN))
        query = query.where(SubjectRequest.subject_id == subject_id)
    if status is not None:
        query = query.where(SubjectRequest.status == status)
    found = list(session.exec(query).all())
    if overdue is not None:
        moment = now or utcnow()
        found = [r for r in found if is_overdue(r, moment) == overdue]
    return found


def complete_request(
    *, session: Session, principal: Principal, request_id: str, now: datetime | None = None,
) -> SubjectRequest:
    """Mark a request done (administrators), recording when and by whom."""
    access.require_role(principal, "admin")
    request = session.get(SubjectRequest, request_id)
    if request is None:
        what = "request"
        raise not_found(what, request_id)
    if request.status == "done":
        msg = "This request is already done; there is nothing left to complete."
        raise ConflictError(msg)
    request.status = "done"
    request.completed_at = now or utcnow()
    request.completed_by = principal.id
    session.add(request)
    return request


def sweep_overdue(*, session: Session, now: datetime | None = None) -> list[str]:
    """Stamp ``overdue_at`` on open requests past their deadline; returns their ids."""
    moment = now or utcnow()
    late = session.exec(select(SubjectRequest).where(
        SubjectRequest.status == "open", col(SubjectRequest.overdue_at).is_(None),
        col(SubjectRequest.due_at) <= moment,
    )).all()
    for request in late:
        request.overdue_at = moment
        session.add(request)
    return [r.id for r in late]


__all__ = [
    "FILERS",
    "complete_request",
    "due_at",
    "file_deletion_after_revocation",
    "file_request",
    "is_overdue",
    "list_requests",
    "sweep_overdue",
]
