"""`isekai-gen splits ...` and the build's `benchmarks` section (run_benchmarks)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

import splits_fixtures as fx
from isekai_gen.cli import main
from isekai_gen.config import load_config
from isekai_gen.errors import UserError
from isekai_gen.manyicl import read_split, run_benchmarks


def invoke(*args):
    return CliRunner().invoke(main, ["splits", *map(str, args)])


def test_list_shows_every_dataset_with_sizes_licence_and_documented_defaults():
    result = invoke("list")
    assert result.exit_code == 0, result.output
    for name in fx.WRITERS:
        assert f"\n{name}  (" in "\n" + result.output
    assert "demo 115/class (805), test 30/class (210)" in result.output
    assert "demo 20+20 pos/neg per finding (200), test 15+15 (150)" in result.output
    assert "not used by default: american_pit_bull_terrier, staffordshire_bull_terrier" in result.output
    assert 'option uncertain="ignore"' in result.output and 'option test_centers=[2]' in result.output
    assert "redistribution allowed: no" in result.output and "redistribution allowed: yes" in result.output
    listed = json.loads(invoke("list", "--json").output)
    assert {d["name"]: d["redistributable"] for d in listed}["chexpert"] is False


def test_build_command_writes_the_split(tmp_path):
    root = fx.chexpert(tmp_path / "root")
    result = invoke("build", "--dataset", "chexpert", "--root", root, "--out", tmp_path / "out", "--seed", 3,
                    "--demo-per-class", 2, "--test-per-class", 1, "--classes", "Edema,Cardiomegaly",
                    "--materialize", "none", "--option", "uncertain=zeros", "--verify-images")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("chexpert: 8 demo, 4 test -> ")
    meta, rows = read_split(tmp_path / "out" / "chexpert")
    assert meta["seed"] == 3 and meta["recipe"]["options"]["uncertain"] == "zeros"
    assert pd.read_csv(tmp_path / "out" / "chexpert" / "demo.csv", index_col=0).columns.tolist() == ["Cardiomegaly", "Edema"]


def test_build_command_bad_input_is_one_error_line_and_exit_2(tmp_path):
    root = fx.fives(tmp_path / "root")
    (root / "test" / "Original" / "2_A.png").write_bytes(b"not a png")
    result = invoke("build", "--dataset", "fives", "--root", root, "--out", tmp_path / "out",
                    "--demo-per-class", 5, "--test-per-class", 3)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert "2_A.png: corrupt image: cannot be decoded" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "fives").exists()
    # --verify-images: the problem on its own line, then the error.
    result = invoke("build", "--dataset", "fives", "--root", root, "--out", tmp_path / "out",
                    "--demo-per-class", 5, "--test-per-class", 3, "--verify-images")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].endswith("2_A.png: cannot be decoded (not an image format PIL knows)")
    assert result.stderr.splitlines()[1].startswith("error: ") and len(result.stderr.splitlines()) == 2

    result = invoke("build", "--dataset", "fives", "--root", root, "--out", tmp_path / "out", "--option", "colour=red")
    assert result.exit_code == 1 and "fives: unknown option(s) colour" in result.output
    for bad in ("colour", "a.b=1", "=1"):
        result = invoke("build", "--dataset", "fives", "--root", root, "--out", tmp_path / "out", "--option", bad)
        assert result.exit_code == 1
        assert result.output == f"error: --option {bad!r}: expected KEY=VALUE with a plain key\n"


def test_build_all_reads_roots_relative_to_the_roots_file(tmp_path):
    fx.eurosat(tmp_path / "data" / "eurosat")
    fx.fives(tmp_path / "data" / "fives")
    roots = tmp_path / "data" / "ROOTS.yaml"
    roots.write_text("FIVES: fives\nEuroSAT: eurosat\n")  # any accepted spelling
    result = invoke("build-all", "--roots", roots, "--out", tmp_path / "out", "--demo-per-class", 2, "--test-per-class", 1)
    assert result.exit_code == 0, result.output
    assert [line.split(":")[0] for line in result.output.splitlines()] == ["fives", "eurosat"]  # Table 1 order
    assert read_split(tmp_path / "out" / "eurosat")[0]["totals"] == {"demo": 20, "test": 10}
    # Table 1 sizes exceed the tiny fixtures: the error names the dataset root, class and counts.
    result = invoke("build-all", "--roots", roots, "--out", tmp_path / "out2")
    assert result.exit_code == 1
    assert "data/fives: FIVES class 'age-related macular degeneration' needs 30 test images, 3 available" in result.output


def test_run_benchmarks_builds_nothing_without_roots(tmp_path):
    config = load_config("tiny")
    assert run_benchmarks(config, tmp_path / "build") == {}
    assert not (tmp_path / "build").exists()


def test_run_benchmarks_reads_inline_roots_relative_to_the_config_and_per_dataset_settings(tmp_path):
    fx.eurosat(tmp_path / "data" / "sat")
    fx.ucmerced(tmp_path / "data" / "ucm")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "benchmarks:\n"
        "  roots: {EuroSAT: data/sat, UCMerced_LandUse: data/ucm}\n"
        "  seed: 5\n"
        "  materialize: none\n"
        "  datasets:\n"
        "    eurosat: {demo_per_class: 2, test_per_class: 1}\n"
        "    ucmerced: {demo_per_class: 1, test_per_class: 1, image_format: png, seed: 9}\n"
    )
    config = load_config(config_file=config_file)
    summary = run_benchmarks(config, tmp_path / "build")
    assert list(summary) == ["ucmerced", "eurosat"]  # Table 1 order
    assert summary["eurosat"]["totals"] == {"demo": 20, "test": 10}
    meta, rows = read_split(tmp_path / "build" / "benchmarks" / "ucmerced")
    assert meta["seed"] == 9 and meta["materialize"] == "none"
    assert all(r["file_name"].endswith(".png") for r in rows)


def test_run_benchmarks_reads_a_roots_file_and_keeps_only_split_folders_under_benchmarks(tmp_path):
    fx.dtd(tmp_path / "data" / "textures")
    fx.drugood(tmp_path / "data" / "drugood")
    (tmp_path / "ROOTS.yaml").write_text("dtd: data/textures\ndrugood: data/drugood\n")
    config_file = tmp_path / "config.yaml"
    config_file.write_text("benchmarks:\n  roots: ROOTS.yaml\n"
                           "  datasets: {dtd: {demo_per_class: 1, test_per_class: 1}, drugood: {demo_per_class: 2, test_per_class: 1}}\n")
    summary = run_benchmarks(load_config(config_file=config_file), tmp_path / "build")
    assert summary["dtd"]["totals"] == {"demo": 47, "test": 47}
    assert (tmp_path / "build" / "benchmarks" / "dtd" / "images").is_dir()
    # Exporters treat every folder under benchmarks/ as a split: the molecule cache lives elsewhere.
    assert sorted(p.name for p in (tmp_path / "build" / "benchmarks").iterdir()) == ["drugood", "dtd"]
    assert len(list((tmp_path / "build" / "cache" / "drugood").rglob("*.png"))) == 6


def test_file_system_refusal_is_one_line_naming_the_file(tmp_path):
    root = fx.eurosat(tmp_path / "root")
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "out"  # the OS refuses to create a folder inside a file
    result = invoke("build", "--dataset", "eurosat", "--root", root, "--out", out,
                    "--demo-per-class", 2, "--test-per-class", 1)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert f"{tmp_path / 'a-file'}" in result.output and "Not a directory" in result.output


def test_bad_option_value_names_the_option(tmp_path):
    result = invoke("build", "--dataset", "eurosat", "--root", tmp_path, "--out", tmp_path / "out", "--option", "a=[1")
    assert result.exit_code == 1
    assert result.output.startswith("error: --option 'a=[1': ") and "YAML" in result.output
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("dataset, option, message", [
    ("drugood", "file=5", "drugood: option file=5 must be a string"),
    ("ham10000", "metadata=[a]", "ham10000: option metadata=['a'] must be a string"),
    ("dtd", "partition=true", "dtd: option partition=True must be a whole number"),
    ("camelyon17", "demo_centers=0", "camelyon17: option demo_centers=0 must be a list"),
    ("eurosat", "classes=5", "eurosat: classes must be a list of class names, got 5"),
])
def test_option_of_the_wrong_type_is_one_line(tmp_path, dataset, option, message):
    result = invoke("build", "--dataset", dataset, "--root", tmp_path, "--out", tmp_path / "out", "--option", option)
    assert result.exit_code == 1, result.output
    assert result.output == f"error: {message}\n"


def test_run_benchmarks_builds_the_others_then_names_every_failure(tmp_path):
    fx.eurosat(tmp_path / "data" / "sat")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "benchmarks:\n"
        "  roots: {eurosat: data/sat, fives: data/missing}\n"
        "  datasets: {eurosat: {demo_per_class: 2, test_per_class: 1}}\n"
    )
    with pytest.raises(UserError, match=r"^benchmarks: 1 of 2 splits failed \(fives: .*data/missing: FIVES root"):
        run_benchmarks(load_config(config_file=config_file), tmp_path / "build")
    meta, _ = read_split(tmp_path / "build" / "benchmarks" / "eurosat")
    assert meta["totals"] == {"demo": 20, "test": 10}
    assert meta["content"]["near_duplicate_distance"] == load_config("tiny").filter.dedup.phash_max_distance
