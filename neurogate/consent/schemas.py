"""Request and response shapes of the consent core (pydantic; no web framework).

Families follow one pattern: ``XCreate`` (what a caller sends), ``XUpdate`` (a partial
change), ``XPublic`` (what a caller gets back).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Language = Literal["en", "zh-Hans", "es"]
Capacity = Literal["full", "lacking"]
Role = Literal["subject", "guardian", "clinician", "admin", "vendor", "app_owner"]
GrantCapacity = Literal["self", "guardian", "legal_representative"]
Relationship = Literal["parent", "legal_guardian", "legal_representative"]
CriaStatus = Literal["none", "submitted", "approved"]
NoticeVariant = Literal["plain", "child"]
Product = Literal[
    "raw", "filtered", "band_power", "focus_index", "relaxation_index", "signal_quality"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- accounts and sessions ---------------------------------------------------------
class LoginRequest(_Strict):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class LoginResponse(BaseModel):
    session_token: str
    token_type: Literal["Bearer"] = "Bearer"
    account_id: str
    role: str
    idle_timeout_seconds: int
    absolute_timeout_seconds: int


class AccountCreate(_Strict):
    username: str = Field(min_length=3, max_length=200)
    password: str = Field(min_length=10, max_length=1000)
    role: Role


class SubjectAccountCreate(_Strict):
    username: str = Field(min_length=3, max_length=200)
    password: str = Field(min_length=10, max_length=1000)


class AccountPublic(_Out):
    id: str
    username: str
    role: str
    subject_id: str | None = None


# -- subjects ----------------------------------------------------------------------
class SubjectCreate(_Strict):
    display_name: str | None = Field(default=None, max_length=200)
    date_of_birth: date
    jurisdiction: str = Field(default="CRC", max_length=16)
    preferred_language: Language = "en"
    capacity: Capacity = "full"


class SubjectUpdate(_Strict):
    display_name: str | None = Field(default=None, max_length=200)
    date_of_birth: date | None = None
    jurisdiction: str | None = Field(default=None, max_length=16)
    preferred_language: Language | None = None
    capacity: Capacity | None = None


class SubjectPublic(_Out):
    id: str
    pseudonym: str
    display_name: str | None
    date_of_birth: date | None
    age: int | None = None
    minor: bool | None = None
    jurisdiction: str
    preferred_language: str
    capacity: str
    created_at: datetime


class GuardianLinkCreate(_Strict):
    guardian_username: str = Field(min_length=3, max_length=200)
    relationship: Relationship = "parent"


class GuardianLinkPublic(_Out):
    id: str
    guardian_account_id: str
    subject_id: str
    relationship: str
    verified_by: str
    verified_at: datetime


class CareRelationshipCreate(_Strict):
    clinician_username: str = Field(min_length=3, max_length=200)
    subject_id: str = Field(min_length=1, max_length=64)


class CareRelationshipPublic(_Out):
    id: str
    clinician_account_id: str
    subject_id: str
    created_at: datetime


# -- apps and devices --------------------------------------------------------------
class AppCreate(_Strict):
    name: str = Field(min_length=1, max_length=200)
    commercial: bool
    declared_purposes: list[str] = Field(min_length=1, max_length=20)


class AppUpdate(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    declared_purposes: list[str] | None = Field(default=None, min_length=1, max_length=20)
    cria_status: CriaStatus | None = None
    suspended: bool | None = None


class AppPublic(_Out):
    id: str
    name: str
    commercial: bool
    declared_purposes: list[str]
    cria_status: str
    suspended: bool


class ClientCredentials(BaseModel):
    client_id: str
    client_secret: str
    token_endpoint: str = "/oauth/token"


class AppCreated(BaseModel):
    app: AppPublic
    credentials: ClientCredentials


ChannelType = Literal["eeg", "eog", "ecg", "emg", "misc", "stim", "resp", "seeg", "ecog", "dbs"]


class DeviceCreate(_Strict):
    model: str = Field(min_length=1, max_length=200)
    serial: str = Field(min_length=1, max_length=200)
    channel_names: list[str] = Field(min_length=1, max_length=512)
    channel_types: list[ChannelType] = Field(min_length=1, max_length=512)
    # The streaming pipeline needs at least 64 Hz (a 1-40 Hz band and a notch).
    sampling_rate: float = Field(ge=64, le=100_000)


class PairingCreate(_Strict):
    subject_id: str = Field(min_length=1, max_length=64)


class DevicePublic(_Out):
    id: str
    model: str
    serial: str
    channel_names: list[str]
    channel_types: list[str]
    sampling_rate: float
    paired: bool = False


class DeviceCreated(BaseModel):
    device: DevicePublic
    credentials: ClientCredentials


# -- consents ----------------------------------------------------------------------
class NoticeShown(_Strict):
    """The exact notice the person read before consenting."""

    version: int = Field(ge=1)
    language: Language
    variant: NoticeVariant = "plain"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ConsentCreate(_Strict):
    subject_id: str = Field(min_length=1, max_length=64)
    app_id: str = Field(min_length=1, max_length=64)
    purpose_id: str = Field(min_length=1, max_length=64)
    products: list[Product] | None = Field(default=None, min_length=1)
    notice: NoticeShown
    valid_until: datetime | None = None
    # Only when a clinician records a consent given in person:
    capacity: GrantCapacity | None = None
    guardian_account_id: str | None = None
    assent: Literal["given", "dissent"] | None = None


class ConnectionCreate(_Strict):
    app_id: str = Field(min_length=1, max_length=64)


class AssentRecord(_Strict):
    assent: Literal["given", "dissent"]


class RevokeRequest(_Strict):
    reason: str | None = Field(default=None, max_length=500)


class ConsentPublic(_Out):
    id: str
    subject_id: str
    app_id: str
    purpose_id: str
    products: list[str]
    granted_by: str | None
    granted_capacity: str
    recorded_by: str
    assent: str
    notice_purpose_id: str
    notice_version: int
    notice_language: str
    notice_variant: str
    notice_sha256: str
    granted_at: datetime
    valid_from: datetime
    valid_until: datetime
    status: str
    revoked_at: datetime | None
    revoked_by: str | None
    revocation_reason: str | None


class AppConsentView(BaseModel):
    """What an app sees of a consent: the subject only under the app's own pseudonym."""

    id: str
    subject: str
    purpose_id: str
    products: list[str]
    status: str
    valid_until: datetime


class ConsentWithReceipt(BaseModel):
    consent: ConsentPublic
    receipt: dict[str, Any]


class ConsentEventPublic(_Out):
    action: str
    at: datetime
    actor_account_id: str | None
    detail: str | None
    ledger_index: int | None


# -- decisions ---------------------------------------------------------------------
class DecisionRequest(_Strict):
    app_id: str = Field(min_length=1, max_length=64)
    subject: str = Field(min_length=1, max_length=64)
    purpose_id: str = Field(min_length=1, max_length=64)
    product: Product
    language: Language = "en"


class DecisionPublic(BaseModel):
    allowed: bool
    reasons: list[str]
    explanations: list[str]
    constraints: dict[str, Any] | None
    consent_id: str | None
    age: int | None


__all__ = [
    "AccountCreate",
    "AccountPublic",
    "AppConsentView",
    "AppCreate",
    "AppCreated",
    "AppPublic",
    "AppUpdate",
    "AssentRecord",
    "CareRelationshipCreate",
    "CareRelationshipPublic",
    "ClientCredentials",
    "ConnectionCreate",
    "ConsentCreate",
    "ConsentEventPublic",
    "ConsentPublic",
    "ConsentWithReceipt",
    "DecisionPublic",
    "DecisionRequest",
    "DeviceCreate",
    "DeviceCreated",
    "DevicePublic",
    "GuardianLinkCreate",
    "GuardianLinkPublic",
    "LoginRequest",
    "LoginResponse",
    "NoticeShown",
    "PairingCreate",
    "RevokeRequest",
    "SubjectAccountCreate",
    "SubjectCreate",
    "SubjectPublic",
    "SubjectUpdate",
]
