"""Judge one prediction run against the truth: parse every reply, then apply the failure policy.

Each truth item ends in one status: ``ok`` (a label or label set was read), ``no_label``,
``several_labels``, ``no_answer`` (empty reply, or ManyICL's "answer not found") or ``missing``
(no prediction for the id). The ``--parse-failures`` policy decides which items are scored:

* ``drop``: only ``ok`` items;
* ``wrong``: every item; failures count as wrong (what the ManyICL paper says);
* ``manyicl``: exactly the released eval.py: substring matching, ``no_label`` (an empty answer
  included) counted wrong, ``several_labels``, ``no_answer`` and ``missing`` dropped.

With ``--lcl-compat`` the LCL rule decides correctness on the raw reply and every item is scored
(LCL divides by the number of lines); a missing reply is wrong.

Rows stream in (``judge_rows``) and are judged ``CHUNK_ROWS`` at a time into per-item arrays of
their run (``_RunTally``): memory is those arrays and one chunk, whatever the size of the file.
Every id and reply is put in NFC (``canonical``) as it enters a tally, whichever reader it came from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import compress
from typing import Iterable

import numpy as np

from ..errors import UserError
from .alignment import IdTally, check_ids
from .canonical import canonical, canonical_value, has_compatibility_forms
from .choices import POLICIES
from .lcl import lcl_correct
from .manyicl import SubstringMatcher
from .matching import NO_LABEL, ONE_LABEL, SEVERAL_LABELS, LabelMatcher
from .predictions import PredictionRun, Row, RunKey, location, run_sort_key
from .truth import Truth

log = logging.getLogger(__name__)

STATUSES = ("ok", NO_LABEL, SEVERAL_LABELS, "no_answer", "missing")
OK, NONE_NAMED, SEVERAL, NO_ANSWER, MISSING = range(len(STATUSES))
_CODE = {ONE_LABEL: OK, NO_LABEL: NONE_NAMED, SEVERAL_LABELS: SEVERAL}
_SCORED = {"drop": (OK,), "wrong": (OK, NONE_NAMED, SEVERAL, NO_ANSWER, MISSING), "manyicl": (OK, NONE_NAMED)}
CHUNK_ROWS = 1 << 13
# The per-item arrays of all runs of one file (C + 11 bytes per item and run) stay under this: a
# file with a run per row (a hostile or garbled ``shots`` column) is refused instead.
RUN_ARRAYS_BUDGET = 512 * 2 ** 20
MIN_RUNS = 16


@dataclass(frozen=True)
class Outcome:
    status: np.ndarray      # (n,) int8 index into STATUSES
    predicted: np.ndarray   # (n, C) bool label set read from each reply (empty unless ok)
    scored: np.ndarray      # (n,) bool: counts in the metric under the policy
    correct: np.ndarray | None  # (n,) bool, --lcl-compat only
    n_unknown_ids: int

    def count(self, status: int) -> int:
        return int((self.status == status).sum())


class _Reader:
    """Reads replies into (status, class indices), with one matcher built per candidate label list."""

    def __init__(self, truth: Truth, policy: str):
        self.truth, self.policy = truth, policy
        self._class_index = {name: i for i, name in enumerate(truth.classes)}
        self._matchers: dict[tuple[str, ...], LabelMatcher | SubstringMatcher] = {}

    def read(self, value, candidates: tuple[str, ...]) -> tuple[int, tuple[int, ...]]:
        # An empty reply is "no answer", except under eval.py's rule, where only a missing
        # "Answer Choice" line is; an empty answer there names no class and counts wrong.
        if value is None or (self.policy != "manyicl" and isinstance(value, str) and not value.strip()):
            return NO_ANSWER, ()
        return self._parse(value, candidates)

    def _matcher(self, candidates: tuple[str, ...]):
        if candidates not in self._matchers:
            kind = SubstringMatcher if self.policy == "manyicl" else LabelMatcher
            self._matchers[candidates] = kind(candidates)
        return self._matchers[candidates]

    def _parse(self, value, candidates: tuple[str, ...]) -> tuple[int, tuple[int, ...]]:
        matcher = self._matcher(candidates)
        if self.policy == "manyicl":
            found = tuple(matcher.find(value if isinstance(value, str) else ", ".join(value)))
            outcome = ONE_LABEL if len(found) == 1 else (NO_LABEL if not found else SEVERAL_LABELS)
        elif self.truth.multilabel or isinstance(value, list):
            outcome, found = matcher.label_set(value)
            if not self.truth.multilabel and found is not None and len(found) != 1:
                outcome, found = (SEVERAL_LABELS if found else NO_LABEL), None
        else:
            outcome, index = matcher.single(value)
            found = (index,) if index is not None else None
        if outcome != ONE_LABEL:
            return _CODE[outcome], ()
        return OK, tuple(self._class_index[candidates[i]] for i in found)

    def _batchable(self, values: list) -> list[bool]:
        """Which replies one matcher scan over many texts (``find_many``) reads, rather than ``read``."""
        if self.policy == "manyicl":
            return [value is not None for value in values]
        if self.truth.multilabel:
            return [False] * len(values)
        return [type(value) is str and value != "" and not value.isspace() for value in values]

    def _read_group(self, candidates: tuple[str, ...], slots: list[int], values: list, status: np.ndarray,
                    predicted: np.ndarray) -> None:
        """Fill ``status``/``predicted`` rows ``slots`` for distinct replies sharing one candidate list."""
        batchable = self._batchable(values)
        for slot, value, batched in zip(slots, values, batchable):
            if not batched:
                status[slot], indices = self.read(list(value) if type(value) is tuple else value, candidates)
                predicted[slot, list(indices)] = True
        rows = np.fromiter(compress(slots, batchable), dtype=np.intp)
        if not len(rows):
            return
        texts = [value if type(value) is str else ", ".join(value) for value in compress(values, batchable)]
        hits = self._matcher(candidates).find_many(texts)
        named = hits.sum(axis=1)
        status[rows] = np.where(named == 1, OK, np.where(named == 0, NONE_NAMED, SEVERAL))
        ok = named == 1
        columns = np.array([self._class_index[name] for name in candidates], dtype=np.intp)
        predicted[np.ix_(rows[ok], columns)] = hits[ok]

    def read_rows(self, index: np.ndarray, values: list) -> tuple[np.ndarray, np.ndarray]:
        """``(status (k,), predicted (k, C))`` of the predictions ``values[j]`` for items ``index[j]``.

        Each distinct (candidates, reply) is read once, in one matcher scan per candidate list,
        and every row takes its row of that small table by index.
        (Lists become tuples here, to be hashable, and are read back as lists.)
        """
        if list in map(type, values):
            values = [tuple(value) if type(value) is list else value for value in values]
        keys = values if self.truth.pairs is None else list(zip(map(self.truth.pairs.__getitem__, index.tolist()),
                                                                 values))
        # C-level loops only (dict.fromkeys, zip, map): no Python call per row.
        slot_of = dict(zip(dict.fromkeys(keys), range(len(keys))))
        distinct = list(slot_of)
        row_slot = np.fromiter(map(slot_of.__getitem__, keys), dtype=np.intp, count=len(keys))
        if self.truth.pairs is None:
            groups = {self.truth.classes: (range(len(distinct)), distinct)}
        else:
            groups = {}
            for slot, (candidates, value) in enumerate(distinct):
                members = groups.setdefault(candidates, ([], []))
                members[0].append(slot)
                members[1].append(value)
        status = np.full(len(distinct), MISSING, dtype=np.int8)
        predicted = np.zeros((len(distinct), len(self.truth.classes)), dtype=bool)
        for candidates, (slots, group_values) in groups.items():
            self._read_group(candidates, slots, group_values, status, predicted)
        return status[row_slot], predicted[row_slot]


# Fewer answered replies than this may all miss the classes by chance (a weak model, a tiny test).
FOREIGN_REPLIES_MIN = 20


def _refuse_foreign_replies(truth: Truth, source: str, status: np.ndarray, unnamed: "_UnnamedReplies") -> None:
    """Refuse a run whose ids all fit but whose many replies never name a class of the truth: the ids
    are shared file names (``0001.jpg``) of another dataset, scored as "all wrong" otherwise.
    Empty replies say nothing about the dataset (eval.py's rule reads them as "no label"): not counted."""
    answered = np.isin(status, (OK, NONE_NAMED, SEVERAL))
    if answered.sum() < FOREIGN_REPLIES_MIN or not (status[answered] == NONE_NAMED).all():
        return
    if unnamed.count < FOREIGN_REPLIES_MIN:
        return
    classes = ", ".join(truth.classes[:6]) + (", ..." if len(truth.classes) > 6 else "")
    if unnamed.compatible * 2 >= unnamed.count:
        raise UserError(f"{source}: none of its {unnamed.count} replies names a class of the truth file "
                        f"{truth.source} ({classes}), and {unnamed.compatible} are written with compatibility "
                        f"characters (fullwidth letters, ligatures; first {str(unnamed.first_compatible)[:80]!r}): "
                        "labels are matched in canonical (NFC) text, where these are other characters; convert "
                        "the replies with NFKC if that is what they mean")
    raise UserError(f"{source}: none of its {unnamed.count} replies names a class of the truth file {truth.source} "
                    f"({classes}; first reply {str(unnamed.first)[:80]!r}): predictions for another dataset with the "
                    "same file names?")


class _UnnamedReplies:
    """Non-blank replies that named no class: how many, the first, and how many use compatibility forms."""

    def __init__(self):
        self.count = self.compatible = 0
        self.first = self.first_compatible = None

    def add(self, value) -> None:
        if _blank(value):
            return
        self.count += 1
        self.first = value if self.first is None else self.first
        if has_compatibility_forms(str(value)):
            self.compatible += 1
            self.first_compatible = value if self.first_compatible is None else self.first_compatible


def _blank(value) -> bool:
    return not (value.strip() if isinstance(value, str) else any(part.strip() for part in value))


def check_options(truth: Truth, policy: str, lcl_compat: bool) -> None:
    """Refuse option combinations that do not apply to this truth file."""
    if policy not in POLICIES:
        raise UserError(f"unknown parse-failure policy {policy!r}; expected one of {', '.join(POLICIES)}")
    if policy == "manyicl" and truth.multilabel:
        raise UserError(f"{truth.source}: --parse-failures manyicl reproduces eval.py, which is single-label only")
    if lcl_compat and truth.pairs is None:
        raise UserError(f"{truth.source}: --lcl-compat needs an ISEKAI truth file (LCL ISEKAI-*.json or episodes.jsonl)")


class _RunTally:
    """One run's per-item status, label sets (and LCL correctness), filled a chunk of rows at a time."""

    def __init__(self, truth: Truth, source: str, reader: _Reader, *, lcl_compat: bool, ignore_unknown: bool):
        n = len(truth.ids)
        self.truth, self.source, self.reader, self.ignore_unknown = truth, source, reader, ignore_unknown
        self.ids = IdTally(truth)
        self.status = np.full(n, MISSING, dtype=np.int8)
        self.predicted = np.zeros((n, len(truth.classes)), dtype=bool)
        self.correct = np.zeros(n, dtype=bool) if lcl_compat else None   # a missing reply is wrong
        self.seen = np.zeros(n, dtype=bool)
        # Where each item's prediction is, for a duplicate's error: a line number, or a pickle's key.
        self.first_line = np.zeros(n, dtype=np.int64)
        self.first_key: dict[int, str] = {}
        # Unknown ids are kept only when they are ignored (a duplicate must still be refused); without
        # --ignore-unknown-ids the run is refused anyway.
        self.unknown_lines: dict[str, int | str] = {}
        self.unnamed = _UnnamedReplies()

    def add(self, ids: list, values: list, lines: list) -> None:
        ids, values = list(map(canonical, ids)), list(map(canonical_value, values))
        positions = list(map(self.truth.positions.get, ids))
        self.ids.add(ids, positions)
        if None in positions:
            self._note_unknown(ids, positions, lines)
            kept = [k for k, position in enumerate(positions) if position is not None]
            ids, values, lines, positions = ([column[k] for k in kept] for column in (ids, values, lines, positions))
        if not positions:
            return
        index = np.fromiter(positions, dtype=np.intp, count=len(positions))
        if self.seen[index].any() or len(np.unique(index)) < len(index):
            self._refuse_duplicate(ids, index, lines)
        self.seen[index] = True
        if set(map(type, lines)) == {int}:
            self.first_line[index] = lines
        else:
            self.first_key.update(zip(index.tolist(), lines))
        status, predicted = self.reader.read_rows(index, values)
        self.status[index], self.predicted[index] = status, predicted
        for k in np.flatnonzero(status == NONE_NAMED).tolist():
            self.unnamed.add(values[k])
        if self.correct is not None:
            pairs, answers = self.truth.pairs, self.truth.answers
            for item, value in zip(index.tolist(), values):
                self.correct[item] = isinstance(value, str) and lcl_correct(value, pairs[item], answers[item])

    def _note_unknown(self, ids: list, positions: list, lines: list) -> None:
        if not self.ignore_unknown:
            return
        for item, position, line in zip(ids, positions, lines):
            if position is None:
                if item in self.unknown_lines:
                    raise UserError(f"{location(self.source, line)}: duplicate id {item!r} "
                                    f"(also at {location(self.source, self.unknown_lines[item])})")
                self.unknown_lines[item] = line

    def _refuse_duplicate(self, ids: list, index: np.ndarray, lines: list) -> None:
        seen = self.seen.copy()
        first = {}
        for item, position, line in zip(ids, index.tolist(), lines):
            if seen[position]:
                earlier = first.get(position, self.first_key.get(position, int(self.first_line[position])))
                raise UserError(f"{location(self.source, line)}: duplicate id {item!r} "
                                f"(also at {location(self.source, earlier)})")
            seen[position], first[position] = True, line

    def outcome(self, policy: str, strict: bool) -> Outcome:
        """The run's outcome once all its rows are in, after refusing ids and replies that do not fit."""
        check_ids(self.source, self.ids, ignore_unknown=self.ignore_unknown)
        if self.ids.unknown_count:  # only with ignore_unknown: check_ids refuses them otherwise
            log.warning("%s: %d ids not in the truth (ignored, --ignore-unknown-ids), e.g. %r", self.source,
                        self.ids.unknown_count, self.ids.unknown_sample[0])
        if strict and not self.seen.all():  # ids are unique within a run
            first = self.truth.ids[int(np.argmin(self.seen))]
            raise UserError(f"{self.source}: no prediction for {int((~self.seen).sum())} truth ids (first: {first!r}); "
                            "--strict needs all")
        _refuse_foreign_replies(self.truth, self.source, self.status, self.unnamed)
        n = len(self.truth.ids)
        scored = np.ones(n, dtype=bool) if self.correct is not None else np.isin(self.status, _SCORED[policy])
        return Outcome(self.status, self.predicted, scored, self.correct, self.ids.unknown_count)


def judge_rows(truth: Truth, source: str, rows: Iterable[Row], policy: str = "wrong", *, strict: bool = False,
               lcl_compat: bool = False, ignore_unknown: bool = False) -> list[tuple[RunKey, Outcome]]:
    """``(run key, outcome)`` of every run in ``rows`` (as a reader yields them), sorted by run.

    Rows are buffered ``CHUNK_ROWS`` at a time (all runs together) and judged into their run's tally.
    """
    check_options(truth, policy, lcl_compat)
    reader = _Reader(truth, policy)
    tallies: dict[RunKey, _RunTally] = {}
    buffers: dict[RunKey, tuple[list, list, list]] = {}

    max_runs = max(MIN_RUNS, RUN_ARRAYS_BUDGET // (len(truth.ids) * (len(truth.classes) + 11)))

    def flush():
        for key, (ids, values, lines) in buffers.items():
            if key not in tallies:
                if len(tallies) == max_runs:
                    raise UserError(f"{source}: more than {max_runs} runs (distinct model, shots, batch_size) in one "
                                    f"file for a truth of {len(truth.ids)} items; a shot curve has a few dozen "
                                    "(is a column shifted?)")
                tallies[key] = _RunTally(truth, source, reader, lcl_compat=lcl_compat,
                                         ignore_unknown=ignore_unknown and not strict)
            tallies[key].add(ids, values, lines)
        buffers.clear()

    buffered = 0
    for key, item_id, value, line in rows:
        columns = buffers.get(key)
        if columns is None:
            columns = buffers[key] = ([], [], [])
        columns[0].append(item_id)
        columns[1].append(value)
        columns[2].append(line)
        buffered += 1
        if buffered == CHUNK_ROWS:
            flush()
            buffered = 0
    flush()
    return [(key, tallies[key].outcome(policy, strict)) for key in sorted(tallies, key=run_sort_key)]


def judge(truth: Truth, run: PredictionRun, policy: str = "wrong", *, strict: bool = False,
          lcl_compat: bool = False, ignore_unknown: bool = False) -> Outcome:
    """Parse every reply of an in-memory ``run`` and decide, per truth item, its status and whether it is scored."""
    check_options(truth, policy, lcl_compat)
    tally = _RunTally(truth, run.source, _Reader(truth, policy), lcl_compat=lcl_compat,
                      ignore_unknown=ignore_unknown and not strict)
    for start in range(0, len(run.rows), CHUNK_ROWS):
        chunk = run.rows[start:start + CHUNK_ROWS]
        tally.add([p.id for p in chunk], [p.value for p in chunk], [p.line for p in chunk])
    return tally.outcome(policy, strict)
