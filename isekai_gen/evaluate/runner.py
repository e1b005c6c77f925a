"""Send requests with bounded concurrency; retry what is transient; journal every reply.

- `concurrency` workers share one queue (asyncio + the SDK's async client), so at most that many
  calls are in flight.
- Transient errors (429, 5xx, timeouts, unparsable bodies) are retried up to `max_retries` times
  with exponential backoff and full jitter, waiting at least the server's Retry-After; after that
  a `gave_up` row is journaled and the request stays pending for the next run.
- A permanent error is journaled once and not retried (`--retry-failed` sends it again in a later
  run). When the first FAIL_FAST calls of a run all fail permanently, the run stops: a parameter
  every request shares is refused (say `temperature` by a reasoning model). A provider's
  `UserError` (bad key, unknown model) stops the whole run at once.
- Abstentions (no parsable answer) are asked again, up to `max_reasks` times, as the ManyICL
  paper did: its `prompt.py` `work()` makes up to 3 calls per batch (`for retry in range(3)`),
  calling again while the reply starts with `ERROR` or lacks the last question's `END FORMAT
  TEMPLATE` line (default `max_reasks: 2` = 3 calls). Ours asks again when any query's
  `Answer Choice i:` line is missing, which is what eval.py fails to parse.
- Connection failures (refused, unreachable, timed out: no answer at all) are counted in a row;
  `max_connection_failures` of them stop the run in seconds instead of retrying every request
  for minutes (`stopped: connection_failures`). Any reply resets the count.
- Budget: before each call its worst-case cost is reserved — the estimated input tokens times
  the largest ratio of reported to estimated input tokens seen so far in this run (>= 1), and
  the output at `max_tokens`. Until the first reply has calibrated that ratio, a run with a
  budget has one call in flight. When spent + reserved + this call would pass `budget_usd`, no
  further call starts, the calls in flight finish and are journaled, and the run reports
  `stopped: budget`. (A reply whose input exceeds every earlier ratio can still pass the
  estimate; the spend is then at most one call over the worst case seen.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Callable

from tqdm import tqdm

from .config import EvaluateConfig
from .journal import ABSTAINED, ANSWERED, GAVE_UP, PERMANENT, Journal
from .prices import Price
from .providers.base import EvalRequest, PermanentError, Provider, Reply, TransientError

log = logging.getLogger(__name__)
FAIL_FAST = 3   # this many permanent errors before any answer: stop instead of failing every request
STOP_REASONS = {"budget": "the spend would pass --budget-usd", "max_requests": "--max-requests reached",
                "permanent_errors": "the first calls all failed permanently",
                "connection_failures": "consecutive connection failures"}


@dataclass
class RunOutcome:
    calls: int = 0
    answered: int = 0
    abstained: int = 0
    failed: int = 0
    gave_up: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    stopped: str | None = None      # a key of STOP_REASONS, or None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    last_error: str | None = None
    started: int = 0
    elapsed_s: float = 0.0          # wall time of the sending phase


class Runner:
    def __init__(self, provider: Provider, journal: Journal, price: Price | None, settings: EvaluateConfig,
                 is_abstention: Callable[[EvalRequest, str], bool], progress: bool = False):
        self.provider, self.journal, self.price, self.settings = provider, journal, price, settings
        self.is_abstention = is_abstention
        self.progress = progress
        self.outcome = RunOutcome()
        self.spent = journal.spent_usd()
        self.reserved = 0.0
        self.input_ratio = 1.0          # largest reported / estimated input tokens seen
        self.connection_failures = 0    # in a row
        self.in_flight = 0
        self._bar = None
        self._calibrated: asyncio.Event | None = None

    def estimate_usd(self, request: EvalRequest) -> float:
        if not self.price:
            return 0.0
        tokens_in, tokens_out = self.provider.estimate_tokens(request)
        return self.price.cost(math.ceil(tokens_in * self.input_ratio), tokens_out)

    def _calibrate(self, request: EvalRequest, reply: Reply) -> None:
        estimated = self.provider.estimate_tokens(request)[0]
        if estimated > 0:
            self.input_ratio = max(self.input_ratio, reply.input_tokens / estimated)

    def _reserve(self, amount: float) -> bool:
        budget = self.settings.budget_usd
        if self.outcome.stopped:
            return False
        if budget is not None and self.spent + self.reserved + amount > budget:
            self.outcome.stopped = "budget"
            log.warning("budget: $%.4f spent, $%.4f in flight; the next call (~$%.4f) would pass $%.2f: stopping",
                        self.spent, self.reserved, amount, budget)
            return False
        self.reserved += amount
        return True

    async def _journal(self, row: dict) -> None:
        """Append off the event loop: the other calls keep flowing while this row is fsynced."""
        await asyncio.to_thread(self.journal.append, row)

    def _row(self, request: EvalRequest, attempt: int, status: str, retries: int, **fields) -> dict:
        return {"key": request.key, "cell": request.cell, "attempt": attempt, "status": status, "retries": retries,
                "time": time.time(), **fields}

    async def _call(self, request: EvalRequest, attempt: int) -> Reply | PermanentError | None:
        for retry in range(self.settings.max_retries + 1):
            if self.settings.budget_usd is not None and self.in_flight and not self._calibrated.is_set():
                await self._calibrated.wait()   # one call first: its reply calibrates the reservations
            estimate = self.estimate_usd(request)
            if not self._reserve(estimate):
                return None
            self.outcome.calls += 1
            self.in_flight += 1
            try:
                reply = await self.provider.send(request)
                self.connection_failures = 0
                self._calibrate(request, reply)
                return reply
            except TransientError as exc:
                delay = await self._transient(request, attempt, retry, exc)
                if delay is None:
                    return None
                await asyncio.sleep(delay)
            except PermanentError as exc:
                return exc
            finally:
                self.reserved -= estimate
                self.in_flight -= 1
                self._calibrated.set()
        return None

    async def _transient(self, request: EvalRequest, attempt: int, retry: int, exc: TransientError) -> float | None:
        """Count a transient failure: the delay before retry ``retry + 1``, or None once given up (journaled)."""
        if exc.connection:
            self.connection_failures += 1
            if self.connection_failures >= self.settings.max_connection_failures and not self.outcome.stopped:
                self.outcome.stopped, self.outcome.last_error = "connection_failures", str(exc)
                log.warning("%d connection failures in a row (%s): stopping", self.connection_failures, exc)
        if retry == self.settings.max_retries or self.outcome.stopped:
            self.outcome.gave_up += 1
            await self._journal(self._row(request, attempt, GAVE_UP, retry, error=str(exc),
                                          **({"connection": True} if exc.connection else {})))
            return None
        self.outcome.retries += 1
        backoff = random.uniform(0, min(self.settings.retry_max_s, self.settings.retry_base_s * 2 ** retry))
        delay = max(backoff, exc.retry_after_s or 0.0)
        log.info("%s: %s; retry %d in %.2fs", request.cell, exc, retry + 1, delay)
        return delay

    @staticmethod
    def first_attempt(journal: Journal, request: EvalRequest) -> int:
        """The attempt number of the next call of ``request`` (gave-up rows do not count)."""
        return sum(r["status"] != GAVE_UP for r in journal.rows.get(request.key, ()))

    async def _process(self, request: EvalRequest) -> None:
        attempt = self.first_attempt(self.journal, request)
        while True:
            result = await self._call(request, attempt)
            if result is None or not await self._record(request, attempt, result):
                return
            attempt += 1

    async def _record(self, request: EvalRequest, attempt: int, result: Reply | PermanentError) -> bool:
        """Journal one result; True when the request is to be asked again (an abstention, re-asks left)."""
        if isinstance(result, PermanentError):
            self.outcome.failed += 1
            self.outcome.last_error = str(result)
            if self.outcome.failed >= FAIL_FAST and not (self.outcome.answered or self.outcome.abstained):
                self.outcome.stopped = "permanent_errors"   # a setting every request shares is wrong
            await self._journal(self._row(request, attempt, PERMANENT, 0, error=str(result)))
            return False
        cost = self.price.cost(result.input_tokens, result.output_tokens, result.cache_read_tokens,
                               result.cache_write_tokens) if self.price else None
        self.spent += cost or 0.0   # before the await: its reservation is gone, other calls must see the spend
        abstained = self.is_abstention(request, result.text)
        cached = {name: value for name, value in (("cache_read_tokens", result.cache_read_tokens),
                                                  ("cache_write_tokens", result.cache_write_tokens)) if value}
        await self._journal(self._row(
            request, attempt, ABSTAINED if abstained else ANSWERED, 0, text=result.text,
            input_tokens=result.input_tokens, output_tokens=result.output_tokens, **cached,
            latency_s=round(result.latency_s, 6), cost_usd=cost, raw=result.raw))
        out = self.outcome
        out.input_tokens += result.input_tokens
        out.output_tokens += result.output_tokens
        out.cache_read_tokens += result.cache_read_tokens
        out.cache_write_tokens += result.cache_write_tokens
        out.cost_usd += cost or 0.0
        if self._bar is not None:
            self._bar.set_postfix(tokens=out.input_tokens + out.output_tokens, usd=f"{out.cost_usd:.4f}",
                                  refresh=False)
        if not abstained:
            out.answered += 1
            return False
        out.abstained += 1
        return sum(r["status"] == ABSTAINED for r in self.journal.rows[request.key]) <= self.settings.max_reasks

    async def run(self, requests: list[EvalRequest]) -> RunOutcome:
        queue: asyncio.Queue = asyncio.Queue()
        for request in requests:
            queue.put_nowait(request)
        self._bar = tqdm(total=len(requests), unit="req", desc="evaluate", disable=not self.progress)
        self._calibrated = asyncio.Event()

        async def worker():
            while not self.outcome.stopped:
                try:
                    request = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                limit = self.settings.max_requests
                if limit is not None and self.outcome.started >= limit:
                    self.outcome.stopped = "max_requests"
                    return
                self.outcome.started += 1
                await self._process(request)
                self._bar.update(1)

        started = time.monotonic()
        workers = [asyncio.create_task(worker()) for _ in range(max(1, self.settings.concurrency))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        finally:
            self._bar.close()
            self.outcome.elapsed_s = time.monotonic() - started
            close = getattr(self.provider, "aclose", None)   # optional: release the SDK's connections
            if close is not None:
                await close()
        return self.outcome


def run_requests(provider: Provider, journal: Journal, requests: list[EvalRequest], price: Price | None,
                 settings: EvaluateConfig, is_abstention, progress: bool = False) -> RunOutcome:
    return asyncio.run(Runner(provider, journal, price, settings, is_abstention, progress).run(requests))
