"""Governed egress: the decision taken when an app subscribes, and keeping it honest.

``decide_grant`` runs the full policy for every product of the purpose. After any commit
that changed consent for a subject or an app, ``reevaluate`` decides again for the
subscriptions it paused: they reopen if still allowed, else they get ``revoked`` and
close. ``watch`` renews the store lease while the consent store answers and ends
subscriptions whose consent ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import text

from neurogate.consent import access
from neurogate.consent.consents import evaluate
from neurogate.consent.models import App, Subject
from neurogate.consent.policy import explain
from neurogate.consent.purposes import load_catalog
from neurogate.errors import NeurogateError, StorageError, not_found
from neurogate.gateway.state import Gateway
from neurogate.gateway.streams import Grant, Subscription, epoch_seconds
from neurogate.signal import Resolution

log = logging.getLogger("neurogate.egress")
PROBE_SECONDS = 0.5


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
        for product in purpose.products:
            decision = evaluate(session=session, subject=subject, app=app,
                                purpose_id=purpose.id, product=product)
            if decision.allowed and decision.constraints is not None:
                res = decision.constraints.resolution[product]
                allowed[product] = Resolution(res.window_s, res.output_rate_hz, res.channels)
                valid_until = epoch_seconds(decision.constraints.valid_until)
            else:
                for reason, sentence in zip(decision.reasons, explain(decision, language),
                                            strict=False):
                    if reason not in reasons:
                        reasons.append(reason)
                        explanations.append(sentence)
    if not allowed:
        return Refusal(tuple(reasons), tuple(explanations))
    return Grant(allowed, valid_until, tuple(reasons), tuple(explanations))


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


def probe_store(gateway: Gateway) -> bool:
    """Whether the consent store answers a trivial query."""
    try:
        with gateway.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the store means "not reachable"
        return False
    return True


async def watch(gateway: Gateway) -> None:
    """Renew the store lease while the store answers; end expired subscriptions."""
    hub = gateway.hub
    while True:
        started = asyncio.get_running_loop().time()
        ok = await run_in_threadpool(probe_store, gateway)
        if ok:
            hub.renew_lease()
        elif not hub.store_ok():
            hub.fail_closed()
        for sub in hub.expired():
            sub.open = False
            with contextlib.suppress(Exception):
                await reevaluate(gateway, sub)
        elapsed = asyncio.get_running_loop().time() - started
        await asyncio.sleep(max(0.05, PROBE_SECONDS - elapsed))


__all__ = ["Refusal", "decide_grant", "probe_store", "reevaluate", "resolve_pseudonym",
           "spawn_reevaluation", "watch"]
