"""DTD (Describable Textures Dataset r1.0.1), 47 texture classes, official partition 1.

Native layout::

    dtd/images/<class>/<class>_NNNN.jpg
    dtd/labels/{train,val,test}{1..10}.txt      one "<class>/<file>.jpg" per line

Demo from train + val of the chosen partition (80 per class), test from its test list (40 per class).
"""

from __future__ import annotations

from pathlib import Path

from isekai_gen.errors import UserError
from isekai_gen.manyicl import Adapter, Option, Pool
from isekai_gen.manyicl.readers import find_existing, read_lines

CLASSES = (
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked", "crosshatched",
    "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly", "gauzy", "grid", "grooved",
    "honeycombed", "interlaced", "knitted", "lacelike", "lined", "marbled", "matted", "meshed", "paisley",
    "perforated", "pitted", "pleated", "polka-dotted", "porous", "potholed", "scaly", "smeared", "spiralled",
    "sprinkled", "stained", "stratified", "striped", "studded", "swirly", "veined", "waffled", "woven",
    "wrinkled", "zigzagged",
)


class DTD(Adapter):
    name = "dtd"
    title = "DTD"
    all_classes = CLASSES
    demo_per_class = 50
    test_per_class = 20
    group_key = "item"
    license = "DTD terms: research use only (images collected from Flickr)"
    redistributable = False
    notes = ("official partition 1: demo from train1 + val1, test from test1",)
    layout = "dtd/images/<class>/<class>_NNNN.jpg, dtd/labels/{train,val,test}<1-10>.txt"
    options = {
        "partition": Option(1, "which of DTD's ten official train/val/test partitions (1-10)", tuple(range(1, 11))),
    }

    def source_splits(self, options):
        return ("train", "val"), ("test",)

    def read(self, root: Path, recipe):
        base = find_existing(root, ["dtd", "."], "dtd folder")
        prefix = base.relative_to(root).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        rows = []
        for split in ("train", "val", "test"):
            path = base / "labels" / f"{split}{recipe.options['partition']}.txt"
            for lineno, entry in read_lines(path):
                class_name, _, file_name = entry.partition("/")
                if not file_name or "/" in file_name:
                    raise UserError(f"{path}:{lineno}: expected '<class>/<file>.jpg', got {entry!r}")
                if class_name not in CLASSES:
                    raise UserError(f"{path}:{lineno}: unknown label value {class_name!r}")
                rows.append({"file_name": file_name, "source_path": f"{prefix}images/{entry}", "source_split": split,
                             "group": entry, "label": class_name})
        return Pool.from_rows(rows, recipe)


ADAPTER = DTD()
