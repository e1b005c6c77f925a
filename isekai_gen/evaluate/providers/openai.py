"""`openai:MODEL`: Chat Completions through the official `openai` SDK (`AsyncOpenAI`).

With `--endpoint URL` the same code drives any OpenAI-compatible server (vLLM, SGLang, TGI,
Ollama, LM Studio, Gemini's compatibility endpoint): `base_url=URL`. The key comes from
`OPENAI_API_KEY` as the SDK reads it; a local endpoint without one gets the placeholder `EMPTY`
(what vLLM's own examples pass), which is not a credential.

Content format (matched against ManyICL's `LMM.py` `GPT4VAPI` and the OpenAI vision guide):
a user turn is a list of `{"type": "text"}` and `{"type": "image_url", "image_url": {"url":
"data:<media type>;base64,<data>", "detail": ...}}` parts; an assistant turn is its text. Batch
lines follow the OpenAI Batch API input format (`custom_id`, `method`, `url`, `body`) and results
its output format (`custom_id`, `response.status_code`, `response.body`, `error`).

The output cap is sent as `max_completion_tokens` to api.openai.com (reasoning models refuse
`max_tokens`) and as `max_tokens` to other endpoints. Reasoning models also refuse temperature 0:
set `temperature: 1` in the run config for them.

Token estimates: text ~ 4 characters per token (no tokenizer is needed for a budget); images by
OpenAI's tile formula (`detail: low` = 85; otherwise fit in 2048x2048, shortest side to 768,
85 + 170 per 512-pixel tile). Limits of api.openai.com (vision guide): 500 images and 50 MB per
request; context by model. Limits of another endpoint are unknown unless the run config's
`limits:` gives them.

Prompt caching (OpenAI "Prompt caching" guide): automatic for prompts over 1,024 tokens whose
prefix was seen recently; a request whose demo block is marked (`cache_prefix`, cache-friendly
order) carries `prompt_cache_key` = a hash of that block, which routes the requests of one cell
to the same cache (sent only to api.openai.com: other servers may refuse unknown fields). Cached
input tokens are read from `usage.prompt_tokens_details.cached_tokens`.

Preflight: `GET /models` (`client.models.list()`); a server that answers 404 has no list and is
not checked; one that lists models but not this one stops the run before anything is spent.

Batch API (openai-python `resources/batches.py`, "Batch API" guide): input lines `{"custom_id",
"method": "POST", "url": "/v1/chat/completions", "body"}`, at most 50,000 requests and 200 MB per
file; `files.create(purpose="batch")` + `batches.create` / `retrieve` + `files.content`; results
`{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}` in the output
and error files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import openai
from openai.types.chat import ChatCompletion

from ...errors import UserError
from ...fileio import atomic_write_bytes
from .base import BatchFormat, EvalRequest, Limits, PermanentError, Reply, SDKProvider, TransientError
from .retry_after import retry_after_seconds

CONTEXT_TOKENS = {"gpt-4o": 128_000, "gpt-4o-mini": 128_000, "gpt-4-turbo": 128_000, "gpt-4.1": 1_047_576,
                  "gpt-4.1-mini": 1_047_576, "gpt-4.1-nano": 1_047_576, "gpt-5": 400_000}
OPENAI_LIMITS = dict(max_images=500, max_image_bytes=20 * 1024 * 1024, max_request_bytes=50 * 1024 * 1024)
RETRYABLE_STATUS = {408, 409, 429}
FATAL_STATUS = {401: "authentication failed (check OPENAI_API_KEY)", 403: "permission denied for this key",
                404: "model or endpoint not found"}


def _longest_prefix(table: dict, model: str):
    matches = [name for name in table if model == name or model.startswith(name + "-")]
    return table[max(matches, key=len)] if matches else None


def image_tokens(width: int, height: int, detail: str) -> int:
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    return 85 + 170 * math.ceil(width / 512) * math.ceil(height / 512)


class OpenAIProvider(SDKProvider):
    name = "openai"
    official_host = "api.openai.com"
    batch_format = BatchFormat("custom_id", 50_000, 200_000_000)

    def __init__(self, model: str, endpoint: str | None = None, *, detail: str = "auto", timeout_s: float = 600.0,
                 api_seed: int | None = None):
        if detail not in ("auto", "low", "high"):
            raise UserError(f"openai provider: detail must be auto, low or high, got {detail!r}")
        super().__init__(model, endpoint, timeout_s=timeout_s)
        self.detail, self.api_seed = detail, api_seed
        known = dict(OPENAI_LIMITS, context_tokens=_longest_prefix(CONTEXT_TOKENS, model)) if self.own_api else {}
        fields = {name: None for name in ("max_images", "max_image_bytes", "max_request_bytes", "context_tokens")}
        self.limits = Limits(**{**fields, **known})
        self._urls: dict[str, str] = {}   # image sha256 -> data URL, built once per run
        self._cache_keys: dict[tuple, str] = {}

    # --- request shape ---------------------------------------------------------------------

    def _url(self, image) -> str:
        url = self._urls.get(image.sha256)
        if url is None:
            url = self._urls[image.sha256] = f"data:{image.media_type};base64,{image.data_b64}"
        return url

    def messages(self, request: EvalRequest) -> list[dict]:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        for turn in request.turns:
            if turn.role == "assistant":
                messages.append({"role": "assistant", "content": "".join(p.text for p in turn.parts)})
                continue
            content = [{"type": "text", "text": p.text} if p.image is None else
                       {"type": "image_url", "image_url": {"url": self._url(p.image), "detail": self.detail}}
                       for p in turn.parts]
            messages.append({"role": turn.role, "content": content})
        return messages

    def body(self, request: EvalRequest) -> dict:
        # api.openai.com's current name for the cap (reasoning models refuse `max_tokens`);
        # OpenAI-compatible servers (vLLM, SGLang, TGI, Ollama) all read `max_tokens`.
        cap = "max_tokens" if self.endpoint else "max_completion_tokens"
        body = {"model": request.model, "messages": self.messages(request), cap: request.max_tokens,
                "temperature": request.temperature}
        if self.api_seed is not None:
            body["seed"] = self.api_seed
        if request.cache_prefix and self.own_api:
            body["prompt_cache_key"] = self._cache_key(request)
        return body

    def _cache_key(self, request: EvalRequest) -> str:
        """One key per demo block (images and texts by hash), so a cell's requests share a cache."""
        head = request.turns[0].parts[:request.cache_prefix]
        ident = (request.cell, request.cache_prefix, id(head[0]))
        if ident not in self._cache_keys:
            digest = hashlib.sha256()
            for part in head:
                digest.update((part.image.sha256 if part.image is not None else part.text).encode())
            self._cache_keys[ident] = "isekai-" + digest.hexdigest()[:32]
        return self._cache_keys[ident]

    def estimate_tokens(self, request: EvalRequest) -> tuple[int, int]:
        text = sum(len(t) for t in request.texts())
        images = sum(image_tokens(i.width, i.height, self.detail) for i in request.images())
        return math.ceil(text / 4) + images + 4 * (len(request.turns) + 1), request.max_tokens

    # --- live calls --------------------------------------------------------------------------

    def make_client(self) -> openai.AsyncOpenAI:
        api_key = os.environ.get("OPENAI_API_KEY") or ("EMPTY" if self.endpoint else None)
        if api_key is None:
            raise UserError("openai provider: set OPENAI_API_KEY (or pass --endpoint for a local server)")
        return openai.AsyncOpenAI(api_key=api_key, base_url=self.endpoint, max_retries=0, timeout=self.timeout_s)

    async def preflight(self) -> str | None:
        where = self.endpoint or "api.openai.com"
        try:
            page = await self.client().models.list(timeout=min(30.0, self.timeout_s))
        except openai.APIStatusError as exc:
            if exc.status_code in (404, 405, 501):
                return None   # no models list on this server: nothing to check
            raise self._status_error(exc.status_code, exc.message, exc.response.headers) if \
                exc.status_code in FATAL_STATUS else UserError(f"openai provider ({where}): models list answered "
                                                               f"HTTP {exc.status_code}: {exc.message}") from None
        except (openai.APIResponseValidationError, ValueError):
            return None   # a list we cannot read: nothing checked
        except openai.APIConnectionError as exc:
            raise UserError(f"openai provider: cannot reach {where} ({type(exc).__name__}: {exc}); "
                            "check --endpoint / OPENAI_BASE_URL and that the server is up") from None
        served = [model.id for model in page.data]
        if self.model not in served:
            shown = ", ".join(served[:8]) + (", ..." if len(served) > 8 else "")
            raise UserError(f"openai provider ({where}): model {self.model!r} is not served there "
                            f"(models: {shown or 'none'}); fix --model")
        return f"{where} serves {self.model}"

    async def send(self, request: EvalRequest) -> Reply:
        started = time.monotonic()
        try:
            # The SDK's documented way to post a prepared body (README "Making custom/undocumented
            # requests"): `chat.completions.create` would first walk every content part of the
            # messages through its TypedDict transform, ~16 ms per 9-image request, worse per demo.
            completion = await self.client().post("/chat/completions", cast_to=ChatCompletion,
                                                  body=self.body(request))
        except openai.APIStatusError as exc:
            raise self._status_error(exc.status_code, exc.message, exc.response.headers) from None
        except openai.APIConnectionError as exc:   # includes APITimeoutError
            raise TransientError(f"{type(exc).__name__}: {exc}", connection=True) from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError) as exc:
            raise TransientError(f"unparsable response ({type(exc).__name__})") from None
        latency = time.monotonic() - started
        return self._reply(completion.model_dump(mode="json"), latency, request)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _status_error(self, status: int, message: str, headers=None) -> Exception:
        if status in FATAL_STATUS:
            return UserError(f"openai provider ({self.endpoint or 'api.openai.com'}): HTTP {status}: "
                             f"{FATAL_STATUS[status]}")
        if status in RETRYABLE_STATUS or status >= 500:
            return TransientError(f"HTTP {status}: {message}", retry_after_seconds(headers))
        return PermanentError(f"HTTP {status}: {message}")

    def _reply(self, raw: dict, latency: float, request: EvalRequest | None) -> Reply:
        choices = raw.get("choices") or []
        if not choices:
            raise TransientError("response without choices")
        choice = choices[0]
        if choice.get("finish_reason") == "content_filter":
            raise PermanentError("content_filter: the reply was withheld by the provider's content policy")
        text = (choice.get("message") or {}).get("content") or ""
        usage = raw.get("usage") or {}
        if "prompt_tokens" not in usage and request is not None:
            # some servers omit usage: estimate what was asked and what came back (~4 characters a token)
            usage = {"prompt_tokens": self.estimate_tokens(request)[0],
                     "completion_tokens": math.ceil(len(text) / 4)}
            raw = {**raw, "usage_estimated": True}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        return Reply(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), latency, raw,
                     cache_read_tokens=int(cached))

    # --- batch files ---------------------------------------------------------------------------

    def batch_line(self, request: EvalRequest) -> dict:
        return {"custom_id": request.key, "method": "POST", "url": "/v1/chat/completions", "body": self.body(request)}

    def parse_batch_result(self, line: dict) -> tuple[str, Reply | PermanentError]:
        key = line.get("custom_id")
        if not isinstance(key, str):
            raise UserError("openai batch result line without a string custom_id")
        error, response = line.get("error"), line.get("response") or {}
        if error:
            return key, PermanentError(f"{error.get('code')}: {error.get('message')}")
        status = response.get("status_code", 200)
        body = response.get("body") or {}
        if status != 200:
            message = (body.get("error") or {}).get("message", "") if isinstance(body, dict) else ""
            return key, PermanentError(f"HTTP {status}: {message}")
        try:
            return key, self._reply(body, 0.0, None)
        except (TransientError, PermanentError) as exc:
            return key, PermanentError(str(exc))


    def batch_backend(self) -> "OpenAIBatches":
        return OpenAIBatches(self.client())


class OpenAIBatches:
    """files.create(purpose="batch") + batches.create / retrieve + files.content (openai-python)."""
    ended = {"completed", "failed", "expired", "cancelled"}
    sdk_errors = (openai.OpenAIError,)

    def __init__(self, client):
        self.client = client

    async def submit(self, path: Path, model: str) -> dict:
        with open(path, "rb") as handle:
            uploaded = await self.client.files.create(file=handle, purpose="batch")
        batch = await self.client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                                 completion_window="24h")
        return {"id": batch.id, "input_file_id": uploaded.id, "status": batch.status}

    async def status(self, job: dict) -> str:
        batch = await self.client.batches.retrieve(job["id"])
        job.update(output_file_id=batch.output_file_id, error_file_id=batch.error_file_id)
        if batch.errors:   # the input file failed validation: no request was run
            job["errors"] = batch.errors.model_dump(mode="json", exclude_none=True)
        return batch.status

    async def download(self, job: dict, folder: Path, shard: str) -> list[str]:
        names = []
        for kind, file_id in (("results", job.get("output_file_id")), ("errors", job.get("error_file_id"))):
            if file_id:
                name = f"openai-{kind}-{shard}.jsonl"
                atomic_write_bytes(folder / name, (await self.client.files.content(file_id)).content)
                names.append(name)
        return names


def create(model: str, endpoint: str | None = None, **options) -> OpenAIProvider:
    return OpenAIProvider(model, endpoint, **options)
