"""``isekai-gen evaluate``: ask a model the ManyICL or LCL questions of a split or an ISEKAI set."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import int_list, progress_option


def _model_spec(ctx, param, value):
    from isekai_gen.evaluate.providers import PROVIDERS   # light: the SDKs load only when used

    if value is not None:
        prefix, sep, model = value.partition(":")
        if not sep or not model or prefix not in PROVIDERS:
            raise click.BadParameter(f"expected PROVIDER:MODEL with PROVIDER one of {', '.join(PROVIDERS)}, "
                                     f"got {value!r}")
    return value


@click.group("evaluate", invoke_without_command=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="YAML run configuration (schemas/evaluate_config.schema.json); options below win over it.")
@click.option("--truth", type=click.Path(path_type=Path), default=None,
              help="ManyICL split folder (demo.csv, test.csv, images/), ISEKAI-10.json / ISEKAI-pair.json, or episodes.jsonl.")
@click.option("--images", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Image root of an ISEKAI-*.json  [default: images/ beside it]")
@click.option("--model", default=None, metavar="PROVIDER:MODEL", callback=_model_spec,
              help="openai:gpt-4o, anthropic:claude-sonnet-4-20250514, gemini:gemini-2.5-pro, openai:<served name> with "
                   "--endpoint, or hf:<folder or Hub id> (transformers, in this process).")
@click.option("--endpoint", default=None, metavar="URL",
              help="Base URL of an OpenAI-compatible server (vLLM, SGLang, TGI, Ollama, LM Studio), e.g. http://localhost:8000/v1.")
@click.option("--shots", default=None, metavar="K,K,...", callback=int_list,
              help="Demonstrations per class (ManyICL; the first K demo.csv rows of each class) or per side (LCL).")
@click.option("--batch-size", "batch_size", default=None, metavar="B,B,...", callback=int_list,
              help="Queries per request (ManyICL's batched template); LCL takes 1.  [default: 1]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Run folder (resumable).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Calls in flight at once.  [default: 8]")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of the per-request demo shuffles.  [default: 0]")
@click.option("--budget-usd", "budget_usd", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Refuse to start when the estimate passes it; stop cleanly when the spend would.")
@click.option("--dry-run", "dry_run", is_flag=True,
              help="Build and check every request, print the estimated tokens and cost; send nothing.")
@click.option("--max-requests", "max_requests", type=click.IntRange(min=1), default=None,
              help="Start at most N requests in this invocation (a trial run).")
@click.option("--price-table", "price_table", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Price table YAML  [default: the shipped, dated configs/evaluate/prices.yaml]")
@click.option("--retry-failed", "retry_failed", is_flag=True, default=None,
              help="Send again the requests recorded with a permanent error (after fixing what was refused).")
@click.option("--batch", "batch", is_flag=True, default=None,
              help="Write the pending requests as the provider's batch-API files into RUN_DIR/batch/ (half price) "
                   "instead of calling live; result files put there are read back on every run.")
@click.option("--submit", "submit", is_flag=True, default=None,
              help="With --batch: submit the files, wait for the jobs and read their results.")
@click.option("--protocol", type=click.Choice(["default", "manyicl-original"]), default=None,
              help="Preset of the settings not given: manyicl-original sends what ManyICL's LMM.py sends "
                   "(API seed 66, at most 4096 output tokens, temperature 0).  [default: default]")
@click.option("--timeout", "request_timeout_s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds one call may take.  [default: 600]")
@click.option("--max-retries", "max_retries", type=click.IntRange(min=0), default=None,
              help="Retries of a transient error per call.  [default: 6]")
@click.option("--max-tokens", "max_tokens", type=click.IntRange(min=1), default=None,
              help="Cap on the output tokens of one request (ManyICL: 60 x batch size, capped at 4096).")
@click.option("--temperature", type=click.FloatRange(min=0), default=None, help="Sampling temperature.  [default: 0]")
@click.option("--api-seed", "api_seed", type=click.IntRange(min=0), default=None,
              help="The `seed` sent to APIs that take one (ManyICL sends 66); --seed seeds the demo shuffles.")
@click.option("--demo-order", "demo_order", type=click.Choice(["per-request", "cache-friendly"]), default=None,
              help="per-request: the original's demo shuffle per request; cache-friendly: one shuffle per cell, "
                   "the demo block first and byte-identical, so the provider's prompt cache serves it.")
@click.option("--extractor", type=click.Choice(["strict", "labels"]), default=None,
              help="strict: ManyICL's parse; labels: also a fallback label match, reported separately.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default=None,
              help="local: calls from this process; ray: through Ray Data LLM (openai: fanned out over the endpoint, "
                   "hf: vLLM engines on GPUs; pip install 'isekai-gen[ray]'), journal and budget kept here.  [default: local]")
@click.option("--ray-address", "ray_address", default=None, metavar="auto|ray://HOST:10001",
              help="With --engine ray: the cluster; default: start Ray on this machine.")
@progress_option
@click.pass_context
def command(ctx, config_file, truth, images, model, endpoint, shots, batch_size, out, concurrency, seed, budget_usd,
            dry_run, max_requests, price_table, retry_failed, batch, submit, protocol, request_timeout_s, max_retries,
            max_tokens, temperature, api_seed, demo_order, extractor, engine, ray_address, progress) -> None:
    """Run the (shots x batch size) grid against a model, then score it.

    \b
    isekai-gen evaluate --truth OUT/benchmarks/UCMerced --model openai:gpt-4o \\
        --shots 0,1,5 --batch-size 1,10 --out runs/ucm-gpt4o --budget-usd 20 --dry-run
    isekai-gen evaluate status runs/ucm-gpt4o
    """
    if ctx.invoked_subcommand is not None:
        return
    from isekai_gen.evaluate.api import evaluate
    from isekai_gen.evaluate.config import REQUIRED, load_run_config

    options = {"truth": truth, "images": images, "model": model, "endpoint": endpoint,
               "shots": shots, "batch_size": batch_size,
               "out": out, "concurrency": concurrency, "seed": seed, "budget_usd": budget_usd,
               "max_requests": max_requests, "price_table": price_table,
               "batch": batch or None, "submit": submit or None, "retry_failed": retry_failed or None,
               "protocol": protocol, "request_timeout_s": request_timeout_s, "max_retries": max_retries,
               "max_tokens": max_tokens, "temperature": temperature, "api_seed": api_seed,
               "demo_order": demo_order, "extractor": extractor, "engine": engine, "ray_address": ray_address}
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
    missing = [name for name in REQUIRED if options[name] is None]
    if config_file is None and missing:
        raise click.UsageError(f"missing option --{missing[0].replace('_', '-')} (or give a --config file)")
    config = load_run_config(config_file, options)
    summary = evaluate(config, dry_run=dry_run, progress=progress, on_plan=lambda plan: _print_plan(plan, config, dry_run))
    if summary["batch"]:
        click.echo(summary["batch"])
    if dry_run:
        click.echo(f"dry run: nothing sent; plan in {summary['run_dir']}/plan.jsonl")
        return
    if summary["preflight"]:
        click.echo(f"preflight: {summary['preflight']}")
    outcome = summary["outcome"]
    click.echo(f"{outcome['calls']} calls: {outcome['answered']} answered, {outcome['abstained']} abstentions, "
               f"{outcome['failed']} permanent errors, {outcome['gave_up']} gave up after retries; "
               f"${outcome['cost_usd']:.4f} this run"
               + (f" ({outcome['cache_read_tokens']} input tokens read from the prompt cache)"
                  if outcome["cache_read_tokens"] else ""))
    click.echo(f"wrote {summary['report']}")
    _finish(summary)


def _dollars(value):
    return f"${value:.4f}" if value is not None else "cost unknown (no price)"


def _print_plan(summary: dict, config, dry_run: bool) -> None:
    """The plan and the estimate, printed before the first call (a log shows them from the start)."""
    click.echo(f"{summary['cells']} cells, {summary['requests']} requests ({summary['pending']} pending), "
               f"{summary['images']} images ({summary['resized']} resized); endpoint {summary['endpoint'] or '-'}")
    if summary["price_note"]:
        click.echo(f"price: {summary['price_note']}")
    click.echo(f"estimate for the whole grid: {summary['grid_input_tokens']} input + {summary['grid_output_tokens']} "
               f"output tokens (output at max_tokens, the worst case), {_dollars(summary['grid_cost_usd'])}")
    click.echo(f"estimate for the {summary['pending']} pending requests: {summary['est_input_tokens']} input + "
               f"{summary['est_output_tokens']} output tokens, {_dollars(summary['est_cost_usd'])}; "
               f"spent so far ${summary['spent_usd']:.4f}")
    uncached, cached, batch = (summary[f"grid_{k}_cost_usd"] for k in ("uncached", "cached", "batch"))
    if uncached:
        parts = [f"live {_dollars(uncached)}"]
        if cached is not None:
            parts.append(f"live with the prompt cache {_dollars(cached)} (saves {100 * (1 - cached / uncached):.0f}%)")
        if batch is not None:
            parts.append(f"batch API {_dollars(batch)} (saves {100 * (1 - batch / uncached):.0f}%)")
        click.echo("grid cost: " + "; ".join(parts))
    if summary["imported"]:
        click.echo(f"read {summary['imported']} batch results into the journal")
    budget = config.budget_usd
    if dry_run and budget is not None and summary["est_cost_usd"] + summary["spent_usd"] > budget:
        click.echo(f"over --budget-usd {budget}: a live run would refuse to start")
    click.get_text_stream("stdout").flush()   # in a log file too, before the first call


def _finish(summary: dict) -> None:
    """Exit 0 only when every requested cell is complete, or a --max-requests trial did what it was asked."""
    from isekai_gen.errors import UserError
    from isekai_gen.evaluate.runner import STOP_REASONS

    outcome, missing = summary["outcome"], summary["unanswered"]
    if summary["batch"] and missing["count"]:
        click.echo(f"batch: {missing['count']} of {summary['requests']} requests wait for batch results")
        return
    if outcome["stopped"] == "max_requests" and not (outcome["failed"] or outcome["gave_up"]):
        click.echo(f"trial: {outcome['started']} requests sent (--max-requests), {missing['count']} of "
                   f"{summary['requests']} still to ask; rerun without --max-requests to continue")
        return
    if not missing["count"]:
        return
    hint = {"permanent_errors": "fix the settings, then rerun with --retry-failed",
            "connection_failures": "check the endpoint, then rerun the same command"}.get(
        outcome["stopped"], "rerun the same command to continue (--retry-failed sends failed ones again)")
    stopped = ""
    if outcome["stopped"]:
        detail = f" ({outcome['last_error']})" if outcome["stopped"] in ("permanent_errors", "connection_failures") else ""
        stopped = f"stopped early: {STOP_REASONS[outcome['stopped']]}{detail}; "
    raise UserError(f"{stopped}{missing['count']} of {summary['requests']} requests unanswered, "
                    f"{missing['cause_count']} of them: {missing['cause']}; {hint}")


@command.command("status")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
def status_command(run_dir) -> None:
    """Done / pending / failed requests and dollars spent, per cell of RUN_DIR."""
    from isekai_gen.evaluate.status import format_status, run_status

    click.echo(format_status(run_status(run_dir)))
