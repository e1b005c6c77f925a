"""`evaluate --engine ray` (issue 23, evaluation on a cluster): the requests go through Ray Data LLM's
HTTP stage (`HttpRequestProcessorConfig`) on the session's local Ray cluster (conftest `ray_cluster`)
to the loopback OpenAI-compatible test double; the driver journals, retries, resumes and keeps the
budget as the local runner does. Every Ray Dataset starts its HTTP-stage actors afresh (seconds
each on this machine), so each case runs as few waves as it needs."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluate_double import OpenAIDouble
from evaluate_fixtures import make_split
from isekai_gen.cli import main
from isekai_gen.evaluate.journal import read_journal

pytest.importorskip("openai")
pytest.importorskip("ray.data.llm")
ISEKAI_GEN = str(Path(sys.executable).parent / "isekai-gen")


def evaluate(*args, expect: int = 0) -> str:
    result = CliRunner().invoke(main, ["evaluate", *map(str, args)])
    assert result.exit_code == expect, result.output
    return result.output


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def canonical(body: dict) -> str:
    return json.dumps(body, sort_keys=True)


@pytest.fixture()
def split(tmp_path):
    root = tmp_path / "UCM"
    return root, make_split(root)


def test_ray_sends_the_local_bodies_retries_and_scores_the_same(tmp_path, split, ray_cluster):
    root, truth = split
    wrong = dict(list(truth.items())[-3:])   # 3 query images answered wrongly (the last ones are test images)
    wrong = {sha: ("dog" if label != "dog" else "cat") for sha, label in wrong.items()}
    config = tmp_path / "fast.yaml"
    config.write_text(json.dumps({"retry_base_s": 0.01, "retry_max_s": 0.05, "bootstrap": 0}))
    common = ["--truth", root, "--model", "openai:m", "--shots", "1", "--config", config]
    with OpenAIDouble(truth, wrong, models=["m"]) as double:
        evaluate(*common, "--endpoint", double.base_url, "--out", tmp_path / "local")
        local = [canonical(b) for b in double.bodies]
        double.bodies.clear()
        double.faults.extend(["500", "429"])   # the first two calls of the Ray run fail transiently
        out = evaluate(*common, "--endpoint", double.base_url, "--out", tmp_path / "ray", "--engine", "ray",
                       "--ray-address", ray_cluster)
        sent = [canonical(b) for b in double.bodies]
    assert "14 calls: 12 answered" in out
    # byte for byte the local runner's bodies (no Arrow nulls); the two failed calls were sent again
    assert set(sent) == set(local) and len(local) == 12 and len(sent) == 14
    assert sorted(collections.Counter(sent).values()) == [1] * 10 + [2] * 2
    journal = rows(tmp_path / "ray" / "journal.jsonl")
    assert len(journal) == 12 and all(r["status"] == "answered" and r["attempt"] == 0 for r in journal)
    assert all(r["input_tokens"] == 100 and r["output_tokens"] == 10 and r["latency_s"] > 0 for r in journal)
    assert {r["key"] for r in journal} == {r["key"] for r in rows(tmp_path / "local" / "journal.jsonl")}
    local_report = json.loads((tmp_path / "local" / "report.json").read_text())
    ray_report = json.loads((tmp_path / "ray" / "report.json").read_text())
    assert ray_report["complete"] and ray_report["cells"][0]["value"] == local_report["cells"][0]["value"]
    assert ray_report["cells"][0]["value"] == pytest.approx(100 * 9 / 12)
    assert json.loads((tmp_path / "ray" / "run.json").read_text())["settings"]["engine"] == "ray"


def test_ray_trial_then_resume_asks_each_request_once_and_permanent_errors_are_recorded(tmp_path, split, ray_cluster):
    root, truth = split
    common = ["--truth", root, "--model", "openai:m", "--shots", "0", "--engine", "ray", "--ray-address",
              ray_cluster, "--out", tmp_path / "run"]
    with OpenAIDouble(truth) as double:
        trial = evaluate(*common, "--endpoint", double.base_url, "--max-requests", 5)
        assert "trial: 5 requests sent" in trial and len(double.bodies) == 5
        double.faults.append("400")   # the next request is refused: recorded once, not retried
        rest = evaluate(*common, "--endpoint", double.base_url, expect=1)
        assert "1 of 12 requests unanswered" in rest and "HTTP 400" in rest and "--retry-failed" in rest
        assert len(double.bodies) == 12 and max(double.counts.values()) == 1   # nothing asked twice
        fixed = evaluate(*common, "--endpoint", double.base_url, "--retry-failed")
    assert "1 calls: 1 answered" in fixed
    journal = rows(tmp_path / "run" / "journal.jsonl")
    assert [r["status"] for r in journal].count("permanent_error") == 1 and len(journal) == 13


def test_ray_reserves_the_budget_and_stops_inside_it(tmp_path, ray_cluster):
    """Each reply reports far more input than estimated: the first wave holds one request and
    calibrates the reservation, the next wave holds what the rest of the budget covers."""
    import asyncio

    from isekai_gen.evaluate.config import EvaluateConfig
    from isekai_gen.evaluate.journal import Journal
    from isekai_gen.evaluate.prices import Price
    from isekai_gen.evaluate.providers.base import EvalRequest, Part, Turn
    from isekai_gen.evaluate.providers.openai import OpenAIProvider
    from isekai_gen.evaluate.ray_driver import RayRunner

    price = Price(1e-6, 1e-6, "test")
    requests = [EvalRequest(f"{n:064x}", "c", (str(n),), 0, None, (Turn("user", (Part(text=f"q{n}"),)),), 60, 0.0, "m")
                for n in range(20)]
    budget = 6.5 * price.cost(3000, 60)
    with OpenAIDouble({}, usage=(3000, 60)) as double:
        double.reply = lambda messages: "Answer Choice 1: cat"
        config = EvaluateConfig(truth="t", model="openai:m", shots=(0,), out="o", concurrency=4, budget_usd=budget,
                                endpoint=double.base_url, engine="ray", ray_address=ray_cluster)
        journal = Journal(tmp_path / "journal.jsonl")
        runner = RayRunner(OpenAIProvider("m", double.base_url), journal, price, config, lambda request, text: False,
                           ray_address=ray_cluster)
        outcome = asyncio.run(runner.run(requests))
        journal.close()
    assert outcome.stopped == "budget" and outcome.answered == 6 and len(double.bodies) == 6
    assert journal.spent_usd() <= budget


def test_ray_against_a_closed_port_stops_after_consecutive_connection_failures(tmp_path, split, ray_cluster):
    root, _ = split
    config = tmp_path / "fast.yaml"
    config.write_text(json.dumps({"preflight": False, "retry_base_s": 0.01, "retry_max_s": 0.05,
                                  "request_timeout_s": 2, "bootstrap": 0}))
    out = evaluate("--truth", root, "--model", "openai:m", "--shots", "0", "--endpoint", "http://127.0.0.1:9/v1",
                   "--engine", "ray", "--ray-address", ray_cluster, "--out", tmp_path / "run", "--config", config,
                   expect=1)
    assert "error: stopped early: consecutive connection failures" in out and "12 of 12 requests unanswered" in out
    journal = rows(tmp_path / "run" / "journal.jsonl")
    assert journal and all(r["status"] == "gave_up" and r.get("connection") for r in journal)


def test_vllm_path_builds_ray_processor_and_reads_its_output_columns(tmp_path, ray_cluster):
    """What runs without a GPU: Ray's own config validation and stage wiring of the hf: processor, and
    the output columns read back (Ray 2.60 `vLLMOutputData`, plus the stage's `time_taken_llm` and
    `__inference_error__`). The engine itself needs vLLM on GPUs and is not run here."""
    from ray.llm._internal.batch.stages.vllm_engine_stage import vLLMOutputData

    from evaluate_fixtures import make_split as write_split
    from isekai_gen.evaluate.config import EvaluateConfig
    from isekai_gen.evaluate.providers import get_provider
    from isekai_gen.evaluate.providers.base import PermanentError
    from isekai_gen.evaluate.ray_backends import VLLMBackend
    from test_evaluate_hf import many_shot_request
    from tiny_vlm import build_qwen2_vl

    model = build_qwen2_vl(tmp_path / "qwen2_vl")
    write_split(tmp_path / "UCM")
    provider = get_provider(f"hf:{model}")
    request = many_shot_request(tmp_path / "UCM", 2, "test_cat_0.png")
    settings = EvaluateConfig(truth="t", model=f"hf:{model}", shots=(2,), out="o", engine="ray")
    backend = VLLMBackend(provider, settings, max_images=len(request.images()))
    processor = backend.processor(wave_size=4)
    assert [type(stage).__name__ for stage in processor.stages.values()] == [
        "PrepareMultimodalStage", "ChatTemplateStage", "TokenizeStage", "vLLMEngineStage", "DetokenizeStage"]
    assert processor.config.engine_kwargs["limit_mm_per_prompt"] == {"image": 7}
    assert processor.config.engine_kwargs["max_model_len"] == 4096   # the tiny model's max_position_embeddings
    row = backend.row(request)
    parts = row["messages"][1]["content"]
    assert [p["type"] for p in parts].count("image_url") == 7 and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert row["sampling_params"] == {"temperature": 0.0, "max_tokens": 6}
    read = {"generated_text", "num_input_tokens", "num_generated_tokens"}
    assert read <= set(vLLMOutputData.model_fields)
    reply = backend.result({"generated_text": "Answer Choice 1: cat", "num_input_tokens": 80, "num_generated_tokens": 6,
                            "time_taken_llm": 0.5, "__inference_error__": ""}, request)
    assert (reply.text, reply.input_tokens, reply.output_tokens, reply.latency_s) == ("Answer Choice 1: cat", 80, 6, 0.5)
    failed = backend.result({"generated_text": "", "__inference_error__": "prompt too long\ntraceback"}, request)
    assert isinstance(failed, PermanentError) and str(failed) == "vLLM: prompt too long"


def test_ray_driver_killed_then_rerun_pays_again_only_what_was_not_journaled(tmp_path, split, ray_cluster):
    root, truth = split
    common = ["--truth", str(root), "--model", "openai:m", "--shots", "0", "--out", str(tmp_path / "run"),
              "--engine", "ray", "--ray-address", ray_cluster, "--concurrency", "2"]
    journal = tmp_path / "run" / "journal.jsonl"
    with OpenAIDouble(truth, latency_s=0.4) as double:
        driver = subprocess.Popen([ISEKAI_GEN, "evaluate", *common, "--endpoint", double.base_url],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 240
        while time.time() < deadline and driver.poll() is None and len(read_journal(journal)) < 2:
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        assert driver.returncode == -signal.SIGKILL, driver.stderr.read().decode()[-2000:]
        journaled = set(read_journal(journal))   # complete lines only (the reader drops a torn tail)
        assert 2 <= len(journaled) < 12, "killed too late to test anything"
        time.sleep(1.0)   # calls the dead driver's actors still had in flight reach the double
        first_run = len(double.bodies)
        evaluate(*common, "--endpoint", double.base_url)
        rerun = len(double.bodies) - first_run
    assert rerun == 12 - len(journaled)   # only the requests without a journaled reply were sent again
    final = rows(journal)
    assert sorted(r["key"] for r in final if r["status"] == "answered") == sorted({r["key"] for r in final})
    assert len({r["key"] for r in final}) == 12 and len(final) == 12
