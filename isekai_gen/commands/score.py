"""``isekai-gen score``: score model prediction files against a truth file."""

from __future__ import annotations

from pathlib import Path

import click

from isekai_gen.scoring.choices import FORMATS, POLICIES


@click.command("score")
@click.option("--truth", "truth_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="ManyICL test.csv, our split.jsonl (side 'test' rows), LCL ISEKAI-10.json / ISEKAI-pair.json, "
                   "or episodes.jsonl.")
@click.option("--predictions", "predictions", required=True, multiple=True,
              type=click.Path(dir_okay=False, path_type=Path), metavar="PRED [PRED ...]",
              help="Prediction files (several give a shot curve): JSON Lines {id, prediction[, shots, batch_size, "
                   "model, confidence]}, CSV id,prediction, a ManyICL raw-response .pkl, or LCL prediction lines.")
@click.argument("more_predictions", nargs=-1, type=click.Path(dir_okay=False, path_type=Path), metavar="[PRED]...")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto",
              help="Format of the prediction files; auto decides by extension and first line.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write report.json, report.md and plots (curve.png, batch_size.png) into this folder.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000,
              help="Bootstrap resamples of the test items for the std (the paper's error bar) and 95% interval; "
                   "0 skips them.")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="Seed of the bootstrap.")
@click.option("--parse-failures", "parse_failures", type=click.Choice(POLICIES), default="wrong",
              help="Replies naming no label or several labels, and missing answers: drop them from the "
                   "denominator, count them wrong (the paper's rule), or do exactly what ManyICL's released "
                   "eval.py does (substring match; no label = wrong; several labels or no answer = dropped).")
@click.option("--compare", "compare", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A second prediction file (one run): paired bootstrap of the metric difference on shared items.")
@click.option("--strict", is_flag=True,
              help="Also make truth ids without a prediction fatal (and unknown ids, even with --ignore-unknown-ids).")
@click.option("--ignore-unknown-ids", "ignore_unknown_ids", is_flag=True,
              help="Skip prediction ids the truth does not know instead of refusing the file (ids shifted by one, or "
                   "no id in common with the truth, are refused anyway).")
@click.option("--lcl-compat", "lcl_compat", is_flag=True,
              help="ISEKAI truth only: score with the original LCL ISEKAIMetrics rule (raw, case-sensitive text; "
                   "target-deletion rule; accuracy over all lines) so numbers match the published table.")
def command(truth_path, predictions, more_predictions, fmt, out_dir, bootstrap, seed, parse_failures, compare,
            strict, ignore_unknown_ids, lcl_compat) -> None:
    """Score prediction files: accuracy (macro-F1 for multi-label sets) with bootstrap error bars,
    per-class precision/recall/F1, confusion matrix, shot curve with ICL data efficiency.

    \b
    isekai-gen score --truth OUT/benchmarks/UCMerced/test.csv \\
        --predictions UCMerced_0shot_GPT4o_1.pkl UCMerced_210shot_GPT4o_1.pkl --out score/
    """
    from isekai_gen.scoring import format_summary, score, write_report

    report = score(truth_path, [*predictions, *more_predictions], fmt=fmt, parse_failures=parse_failures,
                   bootstrap=bootstrap, seed=seed, compare=compare, strict=strict, lcl_compat=lcl_compat,
                   ignore_unknown_ids=ignore_unknown_ids)
    click.echo(format_summary(report))
    if out_dir is not None:
        for path in write_report(report, out_dir):
            click.echo(f"wrote {path}")
