"""Images for requests: decoded once per run, re-encoded only when needed, base64 once per image.

A 2,000-shot grid sends the same demonstration images thousands of times; ManyICL's `LMM.py`
re-read and re-encoded every image for every call (`generate_image_url`). Here each file is
read and decoded once (Pillow), kept as the provider will receive it, and its base64 text is made
once; every request then refers to the same `EncodedImage`.

- JPEG and PNG files are sent as their own bytes (what the original did), with their true media
  type (the original labelled everything `image/jpeg`).
- Other formats are re-encoded: TIFF (UCMerced) and other opaque images to JPEG, as the original's
  `encode_image` did for `.tif`; images with transparency to PNG.
- An image is resized only when a provider limit requires it (longest side, bytes per image); each
  resize is recorded in `resized` and written to the run folder.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import UserError
from .providers.base import EncodedImage, Limits

PASSTHROUGH = {"JPEG": "image/jpeg", "PNG": "image/png"}
JPEG_QUALITY = 90


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def encode_image(path: Path, limits: Limits) -> tuple[EncodedImage, dict | None]:
    """The image as the provider receives it, and a record of the resize when one was needed."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: image file not found") from None
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image, source_format = opened.copy(), opened.format
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise UserError(f"{path}: not a readable image ({exc})") from None
    width, height = image.size
    resized = None
    side = limits.max_image_side
    if side is not None and max(width, height) > side:
        scale = side / max(width, height)
        image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.LANCZOS)
        resized = {"reason": f"longest side {max(width, height)} > {side}"}
    target = "PNG" if _has_alpha(image) else "JPEG"
    if resized is None and source_format in PASSTHROUGH:
        payload, media_type = data, PASSTHROUGH[source_format]
    else:
        payload, media_type = _encode(image, target), PASSTHROUGH[target]
    cap = limits.max_image_bytes
    while cap is not None and len(payload) > cap:
        if min(image.size) <= 16:
            raise UserError(f"{path}: cannot shrink the image under the provider's {cap} bytes per image")
        image = image.resize((max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)), Image.LANCZOS)
        payload, media_type = _encode(image, target), PASSTHROUGH[target]
        resized = {"reason": f"over {cap} bytes per image"}
    if resized is not None:
        resized.update(source=str(path), original=[width, height], sent=list(image.size), nbytes=len(payload))
    encoded = EncodedImage(
        sha256=hashlib.sha256(payload).hexdigest(), media_type=media_type,
        data_b64=base64.b64encode(payload).decode("ascii"), width=image.width, height=image.height,
        nbytes=len(payload))
    return encoded, resized


class ImageCache:
    """path -> EncodedImage, computed once per run (thread-safe: prompts may be built in threads)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._cache: dict[Path, EncodedImage] = {}
        self._lock = threading.Lock()
        self.resized: list[dict] = []

    def get(self, path: Path) -> EncodedImage:
        encoded = self._cache.get(path)
        if encoded is None:
            encoded, resized = encode_image(path, self.limits)
            with self._lock:   # two threads may encode one image at once: the first one in is kept
                kept = self._cache.setdefault(path, encoded)
                if kept is encoded and resized is not None:
                    self.resized.append(resized)
            encoded = kept
        return encoded

    def __len__(self) -> int:
        return len(self._cache)
