"""LCL export: the annotation files must run through the original evaluation loader unchanged."""

from __future__ import annotations

import json
import os
import re

import pytest
from PIL import Image

from isekai_gen.config import LclExportConfig
from isekai_gen.episodes import run_episodes
from isekai_gen.errors import UserError
from isekai_gen.export.lcl import export_lcl
from isekai_gen.fileio import TEMP_MARKER
from test_episodes import base_config, make_catalog, read_rows, set_manifest_field, write_build

FIELDS = {"image_name", "positive_list", "negative_list", "positive_promt", "negative_promt", "label_name"}


class OriginalISEKAIEval:
    """The reading logic of the original loader, reimplemented without its training stack.

    isekai-portal/Link-Context-Learning:
    - mllm/dataset/utils/mixin.py ``MInstrDataset``: keeps the raw lines of ``filename``;
      ``get_image`` does ``os.path.join(self.image_folder, image_path)`` then
      ``Image.open(...).convert('RGB')``.
    - mllm/dataset/single_image_dataset/lcl.py ``LCLDataset._get_annos``: one JSON object per line.
    - mllm/dataset/single_image_dataset/isekai.py ``ISEKAIEval.__init__``: ``assert len(self.data)%2 == 0``;
      ``get_samples(index, shot)``: the query ``image_name``, the first ``shot`` of
      ``positive_list`` and ``negative_list``, labels from ``positive_promt`` / ``negative_promt``
      / ``label_name``.
    """

    def __init__(self, filename, image_folder):
        self.image_folder = image_folder
        with open(filename, "r", encoding="utf8") as f:
            self.data = [json.loads(line) for line in f]
        assert len(self.data) % 2 == 0

    def get_image(self, image_path):
        return Image.open(os.path.join(self.image_folder, image_path)).convert("RGB")

    def get_samples(self, index, shot):
        item = self.data[index]
        pos_imgs, neg_imgs = [], []
        for i in range(shot):
            pos_imgs.append(self.get_image(item["positive_list"][i]))
            neg_imgs.append(self.get_image(item["negative_list"][i]))
        return dict(pos_cls_name=item["positive_promt"], neg_cls_name=item["negative_promt"], pos_imgs=pos_imgs,
                    neg_imgs=neg_imgs, infer_img=self.get_image(item["image_name"]), label_name=item["label_name"])


@pytest.fixture
def built(tmp_path):
    catalog = make_catalog(3)
    out = write_build(tmp_path / "build", catalog, kept=8)
    config = base_config(max_shot=5, queries_per_concept=2)
    run_episodes(config, out, catalog)
    return out, catalog, config


def test_original_loader_reads_every_line_and_image(built):
    out, catalog, config = built
    summary = export_lcl(config.export.lcl, out, catalog)
    lcl = out / "export" / "lcl"
    episodes = read_rows(out)
    assert summary["files"] == {"ISEKAI-10.json": 12, "ISEKAI-pair.json": 12}
    for set_name in ("ISEKAI-10", "ISEKAI-pair"):
        dataset = OriginalISEKAIEval(lcl / f"{set_name}.json", str(lcl / "images"))
        rows = [r for r in episodes if r["set"] == set_name]
        assert len(dataset.data) == len(rows)
        for index, (item, row) in enumerate(zip(dataset.data, rows)):
            assert set(item) == FIELDS
            sample = dataset.get_samples(index, shot=config.episodes.max_shot)
            assert len(sample["pos_imgs"]) == len(sample["neg_imgs"]) == 5
            assert sample["label_name"] in (sample["pos_cls_name"], sample["neg_cls_name"])
            assert (item["positive_promt"], item["negative_promt"], item["label_name"]) == (
                catalog.concept(row["positive_concept"]).label, catalog.concept(row["negative_concept"]).label,
                catalog.concept(row["query_concept"]).label)
            # Layout of the release: <concept>/pos-<concept>/<file>, file named after the job.
            for path, job_id in zip([item["image_name"], *item["positive_list"], *item["negative_list"]],
                                    [row["query"], *row["positive_support"], *row["negative_support"]]):
                concept = job_id.rsplit("-", 1)[0]
                assert path == f"{concept}/pos-{concept}/{job_id}.png"
                assert (lcl / "images" / path).read_bytes() == (out / "images" / concept / f"{job_id}.png").read_bytes()


def test_images_are_independent_copies_and_reruns_are_idempotent(built):
    """Default ``clone``: editing an exported image can never change the build's image."""
    out, catalog, config = built
    first = export_lcl(config.export.lcl, out, catalog)
    image_root = out / "export" / "lcl" / "images"
    exported = sorted(p for p in image_root.rglob("*") if p.is_file())
    assert len(exported) == first["images"] == first["copied"] and first["linked"] == 0
    for path in exported:
        source = out / "images" / path.parent.parent.name / path.name
        assert not os.path.samefile(path, source) and path.read_bytes() == source.read_bytes()
    files = {p: p.read_bytes() for p in (out / "export" / "lcl").glob("*.json")}
    second = export_lcl(config.export.lcl, out, catalog)
    assert (second["linked"], second["copied"], second["removed"]) == (0, 0, 0)
    assert {p: p.read_bytes() for p in (out / "export" / "lcl").glob("*.json")} == files
    assert sorted(p for p in image_root.rglob("*") if p.is_file()) == exported
    source = out / "images" / exported[0].parent.parent.name / exported[0].name
    original = source.read_bytes()
    exported[0].write_bytes(b"edited by hand")
    assert source.read_bytes() == original
    assert export_lcl(config.export.lcl, out, catalog)["copied"] == 1 and exported[0].read_bytes() == original


def test_hardlink_mode_shares_read_only_inodes(built):
    out, catalog, config = built
    summary = export_lcl(LclExportConfig(images="hardlink"), out, catalog)
    image_root = out / "export" / "lcl" / "images"
    exported = sorted(p for p in image_root.rglob("*") if p.is_file())
    assert len(exported) == summary["linked"] == summary["images"]
    for path in exported:
        assert os.path.samefile(path, out / "images" / path.parent.parent.name / path.name)
        assert not os.stat(path).st_mode & 0o222
    # Back to copies: the links are replaced by independent files.
    assert export_lcl(LclExportConfig(images="copy"), out, catalog)["copied"] == len(exported)
    assert not any(os.path.samefile(p, out / "images" / p.parent.parent.name / p.name) for p in exported)


def test_copies_when_hard_links_fail(built, monkeypatch):
    out, catalog, config = built

    def no_links(*args, **kwargs):
        raise OSError("Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    summary = export_lcl(LclExportConfig(images="hardlink"), out, catalog)
    assert summary["copied"] == summary["images"] > 0
    for path in (out / "export" / "lcl" / "images").rglob("*.png"):
        source = out / "images" / path.parent.parent.name / path.name
        assert not os.path.samefile(path, source) and path.read_bytes() == source.read_bytes()
    assert not list((out / "export" / "lcl").rglob(f"{TEMP_MARKER}*"))


def test_rebuilt_episodes_drop_stale_images_and_files(built):
    out, catalog, config = built
    export_lcl(config.export.lcl, out, catalog)
    lcl = out / "export" / "lcl"
    query = read_rows(out)[0]["query"]
    set_manifest_field(out, query, kept=False, reject_reason="low_alignment")
    without_pair = base_config(max_shot=5, queries_per_concept=2, pair={"enabled": False})
    run_episodes(without_pair, out, catalog)
    summary = export_lcl(without_pair.export.lcl, out, catalog)
    referenced = {p for line in map(json.loads, (lcl / "ISEKAI-10.json").read_text().splitlines())
                  for p in [line["image_name"], *line["positive_list"], *line["negative_list"]]}
    on_disk = {p.relative_to(lcl / "images").as_posix() for p in (lcl / "images").rglob("*") if p.is_file()}
    assert on_disk == referenced and summary["removed"] > 0
    assert not any(query in p for p in on_disk)
    assert not (lcl / "ISEKAI-pair.json").exists()
    assert all(re.fullmatch(r"(\w+)/pos-\1/[\w-]+\.png", p) for p in on_disk)


def test_stale_episodes_are_a_one_line_error(built):
    out, catalog, config = built
    job_id = read_rows(out)[0]["positive_support"][0]
    set_manifest_field(out, job_id, kept=False, reject_reason="low_alignment")
    with pytest.raises(UserError) as err:
        export_lcl(config.export.lcl, out, catalog)
    assert "episodes.jsonl: row 1" in str(err.value) and job_id in str(err.value)
    assert not (out / "export" / "lcl" / "ISEKAI-10.json").exists()


def test_missing_or_odd_episodes_are_one_line_errors(built):
    out, catalog, config = built
    episodes = out / "episodes" / "episodes.jsonl"
    lines = episodes.read_text().splitlines(keepends=True)
    episodes.write_text("".join(lines[:-1]))
    with pytest.raises(UserError, match=r"episodes\.jsonl: ISEKAI-pair has 11 lines; the original loader needs an even"):
        export_lcl(config.export.lcl, out, catalog)
    episodes.unlink()
    with pytest.raises(UserError, match=r"episodes\.jsonl: not found; run `isekai-gen episodes"):
        export_lcl(config.export.lcl, out, catalog)
