"""EuroSAT RGB Sentinel-2 patches, 10 land-cover classes, no official split.

Native layout::

    2750/<Class>/<Class>_<n>.jpg      (64x64; newer downloads name the folder EuroSAT_RGB)

Demo and test are drawn at random from the one pool (each image on one side only).
"""

from __future__ import annotations

from pathlib import Path

from isekai_gen.manyicl import Adapter, Pool
from isekai_gen.manyicl.readers import class_folders, find_existing

CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
    "Residential", "River", "SeaLake",
)


class EuroSAT(Adapter):
    name = "eurosat"
    title = "EuroSAT"
    all_classes = CLASSES
    demo_per_class = 100
    test_per_class = 30
    group_key = "item"
    license = "MIT (EuroSAT); contains modified Copernicus Sentinel-2 data"
    redistributable = True
    notes = ("no official split: images divided at random",)
    layout = "2750/<Class>/<Class>_<n>.jpg (or EuroSAT_RGB/<Class>/...)"

    def source_splits(self, options):
        return ("all",), ("all",)

    def read(self, root: Path, recipe):
        base = find_existing(root, ["2750", "EuroSAT_RGB", "EuroSAT/2750", "."], "EuroSAT 2750 folder")
        return Pool.from_rows(class_folders(base, root, CLASSES, "all"), recipe)


ADAPTER = EuroSAT()
