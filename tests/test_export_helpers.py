"""A tiny filtered build folder in the documented native formats, for the export and publish tests.

(A helper module, not tests: it is named test_export_* only to stay inside the export tests'
file set; it collects no tests.)
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from isekai_gen import __version__
from isekai_gen.catalog import load_catalog
from isekai_gen.config import BuildConfig, load_config
from isekai_gen.fileio import write_json, write_jsonl
from isekai_gen.jobs import derive_seed

CONCEPTS = ["cactihog", "hedgehog", "cctovac", "octopus"]
IMAGES_PER_CONCEPT = 5


def png_bytes(seed: int, size: int = 16) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def build_config(smoke_test: bool = False) -> BuildConfig:
    # The rows below describe 16x16 images: run.json must say so (stage commands cross-check it).
    return load_config("tiny", None, [{"concepts": list(CONCEPTS), "smoke_test": smoke_test,
                                       "generation": {"width": 16, "height": 16}}])


def _row(concept, index: int, *, smoke_test: bool, global_seed: int) -> dict:
    job_id = f"{concept.id}-{index:05d}"
    variant = index % len(concept.prompts)
    return {
        "job_id": job_id, "concept_id": concept.id, "group_id": concept.group, "world": concept.world,
        "label": concept.label, "index": index, "round": 0, "prompt_variant": index % len(concept.prompts),
        "prompt": concept.prompts[index % len(concept.prompts)], "negative_prompt": concept.negative_prompt,
        "seed": derive_seed(global_seed, concept.id, variant, index), "attempt": 0, "rejected_attempts": [], "status": "ok",
        "image": f"images/{concept.id}/{job_id}.png", "sha256": None, "width": 16, "height": 16,
        "model_id": "tiny-sd", "model_revision": None, "pipeline_class": "StableDiffusionPipeline",
        "dtype": "float32", "device_type": "cpu", "steps": 2, "guidance_scale": 0.0, "smoke_test": smoke_test,
        "scores": {"model": "tiny-clip", "pretrained": None, "alignment": 0.3 + index / 100,
                   "partner_cosine": 0.2, "margin": 0.1 + index / 100, "zeroshot_prob": 0.5, "top1": True,
                   "phash": f"{index:016x}"},
        "kept": True, "reject_reason": None, "duplicate_of": None,
    }


def manifest_rows(catalog, *, smoke_test: bool) -> list[dict]:
    """IMAGES_PER_CONCEPT rows per concept; index 3 is rejected for low alignment, and the
    first concept's index 4 is a duplicate and the second's failed to generate."""
    rows = []
    global_seed = build_config().seed
    for position, concept in enumerate(catalog.concepts):
        for index in range(IMAGES_PER_CONCEPT):
            row = _row(concept, index, smoke_test=smoke_test, global_seed=global_seed)
            if index == 3:
                row.update(kept=False, reject_reason="low_alignment")
            if index == 4 and position == 0:
                row.update(kept=False, reject_reason="duplicate", duplicate_of=f"{concept.id}-00000")
            if index == 4 and position == 1:
                row.update(status="failed", image=None, scores=None, kept=False, reject_reason="broken")
            rows.append(row)
    return rows


def episode_rows(rows: list[dict], catalog) -> list[dict]:
    """One symmetric ISEKAI-10 query pair per group and one ISEKAI-pair query pair."""
    kept = {}
    for row in rows:
        if row["kept"]:
            kept.setdefault(row["concept_id"], []).append(row["job_id"])
    concept = {c.id: c for c in catalog.concepts}
    episodes = []
    plan = [("ISEKAI-10", "cactihog", "hedgehog"), ("ISEKAI-10", "cctovac", "octopus"),
            ("ISEKAI-pair", "cactihog", "cctovac")]
    for set_name, positive, negative in plan:
        for query_concept in (positive, negative):
            query = kept[query_concept][0]
            slug = "isekai10" if set_name == "ISEKAI-10" else "isekaipair"
            episodes.append({
                "episode_id": f"{slug}-{query_concept}-vs-{negative if query_concept == positive else positive}-000",
                "set": set_name, "query": query, "query_image": f"images/{query_concept}/{query}.png",
                "query_concept": query_concept, "label": concept[query_concept].label,
                "positive_label": concept[positive].label, "negative_label": concept[negative].label,
                "positive_concept": positive, "negative_concept": negative, "group_id": concept[query_concept].group,
                "positive_support": [j for j in kept[positive] if j != query],
                "negative_support": [j for j in kept[negative] if j != query],
                "max_shot": 2, "pair_index": 0, "similarity": 1.25,
            })
    return episodes


def make_build(out_dir: Path, *, smoke_test: bool = False, benchmarks: bool = True):
    """Write OUT/{run.json, manifest.jsonl, images/, episodes/, export/lcl/, benchmarks/}.

    Returns (config, catalog).
    """
    out_dir = Path(out_dir)
    config = build_config(smoke_test)
    catalog = load_catalog(config.catalog).subset(config.concepts)
    rows = manifest_rows(catalog, smoke_test=smoke_test)
    for number, row in enumerate(rows):
        if row["image"]:
            data = png_bytes(number)
            path = out_dir / row["image"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            row["sha256"] = hashlib.sha256(data).hexdigest()
    write_jsonl(out_dir / "manifest.jsonl", rows)
    write_json(out_dir / "run.json", {"tool_version": __version__, "config": config.to_dict(), "config_dir": None,
                                      "versions": {"python": "3.11", "datasets": "5.2.0"}})
    write_jsonl(out_dir / "episodes" / "episodes.jsonl", episode_rows(rows, catalog))
    lcl = out_dir / "export" / "lcl"
    lcl.mkdir(parents=True, exist_ok=True)
    (lcl / "ISEKAI-10.json").write_text('{"image_name": "x"}\n', encoding="utf-8")
    if benchmarks:
        write_benchmark(out_dir, "fives", redistributable=True, license_name="cc-by-4.0")
        write_benchmark(out_dir, "chexpert", redistributable=False, license_name="other")
    return config, catalog


def write_benchmark(out_dir: Path, name: str, *, redistributable: bool, license_name: str) -> None:
    folder = Path(out_dir) / "benchmarks" / name
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "demo.csv").write_text(",a,b\nx1.png,1.0,0.0\n", encoding="utf-8")
    (folder / "test.csv").write_text(",a,b\nx2.png,0.0,1.0\n", encoding="utf-8")
    (folder / "split.jsonl").write_text(json.dumps({"file_name": "x1.png", "side": "demo"}) + "\n", encoding="utf-8")
    write_json(folder / "split.json", {"recipe": {"redistributable": redistributable, "license": license_name}})
    (folder / "images" / "x1.png").write_bytes(png_bytes(900))
    (folder / "images" / "x2.png").write_bytes(png_bytes(901))


def export_hashes(out_dir: Path) -> dict[str, str]:
    """sha256 of every file under OUT/export, by relative path."""
    root = Path(out_dir) / "export"
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
