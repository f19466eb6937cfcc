"""The portal's catalogs: every message translated, none fuzzy, none missing, all compiled."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from neurogate.gateway.portal import web

PORTAL = web.HERE
TRANSLATED = ("zh_Hans", "es")
CATALOGS = [(domain, lang) for domain in web.DOMAINS for lang in TRANSLATED]


def _po(domain: str, lang: str) -> Path:
    return web.LOCALES / lang / "LC_MESSAGES" / f"{domain}.po"


def _read(path: Path, lang: str):  # type: ignore[no-untyped-def]
    with path.open("rb") as handle:
        return read_po(handle, locale=lang)


def _ids(catalog) -> set[str]:  # type: ignore[no-untyped-def]
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


def _extract(domain: str, out: Path) -> set[str]:
    pot = out / f"{domain}.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F",
         str(PORTAL / f"babel-{domain}.cfg"), "-k", "N_", "--no-location", "-o", str(pot),
         str(PORTAL)],
        check=True, capture_output=True,
    )
    with pot.open("rb") as handle:
        return _ids(read_po(handle))


@pytest.mark.parametrize(("domain", "lang"), CATALOGS)
def test_catalog_has_no_empty_or_fuzzy_translation(domain: str, lang: str) -> None:
    """Every message id of the domain has a finished translation in the language."""
    catalog = _read(_po(domain, lang), lang)
    unfinished = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(s.strip() for s in strings):
            unfinished.append(message.id)
    assert unfinished == [], f"{_po(domain, lang)}: translate (and unfuzzy) these"


@pytest.mark.parametrize("domain", web.DOMAINS)
def test_catalog_holds_every_extracted_message(domain: str, tmp_path: Path) -> None:
    """Every string of the domain's templates and code is in each language's catalog
    (run ``make messages`` and translate when this fails)."""
    extracted = _extract(domain, tmp_path)
    for lang in TRANSLATED:
        missing = sorted(extracted - _ids(_read(_po(domain, lang), lang)))
        assert missing == [], f"{_po(domain, lang)} lacks these (run make messages)"


def _key(value: str | list[str] | tuple[str, ...]) -> str | tuple[str, ...]:
    """A message id or translation as a dictionary key (plural forms come as sequences)."""
    return value if isinstance(value, str) else tuple(value)


@pytest.mark.parametrize(("domain", "lang"), CATALOGS)
def test_compiled_catalog_matches_its_source(domain: str, lang: str) -> None:
    """The .mo the gateway loads holds exactly the .po's translations (``make catalogs``)."""
    mo = _po(domain, lang).with_suffix(".mo")
    assert mo.exists(), f"{mo} is missing; run make catalogs"
    with mo.open("rb") as handle:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(handle) if m.id}
    source = {_key(m.id): _key(m.string) for m in _read(_po(domain, lang), lang)
              if m.id and not m.fuzzy}
    assert compiled == source, f"{mo} is stale; run make catalogs"


def test_extraction_finds_template_strings(tmp_path: Path) -> None:
    """The check above cannot pass vacuously: extraction sees the shell's own strings."""
    assert {"Skip to main content", "Sign in", "There is a problem"} <= _extract("portal",
                                                                                 tmp_path)
