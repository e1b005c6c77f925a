"""Benchmark: what the content checks of a split cost on a full-size pool (Camelyon17, 455,954 rows).

Writes the synthetic full-size Camelyon17 ``metadata.csv`` of ``bench/splits.py`` and real 96x96
PNG patches for exactly the items the Table 1 recipe draws (2,100 of 455,954), then times, in
this process:

- baseline: ``isekai_gen.manyicl.plan_split`` (metadata only, no file read);
- ours: ``build_split(..., materialize="none")`` with every content check on (sha256 of the
  bytes, format sniffing, full decode, pHash near-duplicate count) and the split files written.

If the checks read more than the drawn items (a full-pool scan), the patch files that do not exist
would fail the build; the printed ``inspected`` count must equal the drawn rows.
Run: ``.venv/bin/python bench/splits_content.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from isekai_gen.manyicl import build_split, plan_split  # noqa: E402
from isekai_gen.splits import get_adapter  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_splits", Path(__file__).with_name("splits.py"))
bench_splits = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_splits)


def timed(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    adapter = get_adapter("camelyon17")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        bench_splits.write_camelyon(root, rng)
        _, rows = plan_split(adapter, root, {"seed": 0})
        for row in rows:
            patch = root / row["source_path"]
            patch.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(patch)
        baseline, _ = timed(lambda: plan_split(adapter, root, {"seed": 0}), args.repeats)
        ours, summary = timed(lambda: build_split(adapter, root, Path(tmp) / "out", {"seed": 0, "materialize": "none"}),
                              args.repeats)
    content = summary["content"]
    print(f"camelyon17: {bench_splits.CAMELYON_ROWS} metadata rows, {len(rows)} drawn")
    print(f"  baseline plan_split (metadata only)       {baseline * 1000:9.1f} ms")
    print(f"  ours build_split with content checks      {ours * 1000:9.1f} ms  ({ours / baseline:.2f}x)")
    print(f"  inspected images {content['inspected_images']} (= drawn rows: {content['inspected_images'] == len(rows)}), "
          f"near-duplicate pairs {content['near_duplicate_pairs']}")


if __name__ == "__main__":
    main()
