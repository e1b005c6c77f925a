"""Static contact sheets for sharing a build's review, and the manual reject list.

The original ISEKAI images were selected by hand. ``write_preview`` writes ``OUT/preview/``, a
folder that can be zipped and sent: ``index.html`` with one section per group (the ISEKAI
concept beside its real-world partner, each with counts, reject reasons and a strip of its best
kept images), and JPEG contact sheets per concept (``<concept>-NN.jpg``, 400 tiles each) framing
every image green (kept) or red (rejected, reason below), doubtful images (lowest alignment)
first, each captioned with its full job id, which is what a reject file lists. Tiles come from
the thumbnail cache the review server uses (``curation.thumbs``), so a second preview decodes no PNG.

Job ids a reviewer lists in a reject file are merged into ``OUT/manual_rejects.txt`` under the
list's own lock (``curation.decisions``, shared with the review server); the filter stage marks
those images ``manual_reject`` and the next build tops the concept up. Until it has, the sheets
are not drawn: like every stage that reads the kept set, ``write_preview`` refuses while decisions
are pending (``curation.pending``). For interactive review use ``isekai-gen review``.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from .errors import UserError, where
from .fileio import atomic_write_bytes, atomic_write_text, remove_stale
from .filtering.manifest import read_manual_entries
from .manifest import manifest_path, read_manifest
from .paths import contained
from .curation.data import BuildView, alignment
from .curation.decisions import update_manual_rejects
from .curation.pending import refuse_pending
from .curation.thumbs import THUMB, load_thumbnail
from .storage import fetch_images

PREVIEW_DIR = "preview"
STRIPS_DIR = "strips"

CAPTION = 44          # three caption lines: job id, scores, verdict
PAD = 6
COLUMNS = 8
SHEET_TILES = 400     # tiles per sheet: 50 rows, ~9,000 px high, far below JPEG's 65,535 px limit
HEADER = 28
STRIP_GAP = 4
JPEG_QUALITY = 88
KEPT, REJECTED, UNSCORED = (40, 160, 60), (200, 30, 30), (150, 150, 150)


def _refuse_tile_numbers(reject_file: Path, known: set[str]) -> None:
    """Sheets before full-id captions showed only the index (``00012``): name the job ids it may mean."""
    try:
        lines = reject_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return  # the reader says so in its own words
    for lineno, line in enumerate(lines, start=1):
        entry = line.split("#", 1)[0].strip()
        if entry.isdigit():
            candidates = sorted(j for j in known if j.rsplit("-", 1)[-1] == entry)
            shown = ", ".join(repr(j) for j in candidates[:3]) + (", ..." if len(candidates) > 3 else "")
            raise UserError(f"{where(reject_file, lineno)}: {entry!r} is an image index, not a job id; list full job ids "
                            f"as printed on the sheets ({shown or 'no job has this index'})")


def merge_manual_rejects(out_dir: Path, reject_file: Path, known: set[str]) -> list[str]:
    """Add the ids of ``reject_file`` to ``OUT/manual_rejects.txt`` (sorted, unique); return them all.

    Both files are read by the filter stage's reader, so what is accepted here is what it honours.
    """
    if not Path(reject_file).is_file():
        raise UserError(f"{reject_file}: file not found")
    _refuse_tile_numbers(Path(reject_file), known)
    listed = read_manual_entries(Path(reject_file), known)  # a line's comment is its reason
    return sorted(update_manual_rejects(Path(out_dir), known, lambda current: {**listed, **current}))


@dataclass(frozen=True)
class Tile:
    job_id: str
    image: Path | None     # None: generation failed
    sha256: str | None
    caption: str
    verdict: str           # "kept", a reject reason, or "not scored"
    colour: tuple[int, int, int]


def tile_for(row: dict, out_dir: Path) -> Tile:
    scores = row.get("scores") or {}
    caption = (f"a={scores['alignment']:.3f} m={scores['margin']:.3f}"
               if isinstance(scores.get("alignment"), (int, float)) and isinstance(scores.get("margin"), (int, float))
               else "no scores")
    if row.get("status") != "ok" or not row.get("image"):
        return Tile(row["job_id"], None, None, caption, "failed", REJECTED)
    reason = row.get("reject_reason")
    if reason:
        verdict, colour = reason, REJECTED
    elif row.get("kept") is True:
        verdict, colour = "kept", KEPT
    else:
        verdict, colour = "not scored", UNSCORED
    image = contained(out_dir, row["image"], what="image", source=manifest_path(out_dir))
    return Tile(row["job_id"], image, row["sha256"], caption, verdict, colour)


def sheet_order(rows: list[dict]) -> list[dict]:
    """Doubtful first: ascending alignment, unscored and failed jobs last, ties by index."""
    return sorted(rows, key=lambda r: (alignment(r) == float("-inf"), alignment(r), r["index"]))


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _paste_centred(canvas: Image.Image, thumb: Image.Image, x: int, y: int) -> None:
    canvas.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))


def contact_sheet(title: str, tiles: list[Tile], out_dir: Path) -> Image.Image:
    """A grid of thumbnails, each framed in its verdict's colour, with id, scores and verdict below."""
    rows = max(1, math.ceil(len(tiles) / COLUMNS))
    cell_w, cell_h = THUMB + PAD, THUMB + CAPTION + PAD
    sheet = Image.new("RGB", (PAD + COLUMNS * cell_w, HEADER + PAD + rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, PAD), title, fill="black", font=_font(14))
    small = _font(10)
    for i, tile in enumerate(tiles):
        x = PAD + (i % COLUMNS) * cell_w
        y = HEADER + PAD + (i // COLUMNS) * cell_h
        if tile.image is not None:
            _paste_centred(sheet, load_thumbnail(out_dir, tile.image, tile.sha256), x, y)
        else:
            draw.rectangle((x, y, x + THUMB - 1, y + THUMB - 1), fill=(230, 230, 230))
        draw.rectangle((x, y, x + THUMB - 1, y + THUMB - 1), outline=tile.colour, width=3)
        draw.text((x, y + THUMB + 2), tile.job_id, fill="black", font=small)
        draw.text((x, y + THUMB + 15), tile.caption, fill="black", font=small)
        draw.text((x, y + THUMB + 28), tile.verdict, fill=tile.colour, font=small)
    return sheet


def strip(tiles: list[Tile], out_dir: Path) -> Image.Image:
    """The thumbnails of ``tiles`` side by side (the index's view of a concept's best kept images)."""
    canvas = Image.new("RGB", (max(1, len(tiles)) * (THUMB + STRIP_GAP), THUMB), "white")
    for i, tile in enumerate(tiles):
        _paste_centred(canvas, load_thumbnail(out_dir, tile.image, tile.sha256), i * (THUMB + STRIP_GAP), 0)
    return canvas


def _jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)  # 4:4:4 keeps captions and frames sharp
    return buffer.getvalue()


def sheet_name(concept_id: str, page: int) -> str:
    # Concept ids are slugs and the page suffix is always "-NN": no two concepts' sheets collide.
    return f"{concept_id}-{page:02d}.jpg"


def _concept_html(s: dict) -> str:
    reasons = ", ".join(f"{html.escape(r)}: {n}" for r, n in sorted(s["rejects"].items())) or "no rejects"
    sheets = " ".join(f'<a href="{html.escape(name)}">{page}</a>' for page, name in enumerate(s["sheets"], start=1))
    rate = f"{100 * s['kept'] / s['total']:.0f}%" if s["total"] else "-"
    return (
        f'<div class="concept" id="{html.escape(s["concept"])}"><h3>{html.escape(s["label"])} '
        f'({html.escape(s["concept"])}) <span class="world">{html.escape(s["world"])}</span></h3>\n'
        f'<p>kept {s["kept"]} / {s["total"]} generated ({rate}); {reasons}</p>\n<p>contact sheets: {sheets}</p>\n'
        f'<a href="{html.escape(s["sheets"][0])}"><img src="{STRIPS_DIR}/{html.escape(s["concept"])}.jpg" '
        f'alt="best kept images of {html.escape(s["concept"])}"></a></div>'
    )


def index_html(groups: list[list[dict]], smoke: int, total: int) -> str:
    banner = (f'<p class="smoke">SMOKE-TEST BUILD: {smoke} of {total} images were generated with random weights; '
              "they are noise.</p>\n" if smoke else "")
    sections = "\n".join(
        f'<section><h2>{html.escape(members[0]["group"])}</h2>\n<div class="pair">\n'
        + "\n".join(_concept_html(s) for s in members) + "\n</div></section>" for members in groups)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>isekai-gen preview</title>\n"
        "<style>body{font-family:sans-serif}.pair{display:grid;grid-template-columns:1fr 1fr;gap:2em}"
        "section{border-top:1px solid #ccc}.smoke{background:#fde2e1;border:1px solid #d33;padding:.5em;"
        "font-weight:bold}.world{color:#666;font-size:.8em}img{max-width:100%}</style></head>\n<body>\n"
        f"<h1>Contact sheets</h1>\n{banner}"
        "<p>Each ISEKAI concept beside its real-world partner. On the sheets, green frame: kept; red: rejected "
        "(reason below the image); grey: not scored; doubtful images (lowest alignment) first. To reject images "
        "by hand, list their full job ids (as printed under each image, e.g. <code>cactihog-00012</code>) one per "
        "line in a file and run <code>isekai-gen preview BUILD_DIR --reject-file FILE</code>, or review in the "
        "browser with <code>isekai-gen review BUILD_DIR</code>; the next build replaces them.</p>\n"
        f"{sections}\n</body>\n</html>\n"
    )


def merge_reject_file(out_dir: Path, reject_file: Path) -> list[str]:
    """``merge_manual_rejects`` against the job ids of ``out_dir``'s manifest."""
    return merge_manual_rejects(Path(out_dir), reject_file, {r["job_id"] for r in read_manifest(Path(out_dir))})


def write_preview(out_dir: Path, *, progress: bool = False) -> Path:
    """Draw the sheets of the manifest's verdicts, refused while decisions are pending; return index.html."""
    out_dir = Path(out_dir)
    refuse_pending(out_dir, "preview")
    rows = read_manifest(out_dir)
    fetch_images(out_dir, rows)  # a remote build's images, into its mirror (no-op for a local build)

    view = BuildView.from_rows(rows)
    preview_dir = out_dir / PREVIEW_DIR
    written = {preview_dir / "index.html"}
    summaries: dict[str, dict] = {}
    for concept_id, job_ids in tqdm(view.concepts.items(), desc="preview", unit="concept", disable=not progress):
        members = [view.rows[j] for j in job_ids]
        tiles = [tile_for(row, out_dir) for row in sheet_order(members)]
        first = members[0]
        kept = sum(t.verdict == "kept" for t in tiles)
        title = f"{concept_id} ({first['label']}, {first['world']}): {kept} of {len(tiles)} kept"
        if any(row.get("smoke_test") is True for row in members):
            title += "  [SMOKE-TEST BUILD: random weights, the images are noise]"
        sheets = []
        for page, start in enumerate(range(0, len(tiles), SHEET_TILES), start=1):
            name = sheet_name(concept_id, page)
            pages = math.ceil(len(tiles) / SHEET_TILES)
            heading = title if pages == 1 else f"{title} (sheet {page} of {pages})"
            atomic_write_bytes(preview_dir / name, _jpeg_bytes(contact_sheet(heading, tiles[start:start + SHEET_TILES], out_dir)))
            sheets.append(name)
        by_job = {t.job_id: t for t in tiles}
        best = [by_job[job_id] for job_id, _ in view.best_kept[concept_id][:COLUMNS]]
        strip_path = preview_dir / STRIPS_DIR / f"{concept_id}.jpg"
        atomic_write_bytes(strip_path, _jpeg_bytes(strip(best, out_dir)))
        written.update([strip_path, *(preview_dir / name for name in sheets)])
        rejects: dict[str, int] = {}
        for t in tiles:
            if t.verdict not in ("kept", "not scored"):
                rejects[t.verdict] = rejects.get(t.verdict, 0) + 1
        summaries[concept_id] = {
            "concept": concept_id, "sheets": sheets, "label": str(first["label"]), "world": str(first["world"]),
            "group": str(first["group_id"]), "kept": kept, "total": len(tiles), "rejects": rejects,
        }
    index = preview_dir / "index.html"
    atomic_write_text(index, index_html([[summaries[c] for c in members] for members in view.groups],
                                        view.smoke_test, len(rows)))
    # Sheets of concepts no longer in the build (a smaller catalog, a --concepts subset) go.
    remove_stale(preview_dir, written)
    return index
