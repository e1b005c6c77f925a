"""Benchmark: building ManyICL splits from full-size CheXpert and Camelyon17 metadata.

Writes a synthetic CheXpert ``train.csv`` (224,316 rows, the released size, with ``-1.0`` and
blank cells and lateral views) plus ``valid.csv`` (234 rows), and a synthetic Camelyon17
``metadata.csv`` (455,954 rows, 50 patients in 5 hospitals), then times, in this process:

- ours: ``isekai_gen.manyicl.plan_split`` (read the native files, validate every label cell,
  group-aware stratified sampling, nested demo order, split rows) with the Table 1 recipe;
- baseline: a straightforward pandas ``read_csv`` + filter + ``groupby(...).sample(n)`` that
  does the same draw without validation or group-awareness.

No image is decoded or touched. Run: ``.venv/bin/python bench/splits.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from isekai_gen.manyicl import plan_split  # noqa: E402
from isekai_gen.splits import get_adapter  # noqa: E402
from isekai_gen.splits.chexpert import COMPETITION_FINDINGS, OBSERVATIONS  # noqa: E402

CHEXPERT_TRAIN_ROWS = 224_316
CHEXPERT_VALID_ROWS = 234
CAMELYON_ROWS = 455_954


def write_chexpert(root: Path, rng: np.random.Generator) -> None:
    release = root / "CheXpert-v1.0-small"
    release.mkdir(parents=True)
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(OBSERVATIONS)
    for split, rows, cells in (("train", CHEXPERT_TRAIN_ROWS, ["1.0", "0.0", "-1.0", ""]), ("valid", CHEXPERT_VALID_ROWS, ["1.0", "0.0"])):
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


def write_camelyon(root: Path, rng: np.random.Generator) -> None:
    base = root / "camelyon17_v1.0"
    base.mkdir(parents=True)
    index = np.arange(CAMELYON_ROWS)
    patient_number = index * 50 // CAMELYON_ROWS
    frame = pd.DataFrame({
        "patient": [f"{p:03d}" for p in patient_number],
        "node": index % 5,
        "x_coord": 3328 + 32 * (index % 997),
        "y_coord": 21792 + 32 * (index % 1009),
        "tumor": rng.integers(0, 2, CAMELYON_ROWS),
        "slide": patient_number * 5 + index % 5,
        "center": patient_number // 10,
        "split": 0,
    })
    frame.to_csv(base / "metadata.csv")  # the unnamed index column, as WILDS ships it


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


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side; the median is printed")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_chexpert(root / "chexpert", rng)
        write_camelyon(root / "camelyon17", rng)
        cases = [
            ("chexpert", f"train.csv {CHEXPERT_TRAIN_ROWS:,} rows", baseline_chexpert),
            ("camelyon17", f"metadata.csv {CAMELYON_ROWS:,} rows", baseline_camelyon),
        ]
        print(f"{'dataset':<12} {'input':<26} {'ours (s)':>9} {'baseline (s)':>13} {'ours/baseline':>14}")
        for name, label, baseline in cases:
            dataset_root = root / name
            _, rows = plan_split(get_adapter(name), dataset_root, {"seed": 0})
            assert len(rows) == {"chexpert": 350, "camelyon17": 2100}[name]
            ours = timed(lambda: plan_split(get_adapter(name), dataset_root, {"seed": 0}), args.repeats)
            base = timed(lambda: baseline(dataset_root, 0), args.repeats)
            print(f"{name:<12} {label:<26} {ours:>9.2f} {base:>13.2f} {ours / base:>13.2f}x")


if __name__ == "__main__":
    main()
