"""The response journal: one fsynced JSON Lines row per answered attempt, keyed by request key.

Calls cost money, so every reply is on disk before anything else happens: a row is written,
flushed and fsynced as soon as its reply arrives. A run killed with `kill -9` loses at most the
replies still in flight; a torn last line (killed mid-write) is cut off when the journal is
reopened. Rows (schema `schemas/evaluate_journal_row.schema.json`):
`key, cell, attempt, status, text, input_tokens, output_tokens, latency_s, cost_usd, retries, time`
plus `error` (permanent errors) and `raw` (the provider's response).

A request is done when its last row is `answered` or `permanent_error`, or when it has been
`abstained` 1 + max_reasks times; otherwise (no row, or fewer abstentions) it is pending.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from ..errors import UserError, where
from ..fileio import dumps_canonical
from ..schema import validate

ANSWERED, ABSTAINED, PERMANENT, GAVE_UP = "answered", "abstained", "permanent_error", "gave_up"
STATUSES = (ANSWERED, ABSTAINED, PERMANENT, GAVE_UP)
TAIL_BLOCK = 1 << 16


def read_journal(path: Path) -> dict[str, list[dict]]:
    """key -> rows in file order; a torn last line is ignored. Read a line at a time, never whole."""
    rows: dict[str, list[dict]] = {}
    if not path.exists():
        return rows
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                break  # torn by a kill mid-write
            try:
                row = json.loads(line)
            except ValueError:
                raise UserError(f"{where(path, number)}: not a JSON journal row") from None
            validate(row, "evaluate_journal_row", where(path, number))
            rows.setdefault(row["key"], []).append(row)
    return rows


def request_state(rows: list[dict], max_reasks: int) -> str:
    """``done`` / ``failed`` / ``pending`` / ``reask`` for one key's rows."""
    final = [r for r in rows if r["status"] != GAVE_UP]
    if not final:
        return "pending"
    if final[-1]["status"] == ANSWERED:
        return "done"
    if final[-1]["status"] == PERMANENT:
        return "failed"
    return "done" if sum(r["status"] == ABSTAINED for r in final) > max_reasks else "reask"


class Journal:
    """Append-only; `append` returns once its row is fsynced. Safe to call from several threads:
    rows are written in turn and one fsync covers every row written before it (group commit),
    so 16 replies arriving together cost one or two fsyncs, not 16 in a row."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = read_journal(path)
        self._cut_torn_tail()
        self._handle = open(path, "ab")
        self._write_lock, self._sync_lock = threading.Lock(), threading.Lock()
        self._written = self._synced = 0

    def _cut_torn_tail(self) -> None:
        """Cut a torn last line, reading the file from its end only as far back as its last newline."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as handle:
            end = handle.seek(0, os.SEEK_END)
            handle.seek(end - 1)
            if handle.read(1) == b"\n":
                return
            keep, position = 0, end
            while position > 0:
                start = max(0, position - TAIL_BLOCK)
                handle.seek(start)
                newline = handle.read(position - start).rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                position = start
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, row: dict) -> None:
        line = dumps_canonical(row).encode("utf-8") + b"\n"
        with self._write_lock:
            self._handle.write(line)
            self._handle.flush()
            self._written += 1
            ticket = self._written
            self.rows.setdefault(row["key"], []).append(row)
        with self._sync_lock:
            if self._synced >= ticket:
                return   # another thread's fsync already covered this row
            with self._write_lock:
                covered = self._written
            os.fsync(self._handle.fileno())
            self._synced = covered

    def spent_usd(self) -> float:
        return sum(r.get("cost_usd") or 0.0 for rows in self.rows.values() for r in rows)

    def close(self) -> None:
        self._handle.close()
