"""Console summaries: an app's consent counts and a subject's current decisions."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from neurogate.consent import reports
from neurogate.consent.access import Principal
from neurogate.consent.models import Account
from neurogate.errors import NotFoundError
from neurogate.gateway.demo import DemoWorld, seed
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Gateway, DemoWorld]:
    """The demo clinic over an embedded database."""
    gateway = build_gateway(Settings(data_dir=tmp_path, environment="test",
                                     password_hash_time_cost=1, password_hash_memory_kib=1024))
    return gateway, seed(gateway)


def _as(session: Session, username: str) -> Principal:
    account = session.exec(select(Account).where(Account.username == username)).one()
    return Principal(kind="account", id=account.id, role=account.role,
                     subject_id=account.subject_id)


def test_consent_counts_give_numbers_not_people(demo: tuple[Gateway, DemoWorld]) -> None:
    """An app owner gets counts per purpose and state, with no subject named."""
    gateway, world = demo
    with gateway.transaction() as session:
        counts = reports.consent_counts(session=session, principal=_as(session, "apps.owner"),
                                        app_id=world.apps["focus"])
    assert counts == [reports.ConsentCount(purpose_id="neurofeedback", status="active",
                                           count=1)]


def test_consent_counts_refuse_an_app_owner_of_another_app(
    demo: tuple[Gateway, DemoWorld],
) -> None:
    """Someone who does not manage the app is told it does not exist."""
    gateway, world = demo
    with gateway.transaction() as session, pytest.raises(NotFoundError):
        reports.consent_counts(session=session, principal=_as(session, "dr.rivera"),
                               app_id=world.apps["focus"])


def test_current_decisions_name_reasons_for_each_app(demo: tuple[Gateway, DemoWorld]) -> None:
    """A clinician sees, for a child in care, what flows and why the rest does not."""
    gateway, world = demo
    with gateway.transaction() as session:
        found = reports.current_decisions(session=session, principal=_as(session, "dr.rivera"),
                                          subject_id=world.subjects["mia"])
    by_key = {(d.app.id, d.product): d.decision for d in found}
    assert by_key[world.apps["focus"], "focus_index"].allowed
    refused = by_key[world.apps["adlab"], "band_power"]
    assert not refused.allowed
    assert "child.no-marketing" in refused.reasons


def test_current_decisions_hide_a_subject_outside_care(demo: tuple[Gateway, DemoWorld]) -> None:
    """A guardian of one child cannot read another subject's decisions."""
    gateway, world = demo
    with gateway.transaction() as session, pytest.raises(NotFoundError):
        reports.current_decisions(session=session, principal=_as(session, "parent.chen"),
                                  subject_id=world.subjects["alex"])
