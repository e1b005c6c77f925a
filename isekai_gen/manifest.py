"""``OUT/manifest.jsonl``: one row per job, the single source of truth for every later stage.

Generation checkpoints its rows per shard in ``OUT/manifest.parts/``: a journal with one line
per committed batch (``{"rows": [...]}``), appended and fsynced. A line is committed once its
newline is on disk, so a torn last line (process killed mid-write) is ignored and cut off on
resume, and a batch is never half-committed. Once every planned job has a row, the journals are
merged into ``manifest.jsonl``. ``generate --regenerate`` appends a line marked
``"regenerated": true`` whose rows supersede that journal's earlier rows for the same jobs
(only when a re-rendered image's bytes changed); its rows are no batch of the plan.
Later stages rewrite ``manifest.jsonl`` atomically, adding their own columns.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Iterator

import orjson

from .errors import UserError, where
from .fileio import collection_paused, dumps_canonical, parse_json_object, write_jsonl
from .paths import contained
from .schema import first_error

MANIFEST = "manifest.jsonl"
PARTS = "manifest.parts"
# Columns written by the generation stage; everything else belongs to later stages.
GENERATION_FIELDS = (
    "job_id", "concept_id", "group_id", "world", "label", "index", "round", "prompt_variant", "prompt",
    "negative_prompt", "seed", "attempt", "rejected_attempts", "status", "image", "sha256", "width", "height",
    "model_id", "model_revision", "pipeline_class", "dtype", "device_type", "steps", "guidance_scale", "smoke_test",
)


def manifest_path(out_dir: Path) -> Path:
    return Path(out_dir) / MANIFEST


def part_path(out_dir: Path, shard_index: int, shard_count: int) -> Path:
    return Path(out_dir) / PARTS / f"part-{shard_index:05d}-of-{shard_count:05d}.jsonl"


def read_manifest(out_dir: Path, *, required: bool = True) -> list[dict]:
    """Read and validate ``OUT/manifest.jsonl`` into a list; each bad row is reported with its line.

    For stages that need every row at once; ``iter_manifest`` streams in bounded memory.
    """
    with collection_paused():
        return list(iter_manifest(out_dir, required=required))


def iter_manifest(out_dir: Path, *, required: bool = True) -> Iterator[dict]:
    """Stream the validated rows of ``OUT/manifest.jsonl`` (memory: one row plus the job-id set).

    Lines are parsed with orjson (~4x faster than ``json``); each row is checked against
    ``manifest_row`` (jsonschema-rs) and for a duplicate ``job_id``; its ``image`` must name a
    file inside the build folder (``_check_image``).
    """
    path = manifest_path(out_dir)
    if not path.exists():
        if required:
            raise UserError(f"{path}: not found; run `isekai-gen generate --out {out_dir}` first")
        return
    seen: set[str] = set()
    folders: dict[str, None] = {}
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row = parse_json_object(line, path, number, loads=orjson.loads)
            problem = first_error("manifest_row", row)
            if problem:
                raise UserError(f"{path}: row {number} ({row.get('job_id', '?')}): {problem}")
            if row["job_id"] in seen:
                raise UserError(f"{path}: row {number}: duplicate job_id {row['job_id']!r}")
            seen.add(row["job_id"])
            if row["image"] is not None:
                _check_image(out_dir, row["image"], folders, where(path, number))
            yield row


def _check_image(out_dir: Path, image: str, folders: dict, source: str) -> None:
    """``image`` is relative and stays inside OUT: lexically per row, symlinks once per folder
    (resolving every one of a million rows would cost more than parsing them)."""
    parts = PurePosixPath(image).parts
    if image.startswith("/") or "\\" in image or ".." in parts or not parts:
        contained(out_dir, image, what="image", source=source)   # raises, naming the row
        raise UserError(f"{source}: image {image!r} is not a plain relative path")
    folder = image.rpartition("/")[0]
    if folder not in folders:
        contained(out_dir, folder or ".", what="image folder", source=source)
        folders[folder] = None


def write_manifest(out_dir: Path, rows: list[dict]) -> None:
    write_jsonl(manifest_path(out_dir), rows)


def generation_view(row: dict) -> dict:
    return {k: row.get(k) for k in GENERATION_FIELDS}


def read_journal(path: Path) -> tuple[list[dict], int]:
    """Committed lines of one shard journal (``{"rows": [...]}``, one per batch, plus any
    ``"regenerated": true`` lines) and the byte length of its committed prefix."""
    lines: list[dict] = []
    committed = 0
    with open(path, "rb") as handle:
        data = handle.read()
    with collection_paused():
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn tail: the batch was never committed
            try:
                batch = json.loads(line)
            except json.JSONDecodeError:
                batch = None
            if not isinstance(batch, dict) or not isinstance(batch.get("rows"), list) \
                    or not all(isinstance(row, dict) and isinstance(row.get("job_id"), str) for row in batch["rows"]):
                raise UserError(f"{path}: corrupt checkpoint line at byte {committed}; "
                                "delete the file to regenerate its jobs")
            lines.append(batch)
            committed += len(line)
    return lines, committed


def journal_rows(path: Path) -> dict[str, dict]:
    """One journal's rows by job id; a later line for a job (``generate --regenerate``) supersedes."""
    return {row["job_id"]: row for line in read_journal(path)[0] for row in line["rows"]}


def journal_paths(out_dir: Path) -> list[Path]:
    return sorted((Path(out_dir) / PARTS).glob("part-*.jsonl"))


def open_journal(path: Path):
    """Open a shard journal for appending, cutting off a torn tail left by a killed process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    committed = read_journal(path)[1] if path.exists() else 0
    handle = open(path, "ab")
    handle.truncate(committed)
    handle.seek(0, os.SEEK_END)  # tell() then gives each appended line's offset
    return handle


def append_batch(handle, rows: list[dict], *, regenerated: bool = False) -> tuple[int, bytes]:
    """Commit one line to an open journal; its byte offset and bytes (a remote build PUTs them too)."""
    line = {"rows": rows, "regenerated": True} if regenerated else {"rows": rows}
    data = (dumps_canonical(line) + "\n").encode()
    offset = handle.tell()
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())
    return offset, data


def read_parts(out_dir: Path) -> dict[str, dict]:
    """Committed rows of every shard's journal, by job id (shards of different runs may overlap)."""
    rows: dict[str, dict] = {}
    for path in journal_paths(out_dir):
        for row in journal_rows(path).values():
            previous = rows.get(row["job_id"])
            if previous is not None and generation_view(previous) != generation_view(row):
                raise UserError(f"{path}: job {row['job_id']!r} conflicts with another shard's row for it")
            rows[row["job_id"]] = row
    return rows
