"""The ManyICL benchmark datasets: one module per dataset, each exposing ``ADAPTER``.

Adding a dataset means adding one module here that defines an ``isekai_gen.manyicl.Adapter``
subclass and ``ADAPTER = ThatClass()``; it is discovered automatically. The ten datasets of the
ManyICL paper are listed in its Table 1 order, any others after them by name.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from isekai_gen.errors import UserError

TABLE1_ORDER = (
    "ham10000", "fives", "chexpert", "camelyon17", "terraincognita",
    "ucmerced", "eurosat", "oxford_pets", "dtd", "drugood",
)


@functools.lru_cache(maxsize=None)
def adapters() -> dict:
    """name -> adapter, Table 1 order first."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        adapter = importlib.import_module(f"{__name__}.{info.name}").ADAPTER
        found[adapter.name] = adapter
    return {name: found[name] for name in ordered_names(found)}


def ordered_names(names) -> list[str]:
    names = set(names)
    return [n for n in TABLE1_ORDER if n in names] + sorted(names - set(TABLE1_ORDER))


def get_adapter(name: str):
    try:
        return adapters()[name]
    except KeyError:
        raise UserError(f"unknown benchmark dataset {name!r} (known: {', '.join(adapters())})") from None
