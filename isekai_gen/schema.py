"""Validate user files against the JSON Schemas in ``schemas/``.

Schemas may reference each other by file name (``{"$ref": "filter_config.schema.json"}``);
all schemas in the folder are registered under their file names.

Two validators of the same schemas: ``jsonschema-rs`` answers valid or not (~50x faster, which
matters for per-row checks of 100k-row manifests and prediction files) and the reference
``jsonschema`` explains what is wrong, only for objects the first one rejects.
"""

from __future__ import annotations

import functools
import json

import jsonschema
import jsonschema_rs
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .errors import UserError
from .resources import SCHEMA_DIR, schema_path


@functools.lru_cache(maxsize=None)
def _schemas() -> tuple[tuple[str, dict], ...]:
    return tuple((path.name, json.loads(path.read_text(encoding="utf-8")))
                 for path in sorted(SCHEMA_DIR.glob("*.schema.json")))


@functools.lru_cache(maxsize=None)
def _registry() -> Registry:
    return Registry().with_resources(
        (name, Resource.from_contents(contents, default_specification=DRAFT202012)) for name, contents in _schemas()
    )


@functools.lru_cache(maxsize=None)
def validator(name: str) -> jsonschema.Draft202012Validator:
    """The reference validator of ``schemas/<name>.schema.json`` (explains problems)."""
    schema = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, registry=_registry())


@functools.lru_cache(maxsize=None)
def _fast_registry() -> jsonschema_rs.Registry:
    return jsonschema_rs.Registry(list(_schemas()))


@functools.lru_cache(maxsize=None)
def _fast_validator(name: str) -> jsonschema_rs.Validator:
    schema = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return jsonschema_rs.validator_for(schema, registry=_fast_registry(), offline=True)


def _surely_valid(name: str, obj) -> bool:
    try:
        return _fast_validator(name).is_valid(obj)
    except (TypeError, ValueError):  # a value JSON cannot hold (a YAML date, an int key): ask jsonschema
        return False


def format_error(error: jsonschema.ValidationError) -> str:
    location = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"at {location}: {error.message}"


def first_error(name: str, obj) -> str | None:
    """The most specific problem of ``obj`` under schema ``name`` as ``at <path>: <message>``, or None."""
    if _surely_valid(name, obj):
        return None
    best = jsonschema.exceptions.best_match(validator(name).iter_errors(obj))
    return None if best is None else format_error(best)


def validate(obj, name: str, source) -> None:
    """Raise ``UserError`` naming ``source`` (a file path or description) on the first problem.

    The most specific error is reported (``best_match``), so a typo deep in a section reads as
    ``config.yaml: at filter/min_alignment: 'high' is not of type 'number'``.
    """
    problem = first_error(name, obj)
    if problem:
        raise UserError(f"{source}: {problem}")
