"""The transparency ledger: public checkpoints, hashes and proofs; entries for auditors.

Everything here except ``/entries`` needs no login and serves only leaf hashes, signed
checkpoints and proofs: enough to verify every checkpoint and proof, and nothing about
any person (each leaf is a salted commitment to its entry). Whole entries with their
salts go to the ``auditor`` role and admins (``/entries``), and to the person an entry
concerns through their receipts and export.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from neurogate.consent.ledger import PAGE_LIMIT
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep
from neurogate.gateway.routes._params import STRICT_QUERY

router = APIRouter(prefix="/v1/ledger", tags=["ledger"], dependencies=[STRICT_QUERY])


@router.get("/checkpoint", response_class=PlainTextResponse)
def read_checkpoint(gw: GatewayDep) -> str:
    """The newest signed checkpoint (C2SP tlog-checkpoint signed note)."""
    with gw.transaction() as session:
        return gw.ledger.latest_checkpoint(session)


@router.get("/checkpoints")
def read_checkpoints(gw: GatewayDep, from_size: int = Query(default=0, ge=0),
                     limit: int = Query(default=100, ge=1, le=PAGE_LIMIT)
                     ) -> list[dict[str, Any]]:
    """Signed checkpoints of at least ``from_size`` leaves, smallest first."""
    with gw.transaction() as session:
        return gw.ledger.checkpoints(session, from_size, limit)


@router.get("/key")
def read_key(gw: GatewayDep) -> dict[str, str]:
    """The verifier key of checkpoints and receipts (signed-note key format)."""
    return {"origin": gw.ledger.origin, "verifier_key": gw.ledger.verifier.key_string}


@router.get("/leaves")
def read_leaf_hashes(gw: GatewayDep, start: int = Query(default=0, ge=0),
                     limit: int = Query(default=100, ge=1, le=PAGE_LIMIT)) -> dict[str, Any]:
    """A page of leaf hashes (hex) from index ``start``: salted commitments, no entries."""
    with gw.transaction() as session:
        return gw.ledger.leaves(session, start, limit)


@router.get("/inclusion")
def read_inclusion_proof(gw: GatewayDep, index: int = Query(ge=0),
                         tree_size: int | None = Query(default=None, ge=1)) -> dict[str, Any]:
    """An inclusion proof of one leaf hash in a tree of the given size (default: all),
    with that tree's signed checkpoint."""
    with gw.transaction() as session:
        return gw.ledger.inclusion(session, index, tree_size)


@router.get("/consistency")
def read_consistency_proof(gw: GatewayDep, first: int = Query(ge=1),
                           second: int = Query(ge=1)) -> dict[str, Any]:
    """A consistency proof between two tree sizes."""
    with gw.transaction() as session:
        return gw.ledger.consistency(session, first, second)


@router.get("/entries")
def read_ledger_entries(gw: GatewayDep, principal: CurrentPrincipal,
                        start: int = Query(default=0, ge=0),
                        limit: int = Query(default=100, ge=1, le=PAGE_LIMIT)
                        ) -> dict[str, Any]:
    """Whole entries with their salts, from index ``start`` (auditors and admins only);
    erased leaves come back opaque."""
    with gw.transaction() as session:
        return gw.ledger.entries(session, principal, start, limit)
