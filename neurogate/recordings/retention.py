"""Which purposes are recorded, how long recordings are kept, and the sweeper that
deletes what is due (``retention.toml`` beside this module holds the rules)."""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from typing import Any, NoReturn

from sqlmodel import Session, col, or_, select

from neurogate.consent.jurisdictions import age_on, get_profile
from neurogate.consent.ledger import Ledger
from neurogate.consent.models import Consent, Recording, Subject, utcnow
from neurogate.consent.purposes import load_catalog
from neurogate.errors import ValidationError

_SOURCE = "retention.toml"


@dataclass(frozen=True)
class PurposeRule:
    record: bool
    delete_on_revocation: bool


@dataclass(frozen=True)
class RetentionRules:
    child_days: int
    after_revocation_days: int
    purposes: Mapping[str, PurposeRule]
    jurisdiction_max_days: Mapping[str, int] = field(default_factory=dict)

    def records(self, purpose_id: str) -> bool:
        """Whether what flows for ``purpose_id`` is recorded."""
        rule = self.purposes.get(purpose_id)
        return bool(rule and rule.record and load_catalog().get(purpose_id).retention_days)

    def keep_until(self, *, purpose_id: str, subject: Subject, start: datetime) -> datetime:
        """When a recording of ``subject`` for ``purpose_id`` started at ``start`` is due."""
        purpose = load_catalog().get(purpose_id)
        days = purpose.retention_days
        profile = get_profile(subject.jurisdiction)
        if (subject.date_of_birth is not None and not purpose.flags.therapeutic
                and profile.is_minor(age_on(subject.date_of_birth, start.date()))):
            days = min(days, self.child_days)
        if subject.jurisdiction in self.jurisdiction_max_days:
            days = min(days, self.jurisdiction_max_days[subject.jurisdiction])
        return start + timedelta(days=days)


def _invalid(where: str, problem: str) -> NoReturn:
    msg = f"Invalid {_SOURCE}: {where} {problem}"
    raise ValidationError(msg, field=where)


def _days(table: Mapping[str, Any], key: str, where: str) -> int:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _invalid(f"{where}.{key}", f"must be a whole number of days >= 0, but got "
                                         f"{value!r}.")
    return value


def parse_rules(text: str) -> RetentionRules:
    """Parse and check the rules (every purpose named must be in the catalog)."""
    data = tomllib.loads(text)
    defaults = data.get("defaults", {})
    catalog = load_catalog()
    purposes: dict[str, PurposeRule] = {}
    for purpose_id, table in data.get("purpose", {}).items():
        if purpose_id not in catalog.ids():
            _invalid(f"purpose.{purpose_id}", f"names no purpose of the catalog; "
                                                    f"allowed are {', '.join(catalog.ids())}.")
        flags = {k: table.get(k) for k in ("record", "delete_on_revocation")}
        for key, value in flags.items():
            if not isinstance(value, bool):
                _invalid(f"purpose.{purpose_id}.{key}",
                               f"must be true or false, but got {value!r}.")
        purposes[purpose_id] = PurposeRule(**flags)  # type: ignore[arg-type]
    limits = {code: _days(table, "max_days", f"jurisdiction.{code}")
              for code, table in data.get("jurisdiction", {}).items()}
    for code in limits:
        get_profile(code)  # an unknown code raises, naming the known ones
    return RetentionRules(child_days=_days(defaults, "child_days", "defaults"),
                          after_revocation_days=_days(defaults, "after_revocation_days",
                                                      "defaults"),
                          purposes=purposes, jurisdiction_max_days=limits)


@functools.cache
def load_rules() -> RetentionRules:
    """The shipped rules, read once per process."""
    return parse_rules(resources.files("neurogate.recordings").joinpath(_SOURCE)
                       .read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Due:
    recording_id: str
    subject_id: str
    reason: str  # "retention" | "revocation"


def schedule_after_revocation(*, session: Session, rules: RetentionRules,
                              now: datetime) -> int:
    """Give recordings whose consent ended (and whose purpose says so) a deletion date
    ``after_revocation_days`` after the consent ended. Returns how many were scheduled."""
    rows = session.exec(
        select(Recording, Consent).where(Recording.consent_id == Consent.id,
                                         col(Recording.delete_after).is_(None),
                                         Consent.status != "active")
    ).all()
    scheduled = 0
    for recording, consent in rows:
        rule = rules.purposes.get(recording.purpose_id)
        if rule is None or not rule.delete_on_revocation:
            continue
        ended = consent.revoked_at or consent.expired_at or now
        recording.delete_after = ended + timedelta(days=rules.after_revocation_days)
        session.add(recording)
        scheduled += 1
    return scheduled


def due(session: Session, now: datetime) -> list[Due]:
    """Every recording whose retention ran out or whose deletion date has come."""
    rows = session.exec(
        select(Recording).where(or_(col(Recording.keep_until) <= now,
                                    col(Recording.delete_after) <= now))
        .order_by(col(Recording.started_at))
    ).all()
    return [Due(r.id, r.subject_id,
                "retention" if r.keep_until <= now else "revocation") for r in rows]


def sweep(*, session: Session, ledger: Ledger, delete: Callable[[Session, str], int],
          rules: RetentionRules | None = None, now: datetime | None = None) -> list[Due]:
    """Schedule deletions after revocation, then delete (with ``delete(session, id)``,
    which returns the segments removed) every recording that is due, one ledger leaf each."""
    now = now or utcnow()
    rules = rules or load_rules()
    schedule_after_revocation(session=session, rules=rules, now=now)
    session.flush()
    found = due(session, now)
    for item in found:
        segments = delete(session, item.recording_id)
        ledger.append(session, action="recording.delete", at=now, concerns=item.subject_id,
                      recording=item.recording_id, segments=segments,
                      reason_code=item.reason)
    return found


__all__ = ["Due", "PurposeRule", "RetentionRules", "due", "load_rules", "parse_rules",
           "schedule_after_revocation", "sweep"]
