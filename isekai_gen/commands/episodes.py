"""``isekai-gen episodes``: cut link-context episodes from a build and export the LCL files."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import config_options, load_command_config, progress_option, wait_option, writer_lock


@click.command("episodes")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Build folder holding manifest.jsonl and filter/embeddings.npz (a filtered build).")
@config_options
@progress_option
@wait_option
def command(out_dir: Path, preset: str | None, config_file: Path | None, overrides: tuple[str, ...],
            progress: bool, wait: bool) -> None:
    """Cut ISEKAI-10 and ISEKAI-pair episodes from the kept images of OUT and write the LCL files.

    Without --preset or --config the config recorded in OUT/run.json is used (--set still applies).
    Writes OUT/episodes/episodes.jsonl and OUT/export/lcl/{ISEKAI-10.json, ISEKAI-pair.json, images/}.
    """
    from ..build import build_catalog
    from ..episodes import run_episodes
    from ..export.lcl import export_lcl

    with writer_lock(out_dir, wait):
        config = load_command_config(preset, config_file, overrides, out_dir, require_run=True)
        catalog, _ = build_catalog(config)
        episodes = run_episodes(config, out_dir, catalog, progress=progress)
        lcl = export_lcl(config, out_dir, catalog, progress=progress)
    sets = ", ".join(f"{name} {count}" for name, count in episodes["sets"].items())
    click.echo(f"episodes: {sets} lines -> {episodes['path']}")
    click.echo(f"lcl: {lcl['images']} images ({lcl['linked']} linked, {lcl['copied']} copied) -> {lcl['path']}")
