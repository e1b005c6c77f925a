"""What every build-folder export format reads: the kept images (with one flat metadata record
each) and the episodes.

Every exported image is described by the same flat metadata record (``METADATA_FIELDS``): it is
the ``json`` member of a webdataset sample and the metadata columns of the Parquet rows, so the
two formats never disagree about an image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import Catalog
from ..episodes.stage import EPISODES_FILE
from ..errors import UserError
from ..fileio import read_jsonl, sha256_bytes
from ..manifest import manifest_path, read_manifest
from ..schema import first_error
from ..storage import fetch_images

log = logging.getLogger(__name__)

EXPORT_DIR = "export"

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
