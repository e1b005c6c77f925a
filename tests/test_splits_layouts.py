"""ManyICL splits on every distribution layout people download: found, read, refused in one line.

Each case writes a tiny copy of one real layout (torchvision download roots, the official
archives as they unpack, Kaggle / Zenodo copies, wrapper folders), builds the split through the
library and checks the layout found, the split sizes and that every row names a file under the
root. Then the misleading roots (a parent folder, a copy too deep, two copies), name aliases,
and file names in metadata that try to leave the root.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import splits_fixtures as fx
from isekai_gen.cli import main
from isekai_gen.errors import UserError
from isekai_gen.manyicl import build_split, read_split
from isekai_gen.splits import adapters, get_adapter

FIVES_WRAPPER = "FIVES A Fundus Image Dataset for AI-based Vessel Segmentation"


def build(name: str, root: Path, out: Path, **settings) -> tuple[dict, list[dict]]:
    demo, test = fx.SMALL_SIZES[name]
    build_split(get_adapter(name), root, out, {"demo_per_class": demo, "test_per_class": test, **settings})
    return read_split(out / get_adapter(name).name)


def fails(name: str, root: Path, out: Path, pattern: str, **settings) -> str:
    demo, test = fx.SMALL_SIZES[name]
    with pytest.raises(UserError) as info:
        build_split(get_adapter(name), root, out, {"demo_per_class": demo, "test_per_class": test, **settings})
    message = str(info.value)
    assert "\n" not in message
    assert re.search(pattern, message), message
    assert not (out / get_adapter(name).name).exists()
    return message


# (case id, dataset, writes the layout under tmp and returns the root to pass, layout expected, base below root)
LAYOUTS = [
    ("ham10000-flat", "ham10000", lambda t: fx.ham10000(t, images="flat"), "image zips unpacked into one folder", "."),
    ("ham10000-HAM10000-folder", "ham10000", lambda t: fx.ham10000(t, images="HAM10000"), "HAM10000/ image folder", "."),
    ("ham10000-HAM10000_images-folder", "ham10000", lambda t: fx.ham10000(t, images="HAM10000_images"),
     "HAM10000_images/ image folder", "."),
    ("ham10000-kaggle-crlf", "ham10000", lambda t: fx.ham10000(t / "skin-cancer-mnist-ham10000", newline="\r\n",
                                                               kaggle_extras=True) and t,
     "Dataverse/Kaggle image parts", "skin-cancer-mnist-ham10000"),
    ("fives-wrapped-twice", "fives", lambda t: fx.fives(t / FIVES_WRAPPER / FIVES_WRAPPER) and t, "figshare archive",
     f"{FIVES_WRAPPER}/{FIVES_WRAPPER}"),
    ("chexpert-full-release", "chexpert", lambda t: fx.chexpert(t, release_name="CheXpert-v1.0"), "CheXpert-v1.0",
     "CheXpert-v1.0"),
    ("chexpert-kaggle-flat", "chexpert", lambda t: fx.chexpert(t, folder="."),
     "release folder (any name, Kaggle copies)", "."),
    ("chexpert-kaggle-wrapped", "chexpert", lambda t: fx.chexpert(t, folder="archive"),
     "release folder (any name, Kaggle copies)", "archive"),
    ("camelyon17-data-dir", "camelyon17", lambda t: fx.camelyon17(t) / "camelyon17_v1.0", "camelyon17_v1.0 folder", "."),
    ("camelyon17-wilds-root", "camelyon17", lambda t: fx.camelyon17(t), "WILDS root_dir", "camelyon17_v1.0"),
    ("terra-domainbed-data-dir", "terraincognita",
     lambda t: (t / "PACS" / "kfold").mkdir(parents=True) or fx.camelyon17(t) and fx.terraincognita(t),
     "DomainBed data_dir", "terra_incognita"),
    ("terra-folder", "terraincognita", lambda t: fx.terraincognita(t) / "terra_incognita", "terra_incognita folder", "."),
    ("ucmerced-landuse-folder", "ucmerced", lambda t: fx.ucmerced(t) / "UCMerced_LandUse", "UCMerced_LandUse folder",
     "Images"),
    ("ucmerced-class-folders", "ucmerced", lambda t: fx.ucmerced(t) / "UCMerced_LandUse" / "Images", "class folders",
     "."),
    ("eurosat-torchvision", "eurosat", lambda t: fx.eurosat(t, folder="eurosat/2750"), "torchvision root", "eurosat/2750"),
    ("eurosat-zenodo-rgb", "eurosat", lambda t: fx.eurosat(t, folder="EuroSAT_RGB"), "EuroSAT_RGB.zip", "EuroSAT_RGB"),
    ("eurosat-zip-wrapped", "eurosat", lambda t: fx.eurosat(t, folder="EuroSAT/2750"), "EuroSAT.zip", "EuroSAT/2750"),
    ("eurosat-class-folders", "eurosat", lambda t: fx.eurosat(t, folder="."), "class folders", "."),
    ("oxford-pets-torchvision", "oxford_pets", lambda t: fx.oxford_pets(t / "oxford-iiit-pet") and t, "torchvision root",
     "oxford-iiit-pet"),
    ("dtd-torchvision", "dtd", lambda t: fx.dtd(t / "dtd") and t, "torchvision root", "dtd/dtd"),
    ("dtd-folder", "dtd", lambda t: fx.dtd(t) / "dtd", "dtd folder", "."),
    ("drugood-curator-output", "drugood", lambda t: fx.drugood(t, name="data/lbap_core_ic50_assay.json"),
     "DrugOOD curator output", "data"),
]


@pytest.mark.parametrize("case, name, write, layout, base", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_each_distribution_layout_is_found_and_builds_the_full_split(tmp_path, case, name, write, layout, base):
    root = write(tmp_path / "download")
    adapter = get_adapter(name)
    found = adapter.find_layout(root, adapter.recipe())
    assert found.layout.name == layout
    assert found.base == root / base

    meta, rows = build(name, root, tmp_path / "out")
    assert meta["layouts"][0] == {"name": layout, "source": found.layout.source, "folder": base}
    demo, test = fx.SMALL_SIZES[name]
    cells = len(adapter.recipe().strata)
    assert (meta["totals"]["demo"], meta["totals"]["test"]) == (cells * demo, cells * test)
    for row in rows:
        source = row["source_path"].split("#", 1)[0]
        assert (root / source).is_file(), source
        assert source.startswith(found.prefix)
    assert len(list((tmp_path / "out" / adapter.name / "images").iterdir())) == len(rows)


# The layouts the fixtures write by default (test_splits.py builds every dataset from them); found
# here on the smallest copies, with one image per folder.
FEWEST = {"ham10000": {"lesions_per_class": 1, "test_per_class": 1}, "fives": {"train_per_class": 1, "test_per_class": 1},
          "chexpert": {"train_patients": 1, "valid_patients": 1}, "camelyon17": {"patients_per_center": 1, "patches_per_node": 1},
          "terraincognita": {"per_location_class": 1}, "ucmerced": {"per_class": 1}, "eurosat": {"per_class": 1},
          "oxford_pets": {"trainval_per_breed": 1, "test_per_breed": 1}, "dtd": {"per_split": 1, "partitions": 1},
          "drugood": {"train": 1, "ood_test": 1}}
DEFAULT_LAYOUTS = {
    "ham10000": ("Dataverse/Kaggle image parts", "Dataverse ISIC 2018 test set"), "fives": ("figshare archive",),
    "chexpert": ("CheXpert-v1.0-small",), "camelyon17": ("WILDS root_dir",), "terraincognita": ("DomainBed data_dir",),
    "ucmerced": ("UCMerced_LandUse.zip",), "eurosat": ("EuroSAT.zip",), "oxford_pets": ("official archives",),
    "dtd": ("dtd-r1.0.1 archive",), "drugood": ("folder of LBAP files",),
}


def test_every_declared_layout_is_written_by_a_fixture_and_found(tmp_path):
    covered = {(name, layout) for _, name, _, layout, _ in LAYOUTS} | {("ham10000", "ISIC 2018 challenge download")}
    for name, expected in DEFAULT_LAYOUTS.items():
        root = fx.WRITERS[name](tmp_path / name, **FEWEST[name])
        adapter = get_adapter(name)
        found = [adapter.find_layout(root, adapter.recipe()).layout.name]
        if name == "ham10000":
            found.append(adapter.find_test_layout(root).layout.name)
        assert tuple(found) == expected
        covered |= {(name, layout) for layout in found}
    assert covered == {(name, layout.name) for name, adapter in adapters().items() for layout in adapter.layouts}


def test_ham10000_isic_challenge_test_download_with_one_hot_truth_in_its_folder(tmp_path):
    root = fx.ham10000(tmp_path / "root", test_layout="challenge")
    adapter = get_adapter("ham10000")
    assert adapter.find_test_layout(root).layout.name == "ISIC 2018 challenge download"
    meta, rows = build("ham10000", root, tmp_path / "out")
    assert [(lay.get("part"), lay["name"], lay["folder"]) for lay in meta["layouts"]] == [
        (None, "Dataverse/Kaggle image parts", "."),
        ("ISIC 2018 Task 3 test set", "ISIC 2018 challenge download", "."),
    ]
    test = [r for r in rows if r["side"] == "test"]
    assert test and all(r["source_path"].startswith("ISIC2018_Task3_Test_Input/ISIC_") for r in test)
    assert all(r["group"] == r["file_name"].removesuffix(".jpg") for r in test)  # one-hot truth: no lesion ids


def test_chexpert_kaggle_copy_strips_the_release_prefix_of_every_path(tmp_path):
    root = fx.chexpert(tmp_path / "archive", folder=".")
    header, first, *_ = (root / "train.csv").read_text().splitlines()
    assert first.startswith("CheXpert-v1.0-small/train/patient00001/")  # the prefix the files lack on disk
    _, rows = build("chexpert", root, tmp_path / "out")
    assert all(re.fullmatch(r"(train|valid)/patient\d+/study\d/view\d_frontal\.jpg", r["source_path"]) for r in rows)
    assert all(r["file_name"] == "_".join(r["source_path"].split("/")[1:]) for r in rows)


def test_parent_folder_of_other_datasets_gives_one_line_naming_the_layouts(tmp_path):
    parent = tmp_path / "datasets"
    fx.camelyon17(parent / "camelyon17")
    fx.fives(parent / "fives")
    message = fails("eurosat", parent, tmp_path / "out", r"datasets: no EuroSAT layout found in this folder or 2 levels")
    for expected in ("eurosat/2750/ (torchvision root)", "2750/ (EuroSAT.zip)", "EuroSAT_RGB/ (EuroSAT_RGB.zip)"):
        assert expected in message
    assert "unknown label value" not in message and "found one deeper" not in message
    # The same parent works for the datasets it does hold, found one level down.
    _, rows = build("fives", parent, tmp_path / "out")
    assert rows[0]["source_path"].startswith("fives/")


def test_dataset_deeper_than_two_wrappers_is_suggested_as_the_root(tmp_path):
    deep = tmp_path / "home" / "downloads" / "remote-sensing" / "sat"
    fx.eurosat(deep, folder="EuroSAT_RGB")
    fails("eurosat", tmp_path / "home", tmp_path / "out",
          rf"home: no EuroSAT layout found .*; found one deeper: {re.escape(str(deep / 'EuroSAT_RGB'))} "
          rf"\(EuroSAT_RGB\.zip\): pass --root {re.escape(str(deep / 'EuroSAT_RGB'))}$")


def test_two_copies_at_the_same_depth_are_refused_not_guessed(tmp_path):
    root = fx.eurosat(tmp_path / "root", folder="2750")
    fx.eurosat(root, folder="EuroSAT_RGB")
    fails("eurosat", root, tmp_path / "out", r"EuroSAT: several copies found \(.*2750 \(EuroSAT\.zip\); "
                                            r".*EuroSAT_RGB \(EuroSAT_RGB\.zip\)\); pass the one to use as --root")


def test_names_are_accepted_in_their_usual_spellings_and_listed():
    spellings = {
        "terraincognita": ["terra_incognita", "TerraIncognita", "TERRA-INCOGNITA"],
        "oxford_pets": ["oxford_iiit_pet", "OxfordIIITPet", "oxford-iiit-pet", "Oxford Pets"],
        "ucmerced": ["UCMerced", "UCMerced_LandUse", "uc_merced"],
        "ham10000": ["HAM10000", "ham10000"], "chexpert": ["CheXpert", "CheXpert-v1.0-small"],
        "eurosat": ["EuroSAT", "EuroSAT_RGB"], "dtd": ["DTD"], "camelyon17": ["Camelyon17", "camelyon17_v1.0"],
        "drugood": ["DrugOOD"], "fives": ["FIVES"],
    }
    assert set(spellings) == set(adapters())
    for name, names in spellings.items():
        assert all(get_adapter(spelling).name == name for spelling in names)
    with pytest.raises(UserError, match=r"unknown benchmark dataset 'eurosatt' .*did you mean 'eurosat'\?"):
        get_adapter("eurosatt")

    result = CliRunner().invoke(main, ["splits", "list"])
    assert result.exit_code == 0, result.output
    assert "names: terraincognita (any case; also terra_incognita, TerraInc, terra)" in result.output
    assert "layout: eurosat/2750/  [torchvision root: torchvision.datasets.EuroSAT]" in result.output
    listed = {d["name"]: d for d in json.loads(CliRunner().invoke(main, ["splits", "list", "--json"]).output)}
    assert "oxford_iiit_pet" in listed["oxford_pets"]["aliases"]
    assert {lay["name"] for lay in listed["dtd"]["layouts"]} >= {"torchvision root", "dtd-r1.0.1 archive"}


def test_build_command_takes_an_alias_and_writes_the_canonical_folder(tmp_path):
    root = fx.terraincognita(tmp_path / "root")
    result = CliRunner().invoke(main, ["splits", "build", "--dataset", "TerraIncognita", "--root", str(root),
                                       "--out", str(tmp_path / "out"), "--demo-per-class", "3", "--test-per-class", "2",
                                       "--materialize", "none"])
    assert result.exit_code == 0, result.output
    assert "; layout: DomainBed data_dir at terra_incognita; " in result.output
    assert (tmp_path / "out" / "terraincognita" / "split.json").is_file()


def rewrite_line(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines()
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines) + "\n")


def test_chexpert_path_climbing_out_of_the_root_is_refused(tmp_path):
    root = fx.chexpert(tmp_path / "root")
    (tmp_path / "outside").mkdir()
    csv = root / "CheXpert-v1.0-small" / "train.csv"
    rewrite_line(csv, 3, "CheXpert-v1.0-small/train/", "CheXpert-v1.0-small/../../../outside/x/")
    fails("chexpert", root, tmp_path / "out", r"train\.csv:3: Path '.*\.\./\.\./\.\./outside/x/.*' points outside")


def test_oxford_pets_annotation_name_climbing_out_of_the_root_is_refused(tmp_path):
    root = fx.oxford_pets(tmp_path / "root")
    rewrite_line(root / "annotations" / "test.txt", 1, "Abyssinian_4 ", "Abyssinian_../../../../../outside/evil ")
    fails("oxford_pets", root, tmp_path / "out",
          r"test\.txt:1: image 'images/Abyssinian_\.\./\.\./\.\./\.\./\.\./outside/evil\.jpg' points outside")


def test_oxford_pets_annotation_name_with_a_folder_inside_the_root_is_refused(tmp_path):
    root = fx.oxford_pets(tmp_path / "root")
    rewrite_line(root / "annotations" / "test.txt", 1, "Abyssinian_4 ", "Abyssinian_4/x ")
    fails("oxford_pets", root, tmp_path / "out", r"test\.txt:1: image name 'Abyssinian_4/x' must be a bare")


def test_camelyon17_metadata_climbing_out_of_the_root_is_refused(tmp_path):
    root = fx.camelyon17(tmp_path / "root")
    metadata = root / "camelyon17_v1.0" / "metadata.csv"
    rewrite_line(metadata, 5, ",000,", ",0/../../../../../outside,")
    fails("camelyon17", root, tmp_path / "out", r"metadata\.csv:5: patch '.*outside.*' points outside", demo_centers=[0])


def test_image_symlinked_out_of_the_root_is_refused_when_read(tmp_path):
    root = fx.eurosat(tmp_path / "root")
    outside = fx.eurosat(tmp_path / "elsewhere") / "2750" / "Forest"
    forest = root / "2750" / "Forest"
    for image in forest.iterdir():
        image.unlink()
    forest.rmdir()
    forest.symlink_to(outside, target_is_directory=True)
    fails("eurosat", root, tmp_path / "out", r"eurosat root .*: source path '2750/Forest/Forest_\d\.jpg' points outside")


def test_ham10000_without_the_isic_test_set_names_both_test_layouts_and_the_way_out(tmp_path):
    root = fx.ham10000(tmp_path / "root")
    for image in (root / "ISIC2018_Task3_Test_Images").iterdir():
        image.unlink()
    (root / "ISIC2018_Task3_Test_Images").rmdir()
    fails("ham10000", root, tmp_path / "out", r"root: no HAM10000 ISIC 2018 Task 3 test set layout found .*"
                                              r"\(ISIC 2018 challenge download\); .*\(Dataverse ISIC 2018 test set\)\) "
                                              r"\(without it: option test_source=ham10000\)$")
    _, rows = build("ham10000", root, tmp_path / "out", test_source="ham10000", demo_per_class=2, test_per_class=1)
    assert {r["source_split"] for r in rows} == {"ham10000"}
