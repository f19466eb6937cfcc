"""Hospital sign-in without a provider: settings, the sign-in page, the mapping rules and
the migration of its tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import ValidationError as SettingsError

from neurogate.consent.accounts import create_account
from neurogate.consent.db import get_engine, upgrade
from neurogate.errors import ValidationError
from neurogate.gateway.app import create_app
from neurogate.gateway.oidc.mappings import check_mapping
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings
from tests.e2e.conftest import free_port
from tests.gateway.conftest import BASE_URL, FAST_HASHING, PASSWORD


def test_oidc_settings_keep_the_client_secret_out_of_repr() -> None:
    """The client secret never shows in the settings' repr."""
    settings = Settings(oidc_issuer="https://idp.example.org/realms/staff",
                        oidc_client_id="neurogate", oidc_client_secret="s3cr3t-value",
                        oidc_redirect_base="https://gateway.example.org/")
    assert settings.oidc_enabled
    assert "s3cr3t-value" not in repr(settings)
    assert settings.oidc_redirect_base == "https://gateway.example.org"
    assert settings.oidc_issuer == "https://idp.example.org/realms/staff"


def test_oidc_settings_refuse_a_plain_http_issuer_off_loopback() -> None:
    """An issuer must be https (http only on loopback), and the message says so."""
    with pytest.raises(SettingsError, match=(
            r"Invalid value for NEUROGATE_OIDC_ISSUER\. It must be an https:// URL without "
            r"query or fragment \(http:// only on loopback\), but got "
            r"'http://idp\.example\.org' instead\.")):
        Settings(oidc_issuer="http://idp.example.org")


def test_oidc_settings_incomplete_means_not_enabled() -> None:
    """Without a client secret, hospital sign-in is off."""
    assert not Settings(oidc_issuer="https://idp.example.org", oidc_client_id="x",
                        oidc_redirect_base="https://gw.example.org").oidc_enabled


def test_oidc_without_settings_offers_passwords_only(client: TestClient,
                                                    gateway: Gateway) -> None:
    """Without the NEUROGATE_OIDC_* settings the sign-in page has no provider button, and
    a mapping cannot be approved (409, saying why)."""
    page = client.get("/portal/login")
    assert page.status_code == 200
    assert "/portal/oidc/start" not in page.text
    assert "Sign in with" not in page.text
    with gateway.transaction() as session:
        create_account(session=session, username="admin", password=PASSWORD, role="admin")
    login = client.post("/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['session_token']}"}
    client.cookies.clear()
    response = client.post("/v1/oidc/role-mappings", headers=headers,
                           json={"claim": "groups", "value": "neurology", "role": "clinician"})
    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        "Hospital sign-in is not configured; set NEUROGATE_OIDC_ISSUER, "
        "NEUROGATE_OIDC_CLIENT_ID, NEUROGATE_OIDC_CLIENT_SECRET and "
        "NEUROGATE_OIDC_REDIRECT_BASE first.")
    assert client.get("/v1/oidc/role-mappings", headers=headers).json() == []


@pytest.mark.parametrize(("claim", "value", "role", "field"), [
    ("", "neurology", "clinician", "claim"),
    ("groups with space", "neurology", "clinician", "claim"),
    ("groups", "", "clinician", "value"),
    ("groups", "x" * 201, "clinician", "value"),
    ("groups", "neurology", "subject", "role"),
    ("groups", "neurology", "guardian", "role"),
    ("groups", "neurology", "auditor", "role"),
    ("groups", "neurology", "superuser", "role"),
])
def test_oidc_mapping_check_names_the_field(claim: str, value: str, role: str,
                                            field: str) -> None:
    """Each bad part of a mapping is refused with an error naming its field."""
    with pytest.raises(ValidationError, match=f"Invalid value for the '{field}' field") as exc:
        check_mapping(claim=claim, value=value, role=role)
    assert exc.value.field == field


def test_oidc_migration_matches_the_models_and_downgrades(sqlite_url: str) -> None:
    """At head the hospital sign-in tables are exactly what the models declare, and the
    downgrade of migration 0008 removes them."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from neurogate.consent.db import alembic_config

    tables = {"oidc_identities", "oidc_role_mappings", "oidc_flows"}
    upgrade(sqlite_url)
    engine = get_engine(sqlite_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in diff if "oidc" in str(d)] == []
    assert tables <= set(sa.inspect(engine).get_table_names())
    command.downgrade(alembic_config(sqlite_url), "0007")
    assert not tables & set(sa.inspect(engine).get_table_names())


def test_oidc_start_is_throttled_per_address_and_says_when_the_provider_is_down(
        tmp_path: Path) -> None:
    """Starting a sign-in while the provider cannot be reached answers a page saying so
    (502); past NEUROGATE_OIDC_STARTS_PER_ADDRESS_PER_MINUTE starts from one address, 429
    with Retry-After."""
    settings = Settings(data_dir=tmp_path / "data", environment="test", **FAST_HASHING,
                        oidc_issuer=f"http://127.0.0.1:{free_port()}",
                        oidc_client_id="neurogate", oidc_client_secret="secret",
                        oidc_redirect_base="http://127.0.0.1:8000",
                        oidc_display_name="Test Hospital",
                        oidc_starts_per_address_per_minute=2)
    with TestClient(create_app(gateway=build_gateway(settings)), base_url=BASE_URL) as client:
        page = client.get("/portal/login")
        assert "Sign in with Test Hospital" in page.text
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert token is not None
        for _ in range(2):
            down = client.post("/portal/oidc/start", data={"csrf_token": token.group(1)})
            assert down.status_code == 502
            assert "Test Hospital cannot be reached right now." in down.text
        busy = client.post("/portal/oidc/start", data={"csrf_token": token.group(1)})
        assert busy.status_code == 429
        assert int(busy.headers["retry-after"]) >= 1
        assert "Too many sign-ins were started from your network." in busy.text
