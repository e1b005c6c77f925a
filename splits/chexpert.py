"""CheXpert chest X-rays, multi-label over 5 findings, balanced positive/negative per finding.

Native layout (Stanford ML Group / AIMI ``CheXpert-v1.0-small.zip`` or the full ``CheXpert-v1.0``)::

    CheXpert-v1.0-small/train.csv, valid.csv   header Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,...
    CheXpert-v1.0-small/{train,valid}/patientNNNNN/studyN/viewN_{frontal|lateral}.jpg

``Path`` starts with the release folder name (``CheXpert-v1.0-small/train/patient00001/...``),
whatever the folder is called on disk: Kaggle copies of ``CheXpert-v1.0-small`` unpack the csvs
and ``train/``, ``valid/`` straight into the download folder and keep that prefix, and
torchxrayvision's ``CheX_Dataset`` (``torchxrayvision/datasets.py``) likewise removes
``CheXpert-v1.0-small/`` and ``CheXpert-v1.0/`` from ``Path`` before joining it to its image
folder (the release folder). Layouts found: the parent of ``CheXpert-v1.0-small/`` or
``CheXpert-v1.0/``, a release folder under any name (Kaggle), either inside up to two wrapper
folders. Label cells are ``1.0``, ``0.0``, ``-1.0`` (uncertain) or blank (not mentioned, read as
negative, the CheXpert convention).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from isekai_gen.errors import UserError
from isekai_gen.manyicl import Option, Pool
from isekai_gen.manyicl.layouts import Layout, LayoutAdapter
from isekai_gen.manyicl.readers import check_values, contained_paths, join_strings, lookup, read_table

OBSERVATIONS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
COMPETITION_FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
LABEL_VALUES = {"1.0": 1.0, "1": 1.0, "0.0": 0.0, "0": 0.0, "": 0.0, "-1.0": -1.0, "-1": -1.0}
SPLIT_FOLDER = r"(?:train|valid|test)/"
# Path = [<release folder>/]<split>/patientN/studyN/viewN_<frontal|lateral>.jpg
PATH_PATTERN = rf"^(?:[^/]+/)?{SPLIT_FOLDER}patient[0-9]+/study[0-9]+/view[0-9]+_(?:frontal|lateral)\.jpg$"
PATH_FORM = "[<release>/]<train|valid>/patientN/studyN/viewN_<frontal|lateral>.jpg"
STANFORD = "Stanford AIMI CheXpert-v1.0(-small) archive"
RELEASE_MARKERS = ("train.csv", "valid.csv", "train/")


class CheXpert(LayoutAdapter):
    name = "chexpert"
    title = "CheXpert"
    aliases = ("CheXpert-v1.0-small", "CheXpert-v1.0", "chexpert_small", "chexpert-small")
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
    layouts = (
        Layout("CheXpert-v1.0-small", STANFORD, tuple(f"CheXpert-v1.0-small/{m}" for m in RELEASE_MARKERS),
               base="CheXpert-v1.0-small"),
        Layout("CheXpert-v1.0", STANFORD, tuple(f"CheXpert-v1.0/{m}" for m in RELEASE_MARKERS), base="CheXpert-v1.0"),
        Layout("release folder (any name, Kaggle copies)", "Kaggle copies; torchxrayvision CheX_Dataset imgpath",
               RELEASE_MARKERS),
    )
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

    def read_layout(self, found, recipe):
        import pandas as pd

        frames, labels = [], []
        for split in ("train", "valid"):
            frame, split_labels = self._read_csv(found, found.folder(f"{split}.csv"), split, recipe)
            frames.append(frame)
            labels.append(split_labels)
        return Pool(pd.concat(frames, ignore_index=True), np.concatenate(labels))

    def _read_csv(self, found, path: Path, split: str, recipe):
        import pandas as pd

        findings = list(recipe.classes)
        # The whole released header is required (a different file is not CheXpert); cell values
        # are checked in the findings used.
        table = read_table(path, ["Path", "Frontal/Lateral", *OBSERVATIONS], sep=",",
                           usecols=["Path", "Frontal/Lateral", *findings])
        check_values(table["Frontal/Lateral"], ("Frontal", "Lateral"), path, "Frontal/Lateral value")
        values = np.empty((len(table), len(findings)), dtype=np.float32)
        for column, finding in enumerate(findings):
            values[:, column] = lookup(table[finding], LABEL_VALUES, path, f"{finding} label")
        keep = self._view_mask(table["Frontal/Lateral"], recipe.options["views"])
        uncertain = values < 0
        if recipe.options["uncertain"] == "ignore":
            keep = keep & ~uncertain.any(axis=1)
        else:
            values[uncertain] = 1.0 if recipe.options["uncertain"] == "ones" else 0.0
        source_path, patient, file_name = _path_parts(found, table["Path"], path, keep)
        frame = pd.DataFrame({
            "file_name": file_name,
            "source_path": source_path,
            "source_split": split,
            "group": patient,
        })
        return frame, values[keep]

    @staticmethod
    def _view_mask(views, wanted: str) -> np.ndarray:
        if wanted == "all":
            return np.ones(len(views), dtype=bool)
        return (views == wanted.capitalize()).to_numpy()


def _path_parts(found, paths, csv_path: Path, keep: np.ndarray):
    """(source path, patient, output name ``patientN_studyN_viewN_<view>.jpg``) of the kept ``Path`` cells.

    Every cell is validated (one RE2 match over the column); the kept ones are then cut up with
    fixed-offset slices, one kernel call per distinct prefix length (one or two per file:
    ``CheXpert-v1.0-small/train/``). What is kept of a valid cell, ``<split>/patientN/...``,
    has no ``..`` segment, so it stays under the root lexically; symlinks are checked with
    ``isekai_gen.paths.contained`` when a file is opened (``LayoutAdapter.source_file``).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = pa.array(paths, pa.large_string())
    valid = pc.match_substring_regex(cells, PATH_PATTERN).to_numpy(zero_copy_only=False)
    if not valid.all():
        row = int(np.flatnonzero(~valid)[0])
        # A cell that climbs out of the root is refused as such by the containment helper first.
        contained_paths(found.root, found.prefix, paths.iloc[row:row + 1].str.replace(r"^[^/]*/", "", regex=True),
                        csv_path, "Path", [row + 2])
        raise UserError(f"{csv_path}:{row + 2}: Path {paths.iloc[row]!r} is not {PATH_FORM}")
    cells = cells.filter(pa.array(keep))
    # Drop the release folder: Path is relative to the folder above the csv, whatever it is called.
    no_release = pc.or_(pc.or_(pc.starts_with(cells, "train/"), pc.starts_with(cells, "valid/")),
                        pc.starts_with(cells, "test/")).to_numpy(zero_copy_only=False)
    first_slash = pc.find_substring(cells, "/").to_numpy(zero_copy_only=False)
    relative = _slice_from(cells, np.where(no_release, 0, first_slash + 1))
    tail = _slice_from(cells, pc.find_substring(cells, "/patient").to_numpy(zero_copy_only=False) + 1)
    patient = _slice_to(tail, pc.find_substring(tail, "/").to_numpy(zero_copy_only=False))
    source_path = join_strings(found.prefix, relative) if found.prefix else _pd_str(relative)
    return source_path, patient.to_numpy(zero_copy_only=False), _pd_str(pc.replace_substring(tail, "/", "_"))


def _slice_from(cells, starts: np.ndarray):
    """Each cell from its own start offset (ASCII paths: code units), one kernel call per distinct offset."""
    import pyarrow.compute as pc

    return _per_offset(cells, starts, lambda part, start: pc.utf8_slice_codeunits(part, int(start)))


def _slice_to(cells, stops: np.ndarray):
    import pyarrow.compute as pc

    return _per_offset(cells, stops, lambda part, stop: pc.utf8_slice_codeunits(part, 0, int(stop)))


def _per_offset(cells, offsets: np.ndarray, cut):
    import pyarrow as pa

    distinct, codes = np.unique(offsets, return_inverse=True)
    if len(distinct) == 1:
        return cut(cells, distinct[0])
    order = np.argsort(codes, kind="stable")
    pieces = [cut(cells.take(pa.array(order[codes[order] == k])), value) for k, value in enumerate(distinct)]
    return pa.concat_arrays(pieces).take(pa.array(np.argsort(order, kind="stable")))


def _pd_str(cells):
    import pandas as pd

    return pd.Series(pd.array(cells, dtype="str"))


ADAPTER = CheXpert()
