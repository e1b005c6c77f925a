"""``isekai-gen preview``: contact sheets for human review; record manual rejects."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import BUILD_FOLDER, build_folder, progress_option, shown, wait_option


@click.command("preview")
@click.argument("build_dir", type=BUILD_FOLDER)
@click.option("--reject-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Job ids to reject by hand, one per line (# comments allowed); merged into "
                   "BUILD_DIR/manual_rejects.txt and honoured by the next build.")
@progress_option
@wait_option
def command(build_dir: Path | str, reject_file: Path | None, progress: bool, wait: bool) -> None:
    """Write a shareable BUILD_DIR/preview/: index.html and JPEG contact sheets (<concept>-NN.jpg).

    For interactive review in the browser, see `isekai-gen review`.
    """
    from isekai_gen.preview import write_preview

    with build_folder(build_dir, wait) as work_dir:  # it writes BUILD_DIR/preview/ and manual_rejects.txt
        index = write_preview(work_dir, reject_file=reject_file, progress=progress)
    if reject_file is not None:
        click.echo(f"manual rejects merged into {shown(build_dir, work_dir, work_dir / 'manual_rejects.txt')}; "
                   "rerun build to replace them")
    click.echo(f"preview: {shown(build_dir, work_dir, index)}")
