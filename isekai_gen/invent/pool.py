"""The pool of real categories and impossible attributes that invented concepts are fused from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..resources import CONFIG_DIR
from ..schema import validate
from ..yamlio import load_yaml

SHIPPED_POOL = CONFIG_DIR / "invent" / "pool.yaml"


@dataclass(frozen=True)
class Category:
    id: str
    name: str          # plain words; the real concept's label
    kind: str          # animal | plant | food | material | object | vehicle | building
    traits: tuple[str, ...]
    wordnet: str | None = None   # WordNet 3.0 sense, NLTK naming (hedgehog.n.02); see wordnet.py


@dataclass(frozen=True)
class Attribute:
    id: str
    word: str          # stem a coined name borrows
    phrase: str        # how a prompt states it
    traits: tuple[str, ...]
    kind: str = "attribute"

    @property
    def name(self) -> str:
        return self.word


@dataclass(frozen=True)
class Pool:
    source: str        # the file it was read from
    name: str
    origin: str        # where the categories come from (lexicon, version)
    license: str
    categories: tuple[Category, ...]
    attributes: tuple[Attribute, ...]

    def of_kinds(self, kinds) -> list[Category]:
        return [c for c in self.categories if c.kind in kinds]


def load_pool(path: str | Path | None = None) -> Pool:
    path = Path(path) if path is not None else SHIPPED_POOL
    if not path.is_file():
        raise UserError(f"{path}: concept pool not found")
    data = load_yaml(path)
    validate(data, "invent_pool", path)
    categories = tuple(Category(c["id"], c["name"], c["kind"], tuple(c["traits"]), c.get("wordnet")) for c in data["categories"])
    attributes = tuple(Attribute(a["id"], a["word"], a["phrase"], tuple(a["traits"])) for a in data["attributes"])
    seen: dict[str, str] = {}
    for entry in (*categories, *attributes):
        if entry.id in seen:
            raise UserError(f"{path}: id {entry.id!r} is used twice")
        seen[entry.id] = entry.id
    names = [c.name for c in categories]
    if len(set(names)) != len(names):
        raise UserError(f"{path}: two categories share the name {next(n for n in names if names.count(n) > 1)!r}")
    return Pool(str(path), data["name"], data["source"], data["license"], categories, attributes)
