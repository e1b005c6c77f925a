"""Batch-API runs inside a run folder: request files out, result files back into the journal.

- `--batch` writes the pending requests as the provider's batch request files into
  `RUN_DIR/batch/` (`batch.py`; `--dry-run --batch` writes them too and sends nothing); with
  `--submit` they are submitted, polled until they end, and their results downloaded there.
- Every run first imports result files found in `RUN_DIR/batch/` (`<provider>-results-*.jsonl`,
  `<provider>-errors-*.jsonl`, downloaded by `--submit` or by hand from the provider's console)
  into the journal, priced at the table's batch discount; requests they answer are not sent again.
  Results the provider marks retryable (expired, canceled) stay pending. Abstentions are not
  re-asked in batch mode (a live rerun without `--batch` does that).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from ..fileio import read_json
from . import batch
from .journal import ABSTAINED, ANSWERED, PERMANENT, Journal, request_state
from .providers.base import PermanentError

log = logging.getLogger(__name__)


def batch_folder(out: Path) -> Path:
    return out / "batch"


def import_results(provider, out: Path, journal: Journal, requests: dict, price, is_abstention,
                   max_reasks: int) -> int:
    """Journal the batch results of still-open requests; returns how many were imported."""
    paths = batch.result_files(batch_folder(out), provider.name)
    if not paths:
        return 0
    results = batch.read_results(provider, paths, expected_keys=set(requests))
    imported = 0
    for key, outcome in results.records:
        if request_state(journal.rows.get(key, []), max_reasks) not in ("pending", "reask"):
            continue
        request = requests[key]
        base = {"key": key, "cell": request.cell, "attempt": len(journal.rows.get(key, [])), "retries": 0,
                "time": time.time(), "batch": True}
        if isinstance(outcome, PermanentError):
            journal.append({**base, "status": PERMANENT, "error": str(outcome)})
        else:
            status = ABSTAINED if is_abstention(request, outcome.text) else ANSWERED
            journal.append({**base, "status": status, "text": outcome.text, "input_tokens": outcome.input_tokens,
                            "output_tokens": outcome.output_tokens, "latency_s": outcome.latency_s,
                            "cost_usd": price.cost(outcome.input_tokens, outcome.output_tokens) if price else None,
                            "raw": outcome.raw})
        imported += 1
    if results.resend:
        log.info("batch: %d results asked to be sent again (expired, canceled, retryable)", len(results.resend))
    return imported


def _submitted(folder: Path) -> bool:
    state_path = folder / batch.STATE_NAME
    return state_path.exists() and bool(read_json(state_path).get("jobs"))


def run_batch(provider, pending: list, out: Path, *, model: str, endpoint: str | None, submit: bool,
              dry_run: bool) -> str:
    """Write (and with ``submit`` send and collect) the batch files; returns a line for the user."""
    folder = batch_folder(out)
    if not _submitted(folder):
        if not pending:
            return "batch: nothing pending"
        paths = batch.write_request_files(provider, pending, folder, model=model)
        line = f"batch: wrote {len(paths)} request files for {len(pending)} requests into {folder}"
        if dry_run or not submit:
            return line + ("" if dry_run else "; submit them (or rerun with --submit), put the result files "
                           "there and rerun to read them")
        asyncio.run(batch.submit(folder, endpoint))
    elif dry_run:
        return f"batch: jobs already submitted from {folder}; nothing written"
    jobs = asyncio.run(batch.poll(folder, endpoint, wait=submit))
    done = sum(bool(job.get("downloaded")) for job in jobs.values())
    return f"batch: {done} of {len(jobs)} jobs ended and downloaded into {folder}"
