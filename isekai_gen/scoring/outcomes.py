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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import compress
from operator import attrgetter

import numpy as np

from ..errors import UserError
from .alignment import check_ids
from .canonical import has_compatibility_forms
from .choices import POLICIES
from .lcl import lcl_correct
from .manyicl import SubstringMatcher
from .matching import NO_LABEL, ONE_LABEL, SEVERAL_LABELS, LabelMatcher
from .predictions import PredictionRun
from .truth import Truth

log = logging.getLogger(__name__)

STATUSES = ("ok", NO_LABEL, SEVERAL_LABELS, "no_answer", "missing")
OK, NONE_NAMED, SEVERAL, NO_ANSWER, MISSING = range(len(STATUSES))
_CODE = {ONE_LABEL: OK, NO_LABEL: NONE_NAMED, SEVERAL_LABELS: SEVERAL}
_VALUE = attrgetter("value")
_SCORED = {"drop": (OK,), "wrong": (OK, NONE_NAMED, SEVERAL, NO_ANSWER, MISSING), "manyicl": (OK, NONE_NAMED)}


@dataclass(frozen=True)
class Outcome:
    status: np.ndarray      # (n,) int8 index into STATUSES
    predicted: np.ndarray   # (n, C) bool label set read from each reply (empty unless ok)
    scored: np.ndarray      # (n,) bool: counts in the metric under the policy
    correct: np.ndarray | None  # (n,) bool, --lcl-compat only
    unknown_ids: tuple[str, ...]

    def count(self, status: int) -> int:
        return int((self.status == status).sum())


def _align(truth: Truth, run: PredictionRun, strict: bool, ignore_unknown: bool) -> tuple[np.ndarray, list, tuple]:
    """``(truth position of each known prediction, their values, the unknown ids)``, in file order."""
    positions = check_ids(truth, run, ignore_unknown=ignore_unknown and not strict)
    values = list(map(_VALUE, run.rows))
    unknown: tuple[str, ...] = ()
    if None in positions:  # only with ignore_unknown: check_ids refuses them otherwise
        unknown = tuple(p.id for p, position in zip(run.rows, positions) if position is None)
        values = [value for value, position in zip(values, positions) if position is not None]
        positions = [position for position in positions if position is not None]
        log.warning("%s: %d ids not in the truth (ignored, --ignore-unknown-ids), e.g. %r", run.source, len(unknown),
                    unknown[0])
    index = np.fromiter(positions, dtype=np.intp, count=len(positions))
    if strict and len(index) < len(truth.ids):  # ids are unique within a run
        absent = np.ones(len(truth.ids), dtype=bool)
        absent[index] = False
        first = truth.ids[int(np.argmax(absent))]
        raise UserError(f"{run.source}: no prediction for {int(absent.sum())} truth ids (first: {first!r}); "
                        "--strict needs all")
    return index, values, unknown


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

    def read_all(self, index: np.ndarray, values: list) -> tuple[np.ndarray, np.ndarray]:
        """``(status (n,), predicted (n, C))`` of every truth item, given its prediction ``values[k]``
        for item ``index[k]``.

        Each distinct (candidates, reply) is read once, in one matcher scan per candidate list,
        and every item takes its row of that small table by index; the last row is "missing".
        (Lists become tuples here, to be hashable, and are read back as lists.)
        """
        if list in map(type, values):
            values = [tuple(value) if type(value) is list else value for value in values]
        keys = values if self.truth.pairs is None else list(zip(map(self.truth.pairs.__getitem__, index.tolist()),
                                                                 values))
        # C-level loops only (dict.fromkeys, zip, map): no Python call per item.
        slot_of = dict(zip(dict.fromkeys(keys), range(len(keys))))
        distinct = list(slot_of)
        item_slot = np.full(len(self.truth.ids), len(distinct), dtype=np.intp)  # "missing" unless predicted
        item_slot[index] = np.fromiter(map(slot_of.__getitem__, keys), dtype=np.intp, count=len(keys))
        if self.truth.pairs is None:
            groups = {self.truth.classes: (range(len(distinct)), distinct)}
        else:
            groups = {}
            for slot, (candidates, value) in enumerate(distinct):
                members = groups.setdefault(candidates, ([], []))
                members[0].append(slot)
                members[1].append(value)
        status = np.full(len(distinct) + 1, MISSING, dtype=np.int8)
        predicted = np.zeros((len(distinct) + 1, len(self.truth.classes)), dtype=bool)
        for candidates, (slots, group_values) in groups.items():
            self._read_group(candidates, slots, group_values, status, predicted)
        return status[item_slot], predicted[item_slot]


# Fewer answered replies than this may all miss the classes by chance (a weak model, a tiny test).
FOREIGN_REPLIES_MIN = 20


def _refuse_foreign_replies(truth: Truth, run: PredictionRun, status: np.ndarray) -> None:
    """Refuse a run whose ids all fit but whose many replies never name a class of the truth: the ids
    are shared file names (``0001.jpg``) of another dataset, scored as "all wrong" otherwise.
    Empty replies say nothing about the dataset (eval.py's rule reads them as "no label"): not counted."""
    answered = np.isin(status, (OK, NONE_NAMED, SEVERAL))
    if answered.sum() < FOREIGN_REPLIES_MIN or not (status[answered] == NONE_NAMED).all():
        return
    replies = [row.value for row in run.rows if row.id in truth.positions
               and status[truth.positions[row.id]] == NONE_NAMED and not _blank(row.value)]
    if len(replies) < FOREIGN_REPLIES_MIN:
        return
    classes = ", ".join(truth.classes[:6]) + (", ..." if len(truth.classes) > 6 else "")
    compatible = [reply for reply in replies if has_compatibility_forms(str(reply))]
    if len(compatible) * 2 >= len(replies):
        raise UserError(f"{run.source}: none of its {len(replies)} replies names a class of the truth file "
                        f"{truth.source} ({classes}), and {len(compatible)} are written with compatibility characters "
                        f"(fullwidth letters, ligatures; first {str(compatible[0])[:80]!r}): labels are matched in "
                        "canonical (NFC) text, where these are other characters; convert the replies with NFKC "
                        "if that is what they mean")
    raise UserError(f"{run.source}: none of its {len(replies)} replies names a class of the truth file {truth.source} "
                    f"({classes}; first reply {str(replies[0])[:80]!r}): predictions for another dataset with the "
                    "same file names?")


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


def judge(truth: Truth, run: PredictionRun, policy: str = "wrong", *, strict: bool = False,
          lcl_compat: bool = False, ignore_unknown: bool = False) -> Outcome:
    """Parse every reply of ``run`` and decide, per truth item, its status and whether it is scored."""
    check_options(truth, policy, lcl_compat)
    index, values, unknown = _align(truth, run, strict, ignore_unknown)
    n = len(truth.ids)
    status, predicted = _Reader(truth, policy).read_all(index, values)
    _refuse_foreign_replies(truth, run, status)
    if lcl_compat:
        correct = np.zeros(n, dtype=bool)  # a missing reply is wrong
        for item, value in zip(index.tolist(), values):
            correct[item] = isinstance(value, str) and lcl_correct(value, truth.pairs[item], truth.answers[item])
        return Outcome(status, predicted, np.ones(n, dtype=bool), correct, unknown)
    scored = np.isin(status, _SCORED[policy])
    return Outcome(status, predicted, scored, None, unknown)
