"""lmms-eval task export, proven against the real lmms-eval (PyPI, the `dev` extra).

One loopback OpenAI-compatible test double answers both lmms-eval's chat `openai` model and
`isekai-gen evaluate`. The exported ManyICL tasks (1 and 5 shots per class) and an ISEKAI-10
task run through lmms-eval's own CLI; `evaluate` (+ its scorer) runs the same cells. The request
bodies must carry the same texts and the same images (lmms-eval re-encodes images as PNG, so
images are compared by their decoded pixels) in the same order, with the same output cap and
temperature, and the reported accuracies must be equal.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from evaluate_double import OpenAIDouble
from evaluate_fixtures import make_split
from test_export_helpers import make_build

from isekai_gen.cli import main
from isekai_gen.export.registry import SplitsInput
from isekai_gen.export.stage import run_export, run_split_export
from isekai_gen.fileio import read_jsonl

pytest.importorskip("lmms_eval")
pytest.importorskip("openai")


def pixel_bytes(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return f"{image.mode}{image.size}".encode() + image.tobytes()


def pixel_key(data: bytes) -> str:
    return hashlib.sha256(pixel_bytes(data)).hexdigest()


def _pixel_url(url: str) -> str:
    return "data:image/x-pixels;base64," + base64.b64encode(pixel_bytes(base64.b64decode(url.split(",", 1)[1]))).decode()


class PixelDouble(OpenAIDouble):
    """The evaluate test double, keyed by decoded pixels instead of encoded bytes."""

    def reply(self, messages):
        return super().reply([{**m, "content": m["content"] if isinstance(m["content"], str) else [
            {"type": "image_url", "image_url": {"url": _pixel_url(p["image_url"]["url"])}} if p["type"] == "image_url"
            else p for p in m["content"]]} for m in messages])


def normalized(body: dict) -> tuple:
    """(messages as (role, parts) with images by pixels, output cap, temperature)."""
    messages = []
    for message in body["messages"]:
        content = message["content"]
        parts = [("text", content)] if isinstance(content, str) else [
            ("text", p["text"]) if p["type"] == "text" else ("image", pixel_key(base64.b64decode(p["image_url"]["url"].split(",", 1)[1])))
            for p in content]
        messages.append((message["role"], tuple(parts)))
    return tuple(messages), body.get("max_tokens"), body.get("temperature")


def evaluate(*args) -> None:
    result = CliRunner().invoke(main, ["evaluate", *map(str, args)])
    assert result.exit_code == 0, result.output


def lmms_eval(include: Path, tasks: str, base_url: str, out: Path, cache: Path) -> dict:
    env = {**os.environ, "OPENAI_API_KEY": "test-double", "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "openai",
           "--model_args", f"model_version=test-double,base_url={base_url}", "--include_path", str(include),
           "--tasks", tasks, "--batch_size", "1", "--output_path", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    results = sorted(out.rglob("*_results.json"))
    # lmms-eval can fail at start and still exit 0: the results file is the proof it ran.
    assert proc.returncode == 0 and results, proc.stderr[-4000:]
    return json.loads(results[-1].read_text())["results"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness")
    split = root / "UCM"
    truth = {pixel_key((split / "images" / name).read_bytes()): label
             for name, label in _names(split, make_split(split, demo_per_class=5, test_per_class=3))}
    build = root / "build"
    config, catalog = make_build(build, benchmarks=False)
    run_export(config, build, catalog, formats=["lcl", "lmms-eval"], shots=[0, 2])
    for row in read_jsonl(build / "manifest.jsonl"):
        if row["image"]:
            truth[pixel_key((build / row["image"]).read_bytes())] = row["label"]
    run_split_export(SplitsInput([split], build / "export", [1, 5]), ["lmms-eval"])
    tests = sorted((split / "images").glob("test_*"))
    first = json.loads((build / "export/lcl/ISEKAI-10.json").read_text().splitlines()[0])
    # Wrong answers name another class (a reply naming none would be re-asked by evaluate, not by lmms-eval).
    other = first["negative_promt"] if first["label_name"] == first["positive_promt"] else first["positive_promt"]
    wrong = {pixel_key(tests[0].read_bytes()): "owl" if "owl" not in tests[0].name else "cat",
             pixel_key((build / "export/lcl/images" / first["image_name"]).read_bytes()): other}
    return root, split, build, truth, wrong


def _names(split: Path, by_sha: dict[str, str]):
    for path in sorted((split / "images").iterdir()):
        yield path.name, by_sha[hashlib.sha256(path.read_bytes()).hexdigest()]


def test_lmms_eval_tasks_send_what_evaluate_sends_and_score_the_same(inputs):
    root, split, build, truth, wrong = inputs
    tasks = "manyicl_ucm_1shot,manyicl_ucm_5shot,isekai10_2shot"
    with PixelDouble(truth, wrong) as double:
        harness = lmms_eval(build / "export" / "lmms-eval", tasks, double.base_url, root / "lmms-results", root / "hf")
        harness_bodies = sorted(map(normalized, double.bodies))
        double.bodies.clear()
        evaluate("--truth", split, "--model", "openai:test-double", "--endpoint", double.base_url, "--shots", "1,5",
                 "--out", root / "run-ucm")
        evaluate("--truth", build / "export/lcl/ISEKAI-10.json", "--model", "openai:test-double", "--endpoint",
                 double.base_url, "--shots", "2", "--out", root / "run-isekai")
        ours = sorted(map(normalized, double.bodies))
    assert len(harness_bodies) == 2 * 9 + 4
    assert harness_bodies == ours
    cells = {}
    for run, prefix in (("run-ucm", "manyicl_ucm"), ("run-isekai", "isekai10")):
        for cell in json.loads((root / run / "report.json").read_text())["cells"]:
            cells[f"{prefix}_{cell['shots']}shot"] = cell["value"]
    assert {task: harness[task]["accuracy,none"] for task in tasks.split(",")} == cells
    assert sorted(cells.values()) == [75.0, 100 * 8 / 9, 100 * 8 / 9]


def test_task_folder_layout_and_images_stored_once(inputs):
    _, split, build, _, _ = inputs
    group = build / "export" / "lmms-eval" / "manyicl_ucm"
    assert sorted(p.name for p in group.glob("*.yaml")) == ["manyicl_ucm_1shot.yaml", "manyicl_ucm_5shot.yaml"]
    images = sorted(p.name for p in (group / "images").iterdir())
    assert len(images) == len(list((split / "images").iterdir())) == 3 * 5 + 3 * 3
    yaml_text = (group / "manyicl_ucm_5shot.yaml").read_text()
    assert "doc_to_messages: !function utils.doc_to_messages" in yaml_text and "  - \"manyicl_ucm\"" in yaml_text
    assert "max_new_tokens: 60" in yaml_text
    isekai = build / "export" / "lmms-eval" / "isekai10"
    assert sorted(p.name for p in isekai.glob("*.yaml")) == ["isekai10_0shot.yaml", "isekai10_2shot.yaml"]
    assert (isekai / "truth" / "ISEKAI-10.json").read_bytes() == (build / "export/lcl/ISEKAI-10.json").read_bytes()
    # The harness folders are views: SHA256SUMS (the content hash) does not list them.
    assert "lmms-eval/" not in (build / "export" / "SHA256SUMS").read_text()


def test_non_chat_fallback_marks_each_image_in_the_text(inputs):
    import pyarrow.parquet as pq

    from isekai_gen.harness.hooks import TaskHooks

    _, _, build, _, _ = inputs
    group = build / "export" / "lmms-eval" / "isekai10"
    hooks = TaskHooks(group)
    doc = pq.read_table(group / "docs" / "isekai10_2shot.parquet").to_pylist()[0]
    assert doc["text"].count("<image>") == len(doc["images"]) == len(hooks.doc_to_visual(doc)) == 5
    assert doc["text"].startswith("SYSTEM: You should find the causal relationship")
    messages = hooks.doc_to_messages(doc)
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 4 + ["user"]
