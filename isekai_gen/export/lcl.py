"""LCL annotation files: episodes in the format of the original ISEKAI release.

``OUT/export/lcl/ISEKAI-10.json`` and ``ISEKAI-pair.json`` are JSON Lines (despite the
extension) with the original field names, typo included (``positive_promt``). The original
loader (Link-Context-Learning, ``mllm/dataset/utils/mixin.py`` ``MInstrDataset.get_image``)
joins each path onto its ``image_folder`` with ``os.path.join``; ours is ``OUT/export/lcl/images``,
laid out like the release: ``<concept>/pos-<concept>/<file>``. ``ISEKAIEval`` asserts an even
line count and uses the first ``shot`` entries of each support list.

Images are independent files by default (``export.lcl.images: clone``: a reflink where the file
system has them, else a copy), so editing an exported file can never change the build's image
(the manifest's sha256). ``hardlink`` saves the space on request and makes the shared inode
read-only. Reruns leave correct files alone and remove files no episode refers to any more.
The sha256 of every placed file is remembered in ``OUT/cache/lcl-images.json`` (keyed by its
size, mtime and inode), so the export's SHA256SUMS need not read the images back.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import filecmp
import logging
import os
import shutil
import stat
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from ..catalog import Catalog
from ..config import LclExportConfig
from ..episodes.inputs import kept_manifest_rows
from ..episodes.stage import EPISODES_FILE, SETS
from ..errors import UserError
from ..fileio import read_json, remove_stale, temp_prefix, sha256_file, write_json, write_jsonl
from ..manifest import MANIFEST
from ..storage import fetch_images
from .items import read_episodes
from .registry import ExportResult, Exporter

log = logging.getLogger(__name__)

LCL_DIR = Path("export") / "lcl"
IMAGE_ROOT = "images"
PLACED_CACHE = Path("cache") / "lcl-images.json"
# linux/fs.h FICLONE: the ioctl `cp --reflink` uses; no stdlib call makes a copy-on-write clone.
FICLONE = 0x40049409


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


def place_file(source: Path, target: Path, mode: str = "clone") -> str:
    """Make ``target`` hold ``source``'s bytes: ``present``, ``cloned``, ``copied`` or ``linked``.

    A target that is a hard link of ``source`` while the mode asks for a copy is replaced.
    """
    if not source.is_file():
        raise UserError(f"{source}: image file not found (listed as kept in {MANIFEST})")
    if target.exists():
        shared = os.path.samefile(source, target)
        if shared == (mode == "hardlink") and (shared or filecmp.cmp(source, target, shallow=False)):
            return "present"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f"{temp_prefix(target.name)}staging")
    staging.unlink(missing_ok=True)
    try:
        outcome = _link(source, staging) if mode == "hardlink" else _copy(source, staging, clone=mode == "clone")
        os.replace(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return outcome


def _link(source: Path, staging: Path) -> str:
    try:
        os.link(source, staging)
    except OSError as exc:   # another file system, or links not supported: a copy keeps the build safe
        log.info("hard link %s failed (%s); copying", source, exc.strerror)
        return _copy(source, staging, clone=True)
    # The inode is shared with OUT/images: read-only, so an edit fails instead of changing the build.
    os.chmod(staging, stat.S_IMODE(os.stat(staging).st_mode) & ~0o222)
    return "linked"


def _copy(source: Path, staging: Path, *, clone: bool) -> str:
    if clone:
        with open(source, "rb") as src, open(staging, "wb") as dst:
            try:
                fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
                return "cloned"
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EBADF):
                    raise
    shutil.copyfile(source, staging)   # copy_file_range/sendfile in the kernel where available
    return "copied"


def placed_digests(out_dir: Path) -> dict[str, str]:
    """``export/lcl/images/<path>`` -> sha256 for placed files whose size, mtime and inode are as
    recorded when they were placed (a file edited since is hashed again by the caller)."""
    cache = Path(out_dir) / PLACED_CACHE
    if not cache.is_file():
        return {}
    with contextlib.suppress(UserError):
        recorded = read_json(cache)
        image_root = Path(out_dir) / LCL_DIR / IMAGE_ROOT
        digests = {}
        for relative, (digest, size, mtime_ns, inode) in recorded.items():
            with contextlib.suppress(OSError):
                info = os.stat(image_root / relative)
                if (info.st_size, info.st_mtime_ns, info.st_ino) == (size, mtime_ns, inode):
                    digests[f"{LCL_DIR.name}/{IMAGE_ROOT}/{relative}"] = digest
        return digests
    return {}


def _no_episodes(out_dir: Path) -> str:
    return f"{Path(out_dir) / EPISODES_FILE}: not found; run `isekai-gen episodes --out {out_dir}` first"


def export_lcl(settings: LclExportConfig, out_dir: Path, catalog: Catalog, *, progress: bool = False) -> dict:
    """Write the LCL annotation files and their image root from ``OUT/episodes/episodes.jsonl``."""
    out_dir = Path(out_dir)
    kept = kept_manifest_rows(out_dir)
    fetch_images(out_dir, kept)  # a remote build's images, into its mirror (no-op for a local build)
    path_of = {r["job_id"]: lcl_image_path(r["concept_id"], r["image"]) for r in kept}
    source_of = {path_of[r["job_id"]]: out_dir / r["image"] for r in kept}
    mode = settings.images
    episodes_file = out_dir / EPISODES_FILE
    if not episodes_file.exists():
        raise UserError(_no_episodes(out_dir))
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
        place_file(source_of[p], image_root / p, mode)
        for p in tqdm(wanted, desc="lcl images", unit="img", disable=not progress)
    )
    removed = remove_stale(image_root, {image_root / p for p in wanted})
    # Digests of the bytes actually placed (read back from the page cache), reused while unchanged.
    known = placed_digests(out_dir)
    placed = {}
    for p in wanted:
        target = image_root / p
        info = os.stat(target)
        digest = known.get(f"{LCL_DIR.name}/{IMAGE_ROOT}/{p}") or sha256_file(target)
        placed[p] = [digest, info.st_size, info.st_mtime_ns, info.st_ino]
    write_json(out_dir / PLACED_CACHE, placed)

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
        "copied": outcomes["copied"] + outcomes["cloned"],
        "cloned": outcomes["cloned"],
        "removed": removed,
        "path": str(lcl_dir),
    }


class LCLExporter(Exporter):
    """``OUT/export/lcl/``: the annotation files and image root of the original ISEKAI release."""

    name = "lcl"
    folder = LCL_DIR.name
    default = True

    def missing_input(self, source) -> str | None:
        return None if (source.out_dir / EPISODES_FILE).exists() else _no_episodes(source.out_dir)

    def export(self, source) -> ExportResult:
        source.items  # the manifest checks every build format shares (filtered, kept images present)
        summary = export_lcl(source.config.export.lcl, source.out_dir, source.catalog, progress=source.progress)
        return ExportResult(placed_digests(source.out_dir), summary)

    def describe(self, summary: dict, show) -> list[str]:
        return [f"lcl: {summary['images']} images ({summary['linked']} linked, {summary['copied']} copied) "
                f"-> {show(self.folder)}"]


EXPORTER = LCLExporter
