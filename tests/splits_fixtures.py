"""Tiny copies of the ten ManyICL datasets in their exact native on-disk layouts.

Each writer builds a small but faithful version of the distributed layout under ``root``: real
folder and file names, real metadata headers and their quirks (HAM10000 metadata without
extension and tab-separated, both ISIC 2018 ground-truth shapes, CheXpert ``-1.0`` and blank
cells with frontal and lateral views, Camelyon17's unnamed index column and zero-padded patients,
Oxford Pets' ``#`` comment lines, ...). Images are 8x8 pixels with content derived from the name.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from PIL import Image

FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF"}


def write_image(path: Path) -> None:
    """An 8x8 image whose colour derives from the last three path parts (distinct files, distinct bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shade = hashlib.sha256("/".join(path.parts[-3:]).encode()).digest()
    Image.new("RGB", (8, 8), tuple(shade[:3])).save(path, format=FORMATS[path.suffix.lower()])


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- HAM10000 + ISIC 2018 Task 3 test set ---------------------------------------------------

HAM_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
HAM_HEADER = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]


HAM_PART_FOLDERS = ("HAM10000_images_part_1", "HAM10000_images_part_2")


def ham10000(root: Path, lesions_per_class: int = 4, test_per_class: int = 3, *, metadata_name: str = "HAM10000_metadata.csv",
             sep: str = ",", truth_shape: str = "one-hot", images: str = "parts", test_layout: str = "dataverse",
             newline: str = "\n", kaggle_extras: bool = False) -> Path:
    """Lesions with 1-2 images each, then the ISIC 2018 Task 3 test set.

    ``metadata_name="HAM10000_metadata", sep="\t"`` writes the Dataverse variant: no extension,
    tab-separated, quoted cells. ``truth_shape`` is ``one-hot`` or ``metadata``. ``images``:
    ``parts`` (HAM10000_images_part_{1,2}/), ``flat`` (both Dataverse zips unpacked into the root)
    or a folder name (``HAM10000``). ``test_layout``: ``dataverse`` (ISIC2018_Task3_Test_Images/ +
    ground truth beside) or ``challenge`` (the ISIC challenge's ISIC2018_Task3_Test_Input/ with its
    ATTRIBUTION/LICENSE files, ISIC2018_Task3_Test_GroundTruth/ISIC2018_Task3_Test_GroundTruth.csv).
    ``newline="\r\n", kaggle_extras=True``: Kaggle's copy (CRLF metadata, lower-case duplicate
    part folders, hmnist csvs).
    """
    rows, number = [], 24306
    for cls in HAM_CLASSES:
        for lesion in range(lesions_per_class):
            for _ in range(1 + lesion % 2):
                image_id = f"ISIC_{number:07d}"
                folder = {"parts": HAM_PART_FOLDERS[number % 2 == 0], "flat": "."}.get(images, images)
                write_image(root / folder / f"{image_id}.jpg")
                if kaggle_extras:
                    write_image(root / folder.lower() / f"{image_id}.jpg")
                rows.append([f"HAM_{HAM_CLASSES.index(cls):03d}{lesion:04d}", image_id, cls, "histo", "45.0", "male", "back"])
                number += 1
    # Dataverse's tab-separated ingest of the metadata quotes every text cell.
    quote = (lambda cell: f'"{cell}"') if sep == "\t" else (lambda cell: cell)
    write_text(root / metadata_name, newline.join(sep.join(map(quote, r)) for r in [HAM_HEADER, *rows]) + newline)
    if kaggle_extras:
        write_text(root / "hmnist_8_8_RGB.csv", "pixel0000,label\n1,2\n")
    truth = []
    images_folder = "ISIC2018_Task3_Test_Input" if test_layout == "challenge" else "ISIC2018_Task3_Test_Images"
    for cls in HAM_CLASSES:
        for _ in range(test_per_class):
            image_id = f"ISIC_{number + 10000:07d}"
            write_image(root / images_folder / f"{image_id}.jpg")
            truth.append((image_id, cls))
            number += 1
    if test_layout == "challenge":
        write_text(root / images_folder / "ATTRIBUTION.txt", "ISIC_0034524.jpg,ViDIR Group\n")
        write_text(root / images_folder / "LICENSE.txt", "CC-BY-NC\n")
    if truth_shape == "one-hot":
        lines = ["image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"]
        lines += [",".join([i, *("1.0" if c.lower() == cls else "0.0" for c in "MEL NV BCC AKIEC BKL DF VASC".split())]) for i, cls in truth]
    else:
        lines = [",".join(HAM_HEADER + ["dataset"])]
        lines += [f"IL_{n:07d},{i},{cls},histo,50.0,female,trunk,vidir_modern" for n, (i, cls) in enumerate(truth)]
    truth_path = "ISIC2018_Task3_Test_GroundTruth.csv"
    if test_layout == "challenge":
        truth_path = f"ISIC2018_Task3_Test_GroundTruth/{truth_path}"
    write_text(root / truth_path, "\n".join(lines) + "\n")
    return root


# --- FIVES ---------------------------------------------------------------------------------------

def fives(root: Path, train_per_class: int = 5, test_per_class: int = 3) -> Path:
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        number = 1
        for letter in "ADGN":
            for _ in range(per_class):
                write_image(root / split / "Original" / f"{number}_{letter}.png")
                write_image(root / split / "Ground truth" / f"{number}_{letter}.png")
                number += 1
    return root


# --- CheXpert -------------------------------------------------------------------------------------

CHEXPERT_HEADER = (
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
    "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
    "Fracture,Support Devices"
)


def chexpert(root: Path, train_patients: int = 40, valid_patients: int = 30, seed: int = 0, *,
             release_name: str = "CheXpert-v1.0-small", folder: str | None = None) -> Path:
    """Train rows mix 1.0 / 0.0 / -1.0 / blank and frontal + lateral views; valid has 0/1 only.

    ``Path`` cells start with ``release_name``; the files go to ``root/<folder>`` (default: the
    release name; ``"."``: straight into the root, as Kaggle copies unpack).
    """
    rng = random.Random(seed)
    folder = release_name if folder is None else folder
    release = root / folder
    patient = 1
    for split, patients, values, weights in (
        ("train", train_patients, ["1.0", "0.0", "-1.0", ""], [4, 3, 1, 2]),
        ("valid", valid_patients, ["1.0", "0.0"], [1, 1]),
    ):
        lines = [CHEXPERT_HEADER]
        for _ in range(patients):
            for study in range(1, 3 if split == "train" else 2):
                views = [("view1_frontal.jpg", "Frontal", "AP"), ("view2_lateral.jpg", "Lateral", "")]
                for view, orientation, appa in views[: 1 + (patient % 2)]:
                    rel = f"{split}/patient{patient:05d}/study{study}/{view}"
                    write_image(release / rel)
                    rel = f"{release_name}/{rel}"
                    labels = rng.choices(values, weights, k=14)
                    lines.append(",".join([rel, "Female", "68", orientation, appa, *labels]))
            patient += 1
        write_text(release / f"{split}.csv", "\n".join(lines) + "\n")
    return root


# --- Camelyon17 (WILDS v1.0) ----------------------------------------------------------------------

def camelyon17(root: Path, patients_per_center: int = 2, patches_per_node: int = 6, folder: str = "camelyon17_v1.0") -> Path:
    base = root / folder
    lines, index = [",patient,node,x_coord,y_coord,tumor,slide,center,split"], 0
    for center in range(5):
        for p in range(patients_per_center):
            patient = f"{center * 10 + p:03d}"  # zero-padded, as WILDS writes it
            for node in range(2):
                for k in range(patches_per_node):
                    x, y = 3328 + 32 * k, 21792 + 32 * node
                    tumor = (k + node + p) % 2
                    write_image(base / "patches" / f"patient_{patient}_node_{node}" / f"patch_patient_{patient}_node_{node}_x_{x}_y_{y}.png")
                    lines.append(f"{index},{patient},{node},{x},{y},{tumor},{center * 10 + p},{center},{index % 2}")
                    index += 1
    write_text(base / "metadata.csv", "\n".join(lines) + "\n")
    return root


# --- TerraIncognita (DomainBed) -------------------------------------------------------------------

TERRA_CATEGORIES = ("bird", "bobcat", "cat", "coyote", "dog", "empty", "opossum", "rabbit", "raccoon", "squirrel")


def terraincognita(root: Path, per_location_class: int = 2, folder: str = "terra_incognita") -> Path:
    """DomainBed's tree: ``terra_incognita/location_<loc>/<category>/<Caltech image id>.jpg``."""
    for location in (38, 43, 46, 100):
        for category in TERRA_CATEGORIES:
            for k in range(per_location_class):
                image = f"5{location:03d}{TERRA_CATEGORIES.index(category)}{k:02d}-23d2-11e8-a6a3-ec086b02610b.jpg"
                write_image(root / folder / f"location_{location}" / category / image)
    return root


# --- UCMerced ---------------------------------------------------------------------------------------

UCM_CLASSES = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral", "denseresidential",
    "forest", "freeway", "golfcourse", "harbor", "intersection", "mediumresidential", "mobilehomepark",
    "overpass", "parkinglot", "river", "runway", "sparseresidential", "storagetanks", "tenniscourt",
)


def ucmerced(root: Path, per_class: int = 4) -> Path:
    for cls in UCM_CLASSES:
        for n in range(per_class):
            write_image(root / "UCMerced_LandUse" / "Images" / cls / f"{cls}{n:02d}.tif")
    return root


# --- EuroSAT ----------------------------------------------------------------------------------------

EUROSAT_CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake")


def eurosat(root: Path, per_class: int = 4, folder: str = "2750") -> Path:
    """``folder``: 2750 (EuroSAT.zip), EuroSAT_RGB (Zenodo), eurosat/2750 (torchvision root), "." (class folders)."""
    for cls in EUROSAT_CLASSES:
        for n in range(1, per_class + 1):
            write_image(root / folder / cls / f"{cls}_{n}.jpg")
    return root


# --- Oxford-IIIT Pet --------------------------------------------------------------------------------

PET_BREEDS = tuple(sorted((
    "Abyssinian", "Bengal", "Birman", "Bombay", "British_Shorthair", "Egyptian_Mau", "Maine_Coon", "Persian",
    "Ragdoll", "Russian_Blue", "Siamese", "Sphynx", "american_bulldog", "american_pit_bull_terrier",
    "basset_hound", "beagle", "boxer", "chihuahua", "english_cocker_spaniel", "english_setter",
    "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond", "leonberger",
    "miniature_pinscher", "newfoundland", "pomeranian", "pug", "saint_bernard", "samoyed", "scottish_terrier",
    "shiba_inu", "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier",
), key=str.lower))

PET_LIST_HEADER = """#Image CLASS-ID SPECIES BREED ID
#ID: 1:37 Class ids
#SPECIES: 1:Cat 2:Dog
#BREED ID: 1-25:Cat 1:12:Dog
#All images with 1st letter as captial are cat images
#images with small first letter are dog images
"""


def oxford_pets(root: Path, trainval_per_breed: int = 3, test_per_breed: int = 2) -> Path:
    lines = {"trainval": [], "test": []}
    cat_ids = dog_ids = 0
    for class_id, breed in enumerate(PET_BREEDS, start=1):
        species = 1 if breed[0].isupper() else 2
        if species == 1:
            cat_ids += 1
        else:
            dog_ids += 1
        breed_id = cat_ids if species == 1 else dog_ids
        for n in range(1, trainval_per_breed + test_per_breed + 1):
            image = f"{breed}_{n}"
            write_image(root / "images" / f"{image}.jpg")
            lines["trainval" if n <= trainval_per_breed else "test"].append(f"{image} {class_id} {species} {breed_id}")
    for split, split_lines in lines.items():
        write_text(root / "annotations" / f"{split}.txt", "\n".join(split_lines) + "\n")
    write_text(root / "annotations" / "list.txt", PET_LIST_HEADER + "\n".join(lines["trainval"] + lines["test"]) + "\n")
    return root


# --- DTD ----------------------------------------------------------------------------------------------

DTD_CLASSES = (
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked", "crosshatched",
    "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly", "gauzy", "grid", "grooved",
    "honeycombed", "interlaced", "knitted", "lacelike", "lined", "marbled", "matted", "meshed", "paisley",
    "perforated", "pitted", "pleated", "polka-dotted", "porous", "potholed", "scaly", "smeared", "spiralled",
    "sprinkled", "stained", "stratified", "striped", "studded", "swirly", "veined", "waffled", "woven",
    "wrinkled", "zigzagged",
)


def dtd(root: Path, per_split: int = 2, partitions: int = 2) -> Path:
    """Each class has 3 * per_split images; partition p rotates which third is test."""
    base = root / "dtd"
    names = {cls: [f"{cls}/{cls}_{n:04d}.jpg" for n in range(1, 3 * per_split + 1)] for cls in DTD_CLASSES}
    for entries in names.values():
        for entry in entries:
            write_image(base / "images" / entry)
    for p in range(1, partitions + 1):
        for offset, split in enumerate(("train", "val", "test")):
            start = ((offset + p - 1) % 3) * per_split
            lines = [e for entries in names.values() for e in entries[start:start + per_split]]
            write_text(base / "labels" / f"{split}{p}.txt", "\n".join(lines) + "\n")
    return root


# --- DrugOOD LBAP ---------------------------------------------------------------------------------------

def smiles_series(n: int, offset: int = 0) -> list[str]:
    """Distinct valid molecules: linear alkyl chains ending in one of a few functional groups."""
    ends = ["O", "N", "Cl", "C(=O)O", "C#N"]
    return [f"C{'C' * ((i + offset) // len(ends))}{ends[(i + offset) % len(ends)]}" for i in range(n)]


def drugood(root: Path, train: int = 12, ood_test: int = 8, name: str = "lbap_core_ic50_assay.json") -> Path:
    """An LBAP file as DrugOOD's curator writes it (``cfg``, ``split``, ``statistics``); ``name`` may hold a folder."""
    molecules = smiles_series(train + ood_test + 4)

    def cases(smiles_list, domain):
        return [{"smiles": s, "reg_label": 5.0 + i % 3, "assay_id": f"CHEMBL{1000 + domain}", "cls_label": i % 2,
                 "domain_id": domain + i % 2} for i, s in enumerate(smiles_list)]

    data = {
        "cfg": {"classification_threshold": {"lower_bound": 4, "upper_bound": 10, "value": 5}},
        "split": {
            "train": cases(molecules[:train], 0),
            "ood_val": cases(molecules[train:train + 2], 10),
            "ood_test": cases(molecules[train + 2:train + 2 + ood_test], 20),
            "iid_val": cases(molecules[train + 2 + ood_test:], 0),
            "iid_test": cases(molecules[:2], 0),
        },
        "statistics": {"thr_for_cls": 5, "train datapoints": train, "ood_test datapoints": ood_test},
    }
    write_text(root / name, json.dumps(data))
    return root


WRITERS = {
    "ham10000": ham10000, "fives": fives, "chexpert": chexpert, "camelyon17": camelyon17,
    "terraincognita": terraincognita, "ucmerced": ucmerced, "eurosat": eurosat, "oxford_pets": oxford_pets,
    "dtd": dtd, "drugood": drugood,
}

# Small per-class sizes each tiny dataset can satisfy with the default recipe.
SMALL_SIZES = {
    "ham10000": (4, 2), "fives": (4, 2), "chexpert": (3, 2), "camelyon17": (5, 3), "terraincognita": (3, 2),
    "ucmerced": (2, 2), "eurosat": (2, 2), "oxford_pets": (3, 2), "dtd": (3, 2), "drugood": (4, 3),
}
