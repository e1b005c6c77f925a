"""Benchmark: scoring 100,000 free-text predictions with 1,000 bootstrap resamples.

Ours: ``isekai_gen.scoring`` with ``--parse-failures manyicl`` (ManyICL's substring rule, cached
per distinct reply; pattern-multinomial bootstrap). Baseline: the released eval.py's way, a
per-row Python loop over replies and classes, then 1,000 ``np.random.choice`` resamples.
Both run here in the same process on the same data and must agree on the counts and accuracy.
Also timed: the whole ``score()`` call from files (test.csv + JSON Lines), for reference.

    .venv/bin/python bench/score.py [--items 100000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from isekai_gen.scoring import score
from isekai_gen.scoring.api import score_run
from isekai_gen.scoring.predictions import Prediction, PredictionRun
from isekai_gen.scoring.truth import Truth

CLASSES = ("agricultural airplane baseballdiamond beach buildings chaparral denseresidential forest freeway "
           "golfcourse harbor intersection mediumresidential mobilehomepark overpass parkinglot river runway "
           "sparseresidential storagetanks tenniscourt").split()
TEMPLATES = ("{a}", "Answer Choice: {a}\nConfidence Score: 0.{k}", "I think this is {a} ({k}% sure).",
             "It could be {a} or {b}, confidence {k}.", "The image is unclear (reference {k}).")


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


def baseline(ids, labels, replies, resamples: int):
    """eval.py's cal_metrics: per-row substring loop, then a Python loop of index resamples."""
    results = dict(zip(ids, replies))
    num_errors, y_true, y_pred = 0, [], []
    for item, label in zip(ids, labels):
        if item not in results or results[item].startswith("ERROR"):
            num_errors += 1
            continue
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
    y_true, y_pred = np.array(y_true), np.array(y_pred)
    accuracy = 100 * np.mean(y_true == y_pred)
    accs = []
    for _ in range(resamples):
        index = np.random.choice(len(y_true), size=len(y_true), replace=True)
        accs.append(100 * np.mean(y_true[index] == y_pred[index]))
    return accuracy, float(np.std(accs)), num_errors, len(y_true)


def loaded(ids, labels, replies) -> tuple[Truth, PredictionRun]:
    """The in-memory form our readers produce (the baseline also starts from loaded data)."""
    targets = np.zeros((len(ids), len(CLASSES)), dtype=bool)
    targets[np.arange(len(ids)), labels] = True
    truth = Truth("bench", "manyicl-csv", tuple(ids), tuple(CLASSES), targets, False)
    run = PredictionRun("bench", "jsonl", None, None, None,
                        tuple(Prediction(i, r, "bench", n) for n, (i, r) in enumerate(zip(ids, replies), 1)))
    return truth, run


def ours(truth: Truth, run: PredictionRun, resamples: int, policy: str = "manyicl"):
    result, _ = score_run(truth, run, parse_failures=policy, bootstrap=resamples, seed=0)
    return result["value"], result["std"], result["n_total"] - result["n_scored"], result["n_scored"]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    ids, labels, replies = make_data(args.items)
    print(f"{args.items} free-text predictions, {len(set(replies))} distinct, {args.resamples} bootstrap resamples")
    timings = {}
    outputs = {}
    truth, run = loaded(ids, labels, replies)
    for name, function, data in (("baseline (eval.py per-row loop)", baseline, (ids, labels, replies)),
                                 ("isekai_gen.scoring", ours, (truth, run))):
        start = time.perf_counter()
        outputs[name] = function(*data, args.resamples)
        timings[name] = time.perf_counter() - start
        accuracy, std, errors, scored = outputs[name]
        print(f"{name:34s} {timings[name]:7.3f} s   accuracy {accuracy:.2f} +- {std:.2f}, "
              f"{errors} errors, {scored} scored")
    (base_acc, _, base_err, base_n), (our_acc, _, our_err, our_n) = outputs.values()
    assert (base_err, base_n) == (our_err, our_n) and abs(base_acc - our_acc) < 1e-9, "implementations disagree"
    base, fast = timings.values()
    print(f"speed-up: {base / fast:.1f}x")
    start = time.perf_counter()
    accuracy, std, _, scored = ours(truth, run, args.resamples, policy="wrong")
    print(f"{'(ours, default word-boundary rule)':34s} {time.perf_counter() - start:7.3f} s   accuracy "
          f"{accuracy:.2f} +- {std:.2f} with failures counted wrong, {scored} scored")
    print(f"score() end to end from test.csv + JSON Lines files: {from_files(ids, labels, replies, args.resamples):.3f} s")


if __name__ == "__main__":
    main()
