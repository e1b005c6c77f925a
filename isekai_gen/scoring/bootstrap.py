"""Seeded, vectorised bootstrap over test items.

Resampling n items with replacement is the same as drawing how often each item is picked,
a multinomial(n, 1/n each) vector, and items with identical count vectors are interchangeable.
So the items are grouped into distinct patterns and each resample is one multinomial draw over
the patterns: exact, and O(resamples x patterns) instead of O(resamples x items).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np


def row_patterns(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(stats, axis=0, return_counts=True)``: distinct rows in lexicographic order, counts.

    Rows of small non-negative integers (the per-item metric vectors) are first packed into one
    int64 key each (mixed radix, first column most significant, so the key order is the row
    order): a 1-D sort instead of a sort of structured rows, about 5x faster at 100k items.
    """
    if stats.dtype.kind in "iu" and stats.size and stats.min() >= 0:
        radices = [int(top) + 1 for top in stats.max(axis=0)]
        if math.prod(radices) < 2 ** 62:
            weights = np.array([math.prod(radices[i + 1:]) for i in range(len(radices))], dtype=np.int64)
            _, first, counts = np.unique(stats.astype(np.int64) @ weights, return_index=True, return_counts=True)
            return stats[first], counts
    return np.unique(stats, axis=0, return_counts=True)


def resampled_sums(stats: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, d) sums of ``stats`` (n, d) over bootstrap resamples of its rows."""
    n_items = stats.shape[0]
    patterns, counts = row_patterns(stats)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_items, counts / n_items, size=resamples)
    return draws @ patterns


def bootstrap_summary(stats: np.ndarray, statistic: Callable[[np.ndarray, int], np.ndarray],
                      resamples: int, seed: int) -> dict:
    """Observed value, bootstrap standard deviation (the ManyICL error bar) and 95% percentile interval."""
    n_items = stats.shape[0]
    if n_items == 0:
        return {"value": None, "std": None, "ci95": None}
    value = float(statistic(stats.sum(axis=0, keepdims=True), n_items)[0])
    if resamples == 0:
        return {"value": value, "std": None, "ci95": None}
    values = statistic(resampled_sums(stats, resamples, seed), n_items)
    low, high = np.percentile(values, [2.5, 97.5])
    return {"value": value, "std": float(values.std()), "ci95": [float(low), float(high)]}
