"""The API contract: FastAPI's OpenAPI document, completed in one place.

FastAPI documents the success response and a 422 of its own shape. ``document`` adds,
for every operation, each error status it can answer with, all in the one error shape
``{"error": {"code", "message", "field"?}}`` (schema ``Error``):

=====  ==================================================================================
401    operations that need credentials (they depend on ``get_principal`` or
       ``principal_later``)
403    those, when the caller's role may not use the operation; and every unsafe request
       (POST, PATCH, PUT, DELETE), which a cross-site ``Origin`` with the portal's cookie
       turns into ``forbidden_origin`` (``gateway/security.py``)
404    operations naming an object (a path parameter, or an id in the body): unknown and
       out of reach look the same
409    unsafe operations that need credentials, outside ``/v1/auth/`` (the request
       clashes with the current state, or the consent policy refuses), and the reads
       listed in ``_EXTRA``
422    operations taking any input, and every route that refuses unknown query parameters
429    the throttled doors: logins and the token endpoint (``Retry-After`` says when)
503    operations that read or write the consent store (they depend on ``get_gateway``)
=====  ==================================================================================

It also declares the security schemes (a session token as a bearer header, OAuth2
client credentials at ``/oauth/token`` for apps and devices, the portal's session
cookie), lists them on every operation that needs credentials and an empty ``security``
on the public ones, and describes ``/oauth/token``, whose raw form body and RFC 6749
answers FastAPI cannot see.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from neurogate.consent.accounts import APP_SCOPES, DEVICE_SCOPES
from neurogate.gateway.deps import PRINCIPAL_DEPENDENCIES, SESSION_COOKIE, get_gateway
from neurogate.gateway.routes._params import reject_unknown_query

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code."},
                "message": {"type": "string",
                            "description": "A whole sentence: the field, the value (at "
                                           "most 80 characters of it) and what is allowed."},
                "field": {"type": "string", "description": "The field at fault, if one is."},
                "fields": {"type": "array", "items": {"type": "string"},
                           "description": "Every field at fault (validation errors)."},
            },
        }
    },
}
OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "title": "OAuthError",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "RFC 6749 section 5.2 error code."},
        "error_description": {"type": "string"},
    },
}
TOKEN_SCHEMA: dict[str, Any] = {
    "title": "AccessToken",
    "type": "object",
    "required": ["access_token", "token_type", "expires_in"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
    },
}
SECURITY_SCHEMES: dict[str, Any] = {
    "sessionToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A person's session token from POST /v1/auth/login "
                       "('Authorization: Bearer ngs_...').",
    },
    "clientCredentials": {
        "type": "oauth2",
        "description": "Apps and devices: an access token from /oauth/token (client "
                       "credentials grant), sent as 'Authorization: Bearer <token>'.",
        "flows": {
            "clientCredentials": {
                "tokenUrl": "/oauth/token",
                "scopes": {
                    "consents:read": "An app reads its consents.",
                    "decisions:read": "An app asks the policy.",
                    "stream:subscribe": "An app subscribes to governed streams.",
                    "stream:ingest": "A device sends its stream.",
                },
            }
        },
    },
    "portalCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The portal's session cookie (set at login). An unsafe request "
                       "it authenticates must come from the gateway's own origin.",
    },
}
SECURED = [{"sessionToken": []}, {"clientCredentials": []}, {"portalCookie": []}]
TOKEN_PATH = "/oauth/token"
THROTTLED = frozenset({("post", "/v1/auth/login"), ("post", TOKEN_PATH)})
UNSAFE = frozenset({"post", "put", "patch", "delete"})
# Reads that can answer 409 as well.
_EXTRA: dict[tuple[str, str], tuple[int, ...]] = {
    ("get", "/v1/consents/{consent_id}/receipt"): (409,),
    # Recordings are off where no key-encryption key is configured, or consent does not
    # cover the read.
    ("get", "/v1/subjects/{subject_id}/recordings/export"): (409,),
    ("get", "/v1/subjects/{subject_id}/recordings/{recording_id}/edf"): (409,),
}
DESCRIPTIONS = {
    401: "Missing, wrong or expired credentials.",
    403: "Your role may not use this operation, or a cross-site request carried the "
         "session cookie (code 'forbidden_origin').",
    404: "No such object, or one you may not access: both look the same.",
    409: "The request clashes with the current state, or the consent policy refuses it.",
    413: "The request body is larger than NEUROGATE_MAX_BODY_BYTES (1 MiB by default).",
    422: "Invalid input: the message names the field, the value and what is allowed.",
    429: "Too many attempts; wait the number of seconds in the Retry-After header.",
    503: "The consent store cannot be reached; nothing was changed.",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.",
                               "schema": {"type": "integer", "minimum": 1}}}


def _calls(dependant: Dependant) -> set[Callable[..., Any]]:
    found: set[Callable[..., Any]] = set()
    if dependant.call is not None:
        found.add(dependant.call)
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def _has_input(dependant: Dependant) -> bool:
    if dependant.path_params or dependant.query_params or dependant.body_params:
        return True
    return any(_has_input(sub) for sub in dependant.dependencies)


def _statuses(method: str, route: RouteContext) -> set[int]:
    calls = _calls(route.dependant)
    found: set[int] = set()
    secured = bool(calls & PRINCIPAL_DEPENDENCIES)
    if secured:
        found |= {401, 403}
    if method in UNSAFE:
        found.add(403)  # forbidden_origin
        if secured and not route.path_format.startswith("/v1/auth/"):
            found.add(409)
    if route.dependant.path_params or (secured and route.dependant.body_params):
        found.add(404)
    if route.dependant.body_params:
        found.add(413)
    if _has_input(route.dependant) or reject_unknown_query in calls:
        found.add(422)
    if get_gateway in calls:
        found.add(503)
    if (method, route.path_format) in THROTTLED:
        found.add(429)
    found.update(_EXTRA.get((method, route.path_format), ()))
    return found


def _error_response(status: int, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or DESCRIPTIONS[status],
        "content": {"application/json": {"schema": ERROR_REF}},
    }
    if status == 429:
        response["headers"] = RETRY_AFTER
    return response


def _token_operation(operation: dict[str, Any]) -> None:
    """The token endpoint reads a raw form and answers in RFC 6749's shapes."""
    scopes = " ".join((*APP_SCOPES, *DEVICE_SCOPES))
    operation["requestBody"] = {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object",
            "required": ["grant_type"],
            "properties": {
                "grant_type": {"type": "string", "enum": ["client_credentials"]},
                "client_id": {"type": "string"},
                "client_secret": {"type": "string"},
                "scope": {"type": "string", "description": f"Some of: {scopes}."},
            },
        }}},
    }
    oauth = {"content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/OAuthError"}}}}
    operation["responses"] = {
        "200": {"description": "An access token.",
                "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/AccessToken"}}}},
        "400": {"description": "Malformed request (RFC 6749 section 5.2).", **oauth},
        "401": {"description": "The client cannot be authenticated; the answer is the same "
                               "for an unknown client and a wrong secret.", **oauth},
        "403": _error_response(403),
        "413": _error_response(413),
        "429": _error_response(429),
        "503": _error_response(503),
    }
    operation["security"] = [{"clientCredentials": []}]


def _routes(routes: Sequence[Any]) -> dict[tuple[str, str], RouteContext]:
    """Each documented operation's route, with the dependencies of its routers."""
    found = {}
    for context in iter_route_contexts(routes):
        if isinstance(context.original_route, APIRoute) and context.include_in_schema:
            for method in context.methods or ():
                found[(method.lower(), context.path_format)] = context
    return found


def document(schema: dict[str, Any], routes: Sequence[Any]) -> dict[str, Any]:
    """Complete ``schema`` (FastAPI's OpenAPI document for ``routes``) in place."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["OAuthError"] = OAUTH_ERROR_SCHEMA
    schemas["AccessToken"] = TOKEN_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = SECURITY_SCHEMES
    by_key = _routes(routes)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            route = by_key.get((method, path))
            if route is None:
                continue
            if path == TOKEN_PATH:
                _token_operation(operation)
                continue
            responses = operation.setdefault("responses", {})
            statuses = _statuses(method, route) | ({422} if "422" in responses else set())
            for status in sorted(statuses):
                declared = responses.get(str(status), {})
                responses[str(status)] = _error_response(status, declared.get("description"))
            for status, declared in responses.items():  # ones the route declared itself
                if status.startswith(("4", "5")) and "content" not in declared:
                    declared["content"] = {"application/json": {"schema": ERROR_REF}}
            calls = _calls(route.dependant)
            operation["security"] = SECURED if calls & PRINCIPAL_DEPENDENCIES else []
    return schema


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (and so at /docs)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(generate(), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["ERROR_SCHEMA", "SECURITY_SCHEMES", "document", "install"]
