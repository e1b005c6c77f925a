"""``isekai-gen splits``: ManyICL many-shot demo/test splits from the datasets' native layouts."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import parse_override
from ..errors import UserError
from ..manyicl.recipe import MATERIALIZE_MODES


@click.group("splits")
def command() -> None:
    """Many-shot demo/test splits for the ten ManyICL benchmarks.

    \b
    list       datasets, classes, Table 1 sizes, licences, documented defaults
    build      one dataset:   --dataset NAME --root PATH --out DIR
    build-all  every dataset of a ROOTS.yaml (name -> root): --roots FILE --out DIR
    """


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the recipes as JSON instead of text.")
def list_command(as_json: bool) -> None:
    """Show every dataset: classes, default sizes, licence, redistribution and options."""
    from isekai_gen.splits import adapters

    described = [adapter.describe() for adapter in adapters().values()]
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for info in described:
        click.echo("\n".join(_describe_lines(info)) + "\n")


def _describe_lines(info: dict) -> list[str]:
    n = len(info["classes"])
    if info["multilabel"]:
        sizes = (f"demo {info['demo_per_class']}+{info['demo_per_class']} pos/neg per finding "
                 f"({2 * n * info['demo_per_class']}), test {info['test_per_class']}+{info['test_per_class']} "
                 f"({2 * n * info['test_per_class']})")
    else:
        sizes = (f"demo {info['demo_per_class']}/class ({n * info['demo_per_class']}), "
                 f"test {info['test_per_class']}/class ({n * info['test_per_class']})")
    lines = [
        f"{info['name']}  ({info['title']})  {n} {'findings' if info['multilabel'] else 'classes'}; {sizes}",
        f"  classes: {', '.join(info['classes'])}",
        f"  demo from: {', '.join(info['demo_splits'])}; test from: {', '.join(info['test_splits'])}; "
        f"group: {info['group_key']}",
        f"  licence: {info['license']}; redistribution allowed: {'yes' if info['redistributable'] else 'no'}",
        f"  layout: {info['layout']}",
    ]
    lines += [f"  default: {note}" for note in info["notes"]]
    if info["dropped_classes"]:
        lines.append(f"  not used by default: {', '.join(info['dropped_classes'])}")
    for key, text in info["option_help"].items():
        lines.append(f"  option {key}={json.dumps(info['options'][key])}: {text}")
    return lines


def _shared_options(function):
    """Options of both `build` and `build-all` (decorators apply bottom-up, so reversed)."""
    options = [
        click.option("--out", required=True, type=click.Path(path_type=Path),
                     help="Output folder; each split goes to OUT/<dataset>/."),
        click.option("--seed", default=0, type=click.IntRange(min=0), help="Seed of the random draw."),
        click.option("--demo-per-class", type=click.IntRange(min=0), default=None,
                     help="Demo items per class (CheXpert: per finding and polarity). Default: the paper's Table 1."),
        click.option("--test-per-class", type=click.IntRange(min=0), default=None,
                     help="Test items per class (CheXpert: per finding and polarity). Default: the paper's Table 1."),
        click.option("--materialize", type=click.Choice(MATERIALIZE_MODES), default="copy",
                     help="Fill images/ with copies, symlinks, or nothing."),
        click.option("--verify-images", is_flag=True,
                     help="Decode every selected image; a corrupt one is an error naming the file."),
        click.option("--progress/--no-progress", default=False, help="Show a progress bar while placing images."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _settings(seed, demo_per_class, test_per_class, materialize, verify_images) -> dict:
    settings = {"seed": seed, "materialize": materialize, "verify_images": verify_images}
    for key, value in (("demo_per_class", demo_per_class), ("test_per_class", test_per_class)):
        if value is not None:
            settings[key] = value
    return settings


@command.command("build")
@click.option("--dataset", required=True, help="Dataset name, as in `isekai-gen splits list`.")
@click.option("--root", required=True, type=click.Path(path_type=Path),
              help="Root folder of the dataset's native layout.")
@_shared_options
@click.option("--classes", default=None, help="Comma-separated classes to use instead of the recipe's default classes.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A dataset option (see `splits list`), value parsed as YAML, e.g. uncertain=zeros or "
                   "test_centers=[1]. Repeatable.")
def build_command(dataset, root, out, seed, demo_per_class, test_per_class, materialize, verify_images, progress,
                  classes, options) -> None:
    """Build the demo/test split of one dataset."""
    from isekai_gen.splits import get_adapter

    from ..manyicl import build_split

    settings = _settings(seed, demo_per_class, test_per_class, materialize, verify_images)
    if classes is not None:
        settings["classes"] = classes
    for text in options:
        settings.update(_option(text))
    _report(build_split(get_adapter(dataset), root, out, settings, progress=progress))


def _option(text: str) -> dict:
    key, sep, _ = text.partition("=")
    if not sep or not key.strip() or "." in key:
        raise UserError(f"--option {text!r}: expected KEY=VALUE with a plain key")
    return parse_override(text, "--option")  # {key: value parsed as YAML}


@command.command("build-all")
@click.option("--roots", required=True, type=click.Path(path_type=Path),
              help="ROOTS.yaml: dataset name -> root folder (relative paths: to that file).")
@_shared_options
def build_all_command(roots, out, seed, demo_per_class, test_per_class, materialize, verify_images, progress) -> None:
    """Build the splits of every dataset listed in a ROOTS.yaml, with the default recipes."""
    from ..manyicl import build_all, load_roots

    settings = _settings(seed, demo_per_class, test_per_class, materialize, verify_images)
    for summary in build_all(load_roots(roots), out, settings, progress=progress).values():
        _report(summary)


def _report(summary: dict) -> None:
    totals = summary["totals"]
    click.echo(f"{summary['dataset']}: {totals['demo']} demo, {totals['test']} test -> {summary['folder']} "
               f"({summary['fingerprint'][:19]})")
