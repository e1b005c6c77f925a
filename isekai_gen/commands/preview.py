"""``isekai-gen preview``: contact sheets for human review; record manual rejects."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("preview")
@click.argument("build_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--reject-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Job ids to reject by hand, one per line (# comments allowed); merged into "
                   "BUILD_DIR/manual_rejects.txt and honoured by the next build.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def command(build_dir: Path, reject_file: Path | None, progress: bool) -> None:
    """Draw one contact sheet per concept (BUILD_DIR/preview/<concept>.png) and an index.html."""
    from isekai_gen.preview import write_preview

    index = write_preview(build_dir, reject_file=reject_file, progress=progress)
    if reject_file is not None:
        click.echo(f"manual rejects merged into {build_dir / 'manual_rejects.txt'}; rerun build to replace them")
    click.echo(f"preview: {index}")
