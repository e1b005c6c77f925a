"""Reading the scorer's input files as text, streamed, with one-line errors naming the file and line.

Truth and prediction files come from many tools; the common failures are a missing file, an
empty file and a file saved in some legacy encoding. All three become a ``UserError``. Files are
read line by line (split at ``\\n``; a ``\\r`` before it is dropped), never whole: a 400 MB
predictions file costs the memory of one batch of lines (``JSON_BATCH_LINES``), not of the file;
a line longer than ``MAX_LINE_BYTES`` (a file with no line ends) is refused when it is reached.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

from ..errors import UserError, where
from ..fileio import parse_json_object

BOM = b"\xef\xbb\xbf"
# JSON Lines are parsed this many at a time, as one JSON array: several times faster than one
# json.loads per line, in the memory of this many lines.
JSON_BATCH_LINES = 4096
_PROBE_BYTES = 1 << 20
MAX_LINE_BYTES = 64 * 2 ** 20   # one reply, one truth row: a line this long is not a real one


def check_readable(path: str | Path, max_bytes: int | None = None, kind: str = "") -> Path:
    """``path`` as a Path after refusing a missing file, a folder, an empty file, or one over ``max_bytes``.

    Only as much is read as it takes to find a byte that is not whitespace (or a byte-order mark).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise IsADirectoryError
        if max_bytes is not None and size > max_bytes:
            raise UserError(f"{path}: {size / 2 ** 20:.0f} MiB is too large for {kind} (at most "
                            f"{max_bytes / 2 ** 20:.0f} MiB); not read")
        with open(path, "rb") as handle:
            block = handle.read(_PROBE_BYTES).removeprefix(BOM)
            while block and not block.strip():
                block = handle.read(_PROBE_BYTES)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected a file") from None
    if not block:
        raise UserError(f"{path}: file is empty")
    return path


def read_bytes(path: str | Path, max_bytes: int, kind: str) -> bytes:
    """The whole file, for formats that cannot be streamed (pickles), refused over ``max_bytes``."""
    return check_readable(path, max_bytes, kind).read_bytes()


def _decoded_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text with its line end)`` of every line; UTF-8, a byte-order mark allowed."""
    path = check_readable(path)
    offset = 0
    limit = MAX_LINE_BYTES
    with open(path, "rb") as handle:
        for number, raw in enumerate(iter(lambda: handle.readline(limit + 1), b""), start=1):
            if len(raw) > limit:
                raise UserError(f"{where(path, number)}: line longer than {limit / 2 ** 20:.0f} MiB; not a "
                                "line of a truth or prediction file (no line ends?)")
            skip = len(BOM) if number == 1 and raw.startswith(BOM) else 0
            try:
                text = raw[skip:].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(f"{where(path, number)}: not UTF-8 text ({exc.reason} at byte "
                                f"{offset + skip + exc.start})") from None
            offset += len(raw)
            yield number, text


def numbered_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines (without their line end) with their 1-based line numbers."""
    for number, text in _decoded_lines(path):
        if text.strip():
            yield number, text.rstrip("\r\n")


def csv_rows(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """``(line, cells)`` of every CSV record, ``line`` being where the record starts.

    The reader is strict, so a stray quote is an error rather than a field that silently swallows
    the following lines; a malformed file (an unclosed quote, an overlong field) is one ``UserError``
    naming the line the broken record starts on.
    """
    reader = csv.reader((text for _, text in _decoded_lines(path)), strict=True)
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            spans = f"; the record starting on this line runs to line {reader.line_num}: an unclosed '\"'?" \
                if reader.line_num > start else ""
            raise UserError(f"{where(path, start)}: malformed CSV ({exc}{spans})") from None
        yield start, cells
        start = reader.line_num + 1


def json_lines(path: str | Path) -> Iterator[tuple[int, dict]]:
    """JSON Lines objects with their line numbers (blank lines skipped), parsed a batch at a time."""
    batch: list[tuple[int, str]] = []
    for item in numbered_lines(path):
        batch.append(item)
        if len(batch) == JSON_BATCH_LINES:
            yield from _parsed(path, batch)
            batch = []
    yield from _parsed(path, batch)


def _parsed(path: str | Path, lines: list[tuple[int, str]]) -> list[tuple[int, dict]]:
    try:
        rows = json.loads("[" + ",".join(line for _, line in lines) + "]")
    except json.JSONDecodeError:
        rows = None
    if rows is not None and len(rows) == len(lines) and all(type(row) is dict for row in rows):
        return [(lineno, row) for (lineno, _), row in zip(lines, rows)]
    # The slow path: parse line by line so that the error names the line.
    return [(lineno, parse_json_object(line, path, lineno)) for lineno, line in lines]


def first_json_object(path: str | Path) -> dict | None:
    """The first line parsed as a JSON object, or None when it is not one (for format detection).

    A ``.json``/``.jsonl`` file whose first line is broken raises the parse error for that line.
    """
    lines = numbered_lines(path)
    first = next(lines, None)
    lines.close()
    if first is None:  # only Unicode white space: check_readable looks at bytes
        raise UserError(f"{path}: file is empty")
    number, line = first
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        if Path(path).suffix.lower() in (".json", ".jsonl"):
            raise UserError(f"{where(path, number)}: invalid JSON ({exc.msg})") from None
        return None
    return row if isinstance(row, dict) else None
