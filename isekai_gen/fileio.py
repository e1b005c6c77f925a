"""Atomic file writing and JSON Lines helpers shared by every stage.

A file is either absent or complete: content goes to a temporary file in the same folder,
is flushed to disk, then renamed over the target (``os.replace`` is atomic on POSIX).
A process killed at any moment leaves at worst a stray ``.tmp-*`` file, never a torn target.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import UserError, where

log = logging.getLogger(__name__)

UMASK = os.umask(0)
os.umask(UMASK)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[Any]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    # mkstemp creates 0600; published files get the usual permissions (0666 minus the umask).
    os.fchmod(fd, 0o666 & ~UMASK)
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def dumps_canonical(obj: Any) -> str:
    """JSON with sorted keys and no spaces: identical objects give identical bytes."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write pretty, key-sorted JSON atomically (for human-read files such as run.json)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write JSON Lines atomically, one canonical JSON object per line."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(dumps_canonical(row) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:  # a folder in its place, no permission, ...
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where(path, exc.lineno)}: invalid JSON ({exc.msg})") from None


def parse_json_object(line: str, path, lineno: int) -> dict:
    """One JSON Lines line as an object; errors name the file and line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where(path, lineno)}: invalid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise UserError(f"{where(path, lineno)}: expected a JSON object, got {type(row).__name__}")
    return row


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read JSON Lines; every line must be a JSON object. Blank lines are skipped."""
    path = Path(path)
    rows = []
    try:
        handle = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    with handle, collection_paused():
        try:
            for lineno, line in enumerate(handle, start=1):
                if line.strip():
                    rows.append(parse_json_object(line, path, lineno))
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return rows


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many containers that all stay alive.

    Every few hundred new dicts trigger a collection that walks all of them and frees nothing:
    at 100k manifest rows that is ~40% of the load time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class HashingWriter:
    """Binary file wrapper that hashes what is written through it (saves reading the file back)."""

    def __init__(self, handle):
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.handle.flush()

    @property
    def closed(self) -> bool:
        return self.handle.closed

    def close(self) -> None:
        """Writers close what they were given; the underlying file stays open for its owner."""


def remove_stale(root: str | os.PathLike, keep: set[Path]) -> int:
    """Delete every file under ``root`` not in ``keep``, then the folders left empty; return the count.

    For output folders rewritten by a stage: what an earlier run wrote and this one did not
    (a dropped concept's sheet, a removed benchmark's images) must not linger beside the new files.
    """
    root = Path(root)
    stale = sorted(p for p in root.rglob("*") if p.is_file() and p not in keep)
    for path in stale:
        log.info("removing %s from an earlier run", path)
        path.unlink()
    # Reverse path order visits a folder's children before the folder itself.
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return len(stale)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
