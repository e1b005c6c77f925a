"""Free text -> label, the careful way: whole words, case-insensitive, longest label first.

A label matches where it occurs as whole words in any letter case; the separators inside a label
(space, underscore, hyphen) match any run of them, so "ice cream", "Ice-Cream" and "ice_cream"
are the same label. Labels are tried longest first at each position, so "ice cream microphone"
is read as that label and not as "ice cream". A reply is a prediction only when exactly one
distinct label remains; none or several is a parse failure. Nothing is guessed.

Texts and labels are put in NFC (``canonical``; a no-op on text the scorer has already
normalised), so every caller (the scorer, evaluate's extractor, probe) matches alike. A combining
mark that NFC leaves on its own (``q`` + U+0307, a Devanagari vowel sign) belongs to the word it
follows: ``\\w`` does not match marks, so the word boundaries here also count marks as word
characters, and the label ``q`` is not read in ``q̇``.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import unicodedata
from operator import attrgetter
from typing import Callable, Iterable

import numpy as np

from .canonical import canonical

NO_LABEL, ONE_LABEL, SEVERAL_LABELS = "no_label", "one_label", "several_labels"
_SEPARATORS = re.compile(r"[\s_-]+")
_LIST_SEPARATORS = re.compile(r"[,;\n]")
# Joins the texts of one batch scan; a label containing it is matched text by text instead.
TEXT_SEPARATOR = "\x00"
_ASCII_DIGIT = re.compile("[0-9]")
_DIGITS_TO_ZERO = str.maketrans("123456789", "0" * 9)
_ZERO_RUNS = re.compile("00+")
_LAST_INDEX = attrgetter("lastindex")


def hits_matrix(texts: list[str], labels, scan: Callable[[str], tuple[np.ndarray, np.ndarray]],
                find: Callable[[str], Iterable[int]], fold: Callable[[str], str] | None = None) -> np.ndarray:
    """``(len(texts), len(labels))`` bool: the labels each text names, from ONE scan over all texts.

    ``scan(joined)`` returns the start positions and label indices of every match in the texts
    joined by ``TEXT_SEPARATOR``; no match spans a separator (no label contains it), so each
    position falls in exactly one text. One C-level scan replaces a Python call per text. Should a
    label contain the separator, each text is read alone with ``find`` instead. ``fold`` (say
    ``str.lower``) is applied to each text scanned (``find`` gets the texts as given).

    When no label holds an ASCII digit, texts that differ only in their numbers (a confidence
    score, a reference number) name the same labels: every digit run becomes one ``0`` (still a
    word character, so word boundaries are unchanged, and no label can match inside it), and each
    distinct shape is scanned once.
    """
    if not texts or any(TEXT_SEPARATOR in label for label in labels):
        hits = np.zeros((len(texts), len(labels)), dtype=bool)
        for row, text in enumerate(texts):
            hits[row, list(find(text))] = True
        return hits
    joined = TEXT_SEPARATOR.join(texts)
    if not any(_ASCII_DIGIT.search(label) for label in labels) and joined.count(TEXT_SEPARATOR) == len(texts) - 1:
        shapes = _ZERO_RUNS.sub("0", joined.translate(_DIGITS_TO_ZERO)).split(TEXT_SEPARATOR)
        slot_of = dict(zip(dict.fromkeys(shapes), range(len(shapes))))
        if len(slot_of) < len(texts):
            rows = np.fromiter(map(slot_of.__getitem__, shapes), dtype=np.intp, count=len(shapes))
            # fold (lower-casing) neither makes nor changes ASCII digits: folding the shapes is exact.
            return _scanned(list(slot_of), len(labels), scan, fold)[rows]
    return _scanned(texts, len(labels), scan, fold)


def _scanned(texts: list[str], n_labels: int, scan, fold) -> np.ndarray:
    if fold is not None:
        texts = list(map(fold, texts))
    joined = TEXT_SEPARATOR.join(texts)
    hits = np.zeros((len(texts), n_labels), dtype=bool)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.concatenate(([0], np.cumsum(lengths[:-1] + 1)))
    positions, found = scan(joined)
    hits[np.searchsorted(starts, positions, side="right") - 1, found] = True
    return hits


@functools.cache
def word_characters() -> str:
    """A regex class body: ``\\w`` and every combining mark (category M; built once, ~0.3 s)."""
    ranges: list[list[int]] = []   # [first, last] code points of each run of marks
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code))[0] == "M":
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return r"\w" + "".join(re.escape(chr(first)) + ("" if first == last else "-" + re.escape(chr(last)))
                            for first, last in ranges)


def match_starts(matches: list[re.Match]) -> np.ndarray:
    return np.fromiter(map(re.Match.start, matches), dtype=np.int64, count=len(matches))


def _label_pattern(label: str) -> str:
    words = [re.escape(word) for word in _SEPARATORS.split(label.strip()) if word]
    # A label made only of separators (say "-") is matched literally rather than as "".
    return r"[\s_-]+".join(words) if words else re.escape(label)


class LabelMatcher:
    """Finds which of a fixed list of labels a text names; build it once per label list."""

    def __init__(self, labels):
        self.labels = tuple(map(canonical, labels))
        order = sorted(range(len(self.labels)), key=lambda i: (-len(self.labels[i]), i))
        self._alternatives = "|".join(f"({_label_pattern(self.labels[i])})" for i in order)
        # In ASCII text there is no combining mark: plain ``\w`` boundaries, ~2x faster than the class.
        self._ascii_regex = re.compile(rf"(?<!\w)(?:{self._alternatives})(?!\w)", re.IGNORECASE)
        # Group k + 1 is the k-th alternative: a match's ``lastindex`` names its label directly.
        self._label_of_group = (None, *order)

    @functools.cached_property
    def _unicode_regex(self) -> re.Pattern:
        word = word_characters()
        return re.compile(rf"(?<![{word}])(?:{self._alternatives})(?![{word}])", re.IGNORECASE)

    def _regex(self, text: str) -> re.Pattern:
        return self._ascii_regex if text.isascii() else self._unicode_regex   # isascii is O(1)

    def find(self, text: str) -> tuple[int, ...]:
        """Sorted indices of the distinct labels named in ``text``."""
        text = canonical(text)
        label_of = self._label_of_group
        return tuple(sorted({label_of[m.lastindex] for m in self._regex(text).finditer(text)}))

    def find_many(self, texts: list[str]) -> np.ndarray:
        """``find`` of every text at once, as a ``(len(texts), len(labels))`` bool matrix."""
        def scan(joined):
            matches = list(self._regex(joined).finditer(joined))
            labels = np.array(self._label_of_group[1:], dtype=np.intp)  # group k + 1 -> label
            groups = np.fromiter(map(_LAST_INDEX, matches), dtype=np.intp, count=len(matches))
            return match_starts(matches), labels[groups - 1]

        return hits_matrix(list(map(canonical, texts)), self.labels, scan, self.find)

    def single(self, text: str) -> tuple[str, int | None]:
        """``(outcome, label index)``: the index only when exactly one label is named."""
        found = self.find(text)
        if len(found) == 1:
            return ONE_LABEL, found[0]
        return (NO_LABEL if not found else SEVERAL_LABELS), None

    def label_set(self, prediction) -> tuple[str, tuple[int, ...] | None]:
        """Multi-label reading of a list of names, a JSON list, or comma/semicolon separated names.

        Every element must be exactly one label; ``[]`` or the text ``none`` is the empty set.
        """
        if isinstance(prediction, str):
            text = prediction.strip()
            if text.startswith("["):
                try:
                    prediction = json.loads(text)
                except json.JSONDecodeError:
                    return NO_LABEL, None
            elif text.lower() == "none":
                return ONE_LABEL, ()
            else:
                prediction = [part for part in _LIST_SEPARATORS.split(text) if part.strip()]
        if not isinstance(prediction, list) or not all(isinstance(p, str) for p in prediction):
            return NO_LABEL, None
        found = set()
        for part in prediction:
            outcome, index = self.single(part)
            if index is None:
                return outcome, None
            found.add(index)
        return ONE_LABEL, tuple(sorted(found))
