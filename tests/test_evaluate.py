"""`isekai-gen evaluate` end to end against a local OpenAI-compatible test double (loopback).

The real `openai` SDK talks to `tests/evaluate_double.py` through `--endpoint`; prompts are
checked against hand-written text, scores against the accuracy the double was set to give, and
the ManyICL pickle against a copy of the released eval.py's logic.
"""

from __future__ import annotations

import ast
import json
import pickle
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from evaluate_double import OpenAIDouble, images_and_text
from evaluate_fixtures import make_isekai, make_split, sha_of
from isekai_gen.cli import main
from isekai_gen.evaluate.tasks import load_manyicl

pytest.importorskip("openai")

LEAD = "Given the image above, answer the following question using the specified format. \n"


def evaluate(*args, expect: int = 0) -> str:
    result = CliRunner().invoke(main, ["evaluate", *map(str, args)])
    assert result.exit_code == expect, result.output
    return result.output


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def fast_config(tmp_path: Path, **extra) -> Path:
    """Run config with quick retries (the defaults wait seconds)."""
    config = {"retry_base_s": 0.01, "retry_max_s": 0.05, "request_timeout_s": 0.5, "bootstrap": 0, **extra}
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(config))   # JSON is YAML
    return path


@pytest.fixture()
def split(tmp_path):
    root = tmp_path / "UCM"
    truth = make_split(root)
    return root, truth


# --- prompts -------------------------------------------------------------------------------

def test_manyicl_prompt_text_and_image_order(tmp_path):
    root = tmp_path / "pets"
    truth = make_split(root, classes=("cat", "dog"), demo_per_class=2, test_per_class=1)
    with OpenAIDouble(truth) as double:
        evaluate("--truth", root, "--model", "openai:m", "--endpoint", double.base_url, "--shots", 1,
                 "--batch-size", 2, "--out", tmp_path / "run", "--concurrency", 1, "--config", fast_config(tmp_path))
    (body,) = double.bodies
    assert body["max_tokens"] == 120 and body["temperature"] == 0
    (message,) = body["messages"]
    assert message["role"] == "user"
    kinds = [part["type"] for part in message["content"]]
    assert kinds == ["image_url", "text"] * 4
    texts = [part["text"] for part in message["content"] if part["type"] == "text"]
    (plan,) = read_jsonl(tmp_path / "run" / "plan.jsonl")
    demos = [("demo_cat_0.png", "cat"), ("demo_dog_0.png", "dog")]   # first row of each class in demo.csv
    random.Random(plan["seed"]).shuffle(demos)
    choices = "['cat', 'dog']"
    assert texts[:2] == [f"{LEAD}Question: What is in the image above?\nChoices: {choices}\nAnswer Choice: {label}\n"
                         for _, label in demos]
    template = ("\nPlease respond with the following format for each question:\n"
                "---BEGIN FORMAT TEMPLATE FOR QUESTION {n}---\n"
                "Answer Choice {n}: [Your Answer Choice Here for Question {n}]\n"
                "Confidence Score {n}: [Your Numerical Prediction Confidence Score Here From 0 To 1 for Question {n}]\n"
                "---END FORMAT TEMPLATE FOR QUESTION {n}---\n\n"
                "Do not deviate from the above format. Repeat the format template for the answer.")
    assert texts[2] == f"{LEAD}Question 1: What is in the image above?\nChoices 1: {choices}\n\n"
    assert texts[3] == (f"{LEAD}Question 2: What is in the image above?\nChoices 2: {choices}\n\n"
                        + template.format(n=1) + template.format(n=2))
    # run.py: test_df.sample(frac=1, random_state=66), then consecutive batches
    test_ids = list(pd.read_csv(root / "test.csv", index_col=0).sample(frac=1, random_state=66).index)
    assert plan["ids"] == test_ids
    urls = [part["image_url"]["url"] for part in message["content"] if part["type"] == "image_url"]
    assert all(url.startswith("data:image/png;base64,") for url in urls)
    expected = [sha_of(root / "images" / name) for name, _ in demos] + [sha_of(root / "images" / i) for i in test_ids]
    assert images_and_text(body["messages"])[0] == expected


def test_lcl_conversation(tmp_path):
    path, truth = make_isekai(tmp_path / "lcl", pairs=(("cactihog", "hedgehog"),), support=2)
    with OpenAIDouble(truth) as double:
        evaluate("--truth", path, "--model", "openai:m", "--endpoint", double.base_url, "--shots", 1,
                 "--out", tmp_path / "run", "--concurrency", 1, "--config", fast_config(tmp_path, lcl_compat=True))
    plan = read_jsonl(tmp_path / "run" / "plan.jsonl")
    assert [row["ids"] for row in plan] == [["1"], ["2"]]
    body = double.bodies[0]
    system, *turns = body["messages"]
    assert system == {"role": "system", "content": "You should find the causal relationship between the examples I am "
                      "going to show you. And use that to answer to the [FINAL QUESTION]."}
    support = [("cactihog/pos-cactihog/s-0.png", "cactihog"), ("hedgehog/pos-hedgehog/s-0.png", "hedgehog")]
    random.Random(plan[0]["seed"]).shuffle(support)
    shas = [sha_of(tmp_path / "lcl" / "images" / name) for name, _ in support]
    assert len(turns) == 5
    for (_, label), user, assistant in zip(support, turns[0:4:2], turns[1:4:2]):
        assert [p.get("text") for p in user["content"]] == ["[BEGIN EXAMPLE] What is in the image ", None, "?"]
        assert assistant == {"role": "assistant", "content": f'there is "{label}" in the image. [END EXAMPLE]'}
    final = turns[4]["content"]
    assert [p.get("text") for p in final] == ["[FINAL QUESTION]: Based on the previous examples, what is in the image ",
                                              None, "?"]
    query = sha_of(tmp_path / "lcl" / "images" / "cactihog/pos-cactihog/q-0.png")
    assert images_and_text(body["messages"])[0] == [*shas, query]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["cells"][0]["value"] == 100.0


def test_lcl_zero_shot_has_no_system_and_too_many_shots_fail(tmp_path):
    path, truth = make_isekai(tmp_path / "lcl", support=2)
    out = evaluate("--truth", path, "--model", "openai:m", "--endpoint", "http://127.0.0.1:9/v1", "--shots", 3,
                   "--out", tmp_path / "run", "--dry-run", expect=1)
    assert "support lists of only 2 images" in out
    evaluate("--truth", path, "--model", "openai:m", "--endpoint", "http://127.0.0.1:9/v1", "--shots", "0,2",
             "--out", tmp_path / "run", "--dry-run")
    assert len(read_jsonl(tmp_path / "run" / "plan.jsonl")) == 8


def test_nested_demos_and_seeded_shuffles(tmp_path, split):
    root, _ = split
    task = load_manyicl(root)
    one, two = [e.id for e in task.demos(1)], [e.id for e in task.demos(2)]
    assert one == ["demo_cat_0.png", "demo_dog_0.png", "demo_owl_0.png"]
    assert two == ["demo_cat_0.png", "demo_cat_1.png", "demo_dog_0.png", "demo_dog_1.png", "demo_owl_0.png", "demo_owl_1.png"]
    args = ["--truth", root, "--model", "openai:m", "--endpoint", "http://127.0.0.1:9/v1", "--shots", "2",
            "--batch-size", "1", "--dry-run"]
    plans = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        evaluate(*args, "--out", tmp_path / name, "--seed", seed)
        plans.append(read_jsonl(tmp_path / name / "plan.jsonl"))
    assert plans[0] == plans[1]
    assert [r["seed"] for r in plans[0]] != [r["seed"] for r in plans[2]]
    assert [r["key"] for r in plans[0]] != [r["key"] for r in plans[2]]
    assert len({r["key"] for r in plans[0]}) == len(plans[0]) == 12


# --- scoring, pickles, reliability -------------------------------------------------------------

def eval_py_accuracy(pickle_path: Path, test_csv: Path) -> tuple[float, int]:
    """ManyICL's released eval.py (`convert_pkl`, `cal_metrics` without the bootstrap), copied from
    github.com/stanfordmlgroup/ManyICL ManyICL/eval.py so the pickle is read as the original reads it."""
    with open(pickle_path, "rb") as f:
        raw = pickle.load(f)

    def extract_ans(ans_str, search_substring):
        for line in ans_str.split("\n"):
            if line.startswith(search_substring):
                return line[len(search_substring):].strip()
        return "ERROR"

    results = {}
    for k, v in raw.items():
        if k.startswith("["):
            for idx, qn_idx in enumerate(ast.literal_eval(k)):
                results[qn_idx] = extract_ans(v, f"Answer Choice {idx+1}:")
    test_df = pd.read_csv(test_csv, index_col=0)
    classes = list(test_df.columns)
    class_to_idx = {c: i for i, c in enumerate(classes)}
    index_labels = test_df[classes].idxmax(axis=1).map(class_to_idx)
    num_errors, labels, preds = 0, [], []
    for i in test_df.itertuples():
        if (i.Index not in results) or results[i.Index].startswith("ERROR"):
            num_errors += 1
            continue
        pred_idx = len(classes)
        for idx, class_name in enumerate(classes):
            if class_name.lower() in results[i.Index].lower():
                pred_idx = idx if pred_idx == len(classes) else -1
        if pred_idx >= 0:
            labels.append(index_labels.loc[i.Index])
            preds.append(pred_idx)
        else:
            num_errors += 1
    return 100 * float(np.sum(np.array(labels) == np.array(preds)) / len(labels)), num_errors


def test_scores_equal_the_set_accuracy_and_eval_py_reads_the_pickle(tmp_path, split):
    root, truth = split
    test_images = sorted(sha for sha in truth if sha in {sha_of(p) for p in (root / "images").glob("test_*")})
    wrong = {sha: ("dog" if truth[sha] != "dog" else "cat") for sha in test_images[:3]}   # 9 of 12 right
    with OpenAIDouble(truth, wrong) as double:
        evaluate("--truth", root, "--model", "openai:gpt-4o", "--endpoint", double.base_url, "--shots", "0,1",
                 "--batch-size", "1,4", "--out", tmp_path / "run", "--concurrency", 4, "--config", fast_config(tmp_path))
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [c["value"] for c in report["cells"]] == [75.0] * 4
    assert all(c["done"] == c["requests"] and c["pending"] == 0 for c in report["cells"])
    assert report["table3"][1]["batch_size"] == 4 and report["table3"][1]["per_example_latency_s"] is not None
    assert report["data_efficiency"][0]["slope"] == 0.0
    pkl = tmp_path / "run" / "cells" / "shots-1_batch-4" / "UCM_3shot_gpt-4o_4.pkl"
    assert eval_py_accuracy(pkl, root / "test.csv") == (75.0, 0)
    raw = pickle.loads(pkl.read_bytes())
    assert raw["token_usage"] == (30, 300, 330)   # (completion, prompt, total) over 3 requests


def test_abstentions_are_reasked_then_kept_and_eval_py_agrees(tmp_path, split):
    root, truth = split
    test_images = sorted(sha for sha in truth if sha in {sha_of(p) for p in (root / "images").glob("test_*")})
    wrong = {test_images[0]: "owl" if truth[test_images[0]] != "owl" else "cat"}
    abstain = {test_images[1]}
    with OpenAIDouble(truth, wrong, abstain=abstain) as double:
        evaluate("--truth", root, "--model", "openai:m", "--endpoint", double.base_url, "--shots", "1",
                 "--batch-size", "2", "--out", tmp_path / "run", "--concurrency", 2,
                 "--config", fast_config(tmp_path, max_reasks=2, parse_failures="manyicl"))
    assert len(double.bodies) == 6 + 2    # the abstaining request: asked 1 + 2 times
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    (cell,) = report["cells"]
    assert cell["abstained"] == 1 and cell["done"] == 6
    accuracy, errors = eval_py_accuracy(tmp_path / "run" / "cells" / "shots-1_batch-2" / "UCM_3shot_m_2.pkl",
                                        root / "test.csv")
    assert errors == 1 and accuracy == pytest.approx(100 * 10 / 11)
    assert cell["value"] == pytest.approx(accuracy)


def test_transient_faults_are_retried_and_permanent_errors_recorded(tmp_path, split):
    root, truth = split
    faults = ["429", "500", "timeout", "truncated", "slow", "400"]
    with OpenAIDouble(truth, faults=faults, timeout_sleep_s=1.0) as double:
        args = ["--truth", root, "--model", "openai:m", "--endpoint", double.base_url, "--shots", "0",
                "--batch-size", "4", "--out", tmp_path / "run", "--concurrency", 1, "--config", fast_config(tmp_path)]
        out = evaluate(*args, expect=1)             # an unanswered request: one error line, exit 1
        assert "1 permanent errors" in out
        assert "error: 1 of 3 requests unanswered, 1 of them: HTTP 400: Error code: 400 - content policy" in out
        assert len(double.bodies) == 3 + 4        # 3 requests, 4 retries of transient faults (slow is no fault)
        journal = read_jsonl(tmp_path / "run" / "journal.jsonl")
        assert [r["status"] for r in journal].count("permanent_error") == 1
        evaluate(*args, expect=1)                   # rerun: nothing is sent again
        assert len(double.bodies) == 7
    predictions = read_jsonl(tmp_path / "run" / "cells" / "shots-0_batch-4" / "predictions.jsonl")
    assert sum(p["prediction"] is None for p in predictions) == 4
    status = evaluate("status", tmp_path / "run")
    assert "total" in status and status.splitlines()[-1].split()[1:5] == ["3", "2", "0", "1"]


def test_budget_refuses_then_stops_cleanly(tmp_path, split):
    root, truth = split
    prices = tmp_path / "prices.yaml"
    prices.write_text("date: '2025-06-01'\nmodels:\n  openai:\n    m: {input: 1.0, output: 1.0}\n")
    common = ["--truth", root, "--model", "openai:m", "--shots", "0", "--batch-size", "1", "--price-table", prices,
              "--concurrency", 1, "--out", tmp_path / "run"]
    dry = evaluate(*common, "--endpoint", "http://127.0.0.1:9/v1", "--dry-run")
    plan = read_jsonl(tmp_path / "run" / "plan.jsonl")
    estimate = sum(r["est_cost_usd"] for r in plan)
    assert f"${estimate:.4f}" in dry
    out = evaluate(*common, "--endpoint", "http://127.0.0.1:9/v1", "--budget-usd", estimate / 2, expect=1)
    assert "may cost up to" in out
    # the double reports 10x the estimated input tokens: the live spend passes the estimate
    per_request = (3000 + 10) / 1e6
    budget = estimate * 1.01
    with OpenAIDouble(truth, usage=(3000, 10)) as double:
        out = evaluate(*common, "--endpoint", double.base_url, "--budget-usd", budget, "--config",
                       fast_config(tmp_path), expect=1)
    assert "stopped early: the spend would pass --budget-usd" in out
    journal = read_jsonl(tmp_path / "run" / "journal.jsonl")
    spent = sum(r["cost_usd"] for r in journal)
    assert 0 < len(journal) < 12 and len(journal) == len(double.bodies)
    # the worst case of the calls in flight is reserved (the first reply calibrates it): never past the budget
    assert spent <= budget < spent + 2 * per_request
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["cells"][0]["pending"] == 12 - len(journal)


def test_limits_fail_at_dry_run_and_missing_sdk_names_extra(tmp_path, split, monkeypatch):
    root, _ = split
    config = tmp_path / "limits.yaml"
    config.write_text("limits: {max_images: 4}\n")
    out = evaluate("--truth", root, "--model", "openai:m", "--endpoint", "http://127.0.0.1:9/v1", "--shots", "1",
                   "--batch-size", "2", "--out", tmp_path / "run", "--dry-run", "--config", config, expect=1)
    assert "cell shots-1_batch-2: request 0 has 5 images; openai allows 4 per request" in out
    import sys
    monkeypatch.setitem(sys.modules, "google.genai", None)
    monkeypatch.delitem(sys.modules, "isekai_gen.evaluate.providers.gemini", raising=False)
    out = evaluate("--truth", root, "--model", "gemini:gemini-2.5-pro", "--shots", "0", "--out", tmp_path / "g",
                   "--dry-run", expect=1)
    assert "pip install 'isekai-gen[gemini]'" in out


def test_batch_files_written_at_dry_run_and_results_read_back(tmp_path, split):
    root, truth = split
    prices = tmp_path / "prices.yaml"   # the shipped table prices only api.openai.com, not an --endpoint
    prices.write_text("date: '2025-06-01'\nbatch_discount: 0.5\nmodels:\n  openai:\n"
                      "    gpt-4o-mini: {input: 0.15, output: 0.60}\n")
    args = ["--truth", root, "--model", "openai:gpt-4o-mini", "--endpoint", "http://127.0.0.1:9/v1", "--shots", "1",
            "--batch-size", "4", "--out", tmp_path / "run", "--config", fast_config(tmp_path), "--price-table", prices]
    out = evaluate(*args, "--batch", "--dry-run")
    assert "wrote 1 request files for 3 requests" in out
    lines = read_jsonl(tmp_path / "run" / "batch" / "openai-requests-00000.jsonl")
    plan = read_jsonl(tmp_path / "run" / "plan.jsonl")
    assert [line["custom_id"] for line in lines] == [row["key"] for row in plan]
    assert all(line["url"] == "/v1/chat/completions" and line["body"]["max_tokens"] == 240 for line in lines)
    # what the OpenAI Batch API returns, answered by the double's logic
    double = OpenAIDouble(truth)
    results = [{"id": f"batch_req_{i}", "custom_id": line["custom_id"], "error": None,
                "response": {"status_code": 200, "request_id": "r", "body": {
                    "id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": double.reply(line["body"]["messages"])}}],
                    "usage": {"prompt_tokens": 1000, "completion_tokens": 40, "total_tokens": 1040}}}}
               for i, line in enumerate(lines)]
    (tmp_path / "run" / "batch" / "openai-results-00000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    out = evaluate(*args)              # the endpoint is unreachable: nothing may be sent
    assert "read 3 batch results" in out and "0 calls" in out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    (cell,) = report["cells"]
    assert cell["value"] == 100.0 and cell["done"] == 3
    assert cell["cost_usd"] == pytest.approx(3 * (1000 * 0.15 + 40 * 0.60) / 1e6 * 0.5)   # batch: half price


def test_multilabel_variant_from_a_config_file(tmp_path):
    """CheXpert-like: several findings or none per image; demos answer with every finding."""
    root = tmp_path / "cxr"
    (root / "images").mkdir(parents=True)
    from evaluate_fixtures import _image
    rows = {"demo": [("d0.png", "1.0,0.0"), ("d1.png", "1.0,1.0"), ("d2.png", "0.0,0.0"), ("d3.png", "0.0,1.0")],
            "test": [("t0.png", "1.0,1.0"), ("t1.png", "0.0,0.0")]}
    for number, (side, items) in enumerate(rows.items()):
        (root / f"{side}.csv").write_text(",Edema,Pleural Effusion\n" + "".join(f"{n},{c}\n" for n, c in items))
        for i, (name, _) in enumerate(items):
            _image(root / "images" / name, 10 * number + i)
    config = tmp_path / "cxr.yaml"
    config.write_text("truth: cxr\nmodel: 'openai:m'\nendpoint: 'http://127.0.0.1:9/v1'\nshots: [1]\n"
                      "batch_size: [2]\nout: run\n")
    evaluate("--config", config, "--dry-run")
    task = load_manyicl(root)
    assert task.multilabel and [e.id for e in task.demos(1)] == ["d0.png", "d1.png"]
    assert [e.id for e in task.demos(2)] == ["d0.png", "d1.png", "d3.png"]   # d1 is both classes': taken once
    from isekai_gen.evaluate.prompts import manyicl_prompt
    prompt = manyicl_prompt(task, task.demos(2)[1:2], [task.test[1]])
    assert prompt.startswith("<<IMG>>" + LEAD + "Question: Which of the choices are present in the image above? "
                             "Answer with every choice that applies, separated by commas, or none.\n"
                             "Choices: ['Edema', 'Pleural Effusion']\nAnswer Choice: Edema, Pleural Effusion\n")
    assert "Answer Choice 1: [Your Answer Choices Here, separated by commas, or none, for Question 1]" in prompt
    assert len(read_jsonl(tmp_path / "run" / "plan.jsonl")) == 1


def test_torn_journal_line_is_cut_and_rows_are_validated(tmp_path):
    from isekai_gen.errors import UserError
    from isekai_gen.evaluate.journal import Journal, read_journal
    path = tmp_path / "journal.jsonl"
    row = {"key": "a" * 64, "cell": "c", "attempt": 0, "status": "answered", "retries": 0, "time": 1.0, "text": "x"}
    path.write_text(json.dumps(row) + "\n" + json.dumps(row)[:20])
    journal = Journal(path)
    journal.append({**row, "key": "b" * 64})
    journal.close()
    assert sorted(read_journal(path)) == ["a" * 64, "b" * 64]
    path.write_text(json.dumps({**row, "status": "maybe"}) + "\n")
    with pytest.raises(UserError, match="journal.jsonl:1"):
        read_journal(path)


def test_images_encoded_once_tiff_to_jpeg_and_resized_only_for_a_limit(tmp_path):
    from PIL import Image

    from isekai_gen.evaluate.images import ImageCache
    from isekai_gen.evaluate.providers.base import Limits
    tif, png = tmp_path / "a.tif", tmp_path / "b.png"
    Image.new("RGB", (40, 20), (10, 200, 30)).save(tif)
    Image.new("RGB", (40, 20), (10, 200, 30)).save(png)
    cache = ImageCache(Limits(None, None, None, None, max_image_side=20))
    first = cache.get(tif)
    assert cache.get(tif) is first and len(cache) == 1
    assert first.media_type == "image/jpeg" and (first.width, first.height) == (20, 10)
    assert [r["reason"] for r in cache.resized] == ["longest side 40 > 20"]
    untouched = ImageCache(Limits(None, None, None, None)).get(png)
    assert untouched.media_type == "image/png" and untouched.sha256 == sha_of(png)   # sent as its own bytes


def test_max_requests_stops_a_trial_run(tmp_path, split):
    root, truth = split
    with OpenAIDouble(truth) as double:
        out = evaluate("--truth", root, "--model", "openai:m", "--endpoint", double.base_url, "--shots", "0",
                       "--out", tmp_path / "run", "--concurrency", 1, "--max-requests", 2,
                       "--config", fast_config(tmp_path))   # a trial that did what it was asked: exit 0
    assert "trial: 2 requests sent (--max-requests), 10 of 12 still to ask" in out and len(double.bodies) == 2
    status = evaluate("status", tmp_path / "run").splitlines()[-1].split()
    assert status[1:5] == ["12", "2", "10", "0"]


def test_a_parameter_every_request_shares_is_refused_run_stops_then_retry_failed(tmp_path, split):
    root, truth = split
    args = ["--truth", root, "--model", "openai:m", "--shots", "0", "--out", tmp_path / "run", "--concurrency", 1,
            "--config", fast_config(tmp_path)]
    with OpenAIDouble(truth, faults=["400"] * 3) as double:
        out = evaluate(*args, "--endpoint", double.base_url, expect=1)
        assert "the first calls all failed permanently (HTTP 400" in out and len(double.bodies) == 3
        evaluate(*args, "--endpoint", double.base_url, "--retry-failed")
        assert len(double.bodies) == 3 + 12
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["cells"][0]["done"] == 12 and report["cells"][0]["value"] == 100.0


def test_episodes_jsonl_of_a_build_folder(tmp_path):
    from evaluate_fixtures import _image
    build = tmp_path / "out"
    truth, rows, number = {}, [], 0
    for concept in ("cactihog", "hedgehog"):
        for index in range(3):
            number += 1
            truth[_image(build / "images" / concept / f"{concept}-{index:05d}.png", number)] = concept
    for k, (query, label, other) in enumerate((("cactihog-00002", "cactihog", "hedgehog"),
                                               ("hedgehog-00002", "hedgehog", "cactihog"))):
        rows.append({"episode_id": f"isekai10-{label}-vs-{other}-000", "set": "ISEKAI-10", "query": query,
                     "query_image": f"images/{label}/{query}.png", "query_concept": label, "label": label,
                     "positive_label": "cactihog", "negative_label": "hedgehog", "positive_concept": "cactihog",
                     "negative_concept": "hedgehog", "group_id": "cactus-hedgehog",
                     "positive_support": ["cactihog-00000", "cactihog-00001"],
                     "negative_support": ["hedgehog-00000", "hedgehog-00001"], "max_shot": 2, "pair_index": 0,
                     "similarity": 1.0})
    (build / "episodes").mkdir()
    (build / "episodes" / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    wrong = {sha: "hedgehog" for sha, label in truth.items() if label == "cactihog"}   # every cactihog missed
    with OpenAIDouble(truth, wrong) as double:
        evaluate("--truth", build / "episodes" / "episodes.jsonl", "--model", "openai:m", "--endpoint",
                 double.base_url, "--shots", "0,2", "--out", tmp_path / "run", "--config", fast_config(tmp_path))
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [c["value"] for c in report["cells"]] == [50.0, 50.0]
    ids = {row["id"] for row in read_jsonl(tmp_path / "run" / "cells" / "shots-2_batch-1" / "predictions.jsonl")}
    assert ids == {"isekai10-cactihog-vs-hedgehog-000", "isekai10-hedgehog-vs-cactihog-000"}
    assert max(len(images_and_text(b["messages"])[0]) for b in double.bodies) == 5


def test_openai_token_estimate_and_body_shape():
    """OpenAI's documented tile examples: 1024x1024 high = 765 tokens; 2048x4096 high = 1105; low = 85."""
    from isekai_gen.evaluate.providers.openai import OpenAIProvider, image_tokens
    assert image_tokens(1024, 1024, "high") == 765
    assert image_tokens(2048, 4096, "high") == 1105
    assert image_tokens(4096, 4096, "low") == 85
    from isekai_gen.evaluate.providers.base import EvalRequest, Part, Turn
    request = EvalRequest("k" * 64, "c", ("a",), 1, "sys", (Turn("user", (Part(text="hi"),)),), 60, 0.0, "gpt-4o")
    assert "max_completion_tokens" in OpenAIProvider("gpt-4o").body(request)        # api.openai.com
    body = OpenAIProvider("m", "http://127.0.0.1:9/v1").body(request)               # an OpenAI-compatible server
    assert body["max_tokens"] == 60 and body["messages"][0] == {"role": "system", "content": "sys"}
    assert OpenAIProvider("gpt-4o").limits.context_tokens == 128_000
    assert OpenAIProvider("m", "http://127.0.0.1:9/v1").limits.max_images is None
