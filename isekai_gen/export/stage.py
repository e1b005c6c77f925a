"""The export stage: kept images and episodes -> webdataset shards + Hugging Face folder + card.

``run_export`` is what the build and ``isekai-gen export`` call, after the LCL export (which
writes ``OUT/export/lcl/``) and the ManyICL splits (which it packages), so that the content hash
covers them.

Every exported image is described by the same flat metadata record (``METADATA_FIELDS``): it is
the ``json`` member of a webdataset sample and the metadata columns of the Parquet rows, so the
two formats never disagree about an image.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import Catalog
from ..episodes.stage import EPISODES_FILE
from ..errors import UserError
from ..fileio import atomic_write_bytes, read_jsonl, sha256_bytes, sha256_file
from ..manifest import manifest_path, read_manifest
from ..run_info import read_run
from ..schema import first_error
from ..storage import fetch_images

log = logging.getLogger(__name__)

EXPORT_DIR = "export"
WEBDATASET_DIR = "webdataset"
HF_DIR = "hf"

# (name, type) of every metadata field of an exported image. Types are `datasets` Value dtypes;
# score fields are null when the filter ran without scores.
METADATA_FIELDS = (
    ("id", "string"), ("concept", "string"), ("group", "string"), ("world", "string"), ("label", "string"),
    ("class_index", "int64"), ("prompt", "string"), ("negative_prompt", "string"), ("prompt_variant", "int64"),
    ("seed", "int64"), ("model", "string"), ("model_revision", "string"), ("steps", "int64"),
    ("guidance_scale", "float64"), ("width", "int64"), ("height", "int64"), ("sha256", "string"),
    ("smoke_test", "bool"), ("clip_model", "string"), ("clip_pretrained", "string"), ("alignment", "float64"),
    ("partner_cosine", "float64"), ("margin", "float64"), ("zeroshot_prob", "float64"), ("top1", "bool"),
    ("phash", "string"),
)
# metadata field -> manifest field (top level) or scores field (prefixed "scores.")
_MANIFEST_SOURCE = {
    "id": "job_id", "concept": "concept_id", "group": "group_id", "model": "model_id",
    "clip_model": "scores.model", "clip_pretrained": "scores.pretrained", "alignment": "scores.alignment",
    "partner_cosine": "scores.partner_cosine", "margin": "scores.margin", "zeroshot_prob": "scores.zeroshot_prob",
    "top1": "scores.top1", "phash": "scores.phash",
}
_NULLABLE = {"model_revision", "clip_model", "clip_pretrained", "alignment", "partner_cosine", "margin",
             "zeroshot_prob", "top1", "phash"}
_PYTHON_TYPES = {"string": (str,), "int64": (int,), "float64": (int, float), "bool": (bool,)}


@dataclass
class ExportItem:
    """One kept image: its sample key, file and metadata record."""

    key: str            # the job id; the manifest schema keeps it to [a-z0-9-], a valid webdataset key
    image_path: Path
    image_size: int     # bytes, for planning shards before reading any image
    metadata: dict
    # Set by the first read: each format reads the image again, but hashing it once per export suffices.
    checked: bool = field(default=False, init=False, repr=False, compare=False)

    def read_image(self) -> bytes:
        """The PNG bytes, checked against the manifest's sha256 on first read (a changed file is an error)."""
        data = bytearray(self.image_size)
        self.read_image_into(memoryview(data))
        return bytes(data)

    def read_image_into(self, view: memoryview) -> None:
        """Read the PNG into ``view`` (``image_size`` bytes), checked like ``read_image``."""
        try:
            with open(self.image_path, "rb", buffering=0) as handle:
                complete = handle.readinto(view) == len(view) and not handle.read(1)
        except FileNotFoundError:
            raise UserError(f"{self.image_path}: image of kept job {self.key} not found") from None
        except OSError as exc:  # a folder in its place, no permission, ...
            raise UserError(f"{self.image_path}: cannot read the image of kept job {self.key} ({exc.strerror})") from None
        if not complete:
            raise UserError(f"{self.image_path}: image changed during the export (its size differs)")
        if not self.checked:
            if sha256_bytes(view) != self.metadata["sha256"]:
                raise UserError(f"{self.image_path}: content does not match the sha256 recorded in the manifest")
            self.checked = True


def _manifest_value(row: dict, field: str):
    source = _MANIFEST_SOURCE.get(field, field)
    if source.startswith("scores."):
        return (row.get("scores") or {}).get(source.removeprefix("scores."))
    return row.get(source)


def image_metadata(row: dict, class_index: int, source: str) -> dict:
    """The flat metadata record of a kept manifest row; ``source`` names the row in errors."""
    metadata = {}
    for name, dtype in METADATA_FIELDS:
        value = class_index if name == "class_index" else _manifest_value(row, name)
        if value is None and name in _NULLABLE:
            metadata[name] = None
            continue
        if (isinstance(value, bool) and dtype != "bool") or not isinstance(value, _PYTHON_TYPES[dtype]):
            raise UserError(f"{source}: {_MANIFEST_SOURCE.get(name, name)} is {value!r}, expected {dtype}")
        metadata[name] = float(value) if dtype == "float64" else value
    return metadata


def collect_items(out_dir: Path, catalog: Catalog) -> tuple[list[ExportItem], list[dict]]:
    """Kept images ordered by (class index, job id), and every manifest row (for the card's numbers).

    The class index is the concept's position in ``catalog`` (restrict it to the built concepts
    first with ``Catalog.subset``), so it is stable across builds of the same catalog.
    """
    rows = read_manifest(out_dir)
    path = manifest_path(out_dir)
    if rows and not any("kept" in row for row in rows):
        raise UserError(f"{path}: no filter results (`kept`); run the filter stage first")
    fetch_images(Path(out_dir), [row for row in rows if row.get("kept") is True])  # a remote build's, once
    class_of = {concept_id: index for index, concept_id in enumerate(catalog.ids)}
    items = []
    for number, row in enumerate(rows, start=1):
        if row.get("kept") is not True:
            continue
        source = f"{path}: row {number} ({row['job_id']})"
        if row["status"] != "ok" or not row["image"] or not row["sha256"]:
            raise UserError(f"{source}: kept but has no image (status {row['status']!r})")
        if row["concept_id"] not in class_of:
            raise UserError(f"{source}: concept {row['concept_id']!r} is not in catalog {catalog.source}")
        metadata = image_metadata(row, class_of[row["concept_id"]], source)
        image_path = Path(out_dir) / row["image"]
        try:
            size = image_path.stat().st_size
        except FileNotFoundError:
            raise UserError(f"{image_path}: image of kept job {row['job_id']} not found") from None
        items.append(ExportItem(key=row["job_id"], image_path=image_path, image_size=size, metadata=metadata))
    if not items:
        raise UserError(f"{path}: no kept images to export")
    items.sort(key=lambda item: (item.metadata["class_index"], item.key))
    return items, rows


def read_episodes(out_dir: Path, kept_ids: set[str]) -> list[dict]:
    """Episode rows in file order, validated; every image they name must be an exported image.

    A build without episodes (no ``episodes/episodes.jsonl``) exports images only.
    """
    path = Path(out_dir) / EPISODES_FILE
    if not path.exists():
        log.warning("%s not found: exporting images without episodes", path)
        return []
    rows = read_jsonl(path)
    for number, row in enumerate(rows, start=1):
        problem = first_error("episode_row", row)
        if problem:
            raise UserError(f"{path}: row {number}: {problem}")
        for job_id in [row["query"], *row["positive_support"], *row["negative_support"]]:
            if job_id not in kept_ids:
                raise UserError(f"{path}: row {number} ({row['episode_id']}): image {job_id!r} is not a kept image")
    return rows


def run_export(config: dict, out_dir: Path, catalog: Catalog, *, progress: bool = False) -> dict:
    """Write ``OUT/export/webdataset/`` and ``OUT/export/hf/`` (with README.md) from a filtered build.

    Returns a summary: ``{"images", "webdataset" (the shard index or None), "hf" (configs or None),
    "content_hash", "files"}``. Identical inputs give byte-identical files. A format switched off
    in the config has its folder removed, so the content hash never covers stale files.
    """
    from .card import README, write_card
    from .hf import copy_benchmark_splits, write_hf_data
    from .lcl import placed_digests
    from .webdataset import write_webdataset

    out_dir = Path(out_dir)
    export = config["export"]
    run = read_run(out_dir)
    items, manifest_rows = collect_items(out_dir, catalog)
    episodes = read_episodes(out_dir, {item.key for item in items})
    export_dir = out_dir / EXPORT_DIR
    wds_dir, hf_dir = export_dir / WEBDATASET_DIR, export_dir / HF_DIR
    for enabled, folder in ((export["webdataset"]["enabled"], wds_dir), (export["hf"]["enabled"], hf_dir)):
        if not enabled and folder.exists():
            log.info("removing %s: switched off in the config", folder)
            shutil.rmtree(folder)
        # A killed export leaves its temporary files (a partial shard can be 500 MB); this run owns the folder.
        for leftover in sorted(folder.rglob(".tmp-*")):
            if leftover.is_file():
                log.info("removing %s left by an interrupted export", leftover)
                leftover.unlink()

    index = hf_configs = benchmarks = None
    known: dict[str, str] = {}  # path under export/ -> sha256
    if export["webdataset"]["enabled"]:
        settings = export["webdataset"]
        index = write_webdataset(
            items, wds_dir, split=export["split"], classes=catalog.ids,
            max_samples_per_shard=settings["max_samples_per_shard"],
            max_bytes_per_shard=settings["max_bytes_per_shard"], progress=progress,
        )
    if export["hf"]["enabled"]:
        settings = export["hf"]
        # The card goes last: until it is back, the folder is visibly unfinished (publish refuses it).
        (hf_dir / README).unlink(missing_ok=True)
        hf_configs = write_hf_data(
            items, episodes, hf_dir, split=export["split"], classes=catalog.ids,
            max_rows_per_shard=settings["max_rows_per_shard"], max_bytes_per_shard=settings["max_bytes_per_shard"],
            row_group_rows=settings["row_group_rows"], progress=progress,
        )
        benchmarks, copied = copy_benchmark_splits(out_dir, hf_dir)
        known.update((path.relative_to(export_dir).as_posix(), digest) for path, digest in copied.items())
    # Digests known without reading the files back: taken while writing, or checked already.
    known.update((f"{WEBDATASET_DIR}/{shard['file']}", shard["sha256"]) for shard in (index or {}).get("shards", []))
    known.update((f"{HF_DIR}/{file}", digest) for info in (hf_configs or {}).values()
                 for file, digest in info["sha256"].items())
    known.update(placed_digests(out_dir))   # LCL images: hashed when placed, unchanged since
    content_hash, files = write_checksums(export_dir, known)
    if hf_configs is not None:
        write_card(
            hf_dir, config=config, run=run, catalog=catalog, manifest_rows=manifest_rows, items=items,
            episodes=episodes, hf_configs=hf_configs, benchmarks=benchmarks, content_hash=content_hash,
        )
    return {"images": len(items), "webdataset": index, "hf": hf_configs, "content_hash": content_hash,
            "files": files}


CHECKSUMS = "SHA256SUMS"
# The card is excluded from the content hash because it states the hash.
_NOT_HASHED = {CHECKSUMS, f"{HF_DIR}/README.md"}


def write_checksums(export_dir: Path, known: dict[str, str] | None = None) -> tuple[str, int]:
    """Write ``OUT/export/SHA256SUMS`` (``sha256sum -c`` format, paths sorted) and return its sha256.

    That digest is the export's content hash: it changes when any exported file (webdataset,
    Parquet, LCL files and images, benchmark splits) changes, and only then. ``known`` maps
    relative paths to digests computed while writing them this run (the shards), not re-read.
    """
    known = known or {}
    lines = []
    for path in sorted(p for p in export_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(export_dir).as_posix()
        if relative in _NOT_HASHED or path.name.startswith(".tmp-"):
            continue
        lines.append(f"{known.get(relative) or sha256_file(path)}  {relative}\n")
    data = "".join(lines).encode("utf-8")
    atomic_write_bytes(export_dir / CHECKSUMS, data)
    return sha256_bytes(data), len(lines)

