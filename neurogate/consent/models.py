"""Database tables of the consent core (SQLModel).

Ids are random UUID strings. Times are stored as timezone-aware UTC. JSON columns hold
short lists (channel names, declared purposes, product scopes).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Field, SQLModel

from neurogate.consent.jurisdictions import REQUEST_KINDS
from neurogate.consent.policy import DEPLOYMENT_CONTEXTS

ROLES = ("subject", "guardian", "clinician", "admin", "vendor", "app_owner", "auditor")
CAPACITIES = ("full", "lacking")
CRIA_STATUSES = ("none", "submitted", "approved")
GRANT_CAPACITIES = ("self", "guardian", "legal_representative")
ASSENT_STATES = ("not_required", "pending", "given", "dissent")
CONSENT_STATUSES = ("active", "revoked", "expired")
CONCERN_STATUSES = ("open", "answered")
GUARDIAN_RELATIONSHIPS = ("parent", "legal_guardian", "legal_representative")
REQUEST_STATUSES = ("open", "done")
# Roles a hospital identity provider may give (never subject or guardian: the people
# whose data flows sign in with their own passwords).
OIDC_ROLES = ("clinician", "admin")


def new_id() -> str:
    """A new random object id."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware UTC (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "Naive datetimes are not stored; give a timezone-aware UTC time."
            raise ValueError(msg)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _ts(*, nullable: bool = False) -> datetime:
    if nullable:
        return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))  # type: ignore[no-any-return]
    return Field(  # type: ignore[no-any-return]
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class Subject(SQLModel, table=True):
    """A person whose brain signals may flow through the gateway."""

    __tablename__ = "subjects"

    id: str = Field(default_factory=new_id, primary_key=True)
    pseudonym: str = Field(index=True, unique=True)
    display_name: str | None = None
    date_of_birth: date | None = None
    jurisdiction: str = "CRC"
    preferred_language: str = "en"
    capacity: str = "full"
    erased_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()


class Account(SQLModel, table=True):
    """A login: a person (subject, guardian, clinician, admin, vendor, app owner)."""

    __tablename__ = "accounts"

    id: str = Field(default_factory=new_id, primary_key=True)
    username: str = Field(index=True, unique=True)
    password_hash: str
    role: str
    pseudonym: str = Field(index=True, unique=True)
    subject_id: str | None = Field(default=None, foreign_key="subjects.id", index=True)
    disabled: bool = False
    language: str | None = None  # the portal's language, chosen by the person
    created_at: datetime = _ts()


class AuthSession(SQLModel, table=True):
    """A server-side login session; the client holds a random token, we keep its hash."""

    __tablename__ = "auth_sessions"

    token_hash: str = Field(primary_key=True)
    account_id: str = Field(foreign_key="accounts.id", index=True)
    created_at: datetime = _ts()
    last_seen_at: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True)


class OidcIdentity(SQLModel, table=True):
    """An account's identity at an OpenID provider: the provider's ``iss`` and ``sub``."""

    __tablename__ = "oidc_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    issuer: str
    subject: str
    account_id: str = Field(foreign_key="accounts.id", index=True)
    created_at: datetime = _ts()
    last_login_at: datetime | None = _ts(nullable=True)


class OidcRoleMapping(SQLModel, table=True):
    """An administrator's rule: an ID-token claim holding a value gives a staff role."""

    __tablename__ = "oidc_role_mappings"
    __table_args__ = (UniqueConstraint("issuer", "claim", "value"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    issuer: str
    claim: str
    value: str
    role: str
    created_by: str = Field(foreign_key="accounts.id")
    created_at: datetime = _ts()


class OidcFlow(SQLModel, table=True):
    """A sign-in under way at the OpenID provider (state, nonce, PKCE verifier), kept
    server-side until the provider sends the person back or it expires."""

    __tablename__ = "oidc_flows"

    key: str = Field(primary_key=True)  # SHA-256 of the OpenID client's state key
    data: str  # JSON written by the OpenID client
    expires_at: datetime = _ts()


class GuardianLink(SQLModel, table=True):
    """A guardian (or legal representative) of a subject, verified by a clinician."""

    __tablename__ = "guardian_links"
    __table_args__ = (UniqueConstraint("guardian_account_id", "subject_id"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    guardian_account_id: str = Field(foreign_key="accounts.id", index=True)
    subject_id: str = Field(foreign_key="subjects.id", index=True)
    relationship: str = "parent"
    verified_by: str = Field(foreign_key="accounts.id")
    verified_at: datetime = _ts()


class CareRelationship(SQLModel, table=True):
    """A clinician who cares for a patient (subject)."""

    __tablename__ = "care_relationships"
    __table_args__ = (UniqueConstraint("clinician_account_id", "subject_id"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    clinician_account_id: str = Field(foreign_key="accounts.id", index=True)
    subject_id: str = Field(foreign_key="subjects.id", index=True)
    created_at: datetime = _ts()


class App(SQLModel, table=True):
    """An application that wants governed data, with its declared purposes."""

    __tablename__ = "apps"

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str
    owner_account_id: str = Field(foreign_key="accounts.id", index=True)
    commercial: bool = False
    declared_purposes: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    cria_status: str = "none"
    suspended: bool = False
    # Where the app is used (DEPLOYMENT_CONTEXTS); the EU AI Act Art. 5(1)(f) rule reads it.
    deployment_context: str = "home"
    created_at: datetime = _ts()


class Device(SQLModel, table=True):
    """A registered device: its vendor, model and the shape of its stream."""

    __tablename__ = "devices"

    id: str = Field(default_factory=new_id, primary_key=True)
    vendor_account_id: str = Field(foreign_key="accounts.id", index=True)
    model: str
    serial: str
    channel_names: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    channel_types: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    sampling_rate: float
    paired_subject_id: str | None = Field(default=None, foreign_key="subjects.id")
    created_at: datetime = _ts()


class OAuthClient(SQLModel, table=True):
    """Client credentials of an app or a device (OAuth2 client-credentials grant)."""

    __tablename__ = "oauth_clients"

    client_id: str = Field(primary_key=True)
    secret_hash: str
    kind: str  # "app" | "device"
    owner_id: str = Field(index=True)
    scopes: str
    created_at: datetime = _ts()


class AppPseudonym(SQLModel, table=True):
    """The name under which one app knows one subject (never the internal id)."""

    __tablename__ = "app_pseudonyms"
    __table_args__ = (UniqueConstraint("app_id", "subject_id"),)

    pseudonym: str = Field(primary_key=True)
    app_id: str = Field(foreign_key="apps.id", index=True)
    subject_id: str = Field(foreign_key="subjects.id", index=True)


class Consent(SQLModel, table=True):
    """One consent of a subject to one app for one purpose, with the notice shown."""

    __tablename__ = "consents"

    id: str = Field(default_factory=new_id, primary_key=True)
    subject_id: str = Field(foreign_key="subjects.id", index=True)
    app_id: str = Field(foreign_key="apps.id", index=True)
    purpose_id: str = Field(index=True)
    products: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    granted_by: str | None = Field(default=None, foreign_key="accounts.id")
    granted_capacity: str
    recorded_by: str = Field(foreign_key="accounts.id")
    assent: str = "not_required"
    assent_recorded_by: str | None = None
    assent_recorded_at: datetime | None = _ts(nullable=True)
    notice_purpose_id: str
    notice_version: int
    notice_language: str
    notice_variant: str
    notice_sha256: str
    granted_at: datetime = _ts()
    valid_from: datetime = _ts()
    valid_until: datetime = _ts()
    status: str = Field(default="active", index=True)
    revoked_at: datetime | None = _ts(nullable=True)
    revoked_by: str | None = None
    revocation_reason: str | None = None
    expired_at: datetime | None = _ts(nullable=True)


class ConsentEvent(SQLModel, table=True):
    """History of a consent: grant, assent, dissent, revocation, expiry."""

    __tablename__ = "consent_events"

    id: str = Field(default_factory=new_id, primary_key=True)
    consent_id: str = Field(foreign_key="consents.id", index=True)
    action: str
    actor_account_id: str | None = None
    at: datetime = _ts()
    detail: str | None = None
    ledger_index: int | None = None


class Delivery(SQLModel, table=True):
    """How much one app received of one subject's data for one purpose on one UTC day:
    message counts and streaming time only, never signal data."""

    __tablename__ = "deliveries"

    subject_id: str = Field(foreign_key="subjects.id", primary_key=True)
    app_id: str = Field(foreign_key="apps.id", primary_key=True)
    purpose_id: str = Field(primary_key=True)
    day: date = Field(primary_key=True)
    messages: int = 0
    dropped: int = 0
    seconds: float = 0.0


class Concern(SQLModel, table=True):
    """A concern a subject, guardian or child reported ("Something feels wrong?"): personal
    data of the subject, answered by a clinician in care or an admin."""

    __tablename__ = "concerns"

    id: str = Field(default_factory=new_id, primary_key=True)
    subject_id: str = Field(foreign_key="subjects.id", index=True)
    reporter_account_id: str = Field(foreign_key="accounts.id", index=True)
    app_id: str | None = Field(default=None, foreign_key="apps.id")
    what_happened: str
    contact: str | None = None
    status: str = Field(default="open", index=True)
    created_at: datetime = _ts()
    answer: str | None = None
    answered_by: str | None = Field(default=None, foreign_key="accounts.id")
    answered_at: datetime | None = _ts(nullable=True)


class SubjectRequest(SQLModel, table=True):
    """A request a law sets a deadline for (delete, limit use, access), filed for a subject
    and tracked until an admin completes it; the sweeper stamps overdue ones."""

    __tablename__ = "subject_requests"

    id: str = Field(default_factory=new_id, primary_key=True)
    subject_id: str = Field(foreign_key="subjects.id", index=True)
    kind: str  # REQUEST_KINDS
    filed_by: str | None = Field(default=None, foreign_key="accounts.id")
    consent_id: str | None = Field(default=None, foreign_key="consents.id")
    jurisdiction: str  # the subject's profile when filed: it sets the deadline
    free_of_charge: bool = True
    status: str = Field(default="open", index=True)  # REQUEST_STATUSES
    filed_at: datetime = _ts()
    due_at: datetime = _ts()
    overdue_at: datetime | None = _ts(nullable=True)
    completed_at: datetime | None = _ts(nullable=True)
    completed_by: str | None = Field(default=None, foreign_key="accounts.id")


class LedgerLeaf(SQLModel, table=True):
    """One ledger leaf: its public RFC 6962 leaf hash, and beside it (never public) the
    entry (canonical JSON), the secret salt that opens the leaf's commitment to it, and
    the internal id of the subject it concerns. Erasure clears ``entry`` and ``salt``:
    the leaf stays in the tree, opaque."""

    __tablename__ = "ledger_leaves"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    entry: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    salt: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    subject_id: str | None = Field(default=None, index=True)


class LedgerCheckpoint(SQLModel, table=True):
    """A signed checkpoint (C2SP tlog-checkpoint note) of the ledger at some size."""

    __tablename__ = "ledger_checkpoints"

    size: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    note: str
    created_at: datetime = _ts()


class LedgerV1Checkpoint(SQLModel, table=True):
    """A checkpoint of the retired unsalted (version 1) log, kept as history."""

    __tablename__ = "ledger_v1_checkpoints"

    size: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    note: str
    created_at: datetime = _ts()


class AbuseCount(SQLModel, table=True):
    """How often one kind of abuse (failed login, refused subscription) came from one key
    within one time window; flushed to the ledger as one leaf per row."""

    __tablename__ = "abuse_counts"

    kind: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    window_start: datetime = Field(
        sa_column=Column(UTCDateTime(), primary_key=True, nullable=False)
    )
    window_seconds: int
    count: int = 0



class LiveStreamRecord(SQLModel, table=True):
    """A stream live on some gateway process: written with its ``stream.start`` leaf and
    deleted with its ``stream.stop`` leaf, so that the streams of a process that died
    without stopping them can be closed in the ledger (``reason_code`` ``gateway_restart``).
    """

    __tablename__ = "live_streams"

    stream: str = Field(primary_key=True)
    instance: str = Field(index=True)  # the gateway's host and data directory
    process: str  # random id of the gateway process that runs the stream
    leaf: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))  # for the stop leaf
    started_at: datetime = _ts()
    seen_at: datetime = _ts()  # refreshed while the process lives


class DataKey(SQLModel, table=True):
    """That a subject has a recording data key (AES-256), and the key-encryption key
    version wrapping it. The wrapped key itself lives in the key directory, outside the
    data directory and its backups; erasure deletes both (crypto-shredding)."""

    __tablename__ = "data_keys"

    subject_id: str = Field(foreign_key="subjects.id", primary_key=True)
    kek_version: int = Field(index=True)
    created_at: datetime = _ts()
    rotated_at: datetime | None = _ts(nullable=True)


class Recording(SQLModel, table=True):
    """One recorded stream for one consent whose purpose keeps data; its segments are
    encrypted files under the data directory. No name or birth date is kept here."""

    __tablename__ = "recordings"

    id: str = Field(default_factory=new_id, primary_key=True)
    subject_id: str = Field(foreign_key="subjects.id", index=True)
    app_id: str = Field(foreign_key="apps.id", index=True)
    consent_id: str = Field(foreign_key="consents.id", index=True)
    purpose_id: str
    device_id: str
    channel_names: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    sampling_rate: float
    started_at: datetime = _ts()
    stopped_at: datetime | None = _ts(nullable=True)
    stop_reason: str | None = None
    keep_until: datetime = _ts()
    delete_after: datetime | None = _ts(nullable=True)  # set when consent is revoked


class RecordingSegment(SQLModel, table=True):
    """One encrypted segment of one product of a recording: its nonce and key version
    (the ciphertext and tag are in the segment file)."""

    __tablename__ = "recording_segments"
    __table_args__ = (UniqueConstraint("recording_id", "product", "index"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    recording_id: str = Field(foreign_key="recordings.id", index=True)
    subject_id: str = Field(index=True)
    product: str
    index: int
    key_version: int
    nonce: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int
    t0: float
    created_at: datetime = _ts()


__all__ = [
    "ASSENT_STATES",
    "CAPACITIES",
    "CONCERN_STATUSES",
    "CONSENT_STATUSES",
    "CRIA_STATUSES",
    "DEPLOYMENT_CONTEXTS",
    "GRANT_CAPACITIES",
    "GUARDIAN_RELATIONSHIPS",
    "OIDC_ROLES",
    "REQUEST_KINDS",
    "REQUEST_STATUSES",
    "ROLES",
    "AbuseCount",
    "Account",
    "App",
    "AppPseudonym",
    "AuthSession",
    "CareRelationship",
    "Concern",
    "Consent",
    "ConsentEvent",
    "DataKey",
    "Delivery",
    "Device",
    "GuardianLink",
    "LedgerCheckpoint",
    "LedgerLeaf",
    "LedgerV1Checkpoint",
    "LiveStreamRecord",
    "OAuthClient",
    "OidcFlow",
    "OidcIdentity",
    "OidcRoleMapping",
    "Recording",
    "RecordingSegment",
    "Subject",
    "SubjectRequest",
    "new_id",
    "utcnow",
]
