"""The subject's and guardian's home: every consent at a glance, stop one, grant again."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError as PydanticValidationError

from neurogate.consent import access, consents
from neurogate.consent.models import Subject
from neurogate.consent.purposes import load_catalog
from neurogate.consent.schemas import ConsentCreate, NoticeShown
from neurogate.errors import ConflictError, ConsentError, NotFoundError, ValidationError
from neurogate.gateway.deps import GatewayDep
from neurogate.gateway.portal import _views, web
from neurogate.gateway.portal.web import (
    CsrfFormDep,
    FormErrors,
    PortalUser,
    PortalUserDep,
    form_text,
    render,
)

router = APIRouter(prefix="/portal", tags=["portal"])


def chosen_subject(user: PortalUser, requested: str | None) -> str:
    """The subject a page is about: your own, or the ward you chose (first by default)."""
    if user.role == "subject" and user.subject_id:
        return user.subject_id
    if user.role == "guardian" and user.wards:
        ids = [w.subject_id for w in user.wards]
        return requested if requested in ids else ids[0]
    msg = "This page is for subjects and their guardians."
    raise NotFoundError(msg)


def _context(request: Request, gw: Any, user: PortalUser, subject_id: str) -> dict[str, Any]:
    language = web.request_language(request)
    gettext = web.gettext_for(language)
    number = web.environment(language).globals["format_number"]
    with gw.transaction() as session:
        subject = session.get(Subject, subject_id)
        facts = _views.subject_facts(subject)
        views = _views.consent_views(session, viewer=user.principal, subject_id=subject_id,
                                     hub=gw.hub, language=language, gettext=gettext,
                                     format_number=number)
        refused = _views.refusals(session, gateway_ledger=gw.ledger, viewer=user.principal,
                                  subject=subject, language=language, variant="plain")
    return {"subject": subject, "facts": facts, "consents": views, "refused": refused,
            "active": [v for v in views if v.status == "active"],
            "ended": [v for v in views if v.status != "active"],
            "regrants": _views.regrants(views), "subject_id": subject_id}


@router.get("")
def read_home(request: Request, gw: GatewayDep, user: PortalUserDep,
              subject: str | None = None) -> Response:
    """Every consent of you (or your ward) at a glance."""
    if user.role not in ("subject", "guardian"):
        return RedirectResponse(web.HOME.get(user.role, "/portal/login"), status_code=303)
    if user.role == "guardian" and not user.wards:
        return render(request, "home.html", {"no_wards": True, "consents": [], "active": [],
                                             "ended": [], "regrants": [], "subject": None,
                                             "subject_id": "", "refused": []})
    subject_id = chosen_subject(user, subject)
    context = _context(request, gw, user, subject_id)
    if user.role == "subject" and context["facts"].needs_assent:
        return RedirectResponse("/portal/assent", status_code=303)
    return render(request, "home.html", context)


def _consent_view(request: Request, gw: Any, user: PortalUser, consent_id: str
                  ) -> tuple[_views.ConsentView, dict[str, Any]]:
    with gw.transaction() as session:
        consent = access.get_consent(session, user.principal, consent_id)
        subject_id = consent.subject_id
    context = _context(request, gw, user, chosen_subject(user, subject_id))
    if context["subject_id"] != subject_id:
        msg = f"No consent has the id {consent_id!r}."
        raise NotFoundError(msg)
    view = next(v for v in context["consents"] if v.id == consent_id)
    return view, context


@router.get("/consents/{consent_id}/stop")
def read_stop(request: Request, gw: GatewayDep, user: PortalUserDep,
              consent_id: str) -> Response:
    """Confirm stopping an app: what stops, and what stays."""
    view, context = _consent_view(request, gw, user, consent_id)
    if view.status != "active":
        return RedirectResponse(f"/portal?subject={context['subject_id']}", status_code=303)
    return render(request, "stop.html", {**context, "consent": view})


@router.post("/consents/{consent_id}/stop")
def stop_consent(request: Request, gw: GatewayDep, user: PortalUserDep, form: CsrfFormDep,
                 consent_id: str) -> Response:
    """Revoke the consent (the same domain call as POST /v1/consents/{id}/revoke)."""
    try:
        with gw.transaction() as session:
            consents.revoke_consent(session=session, ledger=gw.ledger,
                                    principal=user.principal, consent_id=consent_id,
                                    reason="withdrawn in the portal")
    except ConflictError:
        pass  # already stopped: show the confirmation of what holds now
    return RedirectResponse(f"/portal/consents/{consent_id}/stopped", status_code=303)


@router.get("/consents/{consent_id}/stopped")
def read_stopped(request: Request, gw: GatewayDep, user: PortalUserDep,
                 consent_id: str) -> Response:
    """The confirmation after stopping, with the signed receipt to download."""
    view, context = _consent_view(request, gw, user, consent_id)
    return render(request, "stopped.html", {**context, "consent": view})


@router.get("/consents/{consent_id}/receipt")
def download_receipt(request: Request, gw: GatewayDep, user: PortalUserDep,
                     consent_id: str) -> Response:
    """The signed receipt of the consent's latest change (as GET /v1/consents/{id}/receipt)."""
    with gw.transaction() as session:
        events = consents.history(session=session, principal=user.principal,
                                  consent_id=consent_id)
        indexed = [e.ledger_index for e in events if e.ledger_index is not None]
        if not indexed:
            msg = "This consent has no ledger entry yet."
            raise ConflictError(msg)
        receipt = gw.ledger.receipt_for(session, max(indexed))
    body = json.dumps(receipt, indent=2, sort_keys=True, ensure_ascii=False)
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="receipt-{consent_id}.json"',
        "Cache-Control": "no-store",
    })


def _regrant(request: Request, gw: Any, user: PortalUser, subject_id: str, app_id: str,
             purpose_id: str) -> tuple[_views.Regrant, dict[str, Any]]:
    context = _context(request, gw, user, chosen_subject(user, subject_id))
    for option in context["regrants"]:
        if option.app_id == app_id and option.purpose_id == purpose_id:
            return option, context
    msg = "There is no stopped consent of this app and purpose to grant again."
    raise NotFoundError(msg)


def _notice_context(request: Request, option: _views.Regrant) -> dict[str, Any]:
    language = web.request_language(request)
    gettext = web.gettext_for(language)
    number = web.environment(language).globals["format_number"]
    purpose = load_catalog().get(option.purpose_id)
    notice = purpose.notice(language, "plain")
    phrases, brain_waves = _views.receives(option.products, purpose, own=True,
                                           gettext=gettext, format_number=number)
    return {"option": option, "notice": notice, "receives_words": phrases,
            "brain_waves": brain_waves}


@router.get("/grant")
def read_grant(request: Request, gw: GatewayDep, user: PortalUserDep, subject: str = "",
               app: str = "", purpose: str = "") -> Response:
    """The full notice of a purpose, and the button that grants it again."""
    option, context = _regrant(request, gw, user, subject, app, purpose)
    return render(request, "grant.html", {**context, **_notice_context(request, option)})


@router.post("/grant")
def grant(request: Request, gw: GatewayDep, user: PortalUserDep, form: CsrfFormDep) -> Response:
    """Grant the consent again, recording the exact notice shown (as POST /v1/consents)."""
    gettext = web.gettext_for(web.request_language(request))
    option, context = _regrant(request, gw, user, form_text(form, "subject"),
                               form_text(form, "app"), form_text(form, "purpose"))
    errors = FormErrors()
    if form_text(form, "agree") != "yes":
        errors.add("agree", gettext(
            "Tick the box to say you have read the notice and agree, or go back."))
    try:
        version = int(form_text(form, "notice_version"))
        shown = NoticeShown(version=version, language=form_text(form, "notice_language"),
                            variant="plain", sha256=form_text(form, "notice_sha256"))
        body = ConsentCreate(subject_id=context["subject_id"], app_id=option.app_id,
                             purpose_id=option.purpose_id, products=option.products,
                             notice=shown)
    except (ValueError, PydanticValidationError):
        errors.add("agree", gettext(
            "The notice on this page has changed. Read it again below, then agree."))
        body = None
    if not errors and body is not None:
        try:
            with gw.transaction() as session:
                consent, _ = consents.grant_consent(session=session, ledger=gw.ledger,
                                                    principal=user.principal, request=body)
            return RedirectResponse(f"/portal/consents/{consent.id}/granted", status_code=303)
        except ValidationError:
            errors.add("agree", gettext(
                "The notice on this page has changed. Read it again below, then agree."))
        except ConsentError:
            errors.add("agree", gettext(
                "The rules do not allow this consent, so nothing was changed."))
    return render(request, "grant.html", {**context, **_notice_context(request, option),
                                          "errors": errors}, status=400)


@router.get("/consents/{consent_id}/granted")
def read_granted(request: Request, gw: GatewayDep, user: PortalUserDep,
                 consent_id: str) -> Response:
    """The confirmation after granting, with the signed receipt to download."""
    view, context = _consent_view(request, gw, user, consent_id)
    return render(request, "granted.html", {**context, "consent": view})

