"""Options shared by the commands: verbosity, progress bars, the writer lock, the build configuration.

Every command takes ``-v/--verbose`` and ``-q/--quiet`` (before or after its name: ``cli.py``
adds them to each command) and, where it has progress bars, the same ``--progress/--no-progress``
with one default: on only when stderr is a terminal, off under ``-q`` or ``TQDM_DISABLE=1``
(as tqdm itself reads that variable). Every command that writes into a build folder takes
``--wait`` and runs inside ``writer_lock``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import click

if TYPE_CHECKING:
    from ..config import BuildConfig

from ..engine import ENGINES
from ..resources import preset_names

ARGV_KEY = "isekai_gen.argv"
LIBRARY_VARIABLES = ("HF_HUB_VERBOSITY", "TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY")
# Verbosity of this run: -1 quiet, 0 default, 1 verbose (pip's rule: -v and -q cancel out).
_verbosity = {"verbose": False, "quiet": False}
_handler: list[logging.Handler] = []  # the stderr handler this module installed, if it did


def verbosity() -> int:
    return int(_verbosity["verbose"]) - int(_verbosity["quiet"])


def reset_verbosity() -> None:
    """Start of a command line: the defaults, until its -v/-q are parsed."""
    _verbosity.update(verbose=False, quiet=False)
    configure_output()


def configure_output() -> None:
    """Logging level, third-party chatter and warnings for the current verbosity."""
    level = verbosity()
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        _handler[:] = root.handlers[:1]
    if _handler and _handler[0] in root.handlers:  # an embedding program's (or pytest's) logging is its own
        root.setLevel({-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}[level])
    # Third-party libraries are chatty about things users cannot act on (retries, deprecations,
    # config defaults). They read these variables when first imported, which happens later.
    for variable in LIBRARY_VARIABLES:
        if level < 1:
            os.environ.setdefault(variable, "error")
        elif os.environ.get(variable) == "error":
            del os.environ[variable]
    logging.getLogger("open_clip").setLevel(logging.ERROR if level < 1 else logging.NOTSET)
    for category in (UserWarning, FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore" if level < 1 else "default", category=category)


def _set_verbosity(ctx, param, value) -> None:
    if value:
        _verbosity[param.name] = True
        configure_output()


def verbosity_options() -> list[click.Option]:
    """Fresh ``-v/--verbose`` and ``-q/--quiet`` options (one pair per command)."""
    return [
        click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, is_eager=True, callback=_set_verbosity,
                     help="Log each step in detail (and keep tracebacks of file-system errors)."),
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, is_eager=True, callback=_set_verbosity,
                     help="Only errors on stderr: no warnings, no progress bars unless --progress."),
    ]


def show_progress(requested: bool | None) -> bool:
    """The one progress-bar default: an explicit flag wins, else off when quiet or TQDM_DISABLE is
    set (tqdm's own variable), else on exactly when stderr is a terminal."""
    if requested is not None:
        return requested
    if verbosity() < 0 or os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    return sys.stderr.isatty()


def progress_option(func):
    """``--progress/--no-progress``, passed to the command as the resolved bool ``progress``."""
    return click.option("--progress/--no-progress", default=None, show_default=False,
                        callback=lambda ctx, param, value: show_progress(value),
                        help="Show progress bars on stderr [default: when stderr is a terminal, unless -q "
                             "or TQDM_DISABLE=1].")(func)


def wait_option(func):
    return click.option("--wait", is_flag=True,
                        help="If another isekai-gen is writing this build folder, wait for it to finish "
                             "instead of failing.")(func)


def command_line() -> str:
    """The command line of this run (for the lock record), as the user typed it after the program name."""
    ctx = click.get_current_context(silent=True)
    argv = ctx.meta.get(ARGV_KEY) if ctx is not None else None
    return shlex.join(["isekai-gen", *(sys.argv[1:] if argv is None else argv)])


def writer_lock(out_dir: Path, wait: bool, shard=None):
    """The build folder's writer lock for this command (``lock.build_lock``).

    Taken here, in the command layer, and around reading the config rather than in the stage
    functions: the record names the command line and ``--wait`` is a command-line choice; OUT's
    run.json must be read under the lock (a writer extending the build rewrites it); and one place
    covers every stage a command runs. Library callers hold ``build_lock`` themselves.
    """
    from ..lock import build_lock

    return build_lock(out_dir, command_line(), wait=wait,
                      shard=None if shard is None else (shard.index, shard.count))


class BuildFolder(click.ParamType):
    """OUT: a local folder (``Path``), or an fsspec URL such as ``s3://bucket/prefix`` (``str``)."""

    name = "DIR|URL"

    def convert(self, value, param, ctx):
        from ..storage import is_url, local_path

        if isinstance(value, (Path, str)) and is_url(value):
            if not str(value).partition("://")[2].strip("/"):
                self.fail(f"{value}: names no bucket, e.g. s3://bucket/isekai", param, ctx)
            return str(value).rstrip("/")
        path = local_path(value)
        if path.exists() and not path.is_dir():
            self.fail(f"{path}: is a file, not a folder", param, ctx)
        return path


BUILD_FOLDER = BuildFolder()


@contextlib.contextmanager
def build_folder(out: Path | str, wait: bool, shard=None) -> Iterator[Path]:
    """The local folder a writing command works in, under its writer lock: OUT itself, or for a
    remote OUT (``s3://...``) its mirror, brought up to date first and uploaded after success
    (``storage.remote``)."""
    if isinstance(out, Path):
        with writer_lock(out, wait, shard):
            yield out
        return
    from ..storage import mirror_path, opened

    sharded = shard is not None and shard.count > 1
    with writer_lock(mirror_path(out), wait, shard), opened(out, command=command_line(), wait=wait,
                                                          shared=sharded) as session:
        yield session.mirror


def shown(out: Path | str, work_dir: Path, path: Path | str) -> str:
    """``path`` (inside the command's working folder) as the user knows it: under OUT's URL for a
    remote build, else as it is."""
    if isinstance(out, Path):
        return str(path)
    return f"{out}/{Path(path).relative_to(work_dir).as_posix()}" if Path(path).is_absolute() else f"{out}/{path}"


def config_options(func):
    """--preset / --config / --set, passed to the command as ``preset``, ``config_file``, ``overrides``."""
    func = click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                        help="Override one config field, e.g. --set generation.steps=2 (repeatable; value parsed as YAML).")(func)
    func = click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Your YAML build configuration (schemas/build_config.schema.json); layered over the preset.")(func)
    return click.option("--preset", type=click.Choice(preset_names()), default=None,
                        help="A shipped configuration from configs/ (default: `default`, unless --config is given).")(func)


def load_command_config(preset, config_file, overrides, out_dir: Path | None = None, *, require_run: bool = False,
                        **fields) -> BuildConfig:
    """Effective config from the shared options plus per-command field options (``None`` = unset).

    With neither --preset nor --config, a stage command on an existing build folder uses the
    config recorded in its run.json; with ``require_run`` (stages that read an earlier stage's
    output) a missing run.json is an error rather than a silent fall-back to the default preset.
    """
    from ..config import load_config, nest, parse_set, with_overrides
    from ..run_info import check_against_manifest, config_from_run, run_path

    parsed = [parse_set(text) for text in overrides]
    # Field options are named after their dotted config key, with "__" for "." (click needs identifiers).
    parsed += [nest(key.replace("__", "."), value) for key, value in fields.items() if value is not None]
    if preset is None and config_file is None and out_dir is not None and (require_run or run_path(out_dir).exists()):
        config = config_from_run(out_dir)  # validated, and cross-checked against the manifest there
        if parsed:
            source = f"{run_path(out_dir)} with the command-line overrides"
            config = with_overrides(config, parsed, source)
            check_against_manifest(config, out_dir, source)
        return config
    return load_config(preset, config_file, parsed)


def engine_options(func):
    """``--engine local|ray`` and ``--ray-address`` (config: engine.name, engine.ray_address)."""
    func = click.option("--ray-address", "engine__ray_address", default=None, metavar="auto|ray://HOST:10001",
                        help="With --engine ray: the cluster to attach to (auto: this machine's, or RAY_ADDRESS; "
                             "HOST:PORT or ray://HOST:10001: that one); default: a private Ray for this "
                             "run only, never a cluster already running.")(func)
    return click.option("--engine", "engine__name", type=click.Choice(list(ENGINES)), default=None,
                        help="Where generation and CLIP embedding run: local (default) or ray, a Ray cluster "
                             "(pip install 'isekai-gen[ray]'); the results are the same.")(func)


def generation_options(func):
    """Single-field overrides of the generation section (``None`` = keep the config's value)."""
    options = [
        click.option("--seed", "seed", type=int, default=None, help="Global seed (config: seed)."),
        click.option("--images-per-concept", "generation__images_per_concept", type=int, default=None,
                     help="Images to generate per concept (config: generation.images_per_concept)."),
        click.option("--model", "generation__model__id", default=None,
                     help="Hub id of a diffusers text-to-image pipeline (config: generation.model.id)."),
        click.option("--revision", "generation__model__revision", default=None, help="Hub revision of the model."),
        click.option("--model-path", "generation__model__path", default=None,
                     help="Local pipeline folder (save_pretrained layout or a downloaded snapshot)."),
        click.option("--steps", "generation__steps", type=int, default=None, help="Denoising steps."),
        click.option("--batch-size", "generation__batch_size", type=int, default=None,
                     help="Images per pipeline call (does not change which images are made)."),
        click.option("--device", "generation__device", default=None, help="auto, cpu, cuda, cuda:N or mps."),
        click.option("--dtype", "generation__dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]),
                     default=None, help="auto: bfloat16 on CUDA, float32 on CPU."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def int_list(ctx, param, value):
    """"0,1,5" -> [0, 1, 5] (a usage error otherwise)."""
    if value is None:
        return None
    try:
        values = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated whole numbers, got {value!r}") from None
    if not values or len(set(values)) != len(values) or min(values) < (1 if param.name == "batch_size" else 0):
        raise click.BadParameter(f"expected distinct comma-separated numbers >= "
                                 f"{1 if param.name == 'batch_size' else 0}, got {value!r}")
    return values
