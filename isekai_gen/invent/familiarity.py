"""Familiarity check: the pool categories nearest to each invented concept by CLIP text similarity.

Each invented concept's text embedding is the mean of its prompts' (L2-normalised, then
normalised again); each pool category's is that of ``"a photo of a <name>."``. A fusion whose
nearest category is its own partner (or modifier) by a wide margin may collapse into that known
thing when rendered: the report shows it before any GPU time is spent. The model is the build
config's filter model (``filter.model`` of ``--familiarity-preset``), loaded the way the filter
stage loads it; the shipped ``tiny`` preset's random-weight CLIP works offline (numbers then mean
nothing), real ViT models when their weights are cached.
"""

from __future__ import annotations

from ..config import load_config
from ..filtering.embedder import load_open_clip, normalise

NEAREST = 3


def nearest_categories(concepts: list[dict], pool, preset: str) -> dict:
    """``{"model", "pretrained", "nearest": {concept id: [{"category", "cosine"}, ...]}}``."""
    config = load_config(preset, None, [{"filter": {"device": "cpu"}}])
    embedder = load_open_clip(config)
    categories = list(pool.categories)
    pool_emb = embedder.encode_texts([f"a photo of a {c.name}." for c in categories])
    nearest = {}
    for concept in concepts:
        mean = normalise(embedder.encode_texts(list(concept["prompts"])).mean(axis=0, keepdims=True))[0]
        cosines = pool_emb @ mean
        order = sorted(range(len(categories)), key=lambda i: (-round(float(cosines[i]), 4), categories[i].id))
        nearest[concept["id"]] = [{"category": categories[i].id, "cosine": round(float(cosines[i]), 4)}
                                  for i in order[:NEAREST]]
    return {"model": embedder.model, "pretrained": embedder.pretrained, "nearest": nearest}

