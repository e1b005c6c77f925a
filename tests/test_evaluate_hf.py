"""The `hf:` provider (issue 23, open models in-process): tiny random-weight Qwen2-VL, Qwen2.5-VL,
Idefics3 (SmolVLM) and LLaVA-OneVision models built from configs with locally trained tokenizers
(tests/tiny_vlm.py), a multi-image many-shot request per family, batched generation that agrees
with one-at-a-time generation, and one run through `isekai-gen evaluate` (trial, resume, report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluate_fixtures import make_split
from isekai_gen.cli import main
from isekai_gen.evaluate.images import encode_image
from isekai_gen.evaluate.providers import get_provider
from isekai_gen.evaluate.providers.base import EvalRequest, Limits, Part, Turn
from tiny_vlm import FAMILIES

PLACEHOLDER = {"qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>",
               "qwen2_5_vl": "<|vision_start|><|image_pad|><|vision_end|>", "idefics3": "<image>",
               "llava_onevision": "<image>\n"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-vlm")
    return {family: build(root / family) for family, build in FAMILIES.items()}


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("split") / "UCM"
    make_split(root)
    return root


def many_shot_request(split: Path, shots: int, query: str, max_tokens: int = 6) -> EvalRequest:
    """ManyICL's shape: demos as (image, "Answer Choice 1: <label>") then the query image and question."""
    limits = Limits(None, None, None, None)
    parts = []
    for k in range(shots):
        for label in ("cat", "dog", "owl"):
            parts += [Part(image=encode_image(split / "images" / f"demo_{label}_{k}.png", limits)[0]),
                      Part(text=f"Answer Choice 1: {label}\n")]
    parts += [Part(image=encode_image(split / "images" / query, limits)[0]), Part(text="Question 1: which class?")]
    return EvalRequest(key=query, cell=f"shots-{shots}_batch-1", ids=(query,), seed=0, system="you are helpful",
                       turns=(Turn("user", tuple(parts)),), max_tokens=max_tokens, temperature=0.0, model="m")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_many_shot_request_renders_the_familys_template_and_batches_like_single_calls(models, split, family):
    provider = get_provider(f"hf:{models[family]}")
    requests = [many_shot_request(split, 2, "test_cat_0.png"), many_shot_request(split, 1, "test_dog_1.png")]
    prompt = provider.prompt(requests[0])
    assert prompt.count(PLACEHOLDER[family]) == 7   # 6 demonstrations + the query, in the family's own markup
    assert "Answer Choice 1: owl" in prompt and prompt.startswith("<|im_start|>")
    batched = provider.generate(requests)
    assert provider.processor.tokenizer.padding_side == "left"
    single = [provider.generate([request])[0] for request in requests]
    for together, alone, request in zip(batched, single, requests):
        assert together.text == alone.text and together.output_tokens == alone.output_tokens
        assert together.input_tokens == alone.input_tokens   # the attention mask, not the padded length
        assert 1 <= together.output_tokens <= request.max_tokens
        assert together.raw["batch_size"] == 2 and together.raw["dtype"] == "float32"   # CPU: fp32, as build picks
    assert batched[0].input_tokens > batched[1].input_tokens   # more images, more tokens
    estimate = provider.estimate_tokens(requests[0])
    assert estimate[1] == 6 and estimate[0] >= batched[0].input_tokens * 0.8


def test_qwen2_vl_estimate_counts_each_images_tokens_exactly(models, split):
    provider = get_provider(f"hf:{models['qwen2_vl']}")
    request = many_shot_request(split, 2, "test_owl_3.png")
    assert provider.estimate_tokens(request)[0] == provider.generate([request])[0].input_tokens


def test_a_missing_model_folder_is_one_error_line(tmp_path, split):
    result = CliRunner().invoke(main, ["evaluate", "--truth", str(split), "--model", f"hf:{tmp_path / 'nothing'}",
                                       "--shots", "0", "--out", str(tmp_path / "run")])
    assert result.exit_code != 0 and result.output.startswith("error: --model hf:")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_evaluate_end_to_end_with_a_trial_a_resume_and_the_report(models, split, tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "fast.yaml"
    config.write_text(json.dumps({"bootstrap": 0, "provider_options": {"max_batch_size": 4}}))
    args = ["evaluate", "--truth", str(split), "--model", f"hf:{models['qwen2_vl']}", "--shots", "2",
            "--out", str(out), "--max-tokens", "8", "--config", str(config)]
    trial = CliRunner().invoke(main, args + ["--max-requests", "3"])
    assert trial.exit_code == 0, trial.output
    assert "trial: 3 requests sent" in trial.output and "$0.0000 this run" in trial.output
    rows = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    trial_keys = {r["key"] for r in rows}
    assert len(trial_keys) == 3
    plan = [json.loads(line) for line in (out / "plan.jsonl").read_text().splitlines()]
    assert len(plan) == 12 and all(row["images"] == 7 for row in plan)   # 2 shots x 3 classes + the query

    rest = CliRunner().invoke(main, args)
    assert rest.exit_code == 0, rest.output
    rows = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    assert {r["key"] for r in rows} == {row["key"] for row in plan}
    for key in trial_keys:   # resumed: what the trial asked is not asked again
        assert sum(r["key"] == key and r["attempt"] == 0 for r in rows) == 1
    for row in rows:   # usage recorded, no charge
        assert row["status"] in ("answered", "abstained") and row["cost_usd"] == 0.0
        assert row["input_tokens"] > 7 and 1 <= row["output_tokens"] <= 8 and row["raw"]["model"].endswith("qwen2_vl")
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["cells"][0]["cell"] == "shots-2_batch-1"
    run = json.loads((out / "run.json").read_text())
    assert run["provider"] == "hf" and run["price_note"] is None

    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "0 calls" in again.output


def test_hf_on_ray_without_vllm_names_the_extra_before_anything_runs(models, split, tmp_path, monkeypatch):
    import importlib.util

    pytest.importorskip("ray.data.llm")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else find_spec(name, *a))
    result = CliRunner().invoke(main, ["evaluate", "--truth", str(split), "--model", f"hf:{models['idefics3']}",
                                       "--shots", "0", "--out", str(tmp_path / "run"), "--engine", "ray"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.output.startswith("error: --engine ray with hf:") and "isekai-gen[ray-llm]" in result.output
    assert not (tmp_path / "run").exists()   # refused before the run folder was made
