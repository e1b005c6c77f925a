"""TerraIncognita camera-trap images (DomainBed build), 9 animal species.

Layouts found, as DomainBed's ``domainbed/scripts/download.py`` (``download_terra_incognita``)
writes them: it copies each annotated image of locations 38, 43, 46 and 100 of the Caltech
Camera Traps ECCV18 release to ``<data_dir>/terra_incognita/location_<loc>/<category>/<file>``:

- DomainBed ``--data_dir`` (the parent folder of ``terra_incognita/`` and the other datasets);
- the ``terra_incognita/`` folder itself (``location_*/<category>/``);
  either inside up to two wrapper folders (e.g. a ``TerraIncognita/`` download folder).

Categories: bird bobcat cat coyote dog empty opossum rabbit raccoon squirrel. The paper used 9
"animal species": ``empty`` (no animal) is dropped. There is no official split and the paper
does not say which camera locations it used: by default all four locations feed both sides
(items drawn at random, each image on one side only); set ``test_locations`` to one location
and ``demo_locations`` to the others for a DomainBed-style leave-one-location-out split.
Note that ``cat`` is a substring of ``bobcat``, which ManyICL's answer parser cannot tell apart.
"""

from __future__ import annotations

from isekai_gen.manyicl import Option, Pool
from isekai_gen.manyicl.layouts import Layout, LayoutAdapter
from isekai_gen.manyicl.readers import class_folders, join_strings

CATEGORIES = ("bird", "bobcat", "cat", "coyote", "dog", "empty", "opossum", "rabbit", "raccoon", "squirrel")
LOCATIONS = (38, 43, 46, 100)
DOMAINBED = "DomainBed domainbed/scripts/download.py download_terra_incognita"


class TerraIncognita(LayoutAdapter):
    name = "terraincognita"
    title = "TerraIncognita"
    aliases = ("terra_incognita", "TerraInc", "terra")
    all_classes = CATEGORIES
    default_classes = tuple(c for c in CATEGORIES if c != "empty")
    demo_per_class = 115
    test_per_class = 30
    group_key = "item"
    license = "Community Data License Agreement - Permissive 1.0 (Caltech Camera Traps)"
    redistributable = True
    notes = (
        "9 classes: the 10 DomainBed categories without `empty`",
        "all four camera locations feed both sides, images divided at random (no official split)",
        "`cat` is a substring of `bobcat`: ManyICL's parser cannot tell those answers apart",
    )
    layouts = (
        Layout("DomainBed data_dir", DOMAINBED, ("terra_incognita/location_*/",), base="terra_incognita"),
        Layout("terra_incognita folder", DOMAINBED, ("location_*/",)),
    )
    options = {
        "demo_locations": Option(list(LOCATIONS), "camera locations feeding demo (no official split: all four)",
                                 subset_of=LOCATIONS, what="camera locations"),
        "test_locations": Option(list(LOCATIONS), "camera locations feeding test (all four; images divided at random)",
                                 subset_of=LOCATIONS, what="camera locations"),
    }

    def source_splits(self, options):
        return tuple(tuple(f"location_{loc}" for loc in sorted(set(options[key])))
                     for key in ("demo_locations", "test_locations"))

    def read_layout(self, found, recipe):
        import pandas as pd

        frames = []
        for location in sorted(set(recipe.demo_splits + recipe.test_splits)):
            frame = class_folders(found.folder(location), found.root, CATEGORIES, location)
            # Category in the name too: one image id may sit in two category folders.
            frame["file_name"] = join_strings(f"{location}_", frame["label"], "_", frame["file_name"])
            frames.append(frame)
        return Pool.from_class_names(pd.concat(frames, ignore_index=True), "label", recipe)


ADAPTER = TerraIncognita()
