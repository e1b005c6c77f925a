"""Filter rules, duplicates, quota and manifest contract, with the deterministic test-double embedder."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageOps

from isekai_gen.errors import UserError
from isekai_gen.fileio import read_jsonl, sha256_bytes, write_jsonl
from isekai_gen.filtering import REJECT_REASONS, run_filter
from isekai_gen.filtering.manifest import FILTER_FIELDS
from test_filter_helpers import (
    GROUPS, TestDoubleEmbedder, catalog_for, direction, filter_config, image_for, png_bytes, text_matrix,
    with_filter, write_build,
)

THRESHOLDS = dict(min_alignment=0.3, min_margin=0.05, require_top1=True, max_per_concept=7)


def _jpeg_roundtrip(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _crop_resize(image: Image.Image) -> Image.Image:
    return image.crop((1, 1, 63, 63)).resize((64, 64), Image.Resampling.BICUBIC)


def _planted_build(out_dir, config):
    """cactihog gets one planted image per reason; the other concepts get 3 good images each.

    Returns (rows, expected reason per job for the non-duplicate plants, duplicate pairs).
    """
    catalog = catalog_for(config)
    text = text_matrix(catalog, config)
    good = [image_for(direction(text, 0, 1, 0.8 - 0.02 * k, 0.1, seed=k), seed=k) for k in range(8)]
    plants = [png_bytes(image) for image in good]                       # 0-7: good (the quota of 7 drops the worst)
    plants.append(png_bytes(image_for(direction(text, 0, 1, 0.1, 0.0, 20), 20)))   # 8: low alignment
    plants.append(png_bytes(image_for(direction(text, 0, 1, 0.5, 0.6, 21), 21)))   # 9: low margin
    plants.append(png_bytes(image_for(direction(text, 0, 3, 0.45, 0.9, 22), 22)))  # 10: closer to octopus
    plants.append(png_bytes(Image.new("RGB", (64, 64), (90, 90, 90))))            # 11: uniform
    plants.append(png_bytes(good[0].resize((32, 32))))                             # 12: wrong size
    plants.append(None)                                                            # 13: generation failed
    plants.append(png_bytes(image_for(direction(text, 0, 1, 0.7, 0.1, 23), 23)))   # 14: manual reject
    plants.append(plants[0])                                                       # 15: byte copy of 0
    plants.append(png_bytes(_jpeg_roundtrip(good[1])))                             # 16: re-encoded JPEG of 1
    plants.append(png_bytes(_crop_resize(good[2])))                                # 17: crop + resize of 2
    plants.append(png_bytes(ImageOps.mirror(good[3])))                             # 18: embedding twin of 3
    images = {"cactihog": plants}
    for c, concept in enumerate(catalog.concepts[1:], start=1):
        partner = catalog.ids.index(catalog.partner(concept.id).id)
        images[concept.id] = [png_bytes(image_for(direction(text, c, partner, 0.8, 0.1, 100 * c + k), 100 * c + k))
                              for k in range(3)]
    rows = write_build(out_dir, catalog, images)
    (out_dir / "manual_rejects.txt").write_text("# reviewed by hand\ncactihog-00014  # looks wrong\n\n")
    expected = {
        "cactihog-00008": "low_alignment", "cactihog-00009": "low_margin", "cactihog-00010": "not_top1",
        "cactihog-00011": "broken", "cactihog-00012": "broken", "cactihog-00013": "broken",
        "cactihog-00014": "manual_reject",
    }
    pairs = [("cactihog-00000", "cactihog-00015"), ("cactihog-00001", "cactihog-00016"),
             ("cactihog-00002", "cactihog-00017"), ("cactihog-00003", "cactihog-00018")]
    return catalog, rows, expected, pairs


def _rank_key(row):
    return (-row["scores"]["alignment"], row["job_id"])


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("planted")
    config = filter_config(**THRESHOLDS)
    catalog, generated, expected, pairs = _planted_build(out_dir, config)
    result = run_filter(config, out_dir, catalog, embedder=TestDoubleEmbedder())
    rows = {row["job_id"]: row for row in read_jsonl(out_dir / "manifest.jsonl")}
    return out_dir, config, catalog, generated, expected, pairs, result, rows


def test_each_planted_image_gets_its_reason(planted):
    *_, expected, pairs, result, rows = planted
    for job_id, reason in expected.items():
        assert rows[job_id]["reject_reason"] == reason, job_id
        assert rows[job_id]["kept"] is False
    assert set(result.reasons) == set(REJECT_REASONS)
    reached = {row["reject_reason"] for row in rows.values()}
    assert reached == set(REJECT_REASONS) - {"below_top_fraction"} | {None}


def test_planted_duplicates_found_and_nothing_else(planted):
    *_, pairs, result, rows = planted
    duplicates = {job for job, row in rows.items() if row["reject_reason"] == "duplicate"}
    assert len(duplicates) == len(pairs)
    for a, b in pairs:
        better, worse = sorted([rows[a], rows[b]], key=_rank_key)
        assert worse["job_id"] in duplicates and worse["duplicate_of"] == better["job_id"]
        assert better["reject_reason"] in (None, "over_quota")
    assert all(row["duplicate_of"] is None for job, row in rows.items() if job not in duplicates)
    # The byte copy ties with its original on every score: the smaller job id survives.
    assert rows["cactihog-00015"]["duplicate_of"] == "cactihog-00000"


@pytest.mark.parametrize("phash, cosine, found", [
    (None, None, {"cactihog-00015"}),                                        # sha256 alone: the byte copy
    (10, None, {"cactihog-00015", "cactihog-00016", "cactihog-00017"}),      # + pHash: JPEG, crop/resize
    (None, 0.95, {"cactihog-00015", "cactihog-00016", "cactihog-00017", "cactihog-00018"}),  # + embedding twin
])
def test_each_dedup_layer_alone(planted, tmp_path, phash, cosine, found):
    out_dir, config, catalog, *_ = planted
    config = with_filter(config, max_per_concept=None, dedup={"phash_max_distance": phash, "cosine_threshold": cosine,
                                                              "cross_concept_search": "exact"})
    shutil.copytree(out_dir, tmp_path, dirs_exist_ok=True)
    run_filter(config, tmp_path, catalog, embedder=TestDoubleEmbedder())
    rows = read_jsonl(tmp_path / "manifest.jsonl")
    duplicates = {row["job_id"] for row in rows if row["reject_reason"] == "duplicate"}
    originals = {"cactihog-00015": "cactihog-00000", "cactihog-00016": "cactihog-00001",
                 "cactihog-00017": "cactihog-00002", "cactihog-00018": "cactihog-00003"}
    # Either member of a planted pair may be the worse one; exactly one per found pair is marked.
    assert {originals.get(job, job) for job in duplicates} == {originals[job] for job in found}
    assert len(duplicates) == len(found)


def test_quota_keeps_the_best(planted):
    *_, result, rows = planted
    cactihog = [row for row in rows.values() if row["concept_id"] == "cactihog"]
    kept = sorted((row for row in cactihog if row["kept"]), key=_rank_key)
    over = [row for row in cactihog if row["reject_reason"] == "over_quota"]
    assert len(kept) == THRESHOLDS["max_per_concept"] and len(over) == 1
    assert all(_rank_key(row) < _rank_key(over[0]) for row in kept)
    assert result.kept_per_concept == {"cactihog": 7, "hedgehog": 3, "cctovac": 3, "octopus": 3}
    assert result.starved == {}


def test_manifest_contract(planted):
    out_dir, config, catalog, generated, *_, rows = planted
    assert [row["job_id"] for row in generated] == list(rows)            # order kept
    for before in generated:
        after = rows[before["job_id"]]
        assert {k: v for k, v in after.items() if k not in FILTER_FIELDS} == before   # nothing else changed
        assert after["kept"] == (after["reject_reason"] is None)
        if before["status"] == "failed":
            assert after["scores"] is None and after["reject_reason"] == "broken"
            continue
        scores = after["scores"]
        assert set(scores) == {"model", "pretrained", "alignment", "partner_cosine", "margin", "zeroshot_prob",
                               "top1", "phash"}
        assert scores["model"] == "test-double" and len(scores["phash"]) == 16
        assert scores["margin"] == pytest.approx(scores["alignment"] - scores["partner_cosine"], abs=2e-6)
        if after["kept"]:
            assert scores["alignment"] >= THRESHOLDS["min_alignment"] and scores["margin"] >= THRESHOLDS["min_margin"]
            assert scores["top1"]
    planted_scores = rows["cactihog-00000"]["scores"]
    assert planted_scores["alignment"] == pytest.approx(0.8, abs=0.01)
    assert planted_scores["partner_cosine"] == pytest.approx(0.1, abs=0.01)


def test_embeddings_and_report_files(planted):
    out_dir, config, catalog, generated, *_, rows = planted
    with np.load(out_dir / "filter" / "embeddings.npz", allow_pickle=False) as npz:
        scored = [row["job_id"] for row in generated if row["status"] == "ok"]
        assert npz["job_ids"].tolist() == scored
        assert npz["concept_ids"].tolist() == GROUPS
        assert npz["image"].dtype == np.float32 and npz["image"].shape[0] == len(scored)
        assert np.allclose(np.linalg.norm(npz["image"], axis=1), 1, atol=1e-5)
        assert np.allclose(np.linalg.norm(npz["text"], axis=1), 1, atol=1e-5)
        assert str(npz["model"]) == "test-double"
    report = json.loads((out_dir / "filter" / "report.json").read_text())
    assert report["totals"]["kept"] == sum(row["kept"] for row in rows.values())
    assert report["reasons"]["duplicate"]["count"] == 4
    cactihog = next(c for c in report["per_concept"] if c["concept_id"] == "cactihog")
    assert cactihog["rows"] == 19 and cactihog["kept"] == 7
    assert set(report["per_world"]) == {"isekai", "real"}
    assert "| `over_quota` | 1 |" in (out_dir / "filter" / "report.md").read_text()
    # The reviewer's reason (the comment after the listed id) travels into the row and the report.
    assert rows["cactihog-00014"]["manual_reason"] == "looks wrong"
    assert report["reasons"]["manual_reject"]["by_reviewer_reason"] == {"looks wrong": 1}
    assert "Manual rejects by the reviewer's reason: looks wrong 1." in (out_dir / "filter" / "report.md").read_text()
    for name in ("hist_alignment.png", "hist_margin.png"):
        with Image.open(out_dir / "filter" / name) as image:
            assert image.format == "PNG" and image.width > 100


def test_rerun_is_idempotent_and_needs_no_model(planted):
    out_dir, config, catalog, *_ = planted
    files = ["manifest.jsonl", "filter/embeddings.npz", "filter/report.json", "filter/report.md",
             "filter/hist_alignment.png", "filter/hist_margin.png"]
    before = {name: (out_dir / name).read_bytes() for name in files}
    embedder = TestDoubleEmbedder()
    result = run_filter(config, out_dir, catalog, embedder=embedder)
    assert embedder.image_calls == 0 and result.embedded == 0
    assert {name: (out_dir / name).read_bytes() for name in files} == before


def test_top_fraction_mode_and_starved_concepts(tmp_path):
    config = filter_config(mode="top_fraction", top_fraction=0.5, min_per_concept=3)
    catalog = catalog_for(config)
    text = text_matrix(catalog, config)
    images = {"cactihog": [png_bytes(image_for(direction(text, 0, 1, 0.2 + 0.1 * k, 0.0, k), k)) for k in range(6)],
              "hedgehog": [png_bytes(image_for(direction(text, 1, 0, 0.5, 0.0, 50 + k), 50 + k)) for k in range(4)]}
    write_build(tmp_path, catalog, images)
    result = run_filter(config, tmp_path, catalog, embedder=TestDoubleEmbedder())
    rows = read_jsonl(tmp_path / "manifest.jsonl")
    cactihog = sorted((r for r in rows if r["concept_id"] == "cactihog"), key=_rank_key)
    assert [r["kept"] for r in cactihog] == [True] * 3 + [False] * 3
    assert {r["reject_reason"] for r in cactihog[3:]} == {"below_top_fraction"}
    assert result.kept_per_concept == {"cactihog": 3, "hedgehog": 2, "cctovac": 0, "octopus": 0}
    assert result.starved == {"hedgehog": 2, "cctovac": 0, "octopus": 0}


@pytest.fixture
def small_build(tmp_path):
    config = filter_config()
    catalog = catalog_for(config)
    text = text_matrix(catalog, config)
    images = {cid: [png_bytes(image_for(direction(text, c, c ^ 1, 0.6, 0.1, 10 * c + k), 10 * c + k)) for k in range(2)]
              for c, cid in enumerate(GROUPS)}
    rows = write_build(tmp_path, catalog, images)
    return tmp_path, config, catalog, rows


def _one_line_error(config, out_dir, catalog) -> str:
    with pytest.raises(UserError) as info:
        run_filter(config, out_dir, catalog, embedder=TestDoubleEmbedder())
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_image_file(small_build):
    out_dir, config, catalog, rows = small_build
    (out_dir / rows[1]["image"]).unlink()
    message = _one_line_error(config, out_dir, catalog)
    assert rows[1]["image"] in message and "not found" in message


def test_corrupt_png(small_build):
    out_dir, config, catalog, rows = small_build
    data = (out_dir / rows[2]["image"]).read_bytes()[:60]
    (out_dir / rows[2]["image"]).write_bytes(data)
    manifest = read_jsonl(out_dir / "manifest.jsonl")
    manifest[2]["sha256"] = sha256_bytes(data)
    write_jsonl(out_dir / "manifest.jsonl", manifest)
    message = _one_line_error(config, out_dir, catalog)
    assert rows[2]["image"] in message and "corrupt" in message


def test_changed_image_bytes(small_build):
    out_dir, config, catalog, rows = small_build
    (out_dir / rows[0]["image"]).write_bytes((out_dir / rows[3]["image"]).read_bytes())
    message = _one_line_error(config, out_dir, catalog)
    assert rows[0]["image"] in message and "sha256" in message


def test_manifest_row_for_unknown_concept(small_build):
    out_dir, config, catalog, rows = small_build
    narrow = catalog.subset(["cactihog", "hedgehog"])
    message = _one_line_error(config, out_dir, narrow)
    assert "manifest.jsonl: row 5 (cctovac-00000)" in message and "unknown concept 'cctovac'" in message


def test_manual_reject_of_unknown_job(small_build):
    out_dir, config, catalog, rows = small_build
    (out_dir / "manual_rejects.txt").write_text("cactihog-00000\n# comment\nnot-a-job-00001\n")
    message = _one_line_error(config, out_dir, catalog)
    assert "manual_rejects.txt:3" in message and "not-a-job-00001" in message


def test_bad_template_is_a_config_error(small_build):
    out_dir, config, catalog, rows = small_build
    message = _one_line_error(with_filter(config, templates=["a photo of {colour}"]), out_dir, catalog)
    assert "filter.templates" in message and "{colour}" in message


def test_topup_round_embeds_only_new_images(tmp_path):
    """build's top-up loop: more jobs for the starved concept, then filter again."""
    config = filter_config(min_per_concept=3)
    catalog = catalog_for(config)
    text = text_matrix(catalog, config)

    def images(count: int) -> dict:
        return {cid: [png_bytes(image_for(direction(text, c, c ^ 1, 0.6, 0.1, 10 * c + k), 10 * c + k))
                      for k in range(count if cid == "hedgehog" else 3)] for c, cid in enumerate(GROUPS)}

    write_build(tmp_path, catalog, images(1))
    first = run_filter(config, tmp_path, catalog, embedder=TestDoubleEmbedder())
    assert first.starved == {"hedgehog": 1} and first.embedded == 10
    write_build(tmp_path, catalog, images(4))          # round 1 appended hedgehog-00001..00003
    second = run_filter(config, tmp_path, catalog, embedder=TestDoubleEmbedder())
    assert second.embedded == 3 and second.starved == {}
    assert second.kept_per_concept["hedgehog"] == 4


def test_all_generation_failed(tmp_path):
    config = filter_config()
    catalog = catalog_for(config)
    write_build(tmp_path, catalog, {cid: [None, None] for cid in GROUPS})
    result = run_filter(config, tmp_path, catalog, embedder=TestDoubleEmbedder())
    assert result.kept == 0 and result.reasons["broken"] == 8
    assert result.starved == {cid: 0 for cid in GROUPS}
    with np.load(tmp_path / "filter" / "embeddings.npz", allow_pickle=False) as npz:
        assert npz["job_ids"].shape == (0,) and npz["text"].shape[0] == len(GROUPS)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_host_memory_is_pinned_only_for_a_cuda_embedder(tmp_path, monkeypatch, device):
    """filter.device may be cpu on a CUDA machine, where pinned batches would only cost."""
    import torch

    config = filter_config()
    catalog = catalog_for(config)
    text = text_matrix(catalog, config)
    write_build(tmp_path, catalog, {cid: [png_bytes(image_for(direction(text, c, c ^ 1, 0.6, 0.1, c), c))]
                                    for c, cid in enumerate(GROUPS)})
    pinned, loader = [], torch.utils.data.DataLoader

    def recording_loader(*args, pin_memory, **kwargs):
        pinned.append(pin_memory)
        return loader(*args, **kwargs)          # unpinned: this machine may have no CUDA at all

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.utils.data, "DataLoader", recording_loader)
    embedder = TestDoubleEmbedder()
    embedder.device = device
    run_filter(config, tmp_path, catalog, embedder=embedder)
    assert pinned == [device == "cuda"]


def test_interrupted_embedding_keeps_finished_cache_parts(tmp_path, monkeypatch):
    """One loader over all images, but the cache still takes a part file every CACHE_PART_SIZE images."""
    from isekai_gen.filtering import embedding_pass

    monkeypatch.setattr(embedding_pass, "CACHE_PART_SIZE", 4)
    config = filter_config(batch_size=2)
    catalog = catalog_for(config)
    text = text_matrix(catalog, config)
    write_build(tmp_path, catalog, {cid: [png_bytes(image_for(direction(text, c, c ^ 1, 0.6, 0.1, 10 * c + k), 10 * c + k))
                                          for k in range(3)] for c, cid in enumerate(GROUPS)})

    class Interrupted(TestDoubleEmbedder):
        def encode_images(self, batch):
            if self.image_calls == 3:  # after two batches = one full part
                raise KeyboardInterrupt
            return super().encode_images(batch)

    with pytest.raises(KeyboardInterrupt):
        run_filter(config, tmp_path, catalog, embedder=Interrupted())
    parts = list((tmp_path / "cache" / "embeddings" / TestDoubleEmbedder.cache_key).glob("part-*.npz"))
    assert len(parts) == 1
    result = run_filter(config, tmp_path, catalog, embedder=TestDoubleEmbedder())
    assert result.embedded == 3 * len(GROUPS) - 4
    assert len(list(parts[0].parent.glob("part-*.npz"))) == 1 + -(-(3 * len(GROUPS) - 4) // 4)
