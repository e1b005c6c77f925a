"""One writer per build folder.

Every command that writes into a build folder holds ``OUT/.isekai-gen.lock`` for its whole run.
Hand-written on ``fcntl.flock`` rather than the ``filelock`` package for two reasons: the kernel
drops the lock when its holder dies (so a stale lock of a killed process is taken over with no
guessing about PIDs), and the holder's host/PID/command are written into the locked file itself,
which ``filelock`` truncates on every contender's open. Readers (preview's sheets aside, score,
review pages) never take it: every file they read is replaced atomically.

The shards of one multi-process generation (``generate --shard I/N``, torchrun) write into one
folder at the same time by design (one journal each, disjoint images): each holds the folder lock
*shared*, which keeps every other writer out, and its own ``.isekai-gen.shard-I-of-N.lock``
exclusively, which keeps a second copy of the same shard out.

Children never keep the lock: ``flock`` belongs to the open file, which ``fork`` shares with the
child, and a forked DataLoader worker outliving its killed parent by seconds kept the rerun out.
Close-on-exec does not help a fork without exec, so every forked child points its copies of the
lock descriptors at ``/dev/null`` (``os.register_at_fork``); only the process that took the lock
releases or removes it.

The exclusive holder of a folder lock, when its command succeeded, removes the temporary files
and folders killed writers left under the folder (``fileio.remove_temp_files``: only the tool's
own ``.isekai-gen-tmp-<pid>-*`` names whose writer is gone), still holding the lock: a command
that refuses removes nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

from .errors import UserError
from .fileio import dumps_canonical, remove_temp_files

log = logging.getLogger(__name__)

LOCK_NAME = ".isekai-gen.lock"
SHARD_LOCK_GLOB = ".isekai-gen.shard-*.lock"

# This process's held locks (resolved folder -> depth): ``build`` runs the stage functions, which
# lock again; flock would make the second open of the same file conflict with the first.
_held: dict[Path, int] = {}
_held_guard = threading.Lock()
_locked_so_far: list[Path] = []  # every folder this process has locked, most recent last
_lock_fds: set[int] = set()  # descriptors of this process's open lock files
_fork_guard = threading.Lock()  # a fork waits while a lock file is being opened or closed


def _open_tracked(path: Path):
    with _fork_guard:
        handle = open(path, "a+", encoding="utf-8")
        _lock_fds.add(handle.fileno())
    return handle


def _close_tracked(handle) -> None:
    with _fork_guard:
        _lock_fds.discard(handle.fileno())
        handle.close()


def _drop_in_child() -> None:
    """In a forked child: let go of the parent's locks. Closing the descriptors would free their
    numbers for other files, which the parent's handles (copied into the child) would close later;
    ``dup2`` of ``/dev/null`` over them drops the lock file just as well and keeps the numbers taken."""
    global _held_guard, _fork_guard
    _held_guard, _fork_guard = threading.Lock(), threading.Lock()  # a parent's thread may have held them
    _held.clear()
    if _lock_fds:
        devnull = os.open(os.devnull, os.O_RDONLY)
        for fd in _lock_fds:
            os.dup2(devnull, fd, inheritable=False)
        os.close(devnull)
        _lock_fds.clear()


os.register_at_fork(before=lambda: _fork_guard.acquire(), after_in_parent=lambda: _fork_guard.release(),
                    after_in_child=_drop_in_child)


def locked_folders() -> list[Path]:
    """The build folders this process has written (held the lock of), most recent first: for an
    error raised after the lock was released, such as a full disk reported by the CLI."""
    with _held_guard:
        return list(reversed(dict.fromkeys(_locked_so_far)))


def _describe(path: Path) -> str | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    return (f"`{info.get('command', '?')}` (pid {info.get('pid', '?')} on {info.get('host', '?')}, "
            f"since {info.get('since', '?')})")


def _is_locked(path: Path, mode: int) -> bool:
    """Whether another open file holds a lock on ``path`` that conflicts with ``mode``."""
    try:
        handle = open(path, "rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def _holders(folder: Path) -> str:
    """Who holds ``folder``'s lock: the exclusive holder, or the generation shards sharing it."""
    main = folder / LOCK_NAME
    if _is_locked(main, fcntl.LOCK_SH):
        return _describe(main) or "another process"
    shards = [d for p in sorted(folder.glob(SHARD_LOCK_GLOB)) if _is_locked(p, fcntl.LOCK_EX) and (d := _describe(p))]
    return "; ".join(shards) or "`isekai-gen publish` (reading it)"  # the only shared holders without a shard file


def _record(handle, command: str) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(dumps_canonical({"host": socket.gethostname(), "pid": os.getpid(), "command": command,
                                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
    handle.flush()


def _open_locked(path: Path, mode: int, folder: Path, wait: bool, poll_s: float, holders):
    """``path`` opened and flocked with ``mode``; a one-line error naming ``holders()``, or a wait."""
    waiting = False
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            handle = _open_tracked(path)
        except FileNotFoundError:  # the holder before us removed the folder it had made in between
            continue
        try:
            fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
        except BlockingIOError:
            _close_tracked(handle)
            holder = holders()
            if not wait:
                raise UserError(f"{folder}: another isekai-gen is writing this build folder: {holder}; "
                                "wait for it to finish or pass --wait") from None
            if not waiting:
                log.warning("%s: waiting for %s to finish writing it", folder, holder)
                waiting = True
            time.sleep(poll_s)
            continue
        # The holder before us may have removed the file with its folder (a run into a new folder
        # that wrote nothing): a lock on a removed file excludes no one, so take the new one.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        opened = os.fstat(handle.fileno())
        if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            return handle
        _close_tracked(handle)


def _release(handle, path: Path, owner: int, *, remove_folder: bool = False) -> None:
    """Unlock and close ``handle``; the last holder first removes the lock file (and the folder,
    when this run made it and wrote nothing into it: a refused config leaves no trace).

    Nothing happens in a forked child leaving the parent's ``with`` block: the lock is the parent's.
    """
    if os.getpid() != owner:
        return
    try:  # a shared holder is the last one when it can take the lock exclusively
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass
    else:  # still locked: a waiter that opened this file notices the removal and starts over
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if remove_folder:
            with contextlib.suppress(OSError):
                path.parent.rmdir()
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    _close_tracked(handle)


def _remove_leftovers(folder: Path) -> None:
    removed = remove_temp_files(folder)
    if removed:
        log.info("%s: removed %d temporary files left by an interrupted run", folder, removed)


@contextlib.contextmanager
def build_lock(out_dir: str | os.PathLike, command: str, *, wait: bool = False,
               shard: tuple[int, int] | None = None, poll_s: float = 0.5) -> Iterator[None]:
    """Hold the build folder's writer lock; a second writer fails in one line naming the holder.

    ``wait=True`` blocks until the holder finishes instead. ``shard=(index, count)`` with
    ``count > 1``: one shard of a multi-process generation (see the module docstring).
    Re-entrant within one process. The folder is created if missing, and removed again if the
    run wrote nothing into it; the last holder removes the lock file.
    """
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    key = out_dir.resolve()
    with _held_guard:
        reentered = key in _held
        if reentered:
            _held[key] += 1
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    sharded = shard is not None and shard[1] > 1
    owner = os.getpid()
    with contextlib.ExitStack() as stack:
        main_path = key / LOCK_NAME
        main = _open_locked(main_path, fcntl.LOCK_SH if sharded else fcntl.LOCK_EX, key, wait, poll_s,
                            lambda: _holders(key))
        stack.callback(_release, main, main_path, owner, remove_folder=created)
        if sharded:
            own_path = key / f".isekai-gen.shard-{shard[0]}-of-{shard[1]}.lock"
            own = _open_locked(own_path, fcntl.LOCK_EX, key, wait, poll_s,
                               lambda: _describe(own_path) or "another process")
            stack.callback(_release, own, own_path, owner)
            _record(own, command)
        else:
            _record(main, command)
            for stale in key.glob(SHARD_LOCK_GLOB):  # no shard runs without the shared main lock
                stale.unlink(missing_ok=True)
        with _held_guard:
            _held[key] = 1
            _locked_so_far.append(key)
        log.info("%s: writer lock taken", key)
        try:
            yield
            if not sharded and os.getpid() == owner:
                _remove_leftovers(key)
        finally:
            with _held_guard:
                del _held[key]


@contextlib.contextmanager
def read_lock(out_dir: str | os.PathLike, *, wait: bool = False, poll_s: float = 0.5) -> Iterator[None]:
    """Hold the build folder's lock *shared*, for a command that reads a whole output while it must
    not change (``publish``): writers are kept out (one line naming the reader, or ``--wait``),
    other readers and generation shards are not. Nothing is recorded or removed but the lock file
    by its last holder. Re-entrant, and a no-op inside this process's own writer lock."""
    key = Path(out_dir).resolve()
    with _held_guard:
        reentered = key in _held
        if reentered:
            _held[key] += 1
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    path = key / LOCK_NAME
    handle = _open_locked(path, fcntl.LOCK_SH, key, wait, poll_s, lambda: _describe(path) or "another process")
    with _held_guard:
        _held[key] = 1
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        _release(handle, path, os.getpid())
