"""`isekai-gen evaluate`: refusals in one line, budget and cache invariants, request parts vs prompt.py.

- Refused instead of answered: hostile file names in the truth files and in batch.json, a run
  folder resumed with other request settings or another truth, scoring options that cannot
  apply (before any call), a foreign run.json under `evaluate status`.
- Concurrent calls never spend past the budget; one encoding per image under threads; a server
  without `usage` is charged by estimate.
- The ManyICL parts built per request are LMM.py's split of prompt.py's prompt string, demo parts
  shared by the cell; `max_tokens` is 60 x batch size for a short last batch too.

Live calls go to the loopback OpenAI-compatible test double (`tests/evaluate_double.py`) or, for
the runner, to a provider test double defined here."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from evaluate_double import OpenAIDouble
from evaluate_fixtures import make_isekai, make_split
from isekai_gen.cli import main
from isekai_gen.errors import UserError
from isekai_gen.evaluate import batch
from isekai_gen.evaluate import images as images_module
from isekai_gen.evaluate.images import ImageCache
from isekai_gen.evaluate.journal import Journal
from isekai_gen.evaluate.prices import Price
from isekai_gen.evaluate.prompts import IMG, manyicl_prompt, manyicl_requests
from isekai_gen.evaluate.providers.base import EvalRequest, Limits, Part, Reply, Turn
from isekai_gen.evaluate.config import EvaluateConfig
from isekai_gen.evaluate.runner import run_requests
from isekai_gen.evaluate.tasks import load_manyicl

pytest.importorskip("openai")
NOWHERE = "http://127.0.0.1:9/v1"   # nothing listens: a dry run must not need a server


def evaluate(*args, expect: int = 0) -> str:
    result = CliRunner().invoke(main, ["evaluate", *map(str, args)])
    assert result.exit_code == expect, result.output
    if expect == 1:
        assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
        assert "Traceback" not in result.output
    return result.output


def test_hostile_image_names_in_the_truth_files_are_one_line_errors(tmp_path):
    path, _ = make_isekai(tmp_path / "lcl", support=2)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for field, value in (("image_name", "../../x.png"), ("negative_list", ["hedgehog/pos-hedgehog/s-0.png", "../x"])):
        hostile = [dict(rows[0], **{field: value}), *rows[1:]]
        path.write_text("".join(json.dumps(row) + "\n" for row in hostile))
        out = evaluate("--truth", path, "--model", "openai:m", "--endpoint", NOWHERE, "--shots", 1,
                       "--out", tmp_path / "run", "--dry-run", expect=1)
        assert f"{path}:1: image {value if isinstance(value, str) else value[1]!r} points outside" in out
    assert not (tmp_path / "run" / "plan.jsonl").exists()
    root = tmp_path / "UCM"
    make_split(root)
    lines = (root / "test.csv").read_text().splitlines()
    lines[1] = "../evil.png" + lines[1][lines[1].index(","):]
    (root / "test.csv").write_text("\n".join(lines) + "\n")
    out = evaluate("--truth", root, "--model", "openai:m", "--endpoint", NOWHERE, "--shots", 0,
                   "--out", tmp_path / "run2", "--dry-run", expect=1)
    assert "test.csv: image '../evil.png' points outside" in out


def test_a_run_folder_is_not_resumed_with_other_settings_or_another_truth(tmp_path):
    root = tmp_path / "UCM"
    truth = make_split(root)
    config = tmp_path / "fast.yaml"
    config.write_text(json.dumps({"retry_base_s": 0.01, "bootstrap": 0}))
    out = tmp_path / "run"
    args = ["--truth", root, "--shots", 0, "--batch-size", 4, "--out", out, "--config", config]
    # a dry run with other settings leaves nothing behind that they could mix with
    evaluate(*args, "--model", "openai:m", "--endpoint", NOWHERE, "--seed", 7, "--dry-run")
    with OpenAIDouble(truth) as double:
        evaluate(*args, "--model", "openai:m", "--endpoint", double.base_url)
        assert len(double.bodies) == 3
        journal, run_json = (out / "journal.jsonl").read_bytes(), (out / "run.json").read_bytes()
        refused = evaluate(*args, "--model", "openai:other", "--endpoint", double.base_url, expect=1)
        assert "were asked with model = 'openai:m', not 'openai:other'; use another --out" in refused
        refused = evaluate(*args, "--model", "openai:m", "--endpoint", double.base_url, "--seed", 1, expect=1)
        assert "were asked with seed = 0, not 1" in refused
        assert len(double.bodies) == 3
        assert (out / "journal.jsonl").read_bytes() == journal and (out / "run.json").read_bytes() == run_json
        # the same settings from another endpoint (a restarted server) resume: nothing is sent again
        evaluate(*args, "--model", "openai:m", "--endpoint", NOWHERE, "--concurrency", 2)
    lcl, _ = make_isekai(tmp_path / "lcl", support=1)
    refused = evaluate("--truth", lcl, "--model", "openai:m", "--endpoint", NOWHERE, "--shots", 0, "--out", out,
                       "--dry-run", expect=1)
    assert f"this run folder evaluates {(root / 'test.csv').resolve()}; use another --out for {lcl}" in refused


def test_status_of_a_folder_not_written_by_evaluate_is_one_line(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "plan.jsonl").write_text("")
    out = evaluate("status", tmp_path, expect=1)
    assert "run.json: not written by isekai-gen evaluate" in out


def test_a_short_last_batch_keeps_max_tokens_of_the_batch_size(tmp_path):
    """prompt.py passes `max_tokens=60*num_qns_per_round` for every batch, the shorter last one too."""
    root = tmp_path / "UCM"
    make_split(root)                       # 12 test rows: batches of 5, 5, 2
    evaluate("--truth", root, "--model", "openai:m", "--endpoint", NOWHERE, "--shots", 0, "--batch-size", 5,
             "--out", tmp_path / "run", "--dry-run")
    plan = [json.loads(line) for line in Path(tmp_path / "run" / "plan.jsonl").read_text().splitlines()]
    assert [len(row["ids"]) for row in plan] == [5, 5, 2]
    assert [row["est_output_tokens"] for row in plan] == [300, 300, 300]


def test_a_server_without_usage_is_charged_by_estimate_not_for_free(tmp_path):
    """Some OpenAI-compatible servers omit `usage`: the budget must still see the reply's tokens."""
    root = tmp_path / "UCM"
    truth = make_split(root, test_per_class=1)
    prices = tmp_path / "prices.yaml"
    prices.write_text("date: '2025-06-01'\nmodels:\n  openai:\n    m: {input: 1.0, output: 2.0}\n")
    with OpenAIDouble(truth, usage=None) as double:
        evaluate("--truth", root, "--model", "openai:m", "--endpoint", double.base_url, "--shots", 0,
                 "--batch-size", 3, "--out", tmp_path / "run", "--price-table", prices, "--budget-usd", 1)
    (row,) = [json.loads(line) for line in (tmp_path / "run" / "journal.jsonl").read_text().splitlines()]
    plan = json.loads((tmp_path / "run" / "plan.jsonl").read_text())
    assert row["raw"]["usage_estimated"] is True
    assert row["input_tokens"] == plan["est_input_tokens"] and row["output_tokens"] == -(-len(row["text"]) // 4) > 0
    assert row["cost_usd"] == pytest.approx((row["input_tokens"] + 2 * row["output_tokens"]) / 1e6)


def test_manyicl_parts_are_lmm_py_split_of_the_prompt_string_with_demo_parts_shared(tmp_path):
    root = tmp_path / "UCM"
    make_split(root)
    task = load_manyicl(root)
    cache = ImageCache(Limits(None, None, None, None))
    order = list(range(len(task.test)))[::-1]
    requests = manyicl_requests(task, 2, 5, order, cell="c", run_seed=3, provider="openai", model="m", images=cache)
    assert [len(r.ids) for r in requests] == [5, 5, 2]
    demo_text_ids = []
    for position, request in enumerate(requests):
        demos = task.demos(2)
        random.Random(request.seed).shuffle(demos)
        queries = [task.test[i] for i in order[5 * position:5 * position + 5]]
        prompt = manyicl_prompt(task, demos, queries)
        (turn,) = request.turns
        images, texts = turn.parts[0::2], turn.parts[1::2]
        pieces = prompt.split(IMG)   # LMM.py: leading text (none here), then each image and its non-blank text
        assert pieces[0] == "" and [p.text for p in texts] == [p for p in pieces[1:] if p.strip()]
        assert all(p.image is not None for p in images) and all(p.text is not None for p in texts)
        assert [p.image for p in images] == [cache.get(e.image) for e in [*demos, *queries]]
        demo_text_ids.append({demo.id: id(part) for demo, part in zip(demos, texts)})
    assert demo_text_ids[0] == demo_text_ids[1] == demo_text_ids[2]   # one Part per demo, shared by the cell
    keys = {r.key for r in requests}
    again = manyicl_requests(task, 2, 5, order, cell="c", run_seed=3, provider="openai", model="m", images=cache)
    assert len(keys) == 3 and [r.key for r in again] == [r.key for r in requests]


def test_options_that_cannot_apply_are_refused_before_any_call(tmp_path):
    root = tmp_path / "UCM"
    make_split(root)
    common = ["--truth", root, "--model", "openai:m", "--endpoint", NOWHERE, "--shots", 0, "--out", tmp_path / "run"]
    config = tmp_path / "lcl_compat.yaml"
    config.write_text("lcl_compat: true\nmax_retries: 0\nrequest_timeout_s: 0.5\n")
    out = evaluate(*common, "--config", config, expect=1)   # live: would have sent (and failed) otherwise
    assert "test.csv: --lcl-compat needs an ISEKAI truth file" in out
    out = evaluate(*common, "--submit", expect=1)
    assert "--submit: submits batch-API files; give --batch too" in out
    assert not (tmp_path / "run" / "journal.jsonl").exists()



class _FixedCostProvider:
    """Test double of a provider: every call takes 20 ms and reports exactly its estimated tokens."""
    name = "double"
    limits = Limits(None, None, None, None)

    def estimate_tokens(self, request):
        return 1000, 60

    async def send(self, request):
        await asyncio.sleep(0.02)
        return Reply("Answer Choice 1: cat", 1000, 60, 0.02, {})


def test_concurrent_calls_never_spend_past_the_budget_when_replies_cost_their_estimate(tmp_path):
    """A reply's cost counts before its reservation is released to the other calls in flight; with
    each reply costing exactly its reserved estimate, 4 calls at a time stay within the budget."""
    price = Price(1e-6, 1e-6, "test")
    per_call = price.cost(1000, 60)
    requests = [EvalRequest(f"{n:064x}", "c", (str(n),), 0, None, (Turn("user", (Part(text="q"),)),), 60, 0.0, "m")
                for n in range(12)]
    journal = Journal(tmp_path / "journal.jsonl")
    settings = EvaluateConfig(truth="t", model="openai:m", shots=(0,), out="o", concurrency=4,
                              budget_usd=5.5 * per_call)
    outcome = run_requests(_FixedCostProvider(), journal, requests, price, settings, lambda request, text: False)
    journal.close()
    assert outcome.stopped == "budget" and outcome.calls == outcome.answered == 5
    assert journal.spent_usd() == pytest.approx(5 * per_call) and journal.spent_usd() <= settings.budget_usd


def test_a_hostile_batch_state_cannot_upload_a_file_outside_the_folder(tmp_path):
    (tmp_path / "secret.jsonl").write_text("{}\n")
    folder = tmp_path / "run" / "batch"
    folder.mkdir(parents=True)
    (folder / batch.STATE_NAME).write_text(json.dumps({"provider": "openai", "model": "m",
                                                       "files": ["../../secret.jsonl"], "jobs": {}}))
    with pytest.raises(UserError, match=r"batch\.json: request file '\.\./\.\./secret\.jsonl' must be a bare file name"):
        asyncio.run(batch.submit(folder, NOWHERE))


def test_image_cache_gives_one_encoding_per_image_under_threads(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (40, 20), (1, 2, 3)).save(path)
    real = images_module.encode_image

    def slow_encode(*args):
        time.sleep(0.05)   # both threads are inside the encoder at once
        return real(*args)

    monkeypatch.setattr(images_module, "encode_image", slow_encode)
    cache = ImageCache(Limits(None, None, None, None, max_image_side=20))
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(path))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got[0] is got[1] and len(cache.resized) == 1
