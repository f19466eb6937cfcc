"""What each app received of a subject's data: per-day delivery counters and the ledger.

The gateway counts, per subscription, the messages it delivered and dropped and how long
it was live, and adds them here a few seconds at a time (``record_delivery``): counts per
subject, app, purpose and UTC day, never signal data. ``activity_for`` joins those counters
with the ledger's stream leaves (when each app connected and left, and what it was refused)
into what a subject or guardian reads on the portal's activity page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from neurogate.consent import access
from neurogate.consent.access import Principal
from neurogate.consent.ledger import Ledger
from neurogate.consent.models import App, Delivery, Subject, utcnow
from neurogate.errors import ValidationError

MAX_DAYS = 92
"""The longest span, in days, one activity report covers."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DayCount:
    """What one app received for one purpose on one UTC day."""

    day: date
    app_id: str
    purpose_id: str
    messages: int
    dropped: int
    seconds: float


@dataclass(frozen=True)
class StreamSession:
    """One stream from the ledger: an app's subscription, or the subject's device sending."""

    stream: str
    app_id: str | None
    device_id: str | None
    purpose_id: str | None
    started_at: datetime | None
    stopped_at: datetime | None
    messages: int | None  # app: messages delivered; device: frames received
    samples: int | None  # device only: samples per channel received
    dropped: int | None
    ledger_index: int


@dataclass(frozen=True)
class RefusedRequest:
    """An app asked for a stream and the policy said no."""

    app_id: str | None
    purpose_id: str | None
    at: datetime | None
    reasons: tuple[str, ...]
    ledger_index: int


@dataclass
class Activity:
    """Everything the activity page shows about one subject, over ``first_day..last_day``."""

    subject_id: str
    first_day: date
    last_day: date
    counts: list[DayCount] = field(default_factory=list)
    sessions: list[StreamSession] = field(default_factory=list)
    refusals: list[RefusedRequest] = field(default_factory=list)
    app_names: dict[str, str] = field(default_factory=dict)

    @property
    def days(self) -> list[date]:
        """Every day of the span, oldest first."""
        span = (self.last_day - self.first_day).days
        return [self.first_day + timedelta(days=i) for i in range(span + 1)]

    @property
    def app_ids(self) -> list[str]:
        """Apps that received anything in the span, by name."""
        ids = {c.app_id for c in self.counts if c.messages}
        return sorted(ids, key=lambda a: (self.app_names.get(a, a), a))

    def messages_by_app(self) -> dict[str, dict[date, int]]:
        """Messages per app per day (every day of the span present, zero if none)."""
        table = {app: dict.fromkeys(self.days, 0) for app in self.app_ids}
        for count in self.counts:
            if count.app_id in table and count.day in table[count.app_id]:
                table[count.app_id][count.day] += count.messages
        return table

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form (for the subject's export)."""
        return {
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "deliveries": [
                {"day": c.day.isoformat(), "app": c.app_id,
                 "app_name": self.app_names.get(c.app_id), "purpose": c.purpose_id,
                 "messages": c.messages, "dropped": c.dropped, "seconds": round(c.seconds, 3)}
                for c in self.counts
            ],
            "streams": [
                {"stream": s.stream, "app": s.app_id, "device": s.device_id,
                 "purpose": s.purpose_id,
                 "started_at": s.started_at.isoformat() if s.started_at else None,
                 "stopped_at": s.stopped_at.isoformat() if s.stopped_at else None,
                 "messages": s.messages, "samples": s.samples, "dropped": s.dropped,
                 "ledger_index": s.ledger_index}
                for s in self.sessions
            ],
            "refused": [
                {"app": r.app_id, "purpose": r.purpose_id,
                 "at": r.at.isoformat() if r.at else None, "reasons": list(r.reasons),
                 "ledger_index": r.ledger_index}
                for r in self.refusals
            ],
        }


def _check_count(name: str, value: float) -> None:
    if value < 0:
        msg = (f"Invalid value for the {name!r} parameter. It must be zero or more, but got "
               f"{value!r} instead.")
        raise ValidationError(msg, field=name)


@dataclass(frozen=True)
class DeliveryCount:
    """What one subscription delivered since it was last counted, for one UTC day."""

    subject_id: str
    app_id: str
    purpose_id: str
    day: date
    messages: int
    dropped: int = 0
    seconds: float = 0.0


def record_delivery(*, session: Session, subject_id: str, app_id: str, purpose_id: str,
                    day: date, messages: int, dropped: int = 0, seconds: float = 0.0) -> None:
    """Add what one subscription delivered since it was last counted to the day's row."""
    record_deliveries(session, [DeliveryCount(subject_id, app_id, purpose_id, day, messages,
                                              dropped, seconds)])


def record_deliveries(session: Session, counts: Iterable[DeliveryCount]) -> None:
    """Add each count to its (subject, app, purpose, day) row, in one statement.

    Safe when several gateway nodes count at once: rows are created or incremented by
    ``INSERT ... ON CONFLICT DO UPDATE``. Counts that arrive for a subject already erased
    are dropped: erasure leaves no activity behind. One statement for every count of a
    flush, because a statement per subscription cost more than the counting saves.
    """
    totals: dict[tuple[str, str, str, date], list[float]] = {}
    for count in counts:
        _check_count("messages", count.messages)
        _check_count("dropped", count.dropped)
        _check_count("seconds", count.seconds)
        if not (count.messages or count.dropped or count.seconds):
            continue
        key = (count.subject_id, count.app_id, count.purpose_id, count.day)
        total = totals.setdefault(key, [0, 0, 0.0])  # one row per key in one statement
        total[0] += count.messages
        total[1] += count.dropped
        total[2] += count.seconds
    if not totals:
        return
    subject_ids = {key[0] for key in totals}
    present = set(session.exec(select(Subject.id).where(
        col(Subject.id).in_(subject_ids), col(Subject.erased_at).is_(None))).all())
    values = [{"subject_id": s, "app_id": a, "purpose_id": p, "day": d,
               "messages": int(t[0]), "dropped": int(t[1]), "seconds": t[2]}
              for (s, a, p, d), t in totals.items() if s in present]
    if not values:
        return
    table = Delivery.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["subject_id", "app_id", "purpose_id", "day"],
        set_={
            "messages": table.c.messages + statement.excluded.messages,
            "dropped": table.c.dropped + statement.excluded.dropped,
            "seconds": table.c.seconds + statement.excluded.seconds,
        },
    )
    session.execute(statement)


def _at(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def subject_entries(session: Session, ledger: Ledger, subject: Subject
                    ) -> list[tuple[int, dict[str, Any]]]:
    """Every ledger entry about ``subject`` that is still open, as (index, entry), oldest
    first (erased entries are gone: only their opaque leaves remain)."""
    return [(e.seq, json.loads(e.entry)) for e in ledger.entries_for_subject(session, subject.id)
            if e.entry is not None]


def _sessions(entries: Iterable[tuple[int, dict[str, Any]]], first: date, last: date
              ) -> tuple[list[StreamSession], list[RefusedRequest]]:
    started: dict[str, tuple[int, dict[str, Any]]] = {}
    sessions: list[StreamSession] = []
    refusals: list[RefusedRequest] = []

    def in_span(moment: datetime | None) -> bool:
        return moment is not None and first <= moment.date() <= last

    for seq, entry in entries:
        action = entry.get("action")
        if action == "stream.start" and isinstance(entry.get("stream"), str):
            started[entry["stream"]] = (seq, entry)
        elif action == "stream.stop" and isinstance(entry.get("stream"), str):
            begin = started.pop(entry["stream"], None)
            start_at = _at(begin[1].get("at")) if begin else None
            stop_at = _at(entry.get("at"))
            if not (in_span(start_at) or in_span(stop_at)):
                continue
            sessions.append(StreamSession(
                stream=entry["stream"], app_id=entry.get("app"), device_id=entry.get("device"),
                purpose_id=entry.get("purpose"), started_at=start_at, stopped_at=stop_at,
                messages=_int(entry.get("frames")), samples=_int(entry.get("samples")),
                dropped=_int(entry.get("dropped")), ledger_index=seq))
        elif action == "stream.deny" and in_span(_at(entry.get("at"))):
            reasons = entry.get("reasons")
            refusals.append(RefusedRequest(
                app_id=entry.get("app"), purpose_id=entry.get("purpose"),
                at=_at(entry.get("at")),
                reasons=tuple(str(r) for r in reasons) if isinstance(reasons, list) else (),
                ledger_index=seq))
    for stream, (seq, entry) in started.items():  # still live (or the gateway stopped)
        start_at = _at(entry.get("at"))
        if in_span(start_at):
            sessions.append(StreamSession(
                stream=stream, app_id=entry.get("app"), device_id=entry.get("device"),
                purpose_id=entry.get("purpose"), started_at=start_at, stopped_at=None,
                messages=None, samples=None, dropped=None, ledger_index=seq))
    sessions.sort(key=lambda s: (s.started_at or s.stopped_at or _EPOCH,
                                 s.ledger_index), reverse=True)
    refusals.reverse()
    return sessions, refusals


def activity_for(*, session: Session, ledger: Ledger, principal: Principal, subject_id: str,
                 days: int = 14, today: date | None = None) -> Activity:
    """What each app received of a subject's data over the last ``days`` days (the subject,
    a guardian or a clinician in care)."""
    if not 1 <= days <= MAX_DAYS:
        msg = (f"Invalid value for the 'days' parameter. Allowed values are 1 to {MAX_DAYS}, "
               f"but got {days!r} instead.")
        raise ValidationError(msg, field="days")
    subject = access.get_subject(session, principal, subject_id)
    last = today or utcnow().date()
    first = last - timedelta(days=days - 1)
    rows = session.exec(
        select(Delivery).where(
            Delivery.subject_id == subject.id, col(Delivery.day) >= first,
            col(Delivery.day) <= last,
        ).order_by(col(Delivery.day), col(Delivery.app_id), col(Delivery.purpose_id))
    ).all()
    counts = [DayCount(day=r.day, app_id=r.app_id, purpose_id=r.purpose_id,
                       messages=r.messages, dropped=r.dropped, seconds=r.seconds) for r in rows]
    sessions, refusals = _sessions(subject_entries(session, ledger, subject), first, last)
    app_ids = {c.app_id for c in counts} | {s.app_id for s in sessions if s.app_id}
    app_ids |= {r.app_id for r in refusals if r.app_id}
    names = {}
    if app_ids:
        names = dict(session.exec(
            select(App.id, App.name).where(col(App.id).in_(sorted(app_ids)))).all())
    return Activity(subject_id=subject.id, first_day=first, last_day=last, counts=counts,
                    sessions=sessions, refusals=refusals, app_names=names)


__all__ = [
    "MAX_DAYS",
    "Activity",
    "DayCount",
    "RefusedRequest",
    "StreamSession",
    "activity_for",
    "DeliveryCount",
    "record_deliveries",
    "record_delivery",
    "subject_entries",
]
