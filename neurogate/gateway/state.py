"""The running gateway's collaborators: settings, database, ledger, token issuer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from neurogate.consent.accounts import SessionPolicy, configure_password_hashing
from neurogate.consent.checkpoint import load_or_create_signer
from neurogate.consent.consents import CHANGES_KEY, REVOKED_KEY
from neurogate.consent.db import get_engine, session_scope, upgrade
from neurogate.consent.ledger import Ledger
from neurogate.errors import StorageError
from neurogate.gateway.streams import StreamHub
from neurogate.gateway.throttle import Throttles
from neurogate.gateway.tokens import TokenIssuer, load_or_create_key
from neurogate.settings import Settings

OnChange = Callable[[set[tuple[str, str]], list[tuple[Any, int]], set[str]], None]


class ClusterPause(Protocol):
    """The cluster control plane as a commit sees it (``cluster.control.ControlPlane``)."""

    def pause_everywhere(self, keys: set[tuple[str, str]]) -> str: ...

    def committed(self, change: str, keys: set[tuple[str, str]]) -> None: ...


@dataclass
class Gateway:
    """Everything a request handler needs, built once per process."""

    settings: Settings
    engine: Engine
    ledger: Ledger
    tokens: TokenIssuer
    session_policy: SessionPolicy
    hub: StreamHub = field(default_factory=StreamHub)
    throttles: Throttles = field(default_factory=Throttles)
    # Called on the event loop after a commit, with what the commit changed, the paused
    # subscriptions and the consents it revoked.
    on_change: OnChange | None = None
    loop: asyncio.AbstractEventLoop | None = None
    # Set while this node is in a cluster: pauses a change on the other nodes too.
    cluster: ClusterPause | None = None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One database transaction: committed (durably) on success, else rolled back.

        A transaction that changes what may flow pauses the affected streams *before* it
        commits, so that no frame produced after the commit leaves under the old decision;
        after the commit (or a rollback) the streams are decided again, except those resting
        on a consent the commit revoked: they are refused at once. In a cluster the
        pause covers every node: the commit waits until each live node has paused (or
        dropped out), and is refused (``PauseRefused``, 503) when they cannot be asked.
        """
        try:
            with session_scope(self.engine) as session:
                event.listen(session, "before_commit", self._before_commit)
                event.listen(session, "after_commit", self._after_commit)
                event.listen(session, "after_rollback", self._after_rollback)
                yield session
        except StorageError as exc:
            if getattr(exc, "code", None) != "cluster_unavailable":
                self.hub.lease_until = 0.0  # the store failed: stop every stream at once
            raise

    def _before_commit(self, session: Session) -> None:
        keys = session.info.get(CHANGES_KEY)
        if keys:
            session.info["paused"] = self.hub.freeze(keys)
            if self.cluster is not None:
                session.info["cluster_change"] = (self.cluster,
                                                  self.cluster.pause_everywhere(set(keys)))

    def _after_commit(self, session: Session) -> None:
        self._after_end(session, session.info.pop(REVOKED_KEY, set()))

    def _after_rollback(self, session: Session) -> None:
        session.info.pop(REVOKED_KEY, None)  # nothing was revoked after all
        self._after_end(session, set())

    def _after_end(self, session: Session, revoked: set[str]) -> None:
        keys = session.info.pop(CHANGES_KEY, None)
        paused = session.info.pop("paused", [])
        change = session.info.pop("cluster_change", None)
        if not keys:
            return
        stamped = self.hub.committed(keys, paused)
        if self.on_change is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.on_change, set(keys), stamped, revoked)
        if change is not None:  # the other nodes decide again (they do not learn what
            cluster, change_id = change  # committed, so they cannot refuse at once)
            cluster.committed(change_id, set(keys))


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
        throttles=Throttles(settings.rate_limit_storage_uri),
    )


__all__ = ["Gateway", "build_gateway"]
