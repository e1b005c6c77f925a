"""The ISEKAI concept catalog: groups of one invented concept and its real-world look-alike."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from .config import load_yaml
from .errors import UserError
from .resources import CATALOG_DIR
from .schema import first_error, validator

MIN_PROMPTS = 8


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
        """Restrict to ``concept_ids`` (None: all); unknown ids are an error."""
        if concept_ids is None:
            return self
        for cid in concept_ids:
            self.concept(cid)
        wanted = set(concept_ids)
        return Catalog(self.source, self.name, tuple(c for c in self.concepts if c.id in wanted))


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
    return path


def load_catalog(ref: str, base_dir: Path | None = None, min_prompts: int = MIN_PROMPTS) -> Catalog:
    path = catalog_path(ref, base_dir)
    data = load_yaml(path)
    return parse_catalog(data, str(path), min_prompts=min_prompts)


def parse_catalog(data, source: str, min_prompts: int = MIN_PROMPTS) -> Catalog:
    """Validate a parsed catalog; every error names ``source``, the concept and the problem."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping with `name` and `concepts`")
    concepts_raw = data.get("concepts")
    if isinstance(concepts_raw, list):
        # Per-concept checks first, so that the message names the concept.
        for position, raw in enumerate(concepts_raw):
            label = raw.get("id", f"#{position}") if isinstance(raw, dict) else f"#{position}"
            problem = first_error(_concept_validator(), raw)
            if problem:
                raise UserError(f"{source}: concept {label!r} {problem}")
    problem = first_error(validator("concept_catalog"), data)
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
    _check_consistency(concepts, source, min_prompts)
    return Catalog(source=source, name=data["name"], concepts=concepts)


def _check_consistency(concepts: tuple[Concept, ...], source: str, min_prompts: int) -> None:
    for cid, count in Counter(c.id for c in concepts).items():
        if count > 1:
            raise UserError(f"{source}: concept {cid!r}: duplicate id ({count} concepts use it)")
    labels: dict[str, str] = {}
    for concept in concepts:
        key = concept.label.strip().lower()
        if key in labels:
            raise UserError(
                f"{source}: concept {concept.id!r}: label {concept.label!r} collides with concept {labels[key]!r}"
            )
        labels[key] = concept.id
        if len(concept.prompts) < min_prompts:
            raise UserError(
                f"{source}: concept {concept.id!r}: {len(concept.prompts)} prompt variants, at least {min_prompts} needed"
            )
        if len(set(concept.prompts)) != len(concept.prompts):
            raise UserError(f"{source}: concept {concept.id!r}: repeated prompt variant")
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
