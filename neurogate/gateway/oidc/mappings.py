"""Which staff account a hospital identity signs in as.

An identity is the provider's ``iss`` and ``sub``. It reaches NeuroGate only through an
administrator's mapping: "an ID token whose claim ``groups`` holds ``neurology`` is a
clinician". The first sign-in of an identity with a mapped role creates its account
(role from the mapping, no usable password) and links it by ``iss`` + ``sub``; later
sign-ins find the account by that link, and its role follows the mappings of the day. An
identity no mapping matches is refused and nothing is created. Mappings give staff roles
only (:data:`~neurogate.consent.models.OIDC_ROLES`): subjects and guardians sign in with
their own passwords. Where mappings give several roles, the identity gets the first of
``OIDC_ROLES`` (the least: clinician before admin).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, select

from neurogate.consent.access import Principal, require_role
from neurogate.consent.accounts import pseudonym
from neurogate.consent.models import (
    OIDC_ROLES,
    ROLES,
    Account,
    OidcIdentity,
    OidcRoleMapping,
    utcnow,
)
from neurogate.errors import AuthenticationError, ConflictError, NotFoundError, ValidationError

CLAIM_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,100}$")
MAX_VALUE_LENGTH = 200
# Stored instead of an argon2 hash: never verifies, so the account has no password.
NO_PASSWORD = "!hospital-sign-in"
NO_ROLE = (
    "No approved mapping gives this identity a role; an administrator must map one of "
    "its claims to a staff role first."
)


class NoMappingError(AuthenticationError):
    """A hospital identity that no approved mapping gives a role."""

    code = "no_role_mapping"


@dataclass(frozen=True)
class Identity:
    """A person as the provider's validated ID token describes them."""

    issuer: str
    subject: str
    claims: Mapping[str, Any]


def mapping_problems(*, claim: str, value: str, role: str) -> list[ValidationError]:
    """Every field of a new mapping that breaks the rules, as errors naming it."""
    claim, value, role = claim.strip(), value.strip(), role.strip()
    found = []
    if not CLAIM_NAME.match(claim):
        msg = (
            "Invalid value for the 'claim' field. It must be an ID-token claim name of 1 to "
            f"100 letters, digits or _ . : / - (for example 'groups'), but got {claim[:80]!r} "
            "instead."
        )
        found.append(ValidationError(msg, field="claim"))
    if not 1 <= len(value) <= MAX_VALUE_LENGTH:
        msg = (
            f"Invalid value for the 'value' field. It must have 1 to {MAX_VALUE_LENGTH} "
            "characters (for example 'neurology')."
        )
        found.append(ValidationError(msg, field="value"))
    if role not in OIDC_ROLES:
        allowed = " and ".join(repr(r) for r in OIDC_ROLES)
        why = (" Subjects and guardians sign in with their own passwords, never through the "
               "hospital's identity provider." if role in ROLES else "")
        msg = (f"Invalid value for the 'role' field. Allowed values are {allowed}, but got "
               f"{role[:40]!r} instead.{why}")
        found.append(ValidationError(msg, field="role"))
    return found


def check_mapping(*, claim: str, value: str, role: str) -> tuple[str, str, str]:
    """The stripped (claim, value, role) of a new mapping, or the first ValidationError
    naming a field."""
    problems = mapping_problems(claim=claim, value=value, role=role)
    if problems:
        raise problems[0]
    return claim.strip(), value.strip(), role.strip()


def create_mapping(*, session: Session, principal: Principal, issuer: str, claim: str,
                   value: str, role: str) -> OidcRoleMapping:
    """Approve a mapping of a claim value at ``issuer`` to a staff role (administrators)."""
    require_role(principal, "admin")
    claim, value, role = check_mapping(claim=claim, value=value, role=role)
    clash = session.exec(select(OidcRoleMapping).where(
        OidcRoleMapping.issuer == issuer, OidcRoleMapping.claim == claim,
        OidcRoleMapping.value == value)).first()
    if clash is not None:
        msg = (f"A mapping of the claim {claim!r} with the value {value!r} already exists "
               f"(role {clash.role!r}); delete it first to change its role.")
        raise ConflictError(msg, field="value")
    mapping = OidcRoleMapping(issuer=issuer, claim=claim, value=value, role=role,
                              created_by=principal.id)
    session.add(mapping)
    session.flush()
    return mapping


def list_mappings(*, session: Session, principal: Principal, issuer: str) -> list[OidcRoleMapping]:
    """The approved mappings of ``issuer`` (administrators)."""
    require_role(principal, "admin")
    return list(session.exec(
        select(OidcRoleMapping).where(OidcRoleMapping.issuer == issuer)
        .order_by(OidcRoleMapping.claim, OidcRoleMapping.value)  # type: ignore[arg-type]
    ).all())


def delete_mapping(*, session: Session, principal: Principal, mapping_id: str) -> None:
    """Withdraw a mapping (administrators); identities it alone mapped are refused from
    their next sign-in on."""
    require_role(principal, "admin")
    mapping = session.get(OidcRoleMapping, mapping_id)
    if mapping is None:
        msg = f"No role mapping has the id {mapping_id!r}."
        raise NotFoundError(msg)
    session.delete(mapping)


def _holds(claim: Any, value: str) -> bool:
    if isinstance(claim, str):
        return claim == value
    if isinstance(claim, list | tuple):
        return any(isinstance(item, str) and item == value for item in claim)
    return False


def role_for(*, session: Session, issuer: str, claims: Mapping[str, Any]) -> str | None:
    """The staff role the approved mappings give these claims, or None."""
    mappings = session.exec(select(OidcRoleMapping).where(OidcRoleMapping.issuer == issuer)).all()
    roles = {m.role for m in mappings if _holds(claims.get(m.claim), m.value)}
    return next((role for role in OIDC_ROLES if role in roles), None)


def _new_username(session: Session, identity: Identity) -> str:
    """A readable, unique username: the person's preferred name at the provider's host."""
    host = urlsplit(identity.issuer).hostname or "provider"
    base = next((str(identity.claims[k]) for k in ("preferred_username", "email")
                 if isinstance(identity.claims.get(k), str) and identity.claims[k]), "")
    if not base:
        base = "staff-" + hashlib.sha256(identity.subject.encode()).hexdigest()[:12]
    host = host[:23]  # usernames have at most 64 characters
    username = f"{base[:40]}@{host}"
    while session.exec(select(Account).where(Account.username == username)).first():
        username = f"{base[:33]}-{secrets.token_hex(3)}@{host}"
    return username


def sign_in(*, session: Session, issuer: str, identity: Identity) -> Account:
    """The account of a validated identity: found by ``iss`` + ``sub``, or created with
    the mapped role; :class:`NoMappingError` when no mapping gives it a role.

    ``issuer`` is the configured provider whose mappings apply.
    """
    role = role_for(session=session, issuer=issuer, claims=identity.claims)
    if role is None:
        raise NoMappingError(NO_ROLE)
    link = session.exec(select(OidcIdentity).where(
        OidcIdentity.issuer == identity.issuer,
        OidcIdentity.subject == identity.subject)).first()
    if link is not None:
        account = session.get(Account, link.account_id)
        if account is None or account.disabled or account.role not in OIDC_ROLES:
            raise NoMappingError(NO_ROLE)
        account.role = role
        link.last_login_at = utcnow()
        session.add_all([account, link])
        return account
    account = Account(username=_new_username(session, identity), password_hash=NO_PASSWORD,
                      role=role, pseudonym=pseudonym("acc"))
    session.add(account)
    session.flush()
    session.add(OidcIdentity(issuer=identity.issuer, subject=identity.subject,
                             account_id=account.id, last_login_at=utcnow()))
    session.flush()
    return account


def list_identities(*, session: Session, principal: Principal) -> list[OidcIdentity]:
    """Every linked hospital identity (administrators)."""
    require_role(principal, "admin")
    return list(session.exec(select(OidcIdentity).order_by(OidcIdentity.created_at)).all())  # type: ignore[arg-type]


__all__ = [
    "NO_ROLE",
    "Identity",
    "NoMappingError",
    "check_mapping",
    "create_mapping",
    "delete_mapping",
    "list_identities",
    "list_mappings",
    "mapping_problems",
    "role_for",
    "sign_in",
]
