"""``OUT/run.json``: the effective config and package versions, so a build can be repeated.

It also guards a build folder against mixing: rerunning into a folder generated with other
generation settings is refused instead of silently combining two datasets.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
from pathlib import Path

from . import __version__
from .config import BuildConfig, build_config, identity_of
from .errors import UserError
from .fileio import read_json, sha256_file, write_json
from .jobs import derive_seed

PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "open_clip_torch", "webdataset",
            "huggingface_hub", "datasets", "numpy", "pillow", "pandas", "pyarrow", "imagehash")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "isekai-gen": __version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_path(out_dir: Path) -> Path:
    return Path(out_dir) / "run.json"


def read_run(out_dir: Path) -> dict:
    """The ``run.json`` record of ``out_dir`` (a JSON object)."""
    path = run_path(out_dir)
    record = read_json(path)
    if not isinstance(record, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record


# run.json field -> manifest row field of the generation identity; dtype and device are left out
# because a resumed run may legitimately use others (each row records its own).
ROW_IDENTITY = {"generation.model.id": "model_id", "generation.steps": "steps",
                "generation.guidance_scale": "guidance_scale", "generation.width": "width",
                "generation.height": "height"}
COMMIT = re.compile(r"^[0-9a-f]{40}$")
TAIL_BYTES = 1 << 16


def _edge_rows(out_dir: Path) -> tuple[Path, list[dict]] | None:
    """The first and last rows of ``manifest.jsonl`` (or the first row of each generation journal),
    read without loading the manifest: every row of a build shares its generation identity (run.json
    refuses other settings), so a hand-edited run.json disagrees with these rows too."""
    from .manifest import PARTS, manifest_path

    path = manifest_path(out_dir)
    lines: list[bytes] = []
    if path.is_file():
        with open(path, "rb") as handle:
            lines.append(handle.readline())
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - TAIL_BYTES))
            tail = [line for line in handle.read().splitlines() if line.strip()]
            lines.extend(tail[-1:])
        rows = []
        for line in lines:
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # a torn tail line: the manifest reader reports damage, this check has nothing to say
            if isinstance(row, dict):
                rows.append(row)
        return path, rows
    parts = sorted((Path(out_dir) / PARTS).glob("part-*.jsonl"))
    rows = []
    for part in parts:
        with open(part, "rb") as handle:
            try:
                batch = json.loads(handle.readline())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
        if isinstance(batch, dict) and isinstance(batch.get("rows"), list) and batch["rows"]:
            rows.append(batch["rows"][0])
    return (parts[0].parent, rows) if rows else None


def _identity_mismatch(config: BuildConfig, row: dict) -> str | None:
    """What of ``config``'s generation identity a manifest row contradicts, in words (or None)."""
    identity = identity_of(config)
    for key, field in ROW_IDENTITY.items():
        expected, found = identity[key], row.get(field)
        if field in row and expected is not None and found != expected and not (
                isinstance(found, (int, float)) and isinstance(expected, (int, float)) and float(found) == float(expected)):
            return f"{key} is {expected!r} but the manifest rows were made with {field} {found!r}"
    revision, found = config.generation.model.revision, row.get("model_revision")
    if isinstance(revision, str) and COMMIT.match(revision) and found and found != revision:
        return f"generation.model.revision is {revision} but the manifest rows were made from commit {found}"
    needed = ("seed", "concept_id", "prompt_variant", "index", "attempt")
    if all(isinstance(row.get(k), (int, str)) for k in needed):
        if row["seed"] != derive_seed(config.seed, row["concept_id"], row["prompt_variant"], row["index"],
                                      row["attempt"]):
            return f"seed is {config.seed} but the manifest rows' image seeds were derived from another global seed"
    return None


def check_against_manifest(config: BuildConfig, out_dir: Path, source) -> None:
    """Refuse a config (run.json, possibly with overrides) whose generation identity contradicts the
    manifest rows of ``out_dir``: a stage would otherwise describe and extend the images wrongly."""
    found = _edge_rows(out_dir)
    if found is None:
        return
    manifest, rows = found
    for row in rows:
        problem = _identity_mismatch(config, row)
        if problem:
            raise UserError(f"{source}: {problem} ({manifest}, row {row.get('job_id', '?')!r}); this config does not "
                            "describe the images of this folder (was run.json edited?): restore it, or use a new "
                            "--out folder for other settings")


def write_run_json(config: BuildConfig, out_dir: Path, catalog_file: Path) -> None:
    """Write run.json, refusing a folder whose earlier run used other generation settings."""
    path = run_path(out_dir)
    record = {
        "tool_version": __version__,
        "config": config.to_dict(),
        "config_dir": config.config_dir,
        "catalog_file": str(catalog_file),
        "catalog_sha256": sha256_file(catalog_file),
        "versions": package_versions(),
    }
    if path.exists():
        previous = read_run(out_dir)
        before, now = identity_of(previous.get("config", {})), identity_of(config)
        changed = [key for key in now if before[key] != now[key]]
        if previous.get("catalog_sha256") != record["catalog_sha256"]:
            changed.append("catalog content")
        if changed:
            raise UserError(
                f"{path}: this folder was built with different {', '.join(changed)}; "
                "use a new --out folder (or delete this one) to build with these settings"
            )
    check_against_manifest(config, out_dir, path)
    write_json(path, record)


def config_from_run(out_dir: Path) -> BuildConfig:
    """The effective config recorded by an earlier build in ``out_dir`` (for stage commands)."""
    path = run_path(out_dir)
    if not path.exists():
        raise UserError(f"{path}: not found; run `isekai-gen build` or `isekai-gen generate` into {out_dir} first, "
                        "or pass --preset/--config")
    record = read_run(out_dir)
    if not isinstance(record.get("config"), dict):
        raise UserError(f"{path}: no `config` object")
    config = build_config(record["config"], path, record.get("config_dir"))
    check_against_manifest(config, out_dir, path)
    return config
