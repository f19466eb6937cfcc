"""The purposes catalog: why an app may receive neural data, what it receives, and the notice.

The catalog is data (``purposes.toml`` beside this module), read once with :mod:`tomllib`
and validated field by field, so a mistake in it fails loudly at start-up rather than
letting data flow under a half-read purpose.
"""

from __future__ import annotations

import functools
import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from types import MappingProxyType
from typing import Any, NoReturn

from neurogate.consent.disclosure import load_figures, measured_sentence
from neurogate.errors import ValidationError

LANGUAGES = ("en", "zh-Hans", "es")
VARIANTS = ("plain", "child")
PRODUCTS = ("raw", "filtered", "band_power", "focus_index", "relaxation_index", "signal_quality")
CHANNELS = ("electrodes", "regions", "global")
FLAGS = (
    "therapeutic",
    "commercial",
    "marketing",
    "emotion_inference",
    "model_training",
    "research",
    "sale_or_sharing",
)
# Products that summarise a stretch of signal: shorter windows would approach the raw signal.
FEATURE_PRODUCTS = ("band_power", "focus_index", "relaxation_index")
# Products delivered sample by sample: their window is one sample period.
SAMPLE_PRODUCTS = ("raw", "filtered")
MIN_FEATURE_WINDOW_S = 1.0
# A leakage budget is an attacker's ROC AUC: 0.5 is a coin toss, 1.0 always right.
CHANCE_AUC = 0.5

BUDGET_FIELDS = ("needs_event_timing", "leakage_auc_max", "utility_r_min")

_ID = re.compile(r"[a-z][a-z0-9_]*")
_DUO = re.compile(r"DUO:\d{7}")
_DPV = re.compile(r"dpv:[A-Z][A-Za-z]+")
_SOURCE = "purposes.toml"


def _quote_list(values: Iterable[object]) -> str:
    """``'a'``, ``'a' and 'b'`` or ``'a', 'b', and 'c'`` (as MNE ``_check_option`` does)."""
    quoted = [repr(v) for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def _check_option(name: str, value: object, allowed: Iterable[object]) -> None:
    """Raise :class:`ValidationError` unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value in allowed:
        return
    if len(allowed) == 1:
        options = f"The only allowed value is {allowed[0]!r}"
    else:
        options = f"Allowed values are {_quote_list(allowed)}"
    msg = f"Invalid value for the {name!r} parameter. {options}, but got {value!r} instead."
    raise ValidationError(msg, field=name)


@dataclass(frozen=True)
class Resolution:
    """How finely one data product is delivered for a purpose."""

    window_s: float
    output_rate_hz: float
    channels: str  # "electrodes" | "regions" | "global"

    def as_dict(self) -> dict[str, float | str]:
        """JSON-ready form."""
        return {
            "window_s": self.window_s,
            "output_rate_hz": self.output_rate_hz,
            "channels": self.channels,
        }


@dataclass(frozen=True)
class PrivacyBudget:
    """What a purpose may reveal beyond itself, and how well it must still serve its use.

    ``needs_event_timing`` is true where the use is the response to an event itself
    (clinical monitoring, research, neuromarketing). ``leakage_auc_max`` bounds the ROC
    AUC of an attacker telling, from what the app receives, when the subject reacted to
    something or to which kind of event (1.0: no bound). ``utility_r_min`` is the lowest
    correlation of each delivered product with its offline MNE computation.
    """

    needs_event_timing: bool
    leakage_auc_max: float
    utility_r_min: float


@dataclass(frozen=True)
class PurposeFlags:
    """What kind of use a purpose is; the Cedar policies read these."""

    therapeutic: bool
    commercial: bool
    marketing: bool
    emotion_inference: bool
    model_training: bool
    research: bool
    sale_or_sharing: bool

    def as_set(self) -> frozenset[str]:
        """Names of the flags that are set."""
        return frozenset(f.name for f in fields(self) if getattr(self, f.name))


@dataclass(frozen=True)
class Notice:
    """The exact text a person reads before consenting to a purpose."""

    purpose_id: str
    version: int
    language: str
    variant: str
    title: str
    text: str
    sha256: str = field(init=False)  # hex SHA-256 of the UTF-8 text: "the text shown"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.text.encode("utf-8")).hexdigest())


@dataclass(frozen=True)
class Purpose:
    """One purpose of the catalog."""

    id: str
    title: str
    flags: PurposeFlags
    products: Mapping[str, Resolution]
    retention_days: int
    duo: tuple[str, ...]
    dpv: tuple[str, ...]
    notice_version: int
    notices: Mapping[tuple[str, str], Notice]
    budget: PrivacyBudget

    def notice(self, language: str, variant: str = "plain") -> Notice:
        """The notice in ``language`` (one of LANGUAGES), ``variant`` "plain" or "child"."""
        _check_option("language", language, LANGUAGES)
        _check_option("variant", variant, VARIANTS)
        return self.notices[language, variant]


@dataclass(frozen=True)
class PurposeCatalog:
    """Every purpose an app may declare, by id."""

    version: int
    purposes: Mapping[str, Purpose]

    def get(self, purpose_id: str) -> Purpose:
        """The purpose ``purpose_id``; an unknown id raises a ValidationError naming the ids."""
        _check_option("purpose_id", purpose_id, self.purposes)
        return self.purposes[purpose_id]

    def all(self) -> tuple[Purpose, ...]:
        """Every purpose, in catalog order."""
        return tuple(self.purposes.values())

    def ids(self) -> tuple[str, ...]:
        """Every purpose id, in catalog order."""
        return tuple(self.purposes)


# -- loading and validation ------------------------------------------------------------


def _invalid(where: str, problem: str) -> NoReturn:
    msg = f"Invalid {_SOURCE}: {where} {problem}"
    raise ValidationError(msg, field=where)


def _table(data: Any, where: str, keys: Iterable[str]) -> Mapping[str, Any]:
    """``data`` as a table holding exactly ``keys``."""
    if not isinstance(data, dict):
        _invalid(where, f"must be a table, but got {data!r}.")
    expected = list(keys)
    missing = [k for k in expected if k not in data]
    unknown = [k for k in data if k not in expected]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"lacks {_quote_list(missing)}")
        if unknown:
            parts.append(f"has unknown {_quote_list(unknown)}")
        _invalid(where, f"{' and '.join(parts)}; expected exactly {_quote_list(expected)}.")
    return data


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        _invalid(where, f"must be a string, but got {value!r}.")
    return value


def _integer(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _invalid(where, f"must be an integer >= {minimum}, but got {value!r}.")
    return value


def _positive(value: Any, where: str, minimum: float = 0.0) -> float:
    """A number above 0 and at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        _invalid(where, f"must be a number, but got {value!r}.")
    if value <= 0 or value < minimum:
        bound = f">= {minimum}" if minimum else "> 0"
        _invalid(where, f"must be {bound}, but got {value!r}.")
    return float(value)


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        _invalid(where, f"must be one of {_quote_list(allowed)}, but got {value!r}.")
    return str(value)


def _codes(value: Any, where: str, pattern: re.Pattern[str], example: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        _invalid(where, f"must be a list of codes like {example!r}, but got {value!r}.")
    for code in value:
        if not isinstance(code, str) or not pattern.fullmatch(code):
            _invalid(where, f"must hold codes like {example!r}, but got {code!r}.")
    return tuple(value)


def _resolution(data: Any, where: str) -> Resolution:
    product = _choice(where.rsplit(".", 1)[-1], where, PRODUCTS)
    table = _table(data, where, ("window_s", "output_rate_hz", "channels"))
    floor = MIN_FEATURE_WINDOW_S if product in FEATURE_PRODUCTS else 0.0
    window = _positive(table["window_s"], f"{where}.window_s", floor)
    rate = _positive(table["output_rate_hz"], f"{where}.output_rate_hz")
    if product in SAMPLE_PRODUCTS and abs(window * rate - 1.0) > 1e-3:
        _invalid(
            f"{where}.window_s", f"must be one sample period, 1 / {rate:g} Hz, but got {window!r}."
        )
    channels = _choice(table["channels"], f"{where}.channels", CHANNELS)
    return Resolution(window_s=window, output_rate_hz=rate, channels=channels)


def _fraction(value: Any, where: str, low: float, high: float) -> float:
    """A number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        _invalid(where, f"must be a number from {low:g} to {high:g}, but got {value!r}.")
    return float(value)


def _budget(table: Mapping[str, Any], where: str) -> PrivacyBudget:
    timing = table["needs_event_timing"]
    if not isinstance(timing, bool):
        _invalid(f"{where} needs_event_timing", f"must be true or false, but got {timing!r}.")
    auc = _fraction(table["leakage_auc_max"], f"{where} leakage_auc_max", CHANCE_AUC, 1.0)
    if not timing and auc >= 1.0:
        _invalid(f"{where} leakage_auc_max", "must be below 1.0 for a purpose that needs no "
                 f"event timing (it bounds what the app can infer), but got {auc!r}.")
    r_min = _fraction(table["utility_r_min"], f"{where} utility_r_min", 0.0, 1.0)
    return PrivacyBudget(needs_event_timing=timing, leakage_auc_max=auc, utility_r_min=r_min)


def _notices(data: Any, where: str, purpose_id: str, measured: Mapping[str, Any] | None
             ) -> tuple[int, dict[tuple[str, str], Notice]]:
    table = _table(data, where, ("version", *LANGUAGES))
    version = _integer(table["version"], f"{where}.version", 1)
    notices: dict[tuple[str, str], Notice] = {}
    for language in LANGUAGES:
        texts = _table(table[language], f"{where}.{language}", ("title", *VARIANTS))
        title = _string(texts["title"], f"{where}.{language}.title")
        for variant in VARIANTS:
            text = _string(texts[variant], f"{where}.{language}.{variant}")
            if not text.strip():
                _invalid(f"{where}.{language}.{variant}", "must not be empty.")
            if measured is not None:  # the latest leakage report's figure, in plain words
                space = "" if language == "zh-Hans" else " "  # no spaces between hanzi
                text = f"{text.rstrip()}{space}{measured_sentence(measured, language, variant)}"
            notices[language, variant] = Notice(
                purpose_id=purpose_id,
                version=version,
                language=language,
                variant=variant,
                title=title,
                text=text,
            )
    return version, notices


def _purpose(data: Any, index: int, figures: Mapping[str, Mapping[str, Any]]) -> Purpose:
    keys = ("id", "title", "retention_days", "duo", "dpv", *BUDGET_FIELDS, "flags", "products",
            "notice")
    if not isinstance(data, dict):
        _invalid(f"purpose[{index}]", f"must be a table, but got {data!r}.")
    purpose_id = _string(data.get("id"), f"purpose[{index}].id")
    if not _ID.fullmatch(purpose_id):
        _invalid(f"purpose[{index}].id", f"must be lower_snake_case, but got {purpose_id!r}.")
    where = f"purpose {purpose_id!r}"
    for name in BUDGET_FIELDS:  # named first: a purpose without its budget is refused
        if name not in data:
            _invalid(f"{where} {name}", f"is missing; every purpose declares "
                     f"{_quote_list(BUDGET_FIELDS)} (see the header of {_SOURCE}).")
    table = _table(data, where, keys)
    flag_table = _table(table["flags"], f"{where} flags", FLAGS)
    for name in FLAGS:
        if not isinstance(flag_table[name], bool):
            value = flag_table[name]
            _invalid(f"{where} flags.{name}", f"must be true or false, but got {value!r}.")
    products_table = table["products"]
    if not isinstance(products_table, dict) or not products_table:
        _invalid(f"{where} products", "must be a table naming at least one data product.")
    products = {
        name: _resolution(value, f"{where} products.{name}")
        for name, value in sorted(products_table.items(), key=lambda kv: _order(kv[0]))
    }
    retention = _integer(table["retention_days"], f"{where} retention_days", 0)
    version, notices = _notices(table["notice"], f"{where} notice", purpose_id,
                                figures.get(purpose_id))
    return Purpose(
        id=purpose_id,
        title=_string(table["title"], f"{where} title"),
        flags=PurposeFlags(**flag_table),
        products=MappingProxyType(products),
        retention_days=retention,
        duo=_codes(table["duo"], f"{where} duo", _DUO, "DUO:0000046"),
        dpv=_codes(table["dpv"], f"{where} dpv", _DPV, "dpv:ServiceProvision"),
        notice_version=version,
        notices=MappingProxyType(notices),
        budget=_budget(table, where),
    )


def _order(product: str) -> int:
    return PRODUCTS.index(product) if product in PRODUCTS else len(PRODUCTS)


def parse_catalog(text: str, figures: Mapping[str, Mapping[str, Any]] | None = None
                  ) -> PurposeCatalog:
    """Parse and validate a catalog from TOML text (``load_catalog`` reads the shipped one).

    ``figures`` (by purpose id, default the shipped ``leakage_figures.json``) are the
    measured leakage figures whose plain-words sentence ends each measured purpose's notices.
    """
    if figures is None:
        figures = load_figures()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"Invalid {_SOURCE}: it is not valid TOML ({exc})."
        raise ValidationError(msg) from exc
    table = _table(data, "the top level", ("catalog_version", "purpose"))
    version = _integer(table["catalog_version"], "catalog_version", 1)
    entries = table["purpose"]
    if not isinstance(entries, list):
        _invalid("purpose", f"must be an array of tables, but got {entries!r}.")
    purposes: dict[str, Purpose] = {}
    for index, entry in enumerate(entries):
        purpose = _purpose(entry, index, figures)
        if purpose.id in purposes:
            _invalid(f"purpose[{index}].id", f"repeats the id {purpose.id!r}.")
        purposes[purpose.id] = purpose
    if not purposes:
        _invalid("purpose", "must hold at least one purpose.")
    return PurposeCatalog(version=version, purposes=MappingProxyType(purposes))


@functools.cache
def load_catalog() -> PurposeCatalog:
    """The shipped catalog, read and validated once per process."""
    text = resources.files("neurogate.consent").joinpath(_SOURCE).read_text(encoding="utf-8")
    return parse_catalog(text)


__all__ = [
    "BUDGET_FIELDS",
    "CHANCE_AUC",
    "CHANNELS",
    "FEATURE_PRODUCTS",
    "FLAGS",
    "LANGUAGES",
    "MIN_FEATURE_WINDOW_S",
    "PRODUCTS",
    "SAMPLE_PRODUCTS",
    "VARIANTS",
    "Notice",
    "PrivacyBudget",
    "Purpose",
    "PurposeCatalog",
    "PurposeFlags",
    "Resolution",
    "load_catalog",
    "parse_catalog",
]
