"""The generation stage: jobs -> PNG images + manifest rows, resumable and shardable.

Resume unit is the batch. A batch's PNGs are written atomically (temporary file + rename) and
made durable together (``fileio.DurableFolder.commit``: one flush per batch, not per image), then
its rows are committed as one line of this shard's journal (see ``manifest``), so a process killed
at any moment leaves only complete images and rows that point at complete images. A rerun skips
committed jobs and regenerates the rest in the same batches, which reproduces the same bytes.
In a remote build (``--out s3://...``, ``storage.remote``) each image is one PUT to the bucket
and each journal line is committed by its own PUT once the batch's image PUTs have returned.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .. import engine
from ..catalog import Catalog
from ..config import BuildConfig, EngineConfig, GenerationConfig
from ..fileio import TEMP_MARKER, sha256_bytes, temp_target
from ..jobs import Job, Shard, batches, plan_jobs
from ..manifest import (append_batch, generation_view, manifest_path, open_journal, part_path, read_manifest,
                        read_parts, write_manifest)
from ..storage import push_journal_line, refresh_journals, remote_of
from ..storage.images import LocalImages, RemoteImages
from .checks import broken_reason, encode_png, to_uint8
from .pipeline import LoadedPipeline, generate_batch, load_generation_pipeline

log = logging.getLogger(__name__)


@dataclass
class GenerationResult:
    planned: int          # jobs in the plan (all shards)
    generated: int        # jobs this call generated
    skipped: int          # jobs of this shard already done before this call
    failed: int           # jobs of this shard whose every attempt was broken
    merged: bool          # manifest.jsonl written (every shard finished)


def initial_round(settings: GenerationConfig, catalog: Catalog) -> dict[str, int]:
    return {c.id: settings.images_per_concept for c in catalog.concepts}


def image_relpath(job: Job) -> str:
    return f"images/{job.concept_id}/{job.job_id}.png"


class BatchGenerator:
    """Runs batches of jobs through one loaded pipeline with fresh-seed retries."""

    def __init__(self, config: BuildConfig, catalog: Catalog, loaded: LoadedPipeline):
        # The build config, not the generation section alone: image seeds derive from the global
        # seed, and smoke-test builds say so in every row.
        self.settings = config.generation
        self.seed = config.seed
        self.smoke_test = config.smoke_test
        self.catalog = catalog
        self.loaded = loaded
        self.pad_to = self.settings.batch_size if self.settings.compile else None

    def run(self, jobs: list[Job]) -> list[tuple[dict, bytes | None]]:
        """Rows (without sha256/image yet) and PNG bytes (None for failed jobs), in job order."""
        attempts = {job.job_id: 0 for job in jobs}
        rejected: dict[str, list[dict]] = {job.job_id: [] for job in jobs}
        results: dict[str, bytes | None] = {}
        todo = list(jobs)
        while todo:
            seeds = [job.seed(self.seed, attempts[job.job_id]) for job in todo]
            concepts = [self.catalog.concept(job.concept_id) for job in todo]
            images, nsfw = generate_batch(
                self.loaded,
                [c.prompts[job.prompt_variant] for c, job in zip(concepts, todo)],
                [c.negative_prompt for c in concepts], seeds,
                steps=self.settings.steps, guidance_scale=self.settings.guidance_scale,
                width=self.settings.width, height=self.settings.height, pad_to=self.pad_to,
                max_sequence_length=self.settings.max_sequence_length,
            )
            retry = []
            for job, seed, image, flagged in zip(todo, seeds, images, nsfw):
                reason = broken_reason(image, flagged)
                if reason is None:
                    results[job.job_id] = to_uint8(image)
                    continue
                rejected[job.job_id].append({"seed": seed, "reason": reason})
                log.info("job %s attempt %d: %s image, retrying with a fresh seed", job.job_id, attempts[job.job_id], reason)
                if attempts[job.job_id] < self.settings.max_retries:
                    attempts[job.job_id] += 1
                    retry.append(job)
                else:
                    results[job.job_id] = None
            todo = retry
        return [(self._row(job, attempts[job.job_id], rejected[job.job_id], results[job.job_id] is not None),
                 results[job.job_id]) for job in jobs]

    def _row(self, job: Job, attempt: int, rejected: list[dict], ok: bool) -> dict:
        concept = self.catalog.concept(job.concept_id)
        return {
            "job_id": job.job_id, "concept_id": concept.id, "group_id": concept.group, "world": concept.world,
            "label": concept.label, "index": job.index, "round": job.round, "prompt_variant": job.prompt_variant,
            "prompt": concept.prompts[job.prompt_variant], "negative_prompt": concept.negative_prompt,
            "seed": job.seed(self.seed, attempt), "attempt": attempt, "rejected_attempts": rejected,
            "status": "ok" if ok else "failed", "image": image_relpath(job) if ok else None, "sha256": None,
            "width": self.settings.width, "height": self.settings.height,
            "model_id": self.loaded.model_id, "model_revision": self.loaded.revision,
            "pipeline_class": self.loaded.pipeline_class, "dtype": self.loaded.dtype,
            "device_type": self.loaded.device_type, "steps": self.settings.steps,
            "guidance_scale": float(self.settings.guidance_scale), "smoke_test": self.smoke_test,
        }


def write_image(images, row: dict, pixels) -> dict:
    """Encode and write one image into ``images`` (a ``storage`` image store; not yet durable:
    see ``make_durable``); the row with its sha256."""
    data = encode_png(pixels)
    images.write(row["image"], data)
    return {**row, "sha256": sha256_bytes(data)}


def make_durable(images, rows: list[dict]) -> list[dict]:
    """Make a batch's written images durable at once; its rows may be committed after this."""
    images.commit([row["image"] for row in rows if row["image"] is not None])
    return rows


def render_batch(generator: BatchGenerator, images, batch: list[Job]) -> list[dict]:
    """Render, encode, write and flush one batch in this thread (a cluster worker's unit of work)."""
    rows = [write_image(images, row, pixels) if pixels is not None else row for row, pixels in generator.run(batch)]
    return make_durable(images, rows)


def run_generation(config: BuildConfig, out_dir: Path, catalog: Catalog, *, rounds: list[dict[str, int]] | None = None,
                   shard: Shard = Shard(0, 1), progress: bool = False, cache_dir: Path | None = None,
                   loaded: LoadedPipeline | None = None) -> GenerationResult:
    """Generate this shard's pending jobs, then merge the manifest if every shard is done.

    ``rounds`` lists the image counts per concept of each round (default: one round of
    ``generation.images_per_concept``); the filter stage's top-ups append rounds. The engine
    (``isekai_gen.engine``, ``engine.name``) runs ``BatchRenderer`` over the pending batches, here
    or on a Ray cluster; this process alone commits them to the journal and merges the manifest. Takes the whole
    build config: the generation section, the engine section and the global seed.
    """
    out_dir = Path(out_dir)
    settings = config.generation
    jobs = plan_jobs(catalog, rounds or [initial_round(settings, catalog)])
    all_batches = batches(jobs, settings.batch_size)
    existing = {row["job_id"]: row for row in read_manifest(out_dir, required=False)}
    generated_rows = read_parts(out_dir)
    done = set(generated_rows) | set(existing)
    mine = [batch for number, batch in enumerate(all_batches) if shard.owns(number)]
    pending = [[job for job in batch if job.job_id not in done] for batch in mine]
    pending = [batch for batch in pending if batch]
    skipped = sum(len(b) for b in mine) - sum(len(b) for b in pending)
    _remove_partial_files(out_dir, [job for batch in pending for job in batch], shard)
    failed = 0
    # A pipeline loaded by the caller (regenerate, tests) runs here, whatever the engine.
    settings_of_engine = EngineConfig() if loaded is not None else config.engine
    if pending:
        engine.check(settings_of_engine)  # before anything is written
        journal_path = part_path(out_dir, shard.index, shard.count)
        from tqdm.auto import tqdm

        with open_journal(journal_path) as journal, \
                tqdm(total=sum(len(b) for b in pending), desc=f"generate {shard}", unit="img",
                     disable=not progress) as bar:
            for rows in engine.map_batches(settings_of_engine, BatchRenderer,
                                           renderer_kwargs(config, catalog, out_dir, cache_dir, loaded),
                                           pending, device=settings.device):
                offset, line = append_batch(journal, rows)
                push_journal_line(out_dir, journal_path, offset, line)
                generated_rows.update((row["job_id"], row) for row in rows)
                failed += sum(1 for row in rows if row["status"] != "ok")
                bar.update(len(rows))
    if shard.count > 1:  # other shards may have committed rows meanwhile: their journals tell
        refresh_journals(out_dir)
        generated_rows = read_parts(out_dir)
    merged = merge_manifest(out_dir, jobs, existing, generated_rows)
    return GenerationResult(len(jobs), sum(len(b) for b in pending), skipped, failed, merged)


def renderer_kwargs(config: BuildConfig, catalog: Catalog, out_dir: Path, cache_dir: Path | None,
                    loaded: LoadedPipeline | None) -> dict:
    """``BatchRenderer``'s arguments, picklable for a cluster engine unless ``loaded`` is given."""
    import torch

    # What a worker writes into: the bucket of a remote build (workers need no shared file
    # system), else the build folder's path, which every node of a cluster must then see.
    remote = remote_of(out_dir)
    return {"config": config, "catalog": catalog,
            "images": RemoteImages(remote) if remote is not None else str(Path(out_dir).resolve()),
            "cache_dir": str(cache_dir) if cache_dir else os.environ.get("ISEKAI_GEN_CACHE"),
            "torch_threads": torch.get_num_threads(), "loaded": loaded}


class BatchRenderer:
    """The generation worker an engine runs (``isekai_gen.engine.BatchWorker``): loads the
    pipeline once, then per batch renders, writes and flushes its images and returns its rows
    (a few hundred bytes per image: the images never travel back to the driver)."""

    def __init__(self, config: BuildConfig, catalog: Catalog, images: str | RemoteImages, cache_dir: str | None,
                 torch_threads: int, loaded: LoadedPipeline | None = None):
        import torch

        if not torch.cuda.is_available():
            # The driver's thread count: CPU kernels may sum in another order with another count.
            torch.set_num_threads(torch_threads)
        loaded = loaded or load_generation_pipeline(config.generation, Path(cache_dir) if cache_dir else None)
        self.generator = BatchGenerator(config, catalog, loaded)
        self.images = LocalImages(images) if isinstance(images, str) else images

    def __call__(self, batch: list[Job]) -> list[dict]:
        return render_batch(self.generator, self.images, batch)

    def stream(self, pending: list[list[Job]]):
        """Each batch's rows once its images are durable, in order, PNG encoding, writing and
        flushing of batch k overlapping the pipeline call of batch k+1 (the flush waits in its
        own thread so that the encoders keep going)."""
        with ThreadPoolExecutor(max_workers=2) as encoders, ThreadPoolExecutor(max_workers=1) as flusher:
            try:
                in_flight: Future | None = None
                for batch in pending:
                    results = self.generator.run(batch)
                    if in_flight is not None:
                        yield in_flight.result()
                    written = [encoders.submit(write_image, self.images, row, pixels) if pixels is not None
                               else _done_future(row) for row, pixels in results]
                    in_flight = flusher.submit(_durable_when_written, self.images, written)
                if in_flight is not None:
                    yield in_flight.result()
            finally:
                self.images.close()


def _remove_partial_files(out_dir: Path, pending: list[Job], shard: Shard) -> None:
    """Delete temporary files a killed run left behind.

    Only those this process owns: its pending jobs' images, and the manifest's when it is the
    only shard (another live shard may be writing its own temporary files right now).
    """
    # One listing per concept folder, not one per job: a resume may have thousands pending.
    pending_ids = {job.job_id for job in pending}
    folders = {(out_dir / image_relpath(job)).parent for job in pending}
    stray = [p for folder in sorted(folders) for p in folder.glob(f"{TEMP_MARKER}*.png.*")
             if (temp_target(p.name) or "").removesuffix(".png") in pending_ids]
    if shard.count == 1:
        stray += [p for p in out_dir.glob(f"{TEMP_MARKER}*") if temp_target(p.name) == manifest_path(out_dir).name]
    for path in stray:
        log.info("removing %s left by an interrupted run", path)
        path.unlink(missing_ok=True)


def _durable_when_written(images, written: list[Future]) -> list[dict]:
    return make_durable(images, [future.result() for future in written])


def _done_future(row: dict) -> Future:
    future: Future = Future()
    future.set_result(row)
    return future


def merge_manifest(out_dir: Path, jobs: list[Job], existing: dict[str, dict], generated: dict[str, dict]) -> bool:
    """Write manifest.jsonl in job order once every planned job has a row; True when written.

    Rows already in manifest.jsonl (``existing``) with the same generation fields are kept whole,
    so later stages' columns survive a rerun, and an unchanged manifest is not rewritten.
    ``generated`` holds the committed journal rows by job id.
    """
    rows = []
    for job in jobs:
        row = generated.get(job.job_id) or existing.get(job.job_id)
        if row is None:
            return False
        previous = existing.get(job.job_id)
        if previous is not None and generation_view(previous) == generation_view(row):
            row = previous
        rows.append(row)
    if [row["job_id"] for row in rows] != list(existing) or any(existing[r["job_id"]] is not r for r in rows):
        write_manifest(out_dir, rows)
    return True
