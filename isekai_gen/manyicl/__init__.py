"""ManyICL many-shot demo/test splits: shared recipe types, sampler, writers and builders.

The dataset adapters live in the top-level ``splits`` package, one module per dataset.
"""

from .build import build_all, build_split, load_roots, plan_split, run_benchmarks
from .recipe import Adapter, Option, Pool, Recipe
from .writer import read_split

__all__ = [
    "Adapter", "Option", "Pool", "Recipe", "build_all", "build_split", "load_roots", "plan_split",
    "read_split", "run_benchmarks",
]
