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
from pathlib import Path

from ..config import load_yaml, resolve_path
from ..errors import UserError
from ..fileio import UMASK
from ..schema import validate
from .materialize import place_image, verify_image
from .recipe import MATERIALIZE_MODES, Adapter, Pool, Recipe
from .sampler import Selection, select
from .writer import split_meta, write_split_files

log = logging.getLogger(__name__)

CACHE_FOLDER = ".cache"  # default OUT/.cache/<dataset>/: drawn molecules, reused across builds


def plan_split(adapter: Adapter, root: Path, settings: dict | None = None) -> tuple[Recipe, list[dict]]:
    """Read ``root`` and choose the items: the recipe and the split rows (demo rows first, nested)."""
    settings = settings or {}
    recipe = adapter.recipe(settings)
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: {adapter.title} root folder not found")
    seed = settings.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"{adapter.name}: seed must be a whole number >= 0, got {seed!r}")
    pool = adapter.read(root, recipe)
    selection = select(pool, recipe, seed, root)
    return recipe, split_rows(pool, selection, recipe, adapter.extra_fields)


def split_rows(pool: Pool, selection: Selection, recipe: Recipe, extra_fields: tuple[str, ...]) -> list[dict]:
    picks = [("demo", pick) for pick in selection.demo_order()] + [("test", pick) for pick in selection.test_order()]
    positions = [position for _, (_, _, position) in picks]
    chosen = pool.frame.iloc[positions][["file_name", "source_path", "source_split", "group", *extra_fields]]
    rows = []
    for (side, (cell, rank, position)), values in zip(picks, chosen.to_dict("records")):
        row = {name: str(value) for name, value in values.items()}
        row["labels"] = [c for c, value in zip(recipe.classes, pool.labels[position]) if value > 0.5]
        row.update(side=side, stratum=recipe.strata[cell], demo_rank=rank if side == "demo" else None)
        rows.append(row)
    return rows


def build_split(adapter: Adapter, root: str | Path, out_dir: str | Path, settings: dict | None = None,
                *, cache_dir: Path | None = None, progress: bool = False) -> dict:
    """Write ``out_dir/<dataset>/`` and return its summary (counts and fingerprint).

    ``cache_dir`` holds images an adapter makes (DrugOOD drawings), per dataset; default
    ``out_dir/.cache``.
    """
    settings = settings or {}
    root, out_dir = Path(root), Path(out_dir)
    materialize = settings.get("materialize", "copy")
    if materialize not in MATERIALIZE_MODES:
        modes = ", ".join(MATERIALIZE_MODES)
        raise UserError(f"{adapter.name}: materialize must be one of {modes}, got {materialize!r}")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder (the output folder of the splits)")
    _remove_leftovers(out_dir / adapter.name)
    recipe, rows = plan_split(adapter, root, settings)
    source_sizes = _source_sizes(adapter, root, rows)
    meta = split_meta(recipe, rows, settings.get("seed", 0), materialize, source_sizes)
    cache_dir = Path(cache_dir or out_dir / CACHE_FOLDER) / adapter.name
    with _fresh_folder(out_dir / adapter.name) as folder:
        _materialize(adapter, root, rows, folder / "images", cache_dir, materialize,
                     settings.get("verify_images", False), progress)
        write_split_files(folder, recipe, rows, meta)
    folder = out_dir / adapter.name
    log.info("%s: %d demo, %d test rows -> %s", adapter.name, meta["totals"]["demo"], meta["totals"]["test"], folder)
    return {"dataset": adapter.name, "folder": str(folder), "totals": meta["totals"], "fingerprint": meta["fingerprint"]}


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

    if mode == "none" and not verify:
        return
    if mode != "none":
        images_dir.mkdir()
    for row in tqdm(rows, desc=f"{adapter.name} images", unit="img", disable=not progress):
        source = adapter.image_file(root, row, cache_dir)
        if verify:
            verify_image(source)
        if mode != "none":
            place_image(source, images_dir / row["file_name"], mode)


@contextlib.contextmanager
def _fresh_folder(target: Path):
    """Yield an empty temporary folder next to ``target``; on success it replaces ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}.", dir=target.parent))
    os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes it private; the split folder is an ordinary one
    try:
        yield tmp
        old = None
        if target.exists() or target.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".old-{target.name}.", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_leftovers(target: Path) -> None:
    """Clear what a killed build left next to ``target`` (exporters take every folder for a split).

    A kill between the two renames above leaves the previous split only in ``.old-*``: put it back.
    """
    for stale in sorted(target.parent.glob(f".old-{target.name}.*")):
        if (stale / target.name).exists() and not (target.exists() or target.is_symlink()):
            os.replace(stale / target.name, target)
        shutil.rmtree(stale, ignore_errors=True)
    for stale in target.parent.glob(f".tmp-{target.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)


def load_roots(path: str | Path) -> dict[str, Path]:
    """A ROOTS.yaml mapping dataset name -> root folder (relative paths: to the YAML file)."""
    path = Path(path)
    data = load_yaml(path)
    validate(data, "roots", path)
    return {name: _relative_to(path.parent, value) for name, value in data.items()}


def _relative_to(base: Path, value: str) -> Path:
    root = Path(value).expanduser()
    return root if root.is_absolute() else base / root


def build_all(roots: dict[str, Path], out_dir: str | Path, settings: dict | None = None,
              per_dataset: dict[str, dict] | None = None, *, cache_dir: Path | None = None,
              progress: bool = False) -> dict:
    """Build every dataset in ``roots`` (Table 1 order) into ``out_dir/<dataset>/``.

    ``settings`` apply to every dataset; ``per_dataset[name]`` overrides them for one.
    """
    from isekai_gen.splits import get_adapter, ordered_names

    per_dataset = per_dataset or {}
    for name in (*roots, *per_dataset):
        get_adapter(name)  # unknown names fail before anything is written
    summary = {}
    for name in ordered_names(roots):
        merged = {**(settings or {}), **per_dataset.get(name, {})}
        summary[name] = build_split(get_adapter(name), roots[name], out_dir, merged,
                                    cache_dir=cache_dir, progress=progress)
    return summary


def run_benchmarks(config: dict, out_dir: Path, *, progress: bool = False) -> dict:
    """The ``benchmarks`` section of a build config -> ``out_dir/benchmarks/<dataset>/``.

    ``roots`` is a ROOTS.yaml path or an inline mapping (paths relative to the config file);
    nothing is built when it is empty. Returns ``{dataset: summary}``.
    """
    section = config.get("benchmarks") or {}
    validate(section, "benchmarks_config", "config benchmarks")
    roots_value = section.get("roots")
    if not roots_value:
        return {}
    if isinstance(roots_value, str):
        roots = load_roots(resolve_path(config, roots_value))
    else:  # already checked as part of benchmarks_config
        roots = {name: resolve_path(config, value) for name, value in roots_value.items()}
    settings = {key: section[key] for key in ("seed", "materialize", "verify_images") if key in section}
    # Drawn molecules go to the build's shared cache, so OUT/benchmarks/ holds only split folders.
    return build_all(roots, Path(out_dir) / "benchmarks", settings, section.get("datasets") or {},
                     cache_dir=Path(out_dir) / "cache", progress=progress)
