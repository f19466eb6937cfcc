"""Console forms: bad input gets a message next to the field naming what is allowed and
writes nothing; a form without its CSRF token is refused (403) and changes nothing; each
role opens only its own pages."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

from neurogate.consent import registry
from neurogate.consent.access import Principal
from neurogate.consent.models import (
    Account,
    App,
    Concern,
    Consent,
    Device,
    GuardianLink,
    Subject,
)
from neurogate.consent.schemas import DeviceCreate
from neurogate.gateway.demo import DemoWorld
from neurogate.gateway.state import Gateway
from tests.portal.conftest import CSRF_TOKEN

_FIELD_ERROR = re.compile(r'id="field-(\w+)-error"><span class="visually-hidden">[^<]*</span>'
                          r"\s*([^<]+)</p>")


def _post(client: TestClient, page: str, data: dict[str, str], *, action: str | None = None,
          csrf: bool = True) -> tuple[int, dict[str, str], str]:
    """Post a console form read from ``page``; returns status, field errors and the page."""
    token = CSRF_TOKEN.search(client.get(page).text)
    assert token is not None
    body = {**data, **({"csrf_token": token.group(1)} if csrf else {})}
    response = client.post(action or page, data=body)
    errors = {name: html.unescape(text) for name, text in _FIELD_ERROR.findall(response.text)}
    return response.status_code, errors, response.text


def _counts(gateway: Gateway) -> tuple[int, ...]:
    with gateway.transaction() as session:
        return tuple(int(session.exec(select(func.count()).select_from(model)).one())
                     for model in (Subject, GuardianLink, Consent, Device, Concern))


def test_registration_refuses_bad_input_and_writes_nothing(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """Every field's message says what is allowed; no patient appears."""
    gateway, _ = demo
    before = _counts(gateway)
    status, errors, page = _post(signed_in("dr.rivera"), "/portal/console/patients/new", {
        "display_name": "x" * 201, "date_of_birth": "23/04/2016", "preferred_language": "fr",
        "jurisdiction": "XX", "capacity": "some", "guardian_username": "parent.chen",
        "relationship": "aunt"})
    assert status == 400
    assert errors == {
        "display_name": "Enter a name of at most 200 characters.",
        "date_of_birth": "Enter the date of birth as year-month-day, for example 2016-04-23.",
        "preferred_language": "Choose English, Chinese or Spanish.",
        "jurisdiction": "Choose one of the rules: CRC, US-CA, US-CO, US-MT, US-CT, EU, EU-DE, "
                        "EU-FR, EU-ES, CL.",
        "capacity": "Choose whether the patient can decide for themselves.",
        "relationship": "Choose parent, legal guardian or legal representative.",
    }
    assert 'href="#field-date_of_birth"' in page
    assert _counts(gateway) == before


def test_registration_with_an_unknown_guardian_writes_no_patient(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """The patient and the guardian link are one change: an unknown guardian undoes both."""
    gateway, _ = demo
    before = _counts(gateway)
    status, errors, _ = _post(signed_in("dr.rivera"), "/portal/console/patients/new", {
        "display_name": "Nobody's Child", "date_of_birth": "2016-04-23",
        "preferred_language": "en", "jurisdiction": "CRC", "capacity": "full",
        "guardian_username": "no.such.person", "relationship": "parent"})
    assert status == 400
    assert errors == {"guardian_username": (
        "No guardian account has this username. Enter the username of an account with the "
        "role guardian, or leave it empty.")}
    assert _counts(gateway) == before


def test_console_form_without_csrf_token_is_refused(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """403 and nothing changed, for a well-formed registration without its token."""
    gateway, _ = demo
    before = _counts(gateway)
    status, _, page = _post(signed_in("dr.rivera"), "/portal/console/patients/new", {
        "display_name": "Forged", "date_of_birth": "2016-04-23", "preferred_language": "en",
        "jurisdiction": "CRC", "capacity": "full", "guardian_username": "",
        "relationship": "parent"}, csrf=False)
    assert status == 403
    assert "This form has expired" in page
    assert _counts(gateway) == before


def test_consent_form_refuses_missing_choices_and_a_changed_notice(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """Who consents, what flows and the child's answer are required; a notice other than
    the current text is refused; nothing is recorded."""
    gateway, world = demo
    before = _counts(gateway)
    mia = world.subjects["mia"]
    choice = f"{world.apps['focus']}:neurofeedback"
    status, errors, _ = _post(
        signed_in("dr.rivera"),
        f"/portal/console/patients/{mia}/consent/notice?choice={choice}",
        {"choice": choice, "notice_language": "zh-Hans", "notice_version": "1",
         "notice_sha256": "0" * 64, "products": "raw"},
        action=f"/portal/console/patients/{mia}/consent")
    assert status == 400
    assert errors == {
        "grantor": "Choose who gives the consent: the patient or one of their guardians.",
        "products": "Choose at least one of the data this purpose allows.",
        "assent": "Choose whether the child agreed, said no, or will be asked later.",
        "notice": ("The notice changed while it was shown. Read the text below again, then "
                   "record the consent."),
    }
    assert _counts(gateway) == before


def test_device_pairing_and_answers_say_what_is_allowed(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """An unknown device id and an empty answer are refused with their messages."""
    gateway, world = demo
    before = _counts(gateway)
    clinician = signed_in("dr.rivera")
    mia = world.subjects["mia"]
    status, errors, _ = _post(clinician, f"/portal/console/patients/{mia}/device",
                              {"device_id": "no-such-device"})
    not_free = {"device_id": (
        "No device with this id is free to pair. Enter the device id shown in the vendor's "
        "registration; a device paired with someone else is unpaired first.")}
    assert (status, errors) == (400, not_free)
    # Alex's cap looks exactly like an unknown device (it would tell who has a device).
    status, errors, _ = _post(clinician, f"/portal/console/patients/{mia}/device",
                              {"device_id": world.devices["cap"]})
    assert (status, errors) == (400, not_free)
    status, errors, _ = _post(clinician, f"/portal/console/patients/{mia}/device",
                              {"device_id": world.devices["band"]})
    assert (status, errors) == (400, {"device_id": (
        "This device is already paired with this patient. Enter another device id.")})
    assert _counts(gateway) == before


def test_admin_suspends_and_reinstates_an_app(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """Suspension is one form with a confirmation page; the app's record changes."""
    gateway, world = demo
    admin = signed_in("admin")
    page = f"/portal/console/apps/{world.apps['adlab']}"
    status, _, text = _post(admin, page, {"suspended": "yes"}, action=page + "/suspension")
    assert status == 200 and "App suspended" in text
    with gateway.transaction() as session:
        assert session.get(App, world.apps["adlab"]).suspended  # type: ignore[union-attr]
    status, errors, _ = _post(admin, page, {"cria_status": "maybe"},
                              action=page + "/assessment")
    assert (status, errors) == (400, {"cria_status": (
        "Choose approve, or send back to the app's owner.")})
    status, _, text = _post(admin, page, {"suspended": "no"}, action=page + "/suspension")
    assert status == 200 and "App reinstated" in text
    with gateway.transaction() as session:
        assert not session.get(App, world.apps["adlab"]).suspended  # type: ignore[union-attr]


def test_app_owner_sees_counts_and_no_subject(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """The owner's page counts consents per purpose and state and names nobody."""
    gateway, world = demo
    page = signed_in("apps.owner").get("/portal/console/my-apps").text
    assert "FocusQuest Neurofeedback" in page
    with gateway.transaction() as session:
        for subject in session.exec(select(Subject)).all():
            assert subject.id not in page and subject.pseudonym not in page
            assert (subject.display_name or "") not in page


@pytest.mark.parametrize(("username", "path", "status"), [
    ("parent.chen", "/portal/console", 403),
    ("mia", "/portal/console/concerns", 403),
    ("apps.owner", "/portal/console/apps", 403),
    ("admin", "/portal/console/my-apps", 403),
    ("dr.rivera", "/portal/console/apps", 403),
    ("admin", "/portal/console/streams", 200),
])
def test_console_pages_open_to_their_roles_only(
    username: str, path: str, status: int, signed_in: Callable[[str], TestClient],
) -> None:
    """A role outside a page's audience gets the 'You cannot do this' page."""
    assert signed_in(username).get(path).status_code == status


def test_unknown_patient_is_not_found(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """An id that names no patient in care gets the 'Page not found' page."""
    _, world = demo
    client = signed_in("dr.rivera")
    assert client.get("/portal/console/patients/not-a-patient").status_code == 404
    assert client.get(f"/portal/console/patients/{world.subjects['mia']}").status_code == 200


def _vendor_device(gateway: Gateway, serial: str) -> str:
    """A new, unpaired device registered by the demo's vendor; returns its id."""
    with gateway.transaction() as session:
        vendor = session.exec(select(Account).where(Account.username == "acme.devices")).one()
        device, _, _ = registry.create_device(
            session=session,
            principal=Principal(kind="account", id=vendor.id, role=vendor.role),
            request=DeviceCreate(model="Acme Band 4", serial=serial,
                                 channel_names=["AF7", "AF8"], channel_types=["eeg", "eeg"],
                                 sampling_rate=250.0))
        return device.id


def test_clinician_pairs_a_device_and_links_a_guardian(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """Each change ends on its confirmation page and is in the store."""
    gateway, world = demo
    clinician = signed_in("dr.rivera")
    alex = world.subjects["alex"]
    device_id = _vendor_device(gateway, "ACME-0099")
    status, errors, page = _post(clinician, f"/portal/console/patients/{alex}/device",
                                 {"device_id": device_id})
    assert (status, errors) == (200, {})
    assert "Device paired" in page and "ACME-0099" in page
    status, errors, page = _post(clinician, f"/portal/console/patients/{alex}/guardians",
                                 {"guardian_username": "parent.chen",
                                  "relationship": "legal_representative"})
    assert (status, errors) == (200, {})
    assert "Guardian linked" in page
    with gateway.transaction() as session:
        device = session.get(Device, device_id)
        assert device is not None and device.paired_subject_id == alex
        link = session.exec(select(GuardianLink).where(GuardianLink.subject_id == alex)).one()
        assert link.relationship == "legal_representative"
    status, errors, _ = _post(clinician, f"/portal/console/patients/{alex}/guardians",
                              {"guardian_username": "parent.chen", "relationship": "parent"})
    assert (status, errors) == (400, {"guardian_username": (
        "This guardian is already linked to this patient. Enter another username.")})


def test_app_owner_submits_an_assessment(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """The owner's button puts the app's assessment up for an administrator's review."""
    gateway, world = demo
    status, _, page = _post(signed_in("apps.owner"), "/portal/console/my-apps", {},
                            action=f"/portal/console/my-apps/{world.apps['adlab']}/assessment")
    assert status == 200 and "Assessment submitted" in page
    with gateway.transaction() as session:
        app = session.get(App, world.apps["adlab"])
        assert app is not None and app.cria_status == "submitted"
