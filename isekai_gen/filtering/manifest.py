"""Reading the generation manifest and the reviewer's manual rejects for the filter stage."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError, where
from ..manifest import manifest_path, read_manifest

MANUAL_REJECTS = "manual_rejects.txt"   # in OUT: job ids rejected by a human (``isekai-gen preview``)
# Fields this stage owns; they are recomputed from scratch on every run (idempotent re-runs).
FILTER_FIELDS = ("scores", "kept", "reject_reason", "duplicate_of", "manual_reason")


def load_manifest(out_dir: Path, concept_ids: list[str]) -> list[dict]:
    """Validated manifest rows without previous filter fields; problems name the file and row."""
    rows = read_manifest(out_dir)
    path = manifest_path(out_dir)
    if not rows:
        raise UserError(f"{path}: no rows; run the generation stage first")
    known = set(concept_ids)
    for number, row in enumerate(rows, start=1):
        place = f"{path}: row {number} ({row['job_id']})"
        if row["concept_id"] not in known:
            raise UserError(f"{place}: unknown concept {row['concept_id']!r} (not in this build's catalog)")
        if row["status"] == "ok" and not (row["image"] and row["sha256"]):
            raise UserError(f"{place}: status 'ok' needs an image path and its sha256")
        for name in FILTER_FIELDS:
            row.pop(name, None)
    return rows


def read_manual_rejects(path: Path, job_ids: set[str]) -> set[str]:
    """Job ids listed one per line (``#`` starts a comment); an unknown id names file and line."""
    return set(read_manual_entries(path, job_ids))


def read_manual_entries(path: Path, job_ids: set[str]) -> dict[str, str | None]:
    """Listed job id -> the comment on its line (the reviewer's reason, e.g. ``artefact``), or None."""
    if not path.exists():
        return {}
    rejects: dict[str, str | None] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    for lineno, line in enumerate(lines, start=1):
        job, _, comment = (part.strip() for part in line.partition("#"))
        if not job:
            continue
        if job not in job_ids:
            raise UserError(f"{where(path, lineno)}: unknown job id {job!r} (not in manifest.jsonl)")
        rejects[job] = rejects.get(job) or comment or None
    return rejects
