"""On-disk caches of image embeddings keyed by (embedding model, image sha256) and of concept
text embeddings keyed by (embedding model, sha256 of the concept's exact texts).

Layout: ``OUT/cache/embeddings/<model key>/model.json`` (what the key stands for),
``part-<digest>.npz`` files, each holding the arrays ``sha256``, ``image`` (n,d float32),
``phash``, ``width``, ``height``, ``pixel_std``, and ``text-<digest>.npz`` files holding
``texts_sha256`` and ``text`` (n,d float32: each concept's mean template embedding, before the
final normalisation). Parts are only ever added, each written atomically, so an interrupted run
keeps every finished part and a re-run embeds only the rest. Re-filtering with other thresholds
therefore costs no model time at all, not even loading the model.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from ..fileio import dumps_canonical, write_json
from .images import ImageFacts
from .npz import read_npz, write_npz

log = logging.getLogger(__name__)

_ARRAYS = ("sha256", "image", "phash", "width", "height", "pixel_std")
_TEXT_ARRAYS = ("texts_sha256", "text")


def _part_digest(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


def _record_model(folder: Path, model_info: dict) -> None:
    """Write ``model.json`` with the first part, so that a cache folder says which model it is for."""
    if not (folder / "model.json").exists():
        write_json(folder / "model.json", model_info)


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
        _record_model(self.folder, self.model_info)
        write_npz(self.folder / f"part-{_part_digest(shas)}.npz", {
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


def texts_key(texts: list[str]) -> str:
    """The cache key of one concept's texts: any change to a template or concept field misses."""
    return hashlib.sha256(dumps_canonical(texts).encode()).hexdigest()


class TextEmbeddingCache:
    """Per-concept text embeddings, so that a re-filter never needs the text tower (nor the model)."""

    def __init__(self, root: Path, model_key: str, model_info: dict):
        self.folder = Path(root) / model_key
        self.model_info = model_info
        self._rows: dict[str, np.ndarray] = {}
        for part in sorted(self.folder.glob("text-*.npz")):
            arrays = read_npz(part, _TEXT_ARRAYS)
            self._rows.update(zip(arrays["texts_sha256"].tolist(), arrays["text"]))

    def rows(self, texts: list[list[str]], encode: Callable[[list[str]], np.ndarray]) -> list[np.ndarray]:
        """One row per concept's ``texts``: cached, or ``encode``-d and stored (all new rows in one part)."""
        keys = [texts_key(sentences) for sentences in texts]
        missing = {key: sentences for key, sentences in zip(keys, texts) if key not in self._rows}
        if missing:
            log.info("encoding the texts of %d concepts (%d cached)", len(missing), len(set(keys)) - len(missing))
            new = {key: np.asarray(encode(sentences), dtype=np.float32) for key, sentences in missing.items()}
            _record_model(self.folder, self.model_info)
            write_npz(self.folder / f"text-{_part_digest(list(new))}.npz", {
                "texts_sha256": np.array(list(new)), "text": np.stack(list(new.values())),
            })
            self._rows.update(new)
        return [self._rows[key] for key in keys]
