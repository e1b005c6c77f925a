"""Decoding one generated image and the model-independent facts the filter needs about it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError


@dataclass(frozen=True)
class ImageFacts:
    phash: str          # 64-bit perceptual hash as 16 hex characters (imagehash.phash)
    width: int
    height: int
    pixel_std: float    # standard deviation of all RGB values (0-255); ~0 for blank/uniform images


def read_rgb(path: Path) -> Image.Image:
    """Decode ``path`` fully as RGB; a missing or undecodable file is a one-line ``UserError``."""
    try:
        # A remote build's object (storage.RemoteFile) when a cluster worker reads the bucket.
        with Image.open(path.open() if hasattr(path, "remote") else path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"{path}: image file not found (listed in manifest.jsonl)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: corrupt or unreadable image ({exc})") from None


def image_facts(image: Image.Image) -> ImageFacts:
    import imagehash

    pixels = np.asarray(image, dtype=np.float32)
    return ImageFacts(
        phash=str(imagehash.phash(image)),
        width=image.width,
        height=image.height,
        pixel_std=round(float(pixels.std()), 4),
    )
