"""ManyICL splits checked by content: real image formats, identical and multi-label files,
near-duplicate leakage, contained label names, build-all failures, the file-name rule."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import splits_fixtures as fx
from isekai_gen.cli import main
from isekai_gen.errors import UserError
from isekai_gen.manyicl import build_split, read_split
from isekai_gen.manyicl.writer import split_meta, write_split_files
from isekai_gen.splits import get_adapter


def invoke(*args):
    return CliRunner().invoke(main, ["splits", *map(str, args)])


def build(name, root, out, **settings):
    build_split(get_adapter(name), root, out, settings)
    return read_split(out / name)


def noise_image(path: Path, size: int = 32, fmt: str | None = None) -> np.ndarray:
    """Random pixels seeded by the path's last parts: no two images alike, even perceptually."""
    seed = int.from_bytes(hashlib.sha256("/".join(path.parts[-3:]).encode()).digest()[:8], "little")
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt or fx.FORMATS[path.suffix.lower()])
    return pixels


def noisy_eurosat(root: Path, per_class: int) -> Path:
    fx.eurosat(root, per_class=per_class)
    for path in sorted(root.rglob("*.jpg")):
        noise_image(path)
    return root


def assert_formats_match_names(folder: Path) -> None:
    expected = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF"}
    for path in (folder / "images").iterdir():
        with Image.open(path) as image:
            assert image.format == expected[path.suffix], path
            assert image.mode in ("RGB", "L"), path
            image.load()


def pets_with_disguised_files(root: Path) -> Path:
    """Oxford-IIIT Pet as really shipped: some `.jpg` files hold PNG (RGBA), GIF or CMYK JPEG data."""
    fx.oxford_pets(root, trainval_per_breed=4)
    images = root / "images"
    Image.new("RGBA", (8, 8), (200, 10, 10, 128)).save(images / "Abyssinian_1.jpg", format="PNG")
    Image.new("P", (8, 8), 3).save(images / "Abyssinian_2.jpg", format="GIF")
    Image.new("CMYK", (8, 8), (10, 200, 30, 40)).save(images / "Abyssinian_3.jpg", format="JPEG")
    return root


def test_disguised_pet_images_are_reencoded_and_recorded(tmp_path):
    root = pets_with_disguised_files(tmp_path / "root")
    meta, rows = build("oxford_pets", root, tmp_path / "out", classes="Abyssinian,Bengal", demo_per_class=4,
                       test_per_class=1)
    by_name = {row["file_name"]: row for row in rows}
    assert by_name["Abyssinian_1.jpg"]["image"] == {"source_format": "PNG", "source_mode": "RGBA",
                                                    "action": "reencoded", "reason": "PNG data named .jpg"}
    assert by_name["Abyssinian_2.jpg"]["image"]["reason"] == "GIF data named .jpg"
    assert by_name["Abyssinian_3.jpg"]["image"]["reason"] == "JPEG in mode CMYK"
    assert by_name["Abyssinian_4.jpg"]["image"] == {"source_format": "JPEG", "source_mode": "RGB", "action": "copied"}
    assert meta["content"]["images"] == {"reencoded": 3, "copied": 7} and meta["content"]["not_plain_images"] == 3
    assert_formats_match_names(tmp_path / "out" / "oxford_pets")
    with Image.open(tmp_path / "out" / "oxford_pets" / "images" / "Abyssinian_1.jpg") as image:
        # Half-transparent red composited onto white, not onto black.
        assert image.mode == "RGB" and image.getpixel((4, 4))[1] > 100
    # --verify-images says so, one line per file.
    result = invoke("build", "--dataset", "oxford_pets", "--root", root, "--out", tmp_path / "cli", "--classes",
                    "Abyssinian", "--demo-per-class", 4, "--test-per-class", 1, "--verify-images")
    assert result.exit_code == 0, result.output
    assert sorted(result.stderr.splitlines()) == [
        f"warning: {root / 'images' / 'Abyssinian_1.jpg'}: PNG data named .jpg: reencoded as Abyssinian_1.jpg",
        f"warning: {root / 'images' / 'Abyssinian_2.jpg'}: GIF data named .jpg: reencoded as Abyssinian_2.jpg",
        f"warning: {root / 'images' / 'Abyssinian_3.jpg'}: JPEG in mode CMYK: reencoded as Abyssinian_3.jpg"]
    assert "re-encoded: 3" in result.stdout
    # Re-encoding is deterministic: a second build writes the same bytes.
    build("oxford_pets", root, tmp_path / "again", classes="Abyssinian,Bengal", demo_per_class=4, test_per_class=1)
    for name in ("Abyssinian_1.jpg", "Abyssinian_2.jpg", "Abyssinian_3.jpg"):
        assert ((tmp_path / "out" / "oxford_pets" / "images" / name).read_bytes()
                == (tmp_path / "again" / "oxford_pets" / "images" / name).read_bytes())


def test_symlink_and_none_modes_still_reencode_or_record_the_mismatch(tmp_path):
    root = pets_with_disguised_files(tmp_path / "root")
    _, rows = build("oxford_pets", root, tmp_path / "link", classes="Abyssinian", demo_per_class=4, test_per_class=1,
                    materialize="symlink")
    folder = tmp_path / "link" / "oxford_pets" / "images"
    assert not (folder / "Abyssinian_1.jpg").is_symlink() and (folder / "Abyssinian_4.jpg").is_symlink()
    assert_formats_match_names(tmp_path / "link" / "oxford_pets")
    _, rows = build("oxford_pets", root, tmp_path / "none", classes="Abyssinian", demo_per_class=4, test_per_class=1,
                    materialize="none")
    row = next(r for r in rows if r["file_name"] == "Abyssinian_1.jpg")
    assert row["image"] == {"source_format": "PNG", "source_mode": "RGBA", "action": "not_materialized",
                            "reason": "PNG data named .jpg"}


def test_palette_png_and_16_bit_tiff_become_8_bit(tmp_path):
    root = fx.fives(tmp_path / "fives", train_per_class=2, test_per_class=1)
    for path in root.rglob("*.png"):
        noise_image(path)
    Image.new("P", (8, 8), 7).save(root / "train" / "Original" / "1_A.png")
    _, rows = build("fives", root, tmp_path / "out", demo_per_class=2, test_per_class=1)
    palette = next(r for r in rows if r["source_path"].endswith("train/Original/1_A.png"))
    assert palette["image"]["reason"] == "PNG in mode P"
    assert_formats_match_names(tmp_path / "out" / "fives")

    root = fx.ucmerced(tmp_path / "ucm", per_class=2)
    deep = root / "UCMerced_LandUse" / "Images" / "airplane" / "airplane00.tif"
    Image.fromarray(np.full((8, 8), 51400, dtype=np.uint16)).save(deep)  # 16-bit grey
    _, rows = build("ucmerced", root, tmp_path / "out", classes="airplane", demo_per_class=1, test_per_class=1,
                    image_format="tif")
    assert next(r for r in rows if r["file_name"] == "airplane00.tif")["image"]["source_mode"] == "I;16"
    with Image.open(tmp_path / "out" / "ucmerced" / "images" / "airplane00.tif") as image:
        assert image.format == "TIFF" and image.mode == "L" and image.getpixel((0, 0)) == 200  # 51400 / 257
    assert_formats_match_names(tmp_path / "out" / "ucmerced")


def test_skip_option_draws_another_instead(tmp_path):
    root = pets_with_disguised_files(tmp_path / "root")
    skipped = 0
    for seed in range(5):
        meta, rows = build("oxford_pets", root, tmp_path / f"out{seed}", classes="Abyssinian", demo_per_class=1,
                           test_per_class=1, bad_images="skip", seed=seed)
        assert [r["file_name"] for r in rows if r["side"] == "demo"] == ["Abyssinian_4.jpg"]
        skipped += meta["content"]["left_out"]["bad_image"]
    assert skipped > 0
    with pytest.raises(UserError, match=r"needs 2 demo images, 1 available .*after leaving out \d by content"):
        build("oxford_pets", root, tmp_path / "short", classes="Abyssinian", demo_per_class=2, test_per_class=1,
              bad_images="skip")


def terra_with_a_copied_photo(root: Path) -> Path:
    """DomainBed's TerraIncognita layout: unique image ids per category folder, except one photo
    annotated twice, which download.py copies into both its category folders (bird and cat)."""
    for location in (38, 43, 46, 100):
        for category in fx.TERRA_CATEGORIES:
            for k in range(2):
                image_id = hashlib.md5(f"{location}-{category}-{k}".encode()).hexdigest()
                noise_image(root / "terra_incognita" / f"location_{location}" / category / f"{image_id}.jpg")
    photo = root / "terra_incognita" / "location_38" / "bird" / "5968c0f9-23d2-11e8-a6a3-ec086b02610b.jpg"
    noise_image(photo)
    shutil.copyfile(photo, root / "terra_incognita" / "location_38" / "cat" / photo.name)
    return root


def test_a_photo_in_two_category_folders_is_excluded_and_counted(tmp_path):
    root = terra_with_a_copied_photo(tmp_path / "root")
    # 9 bird files, 8 wanted: the copy is drawn (or its absence forced) under every seed.
    meta, rows = build("terraincognita", root, tmp_path / "out", classes="bird,cat", demo_per_class=5, test_per_class=3)
    assert not any("5968c0f9" in r["file_name"] for r in rows)
    assert meta["content"]["multi_label_images"] == 1 and meta["content"]["left_out"]["multi_label"] >= 1
    # Found from the file system too: `cat` is not even among the classes built.
    meta, rows = build("terraincognita", root, tmp_path / "bird", classes="bird,dog", demo_per_class=5,
                       test_per_class=3)
    assert not any("5968c0f9" in r["file_name"] for r in rows) and meta["content"]["multi_label_images"] == 1
    # keep: the photo appears at most once, under the label of the copy drawn first.
    kept = 0
    for seed in range(4):
        meta, rows = build("terraincognita", root, tmp_path / f"keep{seed}", classes="bird,cat", demo_per_class=4,
                           test_per_class=3, multi_label="keep", seed=seed)
        copies = [r for r in rows if "5968c0f9" in r["file_name"]]
        assert len(copies) <= 1 and meta["content"]["multi_label"] == "keep"
        kept += len(copies)
    assert kept > 0


def test_a_dangling_link_named_like_a_drawn_file_in_another_class_folder_is_no_copy(tmp_path):
    root = fx.eurosat(tmp_path / "root", per_class=2)
    (root / "2750" / "Forest" / "AnnualCrop_1.jpg").symlink_to(tmp_path / "missing.jpg")
    meta, rows = build("eurosat", root, tmp_path / "out", demo_per_class=1, test_per_class=1)  # draws every file
    assert "2750/AnnualCrop/AnnualCrop_1.jpg" in {r["source_path"] for r in rows}
    assert meta["content"]["multi_label_images"] == 0 and meta["totals"] == {"demo": 10, "test": 10}


def test_identical_files_are_one_item_never_on_both_sides(tmp_path):
    root = noisy_eurosat(tmp_path / "root", per_class=4)
    forest = root / "2750" / "Forest"
    shutil.copyfile(forest / "Forest_1.jpg", forest / "Forest_2.jpg")
    for seed in range(4):
        meta, rows = build("eurosat", root, tmp_path / f"out{seed}", demo_per_class=2, test_per_class=1, seed=seed)
        digests = [r["sha256"] for r in rows]
        assert len(digests) == len(set(digests))  # neither across nor within sides
        assert all(r["sha256"] == hashlib.sha256((root / r["source_path"]).read_bytes()).hexdigest() for r in rows)
    # 4 Forest files, 3 distinct: all 4 cannot be drawn.
    with pytest.raises(UserError, match=r"class 'Forest' needs \d \w+ images, \d available .*leaving out 1 by content"):
        build("eurosat", root, tmp_path / "all", demo_per_class=2, test_per_class=2)


def test_only_drawn_items_are_read(tmp_path):
    root = fx.camelyon17(tmp_path / "root")
    meta, rows = build("camelyon17", root, tmp_path / "out", demo_per_class=5, test_per_class=3)
    assert meta["content"]["inspected_images"] == len(rows) < 120


def test_near_duplicates_across_sides_are_counted_and_replaced_on_request(tmp_path):
    root = noisy_eurosat(tmp_path / "root", per_class=6)
    settings = {"demo_per_class": 2, "test_per_class": 1}
    meta, rows = build("eurosat", root, tmp_path / "clean", **settings)
    assert meta["content"]["near_duplicate_pairs"] == 0 and meta["content"]["near_duplicate_distance"] == 10
    demo = next(r for r in rows if r["side"] == "demo")
    test = next(r for r in rows if r["side"] == "test" and r["labels"] != demo["labels"])
    with Image.open(root / demo["source_path"]) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    shifted = np.clip(pixels + 3, 0, 255).astype(np.uint8)  # other bytes, same picture
    Image.fromarray(shifted).save(root / test["source_path"], format="JPEG", quality=90)

    meta, rows = build("eurosat", root, tmp_path / "leaky", **settings)
    assert (meta["content"]["near_duplicate_pairs"], meta["content"]["near_duplicate_test_items"]) == (1, 1)
    result = invoke("build", "--dataset", "eurosat", "--root", root, "--out", tmp_path / "cli",
                    "--demo-per-class", 2, "--test-per-class", 1)
    assert result.exit_code == 0, result.output
    assert "near-duplicate demo/test pairs: 1 (pHash distance <= 10)" in result.stdout

    meta, rows = build("eurosat", root, tmp_path / "fixed", exclude_near_duplicates=True, **settings)
    assert meta["content"]["near_duplicate_pairs"] == 0 and meta["content"]["left_out"]["near_duplicate"] == 1
    assert len({r["source_path"] for r in rows} & {demo["source_path"], test["source_path"]}) == 1
    meta, _ = build("eurosat", root, tmp_path / "off", near_duplicate_distance=None, **settings)
    assert meta["content"]["near_duplicate_distance"] is None and meta["content"]["near_duplicate_pairs"] == 0


def test_contained_label_names_are_warned_recorded_and_listed(tmp_path):
    root = fx.dtd(tmp_path / "root")
    result = invoke("build", "--dataset", "dtd", "--root", root, "--out", tmp_path / "out", "--demo-per-class", 1,
                    "--test-per-class", 1, "--classes", "banded,dotted,polka-dotted")
    assert result.exit_code == 0, result.output
    warning = result.stderr.strip()
    assert warning.startswith("warning: dtd: class names inside other class names: 'dotted' in 'polka-dotted'.")
    assert "isekai-gen score" in warning and "eval.py" in warning and warning.count("\n") == 0
    meta, _ = read_split(tmp_path / "out" / "dtd")
    assert meta["contained_labels"] == [["dotted", "polka-dotted"]]
    listed = invoke("list").output
    assert "class names inside others: dotted in polka-dotted" in listed
    assert "class names inside others: cat in bobcat" in listed
    assert {d["name"]: d["contained_labels"] for d in json.loads(invoke("list", "--json").output)}["eurosat"] == []


def test_build_all_builds_what_it_can_and_lists_every_failure(tmp_path):
    noisy_eurosat(tmp_path / "data" / "eurosat", per_class=4)
    fx.ucmerced(tmp_path / "data" / "ucmerced", per_class=3)
    (tmp_path / "data" / "dtd").mkdir()  # an empty download folder
    (tmp_path / "ROOTS.yaml").write_text(
        "eurosat: data/eurosat\nfives: data/missing\nucmerced: data/ucmerced\ndtd: data/dtd\n")
    result = invoke("build-all", "--roots", tmp_path / "ROOTS.yaml", "--out", tmp_path / "out",
                    "--demo-per-class", 2, "--test-per-class", 1)
    assert result.exit_code == 1
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["ucmerced", "eurosat"]
    errors = result.stderr.splitlines()
    assert errors[0].startswith("failed: fives: ") and "data/missing: FIVES root folder not found" in errors[0]
    assert errors[1].startswith("failed: dtd: ")
    assert errors[2] == "error: 2 of 4 splits failed: fives, dtd" and len(errors) == 3
    assert read_split(tmp_path / "out" / "eurosat")[0]["totals"] == {"demo": 20, "test": 10}
    assert read_split(tmp_path / "out" / "ucmerced")[0]["totals"] == {"demo": 42, "test": 21}
    assert not (tmp_path / "out" / "dtd").exists() and not (tmp_path / "out" / "fives").exists()


def test_verify_images_reports_a_truncated_file_and_nothing_is_packaged(tmp_path):
    root = noisy_eurosat(tmp_path / "root", per_class=3)
    broken = root / "2750" / "Highway" / "Highway_2.jpg"
    noise_image(broken, size=64)
    broken.write_bytes(broken.read_bytes()[:600])
    args = ["build", "--dataset", "eurosat", "--root", root, "--out", tmp_path / "out", "--demo-per-class", 2,
            "--test-per-class", 1]
    result = invoke(*args, "--verify-images")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"warning: {broken}: truncated image (")
    assert lines[1].startswith(f"error: {broken}: corrupt image: truncated image") and len(lines) == 2
    assert not (tmp_path / "out" / "eurosat").exists()
    # Without --verify-images the file is still decoded: never packaged silently.
    result = invoke(*args)
    assert result.exit_code == 1 and result.output.startswith(f"error: {broken}: corrupt image")
    # --bad-images skip: needs every Highway file, so one short.
    result = invoke(*args, "--bad-images", "skip", "--verify-images")
    assert result.exit_code == 1 and "class 'Highway' needs" in result.output
    assert f"warning: {broken}: truncated image" in result.stderr and "left out, another drawn" in result.stderr


def test_a_file_name_with_a_folder_is_refused_when_the_split_is_written(tmp_path):
    recipe = get_adapter("eurosat").recipe({"demo_per_class": 1, "test_per_class": 0, "classes": ["Forest"]})
    rows = [{"file_name": "Forest/Forest_1.jpg", "side": "demo", "labels": ["Forest"], "group": "g",
             "source_path": "2750/Forest/Forest_1.jpg", "source_split": "all", "stratum": "Forest", "demo_rank": 0}]
    folder = tmp_path / "eurosat"
    folder.mkdir()
    with pytest.raises(UserError, match=r"file_name 'Forest/Forest_1.jpg' must be a bare file name"):
        write_split_files(folder, recipe, rows, split_meta(recipe, rows, 0, "none", {}))
    assert list(folder.iterdir()) == []
