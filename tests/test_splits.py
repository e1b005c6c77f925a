"""ManyICL splits: every adapter on its tiny native layout -> build -> the files a consumer reads."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import splits_fixtures as fx
from temp_names import leftover
from isekai_gen.errors import UserError
from isekai_gen.manyicl.build import OLD_MARKER
from isekai_gen.manyicl import build_split, read_split
from isekai_gen.splits import adapters, get_adapter


def build(name: str, root: Path, out: Path, **settings) -> Path:
    demo, test = fx.SMALL_SIZES[name]
    settings = {"demo_per_class": demo, "test_per_class": test, **settings}
    build_split(get_adapter(name), root, out, settings)
    return out / name


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class ReversedScandir:
    """``os.scandir`` listing entries in reverse order (file systems promise no order)."""

    real = os.scandir

    def __init__(self, path):
        with ReversedScandir.real(path) as entries:
            self.entries = list(entries)[::-1]

    def __iter__(self):
        return iter(self.entries)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_registry_lists_the_ten_table1_datasets_in_order():
    assert list(adapters()) == ["ham10000", "fives", "chexpert", "camelyon17", "terraincognita",
                                "ucmerced", "eurosat", "oxford_pets", "dtd", "drugood"]


def test_default_recipes_reproduce_table1_totals():
    table1 = {"ham10000": (805, 210), "fives": (400, 120), "chexpert": (200, 150), "camelyon17": (2000, 100),
              "terraincognita": (1035, 270), "ucmerced": (1470, 420), "eurosat": (1000, 300),
              "oxford_pets": (1750, 700), "dtd": (2350, 940), "drugood": (1600, 200)}
    for name, (demo, test) in table1.items():
        recipe = get_adapter(name).recipe()
        cells = len(recipe.strata)
        assert (cells * recipe.demo_per_class, cells * recipe.test_per_class) == (demo, test), name
    assert len(get_adapter("oxford_pets").recipe().classes) == 35
    assert "empty" not in get_adapter("terraincognita").recipe().classes


@pytest.mark.parametrize("name", list(fx.WRITERS))
def test_build_writes_manyicl_files_with_exact_stratified_nested_group_disjoint_splits(name, tmp_path):
    root = fx.WRITERS[name](tmp_path / "root")
    folder = build(name, root, tmp_path / "out")
    meta, rows = read_split(folder)  # validated against split_meta / split_row schemas
    recipe = get_adapter(name).recipe()
    demo_k, test_k = fx.SMALL_SIZES[name]

    # ManyICL CSVs, read the way ManyICL reads them.
    demo = pd.read_csv(folder / "demo.csv", index_col=0)
    test = pd.read_csv(folder / "test.csv", index_col=0)
    header = (folder / "demo.csv").read_text().splitlines()[0]
    assert header == "," + ",".join(recipe.classes)
    for frame, side in ((demo, "demo"), (test, "test")):
        assert list(frame.columns) == list(recipe.classes)
        assert all(dtype == np.float64 for dtype in frame.dtypes)
        assert set(np.unique(frame.to_numpy())) <= {0.0, 1.0}
        side_rows = [r for r in rows if r["side"] == side]
        assert list(frame.index) == [r["file_name"] for r in side_rows]
        for r in side_rows:
            assert [c for c in recipe.classes if frame.loc[r["file_name"], c] == 1.0] == r["labels"]
        if not recipe.multilabel:
            assert (frame.sum(axis=1) == 1.0).all()
            assert frame.sum(axis=0).tolist() == [demo_k if side == "demo" else test_k] * len(recipe.classes)
        assert meta["totals"][side] == len(frame) == len(recipe.strata) * (demo_k if side == "demo" else test_k)
        assert set(r["source_split"] for r in side_rows) <= set(getattr(recipe, f"{side}_splits"))

    # Images: every CSV row has a decodable file under images/.
    assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(r["file_name"] for r in rows)
    with Image.open(folder / "images" / rows[0]["file_name"]) as image:
        image.load()

    # No item, no group on both sides.
    by_side = {side: [r for r in rows if r["side"] == side] for side in ("demo", "test")}
    for key in ("file_name", "source_path", "group"):
        assert not {r[key] for r in by_side["demo"]} & {r[key] for r in by_side["test"]}

    # Nested demo order: the first k rows of each cell are exactly that cell's ranks 0..k-1.
    for k in range(1, demo_k + 1):
        seen, first_k = Counter(), set()
        for r in by_side["demo"]:
            if seen[r["stratum"]] < k:
                first_k.add(r["file_name"])
            seen[r["stratum"]] += 1
        assert first_k == {r["file_name"] for r in by_side["demo"] if r["demo_rank"] < k}
        assert set(demo.index[: k * len(recipe.strata)]) == first_k

    assert meta["recipe"]["redistributable"] is get_adapter(name).redistributable
    assert meta["recipe"]["license"]
    assert meta["fingerprint"].startswith("sha256:")


@pytest.mark.parametrize("name", ["ham10000", "terraincognita", "chexpert", "drugood"])
def test_same_root_and_seed_give_byte_identical_outputs_whatever_the_listing_order(name, tmp_path, monkeypatch):
    root = fx.WRITERS[name](tmp_path / "root")
    first = folder_bytes(build(name, root, tmp_path / "a", seed=7))

    with monkeypatch.context() as patch:
        patch.setattr(os, "scandir", ReversedScandir)
        build(name, root, tmp_path / "b", seed=7)
    second = folder_bytes(tmp_path / "b" / name)
    assert first == second

    other_seed = folder_bytes(build(name, root, tmp_path / "c", seed=8))
    assert other_seed["split.jsonl"] != first["split.jsonl"]


def test_metadata_row_order_does_not_change_the_split(tmp_path):
    root = fx.camelyon17(tmp_path / "root")
    first = folder_bytes(build("camelyon17", root, tmp_path / "a"))
    metadata = root / "camelyon17_v1.0" / "metadata.csv"
    header, *lines = metadata.read_text().splitlines()
    metadata.write_text("\n".join([header, *reversed(lines)]) + "\n")
    assert folder_bytes(build("camelyon17", root, tmp_path / "b")) == first


def test_ham10000_reads_tab_separated_metadata_without_extension_and_metadata_style_truth(tmp_path):
    root = fx.ham10000(tmp_path / "root", metadata_name="HAM10000_metadata", sep="\t", truth_shape="metadata")
    meta, rows = read_split(build("ham10000", root, tmp_path / "out"))
    demo = [r for r in rows if r["side"] == "demo"]
    test = [r for r in rows if r["side"] == "test"]
    assert {r["source_split"] for r in test} == {"isic2018_test"}
    assert all(r["source_path"].startswith("ISIC2018_Task3_Test_Images/") for r in test)
    assert all(r["group"].startswith("IL_") for r in test)  # lesion ids of the metadata-style truth
    assert {r["source_path"].split("/")[0] for r in demo} == {"HAM10000_images_part_1", "HAM10000_images_part_2"}
    assert all(r["group"].startswith("HAM_") for r in demo)


def test_ham10000_lesions_stay_on_one_side_when_both_sides_come_from_ham10000(tmp_path):
    root = fx.ham10000(tmp_path / "root", lesions_per_class=6)
    build_split(get_adapter("ham10000"), root, tmp_path / "out",
                {"demo_per_class": 3, "test_per_class": 2, "test_source": "ham10000"})
    _, rows = read_split(tmp_path / "out" / "ham10000")
    demo_lesions = {r["group"] for r in rows if r["side"] == "demo"}
    test_lesions = {r["group"] for r in rows if r["side"] == "test"}
    assert test_lesions and not demo_lesions & test_lesions
    assert {r["source_split"] for r in rows} == {"ham10000"}


def test_chexpert_balances_findings_excludes_uncertain_and_lateral_and_tests_on_valid(tmp_path):
    root = fx.chexpert(tmp_path / "root")
    meta, rows = read_split(build("chexpert", root, tmp_path / "out"))
    for finding, cell in meta["counts"]["demo"].items():
        assert sum(r["stratum"] == f"{finding}:positive" and r["side"] == "demo" for r in rows) == 3
        assert sum(r["stratum"] == f"{finding}:negative" and r["side"] == "demo" for r in rows) == 3
        assert cell["positive"] + cell["negative"] == 30
    assert {r["source_split"] for r in rows if r["side"] == "test"} == {"valid"}
    assert all(r["file_name"].endswith("_frontal.jpg") for r in rows)
    assert rows[0]["file_name"].startswith("patient") and rows[0]["file_name"].count("_") == 3

    source = {}
    for split in ("train", "valid"):
        table = pd.read_csv(root / "CheXpert-v1.0-small" / f"{split}.csv", dtype=str, keep_default_na=False)
        source.update({p: r for p, r in zip(table["Path"], table.to_dict("records"))})
    findings = meta["recipe"]["classes"]
    for r in rows:
        cells = source[r["source_path"]]
        assert all(cells[f] != "-1.0" for f in findings)  # uncertain excluded by default
        assert r["labels"] == [f for f in findings if cells[f] == "1.0"]  # blank = negative
        assert r["group"] == r["source_path"].split("/")[2]


def test_chexpert_root_may_be_the_release_folder_even_as_dot_or_a_link(tmp_path, monkeypatch):
    root = fx.chexpert(tmp_path / "root")
    expected = folder_bytes(build("chexpert", root, tmp_path / "above", materialize="none"))
    release = root / "CheXpert-v1.0-small"
    monkeypatch.chdir(release)
    renamed = tmp_path / "chexpert-small"
    renamed.symlink_to(release)  # a link under another name
    for given in (release, Path("."), renamed):
        _, rows = read_split(build("chexpert", given, tmp_path / "inside", materialize="none"))
        assert all((release / r["source_path"]).is_file() for r in rows)
        assert {r["source_path"] for r in rows} == {
            r["source_path"].removeprefix("CheXpert-v1.0-small/") for r in map(json.loads, expected["split.jsonl"].splitlines())}


def test_chexpert_u_ones_reads_uncertain_as_positive(tmp_path):
    root = fx.chexpert(tmp_path / "root")
    build_split(get_adapter("chexpert"), root, tmp_path / "out",
                {"demo_per_class": 3, "test_per_class": 2, "uncertain": "ones", "views": "all"})
    _, rows = read_split(tmp_path / "out" / "chexpert")
    table = pd.read_csv(root / "CheXpert-v1.0-small" / "train.csv", dtype=str, keep_default_na=False).set_index("Path")
    uncertain_rows = [r for r in rows if r["side"] == "demo" and (table.loc[r["source_path"]] == "-1.0").any()]
    assert uncertain_rows
    for r in uncertain_rows:
        cells = table.loc[r["source_path"]]
        assert all(f in r["labels"] for f in ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
                   if cells[f] == "-1.0")


def test_camelyon17_keeps_zero_padded_patients_and_divides_patients_of_shared_hospitals(tmp_path):
    root = fx.camelyon17(tmp_path / "root", patients_per_center=4)
    build_split(get_adapter("camelyon17"), root, tmp_path / "out",
                {"demo_per_class": 5, "test_per_class": 3, "demo_centers": [1], "test_centers": [1]})
    _, rows = read_split(tmp_path / "out" / "camelyon17")
    assert {r["source_split"] for r in rows} == {"center1"}
    demo_patients = {r["group"] for r in rows if r["side"] == "demo"}
    test_patients = {r["group"] for r in rows if r["side"] == "test"}
    assert test_patients and not demo_patients & test_patients
    assert all(r["group"].startswith("patient_01") for r in rows)
    assert rows[0]["file_name"].startswith("patch_patient_01")
    assert rows[0]["source_path"].startswith("camelyon17_v1.0/patches/patient_01")


def test_ucmerced_converts_tiff_to_jpeg_or_png(tmp_path):
    root = fx.ucmerced(tmp_path / "root")
    folder = build("ucmerced", root, tmp_path / "out")
    names = pd.read_csv(folder / "demo.csv", index_col=0).index
    assert all(n.endswith(".jpeg") for n in names)
    with Image.open(folder / "images" / names[0]) as image:
        assert image.format == "JPEG"
    folder = build("ucmerced", root, tmp_path / "png", image_format="png", materialize="symlink")
    name = pd.read_csv(folder / "test.csv", index_col=0).index[0]
    assert not (folder / "images" / name).is_symlink()  # a converted file cannot be a link
    with Image.open(folder / "images" / name) as image:
        assert image.format == "PNG"


def test_symlink_and_none_materialisation(tmp_path):
    root = fx.eurosat(tmp_path / "root")
    folder = build("eurosat", root, tmp_path / "link", materialize="symlink")
    _, rows = read_split(folder)
    link = folder / "images" / rows[0]["file_name"]
    assert link.is_symlink() and link.resolve() == (root / rows[0]["source_path"]).resolve()
    folder = build("eurosat", root, tmp_path / "none", materialize="none")
    assert not (folder / "images").exists()
    assert (folder / "demo.csv").exists()


def test_oxford_pets_uses_35_breeds_and_classes_option_picks_others(tmp_path):
    root = fx.oxford_pets(tmp_path / "root")
    meta, _ = read_split(build("oxford_pets", root, tmp_path / "out"))
    assert len(meta["recipe"]["classes"]) == 35
    assert "staffordshire_bull_terrier" not in meta["recipe"]["classes"]
    folder = build("oxford_pets", root, tmp_path / "two", classes="pug,Abyssinian")
    assert pd.read_csv(folder / "demo.csv", index_col=0).columns.tolist() == ["Abyssinian", "pug"]


def test_drugood_draws_each_molecule_once_into_a_fixed_size_png(tmp_path):
    root = fx.drugood(tmp_path / "root")
    folder = build("drugood", root, tmp_path / "out")
    _, rows = read_split(folder)
    with Image.open(folder / "images" / rows[0]["file_name"]) as image:
        assert image.format == "PNG" and image.size == (512, 512)
    assert rows[0]["smiles"] and rows[0]["source_path"].startswith("lbap_core_ic50_assay.json#train/")
    cached = sorted((tmp_path / "out" / ".cache" / "drugood").rglob("*.png"))
    assert len(cached) == len(rows)
    stamps = [p.stat().st_mtime_ns for p in cached]
    build("drugood", root, tmp_path / "out")  # second build reuses the cache
    assert [p.stat().st_mtime_ns for p in cached] == stamps


def test_dtd_partition_option_changes_the_source_lists(tmp_path):
    root = fx.dtd(tmp_path / "root")
    _, first = read_split(build("dtd", root, tmp_path / "p1"))
    _, second = read_split(build("dtd", root, tmp_path / "p2", partition=2))
    test_one = {r["file_name"] for r in first if r["side"] == "test"}
    test_two = {r["file_name"] for r in second if r["side"] == "test"}
    assert test_one and not test_one & test_two


def test_rebuild_replaces_the_folder_and_leaves_no_temporary_files(tmp_path):
    root = fx.fives(tmp_path / "root")
    build("fives", root, tmp_path / "out", seed=1)
    build("fives", root, tmp_path / "out", seed=2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fives"]
    assert json.loads((tmp_path / "out" / "fives" / "split.json").read_text())["seed"] == 2


def test_rebuild_clears_the_leftovers_of_a_killed_build(tmp_path):
    root = fx.fives(tmp_path / "root")
    out = tmp_path / "out"
    build("fives", root, out, seed=1)
    # Killed while writing (a half-filled temporary folder) and between the two renames.
    (out / leftover("fives", "abc123") / "images").mkdir(parents=True)
    (out / f"{OLD_MARKER}fives.def456").mkdir()
    (out / "fives").rename(out / f"{OLD_MARKER}fives.def456" / "fives")
    (out / ".tmp-fives.keep").mkdir()  # a user's folder named like the old temporary names: not ours
    with pytest.raises(UserError, match="needs 50 demo images"):
        build("fives", root, out, seed=2, demo_per_class=50)
    # The failed rebuild put the previous split back and cleared the leftovers.
    assert sorted(p.name for p in out.iterdir()) == [".tmp-fives.keep", "fives"]
    assert json.loads((out / "fives" / "split.json").read_text())["seed"] == 1
    (out / leftover("fives", "ghi789")).mkdir()
    build("fives", root, out, seed=2)
    assert sorted(p.name for p in out.iterdir()) == [".tmp-fives.keep", "fives"]
    assert json.loads((out / "fives" / "split.json").read_text())["seed"] == 2


def test_sampler_keeps_a_group_spanning_both_source_splits_on_one_side():
    from isekai_gen.manyicl import Pool, Recipe
    from isekai_gen.manyicl.sampler import select

    # Patient p0 has a train and a valid image (as if CheXpert had listed one patient twice).
    names = [f"p{i // 2}-{'train' if i % 2 == 0 else 'valid'}" for i in range(12)]
    frame = pd.DataFrame({"file_name": names, "source_path": names,
                          "source_split": ["train" if n.endswith("train") else "valid" for n in names],
                          "group": [n.split("-")[0] for n in names]})
    labels = np.array([[1.0, 0.0] if (i // 2) % 2 == 0 else [0.0, 1.0] for i in range(12)], dtype=np.float32)
    recipe = Recipe(name="t", title="T", classes=("a", "b"), demo_per_class=1, test_per_class=1,
                    demo_splits=("train",), test_splits=("valid",), group_key="patient", license="x",
                    redistributable=False, multilabel=False)
    for seed in range(20):
        selection = select(Pool(frame, labels), recipe, seed, Path("root"))
        demo_groups = {frame["group"][p] for _, _, p in selection.demo}
        test_groups = {frame["group"][p] for _, _, p in selection.test}
        assert len(selection.demo) == len(selection.test) == 2
        assert not demo_groups & test_groups
