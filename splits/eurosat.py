"""EuroSAT RGB Sentinel-2 patches, 10 land-cover classes, no official split.

Layouts found (each ``<Class>/<Class>_<n>.jpg``, 64x64):

- torchvision download root: ``eurosat/2750/<Class>/`` — ``torchvision/datasets/eurosat.py``
  (``_base_folder = root/"eurosat"``, ``_data_folder = _base_folder/"2750"``; it unpacks
  ``EuroSAT.zip`` from the torchgeo Hugging Face mirror, md5 c8fa0143..., into ``eurosat/``);
- the ``EuroSAT.zip`` of the original release (madm.dfki.de, same md5) as it unpacks: ``2750/<Class>/``;
- the Zenodo ``EuroSAT_RGB.zip`` (github.com/phelber/eurosat README): ``EuroSAT_RGB/<Class>/``;
- the class folders themselves (Kaggle copies), any of these inside up to two wrapper folders.

Demo and test are drawn at random from the one pool (each image on one side only).
"""

from __future__ import annotations

from isekai_gen.manyicl import Pool
from isekai_gen.manyicl.hub import HubCopy
from isekai_gen.manyicl.layouts import Layout, LayoutAdapter
from isekai_gen.manyicl.readers import class_folders

CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
    "Residential", "River", "SeaLake",
)
TORCHVISION = "torchvision.datasets.EuroSAT"
POOLED = ("the copy's train/validation/test (google-research remote_sensing_representations) are not used: "
          "one pool, divided at random, as for the original")


class EuroSAT(LayoutAdapter):
    name = "eurosat"
    title = "EuroSAT"
    aliases = ("EuroSAT_RGB", "eurosat-rgb", "eurosat_2750")
    all_classes = CLASSES
    demo_per_class = 100
    test_per_class = 30
    group_key = "item"
    license = "MIT (EuroSAT); contains modified Copernicus Sentinel-2 data"
    redistributable = True
    notes = ("no official split: images divided at random",)
    layouts = (
        Layout("torchvision root", TORCHVISION, ("eurosat/2750/",), base="eurosat/2750", classes=CLASSES),
        Layout("EuroSAT.zip", "EuroSAT.zip (madm.dfki.de; torchgeo mirror)", ("2750/",), base="2750", classes=CLASSES),
        Layout("EuroSAT_RGB.zip", "Zenodo EuroSAT_RGB.zip (phelber/eurosat)", ("EuroSAT_RGB/",), base="EuroSAT_RGB",
               classes=CLASSES),
        Layout("class folders", "Kaggle copies of 2750/", (), classes=CLASSES),
    )
    # timm/eurosat-rgb: image (JPEG), label (ClassLabel, CamelCase), image_id; blanchon/EuroSAT_RGB: image,
    # label (ClassLabel, words: "Annual Crop", "Industrial Buildings", ...), filename ("AnnualCrop_1.tif").
    hub_copies = (
        HubCopy("timm/eurosat-rgb", id_column="image_id", labels={name: name for name in CLASSES},
                splits={"train": "all", "validation": "all", "test": "all"}, assignment=POOLED),
        HubCopy("blanchon/EuroSAT_RGB", id_column="filename",
                labels={"Annual Crop": "AnnualCrop", "Forest": "Forest", "Herbaceous Vegetation": "HerbaceousVegetation",
                        "Highway": "Highway", "Industrial Buildings": "Industrial", "Pasture": "Pasture",
                        "Permanent Crop": "PermanentCrop", "Residential Buildings": "Residential", "River": "River",
                        "SeaLake": "SeaLake"},
                splits={"train": "all", "validation": "all", "test": "all"}, assignment=POOLED),
    )

    def source_splits(self, options):
        return ("all",), ("all",)

    def read_layout(self, found, recipe):
        return Pool.from_class_names(class_folders(found.base, found.root, CLASSES, "all"), "label", recipe)


ADAPTER = EuroSAT()
