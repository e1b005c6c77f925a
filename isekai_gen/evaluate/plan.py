"""The grid of a run: cells, their requests, the plan rows, limits checked and money estimated.

Everything here happens before the first call, so `--dry-run` shows exactly what a live run
would send and pay: requests built and checked against the provider's limits (images, bytes,
context), tokens estimated with each provider's formula (output at `max_tokens`, the worst case),
and the dollars of the grid priced three ways — live, live with the prompt cache (cache-friendly
demo order: the demo block is written once per cell and read by every later request of it), and
through the batch API.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from ..errors import UserError
from .config import EvaluateConfig
from .images import ImageCache
from .prices import Price
from .prompts import lcl_requests, manyicl_requests
from .providers import split_spec
from .tasks import LCLTask, ManyICLTask


def cells_of(task, config: EvaluateConfig) -> list[dict]:
    out = Path(config.out)
    if isinstance(task, LCLTask):
        if tuple(config.batch_size) != (1,):
            raise UserError(f"--batch-size: {task.truth_path} is an ISEKAI set; LCL asks one query per request (use 1)")
        if max(config.shots) > task.max_shots:
            raise UserError(f"--shots {max(config.shots)}: {task.truth_path} has support lists of only "
                            f"{task.max_shots} images per side in some episode")
        if config.demo_order == "cache-friendly":
            raise UserError("--demo-order cache-friendly: each ISEKAI episode has its own support images, so no "
                            "demo block is shared between requests; use the default per-request order")
    cells = []
    for shots in sorted(config.shots):
        n_demos = len(task.demos(shots)) if isinstance(task, ManyICLTask) else 2 * shots
        for batch_size in sorted(config.batch_size):
            name = f"shots-{shots}_batch-{batch_size}"
            cells.append({"name": name, "shots": shots, "batch_size": batch_size, "n_demos": n_demos,
                          "dir": str(out / "cells" / name)})
    return cells


def test_order(task: ManyICLTask, random_state: int) -> list[int]:
    """prompt.py `work()`'s `test_df.sample(frac=1, random_state=66)`: the permutation depends only on the length."""
    return pd.RangeIndex(len(task.test)).to_series().sample(frac=1, random_state=random_state).tolist()


def request_size(request) -> int:
    """Bytes of the request's payload: base64 of its images and UTF-8 of its texts."""
    return sum(len(i.data_b64) for i in request.images()) + sum(len(t.encode()) for t in request.texts())


def check_limits(request, provider, estimate: tuple[int, int], position: int) -> int:
    """Bytes of the request; one line naming the cell and the limit when it cannot fit."""
    limits, images = provider.limits, request.images()
    where = f"cell {request.cell}: request {position}"
    if limits.max_images is not None and len(images) > limits.max_images:
        raise UserError(f"{where} has {len(images)} images; {provider.name} allows {limits.max_images} per request "
                        "(fewer --shots or a smaller --batch-size)")
    size = request_size(request)
    if limits.max_request_bytes is not None and size > limits.max_request_bytes:
        raise UserError(f"{where} is {size} bytes; {provider.name} allows {limits.max_request_bytes} per request")
    if limits.context_tokens is not None and sum(estimate) > limits.context_tokens:
        raise UserError(f"{where} needs ~{sum(estimate)} tokens (input + max_tokens); {provider.name} "
                        f"{request.model} has a {limits.context_tokens}-token context")
    return size


def prefix_tokens(provider, request) -> int:
    """Estimated input tokens of the request's cacheable prefix (its demo block), 0 without one."""
    if not request.cache_prefix:
        return 0
    first = request.turns[0]
    head = dataclasses.replace(request, turns=(dataclasses.replace(first, parts=first.parts[:request.cache_prefix]),),
                               system=None)
    return provider.estimate_tokens(head)[0]


def build_requests(task, cells, config: EvaluateConfig, images: ImageCache) -> dict[str, list]:
    """The requests of every cell, in cell order."""
    prefix, model = split_spec(config.model)
    common = dict(run_seed=config.seed, provider=prefix, model=model, images=images, temperature=config.temperature)
    order = test_order(task, config.test_shuffle_seed) if isinstance(task, ManyICLTask) else None
    by_cell = {}
    for cell in cells:
        if isinstance(task, ManyICLTask):
            by_cell[cell["name"]] = manyicl_requests(
                task, cell["shots"], cell["batch_size"], order, cell=cell["name"],
                tokens_per_query=config.tokens_per_query, max_tokens_cap=config.max_tokens,
                demo_order=config.demo_order, mark_cache=config.prompt_cache, **common)
        else:
            by_cell[cell["name"]] = lcl_requests(task.episodes, cell["shots"], cell=cell["name"],
                                                 max_tokens=config.max_tokens_for(config.lcl_max_tokens), **common)
    return by_cell


def plan_rows(by_cell: dict, provider, prices: dict) -> list[dict]:
    """One row per request; limits checked here, before any call. ``prices``: "live" and "batch" (or None)."""
    plan = []
    for requests in by_cell.values():
        for position, request in enumerate(requests):
            estimate = provider.estimate_tokens(request)
            size = check_limits(request, provider, estimate, position)
            live = prices.get("live")
            plan.append({"key": request.key, "cell": request.cell, "position": position, "ids": list(request.ids),
                         "seed": request.seed, "images": len(request.images()), "bytes": size,
                         "est_input_tokens": estimate[0], "est_output_tokens": estimate[1],
                         "est_prefix_tokens": prefix_tokens(provider, request),
                         "est_cost_usd": live.cost(*estimate) if live else None})
    return plan


# The shortest prefix the providers cache: 1,024 tokens (OpenAI "Prompt caching"; Anthropic for
# Sonnet/Opus models — Haiku needs 2,048); a shorter demo block is priced as uncached.
MIN_CACHED_PREFIX = 1024


def _cost(price: Price | None, rows: list[dict], cached: bool) -> float | None:
    """Dollars of the rows; with ``cached``, the first request of each cell writes its demo block
    into the cache and every later one reads it (what the cache-friendly order makes possible)."""
    if price is None:
        return None
    total, written = 0.0, set()
    for row in rows:
        tokens_in, tokens_out, head = row["est_input_tokens"], row["est_output_tokens"], row["est_prefix_tokens"]
        if not cached or head < MIN_CACHED_PREFIX:
            total += price.cost(tokens_in, tokens_out)
        elif row["cell"] in written:
            total += price.cost(tokens_in, tokens_out, cache_read=head)
        else:
            written.add(row["cell"])
            total += price.cost(tokens_in, tokens_out, cache_write=head)
    return total


def estimates(plan: list[dict], unique: dict, pending: list, prices: dict, *, batch: bool) -> dict:
    """Tokens and dollars of the grid and of what is pending (output at max_tokens, the worst case).

    `*_cost_usd` is what this run would pay (batch price with --batch); `*_uncached_cost_usd`,
    `*_cached_cost_usd` and `*_batch_cost_usd` show what caching and batching change."""
    rows = {row["key"]: row for row in plan}
    out = {}
    live, batch_price = prices.get("live"), prices.get("batch")
    cacheable = any(row["est_prefix_tokens"] >= MIN_CACHED_PREFIX for row in plan)
    for name, keys in (("grid", list(unique)), ("est", [r.key for r in pending])):
        chosen = [rows[key] for key in keys]
        tokens_in = sum(row["est_input_tokens"] for row in chosen)
        tokens_out = sum(row["est_output_tokens"] for row in chosen)
        uncached = _cost(live, chosen, cached=False)
        cached = _cost(live, chosen, cached=True) if cacheable else None
        in_batch = _cost(batch_price, chosen, cached=False)
        paid = in_batch if batch else (cached if cached is not None else uncached)
        out.update({f"{name}_input_tokens": tokens_in, f"{name}_output_tokens": tokens_out,
                    f"{name}_cost_usd": paid, f"{name}_uncached_cost_usd": uncached,
                    f"{name}_cached_cost_usd": cached, f"{name}_batch_cost_usd": in_batch})
    return out
