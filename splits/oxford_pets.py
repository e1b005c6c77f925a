"""Oxford-IIIT Pet, fine-grained breeds: 35 of the 37, official trainval/test split.

Native layout::

    images/<Breed_name>_<n>.jpg        (capitalised breed = cat, lowercase = dog)
    annotations/list.txt, trainval.txt, test.txt
        lines "Image CLASS-ID SPECIES BREED-ID"; list.txt starts with `#` comment lines

The paper used 35 breeds without saying which two it dropped. Default: drop
``american_pit_bull_terrier`` and ``staffordshire_bull_terrier``, the one pair of breeds whose
distinction is disputed even among breed registries (a many-shot probe should not hinge on
label noise). Pick any 35 (or all 37) with ``classes``.
"""

from __future__ import annotations

from pathlib import Path

from isekai_gen.errors import UserError
from isekai_gen.manyicl import Adapter, Pool
from isekai_gen.manyicl.readers import read_lines

# CLASS-ID order (1-37): breed names sorted case-insensitively.
BREEDS = tuple(sorted((
    "Abyssinian", "Bengal", "Birman", "Bombay", "British_Shorthair", "Egyptian_Mau", "Maine_Coon", "Persian",
    "Ragdoll", "Russian_Blue", "Siamese", "Sphynx", "american_bulldog", "american_pit_bull_terrier",
    "basset_hound", "beagle", "boxer", "chihuahua", "english_cocker_spaniel", "english_setter",
    "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond", "leonberger",
    "miniature_pinscher", "newfoundland", "pomeranian", "pug", "saint_bernard", "samoyed", "scottish_terrier",
    "shiba_inu", "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier",
), key=str.lower))
DROPPED = ("american_pit_bull_terrier", "staffordshire_bull_terrier")


class OxfordPets(Adapter):
    name = "oxford_pets"
    title = "Oxford Pets"
    all_classes = BREEDS
    default_classes = tuple(b for b in BREEDS if b not in DROPPED)
    demo_per_class = 50
    test_per_class = 20
    group_key = "item"
    license = "CC BY-SA 4.0"
    redistributable = True
    notes = ("35 of 37 breeds: american_pit_bull_terrier and staffordshire_bull_terrier dropped (disputed distinction)",)
    layout = "images/<Breed>_<n>.jpg, annotations/{trainval,test}.txt"

    def source_splits(self, options):
        return ("trainval",), ("test",)

    def read(self, root: Path, recipe):
        rows = []
        for split in ("trainval", "test"):
            for image in read_annotation(root / "annotations" / f"{split}.txt"):
                rows.append({"file_name": f"{image}.jpg", "source_path": f"images/{image}.jpg", "source_split": split,
                             "group": image, "label": image.rsplit("_", 1)[0]})
        return Pool.from_rows(rows, recipe)


def read_annotation(path: Path) -> list[str]:
    """Image names of an annotation file; each line's CLASS-ID must match its breed."""
    images = []
    for lineno, line in read_lines(path):
        fields = line.split()
        if len(fields) != 4 or not all(f.isdigit() for f in fields[1:]):
            raise UserError(f"{path}:{lineno}: expected 'Image CLASS-ID SPECIES BREED-ID', got {line.strip()!r}")
        image, class_id = fields[0], int(fields[1])
        breed = image.rsplit("_", 1)[0]
        if breed not in BREEDS:
            raise UserError(f"{path}:{lineno}: unknown label value: breed {breed!r} of image {image!r}")
        if class_id != BREEDS.index(breed) + 1:
            expected = BREEDS.index(breed) + 1
            raise UserError(f"{path}:{lineno}: CLASS-ID {class_id} does not match breed {breed!r} (expected {expected})")
        images.append(image)
    return images


ADAPTER = OxfordPets()
