"""Near-duplicate guard: a support image must not be a near copy of the episode's query.

The filter stage removes near-duplicates inside a concept; across concepts (a cactihog that
looks exactly like a hedgehog picture) it only reports them, and a near copy of the query among
the supports would let a model answer by image matching instead of learning the link. The same
two tests and thresholds as the filter's dedup apply (``filter.dedup``): pHash Hamming distance
and image-embedding cosine, each switched off by null.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import DedupConfig
from .inputs import KeptImages


@dataclass(frozen=True)
class NearDuplicateGuard:
    phash_max_distance: int | None   # None: that test off
    cosine_threshold: float | None

    @classmethod
    def from_dedup(cls, dedup: DedupConfig) -> "NearDuplicateGuard":
        """The thresholds of ``filter.dedup``."""
        return cls(dedup.phash_max_distance, dedup.cosine_threshold)

    def describe(self) -> str:
        tests = []
        if self.phash_max_distance is not None:
            tests.append(f"pHash distance <= {self.phash_max_distance}")
        if self.cosine_threshold is not None:
            tests.append(f"cosine >= {self.cosine_threshold}")
        return " or ".join(tests) or "near-duplicate guard off"

    def near_duplicates(self, kept: KeptImages, query: int, candidates: np.ndarray) -> np.ndarray:
        """Boolean mask over ``candidates``: True where the image is a near copy of ``query``."""
        mask = np.zeros(len(candidates), dtype=bool)
        if self.phash_max_distance is not None:
            mask |= np.bitwise_count(kept.phash[candidates] ^ kept.phash[query]) <= self.phash_max_distance
        if self.cosine_threshold is not None:
            mask |= kept.embedding[candidates] @ kept.embedding[query] >= self.cosine_threshold
        return mask
