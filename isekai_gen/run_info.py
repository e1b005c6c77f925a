"""``OUT/run.json``: the effective config and package versions, so a build can be repeated.

It also guards a build folder against mixing: rerunning into a folder generated with other
generation settings is refused instead of silently combining two datasets.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

from . import __version__
from .config import public_config
from .errors import UserError
from .fileio import read_json, sha256_file, write_json
from .schema import validate

PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "open_clip_torch", "webdataset",
            "huggingface_hub", "datasets", "numpy", "pillow", "pandas", "pyarrow", "imagehash")
# Settings that decide which images a job produces; batch size, device and dtype only change
# speed (and bits within the diffusers tolerance), and are recorded per manifest row instead.
IDENTITY_KEYS = ("seed", "generation.model.id", "generation.model.revision", "generation.steps",
                 "generation.guidance_scale", "generation.width", "generation.height")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "isekai-gen": __version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _get(config: dict, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def run_path(out_dir: Path) -> Path:
    return Path(out_dir) / "run.json"


def read_run(out_dir: Path) -> dict:
    """The ``run.json`` record of ``out_dir`` (a JSON object)."""
    path = run_path(out_dir)
    record = read_json(path)
    if not isinstance(record, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record


def write_run_json(config: dict, out_dir: Path, catalog_file: Path) -> None:
    """Write run.json, refusing a folder whose earlier run used other generation settings."""
    path = run_path(out_dir)
    record = {
        "tool_version": __version__,
        "config": public_config(config),
        "config_dir": config.get("_config_dir"),
        "catalog_file": str(catalog_file),
        "catalog_sha256": sha256_file(catalog_file),
        "versions": package_versions(),
    }
    if path.exists():
        previous = read_run(out_dir)
        changed = [k for k in IDENTITY_KEYS if _get(previous.get("config", {}), k) != _get(record["config"], k)]
        if previous.get("catalog_sha256") != record["catalog_sha256"]:
            changed.append("catalog content")
        if changed:
            raise UserError(
                f"{path}: this folder was built with different {', '.join(changed)}; "
                "use a new --out folder (or delete this one) to build with these settings"
            )
    write_json(path, record)


def config_from_run(out_dir: Path) -> dict:
    """The effective config recorded by an earlier build in ``out_dir`` (for stage commands)."""
    path = run_path(out_dir)
    if not path.exists():
        raise UserError(f"{path}: not found; run `isekai-gen build` or `isekai-gen generate` into {out_dir} first, "
                        "or pass --preset/--config")
    record = read_run(out_dir)
    config = record.get("config")
    if not isinstance(config, dict):
        raise UserError(f"{path}: no `config` object")
    validate(config, "build_config", path)
    if record.get("config_dir"):
        config["_config_dir"] = record["config_dir"]
    return config
