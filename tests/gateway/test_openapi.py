"""The OpenAPI document: every error status each operation answers with, in the one error
shape, the security schemes, and the documented input maximums."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from neurogate.gateway.app import create_app
from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.gateway.conftest import BASE_URL, FAST_HASHING

ERROR_REF = {"$ref": "#/components/schemas/Error"}
SECURED = [{"sessionToken": []}, {"clientCredentials": []}, {"portalCookie": []}]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any]]:
    """The app and the document it serves at /openapi.json."""
    tmp: Path = tmp_path_factory.mktemp("openapi")
    gateway = build_gateway(Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                                     environment="test", **FAST_HASHING))
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as client:
        response = client.get("/openapi.json")
        assert response.status_code == 200
        yield client, response.json()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_openapi_declares_security_schemes(served: tuple[TestClient, Any]) -> None:
    """A bearer session token, OAuth2 client credentials at /oauth/token, the portal cookie."""
    schemes = served[1]["components"]["securitySchemes"]
    assert schemes["sessionToken"]["type"] == "http"
    assert schemes["sessionToken"]["scheme"] == "bearer"
    flow = schemes["clientCredentials"]["flows"]["clientCredentials"]
    assert schemes["clientCredentials"]["type"] == "oauth2"
    assert flow["tokenUrl"] == "/oauth/token"
    assert set(flow["scopes"]) == {"consents:read", "decisions:read", "stream:subscribe",
                                   "stream:ingest"}
    assert schemes["portalCookie"] == {**schemes["portalCookie"], "type": "apiKey",
                                       "in": "cookie", "name": "ngs_session"}


def test_openapi_every_operation_declares_security(served: tuple[TestClient, Any]) -> None:
    """Each operation says how it authenticates: the three schemes, or none (public)."""
    document = served[1]
    public = set()
    for method, path, operation in _operations(document):
        assert "security" in operation, (method, path)
        if operation["security"] == []:
            public.add((method, path))
        elif path != "/oauth/token":
            assert operation["security"] == SECURED, (method, path)
    assert {("post", "/v1/auth/login"), ("get", "/v1/purposes"), ("get", "/healthz"),
            ("get", "/v1/ledger/checkpoint")} <= public
    assert ("get", "/v1/consents") not in public


def test_openapi_security_matches_what_the_app_enforces(served: tuple[TestClient, Any]) -> None:
    """Without credentials, an operation documented as secured answers 401, a public one
    does not; and each that needs credentials lists 401."""
    client, document = served
    for method, path, operation in _operations(document):
        if path == "/oauth/token":
            continue
        url = path
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                url = url.replace("{" + parameter["name"] + "}", str(uuid.uuid4()))
        response = client.request(method.upper(), url)
        secured = operation["security"] == SECURED
        assert (response.status_code == 401) == secured, (method, path, response.text)
        if secured:
            assert "401" in operation["responses"], (method, path)


def test_openapi_lists_error_statuses_in_error_shape(served: tuple[TestClient, Any]) -> None:
    """401/403 where credentials are needed, 404 where an object is named, 409 on changes,
    422 where input is taken, 503 where the store is read: all as the Error schema."""
    document = served[1]
    for method, path, operation in _operations(document):
        if path == "/oauth/token":
            continue
        responses = operation["responses"]
        expected = set()
        if operation["security"]:
            expected |= {"401", "403"}
        if method in ("post", "patch", "put", "delete"):
            expected.add("403")
        if operation["security"] and method != "get" and not path.startswith("/v1/auth/"):
            expected.add("409")
        if "{" in path:
            expected |= {"404", "422"}
        if operation.get("requestBody") or operation.get("parameters"):
            expected.add("422")
        if path not in ("/healthz",) and not path.startswith("/v1/purposes"):
            expected.add("503")
        assert expected <= set(responses), (method, path, sorted(responses))
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == ERROR_REF, (
                    method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "HTTPValidationError" not in str(document)


def test_openapi_throttled_doors_list_429(served: tuple[TestClient, Any]) -> None:
    """Logins and the token endpoint document 429 with Retry-After."""
    paths = served[1]["paths"]
    for path in ("/v1/auth/login", "/oauth/token"):
        response = paths[path]["post"]["responses"]["429"]
        assert response["content"]["application/json"]["schema"] == ERROR_REF
        assert "Retry-After" in response["headers"]


def test_openapi_token_endpoint_documents_rfc6749(served: tuple[TestClient, Any]) -> None:
    """The token endpoint: a form body, an access token, and OAuth errors for 400 and 401."""
    operation = served[1]["paths"]["/oauth/token"]["post"]
    form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"]["grant_type"]["enum"] == ["client_credentials"]
    oauth = {"$ref": "#/components/schemas/OAuthError"}
    for status in ("400", "401"):
        assert operation["responses"][status]["content"]["application/json"]["schema"] == oauth
    assert operation["security"] == [{"clientCredentials": []}]


def test_openapi_error_schema_fits_a_real_error(served: tuple[TestClient, Any]) -> None:
    """The Error schema's required keys are those of a real error body."""
    client, document = served
    error = client.get("/v1/consents").json()["error"]
    schema = document["components"]["schemas"]["Error"]["properties"]["error"]
    assert set(schema["required"]) <= set(error) <= set(schema["properties"])


@pytest.mark.parametrize(("model", "field", "limit"), [
    ("DeviceCreate", "serial", 100), ("DeviceCreate", "model", 100),
    ("AppCreate", "name", 200), ("SubjectCreate", "jurisdiction", 16),
    ("AccountCreate", "username", 64), ("AccountCreate", "password", 1000),
    ("LoginRequest", "username", 200), ("RevokeRequest", "reason", 1000),
    ("ConsentCreate", "subject_id", 64), ("DecisionRequest", "subject", 64),
])
def test_openapi_shows_max_lengths(served: tuple[TestClient, Any], model: str, field: str,
                                   limit: int) -> None:
    """Each string field shows its maximum length."""
    prop = served[1]["components"]["schemas"][model]["properties"][field]
    options = [prop, *prop.get("anyOf", [])]
    assert limit in [o.get("maxLength") for o in options], prop


@pytest.mark.parametrize(("model", "field", "items", "item_length"), [
    ("DeviceCreate", "channel_names", 512, 32), ("DeviceCreate", "channel_types", 512, None),
    ("AppCreate", "declared_purposes", 20, 64), ("AppUpdate", "declared_purposes", 20, 64),
])
def test_openapi_shows_list_sizes(served: tuple[TestClient, Any], model: str, field: str,
                                  items: int, item_length: int | None) -> None:
    """Lists show their maximum size and their items' maximum length."""
    prop = served[1]["components"]["schemas"][model]["properties"][field]
    assert prop["maxItems"] == items
    assert prop["items"].get("maxLength") == item_length


def test_openapi_update_fields_are_not_nullable(served: tuple[TestClient, Any]) -> None:
    """An update's fields may be left out but are not documented as accepting null."""
    schemas = served[1]["components"]["schemas"]
    for name in ("AppUpdate", "SubjectUpdate"):
        for field, prop in schemas[name]["properties"].items():
            nullable = {"type": "null"} in prop.get("anyOf", [])
            assert nullable == (field == "display_name"), (name, field)
        assert "required" not in schemas[name]
