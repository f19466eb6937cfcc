"""Identifiers people type (usernames, serials, ids): one normal form, no invisible tricks.

An identifier is normalised with Unicode NFKC (so a full-width ``ａｄｍｉｎ`` is ``admin``
and a no-break space is a space), stripped, and refused if it still holds a character
that renders as nothing or changes how the text around it is drawn: control characters
(Cc), format characters (Cf: zero-width space, joiners, bidirectional overrides), private
use (Co), surrogates (Cs), unassigned code points (Cn), line and paragraph separators
(Zl, Zp), any space other than U+0020, and the invisible fillers and selectors that
Unicode lists as default-ignorable. Two accounts then cannot differ only by what nobody
can see.
"""

from __future__ import annotations

import unicodedata

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
# Default-ignorable code points outside the categories above (Hangul fillers, the
# combining grapheme joiner, Khmer inherent vowels, Mongolian and other variation
# selectors): they draw nothing, so they make look-alikes.
_INVISIBLE_RANGES = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0100, 0xE01EF),
)


def _refused(char: str) -> bool:
    category = unicodedata.category(char)
    if category in REFUSED_CATEGORIES or (category == "Zs" and char != " "):
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


def _describe(char: str) -> str:
    name = unicodedata.name(char, "unnamed")
    return f"U+{ord(char):04X} ({name})"


def normalise_identifier(value: str, *, field: str, max_length: int | None = None) -> str:
    """``value`` in NFKC, stripped; a ``ValueError`` naming ``field`` if it holds an
    invisible, control or format character, or grows beyond ``max_length``.

    The same function serves registration and login, so what a person types at login
    finds the account whatever form their keyboard produced.
    """
    normal = unicodedata.normalize("NFKC", value).strip()
    # Each typed character by its normal form, so that the message names what was sent.
    typed = (c for c in value if any(_refused(n) for n in unicodedata.normalize("NFKC", c)))
    for char in (*typed, *(c for c in normal if _refused(c)))[:1]:
        msg = (
            f"Invalid value for the '{field}' field. It contains the character "
            f"{_describe(char)}, which is invisible or controls how text is drawn; "
            f"use letters, digits, punctuation and plain spaces only."
        )
        raise ValueError(msg)
    if max_length is not None and len(normal) > max_length:
        msg = (
            f"Invalid value for the '{field}' field. It must have at most {max_length} "
            f"characters once normalised (NFKC), but has {len(normal)}."
        )
        raise ValueError(msg)
    return normal


__all__ = ["REFUSED_CATEGORIES", "normalise_identifier"]
