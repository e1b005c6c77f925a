"""Episodes stage: kept images -> ``OUT/episodes/episodes.jsonl`` (ISEKAI-10 and ISEKAI-pair sets)."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from ..catalog import Catalog
from ..config import BuildConfig
from ..fileio import write_jsonl
from ..curation.pending import refuse_pending
from .inputs import KeptImages, load_kept_images
from .neardup import NearDuplicateGuard
from .pairing import ConceptPair, class_similarity, other_isekai_pairs, real_partner_pairs
from .sampling import SamplingSettings, check_counts, pair_episodes

log = logging.getLogger(__name__)

EPISODES_FILE = Path("episodes") / "episodes.jsonl"
# Set name (as in the original release) -> prefix of its episode ids.
SETS = {"ISEKAI-10": "isekai10", "ISEKAI-pair": "pair"}


def build_episodes(
    config: BuildConfig, catalog: Catalog, kept: KeptImages, *, progress: bool = False
) -> list[dict]:
    """Episode rows of every enabled set; pure function of its inputs. Takes the build config:
    episodes are seeded by the global seed and guarded by the filter's dedup thresholds."""
    section = config.episodes
    settings = SamplingSettings(
        max_shot=section.max_shot,
        queries_per_concept=section.queries_per_concept,
        seed=config.seed,
        guard=NearDuplicateGuard.from_dedup(config.filter.dedup),
    )
    pairs_by_set: dict[str, list[ConceptPair]] = {}
    if section.isekai10.enabled:
        pairs_by_set["ISEKAI-10"] = real_partner_pairs(catalog, section.isekai10.groups)
    # Counts first: hardest-first pairing averages every ISEKAI concept's images.
    involved = {c.id for pairs in pairs_by_set.values() for p in pairs for c in (p.positive, p.negative)}
    if section.pair.enabled:
        involved |= {c.id for c in catalog.concepts if c.world == "isekai"}
    check_counts(kept, [c for c in catalog.concepts if c.id in involved], settings)
    if section.pair.enabled:
        pairs_by_set["ISEKAI-pair"] = other_isekai_pairs(
            catalog, kept, section.pair.partner, section.pair.partners_per_concept, config.seed
        )
    rows = []
    work = [(name, pair) for name, pairs in pairs_by_set.items() for pair in pairs]
    for set_name, pair in tqdm(work, desc="episodes", unit="pair", disable=not progress):
        similarity = class_similarity(kept, [pair.positive.id, pair.negative.id])[0, 1]
        rows.extend(pair_episodes(kept, set_name, SETS[set_name], pair.positive, pair.negative, similarity, settings))
    return rows


def run_episodes(config: BuildConfig, out_dir: Path, catalog: Catalog, *, progress: bool = False) -> dict:
    """Write ``OUT/episodes/episodes.jsonl`` from the kept images; return counts per set."""
    out_dir = Path(out_dir)
    refuse_pending(out_dir, "episodes")  # human decisions not applied yet would ship rejected images
    kept = load_kept_images(out_dir)
    rows = build_episodes(config, catalog, kept, progress=progress)
    write_jsonl(out_dir / EPISODES_FILE, rows)
    counts = {name: sum(r["set"] == name for r in rows) for name in SETS}
    log.info("episodes: %s", ", ".join(f"{name} {n}" for name, n in counts.items()))
    return {"episodes": len(rows), "sets": counts, "path": str(out_dir / EPISODES_FILE)}
