"""``isekai-gen publish``: upload the Hugging Face export folder to a Hub dataset repository."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import wait_option


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@click.command("publish")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--repo-id", required=True, help="Dataset repository on the Hub, ORG/NAME (created if missing).")
@click.option("--private", is_flag=True,
              help="Create the repository as private (an existing one keeps its visibility).")
@click.option("--revision", default=None, help="Branch to commit to (created if missing); default: main.")
@click.option("--dry-run", is_flag=True,
              help="Check the card and the folder and list what would be uploaded; needs no token and makes no "
                   "network call.")
@click.option("--validate-online", "validate_online", is_flag=True,
              help="With --dry-run: also post the card to the Hub's YAML validator (the one network call).")
@click.option("--allow-smoke-test", "allow_smoke_test", is_flag=True,
              help="Publish a smoke-test build (random-weight images: noise) anyway; refused by default.")
@wait_option
def command(export_dir: Path, repo_id: str, private: bool, revision: str | None, dry_run: bool,
            validate_online: bool, allow_smoke_test: bool, wait: bool) -> None:
    """Publish EXPORT_DIR (OUT/export/hf, or a build folder OUT) as a Hugging Face dataset.

    The token comes from HF_TOKEN or `hf auth login` and is never printed; HF_ENDPOINT selects
    another Hub. Rate limits and server errors are retried; rerunning after an interruption
    uploads only what is missing."""
    from isekai_gen.export.publish import publish

    if validate_online and not dry_run:
        raise click.UsageError("--validate-online applies to --dry-run (an upload always validates the card)")
    result = publish(export_dir, repo_id, private=private, revision=revision, dry_run=dry_run,
                     validate_online_card=validate_online, allow_smoke_test=allow_smoke_test, wait=wait)
    verb = "would upload" if dry_run else "uploaded"
    click.echo(f"{verb} {len(result['files'])} files ({_size(result['bytes'])}) from {result['folder']} "
               f"to dataset {repo_id}:")
    for path, size in result["files"]:
        click.echo(f"  {size:>12,d}  {path}")
    from isekai_gen.manyicl.manifest import manifest_only_notes

    for line in manifest_only_notes(result["folder"]):  # splits whose licence forbids sharing the images
        click.echo(line)
    if dry_run:
        click.echo(result["validation"])
    else:
        click.echo(f"published: {result['url']} (commit {result['commit']})")
