"""Benchmark: reading and validating a 100,000-row ``manifest.jsonl`` (every stage starts with it).

Ours: ``read_manifest`` (JSON Lines parse, per-row JSON Schema check by jsonschema-rs, duplicate
job ids). Baseline: the same parse with every row checked by the reference ``jsonschema``
validator alone (what ``read_manifest`` did before), run side by side in the same process on
the same file. Both must accept the file; the baseline's validation is timed on a sample of rows
and scaled (it is ~20-50x slower), which the output says. The parse alone is printed too.

Then the scaling table (issue 15): streaming ``iter_manifest``, ``read_manifest`` and the reader
before it (json + list + per-row check), each in its own process, at three sizes: us/row, peak
RSS and the exponent of time ~ n^k. A million-row release: ``--sizes 250000,500000,1000000``.

    .venv/bin/python bench/manifest.py [--rows 100000] [--baseline-rows 10000] [--sizes 50000,150000,450000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from isekai_gen.catalog import load_catalog  # noqa: E402
from isekai_gen.fileio import read_jsonl, write_jsonl  # noqa: E402
from isekai_gen.manifest import iter_manifest, read_manifest  # noqa: E402
from isekai_gen.schema import first_error, validator  # noqa: E402

import numpy as np  # noqa: E402


def manifest_rows(count: int) -> list[dict]:
    """Filtered rows in the documented shape, spread over the shipped catalog's 40 concepts."""
    concepts = load_catalog("isekai").concepts
    rows = []
    for number in range(count):
        concept = concepts[number % len(concepts)]
        index = number // len(concepts)
        job_id = f"{concept.id}-{index:05d}"
        rows.append({
            "job_id": job_id, "concept_id": concept.id, "group_id": concept.group, "world": concept.world,
            "label": concept.label, "index": index, "round": 0, "prompt_variant": index % len(concept.prompts),
            "prompt": concept.prompts[index % len(concept.prompts)], "negative_prompt": concept.negative_prompt,
            "seed": number, "attempt": 0, "rejected_attempts": [], "status": "ok",
            "image": f"images/{concept.id}/{job_id}.png", "sha256": f"{number:064x}", "width": 512, "height": 512,
            "model_id": "stabilityai/sdxl-turbo", "model_revision": None, "pipeline_class": "StableDiffusionXLPipeline",
            "dtype": "float16", "device_type": "cuda", "steps": 4, "guidance_scale": 0.0, "smoke_test": False,
            "scores": {"model": "ViT-L-14", "pretrained": "openai", "alignment": 0.31, "partner_cosine": 0.22,
                       "margin": 0.09, "zeroshot_prob": 0.7, "top1": True, "phash": f"{number:016x}"},
            "kept": number % 5 != 0, "reject_reason": None if number % 5 else "low_alignment", "duplicate_of": None,
        })
    return rows


def _measure(path: Path, mode: str) -> None:
    """Child process: read the manifest one way, print seconds and peak RSS (MiB) as JSON."""
    out = path.parent
    read_manifest(out) if mode == "list" else None   # warm: page cache, compiled validators
    start = time.perf_counter()
    if mode == "stream":
        count = sum(1 for _ in iter_manifest(out))
    elif mode == "list":
        count = len(read_manifest(out))
    else:   # "before": json parse of every line into a list, then per-row validation (d61d294)
        rows = read_jsonl(path)
        assert all(first_error("manifest_row", row) is None for row in rows)
        count = len(rows)
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: the latter survives exec and would report the parent's peak.
    status = Path("/proc/self/status").read_text()
    peak_mib = int(status.split("VmHWM:")[1].split()[0]) / 1024
    print(json.dumps({"rows": count, "seconds": seconds, "peak_mib": peak_mib}))


def _child(path: Path, mode: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--measure", mode, "--file", str(path)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def scaling(sizes: list[int]) -> None:
    """Each reader in a fresh process (so peaks don't mix) at three sizes; exponent of time ~ n^k."""
    results = {mode: [] for mode in ("stream", "list", "before")}
    with tempfile.TemporaryDirectory(prefix="isekai-bench-manifest-") as tmp:
        for size in sizes:
            folder = Path(tmp) / str(size)
            write_jsonl(folder / "manifest.jsonl", manifest_rows(size))
            for mode in results:
                results[mode].append(_child(folder / "manifest.jsonl", mode))
    print(f"\nscaling over {', '.join(map(str, sizes))} rows (us/row, peak RSS MiB; k: time ~ n^k)")
    for mode, label in (("stream", "ours: iter_manifest (streaming, orjson)"), ("list", "ours: read_manifest (list)"),
                        ("before", "before: json + list + per-row check")):
        cells = "  ".join(f"{r['seconds'] / r['rows'] * 1e6:5.1f} us {r['peak_mib']:7.0f} MiB" for r in results[mode])
        k = np.polyfit(np.log(sizes), np.log([r["seconds"] for r in results[mode]]), 1)[0]
        print(f"{label:42s} {cells}  k={k:.2f}")
    for mode in ("stream", "list"):
        ratio = results["before"][-1]["seconds"] / results[mode][-1]["seconds"]
        print(f"{mode} vs before at {sizes[-1]} rows: {ratio:.2f}x faster, "
              f"peak {results[mode][-1]['peak_mib']:.0f} vs {results['before'][-1]['peak_mib']:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=10_000, help="rows the baseline is timed on")
    parser.add_argument("--sizes", default="50000,150000,450000", help="the three sizes of the scaling table")
    parser.add_argument("--measure", choices=("stream", "list", "before"), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _measure(args.file, args.measure)
        return
    with tempfile.TemporaryDirectory(prefix="isekai-bench-manifest-") as tmp:
        out = Path(tmp)
        write_jsonl(out / "manifest.jsonl", manifest_rows(args.rows))
        read_manifest(out)  # warm: page cache, compiled validators

        start = time.perf_counter()
        rows = read_manifest(out)
        ours = time.perf_counter() - start

        start = time.perf_counter()
        parsed = read_jsonl(out / "manifest.jsonl")
        parse = time.perf_counter() - start

        reference, sample = validator("manifest_row"), parsed[:args.baseline_rows]
        start = time.perf_counter()
        assert all(reference.is_valid(row) for row in sample)
        baseline = parse + (time.perf_counter() - start) * len(parsed) / len(sample)
    print(f"{len(rows)} manifest rows")
    print(f"parse only (read_jsonl)                         {parse:8.3f} s  {parse / len(rows) * 1e6:7.1f} us/row")
    print(f"ours: read_manifest (jsonschema-rs)             {ours:8.3f} s  {ours / len(rows) * 1e6:7.1f} us/row")
    print(f"baseline: parse + jsonschema (scaled from {len(sample)}) {baseline:8.3f} s  "
          f"{baseline / len(rows) * 1e6:7.1f} us/row")
    print(f"speed-up: {baseline / ours:.1f}x")
    scaling([int(s) for s in args.sizes.split(",")])


if __name__ == "__main__":
    main()
