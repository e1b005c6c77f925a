"""`InProcessProvider`: the base of providers that run the model in this process (no HTTP).

The runner calls `send(request)` from up to `concurrency` workers at once. A model on a GPU wants
those requests as one batch, so `send` only queues its request; one collector task takes what
is queued (up to `max_batch_size`, waiting at most `batch_wait_s` for a batch to fill) and runs
the subclass's `generate(requests) -> list[Reply | Exception]` in a worker thread (the event
loop keeps journaling meanwhile). Each result goes back to its own `send`: a `Reply`, or the
exception it raises (`TransientError`, `PermanentError`, `UserError` as for any provider).
Retries, budget, journal and resume are the runner's, exactly as for the HTTP providers.

A subclass sets `name` and `limits`, and implements `estimate_tokens` and `generate` (and
`batch_line` / `parse_batch_result` only if it has a batch file format; none is needed).
`official_host` is None: the shipped price table never prices it.
"""

from __future__ import annotations

import asyncio

from .base import EvalRequest, Limits, Reply


class InProcessProvider:
    name = ""
    official_host = None
    own_api = False
    batch_format = None
    limits = Limits(None, None, None, None)
    max_batch_size = 8
    batch_wait_s = 0.01

    def __init__(self, model: str, endpoint: str | None = None, **_options):
        self.model, self.endpoint = model, endpoint
        self._queue: asyncio.Queue | None = None
        self._collector: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches: list[int] = []   # sizes of the batches generated (for reports and tests)

    def estimate_tokens(self, request: EvalRequest) -> tuple[int, int]:
        raise NotImplementedError

    def generate(self, requests: list[EvalRequest]) -> list[Reply | Exception]:
        """One batched forward pass; runs in a worker thread. One result per request, in order."""
        raise NotImplementedError

    async def send(self, request: EvalRequest) -> Reply:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:   # a new run (event loop): a new queue and collector
            self._queue, self._loop = asyncio.Queue(), loop
            self._collector = loop.create_task(self._collect())
        future = loop.create_future()
        await self._queue.put((request, future))
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    async def _collect(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = asyncio.get_running_loop().time() + self.batch_wait_s
            while len(batch) < self.max_batch_size:
                timeout = deadline - asyncio.get_running_loop().time()
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), max(0.0, timeout)))
                except asyncio.TimeoutError:
                    break
            live = [(request, future) for request, future in batch if not future.cancelled()]
            if not live:
                continue
            self.batches.append(len(live))
            try:
                results = await asyncio.to_thread(self.generate, [request for request, _ in live])
                if len(results) != len(live):
                    raise RuntimeError(f"{self.name}: generate returned {len(results)} results for {len(live)} requests")
            except Exception as exc:   # the whole batch failed: every request gets the error
                results = [exc] * len(live)
            for (_, future), result in zip(live, results):
                if not future.done():
                    future.set_result(result)

    async def aclose(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            await asyncio.gather(self._collector, return_exceptions=True)
            self._collector, self._loop = None, None
