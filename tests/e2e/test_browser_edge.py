"""/docs in a real Chromium against a real gateway: renders offline, under the strict CSP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.conftest import skip_or_fail
from tests.e2e.conftest import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
# Reports every Content-Security-Policy violation of the page as a console error.
WATCH_CSP = ("document.addEventListener('securitypolicyviolation', e => console.error("
             "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """The system Chromium under Playwright (never downloaded)."""
    if not CHROMIUM.exists():
        skip_or_fail(f"Chromium is not installed at {CHROMIUM} (Debian package 'chromium')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def test_docs_renders_under_csp_from_loopback_only(server: ServerProcess,
                                                   chromium: Browser) -> None:
    """Swagger UI draws every operation, sends no request off the gateway, breaks no CSP."""
    server.start()
    context = chromium.new_context()
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.add_init_script(WATCH_CSP)
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() >= 20
    page.locator(".opblock-summary", has_text="/healthz").first.click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    status = ".live-responses-table tbody .response-col_status"
    page.wait_for_selector(status, timeout=30_000)
    assert page.locator(status).first.inner_text().strip() == "200"
    assert errors == []
    hosts = {urlsplit(url).netloc for url in requests}
    assert hosts == {f"127.0.0.1:{server.port}"}
    # The watcher does see a violation: an inline script is refused on this page.
    with page.expect_console_message(lambda m: m.text.startswith("CSP violation")) as seen:
        page.evaluate("() => { const s = document.createElement('script');"
                      " s.textContent = 'window.inlineRan = true'; document.body.append(s); }")
    assert seen.value.text.startswith("CSP violation: script-src")
    assert page.evaluate("() => window.inlineRan === undefined")
    context.close()
