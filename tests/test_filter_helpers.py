"""Helpers for the filter tests: a deterministic test-double embedder and tiny build folders.

No tests here. ``TestDoubleEmbedder`` stands in for open_clip behind the same interface so the
rules can be tested with scores we choose: an image's embedding is its 4x4 grid of RGB block
means, made mirror-symmetric (so a mirrored copy is an "embedding twin" with a different pHash),
and a text's embedding is a pseudo-random vector derived from its sha256.
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from isekai_gen.catalog import load_catalog
from isekai_gen.config import BuildConfig, load_config, with_overrides
from isekai_gen.fileio import sha256_bytes, write_jsonl
from isekai_gen.filtering.embedder import concept_text_embeddings, normalise
from isekai_gen.jobs import derive_seed

GROUPS = ["cactihog", "hedgehog", "cctovac", "octopus"]
SIZE = 64
GRID = 4


def symmetric(vector: np.ndarray) -> np.ndarray:
    """Project a (GRID*GRID*3,) vector onto the mirror-symmetric subspace."""
    grid = vector.reshape(GRID, GRID, 3)
    return ((grid + grid[:, ::-1]) / 2).reshape(-1)


class _Preprocess:
    """Block means of the image in [-1, 1] (module-level class: picklable for DataLoader workers)."""

    def __call__(self, image):
        import torch

        small = image.resize((GRID, GRID), Image.Resampling.BOX)
        return torch.from_numpy(np.asarray(small, dtype=np.float32).reshape(-1) / 127.5 - 1.0)


class TestDoubleEmbedder:
    """Deterministic stand-in for the open_clip embedder (a test double, not a model)."""

    __test__ = False  # not a pytest test class
    model = "test-double"
    pretrained = "none"
    cache_key = "test-double-v1"
    device = "cpu"

    def __init__(self):
        self.preprocess = _Preprocess()
        self.image_calls = 0

    def encode_images(self, batch) -> np.ndarray:
        self.image_calls += 1
        return normalise(np.stack([symmetric(row) for row in batch.numpy()]))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        vectors = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            vectors.append(symmetric(np.random.default_rng(seed).standard_normal(GRID * GRID * 3)))
        return normalise(np.stack(vectors))


def filter_config(**filter_settings) -> BuildConfig:
    """The tiny preset restricted to two groups, with ``filter`` settings overridden."""
    dedup = {"phash_max_distance": 10, "cosine_threshold": 0.95, "cross_concept_search": "exact"}
    return load_config("tiny", None, [{"concepts": list(GROUPS), "generation": {"width": SIZE, "height": SIZE},
                                       "filter": {"num_workers": 0, "min_per_concept": 1, **filter_settings,
                                                  "dedup": dedup}}])


def with_filter(config: BuildConfig, **filter_settings) -> BuildConfig:
    """``config`` with ``filter`` settings overridden (merged, validated)."""
    return with_overrides(config, [{"filter": filter_settings}], "test")


def catalog_for(config: BuildConfig):
    return load_catalog(config.catalog).subset(config.concepts)


def text_matrix(catalog, config) -> np.ndarray:
    return concept_text_embeddings(TestDoubleEmbedder(), catalog.concepts, config.filter.templates)


def direction(text: np.ndarray, own: int, partner: int, alignment: float, partner_cos: float, seed: int) -> np.ndarray:
    """A unit symmetric vector with the given cosines to concept rows ``own`` and ``partner``."""
    a, b = text[own].astype(np.float64), text[partner].astype(np.float64)
    rho = float(a @ b)
    alpha, beta = np.linalg.solve([[1, rho], [rho, 1]], [alignment, partner_cos])
    base = alpha * a + beta * b
    rest = symmetric(np.random.default_rng(seed).standard_normal(len(a)))
    e2 = (b - rho * a) / np.linalg.norm(b - rho * a)
    rest -= (rest @ a) * a + (rest @ e2) * e2
    rest /= np.linalg.norm(rest)
    return base + np.sqrt(max(0.0, 1 - base @ base)) * rest


def image_for(vector: np.ndarray, seed: int) -> Image.Image:
    """A 64x64 image whose test-double embedding is ``vector``'s direction (up to rounding).

    A strong random antisymmetric component (invisible to the embedding) gives every image its
    own pHash, and makes the mirrored image a pHash-distant embedding twin.
    """
    rng = np.random.default_rng(seed)
    anti = rng.standard_normal(GRID * GRID * 3)
    anti = anti - symmetric(anti)
    grid = 0.6 * vector / np.abs(vector).max() + 0.2 * anti / np.abs(anti).max()
    # Detail at twice the grid resolution, zero-mean inside each grid cell: invisible to the
    # embedding, but it gives pHash plenty of structure to be stable under re-encoding.
    detail = rng.uniform(-0.2, 0.2, (GRID, 2, GRID, 2, 3))
    detail -= detail.mean(axis=(1, 3), keepdims=True)
    fine = grid.reshape(GRID, 1, GRID, 1, 3) + detail
    blocks = np.clip(127.5 + 127.5 * fine.reshape(2 * GRID, 2 * GRID, 3), 0, 255)
    pixels = np.repeat(np.repeat(blocks, SIZE // (2 * GRID), axis=0), SIZE // (2 * GRID), axis=1)
    pixels = pixels + rng.uniform(-2, 2, pixels.shape)  # a little texture, averaged out by the embedding
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def _tiny_seed() -> int:
    """The global seed of filter_config(): rows carry seeds derived from it, as generation writes them
    (stage commands cross-check run.json against the rows)."""
    return load_config("tiny").seed


def manifest_row(catalog, concept_id: str, index: int, data: bytes | None) -> dict:
    """A manifest row as the generation stage writes it (``data`` None: a failed job)."""
    concept = catalog.concept(concept_id)
    job_id = f"{concept_id}-{index:05d}"
    return {
        "job_id": job_id, "concept_id": concept.id, "group_id": concept.group, "world": concept.world,
        "label": concept.label, "index": index, "round": 0, "prompt_variant": index % len(concept.prompts),
        "prompt": concept.prompts[index % len(concept.prompts)], "negative_prompt": concept.negative_prompt,
        "seed": derive_seed(_tiny_seed(), concept.id, index % len(concept.prompts), index), "attempt": 0,
        "rejected_attempts": [],
        "status": "ok" if data is not None else "failed",
        "image": f"images/{concept_id}/{job_id}.png" if data is not None else None,
        "sha256": sha256_bytes(data) if data is not None else None,
        "width": SIZE, "height": SIZE, "model_id": "tiny-sd", "model_revision": None,
        "pipeline_class": "StableDiffusionPipeline", "dtype": "float32", "device_type": "cpu",
        "steps": 2, "guidance_scale": 0.0, "smoke_test": True,
    }


def write_build(out_dir: Path, catalog, images: dict[str, list[bytes | None]]) -> list[dict]:
    """Write ``OUT/images/`` and ``OUT/manifest.jsonl`` for concept -> list of PNG bytes."""
    rows = []
    for concept in catalog.concepts:
        for index, data in enumerate(images.get(concept.id, [])):
            row = manifest_row(catalog, concept.id, index, data)
            if data is not None:
                path = out_dir / row["image"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            rows.append(row)
    write_jsonl(out_dir / "manifest.jsonl", rows)
    return rows
