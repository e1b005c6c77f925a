"""Benchmark `isekai-gen evaluate`: request throughput, and prompt building with cached images.

1. Throughput against the OpenAI-compatible test double (`tests/evaluate_double.py`, loopback,
   200 ms simulated latency per reply): `evaluate(..., concurrency=16)` (asyncio + AsyncOpenAI,
   journal fsynced per reply) vs a sequential loop like ManyICL's `prompt.py` + `LMM.py`: the sync
   `OpenAI` client, one call after another, each image file re-read and base64-encoded per call.
   Target: >= 10x requests per second.
2. Prompt building for a 2,000-shot grid (20 classes x 100 demos, 64x64 JPEGs like EuroSAT, or
   `--image-size 256` like UCMerced):
   ours encodes each image once per run (`ImageCache`) and reuses it in every request; the
   baseline re-reads and base64-encodes every image for every request (`generate_image_url`).

    .venv/bin/python bench/evaluate.py [--requests 64] [--latency 0.2] [--grid-requests 40] [--image-size 64]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from evaluate_double import OpenAIDouble  # noqa: E402

from isekai_gen.evaluate.api import evaluate  # noqa: E402
from isekai_gen.evaluate.config import EvaluateConfig  # noqa: E402
from isekai_gen.evaluate.images import ImageCache  # noqa: E402
from isekai_gen.evaluate.prompts import IMG, manyicl_prompt, manyicl_requests  # noqa: E402
from isekai_gen.evaluate.providers.base import Limits  # noqa: E402
from isekai_gen.evaluate.tasks import load_manyicl  # noqa: E402


def make_split(root: Path, classes: int, demo_per_class: int, test_rows: int, size: int) -> dict[str, str]:
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
                pixels = bytes((number * 31 + i * 7) % 256 for i in range(size * size * 3))
                Image.frombytes("RGB", (size, size), pixels).save(path, quality=90)
                truth[hashlib.sha256(path.read_bytes()).hexdigest()] = cls
                lines.append(name + "," + ",".join("1.0" if c == cls else "0.0" for c in names))
        (root / f"{side}.csv").write_text("\n".join(lines) + "\n")
    return truth


def original_messages(prompt: str, image_paths: list[Path]) -> list[dict]:
    """LMM.py `GPT4VAPI.__call__` (real_call=False part): every image read and encoded per call."""
    def image_url(path):
        with open(path, "rb") as image_file:
            data = base64.b64encode(image_file.read()).decode("utf-8")
        return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64, {data}", "detail": "auto"}}

    pieces = prompt.split(IMG)
    messages = [{"type": "text", "text": pieces[0]}] if pieces[0] != "" else []
    for idx in range(1, len(pieces)):
        messages.append(image_url(image_paths[idx - 1]))
        if pieces[idx].strip() != "":
            messages.append({"type": "text", "text": pieces[idx]})
    return messages


def sequential_original(task, base_url: str, shots: int) -> float:
    import openai

    client = openai.OpenAI(api_key="EMPTY", base_url=base_url, max_retries=0)
    demos = task.demos(shots)
    start = time.perf_counter()
    for query in task.test:
        prompt = manyicl_prompt(task, demos, [query])
        paths = [e.image for e in [*demos, query]]
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": original_messages(prompt, paths)}],
                                       max_tokens=60, temperature=0)
    return time.perf_counter() - start


def _serve(truth: dict, latency: float, queue) -> None:
    double = OpenAIDouble(truth, latency_s=latency)
    queue.put(double.start())
    time.sleep(3600)   # killed by the parent


def throughput(args, work: Path) -> None:
    """The double runs in its own process, as a real server would: its JSON and base64 work must
    not compete with the client for one interpreter lock."""
    root = work / "split"
    truth = make_split(root, classes=4, demo_per_class=2, test_rows=args.requests, size=64)
    task = load_manyicl(root)
    fork = multiprocessing.get_context("fork")
    queue = fork.Queue()
    server = fork.Process(target=_serve, args=(truth, args.latency, queue), daemon=True)
    server.start()
    try:
        base_url = queue.get(timeout=30)
        base = sequential_original(task, base_url, shots=1)
        settings = EvaluateConfig(truth=str(root), model="openai:m", endpoint=base_url, shots=(1,), batch_size=(1,),
                                  out=str(work / "run"), concurrency=16, bootstrap=0)
        import isekai_gen.scoring.writers  # noqa: F401  (a one-off import, not per-run work)

        start = time.perf_counter()
        summary = evaluate(settings)
        ours = time.perf_counter() - start
        sending = summary["outcome"]["elapsed_s"]
    finally:
        server.kill()
    n = len(task.test)
    assert summary["outcome"]["answered"] == n
    print(f"throughput, {n} requests, {args.latency * 1000:.0f} ms latency per reply:")
    print(f"  sequential loop like ManyICL's : {n / base:8.2f} req/s  ({base:.2f} s)")
    print(f"  evaluate --concurrency 16      : {n / sending:8.2f} req/s  ({sending:.2f} s sending, journal fsynced)")
    print(f"    end to end                   : {n / ours:8.2f} req/s  ({ours:.2f} s, + planning, outputs, scoring)")
    print(f"  ratio, sending                 : {base / sending:8.2f}x  (target >= 10x)")
    print(f"  ratio, end to end              : {base / ours:8.2f}x")


def prompt_building(args, work: Path) -> None:
    root = work / "grid"
    make_split(root, classes=20, demo_per_class=100, test_rows=args.grid_requests, size=args.image_size)
    task = load_manyicl(root)
    order = list(range(len(task.test)))
    cache = ImageCache(Limits(None, None, None, None))
    start = time.perf_counter()
    for example in [*task.demos(100), *task.test]:
        cache.get(example.image)             # read + decode + base64, once per image per run
    encode_once = time.perf_counter() - start
    start = time.perf_counter()
    requests = manyicl_requests(task, 100, 1, order, cell="c", run_seed=0, provider="openai", model="m", images=cache)
    ours = time.perf_counter() - start
    demos = task.demos(100)
    start = time.perf_counter()
    for i in order:
        query = task.test[i]
        original_messages(manyicl_prompt(task, demos, [query]), [e.image for e in [*demos, query]])
    base = time.perf_counter() - start
    n, images = len(requests), len(requests[0].images())
    print(f"prompt building, {n} requests x {images} images of {args.image_size}x{args.image_size} (2,000-shot grid):")
    print(f"  re-encoding per request (original) : {base:7.3f} s  ({base / n * 1000:.1f} ms/request)")
    print(f"  cached (ours): encode once         : {encode_once:7.3f} s  ({len(cache)} images, decoded and checked)")
    print(f"  cached (ours): build all requests  : {ours:7.3f} s  ({ours / n * 1000:.1f} ms/request, keys included)")
    print(f"  ratio per request                  : {base / ours:7.2f}x")
    print(f"  ratio for these {n} requests        : {base / (ours + encode_once):7.2f}x (one-off encoding included; "
          "it is paid once however many cells reuse the images)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--grid-requests", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=64, help="side of the grid's JPEGs (EuroSAT 64, UCMerced 256)")
    args = parser.parse_args()
    os.environ.pop("OPENAI_API_KEY", None)
    with tempfile.TemporaryDirectory() as tmp:
        throughput(args, Path(tmp))
        prompt_building(args, Path(tmp))


if __name__ == "__main__":
    main()
