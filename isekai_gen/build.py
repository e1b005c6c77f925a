"""``isekai-gen build``: generate -> filter (with top-up rounds) -> episodes -> splits -> exports.

Every stage is resumable and idempotent, so rerunning a build into the same folder finishes
an interrupted one and recomputes nothing that is already done.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Catalog, build_catalog
from .config import BuildConfig
from .errors import UserError
from .jobs import Shard
from .run_info import write_run_json

log = logging.getLogger(__name__)


@dataclass
class BuildSummary:
    out_dir: Path
    images: int = 0
    kept_per_concept: dict[str, int] = field(default_factory=dict)
    topup_rounds: int = 0
    stages: dict[str, dict] = field(default_factory=dict)


def prepare(config: BuildConfig, out_dir: Path) -> Catalog:
    """Load the catalog and record the run in ``OUT/run.json`` (refusing a mismatched folder)."""
    catalog, path = build_catalog(config)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_run_json(config, out_dir, path)
    return catalog


def topup_counts(starved: dict[str, int], generated: dict[str, int], minimum: int) -> dict[str, int]:
    """Extra jobs per starved concept: the deficit scaled by the concept's observed pass rate,
    plus 25% headroom, so one round usually suffices; at most 4x what the concept already has
    (a concept that keeps almost nothing needs better prompts, not thousands of images)."""
    counts = {}
    for concept_id, kept in sorted(starved.items()):
        deficit = minimum - kept
        so_far = max(generated.get(concept_id, 1), 1)
        wanted = math.ceil(1.25 * deficit * so_far / max(kept, 1))
        counts[concept_id] = max(deficit, min(wanted, 4 * so_far))
    return counts


def run_build(config: BuildConfig, out_dir: Path, *, progress: bool = True, shard: Shard | None = None) -> BuildSummary:
    from .episodes import run_episodes
    from .export.stage import run_export
    from .filtering import run_filter
    from .generation import initial_round, run_generation
    from .manyicl import run_benchmarks

    out_dir = Path(out_dir)
    catalog = prepare(config, out_dir)
    summary = BuildSummary(out_dir)
    rounds = [initial_round(config.generation, catalog)]
    generation = run_generation(config, out_dir, catalog, rounds=rounds, shard=shard or Shard(0, 1), progress=progress)
    if not generation.merged:
        raise UserError(f"{out_dir}: other shards have not finished generating; rerun build once they have")
    minimum = config.filter.min_per_concept
    max_rounds = config.filter.max_topup_rounds
    while True:
        result = run_filter(config, out_dir, catalog, progress=progress)
        if not result.starved:
            break
        if len(rounds) > max_rounds:
            starved = ", ".join(f"{cid} ({kept} kept)" for cid, kept in sorted(result.starved.items()))
            raise UserError(
                f"{out_dir}: after {max_rounds} top-up rounds these concepts still have fewer than {minimum} "
                f"kept images: {starved}; loosen the filter thresholds or raise filter.max_topup_rounds"
            )
        generated = {c.id: sum(r.get(c.id, 0) for r in rounds) for c in catalog.concepts}
        rounds.append(topup_counts(result.starved, generated, minimum))
        log.info("top-up round %d: %s", len(rounds) - 1, rounds[-1])
        run_generation(config, out_dir, catalog, rounds=rounds, progress=progress)
    summary.topup_rounds = len(rounds) - 1
    summary.kept_per_concept = dict(result.kept_per_concept)
    summary.images = sum(sum(r.values()) for r in rounds)
    summary.stages["episodes"] = run_episodes(config, out_dir, catalog, progress=progress)
    # ManyICL splits first: the exporters package them beside the ISEKAI data.
    summary.stages["benchmarks"] = run_benchmarks(config, out_dir, progress=progress)
    summary.stages["export"] = run_export(config, out_dir, catalog, progress=progress)  # LCL files included
    return summary
