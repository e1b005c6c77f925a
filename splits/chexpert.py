"""CheXpert chest X-rays, multi-label over 5 findings, balanced positive/negative per finding.

Native layout (Stanford AIMI; small or full release)::

    CheXpert-v1.0-small/train.csv, valid.csv   header Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,...
    CheXpert-v1.0-small/{train,valid}/patientNNNNN/studyN/viewN_{frontal|lateral}.jpg

``Path`` starts with the release folder name. Label cells are ``1.0``, ``0.0``, ``-1.0``
(uncertain) or blank (not mentioned, read as negative, the CheXpert convention).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from isekai_gen.errors import UserError
from isekai_gen.manyicl import Adapter, Option, Pool
from isekai_gen.manyicl.readers import check_values, find_existing, join_strings, lookup, read_table

OBSERVATIONS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
COMPETITION_FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
RELEASE_FOLDERS = ("CheXpert-v1.0-small", "CheXpert-v1.0")
LABEL_VALUES = {"1.0": 1.0, "1": 1.0, "0.0": 0.0, "0": 0.0, "": 0.0, "-1.0": -1.0, "-1": -1.0}
PATH_PATTERN = r"^(?:.*/)?(?P<patient>patient\d+)/(?P<study>study\d+)/(?P<view>view\d+_(?:frontal|lateral)\.jpg)$"


class CheXpert(Adapter):
    name = "chexpert"
    title = "CheXpert"
    all_classes = OBSERVATIONS
    default_classes = COMPETITION_FINDINGS
    demo_per_class = 20   # per finding: 20 positive + 20 negative -> 200 demo for 5 findings
    test_per_class = 15   # 15 positive + 15 negative -> 150 test
    group_key = "patient"
    license = "Stanford University School of Medicine CheXpert Dataset Research Use Agreement"
    redistributable = False
    multilabel = True
    notes = (
        "findings: the 5 CheXpert competition findings",
        "uncertain (-1.0) labels left out of sampling, blank cells negative; frontal views only; test from valid.csv",
    )
    layout = "CheXpert-v1.0-small/{train,valid}.csv, CheXpert-v1.0-small/{train,valid}/patientN/studyN/viewN_*.jpg"
    options = {
        "uncertain": Option(
            "ignore",
            "uncertain (-1.0) labels: ignore = leave images with an uncertain chosen finding out of sampling; "
            "zeros = read as negative (U-Zeros); ones = read as positive (U-Ones)",
            ("ignore", "zeros", "ones"),
        ),
        "views": Option("frontal", "which views are sampled (most CheXpert work uses frontal views only)",
                        ("frontal", "lateral", "all")),
        "test_split": Option(
            "valid",
            "valid: test from valid.csv (radiologist-labelled, 234 images), demo from train.csv; "
            "train: both from train.csv, patient-disjoint",
            ("valid", "train"),
        ),
    }

    def source_splits(self, options):
        return ("train",), (options["test_split"],)

    def read(self, root: Path, recipe):
        import pandas as pd

        candidates = [f"{folder}/train.csv" for folder in RELEASE_FOLDERS] + ["train.csv"]
        train_csv = find_existing(root, candidates, "CheXpert train.csv")
        frames, labels = [], []
        for split in ("train", "valid"):
            frame, split_labels = self._read_csv(root, train_csv.parent / f"{split}.csv", split, recipe)
            frames.append(frame)
            labels.append(split_labels)
        return Pool(pd.concat(frames, ignore_index=True), np.concatenate(labels))

    def _read_csv(self, root: Path, path: Path, split: str, recipe):
        import pandas as pd

        findings = list(recipe.classes)
        # The whole released header is required (a different file is not CheXpert); cell values
        # are checked in the findings used.
        table = read_table(path, ["Path", "Frontal/Lateral", *OBSERVATIONS], sep=",")
        check_values(table["Frontal/Lateral"], ("Frontal", "Lateral"), path, "Frontal/Lateral value")
        patient, file_name = _path_parts(table["Path"], path)
        values = np.empty((len(table), len(findings)), dtype=np.float32)
        for column, finding in enumerate(findings):
            values[:, column] = lookup(table[finding], LABEL_VALUES, path, f"{finding} label")
        keep = self._view_mask(table["Frontal/Lateral"], recipe.options["views"])
        uncertain = values < 0
        if recipe.options["uncertain"] == "ignore":
            keep = keep & ~uncertain.any(axis=1)
        else:
            values[uncertain] = 1.0 if recipe.options["uncertain"] == "ones" else 0.0
        frame = pd.DataFrame({
            "file_name": file_name,
            "source_path": _root_relative(root, path.parent, table["Path"]),
            "source_split": split,
            "group": patient,
        })
        return frame.loc[keep].reset_index(drop=True), values[keep]

    @staticmethod
    def _view_mask(views, wanted: str) -> np.ndarray:
        if wanted == "all":
            return np.ones(len(views), dtype=bool)
        return (views == wanted.capitalize()).to_numpy()


def _path_parts(paths, csv_path: Path):
    """(patient, output file name ``patientN_studyN_viewN_<frontal|lateral>.jpg``) of each ``Path``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = pc.extract_regex(pa.array(paths), PATH_PATTERN)  # RE2 in C++: pandas' str.extract loops in Python
    valid = parts.is_valid().to_numpy(zero_copy_only=False)
    if not valid.all():
        row = int(np.flatnonzero(~valid)[0])
        expected = ".../patientN/studyN/viewN_<frontal|lateral>.jpg"
        raise UserError(f"{csv_path}:{row + 2}: Path {paths.iloc[row]!r} is not {expected}")
    patient, study, view = (pc.struct_field(parts, name) for name in ("patient", "study", "view"))
    return patient.to_numpy(zero_copy_only=False), join_strings(patient, "_", study, "_", view)


def _root_relative(root: Path, release: Path, paths):
    """``Path`` cells start with the release folder name; the root is that folder or above it."""
    if release == root:
        # The root's own name is the release folder's, unless it was renamed, is a link, or is ".".
        for name in dict.fromkeys((root.name, root.absolute().name, root.resolve().name, *RELEASE_FOLDERS)):
            if name and len(paths) and paths.iloc[0].startswith(f"{name}/"):
                return paths.str.removeprefix(f"{name}/")
        return paths
    base = release.parent.relative_to(root).as_posix()
    return paths if base == "." else base + "/" + paths


ADAPTER = CheXpert()
