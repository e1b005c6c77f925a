"""Build one split folder, every split of a roots file, or the ``benchmarks`` section of a build.

Each dataset is written into a temporary sibling folder and renamed into place, so
``OUT/<dataset>/`` is either the previous complete split or the new complete split.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from ..config import BenchmarksConfig, BuildConfig, DedupConfig
from ..errors import UserError
from ..fileio import TEMP_MARKER, UMASK, is_leftover, temp_prefix, temp_target
from ..schema import validate
from ..yamlio import load_yaml
from .adapters import get_adapter, ordered_names
from .content import ContentRules, ContentScreen
from .hub import HubAdapter, hub_adapter, output_name
from .hub_snapshot import HF_PREFIX, HubSource, download, parse_source
from .manifest import write_manifest
from .materialize import deviation, place_image, verify_output
from .recipe import MATERIALIZE_MODES, Adapter, Pool, Recipe
from .sampler import Selection, select
from .writer import split_meta, write_split_files

log = logging.getLogger(__name__)

# Near-duplicate distance when the settings name none: the filter stage's default pHash distance.
FILTER_PHASH_DISTANCE = DedupConfig.phash_max_distance

# The previous split folder between the two renames of ``_fresh_folder``: kept by the temporary-file sweep.
OLD_MARKER = ".isekai-gen-old-"
CACHE_FOLDER = ".cache"  # default OUT/.cache/<dataset>/: drawn molecules, reused across builds


def plan_split(adapter: Adapter, root: Path, settings: dict | None = None) -> tuple[Recipe, list[dict]]:
    """Read ``root`` and choose the items from the metadata alone (no file is read): the recipe
    and the split rows (demo rows first, nested). ``build_split`` adds the content checks (and,
    for a Hub copy, the output names' suffixes, which come from the image bytes)."""
    adapter = hub_adapter(adapter, root)
    recipe, pool, selection, _ = _draw(adapter, root, settings or {}, None)
    return recipe, split_rows(pool, selection, recipe, adapter.extra_fields)


def _draw(adapter: Adapter, root: Path, settings: dict, make_screen):
    recipe = adapter.recipe(settings)
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: {adapter.title} root folder not found")
    seed = settings.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"{adapter.name}: seed must be a whole number >= 0, got {seed!r}")
    pool = adapter.read(root, recipe)
    screen = make_screen(pool, recipe) if make_screen else None
    return recipe, pool, select(pool, recipe, seed, root, screen), screen


def split_rows(pool: Pool, selection: Selection, recipe: Recipe, extra_fields: tuple[str, ...],
               screen: ContentScreen | None = None, materialize: str = "copy", name_from_bytes: bool = False) -> list[dict]:
    picks = [("demo", pick) for pick in selection.demo_order()] + [("test", pick) for pick in selection.test_order()]
    positions = [position for _, (_, _, position) in picks]
    chosen = pool.frame.iloc[positions][["file_name", "source_path", "source_split", "group", *extra_fields]]
    rows = []
    for (side, (cell, rank, position)), values in zip(picks, chosen.to_dict("records")):
        row = {name: str(value) for name, value in values.items()}
        row["labels"] = [c for c, value in zip(recipe.classes, pool.labels[position]) if value > 0.5]
        row.update(side=side, stratum=recipe.strata[cell], demo_rank=rank if side == "demo" else None)
        if screen is not None:
            facts = screen.facts(position)
            if name_from_bytes:  # a Hub copy's image: its id plus the suffix of the format its bytes are
                row["file_name"] = output_name(row["file_name"], facts.format)
            row.update(sha256=facts.sha256, image=_image_record(facts, row["file_name"], materialize))
            if "reason" in row["image"] and screen.rules.decode:
                screen.report(f"{facts.path}: {row['image']['reason']}: "
                              f"{row['image']['action'].replace('_', ' ')} as {row['file_name']}")
        rows.append(row)
    return rows


def _image_record(facts, file_name: str, materialize: str) -> dict:
    """What the bytes are and what was done with them (``reason``: why they were not copied as they are)."""
    reason = deviation(Path(file_name).suffix, facts.format, facts.mode)
    if reason and materialize != "none":
        action = "reencoded"
    else:
        action = {"copy": "copied", "symlink": "linked", "none": "not_materialized"}[materialize]
    record = {"source_format": facts.format, "source_mode": facts.mode, "action": action}
    if reason:
        record["reason"] = reason
    return record


def build_split(adapter: Adapter, root: str | Path, out_dir: str | Path, settings: dict | None = None,
                *, cache_dir: Path | None = None, progress: bool = False, report=None,
                phash_distance: int | None = FILTER_PHASH_DISTANCE, source: HubSource | None = None) -> dict:
    """Write ``out_dir/<dataset>/`` and return its summary (counts, fingerprint, content checks).

    ``root`` may hold the native layout or a Hub copy's parquet snapshot (``source``: the snapshot
    ``hub.download`` fetched, with its repo and commit); either way the folder also gets its
    portable ``split-manifest.json`` (``manifest.py``).

    ``cache_dir`` holds images an adapter makes (DrugOOD drawings), per dataset; default
    ``out_dir/.cache``. ``report`` receives warnings and, with ``verify_images``, one line per
    image problem (default: the log). ``phash_distance`` is the near-duplicate distance when the
    settings name none (default: the filter stage's default).
    """
    settings = settings or {}
    report = report or log.warning
    root, out_dir = Path(root), Path(out_dir)
    adapter = hub_adapter(adapter, root, source, report)
    hub = isinstance(adapter, HubAdapter)
    if hub and adapter.source.commit is None:
        report(f"{root}: hf:{adapter.copy.repo} snapshot of unknown commit: the split is not pinned "
               "(use --source hf:REPO@REVISION, or a snapshot from the huggingface_hub cache)")
    materialize = settings.get("materialize", "copy")
    if materialize not in MATERIALIZE_MODES:
        modes = ", ".join(MATERIALIZE_MODES)
        raise UserError(f"{adapter.name}: materialize must be one of {modes}, got {materialize!r}")
    rules = ContentRules.from_settings(adapter.name, settings, phash_distance)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder (the output folder of the splits)")
    cache_dir = Path(cache_dir or out_dir / CACHE_FOLDER) / adapter.name
    _remove_leftovers(out_dir / adapter.name)

    def make_screen(pool, recipe):
        return ContentScreen(adapter, root, cache_dir, pool, recipe, rules, report, progress)

    recipe, pool, selection, screen = _draw(adapter, root, settings, make_screen)
    rows = split_rows(pool, selection, recipe, adapter.extra_fields, screen, materialize, name_from_bytes=hub)
    if recipe.contained_labels:
        report(contained_labels_warning(adapter.name, recipe.contained_labels))
    source_sizes = _source_sizes(adapter, root, rows)
    content = {**screen.summary(), "images": dict(Counter(row["image"]["action"] for row in rows)),
               "not_plain_images": sum("reason" in row["image"] for row in rows)}
    meta = split_meta(recipe, rows, settings.get("seed", 0), materialize, source_sizes, content, pool.layouts)
    if hub:
        meta["source"] = adapter.describe_source()
    with _fresh_folder(out_dir / adapter.name) as folder:
        write_split_files(folder, recipe, rows, meta)  # first: it checks every file_name is a bare name
        write_manifest(folder, meta, rows)
        _materialize(adapter, root, rows, folder / "images", cache_dir, materialize, rules.decode, progress)
    folder = out_dir / adapter.name
    log.info("%s: %d demo, %d test rows -> %s", adapter.name, meta["totals"]["demo"], meta["totals"]["test"], folder)
    return {"dataset": adapter.name, "folder": str(folder), "totals": meta["totals"], "fingerprint": meta["fingerprint"],
            "content": content, "contained_labels": recipe.contained_labels, "layouts": pool.layouts,
            "source": meta.get("source")}


def contained_labels_warning(dataset: str, pairs: list[list[str]]) -> str:
    named = ", ".join(f"{a!r} in {b!r}" for a, b in pairs)
    return (f"{dataset}: class names inside other class names: {named}. isekai-gen score's default matching "
            "(whole words, longest name first) reads them correctly; ManyICL's released eval.py matches "
            "substrings, so a correct answer naming the longer class names both and is dropped as an error")


def _source_sizes(adapter: Adapter, root: Path, rows: list[dict]) -> dict[str, int]:
    """Size of every source file behind the rows; a missing one is an error naming it."""
    sizes = {}
    for row in rows:
        path = row["source_path"].split("#", 1)[0]
        if path not in sizes:
            try:
                sizes[path] = adapter.source_file(root, path).stat().st_size
            except FileNotFoundError:
                raise UserError(f"{root / path}: image referenced by the {adapter.title} metadata is missing") from None
    return sizes


def _materialize(adapter, root, rows, images_dir, cache_dir, mode, verify, progress) -> None:
    from tqdm import tqdm

    if mode == "none":
        return
    images_dir.mkdir()
    for row in tqdm(rows, desc=f"{adapter.name} images", unit="img", disable=not progress):
        target = images_dir / row["file_name"]
        place_image(adapter.image_file(root, row, cache_dir), target, mode, row["image"]["action"] == "reencoded")
        if verify:
            verify_output(target)


@contextlib.contextmanager
def _fresh_folder(target: Path):
    """Yield an empty temporary folder next to ``target``; on success it replaces ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name), dir=target.parent))
    os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes it private; the split folder is an ordinary one
    try:
        yield tmp
        old = None
        if target.exists() or target.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f"{OLD_MARKER}{target.name}.", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_leftovers(target: Path) -> None:
    """Clear what a killed build left next to ``target`` (exporters take every folder for a split).

    A kill between the two renames above leaves the previous split only in ``OLD_MARKER*``: put it back.
    """
    for stale in sorted(target.parent.glob(f"{OLD_MARKER}{target.name}.*")):
        if (stale / target.name).exists() and not (target.exists() or target.is_symlink()):
            os.replace(stale / target.name, target)
        shutil.rmtree(stale, ignore_errors=True)
    for stale in target.parent.glob(f"{TEMP_MARKER}*"):
        if temp_target(stale.name) == target.name and is_leftover(stale.name):
            shutil.rmtree(stale, ignore_errors=True)


def load_roots(path: str | Path) -> dict[str, Path]:
    """A ROOTS.yaml mapping dataset name -> root folder (relative paths: to the YAML file).

    Keys are any accepted spelling of a dataset name (``EuroSAT``, ``terra_incognita``); the
    result is keyed by the canonical names.
    """
    path = Path(path)
    data = load_yaml(path)
    validate(data, "roots", path)
    return {name: _relative_to(path.parent, value) for name, value in canonical_names(data, path).items()}


def _relative_to(base: Path, value: str) -> Path | str:
    if value.startswith(HF_PREFIX):  # a Hub copy: fetched by build_all
        return value
    root = Path(value).expanduser()
    return root if root.is_absolute() else base / root


def build_all(roots: dict[str, Path], out_dir: str | Path, settings: dict | None = None,
              per_dataset: dict[str, dict] | None = None, *, cache_dir: Path | None = None,
              progress: bool = False, report=None, on_done=None,
              phash_distance: int | None = FILTER_PHASH_DISTANCE) -> tuple[dict, dict]:
    """Build every dataset in ``roots`` (Table 1 order) into ``out_dir/<dataset>/``, as many as can be.

    ``settings`` apply to every dataset; ``per_dataset[name]`` overrides them for one. A dataset
    that fails (bad input, a refusing file system) leaves its previous split in place and the
    others are still built. Returns ``(summaries, failures)``: ``{dataset: summary}`` and
    ``{dataset: one-line message}``; ``on_done(summary)`` is called as each one finishes.
    """
    roots = canonical_names(roots, "roots")
    per_dataset = canonical_names(per_dataset or {}, "datasets")  # unknown names fail before anything is written
    summaries, failures = {}, {}
    for name in ordered_names(roots):
        merged = {**(settings or {}), **per_dataset.get(name, {})}
        try:
            root, source = roots[name], None
            if isinstance(root, str) and root.startswith(HF_PREFIX):
                source = download(*parse_source(root), report or log.warning)
                root = source.folder
            summaries[name] = build_split(get_adapter(name), root, out_dir, merged, cache_dir=cache_dir,
                                          progress=progress, report=report, phash_distance=phash_distance,
                                          source=source)
        except UserError as exc:
            failures[name] = str(exc)
        except OSError as exc:
            if exc.strerror is None:
                raise
            failures[name] = f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
        else:
            if on_done is not None:
                on_done(summaries[name])
    return summaries, failures


def canonical_names(mapping: dict, source) -> dict:
    """``mapping`` keyed by canonical dataset names instead of any accepted spelling.

    A key that names no dataset, or two keys naming one dataset (``EuroSAT`` and ``eurosat``), is
    an error naming ``source`` (the file or section the mapping came from).
    """
    result, keys = {}, {}
    for key, value in mapping.items():
        try:
            canonical = get_adapter(key).name
        except UserError as exc:
            raise UserError(f"{source}: {exc}") from None
        if canonical in result:
            raise UserError(f"{source}: keys {keys[canonical]!r} and {key!r} both name dataset {canonical!r}")
        result[canonical], keys[canonical] = value, key
    return result


def run_benchmarks(config: BuildConfig, out_dir: Path, *, progress: bool = False) -> dict:
    """The ``benchmarks`` section of a build config -> ``out_dir/benchmarks/<dataset>/``.

    ``roots`` is a ROOTS.yaml path or an inline mapping (paths relative to the config file);
    nothing is built when it is empty. Near-duplicates use the build's own filter threshold.
    Returns ``{dataset: summary}``; if any dataset failed, the others are built first and then
    one error names every failure. Takes the build config: the filter's pHash distance is the
    default near-duplicate distance, and paths are relative to the config file.
    """
    section: BenchmarksConfig = config.benchmarks
    if not section.roots:
        return {}
    if isinstance(section.roots, str):
        roots = load_roots(config.resolve_path(section.roots))
    else:  # already checked as part of benchmarks_config
        roots = {name: config.resolve_path(value)
                 for name, value in canonical_names(section.roots, "config benchmarks.roots").items()}
    # Drawn molecules go to the build's shared cache, so OUT/benchmarks/ holds only split folders.
    summaries, failures = build_all(roots, Path(out_dir) / "benchmarks", section.split_settings(),
                                    section.dataset_options(), cache_dir=Path(out_dir) / "cache", progress=progress,
                                    phash_distance=config.filter.dedup.phash_max_distance)
    if failures:
        listed = "; ".join(f"{name}: {message}" for name, message in failures.items())
        raise UserError(f"benchmarks: {len(failures)} of {len(failures) + len(summaries)} splits failed ({listed})")
    return summaries
