"""Portal forms over the real app (no browser): CSRF, cross-site Origin, input checks that
write nothing, and what the subject's pages show."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

from neurogate.consent import rights
from neurogate.consent.access import Principal
from neurogate.consent.concerns import answer_concern, list_concerns_for
from neurogate.consent.models import Account, AuthSession, Concern, Consent
from neurogate.gateway.app import create_app
from neurogate.gateway.demo import DEMO_PASSWORD, DemoWorld, seed
from neurogate.gateway.portal import web
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings

BASE_URL = "https://testserver"
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway over a fresh SQLite store with the demo clinic."""
    data = tmp_path_factory.mktemp("portal-forms")
    gw = build_gateway(Settings(data_dir=Path(data), environment="test",
                                password_hash_time_cost=1, password_hash_memory_kib=1024))
    yield gw
    gw.engine.dispose()


@pytest.fixture(scope="module")
def world(gateway: Gateway) -> DemoWorld:
    return seed(gateway)


@pytest.fixture
def client(gateway: Gateway, world: DemoWorld) -> Iterator[TestClient]:
    """A browser-like client without a session."""
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as test_client:
        yield test_client


def token_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def sign_in(client: TestClient, username: str, language: str = "en") -> None:
    page = client.get("/portal/login", headers={"accept-language": language})
    response = client.post("/portal/login", data={
        "username": username, "password": DEMO_PASSWORD, "csrf_token": token_of(page.text)},
        follow_redirects=False)
    assert response.status_code == 303, response.text


def count(gateway: Gateway, model: type) -> int:
    with gateway.transaction() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def consent_status(gateway: Gateway, consent_id: str) -> str:
    with gateway.transaction() as session:
        consent = session.get(Consent, consent_id)
        assert consent is not None
        return consent.status


def principal(gateway: Gateway, username: str) -> Principal:
    with gateway.transaction() as session:
        account = session.exec(select(Account).where(Account.username == username)).one()
        return Principal(kind="account", id=account.id, role=account.role,
                         subject_id=account.subject_id)


def field_error(html: str, name: str) -> str:
    """The message shown next to a field (and linked from the error summary)."""
    assert f'href="#field-{name}"' in html, f"the error summary does not link to {name}"
    found = re.search(rf'id="field-{name}-error"><span class="visually-hidden">[^<]*</span>'
                      r"\s*([^<]+)</p>", html)
    assert found, f"no message next to the field {name!r}"
    return found.group(1).strip()


# -- CSRF and Origin -------------------------------------------------------------------


def test_login_without_csrf_token_is_refused_and_opens_no_session(
        client: TestClient, gateway: Gateway) -> None:
    """A sign-in without the form's token answers 403 and starts no session."""
    client.get("/portal/login")
    before = count(gateway, AuthSession)
    response = client.post("/portal/login", data={"username": "parent.chen",
                                                  "password": DEMO_PASSWORD})
    assert response.status_code == 403
    assert "This form has expired" in response.text
    assert count(gateway, AuthSession) == before
    assert "ngs_session" not in response.cookies


@pytest.mark.parametrize("token", ["", "0" * 64])
def test_stop_without_valid_csrf_token_is_refused_and_changes_nothing(
        client: TestClient, gateway: Gateway, world: DemoWorld, token: str) -> None:
    """Stopping an app with a missing or forged token answers 403; the consent stays."""
    sign_in(client, "parent.chen")
    consent_id = world.consents["mia-focus"]
    data = {"csrf_token": token} if token else {}
    response = client.post(f"/portal/consents/{consent_id}/stop", data=data,
                           follow_redirects=False)
    assert response.status_code == 403
    assert consent_status(gateway, consent_id) == "active"


def test_csrf_token_of_another_session_is_refused(
        client: TestClient, gateway: Gateway, world: DemoWorld) -> None:
    """A token is bound to its session: one from another sign-in does not work."""
    sign_in(client, "parent.chen")
    other = token_of(client.get("/portal").text)
    client.cookies.clear()
    sign_in(client, "parent.chen")
    consent_id = world.consents["mia-focus"]
    response = client.post(f"/portal/consents/{consent_id}/stop",
                           data={"csrf_token": other}, follow_redirects=False)
    assert response.status_code == 403
    assert consent_status(gateway, consent_id) == "active"


def test_cross_site_origin_is_refused_even_with_a_valid_token(
        client: TestClient, gateway: Gateway, world: DemoWorld) -> None:
    """A form posted from another site's page is refused (403) and changes nothing."""
    sign_in(client, "parent.chen")
    consent_id = world.consents["mia-focus"]
    token = token_of(client.get(f"/portal/consents/{consent_id}/stop").text)
    response = client.post(f"/portal/consents/{consent_id}/stop",
                           data={"csrf_token": token},
                           headers={"origin": "https://attacker.example"},
                           follow_redirects=False)
    assert response.status_code == 403
    assert consent_status(gateway, consent_id) == "active"


def test_logout_needs_the_csrf_token(client: TestClient) -> None:
    """Signing out is a form like any other: without its token nothing happens."""
    sign_in(client, "parent.chen")
    assert client.post("/portal/logout", data={}).status_code == 403
    assert client.get("/portal", follow_redirects=False).status_code == 200
    token = token_of(client.get("/portal").text)
    response = client.post("/portal/logout", data={"csrf_token": token},
                           follow_redirects=False)
    assert response.status_code == 303
    assert client.get("/portal", follow_redirects=False).headers["location"].startswith(
        "/portal/login")


# -- bad input: a message next to the field, nothing written ---------------------------


def test_login_with_empty_fields_names_each_field(client: TestClient,
                                                  gateway: Gateway) -> None:
    """Empty username and password: 400, a message next to each, no session."""
    page = client.get("/portal/login")
    before = count(gateway, AuthSession)
    response = client.post("/portal/login", data={"username": " ", "password": "",
                                                  "csrf_token": token_of(page.text)})
    assert response.status_code == 400
    assert field_error(response.text, "username") == "Enter your username."
    assert field_error(response.text, "password") == "Enter your password."
    assert 'aria-invalid="true"' in response.text
    assert count(gateway, AuthSession) == before


def test_login_with_a_wrong_password_says_so_in_the_language_asked(
        client: TestClient) -> None:
    """A wrong password is refused with the same message for every cause, translated."""
    page = client.get("/portal/login", headers={"accept-language": "es-ES,es;q=0.9"})
    response = client.post("/portal/login", headers={"accept-language": "es"}, data={
        "username": "parent.chen", "password": "wrong-password", "csrf_token":
        token_of(page.text)})
    assert response.status_code == 400
    assert field_error(response.text, "username") == (
        "El nombre de usuario o la contraseña no son correctos. Revise ambos e inténtelo "
        "de nuevo.")
    assert '<html lang="es">' in response.text


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"what_happened": "   "}, "what_happened",
     "Write what happened, in 1 to 2,000 characters."),
    ({"what_happened": "x" * 2001}, "what_happened",
     "Write what happened, in 1 to 2,000 characters."),
    ({"what_happened": "It beeped.", "app_id": "not-an-app"}, "app_id",
     "Choose one of the apps in the list, or “I am not sure”."),
    ({"what_happened": "It beeped.", "contact": "c" * 201}, "contact",
     "Write at most 200 characters here, or leave it empty."),
])
def test_concern_with_bad_input_writes_nothing(
        client: TestClient, gateway: Gateway, data: dict[str, str], field: str,
        message: str) -> None:
    """Each bad field gets its message, naming what is allowed; no concern is stored."""
    sign_in(client, "mia")
    token = token_of(client.get("/portal/concerns/new").text)
    before = count(gateway, Concern)
    response = client.post("/portal/concerns", data={"csrf_token": token, **data})
    assert response.status_code == 400
    assert field_error(response.text, field) == message
    assert count(gateway, Concern) == before


def test_assent_without_a_choice_writes_nothing(
        client: TestClient, gateway: Gateway, world: DemoWorld) -> None:
    """The child's answer must be yes or no; anything else changes nothing."""
    sign_in(client, "mia")
    consent_id = world.consents["mia-focus"]
    token = token_of(client.get(f"/portal/assent/{consent_id}").text)
    response = client.post(f"/portal/assent/{consent_id}",
                           data={"csrf_token": token, "assent": "maybe"})
    assert response.status_code == 400
    assert field_error(response.text, "assent") == (
        "Choose “Yes, that is OK” or “No, I do not want this”.")
    with gateway.transaction() as session:
        consent = session.get(Consent, consent_id)
        assert consent is not None and consent.assent == "given"


def test_language_must_be_one_of_the_three(client: TestClient, gateway: Gateway) -> None:
    """An unknown language is refused next to the field; the account keeps its choice."""
    sign_in(client, "parent.chen")
    token = token_of(client.get("/portal").text)
    response = client.post("/portal/language", data={"csrf_token": token, "language": "fr"})
    assert response.status_code == 400
    assert field_error(response.text, "language") == "Choose English, 中文（简体） or Español."
    with gateway.transaction() as session:
        account = session.exec(select(Account).where(Account.username == "parent.chen")).one()
        assert account.language is None


# -- what the pages do -------------------------------------------------------------------


def test_language_choice_is_kept_on_the_account(client: TestClient, gateway: Gateway) -> None:
    """Choosing Chinese stores it on the account and beats Accept-Language afterwards."""
    sign_in(client, "alex")
    token = token_of(client.get("/portal").text)
    response = client.post("/portal/language", data={
        "csrf_token": token, "language": "zh-Hans", "next": "/portal"}, follow_redirects=False)
    assert response.status_code == 303
    with gateway.transaction() as session:
        account = session.exec(select(Account).where(Account.username == "alex")).one()
        assert account.language == "zh-Hans"
    client.cookies.delete(web.LANGUAGE_COOKIE)
    page = client.get("/portal", headers={"accept-language": "es"})
    assert '<html lang="zh-Hans">' in page.text
    assert "您的同意" in page.text


def test_home_shows_what_the_app_receives_in_plain_words(
        client: TestClient, world: DemoWorld) -> None:
    """The guardian's home names the app, the purpose, and the focus level (not brain
    waves), with the two-click stop button; the page is never cached."""
    sign_in(client, "parent.chen")
    page = client.get("/portal")
    assert page.headers["cache-control"] == "no-store"
    assert "FocusQuest Neurofeedback" in page.text
    assert "their focus level, twice per second, for the whole head" in page.text
    assert "Not the brain waves themselves." in page.text
    assert "Stop FocusQuest Neurofeedback receiving data" in page.text
    assert f'href="/portal/consents/{world.consents["mia-focus"]}/stop"' in page.text
    # AdLab was only connected: the guardian reads why it gets nothing.
    assert "AdLab Neuromarketing" in page.text
    assert ("A child&#39;s brain data are never used for marketing or advertising."
            in page.text)
    # The idle timeout is announced before it bites (shown by portal.js).
    assert 'id="idle-notice"' in page.text and 'data-idle-seconds="1800"' in page.text


def test_pages_carry_lang_and_no_inline_script_or_style(client: TestClient,
                                                        world: DemoWorld) -> None:
    """Every page of the subject's side has <html lang>, a skip link, no inline script
    and no style attribute (the CSP allows neither)."""
    sign_in(client, "parent.chen")
    consent_id = world.consents["mia-focus"]
    paths = ["/portal", f"/portal/consents/{consent_id}/stop", "/portal/concerns",
             "/portal/concerns/new", "/portal/language"]
    for path in paths:
        page = client.get(path)
        assert page.status_code == 200, path
        assert re.search(r'<html lang="(en|zh-Hans|es)">', page.text), path
        assert 'href="#main"' in page.text, path
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) is None, path
        assert " style=" not in page.text, path
        assert page.headers["cache-control"] == "no-store", path


def test_not_signed_in_goes_to_the_sign_in_page(client: TestClient) -> None:
    """A page with personal data redirects to sign-in, and back after it."""
    response = client.get("/portal/concerns", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/portal/login?next=%2Fportal%2Fconcerns"
    assert client.get("/", follow_redirects=False).headers["location"] == "/portal"


def test_concern_reaches_the_clinician_and_the_subjects_export(
        client: TestClient, gateway: Gateway, world: DemoWorld) -> None:
    """A child's concern is listed for the clinician in care and the admins, the answer
    shows to the child, and the subject's export holds it."""
    sign_in(client, "mia")
    token = token_of(client.get("/portal/concerns/new").text)
    response = client.post("/portal/concerns", follow_redirects=False, data={
        "csrf_token": token, "what_happened": "The game showed my mood to my friends.",
        "app_id": world.apps["focus"], "contact": ""})
    assert response.status_code == 303
    concern_id = response.headers["location"].split("/")[-1].split("?")[0]
    readers = {name: principal(gateway, name) for name in ("dr.rivera", "admin", "alex")}
    with gateway.transaction() as session:
        for name in ("dr.rivera", "admin"):
            seen = list_concerns_for(session=session, principal=readers[name])
            assert concern_id in [c.id for c in seen], name
        assert list_concerns_for(session=session, principal=readers["alex"]) == []
        answer_concern(session=session, principal=readers["dr.rivera"],
                       concern_id=concern_id, answer="Thank you, Mia. We turned it off.")
    page = client.get(f"/portal/concerns/{concern_id}")
    assert "Thank you, Mia. We turned it off." in page.text
    assert "Answered" in page.text
    guardian = principal(gateway, "parent.chen")
    with gateway.transaction() as session:
        exported = rights.export_subject(session=session, ledger=gateway.ledger,
                                         principal=guardian, subject_id=world.subjects["mia"])
    assert [c["id"] for c in exported["concerns"]] == [concern_id]
    assert exported["concerns"][0]["answer"] == "Thank you, Mia. We turned it off."


@pytest.mark.parametrize(("header", "expected"), [
    ("zh-CN,zh;q=0.9,en;q=0.8", ["zh-Hans", "en"]),
    ("es-MX;q=0.5, en;q=0.9", ["en", "es"]),
    ("zh-TW", []),
    ("fr, de;q=0.5", []),
    ("en;q=0, es", ["es"]),
])
def test_accept_language_is_matched_to_the_portal_languages(header: str,
                                                             expected: list[str]) -> None:
    """Accept-Language picks zh-Hans for Simplified Chinese only, by quality order."""
    assert web.parse_accept_language(header) == expected


def test_unknown_portal_page_is_a_page_not_json(client: TestClient) -> None:
    """A mistyped portal address answers 404 with a page in the reader's language."""
    response = client.get("/portal/no-such-page", headers={"accept-language": "es"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "No se encuentra la página" in response.text
    assert client.get("/v1/no-such-route").json()["error"]["code"] == "not_found"


def test_erasure_deletes_the_subjects_concerns(client: TestClient, gateway: Gateway) -> None:
    """A concern is personal data: erasing the subject deletes it (runs last: it erases
    alex)."""
    sign_in(client, "alex")
    token = token_of(client.get("/portal/concerns/new").text)
    response = client.post("/portal/concerns", follow_redirects=False, data={
        "csrf_token": token, "what_happened": "I did not expect a second app."})
    assert response.status_code == 303
    alex = principal(gateway, "alex")
    assert alex.subject_id is not None
    with gateway.transaction() as session:
        assert session.exec(select(Concern).where(Concern.subject_id == alex.subject_id)).all()
        rights.erase_subject(session=session, ledger=gateway.ledger, principal=alex,
                             subject_id=alex.subject_id)
    with gateway.transaction() as session:
        left = session.exec(select(Concern).where(Concern.subject_id == alex.subject_id)).all()
    assert left == []
