"""/docs: Swagger UI from the package, no CDN, no inline script; a setting turns it off."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from neurogate.gateway.app import create_app
from neurogate.gateway.docs_ui import STATIC_PATH
from neurogate.gateway.security import CONTENT_SECURITY_POLICY
from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.gateway.conftest import BASE_URL, FAST_HASHING


def test_docs_page_loads_only_packaged_assets_and_no_inline_script(client: TestClient) -> None:
    """Every script and stylesheet of /docs comes from the gateway; no script is inline."""
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    html = response.text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    assert [attrs for attrs, _ in scripts] == [
        f' src="{STATIC_PATH}/swagger-ui-bundle.js"', f' src="{STATIC_PATH}/neurogate-init.js"']
    assert all(body.strip() == "" for _, body in scripts)
    assert "<style" not in html
    assert " style=" not in html
    assert re.findall(r'(?:src|href)="([^"]+)"', html) == [
        f"{STATIC_PATH}/swagger-ui.css", f"{STATIC_PATH}/favicon-32x32.png", "/asyncapi.json",
        f"{STATIC_PATH}/swagger-ui-bundle.js", f"{STATIC_PATH}/neurogate-init.js"]
    assert 'data-openapi-url="/openapi.json"' in html


@pytest.mark.parametrize(("name", "media_type", "marker"), [
    ("swagger-ui-bundle.js", "text/javascript", b"SwaggerUIBundle"),
    ("neurogate-init.js", "text/javascript", b"data-openapi-url"),
    ("swagger-ui.css", "text/css", b".swagger-ui"),
    ("favicon-32x32.png", "image/png", b"\x89PNG"),
])
def test_docs_assets_are_served_from_the_package(client: TestClient, name: str,
                                                 media_type: str, marker: bytes) -> None:
    """The vendored Swagger UI files and the init script answer with their own types."""
    response = client.get(f"{STATIC_PATH}/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert marker in response.content
    assert response.headers["x-content-type-options"] == "nosniff"


def test_docs_init_script_takes_nothing_from_outside(client: TestClient) -> None:
    """The init script turns off Swagger UI's online validator (a request to another site)."""
    script = client.get(f"{STATIC_PATH}/neurogate-init.js").text
    assert "validatorUrl: null" in script
    assert "http" not in script


def test_docs_redoc_is_not_served(client: TestClient) -> None:
    """FastAPI's /redoc page (which loads ReDoc from a CDN) is off."""
    assert client.get("/redoc").status_code == 404


def test_docs_openapi_document_is_served(client: TestClient) -> None:
    """The page's data source answers."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "NeuroGate"


def test_docs_disabled_by_setting(db_url: str, tmp_path: Path) -> None:
    """NEUROGATE_DOCS_ENABLED=false removes /docs and its assets (the OpenAPI stays)."""
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url, environment="test",
                        docs_enabled=False, **FAST_HASHING)
    with TestClient(create_app(gateway=build_gateway(settings)), base_url=BASE_URL) as client:
        assert client.get("/docs").status_code == 404
        assert client.get(f"{STATIC_PATH}/swagger-ui-bundle.js").status_code == 404
        assert client.get("/openapi.json").status_code == 200
