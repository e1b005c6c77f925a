"""Byte-reproducible ``.npz`` files.

``numpy.savez`` stamps every member with the current time, so two runs over the same data give
different bytes. This writer uses a fixed timestamp and member order; ``numpy.load`` reads the
result like any other ``.npz``.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

from ..errors import UserError
from ..fileio import atomic_write_bytes

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` (no object arrays) atomically as an uncompressed ``.npz``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    atomic_write_bytes(path, buffer.getvalue())


def read_npz(path: str | os.PathLike, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Load every member of an ``.npz``; a garbage file or a missing member is a one-line error."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise UserError(f"{path}: missing array(s) {', '.join(missing)}")
    return arrays
