"""Options shared by the commands that take a build configuration."""

from __future__ import annotations

from pathlib import Path

import click

from ..resources import preset_names


def config_options(func):
    """--preset / --config / --set, passed to the command as ``preset``, ``config_file``, ``overrides``."""
    func = click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                        help="Override one config field, e.g. --set generation.steps=2 (repeatable; value parsed as YAML).")(func)
    func = click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Your YAML build configuration (schemas/build_config.schema.json); layered over the preset.")(func)
    return click.option("--preset", type=click.Choice(preset_names()), default=None,
                        help="A shipped configuration from configs/ (default: `default`, unless --config is given).")(func)


def load_command_config(preset, config_file, overrides, out_dir: Path | None = None, *, require_run: bool = False,
                        **fields) -> dict:
    """Effective config from the shared options plus per-command field options (``None`` = unset).

    With neither --preset nor --config, a stage command on an existing build folder uses the
    config recorded in its run.json; with ``require_run`` (stages that read an earlier stage's
    output) a missing run.json is an error rather than a silent fall-back to the default preset.
    """
    from ..config import deep_merge, load_config, nest, parse_override, public_config
    from ..run_info import config_from_run, run_path
    from ..schema import validate

    parsed = [parse_override(text) for text in overrides]
    # Field options are named after their dotted config key, with "__" for "." (click needs identifiers).
    parsed += [nest(key.replace("__", "."), value) for key, value in fields.items() if value is not None]
    if preset is None and config_file is None and out_dir is not None and (require_run or run_path(out_dir).exists()):
        config = config_from_run(out_dir)  # validated there
        if parsed:
            for override in parsed:
                config = deep_merge(config, override)
            validate(public_config(config), "build_config", f"{run_path(out_dir)} with the command-line overrides")
        return config
    return load_config(preset, config_file, parsed)


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
