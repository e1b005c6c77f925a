"""Camelyon17 pathology patches (WILDS v1.0), binary tumour, hospitals configurable.

Native layout, as WILDS' ``wilds/datasets/camelyon17_dataset.py`` reads it (``data_dir =
root_dir/camelyon17_v1.0``; ``metadata.csv`` read with ``index_col=0, dtype={'patient': 'str'}``;
inputs ``patches/patient_{patient}_node_{node}/patch_patient_{patient}_node_{node}_x_{x}_y_{y}.png``)::

    camelyon17_v1.0/metadata.csv     header ",patient,node,x_coord,y_coord,tumor,slide,center,split"
                                     (unnamed index column, patient zero-padded: "004")
    camelyon17_v1.0/patches/patient_{p}_node_{n}/patch_patient_{p}_node_{n}_x_{x}_y_{y}.png   (96x96)

Layouts found: the WILDS ``root_dir`` (the parent of ``camelyon17_v1.0/``, also DomainBed's
``--data_dir``), the ``camelyon17_v1.0/`` folder itself (the unpacked codalab archive), either
inside up to two wrapper folders.

Default hospitals follow WILDS: demo from its training hospitals 0, 3 and 4, test from its test
hospital 2 (the paper does not say). Overlapping choices are allowed: patients are then divided.
"""

from __future__ import annotations

import numpy as np

from isekai_gen.manyicl import Option, Pool
from isekai_gen.manyicl.hub import HubCopy
from isekai_gen.manyicl.layouts import Layout, LayoutAdapter
from isekai_gen.manyicl.readers import check_values, contained_paths, join_strings, read_table

CENTERS = (0, 1, 2, 3, 4)
WILDS = "WILDS wilds/datasets/camelyon17_dataset.py (Camelyon17Dataset)"


class Camelyon17(LayoutAdapter):
    name = "camelyon17"
    title = "Camelyon17"
    aliases = ("camelyon", "camelyon17_v1.0", "camelyon17-wilds", "Camelyon17WILDS")
    all_classes = ("normal", "tumor")
    demo_per_class = 1000
    test_per_class = 50
    group_key = "patient"
    license = "CC0 1.0"
    redistributable = True
    notes = ("WILDS patches; demo from the WILDS training hospitals 0, 3, 4, test from the WILDS test hospital 2",)
    layouts = (
        Layout("WILDS root_dir", WILDS, ("camelyon17_v1.0/metadata.csv", "camelyon17_v1.0/patches/"),
               base="camelyon17_v1.0"),
        Layout("camelyon17_v1.0 folder", WILDS, ("metadata.csv", "patches/")),
    )
    # wltjr1007/Camelyon17-WILDS: image (96 px), label (normal/tumor), center, image_id, patient, node,
    # x_coord, y_coord, slide; train 302k / validation 68.5k / test 85.1k.
    hub_copies = (
        HubCopy("wltjr1007/Camelyon17-WILDS", id_column="image_id", group_column="patient", split_column="center",
                split_prefix="center", labels={"normal": "normal", "tumor": "tumor", 0: "normal", 1: "tumor"},
                splits={"train": "center", "validation": "center", "test": "center"},
                assignment="the copy's train/validation/test are pooled; the hospital (center column) decides the "
                           "side, as for the WILDS download"),
    )
    options = {
        "demo_centers": Option([0, 3, 4], "hospitals (center 0-4) feeding demo; default: the WILDS training hospitals",
                               subset_of=CENTERS, what="hospitals"),
        "test_centers": Option([2], "hospitals feeding test; default: the WILDS test hospital (OOD validation: 1)",
                               subset_of=CENTERS, what="hospitals"),
    }

    def source_splits(self, options):
        return tuple(tuple(f"center{c}" for c in sorted(set(options[key]))) for key in ("demo_centers", "test_centers"))

    def read_layout(self, found, recipe):
        import pandas as pd

        path = found.folder("metadata.csv")
        table = read_table(path, ["patient", "node", "x_coord", "y_coord", "tumor", "center"], sep=",")
        check_values(table["tumor"], ("0", "1"), path, "tumor label")
        check_values(table["center"], tuple(map(str, CENTERS)), path, "center")
        used = ("center" + table["center"]).isin(recipe.demo_splits + recipe.test_splits).to_numpy()
        lines = np.flatnonzero(used) + 2
        table = table.loc[used].reset_index(drop=True)
        slide = join_strings("patient_", table["patient"], "_node_", table["node"])
        file_name = join_strings("patch_", slide, "_x_", table["x_coord"], "_y_", table["y_coord"], ".png")
        patches = found.prefix + "patches/"
        # Every segment of a patch path starts with fixed text, so only a field holding "/" can
        # make one leave the root; the file name holds all four fields: rows with a "/" in it
        # (normally none) go through the containment helper.
        slashed = file_name.str.contains("/", regex=False).to_numpy()
        if slashed.any():
            names = join_strings(slide, "/", file_name)[slashed]
            contained_paths(found.root, patches, names.reset_index(drop=True), path, "patch", lines[slashed])
        frame = pd.DataFrame({
            "file_name": file_name,
            "source_path": join_strings(patches, slide, "/", file_name),
            "source_split": join_strings("center", table["center"]),
            "group": join_strings("patient_", table["patient"]),
            "label": table["tumor"].map({"0": "normal", "1": "tumor"}),
        })
        return Pool.from_class_names(frame, "label", recipe)


ADAPTER = Camelyon17()
