"""``isekai-gen splits``: ManyICL many-shot demo/test splits from the datasets' native layouts."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import parse_override
from ..errors import UserError
from ..manyicl.content import BAD_IMAGE_RULES, MULTI_LABEL_RULES
from ..manyicl.recipe import MATERIALIZE_MODES
from ._options import progress_option, wait_option, writer_lock


@click.group("splits")
def command() -> None:
    """Many-shot demo/test splits for the ten ManyICL benchmarks.

    \b
    list       datasets, classes, Table 1 sizes, licences, documented defaults
    build      one dataset:   --dataset NAME --root PATH|--source hf:REPO[@REV] --out DIR
               or exactly a shared split: --from-manifest FILE --root PATH --out DIR
    build-all  every dataset of a ROOTS.yaml (name -> root): --roots FILE --out DIR
    manifest   (re)write a split folder's split-manifest.json
    """


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the recipes as JSON instead of text.")
def list_command(as_json: bool) -> None:
    """Show every dataset: classes, default sizes, licence, redistribution and options."""
    from ..manyicl.adapters import adapters

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
    ]
    if info.get("aliases"):
        lines.append(f"  names: {info['name']} (any case; also {', '.join(info['aliases'])})")
    layouts = info.get("layouts") or [{"name": "", "markers": [info["layout"]], "source": ""}]
    for layout in layouts:
        markers = " + ".join(m.replace("|", " or ") for m in layout["markers"]) or "<class>/"
        origin = f"  [{layout['name']}: {layout['source']}]" if layout["name"] else ""
        lines.append(f"  layout: {markers}{origin}")
    if info.get("hub_copies"):
        lines.append(f"  Hub copies: {', '.join(info['hub_copies'])} (a local snapshot as --root, or --source hf:REPO@REV)")
    lines += [f"  default: {note}" for note in info["notes"]]
    if info["dropped_classes"]:
        lines.append(f"  not used by default: {', '.join(info['dropped_classes'])}")
    if info["contained_labels"]:
        pairs = ", ".join(f"{a} in {b}" for a, b in info["contained_labels"])
        lines.append(f"  class names inside others: {pairs} (ManyICL's substring eval.py drops answers naming "
                     "the longer one; isekai-gen score reads them)")
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
                     help="Decode every selected image at full size, report each format mismatch, truncated or "
                          "undecodable file in one line, and check every written image."),
        click.option("--bad-images", type=click.Choice(BAD_IMAGE_RULES), default="reencode",
                     help="Images whose bytes are not what their name says, or not RGB/L: re-encode them, or skip "
                          "them (and undecodable ones) and draw others."),
        click.option("--multi-label", type=click.Choice(MULTI_LABEL_RULES), default="exclude",
                     help="Single-label datasets: a photo filed under several labels is left out, or kept with the "
                          "label of the copy drawn first."),
        click.option("--near-duplicate-distance", type=click.IntRange(0, 64), default=None,
                     help="pHash distance counted as a demo/test near-duplicate [default: the filter stage's "
                          "filter.dedup.phash_max_distance]."),
        click.option("--exclude-near-duplicates", is_flag=True,
                     help="Replace demo/test near-duplicates instead of only counting them."),
        progress_option,
        wait_option,
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _settings(seed, demo_per_class, test_per_class, materialize, verify_images, bad_images, multi_label,
              near_duplicate_distance, exclude_near_duplicates) -> dict:
    settings = {"seed": seed, "materialize": materialize, "verify_images": verify_images, "bad_images": bad_images,
                "multi_label": multi_label, "exclude_near_duplicates": exclude_near_duplicates}
    for key, value in (("demo_per_class", demo_per_class), ("test_per_class", test_per_class),
                       ("near_duplicate_distance", near_duplicate_distance)):
        if value is not None:
            settings[key] = value
    return settings


@command.command("build")
@click.option("--dataset", default=None,
              help="Dataset name or alias, any case, as in `isekai-gen splits list` (e.g. terra_incognita); "
                   "with --from-manifest, the manifest's.")
@click.option("--root", default=None, type=click.Path(path_type=Path),
              help="Root folder of the dataset's native layout, or a local snapshot of one of its Hub copies "
                   "(parquet as `datasets` writes it).")
@click.option("--source", default=None, metavar="hf:REPO[@REVISION]",
              help="Read a Hub copy through huggingface_hub (its cache; HF_HUB_OFFLINE=1 reads only the cache); "
                   "the commit read is recorded in split.json. Without a revision the split is not pinned.")
@click.option("--from-manifest", "manifest", default=None, type=click.Path(path_type=Path),
              help="A split-manifest.json: re-materialise exactly that split from your copy, verifying every "
                   "image's sha256 (sampling options do not apply).")
@_shared_options
@click.option("--classes", default=None, help="Comma-separated classes to use instead of the recipe's default classes.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A dataset option (see `splits list`), value parsed as YAML, e.g. uncertain=zeros or "
                   "test_centers=[1]. Repeatable.")
def build_command(dataset, root, source, manifest, out, seed, demo_per_class, test_per_class, materialize,
                  verify_images, bad_images, multi_label, near_duplicate_distance, exclude_near_duplicates, progress,
                  wait, classes, options) -> None:
    """Build the demo/test split of one dataset (or re-materialise a shared one)."""
    from ..manyicl.adapters import get_adapter

    from ..manyicl import build_split
    from ..manyicl.hub import known_copy
    from ..manyicl.hub_snapshot import download, parse_source
    from ..manyicl.from_manifest import materialize_manifest
    from ..manyicl.manifest import read_manifest

    if (root is None) == (source is None):
        raise click.UsageError("give exactly one of --root and --source")
    if manifest is not None:
        wanted = read_manifest(manifest)["dataset"]
        if dataset is not None and get_adapter(dataset).name != wanted:
            raise UserError(f"{manifest}: a {wanted} split, not {get_adapter(dataset).name}")
        dataset = wanted
    if dataset is None:
        raise click.UsageError("--dataset is required (unless --from-manifest)")
    hub_source = None
    if source is not None:
        repo, revision = parse_source(source)
        known_copy(get_adapter(dataset), repo)  # before fetching gigabytes of the wrong repo
        hub_source = download(repo, revision, _warn)
        root = hub_source.folder
    if manifest is not None:
        with writer_lock(out, wait):
            summary = materialize_manifest(manifest, root, out, materialize=materialize, source=hub_source,
                                           progress=progress)
        click.echo(f"{summary['dataset']}: {summary['totals']['demo']} demo, {summary['totals']['test']} test -> "
                   f"{summary['folder']} ({summary['fingerprint'][:19]}); all {summary['verified']} images verified "
                   f"against {Path(manifest).name}")
        return
    settings = _settings(seed, demo_per_class, test_per_class, materialize, verify_images, bad_images, multi_label,
                         near_duplicate_distance, exclude_near_duplicates)
    if classes is not None:
        settings["classes"] = classes
    for text in options:
        settings.update(_option(text))
    with writer_lock(out, wait):
        _report(build_split(get_adapter(dataset), root, out, settings, progress=progress, report=_warn,
                            source=hub_source))



@command.command("manifest")
@click.argument("folder", type=click.Path(path_type=Path))
def manifest_command(folder: Path) -> None:
    """Write FOLDER/split-manifest.json from a split folder's split.json and split.jsonl."""
    from ..manyicl import read_split
    from ..manyicl.manifest import write_manifest

    meta, rows = read_split(folder)
    missing = next((row["file_name"] for row in rows if "sha256" not in row or "image" not in row), None)
    if missing is not None:
        raise UserError(f"{folder / 'split.jsonl'}: row {missing!r} has no sha256 (a planned split): rebuild it")
    click.echo(str(write_manifest(folder, meta, rows)))


def _option(text: str) -> dict:
    key, sep, _ = text.partition("=")
    if not sep or not key.strip() or "." in key:
        raise UserError(f"--option {text!r}: expected KEY=VALUE with a plain key")
    return parse_override(text, "--option")  # {key: value parsed as YAML}


@command.command("build-all")
@click.option("--roots", required=True, type=click.Path(path_type=Path),
              help="ROOTS.yaml: dataset name or alias, any case -> root folder (relative paths: to that file).")
@_shared_options
def build_all_command(roots, out, seed, demo_per_class, test_per_class, materialize, verify_images, bad_images,
                      multi_label, near_duplicate_distance, exclude_near_duplicates, progress, wait) -> None:
    """Build the splits of every dataset listed in a ROOTS.yaml, with the default recipes.

    Every dataset that can be built is built (and kept); each failure is listed at the end in one
    line, and the command then exits 1.
    """
    from ..manyicl import build_all, load_roots

    settings = _settings(seed, demo_per_class, test_per_class, materialize, verify_images, bad_images, multi_label,
                         near_duplicate_distance, exclude_near_duplicates)
    with writer_lock(out, wait):
        summaries, failures = build_all(load_roots(roots), out, settings, progress=progress, report=_warn,
                                        on_done=_report)
    for name, message in failures.items():
        click.echo(f"failed: {name}: {message}", err=True)
    if failures:
        raise UserError(f"{len(failures)} of {len(failures) + len(summaries)} splits failed: {', '.join(failures)}")


def _warn(line: str) -> None:
    click.echo(f"warning: {line}", err=True)


def _report(summary: dict) -> None:
    """One line per split: sizes, folder, fingerprint, the layout read, then the content checks' leakage
    and replacements."""
    totals, content = summary["totals"], summary["content"]
    near = ("not checked" if content["near_duplicate_distance"] is None else
            f"{content['near_duplicate_pairs']} (pHash distance <= {content['near_duplicate_distance']})")
    extras = [f"layout: {', '.join(map(_layout_text, summary['layouts']))}", f"near-duplicate demo/test pairs: {near}"]
    left_out = ", ".join(f"{n} {reason.replace('_', '-')}" for reason, n in content["left_out"].items() if n)
    if left_out:
        extras.append(f"replaced: {left_out}")
    if content["images"].get("reencoded"):
        extras.append(f"re-encoded: {content['images']['reencoded']}")
    if summary.get("source"):
        hub = summary["source"]
        extras.insert(0, f"source: hf:{hub['repo']}@{hub['commit'] or 'unpinned'} ({hub['split_assignment']}; "
                         f"{hub['folded_duplicates']} repeated rows folded)")
    click.echo(f"{summary['dataset']}: {totals['demo']} demo, {totals['test']} test -> {summary['folder']} "
               f"({summary['fingerprint'][:19]}); {'; '.join(extras)}")


def _layout_text(layout: dict) -> str:
    """``[part: ]<layout name> at <folder>`` of one split.json ``layouts`` entry."""
    part = f"{layout['part']}: " if "part" in layout else ""
    return f"{part}{layout['name']} at {'the root' if layout['folder'] == '.' else layout['folder']}"
