"""The filter stage: score every generated image, apply the rules, rewrite the manifest.

Reads ``OUT/manifest.jsonl`` and ``OUT/images/``; writes the manifest back (atomically) with
``scores``, ``kept``, ``reject_reason`` and ``duplicate_of`` on every row, plus
``OUT/filter/{embeddings.npz, report.json, report.md, hist_alignment.png, hist_margin.png}``.
Everything is recomputed from the manifest on each run (image and text embeddings come from the
cache; the model loads only for what it lacks), so re-running with the same inputs writes the
same bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..catalog import Catalog
from ..config import BuildConfig
from ..errors import UserError
from ..fileio import sha256_file
from ..manifest import write_manifest
from ..storage import fetch_images, worker_sources
from .cache import EmbeddingCache, TextEmbeddingCache
from .embedder import Embedder, LazyOpenClip, concept_text_embeddings, embedder_description
from .embedding_pass import embed_missing
from .manifest import MANUAL_REJECTS, load_manifest, read_manual_entries
from .npz import write_npz
from .report import build_report, write_report
from .rules import decide
from .scores import ScoreTable, cosine_scores

log = logging.getLogger(__name__)

QUANTILES = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)


@dataclass
class FilterResult:
    kept_per_concept: dict[str, int]
    starved: dict[str, int]                 # concepts below filter.min_per_concept -> kept count
    reasons: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    rows: int = 0
    embedded: int = 0                       # images that needed the model (not in the cache)


def _image_paths(out_dir: Path, rows: list[dict]) -> dict[str, Path]:
    """sha256 -> image file of every ok row, checking that each file is the one generated."""
    images = {}
    for row in rows:
        if row["status"] != "ok":
            continue
        path = out_dir / row["image"]
        try:
            actual = sha256_file(path)
        except FileNotFoundError:
            raise UserError(f"{path}: image file not found (manifest.jsonl job {row['job_id']})") from None
        except IsADirectoryError:
            raise UserError(f"{path}: is a folder, not an image (manifest.jsonl job {row['job_id']})") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot read image ({exc.strerror}; manifest.jsonl job {row['job_id']})") from None
        if actual != row["sha256"]:
            raise UserError(
                f"{path}: sha256 differs from manifest.jsonl (job {row['job_id']}); the image changed after "
                f"generation: regenerate it or fix the manifest row"
            )
        images.setdefault(actual, path)
    return images


def _score_table(config: BuildConfig, out_dir: Path, catalog, rows, images: dict[str, Path], embedder: Embedder,
                 progress: bool):
    """Embed (cache first) and score every ok row; returns (table, text embeddings, newly embedded)."""
    settings = config.filter
    cache_args = (out_dir / "cache" / "embeddings", embedder.cache_key, embedder_description(embedder))
    cache = EmbeddingCache(*cache_args)
    if config.engine.name == "ray":  # workers read a remote build's bucket, not our mirror
        images = dict(zip(images, worker_sources(out_dir, list(images.values()))))
    embedded = embed_missing(
        embedder, cache, images, batch_size=settings.batch_size, num_workers=settings.num_workers,
        progress=progress, engine=config.engine,
    )
    concept_ids = catalog.ids
    position = {cid: k for k, cid in enumerate(concept_ids)}
    text = concept_text_embeddings(embedder, catalog.concepts, settings.templates, TextEmbeddingCache(*cache_args))
    scored = [k for k, row in enumerate(rows) if row["status"] == "ok"]
    shas = [rows[k]["sha256"] for k in scored]
    facts = [cache.facts(sha) for sha in shas]
    dim = text.shape[1]
    image = np.stack([cache.vector(sha) for sha in shas]) if shas else np.zeros((0, dim), np.float32)
    concept_index = np.array([position[rows[k]["concept_id"]] for k in scored], dtype=np.int64)
    partner_index = np.array([position[catalog.partner(concept_ids[c]).id] for c in concept_index], dtype=np.int64)
    table = ScoreTable(
        row_index=np.array(scored, dtype=np.int64), job_ids=[rows[k]["job_id"] for k in scored],
        concept_index=concept_index, sha256=shas, phash=[f.phash for f in facts],
        width=np.array([f.width for f in facts]), height=np.array([f.height for f in facts]),
        pixel_std=np.array([f.pixel_std for f in facts]), image=image,
        **cosine_scores(image, concept_index, partner_index, text, settings.zeroshot_logit_scale),
    )
    return table, text, embedded


def _prepare(config: BuildConfig, out_dir: Path, catalog, embedder: Embedder | None, progress: bool):
    # Every concept has its partner here: parse_catalog and Catalog.subset both insist on whole groups.
    rows = load_manifest(Path(out_dir), catalog.ids)
    fetch_images(Path(out_dir), rows)  # a remote build's images, into its mirror (checked, once)
    images = _image_paths(Path(out_dir), rows)  # before resolving the model: bad folders fail fast
    # Lazy: the weights load only if some image or concept text is missing from the caches.
    embedder = embedder or LazyOpenClip(config)
    table, text, embedded = _score_table(config, Path(out_dir), catalog, rows, images, embedder, progress)
    return rows, embedder, table, text, embedded


def run_filter(
    config: BuildConfig, out_dir: Path, catalog: Catalog, *, progress: bool = False, embedder: Embedder | None = None
) -> FilterResult:
    """Score, filter and dedupe the generation in ``out_dir``; ``embedder`` defaults to open_clip
    as configured in ``filter.model``. Takes the build config: besides its own section the filter
    checks the generation size, embeds where ``engine`` says, and resolves model files relative to
    the config file."""
    out_dir = Path(out_dir)
    settings = config.filter
    rows, embedder, table, text, embedded = _prepare(config, out_dir, catalog, embedder, progress)
    manual = read_manual_entries(out_dir / MANUAL_REJECTS, {row["job_id"] for row in rows})  # id -> reason
    expected_size = (config.generation.width, config.generation.height) if settings.check_size else None
    decisions = decide(table, settings, manual, catalog.ids, expected_size)

    for row in rows:
        row.update(scores=None, kept=False, reject_reason="broken", duplicate_of=None)
    for i, k in enumerate(table.row_index):
        rows[k].update(
            scores=table.scores_of(i, embedder.model, embedder.pretrained),
            kept=decisions.reason[i] is None, reject_reason=decisions.reason[i],
            duplicate_of=decisions.duplicate_of[i],
        )
        if decisions.reason[i] == "manual_reject":  # the reviewer's reason travels with the row
            rows[k]["manual_reason"] = manual[table.job_ids[i]]

    kept_per_concept = {cid: 0 for cid in catalog.ids}
    for row in rows:
        kept_per_concept[row["concept_id"]] += row["kept"]
    starved = {cid: n for cid, n in kept_per_concept.items() if n < settings.min_per_concept}
    model = embedder_description(embedder)

    folder = out_dir / "filter"
    write_npz(folder / "embeddings.npz", {
        "job_ids": np.array(table.job_ids, dtype=str), "image": table.image.astype(np.float32),
        "concept_ids": np.array(catalog.ids, dtype=str), "text": text.astype(np.float32),
        "model": np.array(embedder.model), "pretrained": np.array(embedder.pretrained),
    })
    report = build_report(rows, catalog, settings, model, decisions, starved)
    write_report(folder, report, rows, catalog, settings)
    # The manifest goes last: it is the stage's commit point.
    write_manifest(out_dir, rows)
    log.info("filter: kept %d of %d images, %d embedded anew", report["totals"]["kept"], len(rows), embedded)
    return FilterResult(
        kept_per_concept=kept_per_concept, starved=starved,
        reasons={name: r["count"] for name, r in report["reasons"].items()},
        kept=report["totals"]["kept"], rows=len(rows), embedded=embedded,
    )


def calibrate(
    config: BuildConfig, out_dir: Path, catalog: Catalog, *, progress: bool = False, embedder: Embedder | None = None
) -> dict:
    """Per-concept quantiles of alignment, margin and zero-shot probability, to choose thresholds.

    Returns ``{"model": ..., "quantiles": [...], "concepts": {concept_id: {metric: [values]}}}``
    over every decodable image; nothing is written except new embedding-cache entries.
    """
    _, embedder, table, _, _ = _prepare(config, Path(out_dir), catalog, embedder, progress)
    concepts = {}
    for c, cid in enumerate(catalog.ids):
        mine = table.concept_index == c
        concepts[cid] = {"images": int(mine.sum())}
        for metric in ("alignment", "margin", "zeroshot_prob"):
            values = getattr(table, metric)[mine]
            concepts[cid][metric] = (
                [round(float(q), 4) for q in np.quantile(values, QUANTILES)] if len(values) else None
            )
    return {"model": embedder_description(embedder), "quantiles": list(QUANTILES), "concepts": concepts}
