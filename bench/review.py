"""Benchmark: the review server's pages against the static contact sheets, on a 40 x 1,000 build.

A synthetic filtered build (default 40 concepts of the shipped catalog x 1,000 PNGs, blocky
random images of --size pixels, real sha256s) is written to a temporary folder. Then, in order:

- review, what a browser fetches for the overview (page, script, ``/api/overview`` and every
  strip thumbnail, 6 connections at once as browsers do): cold (new server, empty thumbnail
  cache), new server with the thumbnails cached (the manifest is read again), warm (same server);
- review, a 1,000-image concept page: its data, the first page of tiles (100 thumbnails) and the
  partner strip, cold and warm; and all 1,000 thumbnails (every page), cold and warm;
- baseline: ``isekai-gen preview`` (every contact sheet + index) with the thumbnail cache emptied
  first, then again with it warm.

    .venv/bin/python bench/review.py [--concepts 40] [--per-concept 1000] [--size 128] [--build DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from isekai_gen.catalog import load_catalog  # noqa: E402
from isekai_gen.fileio import write_jsonl  # noqa: E402
from isekai_gen.preview import write_preview  # noqa: E402
from isekai_gen.review.app import make_server  # noqa: E402
from isekai_gen.curation.thumbs import THUMBS_DIR  # noqa: E402

PAGE_TILES = 100      # review.js PAGE_SIZE
PARTNER_TILES = 48    # review.js partner strip
CONNECTIONS = 6       # a browser's connections per host


def write_synthetic_build(out: Path, concepts: int, per_concept: int, size: int) -> int:
    rng = np.random.default_rng(0)
    catalog = load_catalog("isekai")
    chosen = [c for pair in catalog.groups() for c in pair][:concepts]
    rows = []
    for concept in chosen:
        folder = out / "images" / concept.id
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_concept):
            job_id = f"{concept.id}-{index:05d}"
            blocks = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(blocks).resize((size, size), Image.Resampling.NEAREST).save(buffer, format="PNG")
            data = buffer.getvalue()
            (folder / f"{job_id}.png").write_bytes(data)
            alignment = float(rng.uniform(0.15, 0.35))
            kept = alignment > 0.2
            rows.append({
                "job_id": job_id, "concept_id": concept.id, "group_id": concept.group, "world": concept.world,
                "label": concept.label, "index": index, "round": 0, "prompt_variant": index % len(concept.prompts),
                "prompt": concept.prompts[index % len(concept.prompts)], "negative_prompt": concept.negative_prompt,
                "seed": int(rng.integers(0, 2**63)), "attempt": 0, "rejected_attempts": [], "status": "ok",
                "image": f"images/{concept.id}/{job_id}.png", "sha256": hashlib.sha256(data).hexdigest(),
                "width": size, "height": size, "model_id": "stabilityai/sdxl-turbo", "model_revision": None,
                "pipeline_class": "StableDiffusionXLPipeline", "dtype": "float16", "device_type": "cuda", "steps": 4,
                "guidance_scale": 0.0, "smoke_test": False,
                "scores": {"model": "ViT-L-14", "pretrained": "openai", "alignment": alignment, "partner_cosine": 0.2,
                           "margin": alignment - 0.2, "zeroshot_prob": 0.6, "top1": kept, "phash": f"{index:016x}"},
                "kept": kept, "reject_reason": None if kept else "low_alignment", "duplicate_of": None,
            })
    write_jsonl(out / "manifest.jsonl", rows)
    return len(rows)


class Server:
    """A fresh review server (so a fresh in-memory cache) on a free loopback port, in a thread."""

    def __init__(self, out: Path):
        self.server = make_server(out, port=0)[0]
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.local = threading.local()
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join()

    def get(self, path: str) -> bytes:
        for attempt in (0, 1):
            if attempt or not hasattr(self.local, "connection"):  # keep-alive per thread, as browsers do
                self.local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.local.connection.request("GET", path)
                response = self.local.connection.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionError):
                if attempt:  # the server closed an idle keep-alive connection: reconnect once
                    raise
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status}")
        return body

    def get_all(self, paths: list[str]) -> None:
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            list(pool.map(self.get, paths))


def overview(server: Server) -> float:
    start = time.perf_counter()
    server.get("/")
    server.get("/static/review.js")
    data = json.loads(server.get("/api/overview"))
    server.get_all([f"/thumb/{job}?v={sha}" for g in data["groups"] for c in g["concepts"] for job, sha in c["strip"]])
    return time.perf_counter() - start


def concept_page(server: Server, concept_id: str, tiles: int | None) -> float:
    """The page, its data, ``tiles`` thumbnails in page order (None: all) and the partner strip."""
    start = time.perf_counter()
    server.get(f"/concept/{concept_id}")
    data = json.loads(server.get(f"/api/concept/{concept_id}"))
    items = sorted(data["items"], key=lambda i: (i["scores"]["alignment"], i["index"]))[:tiles]
    server.get_all([f"/thumb/{i['job_id']}?v={i['sha']}" for i in items]
                   + [f"/thumb/{job}?v={sha}" for job, sha in data["partner_kept"][:PARTNER_TILES]])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concepts", type=int, default=40)
    parser.add_argument("--per-concept", type=int, default=1000)
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (real builds: 512-1024)")
    parser.add_argument("--build", type=Path, default=None,
                        help="keep the synthetic build in this folder and reuse it on the next run (default: a temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        out = args.build or Path(tmp) / "build"
        if (out / "manifest.jsonl").exists():
            print(f"reusing the synthetic build in {out}")
            for folder in (out / "cache", out / "preview"):
                shutil.rmtree(folder, ignore_errors=True)
        else:
            start = time.perf_counter()
            count = write_synthetic_build(out, args.concepts, args.per_concept, args.size)
            print(f"synthetic build: {args.concepts} concepts x {args.per_concept} images ({args.size}x{args.size} PNG), "
                  f"{count} rows, written in {time.perf_counter() - start:.1f} s")
        concept_id = json.loads((out / "manifest.jsonl").open().readline())["concept_id"]
        results = []
        with Server(out) as server:
            results.append(("review overview, cold (new server, no thumbnails)", overview(server)))
            results.append(("review overview, warm (second visit)", overview(server)))
            results.append((f"review concept page 1 ({PAGE_TILES} tiles of {args.per_concept}), cold thumbnails",
                            concept_page(server, concept_id, PAGE_TILES)))
            results.append(("review concept page 1, warm", concept_page(server, concept_id, PAGE_TILES)))
            results.append((f"review concept, all {args.per_concept} thumbnails, rest cold",
                            concept_page(server, concept_id, None)))
            results.append((f"review concept, all {args.per_concept} thumbnails, warm",
                            concept_page(server, concept_id, None)))
        with Server(out) as server:
            results.append(("review overview, new server, thumbnails cached", overview(server)))
        shutil.rmtree(out / THUMBS_DIR)
        start = time.perf_counter()
        write_preview(out)
        results.append(("baseline: static preview (all sheets + index), cold thumbnails", time.perf_counter() - start))
        start = time.perf_counter()
        write_preview(out)
        results.append(("baseline: static preview, thumbnails cached", time.perf_counter() - start))
        sheets = sorted((out / "preview").glob("*.jpg"))
        print(f"{'':66s} seconds")
        for name, seconds in results:
            print(f"{name:66s} {seconds:8.3f}")
        warm = dict(results)["review overview, warm (second visit)"]
        print(f"static preview (cached thumbnails) / warm review overview: {results[-1][1] / warm:.0f}x; "
              f"{len(sheets)} sheets, {sum(p.stat().st_size for p in sheets) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
