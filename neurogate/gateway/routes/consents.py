"""Consents: grant with the notice shown, assent or dissent, revoke, list, history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool

from neurogate.consent import access, consents
from neurogate.consent.models import Consent
from neurogate.consent.schemas import (
    AppConsentView,
    AssentRecord,
    ConnectionCreate,
    ConsentCreate,
    ConsentEventPublic,
    ConsentPublic,
    ConsentWithReceipt,
    RevokeRequest,
)
from neurogate.errors import ConflictError
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep, PrincipalLater
from neurogate.gateway.routes._params import STRICT_QUERY, IdPath

router = APIRouter(prefix="/v1/consents", tags=["consents"], dependencies=[STRICT_QUERY])


def _for_app(session: Any, consent: Consent) -> AppConsentView:
    return AppConsentView(
        id=consent.id,
        subject=consents.app_pseudonym_of(session, consent.app_id, consent.subject_id) or "",
        purpose_id=consent.purpose_id,
        products=consent.products,
        status=consent.status,
        valid_until=consent.valid_until,
    )


@router.get("")
def read_consents(gw: GatewayDep, principal: CurrentPrincipal,
                  subject_id: str | None = Query(default=None, max_length=64)
                  ) -> list[ConsentPublic] | list[AppConsentView]:
    """List consents you may see (an app sees its own, under its pseudonyms)."""
    with gw.transaction() as session:
        rows = consents.list_consents(session=session, principal=principal,
                                      subject_id=subject_id)
        if principal.kind == "app":
            return [_for_app(session, c) for c in rows]
        return [ConsentPublic.model_validate(c) for c in rows]


@router.post("", status_code=201)
def create_consent(body: ConsentCreate, gw: GatewayDep,
                   principal: CurrentPrincipal) -> ConsentWithReceipt:
    """Grant a consent, naming the exact notice shown; returns a signed receipt."""
    with gw.transaction() as session:
        consent, receipt = consents.grant_consent(
            session=session, ledger=gw.ledger, principal=principal, request=body
        )
    return ConsentWithReceipt(consent=ConsentPublic.model_validate(consent), receipt=receipt)


@router.get("/{consent_id}")
def read_consent(consent_id: IdPath, gw: GatewayDep,
                 principal: CurrentPrincipal) -> ConsentPublic | AppConsentView:
    """Read one consent."""
    with gw.transaction() as session:
        consent = access.get_consent(session, principal, consent_id)
        if principal.kind == "app":
            return _for_app(session, consent)
        return ConsentPublic.model_validate(consent)


@router.post("/{consent_id}/assent")
def record_assent(consent_id: IdPath, body: AssentRecord, gw: GatewayDep,
                  principal: CurrentPrincipal) -> ConsentPublic:
    """Record a child's own assent or dissent (the child, or a clinician in care)."""
    with gw.transaction() as session:
        consent = consents.record_assent(
            session=session, ledger=gw.ledger, principal=principal, consent_id=consent_id,
            assent=body.assent,
        )
    return ConsentPublic.model_validate(consent)


@router.post("/{consent_id}/revoke", response_model=ConsentWithReceipt)
async def revoke_consent(consent_id: IdPath, gw: GatewayDep, principal: PrincipalLater,
                         body: RevokeRequest | None = None) -> Response:
    """Revoke a consent in one call; it is on disk before this answers.

    The caller, the revocation and the answer's JSON take one trip to the thread pool, not
    three: each trip back waits for a turn of the event loop, which streams keep busy. The
    caller is read in the revocation's own transaction."""

    def revoke() -> bytes:
        with gw.transaction() as session:
            consent, receipt = consents.revoke_consent(
                session=session, ledger=gw.ledger, principal=principal(session),
                consent_id=consent_id, reason=body.reason if body else None,
            )
        answer = ConsentWithReceipt(consent=ConsentPublic.model_validate(consent),
                                    receipt=receipt)  # after the commit: a shorter write lock
        return answer.model_dump_json().encode()

    return Response(await run_in_threadpool(revoke), media_type="application/json")


@router.get("/{consent_id}/history")
def read_consent_history(consent_id: IdPath, gw: GatewayDep,
                         principal: CurrentPrincipal) -> list[ConsentEventPublic]:
    """Every recorded change of a consent, oldest first."""
    with gw.transaction() as session:
        events = consents.history(session=session, principal=principal, consent_id=consent_id)
        return [ConsentEventPublic.model_validate(e) for e in events]


@router.get("/{consent_id}/receipt")
def read_consent_receipt(consent_id: IdPath, gw: GatewayDep,
                         principal: CurrentPrincipal) -> dict[str, Any]:
    """A fresh receipt of the consent's latest change, proven against the newest checkpoint."""
    with gw.transaction() as session:
        events = consents.history(session=session, principal=principal, consent_id=consent_id)
        indexed = [e.ledger_index for e in events if e.ledger_index is not None]
        if not indexed:
            msg = "This consent has no ledger entry yet."
            raise ConflictError(msg)
        return gw.ledger.receipt_for(session, max(indexed))


connections = APIRouter(prefix="/v1", tags=["connections"], dependencies=[STRICT_QUERY])


@connections.post("/subjects/{subject_id}/connections", status_code=201)
def create_connection(subject_id: IdPath, body: ConnectionCreate, gw: GatewayDep,
                      principal: CurrentPrincipal) -> dict[str, str]:
    """Introduce a subject to an app; the app gets only its own pseudonym of them."""
    with gw.transaction() as session:
        name = consents.connect_app(session=session, principal=principal,
                                    subject_id=subject_id, app_id=body.app_id)
    return {"app_id": body.app_id, "subject": name}


@connections.get("/connections")
def read_connections(gw: GatewayDep, principal: CurrentPrincipal) -> list[dict[str, str]]:
    """The subjects introduced to the calling app, by its pseudonyms for them."""
    with gw.transaction() as session:
        return [{"subject": name} for name in
                consents.list_connections(session=session, principal=principal)]
