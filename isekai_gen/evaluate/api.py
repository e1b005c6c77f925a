"""`evaluate(settings)`: truth -> grid of requests -> provider -> journal -> predictions -> scorer.

Run folder (`--out RUN_DIR`):

    run.json                 effective settings, task, provider, tool version (a folder holds one task)
    plan.jsonl               one row per request of the grid: key, cell, position, ids, seed, images,
                             bytes, estimated tokens and cost (written by --dry-run too)
    journal.jsonl            fsynced replies keyed by request key (see journal.py)
    resized.json             images that a provider limit made us resize
    cells/<cell>/predictions.jsonl, cells/<cell>/<dataset>_<N>shot_<model>_<B>.pkl
    score/report.json, ...   the scorer's report over all cells (`isekai-gen score` output)
    report.json, report.md   per-cell accounting, Table 3 (latency and cost by batch size), accuracy
                             vs shots with data efficiency

Cells are named `shots-<k>_batch-<b>`; `k` is demonstrations per class (ManyICL) or per side (LCL).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd

from .. import __version__
from ..errors import UserError
from ..fileio import read_json, write_json, write_jsonl
from ..lock import build_lock
from ..scoring.manyicl import extract_answer
from ..scoring.matching import LabelMatcher
from ..scoring.outcomes import check_options
from ..scoring.truth import load_truth
from .batchrun import import_results, run_batch
from .images import ImageCache
from .journal import Journal, request_state
from .outputs import cell_outputs
from .prices import find_price, load_price_table
from .prompts import lcl_requests, manyicl_requests
from .providers import get_provider, split_spec
from .report import write_run_report
from .runner import RunSettings, run_requests
from .tasks import LCLTask, ManyICLTask, load_task

log = logging.getLogger(__name__)


def _cells(task, settings: dict) -> list[dict]:
    out = Path(settings["out"])
    if isinstance(task, LCLTask):
        if settings["batch_size"] != [1]:
            raise UserError(f"--batch-size: {task.truth_path} is an ISEKAI set; LCL asks one query per request (use 1)")
        if max(settings["shots"]) > task.max_shots:
            raise UserError(f"--shots {max(settings['shots'])}: {task.truth_path} has support lists of only "
                            f"{task.max_shots} images per side in some episode")
    cells = []
    for shots in sorted(settings["shots"]):
        n_demos = len(task.demos(shots)) if isinstance(task, ManyICLTask) else 2 * shots
        for batch_size in sorted(settings["batch_size"]):
            name = f"shots-{shots}_batch-{batch_size}"
            cells.append({"name": name, "shots": shots, "batch_size": batch_size, "n_demos": n_demos,
                          "dir": str(out / "cells" / name)})
    return cells


def _test_order(task: ManyICLTask, random_state: int) -> list[int]:
    """prompt.py `work()`'s `test_df.sample(frac=1, random_state=66)`: the permutation depends only on the length."""
    return pd.RangeIndex(len(task.test)).to_series().sample(frac=1, random_state=random_state).tolist()


def _check_limits(request, provider, estimate: tuple[int, int], position: int) -> int:
    """Bytes of the request; one line naming the cell and the limit when it cannot fit."""
    limits, images = provider.limits, request.images()
    where = f"cell {request.cell}: request {position}"
    if limits.max_images is not None and len(images) > limits.max_images:
        raise UserError(f"{where} has {len(images)} images; {provider.name} allows {limits.max_images} per request "
                        "(fewer --shots or a smaller --batch-size)")
    size = sum(len(i.data_b64) for i in images) + sum(len(t.encode()) for t in request.texts())
    if limits.max_request_bytes is not None and size > limits.max_request_bytes:
        raise UserError(f"{where} is {size} bytes; {provider.name} allows {limits.max_request_bytes} per request")
    if limits.context_tokens is not None and sum(estimate) > limits.context_tokens:
        raise UserError(f"{where} needs ~{sum(estimate)} tokens (input + max_tokens); {provider.name} "
                        f"{request.model} has a {limits.context_tokens}-token context")
    return size


def _plan(task, cells, provider, settings, images: ImageCache, price) -> tuple[dict, list[dict]]:
    """requests per cell (in cell order) and the plan rows; limits checked here, before any call."""
    prefix, model = split_spec(settings["model"])
    common = dict(run_seed=settings["seed"], provider=prefix, model=model, images=images,
                  temperature=settings["temperature"])
    order = _test_order(task, settings["test_shuffle_seed"]) if isinstance(task, ManyICLTask) else None
    by_cell, plan = {}, []
    for cell in cells:
        if isinstance(task, ManyICLTask):
            requests = manyicl_requests(task, cell["shots"], cell["batch_size"], order, cell=cell["name"],
                                        tokens_per_query=settings["tokens_per_query"], **common)
        else:
            requests = lcl_requests(task.episodes, cell["shots"], cell=cell["name"],
                                    max_tokens=settings["lcl_max_tokens"], **common)
        by_cell[cell["name"]] = requests
        for position, request in enumerate(requests):
            estimate = provider.estimate_tokens(request)
            size = _check_limits(request, provider, estimate, position)
            plan.append({"key": request.key, "cell": request.cell, "position": position, "ids": list(request.ids),
                         "seed": request.seed, "images": len(request.images()), "bytes": size,
                         "est_input_tokens": estimate[0], "est_output_tokens": estimate[1],
                         "est_cost_usd": price.cost(*estimate) if price else None})
    return by_cell, plan


def abstention_check(task):
    """A reply with no parsable answer: ManyICL, some `Answer Choice i:` line missing; LCL, neither label."""
    if isinstance(task, ManyICLTask):
        return lambda request, text: any(extract_answer(text, n) is None for n in range(1, len(request.ids) + 1))
    matchers = {e.id: LabelMatcher((e.positive_label, e.negative_label)) for e in task.episodes}
    return lambda request, text: not matchers[request.ids[0]].find(text)


# Settings that shape the requests (and the pickle names): a run folder whose journal holds replies
# asked under other values is refused instead of being mixed into one report. The grid (shots,
# batch sizes) may grow or shrink; the endpoint may move (a restarted local server).
REQUEST_SETTINGS = ("model", "seed", "test_shuffle_seed", "temperature", "tokens_per_query", "lcl_max_tokens",
                    "provider_options")


def _check_run_folder(out: Path, task, settings: dict) -> None:
    path = out / "run.json"
    if not path.exists():
        return
    recorded = read_json(path)
    truth = (recorded.get("task") or {}).get("truth")
    if truth != str(task.truth_path.resolve()):
        raise UserError(f"{path}: this run folder evaluates {truth}; use another --out for {task.truth_path}")
    journal = out / "journal.jsonl"
    if not journal.exists() or journal.stat().st_size == 0:
        return   # nothing asked yet (a dry run): the new settings replace the old
    before = recorded.get("settings") or {}
    for name in REQUEST_SETTINGS:
        if before.get(name) != settings[name]:
            raise UserError(f"{path}: the replies in this run folder were asked with {name} = {before.get(name)!r}, "
                            f"not {settings[name]!r}; use another --out (or the same {name}) so runs do not mix")


RUN_SETTINGS = ("concurrency", "max_retries", "retry_base_s", "retry_max_s", "max_reasks", "budget_usd", "max_requests")


def _estimates(plan: list[dict], unique: dict, pending: list, price) -> dict:
    """Estimated tokens (output at max_tokens, the worst case) and dollars of the grid and of what is pending."""
    rows = {row["key"]: row for row in plan}
    out = {}
    for name, keys in (("grid", list(unique)), ("est", [r.key for r in pending])):
        tokens_in = sum(rows[key]["est_input_tokens"] for key in keys)
        tokens_out = sum(rows[key]["est_output_tokens"] for key in keys)
        out.update({f"{name}_input_tokens": tokens_in, f"{name}_output_tokens": tokens_out,
                    f"{name}_cost_usd": price.cost(tokens_in, tokens_out) if price else None})
    return out


def make_provider(settings: dict):
    options = settings["provider_options"]
    if any("key" in name.lower() or "token" in name.lower() for name in options):
        raise UserError("provider_options: credentials are read only from the SDKs' environment variables")
    try:
        provider = get_provider(settings["model"], settings["endpoint"], timeout_s=settings["request_timeout_s"],
                                **options)
    except TypeError as exc:   # an option the provider does not take
        raise UserError(f"provider_options for {settings['model']}: {exc}") from None
    if settings["limits"]:
        provider.limits = dataclasses.replace(provider.limits, **settings["limits"])
    return provider


def evaluate(settings: dict, *, dry_run: bool = False, progress: bool = False) -> dict:
    """Run (or with ``dry_run`` only plan and price) the grid; returns the summary printed by the CLI."""
    task = load_task(settings["truth"], settings["images"])
    # scoring options that cannot apply fail now, not after the calls were paid for
    check_options(load_truth(task.truth_path), settings["parse_failures"], settings["lcl_compat"])
    if settings["submit"] and not settings["batch"]:
        raise UserError("--submit: submits batch-API files; give --batch too")
    provider = make_provider(settings)
    prefix, model = split_spec(settings["model"])
    table, table_source = load_price_table(settings["price_table"])
    price = find_price(table, table_source, prefix, model)
    if settings["budget_usd"] is not None and price is None:
        raise UserError(f"--budget-usd: no price for {settings['model']} in {table_source}; add it there or pass "
                        "--price-table FILE")
    out = Path(settings["out"])
    out.mkdir(parents=True, exist_ok=True)
    with build_lock(out, "evaluate", wait=False):
        _check_run_folder(out, task, settings)
        cells = _cells(task, settings)
        images = ImageCache(provider.limits)
        by_cell, plan = _plan(task, cells, provider, settings, images, price)
        write_json(out / "run.json", {"settings": settings, "tool_version": __version__, "dry_run": dry_run,
                                      "task": {"kind": task.kind, "name": task.name,
                                               "truth": str(task.truth_path.resolve())},
                                      "provider": provider.name, "price": price.source if price else None})
        write_jsonl(out / "plan.jsonl", plan)
        if images.resized:
            write_json(out / "resized.json", images.resized)
        journal = Journal(out / "journal.jsonl")
        try:
            unique = {r.key: r for requests in by_cell.values() for r in requests}
            is_abstention = abstention_check(task)
            batch_price = find_price(table, table_source, prefix, model, batch=True)
            # a dry run writes nothing into the journal, not even batch results
            imported = 0 if dry_run else import_results(provider, out, journal, unique, batch_price, is_abstention,
                                                        settings["max_reasks"])
            resend = ("pending", "reask", "failed") if settings["retry_failed"] else ("pending", "reask")
            pending = [r for key, r in unique.items()
                       if request_state(journal.rows.get(key, []), settings["max_reasks"]) in resend]
            summary = {"cells": len(cells), "requests": len(unique), "pending": len(pending), "images": len(images),
                       "resized": len(images.resized), **_estimates(plan, unique, pending, price),
                       "spent_usd": journal.spent_usd(), "price": price.source if price else None,
                       "run_dir": str(out), "imported": imported, "batch": None}
            budget, spent, est_cost = settings["budget_usd"], summary["spent_usd"], summary["est_cost_usd"]
            if not dry_run and budget is not None and spent + est_cost > budget:
                raise UserError(f"--budget-usd {budget}: the {len(pending)} pending requests may cost up to "
                                f"${est_cost:.4f} (+ ${spent:.4f} spent); raise the budget or shrink the grid")
            if settings["batch"]:
                summary["batch"] = run_batch(provider, pending, out, model=model, endpoint=settings["endpoint"],
                                             submit=settings["submit"], dry_run=dry_run)
                if not dry_run:
                    imported += import_results(provider, out, journal, unique, batch_price, is_abstention,
                                               settings["max_reasks"])
                    summary["imported"] = imported
                    pending = []
            if dry_run:
                return summary
            run_settings = RunSettings(**{name: settings[name] for name in RUN_SETTINGS}, progress=progress)
            outcome = run_requests(provider, journal, pending, price, run_settings, is_abstention)
        finally:
            journal.close()
        rows = [cell_outputs(cell, by_cell[cell["name"]], journal.rows, kind=task.kind,
                             model_spec=settings["model"], max_reasks=settings["max_reasks"], dataset=task.name)
                for cell in cells]
        report = write_run_report(out, task, settings, rows, price)
    summary.update(outcome=dataclasses.asdict(outcome), report=str(out / "report.json"),
                   spent_usd=journal.spent_usd(), value=report.get("value"), metric=report.get("metric"))
    return summary
