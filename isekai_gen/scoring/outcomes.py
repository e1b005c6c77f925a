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

import numpy as np

from ..errors import UserError
from .choices import POLICIES
from .lcl import lcl_correct
from .manyicl import substring_matches
from .matching import NO_LABEL, ONE_LABEL, SEVERAL_LABELS, LabelMatcher
from .predictions import PredictionRun
from .truth import Truth

log = logging.getLogger(__name__)

STATUSES = ("ok", NO_LABEL, SEVERAL_LABELS, "no_answer", "missing")
OK, NONE_NAMED, SEVERAL, NO_ANSWER, MISSING = range(len(STATUSES))
_CODE = {ONE_LABEL: OK, NO_LABEL: NONE_NAMED, SEVERAL_LABELS: SEVERAL}
MISSING_VALUE = object()  # marks a truth item without a prediction (None means "no answer")
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


def _align(truth: Truth, run: PredictionRun, strict: bool) -> tuple[list, tuple[str, ...]]:
    """Prediction value per truth item (``MISSING`` sentinel when absent) and the unknown ids."""
    position = {item_id: i for i, item_id in enumerate(truth.ids)}
    values: list = [MISSING_VALUE] * len(truth.ids)
    unknown = []
    for prediction in run.rows:
        index = position.get(prediction.id)
        if index is None:
            if strict:
                raise UserError(f"{prediction.location}: id {prediction.id!r} is not in the truth file {truth.source}")
            unknown.append(prediction.id)
        else:
            values[index] = prediction.value
    if strict and MISSING_VALUE in values:
        first = truth.ids[values.index(MISSING_VALUE)]
        missing = sum(value is MISSING_VALUE for value in values)
        raise UserError(f"{run.source}: no prediction for {missing} truth ids (first: {first!r}); --strict needs all")
    if unknown:
        log.warning("%s: %d ids not in the truth (ignored), e.g. %r", run.source, len(unknown), unknown[0])
    return values, tuple(unknown)


class _Reader:
    """Reads replies into (status, class indices); each distinct reply text is parsed once."""

    def __init__(self, truth: Truth, policy: str):
        self.truth, self.policy = truth, policy
        self._class_index = {name: i for i, name in enumerate(truth.classes)}
        self._memos: dict[tuple[str, ...], dict] = {}      # candidates -> {reply: result}
        self._matchers: dict[tuple[str, ...], LabelMatcher] = {}

    def read(self, value, candidates: tuple[str, ...]) -> tuple[int, tuple[int, ...]]:
        if value is MISSING_VALUE:
            return MISSING, ()
        # An empty reply is "no answer", except under eval.py's rule, where only a missing
        # "Answer Choice" line is; an empty answer there names no class and counts wrong.
        if value is None or (self.policy != "manyicl" and isinstance(value, str) and not value.strip()):
            return NO_ANSWER, ()
        memo = self._memos.setdefault(candidates, {})
        key = value if isinstance(value, str) else tuple(value)
        if key not in memo:
            memo[key] = self._parse(value, candidates)
        return memo[key]

    def _matcher(self, candidates: tuple[str, ...]) -> LabelMatcher:
        if candidates not in self._matchers:
            self._matchers[candidates] = LabelMatcher(candidates)
        return self._matchers[candidates]

    def _parse(self, value, candidates: tuple[str, ...]) -> tuple[int, tuple[int, ...]]:
        if self.policy == "manyicl":
            text = value if isinstance(value, str) else ", ".join(value)
            found = tuple(substring_matches(text, candidates))
            outcome = ONE_LABEL if len(found) == 1 else (NO_LABEL if not found else SEVERAL_LABELS)
        elif self.truth.multilabel or isinstance(value, list):
            outcome, found = self._matcher(candidates).label_set(value)
            if not self.truth.multilabel and found is not None and len(found) != 1:
                outcome, found = (SEVERAL_LABELS if found else NO_LABEL), None
        else:
            outcome, index = self._matcher(candidates).single(value)
            found = (index,) if index is not None else None
        if outcome != ONE_LABEL:
            return _CODE[outcome], ()
        return OK, tuple(self._class_index[candidates[i]] for i in found)


def check_options(truth: Truth, policy: str, lcl_compat: bool) -> None:
    """Refuse option combinations that do not apply to this truth file."""
    if policy not in POLICIES:
        raise UserError(f"unknown parse-failure policy {policy!r}; expected one of {', '.join(POLICIES)}")
    if policy == "manyicl" and truth.multilabel:
        raise UserError(f"{truth.source}: --parse-failures manyicl reproduces eval.py, which is single-label only")
    if lcl_compat and truth.pairs is None:
        raise UserError(f"{truth.source}: --lcl-compat needs an ISEKAI truth file (LCL ISEKAI-*.json or episodes.jsonl)")


def judge(truth: Truth, run: PredictionRun, policy: str = "wrong", *, strict: bool = False,
          lcl_compat: bool = False) -> Outcome:
    """Parse every reply of ``run`` and decide, per truth item, its status and whether it is scored."""
    check_options(truth, policy, lcl_compat)
    values, unknown = _align(truth, run, strict)
    n, n_classes = truth.targets.shape
    reader = _Reader(truth, policy)
    codes, rows, columns = [], [], []
    for item, value in enumerate(values):
        code, indices = reader.read(value, truth.candidates(item))
        codes.append(code)
        rows.extend([item] * len(indices))
        columns.extend(indices)
    status = np.array(codes, dtype=np.int8)
    predicted = np.zeros((n, n_classes), dtype=bool)
    predicted[rows, columns] = True
    if lcl_compat:
        correct = np.array([
            isinstance(value, str) and lcl_correct(value, truth.pairs[item], truth.answers[item])
            for item, value in enumerate(values)
        ], dtype=bool)
        return Outcome(status, predicted, np.ones(n, dtype=bool), correct, unknown)
    scored = np.isin(status, _SCORED[policy])
    return Outcome(status, predicted, scored, None, unknown)
