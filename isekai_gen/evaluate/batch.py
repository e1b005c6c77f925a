"""Batch API files for half-price runs: write request files, read result files, submit and poll.

Provider-neutral: a request line is `provider.batch_line(request)`, a result line goes through
`provider.parse_batch_result(line)`, the file limits and id rule are `provider.batch_format`, and
the live SDK calls are `provider.batch_backend()` (each provider's module holds its own backend).

Request files (`<folder>/<provider>-requests-NNNNN.jsonl`, split to stay under each API's limits):
- OpenAI Batch input (openai-python `resources/batches.py` `AsyncBatches.create`, "Batch API"
  guide): lines `{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}`; at most
  50,000 requests and 200 MB per file.
- Anthropic Message Batches (anthropic-sdk-python `resources/messages/batches.py`
  `AsyncBatches.create(requests=...)`, `types/messages/batch_create_params.Request`): lines
  `{"custom_id", "params"}`, sent as the `requests` list; at most 100,000 requests and 256 MB per
  batch; `custom_id` must match `^[a-zA-Z0-9_-]{1,64}$`.
- Gemini batch input file (googleapis/python-genai `batches.py` `AsyncBatches.create(model, src=
  "files/...")`, "Batch API" guide "Input file"): lines `{"key", "request": GenerateContentRequest}`;
  at most 2 GB per file.
Request keys are the journal's sha256 hex keys (64 characters of [0-9a-f]), which fit every id
rule above; a key that does not is refused rather than silently renamed.

Result files, read back by `read_results` into `(key, Reply | PermanentError)` records for the
run's journal, plus the keys to send again (canceled / expired / retryable errors):
- OpenAI: `{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}` lines
  of the output and error files (`Batch.output_file_id`, `Batch.error_file_id`);
- Anthropic: `MessageBatchIndividualResponse` lines `{"custom_id", "result": {"type":
  "succeeded", "message"} | {"type": "errored", "error"} | {"type": "canceled" | "expired"}}`;
- Gemini: `{"key", "response": GenerateContentResponse}` or `{"key", "error": google.rpc.Status}`.

Live submission (optional) records each job in `<folder>/batch.json` as soon as the API has
accepted it, so a rerun polls the job instead of paying for it twice; results are downloaded next
to the request files as `<provider>-results-NNNNN.jsonl` (OpenAI errors: `-errors-NNNNN.jsonl`).
The calls go through the provider's own SDK client (`provider.client()`: its endpoint, credentials
and timeout; no SDK retries — a failed control call raises, and rerunning submit / poll picks up
where it stopped). The caller holds the run folder's build lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError, where
from ..fileio import atomic_open, temp_prefix, dumps_canonical, read_json, sha256_file, write_json
from ..paths import check_file_name
from .providers import get_provider
from .providers.base import BatchFormat, EvalRequest, PermanentError, Provider, Reply, TransientError

log = logging.getLogger(__name__)

STATE_NAME = "batch.json"


def _format(provider: Provider) -> BatchFormat:
    fmt = getattr(provider, "batch_format", None)
    if fmt is None:
        raise UserError(f"batch: no batch API for provider {provider.name!r}")
    return fmt


# --- request files ---------------------------------------------------------------------------------

def write_request_files(provider: Provider, requests: list[EvalRequest], folder: Path, *,
                        model: str | None = None) -> list[Path]:
    """Write the requests (one line each, duplicates of a key once) as request files; returns them.

    Lines are streamed to disk (a many-shot grid's requests carry gigabytes of base64) into a
    temporary staging folder and moved into place only when every request fitted, so a refused
    request leaves the folder as it was. Files of an earlier write that are not part of this one
    are removed; a folder whose requests were already submitted is refused (use a new folder
    for the next round: those jobs' results belong to the old files)."""
    fmt = _format(provider)
    if _read_state(folder).get("jobs"):
        raise UserError(f"{folder / STATE_NAME}: batch jobs were already submitted from this folder; "
                        "write the next round of requests into a new folder")
    staging = folder / f"{temp_prefix(provider.name)}batch"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    names, seen = [], set()
    try:
        with contextlib.ExitStack() as shard:
            count = size = 0
            handle = None
            for request in requests:
                if request.key in seen:
                    continue
                seen.add(request.key)
                text, nbytes = _line_text(provider, fmt, request)
                if handle is None or (fmt.max_requests is not None and count >= fmt.max_requests) or \
                        (fmt.max_bytes is not None and size + nbytes > fmt.max_bytes):
                    shard.close()   # commits the full shard
                    names.append(f"{provider.name}-requests-{len(names):05d}.jsonl")
                    handle = shard.enter_context(atomic_open(staging / names[-1], "w", encoding="utf-8",
                                                             newline="\n"))
                    count = size = 0
                handle.write(text)
                count, size = count + 1, size + nbytes
        for name in names:
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for stale in folder.glob(f"{provider.name}-requests-*.jsonl"):
        if stale.name not in names:
            stale.unlink()
    model = model or (requests[0].model if requests else None)
    write_json(folder / STATE_NAME, {"provider": provider.name, "model": model, "files": names,
                                     "requests": len(seen), "jobs": {}})
    return [folder / name for name in names]


def _line_text(provider: Provider, fmt: BatchFormat, request: EvalRequest) -> tuple[str, int]:
    """The request's line and its size in bytes; refused when its id or size cannot fit the format."""
    line = provider.batch_line(request)
    batch_id = line.get(fmt.id_field)
    if batch_id != request.key or (fmt.id_pattern and not fmt.id_pattern.fullmatch(batch_id)):
        raise ValueError(f"{provider.name} batch line carries id {batch_id!r} for key {request.key!r}: "
                         f"ids must be the request key and fit the {provider.name} id rule")
    text = dumps_canonical(line) + "\n"
    nbytes = len(text.encode("utf-8"))
    if fmt.max_bytes is not None and nbytes > fmt.max_bytes:
        raise UserError(f"cell {request.cell}: one {provider.name} batch request is {nbytes} bytes, "
                        f"over the batch limit of {fmt.max_bytes} bytes")
    return text, nbytes


# --- result files ----------------------------------------------------------------------------------

@dataclass
class BatchResults:
    records: list[tuple[str, Reply | PermanentError]] = field(default_factory=list)
    resend: dict[str, str] = field(default_factory=dict)   # key -> why it must be sent again


def read_results(provider: Provider, paths: list[Path], expected_keys: set[str] | None = None) -> BatchResults:
    """Result files (provider-native JSON Lines) -> records; each line names its file and line on error.

    With `expected_keys`, a result for a request this run did not make is refused (a results file
    of another run would otherwise be scored as this one)."""
    results, seen = BatchResults(), {}
    for path in paths:
        try:
            handle = open(path, encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"{path}: file not found") from None
        with handle:
            for lineno, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                here = where(path, lineno)
                try:
                    line = json.loads(text)
                    if not isinstance(line, dict):
                        raise ValueError(f"expected a JSON object, got {type(line).__name__}")
                    key, outcome = provider.parse_batch_result(line)
                except TransientError as exc:
                    key, outcome = line.get(_format(provider).id_field), exc
                except (ValueError, UserError) as exc:
                    raise UserError(f"{here}: not a {provider.name} batch result ({exc})") from None
                if expected_keys is not None and key not in expected_keys:
                    raise UserError(f"{here}: result for request {key!r}, which this run did not make")
                if key in seen:
                    raise UserError(f"{here}: second result for request {key!r} (first at {seen[key]})")
                seen[key] = here
                if isinstance(outcome, TransientError):
                    results.resend[key] = str(outcome)
                else:
                    results.records.append((key, outcome))
    return results


def result_files(folder: Path, provider_name: str) -> list[Path]:
    """The result (and OpenAI error) files downloaded into `folder`, in shard order."""
    return [path for kind in ("results", "errors") for path in sorted(folder.glob(f"{provider_name}-{kind}-*.jsonl"))]


# --- live submission and polling -------------------------------------------------------------------

def _read_state(folder: Path) -> dict:
    """batch.json; the request file names in it must be bare names (they are uploaded and written)."""
    path = folder / STATE_NAME
    state = read_json(path) if path.exists() else {}
    for name in [*state.get("files", []), *state.get("jobs", {})]:
        check_file_name(name, what="request file", source=path)
    return state


def _shard(name: str) -> str:
    return name.rsplit("-", 1)[1].removesuffix(".jsonl")


def _backend(state: dict, endpoint: str | None):
    """The batch backend of the provider that wrote the files, on its own SDK client
    (`provider.client()`: the same endpoint, credential and error handling as live calls)."""
    provider = get_provider(f"{state['provider']}:{state['model']}", endpoint)
    _format(provider)
    return provider.batch_backend()


@contextlib.asynccontextmanager
async def _sdk_errors(backend, doing: str):
    """An API refusal of a control call is one line (the SDK's own message), not a traceback."""
    try:
        yield
    except backend.sdk_errors as exc:
        log.debug("batch: %s failed", doing, exc_info=True)
        raise UserError(f"batch: {doing} failed: {type(exc).__name__}: {exc}") from None


async def submit(folder: Path, endpoint: str | None = None) -> dict:
    """Submit every request file of `folder` that has no job yet; returns the jobs by file name."""
    state = _read_state(folder)
    if not state:
        raise UserError(f"{folder / STATE_NAME}: no batch request files written here")
    backend = _backend(state, endpoint)
    for name in state["files"]:
        if name in state["jobs"]:
            continue
        path = folder / name
        digest = sha256_file(path)
        async with _sdk_errors(backend, f"submitting {path}"):
            job = await backend.submit(path, state["model"])
        state["jobs"][name] = {**job, "sha256": digest, "results": []}
        write_json(folder / STATE_NAME, state)   # on disk before anything else: never pay twice
        log.info("batch: submitted %s as %s", name, job["id"])
    return state["jobs"]


async def poll(folder: Path, endpoint: str | None = None, *, wait: bool = False, interval_s: float = 60.0) -> dict:
    """Check every unfinished job once (or until all have ended, with `wait`); download the results
    of each job that has ended. Returns the jobs by file name (`status`, `results` file names)."""
    state = _read_state(folder)
    if not state.get("jobs"):
        raise UserError(f"{folder / STATE_NAME}: no batch jobs submitted from this folder")
    backend = _backend(state, endpoint)
    while True:
        pending = 0
        for name, job in state["jobs"].items():
            if job.get("downloaded"):
                continue
            async with _sdk_errors(backend, f"polling the job of {folder / name}"):
                job["status"] = await backend.status(job)
                if job["status"] in backend.ended:
                    job["results"] = await backend.download(job, folder, _shard(name))
                    job["downloaded"] = True
            pending += not job.get("downloaded")
            write_json(folder / STATE_NAME, state)
        if not (wait and pending):
            return state["jobs"]
        await asyncio.sleep(interval_s)
