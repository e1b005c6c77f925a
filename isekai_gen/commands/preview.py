"""``isekai-gen preview``: contact sheets for human review; record manual rejects."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import BUILD_FOLDER, build_folder, progress_option, shown, wait_option


@click.command("preview")
@click.argument("build_dir", type=BUILD_FOLDER)
@click.option("--reject-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Job ids to reject by hand, one per line (# comments allowed); merged into "
                   "BUILD_DIR/manual_rejects.txt and honoured by the next build (the sheets wait for it).")
@progress_option
@wait_option
def command(build_dir: Path | str, reject_file: Path | None, progress: bool, wait: bool) -> None:
    """Write a shareable BUILD_DIR/preview/: index.html and JPEG contact sheets (<concept>-NN.jpg).

    For interactive review in the browser, see `isekai-gen review`.
    """
    from isekai_gen.preview import merge_reject_file, write_preview
    from isekai_gen.curation.pending import apply_command, pending_decisions

    with build_folder(build_dir, wait) as work_dir:  # it writes BUILD_DIR/preview/ and manual_rejects.txt
        if reject_file is not None:
            merge_reject_file(work_dir, reject_file)
            waiting = pending_decisions(work_dir)
            count = len(waiting["reject"]) + len(waiting["restore"])
            if count:  # the sheets would show a kept set the reviewer has changed: they wait for the build
                click.echo(f"manual rejects merged into {shown(build_dir, work_dir, work_dir / 'manual_rejects.txt')}; "
                           f"{count} decision{'s' * (count != 1)} pending: apply them with `{apply_command(build_dir)}`, "
                           "then run preview again")
                return
        index = write_preview(work_dir, progress=progress)
    click.echo(f"preview: {shown(build_dir, work_dir, index)}")
