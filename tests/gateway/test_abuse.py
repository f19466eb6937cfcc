"""Abuse costs the attacker: login throttles, aggregated failure leaves, one answer for
unknown and refused clients, and suspension that ends an app's access at once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select
from starlette.websockets import WebSocketDisconnect

from neurogate.consent.abuse import account_key, pending
from neurogate.consent.accounts import create_account, create_client
from neurogate.consent.models import Account, App, LedgerLeaf
from neurogate.gateway.app import create_app, flush_abuse
from neurogate.gateway.login import ACCOUNT_THROTTLE
from neurogate.gateway.oauth import CLIENT_REFUSED
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings
from tests.gateway.conftest import BASE_URL, FAST_HASHING, PASSWORD, Clinic

RATE_LIMITED_BODY = {"error": {
    "code": "rate_limited",
    "message": "Too many failed logins for this account or from this address; wait the "
               "number of seconds given in the Retry-After header, then try again."}}
WRONG_BODY = {"error": {"code": "unauthenticated",
                        "message": "The username or password is wrong."}}


def _gateway(db_url: str, tmp_path: Path, **overrides: Any) -> Gateway:
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url, environment="test",
                        **FAST_HASHING, **overrides)
    gateway = build_gateway(settings)
    with gateway.transaction() as session:
        create_account(session=session, username="ana", password=PASSWORD, role="clinician")
    return gateway


@pytest.fixture
def login_gateway(db_url: str, tmp_path: Path) -> Gateway:
    """A gateway with one account, 'ana', and the default login limits."""
    return _gateway(db_url, tmp_path)


@pytest.fixture
def login_client(login_gateway: Gateway) -> Iterator[TestClient]:
    """An HTTP client for ``login_gateway``."""
    with TestClient(create_app(gateway=login_gateway), base_url=BASE_URL) as client:
        yield client


def _login(client: TestClient, username: str, password: str) -> Any:
    return client.post("/v1/auth/login", json={"username": username, "password": password})


def _leaves(gateway: Gateway, start: int = 0) -> list[dict[str, Any]]:
    with gateway.transaction() as session:
        rows = session.exec(select(LedgerLeaf).where(LedgerLeaf.seq >= start)
                            .order_by(LedgerLeaf.seq)).all()
        return [json.loads(bytes(row.entry)) for row in rows]


def _size(gateway: Gateway) -> int:
    with gateway.transaction() as session:
        return int(session.exec(select(func.count()).select_from(LedgerLeaf)).one())


def test_login_burst_of_wrong_passwords_is_throttled_with_bounded_leaves(
    login_gateway: Gateway, login_client: TestClient
) -> None:
    """50 wrong passwords in a burst: 5 answered 401, the rest 429 with Retry-After; the
    right password is refused too; the ledger gets one leaf per kind and window."""
    size = _size(login_gateway)
    answers = [_login(login_client, "ana", f"wrong-password-{n}") for n in range(50)]
    assert [a.status_code for a in answers] == [401] * 5 + [429] * 45
    assert all(a.json() == WRONG_BODY for a in answers[:5])
    assert all(a.json() == RATE_LIMITED_BODY for a in answers[5:])
    assert all(1 <= int(a.headers["Retry-After"]) <= 60 for a in answers[5:])
    right = _login(login_client, "ana", PASSWORD)
    assert right.status_code == 429 and right.json() == RATE_LIMITED_BODY
    assert _size(login_gateway) == size  # nothing written per attempt
    with login_gateway.transaction() as session:
        assert pending(session=session) == 51
    written = flush_abuse(login_gateway, everything=True)
    leaves = _leaves(login_gateway, size)
    assert written == len(leaves) <= 4  # at most two windows of two kinds
    counts: dict[str, int] = {}
    for leaf in leaves:
        assert leaf["action"] == "abuse.aggregate"
        counts[leaf["kind"]] = counts.get(leaf["kind"], 0) + leaf["count"]
    assert counts == {"auth.login_failed": 5, "auth.login_throttled": 46}
    # Once the window has passed (cleared here instead of waiting), the password works.
    key = account_key(login_gateway.settings.secret_key.get_secret_value(), "ana")
    login_gateway.throttles.get(ACCOUNT_THROTTLE, limit=5).clear(key)
    assert _login(login_client, "ana", PASSWORD).status_code == 200


def test_login_concurrent_burst_gets_no_more_guesses_than_the_limit(
    login_gateway: Gateway, login_client: TestClient
) -> None:
    """50 wrong passwords sent at once still get exactly 5 password checks."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(
            lambda n: _login(login_client, "ana", f"wrong-password-{n}").status_code,
            range(50)))
    assert sorted(statuses) == [401] * 5 + [429] * 45
    with login_gateway.transaction() as session:
        assert pending(session=session, kind="auth.login_failed") == 5
        assert pending(session=session, kind="auth.login_throttled") == 45


def test_login_known_and_unknown_accounts_are_indistinguishable(
    login_gateway: Gateway, login_client: TestClient
) -> None:
    """A wrong password and an unknown name answer, throttle and leave leaves alike, and
    no leaf names the account or its pseudonym."""
    known = [_login(login_client, "ana", "wrong-password") for _ in range(6)]
    unknown = [_login(login_client, "nobody-here", "wrong-password") for _ in range(6)]
    for a, b in zip(known, unknown, strict=True):
        assert (a.status_code, a.json()) == (b.status_code, b.json())
        assert (a.headers.get("Retry-After") is None) == (b.headers.get("Retry-After") is None)
    assert [a.status_code for a in known] == [401] * 5 + [429]
    size = _size(login_gateway)
    flush_abuse(login_gateway, everything=True)
    leaves = _leaves(login_gateway, size)
    with login_gateway.transaction() as session:
        account = session.exec(select(Account).where(Account.username == "ana")).one()
    secret = login_gateway.settings.secret_key.get_secret_value()
    by_key: dict[str, list[dict[str, Any]]] = {}
    for leaf in leaves:
        text = json.dumps(leaf)
        assert account.pseudonym not in text and account.id not in text
        assert "ana" not in text and "nobody" not in text
        by_key.setdefault(leaf["key"], []).append(leaf)
    assert set(by_key) == {account_key(secret, "ana"), account_key(secret, "nobody-here")}
    shapes = [sorted((leaf["kind"], leaf["count"], tuple(sorted(leaf))) for leaf in group)
              for group in by_key.values()]
    assert shapes[0] == shapes[1]


def test_login_is_throttled_per_client_address(db_url: str, tmp_path: Path) -> None:
    """Failures spread over many names from one address stop that address, not others."""
    gateway = _gateway(db_url, tmp_path, login_attempts_per_address_per_minute=3)
    app = create_app(gateway=gateway)
    with TestClient(app, base_url=BASE_URL, client=("203.0.113.7", 40000)) as attacker, \
            TestClient(app, base_url=BASE_URL, client=("198.51.100.2", 40000)) as other:
        assert [_login(attacker, f"name-{n}", "wrong-password").status_code
                for n in range(4)] == [401, 401, 401, 429]
        refused = _login(attacker, "ana", PASSWORD)
        assert refused.status_code == 429 and refused.json() == RATE_LIMITED_BODY
        assert _login(other, "ana", PASSWORD).status_code == 200


def test_login_failures_are_flushed_at_shutdown(db_url: str, tmp_path: Path) -> None:
    """Counts of a window still open reach the ledger when the gateway stops."""
    gateway = _gateway(db_url, tmp_path, abuse_flush_seconds=3600)
    size = _size(gateway)
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as client:
        assert _login(client, "ana", "wrong-password").status_code == 401
        with gateway.transaction() as session:
            assert pending(session=session) == 1
        assert _size(gateway) == size
    with gateway.transaction() as session:
        assert pending(session=session) == 0
    assert [(leaf["kind"], leaf["count"]) for leaf in _leaves(gateway, size)] == [
        ("auth.login_failed", 1)]


def test_login_failures_are_flushed_periodically(db_url: str, tmp_path: Path) -> None:
    """The gateway's background task writes closed windows while it runs."""
    gateway = _gateway(db_url, tmp_path, abuse_window_seconds=1, abuse_flush_seconds=0.05)
    size = _size(gateway)
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as client:
        assert _login(client, "ana", "wrong-password").status_code == 401
        deadline = time.monotonic() + 30
        while _size(gateway) == size and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [leaf["kind"] for leaf in _leaves(gateway, size)] == ["auth.login_failed"]


# -- /oauth/token -------------------------------------------------------------------
def _token(client: TestClient, *, auth: tuple[str, str] | None = None,
           **form: str) -> Any:
    return client.post("/oauth/token", data={"grant_type": "client_credentials", **form},
                       auth=auth)


def _refusals(clinic: Clinic) -> dict[str, Any]:
    client_id, secret = clinic.secrets["focus_app"]
    c = clinic.client
    return {
        "unknown, basic": _token(c, auth=("app_doesnotexist0000000", "x" * 43)),
        "wrong secret, basic": _token(c, auth=(client_id, "x" * 43)),
        "unknown, post": _token(c, client_id="app_doesnotexist0000000",
                                client_secret="x" * 43),
        "wrong secret, post": _token(c, client_id=client_id, client_secret="x" * 43),
        "known, no secret": _token(c, client_id=client_id),
        "unknown, no secret": _token(c, client_id="app_doesnotexist0000000"),
        "no credentials": _token(c),
    }


def test_oauth_unknown_and_wrongly_authenticated_clients_get_one_answer(
    clinic: Clinic
) -> None:
    """Unknown client, wrong secret and wrong method: same status, body and headers."""
    answers = _refusals(clinic)
    seen = {(a.status_code, a.text, a.headers.get("www-authenticate"))
            for a in answers.values()}
    assert len(seen) == 1, answers
    first = next(iter(answers.values()))
    assert first.status_code == 401
    assert first.json() == {"error": "invalid_client", "error_description": CLIENT_REFUSED}
    assert CLIENT_REFUSED == (
        "The client credentials were refused: the client_id and client_secret must belong "
        "to a registered, active app or device, sent by HTTP Basic or in the form body.")


def test_oauth_refusals_are_throttled_per_client_address(db_url: str, tmp_path: Path) -> None:
    """Past the limit of refused token requests an address gets 429, even with the right
    secret, while other addresses still get tokens."""
    gateway = _gateway(db_url, tmp_path, token_attempts_per_address_per_minute=3)
    with gateway.transaction() as session:
        owner = session.exec(select(Account).where(Account.username == "ana")).one()
        app = App(name="Focus", owner_account_id=owner.id)
        session.add(app)
        session.flush()
        client_id, secret = create_client(session=session, kind="app", owner_id=app.id)
    asgi = create_app(gateway=gateway)
    with TestClient(asgi, base_url=BASE_URL, client=("203.0.113.9", 40000)) as attacker, \
            TestClient(asgi, base_url=BASE_URL, client=("198.51.100.3", 40000)) as other:
        assert _token(attacker, auth=(client_id, secret)).status_code == 200
        assert [_token(attacker, auth=(client_id, f"guess-{n}")).status_code
                for n in range(4)] == [401, 401, 401, 429]
        refused = _token(attacker, auth=(client_id, secret))
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.json() == {"error": {"code": "rate_limited", "message": (
            "Too many refused token requests from this address; wait the number of seconds "
            "given in the Retry-After header, then try again.")}}
        assert _token(other, auth=(client_id, secret)).status_code == 200


# -- suspension ---------------------------------------------------------------------
def _suspend(clinic: Clinic, app: str, suspended: bool) -> None:
    answer = clinic.client.patch(f"/v1/apps/{clinic.ids[app]}", headers=clinic.as_("admin"),
                                 json={"suspended": suspended})
    assert answer.status_code == 200, answer.text


def test_suspended_app_gets_no_token_and_loses_every_token_at_once(clinic: Clinic) -> None:
    """Suspension refuses /oauth/token like an unknown client, and the tokens the app
    already holds on REST and on the stream handshake; reinstating restores access."""
    old = clinic.as_("focus_app")
    assert clinic.client.get("/v1/consents", headers=old).status_code == 200
    unknown = _refusals(clinic)["unknown, basic"]
    _suspend(clinic, "focus_app", True)
    client_id, secret = clinic.secrets["focus_app"]
    for answer in (_token(clinic.client, auth=(client_id, secret)),
                   _token(clinic.client, client_id=client_id, client_secret=secret)):
        assert (answer.status_code, answer.text, answer.headers.get("www-authenticate")) == (
            unknown.status_code, unknown.text, unknown.headers.get("www-authenticate"))
    invalid = clinic.client.get("/v1/consents", headers={"Authorization": "Bearer nonsense"})
    for method, path in [("GET", "/v1/consents"), ("GET", "/v1/auth/me"),
                         ("GET", f"/v1/apps/{clinic.ids['focus_app']}")]:
        refused = clinic.client.request(method, path, headers=old)
        assert refused.status_code == 401, (path, refused.text)
        assert refused.json() == invalid.json()
    with clinic.client.websocket_connect("/v1/stream/subscribe", headers=old) as ws:
        message = ws.receive_json()
        assert message["code"] == "unauthenticated"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401
    # Other apps are untouched; reinstating gives the app its access back.
    assert clinic.client.get("/v1/consents", headers=clinic.as_("clinic_app")).status_code == 200
    _suspend(clinic, "focus_app", False)
    assert clinic.client.get("/v1/consents", headers=old).status_code == 200
    assert clinic.client.get("/v1/consents", headers=clinic.token("focus_app")).status_code == 200
