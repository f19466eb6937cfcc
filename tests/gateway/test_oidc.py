"""Hospital sign-in against a real OpenID provider (npm ``oidc-provider`` 8 on Node.js).

One gateway process and one provider process on loopback serve the whole module. The
provider (``tests/node/oidc_provider.mjs``) has one confidential client with PKCE S256
required and one account whose ``sub`` and claims each test sets; its test switches
alter the next ID token it issues, so that the refusals below come from the gateway's own
validation of a real provider's answer.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings
from tests.conftest import REPO, skip_or_fail
from tests.e2e.conftest import ServerProcess, free_port, gateway_env
from tests.gateway.conftest import FAST_HASHING, Clinic, build_clinic

NODE_DIR = REPO / "tests" / "node"
PROVIDER_SCRIPT = NODE_DIR / "oidc_provider.mjs"
CLIENT_ID = "neurogate-test"
CLIENT_SECRET = "provider-registered-client-secret"
PROVIDER_NAME = "Test Hospital"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


@dataclass
class SignInWorld:
    """The running gateway, its clinic, the provider and a log of the gateway's stderr."""

    gateway: ServerProcess
    clinic: Clinic
    client: httpx.Client
    store: Gateway
    issuer: str
    log: Path

    def provider(self, path: str, body: dict[str, Any]) -> None:
        response = httpx.post(self.issuer + path, json=body, timeout=10)
        assert response.status_code == 204, response.text

    def account(self, sub: str, **claims: Any) -> None:
        """The account the provider signs in next."""
        self.provider("/test/account", {"sub": sub, "claims": claims})

    def next_token(self, mode: str) -> None:
        """Alter the next ID token the provider issues ('tamper', 'audience', 'nonce')."""
        self.provider("/test/next-token", {"mode": mode})

    def browser(self) -> httpx.Client:
        """A fresh cookie jar, like a new browser."""
        return httpx.Client(base_url=self.gateway.url, timeout=30)

    def mapping(self, claim: str, value: str, role: str) -> httpx.Response:
        return self.client.post("/v1/oidc/role-mappings", headers=self.clinic.as_("admin"),
                                json={"claim": claim, "value": value, "role": role})


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        skip_or_fail("Node.js is not installed (the OpenID provider runs on it)")
    if not (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
        skip_or_fail("tests/node/node_modules has no oidc-provider; run `make node-peers`")
    assert node is not None
    return node


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignInWorld]:
    """A gateway configured for hospital sign-in at a real provider, with the test clinic."""
    node = _node()
    gateway_port = free_port()
    base = f"http://127.0.0.1:{gateway_port}"
    provider = subprocess.Popen(
        [node, str(PROVIDER_SCRIPT)], cwd=NODE_DIR, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
        env={"PATH": str(Path(node).parent), "OIDC_CLIENT_ID": CLIENT_ID,
             "OIDC_CLIENT_SECRET": CLIENT_SECRET,
             "OIDC_REDIRECT_URI": f"{base}/portal/oidc/callback"})
    try:
        assert provider.stdout is not None
        ready = json.loads(provider.stdout.readline() or "{}")
        if not ready.get("ready"):
            pytest.fail(f"The OpenID provider did not start (exit code {provider.poll()}).")
        issuer = ready["issuer"]
        data_dir = tmp_path_factory.mktemp("oidc") / "var"
        log = data_dir.parent / "gateway.log"
        env = gateway_env(
            data_dir, NEUROGATE_OIDC_ISSUER=issuer, NEUROGATE_OIDC_CLIENT_ID=CLIENT_ID,
            NEUROGATE_OIDC_CLIENT_SECRET=CLIENT_SECRET, NEUROGATE_OIDC_REDIRECT_BASE=base,
            NEUROGATE_OIDC_DISPLAY_NAME=PROVIDER_NAME,
            NEUROGATE_OIDC_SCOPE="openid profile groups")
        store = build_gateway(Settings(data_dir=data_dir, environment="test", **FAST_HASHING))
        server = ServerProcess(env=env, port=gateway_port, log=log)
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                clinic = build_clinic(client, store)  # type: ignore[arg-type]
                yield SignInWorld(gateway=server, clinic=clinic, client=client, store=store,
                                  issuer=issuer, log=log)
        finally:
            server.stop()
            store.engine.dispose()
    finally:
        provider.terminate()
        provider.wait(timeout=10)
        if provider.stdout is not None:
            provider.stdout.close()


def _start(browser: httpx.Client) -> httpx.Response:
    """Open the sign-in page and press "Sign in with Test Hospital" (no redirect followed)."""
    page = browser.get("/portal/login")
    assert page.status_code == 200
    assert f"Sign in with {PROVIDER_NAME}" in page.text
    token = CSRF.search(page.text)
    assert token is not None
    response = browser.post("/portal/oidc/start", data={"csrf_token": token.group(1)})
    assert response.status_code == 303, response.text
    return response


def _to_callback(browser: httpx.Client) -> str:
    """Go through the provider up to (not into) the gateway's callback; its URL."""
    response = _start(browser)
    for _ in range(10):
        location = str(response.headers["location"])
        url = httpx.URL(str(response.url)).join(location)
        if url.path == "/portal/oidc/callback":
            return str(url)
        response = browser.get(url)
        assert response.status_code in (302, 303), response.text
    pytest.fail("The provider never sent the browser back to the gateway.")


def sign_in(browser: httpx.Client) -> httpx.Response:
    """The whole sign-in, redirects followed; the gateway's answer at its callback."""
    return browser.get(_to_callback(browser))


def _refusals(world: SignInWorld) -> list[str]:
    return [line for line in world.log.read_text().splitlines()
            if "hospital sign-in refused" in line]


def test_oidc_authorization_request_uses_pkce_s256_state_and_nonce(world: SignInWorld) -> None:
    """The browser is sent to the provider with a state, a nonce and an S256 challenge."""
    with world.browser() as browser:
        started = _start(browser)
        location = started.headers["location"]
        assert browser.cookies.get("ngs_oidc")
    cookie = started.headers["set-cookie"].lower()
    assert cookie.startswith("ngs_oidc=")
    for attribute in ("httponly", "samesite=lax", "path=/portal/oidc/callback",
                      "max-age=600"):
        assert attribute in cookie
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(world.issuer)
    assert query["client_id"] == [CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256
    assert query["state"][0] and query["nonce"][0]
    assert query["redirect_uri"] == [world.gateway.url + "/portal/oidc/callback"]


def test_oidc_clinician_signs_in_and_reaches_only_their_patients(world: SignInWorld) -> None:
    """A mapped clinician signs in through the provider and sees only the patient put in
    their care; another clinician's patient stays out of reach."""
    assert world.mapping("groups", "neurology", "clinician").status_code == 201
    world.account("dr-ada-7", preferred_username="ada", groups=["staff", "neurology"])
    with world.browser() as browser:
        answer = sign_in(browser)
        assert answer.status_code == 200, answer.text
        assert "You are signed in" in answer.text
        assert 'href="/portal/console"' in answer.text
        assert browser.cookies.get("ngs_session", "").startswith("ngs_")
        identities = world.client.get("/v1/oidc/identities", headers=world.clinic.as_("admin"))
        mine = [i for i in identities.json() if i["subject"] == "dr-ada-7"]
        assert len(mine) == 1
        assert mine[0]["issuer"] == world.issuer
        assert mine[0]["role"] == "clinician"
        assert mine[0]["username"] == "ada@127.0.0.1"
        me = browser.get("/v1/auth/me").json()
        assert (me["id"], me["role"]) == (mine[0]["account_id"], "clinician")
        assert browser.get("/v1/subjects").json() == []
        care = world.client.post("/v1/care-relationships", headers=world.clinic.as_("admin"),
                                 json={"clinician_username": mine[0]["username"],
                                       "subject_id": world.clinic.ids["adult1"]})
        assert care.status_code == 201, care.text
        assert [s["id"] for s in browser.get("/v1/subjects").json()] == [
            world.clinic.ids["adult1"]]
        assert browser.get(f"/v1/subjects/{world.clinic.ids['adult1']}").status_code == 200
        other = browser.get(f"/v1/subjects/{world.clinic.ids['child2']}")
        assert other.status_code in (403, 404), other.text
        console = browser.get("/portal/console")
        assert console.status_code == 200
        assert "Adult1" in console.text and "Child2" not in console.text
        assert browser.get(f"/portal/console/patients/{world.clinic.ids['child2']}"
                           ).status_code in (403, 404)
    # The second sign-in finds the same account by iss + sub.
    with world.browser() as browser:
        assert sign_in(browser).status_code == 200
        assert browser.get("/v1/auth/me").json()["id"] == mine[0]["account_id"]


@pytest.mark.parametrize(("mode", "reason"), [
    ("tamper", "BadSignatureError"),
    ("audience", "InvalidClaimError (claim aud)"),
    ("nonce", "InvalidClaimError (claim nonce)"),
    ("issuer", "InvalidClaimError (claim iss)"),
])
def test_oidc_altered_id_token_is_refused(world: SignInWorld, mode: str, reason: str) -> None:
    """A tampered ID token, one for another audience, one with another nonce and one from
    another issuer are each refused by the gateway's validation, and no session starts."""
    world.mapping("groups", "neurology", "clinician")
    world.account("dr-bea-8", groups=["neurology"])
    world.next_token(mode)
    before = len(_refusals(world))
    with world.browser() as browser:
        answer = sign_in(browser)
        assert answer.status_code == 400
        assert "You are not signed in" in answer.text
        assert "could not be checked" in answer.text
        assert browser.cookies.get("ngs_session") is None
        assert browser.get("/v1/auth/me").status_code == 401
    assert _refusals(world)[before:] == [f"hospital sign-in refused: {reason}"]
    identities = world.client.get("/v1/oidc/identities", headers=world.clinic.as_("admin"))
    assert not any(i["subject"].startswith("dr-bea-8") for i in identities.json())


def test_oidc_callback_with_another_browsers_state_is_refused(world: SignInWorld) -> None:
    """A callback URL from one browser's sign-in, opened in another browser (whose own
    sign-in has another state), is refused: the state does not match."""
    world.mapping("groups", "neurology", "clinician")
    world.account("dr-cy-9", groups=["neurology"])
    with world.browser() as attacker, world.browser() as victim:
        stolen = _to_callback(attacker)
        _start(victim)
        before = len(_refusals(world))
        answer = victim.get(stolen)
        assert answer.status_code == 400
        assert victim.cookies.get("ngs_session") is None
    assert _refusals(world)[before:] == ["hospital sign-in refused: MismatchingStateError"]


def test_oidc_callback_twice_is_refused(world: SignInWorld) -> None:
    """A callback is good once: its state is spent by the first use."""
    world.mapping("groups", "neurology", "clinician")
    world.account("dr-dee-10", groups=["neurology"])
    with world.browser() as browser:
        callback = _to_callback(browser)
        assert browser.get(callback).status_code == 200
        browser.cookies.clear()
        assert browser.get(callback).status_code == 400


def test_oidc_identity_without_an_approved_mapping_is_refused(world: SignInWorld) -> None:
    """An identity whose claims no mapping approves is refused with its own page, and no
    account is created (in particular, never an administrator)."""
    world.account("dr-eve-11", groups=["cardiology"], preferred_username="eve")
    with world.browser() as browser:
        answer = sign_in(browser)
        assert answer.status_code == 403
        assert "Your hospital account has no access here" in answer.text
        assert "Nothing was created" in answer.text
        assert browser.cookies.get("ngs_session") is None
    identities = world.client.get("/v1/oidc/identities", headers=world.clinic.as_("admin"))
    assert not any(i["subject"] == "dr-eve-11" for i in identities.json())
    with world.store.transaction() as session:
        from sqlmodel import select

        from neurogate.consent.models import Account

        assert session.exec(select(Account).where(Account.username == "eve@127.0.0.1")
                            ).first() is None


def test_oidc_withdrawn_mapping_refuses_the_next_sign_in(world: SignInWorld) -> None:
    """Once the only mapping that let an identity in is withdrawn, it is refused."""
    created = world.mapping("department", "radiology", "admin")
    assert created.status_code == 201, created.text
    world.account("dr-fay-12", department="radiology")
    with world.browser() as browser:
        assert sign_in(browser).status_code == 200
        assert browser.get("/v1/auth/me").json()["role"] == "admin"
    deleted = world.client.delete(f"/v1/oidc/role-mappings/{created.json()['id']}",
                                  headers=world.clinic.as_("admin"))
    assert deleted.status_code == 204
    with world.browser() as browser:
        assert sign_in(browser).status_code == 403


def test_oidc_several_mapped_roles_give_the_lesser(world: SignInWorld) -> None:
    """An identity that mappings make both clinician and admin signs in as clinician."""
    world.mapping("groups", "neurology", "clinician")
    assert world.mapping("groups", "it-admins", "admin").status_code == 201
    world.account("dr-gus-13", groups=["it-admins", "neurology"])
    with world.browser() as browser:
        assert sign_in(browser).status_code == 200
        assert browser.get("/v1/auth/me").json()["role"] == "clinician"


def test_oidc_mapping_of_the_same_claim_value_twice_is_a_conflict(world: SignInWorld) -> None:
    """A claim and value have one mapping at most; a second is refused with 409."""
    world.mapping("groups", "neurology", "clinician")
    again = world.mapping("groups", "neurology", "admin")
    assert again.status_code == 409
    assert again.json()["error"]["message"] == (
        "A mapping of the claim 'groups' with the value 'neurology' already exists (role "
        "'clinician'); delete it first to change its role.")


@pytest.mark.parametrize("role", ["subject", "guardian"])
def test_oidc_mapping_to_a_subject_or_guardian_role_is_refused(world: SignInWorld,
                                                                role: str) -> None:
    """A mapping may give staff roles only; a subject's or guardian's role is refused."""
    response = world.mapping("groups", "patients", role)
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid_request", "field": "role",
        "message": ("Invalid value for the 'role' field. Allowed values are 'clinician' and "
                    f"'admin', but got {role!r} instead. Subjects and guardians sign in with "
                    "their own passwords, never through the hospital's identity provider."),
    }


def test_oidc_role_mappings_are_for_administrators_only(world: SignInWorld) -> None:
    """Clinicians may neither list nor create mappings."""
    headers = world.clinic.as_("clin1")
    assert world.client.get("/v1/oidc/role-mappings", headers=headers).status_code == 403
    assert world.client.post("/v1/oidc/role-mappings", headers=headers, json={
        "claim": "groups", "value": "x", "role": "admin"}).status_code == 403
    listed = world.client.get("/v1/oidc/role-mappings", headers=world.clinic.as_("admin"))
    assert {(m["claim"], m["value"], m["role"]) for m in listed.json()} >= {
        ("groups", "neurology", "clinician")}


def test_oidc_console_page_approves_and_refuses_mappings(world: SignInWorld) -> None:
    """The administrators' console page lists mappings, approves one from its form and
    refuses a subject's role with a message next to the field."""
    with world.browser() as browser:
        page = browser.get("/portal/login")
        token = CSRF.search(page.text)
        assert token is not None
        signed = browser.post("/portal/login", data={
            "csrf_token": token.group(1), "username": "admin",
            "password": "correct-horse-battery"})
        assert signed.status_code == 303
        page = browser.get("/portal/console/sign-in")
        assert page.status_code == 200
        assert "Hospital sign-in" in page.text and "neurology" in page.text
        token = CSRF.search(page.text)
        assert token is not None
        refused = browser.post("/portal/console/sign-in", data={
            "csrf_token": token.group(1), "claim": "groups", "value": "families",
            "role": "guardian"})
        assert refused.status_code == 400
        assert "Patients and guardians always sign in with their own passwords." in refused.text
        both = browser.post("/portal/console/sign-in", data={
            "csrf_token": token.group(1), "claim": "two words", "value": "",
            "role": "clinician"})
        assert both.status_code == 400
        assert 'href="#field-claim"' in both.text and 'href="#field-value"' in both.text
        added = browser.post("/portal/console/sign-in", data={
            "csrf_token": token.group(1), "claim": "groups", "value": "epilepsy-unit",
            "role": "clinician"})
        assert added.status_code == 303
        assert "epilepsy-unit" in browser.get("/portal/console/sign-in").text
    with world.browser() as clinician:
        page = clinician.get("/portal/login")
        token = CSRF.search(page.text)
        assert token is not None
        clinician.post("/portal/login", data={"csrf_token": token.group(1),
                                              "username": "clin1",
                                              "password": "correct-horse-battery"})
        assert clinician.get("/portal/console/sign-in").status_code == 403
