"""Configs and catalogs for generation tests (tiny pipelines, a few concepts)."""

from __future__ import annotations

import copy

from isekai_gen.catalog import load_catalog
from isekai_gen.config import load_config

TWO_GROUPS = ["cactihog", "hedgehog", "cctovac", "octopus"]


def tiny_config(images_per_concept: int = 3, batch_size: int = 4, **generation) -> dict:
    config = copy.deepcopy(load_config("tiny"))
    config["concepts"] = list(TWO_GROUPS)
    config["generation"].update(images_per_concept=images_per_concept, batch_size=batch_size, **generation)
    return config


def tiny_catalog(config: dict):
    return load_catalog(config["catalog"]).subset(config["concepts"])
