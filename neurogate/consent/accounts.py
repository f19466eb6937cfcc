"""Accounts, passwords, server-side sessions and OAuth2 client credentials.

Passwords are hashed with argon2id. Session tokens and client secrets are random
256-bit values; only their SHA-256 is stored (they are not guessable, so a slow hash
adds nothing). Unknown and wrong credentials take the same path and the same time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from neurogate.consent.models import (
    ROLES,
    Account,
    AuthSession,
    OAuthClient,
    new_id,
    utcnow,
)
from neurogate.errors import AuthenticationError, ConflictError, ValidationError

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("neurogate-dummy-password")


def configure_password_hashing(*, time_cost: int, memory_kib: int) -> None:
    """Set argon2id's cost for new hashes (existing hashes keep their own parameters)."""
    global _hasher, _DUMMY_HASH
    if (_hasher.time_cost, _hasher.memory_cost) == (time_cost, memory_kib):
        return
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
    _DUMMY_HASH = _hasher.hash("neurogate-dummy-password")
MIN_PASSWORD_LENGTH = 10
APP_SCOPES = ("consents:read", "decisions:read", "stream:subscribe")
DEVICE_SCOPES = ("stream:ingest",)


def pseudonym(prefix: str) -> str:
    """A random pseudonymous id such as ``sub_3k9...`` (no personal data in it)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def token_digest(token: str) -> str:
    """The stored form of a session token or client secret."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` after checking its length."""
    if len(password) < MIN_PASSWORD_LENGTH:
        msg = (
            f"Invalid value for the 'password' field. It must have at least "
            f"{MIN_PASSWORD_LENGTH} characters, but has {len(password)}."
        )
        raise ValidationError(msg, field="password")
    return _hasher.hash(password)


def create_account(
    *, session: Session, username: str, password: str, role: str, subject_id: str | None = None
) -> Account:
    """Create an account; usernames are unique."""
    if role not in ROLES:
        allowed = ", ".join(repr(r) for r in ROLES)
        msg = (
            f"Invalid value for the 'role' field. Allowed values are {allowed}, "
            f"but got {role!r} instead."
        )
        raise ValidationError(msg, field="role")
    username = username.strip()
    if not 3 <= len(username) <= 200:
        msg = "Invalid value for the 'username' field. It must have 3 to 200 characters."
        raise ValidationError(msg, field="username")
    if session.exec(select(Account).where(Account.username == username)).first() is not None:
        msg = f"An account with the username {username!r} already exists; choose another."
        raise ConflictError(msg, field="username")
    account = Account(
        username=username,
        password_hash=hash_password(password),
        role=role,
        pseudonym=pseudonym("acc"),
        subject_id=subject_id,
    )
    session.add(account)
    session.flush()
    return account


def authenticate(*, session: Session, username: str, password: str) -> Account | None:
    """The account if the password is right, else None (same work either way).

    The username is looked up in its NFKC form. An unknown username is checked against
    a dummy hash of the current cost, so it costs what a wrong password costs; a
    disabled account is refused only after its password was checked.
    """
    username = unicodedata.normalize("NFKC", username).strip()
    account = session.exec(select(Account).where(Account.username == username)).first()
    stored = account.password_hash if account is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if account is None or account.disabled:
        return None
    return account


def find_account(*, session: Session, username: str) -> Account | None:
    """The account with ``username``, if any."""
    return session.exec(select(Account).where(Account.username == username)).first()


@dataclass(frozen=True)
class SessionPolicy:
    """How long a login session lives."""

    idle: timedelta
    absolute: timedelta


def open_session(*, session: Session, account: Account) -> str:
    """Start a server-side session and return its bearer token (shown once)."""
    token = "ngs_" + secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        AuthSession(
            token_hash=token_digest(token), account_id=account.id, created_at=now, last_seen_at=now
        )
    )
    return token


def resolve_session(
    *, session: Session, token: str, policy: SessionPolicy, now: datetime | None = None
) -> Account:
    """The account behind a live session token; refreshes its idle timer."""
    now = now or utcnow()
    row = session.get(AuthSession, token_digest(token))
    expired = (
        row is None
        or row.revoked_at is not None
        or now - row.last_seen_at > policy.idle
        or now - row.created_at > policy.absolute
    )
    if expired or row is None:
        msg = "The session token is unknown, revoked or expired; log in again."
        raise AuthenticationError(msg)
    account = session.get(Account, row.account_id)
    if account is None or account.disabled:
        msg = "The session token is unknown, revoked or expired; log in again."
        raise AuthenticationError(msg)
    # Refresh at most once a minute to keep reads cheap.
    if now - row.last_seen_at > timedelta(seconds=60):
        row.last_seen_at = now
        session.add(row)
    return account


def close_session(*, session: Session, token: str) -> None:
    """Revoke a session token (logout)."""
    row = session.get(AuthSession, token_digest(token))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)


def create_client(*, session: Session, kind: str, owner_id: str) -> tuple[str, str]:
    """New OAuth2 client credentials for an app or device: (client_id, client_secret)."""
    scopes = APP_SCOPES if kind == "app" else DEVICE_SCOPES
    client_id = f"{kind}_{new_id().replace('-', '')[:20]}"
    secret = secrets.token_urlsafe(32)
    session.add(
        OAuthClient(
            client_id=client_id,
            secret_hash=token_digest(secret),
            kind=kind,
            owner_id=owner_id,
            scopes=" ".join(scopes),
        )
    )
    return client_id, secret


def check_client_secret(client: OAuthClient, secret: str) -> bool:
    """Constant-time comparison of a presented client secret."""
    return hmac.compare_digest(client.secret_hash, token_digest(secret))


__all__ = [
    "APP_SCOPES",
    "DEVICE_SCOPES",
    "SessionPolicy",
    "authenticate",
    "check_client_secret",
    "close_session",
    "configure_password_hashing",
    "create_account",
    "create_client",
    "find_account",
    "hash_password",
    "open_session",
    "pseudonym",
    "resolve_session",
    "token_digest",
]
