"""The web portal: server-rendered pages for subjects, guardians, children and staff.

Contract for the pages built on this shell (keep these names)::

    router                APIRouter including every module of ROUTERS (add yours there)
    install(app)          mounts /portal/static, includes router, maps portal errors to
                          pages; app.py calls it; "/" redirects to /portal
    web.render(request, "x.html", {...}, status=200) -> HTMLResponse
                          renders in the caller's language with Cache-Control: no-store;
                          templates get csrf_token, csrf_field, lang, user, errors,
                          format_date(value, format="medium"), format_day(value),
                          format_number(value, digits=None), _() / gettext / ngettext
    web.PortalUserDep     the signed-in PortalUser (principal, username, role, language,
                          subject_id, wards); not signed in -> 303 to /portal/login?next=
    web.CsrfFormDep       the posted FormData once its csrf_token (and Origin) are checked;
                          otherwise 403 page and nothing runs (web.verify_csrf(request, form)
                          does the same for a form you read yourself)
    web.FormErrors        field -> translated message; pass as "errors" and use the macros
    web.gettext_for(lang) gettext(msgid, **params) for messages built in Python;
                          web.request_language(request) gives lang
    web.NAV / web.HOME    navigation per role (one line per page) and landing page per role

Templates extend "base.html" (blocks: title, content) and import "_macros.html"
(error_summary, field, textarea, select, radios, button, csrf, table). Put console pages
in templates/console/ and portal/console/, data pages in templates/data/ and
routes_data.py: those files belong to the "console" and "data" Babel domains, everything
else here to "portal" (see babel-*.cfg; ``make messages`` updates every catalog, and
tests/portal/test_catalogs.py fails on a missing or fuzzy translation). Paths: /portal
(home), /portal/login, /portal/logout, /portal/language, /portal/assent, /portal/concerns,
/portal/activity, /portal/proof, /portal/my-data (data), /portal/console/... (console).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from neurogate.errors import NeurogateError
from neurogate.gateway.portal import (
    console,
    routes_auth,
    routes_child,
    routes_concerns,
    routes_data,
    routes_home,
    routes_recordings,
    web,
)

ROUTERS: tuple[Any, ...] = (routes_auth, routes_home, routes_child, routes_concerns, routes_data,
                            console, routes_recordings)

router = APIRouter(include_in_schema=False)
for _module in ROUTERS:
    router.include_router(_module.router)


async def _login_required(request: Request, exc: Exception) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    from urllib.parse import quote

    return RedirectResponse(f"/portal/login?next={quote(target, safe='')}", status_code=303)


def install(app: FastAPI) -> None:
    """Serve the portal on ``app``: static files, pages, error pages, ``/`` -> /portal."""
    app.mount("/portal/static", StaticFiles(directory=str(web.HERE / "static")),
              name="portal-static")
    app.include_router(router)
    api_handler = app.exception_handlers.get(NeurogateError)

    async def neurogate_error(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/portal") or api_handler is None:
            assert isinstance(exc, NeurogateError)
            return web.error_page(request, exc)
        return await api_handler(request, exc)

    http_handler = app.exception_handlers.get(StarletteHTTPException)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        portal_page = (request.url.path.startswith("/portal")
                       and not request.url.path.startswith("/portal/static"))
        if (portal_page and exc.status_code in (404, 405)) or http_handler is None:
            return web.render(request, "error.html", {"status": 404, "error_code": "not_found"},
                              status=exc.status_code)
        return await http_handler(request, exc)

    app.add_exception_handler(web.LoginRequired, _login_required)
    app.add_exception_handler(NeurogateError, neurogate_error)
    app.add_exception_handler(StarletteHTTPException, http_error)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/portal", status_code=307)


__all__ = ["ROUTERS", "install", "router"]
