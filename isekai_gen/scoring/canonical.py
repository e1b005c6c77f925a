"""The one text form the scorer compares in: Unicode NFC.

The same label can arrive as different code points: ``café`` precomposed (NFC, what most tools
write) or as ``cafe`` + U+0301 COMBINING ACUTE ACCENT (NFD, what macOS file names and some
tokenizers give). Compared code point by code point, an NFD reply names no label (or, worse, the
label ``cafe``), and an NFD file name is an unknown id. So every id, class name, label and reply
is put in NFC before any check sees it: truth ids and labels by the truth readers, prediction ids
and replies as they enter a run's tally (``outcomes``, whatever the reader), and the matchers
(``matching``, ``manyicl``) normalise what they are given too (a no-op on NFC text). The
matching rules (case, word boundaries, eval.py's substring test) then apply to that text.

Compatibility look-alikes are NOT folded (no NFKC): fullwidth ``ｆｏｒｅｓｔ``, the ligature ``ﬁ``,
superscript ``²`` are other characters, and NFKC would also rewrite ``½`` into ``1⁄2`` or ``Ⅳ``
into ``IV``: a guess the scorer does not make. A reply in such characters names no label; a
run whose replies all do is refused with that cause (``outcomes``).
"""

from __future__ import annotations

import unicodedata


def canonical(text: str) -> str:
    """``text`` in NFC (ASCII, the common case, is returned as it is: ``isascii`` is O(1) in CPython)."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def canonical_value(value):
    """A prediction value (text, list of label texts, or None) with its texts in NFC."""
    if isinstance(value, str):
        return canonical(value)
    if isinstance(value, list):
        return [canonical(part) if isinstance(part, str) else part for part in value]
    return value


def has_compatibility_forms(text: str) -> bool:
    """Whether ``text`` holds characters NFKC would replace (fullwidth letters, ligatures, ...)."""
    return not text.isascii() and unicodedata.normalize("NFKC", text) != unicodedata.normalize("NFC", text)
