"""The kept images episodes are cut from: manifest rows with ``kept == true`` joined with their
pHash (manifest ``scores.phash``) and their CLIP embedding (``filter/embeddings.npz``)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..filtering.dedup import phash_to_int
from ..filtering.npz import read_npz
from ..manifest import iter_manifest, manifest_path

EMBEDDINGS = Path("filter") / "embeddings.npz"
EMBEDDING_ARRAYS = ("job_ids", "image", "concept_ids", "text")


@dataclass(frozen=True)
class KeptImages:
    """Kept images in manifest order; index ``i`` addresses all per-image arrays."""

    job_ids: tuple[str, ...]
    concept_ids: tuple[str, ...]
    images: tuple[str, ...]              # paths relative to the build folder
    phash: np.ndarray                    # (n,) uint64
    embedding: np.ndarray                # (n, d) float64, L2-normalised
    text: dict[str, np.ndarray]          # concept id -> (d,) float64 text feature
    manifest: Path                       # the files they came from, for error messages
    embeddings: Path

    def indices_of(self, concept_id: str) -> np.ndarray:
        return self._indices.get(concept_id, np.empty(0, dtype=np.intp))

    @functools.cached_property
    def _indices(self) -> dict[str, np.ndarray]:
        """Concept id -> its images' indices, computed once (episodes ask per concept pair)."""
        ids = np.asarray(self.concept_ids)
        return {concept_id: np.flatnonzero(ids == concept_id) for concept_id in dict.fromkeys(self.concept_ids)}


def kept_manifest_rows(out_dir: Path) -> list[dict]:
    """``kept == true`` rows of ``OUT/manifest.jsonl``, each checked for an image and a pHash."""
    path = manifest_path(out_dir)
    kept = []
    for number, row in enumerate(iter_manifest(out_dir), start=1):
        if row.get("kept") is not True:
            continue
        if row["status"] != "ok" or not row["image"]:
            raise UserError(f"{path}: row {number} ({row['job_id']}): kept but has no image")
        phash = (row.get("scores") or {}).get("phash")
        if not isinstance(phash, str) or not re.fullmatch(r"[0-9a-fA-F]{16}", phash):
            raise UserError(f"{path}: row {number} ({row['job_id']}): kept but scores.phash is not 16 hex digits")
        kept.append(row)
    return kept


def _unit_rows(matrix: np.ndarray, path: Path, name: str, count: int) -> np.ndarray:
    if matrix.ndim != 2 or matrix.shape[0] != count or not np.issubdtype(matrix.dtype, np.floating):
        raise UserError(f"{path}: array {name} must be a float matrix with {count} rows, got shape {matrix.shape}")
    matrix = matrix.astype(np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if not np.all(np.isfinite(matrix)) or np.any(norms == 0):
        raise UserError(f"{path}: array {name} has non-finite or all-zero rows")
    return matrix / norms


def load_kept_images(out_dir: Path) -> KeptImages:
    """Join the kept manifest rows with their embeddings; every kept job must have one."""
    out_dir = Path(out_dir)
    rows = kept_manifest_rows(out_dir)
    path = out_dir / EMBEDDINGS
    if not path.exists():
        raise UserError(f"{path}: not found; run the filter stage first")
    arrays = read_npz(path, EMBEDDING_ARRAYS)
    job_ids = [str(j) for j in arrays["job_ids"].reshape(-1)]
    concept_ids = [str(c) for c in arrays["concept_ids"].reshape(-1)]
    image = _unit_rows(arrays["image"], path, "image", len(job_ids))
    text = _unit_rows(arrays["text"], path, "text", len(concept_ids))
    if image.shape[1] != text.shape[1]:
        raise UserError(f"{path}: image width {image.shape[1]} differs from text width {text.shape[1]}")
    row_of = {job_id: i for i, job_id in enumerate(job_ids)}
    missing = [r["job_id"] for r in rows if r["job_id"] not in row_of]
    if missing:
        raise UserError(f"{path}: no embedding for {len(missing)} kept image(s), first {missing[0]} (rerun the filter stage)")
    return KeptImages(
        job_ids=tuple(r["job_id"] for r in rows),
        concept_ids=tuple(r["concept_id"] for r in rows),
        images=tuple(r["image"] for r in rows),
        phash=phash_to_int([r["scores"]["phash"] for r in rows]),
        embedding=image[[row_of[r["job_id"]] for r in rows]].reshape(len(rows), image.shape[1]),
        text={cid: text[i] for i, cid in enumerate(concept_ids)},
        manifest=manifest_path(out_dir),
        embeddings=path,
    )
