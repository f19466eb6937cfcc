"""Policy decisions: may app X receive product P for subject S, and why not?"""

from __future__ import annotations

from fastapi import APIRouter

from neurogate.consent import consents
from neurogate.consent.policy import explain
from neurogate.consent.schemas import DecisionPublic, DecisionRequest
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep
from neurogate.gateway.routes._params import STRICT_QUERY

router = APIRouter(prefix="/v1/decisions", tags=["decisions"], dependencies=[STRICT_QUERY])


@router.post("")
def create_decision(body: DecisionRequest, gw: GatewayDep,
                    principal: CurrentPrincipal) -> DecisionPublic:
    """Ask the policy; the answer names its reasons and, if allowed, its constraints."""
    with gw.transaction() as session:
        decision = consents.ask(
            session=session, ledger=gw.ledger, principal=principal, app_id=body.app_id,
            subject=body.subject, purpose_id=body.purpose_id, product=body.product,
        )
    constraints = None
    if decision.constraints is not None:
        c = decision.constraints
        constraints = {
            "products": list(c.products),
            "resolution": {
                name: {"window_s": r.window_s, "output_rate_hz": r.output_rate_hz,
                       "channels": r.channels}
                for name, r in c.resolution.items()
            },
            "retention_days": c.retention_days,
            "valid_until": c.valid_until.isoformat(),
        }
    return DecisionPublic(
        allowed=decision.allowed,
        reasons=list(decision.reasons),
        explanations=explain(decision, body.language),
        constraints=constraints,
        consent_id=decision.consent_id if principal.kind != "app" else None,
        age=decision.age if principal.kind != "app" else None,
    )
