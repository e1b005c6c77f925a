"""`isekai-gen catalog probe` against a loopback test double that knows exactly one concept: that
concept is flagged (text and image probes), the others are not; the run resumes from its journal,
prices itself at --dry-run, and the build's dataset card lists the result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from isekai_gen.catalog import load_catalog
from isekai_gen.cli import main as cli
from isekai_gen.fileio import read_jsonl, sha256_file
from isekai_gen.invent import invent_catalog
from isekai_gen.export.card import probe_card_text
from isekai_gen.invent.probe import binomial_p_greater

from invent_double import KnowsOneConcept

ISEKAI_GEN = str(Path(sys.executable).parent / "isekai-gen")


@pytest.fixture(scope="module")
def invented_build(tmp_path_factory, isekai_cache):
    """`build --preset tiny --catalog <invented>` end to end, through the CLI."""
    folder = tmp_path_factory.mktemp("invented-build")
    catalog = folder / "private.yaml"
    invent_catalog(catalog, groups=3, seed=11, familiarity_preset=None)
    out = folder / "out"
    proc = subprocess.run([ISEKAI_GEN, "build", "--preset", "tiny", "--catalog", str(catalog), "--out", str(out),
                           "--no-progress", "--set", "generation.images_per_concept=36",
                           "--set", "filter.max_per_concept=34", "--set", "filter.min_per_concept=32"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return catalog, out


def test_build_takes_an_invented_catalog(invented_build):
    catalog_file, out = invented_build
    catalog = load_catalog(str(catalog_file))
    run = json.loads((out / "run.json").read_text())
    assert run["catalog_sha256"] == sha256_file(catalog_file)
    rows = read_jsonl(out / "manifest.jsonl")
    assert {r["concept_id"] for r in rows} == set(catalog.ids)
    episodes = read_jsonl(out / "episodes" / "episodes.jsonl")
    isekai = {c.label for c in catalog.concepts if c.world == "isekai"}
    assert {e["positive_label"] for e in episodes if e["set"] == "ISEKAI-10"} == isekai
    card = (out / "export" / "hf" / "README.md").read_text()
    assert "No contamination probe has been run on this build" in card


def _double_for(catalog, out: Path | None = None) -> KnowsOneConcept:
    isekai, real = catalog.groups()[0]
    truth = {}
    if out is not None:
        for row in read_jsonl(out / "manifest.jsonl"):
            if row["status"] == "ok":
                truth[sha256_file(out / row["image"])] = row["label"]
    real = [c.label for c in catalog.concepts if c.world == "real"]
    return KnowsOneConcept(isekai.label, isekai.name.split(), truth, real_labels=real)


def test_text_probe_flags_the_one_known_concept_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-double")
    catalog_file = tmp_path / "c.yaml"
    invent_catalog(catalog_file, groups=3, seed=2, familiarity_preset=None)
    catalog = load_catalog(str(catalog_file))
    known = catalog.groups()[0][0].label
    with _double_for(catalog) as double:
        args = ["catalog", "probe", str(catalog_file), "--model", "openai:double", "--endpoint", double.base_url,
                "--out", str(tmp_path / "run")]
        dry = CliRunner().invoke(cli, [*args, "--dry-run"])
        assert dry.exit_code == 0 and "6 of 6 probe requests pending" in dry.output and not double.bodies
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert len(double.bodies) == 6
        again = CliRunner().invoke(cli, args)
        assert again.exit_code == 0 and len(double.bodies) == 6      # all from the journal
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["known"] == [known] and report["known_share"] == pytest.approx(1 / 3)
    verdicts = {e["label"]: e["text"]["verdict"] for e in report["concepts"] if e["world"] == "isekai"}
    assert verdicts[known] == "known"
    assert all(v == "unknown" for label, v in verdicts.items() if label != known)
    assert report["real_known_share"] == 1.0          # the control
    assert f"| {known} | isekai | known |" in (tmp_path / "run" / "report.md").read_text()


def test_image_probe_binomial_test_and_dataset_card(invented_build, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-double")
    catalog_file, out = invented_build
    catalog = load_catalog(str(catalog_file))
    known = catalog.groups()[0][0].label
    with _double_for(catalog, out) as double:
        result = CliRunner().invoke(cli, ["catalog", "probe", str(out), "--model", "openai:double", "--endpoint",
                                          double.base_url, "--out", str(tmp_path / "run"), "--no-text",
                                          "--images-per-concept", "8"])
        assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    image = {e["label"]: e["image"] for e in report["concepts"]}
    assert image[known]["correct"] == 8 and image[known]["verdict"] == "known"
    assert image[known]["p_value"] == pytest.approx((1 / 6) ** 8)
    assert all(v["correct"] == 0 and v["verdict"] == "not_known" for label, v in image.items() if label != known)
    assert report["known"] == [known] and report["kinds"] == ["image"]
    summary = json.loads((out / "probes" / "openai-double.json").read_text())
    assert summary["known"] == [known]
    text = probe_card_text(out)
    assert "openai:double" in text and known in text
    # the card lists the probe once the export is redone
    proc = subprocess.run([ISEKAI_GEN, "export", "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"| openai:double | image | 33% | {known} |" in (out / "export" / "hf" / "README.md").read_text()


def test_exact_binomial_tail_agrees_with_scipy():
    from scipy.stats import binomtest

    for k, n, p in [(0, 10, 0.5), (3, 20, 1 / 6), (8, 8, 1 / 6), (17, 40, 0.25)]:
        assert binomial_p_greater(k, n, p) == pytest.approx(binomtest(k, n, p, alternative="greater").pvalue)
    assert binomial_p_greater(0, 10, 0.5) == pytest.approx(1.0)
    assert binomial_p_greater(10, 10, 0.5) == pytest.approx(0.5 ** 10)
    assert binomial_p_greater(3, 4, 0.25) == pytest.approx(4 * 0.25 ** 3 * 0.75 + 0.25 ** 4)
