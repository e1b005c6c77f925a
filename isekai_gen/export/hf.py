"""The Hugging Face dataset folder ``OUT/export/hf/`` (the card, README.md, is written by card.py).

Layout (what ``Dataset.push_to_hub`` writes and the Hub viewer reads best)::

    data/images-<split>-00000-of-0000N.parquet        one row per kept image: the image (the
                                                      `datasets` Image struct {bytes, path}) and
                                                      its metadata record (stage.METADATA_FIELDS)
    data/<episode set>-<split>-00000-of-0000N.parquet one row per episode (isekai-10, isekai-pair);
                                                      images are referenced by job id, i.e. the
                                                      `id` column of the images config
    benchmarks/<dataset>/{demo.csv,test.csv,split.jsonl,split.json[,images/]}
                                                      ManyICL splits; images only where the
                                                      source licence allows redistribution

The `datasets` features (Image, ClassLabel with the concept names, ...) travel in the Parquet
schema metadata, so ``load_dataset("parquet", ...)`` decodes images without the card. Files
are byte-deterministic: fixed row order and row-group size, no timestamps in Parquet metadata.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from tqdm import tqdm

from ..config import ExportConfig
from ..errors import UserError
from ..fileio import HashingWriter, atomic_open, atomic_write_bytes, read_json, remove_stale, sha256_bytes
from ..manyicl.writer import shared_files
from ..run_info import read_run
from .card import README, write_card
from .items import METADATA_FIELDS
from .registry import ExportResult, Exporter
from .webdataset import plan_shards

if TYPE_CHECKING:
    from .items import ExportItem

log = logging.getLogger(__name__)

HF_DIR = "hf"
DATA_DIR = "data"
BENCHMARKS_DIR = "benchmarks"
IMAGES_CONFIG = "images"
EPISODE_FIELDS = (
    ("episode_id", "string"), ("set", "string"), ("query", "string"), ("query_concept", "string"),
    ("label", "string"), ("positive_label", "string"), ("negative_label", "string"),
    ("positive_concept", "string"), ("negative_concept", "string"), ("group_id", "string"),
    ("positive_support", "list"), ("negative_support", "list"), ("max_shot", "int64"), ("pair_index", "int64"),
    ("similarity", "float64"),
)
# Rough per-row size of an episode (ids and labels) for shard planning.
EPISODE_ROW_BYTES = 2048


def image_features(classes: Sequence[str]):
    from datasets import ClassLabel, Features, Image, Value

    columns = {"id": Value("string"), "image": Image()}
    for name, dtype in METADATA_FIELDS:
        if name != "id":
            columns[name] = ClassLabel(names=list(classes)) if name == "class_index" else Value(dtype)
    return Features(columns)


def episode_features():
    from datasets import Features, List, Value

    return Features({
        name: List(Value("string")) if dtype == "list" else Value(dtype) for name, dtype in EPISODE_FIELDS
    })


def config_name(set_name: str) -> str:
    """``ISEKAI-10`` -> ``isekai-10``: Hub config names and file names in lower-case slugs."""
    return re.sub(r"[^a-z0-9]+", "-", set_name.lower()).strip("-")


def shard_file(config: str, split: str, number: int, count: int) -> str:
    return f"{DATA_DIR}/{config}-{split}-{number:05d}-of-{count:05d}.parquet"


def data_files_glob(config: str, split: str) -> str:
    return f"{DATA_DIR}/{config}-{split}-*.parquet"


def write_parquet(path: Path, rows: list[dict], features, row_group_rows: int) -> str:
    """One Parquet file, atomically; same rows in, same bytes out. Returns its sha256."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    with atomic_open(path, "wb") as handle:
        hashing = HashingWriter(handle)
        # Content-defined chunking keeps unchanged pages byte-identical across re-exports, so the
        # Hub's deduplicating storage uploads only what changed.
        pq.write_table(table, hashing, row_group_size=row_group_rows, compression="zstd",
                       use_content_defined_chunking=True)
    return hashing.digest.hexdigest()


def _image_rows(items: Sequence["ExportItem"]) -> list[dict]:
    return [{"image": {"bytes": item.read_image(), "path": f"{item.key}.png"}, **item.metadata} for item in items]


def _episode_rows(episodes: Sequence[dict]) -> list[dict]:
    return [{name: episode[name] for name, _ in EPISODE_FIELDS} for episode in episodes]


def _write_config(hf_dir, config, split, records, sizes, to_rows, features, limits, bar) -> dict:
    max_rows, max_bytes, row_group_rows = limits
    plan = plan_shards(sizes, max_rows, max_bytes)
    digests = {}
    for number, positions in enumerate(plan):
        relative = shard_file(config, split, number, len(plan))
        digests[relative] = write_parquet(hf_dir / relative, to_rows([records[i] for i in positions]), features,
                                          row_group_rows)
        bar.update(len(positions))
    return {"split": split, "rows": len(records), "files": list(digests), "sha256": digests,
            "data_files": data_files_glob(config, split)}


def write_hf_data(
    items: Sequence["ExportItem"],
    episodes: Sequence[dict],
    hf_dir: Path,
    *,
    split: str,
    classes: Sequence[str],
    max_rows_per_shard: int,
    max_bytes_per_shard: int,
    row_group_rows: int,
    progress: bool = False,
) -> dict:
    """Write the Parquet shards of every config; return ``{config: {split, rows, files, sha256, data_files}}``.

    The images config comes first (it is the default); episode sets follow in name order.
    Parquet files of earlier exports that this one did not write are removed.
    """
    hf_dir = Path(hf_dir)
    limits = (max_rows_per_shard, max_bytes_per_shard, row_group_rows)
    by_set: dict[str, list[dict]] = {}
    for episode in episodes:
        by_set.setdefault(episode["set"], []).append(episode)
    configs = {}
    with tqdm(total=len(items) + len(episodes), desc="parquet", unit="row", disable=not progress) as bar:
        image_sizes = [item.image_size for item in items]
        configs[IMAGES_CONFIG] = _write_config(
            hf_dir, IMAGES_CONFIG, split, items, image_sizes, _image_rows, image_features(classes), limits, bar)
        for set_name in sorted(by_set):
            rows = by_set[set_name]
            configs[config_name(set_name)] = _write_config(
                hf_dir, config_name(set_name), split, rows, [EPISODE_ROW_BYTES] * len(rows), _episode_rows,
                episode_features(), limits, bar)
    remove_stale(hf_dir / DATA_DIR, {hf_dir / f for info in configs.values() for f in info["files"]})
    return configs


def _benchmark_recipe(split_json: Path) -> tuple[bool, str | None]:
    data = read_json(split_json) if split_json.exists() else None
    recipe = data.get("recipe") if isinstance(data, dict) else None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("redistributable"), bool):
        raise UserError(f"{split_json}: missing or without a boolean recipe.redistributable")
    return recipe["redistributable"], recipe.get("license")


def copy_benchmark_splits(out_dir: Path, hf_dir: Path) -> tuple[list[dict], dict[Path, str]]:
    """Copy every ``OUT/benchmarks/<dataset>/`` split into ``hf/benchmarks/<dataset>/``.

    Split files (image ids and labels only) always travel; the images only when the split's
    recipe says the source licence allows redistribution. Returns one summary per dataset and
    the sha256 of every copied file (so the checksums need not read them again). A file
    already there with the same bytes is left alone.
    """
    source_root = Path(out_dir) / BENCHMARKS_DIR
    target_root = Path(hf_dir) / BENCHMARKS_DIR
    summaries, digests = [], {}
    for source in sorted(p for p in source_root.glob("*") if p.is_dir()):
        redistributable, license_name = _benchmark_recipe(source / "split.json")
        files = shared_files(source)  # the split manifest too: a split that cannot be re-hosted is shared by it
        for path in files:
            if not path.is_file():
                raise UserError(f"{path}: not found; rebuild the {source.name} split")
        images = sorted(p for p in (source / "images").rglob("*") if p.is_file()) if redistributable else []
        for path in files + images:
            target = target_root / path.relative_to(source_root)
            data = path.read_bytes()
            if not (target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data):
                atomic_write_bytes(target, data)
            digests[target] = sha256_bytes(data)
        summaries.append({"dataset": source.name, "redistributable": redistributable, "license": license_name,
                          "images": len(images)})
    remove_stale(target_root, set(digests))
    if target_root.is_dir() and not any(target_root.iterdir()):
        target_root.rmdir()
    return summaries, digests


class HFExporter(Exporter):
    """``OUT/export/hf/``: Parquet configs, the ManyICL splits, and the card (``export.hf``).

    The card states the content hash, so it is written in ``finish``, after SHA256SUMS; until
    then the folder has no README.md and is visibly unfinished (publish refuses it).
    """

    name = "hf"
    folder = HF_DIR
    default = True
    unhashed = (README,)

    def enabled(self, export: ExportConfig) -> bool:
        return export.hf.enabled

    def export(self, source) -> ExportResult:
        export = source.config.export
        settings = export.hf
        hf_dir = source.export_dir / HF_DIR
        (hf_dir / README).unlink(missing_ok=True)
        self.configs = write_hf_data(
            source.items, source.episodes, hf_dir, split=export.split, classes=source.catalog.ids,
            max_rows_per_shard=settings.max_rows_per_shard, max_bytes_per_shard=settings.max_bytes_per_shard,
            row_group_rows=settings.row_group_rows, progress=source.progress,
        )
        self.benchmarks, copied = copy_benchmark_splits(source.out_dir, hf_dir)
        export_dir = source.export_dir
        files = {path.relative_to(export_dir).as_posix(): digest for path, digest in copied.items()}
        files.update((f"{HF_DIR}/{file}", digest) for info in self.configs.values()
                     for file, digest in info["sha256"].items())
        return ExportResult(files, self.configs)

    def describe(self, summary: dict, show) -> list[str]:
        return [f"hf config {name}: {info['rows']} rows in {len(info['files'])} Parquet file(s)"
                for name, info in summary.items()]

    def outdated(self, source, content_hash: str) -> None:
        card = source.export_dir / HF_DIR / README
        if card.is_file() and content_hash not in card.read_text(encoding="utf-8"):
            log.warning("removing %s: it states the content hash before this export; "
                        "run `isekai-gen export --format hf` to write it again", card)
            card.unlink()

    def finish(self, source, content_hash: str) -> None:
        write_card(
            source.export_dir / HF_DIR, config=source.config, run=read_run(source.out_dir), catalog=source.catalog,
            manifest_rows=source.manifest_rows, items=source.items, episodes=source.episodes,
            hf_configs=self.configs, benchmarks=self.benchmarks, content_hash=content_hash,
        )


EXPORTER = HFExporter
