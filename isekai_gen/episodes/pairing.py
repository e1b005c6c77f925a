"""Which two concepts face each other in an episode.

ISEKAI-10: an ISEKAI concept against its real-world partner (its catalog group).
ISEKAI-pair: an ISEKAI concept against other ISEKAI concepts, chosen at random or hardest first
by LCL's combined CLIP class similarity (tool/clip_similarity/clip_similarity.py of the original):
0.5*text-text + 0.8*(image-text + text-image) + 0.5*image-image, where a class's text feature is
the embedding of its label and its image feature the normalised mean of its images' embeddings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..catalog import Catalog, Concept
from ..errors import UserError
from .inputs import KeptImages
from .sampling import rng_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConceptPair:
    positive: Concept
    negative: Concept


def real_partner_pairs(catalog: Catalog, groups: int | tuple[str, ...] | list[str] | None) -> list[ConceptPair]:
    """(isekai, real) pairs of the chosen groups, in catalog order.

    ``groups``: the first N groups, the listed group ids, or None for every group.
    """
    pairs = [ConceptPair(isekai, real) for isekai, real in catalog.groups()]
    if isinstance(groups, (list, tuple)):
        present = {p.positive.group for p in pairs}
        unknown = [g for g in groups if g not in present]
        if unknown:
            raise UserError(f"episodes.isekai10.groups: group {unknown[0]!r} is not a complete group of this build "
                            f"(groups: {', '.join(sorted(present))})")
        return [p for p in pairs if p.positive.group in groups]
    return pairs if groups is None else pairs[:groups]


def class_similarity(kept: KeptImages, concept_ids: list[str]) -> np.ndarray:
    """Combined CLIP class similarity matrix (symmetric) over ``concept_ids``."""
    missing = [cid for cid in concept_ids if cid not in kept.text]
    if missing:
        raise UserError(f"{kept.embeddings}: no text embedding for concept {missing[0]!r} (rerun the filter stage)")
    text = np.stack([kept.text[cid] for cid in concept_ids])
    image = np.stack([kept.embedding[kept.indices_of(cid)].mean(axis=0) for cid in concept_ids])
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    image_text = image @ text.T
    return 0.5 * (text @ text.T) + 0.8 * (image_text + image_text.T) + 0.5 * (image @ image.T)


def other_isekai_pairs(
    catalog: Catalog, kept: KeptImages, mode: str, per_concept: int, seed: int
) -> list[ConceptPair]:
    """For each ISEKAI concept (catalog order) up to ``per_concept`` partners, each unordered pair once.

    ``hardest`` walks the other concepts from most to least similar (ties: catalog order);
    ``random`` walks them in a seeded random order. A partner already paired with the anchor
    (as the other's anchor) is skipped, so a mutual nearest neighbour yields one pair, not two.
    """
    isekai = [c for c in catalog.concepts if c.world == "isekai"]
    if len(isekai) <= per_concept:
        raise UserError(f"episodes.pair.partners_per_concept {per_concept} needs at least {per_concept + 1} "
                        f"ISEKAI concepts; the build has {len(isekai)}")
    similarity = class_similarity(kept, [c.id for c in isekai]) if mode == "hardest" else None
    used: set[frozenset[str]] = set()
    pairs = []
    for a, anchor in enumerate(isekai):
        others = [b for b in range(len(isekai)) if b != a]
        if similarity is not None:
            others.sort(key=lambda b: (-similarity[a, b], b))
        else:
            others = [others[i] for i in rng_for(seed, "pair-partners", anchor.id).permutation(len(others))]
        chosen = [isekai[b] for b in others if frozenset((anchor.id, isekai[b].id)) not in used][:per_concept]
        if len(chosen) < per_concept:
            log.info("%s: %d new partner(s), the others already paired with it", anchor.id, len(chosen))
        for partner in chosen:
            used.add(frozenset((anchor.id, partner.id)))
            pairs.append(ConceptPair(anchor, partner))
    return pairs
