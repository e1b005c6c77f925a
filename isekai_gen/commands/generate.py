"""``isekai-gen generate``: the generation stage alone (shardable across processes)."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import config_options, generation_options, load_command_config


@click.command("generate")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Build folder: images/, manifest.jsonl and run.json go here; rerunning resumes.")
@config_options
@generation_options
@click.option("--shard", default=None, metavar="I/N",
              help="Run only part I of N (0-based) of the jobs; default from RANK/WORLD_SIZE under torchrun/accelerate, else 0/1.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def command(out_dir, preset, config_file, overrides, shard, progress, **fields):
    """Generate the concept images of a catalog into OUT (resumable, shardable).

    Each of N processes started with --shard I/N (or under torchrun) generates a disjoint part;
    the last one to finish merges the parts into OUT/manifest.jsonl.
    """
    from ..build import prepare
    from ..generation import run_generation
    from ..jobs import parse_shard

    config = load_command_config(preset, config_file, overrides, out_dir, **fields)
    catalog = prepare(config, out_dir)
    result = run_generation(config, out_dir, catalog, shard=parse_shard(shard), progress=progress)
    click.echo(f"generated {result.generated}, already done {result.skipped}, failed {result.failed} "
               f"(of {result.planned} planned jobs)")
    if result.merged:
        click.echo(f"manifest: {out_dir / 'manifest.jsonl'}")
    else:
        click.echo("this shard is done; the manifest is merged when every shard has finished")
