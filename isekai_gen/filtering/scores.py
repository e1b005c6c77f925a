"""Per-image scores from image and concept-text embeddings (raw cosines, as CLIP filters record them).

- alignment: cosine to the image's own concept text embedding;
- partner_cosine: cosine to its group partner's text embedding (the look-alike concept);
- margin: alignment - partner_cosine (the pair must stay separable);
- zeroshot_prob: softmax over ``logit_scale * cosine`` to every concept of the build, own concept;
- top1: whether the own concept has the highest cosine.
Values are rounded to 6 decimals, and rules are applied to the rounded values, so that the
manifest is self-consistent (re-checking a threshold on its numbers gives the same verdict).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DECIMALS = 6


@dataclass
class ScoreTable:
    """Everything known about the scored (status ``ok``) manifest rows, in manifest order."""

    row_index: np.ndarray         # position of each scored row in the manifest
    job_ids: list[str]
    concept_index: np.ndarray     # into the concept list of the build
    sha256: list[str]
    phash: list[str]
    width: np.ndarray
    height: np.ndarray
    pixel_std: np.ndarray
    image: np.ndarray             # (n, d) float32, unit rows
    alignment: np.ndarray
    partner_cosine: np.ndarray
    margin: np.ndarray
    zeroshot_prob: np.ndarray
    top1: np.ndarray

    def __len__(self) -> int:
        return len(self.job_ids)

    def scores_of(self, i: int, model: str, pretrained: str) -> dict:
        return {
            "model": model, "pretrained": pretrained,
            "alignment": float(self.alignment[i]), "partner_cosine": float(self.partner_cosine[i]),
            "margin": float(self.margin[i]), "zeroshot_prob": float(self.zeroshot_prob[i]),
            "top1": bool(self.top1[i]), "phash": self.phash[i],
        }

    def rank(self, key: str) -> np.ndarray:
        """Position of each image in best-first order by ``key`` (ties: smaller job id first)."""
        order = sorted(range(len(self)), key=lambda i: (-float(getattr(self, key)[i]), self.job_ids[i]))
        rank = np.empty(len(self), dtype=np.int64)
        rank[order] = np.arange(len(self))
        return rank


def cosine_scores(
    image: np.ndarray, concept_index: np.ndarray, partner_index: np.ndarray, text: np.ndarray, logit_scale: float
) -> dict[str, np.ndarray]:
    """The five scores for unit image rows against unit concept-text rows."""
    cos = image.astype(np.float64) @ text.astype(np.float64).T            # (n, c)
    rows = np.arange(len(image))
    alignment = cos[rows, concept_index]
    partner = cos[rows, partner_index]
    logits = logit_scale * cos
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    own_is_best = cos.max(axis=1) <= alignment
    return {
        "alignment": np.round(alignment, DECIMALS),
        "partner_cosine": np.round(partner, DECIMALS),
        "margin": np.round(alignment - partner, DECIMALS),
        "zeroshot_prob": np.round(probs[rows, concept_index], DECIMALS),
        "top1": own_is_best,
    }
