"""Which images are kept, and the one reason for each that is not.

Rules apply in the order of ``REJECT_REASONS``; an image gets the first reason that applies.
Duplicates are resolved among the images that passed the earlier rules, and the quota among
the duplicate-cluster survivors, so a kept image always beats the images it displaced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..config import FilterConfig
from .dedup import (
    cluster_survivors, cosine_pairs, cross_group_cosine_pairs, equal_pairs, phash_pairs, phash_to_int,
)
from .scores import ScoreTable

REJECT_REASONS = {
    "broken": "generation failed, or the image is blank/uniform or not the configured size",
    "manual_reject": "listed in OUT/manual_rejects.txt by a human reviewer",
    "low_alignment": "cosine to its own concept's text below filter.min_alignment",
    "low_margin": "alignment minus cosine to the partner concept below filter.min_margin",
    "not_top1": "own concept not the zero-shot top-1 among the build's concepts (filter.require_top1)",
    "below_top_fraction": "outside the best filter.top_fraction of its concept (mode top_fraction)",
    "duplicate": "near-duplicate (sha256, pHash or embedding cosine) of a better image of the same concept",
    "over_quota": "beyond the best filter.max_per_concept survivors of its concept",
}

LAYERS = ("sha256", "phash", "cosine")


@dataclass
class Decisions:
    reason: list[str | None]
    duplicate_of: list[str | None]
    duplicate_pairs: dict[str, int] = field(default_factory=dict)   # in-concept pairs per layer
    cross_concept: list[dict] = field(default_factory=list)         # reported, never dropped


def _is_broken(table: ScoreTable, i: int, settings: FilterConfig, expected_size: tuple[int, int] | None) -> bool:
    if table.pixel_std[i] < settings.min_pixel_std:
        return True
    return expected_size is not None and (int(table.width[i]), int(table.height[i])) != expected_size


def _threshold_reason(table: ScoreTable, i: int, settings: FilterConfig) -> str | None:
    if table.alignment[i] < settings.min_alignment:
        return "low_alignment"
    if table.margin[i] < settings.min_margin:
        return "low_margin"
    if settings.require_top1 and not table.top1[i]:
        return "not_top1"
    return None


def _by_concept(table: ScoreTable, items, rank: np.ndarray) -> dict[int, list[int]]:
    """Items grouped per concept, best first."""
    groups: dict[int, list[int]] = {}
    for i in sorted(items, key=lambda i: rank[i]):
        groups.setdefault(int(table.concept_index[i]), []).append(i)
    return groups


def _top_count(fraction: float, n: int) -> int:
    # The epsilon keeps 0.3 * 10 = 3.0000000000000004 from rounding up to 4.
    return min(n, max(1, math.ceil(fraction * n - 1e-9)))


def _layer_pairs(table: ScoreTable, items: np.ndarray, settings: FilterConfig, groups=None, cross_search="exact"):
    """(layer, pairs in ``table`` indices, values) for every enabled layer over ``items``."""
    dedup = settings.dedup
    found = [("sha256", *equal_pairs([table.sha256[i] for i in items], groups))]
    if dedup.phash_max_distance is not None:
        hashes = phash_to_int([table.phash[i] for i in items])
        found.append(("phash", *phash_pairs(hashes, dedup.phash_max_distance, groups)))
    if dedup.cosine_threshold is not None and cross_search != "off":
        emb, threshold = table.image[items], dedup.cosine_threshold
        if groups is None:
            found.append(("cosine", *cosine_pairs(emb, threshold)))
        else:
            found.append(("cosine", *cross_group_cosine_pairs(emb, threshold, groups)))
    return [(layer, items[pairs].reshape(-1, 2), values) for layer, pairs, values in found]


def _mark_duplicates(table, candidates, rank, settings, decisions: Decisions) -> None:
    for members in _by_concept(table, candidates, rank).values():
        items = np.array(sorted(members), dtype=np.int64)
        layers = _layer_pairs(table, items, settings)
        for layer, pairs, _ in layers:
            decisions.duplicate_pairs[layer] = decisions.duplicate_pairs.get(layer, 0) + len(pairs)
        local = {int(item): k for k, item in enumerate(items)}
        pairs = [(local[int(a)], local[int(b)]) for _, layer_pairs, _ in layers for a, b in layer_pairs]
        survivors = cluster_survivors(len(items), np.array(pairs, dtype=np.int64).reshape(-1, 2), rank[items])
        for k, survivor in enumerate(survivors):
            if survivor != k:
                decisions.reason[items[k]] = "duplicate"
                decisions.duplicate_of[items[k]] = table.job_ids[items[survivor]]


def _cross_concept(table, candidates, settings, concept_ids: list[str]) -> list[dict]:
    items = np.array(sorted(candidates), dtype=np.int64)
    groups = table.concept_index[items]
    reports = []
    for layer, pairs, values in _layer_pairs(table, items, settings, groups, settings.dedup.cross_concept_search):
        for (a, b), value in zip(pairs, values):
            reports.append({
                "layer": layer, "a": table.job_ids[a], "b": table.job_ids[b],
                "concept_a": concept_ids[table.concept_index[a]], "concept_b": concept_ids[table.concept_index[b]],
                "value": round(float(value), 6),
            })
    return sorted(reports, key=lambda r: (r["a"], r["b"], LAYERS.index(r["layer"])))


def decide(
    table: ScoreTable,
    settings: FilterConfig,
    manual_rejects: set[str],
    concept_ids: list[str],
    expected_size: tuple[int, int] | None,
) -> Decisions:
    """Apply every rule to the scored images (see ``REJECT_REASONS`` for the order)."""
    n = len(table)
    decisions = Decisions(reason=[None] * n, duplicate_of=[None] * n)
    rank = table.rank(settings.rank_by)
    for i in range(n):
        if _is_broken(table, i, settings, expected_size):
            decisions.reason[i] = "broken"
        elif table.job_ids[i] in manual_rejects:
            decisions.reason[i] = "manual_reject"
        elif settings.mode == "thresholds":
            decisions.reason[i] = _threshold_reason(table, i, settings)
    if settings.mode == "top_fraction":
        eligible = [i for i in range(n) if decisions.reason[i] is None]
        for members in _by_concept(table, eligible, rank).values():
            for i in members[_top_count(settings.top_fraction, len(members)):]:
                decisions.reason[i] = "below_top_fraction"

    candidates = [i for i in range(n) if decisions.reason[i] is None]
    decisions.cross_concept = _cross_concept(table, candidates, settings, concept_ids)
    _mark_duplicates(table, candidates, rank, settings, decisions)

    quota = settings.max_per_concept
    if quota is not None:
        survivors = [i for i in candidates if decisions.reason[i] is None]
        for members in _by_concept(table, survivors, rank).values():
            for i in members[quota:]:
                decisions.reason[i] = "over_quota"
    return decisions
