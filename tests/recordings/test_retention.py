"""Retention: which purposes are recorded, for how long, and a sweeper that deletes
exactly what is due as the clock moves."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from neurogate.consent.models import Consent, LedgerLeaf, Recording, Subject
from neurogate.errors import ValidationError
from neurogate.gateway import recording
from neurogate.gateway.state import Gateway
from neurogate.recordings import Keyring, SegmentStore, load_rules, parse_rules, write_segment
from tests.recordings.conftest import add_recording, add_subject, samples

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _left(gateway: Gateway) -> set[str]:
    with gateway.transaction() as session:
        return set(session.exec(select(Recording.id)).all())


def test_shipped_rules_record_only_purposes_that_keep_data() -> None:
    """Clinical monitoring and research are recorded; live-only purposes are not."""
    rules = load_rules()
    assert rules.records("clinical_monitoring") and rules.records("research_noncommercial")
    assert not rules.records("neurofeedback") and not rules.records("neuromarketing")


def test_children_outside_therapy_and_jurisdictions_get_shorter_retention() -> None:
    """A child's research recording is kept 30 days, not 730; a jurisdiction's cap wins."""
    rules = parse_rules('[defaults]\nchild_days = 30\nafter_revocation_days = 10\n'
                        '[purpose.research_noncommercial]\nrecord = true\n'
                        'delete_on_revocation = true\n'
                        '[jurisdiction.US-CA]\nmax_days = 90\n')
    adult = Subject(pseudonym="a", date_of_birth=date(1990, 1, 1))
    child = Subject(pseudonym="c", date_of_birth=date(2016, 1, 1))
    californian = Subject(pseudonym="x", date_of_birth=date(1990, 1, 1), jurisdiction="US-CA")
    research = "research_noncommercial"
    assert rules.keep_until(purpose_id=research, subject=adult, start=T0) == \
        T0 + timedelta(days=730)
    assert rules.keep_until(purpose_id=research, subject=child, start=T0) == \
        T0 + timedelta(days=30)
    assert rules.keep_until(purpose_id="clinical_monitoring", subject=child, start=T0) == \
        T0 + timedelta(days=30)  # therapeutic: the purpose's own 30 days
    assert rules.keep_until(purpose_id=research, subject=californian, start=T0) == \
        T0 + timedelta(days=90)


def test_rules_name_an_unknown_purpose() -> None:
    """A purpose missing from the catalog is refused by name."""
    with pytest.raises(ValidationError, match="purpose.dreams names no purpose"):
        parse_rules("[defaults]\nchild_days = 1\nafter_revocation_days = 1\n"
                    "[purpose.dreams]\nrecord = true\ndelete_on_revocation = true\n")


def test_sweeper_deletes_exactly_what_is_due(gateway: Gateway, store: SegmentStore,
                                              keyring: Keyring) -> None:
    """Moving the clock: retention ends, then revocation's 10 days; each deletion is
    one ledger leaf and its files go."""
    subject_id, clinical = add_subject(gateway)
    _, research = add_subject(gateway, purpose="research_noncommercial")
    old = add_recording(gateway, subject_id, clinical, started=T0, keep_days=30)
    newer = add_recording(gateway, subject_id, clinical, started=T0 + timedelta(days=5),
                          keep_days=30)
    with gateway.transaction() as session:
        research_subject = session.get(Consent, research).subject_id  # type: ignore[union-attr]
    revoked = add_recording(gateway, research_subject, research, started=T0, keep_days=730)
    with gateway.transaction() as session:
        row = session.get(Recording, old)
        write_segment(session=session, store=store, keyring=keyring, recording=row,  # type: ignore[arg-type]
                      index=0, segment=samples(0, 10))
        consent = session.get(Consent, research)
        assert consent is not None
        consent.status, consent.revoked_at = "revoked", T0 + timedelta(days=22)
        session.add(consent)
    assert (store.root / old).exists()
    assert recording.sweep_retention(gateway, now=T0 + timedelta(days=29)) == 0
    assert _left(gateway) == {old, newer, revoked}
    assert recording.sweep_retention(gateway, now=T0 + timedelta(days=30)) == 1
    assert _left(gateway) == {newer, revoked}
    assert not (store.root / old).exists()
    assert recording.sweep_retention(gateway, now=T0 + timedelta(days=31, hours=23)) == 0
    assert recording.sweep_retention(gateway, now=T0 + timedelta(days=32)) == 1  # 22 + 10
    assert _left(gateway) == {newer}
    assert recording.sweep_retention(gateway, now=T0 + timedelta(days=35)) == 1
    assert _left(gateway) == set()
    with gateway.transaction() as session:
        leaves = [leaf for leaf in session.exec(select(LedgerLeaf)).all()
                  if leaf.entry and b"recording.delete" in leaf.entry]
    assert len(leaves) == 3
    assert sum(b'"reason_code":"revocation"' in leaf.entry for leaf in leaves) == 1  # type: ignore[operator]
