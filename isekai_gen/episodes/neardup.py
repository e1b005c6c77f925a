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

from .inputs import KeptImages

DEFAULT_PHASH_MAX_DISTANCE = 10   # imagededup's default for 64-bit pHash
DEFAULT_COSINE_THRESHOLD = 0.95


@dataclass(frozen=True)
class NearDuplicateGuard:
    phash_max_distance: int | None = DEFAULT_PHASH_MAX_DISTANCE
    cosine_threshold: float | None = DEFAULT_COSINE_THRESHOLD

    @classmethod
    def from_config(cls, config: dict) -> "NearDuplicateGuard":
        """The thresholds of ``filter.dedup`` where set (null: that test off), else the defaults."""
        dedup = (config.get("filter") or {}).get("dedup") or {}
        return cls(
            dedup.get("phash_max_distance", DEFAULT_PHASH_MAX_DISTANCE),
            dedup.get("cosine_threshold", DEFAULT_COSINE_THRESHOLD),
        )

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
