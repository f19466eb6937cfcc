"""Policy: decision latency cold (a full Cedar evaluation) and warm (the per-chunk check).

*Cold* is `neurogate.consent.policy.decide`: facts to a Cedar request, evaluated against
every policy, for one product (and, when allowed, the purpose's other products), as the
gateway does for each product when an app subscribes and after every consent change.
The very first call also parses and validates the policy files; it is reported apart.
*Warm* is `StreamHub.may_deliver`, the check the gateway makes for every chunk and every
subscription: an open flag, the consent's end, the store lease.
"""

from __future__ import annotations

import time
import timeit
from datetime import UTC, date, datetime, timedelta
from typing import Any

from neurogate.bench._stats import summary


def _facts() -> tuple[Any, Any, Any, datetime]:
    from neurogate.consent.policy import AppFacts, ConsentFacts, SubjectFacts

    now = datetime.now(UTC)
    subject = SubjectFacts(date_of_birth=date(1990, 1, 1))
    app = AppFacts(app_id="bench-app", commercial=False,
                   declared_purposes=("clinical_monitoring",))
    consent = ConsentFacts(consent_id="bench-consent", purpose_id="clinical_monitoring",
                           products=("raw", "filtered", "band_power", "signal_quality"),
                           granted_capacity="self", granted_at=now - timedelta(days=1),
                           valid_from=now - timedelta(days=1),
                           valid_until=now + timedelta(days=300))
    return subject, app, consent, now


def _decisions(iterations: int) -> dict[str, Any]:
    from neurogate.consent.policy import decide

    subject, app, consent, now = _facts()

    def allow() -> Any:
        return decide(subject=subject, app=app, purpose_id="clinical_monitoring",
                      product="filtered", consents=[consent], now=now)

    def deny() -> Any:
        return decide(subject=subject, app=app, purpose_id="clinical_monitoring",
                      product="filtered", consents=[], now=now)

    began = time.perf_counter()
    first = allow()
    first_ms = (time.perf_counter() - began) * 1e3
    out: dict[str, Any] = {"first_call_ms": round(first_ms, 3), "first_allowed": first.allowed}
    for name, func in (("allow", allow), ("deny", deny)):
        times = []
        for _ in range(iterations):
            t = time.perf_counter()
            func()
            times.append((time.perf_counter() - t) * 1e3)
        out[f"{name}_ms"] = summary(times, digits=3)
    return out


def _per_chunk_check(number: int = 200_000) -> dict[str, Any]:
    from neurogate.gateway.streams import Grant, StreamHub, Subscription
    from neurogate.signal import Resolution

    hub = StreamHub()
    hub.renew_lease()
    sub = Subscription(id="bench", app_id="app", subject_id="subject", pseudonym="p",
                       purpose_id="clinical_monitoring", binary=True,
                       grant=Grant({"filtered": Resolution(0.004, 250.0)}, time.time() + 3600))
    if not hub.may_deliver(sub):
        msg = "The per-chunk check refused an open, valid subscription; nothing to time."
        raise RuntimeError(msg)
    runs = timeit.repeat(lambda: hub.may_deliver(sub), number=number, repeat=5)
    per_call = [r / number * 1e9 for r in runs]
    return {"ns_per_call": summary(per_call, digits=1), "calls_per_repeat": number}


def run_policy(iterations: int) -> dict[str, Any]:
    """Cold and warm decision latency, measured in this process."""
    cold = _decisions(iterations)
    warm = _per_chunk_check()
    p50_ms = cold["allow_ms"]["p50"]
    warm_ns = warm["ns_per_call"]["p50"]
    return {
        "cold": {"what": "neurogate.consent.policy.decide (Cedar, one product + the "
                         "purpose's other consented products when allowed)", **cold},
        "warm": {"what": "StreamHub.may_deliver (per chunk and subscription)", **warm},
        "cold_over_warm": round(p50_ms * 1e6 / warm_ns) if p50_ms and warm_ns else None,
    }


__all__ = ["run_policy"]
