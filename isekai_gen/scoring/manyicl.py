"""The rules of ManyICL's released ``eval.py``, reproduced exactly.

Raw responses are saved as a dict ``str(list_of_query_ids) -> response text`` (plus a
``token_usage`` entry). Query i of a batch is answered by the first line that starts with
``Answer Choice i:``; a missing line (or an answer beginning ``ERROR``) means "answer not found".
The answer names a class when the class name is a case-insensitive substring of it. Both are put
in NFC first (``canonical``; eval.py compares code points, so an NFD reply named nothing there).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np

from ..errors import UserError
from .canonical import canonical
from .matching import hits_matrix, match_starts

ANSWER_PREFIX = "Answer Choice "
# run.py names its pickles f"{dataset}_{num_demos}shot_{model}_{num_qns_per_round}".
EXPERIMENT_NAME = re.compile(r"^(?P<dataset>.+)_(?P<shots>\d+)shot_(?P<model>.+)_(?P<batch>\d+)$")


def extract_answer(response: str, query_number: int) -> str | None:
    """The text after ``Answer Choice <query_number>:`` on the first line starting with it."""
    prefix = f"{ANSWER_PREFIX}{query_number}:"
    for line in response.split("\n"):
        if line.startswith(prefix):
            answer = line[len(prefix):].strip()
            # eval.py stores "ERROR" for a missing line and then drops every answer starting so.
            return None if answer.startswith("ERROR") else answer
    return None


def batched_answers(raw, source) -> list[tuple[str, str | None, int, str]]:
    """``(query_id, answer or None, batch_size, key)`` for every query of a raw-response dict."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a dict of 'str(list of query ids)' -> response, got {type(raw).__name__}")
    answers = []
    for key, response in raw.items():
        if not (isinstance(key, str) and key.startswith("[")):
            continue  # token_usage and other bookkeeping entries
        try:
            query_ids = ast.literal_eval(key)
        except (ValueError, SyntaxError):
            raise UserError(f"{source}: key {key[:60]!r} is not a Python list literal of query ids") from None
        if not isinstance(query_ids, list) or not all(isinstance(q, (str, int)) for q in query_ids):
            raise UserError(f"{source}: key {key[:60]!r} must be a list of query ids (strings or integers)")
        if not isinstance(response, str):
            raise UserError(f"{source}: the response of key {key[:60]!r} is {type(response).__name__}, expected text")
        for number, query_id in enumerate(query_ids, start=1):
            answers.append((str(query_id), extract_answer(response, number), len(query_ids), key))
    if not answers:
        raise UserError(f"{source}: no '[query ids]' keys; not a ManyICL raw-response pickle")
    return answers


class SubstringMatcher:
    """eval.py's test ``name.lower() in text.lower()`` per class, with the names lowered once."""

    def __init__(self, classes):
        self._lowered = [(index, canonical(name).lower()) for index, name in enumerate(classes)]

    def find(self, text: str) -> list[int]:
        lowered = canonical(text).lower()
        return [index for index, name in self._lowered if name in lowered]

    def find_many(self, texts: list[str]) -> np.ndarray:
        """``find`` of every text at once, as a ``(len(texts), len(classes))`` bool matrix."""
        names = [name for _, name in self._lowered]
        searches = [(index, re.compile(re.escape(name))) for index, name in self._lowered if name]

        def scan(joined):
            found = [(index, list(search.finditer(joined))) for index, search in searches]
            positions = np.concatenate([match_starts(matches) for _, matches in found] or [np.zeros(0, np.int64)])
            labels = np.concatenate([np.full(len(matches), index, dtype=np.intp) for index, matches in found]
                                    or [np.zeros(0, np.intp)])
            return positions, labels

        hits = hits_matrix(list(map(canonical, texts)), names, scan, self.find, fold=str.lower)
        hits[:, [index for index, name in self._lowered if not name]] = True  # "" is in every text
        return hits


def run_fields_from_name(path: str | Path) -> dict:
    """``shots``, ``model``, ``batch_size`` from a run.py file name, or {} when it is not one."""
    match = EXPERIMENT_NAME.match(Path(path).stem)
    if not match:
        return {}
    return {"shots": int(match["shots"]), "model": match["model"], "batch_size": int(match["batch"])}
