"""Clinician console in a real browser: register a child, record consent and assent,
answer a child's concern."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from neurogate_client.wire import encode_frame
from playwright.sync_api import Page, expect
from sqlmodel import col, select

from neurogate.consent.models import (
    AppPseudonym,
    Concern,
    Consent,
    GuardianLink,
    Subject,
    utcnow,
)
from neurogate.consent.purposes import load_catalog
from neurogate.gateway.demo import BAND_CHANNELS, DEMO_RATE
from tests.e2e.live import app_token, hello, open_device, subscribe, synthetic_uv
from tests.portal.conftest import PortalServer, screenshot, sign_in

pytestmark = pytest.mark.browser


def _birthday(years: int) -> str:
    today = utcnow().date()
    return today.replace(year=today.year - years, day=min(today.day, 28)).isoformat()


def _subjects_named(server: PortalServer, name: str) -> list[Subject]:
    gateway = server.gateway()
    with gateway.transaction() as session:
        return list(session.exec(select(Subject).where(Subject.display_name == name)).all())


def test_clinician_registers_a_child_and_records_consent_and_assent(
    make_page: Callable[..., Page], portal_server: PortalServer,
) -> None:
    """Dr Rivera registers Leo with his guardian, records the guardian's consent with the
    notice shown in Leo's language, then Leo's own assent."""
    page = make_page()
    sign_in(page, "dr.rivera")
    expect(page.get_by_role("heading", level=1)).to_have_text("Patients in your care")
    screenshot(page, "clinician-console")

    page.get_by_role("link", name="Register a patient").click()
    page.get_by_label("Name (optional)", exact=True).fill("Leo Child")
    page.get_by_label("Date of birth", exact=True).fill("23/04/2016")
    page.get_by_label("Español", exact=True).check()
    page.get_by_label("Guardian's username (optional)", exact=True).fill("parent.chen")
    page.get_by_role("button", name="Register the patient").click()
    # A date the form does not take: the message sits next to the field, nothing is written.
    expect(page.locator("#field-date_of_birth-error")).to_contain_text(
        "Enter the date of birth as year-month-day, for example 2016-04-23.")
    expect(page.locator(".error-summary a[href='#field-date_of_birth']")).to_be_visible()
    assert _subjects_named(portal_server, "Leo Child") == []

    page.get_by_label("Date of birth", exact=True).fill(_birthday(9))
    page.get_by_role("button", name="Register the patient").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Patient registered")
    [leo] = _subjects_named(portal_server, "Leo Child")
    assert leo.preferred_language == "es"

    page.get_by_role("link", name="Record a consent for this patient").click()
    page.get_by_label("FocusQuest Neurofeedback – Neurofeedback training", exact=True).check()
    page.get_by_role("button", name="Show the notice").click()
    notice = load_catalog().get("neurofeedback").notice("es", "plain")
    expect(page.locator("#field-notice")).to_have_text(notice.text)
    expect(page.locator("section[lang=es] h2")).to_have_text(notice.title)
    page.get_by_label("parent.chen, as guardian", exact=True).check()
    page.get_by_label("relaxation level", exact=True).uncheck()
    page.get_by_label("signal quality", exact=True).uncheck()
    page.get_by_label("Ask the child later", exact=True).check()
    page.get_by_role("button", name="Record the consent").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Consent recorded")

    gateway = portal_server.gateway()
    with gateway.transaction() as session:
        [consent] = session.exec(select(Consent).where(Consent.subject_id == leo.id)).all()
        links = session.exec(select(GuardianLink).where(GuardianLink.subject_id == leo.id)).all()
        assert (consent.status, consent.granted_capacity, consent.assent) == (
            "active", "guardian", "pending")
        assert consent.products == ["focus_index"]
        assert (consent.notice_language, consent.notice_sha256) == ("es", notice.sha256)
        assert [link.relationship for link in links] == ["parent"]

    page.get_by_role("link", name="Record the child's assent").click()
    child = load_catalog().get("neurofeedback").notice("es", "child")
    expect(page.locator("section[lang=es] .notice-text")).to_have_text(child.text)
    page.get_by_label("Yes, the child agreed", exact=True).check()
    page.get_by_role("button", name="Record the child's answer").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Assent recorded")
    with gateway.transaction() as session:
        assert session.get(Consent, consent.id).assent == "given"  # type: ignore[union-attr]

    page.get_by_role("link", name="Go to the patient's page").click()
    expect(page.locator("table")).to_contain_text("agreed")
    page.get_by_role("link", name="Decisions and their reasons").click()
    row = page.locator("tr", has_text="focus level")
    expect(row).to_contain_text("allowed")


def test_clinician_answers_a_concern_a_child_filed(
    make_page: Callable[..., Page], portal_server: PortalServer,
) -> None:
    """Mia reports a concern on her page; Dr Rivera answers it in the console; Mia reads
    the answer."""
    child = make_page()
    sign_in(child, "mia")
    child.goto("/portal/concerns/new")
    child.locator("#field-what_happened").fill("The game asked me how I feel every minute.")
    child.locator("form[action='/portal/concerns'] button[type=submit]").click()
    gateway = portal_server.gateway()
    with gateway.transaction() as session:
        [concern] = session.exec(
            select(Concern).where(col(Concern.subject_id) == portal_server.world.subjects["mia"])
        ).all()
        assert concern.status == "open"

    clinician = make_page()
    sign_in(clinician, "dr.rivera")
    clinician.goto("/portal/console/concerns")
    clinician.locator(f"a[href='/portal/console/concerns/{concern.id}']").click()
    expect(clinician.locator(".notice-text")).to_have_text(
        "The game asked me how I feel every minute.")
    clinician.get_by_role("button", name="Send the answer").click()
    expect(clinician.locator("#field-answer-error")).to_contain_text(
        "Write an answer of 1 to 2000 characters.")
    answer = "Thank you for telling us. We stopped that question; you can ask me anything."
    clinician.get_by_label("Your answer", exact=True).fill(answer)
    clinician.get_by_role("button", name="Send the answer").click()
    expect(clinician.get_by_role("heading", level=1)).to_have_text("Answer sent")

    child.goto(f"/portal/concerns/{concern.id}")
    expect(child.locator("main")).to_contain_text(answer)


def _pseudonym(server: PortalServer, app: str, subject: str) -> str:
    gateway = server.gateway()
    with gateway.transaction() as session:
        return session.exec(select(AppPseudonym).where(
            AppPseudonym.app_id == server.world.apps[app],
            AppPseudonym.subject_id == server.world.subjects[subject])).one().pseudonym


class _Band:
    """Mia's four-channel band, streaming synthetic EEG in real time until stopped."""

    def __init__(self, server: PortalServer) -> None:
        self.sock, self.welcome = open_device(
            server.url, app_token(server.url, server.world.credentials["band"]),
            hello(BAND_CHANNELS, DEMO_RATE))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0, sent, chunk = time.time(), 0, 10
        while not self._stop.is_set():
            data = synthetic_uv(chunk, sent, DEMO_RATE, n_channels=len(BAND_CHANNELS))
            self.sock.send(encode_frame(data, sequence=sent // chunk,
                                        timestamp=t0 + sent / DEMO_RATE))
            sent += chunk
            time.sleep(max(0.0, t0 + sent / DEMO_RATE - time.time()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.send(json.dumps({"type": "bye"}))
        self.sock.close()


def test_clinician_sees_live_streams_and_refusals_with_reasons(
    make_page: Callable[..., Page], portal_server: PortalServer,
) -> None:
    """While Mia's band streams, the console shows it, FocusQuest receiving her focus level,
    and AdLab's refused request with the policy's reasons."""
    world = portal_server.world
    device = _Band(portal_server)
    assert device.welcome["type"] == "welcome", device.welcome
    focus = subscribe(portal_server.url, app_token(portal_server.url, world.credentials["focus"]),
                      _pseudonym(portal_server, "focus", "mia"), "neurofeedback")
    adlab = subscribe(portal_server.url, app_token(portal_server.url, world.credentials["adlab"]),
                      _pseudonym(portal_server, "adlab", "mia"), "neuromarketing")
    try:
        assert focus.first["type"] == "subscribed", focus.first
        assert adlab.first["type"] != "subscribed", adlab.first
        page = make_page()
        sign_in(page, "dr.rivera")
        page.get_by_role("link", name="Live streams").first.click()
        streams = page.locator("table").first
        expect(streams).to_contain_text("Mia Child")
        expect(streams).to_contain_text("Acme Band 4 (ACME-0002)")
        receiving = page.locator("tr", has_text="FocusQuest Neurofeedback")
        expect(receiving).to_contain_text("focus level")
        expect(receiving).to_contain_text("flowing")
        screenshot(page, "clinician-live-streams")
    finally:
        focus.close()
        adlab.close()
        device.stop()
    page.goto(f"/portal/console/patients/{world.subjects['mia']}/decisions")
    refused = page.locator("table", has_text="AdLab Neuromarketing").last
    expect(refused).to_contain_text("child.no-marketing")
    expect(page.locator("tr", has_text="AdLab Neuromarketing").first).to_contain_text("refused")
