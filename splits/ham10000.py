"""HAM10000 dermoscopy (7 lesion types); test from the ISIC 2018 Task 3 test set.

Native layout (Harvard Dataverse doi:10.7910/DVN/DBW86T)::

    HAM10000_metadata.csv            (or HAM10000_metadata without extension; comma or tab)
    HAM10000_images_part_1/ISIC_*.jpg
    HAM10000_images_part_2/ISIC_*.jpg
    ISIC2018_Task3_Test_GroundTruth.csv   (one-hot `image,MEL,...` or metadata-style `lesion_id,image_id,dx,...`)
    ISIC2018_Task3_Test_Images/ISIC_*.jpg

`df` has only 115 images in HAM10000, so the paper's 115 demo + 30 test per class cannot both
come from it: demo comes from HAM10000, test from the ISIC 2018 Task 3 test set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from isekai_gen.errors import UserError
from isekai_gen.manyicl import Adapter, Option, Pool
from isekai_gen.manyicl.readers import check_values, find_existing, list_files, read_table, require_columns

CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
METADATA_NAMES = ["HAM10000_metadata.csv", "HAM10000_metadata", "HAM10000_metadata.tab", "HAM10000_metadata.txt"]
IMAGE_FOLDERS = ["HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_images"]
TEST_TRUTH_NAMES = [
    "ISIC2018_Task3_Test_GroundTruth.csv",
    "ISIC2018_Task3_Test_GroundTruth/ISIC2018_Task3_Test_GroundTruth.csv",
    "ISIC2018_Task3_Test_GroundTruth.tab",
]
TEST_IMAGE_FOLDER = "ISIC2018_Task3_Test_Images"


class Ham10000(Adapter):
    name = "ham10000"
    title = "HAM10000"
    all_classes = CLASSES
    demo_per_class = 115
    test_per_class = 30
    group_key = "lesion_id"
    license = "CC BY-NC 4.0 (HAM10000 and ISIC 2018 test set)"
    redistributable = True
    notes = ("test from the ISIC 2018 Task 3 test set: df has only 115 HAM10000 images, all needed for demo",)
    layout = ("HAM10000_metadata[.csv], HAM10000_images_part_{1,2}/, "
              "ISIC2018_Task3_Test_GroundTruth.csv, ISIC2018_Task3_Test_Images/")
    options = {
        "test_source": Option(
            "isic2018",
            "isic2018: test from the ISIC 2018 Task 3 test set (df has only 115 HAM10000 images, all needed for demo); "
            "ham10000: demo and test both from HAM10000, lesion-disjoint (needs smaller per-class sizes)",
            ("isic2018", "ham10000"),
        ),
        "metadata": Option(None, "metadata file relative to the root; null: the first of " + ", ".join(METADATA_NAMES),
                           kind=str),
        "test_ground_truth": Option(None, "ISIC 2018 Task 3 test ground truth relative to the root; null: its usual names",
                                    kind=str),
    }

    def source_splits(self, options):
        if options["test_source"] == "ham10000":
            return ("ham10000",), ("ham10000",)
        return ("ham10000",), ("isic2018_test",)

    def read(self, root: Path, recipe):
        options = recipe.options
        rows = self._metadata_rows(root, options)
        if options["test_source"] == "isic2018":
            rows += self._test_rows(root, options)
        return Pool.from_rows(rows, recipe)

    def _metadata_rows(self, root: Path, options) -> list[dict]:
        if options["metadata"]:
            path = root / options["metadata"]
        else:
            path = find_existing(root, METADATA_NAMES, "HAM10000 metadata file")
        table = read_table(path, ["lesion_id", "image_id", "dx"])
        check_values(table["dx"], CLASSES, path, "dx label")
        images = _ImageIndex(root, [root / f for f in IMAGE_FOLDERS if (root / f).is_dir()])
        return images.rows(table["image_id"], table["dx"], table["lesion_id"], "ham10000", path)

    def _test_rows(self, root: Path, options) -> list[dict]:
        if options["test_ground_truth"]:
            path = root / options["test_ground_truth"]
        else:
            path = find_existing(root, TEST_TRUTH_NAMES, "ISIC 2018 Task 3 test ground truth")
        table = read_table(path, [])
        if "image" in table.columns:
            require_columns(table, ["image", *(c.upper() for c in CLASSES)], path)
            ids, labels, groups = table["image"], _one_hot_labels(table, path), table["image"]
        else:
            require_columns(table, ["lesion_id", "image_id", "dx"], path)
            check_values(table["dx"], CLASSES, path, "dx label")
            ids, labels, groups = table["image_id"], table["dx"], table["lesion_id"]
        return _ImageIndex(root, [root / TEST_IMAGE_FOLDER]).rows(ids, labels, groups, "isic2018_test", path)


def _one_hot_labels(table, path: Path) -> list[str]:
    """The one class whose column holds 1.0 in each row of a one-hot ground-truth table."""
    columns = [c.upper() for c in CLASSES]
    for column in columns:
        check_values(table[column], ("0", "1", "0.0", "1.0"), path, f"{column} value")
    hot = table[columns].isin(["1", "1.0"]).to_numpy()
    wrong = np.flatnonzero(hot.sum(axis=1) != 1)
    if wrong.size:
        raise UserError(f"{path}:{wrong[0] + 2}: expected exactly one class marked 1.0, found {hot[wrong[0]].sum()}")
    return list(np.array(CLASSES)[hot.argmax(axis=1)])


class _ImageIndex:
    """image id -> path relative to the root, from listings of the image folders."""

    def __init__(self, root: Path, folders: list[Path]):
        self.paths = {}
        for folder in folders:
            for name in list_files(folder, (".jpg", ".jpeg", ".png")):
                self.paths.setdefault(Path(name).stem, (folder / name).relative_to(root))
        self.folders = ", ".join(f.name for f in folders) or "(no image folder)"

    def rows(self, ids, labels, groups, source_split: str, metadata: Path) -> list[dict]:
        """Pool rows of a metadata table; an image it lists but the folders lack is an error."""
        rows = []
        for line, (image_id, label, group) in enumerate(zip(ids, labels, groups), start=2):
            path = self.paths.get(image_id)
            if path is None:
                raise UserError(f"{metadata}:{line}: image {image_id!r} is missing (not in {self.folders})")
            # An image without a lesion id is its own group.
            rows.append({"file_name": path.name, "source_path": path.as_posix(), "source_split": source_split,
                         "group": group or image_id, "label": label})
        return rows


ADAPTER = Ham10000()
