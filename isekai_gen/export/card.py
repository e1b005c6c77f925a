"""The dataset card ``OUT/export/hf/README.md``, rendered from the top-level ``DATASET_CARD.md``.

The template holds the prose of the datasheet and ``{{ name }}`` placeholders; this module
computes every placeholder from the build (manifest numbers, config, run.json, the export) as
Markdown. The YAML front matter comes from ``huggingface_hub.DatasetCardData`` so the Hub and
``datasets`` read it (``configs`` maps each config and split to its Parquet files).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

from ..catalog import Catalog
from ..config import BuildConfig, CardConfig
from ..errors import UserError
from ..fileio import atomic_write_text, read_json
from ..filtering.rules import REJECT_REASONS
from ..resources import DATASET_CARD_TEMPLATE

README = "README.md"
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def size_category(count: int) -> str:
    """The Hub's ``size_categories`` bucket of a row count."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M")]
    return next((name for bound, name in bounds if count < bound), "10M<n<100M")


# The papers whose protocols the dataset implements (the Hub links `arxiv:` tags to the paper pages).
PAPER_TAGS = ("arxiv:2308.07891", "arxiv:2405.09798")   # Link-Context Learning (ISEKAI), ManyICL


def dataset_infos(hf_dir: Path, hf_configs: dict):
    """``datasets``' own ``DatasetInfosDict`` of the written Parquet files: each config's features (read
    back from the Parquet schema metadata, where ``datasets`` keeps them) and its split's size."""
    import pyarrow.parquet as pq
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict

    infos = {}
    for name, info in hf_configs.items():
        files = [Path(hf_dir) / relative for relative in info["files"]]
        metadata = [pq.read_metadata(path) for path in files]
        # Uncompressed Arrow bytes, what `push_to_hub` records as num_bytes; the files are the download.
        num_bytes = sum(meta.row_group(i).total_byte_size for meta in metadata for i in range(meta.num_row_groups))
        splits = SplitDict()
        splits.add(SplitInfo(name=info["split"], num_bytes=num_bytes, num_examples=info["rows"]))
        infos[name] = DatasetInfo(features=Features.from_arrow_schema(pq.read_schema(files[0])), splits=splits,
                                  download_size=sum(path.stat().st_size for path in files), dataset_size=num_bytes)
    return DatasetInfosDict(infos)


def card_data(card: CardConfig, hf_configs: dict, images: int, *, hf_dir: Path):
    """The front matter as ``DatasetCardData``: licence, tasks, size, name, provenance, tags, configs and
    ``dataset_info`` (features and split sizes, as ``datasets.push_to_hub`` writes it)."""
    from huggingface_hub import DatasetCardData

    # The first config is the default: hf.write_hf_data writes the images config first.
    configs = [
        {"config_name": name, "data_files": [{"split": info["split"], "path": info["data_files"]}],
         **({"default": True} if position == 0 else {})}
        for position, (name, info) in enumerate(hf_configs.items())
    ]
    tags = list(dict.fromkeys([*card.tags, *PAPER_TAGS]))
    # Every image and episode is made here: "original" (the Hub's spec, hub-docs datasetcard.md). Its other
    # values name Hub datasets ("laion/laion-2b", legacy "extended|imagenet-1k"); the packaged benchmark
    # splits are only ids and labels of datasets known here by a folder name, not a Hub id, so the card's
    # benchmark table names them instead of a `source_datasets` entry that would link nowhere.
    sources = ["original"]
    data = DatasetCardData(
        license=card.license, language=["en"], task_categories=list(card.task_categories),
        size_categories=[size_category(images)], pretty_name=card.pretty_name, tags=tags,
        annotations_creators=["machine-generated"], source_datasets=sources, configs=configs,
    )
    dataset_infos(hf_dir, hf_configs).to_dataset_card_data(data)
    return data


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def images_per_concept(catalog: Catalog, manifest_rows: list[dict]) -> str:
    generated, ok, kept = Counter(), Counter(), Counter()
    for row in manifest_rows:
        generated[row["concept_id"]] += 1
        ok[row["concept_id"]] += row["status"] == "ok"
        kept[row["concept_id"]] += row.get("kept") is True
    rows = [(index, f"`{c.id}`", c.label, c.world, f"`{c.group}`", generated[c.id], ok[c.id], kept[c.id])
            for index, c in enumerate(catalog.concepts)]
    rows.append(("", "**total**", "", "", "", sum(generated.values()), sum(ok.values()), sum(kept.values())))
    return _table(("class", "concept", "label", "world", "group", "generated", "valid", "kept"), rows)


def filter_outcomes(manifest_rows: list[dict]) -> str:
    """Images removed per rule (in the filter's order), as a share of all generated images."""
    total = len(manifest_rows)
    reasons = Counter(row.get("reject_reason") for row in manifest_rows if row.get("kept") is not True)
    rules = {**REJECT_REASONS, **{r: "(not a rule of this version)" for r in reasons if r not in REJECT_REASONS}}
    rows = [(f"`{reason}`", rule, reasons[reason], _percent(reasons[reason], total))
            for reason, rule in rules.items() if reason is not None]
    if reasons[None]:
        rows.append(("(none recorded)", "", reasons[None], _percent(reasons[None], total)))
    kept = sum(row.get("kept") is True for row in manifest_rows)
    rows.append(("**kept**", "passed every rule", kept, _percent(kept, total)))
    return _table(("reason", "rule", "images", "share of generated"), rows)


def revision_text(config: BuildConfig, manifest_rows: list[dict]) -> str:
    """The commit(s) the images were generated from, as the rows record them (never a guess such as
    ``main``): a local pipeline folder that is no Hub snapshot has none."""
    requested = config.generation.model.revision
    commits = sorted({row["model_revision"] for row in manifest_rows if row.get("model_revision")})
    if not commits:
        return ("none recorded (a local pipeline folder, not a Hub snapshot)" if not requested else
                f"`{requested}` requested; no commit recorded")
    shown = ", ".join(f"`{commit}`" for commit in commits)
    return shown + (f" (requested `{requested}`)" if requested and requested not in commits else "")


def generator_table(config: BuildConfig, manifest_rows: list[dict]) -> str:
    model = config.generation.model
    licence = f"[{model.license}]({model.license_url})" if model.license_url else model.license
    pipelines = sorted({row.get("pipeline_class") or "?" for row in manifest_rows})
    dtypes = sorted({f"{row.get('dtype', '?')} on {row.get('device_type', '?')}" for row in manifest_rows})
    generation = config.generation
    rows = [
        ("model", f"`{model.id}`"), ("revision", revision_text(config, manifest_rows)), ("licence", licence),
        ("pipeline", ", ".join(pipelines)), ("steps", generation.steps),
        ("guidance scale", generation.guidance_scale), ("size", f"{generation.width}x{generation.height}"),
        ("precision", ", ".join(dtypes)),
    ]
    return _table(("setting", "value"), rows)


def filter_models_table(config: BuildConfig, manifest_rows: list[dict]) -> str:
    models = sorted({(row["scores"].get("model"), row["scores"].get("pretrained"))
                     for row in manifest_rows if row.get("scores")}, key=str)
    if not models:
        return "No images were scored (the filter stage recorded no CLIP scores)."
    licence = config.filter.model.license or "see the model card of the weights (not stated in the build config)"
    return _table(("CLIP model", "pretrained weights", "licence"),
                  [(f"`{name}`", f"`{tag}`" if tag else "none (random weights)", licence) for name, tag in models])


# Filter settings that only change speed or the text prompts, not which images survive.
_NOT_FILTER_RULES = {"model", "templates", "device", "batch_size", "num_workers"}


def filter_settings_table(config: BuildConfig) -> str:
    """The filter thresholds of this build (config ``filter`` section, flattened)."""
    def flatten(section: dict, prefix: str = ""):
        for key, value in sorted(section.items()):
            if isinstance(value, dict):
                yield from flatten(value, f"{prefix}{key}.")
            else:
                shown = json.dumps(value) if value is None or isinstance(value, bool) else value
                yield f"`filter.{prefix}{key}`", shown

    rows = list(flatten({k: v for k, v in config.filter.to_dict().items() if k not in _NOT_FILTER_RULES}))
    return _table(("setting", "value"), rows)


def seeds_text(config: BuildConfig, manifest_rows: list[dict]) -> str:
    retried = sum(row.get("attempt", 0) > 0 for row in manifest_rows)
    failed = sum(row["status"] != "ok" for row in manifest_rows)
    seeds = [row["seed"] for row in manifest_rows]
    span = f"{min(seeds)}..{max(seeds)}" if seeds else "none"
    return (
        f"Global seed `{config.seed}`; every image's own seed is in the `seed` column (range {span}), "
        f"so any single image can be regenerated. {retried} image(s) needed fresh-seed retries after a broken "
        f"output (NaN, black, uniform or blacked-out) and {failed} job(s) failed every attempt."
    )


def configs_table(hf_configs: dict) -> str:
    return _table(("config", "split", "rows", "files"),
                  [(f"`{name}`", info["split"], info["rows"], len(info["files"])) for name, info in hf_configs.items()])


def episodes_text(episodes: list[dict]) -> str:
    if not episodes:
        return "This build has no episodes (the episode stage did not run); only the `images` config is present."
    rows = []
    for set_name in sorted({e["set"] for e in episodes}):
        members = [e for e in episodes if e["set"] == set_name]
        pairs = {(e["positive_concept"], e["negative_concept"]) for e in members}
        shots = sorted({e["max_shot"] for e in members})
        rows.append((set_name, len(members), len(pairs), ", ".join(map(str, shots))))
    return _table(("set", "episodes (queries)", "concept pairs", "support images per class"), rows)


def benchmarks_text(benchmarks: list[dict] | None) -> str:
    if not benchmarks:
        return "No ManyICL splits were packaged with this export."
    rows = [(b["dataset"], b.get("license") or "see the source dataset",
             f"included ({b['images']} files)" if b["redistributable"] else "not included (licence)")
            for b in benchmarks]
    return ("Split files (image ids and one-hot labels) under `benchmarks/<dataset>/`; images only where the "
            "source licence allows redistribution. The others are rebuilt from your own copy of the dataset with "
            "`isekai-gen splits build --from-manifest benchmarks/<dataset>/split-manifest.json --root DIR --out OUT` "
            "(every image checked by sha256).\n\n" + _table(("dataset", "licence", "images"), rows))


def smoke_test_warning(manifest_rows: list[dict]) -> str:
    smoke = sum(row.get("smoke_test") is True for row in manifest_rows)
    if not smoke:
        return ""
    return (
        "> [!WARNING]\n"
        f"> **SMOKE-TEST BUILD: THESE IMAGES ARE NOISE.** {smoke} of {len(manifest_rows)} images were generated "
        "with random-weight pipelines to test the tooling. They depict nothing; scores, filter outcomes and "
        "episodes are meaningless. Do not evaluate models on this data and do not publish it as a dataset.\n"
    )


def versions_table(run: dict) -> str:
    versions = run.get("versions") or {}
    return _table(("package", "version"), [(name, versions[name]) for name in sorted(versions)])


def card_values(*, config, run, catalog, manifest_rows, items, episodes, hf_configs, benchmarks, content_hash,
                hf_dir) -> dict:
    """Every template placeholder's Markdown."""
    groups = len({c.group for c in catalog.concepts})
    return {
        "card_data": card_data(config.export.card, hf_configs, len(items), hf_dir=hf_dir).to_yaml(),
        "pretty_name": config.export.card.pretty_name,
        "build_name": config.name,
        "smoke_test_warning": smoke_test_warning(manifest_rows),
        "summary": (f"{len(items)} images of {len(catalog.concepts)} concepts in {groups} groups "
                    f"(each an invented ISEKAI concept and its real-world look-alike), and {len(episodes)} "
                    "link-context episodes."),
        "images_per_concept": images_per_concept(catalog, manifest_rows),
        "filter_outcomes": filter_outcomes(manifest_rows),
        "generator": generator_table(config, manifest_rows),
        "generator_license": config.generation.model.license,
        "filter_models": filter_models_table(config, manifest_rows),
        "filter_settings": filter_settings_table(config),
        "seeds": seeds_text(config, manifest_rows),
        "configs": configs_table(hf_configs),
        "split": config.export.split,
        "episodes": episodes_text(episodes),
        "benchmarks": benchmarks_text(benchmarks),
        "catalog": f"`{Path(catalog.source).name}` ({catalog.name})",
        "probes": probe_card_text(Path(hf_dir).parent.parent),   # OUT/probes/ of OUT/export/hf
        "license": config.export.card.license,
        "tool_version": str(run.get("tool_version", "unknown")),
        "versions": versions_table(run),
        "content_hash": content_hash,
    }


def render(template: str, values: dict, source) -> str:
    """Fill ``{{ name }}`` placeholders; a placeholder without a value is an error naming the template."""
    missing = sorted({name for name in PLACEHOLDER.findall(template) if name not in values})
    if missing:
        raise UserError(f"{source}: unknown placeholder(s) {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template)


def check_card(text: str, source) -> None:
    """The card must parse with ``huggingface_hub``'s card classes and declare ``configs``."""
    from huggingface_hub import DatasetCard

    try:
        card = DatasetCard(text, ignore_metadata_errors=False)
    except Exception as exc:  # huggingface_hub raises ValueError or yaml errors for broken front matter
        raise UserError(f"{source}: dataset card front matter is invalid ({' '.join(str(exc).split())})") from None
    if not card.data.to_dict().get("configs"):
        raise UserError(f"{source}: dataset card front matter has no `configs`")


def write_card(hf_dir: Path, *, template: Path = DATASET_CARD_TEMPLATE, **facts) -> Path:
    """Render ``template`` with the build's facts into ``hf_dir/README.md``; return its path."""
    try:
        text = template.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{template}: dataset card template not found") from None
    rendered = render(text, card_values(hf_dir=hf_dir, **facts), template)
    path = Path(hf_dir) / README
    check_card(rendered, path)
    atomic_write_text(path, rendered)
    return path


# Written by `isekai-gen catalog probe` (invent/probe.py); read here because the card is export's.
def probe_card_text(build_dir: Path) -> str:
    """The dataset card's paragraph on the probes recorded in ``OUT/probes/``."""
    files = sorted(Path(build_dir).glob("probes/*.json"))
    if not files:
        return ("No contamination probe has been run on this build (`isekai-gen catalog probe OUT --model ...` "
                "asks a model whether it already knows the concepts).")
    rows = []
    for path in files:
        probe_summary = read_json(path)
        known = ", ".join(probe_summary["known"]) or "none"
        rows.append(f"| {probe_summary['model']} | {' + '.join(probe_summary['kinds'])} | "
                    f"{probe_summary['known_share']:.0%} | {known} |")
    return "\n".join(["Contamination probes (`isekai-gen catalog probe`): the share of invented concepts each model "
                      "already knew.", "", "| model | probe | known share | known concepts |", "|---|---|---|---|",
                      *rows])
