"""The HTTP edge in a real Chromium against a real gateway: /docs renders offline under the
strict CSP, and the session cookie works only for the gateway's own pages."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.conftest import skip_or_fail
from tests.e2e.conftest import ServerProcess, free_port
from tests.gateway.conftest import FAST_HASHING, PASSWORD, build_clinic

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


@pytest.fixture
def other_site() -> Iterator[dict[str, str]]:
    """A page on another port of the same host: another origin, but the same site, so the
    browser still sends the gateway's SameSite=Strict cookie along with its form posts."""
    forms: dict[str, str] = {}

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (f'<!doctype html><title>x</title><form method="post" '
                    f'action="{forms["action"]}"><button>Go</button></form>').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    forms["url"] = f"http://127.0.0.1:{server.server_address[1]}/"
    yield forms
    server.shutdown()
    server.server_close()


def test_cookie_revoke_from_another_origin_is_refused_in_chromium(
        chromium: Browser, other_site: dict[str, str], tmp_path: Path) -> None:
    """A form on another origin of the same site posts a revoke with the subject's cookie:
    refused with 403 and nothing changes; the same form on the gateway's own page (where
    no-referrer makes the browser send Origin: null) revokes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    env.update(NEUROGATE_DATA_DIR=str(tmp_path / "var"), NEUROGATE_ENVIRONMENT="development",
               NEUROGATE_PASSWORD_HASH_TIME_COST="1", NEUROGATE_PASSWORD_HASH_MEMORY_KIB="1024")
    gateway = build_gateway(Settings(data_dir=tmp_path / "var", environment="test",
                                     **FAST_HASHING))
    server = ServerProcess(env=env, port=free_port())
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            clinic = build_clinic(client, gateway)  # type: ignore[arg-type]
            consent = clinic.ids["c_adult1_clinic"]

            def status() -> str:
                response = client.get(f"/v1/consents/{consent}", headers=clinic.as_("adult1"))
                assert response.status_code == 200, response.text
                return str(response.json()["status"])

            context = chromium.new_context()
            page = context.new_page()
            page.goto(f"{server.url}/healthz")
            login = page.evaluate("""async (password) => (await fetch('/v1/auth/login', {
                method: 'POST', headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({username: 'adult1', password})})).status""", PASSWORD)
            assert login == 200
            other_site["action"] = f"{server.url}/v1/consents/{consent}/revoke"
            page.goto(other_site["url"])
            with page.expect_navigation() as attacked:
                page.get_by_role("button", name="Go").click()
            response = attacked.value
            assert response is not None and response.status == 403
            assert response.json()["error"]["code"] == "forbidden_origin"
            assert status() == "active"

            page.goto(f"{server.url}/healthz")
            with page.expect_navigation() as own:
                page.evaluate("""(action) => { const f = document.createElement('form');
                    f.method = 'post'; f.action = action; document.body.append(f);
                    f.submit(); }""", other_site["action"])
            response = own.value
            assert response is not None and response.status == 200, response.text()
            assert status() == "revoked"
            context.close()
    finally:
        server.stop()
        gateway.engine.dispose()
