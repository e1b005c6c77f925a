"""Build configuration: shipped defaults + preset + user file + single-field overrides.

Layers, later wins: ``configs/_base.yaml`` (every default, documented) -> the preset
(``configs/<preset>.yaml``) -> the user's ``--config FILE`` -> ``--set section.key=value``.
The merged result is validated against ``schemas/build_config.schema.json``, then built once into
a typed, frozen ``BuildConfig`` (``sections``). Only this package reads the config by string keys.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import math
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..resources import CONFIG_DIR, preset_names, schema_path
from ..schema import validate
from ..yamlio import load_yaml, loads
from .sections import (FROM_FILTER, BenchmarksConfig, BuildConfig, CardConfig, DedupConfig, EngineConfig,
                       EpisodesConfig, ExportConfig, FilterConfig, FilterModelConfig, GenerationConfig,
                       HfExportConfig, Isekai10Config, LclExportConfig, ModelRef, PairConfig,
                       WebDatasetExportConfig)

__all__ = ["FROM_FILTER", "BenchmarksConfig", "BuildConfig", "CardConfig", "DedupConfig", "EngineConfig",
           "EpisodesConfig", "ExportConfig", "FilterConfig", "FilterModelConfig", "GenerationConfig",
           "HfExportConfig", "Isekai10Config", "LclExportConfig", "ModelRef", "PairConfig", "WebDatasetExportConfig",
           "build_config", "deep_merge", "identity_of", "load_config", "nest", "parse_override", "parse_set",
           "with_overrides"]


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
    return nest(key.strip(), loads(raw, f"{flag} {text!r}: value"))


def parse_set(text: str) -> dict:
    """A ``--set section.key=value`` override with its key checked against the build config schema.

    Keys match case-insensitively where that is unambiguous (``Generation.Steps``); an unknown
    key is an error suggesting the nearest one ("did you mean `generation.steps`?").
    """
    key, _, raw = text.partition("=")
    parse_override(text)  # the shape and the value first
    return parse_override(f"{resolve_key(key.strip(), f'--set {text!r}')}={raw}")


@functools.lru_cache(maxsize=None)
def _schema_file(name: str) -> dict:
    return json.loads(schema_path(name.removesuffix(".schema.json")).read_text(encoding="utf-8"))


def _properties(node: dict, document: dict) -> tuple[dict, bool]:
    """(properties, closed) of a schema node: ``$ref`` followed, ``allOf``/``anyOf``/``oneOf`` merged.

    ``properties`` maps each name to (its schema node, the document holding it).
    """
    ref = node.get("$ref")
    if ref:
        file_part, _, pointer = ref.partition("#")
        if file_part:
            document = _schema_file(file_part)
        target = document
        for part in filter(None, pointer.split("/")):
            target = target[part]
        return _properties(target, document)
    properties = {name: (sub, document) for name, sub in node.get("properties", {}).items()}
    closed = node.get("additionalProperties") is False
    for combinator in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(combinator, []):
            more, branch_closed = _properties(branch, document)
            properties.update(more)
            closed = closed or branch_closed
    return properties, closed


def resolve_key(dotted: str, what: str) -> str:
    """``dotted`` with each part spelled as the build config schema spells it (see ``parse_set``)."""
    node = document = _schema_file("build_config")
    parts = dotted.split(".")
    for position, part in enumerate(parts):
        properties, closed = _properties(node, document)
        if part not in properties:
            folded = [name for name in properties if name.lower() == part.lower()]
            if len(folded) == 1:
                parts[position] = part = folded[0]
            elif closed:
                prefix = ".".join(parts[:position])
                known = [f"{prefix}.{name}" if prefix else name for name in properties]
                near = difflib.get_close_matches(".".join(parts[:position + 1]), known, n=1, cutoff=0.6)
                hint = f"did you mean `{near[0]}`?" if near else f"known keys: {', '.join(sorted(known))}"
                raise UserError(f"{what}: unknown key `{'.'.join(parts[:position + 1])}`; {hint}")
            else:  # a free-form mapping (dataset options, ...): the schema says nothing more
                break
        node, document = properties[part]
    return ".".join(parts)


def check_finite(obj: Any, source, at: str = "") -> None:
    """Refuse NaN and infinities anywhere in a config: they switch rules off silently
    (``x < nan`` is always false) and are not JSON. JSON Schema cannot say "finite"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise UserError(f"{source}: at {at or '(top level)'}: {obj} is not a finite number")
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        check_finite(value, source, f"{at}/{key}" if at else str(key))


def validate_config(config: dict, source) -> None:
    """Check an effective build config mapping: finite numbers first (the schema cannot), then the schema."""
    check_finite(config, source)
    validate(config, "build_config", source)


def build_config(values: dict, source, config_dir: str | None = None) -> BuildConfig:
    """The typed config of a merged mapping (run.json's ``config``), validated first."""
    if not isinstance(values, dict):
        raise UserError(f"{source}: the config is not a mapping")
    validate_config(values, source)
    return BuildConfig.from_dict(values, config_dir)


def with_overrides(config: BuildConfig, overrides: list[dict], source) -> BuildConfig:
    """``config`` with ``overrides`` (``--set`` / option mappings) merged over it, validated again."""
    merged = config.to_dict()
    for override in overrides:
        merged = deep_merge(merged, override)
    return build_config(merged, source, config.config_dir)


# Settings that decide which images a job produces; batch size, device and dtype only change
# speed (and bits within the diffusers tolerance), and are recorded per manifest row instead.
IDENTITY_KEYS = ("seed", "generation.model.id", "generation.model.revision", "generation.steps",
                 "generation.guidance_scale", "generation.width", "generation.height")


def identity_of(config: BuildConfig | dict) -> dict[str, Any]:
    """The generation identity (``IDENTITY_KEYS``) of a config, or of a run.json ``config`` mapping
    as it was found (an older or hand-edited one: a missing key reads None)."""
    values = config.to_dict() if isinstance(config, BuildConfig) else config
    found = {}
    for dotted in IDENTITY_KEYS:
        value = values
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        found[dotted] = value
    return found


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
) -> BuildConfig:
    """Return the validated effective build config.

    ``preset`` defaults to ``default`` when no ``config_file`` is given, and to nothing extra
    (only the base defaults) when one is.
    """
    config = _mapping(load_yaml(CONFIG_DIR / "_base.yaml"), "configs/_base.yaml")
    source = "configs/_base.yaml"
    config_dir = None
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
        config_dir = str(Path(config_file).resolve().parent)
    for override in overrides or []:
        config = deep_merge(config, override)
    if overrides:
        source = f"{source} with --set overrides"
    return build_config(config, source, config_dir)
