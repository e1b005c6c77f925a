"""Prediction readers: JSON Lines, CSV, ManyICL raw-response pickles and LCL prediction lines.

Each file becomes one or more ``PredictionRun``s: rows are grouped by (model, shots,
batch_size), so one file may hold a whole shot curve. Within a run an id may appear once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError, where
from ..schema import validate
from .canonical import canonical, canonical_value
from .choices import FORMATS
from .lcl import clean_answer, target_sentence
from .manyicl import batched_answers, run_fields_from_name
from .textio import csv_rows, first_json_object, json_lines
from .truth import Truth
from .unpickle import load_restricted_pickle


@dataclass(frozen=True)
class Prediction:
    id: str
    value: str | list | None   # free text, a list of labels, or None for "no answer"
    source: str
    line: int | str | None     # line number, or the pickle key, for error messages

    @property
    def location(self) -> str:
        return where(self.source, self.line) if isinstance(self.line, int) else f"{self.source} key {self.line!r}"


@dataclass(frozen=True)
class PredictionRun:
    source: str
    fmt: str
    model: str | None
    shots: int | None
    batch_size: int | None
    rows: tuple[Prediction, ...]


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


def load_predictions(path: str | Path, truth: Truth, fmt: str = "auto") -> list[PredictionRun]:
    """Read one prediction file into runs, sorted by (model, batch_size, shots)."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UserError(f"unknown prediction format {fmt!r}; expected one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    reader = {"jsonl": _read_jsonl, "csv": _read_csv, "manyicl-pickle": _read_pickle, "lcl": _read_lcl}[fmt]
    rows = reader(path, truth)
    if not rows:
        raise UserError(f"{path}: no predictions in the file")
    return _group_runs(path, fmt, rows)


def _group_runs(path: Path, fmt: str, rows: list[tuple[tuple, Prediction]]) -> list[PredictionRun]:
    """``rows`` are (run key = (model, shots, batch_size), prediction)."""
    groups: dict[tuple, dict[str, Prediction]] = {}
    for key, prediction in rows:
        run = groups.setdefault(key, {})
        if prediction.id in run:
            raise UserError(f"{prediction.location}: duplicate id {prediction.id!r} (also at {run[prediction.id].location})")
        run[prediction.id] = prediction
    order = sorted(groups, key=lambda k: [(k[i] is not None, k[i]) for i in (0, 2, 1)])
    return [PredictionRun(str(path), fmt, *key, tuple(groups[key].values())) for key in order]


def _row(row: dict, source: str, line: int) -> tuple[tuple, Prediction]:
    key = (row.get("model"), row.get("shots"), row.get("batch_size"))
    return key, Prediction(canonical(str(row["id"])), canonical_value(row["prediction"]), source, line)


def _read_jsonl(path: Path, truth: Truth) -> list[tuple[tuple, Prediction]]:
    rows = []
    for line, row in json_lines(path):
        validate(row, "predictions_row", where(path, line))
        rows.append(_row(row, str(path), line))
    return rows


def _csv_value(name: str, text: str, location: str):
    text = text.strip()
    if not text:
        return None
    try:
        return float(text) if name == "confidence" else int(text)
    except ValueError:
        kind = "a number" if name == "confidence" else "a whole number"
        raise UserError(f"{location}: column {name!r} must be {kind}, got {text!r}") from None


def _read_csv(path: Path, truth: Truth) -> list[tuple[tuple, Prediction]]:
    """CSV with ``id,prediction`` columns (and optionally model, shots, batch_size, confidence).

    Every record must have exactly the header's cells: a short row would otherwise read as "no answer".
    """
    records = csv_rows(path)
    _, header = next(records)
    missing = {"id", "prediction"} - set(header)
    if missing:
        raise UserError(f"{where(path, 1)}: missing column {sorted(missing)[0]!r} (need id,prediction)")
    rows = []
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
        rows.append(_row(row, str(path), line))
    return rows


def _read_pickle(path: Path, truth: Truth) -> list[tuple[tuple, Prediction]]:
    """ManyICL run.py output; model/shots/batch size come from its file name when it follows run.py's."""
    answers = batched_answers(load_restricted_pickle(path), path)
    fields = run_fields_from_name(path)
    batch_size = fields.get("batch_size", max(size for _, _, size, _ in answers))
    key = (fields.get("model"), fields.get("shots"), batch_size)
    return [(key, Prediction(canonical(query_id), canonical_value(answer), str(path), batch_key[:40]))
            for query_id, answer, _, batch_key in answers]


def _read_lcl(path: Path, truth: Truth) -> list[tuple[tuple, Prediction]]:
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
    lines = json_lines(path)
    if len(lines) != len(truth.ids):
        raise UserError(
            f"{path}: {len(lines)} prediction lines but the truth has {len(truth.ids)} items; "
            "LCL predictions are matched by order (was the file appended to by several runs?)"
        )
    rows = []
    for item, (line, row) in enumerate(lines):
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
        rows.append(((None, None, None), Prediction(truth.ids[item], canonical(row["pred"]), str(path), line)))
    return rows
