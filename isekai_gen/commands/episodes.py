"""``isekai-gen episodes``: cut link-context episodes from a build (the LCL files are `isekai-gen export`'s)."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import BUILD_FOLDER, build_folder, config_options, load_command_config, progress_option, shown, wait_option


@click.command("episodes")
@click.option("--out", "out_dir", required=True, type=BUILD_FOLDER,
              help="Build folder (or its bucket URL) holding manifest.jsonl and filter/embeddings.npz (a filtered build).")
@config_options
@progress_option
@wait_option
def command(out_dir: Path | str, preset: str | None, config_file: Path | None, overrides: tuple[str, ...],
            progress: bool, wait: bool) -> None:
    """Cut ISEKAI-10 and ISEKAI-pair episodes from the kept images of OUT.

    Without --preset or --config the config recorded in OUT/run.json is used (--set still applies).
    Writes OUT/episodes/episodes.jsonl; `isekai-gen export --out OUT --format lcl` writes the LCL
    files (OUT/export/lcl/) from it.
    """
    from ..catalog import build_catalog
    from ..episodes import run_episodes

    with build_folder(out_dir, wait) as work_dir:
        config = load_command_config(preset, config_file, overrides, work_dir, require_run=True)
        catalog, _ = build_catalog(config)
        episodes = run_episodes(config, work_dir, catalog, progress=progress)
    sets = ", ".join(f"{name} {count}" for name, count in episodes["sets"].items())
    click.echo(f"episodes: {sets} lines -> {shown(out_dir, work_dir, episodes['path'])}")
