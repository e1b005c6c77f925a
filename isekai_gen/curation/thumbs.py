"""JPEG thumbnails of build images, made once and cached under ``OUT/cache/thumbs/``.

Keyed by the image's sha256 from the manifest (not by job id), so a regenerated image gets a new
thumbnail and identical images share one. Both the review server and the static ``preview``
draw from this cache: the first visit (or preview) decodes each PNG once, every later one reads
a ~5 kB JPEG. The preview always decodes the cached JPEG bytes, never the in-memory image they
were made from, so a sheet drawn with a cold cache is byte-identical to one drawn with a warm one.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from ..fileio import atomic_write_bytes
from ..filtering.images import read_rgb

THUMB = 128          # longest side in pixels
JPEG_QUALITY = 85
THUMBS_DIR = Path("cache") / "thumbs" / str(THUMB)
# Box-reduce to at most twice the target before the bicubic pass (what Image.thumbnail does):
# 1024 px -> 128 px takes 3 ms instead of 13 ms, indistinguishable at this size.
REDUCING_GAP = 2.0


def thumbnail_path(out_dir: Path, sha256: str) -> Path:
    # Two-hex-digit fan-out keeps a 40,000-image build at ~160 files per folder.
    return Path(out_dir) / THUMBS_DIR / sha256[:2] / f"{sha256}.jpg"


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """The longest side scaled to ``THUMB`` (up or down), the aspect ratio kept, as ``ImageOps.contain``."""
    if width >= height:
        return THUMB, max(1, round(height / width * THUMB))
    return max(1, round(width / height * THUMB)), THUMB


def thumbnail_image(image_path: Path) -> Image.Image:
    image = read_rgb(image_path)
    return image.resize(thumbnail_size(*image.size), Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP)


def is_whole_jpeg(data: bytes) -> bool:
    """Start and end markers present: not an empty or torn cache file."""
    return data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")


def thumbnail_bytes(out_dir: Path, image_path: Path, sha256: str) -> bytes:
    """The cached JPEG thumbnail of ``image_path``, made now if missing or torn; written
    atomically, so two requests making the same one at once both end with a whole file."""
    path = thumbnail_path(out_dir, sha256)
    try:
        data = path.read_bytes()
        if is_whole_jpeg(data):
            return data
    except FileNotFoundError:
        pass
    buffer = io.BytesIO()
    thumbnail_image(image_path).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    # No fsync: it was 45% of a cold `preview` (one per thumbnail); a thumbnail torn by a power cut is
    # only a cache miss (`is_whole_jpeg`), never a wrong answer.
    atomic_write_bytes(path, buffer.getvalue(), durable=False)
    return buffer.getvalue()


def load_thumbnail(out_dir: Path, image_path: Path, sha256: str) -> Image.Image:
    """The cached thumbnail decoded, for drawing contact sheets."""
    with Image.open(io.BytesIO(thumbnail_bytes(out_dir, image_path, sha256))) as image:
        image.load()
        return image.convert("RGB")
