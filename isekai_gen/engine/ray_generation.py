"""Generation on a Ray cluster: one Ray Dataset row per fixed job batch, rendered by actors.

The pattern is Ray Data's batch inference (docs.ray.io "Working with LLMs / batch inference",
``Dataset.map_batches`` with a callable class, ``compute=ActorPoolStrategy(min_size, max_size)``
for an autoscaling actor pool (Ray 2.51 deprecated the equivalent ``concurrency=(min, max)``),
``num_gpus=1`` per actor): each actor loads the pipeline once, and per row renders
exactly the batch a local run would (``stage.render_batch``: same jobs, same retry logic), encodes
the PNGs and writes them itself into the build folder, flushed (``DurableFolder``) before it
returns, or PUTs each one to the bucket of a remote build (``storage``). Only the rows (a few
hundred bytes per image) travel back through the object store; the driver streams them (``iter_rows``, Ray Data's streaming executor keeps a bounded number of
batches in flight) and alone appends each batch's line to the journal, so a batch is committed
only after its images are durable, exactly as locally.

Faults: Ray Data's actor pool restarts a killed actor and retries its task: it creates every
actor with ``max_restarts=-1`` and ``max_task_retries=-1`` unless ``map_batches`` overrides them
(``ActorPoolMapOperator._apply_default_remote_args``), and they are left at those defaults
because Ray 2.60 has no named parameter for them (only ``**ray_remote_args``, deprecated, to be
removed in Ray 2.64); a re-run batch rewrites the same bytes through temporary files and
renames, so retries are idempotent. A killed driver loses only uncommitted batches: rerunning
the command resumes from the journal.

Checked against Ray 2.60's ``ray/data/dataset.py`` (``Dataset.map_batches``: ``batch_size``,
``compute``, ``num_cpus``, ``num_gpus``, ``fn_constructor_kwargs``; ``ray_remote_args_fn`` and
``**ray_remote_args`` deprecated, to be removed in 2.64),
``ray/data/_internal/execution/operators/actor_pool_map_operator.py``
(``ActorPoolMapOperator._apply_default_remote_args``) and ``ray/data/_internal/compute.py``
(``ActorPoolStrategy(min_size, max_size, initial_size, max_tasks_in_flight_per_actor)``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from ..catalog import Catalog
from ..config import BuildConfig, EngineConfig
from ..errors import UserError
from ..jobs import Job
from ..storage import remote_of
from ..storage.images import LocalImages, RemoteImages
from . import require_ray

log = logging.getLogger(__name__)


class BatchRenderer:
    """A Ray Data actor: loads the pipeline once, then renders, writes and flushes whole batches.

    A ``UserError`` (model not loadable, disk full) is not raised here, where Ray would wrap it in
    its own exception types (a pickled exception loses its cause) and retry it: the one-line
    problem goes back as the row's ``error`` and the driver raises it.
    """

    def __init__(self, config: BuildConfig, catalog: Catalog, images: str | RemoteImages, cache_dir: str | None,
                 torch_threads: int | None):
        import torch

        from ..generation.pipeline import load_generation_pipeline
        from ..generation.stage import BatchGenerator

        if torch_threads:
            # The driver's thread count: CPU kernels may sum in another order with another count.
            torch.set_num_threads(torch_threads)
        self.problem = ""
        try:
            loaded = load_generation_pipeline(config.generation, Path(cache_dir) if cache_dir else None)
        except UserError as exc:
            self.problem = str(exc)
            return
        self.generator = BatchGenerator(config, catalog, loaded)
        # A local build folder's path (a shared file system), or the bucket's store of a remote build.
        self.images = LocalImages(images) if isinstance(images, str) else images

    def __call__(self, rows: dict) -> dict:
        import numpy as np

        from ..generation.stage import render_batch

        done, errors = [], []
        for text in rows["jobs"]:
            result, problem = "", self.problem
            if not problem:
                try:
                    batch = [Job(**job) for job in json.loads(text)]
                    result = json.dumps(render_batch(self.generator, self.images, batch))
                except UserError as exc:
                    problem = str(exc)
            done.append(result)
            errors.append(problem)
        return {"rows": np.array(done, dtype=object), "error": np.array(errors, dtype=object)}


def _worker_images(out_dir: Path) -> str | RemoteImages:
    """What an actor writes images into: the bucket of a remote build (workers need no shared
    file system), else the build folder's path, which every node must then see."""
    remote = remote_of(out_dir)
    return RemoteImages(remote) if remote is not None else str(Path(out_dir).resolve())


def connect(engine: EngineConfig):
    """``ray`` connected to the configured cluster (or a local one); an existing connection is reused."""
    ray = require_ray()
    if not ray.is_initialized():
        address = engine.ray_address
        try:
            ray.init(address=address, logging_level=logging.WARNING, include_dashboard=False,
                     log_to_driver=log.isEnabledFor(logging.INFO))
        except ConnectionError as exc:
            raise UserError(f"engine ray: cannot connect to the Ray cluster at {address!r} ({exc})") from None
    return ray


def _actor_resources(ray, engine: EngineConfig, device: str) -> tuple[dict, tuple[int, int]]:
    """map_batches resources per actor and the actor pool's (min, max) size."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    on_gpu = gpus > 0 and device in ("auto", "cuda") or device.startswith("cuda")
    cpus_per_actor = engine.cpus_per_actor or 1
    if on_gpu:
        per_actor, capacity = {"num_gpus": 1, "num_cpus": cpus_per_actor}, max(gpus, 1)
    else:
        per_actor, capacity = {"num_cpus": cpus_per_actor}, max(int(resources.get("CPU", 1) // cpus_per_actor), 1)
    low, high = engine.min_actors or 1, engine.max_actors or capacity
    return per_actor, (min(low, high), high)


def render_on_ray(config: BuildConfig, out_dir: Path, catalog: Catalog, pending: list[list[Job]],
                  commit: Callable[[list[dict]], None], *, progress: bool = False, cache_dir: Path | None = None) -> None:
    """Render ``pending`` batches on Ray actors; ``commit(rows)`` each batch as its rows stream back."""
    import torch
    from tqdm.auto import tqdm

    ray = connect(config.engine)
    from ray.data import DataContext

    context = DataContext.get_current()
    verbose = log.isEnabledFor(logging.INFO)
    context.enable_progress_bars = verbose  # one bar of ours for the whole cluster; --verbose adds Ray's
    context.print_on_execution_start = verbose
    per_actor, concurrency = _actor_resources(ray, config.engine, config.generation.device)
    items = [{"jobs": json.dumps([asdict(job) for job in batch])} for batch in pending]
    low, high = concurrency
    # Start with every actor the cluster can hold now; the autoscaler may add nodes up to `high`.
    # Two tasks in flight per actor: the next batch is queued while one renders, no more.
    pool = ray.data.ActorPoolStrategy(min_size=low, max_size=high, initial_size=high, max_tasks_in_flight_per_actor=2)
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        BatchRenderer, batch_size=1, compute=pool,
        fn_constructor_kwargs={
            "config": config, "catalog": catalog, "images": _worker_images(out_dir),
            "cache_dir": str(cache_dir) if cache_dir else os.environ.get("ISEKAI_GEN_CACHE"),
            "torch_threads": None if "num_gpus" in per_actor else torch.get_num_threads(),
        },
        **per_actor,
    )
    log.info("rendering %d batches on Ray actors %s, %s each", len(pending), concurrency, per_actor)
    with tqdm(total=sum(len(batch) for batch in pending), desc="generate (ray)", unit="img",
              disable=not progress) as bar:
        for row in dataset.iter_rows():
            if row["error"]:
                raise UserError(row["error"])
            rows = json.loads(row["rows"])
            commit(rows)
            bar.update(len(rows))
    if verbose:
        log.info("Ray Data stats:\n%s", dataset.stats())
