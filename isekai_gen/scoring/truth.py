"""Ground truth readers: ManyICL ``test.csv``, our ``split.jsonl``, LCL annotation files, ``episodes.jsonl``.

Every reader returns a ``Truth``: item ids in file order, the class list and a multi-hot target
matrix (one-hot for single-label sets). Two-way sets (ISEKAI) also carry, per item, the two
candidate labels a prediction is matched against and the raw label strings the LCL metric uses.
Ids, class names and labels are read in NFC (``canonical``), before the duplicate checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import UserError, where
from ..fileio import read_json
from ..schema import validate
from .canonical import canonical
from .textio import check_readable, csv_rows, first_json_object, json_lines

TRUTH_KINDS = ("manyicl-csv", "split", "lcl", "episodes")
# A truth file is held in memory (ids, targets): one over this is refused before it is read. It is
# ~2.5M items of a 21-class test.csv, far past the test side of any benchmark the scorer reads.
MAX_TRUTH_BYTES = 256 * 2 ** 20
LCL_FIELDS = ("image_name", "positive_promt", "negative_promt", "label_name")


@dataclass(frozen=True)
class Truth:
    source: str
    kind: str                      # one of TRUTH_KINDS
    ids: tuple[str, ...]           # item ids in file order
    classes: tuple[str, ...]
    targets: np.ndarray            # (n, C) bool; exactly one True per row unless multilabel
    multilabel: bool
    # Two-way sets only (None otherwise): per item the (positive, negative) labels and the true
    # label, exactly as written in the file (the LCL metric works on the raw strings).
    pairs: tuple[tuple[str, str], ...] | None = None
    answers: tuple[str, ...] | None = None

    @property
    def target_index(self) -> np.ndarray:
        """(n,) class index of each item (single-label sets)."""
        return self.targets.argmax(axis=1)

    @cached_property
    def positions(self) -> dict[str, int]:
        """Item index of each id (computed once per truth, shared by every run scored against it)."""
        return {item_id: i for i, item_id in enumerate(self.ids)}


def load_truth(path: str | Path) -> Truth:
    """Read a truth file, recognising its format from the extension and the first line."""
    path = check_readable(path, MAX_TRUTH_BYTES, "a truth file")
    if path.suffix.lower() == ".csv":
        return read_manyicl_csv(path)
    first = first_json_object(path)
    if first is None:
        raise UserError(f"{path}: not a truth file (expected a ManyICL .csv or JSON Lines split, episodes or LCL file)")
    if "episode_id" in first:
        return read_episodes(path)
    if "file_name" in first and "side" in first:
        return read_split(path)
    if "label_name" in first or "positive_promt" in first:
        return read_lcl(path)
    raise UserError(
        f"{where(path, 1)}: unknown truth rows (expected split.jsonl rows with file_name/side, "
        "episodes.jsonl rows with episode_id, or LCL rows with positive_promt/label_name)"
    )


def _one_hot(labels: list[list[str]], classes: tuple[str, ...]) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    targets = np.zeros((len(labels), len(classes)), dtype=bool)
    for row, names in enumerate(labels):
        targets[row, [index[name] for name in names]] = True
    return targets


def _check_unique(path: Path, ids: list[str], lines: list[int]) -> None:
    seen: dict[str, int] = {}
    for item_id, line in zip(ids, lines):
        if item_id in seen:
            raise UserError(f"{where(path, line)}: duplicate id {item_id!r} (first on line {seen[item_id]})")
        seen[item_id] = line


def _cell_code(cell: str) -> int:
    """A class cell as 0, 1, or ``BAD_CELL`` when it is not a 0/1 number."""
    try:
        value = float(cell)
    except ValueError:
        return BAD_CELL
    return int(value) if value in (0.0, 1.0) else BAD_CELL


BAD_CELL = 2


def read_manyicl_csv(path: str | Path) -> Truth:
    """ManyICL ``test.csv``: unnamed first column = file name, one 0/1 float column per class.

    Each row's class cells are kept as one byte each (each distinct cell text is converted once),
    not as cell strings: the matrix of a large test set costs its number of cells in bytes.
    """
    path = Path(path)
    records = csv_rows(path)
    _, header = next(records)
    classes = tuple(canonical(name.strip()) for name in header[1:])
    if not classes or any(not name for name in classes):
        raise UserError(f"{where(path, 1)}: header must be ',<class>,<class>,...' with non-empty class names")
    if len(set(classes)) != len(classes):
        raise UserError(f"{where(path, 1)}: duplicate class names in the header")
    ids, lines, cells01 = [], [], bytearray()
    code_of: dict[str, int] = {}
    first_bad = None   # (line, cell) of the first row with a cell that is not 0 or 1
    for line, cells in records:
        if not any(cells):
            continue
        if len(cells) != len(header):
            raise UserError(f"{where(path, line)}: {len(cells)} cells, the header has {len(header)}")
        ids.append(canonical(cells[0].strip()))
        lines.append(line)
        row = cells[1:]
        try:
            codes = bytes(map(code_of.__getitem__, row))
        except KeyError:   # a cell text not seen before
            code_of.update((cell, _cell_code(cell)) for cell in row if cell not in code_of)
            codes = bytes(map(code_of.__getitem__, row))
        if first_bad is None and BAD_CELL in codes:
            first_bad = line, row[codes.index(BAD_CELL)]
        cells01 += codes
    if not ids:
        raise UserError(f"{path}: no data rows under the header")
    if first_bad is not None:
        raise UserError(f"{where(path, first_bad[0])}: class columns must be 0 or 1, got {first_bad[1]!r}")
    _check_unique(path, ids, lines)
    targets = np.frombuffer(cells01, dtype=np.uint8).reshape(len(ids), len(classes)) == 1
    return Truth(str(path), "manyicl-csv", tuple(ids), classes, targets, bool((targets.sum(axis=1) != 1).any()))


def _split_recipe(path: Path) -> dict | None:
    """The ``recipe`` of the sibling ``split.json`` (classes in CSV order, multilabel), if there is one."""
    meta_path = path.with_name("split.json")
    if not meta_path.exists():
        return None
    meta = read_json(meta_path)
    validate(meta, "split_meta", meta_path)
    return meta["recipe"]


def read_split(path: str | Path) -> Truth:
    """Our ``split.jsonl``: score the ``side == "test"`` rows; id = ``file_name``.

    Classes and multi-label-ness come from the sibling ``split.json`` recipe when present; without
    it the classes are the sorted union of the labels and a row without exactly one label makes
    the set multi-label.
    """
    path = Path(path)
    ids, lines, labels = [], [], []
    for line, row in json_lines(path):
        validate(row, "split_row", where(path, line))
        if row["side"] == "test":
            ids.append(canonical(row["file_name"]))
            lines.append(line)
            labels.append([canonical(name) for name in row["labels"]])
    if not ids:
        raise UserError(f"{path}: no rows with side 'test'")
    _check_unique(path, ids, lines)
    recipe = _split_recipe(path)
    classes = (tuple(map(canonical, recipe["classes"])) if recipe
               else tuple(sorted({name for names in labels for name in names})))
    for names, line in zip(labels, lines):
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise UserError(f"{where(path, line)}: label {unknown[0]!r} is not a class of split.json")
    multilabel = recipe["multilabel"] if recipe else any(len(names) != 1 for names in labels)
    return Truth(str(path), "split", tuple(ids), classes, _one_hot(labels, classes), multilabel)


def _two_way_truth(path: Path, kind: str, ids, lines, pairs, answers) -> Truth:
    ids, answers = [canonical(item) for item in ids], [canonical(answer) for answer in answers]
    pairs = [(canonical(positive), canonical(negative)) for positive, negative in pairs]
    for (positive, negative), answer, line in zip(pairs, answers, lines):
        if not positive.strip() or not negative.strip():
            raise UserError(f"{where(path, line)}: empty label")
        if positive.lower() == negative.lower():
            raise UserError(f"{where(path, line)}: the two labels are the same ignoring case ({positive!r})")
        if answer not in (positive, negative):
            raise UserError(f"{where(path, line)}: true label {answer!r} is neither {positive!r} nor {negative!r}")
    if not ids:
        raise UserError(f"{path}: no rows")
    _check_unique(path, ids, lines)
    classes = tuple(sorted({name for pair in pairs for name in pair}))
    targets = _one_hot([[answer] for answer in answers], classes)
    return Truth(str(path), kind, tuple(ids), classes, targets, False, tuple(pairs), tuple(answers))


def read_episodes(path: str | Path) -> Truth:
    """Our ``episodes.jsonl``: id = ``episode_id``; a 2-way choice between positive and negative label."""
    path = Path(path)
    ids, lines, pairs, answers = [], [], [], []
    for line, row in json_lines(path):
        validate(row, "episode_row", where(path, line))
        ids.append(row["episode_id"])
        lines.append(line)
        pairs.append((row["positive_label"], row["negative_label"]))
        answers.append(row["label"])
    return _two_way_truth(path, "episodes", ids, lines, pairs, answers)


def read_lcl(path: str | Path) -> Truth:
    """LCL ``ISEKAI-10.json`` / ``ISEKAI-pair.json`` (JSON Lines); id = the 1-based line number."""
    path = Path(path)
    ids, lines, pairs, answers = [], [], [], []
    for line, row in json_lines(path):
        missing = [field for field in LCL_FIELDS if not isinstance(row.get(field), str)]
        if missing:
            raise UserError(f"{where(path, line)}: missing or non-string field {missing[0]!r}")
        ids.append(str(line))
        lines.append(line)
        pairs.append((row["positive_promt"], row["negative_promt"]))
        answers.append(row["label_name"])
    return _two_way_truth(path, "lcl", ids, lines, pairs, answers)
