"""JPEG thumbnails of build images, made once and cached under ``OUT/cache/thumbs/``.

Keyed by the image's sha256 from the manifest (not by job id), so a regenerated image gets a new
thumbnail and identical images share one. Both the review server and the static ``preview``
draw from this cache: the first visit (or preview) decodes each PNG once, every later one reads
a ~5 kB JPEG.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps

from ..filtering.images import read_rgb
from .writes import write_unlocked

THUMB = 128          # longest side in pixels
JPEG_QUALITY = 85
THUMBS_DIR = Path("cache") / "thumbs" / str(THUMB)


def thumbnail_path(out_dir: Path, sha256: str) -> Path:
    # Two-hex-digit fan-out keeps a 40,000-image build at ~160 files per folder.
    return Path(out_dir) / THUMBS_DIR / sha256[:2] / f"{sha256}.jpg"


def thumbnail_image(image_path: Path) -> Image.Image:
    return ImageOps.contain(read_rgb(image_path), (THUMB, THUMB), Image.Resampling.BICUBIC)


def ensure_thumbnail(out_dir: Path, image_path: Path, sha256: str) -> Path:
    """The cached thumbnail of ``image_path`` (made now if missing); written atomically, so two
    requests making the same one at once both end with a whole file."""
    path = thumbnail_path(out_dir, sha256)
    if not path.exists():
        buffer = io.BytesIO()
        thumbnail_image(image_path).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        write_unlocked(path, buffer.getvalue())
    return path


def load_thumbnail(out_dir: Path, image_path: Path, sha256: str) -> Image.Image:
    """The cached thumbnail decoded, for drawing contact sheets."""
    with Image.open(ensure_thumbnail(out_dir, image_path, sha256)) as image:
        image.load()
        return image.convert("RGB")
