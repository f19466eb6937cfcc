"""Browser tests of the portal: a real gateway on loopback, driven by the system Chromium.

Fixtures
--------
``portal_server`` (module scope)
    A :class:`PortalServer`: a ``neurogate serve`` process on ``127.0.0.1`` with its own
    data directory, seeded beforehand with the demo world (``neurogate.gateway.demo.seed``,
    run in this process against the same database, with a fast argon2 cost).
    ``portal_server.url`` is the base URL, ``portal_server.world`` the
    :class:`~neurogate.gateway.demo.DemoWorld` (subject, app, device and consent ids, and the
    apps' and devices' client credentials), ``portal_server.env`` the server's environment
    (for ``neurogate`` commands, e.g. ``audit verify-receipt``) and
    ``portal_server.gateway()`` opens the same store in this process for domain calls a test
    needs (e.g. reading what a form wrote). Every demo account signs in with
    ``DEMO_PASSWORD`` ("demo-password"). One server per test module: a module's tests share
    its state, so write them to tolerate what earlier tests in the module changed.
``browser`` (module scope)
    A Playwright (sync API) Chromium, launched from ``/usr/bin/chromium`` (never downloaded).
    Without it the test is skipped, or fails under ``NEUROGATE_REQUIRE_SERVICES=1``. Not
    session-wide: while Playwright runs, its event loop runs on the main thread, and any
    later test calling ``asyncio.run`` would fail.
``make_page``
    Factory ``make_page(locale="en", **context_options) -> Page``: a fresh browser context
    per call (own cookies, ``Accept-Language`` from ``locale``, e.g. ``"zh-CN"``, ``"es"``),
    with ``base_url`` set to the server, so ``page.goto("/portal")`` works. Contexts close at
    the end of the test.
``page``
    ``make_page()`` in English.

Helpers
-------
``sign_in(page, username, password=DEMO_PASSWORD)``
    Signs in through the portal's sign-in page (fields found by id, so in any language)
    and fails the test if the portal stays on the sign-in page.
``axe_check(page)``
    Runs axe-core (the copy carried by ``axe-playwright-python``; ``preload_axe(page)``
    loads it into every later page of the context at once) in the page and fails,
    listing each rule id, its impact and the offending targets, when any violation is
    ``serious`` or ``critical``.
``screenshot(page, name)``
    Saves a full-page PNG as ``docs/screenshots/<name>.png`` (committed; the README links
    them).

Mark browser tests with ``pytestmark = pytest.mark.browser``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from neurogate.gateway.demo import DEMO_PASSWORD, DemoWorld, seed
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings
from tests.conftest import REPO, skip_or_fail
from tests.e2e.conftest import ServerProcess, free_port

if TYPE_CHECKING:
    from fastapi.testclient import TestClient
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = REPO / "docs" / "screenshots"
FAST_HASHING = {"NEUROGATE_PASSWORD_HASH_TIME_COST": "1",
                "NEUROGATE_PASSWORD_HASH_MEMORY_KIB": "1024"}
BLOCKING_IMPACTS = ("serious", "critical")
CSRF_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
# How long a locator waits for its element before the test fails (not a timed assert:
# a bound on waiting for something that should already be there).
PAGE_TIMEOUT_MS = 10_000


@dataclass
class PortalServer:
    """A seeded gateway process serving the portal on loopback."""

    process: ServerProcess
    world: DemoWorld
    data_dir: Path

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def env(self) -> dict[str, str]:
        return self.process.env

    def settings(self) -> Settings:
        """Settings naming the same data directory as the server's."""
        return Settings(environment="development", data_dir=self.data_dir,
                        password_hash_time_cost=1, password_hash_memory_kib=1024)

    def gateway(self) -> Gateway:
        """The server's store opened in this process (for domain calls from a test)."""
        return build_gateway(self.settings(), migrate=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Gateway, DemoWorld]:
    """The demo clinic over an embedded database, in process (no browser, no server)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("demo") / "var",
                        environment="development", password_hash_time_cost=1,
                        password_hash_memory_kib=1024)
    gateway = build_gateway(settings)
    return gateway, seed(gateway)


@pytest.fixture(scope="module")
def signed_in(demo: tuple[Gateway, DemoWorld]) -> Iterator[Callable[[str], TestClient]]:
    """``signed_in(username)``: an in-process client with a portal session of that account."""
    from fastapi.testclient import TestClient

    from neurogate.gateway.app import create_app

    gateway, _ = demo
    clients: list[TestClient] = []

    def make(username: str) -> TestClient:
        client = TestClient(create_app(gateway=gateway), base_url="http://testserver")
        client.__enter__()
        clients.append(client)
        token = CSRF_TOKEN.search(client.get("/portal/login").text)
        assert token is not None
        response = client.post("/portal/login", follow_redirects=False, data={
            "username": username, "password": DEMO_PASSWORD, "csrf_token": token.group(1)})
        assert response.status_code == 303, response.text
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalServer]:
    """A gateway process with the demo world, shared by the tests of one module."""
    data_dir = tmp_path_factory.mktemp("portal") / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    env.update(FAST_HASHING, NEUROGATE_DATA_DIR=str(data_dir),
               NEUROGATE_ENVIRONMENT="development")
    server = PortalServer(process=ServerProcess(env=env, port=free_port()), world=DemoWorld(),
                          data_dir=data_dir)
    gateway = build_gateway(server.settings())
    try:
        server.world = seed(gateway)
    finally:
        gateway.engine.dispose()
    server.process.start()
    yield server
    server.process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system Chromium under Playwright, one per test module (stopped after it, so the
    event loop Playwright runs on the main thread never outlives the module)."""
    if not CHROMIUM.exists():
        skip_or_fail(f"Chromium is not installed at {CHROMIUM} (Debian package 'chromium')")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        skip_or_fail(f"The Python package 'playwright' is not importable: {exc}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def make_page(browser: Browser, portal_server: PortalServer) -> Iterator[Callable[..., Page]]:
    """Factory of pages, each in a fresh context (own cookies, chosen locale)."""
    contexts = []

    def factory(locale: str = "en", **options: Any) -> Page:
        context = browser.new_context(locale=locale, base_url=portal_server.url, **options)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield factory
    for context in contexts:
        context.close()


@pytest.fixture
def page(make_page: Callable[..., Page]) -> Page:
    """A fresh English page."""
    return make_page()


def sign_in(page: Page, username: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the portal's sign-in page and wait for the page after it."""
    page.goto("/portal/login")
    page.locator("#field-username").fill(username)
    page.locator("#field-password").fill(password)
    with page.expect_navigation():
        page.locator("main form button[type=submit]").click()
    if "/portal/login" in page.url:
        msg = f"Signing in as {username!r} failed: {page.locator('main').inner_text()}"
        raise AssertionError(msg)


def _describe(violation: dict[str, Any]) -> str:
    targets = ", ".join(" ".join(map(str, node["target"])) for node in violation["nodes"])
    return f"  {violation['id']} ({violation['impact']}): {violation['help']} -> {targets}"


def _axe_script() -> str:
    from axe_playwright_python.base import AXE_SCRIPT

    return str(AXE_SCRIPT)


def preload_axe(page: Page) -> None:
    """Load axe-core into every later page of ``page``'s context before the page's own
    scripts (so that ``axe_check`` need not send it again for each page)."""
    page.context.add_init_script(script=_axe_script())


def axe_check(page: Page) -> None:
    """Fail when axe-core finds a serious or critical violation on the page."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_script())
    results = page.evaluate("() => axe.run({resultTypes: ['violations']})")
    blocking = [v for v in results["violations"] if v["impact"] in BLOCKING_IMPACTS]
    if blocking:
        lines = "\n".join(_describe(v) for v in blocking)
        msg = f"axe-core found {len(blocking)} serious or critical violation(s) on {page.url}:\n"
        raise AssertionError(msg + lines)


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as docs/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
