"""Dependencies shared by the routes: the gateway, and who is calling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session
from starlette.requests import HTTPConnection

from neurogate.consent.access import Principal
from neurogate.consent.accounts import resolve_session
from neurogate.consent.models import App, Device
from neurogate.errors import AuthenticationError
from neurogate.gateway.state import Gateway

SESSION_PREFIX = "ngs_"
SESSION_COOKIE = "ngs_session"


async def get_gateway(request: Request) -> Gateway:
    """The process's gateway (set up by ``create_app``). Async only so that FastAPI
    resolves it on the event loop instead of sending it to the thread pool: under load
    every round trip through the pool waits for a turn of the loop."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def bearer_token(request: HTTPConnection) -> str | None:
    """The bearer token of a request (header first, then the portal's session cookie)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(SESSION_COOKIE)


def client_owner_active(owner: App | Device | None) -> bool:
    """Whether the app or device behind client credentials or an access token may act:
    it exists and, for an app, is not suspended. Suspension ends every token at once."""
    if owner is None:
        return False
    return not (isinstance(owner, App) and owner.suspended)


def principal_for_token(gateway: Gateway, token: str, session: Session | None = None
                        ) -> Principal:
    """Resolve a session token (people) or an access token (apps, devices), in ``session``
    when given (a route's own transaction), else in a transaction of its own.

    An access token of an app that was suspended or deleted after it was issued is
    refused like an invalid one, on every REST route and WebSocket handshake.
    """
    if session is None:
        with gateway.transaction() as own:
            return principal_for_token(gateway, token, own)
    if token.startswith(SESSION_PREFIX):
        account = resolve_session(session=session, token=token, policy=gateway.session_policy)
        return Principal(
            kind="account", id=account.id, role=account.role,
            subject_id=account.subject_id, pseudonym=account.pseudonym,
        )
    claims = gateway.tokens.verify(token)
    owner = session.get(App if claims.kind == "app" else Device, claims.subject)
    if not client_owner_active(owner):
        msg = "The access token is invalid or expired; request a new one at /oauth/token."
        raise AuthenticationError(msg)
    return Principal(kind=claims.kind, id=claims.subject, role=claims.kind,
                     scopes=claims.scopes)


def get_principal(request: Request, gateway: GatewayDep) -> Principal:
    """The authenticated caller, or 401."""
    return _principal_of(request, gateway)


def _principal_of(request: Request, gateway: Gateway, session: Session | None = None
                  ) -> Principal:
    token = bearer_token(request)
    if token is None:
        msg = (
            "Authentication required: send 'Authorization: Bearer <token>' with a session "
            "token from /v1/auth/login or an access token from /oauth/token."
        )
        raise AuthenticationError(msg)
    return principal_for_token(gateway, token, session)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def principal_later(request: Request, gateway: GatewayDep
                          ) -> Callable[[Session], Principal]:
    """`get_principal`, to be called with the route's own transaction inside its own trip
    to the thread pool.

    A sync dependency and a sync route take two trips, each waiting for a turn of the event
    loop on the way back; under streaming load that wait is most of a revocation's time.
    One transaction instead of two also takes SQLite's write lock once."""
    return functools.partial(_principal_of, request, gateway)


PrincipalLater = Annotated[Callable[[Session], Principal], Depends(principal_later)]
# Either makes a route one that needs credentials (401, 403 and `security` in OpenAPI).
PRINCIPAL_DEPENDENCIES = frozenset({get_principal, principal_later})

__all__ = [
    "SESSION_COOKIE",
    "PRINCIPAL_DEPENDENCIES",
    "CurrentPrincipal",
    "GatewayDep",
    "PrincipalLater",
    "bearer_token",
    "client_owner_active",
    "get_gateway",
    "get_principal",
    "principal_for_token",
    "principal_later",
]
