"""Preview contact sheets and the manual reject list."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from PIL import Image

from isekai_gen.errors import UserError
from isekai_gen.preview import COLUMNS, HEADER, KEPT, PAD, REJECTED, THUMB, CAPTION, write_preview
from test_episodes import make_catalog, set_manifest_field, write_build


@pytest.fixture
def build(tmp_path):
    return write_build(tmp_path / "build", make_catalog(2), kept=5, rejected=2)


def frame_colour(sheet: Image.Image, position: int) -> tuple[int, int, int]:
    """Colour of the top-left frame pixel of the tile at ``position``."""
    x = PAD + (position % COLUMNS) * (THUMB + PAD)
    y = HEADER + PAD + (position // COLUMNS) * (THUMB + CAPTION + PAD)
    return sheet.getpixel((x, y))


def test_sheets_frame_kept_and_rejected_images_and_index_links_them(build):
    index = write_preview(build)
    assert index == build / "preview" / "index.html"
    html = index.read_text()
    links = re.findall(r'href="([^"]+)"', html)
    assert links == [f"{c.id}.png" for c in make_catalog(2).concepts]
    for link in links:
        sheet = Image.open(build / "preview" / link)
        sheet.load()
        assert sheet.format == "PNG"
        # 5 kept, 2 rejects (low_alignment) and 1 failed job: 8 tiles, one row of 8.
        assert sheet.size == (PAD + COLUMNS * (THUMB + PAD), HEADER + PAD + THUMB + CAPTION + PAD)
        assert [frame_colour(sheet, i) for i in range(8)] == [KEPT] * 5 + [REJECTED] * 3
    assert "5 / 8" in html and "low_alignment: 2" in html and "failed: 1" in html


def test_reject_file_is_validated_and_merged(build, tmp_path):
    first = tmp_path / "rejects.txt"
    first.write_text("# reviewer A\niso0-00003\n\nreal1-00001  # looks like a hedgehog\niso0-00003\n")
    write_preview(build, reject_file=first)
    assert (build / "manual_rejects.txt").read_text() == "iso0-00003\nreal1-00001\n"
    second = tmp_path / "more.txt"
    second.write_text("iso0-00000\n")
    write_preview(build, reject_file=second)
    assert (build / "manual_rejects.txt").read_text() == "iso0-00000\niso0-00003\nreal1-00001\n"
    # Pending manual rejects are framed red before the filter stage has applied them.
    sheet = Image.open(build / "preview" / "iso0.png")
    assert [frame_colour(sheet, i) for i in range(5)] == [REJECTED, KEPT, KEPT, REJECTED, KEPT]

    bad = tmp_path / "bad.txt"
    bad.write_text("iso0-00001\n# comment\nnot-a-job-00042\n")
    with pytest.raises(UserError) as err:
        write_preview(build, reject_file=bad)
    assert str(err.value) == f"{bad}:3: unknown job id 'not-a-job-00042' (not in manifest.jsonl)"
    assert (build / "manual_rejects.txt").read_text() == "iso0-00000\niso0-00003\nreal1-00001\n"


def test_applied_manual_reject_shows_its_reason(build):
    set_manifest_field(build, "real0-00002", kept=False, reject_reason="manual_reject")
    html = write_preview(build).read_text()
    assert "manual_reject: 1" in html
    assert [frame_colour(Image.open(build / "preview" / "real0.png"), i) for i in range(3)] == [KEPT, KEPT, REJECTED]


def test_preview_is_byte_identical_on_rerun(build):
    write_preview(build)
    first = {p.name: p.read_bytes() for p in (build / "preview").iterdir()}
    write_preview(build)
    assert {p.name: p.read_bytes() for p in (build / "preview").iterdir()} == first


def test_sheets_of_concepts_no_longer_built_are_removed(build):
    write_preview(build)
    sheets = sorted(p.name for p in (build / "preview").iterdir())
    (build / "preview" / "dropped-concept.png").write_bytes(b"an earlier build's sheet")
    write_preview(build)
    assert sorted(p.name for p in (build / "preview").iterdir()) == sheets


def test_cli_preview_and_one_line_errors(build, tmp_path):
    from isekai_gen.cli import main

    rejects = tmp_path / "rejects.txt"
    rejects.write_text("iso1-00004\n")
    result = CliRunner().invoke(main, ["preview", str(build), "--reject-file", str(rejects), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (build / "manual_rejects.txt").read_text() == "iso1-00004\n"
    assert str(build / "preview" / "index.html") in result.output

    rejects.write_text("iso1-00004 iso1-00003\n")
    result = CliRunner().invoke(main, ["preview", str(build), "--reject-file", str(rejects)])
    assert result.exit_code == 1
    assert result.output == f"error: {rejects}:1: unknown job id 'iso1-00004 iso1-00003' (not in manifest.jsonl)\n"

    result = CliRunner().invoke(main, ["preview", str(build), "--reject-file", str(tmp_path / "missing.txt")])
    assert result.exit_code == 1
    assert result.output == f"error: {tmp_path / 'missing.txt'}: file not found\n"

    (build / "images" / "iso0" / "iso0-00001.png").write_bytes(b"not a png")
    result = CliRunner().invoke(main, ["preview", str(build), "--no-progress"])
    assert result.exit_code == 1
    broken = build / "images" / "iso0" / "iso0-00001.png"
    assert result.output == f"error: {broken}: corrupt or unreadable image (cannot identify image file '{broken}')\n"


def test_listed_broken_image_stays_broken(build, tmp_path):
    """The filter ranks `broken` above `manual_reject`: the sheet must not promise the latter."""
    set_manifest_field(build, "iso0-00001", kept=False, reject_reason="broken")
    rejects = tmp_path / "rejects.txt"
    rejects.write_text("iso0-00001\n")
    html = write_preview(build, reject_file=rejects).read_text()
    assert "broken: 1" in html and "manual_reject" not in html
