"""``isekai-gen``: the command-line face of the isekai_gen library.

A thin click layer: every command lives in its own module under ``isekai_gen/commands/`` (it
exposes ``command``) and only turns options into calls of library functions. This module
assembles them, sets up logging and turns ``UserError`` (and file-system refusals, ``OSError``)
into one line on stderr.

Exit status, as pip and huggingface-cli have it: 0 success, 1 a failure at run time (bad input
file, refused operation, file system), 2 a usage error (unknown option, bad option value: click),
130 interrupted.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys
import warnings

import click

import isekai_gen.commands
from isekai_gen import __version__
from isekai_gen.errors import UserError


EXIT_FAILURE = 1


class IsekaiGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILURE)
        except OSError as exc:
            # The file system refused (no permission, disk full, a folder where a file should be):
            # a problem of the user's machine, said in one line; --verbose keeps the traceback.
            if ctx.params.get("verbose") or exc.strerror is None:
                raise
            where = f"{exc.filename}: " if exc.filename is not None else ""
            click.echo(f"error: {where}{exc.strerror}", err=True)
            sys.exit(EXIT_FAILURE)
        except KeyboardInterrupt:
            click.echo("interrupted; rerun the same command to resume", err=True)
            sys.exit(130)


@click.group(cls=IsekaiGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, "--version", prog_name="isekai-gen")
@click.option("-v", "--verbose", is_flag=True, help="Log each step in detail.")
def main(verbose: bool) -> None:
    """Build evaluation data for multimodal in-context learning.

    \b
    build     generate ISEKAI concept images, filter, cut episodes, export
    splits    many-shot demo/test splits for the ten ManyICL benchmarks
    score     score model prediction files against splits and episodes
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not verbose:
        # Third-party libraries are chatty about things users cannot act on (retries, deprecations,
        # config defaults). They read these variables when first imported, which happens later.
        for variable in ("HF_HUB_VERBOSITY", "TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
            os.environ.setdefault(variable, "error")
        logging.getLogger("open_clip").setLevel(logging.ERROR)
        for category in (UserWarning, FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(isekai_gen.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"isekai_gen.commands.{info.name}")
        main.add_command(module.command)


_register_commands()

if __name__ == "__main__":
    main()
