"""Check a concept pool against Princeton WordNet 3.0's database files (``index.noun``, ``data.noun``).

Each pool category names its WordNet sense as NLTK's ``wordnet.synset("hedgehog.n.02")`` looks one up:
lemma, part of speech, sense number in the lemma's ``index.noun`` order (NLTK's reader indexes its
lemma-to-offsets map the same way, and may print the synset under its first lemma's name, as
``synset("dog.n.02")`` prints ``frump.n.01``). The files are read in their wndb(5WN) format: an
``index.noun`` line is ``lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt
offset...``, a ``data.noun`` line starts at its byte offset with ``offset lex_filenum``. The
sense's lexicographer file must fit the category's kind (animal: noun.animal, plant: noun.plant, food: noun.food, material: noun.substance, object /
vehicle / building: noun.artifact). WordNet's data is not on PyPI (nltk and wn download it at run
time), so this is a maintainer's check, run where the files are (Debian: package wordnet-base):

    python -m isekai_gen.invent.wordnet /usr/share/wordnet [POOL.yaml]

``--suggest`` prints, for categories without a ``wordnet`` field, the first sense that fits.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .pool import load_pool

# WordNet 3.0 lexicographer file numbers (lexnames) that fit each pool kind.
LEXFILES = {"animal": {5: "noun.animal"}, "plant": {20: "noun.plant"}, "food": {13: "noun.food"},
            "material": {27: "noun.substance", 6: "noun.artifact"}, "object": {6: "noun.artifact"},
            "vehicle": {6: "noun.artifact"}, "building": {6: "noun.artifact"}}


def read_index(dict_dir: Path) -> dict[str, list[str]]:
    """lemma -> synset offsets in sense order."""
    index = {}
    for line in (dict_dir / "index.noun").read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue   # licence header
        fields = line.split()
        synset_count, pointer_count = int(fields[2]), int(fields[3])
        index[fields[0]] = fields[6 + pointer_count: 6 + pointer_count + synset_count]
    return index


def lexfile(dict_dir: Path, offset: str) -> int:
    with open(dict_dir / "data.noun", "rb") as handle:
        handle.seek(int(offset))
        return int(handle.readline().split()[1])


def check(dict_dir: Path, pool_path: str | None = None, suggest: bool = False) -> list[str]:
    """Problems (one line each); empty when every category's sense exists and fits its kind."""
    index, problems = read_index(dict_dir), []
    for category in load_pool(pool_path).categories:
        # the sense's own lemma when given (WordNet spells some with hyphens: hot-air_balloon)
        lemma = category.wordnet.rpartition(".n.")[0] if category.wordnet else category.name.replace(" ", "_")
        if lemma.replace("-", "_") != category.name.replace(" ", "_"):
            problems.append(f"{category.id}: {category.wordnet} is not a sense of {category.name!r}")
            continue
        offsets = index.get(lemma, [])
        fitting = [n + 1 for n, offset in enumerate(offsets) if lexfile(dict_dir, offset) in LEXFILES[category.kind]]
        if category.wordnet is None:
            hint = f" (first fitting sense: {lemma}.n.{fitting[0]:02d})" if suggest and fitting else ""
            problems.append(f"{category.id}: no wordnet sense given{hint}")
            continue
        sense = category.wordnet.rpartition(".n.")[2]
        if int(sense) not in fitting:
            problems.append(f"{category.id}: {category.wordnet} is not a sense of {lemma!r} of kind {category.kind} "
                            f"in WordNet 3.0 (fitting senses: {fitting or 'none'})")
    return problems


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--suggest"]
    found = check(Path(args[0]), args[1] if len(args) > 1 else None, suggest="--suggest" in sys.argv)
    print("\n".join(found) or "every category's WordNet sense exists and fits its kind")
    sys.exit(1 if found else 0)
