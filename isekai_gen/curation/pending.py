"""The one rule for human decisions: a stage that reads the kept set refuses while any is pending.

A decision (``isekai-gen review``, ``preview --reject-file``) changes ``OUT/manual_rejects.txt``
only; the manifest's ``kept`` flags change when the filter stage runs again, inside ``build``,
which also tops the concept up with new images. Until then the kept set the manifest describes
is not the one the reviewer chose, so ``episodes``, ``export`` (the LCL files included),
``preview`` and ``publish`` refuse in one line naming how many decisions are pending and the
command that applies them, instead of shipping rejected images without a word. Applying them in
each stage instead would leave concepts short of images and every stage with its own idea of
"kept"; refusing keeps the manifest the single definition of the kept set.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..filtering.manifest import MANUAL_REJECTS, read_manual_rejects
from ..manifest import iter_manifest
from .data import pending


def apply_command(out_dir: Path) -> str:
    """The command that applies the decisions: a rebuild with the preset the folder was made with."""
    from ..config import load_config
    from ..resources import preset_names
    from ..run_info import read_run

    try:
        name = read_run(out_dir).get("config", {}).get("name")
    except UserError:
        name = None
    for preset in preset_names():
        if name is not None and load_config(preset).name == name:
            return f"isekai-gen build --preset {preset} --out {out_dir}"
    return f"isekai-gen build --out {out_dir} --config YOUR_CONFIG"


def pending_decisions(out_dir: Path) -> dict[str, list[str]]:
    """``{"reject": [...], "restore": [...]}``: decisions the manifest does not show yet.

    A write interrupted by a kill is completed first (``decisions.recover``), so a decision whose
    history record is durable counts even if the list had not been rewritten yet.
    """
    from .decisions import HISTORY, recover

    out_dir = Path(out_dir)
    # Only the fields `pending` reads: a release manifest has 40,000 rows.
    rows = {row["job_id"]: {k: row.get(k) for k in ("status", "image", "reject_reason", "kept")}
            for row in iter_manifest(out_dir)}
    if (out_dir / HISTORY).exists():
        recover(out_dir, set(rows))
    return pending(rows, read_manual_rejects(out_dir / MANUAL_REJECTS, set(rows)))


def refuse_pending(out_dir: Path, stage: str) -> None:
    """Raise the one-line refusal of ``stage`` when decisions are pending in ``out_dir``."""
    waiting = pending_decisions(out_dir)
    count = len(waiting["reject"]) + len(waiting["restore"])
    if count:
        raise UserError(
            f"{out_dir}: {stage} refused: {count} review decision{'s' * (count != 1)} not applied yet "
            f"({len(waiting['reject'])} to reject, {len(waiting['restore'])} to restore, in {MANUAL_REJECTS}); "
            f"apply them with `{apply_command(out_dir)}`")
