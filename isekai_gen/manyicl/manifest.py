"""Portable split manifests: share the exact split of a dataset that must not be re-hosted.

Every split folder carries ``split-manifest.json`` (schema ``split_manifest``): the recipe and
seed, where the items came from (the layouts read, or the Hub repo and commit), and per row its
side, labels, group, stratum, demo rank, the original id (the path relative to the layout's
folder, or the Hub copy's image id) and the sha256 of the image bytes. No image and no absolute
path is in it, so it can be published where the images cannot.

``from_manifest.materialize_manifest`` rebuilds exactly that split from someone else's copy of the dataset:
the rows are looked up by original id in their own root (any known layout, or a Hub snapshot),
every image's sha256 is checked, and ``demo.csv``/``test.csv`` are written in the manifest's
order. A missing or different image refuses the whole split in one line naming the first one
and how many there are; nothing is written then.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..fileio import read_json, write_json
from ..schema import validate
from .writer import MANIFEST_FILE as MANIFEST_NAME

MANIFEST_FORMAT = "isekai-gen split manifest 1"
ROW_FIELDS = ("file_name", "side", "labels", "group", "stratum", "demo_rank", "source_split")


def original_id(row: dict, layouts: list[dict]) -> str:
    """What names a row's image in any copy of the dataset: the Hub copy's id, else the source path
    relative to the folder of the layout it was read from (wrapper folders differ between copies)."""
    if "original_id" in row:
        return row["original_id"]
    path = row["source_path"]
    prefixes = sorted({lay["folder"] + "/" for lay in layouts if lay.get("folder", ".") != "."}, key=len, reverse=True)
    for prefix in prefixes:
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def index_rows(records: list[dict], layouts: list[dict], hub: bool) -> dict[str, int]:
    """Pool position by every name an item goes by: its original id, then (a layout) its output
    name, which is unique in a pool, or (a Hub copy) its image id, which is the original's stem for
    most copies. So a manifest made from one layout (or a Hub copy) finds its items in another;
    the sha256 check decides whether they are the same images."""
    index: dict[str, int] = {}
    for position, record in enumerate(records):
        index.setdefault(original_id(record, layouts), position)
        index.setdefault(record["original_id"].rpartition("/")[2] if hub else record["file_name"], position)
    return index


def manifest_of(meta: dict, rows: list[dict]) -> dict:
    layouts = meta.get("layouts") or []
    source = meta.get("source") or {"kind": "layout"}
    return {
        "format": MANIFEST_FORMAT,
        "dataset": meta["dataset"],
        "recipe": meta["recipe"],
        "seed": meta["seed"],
        "source": {**source, "layouts": layouts},
        "fingerprint": meta["fingerprint"],
        "rows": [{**{key: row[key] for key in ROW_FIELDS}, "original_id": original_id(row, layouts),
                  "sha256": row["sha256"], "action": row["image"]["action"]} for row in rows],
    }


def write_manifest(folder: Path, meta: dict, rows: list[dict]) -> Path:
    path = Path(folder) / MANIFEST_NAME
    write_json(path, manifest_of(meta, rows))
    return path


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: split manifest not found")
    manifest = read_json(path)
    validate(manifest, "split_manifest", path)
    return manifest


def recipe_settings(manifest: dict) -> dict:
    """The settings that give the manifest's recipe again (classes, sizes, the dataset's options)."""
    recipe = manifest["recipe"]
    return {"classes": list(recipe["classes"]), "demo_per_class": recipe["demo_per_class"],
            "test_per_class": recipe["test_per_class"], "seed": manifest["seed"], **recipe["options"]}


def manifest_only_notes(hf_folder: str | Path) -> list[str]:
    """One line per benchmark split of a Hugging Face export folder shared without its images (its
    licence forbids redistribution): what ``publish`` says about them."""
    lines = []
    for split_json in sorted(Path(hf_folder).glob("benchmarks/*/split.json")):
        recipe = read_json(split_json).get("recipe") or {}
        folder = split_json.parent
        if recipe.get("redistributable") is False:
            how = ("its split-manifest.json rebuilds it from a user's own copy (isekai-gen splits build "
                   "--from-manifest)" if (folder / MANIFEST_NAME).is_file() else "no split manifest: rebuild the split")
            lines.append(f"benchmarks/{folder.name}: images not published (licence: {recipe.get('license') or 'unknown'}); "
                         f"{how}")
    return lines
