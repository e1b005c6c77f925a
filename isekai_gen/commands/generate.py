"""``isekai-gen generate``: the generation stage alone (shardable across processes)."""

from __future__ import annotations

from pathlib import Path

import click
from click import UsageError

from ._options import (BUILD_FOLDER, build_folder, config_options, engine_options, generation_options,
                       load_command_config, progress_option, shown, wait_option, writer_lock)


@click.command("generate")
@click.option("--out", "out_dir", type=BUILD_FOLDER, required=True,
              help="Build folder, or a bucket URL (s3://bucket/prefix): images/, manifest.jsonl and run.json go "
                   "here; rerunning resumes.")
@config_options
@generation_options
@engine_options
@click.option("--shard", default=None, metavar="I/N",
              help="Run only part I of N (0-based) of the jobs; default from RANK/WORLD_SIZE under torchrun/accelerate, else 0/1.")
@progress_option
@wait_option
@click.option("--verify", is_flag=True,
              help="Check every image against the manifest: one line per missing or changed image, exit 1 if any.")
@click.option("--regenerate", is_flag=True,
              help="Re-render the images of JOB_IDS from their manifest seeds, in the batch each was rendered in, "
                   "and replace their files (see --allow-drift).")
@click.option("--allow-drift", is_flag=True,
              help="With --regenerate: accept re-rendered bytes that differ from the recorded ones (another device "
                   "or library version); their sha256 is updated and their filter scores dropped.")
@click.argument("job_ids", nargs=-1, metavar="[JOB_ID]...")
def command(out_dir, preset, config_file, overrides, shard, progress, wait, verify, regenerate, allow_drift, job_ids,
            **fields):
    """Generate the concept images of a catalog into OUT (resumable, shardable).

    Each of N processes started with --shard I/N (or under torchrun) generates a disjoint part;
    the last one to finish merges the parts into OUT/manifest.jsonl. The shards of one run share
    OUT's writer lock; any other writer (and a second copy of a shard) is refused.

    \b
    isekai-gen generate --out OUT --verify                        list missing or changed images
    isekai-gen generate --out OUT --regenerate cactihog-00003 ... re-render those images
    """
    from ..build import prepare
    from ..generation import run_generation
    from ..jobs import parse_shard

    if verify or regenerate or job_ids:
        if not isinstance(out_dir, Path):
            raise UsageError(f"{out_dir}: --verify and --regenerate work on a local build folder; copy the build "
                             "down first (e.g. with `aws s3 sync`)")
        _repair(out_dir, preset, config_file, overrides, wait, verify, regenerate, allow_drift, job_ids, fields)
        return
    if allow_drift:
        raise click.UsageError("--allow-drift only applies to --regenerate")
    shard = parse_shard(shard)
    with build_folder(out_dir, wait, shard) as work_dir:
        config = load_command_config(preset, config_file, overrides, work_dir, **fields)
        catalog = prepare(config, work_dir)
        result = run_generation(config, work_dir, catalog, shard=shard, progress=progress)
    click.echo(f"generated {result.generated}, already done {result.skipped}, failed {result.failed} "
               f"(of {result.planned} planned jobs)")
    if result.merged:
        click.echo(f"manifest: {shown(out_dir, work_dir, work_dir / 'manifest.jsonl')}")
    else:
        click.echo("this shard is done; the manifest is merged when every shard has finished")


def _repair(out_dir, preset, config_file, overrides, wait, verify, regenerate, allow_drift, job_ids, fields) -> None:
    """``--verify`` (a reader: no lock) or ``--regenerate JOB_ID...`` (a writer)."""
    from ..catalog import build_catalog
    from ..errors import UserError
    from ..generation.regenerate import regenerate_images, verify_images

    if verify:
        if regenerate or job_ids or allow_drift:
            raise click.UsageError("--verify checks every image; it takes no job ids, --regenerate or --allow-drift")
        problems = verify_images(out_dir)
        for line in problems:
            click.echo(line)
        if problems:
            raise UserError(f"{out_dir}: {len(problems)} images missing or not matching the manifest; restore them "
                            f"with `isekai-gen generate --out {out_dir} --regenerate JOB_ID...`")
        click.echo("every image matches the manifest")
        return
    if not regenerate or not job_ids:
        raise click.UsageError("job ids need --regenerate, and --regenerate needs job ids (find them with --verify)")
    with writer_lock(out_dir, wait):
        config = load_command_config(preset, config_file, overrides, out_dir, require_run=True, **fields)
        catalog, _ = build_catalog(config)
        result = regenerate_images(config, out_dir, catalog, list(job_ids), allow_drift=allow_drift)
    click.echo(f"regenerated {len(result.restored) + len(result.drifted)} images: {len(result.restored)} with their "
               f"recorded bytes, {len(result.drifted)} changed (sha256 updated; rerun `isekai-gen filter`)")
