"""Tests for the purposes catalog (neurogate.consent.purposes and purposes.toml)."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import pytest

from neurogate.consent.disclosure import load_figures, measured_sentence
from neurogate.consent.purposes import (
    BUDGET_FIELDS,
    FEATURE_PRODUCTS,
    LANGUAGES,
    PRODUCTS,
    VARIANTS,
    Notice,
    Resolution,
    load_catalog,
    parse_catalog,
)
from neurogate.errors import ValidationError

SHIPPED = resources.files("neurogate.consent").joinpath("purposes.toml").read_text("utf-8")
REQUIRED = (
    "clinical_monitoring",
    "neurofeedback",
    "sleep_wellness",
    "research_noncommercial",
    "commercial_model_training",
    "neuromarketing",
)


def test_catalog_loads_once_with_required_purposes() -> None:
    """The shipped catalog parses, is cached, and holds the required purposes."""
    catalog = load_catalog()
    assert catalog is load_catalog()
    assert catalog.version == 3
    assert set(REQUIRED) <= set(catalog.ids())
    assert [p.id for p in catalog.all()] == list(catalog.ids())


def test_constants_name_the_products_and_languages() -> None:
    """The product, language and variant names are the documented ones."""
    assert PRODUCTS == (
        "raw", "filtered", "band_power", "focus_index", "relaxation_index", "signal_quality",
    )
    assert LANGUAGES == ("en", "zh-Hans", "es")
    assert VARIANTS == ("plain", "child")


@pytest.mark.parametrize("purpose_id", load_catalog().ids())
def test_purpose_has_every_notice(purpose_id: str) -> None:
    """Each purpose has a titled notice in 3 languages x 2 variants, hashed over its text."""
    purpose = load_catalog().get(purpose_id)
    texts = set()
    for language in LANGUAGES:
        for variant in VARIANTS:
            notice = purpose.notice(language, variant)
            assert isinstance(notice, Notice)
            assert (notice.purpose_id, notice.language, notice.variant) == (
                purpose_id, language, variant,
            )
            assert notice.version == purpose.notice_version >= 1
            assert notice.title.strip()
            assert notice.sha256 == hashlib.sha256(notice.text.encode("utf-8")).hexdigest()
            texts.add(notice.text)
    assert len(texts) == len(LANGUAGES) * len(VARIANTS)


@pytest.mark.parametrize("purpose_id", load_catalog().ids())
def test_notice_plain_text_says_consent_can_be_withdrawn(purpose_id: str) -> None:
    """Every adult notice says consent can be withdrawn at any time, in each language."""
    purpose = load_catalog().get(purpose_id)
    assert "withdraw your consent at any time" in purpose.notice("en", "plain").text
    assert "随时撤回同意" in purpose.notice("zh-Hans", "plain").text
    assert "retirar tu consentimiento en cualquier momento" in purpose.notice("es").text


@pytest.mark.parametrize("purpose_id", load_catalog().ids())
def test_notice_child_text_uses_short_sentences(purpose_id: str) -> None:
    """English child notices keep every sentence to 16 words or fewer."""
    text = load_catalog().get(purpose_id).notice("en", "child").text
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s]
    assert max(len(s.split()) for s in sentences) <= 16


@pytest.mark.parametrize(
    ("purpose_id", "flags"),
    [
        ("clinical_monitoring", {"therapeutic"}),
        ("neurofeedback", set()),
        ("sleep_wellness", set()),
        ("research_noncommercial", {"research"}),
        ("commercial_model_training", {"commercial", "model_training"}),
        ("neuromarketing", {"commercial", "marketing", "emotion_inference"}),
        ("mood_tracking", {"emotion_inference"}),
        ("partner_data_sharing", {"commercial", "sale_or_sharing"}),
        ("clinical_mood_assessment", {"therapeutic", "emotion_inference"}),
        ("political_marketing", {"commercial", "marketing"}),
        ("insurance_pricing", {"commercial"}),
        ("employment_screening", {"commercial"}),
    ],
)
def test_purpose_flags(purpose_id: str, flags: set[str]) -> None:
    """Each purpose sets exactly its documented flags."""
    purpose = load_catalog().get(purpose_id)
    assert purpose.flags.as_set() == flags
    assert purpose.flags.therapeutic == ("therapeutic" in flags)


@pytest.mark.parametrize(
    ("purpose_id", "products"),
    [
        ("clinical_monitoring", {"raw": "electrodes", "filtered": "electrodes",
                                 "band_power": "electrodes", "signal_quality": "electrodes"}),
        ("neurofeedback", {"focus_index": "global", "relaxation_index": "global",
                           "signal_quality": "global"}),
        ("sleep_wellness", {"band_power": "regions", "signal_quality": "regions"}),
        ("research_noncommercial", {"filtered": "electrodes", "band_power": "electrodes",
                                    "signal_quality": "electrodes"}),
        ("commercial_model_training", {"band_power": "regions"}),
        ("neuromarketing", {"band_power": "regions", "focus_index": "global"}),
    ],
)
def test_purpose_products_and_channels(purpose_id: str, products: dict[str, str]) -> None:
    """Each purpose lists exactly its products, at the documented channel level."""
    purpose = load_catalog().get(purpose_id)
    assert {name: r.channels for name, r in purpose.products.items()} == products
    assert list(purpose.products) == [p for p in PRODUCTS if p in products]


def test_feature_products_use_windows_of_a_second_or_more() -> None:
    """band_power and the indices never summarise less than one second of signal."""
    for purpose in load_catalog().all():
        for name, resolution in purpose.products.items():
            assert isinstance(resolution, Resolution)
            assert resolution.output_rate_hz > 0
            if name in FEATURE_PRODUCTS:
                assert resolution.window_s >= 1.0


@pytest.mark.parametrize(
    ("purpose_id", "duo", "dpv"),
    [
        ("clinical_monitoring", ("DUO:0000043",), "dpv:ServiceProvision"),
        ("research_noncommercial", ("DUO:0000042", "DUO:0000046"), "dpv:NonCommercialResearch"),
        ("neuromarketing", (), "dpv:Marketing"),
        ("partner_data_sharing", (), "dpv:SellDataToThirdParties"),
    ],
)
def test_purpose_codes(purpose_id: str, duo: tuple[str, ...], dpv: str) -> None:
    """DUO and DPV codes describe each use."""
    purpose = load_catalog().get(purpose_id)
    assert set(duo) <= set(purpose.duo)
    assert dpv in purpose.dpv
    assert all(re.fullmatch(r"DUO:\d{7}", code) for code in purpose.duo)


def test_catalog_get_unknown_purpose_names_the_allowed_ids() -> None:
    """An unknown purpose id gives the documented sentence, word for word."""
    with pytest.raises(ValidationError) as caught:
        load_catalog().get("mind_reading")
    assert caught.value.field == "purpose_id"
    assert caught.value.message == (
        "Invalid value for the 'purpose_id' parameter. Allowed values are "
        "'clinical_monitoring', 'neurofeedback', 'sleep_wellness', 'research_noncommercial', "
        "'commercial_model_training', 'neuromarketing', 'mood_tracking', "
        "'partner_data_sharing', 'clinical_mood_assessment', 'political_marketing', "
        "'insurance_pricing', and 'employment_screening', but got 'mind_reading' instead."
    )


@pytest.mark.parametrize(
    ("language", "variant", "message"),
    [
        ("fr", "plain", "Invalid value for the 'language' parameter. Allowed values are 'en', "
                        "'zh-Hans', and 'es', but got 'fr' instead."),
        ("en", "teen", "Invalid value for the 'variant' parameter. Allowed values are 'plain' "
                       "and 'child', but got 'teen' instead."),
    ],
)
def test_notice_rejects_unknown_language_or_variant(
    language: str, variant: str, message: str
) -> None:
    """Unknown languages and variants give the documented sentence."""
    with pytest.raises(ValidationError) as caught:
        load_catalog().get("neurofeedback").notice(language, variant)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('window_s = 4.0\noutput_rate_hz = 0.25\nchannels = "regions"',
         'window_s = 0.5\noutput_rate_hz = 0.25\nchannels = "regions"',
         "Invalid purposes.toml: purpose 'commercial_model_training' products.band_power."
         "window_s must be >= 1.0, but got 0.5."),
        ('channels = "global"', 'channels = "lobes"',
         "Invalid purposes.toml: purpose 'neurofeedback' products.focus_index.channels must be "
         "one of 'electrodes', 'regions', and 'global', but got 'lobes'."),
        ("[purpose.products.raw]", "[purpose.products.p300]",
         "Invalid purposes.toml: purpose 'clinical_monitoring' products.p300 must be one of "
         "'raw', 'filtered', 'band_power', 'focus_index', 'relaxation_index', and "
         "'signal_quality', but got 'p300'."),
        ("therapeutic = true", 'therapeutic = "yes"',
         "Invalid purposes.toml: purpose 'clinical_monitoring' flags.therapeutic must be true "
         "or false, but got 'yes'."),
        ("retention_days = 30", "retention_days = -1",
         "Invalid purposes.toml: purpose 'clinical_monitoring' retention_days must be an "
         "integer >= 0, but got -1."),
        ('duo = ["DUO:0000043"]', 'duo = ["clinical"]',
         "Invalid purposes.toml: purpose 'clinical_monitoring' duo must hold codes like "
         "'DUO:0000046', but got 'clinical'."),
        ("window_s = 0.004", "window_s = 0.25",
         "Invalid purposes.toml: purpose 'clinical_monitoring' products.raw.window_s must be "
         "one sample period, 1 / 250 Hz, but got 0.25."),
        ('id = "neurofeedback"', 'id = "clinical_monitoring"',
         "Invalid purposes.toml: purpose[1].id repeats the id 'clinical_monitoring'."),
    ],
    ids=[
        "short-window", "channels", "product", "flag", "retention", "duo", "sample-window",
        "duplicate",
    ],
)
def test_parse_catalog_rejects_bad_data(old: str, new: str, message: str) -> None:
    """A mistake in the catalog fails loudly with a sentence naming the field."""
    assert old in SHIPPED
    with pytest.raises(ValidationError) as caught:
        parse_catalog(SHIPPED.replace(old, new, 1))
    assert caught.value.message == message


EVENT_TIMING = {"clinical_monitoring", "research_noncommercial", "neuromarketing"}


@pytest.mark.parametrize("purpose_id", load_catalog().ids())
def test_purpose_declares_its_privacy_budget(purpose_id: str) -> None:
    """Every purpose says whether it needs event timing and carries a budget and a floor."""
    budget = load_catalog().get(purpose_id).budget
    assert budget.needs_event_timing == (purpose_id in EVENT_TIMING)
    assert budget.utility_r_min == 0.99
    if budget.needs_event_timing:
        assert budget.leakage_auc_max == 1.0
    else:
        assert budget.leakage_auc_max == 0.55


@pytest.mark.parametrize("name", BUDGET_FIELDS)
def test_parse_catalog_refuses_a_purpose_without_its_budget(name: str) -> None:
    """A purpose lacking a budget field is refused with a sentence naming purpose and field."""
    kept = SHIPPED.splitlines(keepends=True)
    first = next(i for i, line in enumerate(kept) if line.startswith(f"{name} = "))
    broken = "".join(kept[:first] + kept[first + 1:])
    with pytest.raises(ValidationError) as caught:
        parse_catalog(broken)
    assert caught.value.message == (
        f"Invalid purposes.toml: purpose 'clinical_monitoring' {name} is missing; every "
        "purpose declares 'needs_event_timing', 'leakage_auc_max', and 'utility_r_min' (see "
        "the header of purposes.toml).")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("needs_event_timing = true", 'needs_event_timing = "yes"',
         "Invalid purposes.toml: purpose 'clinical_monitoring' needs_event_timing must be "
         "true or false, but got 'yes'."),
        ("leakage_auc_max = 0.55", "leakage_auc_max = 0.4",
         "Invalid purposes.toml: purpose 'neurofeedback' leakage_auc_max must be a number "
         "from 0.5 to 1, but got 0.4."),
        ("leakage_auc_max = 0.55", "leakage_auc_max = 1.0",
         "Invalid purposes.toml: purpose 'neurofeedback' leakage_auc_max must be below 1.0 "
         "for a purpose that needs no event timing (it bounds what the app can infer), but "
         "got 1.0."),
        ("utility_r_min = 0.99", "utility_r_min = 1.5",
         "Invalid purposes.toml: purpose 'clinical_monitoring' utility_r_min must be a number "
         "from 0 to 1, but got 1.5."),
    ],
    ids=["timing", "auc-below-chance", "auc-unbounded", "utility"],
)
def test_parse_catalog_rejects_bad_budgets(old: str, new: str, message: str) -> None:
    """A budget outside its range is refused, naming the purpose, the field and the range."""
    assert old in SHIPPED
    with pytest.raises(ValidationError) as caught:
        parse_catalog(SHIPPED.replace(old, new, 1))
    assert caught.value.message == message


@pytest.mark.parametrize("purpose_id", load_catalog().ids())
def test_notice_states_the_measured_figure_in_every_language(purpose_id: str) -> None:
    """Every purpose is measured, and its notices end with its figure in every language."""
    figures = load_figures().get(purpose_id)
    assert figures is not None, (
        f"{purpose_id} is not in leakage_figures.json: measure it with `neurogate bench "
        "leakage` (it writes the file) and commit the figures")
    purpose = load_catalog().get(purpose_id)
    auc = f"{figures['worst_auc']:.2f}"
    for language in LANGUAGES:
        for variant in VARIANTS:
            text = purpose.notice(language, variant).text
            assert text.endswith(measured_sentence(figures, language, variant))
        shown = auc.replace(".", ",") if language == "es" else auc
        assert shown in purpose.notice(language).text
    if not purpose.budget.needs_event_timing and figures["keeps_leakage_budget"]:
        assert "no better than a coin toss" in purpose.notice("en").text


def test_notice_figure_follows_the_figures_given() -> None:
    """The figure in a notice comes from the measured data, not from the catalog text."""
    figures = {"neurofeedback": {"needs_event_timing": False, "worst_auc": 0.61,
                                 "worst_auc_ci_high": 0.7, "leakage_auc_max": 0.55,
                                 "utility_r": 0.999, "utility_r_min": 0.99}}
    catalog = parse_catalog(SHIPPED, figures)
    text = catalog.get("neurofeedback").notice("en").text
    assert text.endswith("a little better than a coin toss (a score of 0.61, where 0.50 is a "
                         "coin toss and 1.00 is always right).")
    assert "0,61" in catalog.get("neurofeedback").notice("es").text
    assert "coin" not in parse_catalog(SHIPPED, {}).get("neurofeedback").notice("en").text


def test_parse_catalog_rejects_missing_notice_text() -> None:
    """A notice lacking a child text is refused."""
    broken = SHIPPED.replace('\nchild = """', '\nkid = """', 1)
    with pytest.raises(ValidationError, match=r"clinical_monitoring' notice.en lacks 'child'"):
        parse_catalog(broken)
