"""The generation stage through real (tiny, random-weight) diffusers pipelines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from isekai_gen.config import ModelRef
from isekai_gen.errors import UserError
from isekai_gen.fileio import TEMP_MARKER, sha256_file
from isekai_gen.generation import pipeline as pipeline_module
from isekai_gen.generation import run_generation
from isekai_gen.generation.pipeline import load_pipeline
from isekai_gen.jobs import Shard, derive_seed
from isekai_gen.manifest import part_path, read_manifest
from isekai_gen.schema import validate

from generation_helpers import TWO_GROUPS, tiny_catalog, tiny_config
from temp_names import leftover

ISEKAI_GEN = str(Path(sys.executable).parent / "isekai-gen")


@pytest.fixture(scope="module")
def tiny_sd(isekai_cache):
    return load_pipeline(ModelRef(id="tiny-sd"), dtype="float32", device="cpu", cache_dir=isekai_cache)


def folder_digest(out_dir: Path) -> dict[str, str]:
    """sha256 of every image plus the manifest: what 'the same dataset' means."""
    digest = {str(p.relative_to(out_dir)): sha256_file(p) for p in sorted((out_dir / "images").rglob("*.png"))}
    digest["manifest.jsonl"] = sha256_file(out_dir / "manifest.jsonl")
    return digest


@pytest.mark.parametrize("model", ["tiny-sd", "tiny-sdxl"])
def test_tiny_pipelines_write_valid_pngs_and_rows(tmp_path, isekai_cache, model):
    config = tiny_config(images_per_concept=2, batch_size=3, model={"id": model})
    catalog = tiny_catalog(config)
    result = run_generation(config, tmp_path, catalog, cache_dir=isekai_cache)
    assert (result.planned, result.generated, result.failed, result.merged) == (8, 8, 0, True)
    rows = read_manifest(tmp_path)
    assert [r["job_id"] for r in rows] == [f"{c}-{i:05d}" for c in TWO_GROUPS for i in range(2)]
    for row in rows:
        validate(row, "manifest_row", "row")
        concept = catalog.concept(row["concept_id"])
        assert row["prompt"] == concept.prompts[row["prompt_variant"]]
        assert row["negative_prompt"] == concept.negative_prompt
        assert (row["group_id"], row["world"], row["label"]) == (concept.group, concept.world, concept.label)
        assert row["model_id"] == model and row["smoke_test"] is True and row["status"] == "ok"
        path = tmp_path / row["image"]
        assert sha256_file(path) == row["sha256"]
        with Image.open(path) as image:
            assert (image.format, image.size, image.mode) == ("PNG", (64, 64), "RGB")
    assert rows[0]["pipeline_class"] == {"tiny-sd": "StableDiffusionPipeline", "tiny-sdxl": "StableDiffusionXLPipeline"}[model]


def test_single_image_regenerates_from_its_manifest_row(tmp_path, tiny_sd):
    config = tiny_config(images_per_concept=2, batch_size=4)
    run_generation(config, tmp_path, tiny_catalog(config), loaded=tiny_sd)
    row = read_manifest(tmp_path)[3]
    images, _ = pipeline_module.generate_batch(
        tiny_sd, [row["prompt"]], [row["negative_prompt"]], [row["seed"]], steps=row["steps"],
        guidance_scale=row["guidance_scale"], width=row["width"], height=row["height"])
    stored = np.asarray(Image.open(tmp_path / row["image"]), dtype=np.float32) / 255
    # Batched vs single outputs agree within diffusers' own tolerance, not bit for bit.
    assert np.abs(images[0] - stored).max() < 3 / 255


def test_shards_together_equal_one_run(tmp_path, tiny_sd):
    config = tiny_config(images_per_concept=3, batch_size=2)
    catalog = tiny_catalog(config)
    run_generation(config, tmp_path / "single", catalog, loaded=tiny_sd)
    results = [run_generation(config, tmp_path / "sharded", catalog, shard=Shard(i, 3), loaded=tiny_sd) for i in range(3)]
    assert [r.merged for r in results] == [False, False, True]
    assert sum(r.generated for r in results) == 12
    assert folder_digest(tmp_path / "single") == folder_digest(tmp_path / "sharded")


def test_broken_images_are_retried_with_fresh_seeds(tmp_path, tiny_sd, monkeypatch):
    real = pipeline_module.generate_batch
    config = tiny_config(images_per_concept=2, batch_size=4, max_retries=1)
    catalog = tiny_catalog(config)

    def poisoned_generate_batch(loaded, prompts, negatives, seeds, **kwargs):
        """Test double around the real pipeline: NaN for one job's first attempt, black forever for another."""
        images, nsfw = real(loaded, prompts, negatives, seeds, **kwargs)
        for i, seed in enumerate(seeds):
            if seed == derive_seed(0, "cactihog", 1, 1, 0):
                images[i] = np.nan
            if seed in (derive_seed(0, "octopus", 0, 0, 0), derive_seed(0, "octopus", 0, 0, 1)):
                images[i] = 0.0
        return images, nsfw

    monkeypatch.setattr("isekai_gen.generation.stage.generate_batch", poisoned_generate_batch)
    result = run_generation(config, tmp_path, catalog, loaded=tiny_sd)
    assert result.failed == 1
    rows = {r["job_id"]: r for r in read_manifest(tmp_path)}
    retried = rows["cactihog-00001"]
    assert retried["attempt"] == 1 and retried["status"] == "ok"
    assert retried["rejected_attempts"] == [{"seed": derive_seed_for(retried, 0), "reason": "nan"}]
    assert retried["seed"] == derive_seed_for(retried, 1)
    failed = rows["octopus-00000"]
    assert failed["status"] == "failed" and failed["image"] is None and failed["sha256"] is None
    assert [a["reason"] for a in failed["rejected_attempts"]] == ["black", "black"]
    assert not (tmp_path / "images/octopus/octopus-00000.png").exists()


def derive_seed_for(row: dict, attempt: int) -> int:
    return derive_seed(0, row["concept_id"], row["prompt_variant"], row["index"], attempt)


def test_broken_reason_detects_nan_black_uniform():
    from isekai_gen.generation.checks import broken_reason

    rng = np.random.default_rng(0)
    assert broken_reason(rng.random((8, 8, 3))) is None
    assert broken_reason(np.full((8, 8, 3), np.nan)) == "nan"
    assert broken_reason(np.zeros((8, 8, 3))) == "black"
    assert broken_reason(np.full((8, 8, 3), 0.6)) == "uniform"
    assert broken_reason(rng.random((8, 8, 3)), nsfw_flagged=True) == "nsfw_blackout"


def _generate_cmd(out_dir: Path) -> list[str]:
    concepts = "[" + ",".join(TWO_GROUPS) + "]"
    return [ISEKAI_GEN, "generate", "--preset", "tiny", "--out", str(out_dir), "--images-per-concept", "5",
            "--batch-size", "2", "--set", f"concepts={concepts}", "--no-progress"]


def run_ok(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _committed_batches(journal: Path) -> int:
    return journal.read_bytes().count(b"\n") if journal.exists() else 0


def test_resume_after_sigkill_gives_identical_dataset(tmp_path, isekai_cache):
    reference = tmp_path / "reference"
    run_ok(_generate_cmd(reference))
    expected = folder_digest(reference)
    assert len(expected) == 21

    for kill_after in (1, 4):
        out_dir = tmp_path / f"killed-{kill_after}"
        journal = part_path(out_dir, 0, 1)
        process = subprocess.Popen(_generate_cmd(out_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while _committed_batches(journal) < kill_after and process.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not (out_dir / "manifest.jsonl").exists(), "killed too late to test anything"
        run_ok(_generate_cmd(out_dir))
        assert folder_digest(out_dir) == expected
        assert not list(out_dir.rglob(f"{TEMP_MARKER}*"))


@pytest.mark.parametrize("use_syncfs", [True, False])
def test_each_batch_is_flushed_once_before_its_journal_line(tmp_path, tiny_sd, monkeypatch, use_syncfs):
    """One flush per batch (syncfs, or the per-file fallback of systems without it), always before
    the batch's journal line names its images."""
    import isekai_gen.fileio as durable
    import isekai_gen.generation.stage as stage

    events = []
    real_commit, real_append, real_fsync = durable.DurableFolder.commit, stage.append_batch, os.fsync
    if not use_syncfs:
        monkeypatch.setattr(durable, "_syncfs", None)

    def commit(self, paths):
        real_commit(self, paths)
        events.append(("durable", sorted(p.name for p in paths)))

    def append(journal, rows):
        events.append(("journal", sorted(Path(r["image"]).name for r in rows)))
        return real_append(journal, rows)

    fsynced = []
    monkeypatch.setattr(durable.DurableFolder, "commit", commit)
    monkeypatch.setattr(stage, "append_batch", append)
    monkeypatch.setattr(durable.os, "fsync", lambda fd: (fsynced.append(fd), real_fsync(fd)))
    config = tiny_config(images_per_concept=3, batch_size=4)
    run_generation(config, tmp_path, tiny_catalog(config), loaded=tiny_sd)
    # 12 jobs in 3 batches: each batch's images made durable, then its journal line, in order.
    assert [kind for kind, _ in events] == ["durable", "journal"] * 3
    assert all(events[i][1] == events[i + 1][1] and len(events[i][1]) == 4 for i in range(0, 6, 2))
    # Besides the journal's fsync per batch (3) and the merged manifest's (1), with syncfs no
    # fsync at all; the fallback fsyncs each file (12) and per batch its two concept folders and images/.
    assert len(fsynced) == 3 + 1 + (0 if use_syncfs else 12 + 3 * 3)


def test_torn_checkpoint_tail_and_orphan_image_are_recovered(tmp_path, tiny_sd):
    config = tiny_config(images_per_concept=2, batch_size=2)
    catalog = tiny_catalog(config)
    run_generation(config, tmp_path / "reference", catalog, loaded=tiny_sd)
    out_dir = tmp_path / "torn"
    run_generation(config, out_dir, catalog, loaded=tiny_sd)
    journal = part_path(out_dir, 0, 1)
    lines = journal.read_bytes().splitlines(keepends=True)
    # Simulate a kill in the middle of committing the last batch: its line is torn, its images
    # are on disk (one of them half-written garbage, another's temporary file never renamed), and
    # the manifest was never merged.
    journal.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    last_rows = json.loads(lines[-1])["rows"]
    (out_dir / last_rows[0]["image"]).write_bytes(b"\x89PNG garbage")
    stray = out_dir / Path(last_rows[1]["image"]).parent / leftover(f"{last_rows[1]['job_id']}.png", "x1y2z3")
    stray.write_bytes(b"\x89PNG partial")
    (out_dir / "manifest.jsonl").unlink()
    result = run_generation(config, out_dir, catalog, loaded=tiny_sd)
    assert result.generated == len(last_rows)
    assert folder_digest(out_dir) == folder_digest(tmp_path / "reference")
    assert not stray.exists()


def test_missing_model_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(UserError) as info:
        load_pipeline(ModelRef(id="stabilityai/sdxl-turbo"), device="cpu")
    message = str(info.value)
    assert "stabilityai/sdxl-turbo" in message and "--model-path" in message and "--preset tiny" in message
    with pytest.raises(UserError, match="no model_index.json"):
        load_pipeline(ModelRef(id="x", path=str(tmp_path)), device="cpu")


def test_cli_missing_model_exits_2_without_traceback(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([ISEKAI_GEN, "generate", "--preset", "default", "--out", str(tmp_path / "out"),
                           "--device", "cpu", "--no-progress"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model 'stabilityai/sdxl-turbo'"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def test_rerun_with_other_generation_settings_is_refused(tmp_path):
    run_ok(_generate_cmd(tmp_path) + ["--images-per-concept", "1"])
    proc = subprocess.run(_generate_cmd(tmp_path) + ["--steps", "3"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "generation.steps" in proc.stderr and str(tmp_path / "run.json") in proc.stderr


@pytest.mark.parametrize("file, content, pattern", [
    ("manifest.jsonl", "{}\n", r"manifest\.jsonl: row 1 \(\?\): at \(top level\): 'job_id' is a required property"),
    ("manifest.parts/part-00000-of-00001.jsonl", '{"rows": [1]}\n',
     r"part-00000-of-00001\.jsonl: corrupt checkpoint line at byte 0"),
    ("manifest.parts/part-00000-of-00001.jsonl", "[]\n", r"part-00000-of-00001\.jsonl: corrupt checkpoint line at byte 0"),
])
def test_hand_broken_manifest_or_journal_is_one_line(tmp_path, tiny_sd, file, content, pattern):
    config = tiny_config(images_per_concept=2, batch_size=2)
    (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / file).write_text(content)
    with pytest.raises(UserError, match=pattern):
        run_generation(config, tmp_path, tiny_catalog(config), loaded=tiny_sd)
