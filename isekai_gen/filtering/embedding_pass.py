"""Embed every image the cache does not know yet: decode in DataLoader workers, encode in batches.

Workers read each file, decode it, compute its model-independent facts (pHash, size, pixel
spread) and apply the embedder's own preprocessing; the main process only runs the model.
A worker never raises: it hands back the one-line problem, which the main process raises as
``UserError`` (an exception raised inside a worker would reach the user wrapped in a traceback).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from .. import engine as engines
from ..config import EngineConfig
from ..errors import UserError
from ..storage.images import RemoteFile
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

    The engine (``isekai_gen.engine``, ``engine.name``) runs ``BatchEmbedder`` over the batches.
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


def _embedded_batches(embedder: Embedder, paths: list[Path | RemoteFile], batch_size: int, num_workers: int,
                      engine: EngineConfig):
    """(vectors, facts) per batch of ``batch_size`` consecutive paths, on the configured engine."""
    import torch

    kwargs = {"embedder": embedder, "torch_threads": torch.get_num_threads(), "num_workers": num_workers}
    yield from engines.map_batches(engine, BatchEmbedder, kwargs,
                                   [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)],
                                   device=str(embedder.device))


def _register_architecture(embedder) -> None:
    """Make the embedder's open_clip model config known in this process (a fresh cluster worker).

    The driver registered it from configs/open_clip/ or filter.model.config; the resolved spec
    carries the architecture itself, which open_clip registers from a ``<name>.json`` file.
    """
    import open_clip

    spec = getattr(embedder, "_spec", None)
    architecture = spec.identity.get("architecture") if spec is not None else None
    if architecture and open_clip.get_model_config(spec.name) is None:
        folder = Path(tempfile.mkdtemp(prefix="isekai-open-clip-"))
        (folder / f"{spec.name}.json").write_text(json.dumps(architecture), encoding="utf-8")
        open_clip.add_model_config(folder / f"{spec.name}.json")


class BatchEmbedder:
    """The embedding worker an engine runs (``isekai_gen.engine.BatchWorker``): per batch of image
    paths (or a remote build's objects), decode, preprocess and encode; (vectors, facts) back.

    The embedder arrives unloaded on a cluster (``LazyOpenClip`` loads its weights on first use,
    in the worker's process).
    """

    def __init__(self, embedder: Embedder, torch_threads: int, num_workers: int):
        import torch

        if not torch.cuda.is_available():
            torch.set_num_threads(torch_threads)  # as the driver would run the model
        _register_architecture(embedder)
        self.embedder = embedder
        self.num_workers = num_workers

    def __call__(self, batch: list[Path | RemoteFile]):
        dataset = ImageDataset(batch, self.embedder.preprocess)
        return self._encoded(_collate([dataset[i] for i in range(len(dataset))]))

    def stream(self, batches: list[list[Path | RemoteFile]]):
        """The same batches decoded by DataLoader workers running ahead of the model."""
        import torch

        paths = [path for batch in batches for path in batch]
        # One loader for all images (workers stay up, decoding runs ahead across part boundaries).
        loader = torch.utils.data.DataLoader(
            ImageDataset(paths, self.embedder.preprocess),
            batch_size=len(batches[0]), num_workers=min(self.num_workers, len(paths)), collate_fn=_collate,
            # Pinned pages only speed up copies to a GPU; filter.device may be cpu on a CUDA machine.
            pin_memory=torch.device(self.embedder.device).type == "cuda",
        )
        for collated in loader:
            yield self._encoded(collated)

    def _encoded(self, collated):
        batch, facts = collated
        if batch is None:
            raise UserError(facts)
        return self.embedder.encode_images(batch), facts
