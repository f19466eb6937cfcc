"""Accounts: password hashing, sessions with idle and absolute timeouts, client secrets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import Session

from neurogate.consent.accounts import (
    SessionPolicy,
    authenticate,
    close_session,
    create_account,
    hash_password,
    open_session,
    resolve_session,
)
from neurogate.consent.db import get_engine, session_scope, upgrade
from neurogate.consent.models import utcnow
from neurogate.errors import AuthenticationError, ConflictError, ValidationError

POLICY = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))


@pytest.fixture
def session(sqlite_url: str) -> Iterator[Session]:
    """A session on a migrated SQLite database (committed as the test goes)."""
    upgrade(sqlite_url)
    with session_scope(get_engine(sqlite_url)) as db:
        yield db


def test_accounts_password_is_hashed_with_argon2id(session: Session) -> None:
    """The stored hash is argon2id and the right password authenticates."""
    account = create_account(session=session, username="ana", password="long-password-1",
                             role="clinician")
    assert account.password_hash.startswith("$argon2id$")
    assert authenticate(session=session, username="ana", password="long-password-1") == account
    assert authenticate(session=session, username="ana", password="wrong-password") is None
    assert authenticate(session=session, username="nobody", password="x") is None


def test_accounts_short_password_and_duplicates_are_refused(session: Session) -> None:
    """Short passwords and taken usernames get messages naming the field."""
    with pytest.raises(ValidationError, match="'password' field. It must have at least 10"):
        hash_password("short")
    create_account(session=session, username="ana", password="long-password-1", role="admin")
    with pytest.raises(ConflictError, match="username 'ana' already exists"):
        create_account(session=session, username="ana", password="long-password-2",
                       role="admin")
    with pytest.raises(ValidationError, match="Allowed values are 'subject'"):
        create_account(session=session, username="bo", password="long-password-1", role="root")


def test_accounts_authenticate_finds_nfkc_forms_and_refuses_disabled(session: Session) -> None:
    """A full-width or padded username finds its account; a disabled account is refused
    even with the right password, exactly like a wrong one."""
    account = create_account(session=session, username="ana", password="long-password-1",
                             role="clinician")
    assert authenticate(session=session, username="ａｎａ ", password="long-password-1") == account
    account.disabled = True
    session.add(account)
    session.flush()
    assert authenticate(session=session, username="ana", password="long-password-1") is None


def test_accounts_session_idle_timeout(session: Session) -> None:
    """A session unused for longer than the idle timeout is refused."""
    account = create_account(session=session, username="ana", password="long-password-1",
                             role="guardian")
    token = open_session(session=session, account=account)
    now = utcnow()
    assert resolve_session(session=session, token=token, policy=POLICY, now=now + timedelta(
        minutes=29)).id == account.id
    # Use refreshed the idle timer: 29 more minutes are fine, 31 idle minutes are not.
    resolve_session(session=session, token=token, policy=POLICY, now=now + timedelta(minutes=58))
    with pytest.raises(AuthenticationError, match="log in again"):
        resolve_session(session=session, token=token, policy=POLICY,
                        now=now + timedelta(minutes=58 + 31))


def test_accounts_session_absolute_timeout(session: Session) -> None:
    """However active, a session ends after the absolute timeout."""
    account = create_account(session=session, username="ana", password="long-password-1",
                             role="guardian")
    token = open_session(session=session, account=account)
    start = utcnow()
    for minutes in range(20, 12 * 60, 20):
        resolve_session(session=session, token=token, policy=POLICY,
                        now=start + timedelta(minutes=minutes))
    with pytest.raises(AuthenticationError):
        resolve_session(session=session, token=token, policy=POLICY,
                        now=start + timedelta(hours=12, minutes=1))


def test_accounts_closed_session_is_refused(session: Session) -> None:
    """Logout revokes the server-side session."""
    account = create_account(session=session, username="ana", password="long-password-1",
                             role="subject")
    token = open_session(session=session, account=account)
    close_session(session=session, token=token)
    with pytest.raises(AuthenticationError):
        resolve_session(session=session, token=token, policy=POLICY)
