"""The run report: the scorer over every cell, then the ManyICL paper's Table 3 and the shot curve.

`report.json` (schema `schemas/evaluate_report.schema.json`): `cells` (per cell: requests done /
pending / failed / abstained, tokens (cache reads and writes among them), dollars and what the
same tokens cost without the prompt cache and at the batch price, per-batch and per-example latency, per-example cost,
and the scorer's metric), `table3` (per shots: those figures by batch size), `curve` and
`data_efficiency` (the scorer's, per batch size), `metric`, and `score` (path of the scorer's
report). `report.md` shows the same as tables.

A cell with unanswered requests (pending or failed) is `complete: false`: its `value` is null
(the scorer would count the unanswered queries wrong), and `answered_value` is the accuracy over
the `answered` queries only, always shown with that count beside it. With `extractor: labels`,
`fallback_value` is the fallback extractor's score, next to (never instead of) the strict one.
"""

from __future__ import annotations

from pathlib import Path

from ..fileio import atomic_write_text, write_json
from ..schema import validate

TABLE3_KEYS = ("shots", "n_demos", "batch_size", "per_batch_latency_s", "per_example_latency_s",
               "per_example_cost_usd", "uncached_cost_usd", "batch_cost_usd", "cost_usd", "value")


def _score(out: Path, task, config, files: list[str], folder: str) -> dict | None:
    from ..scoring import score, write_report

    files = [path for path in files if path and Path(path).stat().st_size > 0]
    if not files:
        return None
    report = score(task.truth_path, files, parse_failures=config.parse_failures, bootstrap=config.bootstrap,
                   seed=config.seed, lcl_compat=config.lcl_compat)
    write_report(report, out / folder)
    return report


def _answered_value(run: dict, config, answered: int) -> float | None:
    """Accuracy over the answered queries: the scorer's correct count over them (accuracy only)."""
    if run["metric"] != "accuracy" or not answered or run["value"] is None:
        return None
    counted_missing = run["failures"].get("missing", 0) if (config.parse_failures == "wrong" or config.lcl_compat) else 0
    scored_answered = run["n_scored"] - counted_missing
    return 100.0 * (run["value"] / 100.0 * run["n_scored"]) / scored_answered if scored_answered else None


def _fmt(value, digits=4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _value_text(cell: dict) -> str:
    if cell["complete"]:
        return _fmt(cell["value"], 2)
    return f"incomplete: {_fmt(cell['answered_value'], 2)} on {cell['answered']} answered"


def _markdown(report: dict) -> str:
    lines = [f"# evaluate: {report['model']} on {report['task']}", "",
             f"metric: {report['metric'] or '-'} (percent); spent ${report['spent_usd']:.4f}"
             f"{'' if report['complete'] else '; INCOMPLETE: some cells have unanswered requests'}", "",
             "| cell | demos | batch | done | pending | failed | abstained | tokens in | cached in | tokens out | $ | "
             "value | std | fallback |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in report["cells"]:
        lines.append(f"| {c['cell']} | {c['n_demos']} | {c['batch_size']} | {c['done']} | {c['pending']} | "
                     f"{c['failed']} | {c['abstained']} | {c['input_tokens']} | {c['cache_read_tokens']} | "
                     f"{c['output_tokens']} | {_fmt(c['cost_usd'])} | {_value_text(c)} | {_fmt(c['std'], 2)} | "
                     f"{_fmt(c.get('fallback_value'), 2)} |")
    lines += ["", "## Cost and latency by batch size (ManyICL Table 3)", "",
              "| shots/class | demos | batch | per-batch latency s | per-example latency s | per-example $ | "
              "$ without cache | $ at batch price | $ paid | value |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["table3"]:
        lines.append("| " + " | ".join(_fmt(row[k], 4 if k != "value" else 2) for k in TABLE3_KEYS) + " |")
    if report.get("data_efficiency"):
        lines += ["", "## Accuracy vs shots", "", "| batch | demos -> value | data efficiency (slope per 10x) |",
                  "|---|---|---|"]
        for series in report["data_efficiency"]:
            points = [p for p in report["curve"] if p["batch_size"] == series["batch_size"]]
            curve = ", ".join(f"{p['shots']}: {_fmt(p['value'], 2)}" for p in points)
            lines.append(f"| {series['batch_size']} | {curve} | {_fmt(series['slope'], 2)} |")
    return "\n".join(lines) + "\n"


def _uncached_cost(row: dict, price) -> float | None:
    """What the cell's tokens would have cost with every input token at the plain input price."""
    if price is None:
        return None
    return row["cost_usd"] + row["cache_read_tokens"] * (price.input_per_token - (price.cache_read_per_token or
                                                                                  price.input_per_token)) \
        + row["cache_write_tokens"] * (price.input_per_token - (price.cache_write_per_token or price.input_per_token))


def _batch_cost(row: dict, batch_price) -> float | None:
    """The cell's tokens at the batch-API price (no cache), for Table 3's batching column."""
    return batch_price.cost(row["input_tokens"], row["output_tokens"]) if batch_price else None


def write_run_report(out: Path, task, config, rows: list[dict], price, batch_price=None) -> dict:
    scored = _score(out, task, config, [row["predictions"] for row in rows], "score")
    fallback = _score(out, task, config, [row.get("fallback_predictions") for row in rows], "score-fallback")
    runs = {(r["shots"], r["batch_size"]): r for r in (scored or {}).get("runs", [])}
    fallback_runs = {(r["shots"], r["batch_size"]): r for r in (fallback or {}).get("runs", [])}
    for row in rows:
        run = runs.get((row["n_demos"], row["batch_size"]))
        complete = row["pending"] == 0 and row["failed"] == 0
        answered = row["examples"]
        extra = fallback_runs.get((row["n_demos"], row["batch_size"]))
        row.update(complete=complete, answered=answered,
                   value=run["value"] if run and complete else None,
                   std=run["std"] if run and complete else None,
                   answered_value=_answered_value(run, config, answered) if run else None,
                   n_scored=run["n_scored"] if run else 0,
                   fallback_value=(extra["value"] if extra and complete else None) if fallback else None,
                   uncached_cost_usd=_uncached_cost(row, price), batch_cost_usd=_batch_cost(row, batch_price))
    table3 = [{key: row[key] for key in TABLE3_KEYS} for row in sorted(rows, key=lambda r: (r["shots"], r["batch_size"]))]
    complete = all(row["complete"] for row in rows)
    report = {
        "task": str(task.truth_path), "kind": task.kind, "model": config.model,
        "metric": scored["metric"] if scored else None,
        "value": scored["value"] if scored and complete else None, "complete": complete,
        "price": price.source if price else None,
        "spent_usd": sum(row["cost_usd"] for row in rows),
        "cells": rows, "table3": table3,
        "curve": (scored or {}).get("curve") if complete else None,
        "data_efficiency": (scored or {}).get("data_efficiency") if complete else None,
        "score": str(out / "score" / "report.json") if scored else None,
        "fallback_score": str(out / "score-fallback" / "report.json") if fallback else None,
    }
    validate(report, "evaluate_report", out / "report.json")
    write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", _markdown(report))
    return report
