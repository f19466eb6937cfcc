"""A child's own pages: each purpose in child-friendly words, yes or no, and why an app
gets nothing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from neurogate.consent import access, consents
from neurogate.consent.models import Subject
from neurogate.errors import ConflictError, NotFoundError
from neurogate.gateway.deps import GatewayDep
from neurogate.gateway.portal import _views, web
from neurogate.gateway.portal.web import CsrfFormDep, FormErrors, PortalUser, PortalUserDep, render

router = APIRouter(prefix="/portal/assent", tags=["portal"])
ANSWERS = ("given", "dissent")


def _child(user: PortalUser) -> str:
    if user.role != "subject" or not user.subject_id:
        msg = "This page is for children who answer for themselves."
        raise NotFoundError(msg)
    return user.subject_id


def _context(request: Request, gw: Any, user: PortalUser) -> dict[str, Any]:
    subject_id = _child(user)
    language = web.request_language(request)
    gettext = web.gettext_for(language)
    number = web.environment(language).globals["format_number"]
    with gw.transaction() as session:
        subject = session.get(Subject, subject_id)
        views = _views.consent_views(session, viewer=user.principal, subject_id=subject_id,
                                     hub=gw.hub, language=language, gettext=gettext,
                                     format_number=number)
        refused = _views.refusals(session, gateway_ledger=gw.ledger, viewer=user.principal,
                                  subject=subject, language=language)
    asks = [v for v in views if v.status == "active" and v.assent != "not_required"]
    return {"subject": subject, "asks": asks, "refused": refused,
            "facts": _views.subject_facts(subject)}


@router.get("")
def read_assent(request: Request, gw: GatewayDep, user: PortalUserDep) -> Response:
    """Every app that asks for the child's data, in child-friendly words."""
    return render(request, "child/assent.html", _context(request, gw, user))


@router.get("/{consent_id}")
def read_one(request: Request, gw: GatewayDep, user: PortalUserDep,
             consent_id: str) -> Response:
    """One app's question to the child: the child-friendly notice, yes or no."""
    context = _context(request, gw, user)
    view = next((v for v in context["asks"] if v.id == consent_id), None)
    if view is None:
        msg = f"No consent has the id {consent_id!r}."
        raise NotFoundError(msg)
    return render(request, "child/answer.html", {**context, "consent": view})


@router.post("/{consent_id}")
def answer(request: Request, gw: GatewayDep, user: PortalUserDep, form: CsrfFormDep,
           consent_id: str) -> Response:
    """Record the child's yes or no (the same domain call as POST /v1/consents/{id}/assent)."""
    context = _context(request, gw, user)
    view = next((v for v in context["asks"] if v.id == consent_id), None)
    if view is None:
        msg = f"No consent has the id {consent_id!r}."
        raise NotFoundError(msg)
    choice = web.form_text(form, "assent")
    if choice not in ANSWERS:
        gettext = web.gettext_for(web.request_language(request))
        errors = FormErrors()
        errors.add("assent", gettext("Choose “Yes, that is OK” or “No, I do not want this”."))
        return render(request, "child/answer.html", {**context, "consent": view,
                                                     "errors": errors}, status=400)
    try:
        with gw.transaction() as session:
            consents.record_assent(session=session, ledger=gw.ledger, principal=user.principal,
                                   consent_id=consent_id, assent=choice)
    except ConflictError:
        pass  # the same answer was already recorded: nothing changes
    return RedirectResponse(f"/portal/assent/{consent_id}/done", status_code=303)


@router.get("/{consent_id}/done")
def read_done(request: Request, gw: GatewayDep, user: PortalUserDep,
              consent_id: str) -> Response:
    """What the child's answer did."""
    _child(user)
    with gw.transaction() as session:
        access.get_consent(session, user.principal, consent_id)
    context = _context(request, gw, user)
    view = next((v for v in context["asks"] if v.id == consent_id), None)
    if view is None:
        return RedirectResponse("/portal/assent", status_code=303)
    return render(request, "child/done.html", {**context, "consent": view})
