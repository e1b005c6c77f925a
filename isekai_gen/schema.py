"""Validate user files against the JSON Schemas in ``schemas/``.

Schemas may reference each other by file name (``{"$ref": "filter_config.schema.json"}``);
all schemas in the folder are registered under their file names.
"""

from __future__ import annotations

import functools
import json

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .errors import UserError
from .resources import SCHEMA_DIR, schema_path


@functools.lru_cache(maxsize=None)
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((path.name, Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


@functools.lru_cache(maxsize=None)
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def format_error(error: jsonschema.ValidationError) -> str:
    location = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"at {location}: {error.message}"


def first_error(schema_validator: jsonschema.protocols.Validator, obj) -> str | None:
    """The most specific problem of ``obj`` as ``at <path>: <message>``, or None when valid."""
    best = jsonschema.exceptions.best_match(schema_validator.iter_errors(obj))
    return None if best is None else format_error(best)


def validate(obj, name: str, source) -> None:
    """Raise ``UserError`` naming ``source`` (a file path or description) on the first problem.

    The most specific error is reported (``best_match``), so a typo deep in a section reads as
    ``config.yaml: at filter/min_alignment: 'high' is not of type 'number'``.
    """
    problem = first_error(validator(name), obj)
    if problem:
        raise UserError(f"{source}: {problem}")
