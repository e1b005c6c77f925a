"""``isekai-gen catalog``: check a concept catalog and look inside one."""

from __future__ import annotations

import click

from ._options import progress_option


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


def _llm_settings(spec: str, endpoint, budget_usd, price_table, concurrency, progress):
    from isekai_gen.invent.llm import LLMSettings

    return LLMSettings(spec=spec, endpoint=endpoint, budget_usd=budget_usd, price_table=price_table,
                       concurrency=concurrency, progress=progress)


def _llm_options(func):
    for option in reversed([
        click.option("--endpoint", default=None, metavar="URL", help="OpenAI-compatible base URL (vLLM, a local server)."),
        click.option("--budget-usd", type=float, default=None, help="Stop before the calls could cost more than this."),
        click.option("--price-table", default=None, metavar="FILE", help="Prices (default configs/evaluate/prices.yaml)."),
        click.option("--concurrency", type=int, default=8, show_default=True, help="Calls in flight at once."),
        click.option("--dry-run", is_flag=True, help="Plan and price the calls; send nothing, write no results."),
    ]):
        func = option(func)
    return func


@command.command("invent")
@click.option("--groups", type=int, required=True, help="Number of groups (an invented concept and its real partner).")
@click.option("--seed", type=int, required=True, help="Same seed and inputs: byte-identical catalog and report.")
@click.option("--out", "out", required=True, metavar="FILE", help="Catalog YAML to write (report: FILE.report.json).")
@click.option("--pool", default=None, metavar="FILE", help="Concept pool (default configs/invent/pool.yaml).")
@click.option("--exclude", multiple=True, metavar="CATALOG", help="A catalog whose labels must not be reused or "
              "approached (repeatable); the shipped catalogs and the published ISEKAI names always are.")
@click.option("--writer", default=None, metavar="PROVIDER:MODEL", help="A language model writes the descriptions "
              "and prompts (checked, re-asked or refused); default: templates over the pool's traits.")
@click.option("--familiarity-preset", default="default", show_default=True, metavar="PRESET",
              help="Build preset whose filter CLIP model ranks the nearest pool categories (tiny: offline smoke test).")
@click.option("--no-familiarity", is_flag=True, help="Leave the CLIP familiarity check out of the report.")
@_llm_options
@progress_option
def invent(groups, seed, out, pool, exclude, writer, familiarity_preset, no_familiarity, endpoint, budget_usd,
           price_table, concurrency, dry_run, progress) -> None:
    """Invent a fresh, private catalog of GROUPS concepts no model has seen (see README, "Make your own
    private ISEKAI set")."""
    from isekai_gen.invent import invent_catalog

    settings = None
    if writer is not None:
        settings = _llm_settings(writer, endpoint, budget_usd, price_table, concurrency, progress)
    elif dry_run:
        raise click.UsageError("--dry-run prices the --writer's calls; give --writer too")
    report = invent_catalog(out, groups=groups, seed=seed, pool_path=pool, exclude=list(exclude), writer=settings,
                            familiarity_preset=None if no_familiarity else familiarity_preset, dry_run=dry_run)
    if dry_run:
        summary = report["writer"]
        cost = "unknown" if summary["est_cost_usd"] is None else f"~${summary['est_cost_usd']:.4f}"
        click.echo(f"dry run: {summary['pending']} of {summary['requests']} writer requests pending, cost {cost}")
        return
    familiarity = report["familiarity"]
    if familiarity["status"] == "unavailable":
        click.echo(f"warning: no familiarity check in the report: {familiarity['reason']}", err=True)
    rejected = ", ".join(f"{k} {v}" for k, v in report["rejected"].items()) or "none"
    click.echo(f"{out}: {report['groups']} groups ({', '.join(f'{k} {v}' for k, v in report['recipes'].items())}); "
               f"rejected candidates: {rejected}; familiarity: {report['familiarity']['status']}; "
               f"report: {out}.report.json")


@command.command("probe")
@click.argument("target", metavar="CATALOG_OR_BUILD")
@click.option("--model", "model", required=True, metavar="PROVIDER:MODEL", help="The model to probe.")
@click.option("--out", "out", required=True, metavar="RUN_DIR", help="Run folder (journal, report.json, report.md).")
@click.option("--images-per-concept", type=int, default=20, show_default=True, help="Image probe: images per concept.")
@click.option("--alpha", type=float, default=0.01, show_default=True, help="Image probe: significance level.")
@click.option("--no-text", is_flag=True, help="Skip the text probe.")
@_llm_options
@progress_option
def probe(target, model, out, images_per_concept, alpha, no_text, endpoint, budget_usd, price_table,
          concurrency, dry_run, progress) -> None:
    """Ask a model whether it already knows the concepts of CATALOG_OR_BUILD: a text probe of each label,
    and with a build folder an image probe with a binomial test per concept."""
    from isekai_gen.invent.probe import probe as run_probe

    settings = _llm_settings(model, endpoint, budget_usd, price_table, concurrency, progress)
    report = run_probe(target, settings, out, images_per_concept=images_per_concept, alpha=alpha, text=not no_text,
                       dry_run=dry_run)
    if dry_run:
        cost = "unknown" if report["est_cost_usd"] is None else f"~${report['est_cost_usd']:.4f}"
        click.echo(f"dry run: {report['pending']} of {report['requests']} probe requests pending, cost {cost}")
        return
    click.echo(f"{out}: {len(report['known'])} of the invented concepts known ({report['known_share']:.0%})"
               f"{': ' + ', '.join(report['known']) if report['known'] else ''}; report: {out}/report.md")

