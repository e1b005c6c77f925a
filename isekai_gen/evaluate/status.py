"""`isekai-gen evaluate status RUN_DIR`: done / pending / failed / spent per cell, from the files alone."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError, where
from ..fileio import read_json, read_jsonl
from ..schema import validate
from .journal import read_journal, request_state


def run_status(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file() or not (run_dir / "plan.jsonl").is_file():
        raise UserError(f"{run_dir}: not an evaluate run folder (no run.json / plan.jsonl)")
    run = read_json(run_dir / "run.json")
    try:
        max_reasks, model, truth = run["settings"]["max_reasks"], run["settings"]["model"], run["task"]["truth"]
    except (KeyError, TypeError):
        raise UserError(f"{run_dir / 'run.json'}: not written by isekai-gen evaluate (no settings / task)") from None
    journal = read_journal(run_dir / "journal.jsonl")
    cells: dict[str, dict] = {}
    seen = set()
    for number, row in enumerate(read_jsonl(run_dir / "plan.jsonl"), start=1):
        validate(row, "evaluate_plan_row", where(run_dir / "plan.jsonl", number))
        cell = cells.setdefault(row["cell"], {"cell": row["cell"], "requests": 0, "done": 0, "pending": 0,
                                              "failed": 0, "spent_usd": 0.0})
        cell["requests"] += 1
        rows = journal.get(row["key"], [])
        state = request_state(rows, max_reasks)
        cell[{"done": "done", "failed": "failed"}.get(state, "pending")] += 1
        if row["key"] not in seen:   # a request shared by two cells is paid once
            seen.add(row["key"])
            cell["spent_usd"] += sum(r.get("cost_usd") or 0.0 for r in rows)
    totals = {key: sum(c[key] for c in cells.values()) for key in ("requests", "done", "pending", "failed", "spent_usd")}
    return {"run_dir": str(run_dir), "model": model, "task": truth,
            "cells": list(cells.values()), **totals}


def format_status(status: dict) -> str:
    lines = [f"{status['run_dir']}: {status['model']} on {status['task']}",
             f"{'cell':<24} {'requests':>8} {'done':>6} {'pending':>8} {'failed':>7} {'spent $':>10}"]
    for c in [*status["cells"], {"cell": "total", **status}]:
        lines.append(f"{c['cell']:<24} {c['requests']:>8} {c['done']:>6} {c['pending']:>8} {c['failed']:>7} "
                     f"{c['spent_usd']:>10.4f}")
    return "\n".join(lines)
