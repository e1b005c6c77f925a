"""``isekai-gen build``: the whole pipeline, resumable."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import (BUILD_FOLDER, build_folder, config_options, engine_options, generation_options,
                       load_command_config, progress_option, shown, wait_option)


@click.command("build")
@click.option("--out", "out_dir", type=BUILD_FOLDER, default=Path("out/isekai"),
              help="Build folder, or a bucket URL (s3://bucket/prefix, any fsspec URL); rerunning into it resumes "
                   "and recomputes nothing already done.")
@config_options
@click.option("--catalog", "catalog", default=None, metavar="FILE|NAME",
              callback=lambda ctx, param, value: value if value is None or "/" not in value and
              not value.endswith((".yaml", ".yml")) else str(Path(value).resolve()),
              help="Concept catalog to build (config: catalog): a shipped name or a YAML file, e.g. one written by "
                   "`isekai-gen catalog invent`.")
@generation_options
@engine_options
@progress_option
@wait_option
def command(out_dir, preset, config_file, overrides, progress, wait, **fields):
    """Generate, filter, cut episodes and export an ISEKAI dataset into OUT.

    \b
    Offline smoke test (random weights, no download):  isekai-gen build --preset tiny
    Real build on a GPU (downloads SDXL-Turbo):        isekai-gen build --preset default
    """
    from ..build import run_build

    with build_folder(out_dir, wait) as work_dir:
        config = load_command_config(preset, config_file, overrides, None, **fields)
        summary = run_build(config, work_dir, progress=progress)
    kept = summary.kept_per_concept
    click.echo(f"built {summary.images} images ({summary.topup_rounds} top-up rounds); kept per concept "
               f"min {min(kept.values())} / max {max(kept.values())}")
    if config.smoke_test:
        click.echo("note: smoke-test build (random weights): the images are noise")
    click.echo(f"results: {out_dir.resolve() if isinstance(out_dir, Path) else out_dir}")
    for name in ("manifest.jsonl", "episodes/episodes.jsonl", "export/lcl", "export/webdataset", "export/hf"):
        click.echo(f"  {shown(out_dir, work_dir, work_dir / name)}")
