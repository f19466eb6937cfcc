"""Subjects' requests with a legal deadline (delete, limit use, access): administrators see
each deadline, what is overdue, and mark a request done."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from neurogate.consent import duties
from neurogate.consent.models import Subject, SubjectRequest, utcnow
from neurogate.gateway.deps import GatewayDep
from neurogate.gateway.portal.console._common import gettext, require
from neurogate.gateway.portal.web import N_, CsrfFormDep, PortalUserDep, render

router = APIRouter()

KIND_LABELS = {
    "delete": N_("delete their data"),
    "limit_use": N_("limit the use of their data"),
    "access": N_("a copy of their data"),
}
STATE_LABELS = {"open": N_("open"), "overdue": N_("overdue"), "done": N_("done")}


def _view(session: Any, request: SubjectRequest, now: Any) -> dict[str, Any]:
    subject = session.get(Subject, request.subject_id)
    state = ("overdue" if duties.is_overdue(request, now) else request.status)
    return {
        "request": request,
        "patient": (subject.display_name or subject.pseudonym) if subject else "",
        "state": state,
    }


@router.get("/requests")
def read_requests(request: Request, gw: GatewayDep, user: PortalUserDep) -> Response:
    """Every subject's request with its legal deadline, soonest first (administrators)."""
    require(user, "admin")
    now = utcnow()
    with gw.transaction() as session:
        rows = [_view(session, r, now) for r in
                duties.list_requests(session=session, principal=user.principal, now=now)]
    return render(request, "console/requests.html", {
        "rows": rows, "kind_labels": KIND_LABELS, "state_labels": STATE_LABELS,
        "overdue": sum(1 for r in rows if r["state"] == "overdue"),
    })


@router.post("/requests/{request_id}/complete")
def complete_request(request_id: str, request: Request, gw: GatewayDep, user: PortalUserDep,
                     form: CsrfFormDep) -> Response:
    """Mark a request done."""
    require(user, "admin")
    _ = gettext(request)
    with gw.transaction() as session:
        done = duties.complete_request(session=session, principal=user.principal,
                                       request_id=request_id)
        kind = done.kind
    return render(request, "console/done.html", {
        "title": _("Request done"),
        "message": _("The request (%(kind)s) is marked as done.", kind=_(KIND_LABELS[kind])),
        "links": [("/portal/console/requests", _("Go back to the requests"))],
    })
