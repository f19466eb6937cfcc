"""A child in Chromium: Mia says no to FocusQuest, the app is then refused and Mia reads
why in her own words; Mia reports a concern that reaches her clinician."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from neurogate.consent.access import Principal
from neurogate.consent.concerns import list_concerns_for
from neurogate.consent.models import Account
from neurogate.consent.policy import Decision, explain
from tests.e2e.live import app_token, subscribe
from tests.portal.conftest import PortalServer, axe_check, screenshot, sign_in
from tests.portal.test_guardian_flow import assert_no_english, chinese_sign_in, pseudonym

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser
APP = "FocusQuest Neurofeedback"


def test_child_refuses_assent_and_the_app_is_refused_and_she_sees_why(
        make_page: Callable[..., Page], portal_server: PortalServer) -> None:
    """Mia reads the child-friendly notice, says no; FocusQuest's live socket closes, a new
    subscription is refused, and Mia's page gives the decision's reasons in plain words."""
    base = portal_server.url
    token = app_token(base, portal_server.world.credentials["focus"])
    name = pseudonym(portal_server, "focus", "mia")
    before = subscribe(base, token, name, "neurofeedback")
    assert before.first["type"] == "subscribed", before.first
    page = make_page()
    sign_in(page, "mia")
    assert page.url.endswith("/portal/assent")
    assert page.get_by_role("heading", level=1).inner_text() == "Your brain data"
    axe_check(page)
    page.get_by_role("link", name=f"Read what {APP} wants and answer").click()
    assert "The game only gets two numbers" in page.locator(".notice-text").inner_text()
    axe_check(page)
    page.get_by_label("No, I do not want this").check()
    page.get_by_role("button", name="Send my answer").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Your answer is saved"
    assert f"{APP} gets nothing for this any more." in page.inner_text("main")

    before.wait_closed(10)
    assert [m for _, m in before.messages if isinstance(m, dict) and m["type"] == "revoked"]
    refused = subscribe(base, token, name, "neurofeedback")
    assert refused.first["type"] == "refused", refused.first
    reasons = refused.first["reasons"]
    assert "child.dissent-blocks-non-therapeutic" in reasons
    refused.close()

    page.get_by_role("link", name="Back to your apps").click()
    section = page.get_by_role("region", name=re.compile(f"{APP}.*Gets nothing"))
    shown = section.locator("li").all_inner_texts()
    decision = Decision(allowed=False, reasons=("child.dissent-blocks-non-therapeutic",),
                        constraints=None, consent_id=None, age=10, profile="CRC")
    assert explain(decision, "en")[0] in shown
    # Every sentence shown is a reason the gateway gave the app for refusing it.
    everything = Decision(allowed=False, reasons=tuple(reasons), constraints=None,
                          consent_id=None, age=10, profile="CRC")
    assert set(shown) <= set(explain(everything, "en"))
    axe_check(page)
    screenshot(page, "child-refused")


def test_child_view_in_chinese(make_page: Callable[..., Page],
                               portal_server: PortalServer) -> None:
    """Mia's page in Chinese: the child wording of each purpose and the reasons, no
    English."""
    page = make_page(locale="zh-CN")
    chinese_sign_in(page, "mia")
    assert page.get_by_role("heading", level=1).inner_text() == "你的脑数据"
    assert_no_english(page)
    axe_check(page)
    screenshot(page, "child-zh")
    page.get_by_role("link", name=re.compile(f"看看 {APP} 想要什么")).click()
    assert "游戏只得到两个数字" in page.locator(".notice-text").inner_text()
    assert_no_english(page)


def test_child_files_a_concern_that_reaches_her_clinician(
        make_page: Callable[..., Page], portal_server: PortalServer) -> None:
    """"Something feels wrong?": Mia writes what happened and names the app; the concern
    is waiting for an answer and listed for dr.rivera."""
    page = make_page()
    sign_in(page, "mia")
    page.get_by_role("link", name="Tell someone who can help").click()
    axe_check(page)
    page.get_by_role("button", name="Send").click()
    assert page.locator("#field-what_happened-error").inner_text().endswith(
        "Write what happened, in 1 to 2,000 characters.")
    expect(page.locator("#error-summary")).to_be_visible()
    page.get_by_label("What happened?").fill("The game said I was not trying hard enough.")
    page.get_by_label("Which app was it?").select_option(label=APP)
    page.get_by_role("button", name="Send").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Thank you for telling us"
    assert "Waiting for an answer" in page.inner_text("main")
    axe_check(page)
    gateway = portal_server.gateway()
    try:
        with gateway.transaction() as session:
            clinician = session.exec(select(Account).where(Account.username == "dr.rivera")).one()
            seen = list_concerns_for(session=session, principal=Principal(
                kind="account", id=clinician.id, role="clinician"))
            assert [c.what_happened for c in seen] == [
                "The game said I was not trying hard enough."]
    finally:
        gateway.engine.dispose()
