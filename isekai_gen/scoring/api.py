"""``score()``: truth + prediction files -> the report dict (see ``schemas/score_report.schema.json``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import UserError
from .bootstrap import bootstrap_summary
from .curves import batch_size_table, shot_curves
from .metrics import (ACCURACY, MACRO_F1, confusion_matrix, counted_prediction, item_stats, metric_from_sums,
                      per_class_counts, per_class_table)
from .outcomes import OK, STATUSES, Outcome, check_options, judge, judge_rows
from .predictions import PredictionRun, RunInfo, read_predictions
from .truth import Truth, load_truth

log = logging.getLogger(__name__)
NO_CLASS_COLUMN = "(no class)"


def _metric(truth: Truth, lcl_compat: bool) -> str:
    return MACRO_F1 if truth.multilabel and not lcl_compat else ACCURACY


def _counted(truth: Truth, outcome: Outcome) -> np.ndarray:
    """Predicted label sets of all items, failures counted wrong (used only where they are scored)."""
    return counted_prediction(truth.targets, outcome.predicted, outcome.status != OK, truth.multilabel)


def _item_stats(truth: Truth, outcome: Outcome, metric: str, mask: np.ndarray) -> np.ndarray:
    """Per-item metric vectors of the items selected by ``mask``."""
    if outcome.correct is not None:
        return outcome.correct[mask, None].astype(np.int64)
    return item_stats(metric, truth.targets[mask], _counted(truth, outcome)[mask])


def _lcl_class_table(truth: Truth, correct: np.ndarray) -> dict:
    """LCL's metric reads no label from the reply: only per-true-label accuracy is defined."""
    table = {}
    for i, name in enumerate(truth.classes):
        members = truth.target_index == i
        if members.any():
            table[name] = {"support": int(members.sum()), "accuracy": float(100.0 * correct[members].mean())}
    return table


def _class_tables(truth: Truth, outcome: Outcome) -> tuple[dict, dict | None]:
    """``(per_class, confusion)`` of the scored items."""
    if outcome.correct is not None:
        return _lcl_class_table(truth, outcome.correct), None
    truth_rows, predicted = truth.targets[outcome.scored], _counted(truth, outcome)[outcome.scored]
    counts = per_class_counts(truth_rows, predicted)
    table = per_class_table(truth.classes, counts)
    if truth.multilabel:
        confusion = {name: {key: int(counts[key][i]) for key in ("tp", "fp", "fn", "tn")}
                     for i, name in enumerate(truth.classes)}
        return table, {"labels": list(truth.classes), "per_class": confusion}
    matrix = confusion_matrix(truth_rows, predicted)
    return table, {"labels": list(truth.classes), "columns": [*truth.classes, NO_CLASS_COLUMN],
                   "matrix": matrix.tolist()}


def score_run(truth: Truth, run: PredictionRun, *, parse_failures: str = "wrong", bootstrap: int = 1000,
              seed: int = 0, strict: bool = False, lcl_compat: bool = False,
              ignore_unknown_ids: bool = False) -> tuple[dict, Outcome]:
    """Result dict of one in-memory run and its per-item outcome."""
    outcome = judge(truth, run, parse_failures, strict=strict, lcl_compat=lcl_compat,
                    ignore_unknown=ignore_unknown_ids)
    return run_result(truth, run, outcome, parse_failures=parse_failures, bootstrap=bootstrap, seed=seed,
                      lcl_compat=lcl_compat), outcome


def judge_file(truth: Truth, path, fmt: str, *, parse_failures: str, strict: bool, lcl_compat: bool,
               ignore_unknown_ids: bool) -> list[tuple[RunInfo, Outcome]]:
    """Every run of one prediction file, streamed, with its outcome."""
    fmt, rows = read_predictions(path, truth, fmt)
    judged = judge_rows(truth, str(path), rows, parse_failures, strict=strict, lcl_compat=lcl_compat,
                        ignore_unknown=ignore_unknown_ids)
    if not judged:
        raise UserError(f"{path}: no predictions in the file")
    return [(RunInfo(str(path), fmt, *key), outcome) for key, outcome in judged]


def run_result(truth: Truth, run: RunInfo, outcome: Outcome, *, parse_failures: str, bootstrap: int, seed: int,
               lcl_compat: bool) -> dict:
    """Result dict of one judged run."""
    metric = _metric(truth, lcl_compat)
    summary = bootstrap_summary(_item_stats(truth, outcome, metric, outcome.scored),
                                lambda sums, n: metric_from_sums(metric, sums, n), bootstrap, seed)
    per_class, confusion = _class_tables(truth, outcome)
    failures = {name: outcome.count(code) for code, name in enumerate(STATUSES) if code != OK}
    result = {
        "source": run.source, "format": run.fmt, "model": run.model, "shots": run.shots,
        "batch_size": run.batch_size, "metric": metric, **summary,
        "n_total": len(truth.ids), "n_scored": int(outcome.scored.sum()),
        "n_unparsed": failures["no_label"] + failures["several_labels"] + failures["no_answer"],
        "failures": failures, "n_unknown_ids": outcome.n_unknown_ids,
        "per_class": per_class, "confusion": confusion,
    }
    log.info("%s (model %s, shots %s, batch size %s): %s %s on %d of %d items", run.source, run.model, run.shots,
             run.batch_size, metric, summary["value"], result["n_scored"], result["n_total"])
    return result


def compare_runs(truth: Truth, outcome_a: Outcome, outcome_b: Outcome, metric: str, *, bootstrap: int,
                 seed: int) -> dict:
    """Paired bootstrap of metric(A) - metric(B) over the items both runs score."""
    common = outcome_a.scored & outcome_b.scored
    stats_a = _item_stats(truth, outcome_a, metric, common)
    stats_b = _item_stats(truth, outcome_b, metric, common)
    width = stats_a.shape[1]

    def difference(sums, n):
        return metric_from_sums(metric, sums[:, :width], n) - metric_from_sums(metric, sums[:, width:], n)

    def value(stats):
        return bootstrap_summary(stats, lambda sums, n: metric_from_sums(metric, sums, n), 0, seed)["value"]

    summary = bootstrap_summary(np.concatenate([stats_a, stats_b], axis=1), difference, bootstrap, seed)
    return {"n_items": int(common.sum()), "value_a": value(stats_a), "value_b": value(stats_b),
            "difference": summary["value"], "std": summary["std"], "ci95": summary["ci95"]}


def _as_paths(prediction_paths) -> list:
    paths = [prediction_paths] if isinstance(prediction_paths, (str, Path)) else list(prediction_paths)
    if not paths:
        raise UserError("no prediction files given")
    return paths


TOP_LEVEL_FROM_RUN = ("metric", "value", "std", "ci95", "n_total", "n_scored", "n_unparsed", "failures",
                      "n_unknown_ids", "per_class", "confusion", "source", "model", "shots", "batch_size")


def score(truth_path, prediction_paths, *, fmt: str = "auto", parse_failures: str = "wrong",
          bootstrap: int = 1000, seed: int = 0, compare=None, strict: bool = False,
          lcl_compat: bool = False, ignore_unknown_ids: bool = False) -> dict:
    """Score prediction files against a truth file; the report's top-level metrics are the first run's.

    A run is one (model, shots, batch_size) of one prediction file; several runs give ``runs``,
    a ``curve`` with ``data_efficiency`` (when shot counts differ) and ``by_batch_size``.
    ``compare`` (a prediction file holding one run) adds a paired bootstrap against the first run.
    Prediction ids the truth does not know are an error (see ``alignment``) unless
    ``ignore_unknown_ids``; a file with no id in common, or ids shifted by one, always is.
    """
    if bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0, got {bootstrap}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    truth = load_truth(truth_path)
    check_options(truth, parse_failures, lcl_compat)
    judging = dict(parse_failures=parse_failures, strict=strict, lcl_compat=lcl_compat,
                   ignore_unknown_ids=ignore_unknown_ids)
    results, first_outcome = [], None
    for path in _as_paths(prediction_paths):   # one file at a time: only its runs' arrays in memory
        for run, outcome in judge_file(truth, path, fmt, **judging):
            results.append(run_result(truth, run, outcome, parse_failures=parse_failures, bootstrap=bootstrap,
                                      seed=seed, lcl_compat=lcl_compat))
            first_outcome = outcome if first_outcome is None else first_outcome
    first = results[0]
    report = {
        "truth": {"source": truth.source, "kind": truth.kind, "n_items": len(truth.ids),
                  "classes": list(truth.classes), "multilabel": truth.multilabel},
        "settings": {"parse_failures": parse_failures, "bootstrap": bootstrap, "seed": seed,
                     "strict": strict, "lcl_compat": lcl_compat, "ignore_unknown_ids": ignore_unknown_ids,
                     "unit": "percent"},
        **{key: first[key] for key in TOP_LEVEL_FROM_RUN},
        "runs": [{k: v for k, v in result.items() if k not in ("per_class", "confusion")} for result in results],
    }
    curve, efficiency = shot_curves(results)
    if curve is not None:
        report["curve"], report["data_efficiency"] = curve, efficiency
    by_batch = batch_size_table(results)
    if by_batch is not None:
        report["by_batch_size"] = by_batch
    if compare is not None:
        other = judge_file(truth, compare, fmt, **judging)
        if len(other) != 1:
            raise UserError(f"{compare}: holds {len(other)} runs (model/shots/batch_size); --compare needs exactly one")
        # Only the per-item outcome is compared: no bootstrap or class tables for the other run.
        (other_run, other_outcome), = other
        report["compare"] = {"a": first["source"], "b": other_run.source, "metric": first["metric"],
                             **compare_runs(truth, first_outcome, other_outcome, first["metric"],
                                            bootstrap=bootstrap, seed=seed)}
    return report
