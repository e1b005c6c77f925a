"""Prediction readers: JSON Lines, CSV, ManyICL raw-response pickles and LCL prediction lines.

A reader streams a file's rows as ``(run key, id, value, line)``; the key is (model, shots,
batch_size), so one file may hold a whole shot curve, and ``outcomes.judge_rows`` groups them
into runs as they come (within a run an id may appear once). Text formats are never read whole
(``textio``); a pickle cannot be streamed and is refused over ``unpickle.MAX_PICKLE_BYTES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import UserError, where
from ..schema import validate
from .canonical import canonical
from .choices import FORMATS
from .lcl import clean_answer, target_sentence
from .manyicl import batched_answers, run_fields_from_name
from .textio import csv_rows, first_json_object, json_lines
from .truth import Truth
from .unpickle import load_restricted_pickle

RunKey = tuple  # (model, shots, batch_size)
Row = tuple     # (RunKey, id, value, line)


def location(source: str, line: int | str | None) -> str:
    """``file:line``, or ``file key '...'`` for a pickle's entry."""
    return where(source, line) if isinstance(line, int) else f"{source} key {line!r}"


@dataclass(frozen=True)
class Prediction:
    id: str
    value: str | list | None   # free text, a list of labels, or None for "no answer"
    source: str
    line: int | str | None     # line number, or the pickle key, for error messages

    @property
    def location(self) -> str:
        return location(self.source, self.line)


@dataclass(frozen=True)
class RunInfo:
    source: str
    fmt: str
    model: str | None
    shots: int | None
    batch_size: int | None


@dataclass(frozen=True)
class PredictionRun(RunInfo):
    """A run held in memory (the lmms-eval hook, benchmarks); files are streamed instead."""
    rows: tuple[Prediction, ...]


def run_sort_key(key: RunKey) -> list:
    """Runs are reported by (model, batch_size, shots), unset fields first."""
    return [(key[i] is not None, key[i]) for i in (0, 2, 1)]


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        return "manyicl-pickle"
    if suffix == ".csv":
        return "csv"
    first = first_json_object(path)
    if first is None:
        raise UserError(f"{path}: cannot tell the prediction format; pass --format")
    return "lcl" if "pred" in first and "id" not in first else "jsonl"


def read_predictions(path: str | Path, truth: Truth, fmt: str = "auto") -> tuple[str, Iterator[Row]]:
    """``(format, rows)`` of one prediction file; the rows are read as they are consumed."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UserError(f"unknown prediction format {fmt!r}; expected one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    reader = {"jsonl": _read_jsonl, "csv": _read_csv, "manyicl-pickle": _read_pickle, "lcl": _read_lcl}[fmt]
    return fmt, reader(path, truth)


def _row(row: dict, line: int) -> Row:
    return (row.get("model"), row.get("shots"), row.get("batch_size")), str(row["id"]), row["prediction"], line


def _read_jsonl(path: Path, truth: Truth) -> Iterator[Row]:
    for line, row in json_lines(path):
        validate(row, "predictions_row", where(path, line))
        yield _row(row, line)


def _csv_value(name: str, text: str, location: str):
    text = text.strip()
    if not text:
        return None
    try:
        return float(text) if name == "confidence" else int(text)
    except ValueError:
        kind = "a number" if name == "confidence" else "a whole number"
        raise UserError(f"{location}: column {name!r} must be {kind}, got {text!r}") from None


def _read_csv(path: Path, truth: Truth) -> Iterator[Row]:
    """CSV with ``id,prediction`` columns (and optionally model, shots, batch_size, confidence).

    Every record must have exactly the header's cells: a short row would otherwise read as "no answer".
    """
    records = csv_rows(path)
    _, header = next(records)
    missing = {"id", "prediction"} - set(header)
    if missing:
        raise UserError(f"{where(path, 1)}: missing column {sorted(missing)[0]!r} (need id,prediction)")
    for line, record in records:
        if not record:
            continue  # a blank line
        location = where(path, line)
        if len(record) != len(header):
            raise UserError(f"{location}: {len(record)} cells, the header has {len(header)}")
        cells = dict(zip(header, record))
        row = {"id": cells["id"], "prediction": cells["prediction"] or None}
        if cells.get("model"):
            row["model"] = cells["model"]
        for name in ("shots", "batch_size", "confidence"):
            value = _csv_value(name, cells.get(name) or "", location)
            if value is not None:
                row[name] = value
        validate(row, "predictions_row", location)
        yield _row(row, line)


def _read_pickle(path: Path, truth: Truth) -> Iterator[Row]:
    """ManyICL run.py output; model/shots/batch size come from its file name when it follows run.py's.

    Held in memory whole (a pickle cannot be read in parts): ``load_restricted_pickle`` refuses
    one over ``unpickle.MAX_PICKLE_BYTES``.
    """
    answers = batched_answers(load_restricted_pickle(path), path)
    fields = run_fields_from_name(path)
    batch_size = fields.get("batch_size", max(size for _, _, size, _ in answers))
    key = (fields.get("model"), fields.get("shots"), batch_size)
    for query_id, answer, _, batch_key in answers:
        yield key, query_id, answer, batch_key[:40]


def _read_lcl(path: Path, truth: Truth) -> Iterator[Row]:
    """LCL ``*_extra_prediction.jsonl``: ``{"pred", "target"}`` lines aligned by order with the truth.

    Only an LCL ``ISEKAI-*.json`` truth has the order these lines follow; against any other truth
    file, matching by order would pair each reply with an unrelated item.
    """
    if truth.kind != "lcl":
        raise UserError(
            f"{path}: LCL prediction lines carry no id and are matched by order, so they can only be scored "
            f"against the LCL ISEKAI-*.json file they were made for, not the {truth.kind} truth {truth.source}; "
            "give id,prediction rows (JSON Lines or CSV) for this truth"
        )
    count = 0
    for count, (line, row) in enumerate(json_lines(path), start=1):
        item = count - 1
        if item >= len(truth.ids):
            continue  # counted, for the error below
        location = where(path, line)
        if not isinstance(row.get("pred"), str):
            raise UserError(f"{location}: LCL prediction lines need a string 'pred'")
        target = row.get("target")
        if truth.answers is not None and isinstance(target, str):
            if clean_answer(canonical(target)) != clean_answer(target_sentence(truth.answers[item])):
                raise UserError(
                    f"{location}: target {target!r} does not match the truth label {truth.answers[item]!r} "
                    f"of item {truth.ids[item]} (files not aligned?)"
                )
        yield (None, None, None), truth.ids[item], row["pred"], line
    if count != len(truth.ids):
        raise UserError(
            f"{path}: {count} prediction lines but the truth has {len(truth.ids)} items; "
            "LCL predictions are matched by order (was the file appended to by several runs?)"
        )
