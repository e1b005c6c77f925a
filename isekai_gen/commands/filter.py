"""``isekai-gen filter``: run the CLIP filter stage alone on a generation folder."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import (BUILD_FOLDER, build_folder, config_options, engine_options, load_command_config,
                       progress_option, shown, wait_option)


def _print_calibration(result: dict) -> None:
    model = result["model"]
    click.echo(f"model {model['model']} ({model['pretrained']}); quantiles {result['quantiles']}")
    for concept_id, stats in result["concepts"].items():
        click.echo(f"{concept_id} ({stats['images']} images)")
        for metric in ("alignment", "margin", "zeroshot_prob"):
            values = stats[metric]
            click.echo(f"  {metric:<14}" + ("  -" if values is None else " ".join(f"{v:8.4f}" for v in values)))


@click.command("filter")
@click.option("--out", "out_dir", required=True, type=BUILD_FOLDER,
              help="Generation folder holding manifest.jsonl and images/ (a build's OUT, or its bucket URL).")
@config_options
@click.option("--calibrate", is_flag=True,
              help="Print per-concept score quantiles to choose thresholds; the manifest is not changed.")
@engine_options
@progress_option
@wait_option
def command(out_dir: Path | str, preset: str | None, config_file: Path | None, overrides: tuple[str, ...],
            calibrate: bool, progress: bool, wait: bool, **engine) -> None:
    """Score generated images with CLIP, reject weak ones and near-duplicates, rewrite the manifest.

    Without --preset or --config the config recorded in OUT/run.json is used (--set still applies),
    e.g. `isekai-gen filter --out OUT --set filter.min_alignment=0.25`. Embeddings are cached in
    OUT/cache/embeddings, so re-filtering with other thresholds needs no model time.
    """
    from ..catalog import build_catalog
    from ..filtering import calibrate as calibrate_scores
    from ..filtering import run_filter

    # --calibrate too: it fills OUT/cache/embeddings.
    with build_folder(out_dir, wait) as work_dir:
        config = load_command_config(preset, config_file, overrides, work_dir, require_run=True, **engine)
        catalog, _ = build_catalog(config)
        if calibrate:
            _print_calibration(calibrate_scores(config, work_dir, catalog, progress=progress))
            return
        result = run_filter(config, work_dir, catalog, progress=progress)
    reasons = ", ".join(f"{name} {count}" for name, count in result.reasons.items() if count) or "none"
    click.echo(f"kept {result.kept} of {result.rows} images; rejected: {reasons}")
    click.echo(f"report: {shown(out_dir, work_dir, work_dir / 'filter' / 'report.md')}")
    if result.starved:
        starved = ", ".join(f"{cid} ({n})" for cid, n in sorted(result.starved.items()))
        click.echo(f"starved (below filter.min_per_concept={config.filter.min_per_concept}): {starved}")
