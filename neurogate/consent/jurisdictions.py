"""Jurisdiction profiles (age of majority, assent age, consent lifetime, extra forbids) and ages.

The profiles are data (``jurisdictions.toml`` beside this module), to be reviewed by
counsel; the policies in ``policies/*.cedar`` read the facts derived from them.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from types import MappingProxyType
from typing import Any, NoReturn

from neurogate.consent.purposes import FLAGS, _check_option, _quote_list
from neurogate.errors import ValidationError

DEFAULT_PROFILE = "CRC"
MAX_CONSENT_LIFETIME_MONTHS = 24

_SOURCE = "jurisdictions.toml"
_KEYS = (
    "name",
    "age_of_majority",
    "assent_age",
    "consent_lifetime_months",
    "extra_forbidden_for_minors",
    "basis",
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


def _profile(code: str, data: Any) -> Profile:
    where = f"profile {code!r}"
    if not isinstance(data, dict) or set(data) != set(_KEYS):
        _invalid(where, f"must be a table with exactly the keys {_quote_list(_KEYS)}.")
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
    return Profile(
        code=code,
        name=data["name"],
        age_of_majority=majority,
        assent_age=assent,
        consent_lifetime_months=lifetime,
        extra_forbidden_for_minors=frozenset(extra),
        basis=data["basis"],
    )


def parse_profiles(text: str) -> Mapping[str, Profile]:
    """Parse and validate profiles from TOML text (``load_profiles`` reads the shipped ones)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"Invalid {_SOURCE}: it is not valid TOML ({exc})."
        raise ValidationError(msg) from exc
    profiles = data.get("profile")
    if set(data) != {"profile"} or not isinstance(profiles, dict):
        _invalid("the top level", "must hold only [profile.<code>] tables.")
    parsed = {code: _profile(code, entry) for code, entry in profiles.items()}
    if DEFAULT_PROFILE not in parsed:
        _invalid("the top level", f"must define the default profile {DEFAULT_PROFILE!r}.")
    return MappingProxyType(parsed)


@functools.cache
def load_profiles() -> Mapping[str, Profile]:
    """Every shipped profile by code, read and validated once per process."""
    text = resources.files("neurogate.consent").joinpath(_SOURCE).read_text(encoding="utf-8")
    return parse_profiles(text)


def profile_codes() -> tuple[str, ...]:
    """Codes of the shipped profiles, in file order."""
    return tuple(load_profiles())


def get_profile(code: str) -> Profile:
    """The profile ``code``; an unknown code raises a ValidationError naming the codes."""
    profiles = load_profiles()
    _check_option("jurisdiction", code, profiles)
    return profiles[code]


__all__ = [
    "DEFAULT_PROFILE",
    "MAX_CONSENT_LIFETIME_MONTHS",
    "Profile",
    "add_months",
    "age_on",
    "anniversary",
    "get_profile",
    "lifetime_months",
    "load_profiles",
    "parse_profiles",
    "profile_codes",
]
