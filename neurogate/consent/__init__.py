"""The consent core: who is who, what was agreed, what the policy allows, and the ledger.

This package holds no web framework: the gateway calls it with a database session and,
where an action must be provable, the ledger.
"""

from neurogate.consent.access import Principal
from neurogate.consent.concerns import answer_concern, file_concern, list_concerns_for
from neurogate.consent.consents import (
    ask,
    evaluate,
    expire_due,
    grant_consent,
    record_assent,
    revoke_consent,
)
from neurogate.consent.ledger import Ledger
from neurogate.consent.policy import Decision, decide, explain
from neurogate.consent.purposes import load_catalog

__all__ = [
    "Decision",
    "Ledger",
    "Principal",
    "answer_concern",
    "ask",
    "decide",
    "evaluate",
    "expire_due",
    "explain",
    "file_concern",
    "grant_consent",
    "list_concerns_for",
    "load_catalog",
    "record_assent",
    "revoke_consent",
]
