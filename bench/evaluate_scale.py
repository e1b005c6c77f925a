"""Benchmark many-shot `isekai-gen evaluate`: what prompt caching saves, and the cost of one huge request.

1. Caching: a 50-shot-per-class UCMerced-shaped grid (21 classes x 50 demos = 1,050 demo images of
   256x256, `--test-rows` queries, batch sizes 5 and 10) sent through the real runner to the
   OpenAI-compatible test double (`tests/evaluate_double.py`, loopback), which applies OpenAI's
   prompt-cache accounting (guide "Prompt caching": a prefix seen before is a hit once the prompt
   has >= 1,024 tokens, counted in 128-token steps, reported as
   `usage.prompt_tokens_details.cached_tokens`; prompt tokens from the image tile formula at
   `detail: auto` and ~4 characters per text token). Once in the original per-request demo
   order, once in `--demo-order cache-friendly`. Dollars are the journal's, priced with the
   shipped table's gpt-4o entry (cached input at half price); the same token stream is also
   priced as Anthropic would bill it (claude-sonnet-4: the first request of a cell writes the
   demo block at 1.25x, later ones read it at 0.1x) and as the batch API (half price, no cache).
2. Scale of one request: 100, 500 and 2,000 demonstrations (20 classes, 64x64 JPEGs): time to
   encode the images (once per run) and to build one cell of requests (the demo parts shared by
   every request, not copied), peak Python memory (tracemalloc, which itself slows the loop)
   while encoding, building and serializing one OpenAI request body, and that body's size.

    .venv/bin/python bench/evaluate_scale.py [--test-rows 105] [--scale-requests 10]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from evaluate_double import OpenAIDouble  # noqa: E402

from isekai_gen.evaluate.api import evaluate  # noqa: E402
from isekai_gen.evaluate.config import EvaluateConfig  # noqa: E402
from isekai_gen.evaluate.images import ImageCache  # noqa: E402
from isekai_gen.evaluate.journal import read_journal  # noqa: E402
from isekai_gen.evaluate.prices import SHIPPED, find_price, load_price_table  # noqa: E402
from isekai_gen.evaluate.prompts import manyicl_requests  # noqa: E402
from isekai_gen.evaluate.providers.base import Limits  # noqa: E402
from isekai_gen.evaluate.providers.openai import OpenAIProvider, image_tokens  # noqa: E402
from isekai_gen.evaluate.tasks import load_manyicl  # noqa: E402


def make_split(root: Path, classes: int, demo_per_class: int, test_rows: int, size: int) -> dict[str, str]:
    """Smooth JPEGs (a few KB each, like real photos compress) with distinct bytes."""
    names = [f"class{c:02d}" for c in range(classes)]
    truth, number = {}, 0
    for side, per_class in (("demo", demo_per_class), ("test", -(-test_rows // classes))):
        lines = ["," + ",".join(names)]
        for k in range(per_class):
            for cls in names:
                name = f"{side}_{cls}_{k}.jpg"
                number += 1
                path = root / "images" / name
                path.parent.mkdir(parents=True, exist_ok=True)
                image = Image.linear_gradient("L").resize((size, size)).convert("RGB")
                image.putpixel((number % size, number // size % size), (number % 256, 7, 99))
                image.save(path, quality=85)
                truth[hashlib.sha256(path.read_bytes()).hexdigest()] = cls
                lines.append(name + "," + ",".join("1.0" if c == cls else "0.0" for c in names))
        (root / f"{side}.csv").write_text("\n".join(lines) + "\n")
    return truth


class CacheAccounting:
    """OpenAI's prompt-cache accounting over the requests the double receives (see the docstring)."""

    def __init__(self):
        self.seen: set[str] = set()      # hashes of every part-prefix seen
        self.sizes: dict[str, int] = {}  # data URL hash -> image tokens
        self.log: list[tuple[int, int, int]] = []   # (prompt, cached, prefix tokens of the demo block)

    def _tokens(self, part: dict) -> tuple[str, int]:
        if part["type"] == "text":
            return hashlib.sha256(part["text"].encode()).hexdigest(), math.ceil(len(part["text"]) / 4)
        url = part["image_url"]["url"]
        key = hashlib.sha256(url.encode()).hexdigest()
        if key not in self.sizes:
            with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
                self.sizes[key] = image_tokens(image.width, image.height, part["image_url"].get("detail", "auto"))
        return key, self.sizes[key]

    def __call__(self, body: dict) -> dict:
        parts = body["messages"][0]["content"]
        prefix, total, cached = hashlib.sha256(), 0, 0
        for part in parts:
            key, tokens = self._tokens(part)
            prefix.update(key.encode())
            total += tokens
            digest = prefix.hexdigest()
            if digest in self.seen:
                cached = total
            self.seen.add(digest)
        cached = cached // 128 * 128 if total >= 1024 and cached >= 1024 else 0
        self.log.append((total, cached, 0))
        return {"prompt_tokens": total, "completion_tokens": 20, "total_tokens": total + 20,
                "prompt_tokens_details": {"cached_tokens": cached}}


def caching(args, work: Path) -> None:
    root = work / "ucm"
    truth = make_split(root, classes=21, demo_per_class=50, test_rows=args.test_rows, size=256)
    table, source = load_price_table(SHIPPED)
    gpt4o = find_price(table, source, "openai", "gpt-4o")
    sonnet = find_price(table, source, "anthropic", "claude-sonnet-4")
    prices = work / "prices.yaml"   # the shipped gpt-4o entry, for the loopback endpoint
    prices.write_text(json.dumps({"date": table["date"], "batch_discount": table["batch_discount"],
                                  "models": {"openai": {"m": table["models"]["openai"]["gpt-4o"]}}}))
    print(f"caching: UCMerced-shaped grid, 21 classes x 50 shots = 1,050 demos of 256x256, {args.test_rows} queries, "
          "batch sizes 5 and 10")
    results = {}
    for order in ("per-request", "cache-friendly"):
        accounting = CacheAccounting()
        with OpenAIDouble(truth, usage_fn=accounting) as double:
            double.keep_bodies = False
            config = EvaluateConfig(truth=str(root), model="openai:m", endpoint=double.base_url, shots=(50,),
                                    batch_size=(5, 10), out=str(work / order), concurrency=2, bootstrap=0,
                                    demo_order=order, price_table=str(prices), preflight=False)
            started = time.perf_counter()
            summary = evaluate(config)
            elapsed = time.perf_counter() - started
        rows = [r for key_rows in read_journal(work / order / "journal.jsonl").values() for r in key_rows]
        paid = sum(r["cost_usd"] for r in rows)
        tokens_in = sum(r["input_tokens"] for r in rows)
        read = sum(r.get("cache_read_tokens", 0) for r in rows)
        tokens_out = sum(r["output_tokens"] for r in rows)
        uncached = gpt4o.cost(tokens_in, tokens_out)
        # Anthropic bills the same stream with explicit writes: each cell's first request writes its block
        firsts, anthropic = set(), 0.0
        for r in sorted(rows, key=lambda r: r["time"]):
            block = max(r.get("cache_read_tokens", 0), 0)
            if order == "cache-friendly" and r["cell"] not in firsts:
                firsts.add(r["cell"])
                later = [x.get("cache_read_tokens", 0) for x in rows if x["cell"] == r["cell"]]
                anthropic += sonnet.cost(r["input_tokens"], r["output_tokens"], cache_write=max(later))
            else:
                anthropic += sonnet.cost(r["input_tokens"], r["output_tokens"], cache_read=block)
        results[order] = (paid, uncached, anthropic, sonnet.cost(tokens_in, tokens_out))
        assert summary["unanswered"]["count"] == 0
        print(f"  {order:<15}: {len(rows)} requests, {tokens_in} input tokens ({read} read from the cache), "
              f"{elapsed:.1f} s")
        print(f"    gpt-4o           : ${paid:8.4f} paid (${uncached:8.4f} without caching); batch API "
              f"${gpt4o.cost(tokens_in, tokens_out) * table['batch_discount']:8.4f}")
        print(f"    claude-sonnet-4  : ${anthropic:8.4f} with cache_control (${sonnet.cost(tokens_in, tokens_out):8.4f} without)")
    base, ours = results["per-request"], results["cache-friendly"]
    print(f"  ratio, gpt-4o dollars, per-request order / cache-friendly : {base[0] / ours[0]:6.2f}x")
    print(f"  ratio, sonnet-4 dollars, per-request order / cache-friendly: {base[2] / ours[2]:6.2f}x")


def scale(args, work: Path) -> None:
    print(f"scale of one request: {args.scale_requests} requests of one cell (20 classes, 64x64 JPEGs)")
    for per_class in (5, 25, 100):
        root = work / f"scale{per_class}"
        make_split(root, classes=20, demo_per_class=per_class, test_rows=args.scale_requests, size=64)
        task = load_manyicl(root)
        order = list(range(len(task.test)))
        tracemalloc.start()
        cache = ImageCache(Limits(None, None, None, None))
        started = time.perf_counter()
        for example in [*task.demos(per_class), *task.test]:
            cache.get(example.image)             # read + decode + base64, once per image per run
        encoded = time.perf_counter() - started
        started = time.perf_counter()
        requests = manyicl_requests(task, per_class, 1, order, cell="c", run_seed=0, provider="openai", model="m",
                                    images=cache)
        built = time.perf_counter() - started
        body = json.dumps(OpenAIProvider("m", "http://127.0.0.1:9/v1").body(requests[0])).encode()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        demos = len(requests[0].images()) - 1
        print(f"  {demos:>5} demos: {len(cache)} images encoded once in {encoded:6.3f} s; built {len(requests)} "
              f"requests in {built:6.3f} s ({built / len(requests) * 1000:6.1f} ms/request), peak memory "
              f"{peak / 2**20:7.1f} MiB, one OpenAI body {len(body) / 2**20:6.2f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-rows", type=int, default=105, help="queries of the caching grid (UCMerced test: 420)")
    parser.add_argument("--scale-requests", type=int, default=10)
    parser.add_argument("--skip-caching", action="store_true")
    args = parser.parse_args()
    os.environ.pop("OPENAI_API_KEY", None)
    os.environ.pop("OPENAI_BASE_URL", None)
    with tempfile.TemporaryDirectory() as tmp:
        scale(args, Path(tmp))
        if not args.skip_caching:
            caching(args, Path(tmp))


if __name__ == "__main__":
    main()
