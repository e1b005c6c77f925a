"""``isekai-gen``: the command-line face of the isekai_gen library.

A thin click layer: every command lives in its own module under ``isekai_gen/commands/`` (it
exposes ``command``) and only turns options into calls of library functions. This module
assembles them, gives every command ``-v/--verbose`` and ``-q/--quiet`` (accepted before or after
the command name, as pip and huggingface-cli users type them), and turns ``UserError`` (and
file-system refusals, ``OSError``) into one line on stderr.

Exit status, as pip and huggingface-cli have it: 0 success, 1 a failure at run time (bad input
file, refused operation, file system), 2 a usage error (unknown option, bad option value: click),
130 interrupted.
"""

from __future__ import annotations

import errno
import importlib
import pkgutil
import sys

import click

import isekai_gen.commands
from isekai_gen import __version__
from isekai_gen.commands._options import ARGV_KEY, reset_verbosity, verbosity, verbosity_options
from isekai_gen.errors import UserError

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


def _disk_full_line(exc: OSError) -> str:
    """``No space left on device`` with the file (or the build folder being written) and its free space."""
    from isekai_gen.fileio import free_space, human_size
    from isekai_gen.lock import locked_folders

    if exc.filename is not None:
        where, probe = f"{exc.filename}: ", exc.filename
    else:  # a write to an open file names none: the folder this run wrote last is the best lead
        folders = locked_folders()[:1]
        where = f"writing into {folders[0]}: " if folders else ""
        probe = folders[0] if folders else "."
    free = free_space(probe)
    return (f"{where}{exc.strerror} ({'unknown' if free is None else human_size(free)} free on its file system); "
            "free some space and rerun the same command")


class IsekaiGroup(click.Group):
    def parse_args(self, ctx, args):
        ctx.meta[ARGV_KEY] = list(args)  # the whole command line, for the writer lock's record
        reset_verbosity()
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILURE)
        except OSError as exc:
            # The file system refused (no permission, disk full, a folder where a file should be):
            # a problem of the user's machine, said in one line; --verbose keeps the traceback.
            if verbosity() > 0 or exc.strerror is None:
                raise
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                click.echo(f"error: {_disk_full_line(exc)}", err=True)
            else:
                where = f"{exc.filename}: " if exc.filename is not None else ""
                click.echo(f"error: {where}{exc.strerror}", err=True)
            sys.exit(EXIT_FAILURE)
        except KeyboardInterrupt:
            click.echo("interrupted; rerun the same command to resume", err=True)
            sys.exit(EXIT_INTERRUPTED)


@click.group(cls=IsekaiGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, "--version", prog_name="isekai-gen")
def main() -> None:
    """Build evaluation data for multimodal in-context learning.

    \b
    build     generate ISEKAI concept images, filter, cut episodes, export
    splits    many-shot demo/test splits for the ten ManyICL benchmarks
    score     score model prediction files against splits and episodes

    Exit status: 0 done, 1 failed at run time (one `error:` line), 2 usage error, 130 interrupted.
    """


def _add_verbosity_options(command: click.Command) -> None:
    taken = {name for param in command.params for name in getattr(param, "opts", [])}
    command.params.extend(option for option in verbosity_options() if not taken & set(option.opts))
    for sub in getattr(command, "commands", {}).values():
        _add_verbosity_options(sub)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(isekai_gen.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"isekai_gen.commands.{info.name}")
        main.add_command(module.command)
    _add_verbosity_options(main)


_register_commands()

if __name__ == "__main__":
    main()
