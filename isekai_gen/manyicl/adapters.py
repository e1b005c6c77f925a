"""The dataset-adapter registry: the modules of ``isekai_gen.splits``, discovered by name.

The adapters import ``manyicl.layouts``; this registry finds them with ``pkgutil`` and
``importlib`` (a plugin lookup, not a static import), so the arrow between the two packages
points one way: ``splits`` -> ``manyicl``.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import pkgutil

from ..errors import UserError
from .layouts import name_key

ADAPTER_PACKAGE = "isekai_gen.splits"

TABLE1_ORDER = (
    "ham10000", "fives", "chexpert", "camelyon17", "terraincognita",
    "ucmerced", "eurosat", "oxford_pets", "dtd", "drugood",
)


@functools.lru_cache(maxsize=None)
def adapters() -> dict:
    """name -> adapter, Table 1 order first."""
    package = importlib.import_module(ADAPTER_PACKAGE)
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        adapter = importlib.import_module(f"{ADAPTER_PACKAGE}.{info.name}").ADAPTER
        found[adapter.name] = adapter
    rank = {name: position for position, name in enumerate(TABLE1_ORDER)}
    return {name: found[name] for name in sorted(found, key=lambda name: (rank.get(name, len(rank)), name))}


@functools.lru_cache(maxsize=None)
def _by_key() -> dict:
    """Normalised spelling -> adapter; two adapters claiming one spelling is a programming error."""
    index = {}
    for adapter in adapters().values():
        for spelling in (adapter.name, adapter.title, *getattr(adapter, "aliases", ())):
            claimed = index.setdefault(name_key(spelling), adapter)
            if claimed is not adapter:
                raise RuntimeError(f"dataset spelling {spelling!r} claimed by {claimed.name} and {adapter.name}")
    return index


def ordered_names(names) -> list[str]:
    """``names`` (any accepted spelling) in Table 1 order of their datasets, others by name after them."""
    def position(name):
        adapter = _by_key().get(name_key(name))
        canonical = adapter.name if adapter else name
        rank = TABLE1_ORDER.index(canonical) if canonical in TABLE1_ORDER else len(TABLE1_ORDER)
        return rank, canonical, name

    return sorted(set(names), key=position)


def get_adapter(name: str):
    adapter = _by_key().get(name_key(name))
    if adapter is not None:
        return adapter
    close = difflib.get_close_matches(name_key(name), list(_by_key()), n=1, cutoff=0.75)
    hint = f"; did you mean {_by_key()[close[0]].name!r}?" if close else ""
    raise UserError(f"unknown benchmark dataset {name!r} (known: {', '.join(adapters())}{hint})")
