"""Benchmark: peak memory of the split content checks on a 2 GB file named like an image (issue 25).

Writes a sparse 2 GB file ``River/River_9.jpg`` into a tiny EuroSAT class-folder root (10 real
8x8 JPEGs per class besides it) and measures the peak resident memory (``ru_maxrss`` of a fresh
child process) of:

- baseline: ``path.read_bytes()`` of that file (what ``manyicl/content.py`` did before);
- ours: ``content.inspect_image`` on it (refused by its size, nothing read);
- ours, end to end: ``isekai-gen splits build`` drawing every River image (so the big file is
  drawn): a one-line refusal, and its peak memory.

Target: < 200 MB for ours. Run: ``.venv/bin/python bench/splits_memory.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
           "Residential", "River", "SeaLake")
PEAK = "import resource, sys; print('peak_mb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)"


def peak_mb(code: str) -> tuple[float, str]:
    """(peak RSS in MB, last stderr line before it) of ``code`` run in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", f"import sys\n{code}\n{PEAK}"], capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    peak = float(lines[-1].split()[1])
    return peak, (lines[-2] if len(lines) > 1 else "")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "eurosat"
        for name in CLASSES:
            for n in range(10):
                path = root / name / f"{name}_{n}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), (n * 20, 10, 10)).save(path, format="JPEG")
        big = root / "River" / "River_9.jpg"
        with open(big, "wb") as handle:
            handle.truncate(2 * 1024 ** 3)
        empty, _ = peak_mb("import isekai_gen.manyicl.content")
        baseline, _ = peak_mb(f"from pathlib import Path; Path({str(big)!r}).read_bytes()")
        ours, _ = peak_mb("from pathlib import Path\nfrom isekai_gen.errors import UserError\n"
                          "from isekai_gen.manyicl.content import inspect_image\n"
                          f"try:\n    inspect_image(Path({str(big)!r}), decode=False, phash=True)\n"
                          "except UserError as exc:\n    print(exc, file=sys.stderr)")
        build = ("import sys\nfrom isekai_gen.cli import main\n"
                 f"sys.argv = ['isekai-gen', 'splits', 'build', '--dataset', 'eurosat', '--root', {str(root)!r}, "
                 f"'--out', {str(Path(tmp) / 'out')!r}, '--demo-per-class', '7', '--test-per-class', '3']\n"
                 "try:\n    main()\nexcept SystemExit:\n    pass")
        end_to_end, said = peak_mb(build)
    print(f"interpreter + isekai_gen.manyicl.content imported: {empty:8.1f} MB")
    print(f"baseline read_bytes of the 2 GB file:               {baseline:8.1f} MB")
    print(f"ours inspect_image:                                 {ours:8.1f} MB  ({baseline / ours:.1f}x less)")
    print(f"ours splits build (big file drawn):                 {end_to_end:8.1f} MB  ({baseline / end_to_end:.1f}x less)")
    print(f"  its message: {said}")


if __name__ == "__main__":
    main()
