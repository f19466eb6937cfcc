"""The HTTP edge: security headers, caching of private responses, the same-origin rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Response
from fastapi.testclient import TestClient
from starlette.requests import HTTPConnection

from neurogate.gateway.app import create_app
from neurogate.gateway.security import CONTENT_SECURITY_POLICY, ForbiddenOrigin, check_origin
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings
from tests.gateway.conftest import BASE_URL, FAST_HASHING, PASSWORD, Clinic

EVIL = "https://evil.example"


def _cookie_login(clinic: Clinic, username: str) -> None:
    """Log in so that only the session cookie (no header) authenticates what follows."""
    clinic.client.cookies.clear()
    response = clinic.client.post("/v1/auth/login",
                                  json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert "ngs_session" in clinic.client.cookies


def _consent_status(clinic: Clinic, label: str) -> str:
    response = clinic.client.get(f"/v1/consents/{clinic.ids[label]}",
                                 headers=clinic.as_("adult1"))
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def _forbidden_origin_body(origin: str) -> dict[str, object]:
    return {"error": {"code": "forbidden_origin", "message": (
        f"Requests from the origin '{origin}' may not use the NeuroGate session cookie; only "
        "pages of this gateway's own origin (or one listed in NEUROGATE_ALLOWED_ORIGINS) may. "
        "Send the request from the portal, or authenticate with 'Authorization: Bearer "
        "<token>' instead of the cookie.")}}


def test_origin_cross_site_cookie_revoke_is_refused_and_changes_nothing(clinic: Clinic) -> None:
    """A cookie-only revoke sent from another site is refused with 403 and revokes nothing."""
    _cookie_login(clinic, "adult1")
    url = f"/v1/consents/{clinic.ids['c_adult1_clinic']}/revoke"
    response = clinic.client.post(url, headers={"Origin": EVIL})
    assert response.status_code == 403
    assert response.json() == _forbidden_origin_body(EVIL)
    assert response.headers["x-content-type-options"] == "nosniff"
    clinic.client.cookies.clear()
    assert _consent_status(clinic, "c_adult1_clinic") == "active"


@pytest.mark.parametrize("headers", [
    pytest.param({"Origin": "null"}, id="null-origin"),
    pytest.param({"Origin": "http://testserver"}, id="other-scheme"),
    pytest.param({"Origin": "https://testserver:8443"}, id="other-port"),
    pytest.param({"Origin": "https://sub.testserver"}, id="same-site-subdomain"),
    pytest.param({"Referer": "https://evil.example/page"}, id="referer-only"),
    pytest.param({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, id="null-cross-site"),
    pytest.param({"Origin": "https://sub.testserver", "Sec-Fetch-Site": "same-site"},
                 id="fetch-site-same-site"),
    pytest.param({"Sec-Fetch-Site": "cross-site"}, id="fetch-site-only"),
])
def test_origin_cookie_refuses_every_other_origin(clinic: Clinic,
                                                  headers: dict[str, str]) -> None:
    """Any origin but the gateway's own is refused when the cookie authenticates."""
    _cookie_login(clinic, "adult1")
    response = clinic.client.post(f"/v1/consents/{clinic.ids['c_adult1_clinic']}/revoke",
                                  headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden_origin"
    clinic.client.cookies.clear()
    assert _consent_status(clinic, "c_adult1_clinic") == "active"


@pytest.mark.parametrize("headers", [
    pytest.param({"Origin": "https://testserver"}, id="own-origin"),
    pytest.param({"Origin": "https://TESTSERVER:443"}, id="own-origin-default-port"),
    pytest.param({}, id="no-origin"),
    # A same-origin form post under Referrer-Policy: no-referrer (the browser says null).
    pytest.param({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, id="null-same-origin"),
    pytest.param({"Origin": "https://testserver", "Sec-Fetch-Site": "same-origin"},
                 id="fetch-site-same-origin"),
])
def test_origin_same_origin_cookie_revoke_passes(clinic: Clinic,
                                                 headers: dict[str, str]) -> None:
    """The gateway's own pages (by Origin or by Sec-Fetch-Site), or a client that sends
    neither, may use the cookie."""
    _cookie_login(clinic, "adult1")
    response = clinic.client.post(f"/v1/consents/{clinic.ids['c_adult1_clinic']}/revoke",
                                  headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["consent"]["status"] == "revoked"


def test_origin_bearer_request_is_not_affected(clinic: Clinic) -> None:
    """A bearer header is never sent by a browser on its own: any Origin passes."""
    response = clinic.client.post(f"/v1/consents/{clinic.ids['c_adult1_clinic']}/revoke",
                                  headers={**clinic.as_("adult1"), "Origin": EVIL})
    assert response.status_code == 200, response.text
    assert response.json()["consent"]["status"] == "revoked"


def test_origin_safe_method_with_cookie_passes(clinic: Clinic) -> None:
    """A GET from another site changes nothing and is not refused."""
    _cookie_login(clinic, "adult1")
    response = clinic.client.get(f"/v1/consents/{clinic.ids['c_adult1_clinic']}",
                                 headers={"Origin": EVIL})
    assert response.status_code == 200, response.text


def test_origin_allowed_origins_setting_admits_extra_origin(db_url: str,
                                                            tmp_path: Path) -> None:
    """An origin listed in NEUROGATE_ALLOWED_ORIGINS may use the cookie; others may not."""
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url, environment="test",
                        allowed_origins="https://portal.example.org, https://x.example:8443",
                        **FAST_HASHING)
    gateway = build_gateway(settings)
    from neurogate.consent.accounts import create_account

    with gateway.transaction() as session:
        create_account(session=session, username="admin", password=PASSWORD, role="admin")
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as client:
        assert client.post("/v1/auth/login", json={"username": "admin",
                                                   "password": PASSWORD}).status_code == 200
        allowed = client.post("/v1/auth/logout", headers={"Origin": "https://portal.example.org"})
        assert allowed.status_code == 204, allowed.text
        assert client.post("/v1/auth/login", json={"username": "admin",
                                                   "password": PASSWORD}).status_code == 200
        refused = client.post("/v1/auth/logout", headers={"Origin": "https://x.example"})
        assert refused.status_code == 403
        assert refused.json() == _forbidden_origin_body("https://x.example")


def test_allowed_origins_setting_names_a_bad_entry() -> None:
    """A value that is not an origin is refused at start-up, naming it."""
    with pytest.raises(ValueError, match=(
            r"NEUROGATE_ALLOWED_ORIGINS\. Each entry must be an origin like "
            r"'https://portal\.example\.org' or 'http://localhost:8080', but got "
            r"'https://a\.example/path' instead")):
        Settings(allowed_origins="https://a.example/path")


# Security headers --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/v1/ledger/checkpoint", "/no/such/route"])
def test_headers_on_every_response(client: TestClient, path: str) -> None:
    """nosniff, the strict CSP, no referrer to other sites, no framing, and no Server
    header, on any path."""
    response = client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in response.headers
    assert "server" not in response.headers


def test_csp_forbids_inline_script_and_framing() -> None:
    """The policy allows only the gateway's own scripts, and no page may frame it."""
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY


def test_headers_hsts_only_in_production(db_url: str, tmp_path: Path) -> None:
    """Strict-Transport-Security is sent when NEUROGATE_ENVIRONMENT is production."""
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url,
                        environment="production", secret_key="x" * 40, **FAST_HASHING)
    with TestClient(create_app(gateway=build_gateway(settings)), base_url=BASE_URL) as client:
        response = client.get("/healthz")
    assert response.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"


def test_headers_on_server_errors(gateway: Gateway) -> None:
    """A 500 from an unexpected failure carries the headers too."""
    app = create_app(gateway=gateway)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError

    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_cache_no_store_on_login_and_credentialed_responses(clinic: Clinic) -> None:
    """The login answer (a session token) and every credentialed answer are never stored."""
    login = clinic.client.post("/v1/auth/login",
                               json={"username": "adult1", "password": PASSWORD})
    assert login.status_code == 200
    assert login.headers["cache-control"] == "no-store"
    failed = clinic.client.post("/v1/auth/login",
                                json={"username": "adult1", "password": "wrong-password"})
    assert failed.headers["cache-control"] == "no-store"
    by_cookie = clinic.client.get(f"/v1/subjects/{clinic.ids['adult1']}")
    assert by_cookie.status_code == 200, by_cookie.text
    assert by_cookie.headers["cache-control"] == "no-store"
    clinic.client.cookies.clear()
    by_bearer = clinic.client.get(f"/v1/subjects/{clinic.ids['adult1']}",
                                  headers=clinic.as_("adult1"))
    assert by_bearer.status_code == 200
    assert by_bearer.headers["cache-control"] == "no-store"
    token = clinic.client.post("/oauth/token", data={"grant_type": "client_credentials"},
                               auth=clinic.secrets["clinic_app"])
    assert token.status_code == 200
    assert token.headers["cache-control"] == "no-store"


def test_cache_no_store_on_any_response_that_sets_a_cookie(gateway: Gateway) -> None:
    """A response that sets a cookie (e.g. a portal sign-in) is never stored either."""
    app = create_app(gateway=gateway)

    @app.get("/sets-cookie")
    def sets_cookie(response: Response) -> dict[str, str]:
        response.set_cookie("ngs_session", "ngs_example", httponly=True)
        return {}

    with TestClient(app, base_url=BASE_URL) as client:
        response = client.get("/sets-cookie")
    assert response.headers["cache-control"] == "no-store"


def test_cache_public_response_may_be_stored(client: TestClient) -> None:
    """An anonymous public answer is not marked no-store (checkpoints may be cached)."""
    response = client.get("/v1/ledger/checkpoint")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("cache-control", "")


# The rule on WebSocket handshakes (the stream routes call check_origin before accepting) --


def _handshake(headers: dict[str, str], scheme: str = "wss") -> HTTPConnection:
    raw = [(k.lower().encode(), v.encode()) for k, v in
           {"host": "gateway.example", **headers}.items()]
    return HTTPConnection({"type": "websocket", "scheme": scheme, "path": "/v1/stream/ingest",
                           "query_string": b"", "headers": raw, "server": None})


COOKIE = {"cookie": "ngs_session=ngs_example"}


@pytest.mark.parametrize(("headers", "scheme"), [
    pytest.param({**COOKIE, "origin": "https://gateway.example"}, "wss", id="same-origin"),
    pytest.param({**COOKIE, "origin": "http://gateway.example"}, "ws", id="same-origin-ws"),
    pytest.param({"origin": EVIL}, "wss", id="no-cookie"),
    pytest.param({**COOKIE, "origin": EVIL, "authorization": "Bearer eyJ.x.y"}, "wss",
                 id="bearer"),
])
def test_check_origin_handshake_passes(headers: dict[str, str], scheme: str) -> None:
    """Same-origin, cookie-less and bearer handshakes pass."""
    check_origin(_handshake(headers, scheme))


@pytest.mark.parametrize("headers", [
    pytest.param({**COOKIE, "origin": EVIL}, id="cross-site"),
    pytest.param({**COOKIE, "origin": "http://gateway.example"}, id="downgraded-scheme"),
    pytest.param({**COOKIE, "origin": "null"}, id="null"),
])
def test_check_origin_handshake_from_another_site_is_refused(headers: dict[str, str]) -> None:
    """A cookie-authenticated handshake from another origin raises ForbiddenOrigin."""
    with pytest.raises(ForbiddenOrigin, match=r"may not use the NeuroGate session cookie"):
        check_origin(_handshake(headers))


BODY_LIMIT = 1024 * 1024
TOO_LARGE = {"error": {"code": "body_too_large", "message": (
    f"The request body is larger than the {BODY_LIMIT} bytes the gateway reads; "
    "send a smaller body.")}}


def test_body_above_limit_is_refused_before_it_is_read(clinic: Clinic) -> None:
    """A body longer than NEUROGATE_MAX_BODY_BYTES answers 413 and changes nothing, whether
    its length is declared or it comes in chunks."""
    label = "c_adult1_clinic"
    reason = "x" * (BODY_LIMIT + 1)
    body = ('{"reason": "' + reason + '"}').encode()
    path = f"/v1/consents/{clinic.ids[label]}/revoke"
    declared = clinic.client.post(path, content=body, headers={
        **clinic.as_("adult1"), "Content-Type": "application/json"})
    assert declared.status_code == 413
    assert declared.json() == TOO_LARGE

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    chunked = clinic.client.post(path, content=chunks(), headers={
        **clinic.as_("adult1"), "Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert chunked.json() == TOO_LARGE
    assert _consent_status(clinic, label) == "active"


def test_body_within_limit_is_read(clinic: Clinic) -> None:
    """A chunked body under the limit reaches the route whole."""
    label = "c_adult1_clinic"
    body = b'{"reason": "moving to another clinic"}'
    response = clinic.client.post(
        f"/v1/consents/{clinic.ids[label]}/revoke", content=iter([body[:10], body[10:]]),
        headers={**clinic.as_("adult1"), "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["consent"]["revocation_reason"] == "moving to another clinic"
