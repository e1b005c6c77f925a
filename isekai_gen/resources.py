"""Locations of the files shipped beside the package: schemas, configs, the card template."""

from __future__ import annotations

from pathlib import Path

# schemas/ and configs/ sit next to isekai_gen/ both in the source tree and in site-packages
# (pyproject includes them as data packages).
ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "schemas"
CONFIG_DIR = ROOT / "configs"
CATALOG_DIR = CONFIG_DIR / "catalogs"
# A symlink to the top-level DATASET_CARD.md, so that wheels carry the template as package data.
DATASET_CARD_TEMPLATE = Path(__file__).resolve().parent / "templates" / "DATASET_CARD.md"


def schema_path(name: str) -> Path:
    """``name`` is the file stem, e.g. ``build_config`` -> schemas/build_config.schema.json."""
    return SCHEMA_DIR / f"{name}.schema.json"


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("_"))
