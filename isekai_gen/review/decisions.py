"""A reviewer's decisions: ``OUT/manual_rejects.txt`` plus an append-only undo history.

How decisions and a running build coexist: the build folder's one-writer lock
(``isekai_gen.lock.build_lock``) is held by a build for its whole run, often hours, so the review
server must not hold it, or no build could run while a page is open (and no decision could be
made while a build runs). It does not need to: the only build-folder file a decision changes is
``manual_rejects.txt``, which the filter stage reads once per filter round, and every write of it
is an atomic rename, so a build sees the list either before or after a decision, never half of
it. A decision made during a build is honoured by that build's next filter round or the next
build; the banner counts it as pending until the manifest shows it applied.

What needs serialising is the read-modify-write of the list itself: two tabs of one server, two
servers, or ``preview --reject-file`` at the same time. That is a small lock of its own,
``OUT/.manual_rejects.lock`` (``fcntl.flock``, held only while the list is re-read, changed and
replaced; the kernel drops it if its holder dies), plus a thread lock for the server's own threads.
The list is re-read under the lock on every decision, so no writer overwrites another's entry.
A build starting meanwhile may sweep the write's temporary file away: ``writes.write_unlocked``.

History: ``OUT/review/decisions.jsonl``, one JSON object per decision, appended and fsynced under
the same lock (a torn last line from a crash is cut off before the next append, as the
generation journals do). ``undo`` reverts the newest not-yet-undone decision of one browser tab
(its ``client`` id), so two tabs never undo each other's work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from ..errors import UserError, where
from ..fileio import dumps_canonical, parse_json_object
from ..filtering.manifest import MANUAL_REJECTS, read_manual_rejects
from ..schema import validate
from .writes import write_unlocked

LOCK_NAME = ".manual_rejects.lock"
HISTORY = Path("review") / "decisions.jsonl"
ACTIONS = ("reject", "restore")

_thread_lock = threading.Lock()


@contextlib.contextmanager
def rejects_lock(out_dir: Path) -> Iterator[None]:
    """Exclusive hold on the manual reject list of ``out_dir`` (across threads and processes)."""
    with _thread_lock, open(Path(out_dir) / LOCK_NAME, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # blocking: holders keep it for milliseconds
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def write_manual_rejects(out_dir: Path, ids: set[str]) -> None:
    write_unlocked(Path(out_dir) / MANUAL_REJECTS, "".join(f"{job_id}\n" for job_id in sorted(ids)).encode("utf-8"))


def update_manual_rejects(out_dir: Path, known: set[str], change: Callable[[set[str]], set[str]]) -> set[str]:
    """Re-read the list under the lock, apply ``change``, write it back if it changed; the new list."""
    with rejects_lock(out_dir):
        current = read_manual_rejects(Path(out_dir) / MANUAL_REJECTS, known)
        updated = change(set(current))
        if updated != current:
            write_manual_rejects(out_dir, updated)
        return updated


def _committed(path: Path) -> tuple[list[dict], int]:
    """History records and the byte length of the committed (newline-terminated) part."""
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    records = []
    for lineno, line in enumerate(data[:end].splitlines(), start=1):
        record = parse_json_object(line.decode("utf-8", "replace"), path, lineno)
        validate(record, "review_decision", where(path, lineno))
        records.append(record)
    return records, end


def _append(path: Path, record: dict, committed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        handle.truncate(committed)  # a torn line of a crashed writer goes
        handle.write((dumps_canonical(record) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def read_history(out_dir: Path) -> list[dict]:
    return _committed(Path(out_dir) / HISTORY)[0]


def _apply(out_dir: Path, known: set[str], client: str, choose) -> dict | None:
    """Under the lock: ``choose(current list, history)`` names the change as ``(job_id, rejected,
    action, undoes)`` or None; apply it to the list, append its history record and return it."""
    path = Path(out_dir) / HISTORY
    with rejects_lock(out_dir):
        current = read_manual_rejects(Path(out_dir) / MANUAL_REJECTS, known)
        records, committed = _committed(path)
        change = choose(current, records)
        if change is None:
            return None
        job_id, rejected, action, undoes = change
        was = job_id in current
        record = {"seq": len(records) + 1, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "client": client,
                  "action": action, "job_id": job_id, "was_rejected": was, "rejected": rejected, "undoes": undoes}
        if was != rejected:
            write_manual_rejects(out_dir, current | {job_id} if rejected else current - {job_id})
        _append(path, record, committed)
        return record


def decide(out_dir: Path, known: set[str], job_id: str, action: str, client: str) -> dict | None:
    """Reject or restore ``job_id``; the history record, or None when it changed nothing."""
    if action not in ACTIONS:
        raise UserError(f"decision: unknown action {action!r} (expected one of {', '.join(ACTIONS)})")
    if job_id not in known:
        raise UserError(f"decision: unknown job id {job_id!r} (not in manifest.jsonl)")
    rejected = action == "reject"

    def choose(current, records):
        # A no-op is not history: `u` must undo the last real change.
        return None if (job_id in current) == rejected else (job_id, rejected, action, None)

    return _apply(out_dir, known, client, choose)


def undo(out_dir: Path, known: set[str], client: str) -> dict | None:
    """Revert ``client``'s newest decision that is not undone yet; its undo record, or None."""
    def choose(current, records):
        undone = {r["undoes"] for r in records if r["action"] == "undo"}
        for last in reversed(records):
            if last["client"] == client and last["action"] in ACTIONS and last["seq"] not in undone:
                # A job the manifest no longer has (another catalog subset) has nothing to revert.
                return (last["job_id"], last["was_rejected"], "undo", last["seq"]) if last["job_id"] in known else None
        return None

    return _apply(out_dir, known, client, choose)
