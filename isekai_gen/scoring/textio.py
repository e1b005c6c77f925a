"""Reading the scorer's input files as text, with one-line errors that name the file and line.

Truth and prediction files come from many tools; the common failures are a missing file, an
empty file and a file saved in some legacy encoding. All three become a ``UserError``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import UserError, where
from ..fileio import parse_json_object


def read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected a file") from None
    if not data.strip():
        raise UserError(f"{path}: file is empty")
    return data


def csv_rows(path: str | Path):
    """``(line, cells)`` of every CSV record, ``line`` being where the record starts.

    The reader is strict, so a stray quote is an error rather than a field that silently swallows
    the following lines; a malformed file (an unclosed quote, an overlong field) is one ``UserError``
    naming the line the broken record starts on.
    """
    reader = csv.reader(io.StringIO(read_text(path)), strict=True)
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


def read_text(path: str | Path) -> str:
    """The file's text (UTF-8, a byte-order mark allowed); the error names the offending line."""
    data = read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(f"{where(path, line)}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.strip():  # only a byte-order mark
        raise UserError(f"{path}: file is empty")
    return text


def numbered_lines(path: str | Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based line numbers."""
    return [(n, line) for n, line in enumerate(read_text(path).splitlines(), start=1) if line.strip()]


def json_lines(path: str | Path) -> list[tuple[int, dict]]:
    """JSON Lines objects with their line numbers (blank lines skipped)."""
    lines = numbered_lines(path)
    try:
        # One parse of the whole file as a JSON array is several times faster than one per line.
        rows = json.loads("[" + ",".join(line for _, line in lines) + "]")
    except json.JSONDecodeError:
        rows = None
    if rows is not None and len(rows) == len(lines) and all(type(row) is dict for row in rows):
        return [(lineno, row) for (lineno, _), row in zip(lines, rows)]
    return _json_lines_one_by_one(path, lines)


def _json_lines_one_by_one(path: str | Path, lines: list[tuple[int, str]]) -> list[tuple[int, dict]]:
    """The slow path: parse line by line so that the error names the line."""
    return [(lineno, parse_json_object(line, path, lineno)) for lineno, line in lines]


def first_json_object(path: str | Path) -> dict | None:
    """The first line parsed as a JSON object, or None when it is not one (for format detection).

    A ``.json``/``.jsonl`` file whose first line is broken raises the parse error for that line.
    """
    lines = numbered_lines(path)
    try:
        row = json.loads(lines[0][1])
    except json.JSONDecodeError as exc:
        if Path(path).suffix.lower() in (".json", ".jsonl"):
            raise UserError(f"{where(path, lines[0][0])}: invalid JSON ({exc.msg})") from None
        return None
    return row if isinstance(row, dict) else None
