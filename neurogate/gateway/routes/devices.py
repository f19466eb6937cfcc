"""Device registrations."""

from __future__ import annotations

from fastapi import APIRouter

from neurogate.consent import access, registry
from neurogate.consent.models import Device
from neurogate.consent.schemas import (
    ClientCredentials,
    DeviceCreate,
    DeviceCreated,
    DevicePublic,
    PairingCreate,
)
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep
from neurogate.gateway.routes._params import STRICT_QUERY, IdPath

router = APIRouter(prefix="/v1/devices", tags=["devices"], dependencies=[STRICT_QUERY])


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
def read_device(device_id: IdPath, gw: GatewayDep, principal: CurrentPrincipal) -> DevicePublic:
    """Read one device registration."""
    with gw.transaction() as session:
        return _public(access.get_device(session, principal, device_id))


@router.post("/{device_id}/pairing")
def pair_device(device_id: IdPath, body: PairingCreate, gw: GatewayDep,
                principal: CurrentPrincipal) -> DevicePublic:
    """Pair a device with a subject (the subject, or a clinician in care)."""
    with gw.transaction() as session:
        device = registry.pair_device(session=session, ledger=gw.ledger, principal=principal,
                                      device_id=device_id, subject_id=body.subject_id)
    return _public(device)


@router.delete("/{device_id}/pairing")
def unpair_device(device_id: IdPath, gw: GatewayDep, principal: CurrentPrincipal) -> DevicePublic:
    """Unpair a device; its live stream ends."""
    with gw.transaction() as session:
        device = registry.unpair_device(session=session, ledger=gw.ledger, principal=principal,
                                        device_id=device_id)
    return _public(device)
