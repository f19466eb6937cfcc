"""The HTTP edge: security headers on every response, and the same-origin rule for cookies.

Two pieces, both installed by ``install``:

- ``SecurityMiddleware`` (pure ASGI, outermost, so error pages get the headers too) adds
  ``X-Content-Type-Options``, ``Content-Security-Policy``, ``Referrer-Policy``,
  ``X-Frame-Options``, ``Strict-Transport-Security`` (production only) and, on responses
  that may carry secrets or personal data (the auth paths, answers to a request that carried
  credentials, anything that sets a cookie), ``Cache-Control: no-store``; it also refuses a
  cross-site unsafe request that the session cookie authenticates (``check_origin``).
- ``check_origin`` is the rule itself, callable by the WebSocket routes on the handshake.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from neurogate.errors import PermissionDenied
from neurogate.gateway.deps import SESSION_COOKIE
from neurogate.gateway.errors import error_body
from neurogate.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Everything from the gateway's own origin, nothing inline, never framed. Fits the portal
# (/portal/static) and the packaged Swagger UI at /docs; data: images are the icons that
# Swagger UI's stylesheet embeds.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=63072000; includeSubDomains"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SCHEME_OF = {"ws": "http", "wss": "https"}
# Paths whose every response is private (session tokens, access tokens).
_NO_STORE_PREFIXES = ("/v1/auth/", "/oauth/")


class ForbiddenOrigin(PermissionDenied):
    """A cookie-authenticated unsafe request or WebSocket handshake from another site."""

    code = "forbidden_origin"


def _normalise(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port; None if malformed."""
    parts = urlsplit(origin.strip())
    try:
        port = parts.port
    except ValueError:
        return None
    scheme = _SCHEME_OF.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    suffix = f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else ""
    return f"{scheme}://{parts.hostname}{suffix}"


def own_origin(connection: HTTPConnection) -> str | None:
    """The origin a request was sent to: its scheme (ws -> http) and its Host header."""
    host = connection.headers.get("host")
    if not host:
        return None
    return _normalise(f"{connection.url.scheme}://{host}")


def _has_bearer(headers: Headers) -> bool:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(value.strip())


def _cookie_authenticates(connection: HTTPConnection) -> bool:
    """The session cookie is what authenticates: it is present and no bearer header is."""
    return SESSION_COOKIE in connection.cookies and not _has_bearer(connection.headers)


def _allowed_origins(connection: HTTPConnection) -> Collection[str]:
    app = connection.scope.get("app")
    gateway = getattr(getattr(app, "state", None), "gateway", None)
    settings: Settings | None = getattr(gateway, "settings", None)
    return settings.allowed_origins if settings is not None else ()


def check_origin(connection: HTTPConnection) -> None:
    """Refuse a cross-site request that the portal's session cookie authenticates.

    The rule (the README's "Browser safety"): when the ``ngs_session`` cookie is what
    authenticates a connection (the cookie is sent and no ``Authorization: Bearer`` header
    is), an unsafe HTTP request (POST, PUT, PATCH, DELETE, ...) or any WebSocket handshake
    must come from the gateway's own origin. In order (as Go's ``CrossOriginProtection``):

    1. an ``Origin`` listed in ``NEUROGATE_ALLOWED_ORIGINS`` passes;
    2. else, when the browser sent ``Sec-Fetch-Site`` (every current browser does; page
       scripts cannot set it), ``same-origin`` or ``none`` (typed by the user) passes and
       ``same-site`` or ``cross-site`` is refused. This also admits a same-origin form post
       whose ``Origin`` is ``null`` because of ``Referrer-Policy: no-referrer``;
    3. else the ``Origin`` (failing that, the ``Referer``'s origin) must equal the request's
       own ``scheme://host[:port]`` (``ws``/``wss`` count as ``http``/``https``, default
       ports dropped); ``null`` or a malformed value is refused;
    4. a request with none of these headers is not a browser's cross-site request (browsers
       send ``Origin`` on every cross-site unsafe request and WebSocket handshake): passes.

    Requests with a bearer header, safe methods over HTTP, and requests without the cookie
    always pass.

    Raises ``ForbiddenOrigin`` (a ``PermissionDenied``, code ``forbidden_origin``). The
    HTTP middleware answers it with 403 and the standard error body; a WebSocket route
    calls this before ``accept()`` and, on the error, closes the handshake (4403 with the
    error's code and message, as for any other forbidden handshake).
    """
    if connection.scope["type"] == "http" and connection.scope["method"] in SAFE_METHODS:
        return
    if not _cookie_authenticates(connection):
        return
    headers = connection.headers
    sent = headers.get("origin")
    if sent is not None and (allowed := _normalise(sent)) is not None and (
            allowed in _allowed_origins(connection)):
        return
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site.lower() in ("same-origin", "none"):
            return
    else:
        if sent is None:
            sent = headers.get("referer")
            if sent is None:
                return
        origin = _normalise(sent)
        if origin is not None and origin == own_origin(connection):
            return
    shown = (sent if sent is not None else headers.get("referer") or "unknown")[:80]
    msg = (
        f"Requests from the origin '{shown}' may not use the NeuroGate session cookie; "
        "only pages of this gateway's own origin (or one listed in NEUROGATE_ALLOWED_ORIGINS) "
        "may. Send the request from the portal, or authenticate with "
        "'Authorization: Bearer <token>' instead of the cookie."
    )
    raise ForbiddenOrigin(msg)


def _needs_no_store(scope: Scope) -> bool:
    """Responses that may carry a token or personal data: auth paths, credentialed calls."""
    if scope["path"].startswith(_NO_STORE_PREFIXES):
        return True
    headers = Headers(scope=scope)
    return "authorization" in headers or SESSION_COOKIE in HTTPConnection(scope).cookies


def _too_large(limit: int) -> JSONResponse:
    message = (
        f"The request body is larger than the {limit} bytes the gateway reads; "
        f"send a smaller body."
    )
    return JSONResponse(error_body("body_too_large", message), 413)


async def _bounded_receive(receive: Receive, limit: int) -> Receive | None:
    """Read a body of unknown length up to ``limit`` bytes and replay it, or ``None`` if
    it is longer (so nothing past the limit is ever handed to the application)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay


class SecurityMiddleware:
    """Adds the security headers to every HTTP response, enforces ``check_origin`` and
    refuses request bodies above ``max_body_bytes`` (413) before the application reads
    them."""

    def __init__(self, app: ASGIApp, *, production: bool,
                 max_body_bytes: int = 1024 * 1024) -> None:
        self.app = app
        self.production = production
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = _needs_no_store(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                # Not "no-referrer": under it Chromium sends "Origin: null" on the portal's
                # own form posts, which check_origin (rightly) refuses.
                headers["Referrer-Policy"] = "same-origin"
                headers["X-Frame-Options"] = "DENY"
                if self.production:
                    headers["Strict-Transport-Security"] = HSTS
                if no_store or "set-cookie" in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        try:
            check_origin(HTTPConnection(scope))
        except ForbiddenOrigin as exc:
            response = JSONResponse(error_body(exc.code, exc.message), 403)
            await response(scope, receive, send_with_headers)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_body_bytes:
                await _too_large(self.max_body_bytes)(scope, receive, send_with_headers)
                return
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            bounded = await _bounded_receive(receive, self.max_body_bytes)
            if bounded is None:
                await _too_large(self.max_body_bytes)(scope, receive, send_with_headers)
                return
            receive = bounded
        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI, settings: Settings) -> None:
    """Wrap ``app``'s whole middleware stack in ``SecurityMiddleware``.

    Outside Starlette's ``ServerErrorMiddleware``, so that 500 pages get the headers too
    (``add_middleware`` would place it inside).
    """
    build = app.build_middleware_stack
    production = settings.environment == "production"

    def build_with_security() -> ASGIApp:
        return SecurityMiddleware(build(), production=production,
                                  max_body_bytes=settings.max_body_bytes)

    # Starlette builds the stack lazily on the first request; wrapping the builder is the
    # one hook that lies outside its error middleware (mypy: assigning to a method).
    app.build_middleware_stack = build_with_security  # type: ignore[method-assign]


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "ForbiddenOrigin",
    "SecurityMiddleware",
    "check_origin",
    "install",
    "own_origin",
]
