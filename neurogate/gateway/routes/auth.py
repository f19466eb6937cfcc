"""Logins, sessions and accounts."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlmodel import select

from neurogate.consent.access import require_role
from neurogate.consent.accounts import close_session, create_account
from neurogate.consent.accounts import open_session as start_session
from neurogate.consent.models import Account
from neurogate.consent.schemas import AccountCreate, AccountPublic, LoginRequest, LoginResponse
from neurogate.gateway.deps import SESSION_COOKIE, CurrentPrincipal, GatewayDep, bearer_token
from neurogate.gateway.login import attempt_login
from neurogate.gateway.routes._params import STRICT_QUERY

router = APIRouter(prefix="/v1", tags=["auth"], dependencies=[STRICT_QUERY])


@router.post("/auth/login", responses={
    401: {"description": "The username or password is wrong (the same for every cause)."},
    429: {"description": "Too many failed logins for the account or from the address; "
                         "see Retry-After."},
})
def login(body: LoginRequest, gw: GatewayDep, request: Request,
          response: Response) -> LoginResponse:
    """Log in with a username and password; returns a session token."""
    account = attempt_login(
        gw, username=body.username, password=body.password,
        client_address=request.client.host if request.client is not None else None,
    )
    with gw.transaction() as session:
        token = start_session(session=session, account=account)
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="strict",
        secure=gw.settings.environment == "production",
        max_age=gw.settings.session_absolute_seconds,
    )
    return LoginResponse(
        session_token=token,
        account_id=account.id,
        role=account.role,
        idle_timeout_seconds=gw.settings.session_idle_seconds,
        absolute_timeout_seconds=gw.settings.session_absolute_seconds,
    )


@router.post("/auth/logout", status_code=204)
def logout(request: Request, gw: GatewayDep, principal: CurrentPrincipal) -> Response:
    """End the current session."""
    token = bearer_token(request)
    if token is not None:
        with gw.transaction() as session:
            close_session(session=session, token=token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/auth/me")
def read_me(gw: GatewayDep, principal: CurrentPrincipal) -> dict[str, object]:
    """Who the caller is."""
    return {
        "kind": principal.kind,
        "id": principal.id,
        "role": principal.role,
        "subject_id": principal.subject_id,
        "scopes": sorted(principal.scopes),
    }


@router.post("/accounts", status_code=201)
def create_account_route(body: AccountCreate, gw: GatewayDep,
                         principal: CurrentPrincipal) -> AccountPublic:
    """Create an account (administrators)."""
    require_role(principal, "admin")
    with gw.transaction() as session:
        account = create_account(
            session=session, username=body.username, password=body.password, role=body.role
        )
        return AccountPublic.model_validate(account)


@router.get("/accounts")
def read_accounts(gw: GatewayDep, principal: CurrentPrincipal) -> list[AccountPublic]:
    """List accounts (administrators)."""
    require_role(principal, "admin")
    with gw.transaction() as session:
        return [AccountPublic.model_validate(a) for a in session.exec(select(Account)).all()]
