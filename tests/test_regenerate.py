"""`generate --verify` and `generate --regenerate JOB_ID...` on tiny random-weight builds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from isekai_gen.build import prepare
from isekai_gen.cli import main
from isekai_gen.errors import UserError
from isekai_gen.fileio import sha256_file
from isekai_gen.generation import run_generation
from isekai_gen.config import ModelRef
from isekai_gen.generation.pipeline import load_pipeline
from isekai_gen.generation.regenerate import regenerate_images, verify_images
from isekai_gen.manifest import part_path, read_manifest, read_parts

from generation_helpers import tiny_catalog, tiny_config


@pytest.fixture(scope="module")
def tiny_sd(isekai_cache):
    return load_pipeline(ModelRef(id="tiny-sd"), dtype="float32", device="cpu", cache_dir=isekai_cache)


def digest(out_dir) -> dict[str, str]:
    files = {str(p.relative_to(out_dir)): sha256_file(p) for p in sorted((out_dir / "images").rglob("*.png"))}
    return {**files, "manifest.jsonl": sha256_file(out_dir / "manifest.jsonl")}


def resumed_build(out_dir, tiny_sd):
    """A build whose batches are not a plain cut of the job list: 3 images per concept in batches of 4,
    then extended to 5 per concept with batch size 3 (the resume batches only the pending jobs)."""
    first = tiny_config(images_per_concept=3, batch_size=4)
    run_generation(first, out_dir, tiny_catalog(first), loaded=tiny_sd)
    config = tiny_config(images_per_concept=5, batch_size=3)
    run_generation(config, out_dir, tiny_catalog(config), loaded=tiny_sd)
    return config


def test_verify_and_regenerate_through_the_cli_restore_the_recorded_bytes(tmp_path, tiny_sd):
    config = resumed_build(tmp_path, tiny_sd)
    prepare(config, tmp_path)  # run.json, which the commands read the build's settings from
    before = digest(tmp_path)
    rows = {row["job_id"]: row for row in read_manifest(tmp_path)}
    # hedgehog-00001 came from a 4-image batch of the first run, hedgehog-00003 alone from the
    # resumed one (its batch-mates were done): cutting the final job list by 3 gives neither.
    (tmp_path / rows["hedgehog-00001"]["image"]).unlink()
    (tmp_path / rows["hedgehog-00003"]["image"]).write_bytes(b"edited by hand")
    runner = CliRunner()
    verify = runner.invoke(main, ["generate", "--out", str(tmp_path), "--verify"])
    assert verify.exit_code == 1
    lines = verify.stdout.strip().splitlines()
    assert lines == [f"{tmp_path / rows['hedgehog-00001']['image']}: missing (job hedgehog-00001)",
                     f"{tmp_path / rows['hedgehog-00003']['image']}: sha256 differs from the manifest (job hedgehog-00003)"]
    assert "2 images missing or not matching" in verify.stderr
    result = runner.invoke(main, ["generate", "--out", str(tmp_path), "--no-progress", "--regenerate",
                                  "hedgehog-00001", "hedgehog-00003"])
    assert result.exit_code == 0, result.output
    assert "2 with their recorded bytes, 0 changed" in result.stdout
    assert digest(tmp_path) == before
    assert verify_images(tmp_path) == []
    again = runner.invoke(main, ["generate", "--out", str(tmp_path), "--verify"])
    assert again.exit_code == 0 and "every image matches the manifest" in again.stdout


def test_usage_errors_exit_2(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["generate", "--out", str(tmp_path), "cactihog-00000"]).exit_code == 2
    assert runner.invoke(main, ["generate", "--out", str(tmp_path), "--regenerate"]).exit_code == 2
    assert runner.invoke(main, ["generate", "--out", str(tmp_path), "--verify", "--regenerate", "x"]).exit_code == 2


def test_unknown_and_failed_jobs_and_other_settings_are_refused(tmp_path, tiny_sd):
    config = tiny_config(images_per_concept=2, batch_size=4)
    catalog = tiny_catalog(config)
    run_generation(config, tmp_path, catalog, loaded=tiny_sd)
    before = digest(tmp_path)
    with pytest.raises(UserError, match=r"manifest\.jsonl: no job 'cactihog-00099'; job ids look like 'cactihog-00000'"):
        regenerate_images(config, tmp_path, catalog, ["cactihog-00099"], loaded=tiny_sd)
    other = tiny_config(images_per_concept=2, batch_size=4, steps=3)
    with pytest.raises(UserError, match=r"job 'cactihog-00001' re-renders with steps 3 where the manifest has 2"):
        regenerate_images(other, tmp_path, catalog, ["cactihog-00001"], loaded=tiny_sd)
    unloadable = tiny_config(images_per_concept=2, batch_size=4, model={"id": "stabilityai/sdxl-turbo"})
    with pytest.raises(UserError, match=r"model 'stabilityai/sdxl-turbo'"):
        regenerate_images(unloadable, tmp_path, catalog, ["cactihog-00001"])
    assert digest(tmp_path) == before


def test_drift_is_refused_unless_allowed_and_then_survives_a_merge(tmp_path, tiny_sd, monkeypatch):
    import isekai_gen.generation.stage as stage

    config = tiny_config(images_per_concept=2, batch_size=4)
    catalog = tiny_catalog(config)
    run_generation(config, tmp_path, catalog, loaded=tiny_sd)
    rows = {row["job_id"]: row for row in read_manifest(tmp_path)}
    image = tmp_path / rows["cctovac-00001"]["image"]
    image.unlink()
    before = digest(tmp_path)
    real = stage.generate_batch

    def other_machine(*args, **kwargs):
        """Test double for a machine that renders differently: the real pipeline, then 2/255 brighter."""
        images, nsfw = real(*args, **kwargs)
        return np.clip(images + 2 / 255, 0, 1), nsfw

    monkeypatch.setattr(stage, "generate_batch", other_machine)
    with pytest.raises(UserError, match=r"cctovac-00001\.png: the re-rendered image differs .* --allow-drift"):
        regenerate_images(config, tmp_path, catalog, ["cctovac-00001"], loaded=tiny_sd)
    assert digest(tmp_path) == before and not image.exists()
    result = regenerate_images(config, tmp_path, catalog, ["cctovac-00001"], loaded=tiny_sd, allow_drift=True)
    assert (result.restored, result.drifted) == ([], ["cctovac-00001"])
    new_sha = sha256_file(image)
    assert {r["job_id"]: r["sha256"] for r in read_manifest(tmp_path)}["cctovac-00001"] == new_sha
    journal = part_path(tmp_path, 0, 1).read_text().splitlines()
    assert json.loads(journal[-1])["regenerated"] is True
    assert read_parts(tmp_path)["cctovac-00001"]["sha256"] == new_sha
    monkeypatch.setattr(stage, "generate_batch", real)
    run_generation(config, tmp_path, catalog, loaded=tiny_sd)  # a rerun merges the journals again
    assert {r["job_id"]: r["sha256"] for r in read_manifest(tmp_path)}["cctovac-00001"] == new_sha
    assert verify_images(tmp_path) == []
