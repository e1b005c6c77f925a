"""``isekai-gen review``: browse a build in the browser and reject images by hand."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("review")
@click.argument("build_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1",
              help="Address to bind. Anything but loopback prints a URL with a one-time random access token.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, help="Port to listen on.")
def command(build_dir: Path, host: str, port: int) -> None:
    """Serve a review page over BUILD_DIR: thumbnails per concept beside its partner, sorted by score.

    Decisions (x reject, 1-4 reject for a reason, r restore, k mark reviewed, u undo; shift-click
    and the bulk buttons for many at once; ? for every key) are written at once to
    BUILD_DIR/manual_rejects.txt; the next `isekai-gen build` replaces the rejected images, and
    until then episodes, export, preview and publish refuse. Needs the `review` extra
    (pip install 'isekai-gen[review]').
    """
    from isekai_gen.errors import UserError

    try:
        from isekai_gen.review.app import serve
    except ModuleNotFoundError as exc:
        raise UserError(f"review: {exc.name} is not installed; pip install 'isekai-gen[review]'") from None
    serve(build_dir, host=host, port=port, echo=click.echo)
