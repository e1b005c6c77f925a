"""Anthropic and Gemini providers and batch files, through the real SDKs, against a loopback double.

No network: `ProviderDouble` (`provider_sdk_double.py`) is a test double on 127.0.0.1 that the
real `anthropic`, `google-genai` and `openai` clients talk to through their base URL. It records
the exact JSON each SDK sent and answers from a script, so the tests pin the wire format (content
blocks, their order, the system prompt), the usage fields, and the error mapping. Batch result
lines are written by hand from the providers' documented formats (each one cites its source).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("anthropic")
pytest.importorskip("google.genai")

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

from isekai_gen.errors import UserError  # noqa: E402
from isekai_gen.evaluate import batch  # noqa: E402
from isekai_gen.evaluate.images import encode_image  # noqa: E402
from isekai_gen.evaluate.providers import get_provider  # noqa: E402
from isekai_gen.evaluate.providers import anthropic as anthropic_provider  # noqa: E402
from isekai_gen.evaluate.providers import gemini as gemini_provider  # noqa: E402
from isekai_gen.evaluate.providers.base import (BatchFormat, EvalRequest, Limits, Part, PermanentError,  # noqa: E402
                                                Reply, TransientError, Turn)
from isekai_gen.evaluate.providers.retry_after import retry_after_seconds  # noqa: E402
from provider_sdk_double import CLAUDE_MESSAGE, GEMINI_RESPONSE, ProviderDouble  # noqa: E402


@pytest.fixture
def double(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-a-secret")
    monkeypatch.setenv("GEMINI_API_KEY", "test-key-not-a-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-a-secret")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    server = ProviderDouble()
    yield server
    server.close()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two real encoded images (a PNG 40x30 and a JPEG 20x20) as the runner's image cache makes them."""
    folder = tmp_path_factory.mktemp("images")
    Image.new("RGB", (40, 30), (200, 10, 10)).save(folder / "a.png")
    Image.new("RGB", (20, 20), (10, 200, 10)).save(folder / "b.jpg", quality=90)
    no_limits = Limits(None, None, None, None)
    return [encode_image(folder / name, no_limits)[0] for name in ("a.png", "b.jpg")]


def make_request(images, key="a" * 64, model="claude-test", system="You are a classifier.") -> EvalRequest:
    first, second = images
    turns = (Turn("user", (Part(image=first), Part(text="What is in the image above?"),
                           Part(text="Answer Choice: forest"), Part(image=second),
                           Part(text="Question 1: what is in this image?"))),
             Turn("assistant", (Part(text="Answer Choice 1: forest"),)),
             Turn("user", (Part(text="Again, please."),)))
    return EvalRequest(key=key, cell="shots-1_batch-1", ids=("q1",), seed=7, system=system, turns=turns,
                       max_tokens=60, temperature=0.0, model=model)


def run(coro):
    return asyncio.run(coro)


# --- Anthropic ----------------------------------------------------------------------------------------

def test_anthropic_sends_image_blocks_in_order_with_system_and_reads_usage(double, images):
    provider = get_provider("anthropic:claude-test", double.url)
    reply = run(provider.send(make_request(images)))
    method, path, headers, body = double.received[-1]
    first, second = images
    assert (method, path) == ("POST", "/v1/messages")
    assert "test-key-not-a-secret" in headers.get("Authorization", "") + headers.get("x-api-key", "")
    assert body == {
        "model": "claude-test", "max_tokens": 60, "system": "You are a classifier.",
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": first.data_b64}},
                {"type": "text", "text": "What is in the image above?"},
                {"type": "text", "text": "Answer Choice: forest"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": second.data_b64}},
                {"type": "text", "text": "Question 1: what is in this image?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Answer Choice 1: forest"}]},
            {"role": "user", "content": [{"type": "text", "text": "Again, please."}]}]}
    assert reply.text == "Answer Choice 1: forest\nConfidence Score 1: 0.9"
    assert (reply.input_tokens, reply.output_tokens) == (2095, 17)
    assert reply.raw["id"] == CLAUDE_MESSAGE["id"] and reply.latency_s > 0


@pytest.mark.parametrize("status, headers, error_type, expected, retry_after", [
    (429, {"retry-after": "7"}, "rate_limit_error", TransientError, 7.0),
    (529, {"retry-after-ms": "1500"}, "overloaded_error", TransientError, 1.5),
    (500, {}, "api_error", TransientError, None),
    (400, {}, "invalid_request_error", PermanentError, None),
    (404, {}, "not_found_error", PermanentError, None),
    (401, {}, "authentication_error", UserError, None),
])
def test_anthropic_error_mapping(double, images, status, headers, error_type, expected, retry_after):
    double.script.append((status, headers, {"type": "error", "error": {"type": error_type, "message": "nope"}}, 0.0))
    with pytest.raises(expected) as caught:
        run(get_provider("anthropic:claude-test", double.url).send(make_request(images)))
    assert len(double.received) == 1   # the SDK itself never retried
    if expected is TransientError:
        assert caught.value.retry_after_s == retry_after
    assert "test-key-not-a-secret" not in str(caught.value)


def wait_until_taken(double) -> None:
    """Under load the handler of a call that timed out may take its scripted reply late: wait for it,
    so the next call gets the next reply."""
    deadline = time.monotonic() + 30
    while double.script and time.monotonic() < deadline:
        time.sleep(0.01)


def test_anthropic_timeout_truncated_body_and_refusal(double, images):
    provider = get_provider("anthropic:claude-test", double.url, timeout_s=0.3)
    double.script.append((200, {}, CLAUDE_MESSAGE, 1.0))
    with pytest.raises(TransientError):
        run(provider.send(make_request(images)))
    wait_until_taken(double)
    patient = get_provider("anthropic:claude-test", double.url)   # no timeout can shift the script below
    double.script.append((200, {}, json.dumps(CLAUDE_MESSAGE).encode()[:40], 0.0))
    with pytest.raises(TransientError):
        run(patient.send(make_request(images)))
    double.script.append((200, {}, {**CLAUDE_MESSAGE, "stop_reason": "refusal", "content": []}, 0.0))
    with pytest.raises(PermanentError, match="refus"):
        run(patient.send(make_request(images)))


@pytest.mark.parametrize("spec", ["anthropic:claude-test", "gemini:gemini-2.5-flash"])
def test_a_missing_key_is_one_line_naming_the_variable(double, monkeypatch, images, spec):
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    provider = get_provider(spec, double.url)
    provider.estimate_tokens(make_request(images))   # a dry run needs no key
    with pytest.raises(UserError, match="_API_KEY"):
        run(provider.send(make_request(images)))
    assert double.received == []


def test_anthropic_token_estimate_follows_the_documented_formula(images):
    # The vision guide's table: 200x200 ~54 tokens, 1000x1000 ~1334, 1092x1092 ~1590 (no resize);
    # 2000x1000 is first scaled to fit 1568 px and ~1.2 megapixels.
    assert anthropic_provider.image_tokens(200, 200) == 54
    assert anthropic_provider.image_tokens(1000, 1000) == 1334
    assert anthropic_provider.image_tokens(1092, 1092) == 1590
    assert 1590 <= anthropic_provider.image_tokens(2000, 1000) <= 1600
    provider = get_provider("anthropic:claude-test")
    request = make_request(images)
    text = sum(len(t) for t in request.texts())
    assert provider.estimate_tokens(request) == (-(-text * 2 // 7) + 2 + 1, 60)   # 40x30 -> 2, 20x20 -> 1
    assert provider.limits.max_images == 100 and provider.limits.max_image_side == 2000


# --- Gemini -------------------------------------------------------------------------------------------

def test_gemini_sends_inline_parts_in_order_with_system_instruction(double, images):
    provider = get_provider("gemini:gemini-2.5-flash", double.url)
    reply = run(provider.send(make_request(images, model="gemini-2.5-flash")))
    method, path, headers, body = double.received[-1]
    first, second = images
    assert (method, path) == ("POST", "/v1beta/models/gemini-2.5-flash:generateContent")
    assert headers.get("x-goog-api-key") == "test-key-not-a-secret"

    def inline(image):
        # The SDK re-encodes the bytes as URL-safe base64 and spells the field mime_type; the
        # REST API's proto3 JSON parser takes both base64 alphabets and both field spellings.
        data = base64.urlsafe_b64encode(base64.b64decode(image.data_b64)).decode()
        return {"inlineData": {"data": data, "mime_type": image.media_type}}
    assert body == {
        "contents": [
            {"role": "user", "parts": [inline(first), {"text": "What is in the image above?"},
                                       {"text": "Answer Choice: forest"}, inline(second),
                                       {"text": "Question 1: what is in this image?"}]},
            {"role": "model", "parts": [{"text": "Answer Choice 1: forest"}]},
            {"role": "user", "parts": [{"text": "Again, please."}]}],
        "systemInstruction": {"parts": [{"text": "You are a classifier."}], "role": "user"},
        "generationConfig": {"maxOutputTokens": 60, "temperature": 0.0}}
    assert reply.text == "Answer Choice 1: river"
    assert (reply.input_tokens, reply.output_tokens) == (1290, 12)   # thinking tokens are billed as output
    assert reply.raw["usageMetadata"]["totalTokenCount"] == 1302


def test_gemini_error_mapping(double, images):
    provider = get_provider("gemini:gemini-2.5-flash", double.url)
    request = make_request(images, model="gemini-2.5-flash")
    exhausted = {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED",
                           "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]}}
    double.script.append((429, {}, exhausted, 0.0))
    with pytest.raises(TransientError) as caught:
        run(provider.send(request))
    assert caught.value.retry_after_s == 12.0
    double.script.append((503, {"retry-after": "3"}, {"error": {"code": 503, "status": "UNAVAILABLE",
                                                                "message": "overloaded"}}, 0.0))
    with pytest.raises(TransientError) as caught:
        run(provider.send(request))
    assert caught.value.retry_after_s == 3.0
    double.script.append((400, {}, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "bad"}}, 0.0))
    with pytest.raises(PermanentError, match="INVALID_ARGUMENT"):
        run(provider.send(request))
    double.script.append((200, {}, {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}}, 0.0))
    with pytest.raises(PermanentError, match="SAFETY"):
        run(provider.send(request))
    double.script.append((200, {}, GEMINI_RESPONSE, 1.0))
    with pytest.raises(TransientError):
        run(get_provider("gemini:gemini-2.5-flash", double.url, timeout_s=0.3).send(request))
    wait_until_taken(double)
    assert len(double.received) == 5   # no SDK retries


def test_gemini_token_estimate_uses_the_fixed_per_tile_count(images):
    assert gemini_provider.image_tokens("gemini-2.5-flash", 384, 384) == 258
    assert gemini_provider.image_tokens("gemini-2.5-flash", 1000, 500) == 2 * 258
    assert gemini_provider.image_tokens("gemini-2.5-flash", 2048, 2048) == 9 * 258
    assert gemini_provider.image_tokens("gemini-3-pro-preview", 64, 64) == 1120
    provider = get_provider("gemini:gemini-2.5-flash")
    request = make_request(images, model="gemini-2.5-flash")
    text = sum(len(t) for t in request.texts())
    assert provider.estimate_tokens(request) == (-(-text // 4) + 2 * 258, 60)


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after": "2.5"}) == 2.5
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0   # in the past
    assert retry_after_seconds({"retry-after": "soon"}) is None and retry_after_seconds(None) is None


# --- batch files --------------------------------------------------------------------------------------

PROVIDER_SPECS = {"anthropic": "anthropic:claude-test", "gemini": "gemini:gemini-2.5-flash", "openai": "openai:gpt-4o"}


@pytest.mark.parametrize("name", ["anthropic", "gemini", "openai"])
def test_request_files_round_trip_and_split(tmp_path, monkeypatch, images, name):
    if name == "openai":
        pytest.importorskip("openai")
    provider = get_provider(PROVIDER_SPECS[name])
    requests = [make_request(images, key=f"{i:064x}", model=PROVIDER_SPECS[name].partition(":")[2]) for i in range(5)]
    fmt = provider.batch_format
    monkeypatch.setattr(provider, "batch_format", BatchFormat(fmt.id_field, 2, None, fmt.id_pattern))
    paths = batch.write_request_files(provider, requests + requests[:1], tmp_path)   # a duplicate key goes once
    assert [p.name for p in paths] == [f"{name}-requests-0000{i}.jsonl" for i in range(3)]
    lines = [json.loads(line) for p in paths for line in p.read_text().splitlines()]
    assert lines == [json.loads(json.dumps(provider.batch_line(r))) for r in requests]
    if name == "anthropic":   # Message Batches: {"custom_id", "params"}; params = messages.create kwargs
        assert set(lines[0]) == {"custom_id", "params"} and lines[0]["params"]["system"] == "You are a classifier."
        assert lines[0]["params"]["messages"][0]["content"][0]["source"]["type"] == "base64"
    elif name == "gemini":    # Gemini batch input file: {"key", "request": GenerateContentRequest}
        assert set(lines[0]) == {"key", "request"}
        assert lines[0]["request"]["contents"][0]["parts"][0]["inlineData"]["mimeType"] == "image/png"
        assert lines[0]["request"]["systemInstruction"] == {"parts": [{"text": "You are a classifier."}]}
    else:                     # OpenAI Batch input: {"custom_id", "method", "url", "body"}
        assert {k: lines[0][k] for k in ("method", "url")} == {"method": "POST", "url": "/v1/chat/completions"}
    state = json.loads((tmp_path / "batch.json").read_text())
    assert state["files"] == [p.name for p in paths] and state["requests"] == 5
    # fewer requests now: the surplus files of the earlier write are removed
    assert len(batch.write_request_files(provider, requests[:2], tmp_path)) == 1
    assert sorted(p.name for p in tmp_path.glob(f"{name}-requests-*")) == [f"{name}-requests-00000.jsonl"]


def test_a_request_over_the_batch_limit_leaves_the_folder_as_it_was(tmp_path, monkeypatch, images):
    provider = get_provider("anthropic:claude-test")
    requests = [make_request(images, key=f"{i:064x}") for i in range(3)]
    first = batch.write_request_files(provider, requests, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    line_bytes = len(first[0].read_bytes()) // 3
    monkeypatch.setattr(provider, "batch_format", BatchFormat("custom_id", None, line_bytes - 10))
    with pytest.raises(UserError, match=r"cell shots-1_batch-1: one anthropic batch request is \d+ bytes"):
        batch.write_request_files(provider, requests[:1], tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before   # no staging folder left either


def test_anthropic_custom_id_rule_is_enforced(tmp_path, images):
    provider = get_provider("anthropic:claude-test")
    with pytest.raises(ValueError, match="id rule"):
        batch.write_request_files(provider, [make_request(images, key="not/a:valid id")], tmp_path)


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_anthropic_result_file(tmp_path):
    # Lines as in the Message Batches guide ("Retrieving batch results") and the
    # MessageBatchIndividualResponse type: succeeded / errored / expired.
    keys = [f"{i:064x}" for i in range(4)]
    path = write_lines(tmp_path / "anthropic-results-00000.jsonl", [
        {"custom_id": keys[0], "result": {"type": "succeeded", "message": CLAUDE_MESSAGE}},
        {"custom_id": keys[1], "result": {"type": "errored", "error": {"type": "error", "error": {
            "type": "invalid_request_error", "message": "max_tokens: Field required"}}}},
        {"custom_id": keys[2], "result": {"type": "expired"}},
        {"custom_id": keys[3], "result": {"type": "errored", "error": {"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}}}}])
    results = batch.read_results(get_provider("anthropic:claude-test"), [path], set(keys))
    (key0, reply), (key1, error) = results.records
    assert key0 == keys[0] and isinstance(reply, Reply) and (reply.input_tokens, reply.output_tokens) == (2095, 17)
    assert key1 == keys[1] and isinstance(error, PermanentError) and "max_tokens" in str(error)
    assert set(results.resend) == {keys[2], keys[3]}


def test_gemini_result_file(tmp_path):
    # Lines as in the Gemini Batch API guide ("Retrieving results": each line has the request's
    # key and a GenerateContentResponse `response`, or a google.rpc.Status `error`).
    keys = ["request-1", "request-2", "request-3"]
    path = write_lines(tmp_path / "gemini-results-00000.jsonl", [
        {"key": "request-1", "response": GEMINI_RESPONSE},
        {"key": "request-2", "error": {"code": 3, "message": "Request contains an invalid argument.",
                                       "status": "INVALID_ARGUMENT"}},
        {"key": "request-3", "error": {"code": 8, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}])
    results = batch.read_results(get_provider("gemini:gemini-2.5-flash"), [path], set(keys))
    (key0, reply), (key1, error) = results.records
    assert (key0, reply.text, reply.output_tokens) == ("request-1", "Answer Choice 1: river", 12)
    assert key1 == "request-2" and isinstance(error, PermanentError)
    assert list(results.resend) == ["request-3"]


def test_openai_result_file(tmp_path):
    pytest.importorskip("openai")
    # Output and error lines as in the OpenAI Batch guide ("Retrieve the results").
    completion = {"id": "chatcmpl-abc", "object": "chat.completion", "created": 1711652795, "model": "gpt-4o",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Answer Choice 1: beach"},
                               "logprobs": None, "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 1200, "completion_tokens": 9, "total_tokens": 1209}}
    out = write_lines(tmp_path / "openai-results-00000.jsonl", [
        {"id": "batch_req_123", "custom_id": "k1", "response": {"status_code": 200, "request_id": "req_123",
                                                                "body": completion}, "error": None}])
    err = write_lines(tmp_path / "openai-errors-00000.jsonl", [
        {"id": "batch_req_456", "custom_id": "k2", "response": {"status_code": 400, "request_id": "req_456", "body": {
            "error": {"message": "Invalid image", "type": "invalid_request_error"}}}, "error": None}])
    results = batch.read_results(get_provider("openai:gpt-4o"), batch.result_files(tmp_path, "openai"), {"k1", "k2"})
    (key0, reply), (key1, error) = results.records
    assert (key0, reply.text, reply.input_tokens) == ("k1", "Answer Choice 1: beach", 1200)
    assert key1 == "k2" and isinstance(error, PermanentError) and "Invalid image" in str(error)
    assert [out, err] == batch.result_files(tmp_path, "openai")


def test_result_files_refuse_foreign_duplicate_and_malformed_lines(tmp_path):
    provider = get_provider("anthropic:claude-test")
    line = {"custom_id": "k1", "result": {"type": "succeeded", "message": CLAUDE_MESSAGE}}
    foreign = write_lines(tmp_path / "foreign.jsonl", [line])
    with pytest.raises(UserError, match=r"foreign.jsonl:1: .*did not make"):
        batch.read_results(provider, [foreign], {"k2"})
    twice = write_lines(tmp_path / "twice.jsonl", [line, line])
    with pytest.raises(UserError, match=r"twice.jsonl:2: second result"):
        batch.read_results(provider, [twice])
    broken = write_lines(tmp_path / "broken.jsonl", [line, '{"custom_id": "k3", "res'])
    with pytest.raises(UserError, match=r"broken.jsonl:2: not a anthropic batch result"):
        batch.read_results(provider, [broken])
    wrong = write_lines(tmp_path / "wrong.jsonl", [{"key": "k4", "response": GEMINI_RESPONSE}])
    with pytest.raises(UserError, match=r"wrong.jsonl:1"):
        batch.read_results(provider, [wrong])


def test_anthropic_batch_live_submit_poll_and_read_back(double, tmp_path, images):
    endpoint = double.url
    provider = get_provider("anthropic:claude-test", endpoint)
    requests = [make_request(images, key=f"{i:064x}") for i in range(3)]
    batch.write_request_files(provider, requests, tmp_path)
    jobs = run(batch.submit(tmp_path, endpoint))
    assert list(jobs) == ["anthropic-requests-00000.jsonl"]
    sent = double.batches[jobs["anthropic-requests-00000.jsonl"]["id"]]["requests"]
    assert sent == [provider.batch_line(r) for r in requests]
    assert run(batch.submit(tmp_path, endpoint)) == jobs and len(double.batches) == 1   # never submitted twice
    jobs = run(batch.poll(tmp_path, endpoint, wait=True, interval_s=0.01))
    job = jobs["anthropic-requests-00000.jsonl"]
    assert job["status"] == "ended" and job["results"] == ["anthropic-results-00000.jsonl"]
    results = batch.read_results(provider, batch.result_files(tmp_path, "anthropic"), {r.key for r in requests})
    assert sorted(k for k, _ in results.records) == sorted(r.key for r in requests)
    assert all(isinstance(reply, Reply) and reply.output_tokens == 17 for _, reply in results.records)
    with pytest.raises(UserError, match="already submitted"):
        batch.write_request_files(provider, requests, tmp_path)


def test_a_refused_batch_submission_is_one_line(double, tmp_path, images):
    endpoint = double.url
    provider = get_provider("anthropic:claude-test", endpoint)
    batch.write_request_files(provider, [make_request(images)], tmp_path)
    double.script.append((400, {}, {"type": "error", "error": {"type": "invalid_request_error",
                                                               "message": "requests: too many"}}, 0.0))
    with pytest.raises(UserError, match=r"batch: submitting .*anthropic-requests-00000.jsonl failed: .*too many"):
        run(batch.submit(tmp_path, endpoint))
    assert json.loads((tmp_path / "batch.json").read_text())["jobs"] == {}   # nothing recorded, nothing paid


def test_openai_batch_live_upload_create_poll_and_read_back(double, tmp_path, images):
    pytest.importorskip("openai")
    endpoint = f"{double.url}/v1"
    provider = get_provider("openai:gpt-4o", endpoint)
    requests = [make_request(images, key=f"{i:064x}", model="gpt-4o") for i in range(2)]
    batch.write_request_files(provider, requests, tmp_path)
    jobs = run(batch.submit(tmp_path, endpoint))
    job = jobs["openai-requests-00000.jsonl"]
    assert double.batches[job["id"]]["body"] == {"input_file_id": job["input_file_id"], "endpoint":
                                                 "/v1/chat/completions", "completion_window": "24h"}
    assert double.files[job["input_file_id"]] == [provider.batch_line(r) for r in requests]
    jobs = run(batch.poll(tmp_path, endpoint))
    assert jobs["openai-requests-00000.jsonl"]["results"] == ["openai-results-00000.jsonl"]
    results = batch.read_results(provider, batch.result_files(tmp_path, "openai"), {r.key for r in requests})
    assert [(k, reply.text) for k, reply in results.records] == [(r.key, "Answer Choice 1: beach") for r in requests]


def test_gemini_batch_live_upload_create_poll_and_read_back(double, tmp_path, images):
    endpoint = double.url
    provider = get_provider("gemini:gemini-2.5-flash", endpoint)
    requests = [make_request(images, key=f"{i:064x}", model="gemini-2.5-flash") for i in range(2)]
    batch.write_request_files(provider, requests, tmp_path)
    jobs = run(batch.submit(tmp_path, endpoint))
    job = jobs["gemini-requests-00000.jsonl"]
    assert double.files[job["input_file"]] == [json.loads(json.dumps(provider.batch_line(r))) for r in requests]
    assert double.batches[job["id"]]["model"] == "gemini-2.5-flash"
    jobs = run(batch.poll(tmp_path, endpoint))
    assert jobs["gemini-requests-00000.jsonl"]["results"] == ["gemini-results-00000.jsonl"]
    results = batch.read_results(provider, batch.result_files(tmp_path, "gemini"), {r.key for r in requests})
    assert [(k, reply.text) for k, reply in results.records] == [(r.key, "Answer Choice 1: river") for r in requests]


def test_preflight_asks_for_the_model_before_any_call(double):
    provider = get_provider("anthropic:claude-test", double.url)
    double.script.append((200, {}, {"type": "model", "id": "claude-test", "display_name": "Claude test",
                                    "created_at": "2025-01-01T00:00:00Z"}, 0.0))
    assert run(provider.preflight()) == f"{double.url} knows claude-test"
    assert double.received[-1][:2] == ("GET", "/v1/models/claude-test")
    assert run(provider.preflight()) is None   # a proxy without the models endpoint (404): nothing checked
    double.script.append((401, {}, {"type": "error", "error": {"type": "authentication_error", "message": "bad"}}, 0.0))
    with pytest.raises(UserError, match="anthropic: authentication failed"):
        run(provider.preflight())
