"""``isekai-gen preview``: contact sheets for human review; record manual rejects."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import progress_option, wait_option, writer_lock


@click.command("preview")
@click.argument("build_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--reject-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Job ids to reject by hand, one per line (# comments allowed); merged into "
                   "BUILD_DIR/manual_rejects.txt and honoured by the next build.")
@progress_option
@wait_option
def command(build_dir: Path, reject_file: Path | None, progress: bool, wait: bool) -> None:
    """Write a shareable BUILD_DIR/preview/: index.html and JPEG contact sheets (<concept>-NN.jpg).

    For interactive review in the browser, see `isekai-gen review`.
    """
    from isekai_gen.preview import write_preview

    with writer_lock(build_dir, wait):  # it writes BUILD_DIR/preview/ and manual_rejects.txt
        index = write_preview(build_dir, reject_file=reject_file, progress=progress)
    if reject_file is not None:
        click.echo(f"manual rejects merged into {build_dir / 'manual_rejects.txt'}; rerun build to replace them")
    click.echo(f"preview: {index}")
