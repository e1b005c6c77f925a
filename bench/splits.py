"""Benchmark: reading the ManyICL datasets' native metadata, at three sizes, against the old code.

Part 1 times each adapter's ``read`` (native files -> candidate pool, every cell validated) at
three sizes, ours against the adapters as of ``--baseline-rev`` (the per-row Python and the
single-regex CheXpert parser before issue 15; loaded from git, so the baseline is the real old
code, not a copy), and prints both scaling exponents (slope of log time over log size) next to
the old/ours ratio. Synthetic inputs in the native formats:

- CheXpert ``train.csv`` up to 224,316 rows (the released size: ``-1.0`` and blank cells,
  lateral views) plus ``valid.csv`` (234 rows); issue 15's target is under 0.3 s at full size;
- Camelyon17 ``metadata.csv`` up to 455,954 rows; HAM10000 metadata up to 40,060 rows (empty
  image files); Oxford Pets annotation lists and DTD label lists up to 29,440 / 22,560 lines;
  EuroSAT class folders up to 27,000 (empty) files.

Part 2 times ``isekai_gen.manyicl.plan_split`` end to end (read, group-aware stratified sampling,
nested demo order, split rows) at full size against a plain pandas ``read_csv`` +
``groupby().sample()`` that draws without validation or group-awareness.

No image is decoded. Times are CPU seconds of the process by default (``--clock wall`` for
elapsed time). Run: ``.venv/bin/python bench/splits.py [--repeats N] [--baseline-rev REV]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isekai_gen.manyicl import plan_split  # noqa: E402
from isekai_gen.splits import get_adapter  # noqa: E402
from isekai_gen.splits.chexpert import COMPETITION_FINDINGS, OBSERVATIONS  # noqa: E402
from isekai_gen.splits.dtd import CLASSES as DTD_CLASSES  # noqa: E402
from isekai_gen.splits.eurosat import CLASSES as EUROSAT_CLASSES  # noqa: E402
from isekai_gen.splits.ham10000 import CLASSES as HAM_CLASSES  # noqa: E402
from isekai_gen.splits.oxford_pets import BREEDS  # noqa: E402

BASELINE_REV = "237a0d5ee6930d2cd92aede6f3cf40298c4e84be"  # adapters before issue 10/15 (per-row parsing)
CHEXPERT_TRAIN_ROWS = 224_316
CHEXPERT_VALID_ROWS = 234
CAMELYON_ROWS = 455_954


# --- native-format writers ---------------------------------------------------------------------

def write_chexpert(root: Path, rng: np.random.Generator, train_rows: int = CHEXPERT_TRAIN_ROWS) -> None:
    release = root / "CheXpert-v1.0-small"
    (release / "train").mkdir(parents=True)
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(OBSERVATIONS)
    for split, rows, cells in (("train", train_rows, ["1.0", "0.0", "-1.0", ""]), ("valid", CHEXPERT_VALID_ROWS, ["1.0", "0.0"])):
        offset = 0 if split == "train" else 90_000  # patient ids do not overlap
        patient = offset + np.arange(rows) // 3 + 1
        # Per patient: study1 frontal + lateral, study2 frontal.
        study = np.where(np.arange(rows) % 3 == 2, 2, 1)
        frontal = np.arange(rows) % 3 != 1
        view = np.where(frontal, "view1_frontal.jpg", "view2_lateral.jpg")
        paths = [f"CheXpert-v1.0-small/{split}/patient{p:05d}/study{s}/{v}" for p, s, v in zip(patient, study, view)]
        frame = pd.DataFrame({"Path": paths, "Sex": "Female", "Age": "68",
                              "Frontal/Lateral": np.where(frontal, "Frontal", "Lateral"), "AP/PA": np.where(frontal, "AP", "")})
        if split == "valid":  # like the real valid.csv: 202 of 234 frontal, positives rarer
            frontal = np.arange(rows) % 7 != 6
            frame["Frontal/Lateral"] = np.where(frontal, "Frontal", "Lateral")
            frame["Path"] = [f"CheXpert-v1.0-small/valid/patient{offset + i + 1:05d}/study1/{'view1_frontal' if f else 'view2_lateral'}.jpg"
                             for i, f in enumerate(frontal)]
        weights = [0.3, 0.3, 0.1, 0.3] if split == "train" else [0.25, 0.75]
        for name in OBSERVATIONS:
            frame[name] = rng.choice(cells, size=rows, p=weights)
        with open(release / f"{split}.csv", "w", encoding="utf-8") as handle:
            handle.write(header + "\n")
            frame.to_csv(handle, header=False, index=False)


def write_camelyon(root: Path, rng: np.random.Generator, rows: int = CAMELYON_ROWS) -> None:
    base = root / "camelyon17_v1.0"
    (base / "patches").mkdir(parents=True)
    index = np.arange(rows)
    patient_number = index * 50 // rows
    frame = pd.DataFrame({
        "patient": [f"{p:03d}" for p in patient_number],
        "node": index % 5,
        "x_coord": 3328 + 32 * (index % 997),
        "y_coord": 21792 + 32 * (index % 1009),
        "tumor": rng.integers(0, 2, rows),
        "slide": patient_number * 5 + index % 5,
        "center": patient_number // 10,
        "split": 0,
    })
    frame.to_csv(base / "metadata.csv")  # the unnamed index column, as WILDS ships it


def write_ham10000(root: Path, rng: np.random.Generator, rows: int) -> None:
    parts = [root / "HAM10000_images_part_1", root / "HAM10000_images_part_2"]
    for part in parts:
        part.mkdir(parents=True)
    ids = [f"ISIC_{24306 + i:07d}" for i in range(rows)]
    for i, image_id in enumerate(ids):
        (parts[i % 2] / f"{image_id}.jpg").touch()
    frame = pd.DataFrame({"lesion_id": [f"HAM_{i // 2:07d}" for i in range(rows)], "image_id": ids,
                          "dx": rng.choice(HAM_CLASSES, rows), "dx_type": "histo", "age": "45.0", "sex": "male",
                          "localization": "back"})
    frame.to_csv(root / "HAM10000_metadata.csv", index=False)


def write_oxford_pets(root: Path, rng: np.random.Generator, lines: int) -> None:
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    breeds = rng.integers(0, len(BREEDS), lines)
    rows = [f"{BREEDS[b]}_{i + 1} {b + 1} {1 if BREEDS[b][0].isupper() else 2} 1" for i, b in enumerate(breeds)]
    half = lines // 2
    for split, chunk in (("trainval", rows[:half]), ("test", rows[half:])):
        (root / "annotations" / f"{split}.txt").write_text("\n".join(chunk) + "\n")


def write_dtd(root: Path, rng: np.random.Generator, lines: int) -> None:
    labels = root / "dtd" / "labels"
    labels.mkdir(parents=True)
    (root / "dtd" / "images").mkdir()
    classes = rng.integers(0, len(DTD_CLASSES), lines)
    entries = [f"{DTD_CLASSES[c]}/{DTD_CLASSES[c]}_{i:04d}.jpg" for i, c in enumerate(classes)]
    third = lines // 3
    for k, split in enumerate(("train", "val", "test")):
        (labels / f"{split}1.txt").write_text("\n".join(entries[k * third:(k + 1) * third]) + "\n")


def write_eurosat(root: Path, rng: np.random.Generator, files: int) -> None:
    for cls in EUROSAT_CLASSES:
        folder = root / "2750" / cls
        folder.mkdir(parents=True)
        for n in range(1, files // len(EUROSAT_CLASSES) + 1):
            (folder / f"{cls}_{n}.jpg").touch()


# (dataset, writer, three sizes, options, what the size counts)
READ_CASES = [
    ("chexpert", write_chexpert, (CHEXPERT_TRAIN_ROWS // 4, CHEXPERT_TRAIN_ROWS // 2, CHEXPERT_TRAIN_ROWS), {}, "train.csv rows"),
    ("camelyon17", write_camelyon, (CAMELYON_ROWS // 4, CAMELYON_ROWS // 2, CAMELYON_ROWS), {}, "metadata rows"),
    ("ham10000", write_ham10000, (10_015, 20_030, 40_060), {"test_source": "ham10000"}, "metadata rows"),
    ("oxford_pets", write_oxford_pets, (7_360, 14_720, 29_440), {}, "annotation lines"),
    ("dtd", write_dtd, (5_640, 11_280, 22_560), {}, "label lines"),
    ("eurosat", write_eurosat, (6_750, 13_500, 27_000), {}, "image files"),
]


# --- the baseline: the adapters as of BASELINE_REV ----------------------------------------------

def old_adapter(name: str, rev: str):
    """The ``ADAPTER`` of ``splits/<name>.py`` at ``rev``, with that revision's ``readers`` module."""
    readers = _old_module("isekai_gen/manyicl/readers.py", rev, "_bench_old_readers",
                          {"from ..errors import": "from isekai_gen.errors import"})
    sys.modules["_bench_old_readers"] = readers
    module = _old_module(f"splits/{name}.py", rev, f"_bench_old_{name}",
                         {"from isekai_gen.manyicl.readers import": "from _bench_old_readers import"})
    return module.ADAPTER


def check_baseline(rev: str) -> None:
    """Stop in one line, before any work, when the baseline cannot be read from git: no ``git``
    program, no git checkout (a tarball of the source), or a clone without that commit (shallow)."""
    try:
        found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=REPO,
                               capture_output=True, text=True)
    except OSError as exc:
        sys.exit(f"bench/splits.py: cannot run git ({exc.strerror}): the baseline adapters are read from git "
                 f"at {rev[:10]}; install git and run it from a git clone of the project")
    if found.returncode != 0:
        reason = (found.stderr.strip().splitlines() or ["no such commit in this clone"])[0]
        sys.exit(f"bench/splits.py: baseline commit {rev[:10]} not found in {REPO} ({reason}); the baseline "
                 "adapters are read from git: run it from a full clone (git fetch --unshallow) or pass --baseline-rev")


def _old_module(path: str, rev: str, name: str, rewrites: dict) -> types.ModuleType:
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, capture_output=True, text=True)
    if shown.returncode != 0:  # the commit exists (check_baseline) but lacks the file
        reason = (shown.stderr.strip().splitlines() or ["git show failed"])[0]
        sys.exit(f"bench/splits.py: cannot read {path} at {rev[:10]} from git ({reason}); pass --baseline-rev")
    source = shown.stdout
    for old, new in rewrites.items():
        source = source.replace(old, new)
    module = types.ModuleType(name)
    exec(compile(source, f"{rev[:10]}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own git history
    return module


# --- timing -----------------------------------------------------------------------------------------

CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCK["cpu"]  # CPU seconds of this process: steadier than wall time on a shared machine


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = clock()
        function()
        times.append(clock() - start)
    return statistics.median(times)


def exponent(sizes, times) -> float:
    """Slope of log(time) against log(size): 1.0 is linear."""
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def bench_reads(tmp: Path, repeats: int, rev: str) -> None:
    print(f"read: native files -> candidate pool (median of {repeats}; baseline = adapters at {rev[:10]})")
    print(f"{'dataset':<12} {'size':>8} {'':<17} {'ours (s)':>9} {'old (s)':>9} {'old/ours':>9}")
    for name, writer, sizes, options, unit in READ_CASES:
        ours_adapter, baseline = get_adapter(name), old_adapter(name, rev)
        ours_times, old_times = [], []
        for size in sizes:
            root = tmp / f"{name}-{size}"
            writer(root, np.random.default_rng(0), size)
            ours_recipe, old_recipe = ours_adapter.recipe(options), baseline.recipe(options)
            ours_pool, old_pool = ours_adapter.read(root, ours_recipe), baseline.read(root, old_recipe)
            assert len(ours_pool.frame) == len(old_pool.frame), (name, size)  # same candidates, same validation
            ours_times.append(timed(lambda: ours_adapter.read(root, ours_recipe), repeats))
            old_times.append(timed(lambda: baseline.read(root, old_recipe), repeats))
            print(f"{name:<12} {size:>8,} {unit:<17} {ours_times[-1]:>9.3f} {old_times[-1]:>9.3f} "
                  f"{old_times[-1] / ours_times[-1]:>8.2f}x")
        print(f"{'':<12} scaling exponent: ours {exponent(sizes, ours_times):.2f}, old {exponent(sizes, old_times):.2f}")


# --- end to end against plain pandas ----------------------------------------------------------------

def baseline_chexpert(root: Path, seed: int) -> pd.DataFrame:
    picks = []
    for split, n in (("train", 20), ("valid", 15)):
        table = pd.read_csv(root / "CheXpert-v1.0-small" / f"{split}.csv")
        findings = list(COMPETITION_FINDINGS)
        table = table[table["Frontal/Lateral"] == "Frontal"]
        table = table.assign(**{f: table[f].fillna(0.0) for f in findings})
        table = table[(table[findings] != -1.0).all(axis=1)]
        for finding in COMPETITION_FINDINGS:
            picks.append(table.groupby(finding).sample(n=n, random_state=seed))
    return pd.concat(picks)


def baseline_camelyon(root: Path, seed: int) -> pd.DataFrame:
    table = pd.read_csv(root / "camelyon17_v1.0" / "metadata.csv", index_col=0, dtype={"patient": str})
    demo = table[table["center"].isin([0, 3, 4])].groupby("tumor").sample(n=1000, random_state=seed)
    test = table[table["center"] == 2].groupby("tumor").sample(n=50, random_state=seed)
    return pd.concat([demo, test])


def bench_plan(tmp: Path, repeats: int) -> None:
    print(f"\nplan_split end to end vs plain pandas read_csv + groupby().sample() (median of {repeats})")
    print(f"{'dataset':<12} {'input':<26} {'ours (s)':>9} {'pandas (s)':>11} {'ours/pandas':>12}")
    cases = [
        ("chexpert", f"train.csv {CHEXPERT_TRAIN_ROWS:,} rows", baseline_chexpert, CHEXPERT_TRAIN_ROWS),
        ("camelyon17", f"metadata.csv {CAMELYON_ROWS:,} rows", baseline_camelyon, CAMELYON_ROWS),
    ]
    for name, label, baseline, size in cases:
        dataset_root = tmp / f"{name}-{size}"  # written by bench_reads
        _, rows = plan_split(get_adapter(name), dataset_root, {"seed": 0})
        assert len(rows) == {"chexpert": 350, "camelyon17": 2100}[name]
        ours = timed(lambda: plan_split(get_adapter(name), dataset_root, {"seed": 0}), repeats)
        base = timed(lambda: baseline(dataset_root, 0), repeats)
        print(f"{name:<12} {label:<26} {ours:>9.2f} {base:>11.2f} {ours / base:>11.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side; the median is printed")
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision whose adapters are the baseline")
    parser.add_argument("--clock", choices=tuple(CLOCK), default="cpu",
                        help="cpu: process CPU seconds (default; a shared machine's load barely moves it); wall: elapsed")
    args = parser.parse_args()
    global clock
    clock = CLOCK[args.clock]
    check_baseline(args.baseline_rev)
    print(f"clock: {args.clock} seconds")
    with tempfile.TemporaryDirectory() as tmp:
        bench_reads(Path(tmp), args.repeats, args.baseline_rev)
        bench_plan(Path(tmp), args.repeats)


if __name__ == "__main__":
    main()
