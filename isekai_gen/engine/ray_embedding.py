"""CLIP image embedding on a Ray cluster, filling the same embedding cache as the local pass.

One Ray Dataset row per embedding batch, cut exactly as the local pass cuts them (the missing
sha256s in sorted order, ``filter.batch_size`` each), so every vector has the same bits as a
local run's on the same kind of device. An actor (``num_gpus=1`` on GPU clusters) holds the
embedder, which the driver ships unloaded (``LazyOpenClip`` loads its weights on first use, in
the actor); per row it reads (from the bucket, for a remote build), decodes and preprocesses
the images (``embedding_pass.ImageDataset``, what the local DataLoader workers run) and encodes
them. Vectors and the model-independent facts
come back to the driver, which alone writes the cache parts.
Same Ray Data calls as ``ray_generation`` (``map_batches`` with an ``ActorPoolStrategy``, a killed
actor restarted and its task retried by Ray Data's defaults), checked against the same Ray 2.60 sources.
"""

from __future__ import annotations

import json
import logging
import pickle
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from ..config import EngineConfig
from ..errors import UserError
from ..storage import RemoteFile
from .ray_generation import _actor_resources, connect

log = logging.getLogger(__name__)


def _register_architecture(embedder) -> None:
    """Make the embedder's open_clip model config known in this (fresh) worker process.

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
    """A Ray Data actor: decode, preprocess and encode whole embedding batches.

    Like the local DataLoader workers it never raises a ``UserError``: Ray would wrap it (and
    retry it); the one-line problem goes back as the row's ``error`` for the driver to raise.
    """

    def __init__(self, embedder, torch_threads: int | None, remote=None):
        import torch

        if torch_threads:
            torch.set_num_threads(torch_threads)  # as the driver would run the model
        _register_architecture(embedder)
        self.embedder = embedder
        self.remote = remote  # a remote build's bucket: rows then name objects in it, not paths

    def _source(self, name: str):
        return RemoteFile(self.remote, name) if self.remote is not None else Path(name)

    def __call__(self, rows: dict) -> dict:
        from ..filtering.embedding_pass import ImageDataset, _collate

        out, errors = [], []
        for text in rows["paths"]:
            result, problem = b"", ""
            try:
                dataset = ImageDataset([self._source(p) for p in json.loads(text)], self.embedder.preprocess)
                batch, facts = _collate([dataset[i] for i in range(len(dataset))])
                if batch is None:
                    problem = facts
                else:
                    result = pickle.dumps((self.embedder.encode_images(batch), facts))
            except UserError as exc:
                problem = str(exc)
            out.append(result)
            errors.append(problem)
        return {"index": rows["index"], "result": np.array(out, dtype=object), "error": np.array(errors, dtype=object)}


def embed_on_ray(embedder, engine: EngineConfig, batches: list[list[Path | RemoteFile]],
                 device: str) -> Iterator[tuple[np.ndarray, list]]:
    """(vectors, facts) of each batch of images (paths, or a remote build's objects), in batch order."""
    import torch

    ray = connect(engine)
    per_actor, (low, high) = _actor_resources(ray, engine, device)
    pool = ray.data.ActorPoolStrategy(min_size=low, max_size=high, initial_size=high, max_tasks_in_flight_per_actor=2)
    remote = next((item.remote for batch in batches for item in batch if isinstance(item, RemoteFile)), None)
    items = [{"index": k, "paths": json.dumps([item.relpath if isinstance(item, RemoteFile) else str(item)
                                               for item in batch])} for k, batch in enumerate(batches)]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        BatchEmbedder, batch_size=1, compute=pool,
        fn_constructor_kwargs={"embedder": embedder, "remote": remote,
                               "torch_threads": None if "num_gpus" in per_actor else torch.get_num_threads()},
        **per_actor,
    )
    log.info("embedding %d batches on Ray actors (%d, %d), %s each", len(batches), low, high, per_actor)
    # Rows arrive in completion order; the cache parts are cut from the batches in order, so
    # early ones wait here (at most the batches in flight).
    early: dict[int, bytes] = {}
    following = 0
    for row in dataset.iter_rows():
        if row["error"]:
            raise UserError(row["error"])
        early[int(row["index"])] = row["result"]
        while following in early:
            yield pickle.loads(early.pop(following))
            following += 1
