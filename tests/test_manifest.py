"""The manifest reader: streaming equals the list reader; every image path stays inside OUT."""

from __future__ import annotations

import os

import pytest

from isekai_gen.errors import UserError
from isekai_gen.fileio import write_jsonl
from isekai_gen.manifest import iter_manifest, read_manifest


def _row(index: int, image: str | None = None) -> dict:
    job_id = f"cactihog-{index:05d}"
    return {
        "job_id": job_id, "concept_id": "cactihog", "group_id": "cactus-hedgehog", "world": "isekai",
        "label": "cactihog", "index": index, "prompt_variant": 0, "prompt": "a cactihog", "negative_prompt": "",
        "seed": index, "attempt": 0, "rejected_attempts": [], "status": "ok",
        "image": image if image is not None else f"images/cactihog/{job_id}.png", "sha256": "0" * 64,
        "width": 64, "height": 64, "model_id": "tiny", "steps": 2, "guidance_scale": 0.0, "smoke_test": True,
    }


def test_streaming_reader_gives_the_rows_of_the_list_reader(tmp_path):
    rows = [_row(i) for i in range(5)]
    write_jsonl(tmp_path / "manifest.jsonl", rows)
    assert list(iter_manifest(tmp_path)) == read_manifest(tmp_path) == rows


@pytest.mark.parametrize("image", ["../outside.png", "images/../../outside.png", "/etc/passwd"])
def test_image_outside_the_build_folder_is_refused(tmp_path, image):
    write_jsonl(tmp_path / "manifest.jsonl", [_row(0), _row(1, image)])
    with pytest.raises(UserError, match=r"manifest.jsonl:2: image .* (outside|absolute)"):
        read_manifest(tmp_path)


def test_image_folder_symlinked_out_of_the_build_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    os.symlink(outside, out / "images" / "cactihog")
    write_jsonl(out / "manifest.jsonl", [_row(0)])
    with pytest.raises(UserError, match=r"manifest.jsonl:1: image folder 'images/cactihog' points outside"):
        read_manifest(out)


def test_malformed_line_names_file_and_line(tmp_path):
    (tmp_path / "manifest.jsonl").write_text('{"job_id": "cactihog-00000"\n')
    with pytest.raises(UserError, match=r"manifest.jsonl:1: invalid JSON"):
        read_manifest(tmp_path)
