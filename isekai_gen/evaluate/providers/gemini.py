"""`gemini:MODEL` — Gemini through `generateContent` with the official `google-genai` SDK.

One `EvalRequest` becomes one `client.aio.models.generate_content(model, contents, config)` call
(googleapis/python-genai `models.py`, `AsyncModels.generate_content`): each turn is a `Content`
(role "user", or "model" for the request's "assistant" turns) whose parts keep the request's
order — `{"text": ...}` and `{"inlineData": {"mimeType": ..., "data": ...}}` — and the system
sentence is `GenerateContentConfig.system_instruction`; `max_output_tokens` and `temperature`
complete the config. `Blob.data` is bytes, so each image's base64 is decoded once per run
(cached by sha256) and the SDK re-encodes it per request (URL-safe base64, which the API's proto3
JSON parser accepts like the standard alphabet that batch files use). The SDK never retries
(`HttpOptions.retry_options` unset); `--endpoint` is `HttpOptions.base_url` (tests, proxies). The
key is GEMINI_API_KEY / GOOGLE_API_KEY as the SDK reads them.

Limits (Gemini API docs "Image understanding" / "Batch API", Vertex AI "Image understanding"
table, read 2026-12): inline image data only while the whole request stays under 20 MB; 3,000
images per request (Gemini 2.x/3 on Vertex; the Developer API says 3,600 — 3,000 is the safe
bound); no pixel limit (the service scales images itself); a 1,048,576-token context window.

Token estimate (docs "Understand and count tokens"): an image with both sides <= 384 px is 258
tokens; a larger one is cropped and scaled into 768x768 tiles of 258 tokens each. Gemini 3 models
bill images by `media_resolution` instead, 1,120 tokens at the default (Vertex AI table "Default
resolution tokens: 1120"). Text at ~4 characters per token (the docs' rule of thumb); output is
`max_output_tokens`, the worst case.

Errors: 429 RESOURCE_EXHAUSTED, 408, 5xx, timeouts and connection errors are `TransientError`
(the wait from `Retry-After`, else the body's `google.rpc.RetryInfo.retryDelay`); other 4xx
(400 INVALID_ARGUMENT, 404 unknown model, 413) and a blocked prompt or candidate
(`promptFeedback.blockReason`, `finishReason` SAFETY / PROHIBITED_CONTENT / ...) are
`PermanentError`; 401/403 (key, permission) fail the whole run in one line.

Prompt caching: Gemini 2.5+ caches implicitly (docs "Context caching": "implicit caching is
enabled by default"; a common prefix placed first is a cache hit), so the cache-friendly order
is all it needs; cached tokens come back as `usageMetadata.cachedContentTokenCount`.

Preflight: `client.aio.models.get(model=...)`; 404 stops the run in one line.

Batch mode (googleapis/python-genai `batches.py` `AsyncBatches.create(model, src="files/...")`,
"Batch API" guide): input lines `{"key", "request": GenerateContentRequest}`, at most 2 GB per
file; `files.upload` + `batches.create` / `get` + `files.download`; result lines `{"key",
"response"}` or `{"key", "error": google.rpc.Status}`.
"""

from __future__ import annotations

import base64
import math
import time
from pathlib import Path

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from ...errors import UserError
from ...fileio import atomic_write_bytes
from .base import BatchFormat, EncodedImage, EvalRequest, Limits, PermanentError, Reply, SDKProvider, TransientError
from .retry_after import google_retry_delay, retry_after_seconds

LIMITS = Limits(max_images=3000, max_image_bytes=None, max_request_bytes=20_000_000,
                context_tokens=1_048_576, max_image_side=None)
SMALL_IMAGE_SIDE = 384
TILE_SIDE = 768
TOKENS_PER_TILE = 258
GEMINI3_IMAGE_TOKENS = 1120
CHARS_PER_TOKEN = 4.0
BLOCKED_FINISH = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
TRANSIENT_STATUS = {408, 429}
RUN_STOPPING_STATUS = {401: "authentication failed", 403: "permission denied"}
# google.rpc.Code of a batch line's error: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE
RETRYABLE_RPC_CODES = {4, 8, 10, 13, 14}


def _network_errors() -> tuple[type[BaseException], ...]:
    """Transport failures of whichever HTTP stack the SDK picked (aiohttp when installed, else httpx2)."""
    found: list[type[BaseException]] = [TimeoutError, ConnectionError]
    try:
        import aiohttp
        found.append(aiohttp.ClientError)
    except ImportError:
        pass
    try:
        import httpx2
        found.append(httpx2.TransportError)
    except ImportError:
        pass
    return tuple(found)


NETWORK_ERRORS = _network_errors()


def image_tokens(model: str, width: int, height: int) -> int:
    if model.startswith("gemini-3"):
        return GEMINI3_IMAGE_TOKENS
    if width <= SMALL_IMAGE_SIDE and height <= SMALL_IMAGE_SIDE:
        return TOKENS_PER_TILE
    return math.ceil(width / TILE_SIDE) * math.ceil(height / TILE_SIDE) * TOKENS_PER_TILE


def contents(request: EvalRequest, image_data) -> list[dict]:
    """The request's turns as REST `Content` objects; `image_data(EncodedImage)` gives the
    `inlineData.data` value (base64 text for a batch file, bytes for the SDK)."""
    out = []
    for turn in request.turns:
        parts = [{"inlineData": {"mimeType": p.image.media_type, "data": image_data(p.image)}}
                 if p.image is not None else {"text": p.text} for p in turn.parts]
        out.append({"role": "model" if turn.role == "assistant" else "user", "parts": parts})
    return out


def _generation_config(request: EvalRequest) -> dict:
    return {"maxOutputTokens": request.max_tokens, "temperature": request.temperature}


def reply_from_response(response: dict, latency_s: float) -> Reply:
    """A `GenerateContentResponse` (REST JSON, camelCase) -> Reply; a blocked one is permanent."""
    block = (response.get("promptFeedback") or {}).get("blockReason")
    if block:
        raise PermanentError(f"gemini: prompt blocked ({block})")
    candidates = response.get("candidates")
    if not candidates:
        raise TransientError("gemini: reply without candidates")
    candidate = candidates[0]
    if candidate.get("finishReason") in BLOCKED_FINISH:
        raise PermanentError(f"gemini: answer blocked (finishReason {candidate['finishReason']})")
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
    usage = response.get("usageMetadata") or {}
    output = (usage.get("candidatesTokenCount") or 0) + (usage.get("thoughtsTokenCount") or 0)
    return Reply(text=text, input_tokens=usage.get("promptTokenCount") or 0, output_tokens=output,
                 latency_s=latency_s, raw=response, cache_read_tokens=usage.get("cachedContentTokenCount") or 0)


def _api_error(exc: genai_errors.APIError) -> Exception:
    code = exc.code or 0
    detail = f"gemini: HTTP {code} {exc.status or ''}: {exc.message}"
    if code in RUN_STOPPING_STATUS:
        return UserError(f"gemini: {RUN_STOPPING_STATUS[code]} (HTTP {code}); check GEMINI_API_KEY and the "
                         f"project: {exc.message}")
    if code in TRANSIENT_STATUS or code >= 500 or isinstance(exc, genai_errors.ServerError):
        headers = getattr(exc.response, "headers", None)
        return TransientError(detail, retry_after_seconds(headers) or google_retry_delay(exc.details))
    return PermanentError(detail)


class GeminiProvider(SDKProvider):
    name = "gemini"
    official_host = "generativelanguage.googleapis.com"
    default_limits = LIMITS
    batch_format = BatchFormat("key", None, 2_000_000_000)

    def __init__(self, model: str, endpoint: str | None = None, *, timeout_s: float = 600.0):
        super().__init__(model, endpoint, timeout_s=timeout_s)
        self._image_bytes: dict[str, bytes] = {}   # sha256 -> decoded bytes: once per image per run

    def make_client(self) -> genai.Client:
        # With a base URL of its own the SDK drops the API version; keep the default's (v1beta)
        # so a proxy sees the paths the real service serves.
        options = types.HttpOptions(base_url=self.endpoint, api_version="v1beta" if self.endpoint else None,
                                    timeout=int(self.timeout_s * 1000))
        try:
            return genai.Client(http_options=options)
        except ValueError as exc:   # no key in the environment
            raise UserError(f"gemini: {exc} (set GEMINI_API_KEY)") from None

    async def preflight(self) -> str | None:
        try:
            await self.client().aio.models.get(model=self.model)
        except genai_errors.APIError as exc:
            if exc.code == 404 and self.own_api:   # a proxy may lack the endpoint: not checked
                raise UserError(f"gemini: model {self.model!r} not found (HTTP 404); fix --model") from None
            error = _api_error(exc)
            if isinstance(error, UserError):
                raise error from None
            return None
        except NETWORK_ERRORS as exc:
            raise UserError(f"gemini: cannot reach {self.endpoint or self.official_host} "
                            f"({type(exc).__name__}: {exc})") from None
        return f"{self.endpoint or self.official_host} knows {self.model}"

    def _bytes(self, image: EncodedImage) -> bytes:
        data = self._image_bytes.get(image.sha256)
        if data is None:
            data = self._image_bytes[image.sha256] = base64.b64decode(image.data_b64)
        return data

    def estimate_tokens(self, request: EvalRequest) -> tuple[int, int]:
        text = math.ceil(sum(len(t) for t in request.texts()) / CHARS_PER_TOKEN)
        images = sum(image_tokens(request.model, i.width, i.height) for i in request.images())
        return text + images, request.max_tokens

    async def send(self, request: EvalRequest) -> Reply:
        config = types.GenerateContentConfig(system_instruction=request.system or None, **_generation_config(request))
        start = time.monotonic()
        try:
            response = await self.client().aio.models.generate_content(
                model=request.model, contents=contents(request, self._bytes), config=config)
        except genai_errors.APIError as exc:
            raise _api_error(exc) from None
        except NETWORK_ERRORS as exc:
            raise TransientError(f"gemini: {type(exc).__name__}: {exc}", connection=True) from None
        except ValueError as exc:   # a body that did not parse (JSONDecodeError, ValidationError)
            raise TransientError(f"gemini: unreadable reply ({type(exc).__name__})") from None
        raw = response.model_dump(mode="json", by_alias=True, exclude_none=True,   # REST JSON, as in batch files
                                  exclude={"sdk_http_response", "automatic_function_calling_history"})
        return reply_from_response(raw, time.monotonic() - start)

    def batch_line(self, request: EvalRequest) -> dict:
        """One line of a Gemini batch input file: `{"key", "request": GenerateContentRequest}`."""
        body = {"contents": contents(request, lambda image: image.data_b64),
                "generationConfig": _generation_config(request)}
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        return {"key": request.key, "request": body}

    def parse_batch_result(self, line: dict) -> tuple[str, Reply | PermanentError]:
        """One line of a batch's responses file: `{"key", "response": GenerateContentResponse}` or
        `{"key", "error": google.rpc.Status}`. Raises TransientError for a request to send again
        (a retryable status, a reply without candidates), ValueError for a line that is not a result."""
        key = line.get("key")
        if not isinstance(key, str) or not (isinstance(line.get("response"), dict) or "error" in line):
            raise ValueError("not a Gemini batch result line (needs key and response or error)")
        error = line.get("error")
        if error:
            if not isinstance(error, dict):
                raise ValueError(f"error is {type(error).__name__}, not a google.rpc.Status object")
            code = error.get("code")
            detail = f"gemini batch: {error.get('status') or code}: {error.get('message')}"
            if code in RETRYABLE_RPC_CODES or code in TRANSIENT_STATUS or (isinstance(code, int) and code >= 500):
                raise TransientError(detail)
            return key, PermanentError(detail)
        try:
            return key, reply_from_response(line["response"], latency_s=0.0)
        except PermanentError as exc:
            return key, exc


    def batch_backend(self) -> "GeminiBatches":
        return GeminiBatches(self.client())


class GeminiBatches:
    """files.upload + batches.create(model, src="files/...") / get + files.download (python-genai)."""
    ended = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
    sdk_errors = (genai_errors.APIError,)

    def __init__(self, client):
        self.client = client

    async def submit(self, path: Path, model: str) -> dict:
        uploaded = await self.client.aio.files.upload(
            file=str(path), config=types.UploadFileConfig(display_name=path.name, mime_type="jsonl"))
        job = await self.client.aio.batches.create(model=model, src=uploaded.name,
                                                   config={"display_name": path.stem})
        return {"id": job.name, "input_file": uploaded.name, "status": job.state.name if job.state else None}

    async def status(self, job: dict) -> str:
        batch = await self.client.aio.batches.get(name=job["id"])
        job["output_file"] = batch.dest.file_name if batch.dest else None
        if batch.error:
            job["errors"] = batch.error.model_dump(mode="json", exclude_none=True)
        return batch.state.name

    async def download(self, job: dict, folder: Path, shard: str) -> list[str]:
        if not job.get("output_file"):
            return []
        name = f"gemini-results-{shard}.jsonl"
        atomic_write_bytes(folder / name, await self.client.aio.files.download(file=job["output_file"]))
        return [name]


def create(model: str, endpoint: str | None = None, **options) -> GeminiProvider:
    return GeminiProvider(model, endpoint, **options)
