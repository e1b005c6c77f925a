"""Benchmark: image-embedding throughput of the filter stage (not a test).

Our pipeline (``embed_missing``: DataLoader workers decode and preprocess, batched forward
passes under inference_mode, bf16 autocast on CUDA) against the one-image-at-a-time loop
(decode, preprocess, forward pass of a single image), same open_clip model with random weights:
ViT-B-32 on CPU, ViT-L-14 on a GPU. Images are 512x512 noise PNGs, the size SDXL-Turbo writes.

Run: python bench/embed.py [--images 128 --batch-size 64 --workers 2 --model ViT-B-32 --device auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_images(folder: Path, count: int, size: int) -> dict[str, Path]:
    from isekai_gen.fileio import sha256_file

    rng = np.random.default_rng(0)
    images = {}
    for k in range(count):
        path = folder / f"image-{k:05d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        images[sha256_file(path)] = path
    return images


def one_at_a_time(embedder, paths: list[Path]) -> np.ndarray:
    from isekai_gen.filtering.images import read_rgb

    return np.stack([embedder.encode_images(embedder.preprocess(read_rgb(path))[None])[0] for path in paths])


def main() -> None:
    import torch

    from isekai_gen.filtering.cache import EmbeddingCache
    from isekai_gen.filtering.embedder import load_open_clip
    from isekai_gen.filtering.embedding_pass import embed_missing

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default=None, help="default: ViT-L-14 on CUDA, ViT-B-32 on CPU")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    cuda = torch.cuda.is_available() and args.device != "cpu"
    model = args.model or ("ViT-L-14" if cuda else "ViT-B-32")
    config = {"filter": {"model": {"name": model, "pretrained": None, "init_seed": 0}, "device": args.device}}
    embedder = load_open_clip(config)
    device = "cuda" if cuda else "cpu"
    print(f"model {model} (random weights) on {device}, {torch.get_num_threads()} torch threads, "
          f"{args.images} images {args.size}x{args.size}, batch {args.batch_size}, {args.workers} workers")

    with tempfile.TemporaryDirectory() as tmp:
        images = make_images(Path(tmp), args.images, args.size)
        shas = sorted(images)
        one_at_a_time(embedder, [images[shas[0]]])            # warm-up (allocations, cuDNN choices)

        cache = EmbeddingCache(Path(tmp) / "cache", embedder.cache_key, {})
        start = time.perf_counter()
        embed_missing(embedder, cache, images, batch_size=args.batch_size, num_workers=args.workers)
        batched = time.perf_counter() - start

        start = time.perf_counter()
        single = one_at_a_time(embedder, [images[sha] for sha in shas])
        looped = time.perf_counter() - start

    ours = np.stack([cache.vector(sha) for sha in shas])
    agreement = float(np.min(np.sum(ours * single, axis=1)))
    print(f"batched pipeline:  {batched:7.2f} s  {args.images / batched:8.1f} images/s")
    print(f"one at a time:     {looped:7.2f} s  {args.images / looped:8.1f} images/s")
    print(f"speed-up: {looped / batched:.2f}x; lowest cosine between the two embeddings of an image: {agreement:.5f}")


if __name__ == "__main__":
    main()
