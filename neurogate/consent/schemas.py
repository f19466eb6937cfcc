"""Request and response shapes of the consent core (pydantic; no web framework).

Families follow one pattern: ``XCreate`` (what a caller sends), ``XUpdate`` (a partial
change), ``XPublic`` (what a caller gets back).

Request models are strict: a boolean is ``true`` or ``false`` (never ``"yes"``), a number
is a JSON number (never ``"3"``), unknown fields are refused, and every string and list
has a documented maximum (the ``MAX_*`` constants below; OpenAPI shows them as
``maxLength`` and ``maxItems``, the README lists them). Dates and times come as ISO 8601
strings. Identifiers people type (usernames, serials, ids, pseudonyms) pass through one
normaliser, :func:`neurogate.consent.identifiers.normalise_identifier`, at registration
and at login alike. In an update a field may be left out, but not sent as ``null``
(except ``display_name``, which ``null`` clears).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    MISSING,
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
)

from neurogate.consent.identifiers import normalise_identifier

# Documented maximums. Lengths count characters after surrounding spaces are stripped.
MAX_NAME = 200  # display names, app names
MAX_USERNAME = 64  # a new account's username
MAX_LOGIN_USERNAME = 200  # a username looked up (accounts made before the 64 limit)
MAX_PASSWORD = 1000
MAX_ID = 64  # object ids, purpose ids, pseudonyms
MAX_JURISDICTION = 16
MAX_MODEL = 100
MAX_SERIAL = 100
MAX_CHANNEL_NAME = 32
MAX_CHANNELS = 512
MAX_PURPOSES = 20
MAX_REASON = 1000
MAX_NOTICE_VERSION = 1_000_000

Language = Literal["en", "zh-Hans", "es"]
Capacity = Literal["full", "lacking"]
Role = Literal["subject", "guardian", "clinician", "admin", "vendor", "app_owner", "auditor"]
GrantCapacity = Literal["self", "guardian", "legal_representative"]
Relationship = Literal["parent", "legal_guardian", "legal_representative"]
CriaStatus = Literal["none", "submitted", "approved"]
# Where an app is used (neurogate.consent.policy.DEPLOYMENT_CONTEXTS; a test keeps them equal).
DeploymentContext = Literal["clinical", "home", "education", "workplace", "research"]
NoticeVariant = Literal["plain", "child"]
Product = Literal[
    "raw", "filtered", "band_power", "focus_index", "relaxation_index", "signal_quality"
]
PRODUCT_COUNT = 6


def _normalised(max_length: int) -> AfterValidator:
    """The one identifier check, naming the field it guards."""

    def check(value: str, info: ValidationInfo) -> str:
        return normalise_identifier(value, field=info.field_name or "value",
                                    max_length=max_length)

    return AfterValidator(check)


def _iso_only(value: Any) -> Any:
    # A strict model would refuse a date string, a lax one a number of seconds:
    # take ISO 8601 text (or a date object from Python code) only.
    if isinstance(value, str | date):
        return value
    msg = f"It must be an ISO 8601 date or date-time string, but got {type(value).__name__}."
    raise ValueError(msg)


IsoDate = Annotated[date, Field(strict=False), BeforeValidator(_iso_only)]
IsoDateTime = Annotated[datetime, Field(strict=False), BeforeValidator(_iso_only)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
Password = Annotated[str, StringConstraints(min_length=10, max_length=MAX_PASSWORD)]
Username = Annotated[str, StringConstraints(min_length=3, max_length=MAX_USERNAME),
                     _normalised(MAX_USERNAME)]
LoginUsername = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LOGIN_USERNAME),
                          _normalised(MAX_LOGIN_USERNAME)]
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID),
                     _normalised(MAX_ID)]
PurposeId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID)]
Serial = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SERIAL),
                   _normalised(MAX_SERIAL)]
ChannelName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CHANNEL_NAME),
                        _normalised(MAX_CHANNEL_NAME)]
Jurisdiction = Annotated[str, StringConstraints(min_length=1, max_length=MAX_JURISDICTION)]
NoticeVersion = Annotated[int, Field(ge=1, le=MAX_NOTICE_VERSION)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- accounts and sessions ---------------------------------------------------------
class LoginRequest(_Strict):
    # Normalised as at registration, so that what a keyboard produced finds the account.
    username: LoginUsername
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class LoginResponse(BaseModel):
    session_token: str
    token_type: Literal["Bearer"] = "Bearer"
    account_id: str
    role: str
    idle_timeout_seconds: int
    absolute_timeout_seconds: int


class AccountCreate(_Strict):
    username: Username
    password: Password
    role: Role


class SubjectAccountCreate(_Strict):
    username: Username
    password: Password


class AccountPublic(_Out):
    id: str
    username: str
    role: str
    subject_id: str | None = None


# -- subjects ----------------------------------------------------------------------
class SubjectCreate(_Strict):
    display_name: Name | None = None
    date_of_birth: IsoDate
    jurisdiction: Jurisdiction = "CRC"
    preferred_language: Language = "en"
    capacity: Capacity = "full"


class SubjectUpdate(_Strict):
    display_name: Name | None | MISSING = MISSING
    date_of_birth: IsoDate | MISSING = MISSING
    jurisdiction: Jurisdiction | MISSING = MISSING
    preferred_language: Language | MISSING = MISSING
    capacity: Capacity | MISSING = MISSING


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
    guardian_username: LoginUsername
    relationship: Relationship = "parent"


class GuardianLinkPublic(_Out):
    id: str
    guardian_account_id: str
    subject_id: str
    relationship: str
    verified_by: str
    verified_at: datetime


class CareRelationshipCreate(_Strict):
    clinician_username: LoginUsername
    subject_id: ObjectId


class CareRelationshipPublic(_Out):
    id: str
    clinician_account_id: str
    subject_id: str
    created_at: datetime


# -- apps and devices --------------------------------------------------------------
class AppCreate(_Strict):
    name: Name
    commercial: bool
    declared_purposes: list[PurposeId] = Field(min_length=1, max_length=MAX_PURPOSES)
    deployment_context: DeploymentContext = Field(
        default="home",
        description="Where the app is used: clinical, home, education, workplace or research "
        "(default home). In EU profiles emotion inference is refused in education and "
        "workplace deployments unless the purpose is therapeutic (EU AI Act Art. 5(1)(f)).",
    )


class AppUpdate(_Strict):
    name: Name | MISSING = MISSING
    declared_purposes: Annotated[list[PurposeId], Field(min_length=1, max_length=MAX_PURPOSES)
                                 ] | MISSING = MISSING
    cria_status: CriaStatus | MISSING = MISSING
    suspended: bool | MISSING = MISSING
    deployment_context: DeploymentContext | MISSING = MISSING


class AppPublic(_Out):
    id: str
    name: str
    commercial: bool
    declared_purposes: list[str]
    cria_status: str
    suspended: bool
    deployment_context: str


class ClientCredentials(BaseModel):
    client_id: str
    client_secret: str
    token_endpoint: str = "/oauth/token"


class AppCreated(BaseModel):
    app: AppPublic
    credentials: ClientCredentials


ChannelType = Literal["eeg", "eog", "ecg", "emg", "misc", "stim", "resp", "seeg", "ecog", "dbs"]


class DeviceCreate(_Strict):
    model: str = Field(min_length=1, max_length=MAX_MODEL)
    serial: Serial
    channel_names: list[ChannelName] = Field(min_length=1, max_length=MAX_CHANNELS)
    channel_types: list[ChannelType] = Field(min_length=1, max_length=MAX_CHANNELS)
    # The streaming pipeline needs at least 64 Hz (a 1-40 Hz band and a notch).
    sampling_rate: float = Field(ge=64, le=100_000, allow_inf_nan=False)


class PairingCreate(_Strict):
    subject_id: ObjectId


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

    version: NoticeVersion
    language: Language
    variant: NoticeVariant = "plain"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ConsentCreate(_Strict):
    subject_id: ObjectId
    app_id: ObjectId
    purpose_id: PurposeId
    products: list[Product] | None = Field(default=None, min_length=1, max_length=PRODUCT_COUNT)
    notice: NoticeShown
    valid_until: IsoDateTime | None = None
    # Only when a clinician records a consent given in person:
    capacity: GrantCapacity | None = None
    guardian_account_id: ObjectId | None = None
    assent: Literal["given", "dissent"] | None = None


class ConnectionCreate(_Strict):
    app_id: ObjectId


class AssentRecord(_Strict):
    assent: Literal["given", "dissent"]


class RevokeRequest(_Strict):
    reason: str | None = Field(default=None, max_length=MAX_REASON)


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
    app_id: ObjectId
    subject: ObjectId  # a subject id, or the calling app's pseudonym of the subject
    purpose_id: PurposeId
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
    "MAX_CHANNELS",
    "MAX_CHANNEL_NAME",
    "MAX_ID",
    "MAX_JURISDICTION",
    "MAX_LOGIN_USERNAME",
    "MAX_MODEL",
    "MAX_NAME",
    "MAX_NOTICE_VERSION",
    "MAX_PASSWORD",
    "MAX_PURPOSES",
    "MAX_REASON",
    "MAX_SERIAL",
    "MAX_USERNAME",
    "NoticeShown",
    "PRODUCT_COUNT",
    "PairingCreate",
    "RevokeRequest",
    "SubjectAccountCreate",
    "SubjectCreate",
    "SubjectPublic",
    "SubjectUpdate",
]
