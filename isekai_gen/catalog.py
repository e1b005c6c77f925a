"""The ISEKAI concept catalog: groups of one invented concept and its real-world look-alike.

A catalog is a YAML file (``configs/catalogs/isekai.yaml`` ships; users may write their own) that
is checked on load against ``schemas/concept_catalog.schema.json`` and then against the rules the
later stages rely on: unique ids, labels a scorer can find in free text, enough prompt variants
that fit the text encoder, and exactly one isekai and one real concept per group.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jsonschema.exceptions import best_match

from .yamlio import load_yaml
from .errors import UserError
from .resources import CATALOG_DIR
from .schema import first_error, validator

if TYPE_CHECKING:
    from .config import BuildConfig

MIN_PROMPTS = 8
# CLIP's text context, start and end tokens included: the encoders of SD, SDXL and FLUX silently
# drop everything after it, which could cut a defining feature out of a prompt.
MAX_PROMPT_TOKENS = 77


@dataclass(frozen=True)
class Concept:
    id: str
    group: str
    world: str
    label: str
    name: str
    description: str
    prompts: tuple[str, ...]
    negative_prompt: str


@dataclass(frozen=True)
class Catalog:
    source: str
    name: str
    concepts: tuple[Concept, ...]

    def __post_init__(self):
        object.__setattr__(self, "_by_id", {c.id: c for c in self.concepts})

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.concepts]

    def concept(self, concept_id: str) -> Concept:
        try:
            return self._by_id[concept_id]
        except KeyError:
            raise UserError(f"{self.source}: unknown concept {concept_id!r}") from None

    def partner(self, concept_id: str) -> Concept:
        concept = self.concept(concept_id)
        return next(c for c in self.concepts if c.group == concept.group and c.id != concept.id)

    def groups(self) -> list[tuple[Concept, Concept]]:
        """(isekai, real) pairs in catalog order."""
        pairs = []
        for concept in self.concepts:
            if concept.world == "isekai":
                pairs.append((concept, self.partner(concept.id)))
        return pairs

    def subset(self, concept_ids: list[str] | None) -> "Catalog":
        """Restrict to ``concept_ids`` (None: all); unknown ids and a concept without its partner are errors."""
        if concept_ids is None:
            return self
        wanted = set(concept_ids)
        for cid in concept_ids:
            partner = self.partner(cid)  # unknown ids fail here
            if partner.id not in wanted:
                # Filtering scores each image against its partner and episodes pair the two.
                raise UserError(f"{self.source}: concept {cid!r} is selected without its partner {partner.id!r} "
                                f"(group {partner.group!r}); select both or neither")
        return Catalog(self.source, self.name, tuple(c for c in self.concepts if c.id in wanted))


@functools.lru_cache(maxsize=1)
def _concept_validator():
    catalog_validator = validator("concept_catalog")
    return catalog_validator.evolve(schema=catalog_validator.schema["properties"]["concepts"]["items"])


def catalog_path(ref: str, base_dir: Path | None = None) -> Path:
    """A shipped catalog name (``isekai``) or a path (relative to ``base_dir`` when given)."""
    shipped = CATALOG_DIR / f"{ref}.yaml"
    if "/" not in ref and not ref.endswith((".yaml", ".yml")) and shipped.exists():
        return shipped
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.exists():
        shipped_names = ", ".join(sorted(p.stem for p in CATALOG_DIR.glob("*.yaml")))
        raise UserError(f"catalog {ref!r}: no such file and no shipped catalog of that name (shipped: {shipped_names})")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a catalog YAML file")
    return path


def load_catalog(ref: str, base_dir: Path | None = None) -> Catalog:
    path = catalog_path(ref, base_dir)
    data = load_yaml(path)
    return parse_catalog(data, str(path))


def build_catalog(config: BuildConfig) -> tuple[Catalog, Path]:
    """A build's catalog (``catalog``, relative to its config file) cut to its ``concepts``, and the file."""
    base = Path(config.config_dir) if config.config_dir else None
    path = catalog_path(config.catalog, base)
    return load_catalog(str(path)).subset(config.concepts), path


def parse_catalog(data, source: str) -> Catalog:
    """Validate a parsed catalog; every error names ``source``, the concept and the problem."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping with `name` and `concepts`")
    concepts_raw = data.get("concepts")
    if isinstance(concepts_raw, list):
        # Per-concept checks first, so that the message names the concept.
        for position, raw in enumerate(concepts_raw):
            label = raw.get("id", f"#{position}") if isinstance(raw, dict) else f"#{position}"
            problem = _concept_schema_problem(raw)
            if problem:
                raise UserError(f"{source}: concept {label!r}{problem}")
    problem = first_error("concept_catalog", data)
    if problem:
        raise UserError(f"{source}: {problem}")

    concepts = tuple(
        Concept(
            id=c["id"], group=c["group"], world=c["world"], label=c["label"], name=c["name"],
            description=" ".join(c["description"].split()), prompts=tuple(c["prompts"]),
            negative_prompt=c["negative_prompt"],
        )
        for c in concepts_raw
    )
    _check_consistency(concepts, source)
    return Catalog(source=source, name=data["name"], concepts=concepts)


def _concept_schema_problem(raw) -> str | None:
    """`` at prompts: [] should be non-empty`` or ``: 'group' is a required property``, or None."""
    error = best_match(_concept_validator().iter_errors(raw))
    if error is None:
        return None
    location = "/".join(str(p) for p in error.absolute_path)
    return f" at {location}: {error.message}" if location else f": {error.message}"


def _check_consistency(concepts: tuple[Concept, ...], source: str) -> None:
    _check_ids(concepts, source)
    _check_labels(concepts, source)
    for concept in concepts:
        _check_prompts(concept, source)
    _check_groups(concepts, source)


def _check_ids(concepts: tuple[Concept, ...], source: str) -> None:
    for cid, count in Counter(c.id for c in concepts).items():
        if count > 1:
            raise UserError(f"{source}: concept {cid!r}: duplicate id ({count} concepts use it)")


def _label_form_problem(label: str) -> str | None:
    # The LCL metric lowercases the expected label and strips quotes and full stops from it, but
    # not from the model's answer: a label with capitals, quotes or dots can never score correct.
    if label != label.lower():
        return "has capital letters; labels must be lowercase"
    if any(ch in label for ch in "\"'."):
        return "has quotes or full stops"
    if label != " ".join(label.split()):
        return "has leading, trailing or repeated whitespace"
    return None


def _label_pattern(label: str) -> re.Pattern:
    """Matches ``label`` as whole words in free text (lookarounds: labels may end in non-word chars)."""
    return re.compile(rf"(?<!\w){re.escape(label)}(?!\w)", re.IGNORECASE)


def _scorer_form(label: str) -> str:
    """The label as the scorer sees it: space, underscore and hyphen runs are one separator."""
    return " ".join(part for part in re.split(r"[\s_-]+", label.lower()) if part)


def _check_labels(concepts: tuple[Concept, ...], source: str) -> None:
    owners: dict[str, str] = {}
    forms = [_scorer_form(concept.label) for concept in concepts]
    for concept, key in zip(concepts, forms):
        problem = _label_form_problem(concept.label)
        if problem:
            raise UserError(f"{source}: concept {concept.id!r}: label {concept.label!r} {problem}")
        if key in owners:
            raise UserError(
                f"{source}: concept {concept.id!r}: label {concept.label!r} collides with concept {owners[key]!r}"
            )
        owners[key] = concept.id
    # A scorer finds labels in free text, longest first; a label that contains another one as a
    # word ("stone" in "air stone") makes an answer naming the longer one also name the shorter.
    for inner, inner_form in zip(concepts, forms):
        pattern = _label_pattern(inner_form)
        for outer, outer_form in zip(concepts, forms):
            if outer is not inner and pattern.search(outer_form):
                raise UserError(
                    f"{source}: concept {outer.id!r}: label {outer.label!r} contains label {inner.label!r} "
                    f"of concept {inner.id!r} as a word; a scorer could not tell them apart in free text"
                )


def _check_prompts(concept: Concept, source: str) -> None:
    if len(concept.prompts) < MIN_PROMPTS:
        raise UserError(
            f"{source}: concept {concept.id!r}: {len(concept.prompts)} prompt variants, at least {MIN_PROMPTS} needed"
        )
    first_seen: dict[str, int] = {}
    for index, prompt in enumerate(concept.prompts):
        if prompt in first_seen:
            raise UserError(
                f"{source}: concept {concept.id!r} at prompts/{index}: repeats prompts/{first_seen[prompt]}"
            )
        first_seen[prompt] = index
    texts = {f"prompts/{i}": prompt for i, prompt in enumerate(concept.prompts)}
    texts["negative_prompt"] = concept.negative_prompt
    for location, text in texts.items():
        tokens = prompt_token_count(text)
        if tokens > MAX_PROMPT_TOKENS:
            raise UserError(
                f"{source}: concept {concept.id!r} at {location}: {tokens} CLIP tokens, the text encoders "
                f"read only {MAX_PROMPT_TOKENS} and would cut off the rest; shorten it"
            )


def _check_groups(concepts: tuple[Concept, ...], source: str) -> None:
    by_group: dict[str, list[Concept]] = defaultdict(list)
    for concept in concepts:
        by_group[concept.group].append(concept)
    for group, members in by_group.items():
        worlds = sorted(c.world for c in members)
        if worlds != ["isekai", "real"]:
            ids = ", ".join(c.id for c in members)
            missing = "real-world" if "real" not in worlds else "isekai"
            problem = f"has no {missing} concept" if len(members) == 1 or len(set(worlds)) == 1 else "needs exactly one isekai and one real concept"
            raise UserError(f"{source}: group {group!r} ({ids}) {problem}")


def prompt_token_count(text: str) -> int:
    """CLIP BPE tokens of ``text``, start and end tokens included (as the text encoders count)."""
    return len(_clip_tokenizer().encode(text).ids) + 2


def clip_bpe_merges() -> list[str]:
    """OpenAI CLIP's BPE merges ("a b" lines) from the vocabulary file open_clip ships (no torch import)."""
    bpe_file = Path(importlib.util.find_spec("open_clip").origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(bpe_file, "rt", encoding="utf-8") as handle:
        # CLIP uses the first 48,894 merges after the header line (49,152 tokens in all).
        return handle.read().split("\n")[1 : 49152 - 256 - 2 + 1]


@functools.lru_cache(maxsize=1)
def _clip_tokenizer():
    """CLIP's tokenizer rebuilt from the merge table open_clip ships, in the Rust ``tokenizers``.

    Same token counts as ``open_clip.tokenizer.SimpleTokenizer`` (which lowercases, splits with
    CLIP's regex and byte-level BPE-encodes each word), but without importing torch (seconds).
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    merges = [tuple(line.split()) for line in clip_bpe_merges()]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    words = alphabet + [ch + "</w>" for ch in alphabet] + ["".join(merge) for merge in merges]
    tokenizer = Tokenizer(models.BPE(
        {word: index for index, word in enumerate(words)}, merges,
        end_of_word_suffix="</w>", continuing_subword_prefix="",
    ))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(
            Regex(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"), behavior="removed", invert=True
        ),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    return tokenizer


def groups_table(catalog: Catalog) -> str:
    """One line per group: isekai label/name vs real label/name and prompt counts, aligned."""
    header = ("group", "isekai label", "isekai name", "real label", "real name", "prompts")
    rows = [
        (isekai.group, isekai.label, isekai.name, real.label, real.name,
         f"{len(isekai.prompts)}/{len(real.prompts)}")
        for isekai, real in catalog.groups()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def concept_entry(catalog: Catalog, concept_id: str, width: int = 100) -> str:
    """Every field of one concept, wrapped for a terminal; prompts numbered as in ``prompt_variant``."""
    import textwrap

    concept = catalog.concept(concept_id)
    partner = catalog.partner(concept_id)
    indent = " " * 17

    def field(key: str, text: str) -> str:
        return textwrap.fill(text, width, initial_indent=f"{key + ':':<17}", subsequent_indent=indent)

    lines = [
        field("id", concept.id),
        field("group", f"{concept.group} (partner: {partner.id}, label {partner.label!r})"),
        field("world", concept.world),
        field("label", concept.label),
        field("name", concept.name),
        field("description", concept.description),
        f"prompts ({len(concept.prompts)}):",
        *(textwrap.fill(p, width, initial_indent=f"  {i:>2}  ", subsequent_indent=" " * 6)
          for i, p in enumerate(concept.prompts)),
        field("negative prompt", concept.negative_prompt),
    ]
    return "\n".join(lines)
