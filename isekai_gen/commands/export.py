"""``isekai-gen export``: re-export an existing build folder (webdataset shards, Hugging Face folder, card)."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import BUILD_FOLDER, build_folder, config_options, load_command_config, progress_option, shown, wait_option


@click.command("export")
@click.option("--out", "out_dir", required=True, type=BUILD_FOLDER,
              help="Build folder (or its bucket URL) with run.json, manifest.jsonl and images/ of a filtered build "
                   "(episodes/, export/lcl/ and benchmarks/ are packaged when present).")
@config_options
@progress_option
@wait_option
def command(out_dir: Path | str, preset: str | None, config_file: Path | None, overrides: tuple[str, ...],
            progress: bool, wait: bool) -> None:
    """Write the webdataset shards and the Hugging Face dataset folder (Parquet + README.md card)
    of a filtered build into OUT/export/. Rebuilding from the same inputs gives byte-identical files.

    Without --preset or --config the config recorded in OUT/run.json is used (--set still applies).
    """
    from ..build import build_catalog
    from ..export.stage import run_export

    with build_folder(out_dir, wait) as work_dir:
        config = load_command_config(preset, config_file, overrides, work_dir, require_run=True)
        catalog, _ = build_catalog(config)
        summary = run_export(config, work_dir, catalog, progress=progress)
    index = summary["webdataset"]
    if index is not None:
        click.echo(f"webdataset: {index['samples']} samples in {len(index['shards'])} shard(s) "
                   f"-> {shown(out_dir, work_dir, work_dir / 'export' / 'webdataset')}")
    for name, info in (summary["hf"] or {}).items():
        click.echo(f"hf config {name}: {info['rows']} rows in {len(info['files'])} Parquet file(s)")
    click.echo(f"content hash {summary['content_hash']} over {summary['files']} files (export/SHA256SUMS)")
