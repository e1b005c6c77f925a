"""Locations of the files shipped beside the package: schemas, configs, the card template."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Installed from a wheel, schemas/ and configs/ are inside the package (isekai_gen.schemas,
# isekai_gen.configs); in the source tree (and an editable install) they sit beside it.
_DATA_ROOT = PACKAGE_DIR if (PACKAGE_DIR / "schemas").is_dir() else PACKAGE_DIR.parent
SCHEMA_DIR = _DATA_ROOT / "schemas"
CONFIG_DIR = _DATA_ROOT / "configs"
CATALOG_DIR = CONFIG_DIR / "catalogs"
# A symlink to the top-level DATASET_CARD.md, so that wheels carry the template as package data.
DATASET_CARD_TEMPLATE = PACKAGE_DIR / "templates" / "DATASET_CARD.md"


def default_cache_dir() -> Path:
    """The tool's cache on this machine (tiny pipelines, mirrors of remote builds): ``ISEKAI_GEN_CACHE``,
    else ``$XDG_CACHE_HOME/isekai-gen`` (``~/.cache/isekai-gen``)."""
    root = os.environ.get("ISEKAI_GEN_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "isekai-gen"
    return Path(root)


def schema_path(name: str) -> Path:
    """``name`` is the file stem, e.g. ``build_config`` -> schemas/build_config.schema.json."""
    return SCHEMA_DIR / f"{name}.schema.json"


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("_"))
