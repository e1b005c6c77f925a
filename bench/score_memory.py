"""Benchmark: wall time and peak memory of scoring a large predictions file (issue 25).

Writes, in a temporary folder, a ManyICL ``test.csv`` truth (``--items`` items, the 21 UCMerced
classes) and a JSON Lines predictions file of about ``--mb`` MB: a shot curve of as many runs
(``shots`` 1, 2, 3, ...) over those items as the size needs, each reply ~400 characters of free
text naming a class (70% the right one, 20% another, 5% two, 5% none) with a confidence and
distinct filler words. Then ``score()`` (default options: parse failures wrong, 1000 bootstrap
resamples) runs in a fresh child process, once with this tree's ``isekai_gen`` and once with
``--baseline-ref``'s (extracted with ``git archive``, first on the child's path), and prints each
one's wall time, CPU time (on a shared machine wall time also waits for a core) and peak RSS: the
child's ``VmHWM`` (its ``ru_maxrss`` would include this parent's RSS at the fork), polled every
0.1 s for a child killed past ``--timeout``. When both finish, their reports must be identical.

Target (issue 25): ours under 200 MB and under 60 s for 400 MB.

    .venv/bin/python bench/score_memory.py [--mb 400] [--items 50000] [--baseline-ref 4620d91] [--timeout 150]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("agricultural airplane baseballdiamond beach buildings chaparral denseresidential forest freeway "
           "golfcourse harbor intersection mediumresidential mobilehomepark overpass parkinglot river runway "
           "sparseresidential storagetanks tenniscourt").split()
FILLER = ("the image shows a region with texture pattern colour large small area near some visible structures "
          "lines green grey brown shapes bright dark roofs trees water sand roads cars fields plots clear "
          "blurry aerial view taken from above at noon likely mostly partly several many few").split()
CHILD = """import json, sys
import isekai_gen
from isekai_gen.scoring import score
print(isekai_gen.__file__, file=sys.stderr)
report = score(sys.argv[1], [sys.argv[2]])
with open(sys.argv[3], "w") as handle:
    json.dump(report, handle, sort_keys=True)
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0], file=sys.stderr)
"""


def write_inputs(folder: Path, megabytes: int, n_items: int, seed: int = 0) -> tuple[Path, Path, int]:
    """(truth, predictions, rows written)."""
    rng = np.random.default_rng(seed)
    ids = [f"img{i:06d}.jpeg" for i in range(n_items)]
    labels = rng.integers(0, len(CLASSES), n_items)
    truth = folder / "test.csv"
    with open(truth, "w") as handle:
        handle.write("," + ",".join(CLASSES) + "\n")
        for item, label in zip(ids, labels):
            handle.write(item + "," + ",".join("1.0" if c == label else "0.0" for c in range(len(CLASSES))) + "\n")
    predictions = folder / "predictions.jsonl"
    target, rows, shots = megabytes * 1_000_000, 0, 0
    with open(predictions, "w") as handle:
        while handle.tell() < target:
            shots += 1
            kind = rng.choice(4, n_items, p=[0.7, 0.2, 0.05, 0.05])
            other = (labels + 1 + rng.integers(0, len(CLASSES) - 1, n_items)) % len(CLASSES)
            filler = rng.integers(0, len(FILLER), (n_items, 60))
            confidence = rng.integers(0, 1000, n_items)
            lines = []
            for k in range(n_items):
                named = (CLASSES[labels[k]], CLASSES[other[k]], f"{CLASSES[labels[k]]} or {CLASSES[other[k]]}",
                         "unclear")[kind[k]]
                words = " ".join(map(FILLER.__getitem__, filler[k]))
                reply = f"Answer Choice 1: {named}\nConfidence Score: 0.{confidence[k]:03d}\nReasoning: {words}"
                lines.append(json.dumps({"id": ids[k], "prediction": reply, "model": "bench", "shots": shots,
                                         "batch_size": 1}) + "\n")
            handle.write("".join(lines))
            rows += n_items
            if handle.tell() >= target:
                break
    return truth, predictions, rows


def baseline_tree(ref: str, folder: Path) -> Path:
    """``ref``'s isekai_gen package (and the schemas it validates with) extracted into ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "isekai_gen", "schemas", "configs", "splits"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def measure(source: Path | None, truth: Path, predictions: Path, report: Path, timeout: float) -> dict:
    """Wall seconds, peak RSS (MB) and outcome of ``score()`` in a child; ``source`` goes first on its path."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source) + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    # cwd: ``python -c`` puts the working folder first on the path, ahead of PYTHONPATH.
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(truth), str(predictions), str(report)], env=env,
                             cwd=truth.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed, polled_kb = False, 0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        polled_kb = max(polled_kb, _high_water_kb(child.pid))
        if time.perf_counter() - start > timeout:
            child.kill()
            killed = True
            pid, status, usage = os.wait4(child.pid, 0)
            break
        time.sleep(0.1)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    said = child.stderr.read().decode(errors="replace").strip().splitlines()
    outcome = "killed" if killed else ("ok" if child.returncode == 0 else f"exit {child.returncode}: {said[-1:]}")
    peak_kb = int(said[-1]) if outcome == "ok" else polled_kb
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mb": peak_kb / 1024,
            "outcome": outcome, "module": said[0] if said else ""}


def _high_water_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return int(handle.read().split("VmHWM:")[1].split()[0])
    except (OSError, IndexError):
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=400)
    parser.add_argument("--items", type=int, default=50_000)
    # 4620d91: main before the scorer streamed its inputs (issue 25).
    parser.add_argument("--baseline-ref", default="4620d91")
    parser.add_argument("--timeout", type=float, default=150.0, help="kill a child after this many seconds")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        truth, predictions, rows = write_inputs(folder, args.mb, args.items)
        print(f"inputs: {predictions.stat().st_size / 1e6:.0f} MB predictions ({rows} rows, {rows // args.items} runs "
              f"of {args.items} items), {truth.stat().st_size / 1e6:.1f} MB truth; written in "
              f"{time.perf_counter() - start:.0f} s")
        results = {"ours": measure(None, truth, predictions, folder / "ours.json", args.timeout)}
        if not args.skip_baseline:
            (folder / "baseline").mkdir()
            source = baseline_tree(args.baseline_ref, folder / "baseline")
            results[f"baseline ({args.baseline_ref})"] = measure(source, truth, predictions, folder / "base.json",
                                                                 args.timeout)
        print(f"{'code':<18} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}  outcome")
        for name, result in results.items():
            print(f"{name:<18} {result['wall_s']:>8.1f} {result['cpu_s']:>8.1f} {result['peak_mb']:>12.1f}  "
                  f"{result['outcome']}  ({result['module']})")
        if all(result["outcome"] == "ok" for result in results.values()) and len(results) == 2:
            same = (folder / "ours.json").read_bytes() == (folder / "base.json").read_bytes()
            print("reports identical" if same else "REPORTS DIFFER")
            if not same:
                sys.exit(1)


if __name__ == "__main__":
    main()
