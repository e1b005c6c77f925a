"""A reviewer's decisions: an append-only history, and ``OUT/manual_rejects.txt`` derived from it.

How decisions and a running build coexist: the build folder's one-writer lock
(``isekai_gen.lock.build_lock``) is held by a build for its whole run, often hours, so the review
server must not hold it, or no build could run while a page is open. It does not need to: the only
build-folder file a decision changes is ``manual_rejects.txt``, which the filter stage reads once
per filter round, and every write of it is an atomic rename. A decision made during a build is
honoured by that build's next filter round or the next build; until then every stage that reads
the kept set refuses (``pending.refuse_pending``).

What needs serialising is the read-modify-write of the list and the history: two tabs of one
server, two servers, or ``preview --reject-file``. That is a small lock of its own,
``OUT/.manual_rejects.lock`` (``fcntl.flock``, held only while the files are re-read and changed;
the kernel drops it if its holder dies), plus a thread lock for the server's own threads.

One record, in this order (a write-ahead log): a decision's history line, which names the digest
of the list before and after it, is appended and fsynced first, then the list is replaced. A kill
before the line is complete leaves no decision (the torn line is cut off before the next append,
as the generation journals do); a kill after it leaves a list still equal to ``list_before`` and
older than the history, which ``recover`` (run under the lock before every change, at server start
and by every stage's pending check) completes, removing the killed write's temporary file. A list
changed by hand or by ``preview --reject-file`` after the last record matches neither digest, or
is newer than the history: it is left as it is.

Undo reverts the newest not-yet-undone decision of one browser tab (its ``client`` id), so two tabs
never undo each other's work, and only when every image is still in the state that decision left
it and no other tab decided on it since; otherwise a refused undo record says why (and the tab's
next undo goes to its decision before).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import UserError, where
from ..fileio import TEMP_MARKER, atomic_write_bytes, dumps_canonical, parse_json_object, temp_target
from ..filtering.manifest import MANUAL_REJECTS, read_manual_entries
from ..schema import validate

LOCK_NAME = ".manual_rejects.lock"
HISTORY = Path("review") / "decisions.jsonl"
ACTIONS = ("reject", "restore", "reviewed")   # "reviewed": looked at and left as it is (the list is untouched)
CHANGED_ELSEWHERE = "changed since by another tab"
# A reject's reason, written after its id in the list (`id  # artefact`): the filter carries it into
# the manifest row (`manual_reason`) and the filter report.
REASONS = ("wrong concept", "artefact", "text", "near-duplicate")
MAX_JOBS = 5000   # job ids in one (bulk) decision: a concept's candidates, with room

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


def list_bytes(entries: dict[str, str | None]) -> bytes:
    """The list file: one job id a line, sorted, its reason (if any) as the line's comment."""
    return "".join(f"{j}  # {entries[j]}\n" if entries[j] else f"{j}\n" for j in sorted(entries)).encode("utf-8")


def _changed(current: dict[str, str | None], record: dict) -> dict[str, str | None]:
    """The list after ``record`` (reasons of ids already listed are kept)."""
    if record["rejected"] is None:
        return current
    if record["rejected"]:
        return {**{j: record["reason"] for j in record["job_ids"]}, **current}
    return {j: why for j, why in current.items() if j not in record["job_ids"]}


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _list_file(out_dir: Path) -> tuple[bytes, int]:
    """The list's bytes (empty when absent) and its modification time (-1 when absent)."""
    path = Path(out_dir) / MANUAL_REJECTS
    try:
        with open(path, "rb") as handle:
            return handle.read(), os.fstat(handle.fileno()).st_mtime_ns
    except FileNotFoundError:
        return b"", -1


# path -> (file stamp, records, committed length): a long session's history is parsed and
# validated once per process, not on every decision (2,000 records took ~40 ms a decision).
_parsed: dict[Path, tuple[tuple[int, int, int], list[dict], int]] = {}


def _committed(path: Path) -> tuple[list[dict], int]:
    """History records and the byte length of the committed (newline-terminated) part."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return [], 0
    stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    cached = _parsed.get(path)
    if cached is not None and cached[0] == stamp:
        return list(cached[1]), cached[2]
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    records = []
    for lineno, line in enumerate(data[:end].splitlines(), start=1):
        record = parse_json_object(line.decode("utf-8", "replace"), path, lineno)
        validate(record, "review_decision", where(path, lineno))
        records.append(record)
    _parsed[path] = (stamp, records, end)
    return list(records), end


def _append(path: Path, records: list[dict], record: dict, committed: int) -> None:
    """Append ``record`` after the ``committed`` bytes holding ``records`` (durable on return)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (dumps_canonical(record) + "\n").encode("utf-8")
    with open(path, "ab") as handle:
        handle.truncate(committed)  # a torn line of a crashed writer goes
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
        stat = os.fstat(handle.fileno())
    _parsed[path] = ((stat.st_ino, stat.st_size, stat.st_mtime_ns), [*records, record], committed + len(line))


def read_history(out_dir: Path) -> list[dict]:
    return _committed(Path(out_dir) / HISTORY)[0]


def replay(records: list[dict]) -> set[str]:
    """The list the history alone describes (for a list no one edited by hand)."""
    listed: set[str] = set()
    for record in records:
        if not record["refused"] and record["rejected"] is not None:
            listed = listed | set(record["job_ids"]) if record["rejected"] else listed - set(record["job_ids"])
    return listed


def reviewed(records: list[dict]) -> set[str]:
    """Job ids a reviewer decided on or marked reviewed (an undone mark unmarks; an undone reject
    was still looked at): what the progress counts."""
    seen: set[str] = set()
    for record in records:
        if record["refused"]:
            continue
        if record["action"] in ACTIONS:
            seen |= set(record["job_ids"])
        elif records[record["undoes"] - 1]["action"] == "reviewed":
            seen -= set(record["job_ids"])
    return seen


def _recover_locked(out_dir: Path, known: set[str]) -> tuple[list[dict], int]:
    """Complete the list write of the newest record if a kill stopped it; the history as read."""
    out_dir = Path(out_dir)
    records, committed = _committed(out_dir / HISTORY)
    if records:
        last = records[-1]
        data, mtime = _list_file(out_dir)
        history_mtime = os.stat(out_dir / HISTORY).st_mtime_ns
        if last["list_after"] != last["list_before"] and digest(data) == last["list_before"] and mtime <= history_mtime:
            current = read_manual_entries(out_dir / MANUAL_REJECTS, known)
            atomic_write_bytes(out_dir / MANUAL_REJECTS, list_bytes(_changed(current, last)))
    for leftover in out_dir.glob(f"{TEMP_MARKER}*"):
        if temp_target(leftover.name) == MANUAL_REJECTS:   # every writer of the list holds the lock
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return records, committed


def recover(out_dir: Path, known: set[str]) -> None:
    """Finish a decision a kill interrupted (see the module docstring); safe at any time."""
    with rejects_lock(out_dir):
        _recover_locked(out_dir, known)


def update_manual_rejects(out_dir: Path, known: set[str], change: Callable[[dict], dict]) -> dict[str, str | None]:
    """Re-read the list (job id -> reason) under the lock, apply ``change``, write it back if it
    changed; the new list. For ``preview --reject-file``: a change outside the history (it cannot be
    undone in the page)."""
    with rejects_lock(out_dir):
        _recover_locked(out_dir, known)
        current = read_manual_entries(Path(out_dir) / MANUAL_REJECTS, known)
        updated = change(dict(current))
        if updated != current:
            atomic_write_bytes(Path(out_dir) / MANUAL_REJECTS, list_bytes(updated))
        return updated


def _apply(out_dir: Path, known: set[str], client: str, choose, reason: str | None = None) -> dict | None:
    """Under the lock: ``choose(listed ids, history)`` names the change as ``(action, job_ids,
    rejected, undoes, refused)`` or None; append its history record, then write the list."""
    out_dir = Path(out_dir)
    with rejects_lock(out_dir):
        records, committed = _recover_locked(out_dir, known)
        data, _ = _list_file(out_dir)
        current = read_manual_entries(out_dir / MANUAL_REJECTS, known)
        change = choose(set(current), records)
        if change is None:
            return None
        action, job_ids, rejected, undoes, refused = change
        record = {"seq": len(records) + 1, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "client": client,
                  "action": action, "job_ids": sorted(job_ids), "rejected": None if refused else rejected,
                  "reason": reason if action == "reject" else None, "undoes": undoes, "refused": refused}
        after = _changed(current, record)
        after_bytes = list_bytes(after) if after != current else data
        record.update(list_before=digest(data), list_after=digest(after_bytes))
        _append(out_dir / HISTORY, records, record, committed)  # the decision is made here
        if after != current:
            atomic_write_bytes(out_dir / MANUAL_REJECTS, after_bytes)
        return record


def decide(out_dir: Path, known: set[str], job_ids: list[str], action: str, client: str,
           reason: str | None = None) -> dict | None:
    """Reject (for ``reason``, one of ``REASONS``, or none given), restore or mark reviewed
    ``job_ids`` (one record, one undo); the history record, or None when it changed nothing."""
    if action not in ACTIONS:
        raise UserError(f"decision: unknown action {action!r} (expected one of {', '.join(ACTIONS)})")
    if reason is not None and (action != "reject" or reason not in REASONS):
        raise UserError(f"decision: reason {reason!r} (a reject's reason is one of {', '.join(REASONS)})")
    if not job_ids or len(job_ids) > MAX_JOBS:
        raise UserError(f"decision: between 1 and {MAX_JOBS} job ids, not {len(job_ids)}")
    unknown = [j for j in job_ids if j not in known]
    if unknown:
        raise UserError(f"decision: unknown job id {unknown[0]!r} (not in manifest.jsonl)")
    rejected = None if action == "reviewed" else action == "reject"

    def choose(current, records):
        # A no-op is not history: `u` must undo the last real change.
        if rejected is None:
            seen = reviewed(records)
            changing = sorted({j for j in job_ids if j not in seen})
        else:
            changing = sorted({j for j in job_ids if (j in current) != rejected})
        return (action, changing, rejected, None, None) if changing else None

    return _apply(out_dir, known, client, choose, reason)


def undo(out_dir: Path, known: set[str], client: str) -> dict | None:
    """Revert ``client``'s newest decision that is not undone yet; its undo record (``refused``
    set when the images changed since), or None when there is nothing to undo."""
    def choose(current, records):
        handled = {r["undoes"] for r in records if r["action"] == "undo"}
        target = next((r for r in reversed(records) if r["client"] == client and r["action"] in ACTIONS
                       and r["seq"] not in handled), None)
        if target is None:
            return None
        # A job the manifest no longer has (another catalog subset) has nothing to revert.
        ids = [j for j in target["job_ids"] if j in known]
        later = {j for r in records[target["seq"]:] if r["client"] != client and not r["refused"]
                 and r["rejected"] is not None for j in r["job_ids"]}
        if target["rejected"] is None:  # unmarking "reviewed" cannot overwrite anyone's decision
            return ("undo", ids, None, target["seq"], None if ids else "its images are no longer in the manifest")
        moved = any((j in current) != target["rejected"] for j in ids) or bool(later & set(ids))
        refused = "its images are no longer in the manifest" if not ids else CHANGED_ELSEWHERE if moved else None
        return ("undo", ids, not target["rejected"], target["seq"], refused)

    return _apply(out_dir, known, client, choose)
