"""Files that become durable together: one flush per committed batch instead of one per file.

``fileio.atomic_open`` fsyncs every file before its rename, which costs one journal commit of the
file system per image. A generation batch only needs its images on disk *before its journal line
is appended* (manifest.py: a committed row must point at a complete image), so each image here is
written to a ``.tmp-*`` sibling and renamed at once, and ``commit`` then makes the whole batch
durable with one ``syncfs(2)`` of the file system holding the images (Linux; it flushes file
data, inodes and the renames' directory entries in one call). Where ``syncfs`` is missing
(macOS, BSD) or a folder lies on another file system, every file and then each folder once is
fsynced instead. Until ``commit`` returns no journal line names the batch, so after a power loss
a renamed-but-unflushed image is simply a pending job's file and is rewritten on resume.

``syncfs`` reports write-back errors that happened since its file descriptor was opened (Linux
5.8+), so the descriptor is opened *before* the first write and kept for the whole run.
``ctypes`` is used because Python's ``os`` module has no ``syncfs``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

from ..fileio import atomic_write_bytes

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_syncfs = getattr(_libc, "syncfs", None)


def write_deferred(path: Path, data: bytes) -> None:
    """Write ``path`` atomically (temporary sibling, then rename) without flushing it to disk."""
    atomic_write_bytes(path, data, durable=False)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DurableFolder:
    """A folder whose files are written with ``write_deferred`` and made durable per batch."""

    def __init__(self, root: Path, *, use_syncfs: bool = True):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.root, os.O_RDONLY)
        self._device = os.fstat(self._fd).st_dev
        self._use_syncfs = use_syncfs and _syncfs is not None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "DurableFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def commit(self, paths: list[Path]) -> None:
        """Return once every file in ``paths`` (written under ``root``) and its name are on disk."""
        if not paths:
            return
        folders = sorted({path.parent for path in paths})
        foreign = {folder for folder in folders if os.stat(folder).st_dev != self._device}
        if self._use_syncfs:
            if _syncfs(self._fd) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"syncfs: {os.strerror(code)}", str(self.root))
        else:
            # New concept folders are entries of ``root``: flush it as well.
            foreign = set(folders) | {self.root}
        for path in paths:
            if path.parent in foreign:
                _fsync_path(path)
        for folder in sorted(foreign):
            _fsync_path(folder)

