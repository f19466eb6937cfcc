"""The interactive API reference at /docs: Swagger UI served from the package itself.

Nothing is loaded from a CDN, so /docs works offline and under the gateway's
Content-Security-Policy (``script-src 'self'``, no inline script): the page links the
vendored ``swagger-ui-bundle.js`` and ``swagger-ui.css`` (``_swagger_ui/``, see its
``SOURCE.txt``) and starts Swagger UI from ``neurogate-init.js``, a file of its own, which
reads the OpenAPI URL from a ``data-`` attribute. ``NEUROGATE_DOCS_ENABLED=false`` turns the
page off (the OpenAPI document stays at /openapi.json). ReDoc is not served.
"""

from __future__ import annotations

from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from neurogate.gateway import asyncapi
from neurogate.settings import Settings

SWAGGER_UI_VERSION = "5.35.0"
STATIC_PATH = "/docs/static"


def docs_page(*, title: str, openapi_url: str) -> str:
    """The HTML of /docs: no inline script or style, every asset from ``STATIC_PATH``."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - API reference</title>
<link rel="stylesheet" href="{STATIC_PATH}/swagger-ui.css">
<link rel="icon" type="image/png" href="{STATIC_PATH}/favicon-32x32.png">
</head>
<body>
<p>The WebSocket streams (device ingest, app subscription) are described in AsyncAPI 3.0:
<a href="{asyncapi.ASYNCAPI_PATH}">{asyncapi.ASYNCAPI_PATH}</a>.</p>
<div id="swagger-ui" data-openapi-url="{escape(openapi_url)}"></div>
<script src="{STATIC_PATH}/swagger-ui-bundle.js"></script>
<script src="{STATIC_PATH}/neurogate-init.js"></script>
</body>
</html>
"""


def install(app: FastAPI, settings: Settings) -> None:
    """Serve /docs and its assets on ``app`` unless ``settings.docs_enabled`` is false.

    Build the app with ``docs_url=None`` and ``redoc_url=None`` so that FastAPI's own pages
    (which load Swagger UI and ReDoc from a CDN) are not served. The AsyncAPI document of
    the streams is served at /asyncapi.json either way, like /openapi.json.
    """
    asyncapi.install(app)
    if not settings.docs_enabled or app.openapi_url is None:
        return
    page = docs_page(title=app.title, openapi_url=app.openapi_url)
    app.mount(STATIC_PATH, StaticFiles(packages=[("neurogate.gateway", "_swagger_ui")]),
              name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def read_docs() -> HTMLResponse:
        """The interactive API reference (Swagger UI)."""
        return HTMLResponse(page)


__all__ = ["STATIC_PATH", "SWAGGER_UI_VERSION", "docs_page", "install"]
