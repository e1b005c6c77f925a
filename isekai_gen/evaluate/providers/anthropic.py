"""`anthropic:MODEL` — Claude through the Messages API with the official `anthropic` SDK.

One `EvalRequest` becomes one `client.messages.create(model, max_tokens, system, messages)` call
(anthropic-sdk-python `resources/messages/messages.py`, `AsyncMessages.create`). Each turn is a
message whose content blocks keep the request's order: text parts as `{"type": "text", "text":
...}`, images as `{"type": "image", "source": {"type": "base64", "media_type": ..., "data": ...}}`
(the base64 text made once per image per run, passed through untouched). The system sentence is
the top-level `system` parameter, not a message.

No `temperature`: API version 2026-10-21, which SDK 2.x sends, answers 400 "Extra inputs are not
permitted" to `temperature` / `top_p` / `top_k` even at their defaults, and the SDK dropped the
parameters (`AsyncMessages.create` has none; Synthorai's 2026-10 test of the new version). The
request's temperature stays in its key (so runs stay comparable), is not sent, and the provider
logs that once.

Limits (Anthropic docs, "Vision" and "API overview / Request size limits", read 2026-12):
- 100 images per API request (for 200k-context models; later models take 600 — 100 is the
  safe bound for every model);
- 8000x8000 px per image, 2000x2000 px once a request has more than 20 images (many-shot
  requests always do, so 2000 px is the longest side we send);
- 5 MB per image — the API measures the base64 text ("image.source.base64: image exceeds 5 MB
  maximum: 6275800 bytes > 5242880 bytes", quoted in lobehub/lobehub#14711 and
  anthropics/claude-code#10612), so an encoded image may have at most 5242880 * 3 / 4 bytes (2026
  reports of a 10 MB cap exist; 5 MiB is safe either way);
- 32 MB per Messages request (413 `request_too_large` above), 256 MB per Message Batch;
- 200k-token context window.

Token estimate (dry run and budget): the docs' `tokens = (width px * height px) / 750` per image,
after the documented resize — an image whose long edge is over 1568 px, or that is over ~1,600
tokens (1.2 megapixels; the docs' table keeps 1092x1092 unresized), is first scaled down,
keeping its aspect ratio, until it fits — plus the text at ~3.5 characters per token (Claude's
tokenizer is denser than OpenAI's ~4; over-estimating keeps the budget check on the safe side).
Output is `max_tokens`, the worst case.

Errors (docs "Errors"): 429 `rate_limit_error`, 529 `overloaded_error`, 5xx `api_error`, 408,
timeouts and connection errors are `TransientError`, with the wait from `retry-after`(-ms);
400 `invalid_request_error`, 404 (unknown model), 413 and 422 are `PermanentError`, and so is a
reply with `stop_reason == "refusal"` (content policy). 401/402/403 (key, billing, permission)
fail the whole run in one line: every request would fail the same way.

Prompt caching (docs "Prompt caching"): a request whose demo block is marked (`cache_prefix`,
cache-friendly order) carries `cache_control: {"type": "ephemeral"}` on the block's last content
block, so every later request of the cell reads the block from the cache (5-minute TTL, writes
billed 1.25x and reads 0.1x the input price: `cache_write` / `cache_read` in the price table).
`usage.cache_creation_input_tokens` and `usage.cache_read_input_tokens` are read back.

Preflight: `client.models.retrieve(model)` (GET /v1/models/{id}): 404 stops the run in one line.

Message Batches (anthropic-sdk-python `resources/messages/batches.py`): `batches.create(requests=
[{"custom_id", "params"}])` (a request list read from our file), at most 100,000 requests and 256
MB per batch, `custom_id` matching `^[a-zA-Z0-9_-]{1,64}$`; `retrieve` / `results` stream
`MessageBatchIndividualResponse` lines.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

import anthropic

from ...errors import UserError
from ...fileio import atomic_open, dumps_canonical
from .base import BatchFormat, EvalRequest, Limits, PermanentError, Reply, SDKProvider, TransientError
from .retry_after import retry_after_seconds

log = logging.getLogger(__name__)

LIMITS = Limits(
    max_images=100,
    max_image_bytes=5 * 1024 * 1024 * 3 // 4,   # 5 MiB of base64
    max_request_bytes=32_000_000,
    context_tokens=200_000,
    max_image_side=2000,
)
RESIZE_LONG_EDGE = 1568       # px: longer images are scaled down by the API
RESIZE_PIXELS = 1600 * 750    # ~1,600 tokens: larger images are scaled down by the API
PIXELS_PER_TOKEN = 750
CHARS_PER_TOKEN = 3.5
TRANSIENT_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
RUN_STOPPING_STATUS = {401: "authentication failed", 402: "billing problem", 403: "permission denied"}
PERMANENT_BATCH_ERRORS = {"invalid_request_error", "not_found_error", "request_too_large",
                          "permission_error", "authentication_error", "billing_error"}


def image_tokens(width: int, height: int) -> int:
    """Anthropic's w*h/750, after the API's own downscale of large images."""
    scale = min(1.0, RESIZE_LONG_EDGE / max(width, height), math.sqrt(RESIZE_PIXELS / (width * height)))
    return math.ceil(int(width * scale) * int(height * scale) / PIXELS_PER_TOKEN)


def _content(parts, cache_after: int = 0) -> list[dict]:
    blocks = []
    for number, part in enumerate(parts, start=1):
        if part.image is not None:
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": part.image.media_type,
                                                       "data": part.image.data_b64}})
        else:
            blocks.append({"type": "text", "text": part.text})
        if number == cache_after:
            blocks[-1]["cache_control"] = {"type": "ephemeral"}
    return blocks


def message_params(request: EvalRequest) -> dict:
    """The `messages.create` keyword arguments — also the `params` of a Message Batches line."""
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": [{"role": turn.role, "content": _content(turn.parts, request.cache_prefix if i == 0 else 0)}
                     for i, turn in enumerate(request.turns)],
    }
    if request.system:
        params["system"] = request.system
    return params


def reply_from_message(message: dict, latency_s: float) -> Reply:
    """A Messages API `Message` (as JSON) -> Reply; a refusal is a permanent error."""
    if message.get("stop_reason") == "refusal":
        raise PermanentError(f"anthropic: the model refused (stop_reason refusal, message {message.get('id')})")
    content = message.get("content")
    usage = message.get("usage")
    if not isinstance(content, list) or not isinstance(usage, dict):
        raise TransientError("anthropic: reply without content or usage")
    text = "".join(block.get("text", "") for block in content if block.get("type") == "text")
    input_tokens = sum(usage.get(name) or 0 for name in
                       ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    return Reply(text=text, input_tokens=input_tokens, output_tokens=usage.get("output_tokens") or 0,
                 latency_s=latency_s, raw=message, cache_read_tokens=usage.get("cache_read_input_tokens") or 0,
                 cache_write_tokens=usage.get("cache_creation_input_tokens") or 0)


def _status_error(exc: anthropic.APIStatusError) -> Exception:
    status = exc.status_code
    message = getattr(exc, "api_message", None) or exc.message   # error.message of the body (SDK 2.x)
    detail = f"anthropic: HTTP {status} {getattr(exc, 'type', None) or 'error'}: {message}"
    if status in RUN_STOPPING_STATUS:
        return UserError(f"anthropic: {RUN_STOPPING_STATUS[status]} (HTTP {status}); check ANTHROPIC_API_KEY "
                         f"and the account: {message}")
    if status in TRANSIENT_STATUS or status >= 500:
        return TransientError(detail, retry_after_seconds(exc.response.headers))
    return PermanentError(detail)


class AnthropicProvider(SDKProvider):
    name = "anthropic"
    official_host = "api.anthropic.com"
    default_limits = LIMITS
    batch_format = BatchFormat("custom_id", 100_000, 256_000_000, re.compile(r"[a-zA-Z0-9_-]{1,64}"))

    def __init__(self, model: str, endpoint: str | None = None, *, timeout_s: float = 600.0):
        super().__init__(model, endpoint, timeout_s=timeout_s)
        self._told_temperature = False

    def make_client(self) -> anthropic.AsyncAnthropic:
        """The key comes from ANTHROPIC_API_KEY as the SDK reads it; the SDK never retries (the runner does)."""
        client = anthropic.AsyncAnthropic(base_url=self.endpoint, max_retries=0, timeout=self.timeout_s)
        if not (client.api_key or client.auth_token or getattr(client, "credentials", None)):
            raise UserError("anthropic: no credentials: set ANTHROPIC_API_KEY")
        return client

    async def preflight(self) -> str | None:
        try:
            await self.client().models.retrieve(self.model, timeout=min(30.0, self.timeout_s))
        except anthropic.APIStatusError as exc:
            if exc.status_code == 404 and self.own_api:   # a proxy may lack the endpoint: not checked
                raise UserError(f"anthropic: model {self.model!r} not found (HTTP 404); fix --model") from None
            error = _status_error(exc)
            if isinstance(error, UserError):
                raise error from None
            return None   # a proxy without the models endpoint: nothing checked
        except anthropic.APIConnectionError as exc:
            raise UserError(f"anthropic: cannot reach {self.endpoint or self.official_host} "
                            f"({type(exc).__name__}: {exc})") from None
        return f"{self.endpoint or self.official_host} knows {self.model}"

    def estimate_tokens(self, request: EvalRequest) -> tuple[int, int]:
        text = math.ceil(sum(len(t) for t in request.texts()) / CHARS_PER_TOKEN)
        return text + sum(image_tokens(i.width, i.height) for i in request.images()), request.max_tokens

    async def send(self, request: EvalRequest) -> Reply:
        if not self._told_temperature:
            self._told_temperature = True
            log.info("anthropic: the Messages API takes no temperature; temperature %s is not sent",
                     request.temperature)
        start = time.monotonic()
        try:
            message = await self.client().messages.create(**message_params(request))
        except anthropic.APIStatusError as exc:
            raise _status_error(exc) from None
        except anthropic.APIConnectionError as exc:   # timeouts included (APITimeoutError)
            raise TransientError(f"anthropic: {type(exc).__name__}: {exc}", connection=True) from None
        except (anthropic.APIResponseValidationError, ValueError) as exc:   # a body that did not parse
            raise TransientError(f"anthropic: unreadable reply ({type(exc).__name__})") from None
        return reply_from_message(message.model_dump(mode="json", exclude_none=True), time.monotonic() - start)

    def batch_line(self, request: EvalRequest) -> dict:
        """One Message Batches request: `{"custom_id", "params"}` (`batch_create_params.Request`)."""
        return {"custom_id": request.key, "params": message_params(request)}

    def parse_batch_result(self, line: dict) -> tuple[str, Reply | PermanentError]:
        """One line of a batch's results (`MessageBatchIndividualResponse`: `custom_id` + `result`
        of type succeeded / errored / canceled / expired). Raises TransientError for a request to
        send again (canceled, expired, or an `api_error` / `overloaded_error`), ValueError for a
        line that is not a result."""
        custom_id, result = line.get("custom_id"), line.get("result")
        if not isinstance(custom_id, str) or not isinstance(result, dict):
            raise ValueError("not a Message Batches result line (needs custom_id and result)")
        kind = result.get("type")
        if kind == "succeeded":
            try:
                return custom_id, reply_from_message(result.get("message") or {}, latency_s=0.0)
            except PermanentError as exc:
                return custom_id, exc
        if kind == "errored":
            error = (result.get("error") or {}).get("error") or {}
            detail = f"anthropic batch: {error.get('type')}: {error.get('message')}"
            if error.get("type") in PERMANENT_BATCH_ERRORS:
                return custom_id, PermanentError(detail)
            raise TransientError(detail)
        if kind in ("canceled", "expired"):
            raise TransientError(f"anthropic batch: request {kind}")
        raise ValueError(f"unknown Message Batches result type {kind!r}")


    def batch_backend(self) -> "AnthropicBatches":
        return AnthropicBatches(self.client())


class AnthropicBatches:
    """messages.batches.create(requests=...) / retrieve / results (anthropic-sdk-python)."""
    ended = {"ended"}
    sdk_errors = (anthropic.AnthropicError,)

    def __init__(self, client):
        self.client = client

    async def submit(self, path: Path, model: str) -> dict:
        with open(path, encoding="utf-8") as handle:
            requests = [json.loads(line) for line in handle if line.strip()]
        batch = await self.client.messages.batches.create(requests=requests)
        return {"id": batch.id, "status": batch.processing_status}

    async def status(self, job: dict) -> str:
        batch = await self.client.messages.batches.retrieve(job["id"])
        job["request_counts"] = batch.request_counts.model_dump()
        return batch.processing_status

    async def download(self, job: dict, folder: Path, shard: str) -> list[str]:
        name = f"anthropic-results-{shard}.jsonl"
        with atomic_open(folder / name, "w", encoding="utf-8", newline="\n") as handle:
            async for item in await self.client.messages.batches.results(job["id"]):
                handle.write(dumps_canonical(item.model_dump(mode="json", exclude_none=True)) + "\n")
        return [name]


def create(model: str, endpoint: str | None = None, **options) -> AnthropicProvider:
    return AnthropicProvider(model, endpoint, **options)
