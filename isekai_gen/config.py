"""Build configuration: shipped defaults + preset + user file + single-field overrides.

Layers, later wins: ``configs/_base.yaml`` (every default, documented) -> the preset
(``configs/<preset>.yaml``) -> the user's ``--config FILE`` -> ``--set section.key=value``.
The merged result is validated against ``schemas/build_config.schema.json``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .resources import CONFIG_DIR, preset_names
from .schema import validate


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}{line}: invalid YAML ({problem})") from None


def deep_merge(base: dict, override: dict) -> dict:
    """Merge mappings recursively; lists and scalars in ``override`` replace those in ``base``."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_override(text: str, flag: str = "--set") -> dict:
    """``generation.steps=4`` -> ``{"generation": {"steps": 4}}``; the value is parsed as YAML.

    ``flag`` names the command-line option in errors.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"{flag} {text!r}: expected section.key=value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise UserError(f"{flag} {text!r}: value is not valid YAML") from None
    return nest(key.strip(), value)


def nest(dotted: str, value: Any) -> dict:
    """``nest("generation.steps", 4)`` -> ``{"generation": {"steps": 4}}``."""
    result: Any = value
    for part in reversed(dotted.split(".")):
        result = {part: result}
    return result


def _mapping(obj: Any, source: str) -> dict:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise UserError(f"{source}: expected a mapping at the top level, got {type(obj).__name__}")
    return obj


def load_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[dict] | None = None,
) -> dict:
    """Return the validated effective build config.

    ``preset`` defaults to ``default`` when no ``config_file`` is given, and to nothing extra
    (only the base defaults) when one is.
    """
    config = _mapping(load_yaml(CONFIG_DIR / "_base.yaml"), "configs/_base.yaml")
    source = "configs/_base.yaml"
    if preset is None and config_file is None:
        preset = "default"
    if preset is not None:
        if preset not in preset_names():
            raise UserError(f"unknown preset {preset!r}; shipped presets: {', '.join(preset_names())}")
        preset_file = CONFIG_DIR / f"{preset}.yaml"
        config = deep_merge(config, _mapping(load_yaml(preset_file), str(preset_file)))
        source = f"preset {preset!r} ({preset_file.name})"
    if config_file is not None:
        user = _mapping(load_yaml(config_file), str(config_file))
        config = deep_merge(config, user)
        source = str(config_file)
        config["_config_dir"] = str(Path(config_file).resolve().parent)
    for override in overrides or []:
        config = deep_merge(config, override)
    if overrides:
        source = f"{source} with --set overrides"
    validate(public_config(config), "build_config", source)
    return config


def resolve_path(config: dict, value: str | Path) -> Path:
    """Resolve a path from a config relative to the user's config file (or the cwd)."""
    path = Path(value).expanduser()
    if not path.is_absolute() and config.get("_config_dir"):
        path = Path(config["_config_dir"]) / path
    return path


def public_config(config: dict) -> dict:
    """The config without private bookkeeping keys, as written into run.json."""
    return {k: v for k, v in config.items() if not k.startswith("_")}
