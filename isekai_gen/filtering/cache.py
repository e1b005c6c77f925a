"""On-disk cache of image embeddings keyed by (embedding model, image sha256).

Layout: ``OUT/cache/embeddings/<model key>/model.json`` (what the key stands for) and
``part-<digest>.npz`` files, each holding the arrays ``sha256``, ``image`` (n,d float32),
``phash``, ``width``, ``height``, ``pixel_std``. Parts are only ever added, each written
atomically, so an interrupted run keeps every finished part and a re-run embeds only the rest.
Re-filtering with other thresholds therefore costs no model time at all.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ..fileio import write_json
from .images import ImageFacts
from .npz import read_npz, write_npz

log = logging.getLogger(__name__)

_ARRAYS = ("sha256", "image", "phash", "width", "height", "pixel_std")


class EmbeddingCache:
    def __init__(self, root: Path, model_key: str, model_info: dict):
        self.folder = Path(root) / model_key
        self.model_info = model_info
        self._vectors: dict[str, np.ndarray] = {}
        self._facts: dict[str, ImageFacts] = {}
        for part in sorted(self.folder.glob("part-*.npz")):
            self._load_part(part)
        log.info("embedding cache %s: %d images", self.folder, len(self._vectors))

    def _load_part(self, part: Path) -> None:
        arrays = read_npz(part, _ARRAYS)
        for i, sha in enumerate(arrays["sha256"].tolist()):
            self._vectors[sha] = arrays["image"][i]
            self._facts[sha] = ImageFacts(
                phash=str(arrays["phash"][i]), width=int(arrays["width"][i]),
                height=int(arrays["height"][i]), pixel_std=float(arrays["pixel_std"][i]),
            )

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self._vectors

    def vector(self, sha256: str) -> np.ndarray:
        return self._vectors[sha256]

    def facts(self, sha256: str) -> ImageFacts:
        return self._facts[sha256]

    def add(self, shas: list[str], vectors: np.ndarray, facts: list[ImageFacts]) -> None:
        """Store one batch of new entries as a new part file."""
        if not shas:
            return
        if not (self.folder / "model.json").exists():
            write_json(self.folder / "model.json", self.model_info)
        digest = hashlib.sha256("\n".join(shas).encode()).hexdigest()[:16]
        write_npz(self.folder / f"part-{digest}.npz", {
            "sha256": np.array(shas),
            "image": np.asarray(vectors, dtype=np.float32),
            "phash": np.array([f.phash for f in facts]),
            "width": np.array([f.width for f in facts], dtype=np.int64),
            "height": np.array([f.height for f in facts], dtype=np.int64),
            "pixel_std": np.array([f.pixel_std for f in facts], dtype=np.float64),
        })
        for sha, vector, fact in zip(shas, vectors, facts):
            self._vectors[sha] = np.asarray(vector, dtype=np.float32)
            self._facts[sha] = fact
