"""``isekai-gen export``: write export formats of a build folder, or of ManyICL split folders."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import (BUILD_FOLDER, build_folder, config_options, int_list, load_command_config, progress_option, shown,
                       wait_option)


@click.command("export")
@click.option("--out", "out_dir", type=BUILD_FOLDER, default=None,
              help="Build folder (or its bucket URL) with run.json, manifest.jsonl and images/ of a filtered build "
                   "(episodes/ and benchmarks/ are packaged when present).")
@click.option("--format", "formats", default=None, metavar="NAME[,NAME]",
              help="Formats to write (lcl, webdataset, hf, lmms-eval, vlmevalkit). Default for a build: lcl, "
                   "webdataset and hf as the config switches them on.")
@click.option("--splits", "split_folders", multiple=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A ManyICL split folder (demo.csv, test.csv, images/) to export instead of a build (repeatable; "
                   "lmms-eval and vlmevalkit only).")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --splits: the folder the formats are written into (DEST/<format>/).")
@click.option("--shots", default=None, metavar="K,K,...", callback=int_list,
              help="Harness formats: demonstrations per class (ManyICL, needed with --splits) or per side "
                   "(ISEKAI sets; default 0 up to the episodes' support size, at most 16).")
@click.option("--seed", type=int, default=None,
              help="Harness formats: the run seed of the demonstration shuffles (default: `isekai-gen evaluate`'s).")
@config_options
@progress_option
@wait_option
def command(out_dir: Path | str | None, formats: str | None, split_folders: tuple[Path, ...], dest: Path | None,
            shots: list[int] | None, seed: int | None, preset: str | None, config_file: Path | None,
            overrides: tuple[str, ...], progress: bool, wait: bool) -> None:
    """Write export formats of a filtered build into OUT/export/<format>/, or of ManyICL split
    folders into DEST/<format>/. Rebuilding from the same inputs gives byte-identical files.

    Without --preset or --config the config recorded in OUT/run.json is used (--set still applies).
    """
    from ..export.registry import BUILD, SPLITS, SplitsInput, get_exporter, parse_formats
    from ..export.stage import run_export, run_split_export

    if (out_dir is None) == (not split_folders):
        raise click.UsageError("give either --out (a build folder) or --splits (ManyICL split folders)")
    if split_folders:
        if dest is None or formats is None or shots is None:
            raise click.UsageError("--splits needs --dest, --format and --shots")
        names = parse_formats(formats, SPLITS)
        summary = run_split_export(SplitsInput(list(split_folders), dest, shots, seed, progress), names)
        for name, info in summary["formats"].items():
            for line in get_exporter(name).describe(info, lambda path: str(dest / path)):
                click.echo(line)
        return
    if dest is not None:
        raise click.UsageError("--dest applies to --splits; a build's formats go to OUT/export/")
    from ..catalog import build_catalog

    names = None if formats is None else parse_formats(formats, BUILD)
    with build_folder(out_dir, wait) as work_dir:
        config = load_command_config(preset, config_file, overrides, work_dir, require_run=True)
        catalog, _ = build_catalog(config)
        summary = run_export(config, work_dir, catalog, formats=names, progress=progress, shots=shots, seed=seed)
    for name, info in summary["formats"].items():
        for line in get_exporter(name).describe(info, lambda path: shown(out_dir, work_dir, work_dir / "export" / path)):
            click.echo(line)
    if summary["content_hash"] is not None:
        click.echo(f"content hash {summary['content_hash']} over {summary['files']} files (export/SHA256SUMS)")
