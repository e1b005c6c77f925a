"""Put the referenced images under ``images/``: copy, symlink or nothing; re-encode what is not what its name says.

Every drawn file's real format is sniffed from its bytes (``content.inspect_image``). A file is
re-encoded, whatever the mode, when its bytes are not the format its output name says (Oxford-IIIT
Pet ships PNG and GIF data named ``.jpg``; UCMerced ``.tif`` is renamed ``.jpeg`` as the original
ManyICL example did) or its mode is not RGB/L (CMYK JPEGs, palette PNGs, 16-bit TIFFs). ManyICL's
client sends file bytes as they are under a MIME type it does not sniff (stanfordmlgroup/ManyICL
``ManyICL/LMM.py``: ``GPT4VAPI.generate_image_url`` labels every file ``data:image/jpeg``, only
``.tif`` converted first; ``GeminiAPI`` sends ``Part.from_data(mime_type="image/jpeg")``), so the
bytes must at least be what the name says. A link cannot change the format, so a re-encoded file
is always a new file.

Re-encoding is deterministic: EXIF orientation applied, first frame of an animation, alpha
composited onto white, 16-bit grey scaled by 1/257 to 8 bits, everything else converted to RGB by
PIL; JPEG quality 95, PNG and TIFF with PIL's fixed defaults, no metadata copied.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import UserError

ENCODERS = {".jpeg": ("JPEG", {"quality": 95}), ".jpg": ("JPEG", {"quality": 95}), ".png": ("PNG", {}),
            ".tif": ("TIFF", {}), ".tiff": ("TIFF", {})}
# The format each name promises; PIL names what it finds in the bytes.
NAMED_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF",
                 ".gif": "GIF", ".bmp": "BMP", ".webp": "WEBP"}
# Multi-picture JPEG (camera files): a baseline JPEG stream comes first, any JPEG reader takes it.
FORMAT_ALIASES = {"MPO": "JPEG"}
PLAIN_MODES = ("RGB", "L")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def deviation(suffix: str, image_format: str | None, mode: str | None) -> str | None:
    """Why bytes of ``image_format``/``mode`` are not a plain image of the name's ``suffix`` (None: they are)."""
    named = NAMED_FORMATS.get(suffix.lower())
    found = FORMAT_ALIASES.get(image_format, image_format)
    if named is not None and found != named:
        return f"{image_format} data named {suffix}"
    if mode not in PLAIN_MODES:
        return f"{image_format} in mode {mode}"
    return None


def verify_output(path: Path) -> None:
    """Decode a written image; its format must be what its name says (a failure is our bug, said in one line)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            reason = deviation(path.suffix, image.format, image.mode)
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError...)
        raise UserError(f"{path}: written image cannot be decoded ({exc})") from None
    if reason and Path(path).suffix.lower() in NAMED_FORMATS:
        raise UserError(f"{path}: written image is {reason}")


def plain_image(image):
    """``image`` as 8-bit RGB or L, by the fixed rules of the module docstring."""
    import numpy as np
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in PLAIN_MODES:
        return image
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def convert_image(source: Path, target: Path, file_name: str) -> None:
    from PIL import Image

    suffix = Path(file_name).suffix.lower()
    if suffix not in ENCODERS:
        raise UserError(f"{file_name}: cannot convert an image to {suffix!r} (supported: {', '.join(ENCODERS)})")
    image_format, params = ENCODERS[suffix]
    try:
        with Image.open(source) as image:
            image.load()
            image = plain_image(image)
    except Exception as exc:
        raise UserError(f"{source}: corrupt image ({exc})") from None
    image.save(target, format=image_format, **params)


def place_image(source: Path, target: Path, mode: str, reencode: bool) -> None:
    """Write ``target`` (in a fresh folder) from ``source``: re-encoded, copied or linked."""
    if reencode:
        convert_image(source, target, target.name)
    elif mode == "copy":
        shutil.copyfile(source, target)
    elif mode == "symlink":
        os.symlink(source.resolve(), target)
