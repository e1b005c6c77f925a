"""The files of one split folder: ManyICL ``demo.csv``/``test.csv``, ``split.jsonl``, ``split.json``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .. import __version__
from ..errors import UserError
from ..fileio import atomic_open, dumps_canonical, read_json, read_jsonl, write_json, write_jsonl
from ..paths import check_file_name
from ..schema import validate
from .recipe import Recipe

SPLIT_FILES = ("demo.csv", "test.csv", "split.jsonl", "split.json")
MANIFEST_FILE = "split-manifest.json"  # manifest.py writes it; older split folders lack it


def shared_files(folder: Path) -> list[Path]:
    """The files of a split folder that are published whatever the licence: the split files and,
    when there is one, the portable manifest (ids and sha256 of the images, no image)."""
    folder = Path(folder)
    return [folder / name for name in SPLIT_FILES] + ([folder / MANIFEST_FILE] if (folder / MANIFEST_FILE).is_file() else [])


def write_manyicl_csv(path: Path, rows: list[dict], classes: tuple[str, ...]) -> None:
    """ManyICL format: unnamed first column = file name, one ``1.0``/``0.0`` column per class.

    Written by hand rather than with ``DataFrame.to_csv`` so the bytes never depend on the pandas
    version; ``pandas.read_csv(path, index_col=0)`` reads it back.
    """
    for name in (*classes, *(row["file_name"] for row in rows)):
        if any(ch in name for ch in ',"\n\r'):
            raise UserError(f"{path.name}: name {name!r} holds a comma, quote or line break (not allowed in a ManyICL CSV)")
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(",".join(["", *classes]) + "\n")
        for row in rows:
            positive = set(row["labels"])
            handle.write(",".join([row["file_name"], *("1.0" if c in positive else "0.0" for c in classes)]) + "\n")


def fingerprint(rows: list[dict], source_sizes: dict[str, int]) -> str:
    """sha256 over the rows sorted by (side, file name) and the sizes of their source files."""
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda r: (r["side"], r["file_name"])):
        digest.update(dumps_canonical(row).encode("utf-8") + b"\n")
    for path in sorted(source_sizes):
        digest.update(f"{path}\t{source_sizes[path]}\n".encode("utf-8"))
    return "sha256:" + digest.hexdigest()


def counts(rows: list[dict], recipe: Recipe) -> dict:
    """Per side and class: items (single-label) or positive/negative items (multi-label)."""
    result = {}
    for side in ("demo", "test"):
        side_rows = [row for row in rows if row["side"] == side]
        per_class = {}
        for name in recipe.classes:
            positives = sum(name in row["labels"] for row in side_rows)
            negatives = len(side_rows) - positives
            per_class[name] = {"positive": positives, "negative": negatives} if recipe.multilabel else positives
        result[side] = per_class
    return result


def split_meta(recipe: Recipe, rows: list[dict], seed: int, materialize: str, source_sizes: dict[str, int],
               content: dict | None = None, layouts: list[dict] | None = None) -> dict:
    meta = {
        "dataset": recipe.name,
        "recipe": recipe.to_json(),
        "seed": seed,
        "materialize": materialize,
        "counts": counts(rows, recipe),
        "totals": {side: sum(row["side"] == side for row in rows) for side in ("demo", "test")},
        "tool": "isekai-gen",
        "tool_version": __version__,
        "fingerprint": fingerprint(rows, source_sizes),
        "contained_labels": recipe.contained_labels,
    }
    if layouts is not None:
        meta["layouts"] = layouts
    if content is not None:
        meta["content"] = content
    return meta


def write_split_files(folder: Path, recipe: Recipe, rows: list[dict], meta: dict) -> None:
    for row in rows:  # the schema's rule, checked before anything is written
        check_file_name(row["file_name"], source=folder.parent / recipe.name / "split.jsonl")
    for side in ("demo", "test"):
        write_manyicl_csv(folder / f"{side}.csv", [row for row in rows if row["side"] == side], recipe.classes)
    write_jsonl(folder / "split.jsonl", rows)
    write_json(folder / "split.json", meta)


def read_split(folder: str | Path) -> tuple[dict, list[dict]]:
    """Read back ``split.json`` and ``split.jsonl`` of a split folder, validated against the schemas."""
    folder = Path(folder)
    meta = read_json(folder / "split.json")
    validate(meta, "split_meta", folder / "split.json")
    rows = read_jsonl(folder / "split.jsonl")
    for lineno, row in enumerate(rows, start=1):
        validate(row, "split_row", f"{folder / 'split.jsonl'}:{lineno}")
    return meta, rows
