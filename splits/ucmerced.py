"""UC Merced Land Use aerial images, 21 classes x 100, no official split.

Layouts found (each ``<class>/<class>NN.tif``, NN 00-99, about 256x256):

- ``UCMerced_LandUse.zip`` from weegee.vision.ucmerced.edu as it unpacks: ``UCMerced_LandUse/Images/<class>/``
  (torchgeo's ``torchgeo/datasets/ucmerced.py`` downloads the same zip from its Hugging Face mirror
  and reads ``base_dir = os.path.join("UCMerced_LandUse", "Images")``);
- the ``UCMerced_LandUse/`` folder itself (``Images/<class>/``);
- the class folders themselves (Kaggle copies), any of these inside up to two wrapper folders.

Demo and test are drawn at random from the one pool (each image on one side only). TIFF is
re-encoded as JPEG with a ``.jpeg`` name by default, as ManyICL's UCMerced example did (most
model APIs do not take TIFF); ``image_format`` picks PNG (lossless) or keeps the TIFF.
"""

from __future__ import annotations

from isekai_gen.manyicl import Option, Pool
from isekai_gen.manyicl.layouts import Layout, LayoutAdapter
from isekai_gen.manyicl.hub import HubCopy
from isekai_gen.manyicl.readers import class_folders, join_strings

CLASSES = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral", "denseresidential",
    "forest", "freeway", "golfcourse", "harbor", "intersection", "mediumresidential", "mobilehomepark",
    "overpass", "parkinglot", "river", "runway", "sparseresidential", "storagetanks", "tenniscourt",
)
SUFFIXES = {"jpeg": ".jpeg", "png": ".png", "tif": ".tif"}
ZIP = "UCMerced_LandUse.zip (weegee.vision.ucmerced.edu); torchgeo.datasets.UCMerced"


class UCMerced(LayoutAdapter):
    name = "ucmerced"
    title = "UCMerced"
    aliases = ("UCMerced_LandUse", "uc_merced", "ucm", "uc_merced_land_use")
    all_classes = CLASSES
    demo_per_class = 70
    test_per_class = 20
    group_key = "item"
    license = "UC Merced Land Use dataset (USGS National Map orthoimagery, public domain); research use"
    redistributable = True
    notes = ("no official split: images divided at random", "TIFF re-encoded as .jpeg, as ManyICL's UCMerced example")
    layouts = (
        Layout("UCMerced_LandUse.zip", ZIP, ("UCMerced_LandUse/Images/",), base="UCMerced_LandUse/Images",
               classes=CLASSES),
        Layout("UCMerced_LandUse folder", ZIP, ("Images/",), base="Images", classes=CLASSES),
        Layout("class folders", "Kaggle copies of Images/", (), classes=CLASSES),
    )
    # blanchon/UC_Merced: image, label (ClassLabel, the 21 folder names); one split, train (2,100).
    hub_copies = (
        HubCopy("blanchon/UC_Merced", labels={name: name for name in CLASSES}, splits={"train": "all"},
                assignment="one pool, divided at random, as for the original"),
    )
    options = {
        "image_format": Option(
            "jpeg", "output format: jpeg (as ManyICL's example, quality 95), png (lossless) or tif (unchanged)",
            tuple(SUFFIXES),
        ),
    }

    def source_splits(self, options):
        return ("all",), ("all",)

    def read_layout(self, found, recipe):
        frame = class_folders(found.base, found.root, CLASSES, "all")
        stems = frame["file_name"].str.replace(r"\.[^.]*$", "", regex=True)
        frame["file_name"] = join_strings(stems, SUFFIXES[recipe.options["image_format"]])
        return Pool.from_class_names(frame, "label", recipe)


ADAPTER = UCMerced()
