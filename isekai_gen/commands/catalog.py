"""``isekai-gen catalog``: check a concept catalog and look inside one."""

from __future__ import annotations

import click


@click.group("catalog")
def command() -> None:
    """Check and show concept catalogs (configs/catalogs/*.yaml or your own YAML file)."""


@command.command("validate")
@click.argument("file")
def validate(file: str) -> None:
    """Check FILE (a catalog YAML file or a shipped catalog name) against every catalog rule.

    Prints `FILE: N groups, M concepts, ok`, or one `error:` line naming the file, the concept and
    the problem (exit status 1).
    """
    from isekai_gen.catalog import load_catalog

    catalog = load_catalog(file)
    click.echo(f"{file}: {len(catalog.groups())} groups, {len(catalog.concepts)} concepts, ok")


@command.command("show")
@click.argument("name_or_file", default="isekai")
@click.option("--concept", "concept_id", default=None, metavar="ID",
              help="Print every field of this concept (description, numbered prompts, negative prompt) "
                   "instead of the table of groups.")
def show(name_or_file: str, concept_id: str | None) -> None:
    """Table of the groups of NAME_OR_FILE (default: isekai, the shipped catalog): isekai label and
    name vs real label and name, prompt counts."""
    from isekai_gen.catalog import concept_entry, groups_table, load_catalog

    catalog = load_catalog(name_or_file)
    if concept_id is not None:
        click.echo(concept_entry(catalog, concept_id))
        return
    click.echo(groups_table(catalog))
    click.echo(f"\n{len(catalog.groups())} groups, {len(catalog.concepts)} concepts ({catalog.source})")
