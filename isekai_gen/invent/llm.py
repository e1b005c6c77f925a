"""Language-model calls of `catalog invent --writer` and `catalog probe`, through evaluate's runner.

The same machinery as `isekai-gen evaluate` (``isekai_gen.evaluate``: providers, request keys,
the fsynced journal, the runner's concurrency, retries, budget reservation and re-asks, the price
table), so a writer or probe run resumes from its journal, stops at ``--budget-usd``, prices
itself at ``--dry-run`` and reports its cost the same way. A reply that fails its check is an
"abstention" to the runner, which asks again (``max_reasks``); its last reply is then refused.

Run folder: ``run.json`` (settings), ``plan.jsonl`` (one row per request with its estimate),
``journal.jsonl`` (every reply).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import UserError
from ..evaluate.journal import ANSWERED, Journal, request_state
from ..evaluate.prices import find_price, load_price_table
from ..evaluate.prompts import request_key
from ..evaluate.providers import get_provider, split_spec
from ..evaluate.providers.base import EncodedImage, EvalRequest, Part, Turn
from ..evaluate.config import EvaluateConfig
from ..evaluate.runner import run_requests
from ..fileio import read_json, write_json, write_jsonl
from ..lock import build_lock


@dataclass
class LLMSettings:
    spec: str                      # PROVIDER:MODEL
    endpoint: str | None = None
    temperature: float = 0.0
    concurrency: int = 8
    max_retries: int = 6
    max_reasks: int = 2
    budget_usd: float | None = None
    price_table: str | None = None
    request_timeout_s: float = 120.0
    progress: bool = False


def text_request(settings: LLMSettings, *, cell: str, ident: str, system: str | None, text: str,
                 images: tuple[EncodedImage, ...] = (), max_tokens: int = 400) -> EvalRequest:
    """One user turn (images first, then the text) as a provider-neutral request."""
    prefix, model = split_spec(settings.spec)
    parts = tuple(Part(image=image) for image in images) + (Part(text=text),)
    turns = (Turn("user", parts),)
    key = request_key(prefix, model, system, turns, max_tokens, settings.temperature)
    return EvalRequest(key=key, cell=cell, ids=(ident,), seed=0, system=system, turns=turns,
                       max_tokens=max_tokens, temperature=settings.temperature, model=model)


def make_provider(settings: LLMSettings):
    return get_provider(settings.spec, settings.endpoint, timeout_s=settings.request_timeout_s)


def _check_settings(out: Path, settings: LLMSettings, purpose: str) -> None:
    """A run folder holds one purpose and one model: mixing replies of two would mislead."""
    path = out / "run.json"
    if not path.exists() or not (out / "journal.jsonl").exists():
        return
    before = read_json(path)
    for name, value in (("purpose", purpose), ("model", settings.spec), ("temperature", settings.temperature)):
        if before.get(name) != value:
            raise UserError(f"{path}: the replies in this run folder were asked with {name} = {before.get(name)!r}, "
                            f"not {value!r}; use another folder")


def run_llm(out: Path, settings: LLMSettings, requests: list[EvalRequest], is_invalid: Callable[[EvalRequest, str], bool],
            *, purpose: str, dry_run: bool = False, provider=None) -> tuple[dict[str, str | None], dict]:
    """Send what the journal lacks; returns (key -> last accepted reply text or None, cost summary)."""
    provider = provider or make_provider(settings)
    prefix, model = split_spec(settings.spec)
    table, table_source = load_price_table(settings.price_table)
    price = find_price(table, table_source, prefix, model)
    if settings.budget_usd is not None and price is None:
        raise UserError(f"--budget-usd: no price for {settings.spec} in {table_source}; add it there or pass "
                        "--price-table FILE")
    out.mkdir(parents=True, exist_ok=True)
    unique = {r.key: r for r in requests}
    with build_lock(out, purpose, wait=False):
        _check_settings(out, settings, purpose)
        plan = []
        for position, request in enumerate(unique.values()):
            tokens_in, tokens_out = provider.estimate_tokens(request)
            plan.append({"key": request.key, "cell": request.cell, "position": position, "ids": list(request.ids),
                         "est_input_tokens": tokens_in, "est_output_tokens": tokens_out,
                         "est_cost_usd": price.cost(tokens_in, tokens_out) if price else None})
        write_json(out / "run.json", {"purpose": purpose, "model": settings.spec, "endpoint": settings.endpoint,
                                      "temperature": settings.temperature, "max_reasks": settings.max_reasks,
                                      "tool_version": __version__, "price": price.source if price else None})
        write_jsonl(out / "plan.jsonl", plan)
        journal = Journal(out / "journal.jsonl")
        try:
            pending = [r for key, r in unique.items()
                       if request_state(journal.rows.get(key, []), settings.max_reasks) in ("pending", "reask")]
            estimate = sum(p["est_cost_usd"] or 0.0 for p in plan if p["key"] in {r.key for r in pending})
            summary = {"run_dir": str(out), "model": settings.spec, "requests": len(unique), "pending": len(pending),
                       "est_cost_usd": estimate if price else None, "price": price.source if price else None,
                       "spent_usd": journal.spent_usd(), "outcome": None}
            if dry_run:
                return {}, summary
            if settings.budget_usd is not None and summary["spent_usd"] + estimate > settings.budget_usd:
                raise UserError(f"--budget-usd {settings.budget_usd}: the {len(pending)} pending requests may cost up "
                                f"to ${estimate:.4f} (+ ${summary['spent_usd']:.4f} spent); raise the budget")
            # the runner reads its knobs from an evaluate run config; the rest keep their defaults
            run_config = EvaluateConfig(truth=purpose, model=settings.spec, shots=(0,), out=str(out),
                                        endpoint=settings.endpoint, concurrency=settings.concurrency,
                                        max_retries=settings.max_retries, max_reasks=settings.max_reasks,
                                        budget_usd=settings.budget_usd, temperature=settings.temperature,
                                        request_timeout_s=settings.request_timeout_s)
            outcome = run_requests(provider, journal, pending, price, run_config, is_invalid, settings.progress)
        finally:
            journal.close()
    summary.update(outcome=dataclasses.asdict(outcome), spent_usd=journal.spent_usd())
    if outcome.stopped:
        raise UserError(f"{out}: {purpose} stopped ({outcome.stopped}"
                        f"{': ' + outcome.last_error if outcome.last_error else ''}); "
                        "run the same command again to resume from the journal")
    unfinished = [key for key in unique
                  if request_state(journal.rows.get(key, []), settings.max_reasks) == "pending"]
    if unfinished:
        raise UserError(f"{out}: {len(unfinished)} of {len(unique)} {purpose} requests got no reply (the provider "
                        "kept failing); run the same command again to resume from the journal")
    texts = {}
    for key in unique:
        rows = [r for r in journal.rows.get(key, []) if r["status"] in (ANSWERED, "abstained")]
        answered = [r for r in rows if r["status"] == ANSWERED]
        texts[key] = answered[-1]["text"] if answered else None
    return texts, summary
