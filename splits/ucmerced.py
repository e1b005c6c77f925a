"""UC Merced Land Use aerial images, 21 classes x 100, no official split.

Native layout::

    UCMerced_LandUse/Images/<class>/<class>NN.tif     (NN 00-99, about 256x256)

Demo and test are drawn at random from the one pool (each image on one side only). TIFF is
re-encoded as JPEG with a ``.jpeg`` name by default, as ManyICL's UCMerced example did (most
model APIs do not take TIFF); ``image_format`` picks PNG (lossless) or keeps the TIFF.
"""

from __future__ import annotations

from pathlib import Path

from isekai_gen.manyicl import Adapter, Option, Pool
from isekai_gen.manyicl.readers import class_folders, find_existing

CLASSES = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral", "denseresidential",
    "forest", "freeway", "golfcourse", "harbor", "intersection", "mediumresidential", "mobilehomepark",
    "overpass", "parkinglot", "river", "runway", "sparseresidential", "storagetanks", "tenniscourt",
)
SUFFIXES = {"jpeg": ".jpeg", "png": ".png", "tif": ".tif"}


class UCMerced(Adapter):
    name = "ucmerced"
    title = "UCMerced"
    all_classes = CLASSES
    demo_per_class = 70
    test_per_class = 20
    group_key = "item"
    license = "UC Merced Land Use dataset (USGS National Map orthoimagery, public domain); research use"
    redistributable = True
    notes = ("no official split: images divided at random", "TIFF re-encoded as .jpeg, as ManyICL's UCMerced example")
    layout = "UCMerced_LandUse/Images/<class>/<class>NN.tif"
    options = {
        "image_format": Option(
            "jpeg", "output format: jpeg (as ManyICL's example, quality 95), png (lossless) or tif (unchanged)",
            tuple(SUFFIXES),
        ),
    }

    def source_splits(self, options):
        return ("all",), ("all",)

    def read(self, root: Path, recipe):
        base = find_existing(root, ["UCMerced_LandUse/Images", "Images", "."], "UCMerced Images folder")
        suffix = SUFFIXES[recipe.options["image_format"]]
        rows = class_folders(base, root, CLASSES, "all")
        rows = [{**row, "file_name": Path(row["file_name"]).stem + suffix} for row in rows]
        return Pool.from_rows(rows, recipe)


ADAPTER = UCMerced()
