"""Atomic writes from a process that does not hold the build folder's writer lock.

A command taking ``lock.build_lock`` exclusively deletes every ``.tmp-*`` file under the folder
(``fileio.remove_temp_files``: leftovers of killed writers), which includes the temporary file of
an atomic write the review server has in flight. The target is then untouched and the rename
fails with ``FileNotFoundError``; writing again is safe, since every caller writes a whole file.
"""

from __future__ import annotations

from pathlib import Path

from ..fileio import atomic_write_bytes

ATTEMPTS = 3


def write_cache_file(path: Path, data: bytes) -> None:
    """``atomic_write_bytes`` without the fsync, for a cache file whose reader checks it is whole:
    fsync was 45% of a cold ``preview`` (one per thumbnail); a file torn by a power cut is only a
    cache miss (``thumbs.is_whole_jpeg``), never a wrong answer."""
    atomic_write_bytes(path, data, durable=False)


def write_unlocked(path: Path, data: bytes, *, write=atomic_write_bytes) -> None:
    """``write(path, data)`` (an atomic write), again when a starting build swept its temporary file away."""
    for attempt in range(ATTEMPTS):
        try:
            return write(path, data)
        except FileNotFoundError:
            if attempt == ATTEMPTS - 1:
                raise
