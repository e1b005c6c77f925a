"""`evaluate --engine ray`: the calls go through Ray Data LLM; the journal, resume, retries and budget
stay on the driver, with the local runner's own accounting (`RayRunner` is a `Runner`).

The driver sends the pending requests in waves: each wave is one Ray Dataset (one row per request,
carrying its index; `ray_backends` builds the row and reads the result) through the processor of
`ray.data.llm.build_processor`, and every result is journaled (fsynced) as it streams back to the
driver (`iter_rows`), so a killed run re-pays on its rerun only what was in flight. A wave holds
every request that can start:

- Budget: each request of a wave is reserved at its worst case (`Runner.estimate_usd`, calibrated
  by the largest reported / estimated input ratio seen) before the wave starts, so the spend never
  passes `budget_usd`; until the first reply has calibrated that ratio, a wave holds one request
  (the local runner's single call in flight).
- `--max-requests` counts requests started, as locally; re-asks and retries do not count again.
- Retries (transient errors: 429 / 5xx with the server's Retry-After, timeouts, refused
  connections, unparsable bodies) and re-asks of abstentions go into a later wave, after the
  backoff of `Runner._transient`; `max_retries`, `max_reasks`, `max_connection_failures` and the
  first-calls-all-permanent stop behave as in the local runner. A row that never came back (an
  actor lost with its block) counts as a connection failure.

Ray is started on this machine unless `--ray-address` names a cluster (`auto`, `ray://HOST:10001`).
Ray Data's progress bars follow `--progress`; its logs stay at warnings.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass

from tqdm import tqdm

from ..errors import UserError
from .providers.base import EvalRequest, TransientError
from .ray_backends import backend_for
from .runner import RunOutcome, Runner

log = logging.getLogger(__name__)
LOST = "no answer came back from the Ray Data LLM stage (its actor or block was lost)"


@dataclass
class Pending:
    request: EvalRequest
    attempt: int             # attempt number of the next call (journal rows so far, gave-up ones excepted)
    retry: int = 0           # transient failures of this attempt so far
    not_before: float = 0.0  # monotonic time before which it may not be sent (backoff, Retry-After)


def connect(address: str | None):
    """``ray`` connected as ``build --engine ray`` connects (``engine.ray_data.connect``): None starts a
    private Ray for this run (never a foreign one), ``auto`` or an address attaches."""
    from ..config import EngineConfig
    from ..engine.ray_data import connect as connect_engine

    return connect_engine(EngineConfig(name="ray", ray_address=address))


class RayRunner(Runner):
    def __init__(self, *args, ray_address: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ray_address = ray_address
        self.started_keys: set[str] = set()

    def _take_wave(self, todo: collections.deque) -> list[tuple[Pending, float]]:
        """The requests that may start now, each with its reserved worst-case cost."""
        wave = []
        calibrating = self.settings.budget_usd is not None and not self._calibrated.is_set()
        limit = self.settings.max_requests
        while todo and not self.outcome.stopped and not (calibrating and wave):
            item = todo.popleft()
            if item.request.key not in self.started_keys and limit is not None and self.outcome.started >= limit:
                self.outcome.stopped = "max_requests"
                todo.appendleft(item)
                break
            estimate = self.estimate_usd(item.request)
            if not self._reserve(estimate):
                todo.appendleft(item)
                break
            if item.request.key not in self.started_keys:
                self.started_keys.add(item.request.key)
                self.outcome.started += 1
            wave.append((item, estimate))
        return wave

    def _stream(self, backend, wave: list[tuple[Pending, float]]):
        """Yields (index in the wave, output row) as Ray hands the rows back (runs in a worker thread)."""
        import ray.data

        context = ray.data.DataContext.get_current()
        saved = context.max_errored_blocks, context.enable_progress_bars
        context.max_errored_blocks = -1          # a lost block loses its own row only: the driver retries it
        context.enable_progress_bars = self.progress
        try:
            rows = [{"isekai_index": index, **backend.row(item.request)} for index, (item, _) in enumerate(wave)]
            dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
            for row in backend.processor(len(wave))(dataset).iter_rows():
                yield int(row["isekai_index"]), row
        finally:
            context.max_errored_blocks, context.enable_progress_bars = saved

    async def _send_wave(self, backend, wave: list[tuple[Pending, float]], todo: collections.deque) -> None:
        wait = max(item.not_before for item, _ in wave) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.outcome.calls += len(wave)
        self.in_flight += len(wave)
        stream = self._stream(backend, wave)
        seen: set[int] = set()
        try:
            while True:
                try:
                    got = await asyncio.to_thread(next, stream, None)
                except UserError:
                    raise
                except Exception as exc:   # the Dataset itself failed (cluster lost): its rows count as lost
                    log.warning("--engine ray: the wave's Dataset failed: %s", str(exc).strip().splitlines()[0])
                    break
                if got is None:
                    break
                index, row = got
                if index not in seen:
                    seen.add(index)
                    await self._settle(backend, wave[index], row, todo)
        finally:
            stream.close()
        for index, entry in enumerate(wave):
            if index not in seen:
                await self._settle(backend, entry, None, todo)

    async def _settle(self, backend, entry: tuple[Pending, float], row: dict | None, todo: collections.deque) -> None:
        item, estimate = entry
        self.reserved -= estimate
        self.in_flight -= 1
        try:
            if row is None:
                raise TransientError(LOST, connection=True)
            result = backend.result(row, item.request)
        except TransientError as exc:
            delay = await self._transient(item.request, item.attempt, item.retry, exc)
            if delay is not None:
                todo.append(Pending(item.request, item.attempt, item.retry + 1, time.monotonic() + delay))
            return
        finally:
            self._calibrated.set()
        if not isinstance(result, Exception):
            self.connection_failures = 0
            self._calibrate(item.request, result)
        again = await self._record(item.request, item.attempt, result)
        if again:
            todo.append(Pending(item.request, item.attempt + 1))
        elif self._bar is not None:
            self._bar.update(1)

    async def run(self, requests: list[EvalRequest]) -> RunOutcome:
        connect(self.ray_address)
        logging.getLogger("ray.data").setLevel(logging.INFO if log.isEnabledFor(logging.INFO) else logging.ERROR)
        backend = backend_for(self.provider, self.settings, requests)
        todo = collections.deque(Pending(r, self.first_attempt(self.journal, r)) for r in requests)
        self._bar = tqdm(total=len(requests), unit="req", desc="evaluate (ray)", disable=not self.progress)
        self._calibrated = asyncio.Event()
        started = time.monotonic()
        try:
            while todo and not self.outcome.stopped:
                wave = self._take_wave(todo)
                if not wave:
                    break
                await self._send_wave(backend, wave, todo)
        finally:
            self._bar.close()
            self.outcome.elapsed_s = time.monotonic() - started
        return self.outcome


def run_on_ray(provider, journal, requests, price, settings, is_abstention, progress: bool = False) -> RunOutcome:
    runner = RayRunner(provider, journal, price, settings, is_abstention, progress, ray_address=settings.ray_address)
    return asyncio.run(runner.run(requests))
