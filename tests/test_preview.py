"""Static preview: contact sheets, index with partners side by side, and the manual reject list."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from PIL import Image

from isekai_gen import preview
from isekai_gen.errors import UserError
from isekai_gen.filtering.manifest import FILTER_FIELDS
from isekai_gen.preview import (
    CAPTION, COLUMNS, HEADER, KEPT, PAD, REJECTED, THUMB, UNSCORED, merge_reject_file, write_preview)
from isekai_gen.curation import thumbs
from test_episodes import make_catalog, set_manifest_field, write_build


@pytest.fixture
def build(tmp_path):
    return write_build(tmp_path / "build", make_catalog(2), kept=5, rejected=2)


def manifest(build) -> dict[str, dict]:
    return {r["job_id"]: r for r in map(json.loads, (build / "manifest.jsonl").read_text().splitlines())}


def frame_colours(sheet: Image.Image, count: int) -> list[tuple[int, int, int]]:
    """The verdict colour nearest to the frame pixel of each of the first ``count`` tiles (JPEG)."""
    colours = []
    for position in range(count):
        x = PAD + (position % COLUMNS) * (THUMB + PAD) + 1
        y = HEADER + PAD + (position // COLUMNS) * (THUMB + CAPTION + PAD) + 1
        pixel = sheet.getpixel((x, y))
        colours.append(min((KEPT, REJECTED, UNSCORED), key=lambda c: sum((a - b) ** 2 for a, b in zip(c, pixel))))
    return colours


def expected_order(build, concept_id: str) -> list[dict]:
    rows = [r for r in manifest(build).values() if r["concept_id"] == concept_id]
    return sorted(rows, key=lambda r: (r["scores"] is None, r["scores"]["alignment"] if r["scores"] else 0, r["index"]))


def test_sheets_put_doubtful_images_first_and_index_pairs_partners(build):
    index = write_preview(build)
    assert index == build / "preview" / "index.html"
    html = index.read_text()
    # One section per group, the ISEKAI concept first, its partner beside it.
    sections = re.findall(r"<section><h2>(.*?)</h2>(.*?)</section>", html, re.S)
    assert [(group, re.findall(r'class="concept" id="([^"]+)"', body)) for group, body in sections] == [
        ("group0", ["iso0", "real0"]), ("group1", ["iso1", "real1"])]
    assert "SMOKE-TEST BUILD: 32 of 32 images" in html
    assert re.findall(r'href="([^"]+\.jpg)"', html) == [f"{c.id}-01.jpg" for c in make_catalog(2).concepts for _ in "ab"]
    for concept in make_catalog(2).concepts:
        sheet = Image.open(build / "preview" / f"{concept.id}-01.jpg")
        sheet.load()
        assert sheet.format == "JPEG"
        # 5 kept, 2 rejects (low_alignment) and 1 failed job: 8 tiles, one row of 8, lowest alignment first.
        assert sheet.size == (PAD + COLUMNS * (THUMB + PAD), HEADER + PAD + THUMB + CAPTION + PAD)
        order = expected_order(build, concept.id)
        assert order[-1]["status"] == "failed"
        assert frame_colours(sheet, 8) == [KEPT if r["kept"] else REJECTED for r in order]
        # The strip shows the best kept images, best first, from the shared thumbnail cache.
        strip = Image.open(build / "preview" / "strips" / f"{concept.id}.jpg")
        assert strip.size == (5 * (THUMB + preview.STRIP_GAP), THUMB)
        for row in order[:-1]:
            assert thumbs.thumbnail_path(build, row["sha256"]).is_file()
    assert "kept 5 / 8 generated (62%); failed: 1, low_alignment: 2" in html
    assert "full job ids" in html and "isekai-gen review BUILD_DIR" in html


def test_second_preview_decodes_no_image(build, monkeypatch):
    write_preview(build)
    first = {p.relative_to(build): p.read_bytes() for p in (build / "preview").rglob("*") if p.is_file()}

    def refuse(path):
        raise AssertionError(f"decoded {path} although its thumbnail is cached")

    monkeypatch.setattr(thumbs, "read_rgb", refuse)
    write_preview(build)
    # Byte-identical on rerun, from the cache alone.
    assert {p.relative_to(build): p.read_bytes() for p in (build / "preview").rglob("*") if p.is_file()} == first


def test_large_concepts_get_several_sheets(build, monkeypatch):
    monkeypatch.setattr(preview, "SHEET_TILES", 3)
    html = write_preview(build).read_text()
    assert re.findall(r'href="(iso0-[^"]+)"', html) == ["iso0-01.jpg", "iso0-02.jpg", "iso0-03.jpg", "iso0-01.jpg"]
    assert Image.open(build / "preview" / "iso0-03.jpg").size[1] == HEADER + PAD + THUMB + CAPTION + PAD
    monkeypatch.setattr(preview, "SHEET_TILES", 400)
    write_preview(build)
    assert not (build / "preview" / "iso0-02.jpg").exists()


def test_reject_file_is_validated_and_merged(build, tmp_path):
    first = tmp_path / "rejects.txt"
    first.write_text("# reviewer A\niso0-00003\n\nreal1-00001  # looks like a hedgehog\niso0-00003\n")
    merge_reject_file(build, first)
    # A line's comment is the reject's reason: it stays with the id (the filter carries it on).
    assert (build / "manual_rejects.txt").read_text() == "iso0-00003\nreal1-00001  # looks like a hedgehog\n"
    second = tmp_path / "more.txt"
    second.write_text("iso0-00000\n")
    merge_reject_file(build, second)
    assert (build / "manual_rejects.txt").read_text() == "iso0-00000\niso0-00003\nreal1-00001  # looks like a hedgehog\n"
    # The sheets would show images the reviewer rejected as kept: they wait for the build.
    with pytest.raises(UserError) as err:
        write_preview(build)
    assert str(err.value) == (f"{build}: preview refused: 3 review decisions not applied yet (3 to reject, 0 to "
                              f"restore, in manual_rejects.txt); apply them with `isekai-gen build --out {build} "
                              "--config YOUR_CONFIG`")
    assert not (build / "preview").exists()

    bad = tmp_path / "bad.txt"
    bad.write_text("iso0-00001\n# comment\nnot-a-job-00042\n")
    with pytest.raises(UserError) as err:
        merge_reject_file(build, bad)
    assert str(err.value) == f"{bad}:3: unknown job id 'not-a-job-00042' (not in manifest.jsonl)"
    bad.write_text("iso0-00001\n00003  # a tile number of an old sheet\n")
    with pytest.raises(UserError) as err:
        merge_reject_file(build, bad)
    assert str(err.value) == (f"{bad}:2: '00003' is an image index, not a job id; list full job ids as printed "
                              "on the sheets ('iso0-00003', 'iso1-00003', 'real0-00003', ...)")
    assert (build / "manual_rejects.txt").read_text() == "iso0-00000\niso0-00003\nreal1-00001  # looks like a hedgehog\n"


def test_applied_manual_reject_shows_its_reason(build):
    set_manifest_field(build, "real0-00002", kept=False, reject_reason="manual_reject")
    (build / "manual_rejects.txt").write_text("real0-00002\n")   # listed and applied: nothing pending
    html = write_preview(build).read_text()
    assert "manual_reject: 1" in html


def test_sheets_of_concepts_no_longer_built_are_removed(build):
    write_preview(build)
    files = sorted(p.relative_to(build) for p in (build / "preview").rglob("*"))
    (build / "preview" / "dropped-concept-01.jpg").write_bytes(b"an earlier build's sheet")
    (build / "preview" / "iso0.png").write_bytes(b"a sheet of an older version")
    write_preview(build)
    assert sorted(p.relative_to(build) for p in (build / "preview").rglob("*")) == files


def test_cli_preview_and_one_line_errors(build, tmp_path):
    from isekai_gen.cli import main

    broken = build / "images" / "iso0" / "iso0-00001.png"
    good = broken.read_bytes()
    broken.write_bytes(b"not a png")
    result = CliRunner().invoke(main, ["preview", str(build), "--no-progress"])
    assert result.exit_code == 1
    assert result.output == f"error: {broken}: corrupt or unreadable image (cannot identify image file '{broken}')\n"
    broken.write_bytes(good)

    rejects = tmp_path / "rejects.txt"
    rejects.write_text("iso1-00004\n")
    result = CliRunner().invoke(main, ["preview", str(build), "--reject-file", str(rejects), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (build / "manual_rejects.txt").read_text() == "iso1-00004\n"
    assert result.output == (f"manual rejects merged into {build / 'manual_rejects.txt'}; 1 decision pending: apply "
                             f"them with `isekai-gen build --out {build} --config YOUR_CONFIG`, then run preview again\n")
    result = CliRunner().invoke(main, ["preview", str(build), "--no-progress"])
    assert result.exit_code == 1 and result.output.startswith(f"error: {build}: preview refused: 1 review decision ")
    (build / "manual_rejects.txt").unlink()
    result = CliRunner().invoke(main, ["preview", str(build), "--no-progress"])
    assert result.exit_code == 0 and str(build / "preview" / "index.html") in result.output

    rejects.write_text("iso1-00004 iso1-00003\n")
    result = CliRunner().invoke(main, ["preview", str(build), "--reject-file", str(rejects)])
    assert result.exit_code == 1
    assert result.output == f"error: {rejects}:1: unknown job id 'iso1-00004 iso1-00003' (not in manifest.jsonl)\n"

    result = CliRunner().invoke(main, ["preview", str(build), "--reject-file", str(tmp_path / "missing.txt")])
    assert result.exit_code == 1
    assert result.output == f"error: {tmp_path / 'missing.txt'}: file not found\n"


def test_listed_broken_image_stays_broken(build, tmp_path):
    """The filter ranks `broken` above `manual_reject`: the sheet must not promise the latter."""
    set_manifest_field(build, "iso0-00001", kept=False, reject_reason="broken")
    rejects = tmp_path / "rejects.txt"
    rejects.write_text("iso0-00001\n")
    merge_reject_file(build, rejects)
    html = write_preview(build).read_text()
    assert "broken: 1" in html and "manual_reject" not in html


def test_images_outside_the_build_are_refused(build, tmp_path):
    outside = tmp_path / "outside.png"
    Image.new("RGB", (4, 4)).save(outside)
    linked = build / "images/iso0/iso0-00001.png"   # the manifest reader checks names and folders, not each file
    linked.unlink()
    linked.symlink_to(outside)
    with pytest.raises(UserError, match=r"manifest.jsonl: image 'images/iso0/iso0-00001.png' points outside"):
        write_preview(build)
    assert not (build / "preview").exists() and not (build / "cache").exists()


def unfilter(build) -> None:
    """Turn the synthetic filtered build into what `generate` alone leaves: no scores, no verdicts."""
    rows = [json.loads(line) for line in (build / "manifest.jsonl").read_text().splitlines()]
    for row in rows:
        for field in FILTER_FIELDS:
            row.pop(field, None)   # manual_reason: on manual rejects only
    (build / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_unfiltered_build_sheets_are_grey(build):
    unfilter(build)
    html = write_preview(build).read_text()
    assert "kept 0 / 8 generated (0%); failed: 1" in html
    sheet = Image.open(build / "preview" / "iso0-01.jpg")
    assert frame_colours(sheet, 8) == [UNSCORED] * 7 + [REJECTED]
