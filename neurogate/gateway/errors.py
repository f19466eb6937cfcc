"""Maps NeuroGate's errors to HTTP responses, in one place.

Every error body has the shape ``{"error": {"code": ..., "message": ...}}`` (plus
``field`` when one field is at fault). Validation errors are worded here, once, for every
request model: a whole sentence naming the field, what it must be, and at most
``QUOTE_LIMIT`` (80) characters of the value that was sent, so that a megabyte of input
never comes back.
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


QUOTE_LIMIT = 80  # characters of a bad value quoted back, at most


def quote(value: Any) -> str:
    """A bad value as an error message shows it: JSON-like, and at most ``QUOTE_LIMIT``
    characters of a string (a 1 MB input does not come back)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= QUOTE_LIMIT else f"a number of {len(text)} digits"
    if isinstance(value, str):
        if len(value) <= QUOTE_LIMIT:
            return repr(value)
        return f"{value[:QUOTE_LIMIT]!r}... ({len(value)} characters)"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# What a field must be, by pydantic error type; the value follows as "but got ...".
_EXPECTED = {
    "bool_type": "It must be true or false (a JSON boolean)",
    "int_type": "It must be a whole number (a JSON number, not a string)",
    "int_from_float": "It must be a whole number",
    "float_type": "It must be a number (a JSON number, not a string)",
    "finite_number": "It must be a finite number",
    "string_type": "It must be a string",
    "list_type": "It must be a list",
    "model_type": "It must be an object",
    "model_attributes_type": "It must be an object",
    "dict_type": "It must be an object",
}


def _limit_message(kind: str, ctx: dict[str, Any], got: Any) -> str | None:
    if kind in ("string_too_long", "string_too_short"):
        bound = "most" if kind == "string_too_long" else "least"
        limit = ctx.get("max_length" if bound == "most" else "min_length")
        unit = "character" if limit == 1 else "characters"
        if isinstance(got, str) and len(got) <= QUOTE_LIMIT:
            return f"It must have at {bound} {limit} {unit}, but got {quote(got)} ({len(got)})."
        return f"It must have at {bound} {limit} {unit}, but got {quote(got)}."
    if kind in ("too_long", "too_short"):
        bound = "most" if kind == "too_long" else "least"
        limit = ctx.get("max_length" if bound == "most" else "min_length")
        unit = "item" if limit == 1 else "items"
        size = ctx.get("actual_length")
        return f"It must have at {bound} {limit} {unit}, but got {size}."
    return None


def validation_message(error: dict[str, Any]) -> tuple[str, str]:
    """The sentence and field name for one pydantic error (the first one is shown)."""
    field = _field_name(tuple(error.get("loc", ())))
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    got = error.get("input")
    prefix = f"Invalid value for the '{field}' field."
    if kind == "missing":
        return f"The '{field}' field is required but was not given.", field
    if kind == "extra_forbidden":
        return f"The '{field}' field is not allowed here; remove it.", field
    if kind == "json_invalid":
        return _NOT_JSON, "body"
    if kind == "value_error":
        # Our validators raise whole sentences; keep them, naming the field if they don't.
        text = str(ctx.get("error", error.get("msg", "")))[:500]
        return (text if text.startswith("Invalid value") else f"{prefix} {text}"), field
    limited = _limit_message(kind, ctx, got)
    if limited is not None:
        return f"{prefix} {limited}", field
    if kind in _EXPECTED:
        return f"{prefix} {_EXPECTED[kind]}, but got {quote(got)}.", field
    detail = str(error.get("msg", "invalid value")).rstrip(".")[:300]
    return f"Invalid value for the '{field}' field: {detail}, but got {quote(got)}.", field


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "Invalid request"}
    message, field = validation_message(dict(first))
    body = error_body("invalid_request", message, field)
    fields = dict.fromkeys("body" if e.get("type") == "json_invalid"
                           else _field_name(tuple(e.get("loc", ()))) for e in errors)
    body["error"]["fields"] = list(fields)[:50]
    return JSONResponse(body, 422)


_UNREADABLE_BODY = "There was an error parsing the body"
_NOT_JSON = "The request body is not valid JSON."


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNREADABLE_BODY:
        # FastAPI's answer to a body that is not UTF-8: the same as any body that is not JSON.
        return JSONResponse(error_body("invalid_request", _NOT_JSON, "body"), 422)
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


__all__ = ["QUOTE_LIMIT", "STATUS", "error_body", "install", "quote", "validation_message"]
