"""Tests for jurisdiction profiles and ages (neurogate.consent.jurisdictions)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurogate.consent.jurisdictions import (
    DEFAULT_PROFILE,
    MAX_CONSENT_LIFETIME_MONTHS,
    add_months,
    age_on,
    anniversary,
    get_profile,
    lifetime_months,
    parse_profiles,
    profile_codes,
)
from neurogate.errors import ValidationError

SHIPPED = resources.files("neurogate.consent").joinpath("jurisdictions.toml").read_text("utf-8")


def test_profiles_load_with_crc_as_default() -> None:
    """The shipped profiles: CRC (the default), five US states, the EU and three members, Chile."""
    assert profile_codes() == (
        "CRC", "US-CA", "US-CO", "US-MT", "US-CT", "EU", "EU-DE", "EU-FR", "EU-ES", "CL",
    )
    assert DEFAULT_PROFILE == "CRC"
    crc = get_profile("CRC")
    assert (crc.age_of_majority, crc.assent_age, crc.consent_lifetime_months) == (18, 7, 24)
    assert crc.extra_forbidden_for_minors == frozenset()


@pytest.mark.parametrize(
    ("code", "field", "value"),
    [
        ("US-CA", "consent_lifetime_months", 12),
        ("US-CO", "assent_age", 12),
        ("US-MT", "extra_forbidden_for_minors", frozenset({"research"})),
    ],
)
def test_profile_differs_from_crc(code: str, field: str, value: object) -> None:
    """Each US profile changes one threshold away from the CRC default."""
    assert getattr(get_profile(code), field) == value
    assert getattr(get_profile("CRC"), field) != value


@pytest.mark.parametrize("code", profile_codes())
def test_profile_lifetime_never_above_24_months(code: str) -> None:
    """No profile lets a consent last more than 24 months."""
    profile = get_profile(code)
    assert 1 <= profile.consent_lifetime_months <= MAX_CONSENT_LIFETIME_MONTHS == 24
    assert profile.basis


@pytest.mark.parametrize(
    ("code", "age", "minor", "assent"),
    [
        ("CRC", 6, True, False),
        ("CRC", 7, True, True),
        ("CRC", 17, True, True),
        ("CRC", 18, False, False),
        ("US-CO", 11, True, False),
        ("US-CO", 12, True, True),
    ],
)
def test_profile_minor_and_assent(code: str, age: int, minor: bool, assent: bool) -> None:
    """Minority and the assent requirement follow the profile's thresholds."""
    profile = get_profile(code)
    assert profile.is_minor(age) is minor
    assert profile.assent_required(age) is assent


def test_get_profile_unknown_code_names_the_codes() -> None:
    """An unknown code gives the documented sentence, word for word."""
    with pytest.raises(ValidationError) as caught:
        get_profile("FR")
    assert caught.value.field == "jurisdiction"
    assert caught.value.message == (
        "Invalid value for the 'jurisdiction' parameter. Allowed values are 'CRC', 'US-CA', "
        "'US-CO', 'US-MT', 'US-CT', 'EU', 'EU-DE', 'EU-FR', 'EU-ES', and 'CL', "
        "but got 'FR' instead."
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("consent_lifetime_months = 12", "consent_lifetime_months = 36",
         "Invalid jurisdictions.toml: profile 'US-CA' consent_lifetime_months must be an "
         "integer from 1 to 24, but got 36."),
        ("assent_age = 12", "assent_age = 18",
         "Invalid jurisdictions.toml: profile 'US-CO' assent_age must be an integer from 0 "
         "to 17, but got 18."),
        ('extra_forbidden_for_minors = ["research"]', 'extra_forbidden_for_minors = ["games"]',
         "Invalid jurisdictions.toml: profile 'US-MT' extra_forbidden_for_minors must be a "
         "list of purpose flags ('therapeutic', 'commercial', 'marketing', "
         "'emotion_inference', 'model_training', 'research', and 'sale_or_sharing'), "
         "but got ['games']."),
        ("[profile.CRC]", "[profile.UN]",
         "Invalid jurisdictions.toml: the top level must define the default profile 'CRC'."),
        ('laws = ["us_mt"]', 'laws = ["hipaa"]',
         "Invalid jurisdictions.toml: profile 'US-MT' laws must be a list of law rule sets "
         "('gdpr', 'ai_act', and 'us_mt'), but got ['hipaa']."),
        ("digital_consent_age = 14", "digital_consent_age = 19",
         "Invalid jurisdictions.toml: profile 'EU-ES' digital_consent_age must be an integer "
         "from 0 to 18, but got 19."),
        ("teen_protection_ages = [13, 17]", "teen_protection_ages = [17, 13]",
         "Invalid jurisdictions.toml: profile 'US-CT' teen_protection_ages must be [lowest, "
         "highest] ages from 0 to 25, but got [17, 13]."),
        ("teen_protection_from = 2026-07-01", 'teen_protection_from = "July"',
         "Invalid jurisdictions.toml: profile 'US-CT' teen_protection_from must be a TOML date "
         "such as 2026-07-01, but got 'July'."),
        ("[profile.CL]\n", '[profile.CL]\nallowed_restricted_purposes = ["mind_reading"]\n',
         "Invalid jurisdictions.toml: profile 'CL' allowed_restricted_purposes must be a list "
         "of restricted purposes ('political_marketing', 'insurance_pricing', and "
         "'employment_screening'), but got ['mind_reading']."),
        ("request_deadline_days = { delete = 30, limit_use = 30, access = 30 }",
         "request_deadline_days = { delete = 10 }",
         "Invalid jurisdictions.toml: profile 'CL' request_deadline_days must be a table with "
         "exactly the keys 'delete', 'limit_use', and 'access', but got {'delete': 10}."),
        ("access_free_of_charge = true", 'access_free_of_charge = "yes"',
         "Invalid jurisdictions.toml: profile 'CL' access_free_of_charge must be true or false, "
         "but got 'yes'."),
        ("[profile.CL]\n", "[profile.CL]\nfee = 0\n",
         "Invalid jurisdictions.toml: profile 'CL' must be a table with exactly the keys "
         "'name', 'age_of_majority', 'assent_age', 'consent_lifetime_months', "
         "'extra_forbidden_for_minors', and 'basis' and optionally 'laws', "
         "'digital_consent_age', 'teen_protection_ages', 'teen_protection_from', "
         "'allowed_restricted_purposes', 'request_deadline_days', and 'access_free_of_charge'."),
    ],
    ids=["lifetime", "assent", "extra", "no-default", "laws", "digital-age", "teen-ages",
         "teen-from", "restricted", "deadlines", "free", "unknown-key"],
)
def test_parse_profiles_rejects_bad_data(old: str, new: str, message: str) -> None:
    """A mistake in the profiles fails loudly with a sentence naming the field."""
    assert old in SHIPPED
    with pytest.raises(ValidationError) as caught:
        parse_profiles(SHIPPED.replace(old, new, 1))
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("born", "today", "age"),
    [
        (date(2008, 6, 15), date(2026, 6, 15), 18),
        (date(2008, 6, 16), date(2026, 6, 15), 17),
        (date(2008, 6, 14), date(2026, 6, 15), 18),
        (date(2008, 2, 29), date(2026, 2, 28), 17),
        (date(2008, 2, 29), date(2026, 3, 1), 18),
        (date(2008, 2, 29), date(2028, 2, 28), 19),
        (date(2008, 2, 29), date(2028, 2, 29), 20),
        (date(2026, 6, 15), date(2026, 6, 15), 0),
    ],
)
def test_age_on_counts_whole_years(born: date, today: date, age: int) -> None:
    """Birthdays count from the day itself; 29 February birthdays fall on 1 March."""
    assert age_on(born, today) == age


@given(born=st.dates(date(1900, 1, 1), date(2020, 12, 31)), years=st.integers(1, 100))
def test_age_on_changes_exactly_on_the_anniversary(born: date, years: int) -> None:
    """On the anniversary the age is reached; the day before it is not."""
    birthday = anniversary(born, years)
    assert age_on(born, birthday) == years
    assert age_on(born, birthday - timedelta(days=1)) == years - 1


@pytest.mark.parametrize(
    ("born", "message"),
    [
        (date(2030, 1, 1), "Invalid value for the 'date_of_birth' parameter. It must not be "
                           "after 2026-06-15, but got '2030-01-01' instead."),
        (datetime(2000, 1, 1, tzinfo=UTC),
         "Invalid value for the 'date_of_birth' parameter. It must be a date, but got "
         "datetime.datetime(2000, 1, 1, 0, 0, tzinfo=datetime.timezone.utc) instead."),
    ],
    ids=["future", "datetime"],
)
def test_age_on_rejects_bad_birth_dates(born: date, message: str) -> None:
    """A birth date in the future, or a datetime, is refused with a clear sentence."""
    with pytest.raises(ValidationError) as caught:
        age_on(born, date(2026, 6, 15))
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (datetime(2026, 1, 31, 9, tzinfo=UTC), 1, datetime(2026, 2, 28, 9, tzinfo=UTC)),
        (datetime(2024, 1, 31, 9, tzinfo=UTC), 1, datetime(2024, 2, 29, 9, tzinfo=UTC)),
        (datetime(2026, 6, 15, 12, tzinfo=UTC), 24, datetime(2028, 6, 15, 12, tzinfo=UTC)),
        (datetime(2026, 11, 30, tzinfo=UTC), 3, datetime(2027, 2, 28, tzinfo=UTC)),
    ],
)
def test_add_months_clamps_to_month_end(start: datetime, months: int, end: datetime) -> None:
    """Adding months keeps the time and clamps the day to the month's last day."""
    assert add_months(start, months) == end


@given(
    start=st.datetimes(datetime(2000, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC)),
    months=st.integers(1, 36),
)
def test_lifetime_months_rounds_started_months_up(start: datetime, months: int) -> None:
    """A consent of n calendar months lasts n months; one second more starts month n + 1."""
    end = add_months(start, months)
    assert lifetime_months(start, end) == months
    assert lifetime_months(start, end + timedelta(seconds=1)) == months + 1


@pytest.mark.parametrize(
    ("code", "self_consent_age", "laws"),
    [
        ("CRC", 18, frozenset()),
        ("EU", 16, frozenset({"gdpr", "ai_act"})),
        ("EU-DE", 16, frozenset({"gdpr", "ai_act"})),
        ("EU-FR", 15, frozenset({"gdpr", "ai_act"})),
        ("EU-ES", 14, frozenset({"gdpr", "ai_act"})),
        ("US-MT", 18, frozenset({"us_mt"})),
    ],
)
def test_profile_digital_consent_age_and_laws(
    code: str, self_consent_age: int, laws: frozenset[str]
) -> None:
    """EU profiles set their GDPR Art. 8 age; elsewhere a minor never consents alone."""
    profile = get_profile(code)
    assert profile.self_consent_age == self_consent_age
    assert profile.laws == laws
    assert profile.age_of_majority == 18


def test_profile_connecticut_teen_protection() -> None:
    """US-CT protects ages 13 to 17 from 2026-07-01; no other profile has that rule."""
    ct = get_profile("US-CT")
    assert ct.teen_protection_ages == (13, 17)
    assert ct.teen_protection_from == date(2026, 7, 1)
    others = [code for code in profile_codes() if get_profile(code).teen_protection_ages]
    assert others == ["US-CT"]


@pytest.mark.parametrize(
    ("code", "days", "free"),
    [("CRC", 30, True), ("US-CA", 45, True), ("US-CT", 45, True), ("EU-FR", 30, True),
     ("CL", 30, True)],
)
def test_profile_request_deadlines(code: str, days: int, free: bool) -> None:
    """Each kind of request has its deadline in days; California's is 45 (Civ. Code 1798.130)."""
    profile = get_profile(code)
    assert dict(profile.request_deadline_days) == dict.fromkeys(
        ("delete", "limit_use", "access"), days)
    assert profile.access_free_of_charge is free


def test_restricted_purposes_are_catalog_purposes_allowed_nowhere() -> None:
    """The UNESCO purposes exist in the catalog and no shipped profile allows them."""
    from neurogate.consent.jurisdictions import restricted_purposes
    from neurogate.consent.purposes import load_catalog

    assert restricted_purposes() == (
        "political_marketing", "insurance_pricing", "employment_screening")
    assert set(restricted_purposes()) <= set(load_catalog().ids())
    assert all(not get_profile(c).allowed_restricted_purposes for c in profile_codes())


def test_header_documents_every_key() -> None:
    """The header comment of jurisdictions.toml names every key a profile may carry."""
    from neurogate.consent.jurisdictions import _KEYS, _OPTIONAL

    header = SHIPPED.split("\n[", 1)[0]
    for key in (*_KEYS, *_OPTIONAL, "restricted_purposes"):
        assert f"#   {key} " in header or f"#   {key}\n" in header, key


def test_interop_doc_lists_every_profile_and_law_derived_rule() -> None:
    """docs/interop.md names every shipped profile and every law-derived rule with its source."""
    from pathlib import Path

    from neurogate.consent.policy import policy_ids, reason_source

    text = (Path(__file__).parents[2] / "docs" / "interop.md").read_text("utf-8")
    section = text.split("## Jurisdictions and the law the rules follow", 1)[1]
    for code in profile_codes():
        assert f"| `{code}`" in section, code
    for rule in policy_ids():
        source = reason_source(rule)
        if source is not None:
            assert f"| `{rule}` |" in section, rule
            line = next(row for row in section.splitlines() if row.startswith(f"| `{rule}` |"))
            assert line.endswith(f"| {source} |"), rule
    for code in profile_codes():
        profile = get_profile(code)
        row = next(r for r in section.splitlines() if r.startswith(f"| `{code}`"))
        days = " / ".join(str(profile.request_deadline_days[k])
                          for k in ("delete", "limit_use", "access"))
        assert f"| {days} |" in row, code


def test_profiles_are_hashable_values() -> None:
    """A profile can key a cache or a set, as it could before it carried deadlines."""
    profiles = {get_profile(code) for code in profile_codes()}
    assert len(profiles) == len(profile_codes())
