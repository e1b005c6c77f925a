"""The filter stage end to end through real open_clip (the tiny random-weight config) and the CLI."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cli import main
from isekai_gen.config import public_config
from isekai_gen.errors import UserError
from isekai_gen.fileio import read_jsonl, sha256_file, write_json, write_jsonl
from isekai_gen.filtering import run_filter
from isekai_gen.filtering.embedder import load_open_clip
from test_filter_helpers import GROUPS, catalog_for, filter_config, png_bytes, write_build

PER_CONCEPT = 12


def _noise_build(out_dir, config):
    catalog = catalog_for(config)
    rng = np.random.default_rng(0)
    images = {cid: [png_bytes(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
                    for _ in range(PER_CONCEPT)] for cid in GROUPS}
    write_build(out_dir, catalog, images)
    write_json(out_dir / "run.json", {"config": public_config(config)})
    return catalog


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("tiny-open-clip")
    config = filter_config(min_per_concept=PER_CONCEPT, num_workers=2)
    config["filter"]["dedup"]["cosine_threshold"] = 0.9995   # as in the tiny preset
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


def test_refilter_uses_the_cache_not_the_model(tiny_build, monkeypatch):
    out_dir, config, catalog, _ = tiny_build
    before = (out_dir / "manifest.jsonl").read_bytes()

    def no_model(*args, **kwargs):
        raise AssertionError("the image tower ran although every embedding is cached")

    monkeypatch.setattr(open_clip.model.CLIP, "encode_image", no_model)
    result = run_filter(config, out_dir, catalog)
    assert result.embedded == 0
    assert (out_dir / "manifest.jsonl").read_bytes() == before
    # Other thresholds, still no model time; rows now fall below the bar.
    stricter = {**config, "filter": {**config["filter"], "min_alignment": 0.99}}
    result = run_filter(stricter, out_dir, catalog)
    assert result.kept == 0 and result.reasons["low_alignment"] == len(GROUPS) * PER_CONCEPT
    assert set(result.starved) == set(GROUPS)


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
    assert result.exit_code == 2
    # The image is decoded in a DataLoader worker: the message must not come wrapped in its traceback.
    assert result.output.startswith(f"error: {victim}: corrupt or unreadable image")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_missing_run_json_without_preset(tmp_path):
    result = CliRunner().invoke(main, ["filter", "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 2
    assert result.output == (f"error: {tmp_path / 'run.json'}: not found; pass --preset or --config to say which "
                             "settings to filter with\n")


def test_uncached_weights_offline_is_one_line(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    config = filter_config(model={"name": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"})
    with pytest.raises(UserError) as info:
        load_open_clip(config)
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

    config["filter"]["model"] = {"name": "isekai-tiny-clip", "pretrained": None, "weights": str(weights)}
    with pytest.raises(UserError, match="filter.model.pretrained is null"):
        load_open_clip(config)
    config["filter"]["model"]["pretrained"] = "tiny_tag"
    loaded = load_open_clip(config)
    normalize = loaded.preprocess.transforms[-1]
    assert tuple(normalize.mean) == (0.5, 0.5, 0.5) and tuple(normalize.std) == (0.25, 0.25, 0.25)
    assert loaded.pretrained == "tiny_tag (tiny.pt)" and loaded.cache_key != tiny.cache_key
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
    config["filter"]["model"] = {"name": "isekai-tiny-clip", "pretrained": "cached_tag"}
    loaded = load_open_clip(config)
    assert loaded.pretrained == "cached_tag" and tuple(loaded.preprocess.transforms[-1].mean) == (0.5, 0.5, 0.5)
    probe = torch.zeros(1, 3, 64, 64)
    assert np.allclose(loaded.encode_images(probe), tiny.encode_images(probe), atol=1e-6)
