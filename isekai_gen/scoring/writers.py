"""Human-readable outputs of a score report: the stdout summary, report.md, report.json and plots."""

from __future__ import annotations

from pathlib import Path

from ..fileio import atomic_write_bytes, write_json
from ..schema import validate
from .plots import plot_points


def _number(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _interval(ci95) -> str:
    return "n/a" if ci95 is None else f"[{ci95[0]:.2f}, {ci95[1]:.2f}]"


def _run_label(result: dict) -> str:
    details = [f"{key} {result[key]}" for key in ("model", "shots", "batch_size") if result[key] is not None]
    return result["source"] + (f" ({', '.join(details)})" if details else "")


def _run_lines(result: dict) -> list[str]:
    failures = result["failures"]
    return [
        f"{result['metric']} {_number(result['value'])} +- {_number(result['std'])} (bootstrap std; 95% CI "
        f"{_interval(result['ci95'])})",
        f"scored {result['n_scored']} of {result['n_total']} ({result['n_total'] - result['n_scored']} dropped); "
        f"unparsed {result['n_unparsed']} (no label {failures['no_label']}, several labels "
        f"{failures['several_labels']}, no answer {failures['no_answer']}); missing {failures['missing']}; "
        f"unknown ids {result['n_unknown_ids']}",
    ]


def format_summary(report: dict) -> str:
    """A few lines for the terminal: truth, settings, each run, curve and comparison."""
    truth, settings = report["truth"], report["settings"]
    lines = [
        f"truth: {truth['source']} ({truth['kind']}, {truth['n_items']} items, {len(truth['classes'])} classes, "
        f"{'multi-label' if truth['multilabel'] else 'single-label'})",
        f"parse failures: {settings['parse_failures']}{' (--lcl-compat: LCL metric)' if settings['lcl_compat'] else ''}; "
        f"bootstrap {settings['bootstrap']} resamples, seed {settings['seed']}; values in percent",
    ]
    for result in report["runs"]:
        lines.append(f"run: {_run_label(result)}")
        lines.extend("  " + line for line in _run_lines(result))
    for entry in report.get("data_efficiency", []):
        who = ", ".join(f"{k} {entry[k]}" for k in ("model", "batch_size") if entry[k] is not None) or "predictions"
        slope = _number(entry["slope"]) if entry["slope"] is not None else entry["note"]
        lines.append(f"ICL data efficiency ({who}; shots {entry['shots']}): {slope}")
    if "compare" in report:
        c = report["compare"]
        lines.append(f"compare: {c['a']} - {c['b']} on {c['n_items']} items: {_number(c['difference'])} "
                     f"+- {_number(c['std'])} (95% CI {_interval(c['ci95'])}; {_number(c['value_a'])} vs "
                     f"{_number(c['value_b'])})")
    return "\n".join(lines)


def _table(header: list[str], rows: list[list]) -> list[str]:
    cells = [[str(cell) for cell in row] for row in rows]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in cells)]


def _points_table(points: list[dict]) -> list[str]:
    return _table(["model", "batch size", "shots", "value", "std", "95% CI", "scored", "unparsed"],
                  [[p["model"] or "", p["batch_size"] or "", p["shots"] if p["shots"] is not None else "",
                    _number(p["value"]), _number(p["std"]), _interval(p["ci95"]), f"{p['n_scored']}/{p['n_total']}",
                    p["n_unparsed"]] for p in points])


def format_markdown(report: dict) -> str:
    lines = ["# Score report", "", "```", format_summary(report), "```", "", "## Per class (first run)", ""]
    per_class = report["per_class"]
    columns = list(next(iter(per_class.values())).keys()) if per_class else []
    lines += _table(["class", *columns], [[name, *(_number(v) if isinstance(v, float) else v for v in row.values())]
                                          for name, row in per_class.items()])
    confusion = report["confusion"]
    if confusion and "matrix" in confusion:
        lines += ["", "## Confusion matrix (rows: truth, columns: prediction)", ""]
        lines += _table(["", *confusion["columns"]], [[name, *row] for name, row in zip(confusion["labels"], confusion["matrix"])])
    elif confusion:
        lines += ["", "## Per-class counts", ""]
        lines += _table(["class", "tp", "fp", "fn", "tn"],
                        [[name, *counts.values()] for name, counts in confusion["per_class"].items()])
    if "curve" in report:
        lines += ["", "## Shot curve", "", "![curve](curve.png)", ""] + _points_table(report["curve"])
        lines += ["", "ICL data efficiency: slope of the metric on log10(N+1) through the zero-shot point.", ""]
        lines += _table(["model", "batch size", "shots", "zero-shot", "slope"],
                        [[e["model"] or "", e["batch_size"] or "", e["shots"], _number(e["zero_shot"]),
                          _number(e["slope"]) if e["slope"] is not None else e["note"]] for e in report["data_efficiency"]])
    if "by_batch_size" in report:
        lines += ["", "## By batch size", "", "![batch size](batch_size.png)", ""] + _points_table(report["by_batch_size"])
    return "\n".join(lines) + "\n"


PLOTS = {"curve.png", "batch_size.png"}


def write_report(report: dict, out_dir) -> list[Path]:
    """Write report.json, report.md and the plots into ``out_dir``; returns the written paths."""
    validate(report, "score_report", "score report")
    out_dir = Path(out_dir)
    files = {"report.md": format_markdown(report).encode("utf-8")}
    if "curve" in report:
        files["curve.png"] = plot_points(report["curve"], "shots", ("model", "batch_size"), report["metric"])
    if "by_batch_size" in report:
        files["batch_size.png"] = plot_points(report["by_batch_size"], "batch_size", ("model", "shots"), report["metric"])
    write_json(out_dir / "report.json", report)
    for name, data in files.items():
        atomic_write_bytes(out_dir / name, data)
    for name in PLOTS.difference(files):  # an earlier report's plot would contradict this one
        (out_dir / name).unlink(missing_ok=True)
    return [out_dir / "report.json", *(out_dir / name for name in files)]
