"""Embed every image the cache does not know yet: decode in DataLoader workers, encode in batches.

Workers read each file, decode it, compute its model-independent facts (pHash, size, pixel
spread) and apply the embedder's own preprocessing; the main process only runs the model.
A worker never raises: it hands back the one-line problem, which the main process raises as
``UserError`` (an exception raised inside a worker would reach the user wrapped in a traceback).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import EngineConfig
from ..errors import UserError
from .cache import EmbeddingCache
from .embedder import Embedder
from .images import image_facts, read_rgb

log = logging.getLogger(__name__)

# Images per cache part file: what an interrupted run keeps at worst.
CACHE_PART_SIZE = 2048


class ImageDataset:
    """Map-style dataset over image files: (preprocessed tensor, ImageFacts) or (None, problem)."""

    def __init__(self, paths: list[Path], preprocess):
        self.paths = paths
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = read_rgb(self.paths[index])
        except UserError as exc:
            return None, str(exc)
        return self.preprocess(image), image_facts(image)


def _collate(items):
    """A batch ``(tensor, facts)``, or ``(None, problem)`` for the first unreadable image: collation
    runs inside the worker too, where raising would wrap the message in a worker traceback."""
    import torch

    for tensor, facts in items:
        if tensor is None:
            return None, facts
    return torch.stack([tensor for tensor, _ in items]), [facts for _, facts in items]


def embed_missing(
    embedder: Embedder,
    cache: EmbeddingCache,
    images: dict[str, Path],
    *,
    batch_size: int,
    num_workers: int,
    progress: bool = False,
    engine: EngineConfig = EngineConfig(),
) -> int:
    """Embed the images (sha256 -> path) missing from ``cache`` into it; returns how many.

    With ``engine.name: ray`` the same batches are embedded by Ray actors (``engine.ray_embedding``).
    """
    from tqdm import tqdm

    todo = sorted(sha for sha in images if sha not in cache)
    if not todo:
        return 0
    log.info("embedding %d new images (%d cached)", len(todo), len(images) - len(todo))
    stored, vectors, facts = 0, [], []
    with tqdm(total=len(todo), desc="embed images", unit="img", disable=not progress) as bar:
        for batch_vectors, batch_facts in _embedded_batches(embedder, [images[sha] for sha in todo], batch_size,
                                                            num_workers, engine):
            vectors.extend(batch_vectors)
            facts.extend(batch_facts)
            bar.update(len(batch_facts))
            if len(facts) >= CACHE_PART_SIZE or stored + len(facts) == len(todo):
                cache.add(todo[stored:stored + len(facts)], vectors, facts)
                stored, vectors, facts = stored + len(facts), [], []
    return len(todo)


def _embedded_batches(embedder: Embedder, paths: list[Path], batch_size: int, num_workers: int, engine: EngineConfig):
    """(vectors, facts) per batch of ``batch_size`` consecutive paths, here or on Ray."""
    import torch

    if engine.name == "ray":
        from ..engine.ray_embedding import embed_on_ray

        yield from embed_on_ray(embedder, engine, [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)],
                                str(embedder.device))
        return
    # One loader for all images (workers stay up, decoding runs ahead across part boundaries);
    # the cache takes a part file whenever CACHE_PART_SIZE new embeddings have accumulated.
    loader = torch.utils.data.DataLoader(
        ImageDataset(paths, embedder.preprocess),
        batch_size=batch_size, num_workers=min(num_workers, len(paths)), collate_fn=_collate,
        # Pinned pages only speed up copies to a GPU; filter.device may be cpu on a CUDA machine.
        pin_memory=torch.device(embedder.device).type == "cuda",
    )
    for batch, batch_facts in loader:
        if batch is None:
            raise UserError(batch_facts)
        yield embedder.encode_images(batch), batch_facts
