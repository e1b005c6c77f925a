"""Configs and catalogs for generation tests (tiny pipelines, a few concepts)."""

from __future__ import annotations

from isekai_gen.catalog import load_catalog
from isekai_gen.config import BuildConfig, load_config

TWO_GROUPS = ["cactihog", "hedgehog", "cctovac", "octopus"]


def tiny_config(images_per_concept: int = 3, batch_size: int = 4, **generation) -> BuildConfig:
    return load_config("tiny", None, [{"concepts": list(TWO_GROUPS), "generation": {
        "images_per_concept": images_per_concept, "batch_size": batch_size, **generation}}])


def tiny_catalog(config: BuildConfig):
    return load_catalog(config.catalog).subset(config.concepts)
