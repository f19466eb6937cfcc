"""Subjects' time-bound requests (delete, limit use, access) and their legal deadlines."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from neurogate.consent import duties
from neurogate.consent.models import SubjectRequest, utcnow
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep
from neurogate.gateway.routes._params import STRICT_QUERY, IdPath


class SubjectRequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Literal["delete", "limit_use", "access"] = Field(
        description="delete (erase the subject's data), limit_use (use it only for what the "
        "subject asked for) or access (a copy of it); the deadline is set by the subject's "
        "jurisdiction profile (request_deadline_days)."
    )


class SubjectRequestPublic(BaseModel):
    id: str
    subject_id: str
    kind: str
    status: str  # "open" | "done"
    jurisdiction: str
    consent_id: str | None  # the revoked consent a deletion duty follows, if any
    free_of_charge: bool
    filed_at: datetime
    due_at: datetime
    overdue: bool  # open and past due_at now
    overdue_since: datetime | None  # when the sweeper flagged it
    completed_at: datetime | None

    @classmethod
    def of(cls, request: SubjectRequest, now: datetime) -> SubjectRequestPublic:
        """The public view of ``request`` at ``now``."""
        return cls(
            id=request.id, subject_id=request.subject_id, kind=request.kind,
            status=request.status, jurisdiction=request.jurisdiction,
            consent_id=request.consent_id, free_of_charge=request.free_of_charge,
            filed_at=request.filed_at, due_at=request.due_at,
            overdue=duties.is_overdue(request, now), overdue_since=request.overdue_at,
            completed_at=request.completed_at,
        )


subject_router = APIRouter(prefix="/v1/subjects", tags=["requests"], dependencies=[STRICT_QUERY])
router = APIRouter(prefix="/v1/requests", tags=["requests"], dependencies=[STRICT_QUERY])


@subject_router.post("/{subject_id}/requests", status_code=201)
def create_subject_request(subject_id: IdPath, body: SubjectRequestCreate, gw: GatewayDep,
                           principal: CurrentPrincipal) -> SubjectRequestPublic:
    """File a request to delete, limit the use of, or access a subject's data, with its deadline."""
    with gw.transaction() as session:
        request = duties.file_request(session=session, principal=principal,
                                      subject_id=subject_id, kind=body.kind)
        return SubjectRequestPublic.of(request, utcnow())


@subject_router.get("/{subject_id}/requests")
def read_subject_requests(subject_id: IdPath, gw: GatewayDep,
                          principal: CurrentPrincipal) -> list[SubjectRequestPublic]:
    """List a subject's requests, soonest deadline first."""
    now = utcnow()
    with gw.transaction() as session:
        found = duties.list_requests(session=session, principal=principal,
                                     subject_id=subject_id, now=now)
        return [SubjectRequestPublic.of(r, now) for r in found]


@router.get("")
def read_requests(gw: GatewayDep, principal: CurrentPrincipal, overdue: bool | None = None,
                  status: Literal["open", "done"] | None = None) -> list[SubjectRequestPublic]:
    """List every subject's requests, soonest deadline first (administrators)."""
    now = utcnow()
    with gw.transaction() as session:
        found = duties.list_requests(session=session, principal=principal, overdue=overdue,
                                     status=status, now=now)
        return [SubjectRequestPublic.of(r, now) for r in found]


@router.post("/{request_id}/complete")
def complete_request(request_id: IdPath, gw: GatewayDep,
                     principal: CurrentPrincipal) -> SubjectRequestPublic:
    """Mark a request done (administrators)."""
    now = utcnow()
    with gw.transaction() as session:
        request = duties.complete_request(session=session, principal=principal,
                                          request_id=request_id, now=now)
        return SubjectRequestPublic.of(request, now)
