"""Check every image against the manifest, and re-render chosen images from their manifest rows.

What "exactly" means: diffusers' batched and single outputs agree only within a tolerance, so a
job is re-rendered *in the batch it was rendered in*, through the same retry logic
(``stage.BatchGenerator``): the batch is its journal line in ``OUT/manifest.parts/`` (the batch as
committed, also after a resume with another batch size), or, when no journal holds the job, the
manifest's job order cut by the run's ``generation.batch_size`` (what an uninterrupted run
batches). On the device type, dtype and library versions of the build this gives the recorded
bytes again, which ``regenerate_images`` checks against the manifest's sha256: then the manifest
is unchanged and every later stage's result for that image stays valid. Bytes that differ
(another GPU, other library versions) are refused unless ``allow_drift``: the image is then
replaced, its sha256 updated, its filter columns dropped (the filter must score the new bytes)
and the change recorded in the journal so that a later merge keeps it.

Re-rendering a job costs its whole batch; only the requested images are written.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Catalog
from ..config import BuildConfig
from ..errors import UserError
from ..fileio import atomic_write_bytes, sha256_bytes, sha256_file
from ..jobs import Job, batches
from ..manifest import (GENERATION_FIELDS, append_batch, generation_view, journal_paths, manifest_path,
                        open_journal, read_journal, read_manifest, write_manifest)
from ..storage import remote_of
from .checks import encode_png
from .pipeline import LoadedPipeline, load_generation_pipeline
from .stage import BatchGenerator

log = logging.getLogger(__name__)


def verify_images(out_dir: Path, *, workers: int = 4) -> list[str]:
    """One line per image of an ``ok`` manifest row that is missing or whose bytes differ from its sha256."""
    out_dir = Path(out_dir)
    rows = [row for row in read_manifest(out_dir) if row["status"] == "ok"]

    def problem(row: dict) -> str | None:
        path = out_dir / row["image"]
        if not path.is_file():
            return f"{path}: missing (job {row['job_id']})"
        if sha256_file(path) != row["sha256"]:
            return f"{path}: sha256 differs from the manifest (job {row['job_id']})"
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:  # hashlib releases the GIL on large buffers
        return [line for line in pool.map(problem, rows) if line is not None]


@dataclass
class RegenerateResult:
    restored: list[str]   # job ids whose file again holds the recorded bytes
    drifted: list[str]    # job ids re-rendered to other bytes (allow_drift): manifest sha256 updated


def _job(row: dict) -> Job:
    return Job(row["job_id"], row["concept_id"], row["index"], row["prompt_variant"], row["round"])


def _rendered_batches(out_dir: Path, rows: list[dict], batch_size: int) -> tuple[dict[str, list[Job]], dict[str, Path]]:
    """The batch each job was rendered in (job id -> its batch's jobs) and the journal holding it."""
    batch_of: dict[str, list[Job]] = {}
    journal_of: dict[str, Path] = {}
    for path in journal_paths(out_dir):
        for line in read_journal(path)[0]:
            if line.get("regenerated"):
                continue
            jobs = [_job(row) for row in line["rows"]]
            for job in jobs:
                batch_of.setdefault(job.job_id, jobs)
                journal_of.setdefault(job.job_id, path)
    for batch in batches([_job(row) for row in rows], batch_size):
        for job in batch:
            batch_of.setdefault(job.job_id, batch)
    return batch_of, journal_of


def _mismatch(rendered: dict, recorded: dict) -> str | None:
    for field in GENERATION_FIELDS:
        if field != "sha256" and rendered.get(field) != recorded.get(field):
            return f"{field} {rendered.get(field)!r} where the manifest has {recorded.get(field)!r}"
    return None


def regenerate_images(config: BuildConfig, out_dir: Path, catalog: Catalog, job_ids: list[str], *,
                      allow_drift: bool = False, cache_dir: Path | None = None,
                      loaded: LoadedPipeline | None = None) -> RegenerateResult:
    """Re-render ``job_ids`` from their manifest rows and replace their image files atomically.

    Nothing is written unless every requested job re-renders with the manifest's settings and,
    without ``allow_drift``, to its recorded bytes. The caller holds the build folder's lock.
    """
    out_dir = Path(out_dir)
    remote = remote_of(out_dir)
    if remote is not None:  # its images and journal lines would change here, not in the bucket
        raise UserError(f"{remote.url}: --regenerate works on a local build folder; copy the build down first")
    source = manifest_path(out_dir)
    rows = read_manifest(out_dir)
    by_id = {row["job_id"]: row for row in rows}
    unknown = [job_id for job_id in job_ids if job_id not in by_id]
    if unknown:
        raise UserError(f"{source}: no job {', '.join(map(repr, unknown[:5]))}"
                        f"{' and more' if len(unknown) > 5 else ''}; job ids look like {rows[0]['job_id']!r}"
                        if rows else f"{source}: the manifest has no rows")
    failed = [job_id for job_id in job_ids if by_id[job_id]["status"] != "ok"]
    if failed:
        raise UserError(f"{source}: job {failed[0]!r} has no image (every attempt was broken); nothing to regenerate")
    batch_of, journal_of = _rendered_batches(out_dir, rows, config.generation.batch_size)
    loaded = loaded or load_generation_pipeline(config.generation, cache_dir)
    generator = BatchGenerator(config, catalog, loaded)
    wanted = list(dict.fromkeys(job_ids))
    rendered: dict[str, bytes] = {}
    for job_id in wanted:
        if job_id in rendered:
            continue  # rendered with an earlier target of the same batch
        for row, pixels in generator.run(batch_of[job_id]):
            if row["job_id"] not in wanted:
                continue
            problem = _mismatch(row, by_id[row["job_id"]])
            if problem:
                raise UserError(f"{source}: job {row['job_id']!r} re-renders with {problem}; regenerate with the "
                                "build's own settings (those in run.json, on the same kind of device)")
            rendered[row["job_id"]] = encode_png(pixels)
    drifted = [job_id for job_id in wanted if sha256_bytes(rendered[job_id]) != by_id[job_id]["sha256"]]
    if drifted and not allow_drift:
        raise UserError(
            f"{out_dir / by_id[drifted[0]]['image']}: the re-rendered image differs from the bytes the manifest "
            f"records ({len(drifted)} of {len(wanted)} images): this machine renders differently from the build's "
            f"(device {loaded.device}, dtype {loaded.dtype}, library versions); nothing written; pass --allow-drift "
            "to accept images equal within the diffusers tolerance (their filter scores are dropped)")
    for job_id in wanted:
        atomic_write_bytes(out_dir / by_id[job_id]["image"], rendered[job_id])
    if drifted:
        _record_drift(out_dir, rows, by_id, {job_id: sha256_bytes(rendered[job_id]) for job_id in drifted}, journal_of)
    return RegenerateResult([job_id for job_id in wanted if job_id not in drifted], drifted)


def _record_drift(out_dir: Path, rows: list[dict], by_id: dict[str, dict], new_sha: dict[str, str],
                  journal_of: dict[str, Path]) -> None:
    """New sha256 in the journals (so a later merge keeps it) and in the manifest, filter columns dropped."""
    updated = {job_id: {**generation_view(by_id[job_id]), "sha256": sha} for job_id, sha in new_sha.items()}
    for path in sorted({journal_of[job_id] for job_id in updated if job_id in journal_of}):
        with open_journal(path) as journal:
            append_batch(journal, [row for job_id, row in updated.items() if journal_of.get(job_id) == path],
                         regenerated=True)
    write_manifest(out_dir, [updated.get(row["job_id"], row) for row in rows])
    log.info("updated the sha256 of %d drifted images; rerun the filter to score them", len(updated))
