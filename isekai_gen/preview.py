"""Contact sheets for human review, and the manual reject list.

The original ISEKAI images were selected by hand. ``write_preview`` draws one PNG per concept
(every generated image with its alignment and margin, rejects framed red with their reason)
and an ``index.html`` linking them. Job ids a reviewer lists in a reject file are merged into
``OUT/manual_rejects.txt``; the filter stage marks those images ``manual_reject`` and the next
build tops the concept up and rebuilds episodes and exports.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps
from tqdm import tqdm

from .errors import UserError
from .fileio import atomic_write_bytes, atomic_write_text, remove_stale
from .filtering.images import read_rgb
from .filtering.manifest import MANUAL_REJECTS, read_manual_rejects
from .manifest import read_manifest

PREVIEW_DIR = "preview"

THUMB = 128
CAPTION = 30
PAD = 6
COLUMNS = 8
HEADER = 28
KEPT, REJECTED, UNSCORED = (40, 160, 60), (200, 30, 30), (150, 150, 150)


def merge_manual_rejects(out_dir: Path, reject_file: Path, known: set[str]) -> list[str]:
    """Add the ids of ``reject_file`` to ``OUT/manual_rejects.txt`` (sorted, unique); return them all.

    Both files are read by the filter stage's reader, so what is accepted here is what it honours.
    """
    if not Path(reject_file).is_file():
        raise UserError(f"{reject_file}: file not found")
    target = Path(out_dir) / MANUAL_REJECTS
    ids = sorted(read_manual_rejects(target, known) | read_manual_rejects(Path(reject_file), known))
    atomic_write_text(target, "".join(f"{job_id}\n" for job_id in ids))
    return ids


@dataclass(frozen=True)
class Tile:
    job_id: str
    image: Path | None     # None: generation failed
    caption: str
    verdict: str           # "kept", a reject reason, or "not scored"
    colour: tuple[int, int, int]


def tile_for(row: dict, out_dir: Path, manual: set[str]) -> Tile:
    scores = row.get("scores") or {}
    caption = (f"a={scores['alignment']:.3f} m={scores['margin']:.3f}"
               if isinstance(scores.get("alignment"), (int, float)) and isinstance(scores.get("margin"), (int, float))
               else "no scores")
    if row.get("status") != "ok" or not row.get("image"):
        return Tile(row["job_id"], None, caption, "failed", REJECTED)
    reason = row.get("reject_reason")
    # Broken outside the list's reach: the filter gives "broken" priority over a manual reject.
    if row["job_id"] in manual and reason not in ("manual_reject", "broken"):
        reason = "manual_reject (next build)"
    if reason:
        verdict, colour = reason, REJECTED
    elif row.get("kept") is True:
        verdict, colour = "kept", KEPT
    else:
        verdict, colour = "not scored", UNSCORED
    return Tile(row["job_id"], out_dir / row["image"], caption, verdict, colour)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _thumbnail(path: Path) -> Image.Image:
    return ImageOps.contain(read_rgb(path), (THUMB, THUMB), Image.Resampling.BICUBIC)


def contact_sheet(title: str, tiles: list[Tile]) -> Image.Image:
    """A grid of thumbnails, each framed in its verdict's colour, with scores and verdict below."""
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
            thumb = _thumbnail(tile.image)
            sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))
        else:
            draw.rectangle((x, y, x + THUMB - 1, y + THUMB - 1), fill=(230, 230, 230))
        draw.rectangle((x, y, x + THUMB - 1, y + THUMB - 1), outline=tile.colour, width=3)
        draw.text((x, y + THUMB + 2), f"{tile.job_id.rsplit('-', 1)[-1]} {tile.caption}", fill="black", font=small)
        draw.text((x, y + THUMB + 15), tile.verdict, fill=tile.colour, font=small)
    return sheet


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def index_html(summaries: list[dict]) -> str:
    rows = []
    for s in summaries:
        reasons = ", ".join(f"{html.escape(r)}: {n}" for r, n in sorted(s["rejects"].items())) or "none"
        rows.append(
            f'<tr><td><a href="{html.escape(s["file"])}">{html.escape(s["concept"])}</a></td>'
            f'<td>{html.escape(s["label"])}</td><td>{html.escape(s["world"])}</td><td>{html.escape(s["group"])}</td>'
            f'<td>{s["kept"]} / {s["total"]}</td><td>{reasons}</td></tr>'
        )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>isekai-gen preview</title>\n"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}</style></head>\n<body>\n"
        "<h1>Contact sheets</h1>\n<p>Green frame: kept; red: rejected (reason below the image); grey: not scored. "
        "To reject images by hand, list their job ids one per line in a file and run "
        "<code>isekai-gen preview BUILD_DIR --reject-file FILE</code>; the next build replaces them.</p>\n"
        "<table>\n<tr><th>concept</th><th>label</th><th>world</th><th>group</th><th>kept / generated</th>"
        "<th>rejects</th></tr>\n" + "\n".join(rows) + "\n</table>\n</body>\n</html>\n"
    )


def write_preview(out_dir: Path, *, reject_file: Path | None = None, progress: bool = False) -> Path:
    """Merge ``reject_file`` into the manual rejects (if given), draw the sheets; return index.html."""
    out_dir = Path(out_dir)
    rows = read_manifest(out_dir)
    known = {r["job_id"] for r in rows}
    if reject_file is not None:
        manual = set(merge_manual_rejects(out_dir, reject_file, known))
    else:
        manual = read_manual_rejects(out_dir / MANUAL_REJECTS, known)

    by_concept: dict[str, list[dict]] = {}
    for row in rows:
        by_concept.setdefault(row["concept_id"], []).append(row)
    preview_dir = out_dir / PREVIEW_DIR
    summaries = []
    for concept_id, members in tqdm(by_concept.items(), desc="preview", unit="concept", disable=not progress):
        tiles = [tile_for(row, out_dir, manual) for row in members]
        first = members[0]
        kept = sum(t.verdict == "kept" for t in tiles)
        title = f"{concept_id} ({first.get('label', '')}, {first.get('world', '')}): {kept} of {len(tiles)} kept"
        atomic_write_bytes(preview_dir / f"{concept_id}.png", _png_bytes(contact_sheet(title, tiles)))
        rejects: dict[str, int] = {}
        for t in tiles:
            if t.verdict not in ("kept", "not scored"):
                rejects[t.verdict] = rejects.get(t.verdict, 0) + 1
        summaries.append({
            "concept": concept_id, "file": f"{concept_id}.png", "label": str(first.get("label", "")),
            "world": str(first.get("world", "")), "group": str(first.get("group_id", "")),
            "kept": kept, "total": len(tiles), "rejects": rejects,
        })
    index = preview_dir / "index.html"
    atomic_write_text(index, index_html(summaries))
    # Sheets of concepts no longer in the build (a smaller catalog, a --concepts subset) go.
    remove_stale(preview_dir, {index, *(preview_dir / summary["file"] for summary in summaries)})
    return index
