"""Harness documents and hooks without a harness: the multi-label metric and the split-folder CLI."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from click.testing import CliRunner

from evaluate_fixtures import make_split

from isekai_gen.cli import main
from isekai_gen.harness.hooks import TaskHooks
from isekai_gen.scoring import score


def _multilabel(folder):
    make_split(folder, demo_per_class=2, test_per_class=2)
    lines = (folder / "test.csv").read_text().splitlines()
    lines[1] = lines[1].replace("0.0", "1.0", 1)   # the first test image shows two findings
    (folder / "test.csv").write_text("\n".join(lines) + "\n")


def test_split_cli_writes_tasks_and_multilabel_aggregate_is_the_scorers_macro_f1(tmp_path):
    split = tmp_path / "chex"
    _multilabel(split)
    result = CliRunner().invoke(main, ["export", "--splits", str(split), "--dest", str(tmp_path / "dest"),
                                       "--format", "lmms-eval", "--shots", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"lmms-eval: 1 task(s) -> {tmp_path / 'dest' / 'lmms-eval'}")
    group = tmp_path / "dest" / "lmms-eval" / "manyicl_chex"
    assert "- metric: macro_f1" in (group / "manyicl_chex_1shot.yaml").read_text()
    hooks = TaskHooks(group)
    docs = pq.read_table(group / "docs" / "manyicl_chex_1shot.parquet").to_pylist()
    assert "Which of the choices are present" in docs[0]["text"]
    replies = ["Answer Choice 1: cat, dog", "Answer Choice 1: owl", "Answer Choice 1: none", "Answer Choice 1: dog",
               "Answer Choice 1: cat", "Answer Choice 1: owl"]
    items = [hooks.process_results(doc, [reply])["macro_f1"] for doc, reply in zip(docs, replies)]
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"id": d["id"], "prediction": r}) + "\n" for d, r in zip(docs, replies)))
    report = score(split / "test.csv", predictions, bootstrap=0)
    assert report["runs"][0]["metric"] == "macro_f1"
    assert hooks.aggregate(items) == report["runs"][0]["value"]


def test_split_cli_needs_dest_shots_and_format(tmp_path):
    split = tmp_path / "UCM"
    make_split(split, demo_per_class=1, test_per_class=1)
    result = CliRunner().invoke(main, ["export", "--splits", str(split), "--format", "lmms-eval"])
    assert result.exit_code == 2 and "--splits needs --dest, --format and --shots" in result.output
    result = CliRunner().invoke(main, ["export", "--splits", str(split), "--dest", str(tmp_path / "d"),
                                       "--format", "lmms-eval", "--shots", "2"])
    assert result.exit_code == 1 and "class 'cat' has 1 demo rows; --shots 2 needs 2 per class" in result.output
    assert not (tmp_path / "d").exists()


def test_reexport_is_byte_identical_and_drops_tasks_no_longer_asked_for(tmp_path):
    from isekai_gen.export.registry import SplitsInput
    from isekai_gen.export.stage import run_split_export
    from isekai_gen.fileio import sha256_file

    split = tmp_path / "UCM"
    make_split(split, demo_per_class=2, test_per_class=1)

    def hashes():
        root = tmp_path / "dest"
        return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}

    run_split_export(SplitsInput([split], tmp_path / "dest", [1, 2]), ["lmms-eval", "vlmevalkit"])
    first = hashes()
    run_split_export(SplitsInput([split], tmp_path / "dest", [1, 2]), ["lmms-eval", "vlmevalkit"])
    assert hashes() == first
    run_split_export(SplitsInput([split], tmp_path / "dest", [1]), ["lmms-eval", "vlmevalkit"])
    left = hashes()
    assert not [name for name in left if "2shot" in name]
    assert {name: first[name] for name in left} == left
    # A different run seed reshuffles the demonstrations (evaluate --seed does the same).
    run_split_export(SplitsInput([split], tmp_path / "dest", [1], seed=7), ["lmms-eval"])
    assert hashes()["lmms-eval/manyicl_ucm/docs/manyicl_ucm_1shot.parquet"] != left[
        "lmms-eval/manyicl_ucm/docs/manyicl_ucm_1shot.parquet"]
