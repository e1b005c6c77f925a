"""`evaluate(config)`: truth -> grid of requests -> provider -> journal -> predictions -> scorer.

Run folder (`--out RUN_DIR`):

    run.json                 effective settings, endpoint, prices, task, provider, tool version (one task per folder)
    plan.jsonl               one row per request of the grid: key, cell, position, ids, seed, images,
                             bytes, estimated tokens and cost (written by --dry-run too)
    journal.jsonl            fsynced replies keyed by request key (see journal.py)
    resized.json             images that a provider limit made us resize
    cells/<cell>/predictions.jsonl, cells/<cell>/<dataset>_<N>shot_<model>_<B>.pkl
    cells/<cell>/predictions.fallback.jsonl   with `extractor: labels`: the fallback extractor's rows
    score/report.json, ...   the scorer's report over all cells (`isekai-gen score` output)
    report.json, report.md   per-cell accounting, Table 3 (latency and cost by batch size), accuracy
                             vs shots with data efficiency; incomplete cells marked incomplete

Cells are named `shots-<k>_batch-<b>`; `k` is demonstrations per class (ManyICL) or per side (LCL).

Outcomes (`summary["unanswered"]`): a run is complete when every request of the grid is answered;
otherwise the summary counts the unanswered requests and names their most common cause, and the
CLI exits non-zero with that one line. Before the first paid call the plan and the estimate are
handed to ``on_plan`` (the CLI prints them) and the provider's preflight checks the endpoint and
the model.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import UserError
from ..fileio import read_json, write_json, write_jsonl
from ..lock import build_lock
from ..scoring.manyicl import extract_answer
from ..scoring.matching import LabelMatcher
from ..scoring.outcomes import check_options
from ..scoring.truth import load_truth
from .batchrun import import_results, run_batch
from .config import DEFAULTS, EvaluateConfig
from .images import ImageCache
from .journal import ABSTAINED, ANSWERED, GAVE_UP, PERMANENT, Journal, read_journal, request_state
from .outputs import cell_outputs
from .plan import build_requests, cells_of, estimates, plan_rows
from .prices import Price, find_price, load_price_table
from .providers import get_provider, split_spec
from .providers.inprocess import InProcessProvider
from .report import write_run_report
from .runner import STOP_REASONS, run_requests
from .tasks import ManyICLTask, load_task

log = logging.getLogger(__name__)


def abstention_check(task):
    """A reply with no parsable answer: ManyICL, some `Answer Choice i:` line missing; LCL, neither label."""
    if isinstance(task, ManyICLTask):
        return lambda request, text: any(extract_answer(text, n) is None for n in range(1, len(request.ids) + 1))
    matchers = {e.id: LabelMatcher((e.positive_label, e.negative_label)) for e in task.episodes}
    return lambda request, text: not matchers[request.ids[0]].find(text)


def _check_run_folder(out: Path, task, config: EvaluateConfig) -> None:
    """One task per folder; answers asked under other request settings are not mixed into one report
    (a folder holding no answer, only errors or nothing, accepts corrected settings)."""
    path = out / "run.json"
    if not path.exists():
        return
    recorded = read_json(path)
    truth = (recorded.get("task") or {}).get("truth")
    if truth != str(task.truth_path.resolve()):
        raise UserError(f"{path}: this run folder evaluates {truth}; use another --out for {task.truth_path}")
    rows = read_journal(out / "journal.jsonl")
    if not any(r["status"] in (ANSWERED, ABSTAINED) for key_rows in rows.values() for r in key_rows):
        return
    before, now = recorded.get("settings") or {}, config.to_dict()
    for name in EvaluateConfig.REQUEST_FIELDS:
        if before.get(name, DEFAULTS.get(name)) != now[name]:
            raise UserError(f"{path}: the replies in this run folder were asked with {name} = "
                            f"{before.get(name, DEFAULTS.get(name))!r}, not {now[name]!r}; use another --out "
                            f"(or the same {name}) so runs do not mix")


def effective_endpoint(config: EvaluateConfig) -> str | None:
    """--endpoint, else the SDK's own environment variable (OPENAI_BASE_URL for openai), else None."""
    if config.endpoint:
        return config.endpoint
    prefix, _ = split_spec(config.model)
    return os.environ.get("OPENAI_BASE_URL") or None if prefix == "openai" else None


def make_provider(config: EvaluateConfig, endpoint: str | None):
    options = dict(config.provider_options)
    if any("key" in name.lower() or "token" in name.lower() for name in options):
        raise UserError("provider_options: credentials are read only from the SDKs' environment variables")
    if config.api_seed is not None and split_spec(config.model)[0] == "openai":
        options.setdefault("api_seed", config.api_seed)
    try:
        provider = get_provider(config.model, endpoint, timeout_s=config.request_timeout_s, **options)
    except TypeError as exc:   # an option the provider does not take
        raise UserError(f"provider_options for {config.model}: {exc}") from None
    if config.limits:
        provider.limits = dataclasses.replace(provider.limits, **config.limits)
    return provider


def find_prices(config: EvaluateConfig, provider) -> tuple[dict, str | None]:
    """Live and batch prices, and a note when the endpoint is left unpriced (see prices.py)."""
    prefix, model = split_spec(config.model)
    if isinstance(provider, InProcessProvider) and config.price_table is None:   # runs here: no per-token bill
        return {"live": Price(0.0, 0.0, f"{prefix}: in-process, no per-token charge"), "batch": None}, None
    table, source = load_price_table(config.price_table)
    if config.price_table is None and not getattr(provider, "own_api", False):
        where = getattr(provider, "endpoint", None) or f"the {provider.name} provider"
        return {"live": None, "batch": None}, (f"{where} is not {prefix}'s own API: "
                                               "not priced from the shipped table (pass --price-table to price it)")
    return {"live": find_price(table, source, prefix, model),
            "batch": find_price(table, source, prefix, model, batch=True)}, None


def _cause(rows: list[dict], max_reasks: int, stopped: str | None) -> str:
    final = rows[-1] if rows else None
    if final is None:
        return f"not sent ({STOP_REASONS.get(stopped, 'the run stopped')})" if stopped else "not sent"
    if final["status"] in (PERMANENT, GAVE_UP):
        return final.get("error", final["status"])
    if request_state(rows, max_reasks) == "reask":
        return "no parsable answer yet (re-ask not sent)"
    return final["status"]


def unanswered(unique: dict, journal_rows: dict, max_reasks: int, stopped: str | None) -> dict:
    """How many requests have no final answer and the most common cause among them."""
    causes = collections.Counter()
    for key in unique:
        rows = journal_rows.get(key, [])
        if request_state(rows, max_reasks) != "done":
            causes[_cause(rows, max_reasks, stopped)] += 1
    count = sum(causes.values())
    cause, times = causes.most_common(1)[0] if causes else (None, 0)
    return {"count": count, "cause": cause, "cause_count": times}


def evaluate(config: EvaluateConfig, *, dry_run: bool = False, progress: bool = False,
             on_plan: Callable[[dict], None] | None = None) -> dict:
    """Run (or with ``dry_run`` only plan and price) the grid; returns the summary printed by the CLI."""
    task = load_task(config.truth, config.images)
    # scoring options that cannot apply fail now, not after the calls were paid for
    check_options(load_truth(task.truth_path), config.parse_failures, config.lcl_compat)
    if config.submit and not config.batch:
        raise UserError("--submit: submits batch-API files; give --batch too")
    endpoint = effective_endpoint(config)
    provider = make_provider(config, endpoint)
    if config.engine == "ray":
        from .ray_backends import check_engine

        check_engine(provider, config)
    prefix, model = split_spec(config.model)
    prices, price_note = find_prices(config, provider)
    price = prices["live"]
    if config.budget_usd is not None and price is None:
        raise UserError(f"--budget-usd: no price for {config.model}"
                        f"{' at ' + endpoint if price_note else ''}; add it to a price table and pass --price-table FILE")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    with build_lock(out, "evaluate", wait=False):
        _check_run_folder(out, task, config)
        cells = cells_of(task, config)
        images = ImageCache(provider.limits)
        by_cell = build_requests(task, cells, config, images)
        plan = plan_rows(by_cell, provider, prices)
        recorded_endpoint = endpoint or (f"https://{provider.official_host}" if getattr(provider, "official_host", None)
                                         else None)
        write_json(out / "run.json", {"settings": config.to_dict(), "tool_version": __version__, "dry_run": dry_run,
                                      "endpoint": recorded_endpoint,
                                      "task": {"kind": task.kind, "name": task.name,
                                               "truth": str(task.truth_path.resolve())},
                                      "provider": provider.name, "price": price.source if price else None,
                                      "price_note": price_note})
        write_jsonl(out / "plan.jsonl", plan)
        if images.resized:
            write_json(out / "resized.json", images.resized)
        journal = Journal(out / "journal.jsonl")
        try:
            unique = {r.key: r for requests in by_cell.values() for r in requests}
            is_abstention = abstention_check(task)
            # a dry run writes nothing into the journal, not even batch results
            imported = 0 if dry_run else import_results(provider, out, journal, unique, prices["batch"],
                                                        is_abstention, config.max_reasks)
            resend = ("pending", "reask", "failed") if config.retry_failed else ("pending", "reask")
            pending = [r for key, r in unique.items()
                       if request_state(journal.rows.get(key, []), config.max_reasks) in resend]
            summary = {"cells": len(cells), "requests": len(unique), "pending": len(pending), "images": len(images),
                       "resized": len(images.resized),
                       **estimates(plan, unique, pending, prices, batch=config.batch),
                       "spent_usd": journal.spent_usd(), "price": price.source if price else None,
                       "price_note": price_note, "endpoint": recorded_endpoint,
                       "run_dir": str(out), "imported": imported, "batch": None, "preflight": None}
            if on_plan is not None:
                on_plan(summary)
            budget, spent, est_cost = config.budget_usd, summary["spent_usd"], summary["est_cost_usd"]
            if not dry_run and budget is not None and spent + est_cost > budget:
                raise UserError(f"--budget-usd {budget}: the {len(pending)} pending requests may cost up to "
                                f"${est_cost:.4f} (+ ${spent:.4f} spent); raise the budget or shrink the grid")
            if config.batch:
                summary["batch"] = run_batch(provider, pending, out, model=model, endpoint=endpoint,
                                             submit=config.submit, dry_run=dry_run)
                if not dry_run:
                    imported += import_results(provider, out, journal, unique, prices["batch"], is_abstention,
                                               config.max_reasks)
                    summary["imported"] = imported
                    pending = []
            if dry_run:
                return summary
            if pending and config.preflight:
                summary["preflight"] = asyncio.run(_preflight(provider))
            run = run_requests
            if config.engine == "ray":
                from .ray_driver import run_on_ray as run
            outcome = run(provider, journal, pending, price, config, is_abstention, progress=progress)
        finally:
            journal.close()
        rows = [cell_outputs(cell, by_cell[cell["name"]], journal.rows, kind=task.kind, model_spec=config.model,
                             max_reasks=config.max_reasks, dataset=task.name, extractor=config.extractor,
                             classes=getattr(task, "classes", None))
                for cell in cells]
        report = write_run_report(out, task, config, rows, price, prices["batch"])
    summary.update(outcome=dataclasses.asdict(outcome), report=str(out / "report.json"),
                   spent_usd=journal.spent_usd(), value=report.get("value"), metric=report.get("metric"),
                   unanswered=unanswered(unique, journal.rows, config.max_reasks, outcome.stopped),
                   trial=config.max_requests is not None)
    return summary


async def _preflight(provider) -> str | None:
    try:
        return await provider.preflight() if hasattr(provider, "preflight") else None
    finally:
        close = getattr(provider, "aclose", None)   # the run's event loop is another one
        if close is not None:
            await close()
