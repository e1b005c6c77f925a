"""``splits build --from-manifest``: rebuild exactly a shared split from someone else's copy of the dataset.

Every image the manifest names is found in the user's copy (by original id or file name) and
verified by sha256 before anything is written; then the split folder is written as ``build_split``
writes it, with the manifest's facts recorded in ``split.json``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tqdm import tqdm

from ..errors import UserError
from ..fileio import sha256_file
from . import build
from .adapters import get_adapter
from .content import inspect_image
from .hub import HubAdapter, hub_adapter
from .manifest import ROW_FIELDS, index_rows, read_manifest, recipe_settings, write_manifest
from .writer import split_meta, write_split_files


def materialize_manifest(manifest_path: str | Path, root: str | Path, out_dir: str | Path, *,
                         materialize: str = "copy", source=None, cache_dir: Path | None = None,
                         progress: bool = False) -> dict:
    """Write ``out_dir/<dataset>/`` holding exactly the manifest's split, read from ``root``.

    ``source``: a ``hub.HubSource`` (``--source hf:...``). Returns the summary ``build_split``
    returns. Every image is verified by sha256 before anything is written.
    """
    manifest_path, root, out_dir = Path(manifest_path), Path(root), Path(out_dir)
    manifest = read_manifest(manifest_path)
    adapter = hub_adapter(get_adapter(manifest["dataset"]), root, source)
    if not root.is_dir():
        raise UserError(f"{root}: {adapter.title} root folder not found")
    recipe = adapter.recipe(recipe_settings(manifest))
    if list(recipe.classes) != list(manifest["recipe"]["classes"]):
        raise UserError(f"{manifest_path}: classes {manifest['recipe']['classes']} are not {adapter.title}'s "
                        f"canonical order {list(recipe.classes)}")
    cache_dir = Path(cache_dir or out_dir / build.CACHE_FOLDER) / adapter.name
    pool = adapter.read(root, recipe)
    records = pool.frame.to_dict("records")
    by_id = index_rows(records, pool.layouts, isinstance(adapter, HubAdapter))

    problems, rows = [], []
    for wanted in tqdm(manifest["rows"], desc=f"{adapter.name} verify", unit="img", disable=not progress):
        keys = (wanted["original_id"], wanted["file_name"], Path(wanted["file_name"]).stem)
        position = next((by_id[key] for key in keys if key in by_id), None)
        if position is None:
            problems.append(f"{wanted['original_id']!r} (for {wanted['file_name']}) is not in {root}")
            continue
        record = {key: str(value) for key, value in records[position].items()}
        path = Path(adapter.image_file(root, record, cache_dir))
        if not path.is_file():
            problems.append(f"{path} (for {wanted['file_name']}) is missing")
            continue
        digest = sha256_file(path)
        if digest != wanted["sha256"]:
            problems.append(f"{path} (for {wanted['file_name']}) has other bytes (sha256 {digest[:12]}..., "
                            f"manifest {wanted['sha256'][:12]}...)")
            continue
        facts = inspect_image(path, decode=False, phash=False)
        row = {key: wanted[key] for key in ROW_FIELDS}
        row.update(source_path=record["source_path"], sha256=digest,
                   image=build._image_record(facts, wanted["file_name"], materialize))
        row.update({field: record[field] for field in adapter.extra_fields if field in record})
        rows.append(row)
    if problems:
        total = len(manifest["rows"])
        raise UserError(f"{manifest_path}: {len(problems)} of {total} images missing or different in this copy; "
                        f"first: {problems[0]}")
    meta = split_meta(recipe, rows, manifest["seed"], materialize, build._source_sizes(adapter, root, rows), None,
                      pool.layouts)
    if isinstance(adapter, HubAdapter):
        meta["source"] = adapter.describe_source()
    meta["manifest"] = {"file": manifest_path.name, "fingerprint": manifest["fingerprint"], "verified": len(rows)}
    build._remove_leftovers(out_dir / adapter.name)
    with build._fresh_folder(out_dir / adapter.name) as folder:
        write_split_files(folder, recipe, rows, meta)
        write_manifest(folder, meta, rows)
        build._materialize(adapter, root, rows, folder / "images", cache_dir, materialize, False, progress)
    return {"dataset": adapter.name, "folder": str(out_dir / adapter.name), "totals": meta["totals"],
            "fingerprint": meta["fingerprint"], "layouts": pool.layouts, "source": meta.get("source"),
            "verified": len(rows), "images": dict(Counter(row["image"]["action"] for row in rows))}
