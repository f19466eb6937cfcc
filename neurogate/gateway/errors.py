"""Maps NeuroGate's errors to HTTP responses, in one place.

Every error body has the shape ``{"error": {"code": ..., "message": ...}}`` (plus
``field`` when one field is at fault).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from neurogate.errors import (
    AuthenticationError,
    ConflictError,
    ConsentError,
    LedgerError,
    NeurogateError,
    NotFoundError,
    PermissionDenied,
    RateLimitedError,
    StorageError,
    ValidationError,
)

log = logging.getLogger("neurogate.gateway")

STATUS = {
    ValidationError: 422,
    NotFoundError: 404,
    PermissionDenied: 403,
    AuthenticationError: 401,
    RateLimitedError: 429,
    ConflictError: 409,
    ConsentError: 409,
    StorageError: 503,
    LedgerError: 500,
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The one error shape of the API."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def _status_of(exc: NeurogateError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def _neurogate_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NeurogateError)
    status = _status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse(error_body(exc.code, exc.message, exc.field), status, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "Invalid request"}
    field = _field_name(tuple(first.get("loc", ())))
    detail = str(first.get("msg", "invalid value")).rstrip(".")
    if first.get("type") == "missing":
        message = f"The '{field}' field is required but was not given."
    elif first.get("type") == "extra_forbidden":
        message = f"The '{field}' field is not allowed here; remove it."
    elif first.get("type") == "json_invalid":
        message = "The request body is not valid JSON."
    else:
        got = first.get("input")
        shown = repr(got) if isinstance(got, str | int | float | bool) else type(got).__name__
        message = f"Invalid value for the '{field}' field: {detail}, but got {shown}."
    body = error_body("invalid_request", message, field)
    body["error"]["fields"] = [_field_name(tuple(e.get("loc", ()))) for e in errors]
    return JSONResponse(body, 422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated"}
    code = codes.get(exc.status_code, "http_error")
    message = {
        404: f"No route matches {request.method} {request.url.path}; see /docs.",
        405: f"{request.method} is not allowed on {request.url.path}; see /docs.",
    }.get(exc.status_code, str(exc.detail))
    return JSONResponse(error_body(code, message), exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Log the type only: messages of third-party errors can carry request data.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return JSONResponse(
        error_body("internal_error", "The gateway failed to handle this request; nothing was "
                   "changed. Try again, and report it if it persists."),
        500,
    )


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(NeurogateError, _neurogate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


__all__ = ["STATUS", "error_body", "install"]
