"""The two validators of ``isekai_gen.schema`` agree: jsonschema-rs accepts exactly what jsonschema accepts.

``first_error`` trusts the fast validator's "valid" without asking jsonschema, so a schema
feature the two read differently (``$ref`` across files, ``additionalProperties``, patterns,
integer-valued floats) would let bad rows through; these cases pin the agreement down.
"""

from __future__ import annotations

import copy

import pytest

from isekai_gen.catalog import load_catalog
from isekai_gen.config import load_config
from isekai_gen.errors import UserError
from isekai_gen.schema import _surely_valid, first_error, validate, validator
from test_export_helpers import episode_rows, manifest_rows


def _manifest_row() -> dict:
    return manifest_rows(load_catalog("isekai").subset(["cactihog", "hedgehog"]), smoke_test=False)[0]


def _mutations(row: dict) -> list[dict]:
    """Valid variants and invalid ones (wrong type, missing field, extra field, bad pattern, nested)."""
    variants = [row]
    for change in [
        {"seed": "7"}, {"seed": 1.5}, {"seed": 7.0}, {"job_id": "Has.Dots-00001"}, {"job_id": "x-1"},
        {"unexpected": 1}, {"status": "maybe"}, {"scores": {**row["scores"], "alignment": "high"}},
        {"scores": {**row["scores"], "extra": 1}}, {"kept": "yes"}, {"rejected_attempts": [{}]},
        {"sha256": "not-a-digest"}, {"width": -1}, {"image": None},
    ]:
        variants.append({**row, **change})
    for field in ("job_id", "scores", "status"):
        variants.append({k: v for k, v in row.items() if k != field})
    return variants


def _cases() -> list[tuple[str, object]]:
    row = _manifest_row()
    catalog = load_catalog("isekai").subset(["cactihog", "hedgehog", "cctovac", "octopus"])
    episode = episode_rows(manifest_rows(catalog, smoke_test=False), catalog)[0]
    config = load_config("tiny").to_dict()
    bad_filter = copy.deepcopy(config)
    bad_filter["filter"]["min_alignment"] = "high"  # lives in filter_config.schema.json, reached by $ref
    extra_export = copy.deepcopy(config)
    extra_export["export"]["webdataset"]["shards"] = 3
    cases = [("manifest_row", variant) for variant in _mutations(row)]
    cases += [("episode_row", episode), ("episode_row", {**episode, "max_shot": "16"}),
              ("episode_row", {**episode, "set": "ISEKAI-11"})]
    cases += [("build_config", config), ("build_config", bad_filter), ("build_config", extra_export)]
    return cases


@pytest.mark.parametrize("name, obj", _cases())
def test_fast_validator_accepts_exactly_what_jsonschema_accepts(name, obj):
    assert _surely_valid(name, obj) == validator(name).is_valid(obj)


def test_cases_cover_both_outcomes():
    outcomes = {validator(name).is_valid(obj) for name, obj in _cases()}
    assert outcomes == {True, False}


def test_problem_is_explained_by_jsonschema_with_its_path():
    config = load_config("tiny").to_dict()
    config["filter"]["min_alignment"] = "high"
    assert first_error("build_config", config) == "at filter/min_alignment: 'high' is not of type 'number'"
    with pytest.raises(UserError, match=r"^cfg.yaml: at filter/min_alignment: 'high' is not of type 'number'$"):
        validate(config, "build_config", "cfg.yaml")


def test_values_json_cannot_hold_fall_back_to_jsonschema():
    row = {**_manifest_row(), 3: "an int key, as YAML allows"}
    assert not _surely_valid("manifest_row", row)  # jsonschema-rs refuses the object instead of raising
    assert (first_error("manifest_row", row) is None) == validator("manifest_row").is_valid(row)
