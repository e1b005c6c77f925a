"""Metrics, bootstrap, shot curves and data efficiency, checked by hand and against scikit-learn."""

import json
import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from isekai_gen.scoring import score, write_report
from isekai_gen.scoring.bootstrap import bootstrap_summary
from isekai_gen.scoring.curves import data_efficiency
from isekai_gen.scoring.metrics import ACCURACY, MACRO_F1, item_stats, metric_from_sums


def _write_csv_truth(path, classes, labels):
    """ManyICL test.csv; ``labels`` maps id -> list of positive class names."""
    lines = ["," + ",".join(classes)]
    lines += [item + "," + ",".join("1.0" if c in names else "0.0" for c in classes) for item, names in labels.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_hand_computed_accuracy_per_class_and_confusion(tmp_path):
    truth = _write_csv_truth(tmp_path / "test.csv", ["cat", "dog", "fox"],
                             {"1": ["cat"], "2": ["cat"], "3": ["dog"], "4": ["dog"], "5": ["fox"], "6": ["fox"]})
    predictions = _write_jsonl(tmp_path / "p.jsonl", [
        {"id": "1", "prediction": "a cat"}, {"id": "2", "prediction": "dog"}, {"id": "3", "prediction": "Dog."},
        {"id": "4", "prediction": "no idea"}, {"id": "5", "prediction": "fox"}, {"id": "6", "prediction": "cat or fox"},
    ])
    report = score(truth, [predictions], parse_failures="wrong", bootstrap=0)
    assert report["value"] == pytest.approx(300 / 6)          # 1, 3, 5 right of 6
    assert report["n_unparsed"] == 2 and report["n_scored"] == 6
    assert report["confusion"]["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 1]]
    cat, dog = report["per_class"]["cat"], report["per_class"]["dog"]
    assert (cat["precision"], cat["recall"], cat["f1"], cat["support"]) == (100.0, 50.0, pytest.approx(200 / 3), 2)
    assert (dog["precision"], dog["recall"], dog["f1"]) == (50.0, 50.0, 50.0)
    dropped = score(truth, [predictions], parse_failures="drop", bootstrap=0)
    assert dropped["value"] == pytest.approx(300 / 4) and dropped["confusion"]["matrix"][1] == [0, 1, 0, 0]


def test_paper_arithmetic_73_of_209():
    stats = np.array([[1]] * 73 + [[0]] * 136)
    value = metric_from_sums(ACCURACY, stats.sum(axis=0, keepdims=True), len(stats))[0]
    assert f"{value:.2f}" == "34.93"


def test_macro_f1_equals_sklearn_on_random_multilabel():
    rng = np.random.default_rng(7)
    for _ in range(20):
        truth = rng.random((60, 5)) < 0.3
        predicted = rng.random((60, 5)) < rng.uniform(0.05, 0.6)
        predicted[:, 4] = False                                   # a class never predicted: zero_division
        stats = item_stats(MACRO_F1, truth, predicted)
        ours = metric_from_sums(MACRO_F1, stats.sum(axis=0, keepdims=True), len(stats))[0]
        assert ours == pytest.approx(100 * f1_score(truth, predicted, average="macro", zero_division=0))


def test_multilabel_truth_scores_macro_f1_and_counts_failures_wrong(tmp_path):
    classes = ["Atelectasis", "Edema"]
    truth = _write_csv_truth(tmp_path / "test.csv", classes, {"a": ["Edema"], "b": [], "c": ["Atelectasis", "Edema"]})
    predictions = _write_jsonl(tmp_path / "p.jsonl", [
        {"id": "a", "prediction": ["edema"]}, {"id": "b", "prediction": "none"}, {"id": "c", "prediction": "garbage"}])
    report = score(truth, [predictions], bootstrap=0)
    assert report["metric"] == "macro_f1"
    # c counted wrong = both decisions flipped: Atelectasis tp0 fn1 -> F1 0; Edema tp1 fn1 -> 2/3
    assert report["value"] == pytest.approx(100 * (0 + 2 / 3) / 2)
    assert report["confusion"]["per_class"]["Edema"] == {"tp": 1, "fp": 0, "fn": 1, "tn": 1}


def _accuracy(sums, n):
    return metric_from_sums(ACCURACY, sums, n)


def test_bootstrap_is_seeded_and_matches_index_resampling():
    correct = (np.random.default_rng(0).random(300) < 0.7).astype(np.int64)[:, None]
    first = bootstrap_summary(correct, _accuracy, 2000, seed=5)
    assert first == bootstrap_summary(correct, _accuracy, 2000, seed=5)
    assert first != bootstrap_summary(correct, _accuracy, 2000, seed=6)
    # eval.py's way: resample item indices; the spread must agree with the pattern bootstrap
    rng = np.random.default_rng(1)
    naive = [100 * correct[rng.integers(0, 300, 300), 0].mean() for _ in range(2000)]
    assert first["std"] == pytest.approx(np.std(naive), rel=0.1)
    p = correct.mean()
    assert first["std"] == pytest.approx(100 * math.sqrt(p * (1 - p) / 300), rel=0.1)
    low, high = first["ci95"]
    assert low < first["value"] < high


def test_data_efficiency_recovers_log_linear_slope():
    shots = [0, 5, 10, 20, 50, 100, 200]
    points = [(n, 31.5 + 7.25 * math.log10(n + 1)) for n in shots]
    result = data_efficiency(points)
    assert result["slope"] == pytest.approx(7.25) and result["zero_shot"] == 31.5
    noisy = [(n, v + (0.4 if i % 2 else -0.4)) for i, (n, v) in enumerate(points) if n]
    assert data_efficiency([(0, 31.5), *noisy])["slope"] == pytest.approx(7.25, abs=0.3)
    assert data_efficiency(points[1:])["slope"] is None
    assert "no zero-shot" in data_efficiency(points[1:])["note"]
    # A run that scored no item (value None) is left out; without a zero-shot value there is no slope.
    assert data_efficiency([*points, (400, None)])["slope"] == pytest.approx(7.25)
    assert data_efficiency([(0, None), *points[1:]]) == {
        "slope": None, "zero_shot": None, "note": "the zero-shot run scored no item"}
    assert data_efficiency([(0, 31.5), (5, None)]) == {
        "slope": None, "zero_shot": 31.5, "note": "no run with shots > 0 scored an item"}


def test_a_run_that_scores_no_item_still_gives_a_curve_report_and_plot(tmp_path):
    truth = _write_csv_truth(tmp_path / "test.csv", ["cat", "dog"], {"a": ["cat"], "b": ["dog"]})
    predictions = _write_jsonl(tmp_path / "p.jsonl", [
        {"id": "a", "prediction": "?", "shots": 0}, {"id": "b", "prediction": "?", "shots": 0},
        {"id": "a", "prediction": "cat", "shots": 8}])
    report = score(truth, [predictions], parse_failures="drop", bootstrap=10)
    assert [(p["shots"], p["value"]) for p in report["curve"]] == [(0, None), (8, 100.0)]
    assert report["data_efficiency"][0]["slope"] is None
    written = write_report(report, tmp_path / "out")
    assert sorted(p.name for p in written) == ["curve.png", "report.json", "report.md"]


def test_shot_curve_batch_table_and_paired_compare(tmp_path):
    classes = ["cat", "dog"]
    ids = [f"i{k}" for k in range(40)]
    truth = _write_csv_truth(tmp_path / "test.csv", classes, {i: [classes[k % 2]] for k, i in enumerate(ids)})
    rows = []
    for shots, right in ((0, 20), (4, 28), (16, 34)):
        for batch in ((1, 5) if shots == 16 else (1,)):
            rows += [{"id": i, "prediction": classes[k % 2] if k < right else classes[(k + 1) % 2],
                      "shots": shots, "batch_size": batch, "model": "m"} for k, i in enumerate(ids)]
    predictions = _write_jsonl(tmp_path / "runs.jsonl", rows)
    other = _write_jsonl(tmp_path / "other.jsonl", [{"id": i, "prediction": "cat"} for i in ids])
    report = score(truth, [predictions], compare=other, bootstrap=300, seed=1)
    assert [(p["shots"], p["value"]) for p in report["curve"] if p["batch_size"] == 1] == [(0, 50.0), (4, 70.0), (16, 85.0)]
    slope = (math.log10(5) * 20 + math.log10(17) * 35) / (math.log10(5) ** 2 + math.log10(17) ** 2)
    efficiency = {e["batch_size"]: e for e in report["data_efficiency"]}
    assert efficiency[1]["slope"] == pytest.approx(slope)
    assert efficiency[5]["slope"] is None                       # no zero-shot run at batch size 5
    assert [(r["shots"], r["batch_size"]) for r in report["by_batch_size"]] == [(16, 1), (16, 5)]
    # the first run is (model m, batch 1, shots 0): 50% vs "always cat" 50%
    compare = report["compare"]
    assert (compare["value_a"], compare["value_b"], compare["difference"]) == (50.0, 50.0, 0.0)
    assert compare["n_items"] == 40 and compare["std"] > 0


def test_row_patterns_equal_numpy_unique_rows_in_order():
    """The packed-key fast path gives exactly np.unique(axis=0): same rows, order and counts (the
    bootstrap's multinomial draws depend on the order)."""
    from isekai_gen.scoring.bootstrap import row_patterns

    rng = np.random.default_rng(0)
    for stats in (rng.integers(0, 2, (500, 1)), rng.integers(0, 3, (500, 6)), rng.integers(0, 2, (50, 70)),
                  np.array([[1 << 40, 0], [3, 1]]), np.zeros((0, 2), dtype=np.int64)):
        patterns, counts = row_patterns(stats)
        expected_patterns, expected_counts = np.unique(stats, axis=0, return_counts=True)
        assert np.array_equal(patterns, expected_patterns) and np.array_equal(counts, expected_counts)
