"""Metrics as functions of per-item count vectors, so the bootstrap can reuse them unchanged.

Every metric here is a function of sums over items: accuracy of the number correct, macro-F1 of
the per-class true-positive, false-positive and false-negative counts. ``item_stats`` gives each
scored item's vector, ``metric_from_sums`` turns summed vectors (one row per resample) into values.
All values are percentages, like ManyICL's eval.py and the paper's tables.
"""

from __future__ import annotations

import numpy as np

ACCURACY, MACRO_F1 = "accuracy", "macro_f1"


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (sklearn's zero_division=0)."""
    numerator, denominator = np.broadcast_arrays(np.asarray(numerator, float), np.asarray(denominator, float))
    out = np.zeros(numerator.shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def counted_prediction(truth_rows: np.ndarray, predicted: np.ndarray, failed: np.ndarray,
                       multilabel: bool) -> np.ndarray:
    """Predicted label sets with failures counted wrong.

    Single-label rows keep an empty set (the "no class" column of the confusion matrix). In a
    multi-label set a failure gets the complement of the truth, so every one of its per-class
    decisions is wrong; any fixed guess (say "no finding") would be partly right on some items.
    """
    predicted = predicted.copy()
    if multilabel:
        predicted[failed] = ~truth_rows[failed]
    return predicted


def item_stats(metric: str, truth_rows: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per-item count vectors: ``[correct]`` for accuracy, ``[tp | fp | fn]`` per class for macro-F1."""
    if metric == ACCURACY:
        return (truth_rows == predicted).all(axis=1, keepdims=True).astype(np.int64)
    tp = truth_rows & predicted
    fp = ~truth_rows & predicted
    fn = truth_rows & ~predicted
    return np.concatenate([tp, fp, fn], axis=1).astype(np.int64)


def metric_from_sums(metric: str, sums: np.ndarray, n_items: int) -> np.ndarray:
    """Metric values (percent) from summed item vectors of shape (resamples, d)."""
    if metric == ACCURACY:
        return 100.0 * sums[:, 0] / n_items
    tp, fp, fn = np.split(sums, 3, axis=1)
    return 100.0 * _safe_divide(2 * tp, 2 * tp + fp + fn).mean(axis=1)


def confusion_matrix(truth_rows: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Single-label: (C, C+1) counts, rows = true class, last column = no class predicted."""
    n_classes = truth_rows.shape[1]
    true_index = truth_rows.argmax(axis=1)
    predicted_index = np.where(predicted.any(axis=1), predicted.argmax(axis=1), n_classes)
    cells = np.bincount(true_index * (n_classes + 1) + predicted_index, minlength=n_classes * (n_classes + 1))
    return cells.reshape(n_classes, n_classes + 1)


def per_class_counts(truth_rows: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class tp, fp, fn, tn (for single-label sets "no class" counts as a miss, not a positive)."""
    return {
        "tp": (truth_rows & predicted).sum(axis=0),
        "fp": (~truth_rows & predicted).sum(axis=0),
        "fn": (truth_rows & ~predicted).sum(axis=0),
        "tn": (~truth_rows & ~predicted).sum(axis=0),
    }


def per_class_table(classes, counts: dict[str, np.ndarray]) -> dict[str, dict]:
    """``{class: {precision, recall, f1, support}}`` in percent, zero where undefined."""
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    precision = 100.0 * _safe_divide(tp, tp + fp)
    recall = 100.0 * _safe_divide(tp, tp + fn)
    f1 = 100.0 * _safe_divide(2 * tp, 2 * tp + fp + fn)
    return {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(tp[i] + fn[i])}
        for i, name in enumerate(classes)
    }
