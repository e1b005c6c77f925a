"""The filter report: ``report.json``, ``report.md`` and per-world score histograms (PNG)."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np

from ..config import FilterConfig
from ..fileio import atomic_write_bytes, atomic_write_text, write_json
from .rules import REJECT_REASONS

# Cross-concept pairs listed in full; the count is always exact.
MAX_LISTED_PAIRS = 200
HISTOGRAMS = ("alignment", "margin")  # each drawn with its threshold (filter.min_<metric>) in mode thresholds


def _rate(kept: int, total: int) -> float | None:
    return round(kept / total, 4) if total else None


def build_report(rows: list[dict], catalog, settings: FilterConfig, model: dict, decisions, starved: dict) -> dict:
    """Counts per concept, world and reason, from the final manifest rows."""
    per_concept = []
    for concept in catalog.concepts:
        mine = [row for row in rows if row["concept_id"] == concept.id]
        kept = sum(row["kept"] for row in mine)
        reasons = Counter(row["reject_reason"] for row in mine if row["reject_reason"])
        per_concept.append({
            "concept_id": concept.id, "world": concept.world, "group_id": concept.group,
            "rows": len(mine), "kept": kept, "pass_rate": _rate(kept, len(mine)),
            "reasons": {reason: reasons.get(reason, 0) for reason in REJECT_REASONS},
            "starved": concept.id in starved,
        })
    per_world = {}
    for world in sorted({c["world"] for c in per_concept}):
        mine = [c for c in per_concept if c["world"] == world]
        total, kept = sum(c["rows"] for c in mine), sum(c["kept"] for c in mine)
        per_world[world] = {"rows": total, "kept": kept, "pass_rate": _rate(kept, total)}
    reasons = Counter(row["reject_reason"] for row in rows if row["reject_reason"])
    kept_total = sum(row["kept"] for row in rows)
    by_reason = {name: {"count": reasons.get(name, 0), "meaning": text} for name, text in REJECT_REASONS.items()}
    if reasons.get("manual_reject"):  # the reviewers' reasons (absent without manual rejects)
        by_reason["manual_reject"]["by_reviewer_reason"] = dict(sorted(Counter(
            row.get("manual_reason") or "none given" for row in rows if row["reject_reason"] == "manual_reject").items()))
    return {
        "model": model,
        "settings": settings.to_dict(),
        "totals": {"rows": len(rows), "kept": kept_total, "pass_rate": _rate(kept_total, len(rows))},
        "reasons": by_reason,
        "per_world": per_world,
        "per_concept": per_concept,
        "starved": starved,
        "duplicate_pairs_in_concept": decisions.duplicate_pairs,
        "cross_concept_near_duplicates": {
            "count": len(decisions.cross_concept),
            "note": "reported, not removed: near-duplicates across concepts are a sign of concept collapse",
            "pairs": decisions.cross_concept[:MAX_LISTED_PAIRS],
        },
    }


def render_markdown(report: dict) -> str:
    model = report["model"]
    totals = report["totals"]
    lines = [
        "# Filter report", "",
        f"Model: `{model['model']}` (`{model['pretrained']}`). Scores are raw cosines.", "",
        f"Kept {totals['kept']} of {totals['rows']} images (pass rate {totals['pass_rate']}).", "",
        "## Reasons", "", "| reason | count | meaning |", "|---|---:|---|",
    ]
    lines += [f"| `{name}` | {r['count']} | {r['meaning']} |" for name, r in report["reasons"].items()]
    if "by_reviewer_reason" in report["reasons"]["manual_reject"]:
        given = ", ".join(f"{why} {n}" for why, n in report["reasons"]["manual_reject"]["by_reviewer_reason"].items())
        lines += ["", f"Manual rejects by the reviewer's reason: {given}."]
    lines += ["", "## Per world", "", "| world | rows | kept | pass rate |", "|---|---:|---:|---:|"]
    lines += [f"| {w} | {r['rows']} | {r['kept']} | {r['pass_rate']} |" for w, r in report["per_world"].items()]
    lines += ["", "## Per concept", "", "| concept | world | rows | kept | pass rate | rejected by |",
              "|---|---|---:|---:|---:|---|"]
    for c in report["per_concept"]:
        why = ", ".join(f"{k} {v}" for k, v in c["reasons"].items() if v) or "-"
        flag = " (starved)" if c["starved"] else ""
        lines.append(
            f"| {c['concept_id']}{flag} | {c['world']} | {c['rows']} | {c['kept']} | {c['pass_rate']} | {why} |")
    cross = report["cross_concept_near_duplicates"]
    lines += ["", "## Near-duplicates across concepts", "", f"{cross['count']} pair(s); {cross['note']}.", ""]
    if cross["pairs"]:
        lines += ["| layer | a | b | value |", "|---|---|---|---:|"]
        lines += [f"| {p['layer']} | {p['a']} | {p['b']} | {p['value']} |" for p in cross["pairs"]]
    lines += ["", "## Histograms", "", "![alignment](hist_alignment.png)", "", "![margin](hist_margin.png)", ""]
    return "\n".join(lines)


def histogram_png(rows: list[dict], catalog, metric: str, threshold: float | None) -> bytes:
    """One panel per world: the metric for all scored images and for the kept ones."""
    from matplotlib.figure import Figure

    worlds = sorted({c.world for c in catalog.concepts})
    world_of = {c.id: c.world for c in catalog.concepts}
    figure = Figure(figsize=(5 * len(worlds), 3.5), dpi=80)
    for k, world in enumerate(worlds):
        axes = figure.add_subplot(1, len(worlds), k + 1)
        scored = [r for r in rows if r["scores"] and world_of[r["concept_id"]] == world]
        values = np.array([r["scores"][metric] for r in scored], dtype=float)
        kept = np.array([r["scores"][metric] for r in scored if r["kept"]], dtype=float)
        bins = np.histogram_bin_edges(values, bins=30) if len(values) else 10
        axes.hist(values, bins=bins, color="0.75", label=f"scored ({len(values)})")
        axes.hist(kept, bins=bins, color="tab:blue", label=f"kept ({len(kept)})")
        if threshold is not None:
            axes.axvline(threshold, color="tab:red", linestyle="--", label=f"threshold {threshold}")
        axes.set_title(f"{metric} - {world}")
        axes.set_xlabel(f"{metric} (raw cosine)")
        axes.legend(fontsize="small", loc="upper right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def write_report(folder: Path, report: dict, rows: list[dict], catalog, settings: FilterConfig) -> None:
    write_json(folder / "report.json", report)
    atomic_write_text(folder / "report.md", render_markdown(report))
    thresholds = {"alignment": settings.min_alignment, "margin": settings.min_margin}
    for metric in HISTOGRAMS:
        threshold = thresholds[metric] if settings.mode == "thresholds" else None
        atomic_write_bytes(folder / f"hist_{metric}.png", histogram_png(rows, catalog, metric, threshold))
