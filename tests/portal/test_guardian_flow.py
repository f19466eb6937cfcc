"""A guardian in Chromium: review, stop an app in two clicks, verify the receipt offline,
the app's live stream closes; the same flow in Chinese shows no English."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from babel.messages.pofile import read_po

from neurogate.consent.consents import app_pseudonym_of
from neurogate.gateway.demo import DEMO_PASSWORD
from neurogate.gateway.portal import web
from tests.e2e.live import app_token, subscribe
from tests.portal.conftest import PortalServer, axe_check, screenshot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser
APP = "FocusQuest Neurofeedback"
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def pseudonym(server: PortalServer, app: str, subject: str) -> str:
    """The name under which the app knows the subject (what it subscribes with)."""
    gateway = server.gateway()
    try:
        with gateway.transaction() as session:
            name = app_pseudonym_of(session, server.world.apps[app], server.world.subjects[subject])
    finally:
        gateway.engine.dispose()
    assert name is not None
    return name


def english_fragments() -> set[str]:
    """Phrases of the portal's English messages (two words or more, placeholders cut
    out) whose Chinese translation differs: none may show on a Chinese page."""
    path = web.LOCALES / "zh_Hans" / "LC_MESSAGES" / "portal.po"
    with path.open("rb") as handle:
        catalog = read_po(handle)
    fragments = set()
    for message in catalog:
        if not message.id or message.string == message.id:
            continue
        for part in PLACEHOLDER.split(str(message.id)):
            part = part.strip(" .,:;?()–-")
            if len(part.split()) >= 2:
                fragments.add(part)
    return fragments


def assert_no_english(page: Page) -> None:
    text = page.inner_text("body")
    leaked = sorted(f for f in english_fragments() if f in text)
    assert leaked == [], f"English on the Chinese page {page.url}: {leaked}"
    assert re.search(r"[\u4e00-\u9fff]", text), "no Chinese text on the page"


def verify_receipt(server: PortalServer, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neurogate", "audit", "verify-receipt",
                           str(path)], env=server.env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_guardian_stops_an_app_in_two_clicks_and_its_stream_closes(
        make_page: Callable[..., Page], portal_server: PortalServer, tmp_path: Path) -> None:
    """parent.chen sees FocusQuest receiving Mia's data live, stops it with the button
    and the confirmation, downloads a receipt that verifies offline, and FocusQuest's
    live socket closes with 'revoked'."""
    base = portal_server.url
    token = app_token(base, portal_server.world.credentials["focus"])
    receiver = subscribe(base, token, pseudonym(portal_server, "focus", "mia"),
                         "neurofeedback")
    assert receiver.first["type"] == "subscribed", receiver.first
    page = make_page()
    sign_in(page, "parent.chen")
    assert page.get_by_role("heading", level=1).inner_text() == "Consents for Mia Child"
    card = page.get_by_role("region", name=re.compile(APP))
    assert "Receiving data now" in card.inner_text()
    assert "their focus level" in card.inner_text()
    axe_check(page)
    screenshot(page, "home")

    page.get_by_role("link", name=f"Stop {APP} receiving data").click()  # first click
    assert page.get_by_role("heading", level=1).inner_text() == f"Stop {APP} receiving data?"
    axe_check(page)
    screenshot(page, "revoke-confirmation")
    page.get_by_role("button", name=f"Yes, stop {APP} receiving data").click()  # second
    assert page.get_by_role("heading", level=1).inner_text() == (
        f"{APP} no longer receives data")
    axe_check(page)

    receiver.wait_closed(10)
    revoked = [m for _, m in receiver.messages
               if isinstance(m, dict) and m["type"] == "revoked"]
    assert revoked and revoked[0]["reason"] == "consent.revoked"
    assert receiver.close_code == 4410

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the signed receipt").click()
    path = tmp_path / "receipt.json"
    download.value.save_as(path)
    result = verify_receipt(portal_server, path)
    assert result.returncode == 0, result.stdout + result.stderr

    page.get_by_role("link", name="Back to all consents").click()
    assert "No app is allowed to receive data." in page.inner_text("main")
    refused = subscribe(base, token, pseudonym(portal_server, "focus", "mia"),
                        "neurofeedback")
    assert refused.first["type"] == "refused"
    refused.close()


def chinese_sign_in(page: Page, username: str) -> None:
    page.goto("/portal/login")
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    assert_no_english(page)
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(DEMO_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="登录").click()


def stop_in_chinese(page: Page) -> None:
    """The two clicks, in Chinese."""
    page.get_by_role("link", name=f"让 {APP} 停止接收数据").click()
    assert_no_english(page)
    axe_check(page)
    page.get_by_role("button", name=f"是的，让 {APP} 停止接收数据").click()
    assert page.get_by_role("heading", level=1).inner_text() == f"{APP} 已不再接收数据"
    assert_no_english(page)


def test_guardian_flow_in_chinese_shows_only_chinese(
        make_page: Callable[..., Page], portal_server: PortalServer, tmp_path: Path) -> None:
    """With a Chinese browser the guardian stops FocusQuest, grants it again after
    reading the full Chinese notice, and stops it again: every page is Chinese."""
    page = make_page(locale="zh-CN")
    chinese_sign_in(page, "parent.chen")
    assert_no_english(page)
    axe_check(page)
    if page.get_by_role("link", name=f"让 {APP} 停止接收数据").count():
        stop_in_chinese(page)
        page.get_by_role("link", name="返回所有同意").click()
    page.get_by_role("link", name=f"让 {APP} 再次接收数据").first.click()
    assert_no_english(page)
    assert "专注" in page.locator(".notice-text").inner_text()  # the zh-Hans notice
    page.get_by_role("button", name=f"让 {APP} 接收数据").click()
    # Not ticked: the message is next to the box, in Chinese, and nothing was granted.
    assert page.locator("#field-agree-error").inner_text().endswith(
        "请勾选方框，表示您已阅读说明并同意；或者返回。")
    assert_no_english(page)
    axe_check(page)
    page.get_by_label(re.compile("我已阅读这份说明")).check()
    page.get_by_role("button", name=f"让 {APP} 接收数据").click()
    assert page.get_by_role("heading", level=1).inner_text() == f"{APP} 可以再次接收数据"
    assert_no_english(page)
    page.get_by_role("link", name="返回所有同意").click()
    stop_in_chinese(page)
    screenshot(page, "revoked-zh")
    with page.expect_download() as download:
        page.get_by_role("link", name="下载已签名的回执").click()
    path = tmp_path / "receipt-zh.json"
    download.value.save_as(path)
    result = verify_receipt(portal_server, path)
    assert result.returncode == 0, result.stdout + result.stderr
