"""HAM10000 dermoscopy (7 lesion types); test from the ISIC 2018 Task 3 test set.

Layouts found for HAM10000 (the demo side), each with ``HAM10000_metadata[.csv|.tab|.txt]``
(columns ``lesion_id,image_id,dx,...``; comma or tab separated, LF or CRLF line ends):

- Harvard Dataverse doi:10.7910/DVN/DBW86T and its Kaggle copy (kmader/skin-cancer-mnist-ham10000):
  ``HAM10000_images_part_1/``, ``HAM10000_images_part_2/`` (Kaggle adds lower-case duplicates
  and ``hmnist_*.csv``, not read);
- the two Dataverse image zips unpacked into one folder: ``ISIC_*.jpg`` beside the metadata;
- the images in one ``HAM10000/`` (or ``HAM10000_images/``) folder beside the metadata.

Layouts found for the ISIC 2018 Task 3 test set (the test side; ground truth one-hot
``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` or metadata-style ``lesion_id,image_id,dx,...``):

- the ISIC 2018 challenge download (challenge.isic-archive.com): ``ISIC2018_Task3_Test_Input/``
  and ``ISIC2018_Task3_Test_GroundTruth/ISIC2018_Task3_Test_GroundTruth.csv`` (or that csv beside);
- the Dataverse record's ``ISIC2018_Task3_Test_Images/`` and ``ISIC2018_Task3_Test_GroundTruth.{csv,tab}``.

Each part is found in the root or up to two wrapper folders below it. `df` has only 115 images
in HAM10000, so the paper's 115 demo + 30 test per class cannot both come from it: demo comes
from HAM10000, test from the ISIC 2018 Task 3 test set.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from isekai_gen.errors import UserError
from isekai_gen.manyicl import Option, Pool
from isekai_gen.manyicl.hub import HubCopy
from isekai_gen.manyicl.layouts import Found, Layout, LayoutAdapter, find_layout
from isekai_gen.manyicl.readers import (
    check_values, contained_paths, find_existing, list_files, read_table, require_columns,
)
from isekai_gen.paths import contained

CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
METADATA_NAMES = ["HAM10000_metadata.csv", "HAM10000_metadata", "HAM10000_metadata.tab", "HAM10000_metadata.txt"]
TEST_TRUTH_NAMES = [
    "ISIC2018_Task3_Test_GroundTruth/ISIC2018_Task3_Test_GroundTruth.csv",
    "ISIC2018_Task3_Test_GroundTruth.csv",
    "ISIC2018_Task3_Test_GroundTruth.tab",
]
TEST_PART = "ISIC 2018 Task 3 test set"
DATAVERSE = "Harvard Dataverse doi:10.7910/DVN/DBW86T"
METADATA = "HAM10000_metadata*"
HAM_LAYOUTS = (
    Layout("Dataverse/Kaggle image parts", f"{DATAVERSE}; Kaggle kmader/skin-cancer-mnist-ham10000",
           (METADATA, "HAM10000_images_part_1/"), folders=("HAM10000_images_part_1", "HAM10000_images_part_2")),
    Layout("image zips unpacked into one folder", DATAVERSE, (METADATA, "ISIC_*.jpg"), folders=(".",)),
    Layout("HAM10000/ image folder", DATAVERSE, (METADATA, "HAM10000/ISIC_*.jpg"), folders=("HAM10000",)),
    Layout("HAM10000_images/ image folder", DATAVERSE, (METADATA, "HAM10000_images/"), folders=("HAM10000_images",)),
)
TRUTH = "|".join(TEST_TRUTH_NAMES)
TEST_LAYOUTS = (
    Layout("ISIC 2018 challenge download", "ISIC 2018 Task 3 (challenge.isic-archive.com/data/#2018)",
           ("ISIC2018_Task3_Test_Input/", TRUTH), folders=("ISIC2018_Task3_Test_Input",)),
    Layout("Dataverse ISIC 2018 test set", DATAVERSE, ("ISIC2018_Task3_Test_Images/", TRUTH),
           folders=("ISIC2018_Task3_Test_Images",)),
)

# marmal88/skin_cancer (card dataset_info, 2023-01): image, image_id, lesion_id, dx (string, long
# names), dx_type, age, sex, localization; train 9,577 / validation 2,492 / test 1,285 rows, more
# than HAM10000's 10,015 images: a repeated image_id is folded into one item.
HUB_COPIES = (
    HubCopy(
        "marmal88/skin_cancer", label_column="dx", id_column="image_id", group_column="lesion_id",
        labels={"actinic_keratoses": "akiec", "basal_cell_carcinoma": "bcc", "benign_keratosis-like_lesions": "bkl",
                "dermatofibroma": "df", "melanoma": "mel", "melanocytic_Nevi": "nv", "vascular_lesions": "vasc"},
        splits={"train": "ham10000", "validation": "ham10000", "test": "ham10000"},
        options={"test_source": "ham10000"},
        assignment="the copy holds HAM10000 only (no ISIC 2018 test set): its train/validation/test are pooled and "
                   "divided lesion-disjoint, as test_source=ham10000 (df has 115 images: smaller sizes needed)",
    ),
)


class Ham10000(LayoutAdapter):
    name = "ham10000"
    title = "HAM10000"
    aliases = ("skin-cancer-mnist-ham10000", "ham")
    all_classes = CLASSES
    demo_per_class = 115
    test_per_class = 30
    group_key = "lesion_id"
    license = "CC BY-NC 4.0 (HAM10000 and ISIC 2018 test set)"
    redistributable = True
    notes = ("test from the ISIC 2018 Task 3 test set: df has only 115 HAM10000 images, all needed for demo",)
    layouts = HAM_LAYOUTS + TEST_LAYOUTS
    hub_copies = HUB_COPIES
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

    def find_layout(self, root: Path, recipe=None) -> Found:
        """The HAM10000 part (``metadata`` given: only its image folders are looked for)."""
        layouts = HAM_LAYOUTS
        if recipe is not None and recipe.options["metadata"]:
            layouts = tuple(replace(lay, markers=lay.markers[1:]) for lay in HAM_LAYOUTS)
        return find_layout(self.title, Path(root), layouts)

    def find_test_layout(self, root: Path, recipe=None) -> Found:
        layouts = TEST_LAYOUTS
        if recipe is not None and recipe.options["test_ground_truth"]:
            layouts = tuple(replace(lay, markers=lay.markers[:1]) for lay in TEST_LAYOUTS)
        return find_layout(self.title, Path(root), layouts, what=TEST_PART)

    def read_layout(self, found, recipe):
        import pandas as pd

        options = recipe.options
        if options["metadata"]:
            path = contained(found.root, options["metadata"], what="metadata option", source=self.name)
        else:
            path = find_existing(found.base, METADATA_NAMES, "HAM10000 metadata file")
        table = read_table(path, ["lesion_id", "image_id", "dx"])
        check_values(table["dx"], CLASSES, path, "dx label")
        frames = [_ImageIndex(found).frame(table["image_id"], table["dx"], table["lesion_id"], "ham10000", path)]
        layouts = []
        if options["test_source"] == "isic2018":
            test_found, test_frame = self._test_frame(found.root, recipe)
            frames.append(test_frame)
            layouts.append(test_found.to_json(part=TEST_PART))
        pool = Pool.from_class_names(pd.concat(frames, ignore_index=True), "label", recipe)
        pool.layouts.extend(layouts)
        return pool

    def _test_frame(self, root: Path, recipe):
        """(the test layout found, its pool rows)."""
        try:
            found = self.find_test_layout(root, recipe)
        except UserError as exc:
            raise UserError(f"{exc} (without it: option test_source=ham10000)") from None
        if recipe.options["test_ground_truth"]:
            path = contained(root, recipe.options["test_ground_truth"], what="test_ground_truth option",
                             source=self.name)
        else:
            path = find_existing(found.base, TEST_TRUTH_NAMES, "ISIC 2018 Task 3 test ground truth")
        table = read_table(path, [])
        if "image" in table.columns:
            require_columns(table, ["image", *(c.upper() for c in CLASSES)], path)
            ids, labels, groups = table["image"], _one_hot_labels(table, path), table["image"]
        else:
            require_columns(table, ["lesion_id", "image_id", "dx"], path)
            check_values(table["dx"], CLASSES, path, "dx label")
            ids, labels, groups = table["image_id"], table["dx"], table["lesion_id"]
        return found, _ImageIndex(found).frame(ids, labels, groups, "isic2018_test", path)


def _one_hot_labels(table, path: Path) -> np.ndarray:
    """The one class whose column holds 1.0 in each row of a one-hot ground-truth table."""
    columns = [c.upper() for c in CLASSES]
    for column in columns:
        check_values(table[column], ("0", "1", "0.0", "1.0"), path, f"{column} value")
    hot = table[columns].isin(["1", "1.0"]).to_numpy()
    wrong = np.flatnonzero(hot.sum(axis=1) != 1)
    if wrong.size:
        raise UserError(f"{path}:{wrong[0] + 2}: expected exactly one class marked 1.0, found {hot[wrong[0]].sum()}")
    return np.array(CLASSES)[hot.argmax(axis=1)]


class _ImageIndex:
    """image id -> path relative to the found folder, from listings of the layout's image folders."""

    def __init__(self, found: Found):
        self.found = found
        folders = [found.folder(name) for name in found.layout.folders if found.folder(name).is_dir()]
        self.paths = {}
        for folder in folders:
            relative = folder.relative_to(found.base).as_posix()
            for name in list_files(folder, (".jpg", ".jpeg", ".png")):
                self.paths.setdefault(Path(name).stem, name if relative == "." else f"{relative}/{name}")
        self.folders = ", ".join(f.relative_to(found.root).as_posix() for f in folders) or "(no image folder)"

    def frame(self, ids, labels, groups, source_split: str, metadata: Path):
        """Pool rows of a metadata table; an image it lists but the folders lack is an error."""
        import pandas as pd

        ids = pd.Series(ids, dtype="str").reset_index(drop=True)
        paths = ids.map(self.paths)
        missing = paths.isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise UserError(f"{metadata}:{row + 2}: image {ids[row]!r} is missing (not in {self.folders})")
        paths = paths.astype("str")
        groups = pd.Series(groups, dtype="str").reset_index(drop=True)
        return pd.DataFrame({
            "file_name": paths.str.rsplit("/", n=1).str[-1],
            "source_path": contained_paths(self.found.root, self.found.prefix, paths, metadata, "image"),
            "source_split": source_split,
            "group": groups.where(groups != "", ids),  # an image without a lesion id is its own group
            "label": pd.Series(labels, dtype="str").reset_index(drop=True),
        })


ADAPTER = Ham10000()
