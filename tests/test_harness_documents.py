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
