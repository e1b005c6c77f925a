"""`BuildConfig`: the typed, frozen build configuration, one dataclass per section.

Built once from the merged, schema-validated mapping (``isekai_gen.config.load_config``), then
read as attributes everywhere; a stage takes its own section, or the ``BuildConfig`` where it reads
several (ARCHITECTURE.md, "Build configuration", says which and why). Field order and defaults
are those of ``configs/_base.yaml`` (a test holds the two equal, key for key), so ``to_dict()``
writes run.json exactly as the merged mapping was, and ``from_dict()`` reads an older run.json
that lacks newer keys with their documented defaults. Stdlib dataclasses, not pydantic: the JSON
Schema already validates, so a plain frozen record is all that is left to do (as
``evaluate.config.EvaluateConfig``). Lists become tuples; the free-form mappings (benchmark roots
and per-dataset options, whose keys are the datasets' own) stay dicts, copied in and out. The
mapping <-> dataclass conversion is hand-written (``_build``/``to_plain``, ~30 lines): dacite or
cattrs would add a dependency for what the schema has already checked.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class _FromFilter:
    """Default of ``benchmarks.near_duplicate_distance``: the filter's ``filter.dedup.phash_max_distance``.

    Not a value of its own: ``to_dict`` leaves the key out, as the shipped defaults do."""

    def __repr__(self) -> str:
        return "FROM_FILTER"

    def __reduce__(self) -> str:
        return "FROM_FILTER"   # pickled (to Ray workers) and copied as the one module-level instance


FROM_FILTER = _FromFilter()


class Section:
    """What every section can do: say itself as the plain mapping the YAML files and run.json hold."""

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


@dataclass(frozen=True)
class ModelRef(Section):
    """The diffusers text-to-image pipeline: a Hub id (at ``revision``) or a local ``path``."""
    id: str = "stabilityai/sdxl-turbo"
    revision: str | None = None
    path: str | None = None
    variant: str | None = None
    license: str = "sai-nc-community"
    license_url: str | None = "https://huggingface.co/stabilityai/sdxl-turbo/blob/main/LICENSE.md"


@dataclass(frozen=True)
class GenerationConfig(Section):
    model: ModelRef = field(default_factory=ModelRef)
    images_per_concept: int = 64
    steps: int = 4
    guidance_scale: float = 0.0
    width: int = 512
    height: int = 512
    batch_size: int = 8
    dtype: str = "auto"
    device: str = "auto"
    max_retries: int = 3
    compile: bool = False
    # True: SDXL's VAE overflows in fp16 (NaN / black images), so an fp16 run decodes in fp32
    # (diffusers' `force_upcast`); it changes nothing in float32 or bfloat16 runs.
    vae_fp32_decode: bool = True
    max_sequence_length: int | None = None


@dataclass(frozen=True)
class EngineConfig(Section):
    name: str = "local"
    ray_address: str | None = None
    min_actors: int | None = None
    max_actors: int | None = None
    cpus_per_actor: int | None = None


@dataclass(frozen=True)
class FilterModelConfig(Section):
    name: str = "ViT-L-14"
    pretrained: str | None = "datacomp_xl_s13b_b90k"
    weights: str | None = None
    config: str | None = None
    init_seed: int = 0
    license: str | None = "mit"


@dataclass(frozen=True)
class DedupConfig(Section):
    phash_max_distance: int | None = 10   # imagededup's default for 64-bit pHash
    cosine_threshold: float | None = 0.95
    cross_concept_search: str = "exact"


@dataclass(frozen=True)
class FilterConfig(Section):
    model: FilterModelConfig = field(default_factory=FilterModelConfig)
    device: str = "auto"
    batch_size: int = 64
    num_workers: int = 2
    templates: tuple[str, ...] = ("a photo of a {label}.", "a photo of a {name}.", "an image of a {name}.",
                                  "{name}: {description}", "{description}")
    zeroshot_logit_scale: float = 100.0
    min_pixel_std: float = 2.0
    check_size: bool = True
    mode: str = "thresholds"
    min_alignment: float = 0.2
    min_margin: float = 0.0
    require_top1: bool = False
    top_fraction: float = 0.3
    rank_by: str = "alignment"
    dedup: DedupConfig = field(default_factory=DedupConfig)
    max_per_concept: int | None = None
    min_per_concept: int = 32
    max_topup_rounds: int = 3


@dataclass(frozen=True)
class Isekai10Config(Section):
    enabled: bool = True
    groups: int | tuple[str, ...] | None = 10


@dataclass(frozen=True)
class PairConfig(Section):
    enabled: bool = True
    partner: str = "hardest"
    partners_per_concept: int = 1


@dataclass(frozen=True)
class EpisodesConfig(Section):
    max_shot: int = 16
    queries_per_concept: int = 8
    isekai10: Isekai10Config = field(default_factory=Isekai10Config)
    pair: PairConfig = field(default_factory=PairConfig)


@dataclass(frozen=True)
class WebDatasetExportConfig(Section):
    enabled: bool = True
    max_samples_per_shard: int = 1000
    max_bytes_per_shard: int = 500_000_000


@dataclass(frozen=True)
class HfExportConfig(Section):
    enabled: bool = True
    max_rows_per_shard: int = 1000
    max_bytes_per_shard: int = 500_000_000
    row_group_rows: int = 100


@dataclass(frozen=True)
class LclExportConfig(Section):
    images: str = "clone"


@dataclass(frozen=True)
class CardConfig(Section):
    pretty_name: str = "ISEKAI (generated)"
    license: str = "cc-by-nc-4.0"
    task_categories: tuple[str, ...] = ("image-classification", "text-to-image")
    tags: tuple[str, ...] = ("in-context-learning", "link-context-learning", "synthetic", "few-shot")


@dataclass(frozen=True)
class ExportConfig(Section):
    split: str = "test"
    webdataset: WebDatasetExportConfig = field(default_factory=WebDatasetExportConfig)
    hf: HfExportConfig = field(default_factory=HfExportConfig)
    lcl: LclExportConfig = field(default_factory=LclExportConfig)
    card: CardConfig = field(default_factory=CardConfig)


# The benchmark settings that are also `isekai-gen splits` options (manyicl's per-split settings).
SPLIT_SETTINGS = ("seed", "materialize", "verify_images", "multi_label", "bad_images", "near_duplicate_distance",
                  "exclude_near_duplicates")


@dataclass(frozen=True)
class BenchmarksConfig(Section):
    roots: str | dict | None = None
    seed: int = 0
    materialize: str = "copy"
    verify_images: bool = False
    bad_images: str = "reencode"
    multi_label: str = "exclude"
    exclude_near_duplicates: bool = False
    datasets: dict = field(default_factory=dict)
    near_duplicate_distance: int | None | _FromFilter = FROM_FILTER

    def split_settings(self) -> dict[str, Any]:
        """The settings every split of the build shares, as manyicl's split builders take them."""
        values = self.to_dict()
        return {key: values[key] for key in SPLIT_SETTINGS if key in values}

    def dataset_options(self) -> dict[str, dict]:
        """Per-dataset overrides (``benchmarks.datasets``), keyed as the user wrote them."""
        return copy.deepcopy(self.datasets)


@dataclass(frozen=True)
class BuildConfig(Section):
    name: str = "isekai"
    smoke_test: bool = False
    catalog: str = "isekai"
    concepts: tuple[str, ...] | None = None
    seed: int = 0
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    episodes: EpisodesConfig = field(default_factory=EpisodesConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    benchmarks: BenchmarksConfig = field(default_factory=BenchmarksConfig)
    # Folder of the user's --config file: relative paths in the config are relative to it.
    # Bookkeeping, not a setting: run.json records it beside the config, not in it.
    config_dir: str | None = field(default=None, metadata={"private": True})  # to_dict leaves it out

    @classmethod
    def from_dict(cls, values: dict, config_dir: str | None = None) -> "BuildConfig":
        """A config from an already validated mapping (``isekai_gen.config.build_config`` validates);
        missing keys take the defaults."""
        return dataclasses.replace(_build(cls, values), config_dir=config_dir)

    def resolve_path(self, value: str | Path) -> Path:
        """A path from the config, relative to the user's config file (or the cwd)."""
        path = Path(value).expanduser()
        if not path.is_absolute() and self.config_dir:
            path = Path(self.config_dir) / path
        return path


@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _nested_class(kind) -> type | None:
    """The dataclass a field holds, if any (``X`` or ``X | None``)."""
    for option in typing.get_args(kind) or (kind,):
        if isinstance(option, type) and dataclasses.is_dataclass(option):
            return option
    return None


def _build(cls, values: dict):
    kwargs = {}
    for item in dataclasses.fields(cls):
        if item.name not in values or item.metadata.get("private"):
            continue
        value, nested = values[item.name], _nested_class(_hints(cls)[item.name])
        if nested is not None and isinstance(value, dict):
            kwargs[item.name] = _build(nested, value)
        elif isinstance(value, list):
            kwargs[item.name] = tuple(copy.deepcopy(value))
        else:
            kwargs[item.name] = copy.deepcopy(value)
    return cls(**kwargs)


def to_plain(value):
    """A section (or value) as plain JSON-ready data: tuples as lists, unset fields left out."""
    if dataclasses.is_dataclass(value):
        return {item.name: to_plain(getattr(value, item.name)) for item in dataclasses.fields(value)
                if not item.metadata.get("private") and getattr(value, item.name) is not FROM_FILTER}
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value
