"""Clinicians' patients: the list, registering one, a patient's page, guardians, devices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from neurogate.consent import access, consents, registry, reports
from neurogate.consent.access import CLINICIAN
from neurogate.consent.jurisdictions import profile_codes
from neurogate.consent.purposes import LANGUAGES
from neurogate.consent.schemas import GuardianLinkCreate, SubjectCreate
from neurogate.errors import ConflictError, NotFoundError, ValidationError
from neurogate.gateway.deps import GatewayDep
from neurogate.gateway.portal.console._common import (
    ASSENT_LABELS,
    CAPACITY_LABELS,
    RELATIONSHIP_LABELS,
    STATUS_LABELS,
    choice,
    gettext,
    options,
    parse_date,
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
MAX_NAME = 200


def _patient_view(session: Any, user: Any, subject_id: str, language: str = "en"
                  ) -> dict[str, Any]:
    """Everything a patient's page shows, read through the domain's access rules."""
    subject = access.get_subject(session, user.principal, subject_id, (CLINICIAN,))
    guardians = []
    for link in registry.list_guardians(session=session, principal=user.principal,
                                        subject_id=subject.id):
        account = access.account_of(session, link.guardian_account_id)
        guardians.append({"username": account.username if account else "",
                          "relationship": link.relationship, "verified_at": link.verified_at})
    rows = consents.list_consents(session=session, principal=user.principal,
                                  subject_id=subject.id)
    apps = {a.id: a for a in reports.apps_of_subject(session=session, principal=user.principal,
                                                     subject_id=subject.id)}
    return {
        "subject": subject,
        "facts": registry.subject_public(subject),
        "name": subject_name(subject),
        "guardians": guardians,
        "consents": rows,
        "apps": apps,
        "devices": reports.devices_of_subject(session=session, principal=user.principal,
                                              subject_id=subject.id),
        "purpose_titles": {c.purpose_id: purpose_title(c.purpose_id, language) for c in rows},
        "relationship_labels": RELATIONSHIP_LABELS, "status_labels": STATUS_LABELS,
        "capacity_labels": CAPACITY_LABELS, "assent_labels": ASSENT_LABELS,
    }


@router.get("")
def read_patients(request: Request, gw: GatewayDep, user: PortalUserDep) -> Response:
    """Patients in the signed-in clinician's care."""
    require(user, "clinician")
    with gw.transaction() as session:
        patients = [registry.subject_public(s)
                    for s in registry.list_subjects(session=session, principal=user.principal)]
    return render(request, "console/patients.html", {"patients": patients})


def _registration_form(request: Request, values: dict[str, str], errors: FormErrors,
                       status: int = 200) -> Response:
    return render(request, "console/patient_new.html", {
        "values": values, "errors": errors,
        "jurisdictions": [(code, code) for code in profile_codes()],
        "relationships": options(request, RELATIONSHIP_LABELS),
    }, status=status)


@router.get("/patients/new")
def read_new_patient(request: Request, user: PortalUserDep) -> Response:
    """The form to register a patient."""
    require(user, "clinician")
    values = {"display_name": "", "date_of_birth": "", "preferred_language": "en",
              "jurisdiction": "CRC", "capacity": "full", "guardian_username": "",
              "relationship": "parent"}
    return _registration_form(request, values, FormErrors())


@router.post("/patients/new")
def create_patient(request: Request, gw: GatewayDep, user: PortalUserDep,
                   form: CsrfFormDep) -> Response:
    """Register a patient (and link a guardian); nothing is written if anything is wrong."""
    require(user, "clinician")
    _ = gettext(request)
    names = ("display_name", "date_of_birth", "preferred_language", "jurisdiction",
             "capacity", "guardian_username", "relationship")
    values = {name: form_text(form, name) for name in names}
    errors = FormErrors()
    if len(values["display_name"]) > MAX_NAME:
        errors.add("display_name", _("Enter a name of at most %(n)s characters.", n=MAX_NAME))
    born = parse_date(values["date_of_birth"])
    if born is None:
        errors.add("date_of_birth", _(
            "Enter the date of birth as year-month-day, for example 2016-04-23."))
    language = choice(form, "preferred_language", LANGUAGES)
    if language is None:
        errors.add("preferred_language", _("Choose English, Chinese or Spanish."))
    jurisdiction = choice(form, "jurisdiction", profile_codes())
    if jurisdiction is None:
        errors.add("jurisdiction", _("Choose one of the rules: %(codes)s.",
                                     codes=", ".join(profile_codes())))
    capacity = choice(form, "capacity", ("full", "lacking"))
    if capacity is None:
        errors.add("capacity", _("Choose whether the patient can decide for themselves."))
    relationship = choice(form, "relationship", RELATIONSHIP_LABELS)
    if values["guardian_username"] and relationship is None:
        errors.add("relationship", _("Choose parent, legal guardian or legal representative."))
    if errors:
        return _registration_form(request, values, errors, status=400)
    try:
        with gw.transaction() as session:
            subject = registry.create_subject(
                session=session, principal=user.principal,
                request=SubjectCreate(display_name=values["display_name"] or None,
                                      date_of_birth=born, jurisdiction=jurisdiction,
                                      preferred_language=language, capacity=capacity))
            if values["guardian_username"]:
                registry.link_guardian(
                    session=session, principal=user.principal, subject_id=subject.id,
                    request=GuardianLinkCreate(guardian_username=values["guardian_username"],
                                               relationship=relationship))
            subject_id, name = subject.id, subject_name(subject)
    except (ValidationError, NotFoundError, ConflictError) as exc:
        if exc.field == "date_of_birth":
            errors.add("date_of_birth", _(
                "Enter a date of birth that is not in the future and within the last 130 "
                "years."))
        elif exc.field == "guardian_username":
            errors.add("guardian_username", _(
                "No guardian account has this username. Enter the username of an account "
                "with the role guardian, or leave it empty."))
        else:
            raise
        return _registration_form(request, values, errors, status=400)
    return render(request, "console/done.html", {
        "title": _("Patient registered"),
        "message": _("%(name)s is registered and in your care.", name=name),
        "links": [(f"/portal/console/patients/{subject_id}", _("Go to the patient's page")),
                  (f"/portal/console/patients/{subject_id}/consent",
                   _("Record a consent for this patient"))],
    })


@router.get("/patients/{subject_id}")
def read_patient(subject_id: str, request: Request, gw: GatewayDep,
                 user: PortalUserDep) -> Response:
    """One patient: guardians, consents, devices."""
    require(user, "clinician")
    with gw.transaction() as session:
        view = _patient_view(session, user, subject_id, request_language(request))
    return render(request, "console/patient.html", view)


def _guardian_form(request: Request, view: dict[str, Any], values: dict[str, str],
                   errors: FormErrors, status: int = 200) -> Response:
    return render(request, "console/guardian_new.html", {
        **view, "values": values, "errors": errors,
        "relationships": options(request, RELATIONSHIP_LABELS),
    }, status=status)


@router.get("/patients/{subject_id}/guardians")
def read_new_guardian(subject_id: str, request: Request, gw: GatewayDep,
                      user: PortalUserDep) -> Response:
    """The form to link a guardian to a patient."""
    require(user, "clinician")
    with gw.transaction() as session:
        view = _patient_view(session, user, subject_id)
    return _guardian_form(request, view, {"guardian_username": "", "relationship": "parent"},
                          FormErrors())


@router.post("/patients/{subject_id}/guardians")
def create_guardian_link(subject_id: str, request: Request, gw: GatewayDep,
                         user: PortalUserDep, form: CsrfFormDep) -> Response:
    """Link and verify a guardian (the clinician's act is the verification)."""
    require(user, "clinician")
    _ = gettext(request)
    values = {"guardian_username": form_text(form, "guardian_username"),
              "relationship": form_text(form, "relationship")}
    errors = FormErrors()
    if not values["guardian_username"]:
        errors.add("guardian_username", _(
            "Enter the username of an account with the role guardian."))
    relationship = choice(form, "relationship", RELATIONSHIP_LABELS)
    if relationship is None:
        errors.add("relationship", _("Choose parent, legal guardian or legal representative."))
    if not errors:
        try:
            with gw.transaction() as session:
                link = registry.link_guardian(
                    session=session, principal=user.principal, subject_id=subject_id,
                    request=GuardianLinkCreate(guardian_username=values["guardian_username"],
                                               relationship=relationship))
                name = subject_name(access.get_subject(session, user.principal,
                                                       link.subject_id))
        except NotFoundError as exc:
            if exc.field != "guardian_username":
                raise
            errors.add("guardian_username", _(
                "No guardian account has this username. Enter the username of an account "
                "with the role guardian."))
        except ConflictError:
            errors.add("guardian_username", _(
                "This guardian is already linked to this patient. Enter another username."))
        except ValidationError:
            errors.add("guardian_username", _(
                "Enter a username of letters, digits, dots, dashes or underscores."))
    if errors:
        with gw.transaction() as session:
            view = _patient_view(session, user, subject_id)
        return _guardian_form(request, view, values, errors, status=400)
    return render(request, "console/done.html", {
        "title": _("Guardian linked"),
        "message": _("%(guardian)s is now a verified guardian of %(name)s.",
                     guardian=values["guardian_username"], name=name),
        "links": [(f"/portal/console/patients/{subject_id}", _("Go to the patient's page"))],
    })


def _device_form(request: Request, view: dict[str, Any], value: str, errors: FormErrors,
                 status: int = 200) -> Response:
    return render(request, "console/device_pair.html",
                  {**view, "device_id": value, "errors": errors}, status=status)


@router.get("/patients/{subject_id}/device")
def read_pair_device(subject_id: str, request: Request, gw: GatewayDep,
                     user: PortalUserDep) -> Response:
    """The form to pair a device with a patient."""
    require(user, "clinician")
    with gw.transaction() as session:
        view = _patient_view(session, user, subject_id)
    return _device_form(request, view, "", FormErrors())


@router.post("/patients/{subject_id}/device")
def pair_device(subject_id: str, request: Request, gw: GatewayDep, user: PortalUserDep,
                form: CsrfFormDep) -> Response:
    """Pair a device with a patient; its stream is then the patient's."""
    require(user, "clinician")
    _ = gettext(request)
    device_id = form_text(form, "device_id")
    errors = FormErrors()
    if not device_id:
        errors.add("device_id", _("Enter the device id shown in the vendor's registration."))
    else:
        try:
            with gw.transaction() as session:
                device = registry.pair_device(session=session, ledger=gw.ledger,
                                              principal=user.principal, device_id=device_id,
                                              subject_id=subject_id)
                model, serial = device.model, device.serial
        except NotFoundError as exc:
            if not exc.message.startswith("No device "):
                raise
            errors.add("device_id", _(
                "No device with this id is free to pair. Enter the device id shown in the "
                "vendor's registration; a device paired with someone else is unpaired first."))
        except ConflictError:
            errors.add("device_id", _(
                "This device is already paired with this patient. Enter another device id."))
    if errors:
        with gw.transaction() as session:
            view = _patient_view(session, user, subject_id)
        return _device_form(request, view, device_id, errors, status=400)
    return render(request, "console/done.html", {
        "title": _("Device paired"),
        "message": _("%(model)s (serial %(serial)s) now streams for this patient.",
                     model=model, serial=serial),
        "links": [(f"/portal/console/patients/{subject_id}", _("Go to the patient's page"))],
    })
