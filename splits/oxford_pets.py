"""Oxford-IIIT Pet, fine-grained breeds: 35 of the 37, official trainval/test split.

Native layout (``images.tar.gz`` + ``annotations.tar.gz`` from robots.ox.ac.uk/~vgg/data/pets)::

    images/<Breed_name>_<n>.jpg        (capitalised breed = cat, lowercase = dog)
    annotations/list.txt, trainval.txt, test.txt
        lines "Image CLASS-ID SPECIES BREED-ID"; list.txt starts with `#` comment lines

Layouts found: the two archives unpacked side by side; the torchvision root
(``torchvision/datasets/oxford_iiit_pet.py``: ``_base_folder = root/"oxford-iiit-pet"`` holding
``images/`` and ``annotations/``, lines split as ``image_id, label, bin_label, _``, images
``images/<image_id>.jpg``); either inside up to two wrapper folders.

The paper used 35 breeds without saying which two it dropped. Default: drop
``american_pit_bull_terrier`` and ``staffordshire_bull_terrier``, the one pair of breeds whose
distinction is disputed even among breed registries (a many-shot probe should not hinge on
label noise). Pick any 35 (or all 37) with ``classes``.
"""

from __future__ import annotations

from pathlib import Path

from isekai_gen.errors import UserError
from isekai_gen.manyicl import Pool
from isekai_gen.manyicl.hub import HubCopy
from isekai_gen.manyicl.layouts import Layout, LayoutAdapter
from isekai_gen.manyicl.readers import contained_paths, read_lines
from isekai_gen.paths import check_file_name

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
CLASS_IDS = {breed: number for number, breed in enumerate(BREEDS, start=1)}
ARCHIVES = "images.tar.gz + annotations.tar.gz (robots.ox.ac.uk/~vgg/data/pets)"
MARKERS = ("images/", "annotations/trainval.txt", "annotations/test.txt")


class OxfordPets(LayoutAdapter):
    name = "oxford_pets"
    title = "Oxford Pets"
    aliases = ("oxford_iiit_pet", "OxfordIIITPet", "oxford-iiit-pets", "oxford_pet", "pets")
    all_classes = BREEDS
    default_classes = tuple(b for b in BREEDS if b not in DROPPED)
    demo_per_class = 50
    test_per_class = 20
    group_key = "item"
    license = "CC BY-SA 4.0"
    redistributable = True
    notes = ("35 of 37 breeds: american_pit_bull_terrier and staffordshire_bull_terrier dropped (disputed distinction)",)
    layouts = (
        Layout("official archives", ARCHIVES, MARKERS),
        Layout("torchvision root", "torchvision.datasets.OxfordIIITPet",
               tuple(f"oxford-iiit-pet/{m}" for m in MARKERS), base="oxford-iiit-pet"),
    )
    # timm/oxford-iiit-pet: image, label (ClassLabel, the 37 breeds in lower case), image_id (the original
    # stem, e.g. Maine_Coon_204), label_cat_dog; train (= trainval, 3,680) / test (3,669).
    hub_copies = (
        HubCopy("timm/oxford-iiit-pet", id_column="image_id", labels={breed.lower(): breed for breed in BREEDS},
                splits={"train": "trainval", "test": "test"},
                assignment="the copy's train/test are the official trainval/test: demo from train, test from test"),
    )

    def source_splits(self, options):
        return ("trainval",), ("test",)

    def read_layout(self, found, recipe):
        import pandas as pd

        frames = []
        for split in ("trainval", "test"):
            path = found.folder("annotations") / f"{split}.txt"
            images, breeds, lines = read_annotation(path)
            file_names = [f"{image}.jpg" for image in images]
            source_path = contained_paths(found.root, found.prefix + "images/", file_names, path, "image", lines)
            # Inside the root or not, an image name is a bare file stem (torchvision reads images/<id>.jpg).
            for image, line in zip(images, lines):
                check_file_name(image, what="image name", source=f"{path}:{line}")
            frames.append(pd.DataFrame({"file_name": file_names, "source_path": source_path, "source_split": split,
                                        "group": images, "label": breeds}))
        return Pool.from_class_names(pd.concat(frames, ignore_index=True), "label", recipe)


def read_annotation(path: Path):
    """(image names, breeds, line numbers) of an annotation file; each line's CLASS-ID must match its breed.

    A plain loop: an annotation list has ~3.7k lines, where pandas' string methods cost more than they save.
    """
    images, breeds, lines = [], [], []
    for lineno, line in read_lines(path):
        fields = line.split()
        if len(fields) != 4 or not all(f.isdigit() for f in fields[1:]):
            raise UserError(f"{path}:{lineno}: expected 'Image CLASS-ID SPECIES BREED-ID', got {line.strip()!r}")
        image, class_id = fields[0], int(fields[1])
        breed = image.rsplit("_", 1)[0]
        expected = CLASS_IDS.get(breed)
        if expected is None:
            raise UserError(f"{path}:{lineno}: unknown label value: breed {breed!r} of image {image!r}")
        if class_id != expected:
            raise UserError(f"{path}:{lineno}: CLASS-ID {class_id} does not match breed {breed!r} (expected {expected})")
        images.append(image)
        breeds.append(breed)
        lines.append(lineno)
    return images, breeds, lines


ADAPTER = OxfordPets()
