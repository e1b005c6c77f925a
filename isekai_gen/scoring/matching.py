"""Free text -> label, the careful way: whole words, case-insensitive, longest label first.

A label matches where it occurs as whole words in any letter case; the separators inside a label
(space, underscore, hyphen) match any run of them, so "ice cream", "Ice-Cream" and "ice_cream"
are the same label. Labels are tried longest first at each position, so "ice cream microphone"
is read as that label and not as "ice cream". A reply is a prediction only when exactly one
distinct label remains; none or several is a parse failure. Nothing is guessed.
"""

from __future__ import annotations

import json
import re

NO_LABEL, ONE_LABEL, SEVERAL_LABELS = "no_label", "one_label", "several_labels"
_SEPARATORS = re.compile(r"[\s_-]+")
_LIST_SEPARATORS = re.compile(r"[,;\n]")


def _label_pattern(label: str) -> str:
    words = [re.escape(word) for word in _SEPARATORS.split(label.strip()) if word]
    # A label made only of separators (say "-") is matched literally rather than as "".
    return r"[\s_-]+".join(words) if words else re.escape(label)


class LabelMatcher:
    """Finds which of a fixed list of labels a text names."""

    def __init__(self, labels):
        self.labels = tuple(labels)
        order = sorted(range(len(self.labels)), key=lambda i: (-len(self.labels[i]), i))
        alternatives = "|".join(f"(?P<l{i}>{_label_pattern(self.labels[i])})" for i in order)
        self._regex = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def find(self, text: str) -> tuple[int, ...]:
        """Sorted indices of the distinct labels named in ``text``."""
        return tuple(sorted({int(m.lastgroup[1:]) for m in self._regex.finditer(text)}))

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
