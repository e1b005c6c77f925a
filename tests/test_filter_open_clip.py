"""The filter stage end to end through real open_clip (the tiny random-weight config) and the CLI."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import open_clip
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from isekai_gen.cli import main
from isekai_gen.errors import UserError
from isekai_gen.fileio import read_jsonl, sha256_file, write_json, write_jsonl
from isekai_gen.filtering import run_filter
from isekai_gen.filtering import embedder as embedder_module
from isekai_gen.filtering.embedder import LazyOpenClip, load_open_clip
from test_filter_helpers import GROUPS, catalog_for, filter_config, png_bytes, with_filter, write_build

PER_CONCEPT = 12


def _noise_build(out_dir, config):
    catalog = catalog_for(config)
    rng = np.random.default_rng(0)
    images = {cid: [png_bytes(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
                    for _ in range(PER_CONCEPT)] for cid in GROUPS}
    write_build(out_dir, catalog, images)
    write_json(out_dir / "run.json", {"config": config.to_dict()})
    return catalog


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("tiny-open-clip")
    config = with_filter(filter_config(min_per_concept=PER_CONCEPT, num_workers=2),
                         dedup={"cosine_threshold": 0.9995})   # as in the tiny preset
    catalog = _noise_build(out_dir, config)
    result = CliRunner().invoke(main, ["filter", "--out", str(out_dir), "--no-progress"])
    assert result.exit_code == 0, result.output
    return out_dir, config, catalog, result.output


def test_cli_filters_with_tiny_open_clip(tiny_build):
    out_dir, config, catalog, output = tiny_build
    rows = read_jsonl(out_dir / "manifest.jsonl")
    assert f"kept {len(rows)} of {len(rows)} images" in output
    assert all(row["kept"] and row["scores"]["model"] == "isekai-tiny-clip" for row in rows)
    assert {row["scores"]["pretrained"] for row in rows} == {"random-init-seed0"}
    with np.load(out_dir / "filter" / "embeddings.npz", allow_pickle=False) as npz:
        assert npz["image"].shape == (len(rows), 64) and npz["text"].shape == (len(GROUPS), 64)
        assert np.allclose(np.linalg.norm(npz["image"], axis=1), 1, atol=1e-5)
        assert str(npz["model"]) == "isekai-tiny-clip"
    cached = list((out_dir / "cache" / "embeddings").glob("*/part-*.npz"))
    assert len(cached) == 1


def _count_loads(monkeypatch) -> list:
    """Record every open_clip weight load (they still happen)."""
    loads, load = [], embedder_module._load
    monkeypatch.setattr(embedder_module, "_load", lambda spec: loads.append(spec.name) or load(spec))
    return loads


def test_refilter_uses_the_cache_not_the_model(tiny_build, monkeypatch):
    out_dir, config, catalog, _ = tiny_build
    files = ["manifest.jsonl", "filter/embeddings.npz", "filter/report.json"]
    before = {name: (out_dir / name).read_bytes() for name in files}

    def no_model(spec):
        raise AssertionError("the model loaded although every image and text embedding is cached")

    monkeypatch.setattr(embedder_module, "_load", no_model)
    result = run_filter(config, out_dir, catalog)
    assert result.embedded == 0
    assert {name: (out_dir / name).read_bytes() for name in files} == before
    # Other thresholds, still no model time; rows now fall below the bar.
    stricter = with_filter(config, min_alignment=0.99)
    result = run_filter(stricter, out_dir, catalog)
    assert result.kept == 0 and result.reasons["low_alignment"] == len(GROUPS) * PER_CONCEPT
    assert set(result.starved) == set(GROUPS)


def test_changed_texts_are_encoded_anew(tiny_build, tmp_path, monkeypatch):
    out_dir, config, catalog, _ = tiny_build
    build = tmp_path / "build"
    shutil.copytree(out_dir, build)
    folder = next((build / "cache" / "embeddings").iterdir())
    loads = _count_loads(monkeypatch)

    def text_parts() -> set:
        return set(folder.glob("text-*.npz"))

    def text_matrix() -> np.ndarray:
        with np.load(build / "filter" / "embeddings.npz", allow_pickle=False) as npz:
            return npz["text"]

    first, parts = text_matrix(), text_parts()
    templates = [*config.filter.templates, "a picture of a {name}."]
    result = run_filter(with_filter(config, templates=templates), build, catalog)
    assert result.embedded == 0 and loads == ["isekai-tiny-clip"]     # images cached, texts are not
    assert not np.allclose(text_matrix(), first) and len(text_parts()) == len(parts) + 1

    # One concept's description changes: only its texts are encoded, the other rows come from the cache.
    concept = catalog.concepts[0]
    edited = dataclasses.replace(concept, description="Seen at dusk: " + concept.description)
    edited_catalog = dataclasses.replace(catalog, concepts=(edited, *catalog.concepts[1:]))
    parts = text_parts()
    run_filter(config, build, edited_catalog)
    assert len(loads) == 2
    (new_part,) = text_parts() - parts
    with np.load(new_part, allow_pickle=False) as npz:
        assert npz["texts_sha256"].shape == (1,)
    text = text_matrix()
    assert not np.allclose(text[0], first[0]) and np.array_equal(text[1:], first[1:])

    run_filter(config, build, edited_catalog)                           # everything cached again
    assert len(loads) == 2


def test_calibrate_prints_quantiles(tiny_build):
    out_dir, *_ = tiny_build
    result = CliRunner().invoke(main, ["filter", "--out", str(out_dir), "--calibrate", "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("model isekai-tiny-clip (random-init-seed0)")
    assert f"cactihog ({PER_CONCEPT} images)" in lines
    alignment = next(line for line in lines if line.strip().startswith("alignment")).split()[1:]
    assert len(alignment) == 9 and [float(v) for v in alignment] == sorted(float(v) for v in alignment)


def test_corrupt_png_is_one_line_cli_error(tiny_build, tmp_path):
    out_dir, config, catalog, _ = tiny_build
    _noise_build(tmp_path, config)
    rows = read_jsonl(tmp_path / "manifest.jsonl")
    victim = tmp_path / rows[5]["image"]
    victim.write_bytes(victim.read_bytes()[:100])
    rows[5]["sha256"] = sha256_file(victim)
    write_jsonl(tmp_path / "manifest.jsonl", rows)
    result = CliRunner().invoke(main, ["filter", "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 1
    # The image is decoded in a DataLoader worker: the message must not come wrapped in its traceback.
    assert result.output.startswith(f"error: {victim}: corrupt or unreadable image")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


@pytest.mark.parametrize("stage", ["filter", "episodes", "export"])
def test_missing_run_json_without_preset(tmp_path, stage):
    """Stages reading earlier output never fall back to the default preset's settings silently."""
    result = CliRunner().invoke(main, [stage, "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 1
    assert result.output == (f"error: {tmp_path / 'run.json'}: not found; run `isekai-gen build` or `isekai-gen "
                             f"generate` into {tmp_path} first, or pass --preset/--config\n")


def test_uncached_weights_offline_is_one_line(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    config = filter_config(model={"name": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"})
    lazy = LazyOpenClip(config)     # the cache key needs no weights: a fully cached re-filter works offline
    assert lazy.pretrained == "laion2b_s34b_b79k" and len(lazy.cache_key) == 24
    with pytest.raises(UserError) as info:
        lazy.encode_texts(["a photo of a cactihog."])
    message = str(info.value)
    assert "\n" not in message and "ViT-B-32 (laion2b_s34b_b79k)" in message
    assert "filter.model.weights" in message and "HF_HUB_OFFLINE" in message


def test_local_weights_keep_their_tag_preprocessing(monkeypatch, tmp_path):
    config = filter_config()
    tiny = load_open_clip(config)
    weights = tmp_path / "tiny.pt"
    torch.save(tiny._net.state_dict(), weights)
    tag = {"url": "", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "interpolation": "bilinear",
           "resize_mode": "squash"}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "isekai-tiny-clip", {"tiny_tag": tag})

    config = with_filter(config, model={"name": "isekai-tiny-clip", "pretrained": None, "weights": str(weights)})
    with pytest.raises(UserError, match="filter.model.pretrained is null"):
        load_open_clip(config)
    config = with_filter(config, model={"pretrained": "tiny_tag"})
    loaded = load_open_clip(config)
    normalize = loaded.preprocess.transforms[-1]
    assert tuple(normalize.mean) == (0.5, 0.5, 0.5) and tuple(normalize.std) == (0.25, 0.25, 0.25)
    assert loaded.pretrained == "tiny_tag (tiny.pt)" and loaded.cache_key != tiny.cache_key
    assert LazyOpenClip(config).cache_key == loaded.cache_key
    probe = torch.zeros(1, 3, 64, 64)
    assert np.allclose(loaded.encode_images(probe), tiny.encode_images(probe), atol=1e-6)


def test_cached_tag_loads_without_network(monkeypatch, tmp_path):
    import huggingface_hub.constants

    config = filter_config()
    tiny = load_open_clip(config)
    snapshot = tmp_path / "models--isekai--tiny-clip" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    torch.save(tiny._net.state_dict(), snapshot / "open_clip_pytorch_model.bin")
    (tmp_path / "models--isekai--tiny-clip" / "refs").mkdir()
    (tmp_path / "models--isekai--tiny-clip" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    tag = {"hf_hub": "isekai/tiny-clip/", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "isekai-tiny-clip", {"cached_tag": tag})

    def no_network(*args, **kwargs):
        raise AssertionError("asked the Hub although the weights are cached")

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", no_network)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained_from_hf", no_network)
    config = with_filter(config, model={"name": "isekai-tiny-clip", "pretrained": "cached_tag"})
    loaded = load_open_clip(config)
    assert loaded.pretrained == "cached_tag" and tuple(loaded.preprocess.transforms[-1].mean) == (0.5, 0.5, 0.5)
    assert LazyOpenClip(config).cache_key == loaded.cache_key
    probe = torch.zeros(1, 3, 64, 64)
    assert np.allclose(loaded.encode_images(probe), tiny.encode_images(probe), atol=1e-6)


def test_config_cache_key_is_the_loaded_one(monkeypatch):
    config = filter_config()
    loaded = load_open_clip(config)
    loads = _count_loads(monkeypatch)
    lazy = LazyOpenClip(config)
    assert (lazy.model, lazy.pretrained, lazy.cache_key) == (loaded.model, loaded.pretrained, loaded.cache_key)
    assert lazy.device == loaded.device and loads == []
    other = LazyOpenClip(with_filter(config, model={"init_seed": 1}))
    assert other.cache_key != lazy.cache_key

    probe = torch.zeros(1, 3, 64, 64)
    assert np.allclose(lazy.encode_images(probe), loaded.encode_images(probe), atol=1e-6)
    assert loads == ["isekai-tiny-clip"]
    # Should the two keys ever drift apart, embeddings filed under the wrong key must not follow.
    drifted = LazyOpenClip(config)
    drifted.cache_key = "0" * 24
    with pytest.raises(RuntimeError, match="differs from the configured one"):
        drifted.encode_texts(["a photo of a cactihog."])
