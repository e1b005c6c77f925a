"""One writer per build folder.

Every command that writes into a build folder holds ``OUT/.isekai-gen.lock`` for its whole run.
Hand-written on ``fcntl.flock`` rather than the ``filelock`` package for two reasons: the kernel
drops the lock when its holder dies (so a stale lock of a killed process is taken over with no
guessing about PIDs), and the holder's host/PID/command are written into the locked file itself,
which ``filelock`` truncates on every contender's open. Readers (preview, score, review pages)
never take it: every file they read is replaced atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

from .errors import UserError

LOCK_NAME = ".isekai-gen.lock"

# This process's held locks (resolved folder -> depth): ``build`` runs the stage functions, which
# lock again; flock would make the second open of the same file conflict with the first.
_held: dict[Path, int] = {}
_held_guard = threading.Lock()


def _holder(handle) -> str:
    handle.seek(0)
    try:
        info = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return "another process"
    return f"`{info.get('command', '?')}` (pid {info.get('pid', '?')} on {info.get('host', '?')}, since {info.get('since', '?')})"


@contextlib.contextmanager
def build_lock(out_dir: str | os.PathLike, command: str, *, wait: bool = False, poll_s: float = 0.5) -> Iterator[None]:
    """Hold the build folder's writer lock; a second writer fails in one line naming the holder.

    ``wait=True`` blocks until the holder finishes instead. Re-entrant within one process.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = out_dir.resolve()
    with _held_guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    handle = open(key / LOCK_NAME, "a+", encoding="utf-8")
    try:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise UserError(f"{out_dir}: another isekai-gen is writing this build folder: "
                                    f"{_holder(handle)}; wait for it to finish or pass --wait") from None
                time.sleep(poll_s)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "command": command,
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
        handle.flush()
        with _held_guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_guard:
                del _held[key]
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()
