"""FIVES retinal fundus images (4 categories), official train/test split.

Native layout (figshare 10.6084/m9.figshare.19688169)::

    train/Original/<n>_<L>.png     L: A (AMD), D (diabetic retinopathy), G (glaucoma), N (normal)
    train/Ground truth/<n>_<L>.png (vessel masks, not used)
    test/Original/<n>_<L>.png

Numbers restart in each split, so output names carry the split: ``train_1_A.png``.
"""

from __future__ import annotations

import re
from pathlib import Path

from isekai_gen.errors import UserError
from isekai_gen.manyicl import Adapter, Pool
from isekai_gen.manyicl.readers import list_files

# Full names, not the letters: ManyICL's answer parser matches class names as case-insensitive
# substrings, and "DR" would match ordinary words.
LETTERS = {"A": "age-related macular degeneration", "D": "diabetic retinopathy", "G": "glaucoma", "N": "normal"}
NAME = re.compile(r"^(\d+)_([A-Za-z]+)\.png$", re.IGNORECASE)


class Fives(Adapter):
    name = "fives"
    title = "FIVES"
    all_classes = tuple(LETTERS.values())
    demo_per_class = 100
    test_per_class = 30
    group_key = "item"
    license = "CC BY 4.0"
    redistributable = True
    notes = ("class names spelled out: ManyICL's parser matches names as substrings; 'DR' would match ordinary words",)
    layout = "train/Original/<n>_<A|D|G|N>.png, test/Original/<n>_<A|D|G|N>.png"

    def source_splits(self, options):
        return ("train",), ("test",)

    def read(self, root: Path, recipe):
        rows = []
        for split in ("train", "test"):
            folder = root / split / "Original"
            for name in list_files(folder):
                match = NAME.match(name)
                if not match or match.group(2).upper() not in LETTERS:
                    raise UserError(f"{folder / name}: unknown label value in file name (expected <n>_<A|D|G|N>.png)")
                rows.append({"file_name": f"{split}_{name}", "source_path": f"{split}/Original/{name}",
                             "source_split": split, "label": LETTERS[match.group(2).upper()]})
        return Pool.from_rows(rows, recipe)


ADAPTER = Fives()
