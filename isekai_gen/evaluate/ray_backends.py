"""What `evaluate --engine ray` hands to Ray Data LLM (`ray.data.llm.build_processor`), per provider.

- `openai:` -> `HttpRequestProcessorConfig(url=<endpoint>/chat/completions, headers=...)`: Ray Data
  fans the requests out over the OpenAI-compatible endpoint from its HTTP-stage actors. Each row's
  `payload` is the body the local runner would send (`OpenAIProvider.body`), byte for byte.
- `hf:` -> `vLLMEngineProcessorConfig(model_source=..., engine_kwargs={"limit_mm_per_prompt":
  {"image": <most images in one request of the plan>}, "max_model_len": ...})`: vLLM engine actors
  on the cluster's GPUs, the model's own chat template (Ray's chat-template stage), images as
  data URLs through `prepare_multimodal_stage`, greedy at temperature 0; output in
  `generated_text`, token counts in `num_input_tokens` / `num_generated_tokens`, failures in
  `__inference_error__` (`should_continue_on_error`). Needs `pip install 'isekai-gen[ray-llm]'`
  (Ray's own pin: ray 2.60 requires vllm 0.29.0) and GPUs; it is written against Ray 2.60's
  `ray.data.llm` source and docs ("Multimodal LLM batch inference with Ray Data LLM") but has not
  been run here (no GPU, no vLLM on the CPU machine).

`ExactBodySession` is the `session_factory` of the HTTP stage. Two things of Ray's `HttpRequestUDF`
(ray 2.60 `llm/_internal/batch/stages/http_request_stage.py`) would change what the local runner
does, so the session takes over the call itself:
- Ray Data keeps rows as Arrow tables, which merge the keys of a message's content parts: a text
  part comes back with `"image_url": null`, an image part with `"text": null`. Our bodies hold no
  null anywhere, so dropping null-valued keys gives back the exact body.
- The stage keeps only the JSON body of a response (no status, no Retry-After), retries 429/5xx on
  its own, and turns a refused connection into an exception that fails the whole block. The session
  instead answers every call to the stage as a success whose JSON carries the real status, the
  Retry-After header, the raw body text, the latency, or the connection error; the driver then
  classifies it with the provider's own rules (`OpenAIProvider._status_error` / `_reply`) and does
  the retrying, as the local runner does.
The session's module is imported by the stage's actors, so workers of a remote cluster need
isekai-gen installed (a `runtime_env` or the cluster image).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import time

from ..errors import UserError
from .providers.base import EvalRequest, PermanentError, Reply, TransientError

HTTP_FIELD = "isekai_http"   # the key of the session's answer inside the stage's `http_response`


def drop_nulls(value):
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [drop_nulls(v) for v in value]
    return value


class _Answer:
    """What the stage reads of a response: `status` (always 200: the real one is in the JSON)."""
    status, reason = 200, "OK"

    def __init__(self, answer: dict):
        self.answer = answer

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    async def json(self) -> dict:
        return {HTTP_FIELD: self.answer}


class _Call:
    """`session.post(...)`: the stage does `async with await call as response`."""

    def __init__(self, session, url: str, headers: dict, data: str):
        self.session, self.url, self.headers, self.data = session, url, headers, data

    def __await__(self):
        return self._send().__await__()

    async def _send(self) -> _Answer:
        import aiohttp

        started = time.monotonic()
        try:
            async with self.session.post(self.url, headers=self.headers, data=self.data) as response:
                text = await response.text()
                return _Answer({"status": response.status, "retry_after": response.headers.get("Retry-After"),
                                "body": text, "latency_s": time.monotonic() - started})
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return _Answer({"connection_error": f"{type(exc).__name__}: {exc}", "latency_s": time.monotonic() - started})


class ExactBodySession:
    """The HTTP stage's `session_factory` (see the module docstring)."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.session = None

    async def __aenter__(self):
        import aiohttp

        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self

    async def __aexit__(self, *exc):
        await self.session.close()
        return False

    def post(self, url: str, headers: dict | None = None, data: str = "") -> _Call:
        return _Call(self.session, url, headers or {}, json.dumps(drop_nulls(json.loads(data))))


class SessionFactory:
    """A picklable `session_factory` (the stage calls it once per batch)."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s

    def __call__(self) -> ExactBodySession:
        return ExactBodySession(self.timeout_s)


class HttpBackend:
    """openai: (any OpenAI-compatible endpoint) through `HttpRequestProcessorConfig`."""

    def __init__(self, provider, settings):
        self.provider, self.settings = provider, settings
        base = (provider.endpoint or "https://api.openai.com/v1").rstrip("/")
        self.url = base + "/chat/completions"

    def processor(self, wave_size: int):
        from ray.data.llm import HttpRequestProcessorConfig, build_processor

        key = os.environ.get("OPENAI_API_KEY")   # as the SDK reads it; handed to the stage's actors only
        if key is None and self.provider.endpoint is None:
            raise UserError("openai provider: set OPENAI_API_KEY (or pass --endpoint for a local server)")
        config = HttpRequestProcessorConfig(
            url=self.url, headers={"Authorization": f"Bearer {key or 'EMPTY'}"}, batch_size=1,
            concurrency=(1, max(1, min(self.settings.concurrency, wave_size))), max_retries=0,
            session_factory=SessionFactory(self.settings.request_timeout_s),
            http_request_stage={"num_cpus": 0.25})   # the actors wait on sockets, not on CPUs
        return build_processor(config)

    def row(self, request: EvalRequest) -> dict:
        return {"payload": self.provider.body(request)}

    def result(self, row: dict, request: EvalRequest) -> Reply | PermanentError:
        """One output row -> a Reply or PermanentError; raises TransientError / UserError as `send` does."""
        answer = (row.get("http_response") or {}).get(HTTP_FIELD) or {}
        if answer.get("connection_error"):
            raise TransientError(answer["connection_error"], connection=True)
        status, text = answer.get("status"), answer.get("body", "")
        try:
            body = json.loads(text)
        except (TypeError, ValueError):
            body = None
        if status != 200:
            message = ((body or {}).get("error") or {}).get("message", "") if isinstance(body, dict) else ""
            error = self.provider._status_error(status, message, {"Retry-After": answer.get("retry_after")}
                                                if answer.get("retry_after") else None)
            if isinstance(error, PermanentError):
                return error
            raise error
        if not isinstance(body, dict):
            raise TransientError("unparsable response")
        return self.provider._reply(body, float(answer.get("latency_s") or 0.0), request)


class VLLMBackend:
    """hf: on GPUs through `vLLMEngineProcessorConfig` (see the module docstring: not run here)."""

    def __init__(self, provider, settings, max_images: int):
        self.provider, self.settings, self.max_images = provider, settings, max_images

    def processor(self, wave_size: int):
        from ray.data.llm import vLLMEngineProcessorConfig, build_processor

        engine_kwargs = {"limit_mm_per_prompt": {"image": max(1, self.max_images)}}
        if self.provider.limits.context_tokens:
            engine_kwargs["max_model_len"] = self.provider.limits.context_tokens
        config = vLLMEngineProcessorConfig(
            model_source=self.provider.model, engine_kwargs=engine_kwargs, batch_size=8,
            concurrency=max(1, self.settings.concurrency // 8), should_continue_on_error=True,
            prepare_multimodal_stage={"enabled": True, "chat_template_content_format": "openai"})
        return build_processor(config)

    def row(self, request: EvalRequest) -> dict:
        def content(parts):
            return [{"type": "text", "text": p.text} if p.image is None else
                    {"type": "image_url", "image_url": {"url": f"data:{p.image.media_type};base64,{p.image.data_b64}"}}
                    for p in parts]

        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages += [{"role": t.role, "content": content(t.parts)} for t in request.turns]
        sampling = {"temperature": request.temperature, "max_tokens": request.max_tokens}
        return {"messages": messages, "sampling_params": sampling}

    def result(self, row: dict, request: EvalRequest) -> Reply | PermanentError:
        error = row.get("__inference_error__") or ""
        if error:
            return PermanentError(f"vLLM: {error.splitlines()[0]}")
        return Reply(row.get("generated_text") or "", int(row.get("num_input_tokens") or 0),
                     int(row.get("num_generated_tokens") or 0), float(row.get("time_taken_llm") or 0.0),
                     {"model": self.provider.model, "engine": "vllm"})


def check_engine(provider, config) -> None:
    """--engine ray takes openai: (HTTP stage) and hf: (vLLM), live calls only; one line otherwise."""
    if provider.name not in ("openai", "hf"):
        raise UserError(f"--engine ray: runs openai:MODEL (any OpenAI-compatible --endpoint, through Ray Data LLM's "
                        f"HTTP stage) or hf:MODEL (vLLM engines on the cluster's GPUs), not {provider.name}:")
    if config.batch:
        raise UserError("--engine ray: sends live calls; --batch writes batch-API files instead (give one of them)")
    try:
        from ray.data.llm import build_processor  # noqa: F401  (Ray >= 2.53; 2.56 removed build_llm_processor)
    except ImportError:
        raise UserError("--engine ray: needs Ray Data LLM (ray[data] >= 2.53): pip install 'isekai-gen[ray]'") from None
    if provider.name == "hf" and importlib.util.find_spec("vllm") is None:
        raise UserError(f"--engine ray with hf:{provider.model}: runs vLLM engines on the cluster's GPUs and needs "
                        "vLLM: pip install 'isekai-gen[ray-llm]' (or run hf: without --engine ray, in this process)")


def backend_for(provider, settings, requests: list[EvalRequest]):
    check_engine(provider, settings)
    if provider.name == "openai":
        return HttpBackend(provider, settings)
    return VLLMBackend(provider, settings, max((len(r.images()) for r in requests), default=1))
