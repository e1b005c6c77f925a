"""`isekai-gen build --preset tiny` end to end, through the CLI, on a subset of the catalog."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from isekai_gen.build import run_build, topup_counts
from isekai_gen.config import with_overrides
from isekai_gen.errors import UserError
from isekai_gen.fileio import read_jsonl, sha256_file
from isekai_gen.manifest import read_manifest

from generation_helpers import tiny_config

ISEKAI_GEN = str(Path(sys.executable).parent / "isekai-gen")
# Four groups keep the test quick; the ISEKAI-10 set then holds all four.
CONCEPTS = "[cactihog,hedgehog,cctovac,octopus,icemic,ice-cream,airstone,stone]"


def build(out_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [ISEKAI_GEN, "build", "--preset", "tiny", "--out", str(out_dir), "--no-progress",
           "--set", f"concepts={CONCEPTS}", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def export_digest(out_dir: Path) -> dict[str, str]:
    export = out_dir / "export"
    return {str(p.relative_to(export)): sha256_file(p) for p in sorted(export.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory, isekai_cache):
    out_dir = tmp_path_factory.mktemp("build") / "tiny"
    proc = build(out_dir)
    return out_dir, proc


def test_tiny_build_produces_every_output(tiny_build):
    out_dir, proc = tiny_build
    assert f"results: {out_dir.resolve()}" in proc.stdout
    assert "smoke-test build" in proc.stdout
    rows = read_manifest(out_dir)
    assert len(rows) == 8 * 40 and all(r["smoke_test"] for r in rows)
    kept = [r for r in rows if r["kept"]]
    assert len(kept) >= 8 * 32
    for name in ("ISEKAI-10.json", "ISEKAI-pair.json"):
        lines = read_jsonl(out_dir / "export/lcl" / name)
        assert lines and len(lines) % 2 == 0
        for line in lines:
            for path in [line["image_name"], *line["positive_list"], *line["negative_list"]]:
                assert (out_dir / "export/lcl/images" / path).is_file()
    assert list((out_dir / "export/webdataset").glob("*.tar"))
    assert list((out_dir / "export/hf/data").glob("*.parquet"))
    card = (out_dir / "export/hf/README.md").read_text()
    assert "smoke" in card.lower()
    run = (out_dir / "run.json").read_text()
    assert '"diffusers"' in run and '"tiny-sd"' in run


def test_rebuild_is_a_noop_and_a_second_build_is_byte_identical(tiny_build, tmp_path):
    out_dir, _ = tiny_build
    before = export_digest(out_dir)
    manifest_before = sha256_file(out_dir / "manifest.jsonl")
    build(out_dir)
    assert export_digest(out_dir) == before
    assert sha256_file(out_dir / "manifest.jsonl") == manifest_before
    other = tmp_path / "again"
    build(other)
    assert export_digest(other) == before


def test_starved_concepts_get_topups(tmp_path, isekai_cache):
    config = with_overrides(tiny_config(images_per_concept=18, batch_size=16), [{"filter": {"min_per_concept": 20}}],
                            "test")
    summary = run_build(config, tmp_path, progress=False)
    assert summary.topup_rounds == 1
    rows = read_manifest(tmp_path)
    assert {r["round"] for r in rows} == {0, 1}
    assert all(count >= 20 for count in summary.kept_per_concept.values())


def test_still_starved_after_max_rounds_names_the_concepts(tmp_path, isekai_cache):
    config = with_overrides(tiny_config(images_per_concept=4, batch_size=8), [{
        "concepts": ["cactihog", "hedgehog"], "filter": {"min_per_concept": 6, "max_topup_rounds": 0}}], "test")
    with pytest.raises(UserError) as info:
        run_build(config, tmp_path, progress=False)
    assert "cactihog (4 kept)" in str(info.value) and "hedgehog (4 kept)" in str(info.value)


def test_topup_counts_scale_with_pass_rate():
    assert topup_counts({"a": 10}, {"a": 40}, 32) == {"a": 110}  # 25% pass rate: 22 missing -> 88 * 1.25
    assert topup_counts({"a": 0}, {"a": 40}, 32) == {"a": 160}  # capped at 4x the images so far
    assert topup_counts({"a": 31}, {"a": 32}, 32) == {"a": 2}
