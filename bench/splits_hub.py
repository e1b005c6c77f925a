"""Benchmark: drawing a split from a full-size Hub copy reads the metadata columns only.

Writes a synthetic ``wltjr1007/Camelyon17-WILDS`` snapshot with its real row count (455,954:
train 302,436 / validation 68,464 / test 85,054) in the copy's schema, with 2 KB of image bytes
per row (~0.9 GB of parquet, 100 rows per row group as ``datasets`` writes image data), then
measures in fresh processes (wall time and peak resident memory; the snapshot is written by
another child, as a child starts with its parent's peak):

- baseline: ``pyarrow.parquet.read_table`` of the snapshot (what ``datasets.load_dataset`` +
  a pandas frame amounts to: every column, image bytes included);
- ours: ``isekai_gen.manyicl.plan_split`` on the snapshot (the Table 1 recipe: 2,100 of 455,954
  rows drawn from the metadata columns; no image byte read).

Run: ``.venv/bin/python bench/splits_hub.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SPLITS = {"train": (302_436, (0, 3, 4)), "validation": (68_464, (1,)), "test": (85_054, (2,))}
FEATURES = {"image": {"_type": "Image"}, "label": {"names": ["normal", "tumor"], "_type": "ClassLabel"},
            "center": {"dtype": "int64", "_type": "Value"}, "image_id": {"dtype": "string", "_type": "Value"},
            "patient": {"dtype": "string", "_type": "Value"}, "node": {"dtype": "int64", "_type": "Value"},
            "x_coord": {"dtype": "int64", "_type": "Value"}, "y_coord": {"dtype": "int64", "_type": "Value"},
            "slide": {"dtype": "int64", "_type": "Value"}}
PEAK = "import resource; print('peak_mb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"


def write_snapshot(root: Path) -> None:
    rng = np.random.default_rng(0)
    (root / "data").mkdir(parents=True)
    metadata = {b"huggingface": json.dumps({"info": {"features": FEATURES}}).encode()}
    for split, (rows, centers) in SPLITS.items():
        center = rng.choice(centers, size=rows)
        patient = center * 100 + rng.integers(0, 10, size=rows)
        x, y = np.arange(rows), rng.integers(0, 10_000, size=rows)
        image_id = [f"patch_patient_{p:03d}_node_0_x_{a}_y_{b}" for p, a, b in zip(patient, x, y)]
        blobs = rng.bytes(2048 * rows)  # incompressible, like PNG patches
        data = pa.Array.from_buffers(pa.binary(), rows, [None, pa.py_buffer(np.arange(rows + 1, dtype=np.int32) * 2048),
                                                          pa.py_buffer(blobs)])
        image = pa.StructArray.from_arrays([data, pa.nulls(rows, pa.string())], names=["bytes", "path"])
        table = pa.table({"image": image, "label": rng.integers(0, 2, size=rows), "center": center,
                          "image_id": image_id, "patient": [f"{p:03d}" for p in patient], "node": np.zeros(rows, int),
                          "x_coord": x, "y_coord": y, "slide": patient}).replace_schema_metadata(metadata)
        pq.write_table(table, root / "data" / f"{split}-00000-of-00001.parquet", row_group_size=100)


def run(code: str) -> tuple[float, float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", f"{code}\n{PEAK}"], capture_output=True, text=True, check=True)
    lines = done.stdout.strip().splitlines()
    return time.perf_counter() - start, float(lines[-1].split()[1]), "\n".join(lines[:-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "Camelyon17-WILDS"
        # Written by a child: a child inherits its parent's peak RSS, so the parent stays small.
        subprocess.run([sys.executable, __file__, "--write", str(root)], check=True)
        size = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 1e9
        base_s, base_mb, _ = run(f"import pyarrow.parquet as pq; t = pq.read_table({str(root / 'data')!r}); "
                                 "t.to_pandas(); print(t.num_rows)")
        ours_s, ours_mb, said = run(
            "from isekai_gen.manyicl import plan_split\nfrom isekai_gen.splits import get_adapter\n"
            f"recipe, rows = plan_split(get_adapter('camelyon17'), {str(root)!r}, {{'seed': 0}})\n"
            "print(len(rows), 'rows drawn')")
    print(f"snapshot: 455,954 rows, {size:.2f} GB of parquet")
    print(f"baseline read_table + to_pandas:  {base_s:7.1f} s  {base_mb:8.1f} MB peak")
    print(f"ours plan_split (Table 1 recipe): {ours_s:7.1f} s  {ours_mb:8.1f} MB peak  "
          f"({base_mb / ours_mb:.1f}x less memory, {base_s / ours_s:.1f}x faster); {said}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        write_snapshot(Path(sys.argv[2]))
    else:
        main()
