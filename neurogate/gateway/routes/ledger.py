"""The public transparency ledger: checkpoints, proofs and the verifying key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from neurogate.gateway.deps import GatewayDep

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])


@router.get("/checkpoint", response_class=PlainTextResponse)
def read_checkpoint(gw: GatewayDep) -> str:
    """The newest signed checkpoint (C2SP tlog-checkpoint signed note)."""
    with gw.transaction() as session:
        return gw.ledger.latest_checkpoint(session)


@router.get("/key")
def read_key(gw: GatewayDep) -> dict[str, str]:
    """The verifier key of checkpoints and receipts (signed-note key format)."""
    return {"origin": gw.ledger.origin, "verifier_key": gw.ledger.verifier.key_string}


@router.get("/inclusion")
def read_inclusion_proof(gw: GatewayDep, index: int = Query(ge=0),
                         tree_size: int | None = Query(default=None, ge=1)) -> dict[str, Any]:
    """An inclusion proof of one leaf in a tree of the given size (default: all)."""
    with gw.transaction() as session:
        return gw.ledger.inclusion(session, index, tree_size)


@router.get("/consistency")
def read_consistency_proof(gw: GatewayDep, first: int = Query(ge=1),
                           second: int = Query(ge=1)) -> dict[str, Any]:
    """A consistency proof between two tree sizes."""
    with gw.transaction() as session:
        return gw.ledger.consistency(session, first, second)
