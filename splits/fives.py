"""FIVES retinal fundus images (4 categories), official train/test split.

Native layout (figshare 10.6084/m9.figshare.19688169, Jin et al., Scientific Data 2022)::

    train/Original/<n>_<L>.png     L: A (AMD), D (diabetic retinopathy), G (glaucoma), N (normal)
    train/Ground truth/<n>_<L>.png (vessel masks, not used)
    test/Original/<n>_<L>.png

The figshare archive unpacks into a wrapper folder named after the paper, ``FIVES A Fundus
Image Dataset for AI-based Vessel Segmentation/``, sometimes nested twice (the zip holds the
folder and people unzip into a folder of the same name): the split folders are found in the root
or up to two wrapper folders below it. Numbers restart in each split, so output names carry the
split: ``train_1_A.png``.
"""

from __future__ import annotations

import re

from isekai_gen.errors import UserError
from isekai_gen.manyicl import Pool
from isekai_gen.manyicl.hub import HubCopy
from isekai_gen.manyicl.layouts import Layout, LayoutAdapter
from isekai_gen.manyicl.readers import list_files

# Full names, not the letters: ManyICL's answer parser matches class names as case-insensitive
# substrings, and "DR" would match ordinary words.
LETTERS = {"A": "age-related macular degeneration", "D": "diabetic retinopathy", "G": "glaucoma", "N": "normal"}
NAME = re.compile(r"^(\d+)_([A-Za-z]+)\.png$", re.IGNORECASE)
FIGSHARE = "figshare 10.6084/m9.figshare.19688169 (FIVES archive)"


class Fives(LayoutAdapter):
    name = "fives"
    title = "FIVES"
    aliases = ("FIVES_fundus",)
    all_classes = tuple(LETTERS.values())
    demo_per_class = 100
    test_per_class = 30
    group_key = "item"
    license = "CC BY 4.0"
    redistributable = True
    notes = ("class names spelled out: ManyICL's parser matches names as substrings; 'DR' would match ordinary words",)
    layouts = (Layout("figshare archive", FIGSHARE, ("train/Original/", "test/Original/")),)
    # tyluan/FIVES: image, mask, image_id like train_100_A (the letter is the label); train/test as the original.
    hub_copies = (
        HubCopy("tyluan/FIVES", label_column=None, id_column="image_id", label_from_id=r"_([ADGN])$",
                labels=LETTERS, splits={"train": "train", "test": "test"},
                assignment="the copy's train/test are the official ones: demo from train, test from test"),
    )

    def source_splits(self, options):
        return ("train",), ("test",)

    def read_layout(self, found, recipe):
        rows = []
        for split in ("train", "test"):
            folder = found.folder(split) / "Original"
            for name in list_files(folder):
                match = NAME.match(name)
                if not match or match.group(2).upper() not in LETTERS:
                    raise UserError(f"{folder / name}: unknown label value in file name (expected <n>_<A|D|G|N>.png)")
                rows.append({"file_name": f"{split}_{name}", "source_path": f"{found.prefix}{split}/Original/{name}",
                             "source_split": split, "label": LETTERS[match.group(2).upper()]})
        return Pool.from_rows(rows, recipe)


ADAPTER = Fives()
