"""Episodes stage: ISEKAI-10 / ISEKAI-pair rows from a filtered build written in its native format.

``write_build`` (also used by test_lcl.py and test_preview.py) writes what generation and the
filter stage leave behind: PNGs under images/, manifest.jsonl rows of the documented shape and
filter/embeddings.npz.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from isekai_gen.catalog import Catalog, parse_catalog
from isekai_gen.config import BuildConfig, load_config, with_overrides
from isekai_gen.episodes import run_episodes
from isekai_gen.episodes.inputs import load_kept_images
from isekai_gen.episodes.pairing import class_similarity
from isekai_gen.errors import UserError
from isekai_gen.schema import validate

DIM = 16


def make_catalog(groups: int) -> Catalog:
    concepts = []
    for g in range(groups):
        for world, prefix in (("isekai", "iso"), ("real", "real")):
            concepts.append({
                "id": f"{prefix}{g}", "group": f"group{g}", "world": world, "label": f"{prefix} {g}",
                "name": f"{prefix} thing {g}", "description": f"a test concept number {g} of the {world} world",
                "prompts": [f"{prefix} {g} variant {v}" for v in range(8)], "negative_prompt": "",
            })
    return parse_catalog({"name": "test", "concepts": concepts}, "test-catalog.yaml")


def base_config(**episodes) -> BuildConfig:
    """The shipped defaults (configs/_base.yaml) with ``episodes`` overrides."""
    return with_overrides(BuildConfig(), [{"episodes": episodes}], "test")


def with_dedup(config: BuildConfig, **dedup) -> BuildConfig:
    return with_overrides(config, [{"filter": {"dedup": dedup}}], "test")


def png_bytes(rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def manifest_row(concept, index: int, image: str | None, sha: str | None, scores: dict | None,
                 kept: bool, reason: str | None) -> dict:
    return {
        "job_id": f"{concept.id}-{index:05d}", "concept_id": concept.id, "group_id": concept.group,
        "world": concept.world, "label": concept.label, "index": index, "round": 0, "prompt_variant": index % 8,
        "prompt": concept.prompts[index % 8], "negative_prompt": "", "seed": 1000 + index, "attempt": 0,
        "rejected_attempts": [], "status": "ok" if image else "failed", "image": image, "sha256": sha,
        "width": 8, "height": 8, "model_id": "tiny-sd", "model_revision": None,
        "pipeline_class": "StableDiffusionPipeline", "dtype": "float32", "device_type": "cpu", "steps": 2,
        "guidance_scale": 0.0, "smoke_test": True, "scores": scores, "kept": kept, "reject_reason": reason,
        "duplicate_of": None,
    }


def write_build(out: Path, catalog: Catalog, kept: int | dict[str, int] = 20, rejected: int = 2,
                centers: dict[str, np.ndarray] | None = None, seed: int = 0) -> Path:
    """A filtered build: per concept ``kept`` kept images, ``rejected`` rejects and one failed job.

    Image embeddings scatter around a per-concept centre (``centers`` overrides some), so images of
    one concept are similar but far below any near-duplicate threshold; pHashes are random.
    """
    rng = np.random.default_rng(seed)
    rows, job_ids, vectors = [], [], []
    texts = []
    for concept in catalog.concepts:
        center = (centers or {}).get(concept.id)
        center = unit(rng.normal(size=DIM)) if center is None else unit(center)
        texts.append(unit(center + 0.2 * unit(rng.normal(size=DIM))))
        n_kept = kept[concept.id] if isinstance(kept, dict) else kept
        for index in range(n_kept + rejected + 1):
            job_id = f"{concept.id}-{index:05d}"
            if index == n_kept + rejected:
                rows.append(manifest_row(concept, index, None, None, None, False, "broken"))
                continue
            image = f"images/{concept.id}/{job_id}.png"
            data = png_bytes(rng)
            (out / image).parent.mkdir(parents=True, exist_ok=True)
            (out / image).write_bytes(data)
            vector = unit(center + unit(rng.normal(size=DIM)))
            scores = {"model": "ViT-B-32", "pretrained": "random", "alignment": float(rng.uniform(0.2, 0.4)),
                      "partner_cosine": 0.1, "margin": float(rng.uniform(0, 0.1)), "zeroshot_prob": 0.5,
                      "top1": True, "phash": f"{int(rng.integers(0, 2**63)) * 2 + 1:016x}"}
            is_kept = index < n_kept
            rows.append(manifest_row(concept, index, image, hashlib.sha256(data).hexdigest(), scores,
                                     is_kept, None if is_kept else "low_alignment"))
            job_ids.append(job_id)
            vectors.append(vector)
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    (out / "filter").mkdir(exist_ok=True)
    np.savez(out / "filter" / "embeddings.npz", job_ids=np.array(job_ids), image=np.array(vectors, dtype=np.float32),
             concept_ids=np.array(catalog.ids), text=np.array(texts, dtype=np.float32),
             model=np.array("ViT-B-32"), pretrained=np.array("random"))
    return out


def read_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "episodes" / "episodes.jsonl").read_text().splitlines()]


def set_manifest_field(out: Path, job_id: str, **fields) -> None:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for row in rows:
        if row["job_id"] == job_id:
            for key, value in fields.items():
                if key == "phash":
                    row["scores"]["phash"] = value
                else:
                    row[key] = value
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def check_invariants(out: Path, catalog: Catalog, config: BuildConfig) -> list[dict]:
    """Every documented property of episodes.jsonl, checked line by line."""
    rows = read_rows(out)
    manifest = {r["job_id"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    kept = load_kept_images(out)
    index = {job: i for i, job in enumerate(kept.job_ids)}
    max_shot = config.episodes.max_shot
    assert len({r["episode_id"] for r in rows}) == len(rows)
    for number, row in enumerate(rows):
        validate(row, "episode_row", f"row {number}")
        assert row["max_shot"] == max_shot
        assert len(row["positive_support"]) == len(row["negative_support"]) == max_shot
        assert row["query"] not in row["positive_support"] + row["negative_support"]
        assert row["label"] in (row["positive_label"], row["negative_label"])
        assert catalog.concept(row["query_concept"]).label == row["label"]
        assert manifest[row["query"]]["image"] == row["query_image"]
        for job_id in [row["query"], *row["positive_support"], *row["negative_support"]]:
            assert manifest[job_id]["kept"] is True
        assert {manifest[j]["concept_id"] for j in row["positive_support"]} == {row["positive_concept"]}
        assert {manifest[j]["concept_id"] for j in row["negative_support"]} == {row["negative_concept"]}
        q = index[row["query"]]
        for job_id in row["positive_support"] + row["negative_support"]:
            s = index[job_id]
            assert int(kept.phash[q] ^ kept.phash[s]).bit_count() > 10
            assert kept.embedding[q] @ kept.embedding[s] < 0.95
    # Symmetric pairs: lines 2k and 2k+1 share the concept pair and pair index, one query per class.
    assert len(rows) % 2 == 0
    for first, second in zip(rows[::2], rows[1::2]):
        for key in ("set", "positive_concept", "negative_concept", "pair_index"):
            assert first[key] == second[key]
        assert (first["query_concept"], second["query_concept"]) == (first["positive_concept"], first["negative_concept"])
    return rows


def test_defaults_cut_both_sets_from_a_tiny_shaped_build(tmp_path):
    """The tiny preset's shape: 20 groups, 32 kept images per concept, shipped defaults."""
    catalog = make_catalog(20)
    out = write_build(tmp_path, catalog, kept=32, rejected=1)
    config = base_config()
    summary = run_episodes(config, out, catalog)
    rows = check_invariants(out, catalog, config)
    isekai10 = [r for r in rows if r["set"] == "ISEKAI-10"]
    pair = [r for r in rows if r["set"] == "ISEKAI-pair"]
    assert summary["sets"] == {"ISEKAI-10": len(isekai10), "ISEKAI-pair": len(pair)}
    # ISEKAI-10: the first 10 groups, each ISEKAI concept against its real partner, 8 queries per concept.
    assert [r["positive_concept"] for r in isekai10[::16]] == [f"iso{g}" for g in range(10)]
    assert all(r["negative_concept"] == r["positive_concept"].replace("iso", "real") for r in isekai10)
    assert len(isekai10) == 10 * 2 * 8
    # ISEKAI-pair: ISEKAI against ISEKAI, every unordered pair once, every ISEKAI concept paired.
    pairs = [frozenset((r["positive_concept"], r["negative_concept"])) for r in pair[::16]]
    assert len(pairs) == len(set(pairs)) and all(len(p) == 2 for p in pairs)
    assert set().union(*pairs) == {f"iso{g}" for g in range(20)}
    assert all(r["negative_concept"].startswith("iso") for r in pair)


def test_episodes_are_deterministic_and_follow_the_seed(tmp_path):
    catalog = make_catalog(3)
    config = base_config(max_shot=6, queries_per_concept=3)
    outputs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = write_build(tmp_path / name, catalog, kept=12)
        run_episodes(with_overrides(config, [{"seed": seed}], "test"), out, catalog)
        outputs.append((out / "episodes" / "episodes.jsonl").read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


def test_no_support_is_a_near_duplicate_of_its_query(tmp_path):
    """Planted cross-concept copies (same pHash; same embedding) never share an episode with their twin."""
    catalog = make_catalog(2)
    out = write_build(tmp_path, catalog, kept=9)
    # real0-00000 gets iso0-00000's pHash, real0-00001 gets iso0-00001's embedding direction.
    manifest = {r["job_id"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    set_manifest_field(out, "real0-00000", phash=manifest["iso0-00000"]["scores"]["phash"])
    npz = dict(np.load(out / "filter" / "embeddings.npz"))
    ids = list(npz["job_ids"])
    npz["image"][ids.index("real0-00001")] = npz["image"][ids.index("iso0-00001")]
    np.savez(out / "filter" / "embeddings.npz", **npz)
    # 9 kept per concept, 8 supports: every query of iso0 uses all other iso0 images, so the guard
    # can only succeed by leaving the twin out of the real0 list (8 of 9 remain).
    config = base_config(max_shot=8, queries_per_concept=9, pair={"enabled": False})
    run_episodes(config, out, catalog)
    rows = check_invariants(out, catalog, config)
    twins = {("iso0-00000", "real0-00000"), ("iso0-00001", "real0-00001")}
    for row in rows:
        for a, b in twins:
            supports = row["positive_support"] + row["negative_support"]
            assert not (row["query"] == a and b in supports)
            assert not (row["query"] == b and a in supports)
    assert {r["query"] for r in rows} >= {a for a, _ in twins} | {b for _, b in twins}


def test_guard_uses_the_filter_thresholds(tmp_path):
    catalog = make_catalog(1)
    out = write_build(tmp_path, catalog, kept=10)
    config = base_config(max_shot=4, queries_per_concept=2, pair={"enabled": False})
    config = with_dedup(config, phash_max_distance=64, cosine_threshold=None)  # all pHashes match
    with pytest.raises(UserError) as err:
        run_episodes(config, out, catalog)
    message = str(err.value)
    assert "0 of 2 queries" in message and "'iso0'" in message and "(pHash distance <= 64)" in message
    config = with_dedup(config, phash_max_distance=None, cosine_threshold=-1.0)  # all embeddings match
    with pytest.raises(UserError, match=r"0 of 2 queries .* \(cosine >= -1\.0\)"):
        run_episodes(config, out, catalog)
    config = with_dedup(config, phash_max_distance=None, cosine_threshold=None)
    assert run_episodes(config, out, catalog)["episodes"] == 4


def test_too_few_kept_images_names_concept_needed_and_available(tmp_path):
    catalog = make_catalog(2)
    out = write_build(tmp_path, catalog, kept={"iso0": 20, "real0": 20, "iso1": 20, "real1": 11})
    with pytest.raises(UserError) as err:
        run_episodes(base_config(), out, catalog)
    message = str(err.value)
    assert str(out / "manifest.jsonl") in message
    assert "'real1' has 11 kept images, 17 needed" in message
    assert not (out / "episodes" / "episodes.jsonl").exists()
    # A concept left without any kept image fails the same way before any similarity is computed.
    out = write_build(tmp_path / "empty", catalog, kept={"iso0": 20, "real0": 20, "iso1": 0, "real1": 20})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserError, match="'iso1' has 0 kept images, 17 needed"):
            run_episodes(base_config(isekai10={"enabled": False}), out, catalog)


def test_hardest_partner_is_the_most_similar_isekai_concept(tmp_path):
    catalog = make_catalog(4)
    rng = np.random.default_rng(5)
    base = unit(rng.normal(size=DIM))
    # iso2 is iso0's look-alike; iso3 sits between iso1 and iso2's look-alike pair.
    centers = {"iso0": base, "iso2": base + 0.3 * unit(rng.normal(size=DIM))}
    out = write_build(tmp_path, catalog, kept=10, centers=centers)
    config = base_config(max_shot=4, queries_per_concept=1, isekai10={"enabled": False})
    run_episodes(config, out, catalog)
    pairs = [(r["positive_concept"], r["negative_concept"]) for r in read_rows(out)[::2]]
    assert pairs[0] == ("iso0", "iso2")
    # iso2's hardest partner is iso0, already paired: it takes its next-hardest instead.
    kept = load_kept_images(out)
    ids = ["iso0", "iso1", "iso2", "iso3"]
    similarity = class_similarity(kept, ids)
    anchors = dict(pairs)
    for anchor, partner in anchors.items():
        a = ids.index(anchor)
        used = {frozenset(p) for p in pairs[:pairs.index((anchor, partner))]}
        candidates = [b for b in range(4) if b != a and frozenset((anchor, ids[b])) not in used]
        assert ids[max(candidates, key=lambda b: similarity[a, b])] == partner


def test_random_partners_are_seeded_and_cover_each_pair_once(tmp_path):
    catalog = make_catalog(5)
    out = write_build(tmp_path, catalog, kept=8)
    config = base_config(max_shot=3, queries_per_concept=1, isekai10={"enabled": False},
                         pair={"partner": "random", "partners_per_concept": 2})
    run_episodes(config, out, catalog)
    first = read_rows(out)
    anchored = [(r["positive_concept"], r["negative_concept"]) for r in first[::2]]
    pairs = [frozenset(p) for p in anchored]
    assert len(pairs) == len(set(pairs)) and all(len(p) == 2 for p in pairs)
    isekai = {f"iso{g}" for g in range(5)}
    assert set().union(*pairs) == isekai
    # Each anchor takes at most partners_per_concept new partners; the first takes exactly that many.
    anchors = [a for a, _ in anchored]
    assert anchors == sorted(anchors) and all(anchors.count(a) <= 2 for a in isekai) and anchors.count("iso0") == 2
    run_episodes(config, out, catalog)
    assert read_rows(out) == first
    run_episodes(with_overrides(config, [{"seed": 1}], "test"), out, catalog)
    assert [(r["positive_concept"], r["negative_concept"]) for r in read_rows(out)[::2]] != anchored


def test_class_similarity_is_lcls_combined_score(tmp_path):
    catalog = make_catalog(2)
    out = write_build(tmp_path, catalog, kept=5)
    kept = load_kept_images(out)
    ids = ["iso0", "real0", "iso1"]
    got = class_similarity(kept, ids)
    for a, x in enumerate(ids):
        for b, y in enumerate(ids):
            img_x = unit(np.mean([kept.embedding[i] for i in range(len(kept.job_ids)) if kept.concept_ids[i] == x], axis=0))
            img_y = unit(np.mean([kept.embedding[i] for i in range(len(kept.job_ids)) if kept.concept_ids[i] == y], axis=0))
            tx, ty = kept.text[x], kept.text[y]
            expected = 0.5 * tx @ ty + 0.8 * (img_x @ ty + tx @ img_y) + 0.5 * img_x @ img_y
            assert got[a, b] == pytest.approx(expected, abs=1e-12)


def test_isekai10_groups_setting(tmp_path):
    catalog = make_catalog(4)
    out = write_build(tmp_path, catalog, kept=6)
    settings = dict(max_shot=3, queries_per_concept=1, pair={"enabled": False})
    run_episodes(base_config(**settings, isekai10={"groups": 2}), out, catalog)
    assert [r["positive_concept"] for r in read_rows(out)] == ["iso0", "iso0", "iso1", "iso1"]
    run_episodes(base_config(**settings, isekai10={"groups": ["group3", "group1"]}), out, catalog)
    assert [r["group_id"] for r in read_rows(out)] == ["group1", "group1", "group3", "group3"]
    run_episodes(base_config(**settings, isekai10={"groups": None}), out, catalog)
    assert len(read_rows(out)) == 8
    with pytest.raises(UserError, match="group 'group9' is not a complete group"):
        run_episodes(base_config(**settings, isekai10={"groups": ["group9"]}), out, catalog)


def test_bad_episodes_section_is_a_one_line_error_when_the_config_is_built(tmp_path):
    """The section is checked once, with the whole config, before any stage runs."""
    path = tmp_path / "config.yaml"
    path.write_text("episodes:\n  pair:\n    partner: nearest\n")
    with pytest.raises(UserError) as info:
        load_config(None, path)
    assert str(info.value).startswith(f"{path}: at episodes/pair/partner: 'nearest' is not one of")


def test_missing_or_incomplete_embeddings_name_the_file(tmp_path):
    catalog = make_catalog(1)
    out = write_build(tmp_path, catalog, kept=6)
    config = base_config(max_shot=3, queries_per_concept=1, pair={"enabled": False})
    npz = dict(np.load(out / "filter" / "embeddings.npz"))
    keep = npz["job_ids"] != "real0-00003"
    np.savez(out / "filter" / "embeddings.npz", **{**npz, "job_ids": npz["job_ids"][keep], "image": npz["image"][keep]})
    with pytest.raises(UserError, match=r"embeddings\.npz: no embedding for 1 kept image\(s\), first real0-00003"):
        run_episodes(config, out, catalog)
    (out / "filter" / "embeddings.npz").write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"embeddings\.npz: not a readable \.npz"):
        run_episodes(config, out, catalog)
    (out / "filter" / "embeddings.npz").unlink()
    with pytest.raises(UserError, match=r"embeddings\.npz: not found; run the filter stage first"):
        run_episodes(config, out, catalog)


def test_kept_row_without_phash_names_the_manifest_row(tmp_path):
    catalog = make_catalog(1)
    out = write_build(tmp_path, catalog, kept=6)
    set_manifest_field(out, "iso0-00002", phash=None)
    with pytest.raises(UserError) as err:
        run_episodes(base_config(max_shot=3, queries_per_concept=1, pair={"enabled": False}), out, catalog)
    assert str(err.value) == f"{out / 'manifest.jsonl'}: row 3 (iso0-00002): kept but scores.phash is not 16 hex digits"


def test_shipped_presets_accept_the_episodes_section():
    config = load_config("tiny")
    validate(config.episodes.to_dict(), "episodes_config", "tiny")
    assert config.episodes.max_shot == 16


def write_catalog_yaml(path: Path, catalog: Catalog) -> None:
    import yaml

    concepts = [{"id": c.id, "group": c.group, "world": c.world, "label": c.label, "name": c.name,
                 "description": c.description, "prompts": list(c.prompts), "negative_prompt": c.negative_prompt}
                for c in catalog.concepts]
    path.write_text(yaml.safe_dump({"name": "test", "concepts": concepts}))


def test_cli_episodes_cuts_episodes_and_export_writes_the_lcl_files(tmp_path):
    from isekai_gen.cli import main

    catalog = make_catalog(2)
    out = write_build(tmp_path / "build", catalog, kept=6)
    write_catalog_yaml(tmp_path / "catalog.yaml", catalog)
    (tmp_path / "config.yaml").write_text(
        "catalog: catalog.yaml\nepisodes:\n  max_shot: 4\n  queries_per_concept: 2\n"
    )
    result = CliRunner().invoke(main, ["episodes", "--out", str(out), "--config", str(tmp_path / "config.yaml"),
                                       "--set", "episodes.pair.partner=random", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "ISEKAI-10 8, ISEKAI-pair 4" in result.output
    assert not (out / "export").exists()   # episodes only cut episodes; the LCL files are an export format
    assert len(read_rows(out)) == 12
    result = CliRunner().invoke(main, ["export", "--out", str(out), "--config", str(tmp_path / "config.yaml"),
                                       "--format", "lcl", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (out / "export" / "lcl" / "ISEKAI-10.json").exists()
    assert sorted(p.name for p in (out / "export").iterdir()) == ["SHA256SUMS", "lcl"]

    (out / "manifest.jsonl").unlink()
    result = CliRunner().invoke(main, ["episodes", "--out", str(out), "--config", str(tmp_path / "config.yaml")])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "manifest.jsonl" in result.output
    assert len(result.output.strip().splitlines()) == 1
