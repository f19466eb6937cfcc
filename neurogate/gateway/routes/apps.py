"""Apps and their declared purposes."""

from __future__ import annotations

from fastapi import APIRouter

from neurogate.consent import access, registry
from neurogate.consent.schemas import AppCreate, AppCreated, AppPublic, AppUpdate, ClientCredentials
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep
from neurogate.gateway.routes._params import STRICT_QUERY, IdPath

router = APIRouter(prefix="/v1/apps", tags=["apps"], dependencies=[STRICT_QUERY])


@router.get("")
def read_apps(gw: GatewayDep, principal: CurrentPrincipal) -> list[AppPublic]:
    """List apps (your own for app owners; an app sees only itself)."""
    with gw.transaction() as session:
        return [AppPublic.model_validate(a)
                for a in registry.list_apps(session=session, principal=principal)]


@router.post("", status_code=201)
def create_app(body: AppCreate, gw: GatewayDep, principal: CurrentPrincipal) -> AppCreated:
    """Register an app with its declared purposes (app owners); returns its credentials once."""
    with gw.transaction() as session:
        app, client_id, secret = registry.create_app(
            session=session, principal=principal, request=body
        )
        return AppCreated(
            app=AppPublic.model_validate(app),
            credentials=ClientCredentials(client_id=client_id, client_secret=secret),
        )


@router.get("/{app_id}")
def read_app(app_id: IdPath, gw: GatewayDep, principal: CurrentPrincipal) -> AppPublic:
    """Read one app's public facts."""
    with gw.transaction() as session:
        return AppPublic.model_validate(access.get_app(session, principal, app_id))


@router.patch("/{app_id}")
def update_app(app_id: IdPath, body: AppUpdate, gw: GatewayDep,
               principal: CurrentPrincipal) -> AppPublic:
    """Change an app (its owner; administrators approve impact assessments and suspend)."""
    with gw.transaction() as session:
        app = registry.update_app(session=session, principal=principal, app_id=app_id,
                                  request=body)
        return AppPublic.model_validate(app)


@router.post("/{app_id}/credentials")
def rotate_app_credentials(app_id: IdPath, gw: GatewayDep,
                           principal: CurrentPrincipal) -> ClientCredentials:
    """Replace an app's client secret (its owner or an administrator); the old one is
    refused at once."""
    with gw.transaction() as session:
        _, client_id, secret = registry.rotate_app_secret(session=session, principal=principal,
                                                          app_id=app_id)
    return ClientCredentials(client_id=client_id, client_secret=secret)
