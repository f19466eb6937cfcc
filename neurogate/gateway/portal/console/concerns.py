"""Concerns that subjects, guardians and children reported, answered by their clinicians
and the admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from neurogate.consent import access, concerns
from neurogate.consent.models import App, Concern, Subject
from neurogate.errors import ConflictError, ValidationError
from neurogate.gateway.deps import GatewayDep
from neurogate.gateway.portal.console._common import CONCERN_LABELS, gettext, require
from neurogate.gateway.portal.web import (
    CsrfFormDep,
    FormErrors,
    PortalUserDep,
    form_text,
    render,
)

router = APIRouter()


def _view(session: Any, concern: Concern) -> dict[str, Any]:
    subject = session.get(Subject, concern.subject_id)
    app = session.get(App, concern.app_id) if concern.app_id else None
    reporter = access.account_of(session, concern.reporter_account_id)
    return {
        "concern": concern,
        "patient": (subject.display_name or subject.pseudonym) if subject else "",
        "app": app.name if app else None,
        "reporter": reporter.username if reporter else "",
    }


@router.get("/concerns")
def read_concerns(request: Request, gw: GatewayDep, user: PortalUserDep) -> Response:
    """Concerns about my patients (every concern for admins), newest first."""
    require(user, "clinician", "admin")
    with gw.transaction() as session:
        rows = [_view(session, c) for c in
                concerns.list_concerns_for(session=session, principal=user.principal)]
    return render(request, "console/concerns.html",
                  {"concerns": rows, "status_labels": CONCERN_LABELS})


def _concern_page(request: Request, gw: Any, user: Any, concern_id: str, answer: str,
                  errors: FormErrors, status: int = 200) -> Response:
    with gw.transaction() as session:
        view = _view(session, concerns.get_concern(session=session, principal=user.principal,
                                                   concern_id=concern_id))
    return render(request, "console/concern.html", {
        **view, "answer": answer, "errors": errors, "status_labels": CONCERN_LABELS,
        "max_text": concerns.MAX_TEXT,
    }, status=status)


@router.get("/concerns/{concern_id}")
def read_concern(concern_id: str, request: Request, gw: GatewayDep,
                 user: PortalUserDep) -> Response:
    """One concern, and the form to answer it."""
    require(user, "clinician", "admin")
    return _concern_page(request, gw, user, concern_id, "", FormErrors())


@router.post("/concerns/{concern_id}")
def answer_concern(concern_id: str, request: Request, gw: GatewayDep, user: PortalUserDep,
                   form: CsrfFormDep) -> Response:
    """Answer a concern; the reporter sees the answer on their page."""
    require(user, "clinician", "admin")
    _ = gettext(request)
    answer = form_text(form, "answer")
    errors = FormErrors()
    if not answer or len(answer) > concerns.MAX_TEXT:
        errors.add("answer", _("Write an answer of 1 to %(n)s characters.",
                               n=concerns.MAX_TEXT))
    else:
        try:
            with gw.transaction() as session:
                concerns.answer_concern(session=session, principal=user.principal,
                                        concern_id=concern_id, answer=answer)
        except ValidationError:
            errors.add("answer", _("Write an answer of 1 to %(n)s characters.",
                                   n=concerns.MAX_TEXT))
        except ConflictError:
            errors.add("answer", _("This concern was already answered; its answer stays as "
                                   "it was given."))
    if errors:
        return _concern_page(request, gw, user, concern_id, answer, errors, status=400)
    return render(request, "console/done.html", {
        "title": _("Answer sent"),
        "message": _("The person who reported this concern now sees your answer."),
        "links": [("/portal/console/concerns", _("Go back to the concerns"))],
    })
