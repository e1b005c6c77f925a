"""Export stage: webdataset shards, Hugging Face Parquet folder, dataset card, determinism, errors.

Outputs are read back by their real consumers: ``webdataset.WebDataset``, ``datasets.load_dataset``
(webdataset, parquet and the card's configs) and ``huggingface_hub.DatasetCard``.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from test_export_helpers import export_hashes, make_build

from isekai_gen.config import BuildConfig, with_overrides
from isekai_gen.errors import UserError
from isekai_gen.export.stage import run_export
from isekai_gen.export.webdataset import FIXED_MTIME, plan_shards, tar_header
from isekai_gen.fileio import read_jsonl, write_jsonl
from isekai_gen.schema import validate
from temp_names import leftover

ROOT = Path(__file__).resolve().parent.parent


def with_shards(config: BuildConfig, **formats: dict) -> BuildConfig:
    """``config`` with export format settings overridden, e.g. ``webdataset={"max_samples_per_shard": 3}``."""
    return with_overrides(config, [{"export": formats}], "test")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One exported smoke-test build with three-sample shards, shared by the read-back tests."""
    out = tmp_path_factory.mktemp("build")
    config, catalog = make_build(out, smoke_test=True)
    config = with_shards(config, webdataset={"max_samples_per_shard": 3}, hf={"max_rows_per_shard": 5})
    summary = run_export(config, out, catalog)
    return out, config, catalog, summary


def kept_rows(out: Path) -> list[dict]:
    return [row for row in read_jsonl(out / "manifest.jsonl") if row["kept"]]


def test_webdataset_shards_read_back_with_webdataset(built):
    import webdataset

    out, _, catalog, summary = built
    folder = out / "export" / "webdataset"
    index = json.loads((folder / "index.json").read_text())
    validate(index, "webdataset_index", "index.json")
    assert index == summary["webdataset"]
    kept = {row["job_id"]: row for row in kept_rows(out)}
    assert [s["samples"] for s in index["shards"]] == [3, 3, 3, 3, 2]
    shard_files = sorted(p.name for p in folder.glob("*.tar"))
    assert shard_files == [f"test-{i:06d}.tar" for i in range(5)] == [s["file"] for s in index["shards"]]
    for shard in index["shards"]:
        data = (folder / shard["file"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (shard["bytes"], shard["sha256"])

    samples = list(webdataset.WebDataset([str(folder / f) for f in shard_files], shardshuffle=False))
    keys = [s["__key__"] for s in samples]
    assert keys == sorted(kept, key=lambda k: (catalog.ids.index(kept[k]["concept_id"]), k))
    for sample in samples:
        row = kept[sample["__key__"]]
        assert {k for k in sample if not k.startswith("__")} == {"cls", "json", "png", "txt"}
        assert sample["png"] == (out / row["image"]).read_bytes()
        assert int(sample["cls"]) == catalog.ids.index(row["concept_id"])
        assert sample["txt"].decode() == row["prompt"]
        metadata = json.loads(sample["json"])
        assert (metadata["id"], metadata["seed"], metadata["alignment"]) == (
            row["job_id"], row["seed"], row["scores"]["alignment"])


def test_webdataset_members_are_sorted_with_fixed_mtime(built):
    out = built[0]
    with tarfile.open(out / "export" / "webdataset" / "test-000000.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[:4] == ["cactihog-00000.cls", "cactihog-00000.json", "cactihog-00000.png", "cactihog-00000.txt"]
    assert {(m.mtime, m.uname, m.mode) for m in members} == {(FIXED_MTIME, "isekai-gen", 0o444)}


def _tarfile_bytes(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_shards_are_byte_for_byte_what_tarfile_writes(built):
    """The shard writer lays tar blocks out by hand: tarfile, given the same members, writes the same bytes."""
    folder = built[0] / "export" / "webdataset"
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as tar:
            members = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]
        assert _tarfile_bytes(members) == shard.read_bytes()


@pytest.mark.parametrize("name", ["a.png", "cactihog-00001.json", "é.txt", "x" * 100, "a" * 64 + "-1234567.json"])
@pytest.mark.parametrize("size", [0, 1, 511, 512, 197_000, 8**11 - 1])
def test_tar_header_is_tarfiles_header(name, size):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, FIXED_MTIME, 0o444
    info.uname = info.gname = "isekai-gen"
    assert tar_header(name, size) == info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")


def test_webdataset_shards_load_with_datasets(built, tmp_path):
    import datasets

    out = built[0]
    files = sorted(str(p) for p in (out / "export" / "webdataset").glob("*.tar"))
    dataset = datasets.load_dataset("webdataset", data_files={"test": files}, split="test",
                                    cache_dir=str(tmp_path / "cache"))
    assert dataset.num_rows == len(kept_rows(out))
    first = dataset[0]
    assert first["__key__"] == "cactihog-00000" and first["cls"] == 0
    assert first["png"].size == (16, 16)
    assert first["json"]["concept"] == "cactihog"


def test_hf_parquet_loads_with_image_feature_and_class_names(built, tmp_path):
    import datasets

    out, _, catalog, summary = built
    hf = out / "export" / "hf"
    assert summary["hf"]["images"]["files"] == [
        "data/images-test-00000-of-00003.parquet", "data/images-test-00001-of-00003.parquet",
        "data/images-test-00002-of-00003.parquet"]
    files = sorted(str(p) for p in (hf / "data").glob("images-*.parquet"))
    images = datasets.load_dataset("parquet", data_files={"test": files}, split="test",
                                   cache_dir=str(tmp_path / "cache"))
    kept = {row["job_id"]: row for row in kept_rows(out)}
    assert sorted(images["id"]) == sorted(kept)
    assert images.features["class_index"].names == catalog.ids
    assert isinstance(images.features["image"], datasets.Image)
    row = images[0]
    assert row["image"].size == (16, 16)
    assert (row["concept"], row["group"], row["world"], row["label"]) == (
        "cactihog", "cactus-hedgehog", "isekai", kept[row["id"]]["label"])
    assert (row["prompt"], row["seed"], row["model"]) == (kept[row["id"]]["prompt"], kept[row["id"]]["seed"], "tiny-sd")
    assert row["margin"] == pytest.approx(kept[row["id"]]["scores"]["margin"])


def test_hf_folder_loads_every_config_from_the_card(built, tmp_path):
    import datasets

    out = built[0]
    hf = str(out / "export" / "hf")
    cache = str(tmp_path / "cache")
    images = datasets.load_dataset(hf, split="test", cache_dir=cache)  # the default config
    assert images.num_rows == len(kept_rows(out))
    pairs = datasets.load_dataset(hf, "isekai-10", split="test", cache_dir=cache)
    assert pairs.num_rows == 4 and pairs.num_rows % 2 == 0
    assert set(pairs[0]["positive_support"]) <= set(images["id"])
    assert datasets.load_dataset(hf, "isekai-pair", split="test", cache_dir=cache).num_rows == 2


def test_card_round_trips_and_carries_build_numbers(built):
    from huggingface_hub import DatasetCard, DatasetCardData

    out, config, _, summary = built
    readme = out / "export" / "hf" / "README.md"
    card = DatasetCard.load(readme)
    data = card.data.to_dict()
    assert data["license"] == "cc-by-nc-4.0" and data["size_categories"] == ["n<1K"]
    assert data["task_categories"] and data["tags"] and data["pretty_name"]
    assert [c["config_name"] for c in data["configs"]] == ["images", "isekai-10", "isekai-pair"]
    assert DatasetCardData(**data).to_dict() == data
    assert DatasetCard(str(card)).data.to_dict() == data
    text = readme.read_text()
    assert "{{" not in text.replace("{{ ... }}", "")
    assert "| 0 | `cactihog` | cactihog | isekai | `cactus-hedgehog` | 5 | 5 | 3 |" in text
    assert "| 4 | 20.0% |" in text.split("`low_alignment`")[1].splitlines()[0]
    assert "| 1 | 5.0% |" in text.split("`duplicate`")[1].splitlines()[0]
    assert "| **kept** | passed every rule | 14 | 70.0% |" in text
    assert f"| licence | {config.generation.model.license} |" in text
    seeds = [row["seed"] for row in read_jsonl(out / "manifest.jsonl")]
    assert "`tiny-clip`" in text and f"range {min(seeds)}..{max(seeds)}" in text
    sums = (out / "export" / "SHA256SUMS").read_bytes()
    assert summary["content_hash"] == hashlib.sha256(sums).hexdigest() and summary["content_hash"] in text
    assert "SMOKE-TEST BUILD" in text
    assert "Tai" in text and "2308.07891" in text and "2405.09798" in text


def test_content_hash_lists_every_exported_file(built):
    out = built[0]
    export = out / "export"
    listed = {}
    for line in (export / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split("  ", 1)
        listed[path] = digest
    assert list(listed) == sorted(listed)
    expected = {k: v for k, v in export_hashes(out).items() if k not in ("SHA256SUMS", "hf/README.md")}
    assert listed == expected
    assert "lcl/ISEKAI-10.json" in listed and "webdataset/index.json" in listed


def test_benchmark_splits_travel_and_images_only_when_redistributable(built):
    hf = built[0] / "export" / "hf" / "benchmarks"
    for name in ("fives", "chexpert"):
        assert sorted(p.name for p in (hf / name).glob("*.*")) == ["demo.csv", "split.json", "split.jsonl",
                                                                   "test.csv"]
    assert sorted(p.name for p in (hf / "fives" / "images").iterdir()) == ["x1.png", "x2.png"]
    assert not (hf / "chexpert" / "images").exists()


def test_temporary_files_of_a_killed_export_are_removed(tmp_path):
    config, catalog = make_build(tmp_path, benchmarks=False)
    run_export(config, tmp_path, catalog)
    leftovers = [tmp_path / "export" / "webdataset" / leftover("test-000000.tar"),
                 tmp_path / "export" / "hf" / "data" / leftover("images-test-00000-of-00001.parquet")]
    for path in leftovers:
        path.write_bytes(b"half a file")
    run_export(config, tmp_path, catalog)
    assert not [path for path in leftovers if path.exists()]


def test_removed_benchmark_leaves_no_folder_behind(tmp_path):
    config, catalog = make_build(tmp_path)
    run_export(config, tmp_path, catalog)
    hf = tmp_path / "export" / "hf" / "benchmarks"
    assert (hf / "fives" / "images").is_dir()
    shutil.rmtree(tmp_path / "benchmarks" / "fives")
    run_export(config, tmp_path, catalog)
    assert sorted(p.name for p in hf.iterdir()) == ["chexpert"]
    shutil.rmtree(tmp_path / "benchmarks")
    run_export(config, tmp_path, catalog)
    assert not hf.exists()


def test_export_is_byte_identical_across_builds_and_reruns(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    config, catalog = make_build(first)
    make_build(second)
    run_export(config, first, catalog)
    run_export(config, second, catalog)
    hashes = export_hashes(first)
    assert hashes == export_hashes(second)
    run_export(config, first, catalog)
    assert export_hashes(first) == hashes
    assert "SMOKE-TEST" not in (first / "export" / "hf" / "README.md").read_text()


def test_reexport_with_fewer_shards_removes_stale_files(tmp_path):
    config, catalog = make_build(tmp_path, benchmarks=False)
    run_export(with_shards(config, webdataset={"max_samples_per_shard": 2}, hf={"max_rows_per_shard": 2}),
               tmp_path, catalog)
    run_export(with_shards(config, webdataset={"max_samples_per_shard": 100}, hf={"max_rows_per_shard": 100}),
               tmp_path, catalog)
    assert sorted(p.name for p in (tmp_path / "export" / "webdataset").iterdir()) == ["index.json", "test-000000.tar"]
    assert sorted(p.name for p in (tmp_path / "export" / "hf" / "data").iterdir()) == [
        "images-test-00000-of-00001.parquet", "isekai-10-test-00000-of-00001.parquet",
        "isekai-pair-test-00000-of-00001.parquet"]


def test_shards_respect_the_byte_limit(tmp_path):
    config, catalog = make_build(tmp_path, benchmarks=False)
    limit = 65536
    index = run_export(with_shards(config, webdataset={"max_bytes_per_shard": limit}), tmp_path, catalog)["webdataset"]
    assert len(index["shards"]) > 1
    assert all(shard["bytes"] <= limit for shard in index["shards"])
    assert sum(shard["samples"] for shard in index["shards"]) == 14


def test_plan_shards_cuts_by_count_and_bytes():
    assert plan_shards([1] * 5, 2, 100) == [range(0, 2), range(2, 4), range(4, 5)]
    assert plan_shards([40, 40, 40, 200, 10], 10, 100) == [range(0, 2), range(2, 3), range(3, 4), range(4, 5)]
    assert plan_shards([], 3, 100) == []


def test_missing_image_is_an_error_naming_the_file(tmp_path):
    config, catalog = make_build(tmp_path, benchmarks=False)
    missing = tmp_path / "images" / "hedgehog" / "hedgehog-00001.png"
    missing.unlink()
    with pytest.raises(UserError, match=r"hedgehog-00001\.png: image of kept job hedgehog-00001 not found"):
        run_export(config, tmp_path, catalog)
    assert not (tmp_path / "export" / "webdataset" / "index.json").exists()


def test_changed_image_is_an_error_naming_the_file(tmp_path):
    config, catalog = make_build(tmp_path, benchmarks=False)
    image = tmp_path / "images" / "octopus" / "octopus-00002.png"
    data = bytearray(image.read_bytes())
    data[-20] ^= 0xFF  # same size, different content
    image.write_bytes(data)
    with pytest.raises(UserError, match=r"octopus-00002\.png: content does not match the sha256"):
        run_export(config, tmp_path, catalog)
    assert [p.name for p in (tmp_path / "export" / "webdataset").iterdir()] == []  # no shard, temp file or index


def test_unfiltered_manifest_is_an_error(tmp_path):
    config, catalog = make_build(tmp_path, benchmarks=False)
    rows = read_jsonl(tmp_path / "manifest.jsonl")
    write_jsonl(tmp_path / "manifest.jsonl", [{k: v for k, v in row.items() if k != "kept"} for row in rows])
    with pytest.raises(UserError, match=r"manifest\.jsonl: no filter results"):
        run_export(config, tmp_path, catalog)


def test_wrong_score_type_is_an_error_naming_the_row(tmp_path):
    config, catalog = make_build(tmp_path, benchmarks=False)
    rows = read_jsonl(tmp_path / "manifest.jsonl")
    rows[1]["scores"]["alignment"] = "high"
    write_jsonl(tmp_path / "manifest.jsonl", rows)
    with pytest.raises(UserError, match=r"manifest\.jsonl: row 2 \(cactihog-00001\): scores\.alignment is 'high'"):
        run_export(config, tmp_path, catalog)


def test_episode_naming_an_unkept_image_is_an_error(tmp_path):
    config, catalog = make_build(tmp_path, benchmarks=False)
    path = tmp_path / "episodes" / "episodes.jsonl"
    episodes = read_jsonl(path)
    episodes[2]["positive_support"][0] = "cactihog-00003"  # rejected for low alignment
    write_jsonl(path, episodes)
    with pytest.raises(UserError, match=r"episodes\.jsonl: row 3 .*'cactihog-00003' is not a kept image"):
        run_export(config, tmp_path, catalog)


def test_benchmark_without_recipe_is_an_error(tmp_path):
    config, catalog = make_build(tmp_path)
    (tmp_path / "benchmarks" / "fives" / "split.json").write_text("{}")
    with pytest.raises(UserError, match=r"fives/split\.json: missing or without a boolean recipe\.redistributable"):
        run_export(config, tmp_path, catalog)


def test_cli_export_from_run_json_matches_the_in_process_export(tmp_path):
    config, catalog = make_build(tmp_path, benchmarks=False)
    run_export(config, tmp_path, catalog)  # the config as loaded from YAML, not as stored in run.json
    in_process = export_hashes(tmp_path)
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "export", "--out", str(tmp_path), "--no-progress"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "webdataset: 14 samples in 1 shard(s)" in result.stdout
    assert export_hashes(tmp_path) == in_process


def test_cli_export_reports_a_broken_build_in_one_line(tmp_path):
    make_build(tmp_path, benchmarks=False)
    shutil.rmtree(tmp_path / "images" / "cctovac")
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "export", "--out", str(tmp_path), "--no-progress"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "cctovac-00000.png" in result.stderr and "Traceback" not in result.stderr


def test_bad_override_on_a_recorded_config_blames_the_override(tmp_path):
    from click.testing import CliRunner

    from isekai_gen.cli import main

    make_build(tmp_path, benchmarks=False)
    result = CliRunner().invoke(main, ["export", "--out", str(tmp_path), "--set", "filter.min_alignment=high"])
    assert result.exit_code == 1
    assert result.output == (f"error: {tmp_path / 'run.json'} with the command-line overrides: "
                             "at filter/min_alignment: 'high' is not of type 'number'\n")


def test_run_json_that_is_not_an_object_is_one_line(tmp_path):
    config, catalog = make_build(tmp_path, benchmarks=False)
    (tmp_path / "run.json").write_text("[]")
    with pytest.raises(UserError, match=r"run\.json: expected a JSON object, got list$"):
        run_export(config, tmp_path, catalog)


@pytest.mark.parametrize("recorded_size", [4, 6])
def test_image_whose_size_changed_after_planning_is_an_error(tmp_path, recorded_size):
    from isekai_gen.export.items import ExportItem

    image = tmp_path / "a-00000.png"
    image.write_bytes(b"12345")
    item = ExportItem(key="a-00000", image_path=image, image_size=recorded_size,
                      metadata={"sha256": hashlib.sha256(b"12345"[:recorded_size]).hexdigest()})
    with pytest.raises(UserError, match=r"a-00000\.png: image changed during the export"):
        item.read_image()
