"""What the review pages show, computed from the build folder and cached in memory.

The manifest is the only big input (40,000 rows in a release). It is read once and the page data
derived from it are kept until its modification time or size changes (a build rewrote it); the
manual reject list is small and re-read for every answer, so a decision shows at once.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from ..filtering.manifest import MANUAL_REJECTS, read_manual_entries
from ..manifest import manifest_path, read_manifest
from .decisions import HISTORY, read_history, reviewed

SCORE_KEYS = ("alignment", "margin", "zeroshot_prob", "partner_cosine", "top1")
STRIP = 8   # thumbnails per concept on the overview


def verdict(row: dict) -> str:
    """The manifest's judgement of a row: ``kept``, its reject reason, ``failed`` or ``not scored``."""
    if row.get("status") != "ok" or not row.get("image"):
        return "failed"
    if row.get("reject_reason"):
        return row["reject_reason"]
    return "kept" if row.get("kept") is True else "not scored"


def alignment(row: dict) -> float:
    value = (row.get("scores") or {}).get("alignment")
    return value if isinstance(value, (int, float)) else float("-inf")


def item(row: dict) -> dict:
    """The per-image record a concept page gets."""
    scores = row.get("scores") or {}
    return {
        "job_id": row["job_id"], "index": row["index"], "round": row.get("round", 0),
        "prompt": row["prompt"], "negative_prompt": row["negative_prompt"], "seed": str(row["seed"]),  # 64-bit: a JSON number would lose digits in JavaScript
        "attempt": row["attempt"], "verdict": verdict(row), "duplicate_of": row.get("duplicate_of"),
        "scores": {key: scores.get(key) for key in SCORE_KEYS},
        "image": bool(row.get("image")) and row.get("status") == "ok",
        "sha": (row.get("sha256") or "")[:16], "width": row["width"], "height": row["height"],
    }


def pending(rows_by_id: dict[str, dict], manual: set[str]) -> dict[str, list[str]]:
    """Decisions the manifest does not show yet: listed but not ``manual_reject``, and the reverse.

    A listed ``broken`` image stays ``broken`` (the filter ranks that reason first): not pending.
    """
    rejects = sorted(j for j in manual if j in rows_by_id and verdict(rows_by_id[j]) not in ("manual_reject", "broken", "failed"))
    restores = sorted(j for j, row in rows_by_id.items() if row.get("reject_reason") == "manual_reject" and j not in manual)
    return {"reject": rejects, "restore": restores}


@dataclass
class BuildView:
    """The manifest digested for the pages."""

    rows: dict[str, dict]                  # job id -> manifest row
    concepts: dict[str, list[str]]         # concept id -> its job ids in manifest order
    partner: dict[str, str | None]         # concept id -> the other concept of its group
    groups: list[list[str]]                # concept ids per group, ISEKAI first, in manifest order
    items: dict[str, list[dict]]           # concept id -> page records
    best_kept: dict[str, list[list[str]]]  # concept id -> [job id, sha prefix] of kept images, best aligned first
    overview: dict                         # the overview's data without the decision state
    smoke_test: int                        # rows made with random weights
    reviewable: int                        # rows with an image: what "N of M reviewed" counts

    @classmethod
    def from_rows(cls, rows: list[dict]) -> "BuildView":
        by_id = {row["job_id"]: row for row in rows}
        concepts: dict[str, list[str]] = {}
        group_members: dict[str, list[str]] = {}
        first: dict[str, dict] = {}
        for row in rows:
            if row["concept_id"] not in concepts:
                concepts[row["concept_id"]] = []
                first[row["concept_id"]] = row
                group_members.setdefault(row["group_id"], []).append(row["concept_id"])
            concepts[row["concept_id"]].append(row["job_id"])
        groups = [sorted(members, key=lambda c: first[c]["world"] != "isekai") for members in group_members.values()]
        partner = {}
        for members in groups:
            for concept_id in members:
                others = [c for c in members if c != concept_id]
                partner[concept_id] = others[0] if others else None
        items = {cid: [item(by_id[j]) for j in jobs] for cid, jobs in concepts.items()}
        best_kept = {
            cid: [[r["job_id"], r["sha256"][:16]] for r in sorted(
                (by_id[j] for j in jobs if verdict(by_id[j]) == "kept"), key=lambda r: (-alignment(r), r["job_id"]))]
            for cid, jobs in concepts.items()}
        smoke = sum(row.get("smoke_test") is True for row in rows)

        def summary(concept_id: str) -> dict:
            jobs = [by_id[j] for j in concepts[concept_id]]
            reasons: dict[str, int] = {}
            for row in jobs:
                v = verdict(row)
                if v != "kept":
                    reasons[v] = reasons.get(v, 0) + 1
            head = first[concept_id]
            return {"id": concept_id, "label": head["label"], "world": head["world"], "group": head["group_id"],
                    "generated": len(jobs), "kept": len(best_kept[concept_id]), "rejects": dict(sorted(reasons.items())),
                    "pass_rate": round(len(best_kept[concept_id]) / len(jobs), 4),
                    "reviewable": sum(item["image"] for item in items[concept_id]),
                    "strip": best_kept[concept_id][:STRIP]}

        overview = {
            "groups": [{"group": first[members[0]]["group_id"], "concepts": [summary(c) for c in members]}
                       for members in groups],
            "generated": len(rows), "kept": sum(verdict(r) == "kept" for r in rows), "smoke_test": smoke,
        }
        reviewable = sum(item["image"] for concept_items in items.values() for item in concept_items)
        return cls(by_id, concepts, partner, groups, items, best_kept, overview, smoke, reviewable)


class BuildData:
    """The ``BuildView`` of one build folder, reloaded when the manifest changes."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._view: BuildView | None = None
        self._reviewed: tuple[str, set[str]] = ("", set())

    def view(self) -> BuildView:
        try:
            stat = os.stat(manifest_path(self.out_dir))
        except FileNotFoundError:
            read_manifest(self.out_dir)  # raises its one-line "not found; run generate" error
            raise
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._view, self._stamp = BuildView.from_rows(read_manifest(self.out_dir)), stamp
            return self._view

    def version(self) -> str:
        """Changes whenever a decision is recorded or the list is rewritten: what pages poll for."""
        stamps = []
        for path in (self.out_dir / MANUAL_REJECTS, self.out_dir / HISTORY):
            try:
                stat = os.stat(path)
                stamps.append(f"{stat.st_mtime_ns}-{stat.st_size}")
            except FileNotFoundError:
                stamps.append("none")
        return "/".join(stamps)

    def reviewed(self) -> set[str]:
        """Job ids reviewed so far (``decisions.reviewed``), re-read only when the history changed."""
        stamp = self.version()
        with self._lock:
            if stamp != self._reviewed[0]:
                self._reviewed = (stamp, reviewed(read_history(self.out_dir)))
            return self._reviewed[1]

    def manual(self, view: BuildView) -> dict[str, str | None]:
        """The listed job ids, each with its reason (None when none was given)."""
        return read_manual_entries(self.out_dir / MANUAL_REJECTS, set(view.rows))
