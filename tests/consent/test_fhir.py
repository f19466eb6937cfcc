"""FHIR Consent (R5 and R4) of every consent the demo, a world of every purpose, grantor
kind and status, and the policy decision table create; and the mapping back (import)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.consent import Consent as ConsentR5
from fhir.resources.R4B.consent import Consent as ConsentR4B
from sqlmodel import select

from neurogate.consent import consents, registry
from neurogate.consent.access import Principal
from neurogate.consent.accounts import create_account
from neurogate.consent.models import Account, Consent, Subject, utcnow
from neurogate.consent.purposes import PRODUCTS, load_catalog
from neurogate.consent.schemas import (
    AppCreate,
    AppUpdate,
    ConsentCreate,
    GuardianLinkCreate,
    NoticeShown,
    SubjectCreate,
)
from neurogate.consent.standards import (
    Actor,
    ConsentView,
    consent_view,
    read_terms,
    to_fhir,
    validate,
)
from neurogate.consent.standards import _codes as codes
from neurogate.errors import ConsentError, ValidationError
from neurogate.gateway import demo
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings
from tests.consent.test_policy import POLICY_TABLE, Case, consent_for
from tests.gateway.conftest import FAST_HASHING

VERSIONS = ("R5", "R4")


@dataclass
class World:
    """The demo clinic plus one consent per purpose, grantor kind and status."""

    gateway: Gateway
    ids: dict[str, str] = field(default_factory=dict)  # label -> consent id
    refused: dict[str, str] = field(default_factory=dict)  # purpose -> why none exists
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (subject, app)

    def views(self) -> list[ConsentView]:
        """Every consent of the world, as people see it."""
        found = []
        with self.gateway.transaction() as session:
            for consent in session.exec(select(Consent)).all():
                subject = session.get(Subject, consent.subject_id)
                assert subject is not None
                found.append(consent_view(
                    session=session, consent=consent, patient=subject.pseudonym,
                    controller=self.gateway.ledger.origin,
                    public_key=self.gateway.ledger.signer.verifier_key))
            session.expunge_all()  # the views outlive the transaction
        return found


def _who(account: Account) -> Principal:
    return Principal(kind="account", id=account.id, role=account.role,
                     subject_id=account.subject_id)


def _notice(purpose_id: str) -> NoticeShown:
    notice = load_catalog().get(purpose_id).notice("en")
    return NoticeShown(version=notice.version, language="en", variant="plain",
                       sha256=notice.sha256)


@dataclass
class People:
    """The world's people, patients and apps (no consent), by label."""

    principals: dict[str, Principal]
    subjects: dict[str, Subject]
    apps: dict[str, str]


def build_people(session: Any) -> People:
    """A clinician, a parent, a legal representative; an adult, a child of 9 and an adult
    lacking capacity; a commercial app (approved impact assessment) declaring every
    purpose, and a non-commercial ward app."""
    made = {name: create_account(session=session, username=name, password="x" * 12,
                                 role=role)
            for name, role in [("w.clin", "clinician"), ("w.owner", "app_owner"),
                               ("w.parent", "guardian"), ("w.rep", "guardian"),
                               ("w.admin", "admin")]}
    who = {name: _who(account) for name, account in made.items()}
    clin, owner = who["w.clin"], who["w.owner"]
    today = utcnow().date()
    subjects = {label: registry.create_subject(session=session, principal=clin,
                                               request=SubjectCreate(**body))
                for label, body in [
                    ("adult", {"date_of_birth": today.replace(year=today.year - 40, day=1)}),
                    ("child", {"date_of_birth": today.replace(year=today.year - 9, day=1)}),
                    ("ward", {"date_of_birth": today.replace(year=today.year - 50, day=1),
                              "capacity": "lacking"})]}
    registry.link_guardian(session=session, principal=clin, subject_id=subjects["child"].id,
                           request=GuardianLinkCreate(guardian_username="w.parent"))
    registry.link_guardian(session=session, principal=clin, subject_id=subjects["ward"].id,
                           request=GuardianLinkCreate(guardian_username="w.rep",
                                                      relationship="legal_representative"))
    every, _, _ = registry.create_app(session=session, principal=owner, request=AppCreate(
        name="Every purpose", commercial=True, declared_purposes=list(load_catalog().ids())))
    registry.update_app(session=session, principal=who["w.admin"], app_id=every.id,
                        request=AppUpdate(cria_status="approved"))
    ward, _, _ = registry.create_app(session=session, principal=owner, request=AppCreate(
        name="Ward", commercial=False, declared_purposes=["clinical_monitoring",
                                                         "research_noncommercial"]))
    return People(principals=who, subjects=subjects, apps={"every": every.id, "ward": ward.id})


def build_world(tmp: Path) -> World:
    """Seed the demo, then grant through the domain functions: every purpose to an adult
    (by a commercial app with an approved impact assessment), a guardian's consent with
    the child's assent, one with the child's dissent, a legal representative's, a revoked
    one given again, and an expired one."""
    gateway = build_gateway(Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                                     environment="test", **FAST_HASHING))
    world = World(gateway=gateway)
    seeded = demo.seed(gateway)
    world.ids.update({f"demo-{k}": v for k, v in seeded.consents.items()})
    ledger = gateway.ledger
    with gateway.transaction() as session:
        people = build_people(session)
        clin = people.principals["w.clin"]
        adult, child, ward = (people.subjects[k] for k in ("adult", "child", "ward"))
        app_id, clinic_id = people.apps["every"], people.apps["ward"]

        def grant(label: str, principal: Principal, subject: Subject, app_id: str,
                  purpose: str, **extra: Any) -> None:
            consent, _ = consents.grant_consent(
                session=session, ledger=ledger, principal=principal, request=ConsentCreate(
                    subject_id=subject.id, app_id=app_id, purpose_id=purpose,
                    notice=_notice(purpose), **extra))
            world.ids[label] = consent.id
            world.labels[consent.id] = (
                next(k for k, s in people.subjects.items() if s.id == subject.id),
                next(k for k, a in people.apps.items() if a == app_id))

        for purpose in load_catalog().ids():
            try:
                grant(f"adult-{purpose}", clin, adult, app_id, purpose)
            except ConsentError as exc:
                world.refused[purpose] = exc.message
        parent, rep = people.principals["w.parent"], people.principals["w.rep"]
        grant("child-clinical", parent, child, clinic_id, "clinical_monitoring")
        consents.record_assent(session=session, ledger=ledger, principal=clin,
                               consent_id=world.ids["child-clinical"], assent="given")
        grant("child-research", parent, child, clinic_id, "research_noncommercial",
              products=["band_power"])
        consents.record_assent(session=session, ledger=ledger, principal=clin,
                               consent_id=world.ids["child-research"], assent="dissent")
        grant("ward-clinical", rep, ward, clinic_id, "clinical_monitoring")
        grant("adult-research-old", clin, adult, clinic_id, "research_noncommercial")
        consents.revoke_consent(session=session, ledger=ledger, principal=clin,
                                consent_id=world.ids["adult-research-old"], reason="asked")
        grant("adult-research-again", clin, adult, clinic_id, "research_noncommercial")
        grant("adult-clinical-short", clin, adult, clinic_id, "clinical_monitoring",
              valid_until=utcnow() + timedelta(days=1))
    with gateway.transaction() as session:
        consents.expire_due(session=session, ledger=ledger, now=utcnow() + timedelta(days=2))
    return world


_BUILT: list[World] = []  # one world per test process, shared by the standards' tests


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> World:
    """The world of consents, built once per test run (FHIR, TS 27560 and Kantara tests
    read it; none changes it)."""
    if not _BUILT:
        _BUILT.append(build_world(tmp_path_factory.mktemp("standards")))
        pytestconfig.add_cleanup(_BUILT[0].gateway.engine.dispose)
    return _BUILT[0]


def _table_views() -> Iterator[tuple[str, ConsentView]]:
    """A ConsentView of each consent each row of the policy decision table creates."""
    for param in POLICY_TABLE:
        case: Case = param.values[0]
        for index, overrides in enumerate(case.consents):
            facts = consent_for(case, index, **overrides)
            notice = load_catalog().get(facts.purpose_id).notice("en")
            consent = Consent(
                id=f"{param.id}-{index}".replace("_", "-"), subject_id="s", app_id="a",
                purpose_id=facts.purpose_id, products=list(facts.products), granted_by="g",
                granted_capacity=facts.granted_capacity, recorded_by="r", assent=facts.assent,
                assent_recorded_at=facts.granted_at if facts.assent in ("given", "dissent")
                else None,
                notice_purpose_id=facts.purpose_id, notice_version=notice.version,
                notice_language="en", notice_variant="plain", notice_sha256=notice.sha256,
                granted_at=facts.granted_at, valid_from=facts.valid_from,
                valid_until=facts.valid_until, status=facts.status)
            grantor = None if facts.granted_capacity == "self" else Actor("acc_g", "guardian")
            yield consent.id, ConsentView(
                consent=consent, patient="sub_table", app_id="a", app_name="App",
                app_commercial=case.commercial, grantor=grantor,
                recorder=Actor("acc_r", "clinician"),
                assent_recorder=Actor("acc_r", "clinician"), child=case.age < 18,
                jurisdiction=case.jurisdiction, controller="test/ledger", public_key="k",
                events=())


def test_fhir_world_covers_every_purpose_grantor_and_status(world: World) -> None:
    """The world holds a consent of every purpose the policy lets an adult consent to, of
    each grantor kind (self, guardian, legal representative), with a child's assent and
    dissent, and in every status."""
    views = list(world.views())
    purposes = {v.consent.purpose_id for v in views}
    assert purposes | set(world.refused) == set(load_catalog().ids())
    assert len(purposes) >= 8
    assert {v.consent.granted_capacity for v in views} == {"self", "guardian",
                                                           "legal_representative"}
    assert {v.consent.assent for v in views} >= {"not_required", "given", "dissent"}
    assert {v.consent.status for v in views} == {"active", "revoked", "expired"}


@pytest.mark.parametrize("version", VERSIONS)
def test_fhir_every_world_consent_validates(world: World, version: str) -> None:
    """Every consent exports as a FHIR Consent that fhir.resources parses and validates."""
    model = ConsentR5 if version == "R5" else ConsentR4B
    count = 0
    for view in world.views():
        resource = to_fhir(view, version)
        parsed = model.model_validate(resource)
        assert parsed.id == view.consent.id
        again = model.model_validate(parsed.model_dump(mode="json"))
        assert again.model_dump(mode="json") == parsed.model_dump(mode="json")
        count += 1
    assert count >= 15


@pytest.mark.parametrize("version", VERSIONS)
def test_fhir_every_policy_table_consent_validates(version: str) -> None:
    """Every consent of the policy decision table exports as a valid FHIR Consent."""
    count = 0
    for label, view in _table_views():
        resource = to_fhir(view, version)
        assert validate(resource, version).id == label
        count += 1
    assert count == sum(len(p.values[0].consents) for p in POLICY_TABLE) >= 100


def test_fhir_r5_maps_each_field(world: World) -> None:
    """Status, subject by pseudonym, grantor with capacity, grantee, controller, period,
    the notice, the child's assent, purposes with DUO and DPV codes, products with their
    resolution, and a denial of every product the consent does not cover."""
    for view in world.views():
        k = view.consent
        resource = to_fhir(view, "R5")
        assert resource["status"] == {"active": "active"}.get(k.status, "inactive")
        assert resource["subject"]["identifier"]["value"] == view.patient
        grantor = resource["grantor"][0]
        assert grantor["extension"][0]["valueCoding"]["code"] == codes.CAPACITY_ROLE[
            k.granted_capacity]
        assert grantor["type"] == ("Patient" if k.granted_capacity == "self"
                                   else "RelatedPerson")
        assert resource["grantee"][0]["identifier"]["value"] == k.app_id
        assert resource["controller"][0]["identifier"]["value"] == view.controller
        assert resource["period"]["end"] == k.valid_until.isoformat()
        notice = {e["url"]: next(v for key, v in e.items() if key.startswith("value"))
                  for e in resource["policyBasis"]["extension"][0]["extension"]}
        assert notice == {"purpose": k.notice_purpose_id, "version": k.notice_version,
                          "language": k.notice_language, "variant": k.notice_variant,
                          "sha256": k.notice_sha256}
        purpose = load_catalog().get(k.purpose_id)
        provision = resource["provision"][0]
        coded = {(c["system"], c["code"]) for c in provision["purpose"]}
        assert (codes.PURPOSE_SYSTEM, k.purpose_id) in coded
        assert {(codes.DUO_SYSTEM, d) for d in purpose.duo} <= coded
        assert {(codes.DPV_SYSTEM, d.removeprefix("dpv:")) for d in purpose.dpv} <= coded
        data = {d["reference"]["identifier"]["value"]: d for d in provision["data"]}
        assert list(data) == list(k.products)
        for product, item in data.items():
            res = {e["url"]: next(v for key, v in e.items() if key.startswith("value"))
                   for e in item["extension"][0]["extension"]}
            assert res == purpose.products[product].as_dict()
        denied = [d["reference"]["identifier"]["value"]
                  for d in provision["provision"][0]["data"]]
        assert sorted(denied + list(k.products)) == sorted(PRODUCTS)
        if k.assent in ("given", "dissent"):
            check = resource["verification"][0]
            assert check["verified"] == (k.assent == "given")
            assert check["verificationType"]["coding"][0]["code"] == "child-assent"
            assert check["verificationDate"] == [
                k.assent_recorded_at.isoformat()]  # type: ignore[union-attr]
        else:
            assert "verification" not in resource


def test_fhir_names_no_person() -> None:
    """Nothing in an export is a name or username: people appear by pseudonym only."""
    for _, view in _table_views():
        text = str(to_fhir(view, "R5"))
        assert "acc_g" in text or view.consent.granted_capacity == "self"
        assert "sub_table" in text


@pytest.mark.parametrize("version", VERSIONS)
def test_fhir_read_terms_round_trips(world: World, version: str) -> None:
    """Reading an exported active consent back gives its purpose, products, notice,
    capacity, assent and end."""
    for view in world.views():
        k = view.consent
        if k.status != "active":
            continue
        terms = read_terms(to_fhir(view, version))
        assert (terms.version, terms.patient, terms.app) == (version, view.patient, k.app_id)
        assert (terms.purpose_id, terms.products) == (k.purpose_id, list(k.products))
        assert terms.notice == {"purpose": k.notice_purpose_id, "version": k.notice_version,
                                "language": k.notice_language, "variant": k.notice_variant,
                                "sha256": k.notice_sha256}
        assert terms.capacity == k.granted_capacity
        assert terms.assent == (k.assent if k.assent in ("given", "dissent") else None)
        assert terms.valid_until == k.valid_until


def _active_export(world: World, version: str) -> dict[str, Any]:
    view = next(v for v in world.views() if v.consent.status == "active"
                and v.consent.purpose_id == "neurofeedback")
    return to_fhir(view, version)


@pytest.mark.parametrize(("version", "change", "field", "message"), [
    ("R5", lambda r: r["provision"][0]["data"][0]["reference"]["identifier"].update(
        value="raw"), "provision[0].data",
     "Invalid FHIR Consent element 'provision[0].data': data[0] names 'raw', which the "
     "purpose 'neurofeedback' does not allow; it allows 'focus_index', 'relaxation_index', "
     "'signal_quality'."),
    ("R4", lambda r: r["provision"]["data"][0]["reference"]["identifier"].update(
        value="raw"), "provision.data",
     "Invalid FHIR Consent element 'provision.data': data[0] names 'raw', which the "
     "purpose 'neurofeedback' does not allow; it allows 'focus_index', 'relaxation_index', "
     "'signal_quality'."),
    ("R5", lambda r: r.update(status="inactive"), "status",
     "Invalid FHIR Consent element 'status': NeuroGate imports active consents only, but "
     "got 'inactive'."),
    ("R5", lambda r: r.update(decision="deny"), "decision",
     "Invalid FHIR Consent element 'decision': NeuroGate imports consents that permit a "
     "use; this one has decision 'deny'."),
    ("R5", lambda r: r["policyBasis"].pop("extension"), "policyBasis",
     f"Invalid FHIR Consent element 'policyBasis': it must carry the extension "
     f"{codes.EXT_NOTICE} naming the notice shown (purpose, version, language, variant, "
     f"sha256)."),
    ("R5", lambda r: r["provision"][0].update(purpose=[{"system": codes.PURPOSE_SYSTEM,
                                                        "code": "x"}]),
     "provision[0].purpose", None),
    ("R5", lambda r: r["grantor"][0]["extension"][0]["valueCoding"].update(code="NOPE"),
     "grantor[0]", None),
    ("R5", lambda r: r.update(status="sleeping"), "status", None),  # not FHIR at all
    ("R4", lambda r: r["provision"]["provision"][0].update(type="permit"),
     "provision.provision[0].type", None),
    ("R5", lambda r: r["provision"][0]["provision"][0].update(
        provision=[{"data": r["provision"][0]["data"]}]),
     "provision[0].provision[0].provision", None),
    ("R5", lambda r: r["provision"][0].pop("data"), "provision[0].data",
     "Invalid FHIR Consent element 'provision[0].data': name at least one data product the "
     "consent permits."),
])
def test_fhir_read_terms_refuses_what_cannot_be_honoured(
    world: World, version: str, change: Any, field: str, message: str | None,
) -> None:
    """A consent NeuroGate cannot honour is refused naming the FHIR element at fault."""
    resource = copy.deepcopy(_active_export(world, version))
    change(resource)
    with pytest.raises(ValidationError) as caught:
        read_terms(resource)
    assert caught.value.field == field
    if message is not None:
        assert caught.value.message == message


def test_fhir_import_refuses_a_malformed_notice(world: World) -> None:
    """A notice extension with a bad hash is refused naming policyBasis (nothing granted)."""
    from neurogate.consent.standards import import_consent

    view = next(v for v in world.views() if v.consent.id == world.ids["adult-neurofeedback"])
    resource = to_fhir(view, "R5")
    for part in resource["policyBasis"]["extension"][0]["extension"]:
        if part["url"] == "sha256":
            part["valueString"] = "not-a-hash"
    with world.gateway.transaction() as session:
        clinician = session.exec(select(Account).where(Account.username == "w.clin")).one()
        with pytest.raises(ValidationError) as caught:
            import_consent(session=session, ledger=world.gateway.ledger,
                           principal=_who(clinician), resource=resource,
                           subject_id=view.consent.subject_id)
    assert caught.value.field == "policyBasis"
    assert caught.value.message.startswith(
        "Invalid FHIR Consent element 'policyBasis': its notice sha256 is not valid (")


def test_fhir_import_refuses_a_purpose_the_app_did_not_declare(world: World) -> None:
    """Imported for an app that did not declare the purpose: refused naming the purpose."""
    from neurogate.consent.models import App
    from neurogate.consent.standards import import_consent

    view = next(v for v in world.views() if v.consent.id == world.ids["adult-neurofeedback"])
    with world.gateway.transaction() as session:
        clinician = session.exec(select(Account).where(Account.username == "w.clin")).one()
        ward = session.exec(select(App).where(App.name == "Ward")).one()
        with pytest.raises(ValidationError) as caught:
            import_consent(session=session, ledger=world.gateway.ledger,
                           principal=_who(clinician), resource=to_fhir(view, "R5"),
                           subject_id=view.consent.subject_id, app_id=ward.id)
    assert caught.value.field == "provision[0].purpose"
    assert caught.value.message == (
        "Invalid FHIR Consent element 'provision[0].purpose': Invalid value for the "
        "'purpose_id' field. This app declared the purposes 'clinical_monitoring', "
        "'research_noncommercial', but got 'neurofeedback' instead.")


def test_fhir_import_into_a_fresh_gateway_gives_the_same_decisions(
    world: World, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Each world consent (every purpose, grantor kind, status), exported in R5 and R4 and
    imported into a gateway with the same people and apps but no consent, gives the same
    decision (allowed and reasons) for every product of its purpose; an inactive one is
    refused naming ``status``, and one the child dissented from (which the policy does not
    let be recorded) naming ``provision[0]``: nothing flows from either in any gateway."""
    from neurogate.consent.models import App
    from neurogate.consent.standards import import_consent

    tmp = tmp_path_factory.mktemp("fresh")
    fresh = build_gateway(Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                                   environment="test", **FAST_HASHING))
    with fresh.transaction() as session:
        people = build_people(session)
        ids = {label: s.id for label, s in people.subjects.items()}
    compared = refused = 0

    def decisions(gateway: Gateway, subject_id: str, app_id: str, purpose: str) -> list[Any]:
        with gateway.transaction() as session:
            subject, app = session.get(Subject, subject_id), session.get(App, app_id)
            assert subject is not None and app is not None
            return [(product, d.allowed, d.reasons) for product in
                    load_catalog().get(purpose).products
                    for d in [consents.evaluate(session=session, subject=subject, app=app,
                                                purpose_id=purpose, product=product)]]

    for version in VERSIONS:
        for view in world.views():
            if view.consent.id not in world.labels:
                continue  # the demo's consents: their people are not in the fresh gateway
            subject_label, app_label = world.labels[view.consent.id]
            k = view.consent
            with fresh.transaction() as session:
                call = {"session": session, "ledger": fresh.ledger,
                        "principal": people.principals["w.clin"],
                        "resource": to_fhir(view, version), "subject_id": ids[subject_label],
                        "app_id": people.apps[app_label]}
                if k.status != "active":
                    with pytest.raises(ValidationError) as caught:
                        import_consent(**call)
                    assert caught.value.field == "status"
                    refused += 1
                    continue
                try:
                    imported, _ = import_consent(**call)
                except ValidationError as exc:  # the policy refuses to record it
                    assert exc.field == {"R5": "provision[0]", "R4": "provision"}[version]
                    assert k.assent == "dissent"  # a child's dissent: nothing flows anyway
                    assert not any(allowed for _, allowed, _ in decisions(
                        world.gateway, k.subject_id, k.app_id, k.purpose_id))
                    refused += 1
                    continue
                assert (imported.purpose_id, imported.products, imported.granted_capacity,
                        imported.assent, imported.valid_until) == (
                    k.purpose_id, k.products, k.granted_capacity,
                    k.assent if k.assent != "not_required" else "not_required", k.valid_until)
            assert decisions(fresh, ids[subject_label], people.apps[app_label],
                             k.purpose_id) == decisions(world.gateway, k.subject_id, k.app_id,
                                                        k.purpose_id), (version, k.purpose_id)
            compared += 1
    assert compared >= 2 * 10 and refused == 2 * 3
    fresh.engine.dispose()
