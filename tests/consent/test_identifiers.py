"""One normal form for the identifiers people type, and nothing invisible in it."""

from __future__ import annotations

import pytest

from neurogate.consent.identifiers import normalise_identifier


@pytest.mark.parametrize(("typed", "stored"), [
    ("admin", "admin"),
    ("  dr.rivera ", "dr.rivera"),
    ("ａｄｍｉｎ", "admin"),  # full-width forms
    ("ﬁona", "fiona"),  # the fi ligature
    ("anna\u00a0lee", "anna lee"),  # a no-break space is a space
    ("José", "José"),  # composed and decomposed accents agree
    ("Jose\u0301", "José"),
    ("王小明", "王小明"),
])
def test_identifier_normalised_with_nfkc(typed: str, stored: str) -> None:
    """Look-alike spellings that NFKC unifies become one identifier."""
    assert normalise_identifier(typed, field="username") == stored


@pytest.mark.parametrize(("typed", "shown"), [
    ("ad\u200bmin", "U+200B (ZERO WIDTH SPACE)"),
    ("ad\u200cmin", "U+200C (ZERO WIDTH NON-JOINER)"),
    ("ad\u2060min", "U+2060 (WORD JOINER)"),
    ("\ufeffadmin", "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
    ("\u202enimda", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("\u2067admin", "U+2067 (RIGHT-TO-LEFT ISOLATE)"),
    ("ad\u00admin", "U+00AD (SOFT HYPHEN)"),
    ("ad\tmin", "U+0009 (unnamed)"),
    ("ad\u2028min", "U+2028 (LINE SEPARATOR)"),
    ("ad\ue000min", "U+E000 (unnamed)"),
    ("ad\u115fmin", "U+115F (HANGUL CHOSEONG FILLER)"),
    ("ad\u034fmin", "U+034F (COMBINING GRAPHEME JOINER)"),
    ("admin\ufe0f", "U+FE0F (VARIATION SELECTOR-16)"),
    ("ad\u3164min", "U+3164 (HANGUL FILLER)"),
])
def test_identifier_refuses_invisible_and_control_characters(typed: str, shown: str) -> None:
    """Format, control, private-use, separator and filler characters are refused by name."""
    with pytest.raises(ValueError, match=r"^Invalid value for the 'serial' field\. ") as info:
        normalise_identifier(typed, field="serial")
    assert str(info.value) == (
        f"Invalid value for the 'serial' field. It contains the character {shown}, which is "
        "invisible or controls how text is drawn; use letters, digits, punctuation and plain "
        "spaces only.")


def test_identifier_length_checked_after_normalising() -> None:
    """A form that NFKC expands past the maximum is refused with both lengths named."""
    with pytest.raises(ValueError) as info:
        normalise_identifier("\ufdfa" * 4, field="username", max_length=64)
    assert str(info.value) == ("Invalid value for the 'username' field. It must have at most "
                               "64 characters once normalised (NFKC), but has 72.")
