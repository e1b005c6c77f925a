"""`isekai-gen evaluate` outcomes, money and caching (issue 23): exit codes and the one error line,
preflight, connection failures, incomplete cells, the ManyICL-original preset, the endpoint from
OPENAI_BASE_URL, the cache-friendly order with its markers and cache pricing, the fallback
extractor, and the typed config's defaults against the schema. Servers are loopback test doubles."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluate_double import OpenAIDouble
from evaluate_fixtures import make_split, sha_of
from isekai_gen.cli import main
from isekai_gen.evaluate.config import DEFAULTS, EvaluateConfig, load_run_config
from isekai_gen.evaluate.prices import Price
from isekai_gen.resources import SCHEMA_DIR

pytest.importorskip("openai")


def evaluate(*args, expect: int = 0) -> str:
    result = CliRunner().invoke(main, ["evaluate", *map(str, args)])
    assert result.exit_code == expect, result.output
    return result.output


def fast(tmp_path: Path, **extra) -> Path:
    path = tmp_path / "fast.yaml"
    path.write_text(json.dumps({"retry_base_s": 0.01, "retry_max_s": 0.05, "request_timeout_s": 2, "bootstrap": 0,
                                **extra}))
    return path


@pytest.fixture()
def split(tmp_path):
    root = tmp_path / "UCM"
    return root, make_split(root)


def test_typed_defaults_agree_with_the_schema_and_round_trip():
    schema = json.loads((SCHEMA_DIR / "evaluate_config.schema.json").read_text())
    for name, prop in schema["properties"].items():
        if "default" in prop:
            assert DEFAULTS[name] == prop["default"], name
    assert set(schema["properties"]) == {f for f in EvaluateConfig.__dataclass_fields__}
    config = load_run_config(None, {"truth": "t", "model": "openai:m", "shots": [0, 5], "out": "o"})
    assert EvaluateConfig.from_dict(config.to_dict()) == config
    with pytest.raises(Exception):
        config.seed = 3   # frozen


def test_a_misspelt_setting_names_the_closest_one(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("temprature: 1\n")
    out = evaluate("--config", path, "--truth", "x", "--model", "openai:m", "--shots", "0", "--out", tmp_path / "o",
                   expect=1)
    assert "run.yaml: unknown setting 'temprature'; did you mean 'temperature'?" in out


def test_manyicl_original_preset_sends_seed_66_and_caps_output_at_4096(tmp_path, split):
    root, truth = split
    with OpenAIDouble(truth) as double:
        evaluate("--truth", root, "--model", "openai:m", "--endpoint", double.base_url, "--shots", "0",
                 "--batch-size", "100", "--out", tmp_path / "run", "--protocol", "manyicl-original",
                 "--config", fast(tmp_path))
    (body,) = double.bodies
    assert body["seed"] == 66 and body["max_tokens"] == 4096 and body["temperature"] == 0   # min(4096, 60 x 100)
    with OpenAIDouble(truth) as double:
        evaluate("--truth", root, "--model", "openai:m", "--endpoint", double.base_url, "--shots", "0",
                 "--batch-size", "100", "--out", tmp_path / "run2", "--config", fast(tmp_path))
    assert "seed" not in double.bodies[0] and double.bodies[0]["max_tokens"] == 6000   # the default is unchanged


def test_a_wrong_model_is_refused_before_any_call_and_the_folder_takes_the_right_one(tmp_path, split):
    root, truth = split
    args = ["--truth", root, "--shots", "0", "--out", tmp_path / "run", "--config", fast(tmp_path)]
    with OpenAIDouble(truth, models=["right"]) as double:
        out = evaluate(*args, "--model", "openai:wrong", "--endpoint", double.base_url, expect=1)
        assert "model 'wrong' is not served there (models: right); fix --model" in out and not double.bodies
        out = evaluate(*args, "--model", "openai:right", "--endpoint", double.base_url)
        assert "preflight:" in out and len(double.bodies) == 12
    # permanent errors only (no answer yet): corrected settings are accepted too
    with OpenAIDouble(truth, faults=["400"] * 3) as double:
        args2 = ["--truth", root, "--shots", "0", "--out", tmp_path / "run2", "--config", fast(tmp_path),
                 "--endpoint", double.base_url, "--concurrency", 1]
        evaluate(*args2, "--model", "openai:first", expect=1)
        evaluate(*args2, "--model", "openai:second")


def test_a_closed_port_stops_in_seconds_with_one_error_line(tmp_path, split):
    root, _ = split
    started = time.monotonic()
    out = evaluate("--truth", root, "--model", "openai:m", "--endpoint", "http://127.0.0.1:9/v1", "--shots", "0",
                   "--out", tmp_path / "run", "--config", fast(tmp_path, preflight=False), expect=1)
    assert time.monotonic() - started < 60   # generous: the point is seconds, not the minutes of 7 attempts x 30
    line = [l for l in out.splitlines() if l.startswith("error:")]
    assert len(line) == 1 and "consecutive connection failures" in line[0] and "12 of 12 requests unanswered" in line[0]
    out = evaluate("--truth", root, "--model", "openai:m", "--endpoint", "http://127.0.0.1:9/v1", "--shots", "0",
                   "--out", tmp_path / "run", "--config", fast(tmp_path), expect=1)
    assert "cannot reach http://127.0.0.1:9/v1" in out   # the preflight says it before any call


def test_incomplete_cells_are_marked_with_the_answered_accuracy(tmp_path, split):
    root, truth = split
    tests = sorted(sha for sha in truth if sha in {sha_of(p) for p in (root / "images").glob("test_*")})
    with OpenAIDouble(truth, wrong={tests[0]: "owl" if truth[tests[0]] != "owl" else "cat"}) as double:
        evaluate("--truth", root, "--model", "openai:m", "--endpoint", double.base_url, "--shots", "0",
                 "--out", tmp_path / "run", "--concurrency", 1, "--max-requests", 5, "--config", fast(tmp_path))
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    (cell,) = report["cells"]
    assert not report["complete"] and not cell["complete"] and cell["value"] is None
    assert cell["answered"] == 5
    predictions = [json.loads(line) for line in
                   (tmp_path / "run" / "cells" / "shots-0_batch-1" / "predictions.jsonl").read_text().splitlines()]
    correct = sum(p["prediction"] == p["id"].split("_")[1] for p in predictions)   # test_<class>_<k>.png
    assert len(predictions) == 5 and cell["answered_value"] == pytest.approx(100 * correct / 5)
    assert "incomplete:" in (tmp_path / "run" / "report.md").read_text()


def test_openai_base_url_is_recorded_and_not_priced_as_openai(tmp_path, split, monkeypatch):
    root, truth = split
    with OpenAIDouble(truth) as double:
        monkeypatch.setenv("OPENAI_BASE_URL", double.base_url)
        out = evaluate("--truth", root, "--model", "openai:gpt-4o", "--shots", "0", "--out", tmp_path / "run",
                       "--config", fast(tmp_path))
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["endpoint"] == double.base_url and run["price"] is None
    assert "not openai's own API" in out and len(double.bodies) == 12


def test_cache_friendly_order_shares_the_demo_block_and_prices_cache_reads(tmp_path, split):
    root, truth = split
    prices = tmp_path / "prices.yaml"
    prices.write_text("date: '2025-06-01'\nmodels:\n  openai:\n    m: {input: 1.0, output: 1.0, cache_read: 0.1}\n")
    with OpenAIDouble(truth) as double:
        out = evaluate("--truth", root, "--model", "openai:m", "--endpoint", double.base_url, "--shots", "2",
                       "--out", tmp_path / "run", "--demo-order", "cache-friendly", "--price-table", prices,
                       "--config", fast(tmp_path), "--concurrency", 1)
    assert "live with the prompt cache" in out
    heads = {json.dumps(body["messages"][0]["content"][:12]) for body in double.bodies}
    assert len(heads) == 1 and len(double.bodies) == 12   # 6 demos = 12 parts, byte-identical in every request
    with OpenAIDouble(truth) as double:
        evaluate("--truth", root, "--model", "openai:m", "--endpoint", double.base_url, "--shots", "2",
                 "--out", tmp_path / "default", "--config", fast(tmp_path))
    assert len({json.dumps(body["messages"][0]["content"][:12]) for body in double.bodies}) > 1
    price = Price(1e-6, 2e-6, "t", cache_read_per_token=1e-7, cache_write_per_token=1.25e-6)
    assert price.cost(1000, 10, cache_read=800) == pytest.approx((200 + 80) * 1e-6 + 20e-6)
    assert price.cost(1000, 10, cache_write=800) == pytest.approx((200 + 1000) * 1e-6 + 20e-6)


def test_anthropic_marks_the_demo_block_and_openai_sends_a_cache_key():
    pytest.importorskip("anthropic")
    from isekai_gen.evaluate.providers.anthropic import message_params, reply_from_message
    from isekai_gen.evaluate.providers.base import EvalRequest, Part, Turn
    from isekai_gen.evaluate.providers.openai import OpenAIProvider

    parts = (Part(text="demo 1"), Part(text="demo 2"), Part(text="query"))
    request = EvalRequest("a" * 64, "c", ("q",), 0, None, (Turn("user", parts),), 60, 0.0, "m", cache_prefix=2)
    blocks = message_params(request)["messages"][0]["content"]
    assert blocks[1]["cache_control"] == {"type": "ephemeral"} and "cache_control" not in blocks[0] | blocks[2]
    reply = reply_from_message({"content": [{"type": "text", "text": "x"}], "usage": {
        "input_tokens": 10, "cache_read_input_tokens": 900, "cache_creation_input_tokens": 0, "output_tokens": 3}}, 0.1)
    assert reply.input_tokens == 910 and reply.cache_read_tokens == 900
    assert "prompt_cache_key" in OpenAIProvider("gpt-4o").body(request)
    assert "prompt_cache_key" not in OpenAIProvider("m", "http://127.0.0.1:9/v1").body(request)


def test_fallback_extractor_is_reported_beside_the_strict_score(tmp_path, split):
    root, truth = split
    tests = sorted(sha for sha in truth if sha in {sha_of(p) for p in (root / "images").glob("test_*")})
    with OpenAIDouble(truth, abstain={tests[0]}) as double:
        evaluate("--truth", root, "--model", "openai:m", "--endpoint", double.base_url, "--shots", "0",
                 "--out", tmp_path / "run", "--extractor", "labels",
                 "--config", fast(tmp_path, max_reasks=0, parse_failures="wrong"))
    (cell,) = json.loads((tmp_path / "run" / "report.json").read_text())["cells"]
    assert cell["unparsed_queries"] == 1 and cell["value"] == pytest.approx(100 * 11 / 12)
    assert cell["fallback_value"] is not None and cell["fallback_recovered"] == 0   # the abstention names no class
    assert (tmp_path / "run" / "cells" / "shots-0_batch-1" / "predictions.fallback.jsonl").exists()


def test_a_hung_server_stops_after_consecutive_timeouts(tmp_path, split):
    root, truth = split
    with OpenAIDouble(truth, latency_s=3.0) as double:
        started = time.monotonic()
        out = evaluate("--truth", root, "--model", "openai:m", "--endpoint", double.base_url, "--shots", "0",
                       "--out", tmp_path / "run", "--timeout", 0.2, "--config", fast(tmp_path), expect=1)
        assert time.monotonic() - started < 30
    assert "stopped early: consecutive connection failures (APITimeoutError" in out
    assert "12 of 12 requests unanswered" in out


def test_batch_estimates_are_at_the_batch_price(tmp_path, split):
    root, _ = split
    prices = tmp_path / "prices.yaml"
    prices.write_text("date: '2025-06-01'\nbatch_discount: 0.5\nmodels:\n  openai:\n    m: {input: 1.0, output: 1.0}\n")
    args = ["--truth", root, "--model", "openai:m", "--endpoint", "http://127.0.0.1:9/v1", "--shots", "1",
            "--price-table", prices, "--dry-run"]
    live = evaluate(*args, "--out", tmp_path / "live")
    batch = evaluate(*args, "--out", tmp_path / "batch", "--batch")
    dollars = [float(line.rsplit("$", 1)[1]) for text in (live, batch) for line in text.splitlines()
               if line.startswith("estimate for the whole grid")]
    assert dollars[1] == pytest.approx(dollars[0] / 2, rel=1e-3)
    assert "batch API $" in live


def test_a_new_provider_is_one_module_and_one_registry_line(tmp_path, split, monkeypatch):
    """What a later provider (say an in-process `hf:` one) needs: a module with `create`, a PROVIDERS line;
    `InProcessProvider` gathers the runner's concurrent requests into batches for one forward pass."""
    import sys
    import types

    from isekai_gen.evaluate import providers
    from isekai_gen.evaluate.providers.base import Reply

    from isekai_gen.evaluate.providers.inprocess import InProcessProvider

    class InProcess(InProcessProvider):
        name, max_batch_size = "loop", 4

        def estimate_tokens(self, request):
            return 10, request.max_tokens

        def generate(self, requests):   # one "forward pass" over the batch
            return [Reply("\n".join(f"Answer Choice {n}: cat" for n in range(1, len(r.ids) + 1)), 10, 5, 0.0, {})
                    for r in requests]

    made = []
    module = types.ModuleType("isekai_gen.evaluate.providers.loop")
    module.create = lambda model, endpoint=None, **options: made.append(InProcess(model)) or made[-1]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(providers.PROVIDERS, "loop", ("loop", "isekai_gen", "dev"))
    out = evaluate("--truth", split[0], "--model", "loop:tiny", "--shots", "0", "--out", tmp_path / "run",
                   "--config", fast(tmp_path), expect=0)
    assert "12 calls: 12 answered" in out
    assert sum(made[0].batches) == 12 and max(made[0].batches) <= 4 and len(made[0].batches) < 12   # batched
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["complete"] and report["cells"][0]["value"] == pytest.approx(100 * 4 / 12)


def test_replies_over_their_estimate_never_pass_the_budget_under_concurrency(tmp_path):
    """Each reply reports 3x its estimated input: the first reply calibrates the reservation of the
    calls in flight, so 4 calls at a time still stop inside the budget."""
    import asyncio

    from isekai_gen.evaluate.journal import Journal
    from isekai_gen.evaluate.providers.base import EvalRequest, Limits, Part, Reply, Turn
    from isekai_gen.evaluate.runner import run_requests

    class ThreeTimes:
        name, limits = "double", Limits(None, None, None, None)

        def estimate_tokens(self, request):
            return 1000, 60

        async def send(self, request):
            await asyncio.sleep(0.01)
            return Reply("Answer Choice 1: cat", 3000, 60, 0.01, {})

    price = Price(1e-6, 1e-6, "test")
    requests = [EvalRequest(f"{n:064x}", "c", (str(n),), 0, None, (Turn("user", (Part(text="q"),)),), 60, 0.0, "m")
                for n in range(40)]
    budget = 10.5 * price.cost(3000, 60)
    config = EvaluateConfig(truth="t", model="openai:m", shots=(0,), out="o", concurrency=4, budget_usd=budget)
    journal = Journal(tmp_path / "journal.jsonl")
    outcome = run_requests(ThreeTimes(), journal, requests, price, config, lambda request, text: False)
    journal.close()
    assert outcome.stopped == "budget" and journal.spent_usd() <= budget and outcome.answered == 10


def test_cached_tokens_are_read_from_each_providers_usage_fields():
    pytest.importorskip("google.genai")
    from isekai_gen.evaluate.providers.gemini import reply_from_response
    from isekai_gen.evaluate.providers.openai import OpenAIProvider

    gemini = reply_from_response({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}],
                                  "usageMetadata": {"promptTokenCount": 5000, "cachedContentTokenCount": 4096,
                                                    "candidatesTokenCount": 7}}, 0.1)
    assert (gemini.input_tokens, gemini.cache_read_tokens) == (5000, 4096)
    openai_reply = OpenAIProvider("gpt-4o")._reply({"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}],
                                                   "usage": {"prompt_tokens": 2000, "completion_tokens": 3,
                                                             "prompt_tokens_details": {"cached_tokens": 1920}}},
                                                  0.1, None)
    assert (openai_reply.input_tokens, openai_reply.cache_read_tokens) == (2000, 1920)
