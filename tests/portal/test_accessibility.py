"""axe-core finds no serious or critical violation on any portal page, in any language.

The pages come from the portal's own routes: every GET route under /portal that answers
with HTML, for every demo role that may open it (found by asking the server), with path
parameters taken from the demo world. A new page is scanned without editing this file,
as long as its parameters are among those known below.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import APIRoute
from playwright.sync_api import Page
from sqlmodel import select

from neurogate.consent import concerns, consents
from neurogate.consent.access import Principal
from neurogate.consent.models import Account, ConsentEvent
from neurogate.consent.purposes import load_catalog
from neurogate.consent.schemas import ConsentCreate, NoticeShown
from neurogate.gateway.demo import DEMO_PASSWORD
from neurogate.gateway.portal import router
from tests.portal.conftest import PortalServer, axe_check, preload_axe, sign_in

pytestmark = pytest.mark.browser

# Who signs in (None: nobody). Guardian, child, adult subject, clinician, admin, app owner.
ROLES = (None, "parent.chen", "mia", "alex", "dr.rivera", "admin", "apps.owner")
LANGUAGES = {"en": "en", "zh-Hans": "zh-CN", "es": "es-ES"}
_PARAM = re.compile(r"{(\w+)}")


def portal_get_routes() -> list[str]:
    """Every GET path of the portal's router (with its {parameters})."""
    paths: list[str] = []

    def visit(routes: list) -> None:  # type: ignore[type-arg]
        for route in routes:
            if hasattr(route, "effective_route_contexts"):  # an included router (FastAPI)
                for context in route.effective_route_contexts():
                    if "GET" in getattr(context.original_route, "methods", ()):
                        paths.append(context.path)
            elif isinstance(route, APIRoute) and "GET" in route.methods:
                paths.append(route.path)

    visit(router.routes)
    assert "/portal/login" in paths and "/portal/console" in paths, paths
    return sorted(set(paths))


@dataclass
class Scan:
    """What to open: (username or None, URL) pairs, found per server, and for each route
    the first of those pairs (one per page template)."""

    pages: list[tuple[str | None, str]]
    first: list[tuple[str | None, str]]


def _principal(account: Account) -> Principal:
    return Principal(kind="account", id=account.id, role=account.role,
                     subject_id=account.subject_id)


def _candidates(server: PortalServer) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Values to try for each path parameter, and query strings to try per path: the demo's
    ids, plus a stopped consent and a concern made here through the domain."""
    world = server.world
    gateway = server.gateway()
    with gateway.transaction() as session:
        accounts = {a.username: a for a in session.exec(select(Account))}
        notice = load_catalog().get("neurofeedback").notice("en")
        stopped, _ = consents.grant_consent(
            session=session, ledger=gateway.ledger, principal=_principal(accounts["alex"]),
            request=ConsentCreate(subject_id=world.subjects["alex"], app_id=world.apps["focus"],
                                  purpose_id="neurofeedback",
                                  notice=NoticeShown(version=notice.version, language="en",
                                                     sha256=notice.sha256)))
        consents.revoke_consent(session=session, ledger=gateway.ledger,
                                principal=_principal(accounts["alex"]), consent_id=stopped.id)
        concern = concerns.file_concern(
            session=session, principal=_principal(accounts["mia"]),
            subject_id=world.subjects["mia"], what_happened="The app asked how I feel.")
        indexes = [str(e.ledger_index) for e in session.exec(
            select(ConsentEvent).where(
                ConsentEvent.consent_id == world.consents["mia-focus"]))
            if e.ledger_index is not None]
        stopped_id, concern_id = stopped.id, concern.id
    consent_ids = [world.consents["mia-focus"], world.consents["alex-clinic"], stopped_id]
    params = {
        "subject_id": [world.subjects["mia"], world.subjects["alex"]],
        "consent_id": consent_ids,
        "concern_id": [concern_id],
        "app_id": [world.apps["focus"], world.apps["adlab"], world.apps["clinic"]],
        "ledger_index": indexes[:1],
    }
    queries = {
        "/portal/grant": [f"subject={world.subjects['mia']}&app={world.apps['focus']}"
                          "&purpose=neurofeedback",
                          f"subject={world.subjects['alex']}&app={world.apps['clinic']}"
                          "&purpose=clinical_monitoring"],
        "/portal/console/patients/{subject_id}/consent/notice": [
            f"choice={world.apps['focus']}:neurofeedback"],
    }
    return params, queries


def _client(server: PortalServer, username: str | None) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    try:
        page = client.get("/portal/login")
        if username is None:
            return client
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        response = client.post("/portal/login", data={
            "username": username, "password": DEMO_PASSWORD, "csrf_token": token.group(1)})
        assert response.status_code in (200, 303), response.text
    except BaseException:
        client.close()
        raise
    return client


def _urls(path: str, params: dict[str, list[str]], queries: dict[str, list[str]]
          ) -> Iterator[str]:
    names = _PARAM.findall(path)
    for values in itertools.product(*(params.get(n, []) for n in names)):
        filled = path
        for name, value in zip(names, values, strict=True):
            filled = filled.replace("{" + name + "}", value)
        for query in queries.get(path, [""]):
            yield filled + (f"?{query}" if query else "")


@pytest.fixture(scope="module")
def scan(portal_server: PortalServer) -> Scan:
    """Every (role, page) pair where the page answers 200 with HTML for that role."""
    params, queries = _candidates(portal_server)
    pages: list[tuple[str | None, str]] = []
    first: dict[str, tuple[str | None, str]] = {}
    unreached = set(portal_get_routes())
    for username in ROLES:
        client = _client(portal_server, username)
        try:
            for path in portal_get_routes():
                for url in _urls(path, params, queries):
                    response = client.get(url)
                    if (response.status_code == 200
                            and response.headers.get("content-type", "").startswith("text/html")):
                        pages.append((username, url))
                        first.setdefault(path, (username, url))
                        unreached.discard(path)
                        break
        finally:
            client.close()
    downloads = {p for p in unreached if p.endswith(("/receipt", "/receipts/{ledger_index}"))}
    assert unreached - downloads == set(), "pages no demo role could open"
    return Scan(pages=pages, first=list(first.values()))


def _violations(page: Page) -> str | None:
    try:
        axe_check(page)
    except AssertionError as exc:
        return str(exc)
    return None


def _scan_all(pages: list[tuple[str | None, str]], language: str,
              make_page: Callable[..., Page]) -> list[str]:
    found: list[str] = []
    for username, group in itertools.groupby(sorted(pages, key=lambda p: str(p[0])),
                                             key=lambda p: p[0]):
        page = make_page(locale=LANGUAGES[language])
        preload_axe(page)
        if username is not None:
            sign_in(page, username)
        for _, url in group:
            response = page.goto(url)
            assert response is not None and response.status == 200, (
                f"[{username}] {url}: {response and response.status} "
                f"{page.locator('body').inner_text()[:300]}")
            # The account's own language, if it chose one, wins over the browser's.
            assert page.locator("html").get_attribute("lang") in LANGUAGES, url
            problem = _violations(page)
            if problem:
                found.append(f"[{username}] {problem}")
    return found


def test_every_page_for_every_role_passes_axe(scan: Scan,
                                              make_page: Callable[..., Page]) -> None:
    """No serious or critical axe-core violation on any page, for any role that can open
    it (in English)."""
    assert len(scan.pages) > len(scan.first) > 30
    found = _scan_all(scan.pages, "en", make_page)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("language", ["zh-Hans", "es"])
def test_every_page_passes_axe_in_each_language(
    language: str, scan: Scan, make_page: Callable[..., Page],
) -> None:
    """No serious or critical axe-core violation on any page in Chinese and Spanish (each
    page once, for the first role that can open it)."""
    found = _scan_all(scan.first, language, make_page)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_pages_with_form_errors_pass_axe(language: str, make_page: Callable[..., Page]) -> None:
    """Error summaries and messages next to fields are accessible too."""
    page = make_page(locale=LANGUAGES[language])
    page.goto("/portal/login")
    page.locator("main form button[type=submit]").click()
    page.locator("#error-summary").wait_for()
    found = [_violations(page)]
    sign_in(page, "dr.rivera")
    page.goto("/portal/console/patients/new")
    page.locator("#field-date_of_birth").fill("not a date")
    page.locator("main form button[type=submit]").click()
    page.locator("#field-date_of_birth-error").wait_for()
    found.append(_violations(page))
    assert [f for f in found if f] == []
