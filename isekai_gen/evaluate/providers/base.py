"""The provider interface of `isekai-gen evaluate`.

A provider turns one provider-neutral `EvalRequest` into one call of a model API and back:

- The runner builds requests (`isekai_gen.evaluate.prompts`): a system sentence (or None), then
  turns, each a role ("user" | "assistant") and parts, each exactly one of a text or an image.
  Images arrive already encoded once per run (`EncodedImage`: the bytes' sha256, media type,
  base64, size), so a provider only places `data_b64` into its own content format.
- `limits` are checked by the runner before anything is sent (also at `--dry-run`); None = unknown.
- `estimate_tokens(request) -> (input_tokens, output_tokens)` for the dry run and the budget
  (each provider's own image formula; output = `max_tokens`, the worst case).
- `send(request) -> Reply` makes one live call with the SDK's async client. It raises
  `TransientError` for what is worth retrying (429, 5xx, timeouts, connection errors, a reply
  whose body did not parse), carrying the server's Retry-After in seconds when it gave one, and
  `PermanentError` for what never will succeed (400, content policy, unknown model). The runner
  does the retrying (exponential backoff + Retry-After); a provider never retries by itself
  (SDK clients are made with `max_retries=0`). A problem that dooms every request (bad key,
  billing, unknown model) is an `isekai_gen.errors.UserError`: the runner stops the whole run.
- The runner may replace `limits` (dataclasses.replace) with values from the run config.
- `batch_line(request) -> dict` is one line of the provider's batch request file (OpenAI Batch,
  Anthropic Message Batches, Gemini batch) carrying `request.key` as the custom id;
  `parse_batch_result(line) -> (key, Reply | PermanentError)` reads one line of its result file;
  `batch_format` (`BatchFormat`: id field, file limits) and `batch_backend()` (submit / status /
  download through the provider's SDK client) complete its batch API. A provider without a batch
  API leaves `batch_format` None.
- `preflight()` (async, optional) checks the endpoint and the model before the first paid call
  (a models list, or one cheap call) and raises `UserError` in one line when either is wrong.
- A provider that runs the model in-process (no HTTP) implements the same `send`;
  `providers/inprocess.py` `InProcessProvider` gathers the runner's concurrent sends into batches
  for one `generate(requests)` call in a worker thread. `official_host` None: never priced by the
  shipped table.
- Credentials come only from the SDKs' usual environment variables (OPENAI_API_KEY,
  ANTHROPIC_API_KEY, GEMINI_API_KEY / GOOGLE_API_KEY); a provider never prints, logs or writes them.

`get_provider("openai:gpt-4o", endpoint=None)` (in `providers/__init__.py`) picks the module by
the prefix before the first colon.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlparse


@dataclass(frozen=True)
class EncodedImage:
    sha256: str        # of the encoded bytes (what the provider receives)
    media_type: str    # "image/jpeg" | "image/png"
    data_b64: str      # base64 of the encoded bytes, computed once per image per run
    width: int
    height: int
    nbytes: int        # length of the encoded bytes (not of the base64 text)


@dataclass(frozen=True)
class Part:
    text: str | None = None
    image: EncodedImage | None = None   # exactly one of text / image is set

    def __post_init__(self):
        if (self.text is None) == (self.image is None):
            raise ValueError("a Part has exactly one of text or image")


@dataclass(frozen=True)
class Turn:
    role: str                  # "user" | "assistant"
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class EvalRequest:
    key: str                   # sha256 of the canonical request (journal key, batch custom id)
    cell: str                  # grid cell name, e.g. "shots-5_batch-10"
    ids: tuple[str, ...]       # truth ids of the queries, in prompt order
    seed: int                  # seed of this request's demo shuffle
    system: str | None
    turns: tuple[Turn, ...]
    max_tokens: int
    temperature: float
    model: str                 # the model name without the provider prefix
    cache_prefix: int = 0      # parts of the first turn that are the cell's shared demo block (0: none marked)

    def images(self) -> list[EncodedImage]:
        return [p.image for t in self.turns for p in t.parts if p.image is not None]

    def texts(self) -> list[str]:
        out = [self.system] if self.system else []
        return out + [p.text for t in self.turns for p in t.parts if p.text is not None]


@dataclass(frozen=True)
class Limits:
    max_images: int | None           # images per request
    max_image_bytes: int | None      # encoded bytes per image
    max_request_bytes: int | None    # whole request body (base64 included)
    context_tokens: int | None       # context window in tokens
    max_image_side: int | None = None  # longest side in pixels; larger images are resized (recorded)


@dataclass(frozen=True)
class Reply:
    text: str
    input_tokens: int
    output_tokens: int
    latency_s: float
    raw: dict                   # the provider's response as JSON-able data (journaled)
    cache_read_tokens: int = 0  # of input_tokens: read from the provider's prompt cache
    cache_write_tokens: int = 0  # of input_tokens: written into it (Anthropic bills writes)


class TransientError(Exception):
    """429 / 5xx / timeout / connection / unparsable body: worth retrying. ``connection``: no
    answer came at all (refused, unreachable, timed out) — what N times in a row stops a run."""

    def __init__(self, message: str, retry_after_s: float | None = None, *, connection: bool = False):
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.connection = connection


class PermanentError(Exception):
    """400 / content policy / unknown model: recorded for the request, never retried."""


@dataclass(frozen=True)
class BatchFormat:
    """A batch API's request-file rules: the id field of a line, per-file limits, the id rule."""
    id_field: str
    max_requests: int | None
    max_bytes: int | None
    id_pattern: re.Pattern | None = None


class Provider(Protocol):
    name: str            # the registry prefix: "openai" | "anthropic" | "gemini" | ...
    limits: Limits

    def estimate_tokens(self, request: EvalRequest) -> tuple[int, int]: ...

    async def send(self, request: EvalRequest) -> Reply: ...

    def batch_line(self, request: EvalRequest) -> dict: ...

    def parse_batch_result(self, line: dict) -> tuple[str, Reply | PermanentError]: ...


class SDKProvider:
    """What the SDK-backed providers share: the model, endpoint and timeout; one async client per
    event loop (an httpx / aiohttp client must not outlive its loop; `make_client()` builds it);
    whether the endpoint is the provider's own API (`official_host`, the host the shipped price
    table prices); no preflight unless a subclass has one."""

    name = ""
    official_host: str | None = None
    default_limits = Limits(None, None, None, None)
    batch_format: BatchFormat | None = None

    def __init__(self, model: str, endpoint: str | None = None, *, timeout_s: float = 600.0):
        self.model, self.endpoint, self.timeout_s = model, endpoint, timeout_s
        self.limits = self.default_limits   # the run config's `limits:` replaces fields (api.make_provider)
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @property
    def own_api(self) -> bool:
        """True when calls go to the provider's own API (no endpoint, or its official host)."""
        return self.official_host is not None and (
            self.endpoint is None or urlparse(self.endpoint).hostname == self.official_host)

    def make_client(self):
        raise NotImplementedError

    def client(self):
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client, self._client_loop = self.make_client(), loop
        return self._client

    async def preflight(self) -> str | None:
        """A line saying what was checked, or None when nothing could be."""
        return None

    def batch_backend(self):
        raise NotImplementedError(f"{self.name}: no batch API")
