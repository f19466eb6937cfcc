"""Jurisdiction profiles (ages, consent lifetime, extra forbids, laws, deadlines) and ages.

The profiles are data (``jurisdictions.toml`` beside this module), to be reviewed by
counsel; the policies in ``policies/*.cedar`` read the facts derived from them, and
:mod:`neurogate.consent.duties` reads the deadlines of subjects' requests.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from types import MappingProxyType
from typing import Any, NoReturn

from neurogate.consent.purposes import FLAGS, _check_option, _quote_list
from neurogate.errors import ValidationError

DEFAULT_PROFILE = "CRC"
MAX_CONSENT_LIFETIME_MONTHS = 24
LAWS = ("gdpr", "ai_act", "us_mt")
REQUEST_KINDS = ("delete", "limit_use", "access")
DEFAULT_DEADLINE_DAYS = 30  # GDPR Art. 12(3): one month
_DEFAULT_DEADLINES = MappingProxyType(dict.fromkeys(REQUEST_KINDS, DEFAULT_DEADLINE_DAYS))

_SOURCE = "jurisdictions.toml"
_KEYS = (
    "name",
    "age_of_majority",
    "assent_age",
    "consent_lifetime_months",
    "extra_forbidden_for_minors",
    "basis",
)
_OPTIONAL = (
    "laws",
    "digital_consent_age",
    "teen_protection_ages",
    "teen_protection_from",
    "allowed_restricted_purposes",
    "request_deadline_days",
    "access_free_of_charge",
)


@dataclass(frozen=True)
class Profile:
    """The thresholds of one jurisdiction."""

    code: str
    name: str
    age_of_majority: int
    assent_age: int
    consent_lifetime_months: int
    extra_forbidden_for_minors: frozenset[str]
    basis: str
    laws: frozenset[str] = frozenset()
    digital_consent_age: int | None = None  # None: the age of majority
    teen_protection_ages: tuple[int, int] | None = None  # inclusive; None: no such rule
    teen_protection_from: date | None = None
    allowed_restricted_purposes: frozenset[str] = frozenset()
    request_deadline_days: Mapping[str, int] = field(
        default_factory=lambda: _DEFAULT_DEADLINES, hash=False
    )
    access_free_of_charge: bool = True

    @property
    def self_consent_age(self) -> int:
        """From this age a minor consents for themself (GDPR Art. 8), else majority."""
        if "gdpr" in self.laws and self.digital_consent_age is not None:
            return self.digital_consent_age
        return self.age_of_majority

    def is_minor(self, age: int) -> bool:
        """Whether someone of ``age`` whole years is a child under this profile."""
        return age < self.age_of_majority

    def assent_required(self, age: int) -> bool:
        """Whether a child of ``age`` must give (or refuse) their own assent."""
        return self.is_minor(age) and age >= self.assent_age


def anniversary(date_of_birth: date, years: int) -> date:
    """The day someone born on ``date_of_birth`` turns ``years`` old.

    Someone born on 29 February turns a year older on 1 March in a non-leap year.
    """
    try:
        return date_of_birth.replace(year=date_of_birth.year + years)
    except ValueError:  # 29 February in a non-leap year
        return date(date_of_birth.year + years, 3, 1)


def age_on(date_of_birth: date, today: date) -> int:
    """Age in whole years on ``today`` of someone born on ``date_of_birth``."""
    if not isinstance(date_of_birth, date) or isinstance(date_of_birth, datetime):
        msg = (
            f"Invalid value for the 'date_of_birth' parameter. It must be a date, "
            f"but got {date_of_birth!r} instead."
        )
        raise ValidationError(msg, field="date_of_birth")
    if today < date_of_birth:
        msg = (
            f"Invalid value for the 'date_of_birth' parameter. It must not be after "
            f"{today.isoformat()}, but got {date_of_birth.isoformat()!r} instead."
        )
        raise ValidationError(msg, field="date_of_birth")
    years = today.year - date_of_birth.year
    if today < anniversary(date_of_birth, years):
        years -= 1
    return years


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months, clamped to the last day of the month."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")  # noqa: EM101 - day 28 exists in every month


def lifetime_months(valid_from: datetime, valid_until: datetime) -> int:
    """Calendar months a consent lasts, counting a started month as a whole one."""
    months = (valid_until.year - valid_from.year) * 12 + valid_until.month - valid_from.month
    months = max(months, 0)
    while add_months(valid_from, months) < valid_until:
        months += 1
    while months > 0 and add_months(valid_from, months - 1) >= valid_until:
        months -= 1
    return months


def _invalid(where: str, problem: str) -> NoReturn:
    msg = f"Invalid {_SOURCE}: {where} {problem}"
    raise ValidationError(msg, field=where)


def _integer(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _invalid(where, f"must be an integer from {low} to {high}, but got {value!r}.")
    return value


def _names(value: Any, where: str, allowed: tuple[str, ...], what: str) -> frozenset[str]:
    if not isinstance(value, list) or any(item not in allowed for item in value):
        _invalid(where, f"must be a list of {what} ({_quote_list(allowed)}), but got {value!r}.")
    return frozenset(value)


def _deadlines(value: Any, where: str) -> Mapping[str, int]:
    if not isinstance(value, dict) or set(value) != set(REQUEST_KINDS):
        _invalid(where, f"must be a table with exactly the keys {_quote_list(REQUEST_KINDS)}, "
                        f"but got {value!r}.")
    return MappingProxyType({k: _integer(value[k], f"{where}.{k}", 1, 365) for k in REQUEST_KINDS})


def _teen(data: Mapping[str, Any], where: str) -> tuple[tuple[int, int] | None, date | None]:
    ages, since = data.get("teen_protection_ages"), data.get("teen_protection_from")
    if ages is None and since is None:
        return None, None
    if (not isinstance(ages, list) or len(ages) != 2
            or any(isinstance(a, bool) or not isinstance(a, int) for a in ages)
            or not 0 <= ages[0] <= ages[1] <= 25):
        _invalid(f"{where} teen_protection_ages",
                 f"must be [lowest, highest] ages from 0 to 25, but got {ages!r}.")
    if not isinstance(since, date) or isinstance(since, datetime):
        _invalid(f"{where} teen_protection_from",
                 f"must be a TOML date such as 2026-07-01, but got {since!r}.")
    return (ages[0], ages[1]), since


def _profile(code: str, data: Any, restricted: tuple[str, ...]) -> Profile:
    where = f"profile {code!r}"
    if (not isinstance(data, dict) or not set(_KEYS) <= set(data)
            or not set(data) <= {*_KEYS, *_OPTIONAL}):
        _invalid(where, f"must be a table with exactly the keys {_quote_list(_KEYS)} and "
                        f"optionally {_quote_list(_OPTIONAL)}.")
    majority = _integer(data["age_of_majority"], f"{where} age_of_majority", 1, 25)
    assent = _integer(data["assent_age"], f"{where} assent_age", 0, majority - 1)
    lifetime = _integer(
        data["consent_lifetime_months"],
        f"{where} consent_lifetime_months",
        1,
        MAX_CONSENT_LIFETIME_MONTHS,
    )
    extra = data["extra_forbidden_for_minors"]
    if not isinstance(extra, list) or any(flag not in FLAGS for flag in extra):
        _invalid(
            f"{where} extra_forbidden_for_minors",
            f"must be a list of purpose flags ({_quote_list(FLAGS)}), but got {extra!r}.",
        )
    for key in ("name", "basis"):
        if not isinstance(data[key], str) or not data[key].strip():
            _invalid(f"{where} {key}", f"must be a non-empty string, but got {data[key]!r}.")
    laws = _names(data.get("laws", []), f"{where} laws", LAWS, "law rule sets")
    digital = data.get("digital_consent_age")
    if digital is not None:
        digital = _integer(digital, f"{where} digital_consent_age", 0, majority)
    ages, since = _teen(data, where)
    allowed = _names(data.get("allowed_restricted_purposes", []),
                     f"{where} allowed_restricted_purposes", restricted, "restricted purposes")
    deadlines = _deadlines(
        data.get("request_deadline_days", dict.fromkeys(REQUEST_KINDS, DEFAULT_DEADLINE_DAYS)),
        f"{where} request_deadline_days",
    )
    free = data.get("access_free_of_charge", True)
    if not isinstance(free, bool):
        _invalid(f"{where} access_free_of_charge", f"must be true or false, but got {free!r}.")
    return Profile(
        code=code,
        name=data["name"],
        age_of_majority=majority,
        assent_age=assent,
        consent_lifetime_months=lifetime,
        extra_forbidden_for_minors=frozenset(extra),
        basis=data["basis"],
        laws=laws,
        digital_consent_age=digital,
        teen_protection_ages=ages,
        teen_protection_from=since,
        allowed_restricted_purposes=allowed,
        request_deadline_days=deadlines,
        access_free_of_charge=free,
    )


def _load(text: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"Invalid {_SOURCE}: it is not valid TOML ({exc})."
        raise ValidationError(msg) from exc
    if not set(data) <= {"profile", "restricted_purposes"} or not isinstance(
        data.get("profile"), dict
    ):
        _invalid("the top level", "must hold only restricted_purposes and [profile.<code>] tables.")
    return data


def parse_restricted_purposes(text: str) -> tuple[str, ...]:
    """The top-level ``restricted_purposes`` of TOML profiles text (default: none)."""
    value = _load(text).get("restricted_purposes", [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        _invalid("restricted_purposes", f"must be a list of purpose ids, but got {value!r}.")
    return tuple(value)


def parse_profiles(text: str) -> Mapping[str, Profile]:
    """Parse and validate profiles from TOML text (``load_profiles`` reads the shipped ones)."""
    profiles = _load(text)["profile"]
    restricted = parse_restricted_purposes(text)
    parsed = {code: _profile(code, entry, restricted) for code, entry in profiles.items()}
    if DEFAULT_PROFILE not in parsed:
        _invalid("the top level", f"must define the default profile {DEFAULT_PROFILE!r}.")
    return MappingProxyType(parsed)


def _shipped() -> str:
    return resources.files("neurogate.consent").joinpath(_SOURCE).read_text(encoding="utf-8")


@functools.cache
def load_profiles() -> Mapping[str, Profile]:
    """Every shipped profile by code, read and validated once per process."""
    return parse_profiles(_shipped())


@functools.cache
def restricted_purposes() -> tuple[str, ...]:
    """Purpose ids refused for everyone unless a profile allows them (never for minors)."""
    return parse_restricted_purposes(_shipped())


def profile_codes() -> tuple[str, ...]:
    """Codes of the shipped profiles, in file order."""
    return tuple(load_profiles())


def get_profile(code: str) -> Profile:
    """The profile ``code``; an unknown code raises a ValidationError naming the codes."""
    profiles = load_profiles()
    _check_option("jurisdiction", code, profiles)
    return profiles[code]


__all__ = [
    "DEFAULT_DEADLINE_DAYS",
    "DEFAULT_PROFILE",
    "LAWS",
    "MAX_CONSENT_LIFETIME_MONTHS",
    "REQUEST_KINDS",
    "Profile",
    "add_months",
    "age_on",
    "anniversary",
    "get_profile",
    "lifetime_months",
    "load_profiles",
    "parse_profiles",
    "parse_restricted_purposes",
    "profile_codes",
    "restricted_purposes",
]
