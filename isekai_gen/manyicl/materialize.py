"""Put the referenced images under ``images/``: copy, symlink or nothing; re-encode on format change.

A file whose output name has another extension than its source (UCMerced ``.tif`` -> ``.jpeg``,
as the original ManyICL example did) is decoded and re-encoded, whatever the mode, because a
link cannot change the format. Encoding settings are fixed so the bytes are reproducible.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import UserError

ENCODERS = {".jpeg": ("JPEG", {"quality": 95}), ".jpg": ("JPEG", {"quality": 95}), ".png": ("PNG", {})}


def needs_conversion(source: Path, file_name: str) -> bool:
    return source.suffix.lower() != Path(file_name).suffix.lower()


def verify_image(path: Path) -> None:
    """Decode the whole image; a truncated or garbage file is a one-line error naming it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError...)
        raise UserError(f"{path}: corrupt image ({exc})") from None


def convert_image(source: Path, target: Path, file_name: str) -> None:
    from PIL import Image

    suffix = Path(file_name).suffix.lower()
    if suffix not in ENCODERS:
        raise UserError(f"{file_name}: cannot convert an image to {suffix!r} (supported: {', '.join(ENCODERS)})")
    image_format, params = ENCODERS[suffix]
    try:
        with Image.open(source) as image:
            image = image.convert("RGB")
    except Exception as exc:
        raise UserError(f"{source}: corrupt image ({exc})") from None
    image.save(target, format=image_format, **params)


def place_image(source: Path, target: Path, mode: str) -> None:
    """Write ``target`` (in a fresh folder) from ``source`` by ``mode``."""
    if needs_conversion(source, target.name):
        convert_image(source, target, target.name)
    elif mode == "copy":
        shutil.copyfile(source, target)
    elif mode == "symlink":
        os.symlink(source.resolve(), target)
