"""Abuse counted in windows and written to the ledger in aggregate, never per attempt.

Failed logins and refused subscriptions must be provable, yet an attacker must not be
able to grow the permanent ledger (or make the gateway sign checkpoints) at will. So
each event only increments a row of ``abuse_counts`` keyed by (kind, key, window):

* ``kind`` names what happened (one of :data:`ABUSE_KINDS`, e.g. ``"stream.deny"``);
* ``key`` says who caused it, as an opaque string: an app's id for refused
  subscriptions, and for logins :func:`account_key`, an HMAC of the username under the
  gateway's secret, computed the same way whether the account exists or not (a leaf
  must not tell a reader of the ledger which usernames are real);
* ``window_start`` is the start of the fixed window (``window_seconds`` long, aligned to
  the epoch) the event fell in.

:func:`flush` turns every window that has closed into one ``abuse.aggregate`` leaf
carrying ``kind``, ``key``, ``count`` and ``window`` (an ISO 8601 interval), and deletes
the row. The gateway flushes periodically and once more at shutdown (then open windows
too, ``everything=True``). So the ledger grows by at most one leaf per (kind, key,
window), however many attempts there were; rate limits (``neurogate.gateway.throttle``)
bound the rest.

Use, inside the transaction that refused the request::

    record(session=session, kind="stream.deny", key=app.id)
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, func, select

from neurogate.consent.models import AbuseCount, utcnow
from neurogate.errors import ValidationError

ABUSE_ACTION = "abuse.aggregate"
# Every kind of abuse counted; anything else is a programming error.
ABUSE_KINDS = frozenset(
    {
        "auth.login_failed",  # a wrong username or password
        "auth.login_throttled",  # an attempt refused by the login throttle
        "stream.deny",  # a subscription the policy refused
        "stream.throttled",  # a subscribe attempt refused by the subscribe throttle
    }
)
DEFAULT_WINDOW_SECONDS = 60
MAX_KEY_LENGTH = 128
# Rows flushed per call: bounds one flush's transaction; the rest wait for the next.
FLUSH_BATCH = 500


def account_key(secret: str | bytes, username: str) -> str:
    """The aggregation key of a login name: HMAC-SHA256 of its NFKC form, hex, 128 bits.

    The same for a known and an unknown username, and not reversible without
    ``secret``, so the ledger shows neither the name nor whether its account exists.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    name = unicodedata.normalize("NFKC", username).strip()
    return "acct_" + hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:32]


def window_of(at: datetime, window_seconds: int) -> datetime:
    """The start of the ``window_seconds`` window (aligned to the epoch) holding ``at``."""
    if at.tzinfo is None:
        msg = "Naive datetimes are not counted; give a timezone-aware UTC time."
        raise ValueError(msg)
    seconds = int(at.timestamp()) // window_seconds * window_seconds
    return datetime.fromtimestamp(seconds, UTC)


def _check(kind: str, key: str, window_seconds: int, amount: int) -> None:
    if kind not in ABUSE_KINDS:
        allowed = ", ".join(repr(k) for k in sorted(ABUSE_KINDS))
        msg = (f"Invalid value for the 'kind' parameter. Allowed values are {allowed}, "
               f"but got {kind[:80]!r} instead.")
        raise ValidationError(msg, field="kind")
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        msg = (f"Invalid value for the 'key' parameter. It must have 1 to "
               f"{MAX_KEY_LENGTH} characters, but has {len(key)}.")
        raise ValidationError(msg, field="key")
    if window_seconds < 1:
        msg = (f"Invalid value for the 'window_seconds' parameter. It must be at least 1, "
               f"but got {window_seconds} instead.")
        raise ValidationError(msg, field="window_seconds")
    if amount < 1:
        msg = (f"Invalid value for the 'amount' parameter. It must be at least 1, but got "
               f"{amount} instead.")
        raise ValidationError(msg, field="amount")


def record(*, session: Session, kind: str, key: str, at: datetime | None = None,
           window_seconds: int = DEFAULT_WINDOW_SECONDS, amount: int = 1) -> None:
    """Count ``amount`` events of ``kind`` by ``key`` in the window holding ``at`` (now).

    One upsert inside ``session``'s transaction; no ledger leaf is written here.
    """
    _check(kind, key, window_seconds, amount)
    start = window_of(at or utcnow(), window_seconds)
    table: Any = AbuseCount.__table__  # type: ignore[attr-defined]
    values = {"kind": kind, "key": key, "window_start": start,
              "window_seconds": window_seconds, "count": amount}
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        statement = insert(table).values(**values).on_conflict_do_update(
            index_elements=["kind", "key", "window_start"],
            set_={"count": table.c.count + amount},
        )
        session.execute(statement)
        return
    row = session.get(AbuseCount, (kind, key, start))  # pragma: no cover - other engines
    if row is None:  # pragma: no cover
        session.add(AbuseCount(**values))
    else:  # pragma: no cover
        row.count += amount
        session.add(row)


def pending(*, session: Session, kind: str | None = None, key: str | None = None) -> int:
    """Events counted but not yet flushed to the ledger (optionally of one kind or key)."""
    query = select(func.coalesce(func.sum(AbuseCount.count), 0))
    if kind is not None:
        query = query.where(AbuseCount.kind == kind)
    if key is not None:
        query = query.where(AbuseCount.key == key)
    return int(session.exec(query).one())


def _interval(start: datetime, window_seconds: int) -> str:
    end = start + timedelta(seconds=window_seconds)
    return f"{start.isoformat(timespec='seconds')}/{end.isoformat(timespec='seconds')}"


def flush(*, session: Session, ledger: Any, now: datetime | None = None,
          everything: bool = False) -> int:
    """Write one ``abuse.aggregate`` leaf per closed window and delete its row.

    ``everything`` flushes open windows too (at shutdown). A row that another
    transaction changed meanwhile is left for the next flush, so no count is lost or
    written twice when several gateway nodes flush the same table. Returns the number
    of leaves written. ``ledger`` is the gateway's :class:`~neurogate.consent.ledger.Ledger`.
    """
    now = now or utcnow()
    rows = session.exec(
        select(AbuseCount.kind, AbuseCount.key, AbuseCount.window_start,
               AbuseCount.window_seconds, AbuseCount.count)
        .order_by(col(AbuseCount.window_start), col(AbuseCount.kind), col(AbuseCount.key))
        .limit(FLUSH_BATCH)
    ).all()
    written = 0
    for kind, key, start, window_seconds, count in rows:
        if not everything and start + timedelta(seconds=window_seconds) > now:
            continue
        gone = session.execute(
            delete(AbuseCount).where(
                col(AbuseCount.kind) == kind, col(AbuseCount.key) == key,
                col(AbuseCount.window_start) == start, col(AbuseCount.count) == count,
            )
        )
        if gone.rowcount != 1:  # type: ignore[attr-defined]
            continue
        ledger.append(session, action=ABUSE_ACTION, kind=kind, key=key, count=count,
                      window=_interval(start, window_seconds))
        written += 1
    return written


__all__ = [
    "ABUSE_ACTION",
    "ABUSE_KINDS",
    "DEFAULT_WINDOW_SECONDS",
    "account_key",
    "flush",
    "pending",
    "record",
    "window_of",
]
