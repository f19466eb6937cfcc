"""Care relationships between clinicians and patients."""

from __future__ import annotations

from fastapi import APIRouter, Response

from neurogate.consent import registry
from neurogate.consent.schemas import CareRelationshipCreate, CareRelationshipPublic
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep
from neurogate.gateway.routes._params import STRICT_QUERY, IdPath

router = APIRouter(prefix="/v1/care-relationships", tags=["care relationships"],
                   dependencies=[STRICT_QUERY])


@router.get("")
def read_care_relationships(gw: GatewayDep,
                            principal: CurrentPrincipal) -> list[CareRelationshipPublic]:
    """List care relationships (all for administrators, your own for clinicians)."""
    with gw.transaction() as session:
        rows = registry.list_care_relationships(session=session, principal=principal)
        return [CareRelationshipPublic.model_validate(r) for r in rows]


@router.post("", status_code=201)
def create_care_relationship(body: CareRelationshipCreate, gw: GatewayDep,
                             principal: CurrentPrincipal) -> CareRelationshipPublic:
    """Put a patient in a clinician's care (administrators)."""
    with gw.transaction() as session:
        care = registry.create_care_relationship(
            session=session, principal=principal, request=body
        )
        return CareRelationshipPublic.model_validate(care)


@router.delete("/{care_id}", status_code=204)
def delete_care_relationship(care_id: IdPath, gw: GatewayDep,
                             principal: CurrentPrincipal) -> Response:
    """End a care relationship (administrators)."""
    with gw.transaction() as session:
        registry.end_care_relationship(session=session, principal=principal, care_id=care_id)
    return Response(status_code=204)
