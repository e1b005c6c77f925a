"""Hub copies as split sources, split manifests, and the bounded-memory content checks.

The parquet files are written by ``datasets`` itself (``Dataset.to_parquet``) in each copy's
schema as its card's ``dataset_info`` declares it (columns, dtypes, ClassLabel names, splits):
marmal88/skin_cancer, timm/oxford-iiit-pet, timm/eurosat-rgb, blanchon/EuroSAT_RGB. The
``--source hf:`` path runs against a pre-filled huggingface_hub cache with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image as PILImage

from isekai_gen.errors import UserError
from isekai_gen.manyicl import build_split, read_split
from isekai_gen.manyicl.content import inspect_image
from isekai_gen.manyicl.from_manifest import materialize_manifest
from isekai_gen.manyicl.manifest import read_manifest
from isekai_gen.splits import get_adapter

from splits_fixtures import EUROSAT_CLASSES, eurosat

datasets = pytest.importorskip("datasets")

HAM_DX = {"akiec": "actinic_keratoses", "bcc": "basal_cell_carcinoma", "bkl": "benign_keratosis-like_lesions",
          "df": "dermatofibroma", "mel": "melanoma", "nv": "melanocytic_Nevi", "vasc": "vascular_lesions"}
PET_NAMES = ["abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "bengal",
             "birman", "bombay", "boxer", "british_shorthair", "chihuahua", "egyptian_mau", "english_cocker_spaniel",
             "english_setter", "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond",
             "leonberger", "maine_coon", "miniature_pinscher", "newfoundland", "persian", "pomeranian", "pug",
             "ragdoll", "russian_blue", "saint_bernard", "samoyed", "scottish_terrier", "shiba_inu", "siamese",
             "sphynx", "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier"]  # the card's order
BLANCHON_EUROSAT = ["Annual Crop", "Forest", "Herbaceous Vegetation", "Highway", "Industrial Buildings", "Pasture",
                    "Permanent Crop", "Residential Buildings", "River", "SeaLake"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def image_bytes(seed: str, fmt: str = "JPEG") -> bytes:
    shade = hashlib.sha256(seed.encode()).digest()
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), tuple(shade[:3])).save(buffer, format=fmt)
    return buffer.getvalue()


def write_split(root: Path, split: str, columns: dict, features: dict) -> None:
    """One split as ``datasets`` pushes it: ``data/<split>-00000-of-00001.parquet``."""
    from datasets import Dataset, Features

    (root / "data").mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(columns, features=Features(features)).to_parquet(
        str(root / "data" / f"{split}-00000-of-00001.parquet"))


def ham_copy(root: Path, repeated: int = 2) -> Path:
    """marmal88/skin_cancer: dx as long-name strings; the same image_id also in a later split."""
    from datasets import Image, Value

    features = {"image": Image(), "image_id": Value("string"), "lesion_id": Value("string"), "dx": Value("string"),
                "dx_type": Value("string"), "age": Value("float64"), "sex": Value("string"),
                "localization": Value("string")}
    number, rows = 24306, {split: {key: [] for key in features} for split in ("train", "validation", "test")}
    for cls, dx in HAM_DX.items():
        for lesion in range(6):
            for _ in range(2):
                split = ("train", "validation", "test")[lesion % 3]
                image_id = f"ISIC_{number:07d}"
                for target in [split] + (["test"] if number % 5 == 0 and split != "test" else []):
                    values = rows[target]
                    values["image"].append({"bytes": image_bytes(image_id), "path": f"{image_id}.jpg"})
                    values["image_id"].append(image_id)
                    values["lesion_id"].append(f"HAM_{cls}{lesion}")
                    values["dx"].append(dx)
                    values["dx_type"].append("histo")
                    values["age"].append(50.0)
                    values["sex"].append("male")
                    values["localization"].append("back")
                number += 1
    for split, columns in rows.items():
        write_split(root, split, columns, features)
    return root


def pets_copy(root: Path, png_for: str = "Bengal_1") -> Path:
    """timm/oxford-iiit-pet: label ClassLabel in lower case, image_id the original stem, label_cat_dog."""
    from datasets import ClassLabel, Image, Value

    features = {"image": Image(), "label": ClassLabel(names=PET_NAMES), "image_id": Value("string"),
                "label_cat_dog": ClassLabel(names=["cat", "dog"])}
    breeds = get_adapter("oxford_pets").all_classes
    for split, count in (("train", 3), ("test", 2)):
        columns = {key: [] for key in features}
        for breed in breeds:
            for n in range(count):
                stem = f"{breed}_{n + (0 if split == 'train' else 100)}"
                fmt = "PNG" if stem == png_for else "JPEG"  # the original ships PNG bytes named .jpg
                columns["image"].append({"bytes": image_bytes(stem, fmt), "path": None})
                columns["label"].append(PET_NAMES.index(breed.lower()))
                columns["image_id"].append(stem)
                columns["label_cat_dog"].append(0 if breed[0].isupper() else 1)
        write_split(root, split, columns, features)
    return root


def eurosat_copy(root: Path, names=tuple(EUROSAT_CLASSES), id_column: str = "image_id", per_split: int = 4) -> Path:
    from datasets import ClassLabel, Image, Value

    features = {"image": Image(), "label": ClassLabel(names=list(names)), id_column: Value("string")}
    for split in ("train", "validation", "test"):
        columns = {key: [] for key in features}
        for code, cls in enumerate(EUROSAT_CLASSES):
            for n in range(per_split):
                stem = f"{cls}_{split}{n}"
                columns["image"].append({"bytes": image_bytes(stem), "path": None})
                columns["label"].append(code)
                columns[id_column].append(f"{stem}.tif" if id_column == "filename" else stem)
        write_split(root, split, columns, features)
    return root


def csv_bytes(folder: Path) -> tuple[bytes, bytes]:
    return (folder / "demo.csv").read_bytes(), (folder / "test.csv").read_bytes()


# --- Hub copies --------------------------------------------------------------------------------


def test_ham_copy_maps_labels_folds_repeated_images_and_keeps_lesions_on_one_side(tmp_path):
    root = ham_copy(tmp_path / "skin_cancer")
    summary = build_split(get_adapter("ham10000"), root, tmp_path / "out",
                          {"demo_per_class": 4, "test_per_class": 2, "near_duplicate_distance": None})
    meta, rows = read_split(summary["folder"])
    assert meta["recipe"]["options"]["test_source"] == "ham10000"
    assert meta["source"]["repo"] == "marmal88/skin_cancer" and meta["source"]["pinned"] is False
    repeated = sum(1 for n in range(24306, 24306 + 7 * 12) if n % 5 == 0 and (n - 24306) // 2 % 6 % 3 != 2)
    assert meta["source"]["folded_duplicates"] == repeated > 0
    assert {label for row in rows for label in row["labels"]} == set(HAM_DX)
    demo_groups = {row["group"] for row in rows if row["side"] == "demo"}
    assert demo_groups.isdisjoint(row["group"] for row in rows if row["side"] == "test")
    assert len({row["original_id"] for row in rows}) == len(rows)
    demo = pd.read_csv(Path(summary["folder"]) / "demo.csv", index_col=0)
    assert list(demo.columns) == list(get_adapter("ham10000").all_classes)
    assert all((Path(summary["folder"]) / "images" / name).is_file() for name in demo.index)


def test_ham_copy_refuses_the_isic_test_source_it_does_not_hold(tmp_path):
    with pytest.raises(UserError, match="test_source='isic2018' does not fit hf:marmal88/skin_cancer"):
        build_split(get_adapter("ham10000"), ham_copy(tmp_path / "c"), tmp_path / "out",
                    {"test_source": "isic2018"})


def test_pets_copy_uses_its_official_split_and_names_files_by_their_bytes(tmp_path):
    root = pets_copy(tmp_path / "pets")
    summary = build_split(get_adapter("oxford_pets"), root, tmp_path / "out",
                          {"demo_per_class": 3, "test_per_class": 2, "classes": ["Bengal", "beagle"]})
    _, rows = read_split(summary["folder"])
    assert {row["source_split"] for row in rows if row["side"] == "demo"} == {"trainval"}
    assert {row["source_split"] for row in rows if row["side"] == "test"} == {"test"}
    names = {row["file_name"] for row in rows}
    assert "Bengal_1.png" in names and "beagle_0.jpg" in names
    with PILImage.open(Path(summary["folder"]) / "images" / "Bengal_1.png") as image:
        assert image.format == "PNG"
    assert {row["labels"][0] for row in rows} == {"Bengal", "beagle"}


@pytest.mark.parametrize("names, id_column, repo", [
    (EUROSAT_CLASSES, "image_id", "timm/eurosat-rgb"),
    (BLANCHON_EUROSAT, "filename", "blanchon/EuroSAT_RGB"),
])
def test_eurosat_copies_map_their_label_wording(tmp_path, names, id_column, repo):
    root = eurosat_copy(tmp_path / "copy", names, id_column)
    summary = build_split(get_adapter("eurosat"), root, tmp_path / "out",
                          {"demo_per_class": 6, "test_per_class": 3, "near_duplicate_distance": None})
    meta, rows = read_split(summary["folder"])
    assert meta["source"]["repo"] == repo
    assert {row["labels"][0] for row in rows} == set(EUROSAT_CLASSES)
    assert all(row["file_name"].endswith(".jpg") and "." not in row["file_name"][:-4] for row in rows)


def test_a_copy_whose_labels_do_not_map_is_refused(tmp_path):
    names = list(EUROSAT_CLASSES[:-1]) + ["Sea or Lake"]
    root = eurosat_copy(tmp_path / "copy", names)
    with pytest.raises(UserError, match=r"label\(s\) 'Sea or Lake' of hf:timm/eurosat-rgb do not map"):
        build_split(get_adapter("eurosat"), root, tmp_path / "out", {"demo_per_class": 2, "test_per_class": 1})
    assert not (tmp_path / "out" / "eurosat").exists()


def test_hub_tables_cover_the_card_label_sets():
    """Every ClassLabel name on each card maps to a class of the adapter (and the classes are covered)."""
    pets = get_adapter("oxford_pets").hub_copies[0]
    assert sorted(pets.labels[name] for name in PET_NAMES) == sorted(get_adapter("oxford_pets").all_classes)
    ham = get_adapter("ham10000").hub_copies[0]
    assert sorted(ham.labels.values()) == sorted(get_adapter("ham10000").all_classes)
    blanchon = get_adapter("eurosat").hub_copies[1]
    assert [blanchon.labels[name] for name in BLANCHON_EUROSAT] == list(EUROSAT_CLASSES)


def prefilled_cache(cache: Path, repo: str, build) -> Path:
    """huggingface_hub's cache layout: refs/main holds the commit, snapshots/<commit>/ the files."""
    folder = cache / f"datasets--{repo.replace('/', '--')}"
    build(folder / "snapshots" / COMMIT)
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    return folder


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "isekai_gen", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_source_hf_reads_the_offline_cache_and_records_the_commit(tmp_path):
    cache = tmp_path / "hub"
    prefilled_cache(cache, "timm/oxford-iiit-pet", pets_copy)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    common = ["splits", "build", "--dataset", "oxford_pets", "--demo-per-class", "2", "--test-per-class", "1",
              "--classes", "Bengal,beagle"]
    done = run_cli(*common, "--source", "hf:timm/oxford-iiit-pet@main", "--out", str(tmp_path / "a"), env=env)
    assert done.returncode == 0, done.stderr
    meta, _ = read_split(tmp_path / "a" / "oxford_pets")
    assert meta["source"] == {**meta["source"], "repo": "timm/oxford-iiit-pet", "revision": "main",
                              "commit": COMMIT, "pinned": True}
    assert "not pinned" not in done.stderr
    unpinned = run_cli(*common, "--source", "hf:timm/oxford-iiit-pet", "--out", str(tmp_path / "b"), env=env)
    assert unpinned.returncode == 0 and "the split is not pinned" in unpinned.stderr
    assert csv_bytes(tmp_path / "a" / "oxford_pets") == csv_bytes(tmp_path / "b" / "oxford_pets")
    missing = run_cli("splits", "build", "--dataset", "eurosat", "--source", "hf:timm/eurosat-rgb@main",
                      "--out", str(tmp_path / "c"), env=env)  # a known copy that is not in the cache
    assert missing.returncode == 1 and missing.stderr.startswith("error: hf:timm/eurosat-rgb@main: cannot get")
    assert len(missing.stderr.strip().splitlines()) == 1


# --- split manifests ---------------------------------------------------------------------------


def test_manifest_round_trip_on_a_second_copy_and_one_altered_image_refused(tmp_path):
    first = eurosat(tmp_path / "mine", per_class=6, folder="2750")
    summary = build_split(get_adapter("eurosat"), first, tmp_path / "out", {"demo_per_class": 3, "test_per_class": 2})
    manifest_path = Path(summary["folder"]) / "split-manifest.json"
    manifest = read_manifest(manifest_path)
    assert manifest["source"]["kind"] == "layout" and "2750/" not in manifest["rows"][0]["original_id"]
    assert str(tmp_path) not in manifest_path.read_text()  # no absolute path of this machine
    # Someone else's copy: the Zenodo zip layout inside a wrapper folder, same bytes.
    theirs = tmp_path / "theirs" / "downloads"
    shutil.copytree(first / "2750", theirs / "EuroSAT_RGB")
    again = materialize_manifest(manifest_path, tmp_path / "theirs", tmp_path / "rebuilt")
    assert again["verified"] == len(manifest["rows"])
    assert csv_bytes(Path(again["folder"])) == csv_bytes(Path(summary["folder"]))
    meta, _ = read_split(again["folder"])
    assert meta["manifest"]["verified"] == len(manifest["rows"])
    # One drawn image altered: refused in one line naming it, nothing written.
    victim = manifest["rows"][4]
    PILImage.new("RGB", (8, 8), (1, 2, 3)).save(theirs / "EuroSAT_RGB" / victim["original_id"], format="JPEG")
    with pytest.raises(UserError) as refused:
        materialize_manifest(manifest_path, tmp_path / "theirs", tmp_path / "other")
    message = str(refused.value)
    assert f"1 of {len(manifest['rows'])} images missing or different" in message
    assert victim["original_id"] in message and "\n" not in message
    assert not (tmp_path / "other" / "eurosat").exists()


def test_manifest_of_a_hub_split_rebuilds_from_a_second_snapshot(tmp_path):
    first = eurosat_copy(tmp_path / "a")
    summary = build_split(get_adapter("eurosat"), first, tmp_path / "out", {"demo_per_class": 3, "test_per_class": 1})
    manifest_path = Path(summary["folder"]) / "split-manifest.json"
    second = shutil.copytree(first, tmp_path / "b")
    again = materialize_manifest(manifest_path, second, tmp_path / "rebuilt")
    assert csv_bytes(Path(again["folder"])) == csv_bytes(Path(summary["folder"]))
    missing = json.loads(manifest_path.read_text())
    missing["rows"][0].update(original_id="Forest_nowhere", file_name="Forest_nowhere.jpg")
    (tmp_path / "edited.json").write_text(json.dumps(missing))
    with pytest.raises(UserError, match=r"1 of \d+ images missing or different in this copy; first: 'Forest_nowhere'"):
        materialize_manifest(tmp_path / "edited.json", second, tmp_path / "x")


def test_cli_from_manifest_and_export_copies_the_manifest(tmp_path):
    from isekai_gen.manyicl.writer import shared_files

    first = eurosat(tmp_path / "mine", per_class=5, folder="2750")
    built = run_cli("splits", "build", "--dataset", "eurosat", "--root", str(first), "--out", str(tmp_path / "o"),
                    "--demo-per-class", "2", "--test-per-class", "1")
    assert built.returncode == 0, built.stderr
    folder = tmp_path / "o" / "eurosat"
    assert folder / "split-manifest.json" in shared_files(folder)
    again = run_cli("splits", "build", "--from-manifest", str(folder / "split-manifest.json"), "--root", str(first),
                    "--out", str(tmp_path / "p"))
    assert again.returncode == 0 and "images verified" in again.stdout, again.stderr
    assert csv_bytes(tmp_path / "p" / "eurosat") == csv_bytes(folder)
    written = (folder / "split-manifest.json").read_bytes()
    (folder / "split-manifest.json").unlink()
    rewritten = run_cli("splits", "manifest", str(folder))
    assert rewritten.returncode == 0 and (folder / "split-manifest.json").read_bytes() == written


# --- bounded memory ----------------------------------------------------------------------------


def test_a_file_far_too_large_for_an_image_is_refused_unread(tmp_path):
    big = tmp_path / "River_1.jpg"
    with open(big, "wb") as handle:
        handle.truncate(2 * 1024 ** 3)  # sparse: no disk used
    with pytest.raises(UserError, match=r"River_1.jpg: 2.1 GB is too large for an image"):
        inspect_image(big, decode=False, phash=True)


def test_camelyon_copy_divides_by_hospital_column_and_groups_by_patient(tmp_path):
    """wltjr1007/Camelyon17-WILDS: label, center, patient, node, x/y, slide columns; train/validation/test pooled."""
    from datasets import ClassLabel, Image, Value

    features = {"image": Image(), "label": ClassLabel(names=["normal", "tumor"]), "center": Value("int64"),
                "image_id": Value("string"), "patient": Value("string"), "node": Value("int64"),
                "x_coord": Value("int64"), "y_coord": Value("int64"), "slide": Value("int64")}
    for split, centers in (("train", (0, 3, 4)), ("validation", (1,)), ("test", (2,))):
        columns = {key: [] for key in features}
        for center in centers:
            for patient in range(2):
                for n in range(6):
                    image_id = f"patch_patient_{center}{patient}_node_0_x_{n}_y_{n}"
                    columns["image"].append({"bytes": image_bytes(image_id, "PNG"), "path": None})
                    for key, value in (("label", n % 2), ("center", center), ("image_id", image_id),
                                       ("patient", f"{center}{patient}"), ("node", 0), ("x_coord", n),
                                       ("y_coord", n), ("slide", center * 10 + patient)):
                        columns[key].append(value)
        write_split(tmp_path / "c17", split, columns, features)
    summary = build_split(get_adapter("camelyon17"), tmp_path / "c17", tmp_path / "out",
                          {"demo_per_class": 4, "test_per_class": 2, "near_duplicate_distance": None})
    _, rows = read_split(summary["folder"])
    assert {row["source_split"] for row in rows if row["side"] == "test"} == {"center2"}
    assert {row["source_split"] for row in rows if row["side"] == "demo"} <= {"center0", "center3", "center4"}
    assert all(row["file_name"].endswith(".png") for row in rows)
    assert {row["labels"][0] for row in rows} == {"normal", "tumor"}


def test_fives_copy_reads_the_label_from_the_image_id(tmp_path):
    """tyluan/FIVES: image, mask, image_id like train_100_A."""
    from datasets import Image, Value

    features = {"image": Image(), "mask": Image(), "image_id": Value("string")}
    for split in ("train", "test"):
        columns = {key: [] for key in features}
        for letter in "ADGN":
            for n in range(4):
                image_id = f"{split}_{n}_{letter}"
                columns["image"].append({"bytes": image_bytes(image_id, "PNG"), "path": None})
                columns["mask"].append({"bytes": image_bytes("m" + image_id, "PNG"), "path": None})
                columns["image_id"].append(image_id)
        write_split(tmp_path / "fives", split, columns, features)
    summary = build_split(get_adapter("fives"), tmp_path / "fives", tmp_path / "out",
                          {"demo_per_class": 3, "test_per_class": 2, "near_duplicate_distance": None})
    _, rows = read_split(summary["folder"])
    assert {row["file_name"] for row in rows if row["side"] == "test"} <= {
        f"test_{n}_{letter}.png" for n in range(4) for letter in "ADGN"}
    assert {row["labels"][0] for row in rows} == set(get_adapter("fives").all_classes)


def test_local_dir_snapshot_is_pinned_by_huggingface_hub_download_records(tmp_path):
    """``hf download --local-dir`` records each file's commit under .cache/huggingface/download/."""
    from huggingface_hub._local_folder import write_download_metadata

    root = eurosat_copy(tmp_path / "eurosat-rgb", per_split=2)
    for path in sorted(root.glob("data/*.parquet")):
        write_download_metadata(root, path.relative_to(root).as_posix(), COMMIT, "etag")
    warnings = []
    summary = build_split(get_adapter("eurosat"), root, tmp_path / "out", {"demo_per_class": 2, "test_per_class": 1},
                          report=warnings.append)
    assert summary["source"]["commit"] == COMMIT and summary["source"]["pinned"]
    assert not [w for w in warnings if "not pinned" in w]
    write_download_metadata(root, "data/test-00000-of-00001.parquet", "f" * 40, "etag")
    with pytest.raises(UserError, match="downloaded from 2 different commits"):
        build_split(get_adapter("eurosat"), root, tmp_path / "out", {"demo_per_class": 2, "test_per_class": 1})
    shutil.rmtree(root / ".cache")
    build_split(get_adapter("eurosat"), root, tmp_path / "out", {"demo_per_class": 2, "test_per_class": 1},
                report=warnings.append)
    assert any("the split is not pinned" in w for w in warnings)


def test_export_publishes_the_manifest_but_not_the_images_of_a_non_redistributable_split(tmp_path):
    from isekai_gen.export.hf import copy_benchmark_splits

    from splits_fixtures import dtd

    out = tmp_path / "build"
    build_split(get_adapter("dtd"), dtd(tmp_path / "dtd"), out / "benchmarks",
                {"demo_per_class": 2, "test_per_class": 1, "classes": ["banded", "dotted"]})
    summaries, _ = copy_benchmark_splits(out, tmp_path / "hf")
    shared = tmp_path / "hf" / "benchmarks" / "dtd"
    assert summaries[0]["redistributable"] is False and summaries[0]["images"] == 0
    assert (shared / "split-manifest.json").read_bytes() == (out / "benchmarks" / "dtd" / "split-manifest.json").read_bytes()
    assert not (shared / "images").exists()
    from isekai_gen.manyicl.manifest import manifest_only_notes

    assert manifest_only_notes(tmp_path / "hf") == [
        "benchmarks/dtd: images not published (licence: DTD terms: research use only (images collected from Flickr)); "
        "its split-manifest.json rebuilds it from a user's own copy (isekai-gen splits build --from-manifest)"]


def test_dtd_copy_without_ids_keeps_identical_images_off_both_sides(tmp_path):
    """tanganke/dtd: image + label only; one photo in both its train and test splits."""
    from datasets import ClassLabel, Image

    classes = list(get_adapter("dtd").all_classes)
    features = {"image": Image(), "label": ClassLabel(names=classes)}
    for split, count in (("train", 4), ("test", 2)):
        columns = {"image": [], "label": []}
        for cls in ("banded", "dotted"):
            for n in range(count):
                seed = "shared" if (cls, n) == ("banded", 0) else f"{split}{cls}{n}"
                columns["image"].append({"bytes": image_bytes(seed), "path": f"{cls}_{split}{n:04d}.jpg"})
                columns["label"].append(classes.index(cls))
        write_split(tmp_path / "dtd", split, columns, features)
    warnings = []
    summary = build_split(get_adapter("dtd"), tmp_path / "dtd", tmp_path / "out",
                          {"demo_per_class": 3, "test_per_class": 1, "classes": ["banded", "dotted"]},
                          report=warnings.append)
    meta, rows = read_split(summary["folder"])
    assert any("could be any of tanganke/dtd, mcimpoi/dtd_split_1" in w for w in warnings)
    shas = [row["sha256"] for row in rows]
    assert len(shas) == len(set(shas))
    assert meta["content"]["left_out"]["identical"] == 1
    assert {row["file_name"] for row in rows} <= {f"{c}_{s}{n:04d}.jpg" for c in ("banded", "dotted")
                                                  for s in ("train", "test") for n in range(4)}


def test_build_all_reads_an_hf_root_of_a_roots_file(tmp_path):
    cache = tmp_path / "hub"
    prefilled_cache(cache, "timm/eurosat-rgb", lambda folder: eurosat_copy(folder, per_split=2))
    roots = tmp_path / "ROOTS.yaml"
    roots.write_text(f"EuroSAT: hf:timm/eurosat-rgb@{COMMIT}\nfives: hf:tyluan/FIVES@main\n")
    done = run_cli("splits", "build-all", "--roots", str(roots), "--out", str(tmp_path / "out"),
                   "--demo-per-class", "2", "--test-per-class", "1",
                   env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1  # FIVES is not in the cache: that one fails in one line, EuroSAT is built
    assert "failed: fives: hf:tyluan/FIVES@main: cannot get the snapshot" in done.stderr
    meta, _ = read_split(tmp_path / "out" / "eurosat")
    assert meta["source"]["commit"] == COMMIT and meta["source"]["revision"] == COMMIT


def test_ucmerced_labels_from_the_card_when_the_parquet_schema_has_none(tmp_path):
    """blanchon/UC_Merced: image + label, one train split; a parquet written without the `huggingface`
    schema metadata takes the ClassLabel names from the card's dataset_info."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    classes = list(get_adapter("ucmerced").all_classes)
    root = tmp_path / "UC_Merced"
    (root / "data").mkdir(parents=True)
    names = "\n".join(f"            '{code}': {name}" for code, name in enumerate(classes))
    (root / "README.md").write_text(
        "---\nlicense: unknown\ndataset_info:\n  features:\n  - name: image\n    dtype: image\n  - name: label\n"
        f"    dtype:\n      class_label:\n        names:\n{names}\n  splits:\n  - name: train\n    num_examples: 42\n"
        "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n---\n# UC Merced\n")
    images = [{"bytes": image_bytes(f"{cls}{n}", "TIFF"), "path": f"{cls}{n:02d}.tif"} for cls in classes for n in range(2)]
    table = pa.table({"image": pa.array(images, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      "label": pa.array([code for code in range(len(classes)) for _ in range(2)], pa.int64())})
    pq.write_table(table, root / "data" / "train-00000-of-00001.parquet")
    summary = build_split(get_adapter("ucmerced"), root, tmp_path / "out",
                          {"demo_per_class": 1, "test_per_class": 1, "near_duplicate_distance": None})
    _, rows = read_split(summary["folder"])
    assert {row["labels"][0] for row in rows} == set(classes)
    assert all(row["file_name"].endswith(".tif") for row in rows)
    assert {row["original_id"] for row in rows} <= {f"{cls}{n:02d}" for cls in classes for n in range(2)}


def test_manifest_of_a_native_split_rebuilds_from_a_hub_copy_of_the_same_images(tmp_path):
    from datasets import ClassLabel, Image, Value

    native = eurosat(tmp_path / "native", per_class=4, folder="EuroSAT_RGB")
    summary = build_split(get_adapter("eurosat"), native, tmp_path / "out", {"demo_per_class": 2, "test_per_class": 1})
    features = {"image": Image(), "label": ClassLabel(names=list(EUROSAT_CLASSES)), "image_id": Value("string")}
    columns = {key: [] for key in features}
    for path in sorted((native / "EuroSAT_RGB").glob("*/*.jpg")):
        columns["image"].append({"bytes": path.read_bytes(), "path": None})
        columns["label"].append(EUROSAT_CLASSES.index(path.parent.name))
        columns["image_id"].append(path.stem)
    write_split(tmp_path / "hub", "train", columns, features)
    again = materialize_manifest(Path(summary["folder"]) / "split-manifest.json", tmp_path / "hub", tmp_path / "re")
    assert csv_bytes(Path(again["folder"])) == csv_bytes(Path(summary["folder"]))
    assert again["source"]["repo"] == "timm/eurosat-rgb"


def test_source_of_an_unknown_repo_is_refused_before_fetching(tmp_path):
    done = run_cli("splits", "build", "--dataset", "eurosat", "--source", "hf:someone/eurosat-copy@main",
                   "--out", str(tmp_path / "out"), env={"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1
    assert done.stderr == ("error: hf:someone/eurosat-copy is not a known Hub copy of EuroSAT "
                           "(known: timm/eurosat-rgb, blanchon/EuroSAT_RGB)\n")


def test_a_row_group_of_absurd_image_bytes_is_refused_unread(tmp_path, monkeypatch):
    from isekai_gen.manyicl import hub

    root = eurosat_copy(tmp_path / "copy", per_split=2)
    monkeypatch.setattr(hub, "ROW_GROUP_READ_LIMIT", 100)  # the 8x8 JPEGs of a row group are > 100 bytes
    with pytest.raises(UserError, match=r"row group 0 holds .* of image bytes \(limit 100 B\); not read"):
        build_split(get_adapter("eurosat"), root, tmp_path / "out", {"demo_per_class": 2, "test_per_class": 1})


def test_parquet_converter_layout_is_a_snapshot(tmp_path):
    """The Hub's refs/convert/parquet branch: default/<split>/0000.parquet, no card."""
    copy = eurosat_copy(tmp_path / "copy", per_split=2)
    root = tmp_path / "converted"
    for path in sorted(copy.glob("data/*.parquet")):
        target = root / "default" / path.name.split("-", 1)[0] / "0000.parquet"
        target.parent.mkdir(parents=True)
        shutil.copyfile(path, target)
    summary = build_split(get_adapter("eurosat"), root, tmp_path / "out", {"demo_per_class": 2, "test_per_class": 1})
    assert summary["source"]["repo"] == "timm/eurosat-rgb" and summary["totals"] == {"demo": 20, "test": 10}
