"""The running gateway's collaborators: settings, database, ledger, token issuer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from neurogate.consent.accounts import SessionPolicy, configure_password_hashing
from neurogate.consent.checkpoint import load_or_create_signer
from neurogate.consent.db import get_engine, session_scope, upgrade
from neurogate.consent.ledger import Ledger
from neurogate.gateway.tokens import TokenIssuer, load_or_create_key
from neurogate.settings import Settings


@dataclass
class Gateway:
    """Everything a request handler needs, built once per process."""

    settings: Settings
    engine: Engine
    ledger: Ledger
    tokens: TokenIssuer
    session_policy: SessionPolicy

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One database transaction: committed (durably) on success, else rolled back."""
        with session_scope(self.engine) as session:
            yield session


def build_gateway(settings: Settings, *, migrate: bool = True) -> Gateway:
    """Open the database (bringing its schema up to date) and load or create the keys."""
    url = settings.resolved_database_url
    configure_password_hashing(
        time_cost=settings.password_hash_time_cost, memory_kib=settings.password_hash_memory_kib
    )
    if migrate:
        upgrade(url)
    keys = settings.data_dir / "keys"
    signer = load_or_create_signer(keys / "ledger-ed25519.pem", settings.ledger_origin)
    return Gateway(
        settings=settings,
        engine=get_engine(url),
        ledger=Ledger(signer=signer, origin=settings.ledger_origin),
        tokens=TokenIssuer(
            key=load_or_create_key(keys / "token-ed25519.pem"),
            issuer=settings.issuer,
            ttl_seconds=settings.access_token_ttl_seconds,
        ),
        session_policy=SessionPolicy(
            idle=timedelta(seconds=settings.session_idle_seconds),
            absolute=timedelta(seconds=settings.session_absolute_seconds),
        ),
    )


__all__ = ["Gateway", "build_gateway"]
