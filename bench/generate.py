"""Generation throughput: the generation stage vs a naive loop, side by side on the same jobs.

    python bench/generate.py                 # CPU: tiny random-weight SD pipeline, 64x64
    python bench/generate.py --full          # full-size SDXL-Turbo architecture, random weights
                                             # (bench/full_size.py), 512x512, 4 steps: for a GPU

The naive baseline is what a first script does: one pipeline call per image, PNG written
synchronously, same model, steps and resolution. A second comparison times the image writes
alone (same PNG bytes, batches of ``batch_size``): one fsync per image (``atomic_write_bytes``)
vs the stage's one flush per committed batch (``DurableFolder``). On CUDA the bench also counts FLOPs of one
batch with torch.utils.flop_counter and prints the achieved fraction of the GPU's peak bf16 FLOP/s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from isekai_gen.catalog import load_catalog  # noqa: E402
from isekai_gen.config import load_config  # noqa: E402
from isekai_gen.fileio import atomic_write_bytes  # noqa: E402
from isekai_gen.generation import run_generation  # noqa: E402
from isekai_gen.generation.checks import encode_png, to_uint8  # noqa: E402
from isekai_gen.fileio import DurableFolder, write_deferred  # noqa: E402
from isekai_gen.generation.pipeline import (LoadedPipeline, generate_batch, load_generation_pipeline,  # noqa: E402
                                            resolve_device, resolve_dtype)
from isekai_gen.jobs import plan_jobs  # noqa: E402

# Dense bf16 peak (no sparsity) per GPU name fragment, FLOP/s.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "4090": 165e12}


def naive_loop(loaded, config, catalog, jobs, out_dir: Path) -> None:
    settings = config.generation
    for job in jobs:
        concept = catalog.concept(job.concept_id)
        images, _ = generate_batch(loaded, [concept.prompts[job.prompt_variant]], [concept.negative_prompt],
                                   [job.seed(config.seed)], steps=settings.steps,
                                   guidance_scale=settings.guidance_scale, width=settings.width,
                                   height=settings.height)
        atomic_write_bytes(out_dir / f"{job.job_id}.png", encode_png(to_uint8(images[0])))


def write_per_image_fsync(folder: Path, batches: list[list[bytes]]) -> None:
    for number, batch in enumerate(batches):
        for i, data in enumerate(batch):
            atomic_write_bytes(folder / f"{number}-{i}.png", data)


def write_per_batch_flush(folder: Path, batches: list[list[bytes]]) -> None:
    with DurableFolder(folder) as durable:
        for number, batch in enumerate(batches):
            paths = [folder / f"{number}-{i}.png" for i in range(len(batch))]
            for path, data in zip(paths, batch):
                write_deferred(path, data)
            durable.commit(paths)


def writer_bench(n: int, batch_size: int, size: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    pngs = [encode_png(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]
    batches = [pngs[i:i + batch_size] for i in range(0, n, batch_size)]
    timings = {}
    for name, write in (("fsync per image", write_per_image_fsync), ("flush per batch", write_per_batch_flush)):
        best = float("inf")
        for _ in range(3):  # best of 3: the disk is shared with whatever else runs
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                write(Path(tmp), batches)
                best = min(best, time.perf_counter() - start)
        timings[name] = best
        print(f"image writes, {name}: {best:8.3f} s for {n} images ({best / n * 1e3:.2f} ms/image)")
    print(f"writer speed-up: {timings['fsync per image'] / timings['flush per batch']:.2f}x")


def batch_flops(loaded, config, catalog, jobs) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    settings = config.generation
    batch = jobs[: settings.batch_size]
    with FlopCounterMode(display=False) as counter:
        generate_batch(loaded, [catalog.concept(j.concept_id).prompts[0] for j in batch], [""] * len(batch),
                       [j.seed(0) for j in batch], steps=settings.steps, guidance_scale=settings.guidance_scale,
                       width=settings.width, height=settings.height)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=160, help="images per side")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--full", action="store_true", help="full-size default-model architecture, random weights")
    parser.add_argument("--writer-only", action="store_true", help="only the image-write comparison")
    args = parser.parse_args()

    import torch

    preset = "default" if args.full else "tiny"
    catalog = load_catalog(load_config(preset).catalog)
    per_concept = -(-args.images // len(catalog.concepts))
    overrides = {"images_per_concept": per_concept, **({"batch_size": args.batch_size} if args.batch_size else {})}
    config = load_config(preset, None, [{"generation": overrides}])
    jobs = plan_jobs(catalog, [{c.id: per_concept for c in catalog.concepts}])
    settings = config.generation
    writer_bench(max(args.images, 1600), settings.batch_size, settings.width)
    if args.writer_only:
        return
    if args.full:
        from full_size import sdxl_turbo_random

        device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.dtype, device)
        pipe = sdxl_turbo_random(device, getattr(torch, dtype))
        pipe.set_progress_bar_config(disable=True)
        loaded = LoadedPipeline(pipe, "sdxl-turbo-architecture-random-weights", None, type(pipe).__name__, dtype, device)
    else:
        loaded = load_generation_pipeline(settings)
    print(f"model {settings.model.id} ({loaded.pipeline_class}), {loaded.device} {loaded.dtype}, "
          f"{settings.width}x{settings.height}, {settings.steps} steps, batch {settings.batch_size}, "
          f"{len(jobs)} images, torch threads {torch.get_num_threads()}")
    # Warm-up outside the timings (first calls allocate, tune kernels, compile).
    naive_loop(loaded, config, catalog, jobs[:2], Path(tempfile.mkdtemp()))

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        naive_loop(loaded, config, catalog, jobs, Path(tmp))
        naive_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_generation(config, Path(tmp), catalog, loaded=loaded)
        stage_s = time.perf_counter() - start
    n = len(jobs)
    print(f"naive loop (1 image/call): {naive_s:8.2f} s  {n / naive_s:8.2f} images/s")
    print(f"generation stage:          {stage_s:8.2f} s  {n / stage_s:8.2f} images/s")
    print(f"speed-up: {naive_s / stage_s:.2f}x")
    per_image = batch_flops(loaded, config, catalog, jobs) / settings.batch_size
    achieved = per_image * n / stage_s
    line = f"model FLOPs per image {per_image / 1e9:.2f} GFLOP; achieved {achieved / 1e9:.1f} GFLOP/s"
    if loaded.device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
        line += f" on {name}" + (f" = {achieved / peak:.1%} of its peak bf16 FLOP/s" if peak else "")
    print(line)


if __name__ == "__main__":
    main()
