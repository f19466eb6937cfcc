"""Device registrations."""

from __future__ import annotations

from fastapi import APIRouter

from neurogate.consent import access, registry
from neurogate.consent.models import Device
from neurogate.consent.schemas import ClientCredentials, DeviceCreate, DeviceCreated, DevicePublic
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep

router = APIRouter(prefix="/v1/devices", tags=["devices"])


def _public(device: Device) -> DevicePublic:
    view = DevicePublic.model_validate(device)
    view.paired = device.paired_subject_id is not None
    return view


@router.get("")
def read_devices(gw: GatewayDep, principal: CurrentPrincipal) -> list[DevicePublic]:
    """List your devices (vendors; all for administrators)."""
    with gw.transaction() as session:
        return [_public(d) for d in registry.list_devices(session=session, principal=principal)]


@router.post("", status_code=201)
def create_device(body: DeviceCreate, gw: GatewayDep,
                  principal: CurrentPrincipal) -> DeviceCreated:
    """Register a device and its stream layout (vendors); returns its credentials once."""
    with gw.transaction() as session:
        device, client_id, secret = registry.create_device(
            session=session, principal=principal, request=body
        )
        return DeviceCreated(
            device=_public(device),
            credentials=ClientCredentials(client_id=client_id, client_secret=secret),
        )


@router.get("/{device_id}")
def read_device(device_id: str, gw: GatewayDep, principal: CurrentPrincipal) -> DevicePublic:
    """Read one device registration."""
    with gw.transaction() as session:
        return _public(access.get_device(session, principal, device_id))
