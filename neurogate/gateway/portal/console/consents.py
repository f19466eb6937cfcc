"""Recording consent in the clinic: choose the app and purpose, show the notice in the
patient's language, record who consented (and the child's assent), or the assent later."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from neurogate.consent import access, consents, registry
from neurogate.consent.access import CLINICIAN
from neurogate.consent.jurisdictions import age_on, get_profile
from neurogate.consent.models import Subject, utcnow
from neurogate.consent.purposes import LANGUAGES, load_catalog
from neurogate.consent.schemas import ConsentCreate, NoticeShown
from neurogate.errors import ConflictError, ConsentError, ValidationError
from neurogate.gateway.deps import GatewayDep
from neurogate.gateway.portal.console._common import (
    ASSENT_LABELS,
    PRODUCT_LABELS,
    choice,
    gettext,
    notice_language,
    purpose_title,
    require,
    subject_name,
)
from neurogate.gateway.portal.web import (
    CsrfFormDep,
    FormErrors,
    PortalUserDep,
    form_text,
    render,
    request_language,
)

router = APIRouter()


def _options(session: Any, user: Any, language: str) -> list[tuple[str, str]]:
    """(``app_id:purpose_id``, label) for every purpose of every app not suspended."""
    found = []
    for app in registry.list_apps(session=session, principal=user.principal):
        if app.suspended:
            continue
        for purpose_id in app.declared_purposes:
            found.append((f"{app.id}:{purpose_id}",
                          f"{app.name} – {purpose_title(purpose_id, language)}"))
    return found


def _assent_applies(subject: Subject) -> bool:
    profile = get_profile(subject.jurisdiction)
    today = utcnow().date()
    return subject.date_of_birth is not None and profile.assent_required(
        age_on(subject.date_of_birth, today))


def _grantors(session: Any, user: Any, subject: Subject) -> list[tuple[str, str, str]]:
    """(value, username or '', capacity) of who may give the consent in person."""
    found = [("self", "", "self")]
    for link in registry.list_guardians(session=session, principal=user.principal,
                                        subject_id=subject.id):
        account = access.account_of(session, link.guardian_account_id)
        capacity = ("legal_representative" if link.relationship == "legal_representative"
                    else "guardian")
        found.append((f"guardian:{link.guardian_account_id}",
                      account.username if account else "", capacity))
    return found


@router.get("/patients/{subject_id}/consent")
def read_consent_choice(subject_id: str, request: Request, gw: GatewayDep,
                        user: PortalUserDep, choice_error: str = "") -> Response:
    """Choose the app and purpose a patient is asked to consent to."""
    require(user, "clinician")
    language = request_language(request)
    with gw.transaction() as session:
        subject = access.get_subject(session, user.principal, subject_id, (CLINICIAN,))
        options = _options(session, user, language)
    errors = FormErrors()
    if choice_error:
        errors.add("choice", gettext(request)("Choose one app and purpose from the list."))
    return render(request, "console/consent_choose.html", {
        "subject": subject, "name": subject_name(subject), "options": options,
        "errors": errors,
    }, status=400 if errors else 200)


def _notice_page(request: Request, session: Any, user: Any, subject: Subject, app: Any,
                 purpose_id: str, language: str, values: dict[str, Any], errors: FormErrors,
                 status: int = 200) -> Response:
    purpose = load_catalog().get(purpose_id)
    assent = _assent_applies(subject)
    return render(request, "console/consent_notice.html", {
        "subject": subject, "name": subject_name(subject), "app": app, "purpose": purpose,
        "notice": purpose.notice(language, "plain"),
        "child_notice": purpose.notice(language, "child") if assent else None,
        "notice_languages": LANGUAGES, "notice_lang": language,
        "products": list(purpose.products), "product_labels": PRODUCT_LABELS,
        "grantors": _grantors(session, user, subject), "assent": assent,
        "assent_labels": ASSENT_LABELS, "values": values, "errors": errors,
        "choice": f"{app.id}:{purpose_id}",
    }, status=status)


def _resolve(session: Any, user: Any, subject_id: str, choice_value: str,
             language: str) -> tuple[Subject, Any, str] | None:
    """The subject, app and purpose named by ``choice_value``, or None if it names none
    of the options."""
    subject = access.get_subject(session, user.principal, subject_id, (CLINICIAN,))
    if choice_value not in dict(_options(session, user, language)):
        return None
    app_id, purpose_id = choice_value.split(":", 1)
    return subject, access.get_app(session, user.principal, app_id), purpose_id


@router.get("/patients/{subject_id}/consent/notice")
def read_consent_notice(subject_id: str, request: Request, gw: GatewayDep,
                        user: PortalUserDep, choice: str = "", language: str = ""
                        ) -> Response:
    """The purpose's notice in the patient's language, and the form to record consent."""
    require(user, "clinician")
    with gw.transaction() as session:
        found = _resolve(session, user, subject_id, choice, request_language(request))
        if found is None:
            return RedirectResponse(
                f"/portal/console/patients/{subject_id}/consent?choice_error=1", 303)
        subject, app, purpose_id = found
        shown = notice_language(language, subject.preferred_language)
        products = list(load_catalog().get(purpose_id).products)
        values = {"grantor": "", "assent": "", "products": products}
        return _notice_page(request, session, user, subject, app, purpose_id, shown, values,
                            FormErrors())


@router.post("/patients/{subject_id}/consent")
def create_consent(subject_id: str, request: Request, gw: GatewayDep, user: PortalUserDep,
                   form: CsrfFormDep) -> Response:
    """Record the consent given in person, with the exact notice shown."""
    require(user, "clinician")
    _ = gettext(request)
    errors = FormErrors()
    with gw.transaction() as session:
        found = _resolve(session, user, subject_id, form_text(form, "choice"),
                         request_language(request))
        if found is None:
            errors.add("choice", _("Choose one app and purpose from the list."))
            subject = access.get_subject(session, user.principal, subject_id, (CLINICIAN,))
            return render(request, "console/consent_choose.html", {
                "subject": subject, "name": subject_name(subject),
                "options": _options(session, user, request_language(request)), "errors": errors,
            }, status=400)
        subject, app, purpose_id = found
        purpose = load_catalog().get(purpose_id)
        language = notice_language(form_text(form, "notice_language"),
                                   subject.preferred_language)
        grantors = {value: capacity for value, _name, capacity in
                    _grantors(session, user, subject)}
        products = [p for p in form.getlist("products") if isinstance(p, str)]
        values = {"grantor": form_text(form, "grantor"), "assent": form_text(form, "assent"),
                  "products": products}
        grantor = choice(form, "grantor", grantors)
        if grantor is None:
            errors.add("grantor", _("Choose who gives the consent: the patient or one of "
                                    "their guardians."))
        if not products or any(p not in purpose.products for p in products):
            errors.add("products", _("Choose at least one of the data this purpose allows."))
        assent_applies = _assent_applies(subject)
        assent = choice(form, "assent", ("given", "dissent", "later"))
        if assent_applies and assent is None:
            errors.add("assent", _("Choose whether the child agreed, said no, or will be "
                                   "asked later."))
        version, digest = form_text(form, "notice_version"), form_text(form, "notice_sha256")
        current = purpose.notice(language, "plain")
        if version != str(current.version) or digest != current.sha256:
            errors.add("notice", _("The notice changed while it was shown. Read the text "
                                   "below again, then record the consent."))
    if not errors:
        assert grantor is not None
        request_body = ConsentCreate(
            subject_id=subject.id, app_id=app.id, purpose_id=purpose_id, products=products,
            notice=NoticeShown(version=current.version, language=language, variant="plain",
                               sha256=current.sha256),
            capacity=grantors[grantor],
            guardian_account_id=grantor.split(":", 1)[1] if ":" in grantor else None,
            assent=assent if assent_applies and assent in ("given", "dissent") else None,
        )
        try:
            with gw.transaction() as session:
                consent, receipt = consents.grant_consent(
                    session=session, ledger=gw.ledger, principal=user.principal,
                    request=request_body)
                consent_id, assent_state = consent.id, consent.assent
        except ConsentError:
            errors.add("grantor", _(
                "The rules refuse this consent as given: a child's consent comes from a "
                "guardian, and some purposes are never allowed for children."))
        except ValidationError as exc:
            errors.add("grantor" if exc.field != "products" else "products", exc.message)
    if errors:
        with gw.transaction() as session:
            return _notice_page(request, session, user, subject, app, purpose_id, language,
                                values, errors, status=400)
    return render(request, "console/done.html", {
        "title": _("Consent recorded"),
        "message": _("%(name)s's consent to %(app)s for %(purpose)s is recorded in the "
                     "ledger (entry %(index)s).", name=subject_name(subject), app=app.name,
                     purpose=purpose_title(purpose_id, request_language(request)),
                     index=receipt.get("leaf_index", receipt.get("index", "–"))),
        "detail": _("The child's assent: %(assent)s.", assent=_(ASSENT_LABELS[assent_state]))
        if assent_state != "not_required" else None,
        "links": [(f"/portal/console/patients/{subject.id}", _("Go to the patient's page")),
                  (f"/portal/console/consents/{consent_id}/assent",
                   _("Record the child's assent"))
                  if assent_state == "pending" else None],
    })


def _assent_page(request: Request, session: Any, user: Any, consent_id: str,
                 value: str, errors: FormErrors, status: int = 200) -> Response:
    consent = access.get_consent(session, user.principal, consent_id, (CLINICIAN,))
    subject = access.get_subject(session, user.principal, consent.subject_id, (CLINICIAN,))
    app = access.get_app(session, user.principal, consent.app_id)
    language = subject.preferred_language
    return render(request, "console/assent.html", {
        "consent": consent, "subject": subject, "name": subject_name(subject), "app": app,
        "child_notice": load_catalog().get(consent.purpose_id).notice(language, "child"),
        "notice_lang": language, "value": value, "errors": errors,
        "assent_labels": ASSENT_LABELS,
    }, status=status)


@router.get("/consents/{consent_id}/assent")
def read_assent(consent_id: str, request: Request, gw: GatewayDep,
                user: PortalUserDep) -> Response:
    """The child-friendly notice and the form to record the child's assent."""
    require(user, "clinician")
    with gw.transaction() as session:
        return _assent_page(request, session, user, consent_id, "", FormErrors())


@router.post("/consents/{consent_id}/assent")
def record_assent(consent_id: str, request: Request, gw: GatewayDep, user: PortalUserDep,
                  form: CsrfFormDep) -> Response:
    """Record the child's own assent or dissent."""
    require(user, "clinician")
    _ = gettext(request)
    errors = FormErrors()
    assent = choice(form, "assent", ("given", "dissent"))
    if assent is None:
        errors.add("assent", _("Choose whether the child agreed or said no."))
    else:
        try:
            with gw.transaction() as session:
                consent = consents.record_assent(session=session, ledger=gw.ledger,
                                                 principal=user.principal,
                                                 consent_id=consent_id, assent=assent)
                subject_id = consent.subject_id
        except ConflictError:
            errors.add("assent", _(
                "This consent's assent cannot change now: it is already recorded this way, "
                "or the consent has ended."))
    if errors:
        with gw.transaction() as session:
            return _assent_page(request, session, user, consent_id, form_text(form, "assent"),
                                errors, status=400)
    return render(request, "console/done.html", {
        "title": _("Assent recorded"),
        "message": _("The child's answer is recorded: %(assent)s.",
                     assent=_(ASSENT_LABELS[assent])),
        "links": [(f"/portal/console/patients/{subject_id}", _("Go to the patient's page"))],
    })
