"""The run report: the scorer over every cell, then the ManyICL paper's Table 3 and the shot curve.

`report.json` (schema `schemas/evaluate_report.schema.json`): `cells` (per cell: requests done /
pending / failed / abstained, tokens, dollars, per-batch and per-example latency, per-example cost,
and the scorer's metric), `table3` (per shots: those figures by batch size), `curve` and
`data_efficiency` (the scorer's, per batch size), `metric`, and `score` (path of the scorer's
report). `report.md` shows the same as tables.
"""

from __future__ import annotations

from pathlib import Path

from ..fileio import atomic_write_text, write_json
from ..schema import validate

TABLE3_KEYS = ("shots", "n_demos", "batch_size", "per_batch_latency_s", "per_example_latency_s",
               "per_example_cost_usd", "value")


def _score(out: Path, task, settings: dict, rows: list[dict]) -> dict | None:
    from ..scoring import score, write_report

    files = [row["predictions"] for row in rows if Path(row["predictions"]).stat().st_size > 0]
    if not files:
        return None
    report = score(task.truth_path, files, parse_failures=settings["parse_failures"], bootstrap=settings["bootstrap"],
                   seed=settings["seed"], lcl_compat=settings["lcl_compat"])
    write_report(report, out / "score")
    return report


def _fmt(value, digits=4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _markdown(report: dict) -> str:
    lines = [f"# evaluate: {report['model']} on {report['task']}", "",
             f"metric: {report['metric'] or '-'} (percent); spent ${report['spent_usd']:.4f}", "",
             "| cell | demos | batch | done | pending | failed | abstained | tokens in | tokens out | $ | value | std |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in report["cells"]:
        lines.append(f"| {c['cell']} | {c['n_demos']} | {c['batch_size']} | {c['done']} | {c['pending']} | "
                     f"{c['failed']} | {c['abstained']} | {c['input_tokens']} | {c['output_tokens']} | "
                     f"{_fmt(c['cost_usd'])} | {_fmt(c['value'], 2)} | {_fmt(c['std'], 2)} |")
    lines += ["", "## Cost and latency by batch size (ManyICL Table 3)", "",
              "| shots/class | demos | batch | per-batch latency s | per-example latency s | per-example $ | value |",
              "|---|---|---|---|---|---|---|"]
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


def write_run_report(out: Path, task, settings: dict, rows: list[dict], price) -> dict:
    scored = _score(out, task, settings, rows)
    runs = {(r["shots"], r["batch_size"]): r for r in (scored or {}).get("runs", [])}
    for row in rows:
        run = runs.get((row["n_demos"], row["batch_size"]))
        row.update(value=run["value"] if run else None, std=run["std"] if run else None,
                   n_scored=run["n_scored"] if run else 0)
    table3 = [{key: row[key] for key in TABLE3_KEYS} for row in sorted(rows, key=lambda r: (r["shots"], r["batch_size"]))]
    report = {
        "task": str(task.truth_path), "kind": task.kind, "model": settings["model"],
        "metric": scored["metric"] if scored else None, "value": scored["value"] if scored else None,
        "price": price.source if price else None,
        "spent_usd": sum(row["cost_usd"] for row in rows),
        "cells": rows, "table3": table3,
        "curve": (scored or {}).get("curve"), "data_efficiency": (scored or {}).get("data_efficiency"),
        "score": str(out / "score" / "report.json") if scored else None,
    }
    validate(report, "evaluate_report", out / "report.json")
    write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", _markdown(report))
    return report
