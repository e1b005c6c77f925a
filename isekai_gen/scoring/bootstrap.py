"""Seeded, vectorised bootstrap over test items.

Resampling n items with replacement is the same as drawing how often each item is picked,
a multinomial(n, 1/n each) vector, and items with identical count vectors are interchangeable.
So the items are grouped into distinct patterns and each resample is one multinomial draw over
the patterns: exact, and O(resamples x patterns) instead of O(resamples x items).
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def resampled_sums(stats: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, d) sums of ``stats`` (n, d) over bootstrap resamples of its rows."""
    n_items = stats.shape[0]
    patterns, counts = np.unique(stats, axis=0, return_counts=True)
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
