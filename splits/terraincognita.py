"""TerraIncognita camera-trap images (DomainBed build), 9 animal species.

Native layout::

    terra_incognita/location_{38,43,46,100}/<category>/<image>.jpg
    categories: bird bobcat cat coyote dog empty opossum rabbit raccoon squirrel

The paper used 9 "animal species": ``empty`` (no animal) is dropped. There is no official split
and the paper does not say which camera locations it used: by default all four locations feed
both sides (items drawn at random, each image on one side only); set ``test_locations`` to one
location and ``demo_locations`` to the others for a DomainBed-style leave-one-location-out split.
Note that ``cat`` is a substring of ``bobcat``, which ManyICL's answer parser cannot tell apart.
"""

from __future__ import annotations

from pathlib import Path

from isekai_gen.errors import UserError
from isekai_gen.manyicl import Adapter, Option, Pool
from isekai_gen.manyicl.readers import class_folders, find_existing

CATEGORIES = ("bird", "bobcat", "cat", "coyote", "dog", "empty", "opossum", "rabbit", "raccoon", "squirrel")
LOCATIONS = (38, 43, 46, 100)


class TerraIncognita(Adapter):
    name = "terraincognita"
    title = "TerraIncognita"
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
    layout = "terra_incognita/location_{38,43,46,100}/<category>/<image>"
    options = {
        "demo_locations": Option(list(LOCATIONS), "camera locations feeding demo (no official split: all four)"),
        "test_locations": Option(list(LOCATIONS), "camera locations feeding test (all four; images divided at random)"),
    }

    def source_splits(self, options):
        sides = []
        for key in ("demo_locations", "test_locations"):
            locations = options[key]
            if not isinstance(locations, list) or not locations or any(loc not in LOCATIONS for loc in locations):
                known = ", ".join(map(str, LOCATIONS))
                raise UserError(f"{self.name}: {key} must be a non-empty list among {known}, got {locations!r}")
            sides.append(tuple(f"location_{loc}" for loc in sorted(set(locations))))
        return tuple(sides)

    def read(self, root: Path, recipe):
        base = find_existing(root, ["terra_incognita", "."], "terra_incognita folder")
        rows = []
        for location in sorted(set(recipe.demo_splits + recipe.test_splits)):
            for row in class_folders(base / location, root, CATEGORIES, location):
                # Category in the name too: one image id may sit in two category folders.
                rows.append({**row, "file_name": f"{location}_{row['label']}_{row['file_name']}"})
        return Pool.from_rows(rows, recipe)


ADAPTER = TerraIncognita()
