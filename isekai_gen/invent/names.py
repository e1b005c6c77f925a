"""Coined labels for invented concepts, and the rules every label must pass.

A label is a blend of the modifier's and the partner's words, in the spirit of the paper's
cactihog (cactus + hedgehog) and icemic (ice cream + microphone): a head of one, a tail of the
other, sometimes joined by a vowel. A candidate is refused, and counted under its reason, when it is

- ``not_pronounceable``: outside 5-10 letters, a run of three vowels or of two consonants that are
  not a common English cluster, a letter tripled;
- ``is_word``: a word in any of ``LANGUAGES`` (wordfreq's frequency lists, shipped with the package);
- ``near_frequent_word``: one edit (insert, delete, substitute, swap) from one of the ``FREQUENT``
  most frequent words of those languages;
- ``near_reserved``: within two edits of, or containing / contained in, a reserved label: the
  shipped catalog's labels and names, the published ISEKAI-10 / ISEKAI-pair names, every
  ``--exclude`` catalog;
- ``duplicate``: already given to another group of this catalog (or within two edits of one).
"""

from __future__ import annotations

import functools
import re
from collections import Counter

LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl", "sv", "pl", "tr", "id", "fi")
FREQUENT = 30000
NEAR_RESERVED_EDITS = 2
VOWELS = "aeiou"
# Two-consonant runs an English reader says without stumbling (onsets, codas and common joins).
CLUSTERS = frozenset(
    "bl br ch ck cl cr ct dr fl fr gl gr kl kr ld lf lk ll lm lp ls lt mb mp nc nd ng nk ns nt ph pl pr "
    "rb rc rd rf rg rk rl rm rn rp rs rt rv sc sh sk sl sm sn sp st sw th tr tw wh wr xt ss tt pp ff mm nn "
    "rr gg bb dd ll lv nf nv mf gn sq".split()
)
# Published ISEKAI names (Tai et al., CVPR 2024; ISEKAI-10 / ISEKAI-pair on the Hub), beyond the
# shipped catalog, which holds the rest: the coinages the paper and its data show.
PUBLISHED = ("cactihog", "cctovac", "icemic", "airstone", "rockflock", "mushroomhaven", "equimanoid")


def squash(text: str) -> str:
    """Letters only, lowercase: "Rock Flock" -> "rockflock"."""
    return re.sub(r"[^a-z]", "", text.lower())


def pronounceable(name: str) -> bool:
    if not 5 <= len(name) <= 10 or not name.isalpha() or re.search(r"(.)\1\1", name):
        return False
    if re.search(f"[{VOWELS}]{{3}}", name):
        return False
    for run in re.findall(f"[^{VOWELS}]+", name.replace("y", "i")):
        if len(run) > 2 or (len(run) == 2 and run not in CLUSTERS):
            return False
    return True


def edits1(word: str) -> set[str]:
    """Every string one insert, delete, substitution or swap of adjacent letters away."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return ({a + b[1:] for a, b in splits if b}
            | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
            | {a + c + b[1:] for a, b in splits if b for c in letters}
            | {a + c + b for a, b in splits for c in letters})


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance; hand-written (a dozen lines) rather than a C extension dependency."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


@functools.lru_cache(maxsize=1)
def frequent_words() -> frozenset[str]:
    """The FREQUENT most frequent words of each language, letters only (wordfreq's shipped lists)."""
    from wordfreq import top_n_list

    return frozenset(squash(w) for lang in LANGUAGES for w in top_n_list(lang, FREQUENT) if len(squash(w)) >= 3)


def is_word(name: str) -> bool:
    from wordfreq import zipf_frequency

    return any(zipf_frequency(name, lang) > 0 for lang in LANGUAGES)


def _syllable_heads(word: str) -> list[str]:
    """Prefixes of ``word`` that end after a vowel group or the consonant that follows one."""
    heads = []
    for match in re.finditer(f"[{VOWELS}y]+", word):
        end = match.end()
        heads += [word[:end], word[: end + 1]]
    return [h for h in dict.fromkeys(heads) if 2 <= len(h) < len(word) or h == word]


def _syllable_tails(word: str) -> list[str]:
    """Suffixes of ``word`` that start at a consonant before a vowel group."""
    tails = []
    for match in re.finditer(f"[^{VOWELS}y][{VOWELS}y]", word):
        tails.append(word[match.start():])
    return [t for t in dict.fromkeys(tails) if 2 <= len(t) < len(word)]


def blends(modifier: str, partner: str) -> list[str]:
    """Candidate coinages for (modifier, partner), most natural first (shorter heads and tails)."""
    head_word, tail_word = squash(modifier.split()[0]), squash(partner.split()[-1])
    out = []
    for head in _syllable_heads(head_word)[:3]:
        for tail in _syllable_tails(tail_word)[-3:][::-1]:
            out.append(head + tail)
            if head[-1] not in VOWELS and tail[0] not in VOWELS:
                out.append(head + "i" + tail)
    return list(dict.fromkeys(out))


class NameRules:
    """Checks coinages against the reserved labels and the ones already taken; counts refusals."""

    def __init__(self, reserved: list[str]):
        self.reserved = sorted({squash(r) for r in (*reserved, *PUBLISHED) if len(squash(r)) >= 3})
        self.taken: list[str] = []
        self.rejected: Counter = Counter()

    def problem(self, name: str) -> str | None:
        if not pronounceable(name):
            return "not_pronounceable"
        if is_word(name):
            return "is_word"
        if edits1(name) & frequent_words():
            return "near_frequent_word"
        for other in self.reserved:
            if other in name or name in other or edit_distance(name, other) <= NEAR_RESERVED_EDITS:
                return "near_reserved"
        if any(edit_distance(name, other) <= NEAR_RESERVED_EDITS for other in self.taken):
            return "duplicate"
        return None

    def accept(self, candidates: list[str]) -> str | None:
        """The first candidate that passes (recorded as taken); every refusal counted by reason."""
        for name in candidates:
            problem = self.problem(name)
            if problem is None:
                self.taken.append(name)
                return name
            self.rejected[problem] += 1
        return None
