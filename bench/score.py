"""Benchmark: reading free-text predictions (the scorer's judge step) at three sizes.

Ours: ``isekai_gen.scoring.outcomes.judge``: each distinct reply once, in ONE matcher scan per
label list (the label regex or ManyICL's substring test over all distinct replies joined; replies
that differ only in their numbers, such as a confidence score, scanned once per shape when no
label holds a digit), items mapped to that table by index. Baseline: a copy of the previous implementation kept below
(``Baseline*``: a per-item Python loop with a memo per distinct reply, one regex ``finditer`` with a
named group per label, and ``name.lower()`` recomputed for every reply x class; measured within ~15%
of the original module, and slightly faster than it). Both run in the same process on the same data
and must produce identical status and label matrices. Also printed: whole ``score_run`` (judge +
bootstrap) with either judge, agreement with ManyICL's released eval.py loop, and ``score()`` end to
end from files.

    .venv/bin/python bench/score.py [--sizes 25000 50000 100000] [--resamples 1000] [--repeat 7]

Times are the least process CPU time of --repeat interleaved runs. The scaling exponent k is the least-squares slope of log(time) on log(items) over the sizes
(time ~ items^k).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from isekai_gen.scoring import api, score
from isekai_gen.scoring.outcomes import (_CODE, _SCORED, MISSING, NO_ANSWER, NO_LABEL, OK,
                                         ONE_LABEL, SEVERAL_LABELS, Outcome, judge)
from isekai_gen.scoring.predictions import Prediction, PredictionRun
from isekai_gen.scoring.truth import Truth

CLASSES = ("agricultural airplane baseballdiamond beach buildings chaparral denseresidential forest freeway "
           "golfcourse harbor intersection mediumresidential mobilehomepark overpass parkinglot river runway "
           "sparseresidential storagetanks tenniscourt").split()
TEMPLATES = ("{a}", "Answer Choice: {a}\nConfidence Score: 0.{k}", "I think this is {a} ({k}% sure).",
             "It could be {a} or {b}, confidence {k}.", "The image is unclear (reference {k}).")


# --- Baseline: the previous reader, kept verbatim in behaviour (single-label paths) -------------

MISSING_VALUE = object()  # marks a truth item without a prediction

def baseline_substring_matches(text: str, classes) -> list[int]:
    lowered = text.lower()
    return [index for index, name in enumerate(classes) if name.lower() in lowered]


class BaselineLabelMatcher:
    def __init__(self, labels):
        self.labels = tuple(labels)
        order = sorted(range(len(self.labels)), key=lambda i: (-len(self.labels[i]), i))
        alternatives = "|".join(f"(?P<l{i}>{self._pattern(self.labels[i])})" for i in order)
        self._regex = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    @staticmethod
    def _pattern(label: str) -> str:
        words = [re.escape(word) for word in re.split(r"[\s_-]+", label.strip()) if word]
        return r"[\s_-]+".join(words) if words else re.escape(label)

    def single(self, text: str):
        found = tuple(sorted({int(m.lastgroup[1:]) for m in self._regex.finditer(text)}))
        if len(found) == 1:
            return ONE_LABEL, found[0]
        return (NO_LABEL if not found else SEVERAL_LABELS), None


class BaselineReader:
    def __init__(self, truth: Truth, policy: str):
        self.truth, self.policy = truth, policy
        self._class_index = {name: i for i, name in enumerate(truth.classes)}
        self._memos: dict = {}
        self._matchers: dict = {}

    def read(self, value, candidates):
        if value is MISSING_VALUE:
            return MISSING, ()
        if value is None or (self.policy != "manyicl" and isinstance(value, str) and not value.strip()):
            return NO_ANSWER, ()
        memo = self._memos.setdefault(candidates, {})
        key = value if isinstance(value, str) else tuple(value)
        if key not in memo:
            memo[key] = self._parse(value, candidates)
        return memo[key]

    def _parse(self, value, candidates):
        if self.policy == "manyicl":
            text = value if isinstance(value, str) else ", ".join(value)
            found = tuple(baseline_substring_matches(text, candidates))
            outcome = ONE_LABEL if len(found) == 1 else (NO_LABEL if not found else SEVERAL_LABELS)
        else:
            if candidates not in self._matchers:
                self._matchers[candidates] = BaselineLabelMatcher(candidates)
            outcome, index = self._matchers[candidates].single(value)
            found = (index,) if index is not None else None
        if outcome != ONE_LABEL:
            return _CODE[outcome], ()
        return OK, tuple(self._class_index[candidates[i]] for i in found)


def baseline_align(truth: Truth, run: PredictionRun, strict: bool = False):
    position = {item_id: i for i, item_id in enumerate(truth.ids)}
    values: list = [MISSING_VALUE] * len(truth.ids)
    unknown = []
    for prediction in run.rows:
        index = position.get(prediction.id)
        if index is None:
            if strict:
                raise ValueError(f"{prediction.location}: id {prediction.id!r} is not in the truth file")
            unknown.append(prediction.id)
        else:
            values[index] = prediction.value
    return values, tuple(unknown)


def baseline_judge(truth: Truth, run: PredictionRun, policy: str = "wrong", **_):
    """The previous ``judge`` loop: one Python call per item, a memo per distinct reply."""
    values, _ = baseline_align(truth, run)
    reader = BaselineReader(truth, policy)
    codes, rows, columns = [], [], []
    for item, value in enumerate(values):
        code, indices = reader.read(value, truth.pairs[item] if truth.pairs is not None else truth.classes)
        codes.append(code)
        rows.extend([item] * len(indices))
        columns.extend(indices)
    predicted = np.zeros(truth.targets.shape, dtype=bool)
    predicted[rows, columns] = True
    status = np.array(codes, dtype=np.int8)
    return Outcome(status, predicted, np.isin(status, _SCORED[policy]), None, 0)


# --- Data -----------------------------------------------------------------------------------------

def make_data(n_items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f"img{i:06d}.jpeg" for i in range(n_items)]
    labels = rng.integers(0, len(CLASSES), n_items)
    guesses = np.where(rng.random(n_items) < 0.7, labels, rng.integers(0, len(CLASSES), n_items))
    others = (guesses + 1 + rng.integers(0, len(CLASSES) - 1, n_items)) % len(CLASSES)
    templates = rng.choice(len(TEMPLATES), n_items, p=[0.3, 0.3, 0.25, 0.1, 0.05])
    numbers = rng.integers(0, 1000, n_items)
    replies = [TEMPLATES[t].format(a=CLASSES[g], b=CLASSES[o], k=k)
               for t, g, o, k in zip(templates, guesses, others, numbers)]
    return ids, labels, replies


def loaded(ids, labels, replies) -> tuple[Truth, PredictionRun]:
    """The in-memory form our readers produce."""
    targets = np.zeros((len(ids), len(CLASSES)), dtype=bool)
    targets[np.arange(len(ids)), labels] = True
    truth = Truth("bench", "manyicl-csv", tuple(ids), tuple(CLASSES), targets, False)
    run = PredictionRun("bench", "jsonl", None, None, None,
                        tuple(Prediction(i, r, "bench", n) for n, (i, r) in enumerate(zip(ids, replies), 1)))
    return truth, run


def eval_py(ids, labels, replies) -> tuple[float, int, int]:
    """ManyICL eval.py's cal_metrics per-row loop (accuracy, errors, scored), for agreement."""
    results = dict(zip(ids, replies))
    num_errors, y_true, y_pred = 0, [], []
    for item, label in zip(ids, labels):
        text = results[item]
        prediction = len(CLASSES)
        for index, name in enumerate(CLASSES):
            if name.lower() in text.lower():
                prediction = index if prediction == len(CLASSES) else -1
        if prediction >= 0:
            y_true.append(label)
            y_pred.append(prediction)
        else:
            num_errors += 1
    return 100 * float(np.mean(np.array(y_true) == np.array(y_pred))), num_errors, len(y_true)


def from_files(ids, labels, replies, resamples: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        truth, predictions = Path(folder) / "test.csv", Path(folder) / "predictions.jsonl"
        rows = ["," + ",".join(CLASSES)] + [
            item + "," + ",".join("1.0" if c == label else "0.0" for c in range(len(CLASSES)))
            for item, label in zip(ids, labels)]
        truth.write_text("\n".join(rows) + "\n")
        predictions.write_text("".join(json.dumps({"id": i, "prediction": r}) + "\n" for i, r in zip(ids, replies)))
        start = time.perf_counter()
        score(truth, [predictions], parse_failures="manyicl", bootstrap=resamples)
        return time.perf_counter() - start


# --- Measurement ----------------------------------------------------------------------------------

def paired_best(baseline, ours, repeat: int) -> tuple[float, object, float, object]:
    """Least process CPU time of each over ``repeat`` interleaved calls (baseline, ours, baseline, ...):
    on a shared machine both see the same conditions, and CPU time is steadier than wall time."""
    best = [math.inf, math.inf]
    results = [None, None]
    for _ in range(repeat):
        for k, function in enumerate((baseline, ours)):
            start = time.process_time()
            results[k] = function()
            best[k] = min(best[k], time.process_time() - start)
    return best[0], results[0], best[1], results[1]


def exponent(sizes, times) -> float:
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(times, float))
    return float(np.polyfit(x, y, 1)[0])


def score_run_with(judge_function, truth, run, policy, resamples):
    """``score_run`` (judge + metrics + bootstrap) with the given judge swapped in."""
    original = api.judge
    api.judge = judge_function
    try:
        return api.score_run(truth, run, parse_failures=policy, bootstrap=resamples, seed=0)[0]
    finally:
        api.judge = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=3, default=[25_000, 50_000, 100_000])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    timings: dict[tuple[str, str], list[float]] = {}
    print(f"{'items':>8} {'distinct':>8} {'policy':>8} {'step':>10} {'baseline s':>11} {'ours s':>8} {'ratio':>6}")
    for size in args.sizes:
        ids, labels, replies = make_data(size)
        truth, run = loaded(ids, labels, replies)
        for policy in ("manyicl", "wrong"):
            base_t, base, ours_t, ours = paired_best(lambda: baseline_judge(truth, run, policy),
                                                     lambda: judge(truth, run, policy), args.repeat)
            for field in ("status", "predicted", "scored"):
                assert np.array_equal(getattr(base, field), getattr(ours, field)), f"{field} differs ({policy})"
            base_run_t, base_result, ours_run_t, ours_result = paired_best(
                lambda: score_run_with(baseline_judge, truth, run, policy, args.resamples),
                lambda: score_run_with(judge, truth, run, policy, args.resamples), max(1, args.repeat // 2))
            assert base_result == ours_result, f"score_run results differ ({policy})"
            for step, (b, o) in (("judge", (base_t, ours_t)), ("score_run", (base_run_t, ours_run_t))):
                timings.setdefault((policy, step), []).append((b, o))
                print(f"{size:>8} {len(set(replies)):>8} {policy:>8} {step:>10} {b:>11.3f} {o:>8.3f} {b / o:>5.1f}x")
        if size == args.sizes[-1]:
            accuracy, errors, scored = eval_py(ids, labels, replies)
            result = score_run_with(judge, truth, run, "manyicl", 0)
            assert (result["n_total"] - result["n_scored"], result["n_scored"]) == (errors, scored)
            assert abs(result["value"] - accuracy) < 1e-9
            print(f"eval.py agreement at {size}: accuracy {accuracy:.2f}, {errors} errors, {scored} scored")
            print(f"score() end to end from test.csv + JSON Lines at {size}: "
                  f"{from_files(ids, labels, replies, args.resamples):.3f} s")
    print("scaling exponent k (time ~ items^k) and ratio at the largest size:")
    for (policy, step), pairs in timings.items():
        base_k = exponent(args.sizes, [b for b, _ in pairs])
        ours_k = exponent(args.sizes, [o for _, o in pairs])
        b, o = pairs[-1]
        print(f"  {policy:>8} {step:>10}: baseline k={base_k:.2f}, ours k={ours_k:.2f}, ratio {b / o:.1f}x")


if __name__ == "__main__":
    main()
