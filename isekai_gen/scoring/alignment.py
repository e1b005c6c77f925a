"""Do the prediction ids belong to this truth file? One check for every prediction format.

Scoring answers against the wrong truth file gives a plausible number (accuracy 0.00, or a
shot-by-one alignment where 39 of 40 items are compared with their neighbour's label), so
prediction ids the truth does not know are refused, with the likely cause:

* no id in common: always an error (even with ``--ignore-unknown-ids``);
* every id is a truth id shifted by one (0-based indices against LCL's 1-based line numbers):
  an error naming both conventions;
* some unknown ids: an error naming the first few and, where it can be found, where they come
  from (the demo side of the same split, a sibling dataset's ``test.csv``/``demo.csv``, another
  id shape), unless ``ignore_unknown`` is set.

Every reader (JSON Lines, CSV, ManyICL pickle, LCL lines) streams its rows through an ``IdTally``
per run (what these checks need, gathered as the ids go by: counts, the first unknown ids, whether
all are integers one away from the truth's) and every run goes through ``check_ids`` once read.
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import UserError
from .canonical import canonical
from .truth import Truth

SHOWN_IDS = 3
SAMPLE_IDS = 100  # unknown ids kept to explain an error (likely_cause looks at these)
# Split folders written by `isekai-gen splits build` (and ManyICL's own layout): <dataset>/{demo,test}.csv.
SPLIT_CSV_FILES = ("demo.csv", "test.csv")


def _first(ids, total: int) -> str:
    shown = ", ".join(repr(item) for item in list(ids)[:SHOWN_IDS])
    return shown + (", ..." if total > SHOWN_IDS else "")


def truth_name(truth: Truth) -> str:
    """``EuroSAT's test.csv``: the truth file named by its dataset folder."""
    path = Path(truth.source)
    return f"{path.parent.name}'s {path.name}" if path.parent.name else path.name


def _integers(ids) -> list[int] | None:
    """The ids as integers when every one is a plain decimal number, else None."""
    if not all(item.isdigit() and item.isascii() for item in ids):
        return None
    return [int(item) for item in ids]


def _base(numbers) -> str:
    low = min(numbers)
    return {0: "0-based", 1: "1-based"}.get(low, f"starting at {low}")


def _as_int64(numbers: list[int] | None) -> np.ndarray | None:
    """Sorted distinct numbers; None for no numbers or one past int64 (then no shift is detected)."""
    try:
        return None if numbers is None else np.unique(np.fromiter(numbers, dtype=np.int64, count=len(numbers)))
    except OverflowError:
        return None


class IdTally:
    """What ``check_ids`` needs to know of one run's prediction ids, added a chunk at a time."""

    def __init__(self, truth: Truth):
        self.truth = truth
        self.count = self.unknown_count = 0
        self.unknown_sample: list[str] = []
        self._numbers = _as_int64(_integers(truth.ids))
        self.integers = self._numbers is not None   # every id so far a plain decimal number
        self.low = self.high = None
        self.shift_fits = {1: True, -1: True}       # every id so far is a truth id shifted by this

    def add(self, ids: list[str], positions: list[int | None]) -> None:
        self.count += len(ids)
        if None in positions:
            unknown = [item for item, position in zip(ids, positions) if position is None]
            self.unknown_count += len(unknown)
            self.unknown_sample.extend(unknown[:SAMPLE_IDS - len(self.unknown_sample)])
        if self.integers and ids:
            numbers = _as_int64(_integers(ids))
            if numbers is None:
                self.integers = False
                return
            low, high = int(numbers.min()), int(numbers.max())
            self.low, self.high = (low, high) if self.low is None else (min(self.low, low), max(self.high, high))
            for shift, fits in self.shift_fits.items():
                self.shift_fits[shift] = fits and bool(np.isin(numbers + shift, self._numbers).all())


def _shift_error(source: str, tally: IdTally) -> UserError | None:
    """The ids are exactly truth ids shifted by +1 or -1 (and not all truth ids as they are)."""
    if not tally.integers:
        return None
    truth, theirs = tally.truth, tally._numbers
    for shift in (1, -1):
        if tally.shift_fits[shift]:
            what = ("the 1-based line numbers of the LCL file" if truth.kind == "lcl" else "the truth's ids")
            mine, truth_base = _base([tally.low]), _base([int(theirs[0])])
            return UserError(
                f"{source}: prediction ids {tally.low}..{tally.high} ({mine}) are {what} {truth.source} "
                f"({theirs[0]}..{theirs[-1]}, {truth_base}) shifted by {-shift:+d}: every item would be "
                f"scored against its neighbour's label; renumber the predictions {truth_base}"
            )
    return None


def _csv_ids(path: Path) -> set[str]:
    """First-column cells of a split CSV (best effort: only used to explain an error)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return {canonical(row[0].strip()) for row in csv.reader(handle) if row}
    except (OSError, UnicodeDecodeError, csv.Error):
        return set()


def _demo_side_ids(truth: Truth) -> set[str]:
    """Ids on the demonstration side of the truth's own split (split.jsonl rows or demo.csv)."""
    path = Path(truth.source)
    if truth.kind == "split":
        from .textio import json_lines

        return {canonical(row["file_name"]) for _, row in json_lines(path)
                if row.get("side") == "demo" and isinstance(row.get("file_name"), str)}
    if truth.kind == "manyicl-csv" and (path.parent / "demo.csv").is_file():
        return _csv_ids(path.parent / "demo.csv")
    return set()


def _sibling_source(truth: Truth, unknown: list[str]) -> str | None:
    """``UCMerced's test.csv`` when a sibling dataset folder's split file holds the unknown ids."""
    path = Path(truth.source)
    if truth.kind not in ("manyicl-csv", "split") or not path.parent.parent.is_dir():
        return None
    sample = set(unknown[:100])
    best, best_hits = None, 0
    for folder in sorted(p for p in path.parent.parent.iterdir() if p.is_dir() and p != path.parent):
        for name in SPLIT_CSV_FILES:
            hits = len(sample & _csv_ids(folder / name)) if (folder / name).is_file() else 0
            if hits > best_hits:
                best, best_hits = f"{folder.name}'s {name}", hits
    return best if best_hits * 2 >= len(sample) else None


def _suffixes(ids) -> set[str]:
    return {PurePosixPath(item).suffix.lower() for item in ids}


def likely_cause(truth: Truth, unknown: list[str]) -> str:
    """A short guess at where ids the truth does not know come from."""
    sample = unknown[:100]
    demo = _demo_side_ids(truth)
    if demo and sum(item in demo for item in sample) * 2 >= len(sample):
        return f"these are demonstration ids of the same split (the demo side of {truth_name(truth)}), not test items"
    sibling = _sibling_source(truth, sample)
    if sibling:
        return f"these look like {sibling} file names; the truth is {truth_name(truth)}"
    if truth.kind == "lcl" and _integers(sample) is None:
        return ("LCL truth ids are the 1-based line numbers of the ISEKAI-*.json file (LCL prediction lines "
                "{pred, target} need no id); were these predictions made for episodes.jsonl?")
    if truth.kind == "episodes" and _integers(sample) is not None:
        return "episodes.jsonl ids are episode_id strings; line numbers are ids of the LCL ISEKAI-*.json files"
    numbers, truth_numbers = _integers(sample), _integers(truth.ids)
    if numbers is not None and truth_numbers is not None and set(numbers) <= set(truth_numbers):
        return (f"the prediction ids are the truth's numbers written another way ({sample[0]!r} for "
                f"{str(numbers[0])!r}, leading zeros?): write them as the truth does")
    ours, theirs = _suffixes(sample), _suffixes(truth.ids[:100])
    if ours and theirs and not ours & theirs:
        return (f"prediction ids end in {', '.join(sorted(s or '(no extension)' for s in ours))} but the truth's "
                f"in {', '.join(sorted(s or '(no extension)' for s in theirs))}: predictions of another dataset?")
    if any("/" in item for item in sample) and not any("/" in item for item in truth.ids[:100]):
        return "prediction ids are paths but the truth's ids are bare file names"
    return f"the predictions were made for another truth file than {truth_name(truth)}"


def check_ids(source: str, tally: IdTally, *, ignore_unknown: bool = False) -> None:
    """Refuse a run whose ids do not fit the truth (unknown ids pass only with ``ignore_unknown``)."""
    if not tally.unknown_count:
        return
    truth, unknown = tally.truth, tally.unknown_sample
    shifted = _shift_error(source, tally)
    if shifted is not None:
        raise shifted
    if tally.unknown_count == tally.count:
        raise UserError(f"{source}: none of its {tally.count} prediction ids is an id of the truth file "
                        f"{truth.source} (first: {_first(unknown, tally.unknown_count)}); "
                        f"{likely_cause(truth, unknown)}")
    if not ignore_unknown:
        raise UserError(
            f"{source}: {tally.unknown_count} of {tally.count} prediction ids are not ids of the truth file "
            f"{truth.source} (first: {_first(unknown, tally.unknown_count)}); {likely_cause(truth, unknown)}; "
            "pass --ignore-unknown-ids to score the others anyway"
        )
