"""DTD (Describable Textures Dataset r1.0.1), 47 texture classes, official partition 1.

Native layout (``dtd-r1.0.1.tar.gz`` from robots.ox.ac.uk/~vgg/data/dtd)::

    dtd/images/<class>/<class>_NNNN.jpg
    dtd/labels/{train,val,test}{1..10}.txt      one "<class>/<file>.jpg" per line

Layouts found: the parent folder of ``dtd/`` (the archive as it unpacks); the torchvision root
(``torchvision/datasets/dtd.py``: ``_base_folder = root/"dtd"``, the archive unpacked into it, so
``root/dtd/dtd/{images,labels}``); the ``dtd/`` folder itself; any of them inside up to two
wrapper folders. Demo from train + val of the chosen partition (80 per class), test from its
test list (40 per class).
"""

from __future__ import annotations

from isekai_gen.errors import UserError
from isekai_gen.manyicl import Option, Pool
from isekai_gen.manyicl.hub import HubCopy
from isekai_gen.manyicl.layouts import Layout, LayoutAdapter
from isekai_gen.manyicl.readers import contained_paths, read_lines

CLASSES = (
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked", "crosshatched",
    "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly", "gauzy", "grid", "grooved",
    "honeycombed", "interlaced", "knitted", "lacelike", "lined", "marbled", "matted", "meshed", "paisley",
    "perforated", "pitted", "pleated", "polka-dotted", "porous", "potholed", "scaly", "smeared", "spiralled",
    "sprinkled", "stained", "stratified", "striped", "studded", "swirly", "veined", "waffled", "woven",
    "wrinkled", "zigzagged",
)
KNOWN = frozenset(CLASSES)
ARCHIVE = "dtd-r1.0.1.tar.gz (robots.ox.ac.uk/~vgg/data/dtd)"
MARKERS = ("images/", "labels/train1.txt")


class DTD(LayoutAdapter):
    name = "dtd"
    title = "DTD"
    aliases = ("describable_textures", "DescribableTextures", "dtd-r1.0.1")
    all_classes = CLASSES
    demo_per_class = 50
    test_per_class = 20
    group_key = "item"
    license = "DTD terms: research use only (images collected from Flickr)"
    redistributable = False
    notes = ("official partition 1: demo from train1 + val1, test from test1",)
    layouts = (
        Layout("dtd-r1.0.1 archive", ARCHIVE, tuple(f"dtd/{m}" for m in MARKERS), base="dtd"),
        Layout("torchvision root", "torchvision.datasets.DTD", tuple(f"dtd/dtd/{m}" for m in MARKERS), base="dtd/dtd"),
        Layout("dtd folder", ARCHIVE, MARKERS),
    )
    # tanganke/dtd: image, label (ClassLabel, the 47 names); train 3,760 (= train1 + val1) / test 1,880 (test1).
    # mcimpoi/dtd_split_1 (the author's upload of partition 1): image, label; train / validation / test.
    hub_copies = (
        HubCopy("tanganke/dtd", labels={name: name for name in CLASSES}, splits={"train": "train", "test": "test"},
                options={"partition": 1},
                assignment="partition 1: the copy's train (train1 + val1) feeds demo, its test (test1) test"),
        HubCopy("mcimpoi/dtd_split_1", labels={name: name for name in CLASSES},
                splits={"train": "train", "validation": "val", "test": "test"}, options={"partition": 1},
                assignment="partition 1: the copy's train and validation feed demo, its test test"),
    )
    options = {
        "partition": Option(1, "which of DTD's ten official train/val/test partitions (1-10)", tuple(range(1, 11))),
    }

    def source_splits(self, options):
        return ("train", "val"), ("test",)

    def read_layout(self, found, recipe):
        import pandas as pd

        frames = []
        for split in ("train", "val", "test"):
            path = found.folder("labels") / f"{split}{recipe.options['partition']}.txt"
            # A plain loop: a label list has ~2k lines, where pandas' string methods cost more than they save.
            lines, entries, names, labels = [], [], [], []
            for lineno, entry in read_lines(path):
                class_name, _, file_name = entry.partition("/")
                if not file_name or "/" in file_name:
                    raise UserError(f"{path}:{lineno}: expected '<class>/<file>.jpg', got {entry!r}")
                if class_name not in KNOWN:
                    raise UserError(f"{path}:{lineno}: unknown label value {class_name!r}")
                lines.append(lineno)
                entries.append(entry)
                names.append(file_name)
                labels.append(class_name)
            source_path = contained_paths(found.root, found.prefix + "images/", entries, path, "image", lines)
            frames.append(pd.DataFrame({"file_name": names, "source_path": source_path, "source_split": split,
                                        "group": entries, "label": labels}))
        return Pool.from_class_names(pd.concat(frames, ignore_index=True), "label", recipe)


ADAPTER = DTD()
