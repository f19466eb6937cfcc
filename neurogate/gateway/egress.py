"""Governed egress: the decision taken when an app subscribes, and keeping it honest.

``decide_grant`` runs the full policy for every product of the purpose. After any commit
that changed consent for a subject or an app, ``reevaluate`` decides again for the
subscriptions it paused: they reopen if still allowed, else they get ``revoked`` and
close. Those resting on a consent the commit revoked get ``revoked_refusal`` at once.
``StoreLease`` renews the store lease from a thread of its own while the consent store
answers; ``watch`` ends every subscription once the lease has lapsed, and those whose
consent ran out.

The bound: a frame reaches an app only while the lease holds, and the lease ends
``NEUROGATE_STORE_LEASE_SECONDS`` (0.5 s by default) after the store last answered a
probe, or at once when a probe or any other read fails. The probe runs
``RENEWALS_PER_LEASE`` times per lease on its own connection, outside the event loop and
the connection pool, so a busy loop or a pool in use does not lapse a healthy lease: only
a probe slower than 4/5 of the lease does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool

from neurogate.consent import access
from neurogate.consent.consents import evaluate_products
from neurogate.consent.models import App, Subject
from neurogate.consent.policy import explain, explain_reasons
from neurogate.consent.purposes import load_catalog
from neurogate.errors import NeurogateError, StorageError, not_found
from neurogate.gateway.counters import DeliveryCounter
from neurogate.gateway.state import Gateway
from neurogate.gateway.streams import Grant, Subscription, epoch_seconds
from neurogate.signal import Resolution

log = logging.getLogger("neurogate.egress")
RENEWALS_PER_LEASE = 5  # probes per lease: a probe may take 4/5 of the lease
REVOKED_REASON = "consent.revoked"


@dataclass(frozen=True)
class Refusal:
    """Why nothing of a purpose may flow."""

    reasons: tuple[str, ...]
    explanations: tuple[str, ...]


def decide_grant(gateway: Gateway, *, app_id: str, subject_id: str, purpose_id: str,
                 language: str = "en") -> Grant | Refusal:
    """The full policy decision for every product of the purpose (reads the store)."""
    purpose = load_catalog().get(purpose_id)
    with gateway.transaction() as session:
        subject = session.get(Subject, subject_id)
        app = session.get(App, app_id)
        if subject is None or subject.erased_at is not None or app is None:
            raise not_found(kind="subject", ident=subject_id)
        allowed: dict[str, Resolution] = {}
        reasons: list[str] = []
        explanations: list[str] = []
        valid_until = 0.0
        consent_id = None
        decisions = evaluate_products(session=session, subject=subject, app=app,
                                      purpose_id=purpose.id, products=list(purpose.products))
        for product, decision in decisions.items():
            if decision.allowed and decision.constraints is not None:
                res = decision.constraints.resolution[product]
                allowed[product] = Resolution(res.window_s, res.output_rate_hz, res.channels)
                valid_until = epoch_seconds(decision.constraints.valid_until)
                consent_id = decision.consent_id
            else:
                for reason, sentence in zip(decision.reasons, explain(decision, language),
                                            strict=False):
                    if reason not in reasons:
                        reasons.append(reason)
                        explanations.append(sentence)
    if not allowed:
        return Refusal(tuple(reasons), tuple(explanations))
    return Grant(allowed, valid_until, tuple(reasons), tuple(explanations), consent_id)


def revoked_refusal(language: str = "en") -> Refusal:
    """What a subscription resting on a consent that was just revoked is told: what
    deciding again would find, since that consent now says ``revoked``."""
    return Refusal((REVOKED_REASON,), tuple(explain_reasons((REVOKED_REASON,), language)))


def resolve_pseudonym(gateway: Gateway, *, app_id: str, pseudonym: str) -> str:
    """The internal subject id behind an app's pseudonym (NotFoundError otherwise)."""
    with gateway.transaction() as session:
        return access.subject_for_app(session, app_id, pseudonym).id


async def reevaluate(gateway: Gateway, sub: Subscription, generation: int | None = None
                     ) -> None:
    """Decide again for a paused subscription; reopen it or revoke it.

    ``generation`` is the subscription's generation when the change that paused it
    committed: if any later change touched it, this (older) decision must not reopen it.
    """
    generation = sub.generation if generation is None else generation
    try:
        outcome = await run_in_threadpool(
            decide_grant, gateway, app_id=sub.app_id, subject_id=sub.subject_id,
            purpose_id=sub.purpose_id)
    except StorageError:
        gateway.hub.fail_closed()
        return
    except NeurogateError as exc:  # the subject was erased, the app deleted
        gateway.hub.revoke(sub, [exc.code], [exc.message])
        return
    if sub.generation != generation or sub.closing is not None:
        return  # another change came in meanwhile; its own re-evaluation decides
    if isinstance(outcome, Refusal):
        gateway.hub.revoke(sub, outcome.reasons, outcome.explanations)
        return
    # Checked and reopened under the hub's lock, so a pause cannot slip in between.
    gateway.hub.reopen(sub, generation, outcome)


_background: set[asyncio.Task[None]] = set()


def spawn_reevaluation(gateway: Gateway, sub: Subscription, generation: int) -> None:
    """Decide again for ``sub`` in the background (keeping the task referenced)."""
    task = asyncio.create_task(reevaluate(gateway, sub, generation))
    _background.add(task)
    task.add_done_callback(_background.discard)


class StoreLease:
    """Renews the hub's store lease while the consent store answers, from its own thread.

    The thread holds one database connection of its own (outside the pool, so requests
    that use every pooled connection cannot starve it) and asks ``SELECT 1`` every
    ``seconds / RENEWALS_PER_LEASE``. An answer extends the lease to ``seconds`` after
    it arrived; a failure drops the lease at once; a probe that hangs (a store that no
    longer answers at all) lets the lease run out.
    """

    def __init__(self, gateway: Gateway, *, seconds: float) -> None:
        self.gateway = gateway
        self.seconds = seconds
        self.cadence = seconds / RENEWALS_PER_LEASE
        self._connection: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _probe(self) -> float | None:
        """The monotonic time the store answered, or None if it failed."""
        try:
            if self._connection is None:
                connection = self.gateway.engine.raw_connection()
                connection.detach()  # its own connection: never lent to requests
                self._connection = connection
            cursor = self._connection.cursor()
            try:
                cursor.execute("SELECT 1")
                cursor.fetchall()
            finally:
                cursor.close()
            self._connection.rollback()
        except Exception:  # any failure to reach the store means "not reachable"
            self._discard()
            return None
        return time.monotonic()

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def renew(self) -> bool:
        """Probe once: renew the lease if the store answered, else drop it."""
        answered_at = self._probe()
        if answered_at is None:
            self.gateway.hub.drop_lease()
            return False
        self.gateway.hub.renew_lease(self.seconds, answered_at=answered_at)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.renew()
            self._stop.wait(max(0.0, self.cadence - (time.monotonic() - started)))
        self._discard()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="neurogate-store-lease",
                                        daemon=True)  # a hung probe must not block exit
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and close the lease's connection (unless a probe still hangs on
        it: the daemon thread then closes it when the probe returns)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.cadence + 1.0)
        if self._thread is None or not self._thread.is_alive():
            self._discard()


async def watch(gateway: Gateway, ready: asyncio.Event | None = None) -> None:
    """Keep the store lease; end every subscription once it lapses, and expired ones.

    ``ready`` is set once the first probe has answered (or failed)."""
    hub = gateway.hub
    counter = DeliveryCounter()  # what each app received, counted outside the hot path
    lease = StoreLease(gateway, seconds=gateway.settings.store_lease_seconds)
    try:
        await run_in_threadpool(lease.renew)
        lease.start()
        # The application is built: keep its start-up objects (FastAPI, SQLAlchemy, MNE's
        # filter design, SciPy) out of garbage collections, which otherwise walk them all
        # and stop every stream for ~100 ms.
        gc.freeze()
        if ready is not None:
            ready.set()
        while True:
            if not hub.store_ok():
                hub.fail_closed()
            for sub in hub.expired():
                sub.open = False
                with contextlib.suppress(Exception):
                    await reevaluate(gateway, sub)
            counter.poke(gateway)
            await asyncio.sleep(lease.cadence)
    finally:
        lease.stop()
        counter.close(gateway)


__all__ = ["Refusal", "StoreLease", "decide_grant", "reevaluate", "resolve_pseudonym",
           "spawn_reevaluation", "watch"]
