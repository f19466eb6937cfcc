"""Abuse counters: events counted per window, flushed as one ledger leaf per window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from neurogate.consent.abuse import (
    ABUSE_ACTION,
    account_key,
    flush,
    pending,
    record,
    window_of,
)
from neurogate.consent.models import AbuseCount, LedgerLeaf
from neurogate.errors import ValidationError
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings

T0 = datetime(2026, 12, 1, 21, 0, 5, tzinfo=UTC)


@pytest.fixture
def gateway(db_url: str, tmp_path: Path) -> Gateway:
    """A gateway over an empty, migrated database (SQLite or PostgreSQL)."""
    return build_gateway(Settings(data_dir=tmp_path, database_url=db_url, environment="test"))


def _entries(gateway: Gateway) -> list[dict[str, object]]:
    with gateway.transaction() as session:
        leaves = session.exec(select(LedgerLeaf).order_by(LedgerLeaf.seq)).all()
        return [json.loads(bytes(leaf.entry)) for leaf in leaves]


def test_abuse_many_events_make_one_leaf_per_window(gateway: Gateway) -> None:
    """200 refusals of one app in one window become a single leaf with count 200."""
    for number in range(200):
        with gateway.transaction() as session:
            record(session=session, kind="stream.deny", key="app_1",
                   at=T0 + timedelta(milliseconds=number))
    with gateway.transaction() as session:
        assert pending(session=session, kind="stream.deny", key="app_1") == 200
        assert flush(session=session, ledger=gateway.ledger, now=T0 + timedelta(minutes=5)) == 1
    entries = _entries(gateway)
    assert len(entries) == 1
    assert entries[0]["action"] == ABUSE_ACTION
    assert entries[0]["kind"] == "stream.deny"
    assert entries[0]["key"] == "app_1"
    assert entries[0]["count"] == 200
    assert entries[0]["window"] == "2026-12-01T21:00:00+00:00/2026-12-01T21:01:00+00:00"
    with gateway.transaction() as session:
        assert pending(session=session) == 0
        assert flush(session=session, ledger=gateway.ledger, now=T0 + timedelta(minutes=5)) == 0
    assert len(_entries(gateway)) == 1


def test_abuse_open_window_waits_unless_everything(gateway: Gateway) -> None:
    """A window still open is not flushed, except at shutdown (``everything=True``)."""
    with gateway.transaction() as session:
        record(session=session, kind="auth.login_failed", key="acct_x", at=T0)
        assert flush(session=session, ledger=gateway.ledger, now=T0 + timedelta(seconds=10)) == 0
    assert _entries(gateway) == []
    with gateway.transaction() as session:
        assert flush(session=session, ledger=gateway.ledger, now=T0, everything=True) == 1
    assert [e["count"] for e in _entries(gateway)] == [1]


def test_abuse_keys_kinds_and_windows_are_counted_apart(gateway: Gateway) -> None:
    """Each (kind, key, window) is its own row and its own leaf."""
    events = [("stream.deny", "app_1", T0), ("stream.deny", "app_1", T0),
              ("stream.deny", "app_2", T0), ("stream.throttled", "app_1", T0),
              ("stream.deny", "app_1", T0 + timedelta(seconds=60))]
    with gateway.transaction() as session:
        for kind, key, at in events:
            record(session=session, kind=kind, key=key, at=at)
    with gateway.transaction() as session:
        rows = session.exec(select(AbuseCount)).all()
        assert sorted((r.kind, r.key, r.count) for r in rows) == [
            ("stream.deny", "app_1", 1), ("stream.deny", "app_1", 2),
            ("stream.deny", "app_2", 1), ("stream.throttled", "app_1", 1)]
        assert flush(session=session, ledger=gateway.ledger, now=T0 + timedelta(hours=1)) == 4
    assert sorted(e["count"] for e in _entries(gateway)) == [1, 1, 1, 2]


def test_abuse_window_is_aligned_to_the_epoch() -> None:
    """Windows start at whole multiples of their length."""
    assert window_of(T0, 60) == datetime(2026, 12, 1, 21, 0, 0, tzinfo=UTC)
    assert window_of(T0, 3600) == datetime(2026, 12, 1, 21, 0, 0, tzinfo=UTC)
    assert window_of(T0 + timedelta(seconds=55), 60) == datetime(2026, 12, 1, 21, 1,
                                                                   tzinfo=UTC)


def test_abuse_account_key_is_a_keyed_hash_of_the_normalised_name() -> None:
    """The key hides the name, depends on the secret, and ignores NFKC variants."""
    key = account_key("secret-1", "guard1")
    assert key.startswith("acct_") and len(key) == 5 + 32
    assert "guard1" not in key
    assert account_key("secret-1", "ｇｕａｒｄ１") == key  # full-width forms
    assert account_key("secret-1", " guard1 ") == key
    assert account_key("secret-2", "guard1") != key
    assert account_key("secret-1", "guard2") != key


@pytest.mark.parametrize(("kind", "key", "message"), [
    ("login.nope", "k", r"Invalid value for the 'kind' parameter\. Allowed values are "
                        r"'auth\.login_failed', .* but got 'login\.nope' instead\."),
    ("stream.deny", "", r"Invalid value for the 'key' parameter\. It must have 1 to 128 "
                        r"characters, but has 0\."),
    ("stream.deny", "k" * 129, r"It must have 1 to 128 characters, but has 129\."),
])
def test_abuse_record_refuses_unknown_kinds_and_bad_keys(
    gateway: Gateway, kind: str, key: str, message: str
) -> None:
    """Only the known kinds, with keys of 1 to 128 characters, are counted."""
    with gateway.transaction() as session, pytest.raises(ValidationError, match=message):
        record(session=session, kind=kind, key=key)



def test_abuse_migration_0003_adds_and_removes_only_its_table(db_url: str) -> None:
    """Revision 0003 creates ``abuse_counts`` on top of 0002 and its downgrade drops it."""
    from alembic import command

    from neurogate.consent.db import alembic_config, get_engine, upgrade

    def tables() -> set[str]:
        return set(sa.inspect(get_engine(db_url)).get_table_names())

    upgrade(db_url, "0002")
    before = tables()
    assert "abuse_counts" not in before
    upgrade(db_url, "0003")
    assert tables() == before | {"abuse_counts"}
    columns = {c["name"] for c in sa.inspect(get_engine(db_url)).get_columns("abuse_counts")}
    assert columns == {"kind", "key", "window_start", "window_seconds", "count"}
    command.downgrade(alembic_config(db_url), "0002")
    assert tables() == before
