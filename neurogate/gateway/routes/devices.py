"""Device registrations."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlmodel import select

from neurogate.consent import access, registry
from neurogate.consent.models import Device, LiveStreamRecord
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


class DeviceStreamStatus(BaseModel):
    """A device's live stream, without its subject. The counts come from the gateway
    process that runs the stream; another node of a cluster answers them with null."""

    live: bool
    stream: str | None = None  # the stream id of the welcome and the ledger
    frames: int | None = None  # frames accepted so far
    samples: int | None = None  # samples per channel accepted so far
    dropped: int | None = None  # frames dropped with a notice so far
    missing: int | None = None  # frames that never arrived (sequence gaps) so far


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


@router.post("/{device_id}/credentials")
def rotate_device_credentials(device_id: IdPath, gw: GatewayDep,
                              principal: CurrentPrincipal) -> ClientCredentials:
    """Replace a device's client secret (its vendor or an administrator); the old one is
    refused at once."""
    with gw.transaction() as session:
        _, client_id, secret = registry.rotate_device_secret(
            session=session, principal=principal, device_id=device_id)
    return ClientCredentials(client_id=client_id, client_secret=secret)


@router.get("/{device_id}/stream")
def read_device_stream(device_id: IdPath, gw: GatewayDep,
                       principal: CurrentPrincipal) -> DeviceStreamStatus:
    """Whether a device streams now, and its frame counts (never its subject)."""
    with gw.transaction() as session:
        device = access.get_device(session, principal, device_id)
        records = session.exec(select(LiveStreamRecord)).all()
    running = [r.stream for r in records if r.leaf.get("device") == device.id]
    stream = gw.hub.streams.get(device.id)
    if stream is not None:
        return DeviceStreamStatus(live=True, stream=stream.id, frames=stream.frames,
                                  samples=stream.samples, dropped=stream.rejected,
                                  missing=stream.missing)
    return DeviceStreamStatus(live=bool(running), stream=running[0] if running else None)
