"""Atomic file writing and JSON Lines helpers shared by every stage: the one atomic-write module.

A file is either absent or complete: content goes to a temporary file in the same folder,
is flushed to disk, then renamed over the target (``os.replace`` is atomic on POSIX).
A process killed at any moment leaves at worst a stray temporary file, never a torn target.
Every temporary file and folder of the tool is named ``temp_prefix(target)``:
``.isekai-gen-tmp-<writer pid>-<target>.<random>``, a marker no user file carries plus the id of
the process writing it. ``remove_temp_files`` (run by the build-folder lock's holder after a
successful command) removes only such names, and only those whose writer is no longer running, so
a user's ``.tmp-notes.txt`` is never touched, nor an atomic write still in flight in a process
that does not hold the lock (the review server).

A full disk is reported as one line naming the file, what it needed and what is free
(``DiskFullError``). JSON is written strictly: NaN and infinities are refused (they are not JSON).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import gc
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import UserError, where

log = logging.getLogger(__name__)

UMASK = os.umask(0)
os.umask(UMASK)

TEMP_MARKER = ".isekai-gen-tmp-"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def human_size(n: float) -> str:
    """``1234567`` -> ``1.2 MB`` (decimal units, as ``df -H`` and the Hub show sizes)."""
    units, step = ("B", "KB", "MB", "GB", "TB"), 0
    while n >= 1000 and step < len(units) - 1:
        n, step = n / 1000, step + 1
    return f"{n:.0f} B" if step == 0 else f"{n:.1f} {units[step]}"


def free_space(path: str | os.PathLike) -> int | None:
    """Bytes free to this user on the file system holding ``path`` (its nearest existing folder)."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


class DiskFullError(UserError, OSError):
    """No space left while writing ``path``: one line with the file, its size and the free space.

    Also an ``OSError`` with ``errno`` ENOSPC, so code that handles file-system errors still does.
    """

    def __init__(self, path: Path, written: int, needed: int | None):
        free = free_space(path.parent)
        size = f"needs {human_size(needed)}" if needed else f"needs more than the {human_size(written)} written"
        super().__init__(f"{path}: no space left on device while writing it ({size}; "
                         f"{'unknown' if free is None else human_size(free)} free on the file system of "
                         f"{path.parent}); free some space and rerun the same command")
        self.errno, self.strerror, self.filename = errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)

    def __str__(self) -> str:  # OSError's own would be "[Errno 28] ...", without the sizes
        return self.args[0]


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, size: int | None = None, durable: bool = True,
                **kwargs) -> Iterator[Any]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success.

    ``size``: the bytes to be written when known, named when the disk is full.
    ``durable=False`` skips the fsync: for files flushed later in one go (generation batches, one
    ``syncfs``) or caches whose reader checks they are whole (thumbnails).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), dir=path.parent)
    try:
        # mkstemp creates 0600; published files get the usual permissions (0666 minus the umask).
        os.fchmod(fd, 0o666 & ~UMASK)
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        written = os.stat(tmp).st_size if os.path.exists(tmp) else 0
        _discard(tmp)
        # A write to our handle carries no file name; an error naming another file is not ours to explain.
        if exc.errno in DISK_FULL and exc.filename in (None, tmp, str(path)) and not isinstance(exc, DiskFullError):
            raise DiskFullError(path, written, size) from exc
        raise
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def temp_prefix(target: str) -> str:
    """The start of the name of a temporary sibling of ``target`` written by this process
    (``mkstemp``/``mkdtemp`` add a random tail without dots)."""
    return f"{TEMP_MARKER}{os.getpid()}-{target}."


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of the tool's temporary files or folders (never a user's)."""
    return name.startswith(TEMP_MARKER)


def temp_target(name: str) -> str | None:
    """The target a temporary name stands in for (``temp_prefix``'s ``target``), else None."""
    writer, _, rest = name.removeprefix(TEMP_MARKER).partition("-")
    if not is_temp_name(name) or not writer.isdigit() or "." not in rest:
        return None
    return rest.rpartition(".")[0]


def _writer_running(name: str) -> bool:
    """Whether the process named in a temporary name still runs (this one counts as running)."""
    writer = name.removeprefix(TEMP_MARKER).partition("-")[0]
    if not writer.isdigit():
        return False
    pid = int(writer)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone; a number no process can have
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def is_leftover(name: str) -> bool:
    """A temporary name of the tool whose writer is gone: garbage of an interrupted run."""
    return is_temp_name(name) and not _writer_running(name)


def remove_temp_files(root: str | os.PathLike) -> int:
    """Delete the leftovers (``is_leftover``) under ``root``; return the count.

    Only safe while holding ``root``'s writer lock (``lock.build_lock`` calls it then). Symlinks
    are not followed, and hidden folders are not entered: the tool writes none but its own
    temporary ones, while a user's ``.git`` or ``.venv`` may be huge.
    """
    removed = 0
    for folder, dirs, files in os.walk(root):
        for name in list(dirs):
            if name.startswith("."):
                dirs.remove(name)
            if not is_leftover(name):
                continue
            path = os.path.join(folder, name)
            log.info("removing %s left by an interrupted run", path)
            if os.path.islink(path):
                os.unlink(path)
            else:
                shutil.rmtree(path, ignore_errors=True)
            removed += 1
        for name in files:
            if is_leftover(name):
                path = os.path.join(folder, name)
                log.info("removing %s left by an interrupted run", path)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                removed += 1
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> None:
    with atomic_open(path, "wb", size=len(data), durable=durable) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    data = text.encode("utf-8")
    with atomic_open(path, "wb", size=len(data)) as handle:
        handle.write(data)


def _json_dumps(obj: Any, path=None, **options) -> str:
    """``json.dumps`` refusing NaN and infinities, naming where one is (they are not JSON)."""
    try:
        return json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False, **options)
    except ValueError:
        location = _non_finite(obj)
        if location is None:
            raise
        raise ValueError(f"{path or 'JSON'}: {location[0] or '(top level)'} is {location[1]!r}, "
                         "which JSON cannot hold; refusing to write it") from None


def _non_finite(obj: Any, prefix: str = "") -> tuple[str, float] | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return prefix, obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = _non_finite(value, f"{prefix}/{key}" if prefix else str(key))
        if found:
            return found
    return None


def dumps_canonical(obj: Any, path=None) -> str:
    """JSON with sorted keys and no spaces: identical objects give identical bytes."""
    return _json_dumps(obj, path, separators=(",", ":"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write pretty, key-sorted JSON atomically (for human-read files such as run.json)."""
    atomic_write_text(path, _json_dumps(obj, path, indent=2) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write JSON Lines atomically, one canonical JSON object per line."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(dumps_canonical(row, path) + "\n")


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


def parse_json_object(line: str | bytes, path, lineno: int, *, loads=json.loads) -> dict:
    """One JSON Lines line as an object; errors name the file and line.

    ``loads``: ``orjson.loads`` where the rows are many (its errors subclass ``json``'s).
    """
    try:
        row = loads(line)
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


# --- files that become durable together -------------------------------------------------------
# One flush per committed batch instead of one per file.
#
# ``fileio.atomic_open`` fsyncs every file before its rename, which costs one journal commit of the
# file system per image. A generation batch only needs its images on disk *before its journal line
# is appended* (manifest.py: a committed row must point at a complete image), so each image here is
# written to a temporary sibling and renamed at once, and ``commit`` then makes the whole batch
# durable with one ``syncfs(2)`` of the file system holding the images (Linux; it flushes file
# data, inodes and the renames' directory entries in one call). Where ``syncfs`` is missing
# (macOS, BSD) or a folder lies on another file system, every file and then each folder once is
# fsynced instead. Until ``commit`` returns no journal line names the batch, so after a power loss
# a renamed-but-unflushed image is simply a pending job's file and is rewritten on resume.
#
# ``syncfs`` reports write-back errors that happened since its file descriptor was opened (Linux
# 5.8+), so the descriptor is opened *before* the first write and kept for the whole run.
# ``ctypes`` is used because Python's ``os`` module has no ``syncfs``.

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_syncfs = getattr(_libc, "syncfs", None)


def write_deferred(path: Path, data: bytes) -> None:
    """Write ``path`` atomically (temporary sibling, then rename) without flushing it to disk:
    ``DurableFolder.commit`` flushes a whole batch at once."""
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

