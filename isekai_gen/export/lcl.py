"""LCL annotation files: episodes in the format of the original ISEKAI release.

``OUT/export/lcl/ISEKAI-10.json`` and ``ISEKAI-pair.json`` are JSON Lines (despite the
extension) with the original field names, typo included (``positive_promt``). The original
loader (Link-Context-Learning, ``mllm/dataset/utils/mixin.py`` ``MInstrDataset.get_image``)
joins each path onto its ``image_folder`` with ``os.path.join``; ours is ``OUT/export/lcl/images``,
laid out like the release: ``<concept>/pos-<concept>/<file>``. ``ISEKAIEval`` asserts an even
line count and uses the first ``shot`` entries of each support list.

Images are hard links to ``OUT/images`` where the file system allows, else copies; reruns
leave correct files alone and remove files no episode refers to any more.
"""

from __future__ import annotations

import filecmp
import logging
import os
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from ..catalog import Catalog
from ..episodes.inputs import kept_manifest_rows
from ..episodes.stage import EPISODES_FILE, SETS
from ..errors import UserError
from ..fileio import atomic_write_bytes, remove_stale, write_jsonl
from ..manifest import MANIFEST
from .stage import read_episodes

log = logging.getLogger(__name__)

LCL_DIR = Path("export") / "lcl"
IMAGE_ROOT = "images"


def annotation_file(set_name: str) -> str:
    return f"{set_name}.json"


def lcl_image_path(concept_id: str, image: str) -> str:
    """Path of an image under the LCL image root, as written into the annotation files."""
    return f"{concept_id}/pos-{concept_id}/{Path(image).name}"


def lcl_line(row: dict, catalog: Catalog, path_of: dict[str, str]) -> dict:
    """One annotation line; labels come from the catalog, the source of every label string."""
    return {
        "image_name": path_of[row["query"]],
        "positive_list": [path_of[j] for j in row["positive_support"]],
        "negative_list": [path_of[j] for j in row["negative_support"]],
        "positive_promt": catalog.concept(row["positive_concept"]).label,
        "negative_promt": catalog.concept(row["negative_concept"]).label,
        "label_name": catalog.concept(row["query_concept"]).label,
    }


def place_file(source: Path, target: Path) -> str:
    """Make ``target`` hold ``source``'s bytes: ``present``, ``linked`` or ``copied``."""
    if not source.is_file():
        raise UserError(f"{source}: image file not found (listed as kept in {MANIFEST})")
    if target.exists() and (os.path.samefile(source, target) or filecmp.cmp(source, target, shallow=False)):
        return "present"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".tmp-{target.name}")
    staging.unlink(missing_ok=True)
    try:
        os.link(source, staging)
    except OSError:  # another file system, or links not supported
        atomic_write_bytes(target, source.read_bytes())
        return "copied"
    os.replace(staging, target)
    return "linked"


def export_lcl(config: dict, out_dir: Path, catalog: Catalog, *, progress: bool = False) -> dict:
    """Write the LCL annotation files and their image root from ``OUT/episodes/episodes.jsonl``."""
    out_dir = Path(out_dir)
    kept = kept_manifest_rows(out_dir)
    path_of = {r["job_id"]: lcl_image_path(r["concept_id"], r["image"]) for r in kept}
    source_of = {path_of[r["job_id"]]: out_dir / r["image"] for r in kept}
    episodes_file = out_dir / EPISODES_FILE
    if not episodes_file.exists():
        raise UserError(f"{episodes_file}: not found; run `isekai-gen episodes --out {out_dir}` first")
    rows = read_episodes(out_dir, set(path_of))

    lcl_dir = out_dir / LCL_DIR
    lines_by_set = {name: [lcl_line(r, catalog, path_of) for r in rows if r["set"] == name] for name in SETS}
    for name, lines in lines_by_set.items():
        if len(lines) % 2:  # ISEKAIEval asserts an even count: queries come in pairs, one per class
            raise UserError(f"{episodes_file}: {name} has {len(lines)} lines; the original loader needs an even number")
    wanted = sorted({p for lines in lines_by_set.values() for line in lines
                     for p in [line["image_name"], *line["positive_list"], *line["negative_list"]]})
    image_root = lcl_dir / IMAGE_ROOT
    outcomes = Counter(
        place_file(source_of[p], image_root / p)
        for p in tqdm(wanted, desc="lcl images", unit="img", disable=not progress)
    )
    removed = remove_stale(image_root, {image_root / p for p in wanted})

    for name, lines in lines_by_set.items():
        target = lcl_dir / annotation_file(name)
        if lines:
            write_jsonl(target, lines)
        else:
            target.unlink(missing_ok=True)
    log.info("lcl export: %d images (%s), %d stale removed", len(wanted), dict(outcomes), removed)
    return {
        "files": {annotation_file(n): len(lines) for n, lines in lines_by_set.items() if lines},
        "images": len(wanted),
        "linked": outcomes["linked"],
        "copied": outcomes["copied"],
        "removed": removed,
        "path": str(lcl_dir),
    }
