"""Seeded choice of query and support images for one pair of concepts.

For a concept pair (positive P, negative N) the episodes come in symmetric pairs: episode k
queries the k-th query image of P, the next one the k-th query image of N, so a set always has
an even number of lines (the original loader asserts it). Each episode gets ``max_shot`` support
images per class, drawn without the query itself and without any near-duplicate of the query.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..catalog import Concept
from ..errors import UserError
from .inputs import KeptImages
from .neardup import NearDuplicateGuard


def rng_for(seed: int, *parts: str) -> np.random.Generator:
    """A generator that depends only on the seed and the names of what is being drawn.

    Keyed by names rather than by position, so adding a concept to the catalog does not
    reshuffle the episodes of the others.
    """
    digest = hashlib.sha256("\x1f".join([str(seed), *parts]).encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


@dataclass(frozen=True)
class SamplingSettings:
    max_shot: int
    queries_per_concept: int
    seed: int
    guard: NearDuplicateGuard

    @property
    def images_needed(self) -> int:
        return max(self.max_shot + 1, self.queries_per_concept)


@dataclass(frozen=True)
class QueryDraw:
    query: int                 # index into KeptImages
    own_support: np.ndarray    # max_shot indices of the query's concept
    other_support: np.ndarray  # max_shot indices of the other concept


def check_counts(kept: KeptImages, concepts: Iterable[Concept], settings: SamplingSettings) -> None:
    """Every concept needs max_shot supports plus a query (and queries_per_concept queries)."""
    for concept in concepts:
        available = len(kept.indices_of(concept.id))
        if available < settings.images_needed:
            raise UserError(
                f"{kept.manifest}: concept {concept.id!r} has {available} kept images, {settings.images_needed} needed "
                f"(episodes.max_shot {settings.max_shot} supports + 1 query, "
                f"episodes.queries_per_concept {settings.queries_per_concept}); generate more images or lower them"
            )


def draw_queries(
    kept: KeptImages, set_name: str, positive: Concept, negative: Concept, query_concept: Concept,
    settings: SamplingSettings,
) -> list[QueryDraw]:
    """``queries_per_concept`` queries of ``query_concept``, each with its two support lists.

    Query candidates are tried in a seeded order; a candidate whose near-duplicate-free pool
    is smaller than ``max_shot`` in either class is passed over.
    """
    other_concept = negative if query_concept.id == positive.id else positive
    own = kept.indices_of(query_concept.id)
    other = kept.indices_of(other_concept.id)
    rng = rng_for(settings.seed, set_name, positive.id, negative.id, query_concept.id)
    draws = []
    for query in own[rng.permutation(len(own))]:
        own_pool = own[own != query]
        own_pool = own_pool[~settings.guard.near_duplicates(kept, query, own_pool)]
        other_pool = other[~settings.guard.near_duplicates(kept, query, other)]
        if min(len(own_pool), len(other_pool)) < settings.max_shot:
            continue
        draws.append(QueryDraw(
            int(query),
            rng.choice(own_pool, settings.max_shot, replace=False),
            rng.choice(other_pool, settings.max_shot, replace=False),
        ))
        if len(draws) == settings.queries_per_concept:
            return draws
    raise UserError(
        f"{set_name} {positive.id} vs {negative.id}: only {len(draws)} of {settings.queries_per_concept} queries of "
        f"concept {query_concept.id!r} have {settings.max_shot} support images per class free of near-duplicates "
        f"({settings.guard.describe()}); generate more images or lower episodes.max_shot"
    )


def episode_row(
    kept: KeptImages, set_name: str, slug: str, positive: Concept, negative: Concept, query_concept: Concept,
    draw: QueryDraw, pair_index: int, similarity: float, max_shot: int,
) -> dict:
    query_is_positive = query_concept.id == positive.id
    other = negative if query_is_positive else positive
    positive_support, negative_support = (
        (draw.own_support, draw.other_support) if query_is_positive else (draw.other_support, draw.own_support)
    )
    return {
        "episode_id": f"{slug}-{query_concept.id}-vs-{other.id}-{pair_index:03d}",
        "set": set_name,
        "query": kept.job_ids[draw.query],
        "query_image": kept.images[draw.query],
        "query_concept": query_concept.id,
        "label": query_concept.label,
        "positive_label": positive.label,
        "negative_label": negative.label,
        "positive_concept": positive.id,
        "negative_concept": negative.id,
        "group_id": query_concept.group,
        "positive_support": [kept.job_ids[i] for i in positive_support],
        "negative_support": [kept.job_ids[i] for i in negative_support],
        "max_shot": max_shot,
        "pair_index": pair_index,
        # Rounded so that platform-level float noise cannot change the file's bytes.
        "similarity": round(float(similarity), 6),
    }


def pair_episodes(
    kept: KeptImages, set_name: str, slug: str, positive: Concept, negative: Concept, similarity: float,
    settings: SamplingSettings,
) -> list[dict]:
    """All episodes of one concept pair: queries of P and N interleaved, P first."""
    rows = []
    by_concept = [
        (concept, draw_queries(kept, set_name, positive, negative, concept, settings))
        for concept in (positive, negative)
    ]
    for pair_index in range(settings.queries_per_concept):
        for concept, draws in by_concept:
            rows.append(episode_row(kept, set_name, slug, positive, negative, concept, draws[pair_index],
                                    pair_index, similarity, settings.max_shot))
    return rows
