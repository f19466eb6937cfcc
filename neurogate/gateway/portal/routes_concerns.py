"""Report a concern ("Something feels wrong?") and follow its answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from neurogate.consent import concerns
from neurogate.consent.models import App, Subject
from neurogate.errors import NotFoundError, ValidationError
from neurogate.gateway.deps import GatewayDep
from neurogate.gateway.portal import web
from neurogate.gateway.portal.routes_home import chosen_subject
from neurogate.gateway.portal.web import CsrfFormDep, FormErrors, PortalUser, PortalUserDep, render

router = APIRouter(prefix="/portal/concerns", tags=["portal"])
NOT_SURE = ""


def _messages(language: str) -> dict[str, str]:
    """What each field allows, in the reader's language (the domain checks the rule)."""
    gettext = web.gettext_for(language)
    number = web.environment(language).globals["format_number"]
    return {
        "what_happened": gettext(
            "Write what happened, in 1 to %(limit)s characters.",
            limit=number(concerns.MAX_TEXT)),
        "app_id": gettext("Choose one of the apps in the list, or “I am not sure”."),
        "contact": gettext("Write at most %(limit)s characters here, or leave it empty.",
                           limit=number(concerns.MAX_CONTACT)),
        "subject": gettext("Choose one of the people in the list."),
    }


def _form_context(gw: Any, user: PortalUser, subject_id: str) -> dict[str, Any]:
    with gw.transaction() as session:
        apps = concerns.apps_of_subject(session=session, subject_id=subject_id)
    return {"apps": [(a.id, a.name) for a in apps], "subject_id": subject_id}


@router.get("")
def read_concerns(request: Request, gw: GatewayDep, user: PortalUserDep) -> Response:
    """The concerns you reported, their state and their answers."""
    chosen_subject(user, None)
    with gw.transaction() as session:
        rows = concerns.list_concerns_for(session=session, principal=user.principal)
        items = [_item(session, c) for c in rows]
    return render(request, "concerns.html", {"concerns": items})


def _item(session: Any, concern: Any) -> dict[str, Any]:
    app = session.get(App, concern.app_id) if concern.app_id else None
    subject = session.get(Subject, concern.subject_id)
    return {"concern": concern, "app_name": app.name if app else None,
            "subject_name": (subject.display_name or subject.pseudonym) if subject else ""}


@router.get("/new")
def read_new(request: Request, gw: GatewayDep, user: PortalUserDep,
             subject: str | None = None) -> Response:
    """The form: what happened, which app, and how to reach you (optional)."""
    subject_id = chosen_subject(user, subject)
    return render(request, "concern_new.html", {
        **_form_context(gw, user, subject_id),
        "values": {"what_happened": "", "app_id": NOT_SURE, "contact": ""}})


@router.post("")
def file_concern(request: Request, gw: GatewayDep, user: PortalUserDep,
                 form: CsrfFormDep) -> Response:
    """Store the concern for the clinicians caring for the subject and the admins."""
    messages = _messages(web.request_language(request))
    values = {name: web.form_text(form, name) for name in ("what_happened", "app_id", "contact")}
    requested = web.form_text(form, "subject") or None
    errors = FormErrors()
    if user.role == "guardian" and requested not in [w.subject_id for w in user.wards]:
        errors.add("subject", messages["subject"])
    subject_id = chosen_subject(user, requested)
    if not errors:
        try:
            with gw.transaction() as session:
                concern = concerns.file_concern(
                    session=session, principal=user.principal, subject_id=subject_id,
                    what_happened=values["what_happened"], app_id=values["app_id"] or None,
                    contact=values["contact"] or None)
            return RedirectResponse(f"/portal/concerns/{concern.id}?filed=1", status_code=303)
        except ValidationError as exc:
            errors.add(exc.field or "what_happened",
                       messages.get(exc.field or "", messages["what_happened"]))
    return render(request, "concern_new.html", {
        **_form_context(gw, user, subject_id), "values": values, "errors": errors},
        status=400)


@router.get("/{concern_id}")
def read_concern(request: Request, gw: GatewayDep, user: PortalUserDep,
                 concern_id: str, filed: str = "") -> Response:
    """One concern: what you wrote, its state, and the answer."""
    if user.role not in ("subject", "guardian"):
        msg = f"No concern has the id {concern_id!r}."
        raise NotFoundError(msg)
    with gw.transaction() as session:
        concern = concerns.get_concern(session=session, principal=user.principal,
                                       concern_id=concern_id)
        item = _item(session, concern)
    return render(request, "concern.html", {**item, "filed": bool(filed)})
