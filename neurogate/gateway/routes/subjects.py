"""Subjects (patients), their guardians, their own logins, export and erasure."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from neurogate.consent import access, registry, rights
from neurogate.consent.schemas import (
    AccountPublic,
    GuardianLinkCreate,
    GuardianLinkPublic,
    SubjectAccountCreate,
    SubjectCreate,
    SubjectPublic,
    SubjectUpdate,
)
from neurogate.gateway import recording
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep
from neurogate.gateway.routes._params import STRICT_QUERY, IdPath

router = APIRouter(prefix="/v1/subjects", tags=["subjects"], dependencies=[STRICT_QUERY])


@router.get("")
def read_subjects(gw: GatewayDep, principal: CurrentPrincipal) -> list[SubjectPublic]:
    """List the subjects you may see: yourself, your wards, or your patients."""
    with gw.transaction() as session:
        return [registry.subject_public(s) for s in
                registry.list_subjects(session=session, principal=principal)]


@router.post("", status_code=201)
def create_subject(body: SubjectCreate, gw: GatewayDep,
                   principal: CurrentPrincipal) -> SubjectPublic:
    """Register a patient (clinicians); they are in your care from then on."""
    with gw.transaction() as session:
        subject = registry.create_subject(session=session, principal=principal, request=body)
        return registry.subject_public(subject)


@router.get("/{subject_id}")
def read_subject(subject_id: IdPath, gw: GatewayDep, principal: CurrentPrincipal) -> SubjectPublic:
    """Read one subject."""
    with gw.transaction() as session:
        return registry.subject_public(access.get_subject(session, principal, subject_id))


@router.patch("/{subject_id}")
def update_subject(subject_id: IdPath, body: SubjectUpdate, gw: GatewayDep,
                   principal: CurrentPrincipal) -> SubjectPublic:
    """Correct a patient's record (clinician in care)."""
    with gw.transaction() as session:
        subject = registry.update_subject(
            session=session, principal=principal, subject_id=subject_id, request=body
        )
        return registry.subject_public(subject)


@router.post("/{subject_id}/account", status_code=201)
def create_subject_account(subject_id: IdPath, body: SubjectAccountCreate, gw: GatewayDep,
                           principal: CurrentPrincipal) -> AccountPublic:
    """Give a patient their own login (clinician in care)."""
    with gw.transaction() as session:
        account_id = registry.create_subject_account(
            session=session, principal=principal, subject_id=subject_id, request=body
        )
        account = access.account_of(session, account_id)
        return AccountPublic.model_validate(account)


@router.get("/{subject_id}/guardians")
def read_guardians(subject_id: IdPath, gw: GatewayDep,
                   principal: CurrentPrincipal) -> list[GuardianLinkPublic]:
    """List a subject's verified guardians."""
    with gw.transaction() as session:
        links = registry.list_guardians(session=session, principal=principal,
                                        subject_id=subject_id)
        return [GuardianLinkPublic.model_validate(link) for link in links]


@router.post("/{subject_id}/guardians", status_code=201)
def create_guardian_link(subject_id: IdPath, body: GuardianLinkCreate, gw: GatewayDep,
                         principal: CurrentPrincipal) -> GuardianLinkPublic:
    """Link and verify a guardian of a patient (clinician in care)."""
    with gw.transaction() as session:
        link = registry.link_guardian(
            session=session, principal=principal, subject_id=subject_id, request=body
        )
        return GuardianLinkPublic.model_validate(link)


@router.get("/{subject_id}/export")
def export_subject(subject_id: IdPath, gw: GatewayDep,
                   principal: CurrentPrincipal) -> dict[str, Any]:
    """Download everything held about a subject."""
    with gw.transaction() as session:
        return rights.export_subject(
            session=session, ledger=gw.ledger, principal=principal, subject_id=subject_id
        )


@router.post("/{subject_id}/erasure")
def erase_subject(subject_id: IdPath, gw: GatewayDep,
                  principal: CurrentPrincipal) -> dict[str, Any]:
    """Erase a subject: every consent revoked, personal data deleted, recordings
    crypto-shredded and deleted; returns the signed erasure receipt and the copies apps
    received (subject or guardian)."""
    with gw.transaction() as session:
        erasure = rights.erase(
            session=session, ledger=gw.ledger, principal=principal, subject_id=subject_id,
            shred=recording.shredder(gw),
        )
    recording.remove_files(gw, list(erasure.recording_ids))
    return {"erased": True, "ledger_index": erasure.ledger_index,
            "recordings_deleted": len(erasure.recording_ids),
            "segments_deleted": erasure.segments,
            "data_key_destroyed": erasure.data_key_destroyed,
            "copies_outside_gateway": [c.as_json() for c in erasure.copies],
            "receipt": erasure.receipt}
