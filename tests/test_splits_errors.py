"""ManyICL splits: every bad input is one UserError line naming the file, and nothing is half-written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import splits_fixtures as fx
from isekai_gen.errors import UserError
from isekai_gen.manyicl import build_split, load_roots
from isekai_gen.splits import get_adapter


def build(name, root, out, **settings):
    demo, test = fx.SMALL_SIZES[name]
    return build_split(get_adapter(name), root, out, {"demo_per_class": demo, "test_per_class": test, **settings})


def fails(name, root, out, pattern, **settings) -> str:
    with pytest.raises(UserError) as info:
        build(name, root, out, **settings)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(pattern, message), message
    return message


def rewrite(path, old, new, count=1):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))


def test_missing_metadata_file(tmp_path):
    root = fx.ham10000(tmp_path / "root")
    (root / "HAM10000_metadata.csv").unlink()
    fails("ham10000", root, tmp_path / "out", r"root: no HAM10000 layout found .*looked for: HAM10000_metadata\* \+ ")


def test_missing_root_folder(tmp_path):
    fails("eurosat", tmp_path / "nowhere", tmp_path / "out", r"nowhere: EuroSAT root folder not found")


def test_output_folder_that_is_a_file(tmp_path):
    root = fx.eurosat(tmp_path / "root")
    (tmp_path / "out").write_text("")
    fails("eurosat", root, tmp_path / "out", r"out: exists and is not a folder")


@pytest.mark.parametrize("name, relative, old, new, missing", [
    ("ham10000", "HAM10000_metadata.csv", "lesion_id,image_id,dx,", "lesion,image_id,diagnosis,", "lesion_id, dx"),
    ("chexpert", "CheXpert-v1.0-small/train.csv", ",Edema,", ",Oedema,", "Edema"),
    ("camelyon17", "camelyon17_v1.0/metadata.csv", ",tumor,", ",label,", "tumor"),
    ("ham10000", "ISIC2018_Task3_Test_GroundTruth.csv", "image,MEL,", "image,MELANOMA,", "MEL"),
])
def test_wrong_header_names_file_and_missing_columns(tmp_path, name, relative, old, new, missing):
    root = fx.WRITERS[name](tmp_path / "root")
    rewrite(root / relative, old, new)
    fails(name, root, tmp_path / "out", rf"{re.escape(relative.split('/')[-1])}: wrong header: missing column\(s\) {missing}")


def test_unknown_label_values_name_file_and_line(tmp_path):
    root = fx.ham10000(tmp_path / "a")
    rewrite(root / "HAM10000_metadata.csv", ",nv,", ",naevus,")
    fails("ham10000", root, tmp_path / "out", r"HAM10000_metadata\.csv:\d+: unknown dx label 'naevus'")

    root = fx.chexpert(tmp_path / "b")
    lines = (root / "CheXpert-v1.0-small" / "valid.csv").read_text().splitlines()
    fields = lines[3].split(",")
    fields[10] = "2.0"  # the Edema cell
    lines[3] = ",".join(fields)
    (root / "CheXpert-v1.0-small" / "valid.csv").write_text("\n".join(lines) + "\n")
    fails("chexpert", root, tmp_path / "out", r"valid\.csv:4: unknown Edema label '2\.0'")

    root = fx.camelyon17(tmp_path / "c")
    lines = (root / "camelyon17_v1.0" / "metadata.csv").read_text().splitlines()
    fields = lines[5].split(",")
    fields[5] = "yes"
    lines[5] = ",".join(fields)
    (root / "camelyon17_v1.0" / "metadata.csv").write_text("\n".join(lines) + "\n")
    fails("camelyon17", root, tmp_path / "out", r"metadata\.csv:6: unknown tumor label 'yes'")


def test_unknown_label_in_file_and_folder_names(tmp_path):
    root = fx.fives(tmp_path / "a")
    fx.write_image(root / "train" / "Original" / "99_X.png")
    fails("fives", root, tmp_path / "out", r"99_X\.png: unknown label value")

    root = fx.terraincognita(tmp_path / "b")
    fx.write_image(root / "terra_incognita" / "location_43" / "zebra" / "1.jpg")
    fails("terraincognita", root, tmp_path / "out", r"location_43/zebra: unknown label value 'zebra'")

    root = fx.dtd(tmp_path / "c")
    rewrite(root / "dtd" / "labels" / "test1.txt", "banded/", "plaid/")
    fails("dtd", root, tmp_path / "out", r"test1\.txt:1: unknown label value 'plaid'")


def test_oxford_pets_annotation_errors_name_file_and_line(tmp_path):
    root = fx.oxford_pets(tmp_path / "root")
    rewrite(root / "annotations" / "test.txt", "Abyssinian_4 1 1 1", "Abyssinian_4 2 1 1")
    fails("oxford_pets", root, tmp_path / "out", r"test\.txt:1: CLASS-ID 2 does not match breed 'Abyssinian'")
    rewrite(root / "annotations" / "test.txt", "Abyssinian_4 2 1 1", "Wolf_4 1 1 1")
    fails("oxford_pets", root, tmp_path / "out", r"test\.txt:1: unknown label value: breed 'Wolf'")
    rewrite(root / "annotations" / "test.txt", "Wolf_4 1 1 1", "Abyssinian_4 one")
    fails("oxford_pets", root, tmp_path / "out", r"test\.txt:1: expected 'Image CLASS-ID SPECIES BREED-ID'")


def test_drugood_bad_cases_name_file_split_and_case(tmp_path):
    root = fx.drugood(tmp_path / "root")
    path = root / "lbap_core_ic50_assay.json"
    data = json.loads(path.read_text())
    data["split"]["train"][3]["cls_label"] = 2
    path.write_text(json.dumps(data))
    fails("drugood", root, tmp_path / "out", r"lbap_core_ic50_assay\.json: split train case 3: unknown label value cls_label=2")
    data["split"]["train"][3]["cls_label"] = 1
    for case in data["split"]["ood_test"]:
        case["smiles"] = "C1CC(" + case["smiles"]  # unparseable
    path.write_text(json.dumps(data))
    fails("drugood", root, tmp_path / "out", r"lbap_core_ic50_assay\.json#ood_test/\d+: RDKit cannot parse SMILES")
    path.write_text("{not json")
    fails("drugood", root, tmp_path / "out", r"lbap_core_ic50_assay\.json:1: invalid JSON")
    fx.drugood(tmp_path / "elsewhere")
    fails("drugood", root, tmp_path / "out", r"lbap_core_ic50_assay\.json: drugood option `file` .* is an absolute path",
          file=str(tmp_path / "elsewhere" / "lbap_core_ic50_assay.json"))
    fails("drugood", root, tmp_path / "out", r"lbap_core_ic50_assay\.json: drugood option `file` .* points outside",
          file="../elsewhere/lbap_core_ic50_assay.json")  # relative, but climbing out of the root


def test_image_listed_in_metadata_but_missing(tmp_path):
    root = fx.ham10000(tmp_path / "a")
    (root / "HAM10000_images_part_2" / "ISIC_0024306.jpg").unlink()
    fails("ham10000", root, tmp_path / "out", r"HAM10000_metadata\.csv:2: image 'ISIC_0024306' is missing")

    # Camelyon17 is not listed up front (455k patches): a selected patch that is absent is named.
    root = fx.camelyon17(tmp_path / "b")
    patch = next((root / "camelyon17_v1.0" / "patches" / "patient_000_node_0").iterdir())
    patch.unlink()
    fails("camelyon17", root, tmp_path / "out", rf"{patch.name}: image referenced by the (Camelyon17|dataset) metadata is missing",
          demo_per_class=12, test_per_class=3, demo_centers=[0])


def test_corrupt_image_is_reported_with_verify_images_and_nothing_is_written(tmp_path):
    root = fx.eurosat(tmp_path / "root")
    out = tmp_path / "out"
    build("eurosat", root, out, seed=3)
    before = (out / "eurosat" / "split.json").read_bytes()
    broken = root / "2750" / "Forest" / "Forest_2.jpg"
    broken.write_bytes(broken.read_bytes()[:20])
    fails("eurosat", root, out, r"Forest_2\.jpg: corrupt image", verify_images=True, seed=4)
    # The previous complete split is untouched and no temporary folder is left behind.
    assert sorted(p.name for p in out.iterdir()) == ["eurosat"]
    assert (out / "eurosat" / "split.json").read_bytes() == before


def test_too_few_items_names_class_needed_and_available(tmp_path):
    root = fx.fives(tmp_path / "root")
    fails("fives", root, tmp_path / "out", r"FIVES class 'age-related macular degeneration' needs 50 demo images, 5 available",
          demo_per_class=50)
    root = fx.chexpert(tmp_path / "cx")
    fails("chexpert", root, tmp_path / "out", r"CheXpert class '[A-Za-z ]+:(positive|negative)' needs 40 test images, \d+ available",
          test_per_class=40)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_shared_pool_exhaustion_mentions_test_groups(tmp_path):
    root = fx.ucmerced(tmp_path / "root")
    fails("ucmerced", root, tmp_path / "out", r"class 'agricultural' needs 3 demo images, 2 available .*after keeping test groups out of demo",
          demo_per_class=3, test_per_class=2)


@pytest.mark.parametrize("settings, pattern", [
    ({"uncertain": "maybe"}, r"chexpert: option uncertain='maybe' is not one of ignore, zeros, ones"),
    ({"frontal_only": True}, r"chexpert: unknown option\(s\) frontal_only"),
    ({"classes": "Edema,Flu"}, r"chexpert: unknown class 'Flu'"),
    ({"demo_per_class": -1}, r"chexpert: demo_per_class must be a whole number >= 0"),
    ({"materialize": "hardlink"}, r"chexpert: materialize must be one of copy, symlink, none"),
    ({"verify_images": 3}, r"^chexpert: verify_images must be true or false$"),
    ({"exclude_near_duplicates": "yes"}, r"^chexpert: exclude_near_duplicates must be true or false$"),
])
def test_bad_settings(tmp_path, settings, pattern):
    with pytest.raises(UserError, match=pattern):
        build_split(get_adapter("chexpert"), tmp_path, tmp_path / "out", settings)


def test_camelyon_center_options_are_checked(tmp_path):
    with pytest.raises(UserError, match=r"camelyon17: test_centers must be a non-empty list of hospitals among 0, 1, 2, 3, 4, got \[7\]"):
        get_adapter("camelyon17").recipe({"test_centers": [7]})
    for bad in ([True], []):  # `true` is no hospital 1
        with pytest.raises(UserError, match=rf"camelyon17: demo_centers must be a non-empty list of hospitals .*got {re.escape(repr(bad))}$"):
            get_adapter("camelyon17").recipe({"demo_centers": bad})
    with pytest.raises(UserError, match=r"terraincognita: test_locations must be a non-empty list of camera locations "
                                        r"among 38, 43, 46, 100, got \[39\]"):
        get_adapter("terraincognita").recipe({"test_locations": [39]})


def test_unknown_dataset_and_bad_roots_file(tmp_path):
    with pytest.raises(UserError, match=r"unknown benchmark dataset 'mnist'"):
        get_adapter("mnist")
    roots = tmp_path / "ROOTS.yaml"
    roots.write_text("- just\n- a list\n")
    with pytest.raises(UserError, match=r"ROOTS\.yaml: at \(top level\): .* is not of type 'object'"):
        load_roots(roots)
    roots.write_text("eurosat: [1, 2]\n")
    with pytest.raises(UserError, match=r"ROOTS\.yaml: at eurosat: "):
        load_roots(roots)
    roots.write_text("mnist: data/mnist\n")
    with pytest.raises(UserError, match=r"ROOTS\.yaml: unknown benchmark dataset 'mnist'"):
        load_roots(roots)


def test_roots_keys_take_any_accepted_spelling_but_one_dataset_only_once(tmp_path):
    roots = tmp_path / "ROOTS.yaml"
    roots.write_text("EuroSAT: sat\nterra_incognita: /data/terra\nOxfordIIITPet: pets\n")
    assert load_roots(roots) == {"eurosat": tmp_path / "sat", "terraincognita": Path("/data/terra"),
                                 "oxford_pets": tmp_path / "pets"}
    roots.write_text("EuroSAT: sat\neurosat-rgb: other\n")
    with pytest.raises(UserError) as info:
        load_roots(roots)
    assert str(info.value) == f"{roots}: keys 'EuroSAT' and 'eurosat-rgb' both name dataset 'eurosat'"


def test_isic_one_hot_row_must_mark_exactly_one_class(tmp_path):
    root = fx.ham10000(tmp_path / "root")
    truth = root / "ISIC2018_Task3_Test_GroundTruth.csv"
    header, first, *rest = truth.read_text().splitlines()
    truth.write_text("\n".join([header, first.replace("0.0", "1.0", 1), *rest]) + "\n")
    fails("ham10000", root, tmp_path / "out", r"ISIC2018_Task3_Test_GroundTruth\.csv:2: expected exactly one class marked 1\.0, found 2")
    truth.write_text("\n".join([header, first.replace("0.0", "yes", 1), *rest]) + "\n")
    fails("ham10000", root, tmp_path / "out", r"ISIC2018_Task3_Test_GroundTruth\.csv:2: unknown [A-Z]+ value 'yes'")
