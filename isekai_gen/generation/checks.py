"""Detect broken generator outputs: NaN (fp16 VAE overflow), black, uniform, safety blackouts."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

BROKEN_REASONS = ("nan", "black", "uniform", "nsfw_blackout")
# uint8 thresholds: a black frame from a safety checker or a dead VAE has every pixel near 0;
# a uniform frame (any colour) has almost no spread.
BLACK_MAX = 8
UNIFORM_STD = 2.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0,1] HxWx3 -> uint8, rounding as diffusers' numpy_to_pil does."""
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)


def broken_reason(image: np.ndarray, nsfw_flagged: bool = False) -> str | None:
    if not np.isfinite(image).all():
        return "nan"
    if nsfw_flagged:
        return "nsfw_blackout"
    pixels = to_uint8(image)
    if int(pixels.max()) <= BLACK_MAX:
        return "black"
    if float(pixels.std()) < UNIFORM_STD:
        return "uniform"
    return None


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes without metadata: identical pixels give identical bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()
