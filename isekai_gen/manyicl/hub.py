"""Hugging Face Hub copies of the benchmark datasets, read as the adapter's recipe needs them.

A copy is parquet as ``datasets`` writes it (``Dataset.push_to_hub`` / ``to_parquet``): files
``data/<split>-NNNNN-of-NNNNN.parquet`` (or the parquet converter's ``<config>/<split>/NNNN.parquet``),
image columns as ``struct<bytes: binary, path: string>`` and the features, ``ClassLabel`` names
included, as JSON under the schema metadata key ``huggingface`` (``{"info": {"features": ...}}``,
datasets ``arrow_writer.py`` / ``features.py``); the card's ``dataset_info`` says the same. Each
adapter declares the copies it knows in ``hub_copies``: the columns, an explicit table from the
copy's label names to the ManyICL class names, its group column, and how its splits feed the
recipe's source splits (checked against each copy's card, as of 2026: see ``splits/<dataset>.py``).

Only the metadata columns are read to draw the split; image bytes are read only for drawn rows,
one row group at a time (``datasets`` writes 100 image rows per row group), and written into the
split's cache under a name whose suffix is the format the bytes are. Fetching and recognising
snapshots: ``hub_snapshot.py``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import human_size
from ..paths import contained
from .hub_snapshot import HubSource, card_class_names, class_label_names, features, local_source, parquet_files
from .layouts import LayoutAdapter
from .recipe import Pool, Recipe

log = logging.getLogger(__name__)

# Image bytes of recent row groups kept in memory (datasets writes 100 images per group: ~30 MB for
# HAM10000); a row group whose image bytes exceed the read limit is refused unread (issue 25).
KEPT_BYTES = 256 * 1024 * 1024
ROW_GROUP_READ_LIMIT = 1024 * 1024 * 1024
# Output suffix per format PIL finds in the bytes; anything else is re-encoded as PNG.
FORMAT_SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "TIFF": ".tif"}


@dataclass(frozen=True)
class HubCopy:
    """One Hub repository holding a dataset, as its card and parquet schema describe it.

    ``labels`` maps every label name the copy uses (ClassLabel names, or the strings of a string
    column) to a ManyICL class name; ``splits`` maps each of the copy's splits to the recipe's
    source split it feeds (``split_column``: a column decides it instead, e.g. Camelyon17's
    hospital, prefixed with ``split_prefix``). ``id_column`` holds the original image id (its
    suffix, if any, is dropped); without one the image struct's ``path`` or the row number names
    the item. ``label_from_id``: a regex whose group 1 in the id is the label (FIVES).
    """

    repo: str
    labels: dict
    splits: dict
    label_column: str | None = "label"
    id_column: str | None = None
    group_column: str | None = None
    split_column: str | None = None
    split_prefix: str = ""
    label_from_id: str | None = None
    image_column: str = "image"
    options: dict = field(default_factory=dict)   # recipe options the copy implies (HAM10000: test_source)
    assignment: str = ""                          # which split assignment the recipe uses, in words

    @property
    def columns(self) -> list[str]:
        named = (self.label_column, self.id_column, self.group_column, self.split_column)
        return [c for c in dict.fromkeys(named) if c]


def known_copy(adapter, repo: str) -> HubCopy:
    """The declared copy ``repo`` is, or a one-line refusal naming the known ones."""
    copies = tuple(getattr(adapter, "hub_copies", ()))
    named = [c for c in copies if c.repo.lower() == repo.lower()]
    if not named:
        known = ", ".join(c.repo for c in copies) or "none"
        raise UserError(f"hf:{repo} is not a known Hub copy of {adapter.title} (known: {known})")
    return named[0]


def choose_copy(adapter, source: HubSource, files: list[Path], report=log.warning) -> HubCopy:
    """The declared copy the snapshot is: named by the cache path, else the one whose columns fit."""
    import pyarrow.parquet as pq

    copies = tuple(getattr(adapter, "hub_copies", ()))
    if not copies:
        raise UserError(f"{source.folder}: {adapter.title} has no known Hub copy (parquet snapshot given)")
    if source.repo is not None:
        try:
            return known_copy(adapter, source.repo)
        except UserError as exc:
            raise UserError(f"{source.folder}: {exc}") from None
    columns = set(pq.read_schema(files[0]).names)
    fitting = [c for c in copies if {c.image_column, *c.columns} <= columns
               and all(_split_name(f, c) is not None for f in files)]
    if len(fitting) > 1 and len({_reading(c, files) for c in fitting}) == 1:
        # e.g. DTD's tanganke/dtd and mcimpoi/dtd_split_1 with only train/test files: read alike either way.
        report(f"{source.folder}: could be any of {', '.join(c.repo for c in fitting)} (same columns, labels and "
               f"splits); recorded as {fitting[0].repo} (pass --source hf:REPO to name it)")
        return fitting[0]
    if len(fitting) != 1:
        known = "; ".join(f"{c.repo}: {', '.join([c.image_column, *c.columns])}" for c in copies)
        what = "several copies fit" if fitting else "no known copy fits"
        raise UserError(f"{files[0]}: {adapter.title} Hub snapshot: {what} its columns {', '.join(sorted(columns))} "
                        f"(known copies: {known}); pass --source hf:REPO")
    return fitting[0]


def _reading(copy: HubCopy, files: list[Path]) -> str:
    """Everything that decides how ``files`` are read under ``copy`` (two copies alike here read alike)."""
    splits = {name: copy.splits[name] for name in {_split_name(f, copy) for f in files}}
    return repr((sorted(copy.labels.items(), key=repr), sorted(splits.items()), sorted(copy.options.items()),
                 copy.columns, copy.label_from_id, copy.split_prefix))


def _split_name(path: Path, copy: HubCopy) -> str | None:
    stem = path.name.split("-", 1)[0].split(".", 1)[0]
    return next((name for name in (stem, path.parent.name) if name in copy.splits), None)


def split_of(path: Path, copy: HubCopy) -> str:
    """The copy split a parquet file holds: ``<split>-NNNNN-of-NNNNN.parquet`` or ``<split>/NNNN.parquet``."""
    name = _split_name(path, copy)
    if name is not None:
        return name
    raise UserError(f"{path}: parquet file of no known split of hf:{copy.repo} (splits: {', '.join(copy.splits)})")


class HubAdapter(LayoutAdapter):
    """A dataset's adapter reading one of its Hub copies instead of the native layout.

    Same recipe (classes, sizes, licence) as the wrapped adapter; the copy's options override
    the user's where the copy forces them (HAM10000's copy holds no ISIC 2018 test set).
    """

    def __init__(self, base, source: HubSource, copy: HubCopy, files: list[Path]):
        self.base, self.source, self.copy, self.files = base, source, copy, files
        self.root = source.folder
        for key in ("name", "title", "aliases", "all_classes", "default_classes", "demo_per_class", "test_per_class",
                    "group_key", "license", "redistributable", "multilabel", "options", "notes"):
            setattr(self, key, getattr(base, key))
        self.extra_fields = (*base.extra_fields, "original_id")  # split rows name the copy's image id
        self.folded = 0
        self._row_groups: dict[Path, list[int]] = {}
        self._loaded: dict[tuple[Path, int], object] = {}   # recent row groups' image bytes (KEPT_BYTES)
        self._kept: dict[tuple[Path, int], int] = {}

    def source_splits(self, options):
        return self.base.source_splits(options)

    def recipe(self, settings: dict | None = None) -> Recipe:
        settings = dict(settings or {})
        for key, value in self.copy.options.items():
            if key in settings and settings[key] != value:
                raise UserError(f"{self.name}: option {key}={settings[key]!r} does not fit hf:{self.copy.repo} "
                                f"(it needs {key}={value!r}: {self.copy.assignment})")
            settings[key] = value
        return super().recipe(settings)

    def describe_source(self) -> dict:
        """split.json ``source``: the repo, what was asked for, the commit read, the split assignment."""
        return {"kind": "hub", "repo": self.copy.repo, "revision": self.source.revision,
                "commit": self.source.commit, "pinned": self.source.commit is not None,
                "split_assignment": self.copy.assignment, "folded_duplicates": self.folded}

    # --- reading ----------------------------------------------------------------------------

    def read(self, root: Path, recipe: Recipe) -> Pool:
        import pandas as pd

        frames = [self._read_file(path) for path in self.files]
        frame = pd.concat(frames, ignore_index=True)
        frame = self._fold(frame)
        pool = Pool.from_class_names(frame, "label", recipe)
        pool.layouts.insert(0, {"name": "Hub copy (parquet)", "source": self._source_text(), "folder": "."})
        return pool

    def _source_text(self) -> str:
        return f"hf:{self.copy.repo}@{self.source.commit or 'unpinned'}"

    def _read_file(self, path: Path):
        import pandas as pd
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        copy, split = self.copy, split_of(path, self.copy)
        handle = pq.ParquetFile(path)
        names = set(handle.schema_arrow.names)
        missing = [c for c in [copy.image_column, *copy.columns] if c not in names]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)} of hf:{copy.repo} "
                            f"(columns: {', '.join(sorted(names))})")
        self._row_groups[path] = [_image_bytes_size(handle.metadata.row_group(i), f"{copy.image_column}.bytes")
                                  for i in range(handle.num_row_groups)]
        table = handle.read(columns=[*copy.columns, *([] if copy.id_column else [f"{copy.image_column}.path"])])
        count = table.num_rows
        relative = path.relative_to(self.root).as_posix()
        # Column-wise in Arrow: Camelyon17's copy has 455,954 rows (Python lists cost ~1 GB there).
        if copy.id_column:
            ids = pc.cast(table.column(copy.id_column), pa.large_string())
        else:  # the struct's path (datasets keeps the file's base name), else the file and row
            image_paths = pc.struct_field(table.column(copy.image_column), "path")
            ids = pc.coalesce(pc.replace_substring_regex(pc.cast(image_paths, pa.large_string()), r"^.*/", ""),
                              _join(f"{path.stem}-", _numbers(count)))
        ids = pc.replace_substring_regex(ids, r"\.[^./]*$", "")  # a file name's suffix is no part of the id
        labels = self._labels(path, table, ids)
        if copy.split_column:
            source_split = _join(copy.split_prefix, pc.cast(table.column(copy.split_column), pa.large_string()))
        else:
            source_split = pa.repeat(pa.scalar(copy.splits[split], pa.large_string()), count)
        if copy.group_column:  # an image without a group is its own group
            groups = pc.cast(table.column(copy.group_column), pa.large_string())
            groups = pc.if_else(pc.fill_null(pc.equal(groups, ""), True), ids, groups)
        else:
            groups = ids
        return pd.DataFrame({
            # the suffix is set from the bytes once drawn (``output_name``)
            "file_name": _strings(_join(pc.replace_substring_regex(ids, r"^.*/", ""), ".img")),
            "source_path": _strings(_join(f"{relative}#", _numbers(count))),
            "source_split": _strings(source_split), "group": _strings(groups), "label": labels,
            "original_id": _strings(ids),
        })

    def _labels(self, path: Path, table, ids):
        """The ManyICL class name of every row (a pandas Series); a label that does not map refuses the copy."""
        import pandas as pd

        copy = self.copy
        if copy.label_from_id:
            raw = pd.Series(_strings(ids)).str.extract(copy.label_from_id, expand=False)
        else:
            raw = table.column(copy.label_column).to_pandas()
            names = class_label_names(features(path), copy.label_column)
            if names is None and pd.api.types.is_integer_dtype(raw):
                names = card_class_names(self.root, copy.label_column)
            if names is not None:
                unmapped = [n for n in names if n not in copy.labels]
                if unmapped:
                    raise UserError(self._unmapped(path, unmapped))
                named = raw.map(dict(enumerate(names)))
                raw = named.where(named.notna(), raw)  # a code outside the names stays and is refused below
        unmapped = sorted({str(v) for v in raw.unique() if v not in copy.labels})
        if unmapped:
            raise UserError(self._unmapped(path, unmapped))
        return raw.map(copy.labels).astype("str").reset_index(drop=True)

    def _unmapped(self, path: Path, names: list[str]) -> str:
        shown = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return (f"{path}: label(s) {shown} of hf:{self.copy.repo} do not map to {self.title} classes "
                f"({', '.join(self.all_classes)}); refusing a copy whose label set does not map")

    def _fold(self, frame):
        """One row per original id: the same image in several of the copy's splits counts once."""
        if not (self.copy.id_column or self.copy.label_from_id):
            return frame
        repeated = frame.duplicated("original_id", keep="first")
        if repeated.any():
            labels = frame.groupby("original_id")["label"].nunique()
            conflicting = labels[labels > 1]
            if len(conflicting):
                raise UserError(f"hf:{self.copy.repo}: image {conflicting.index[0]!r} carries different labels in "
                                f"different rows ({len(conflicting)} such images)")
            self.folded = int(repeated.sum())
            log.info("%s: %d rows repeat an image id of another row (folded)", self.copy.repo, self.folded)
        return frame.loc[~repeated.to_numpy()].reset_index(drop=True)

    # --- image bytes --------------------------------------------------------------------------

    def image_file(self, root: Path, row: dict, cache_dir: Path) -> Path:
        """The drawn row's image bytes, written once into ``cache_dir`` (keyed by file, size and row)."""
        relative, _, index = row["source_path"].rpartition("#")
        path = self.source_file(root, relative)
        stat = path.stat()
        key = hashlib.sha256(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\0{index}".encode()).hexdigest()[:24]
        target = Path(cache_dir) / "hub" / key[:2] / key
        if not target.is_file():
            data = self._image_bytes(path, int(index))
            target.parent.mkdir(parents=True, exist_ok=True)
            from ..fileio import atomic_write_bytes

            atomic_write_bytes(target, data, durable=False)
        return target

    def _image_bytes(self, path: Path, index: int) -> bytes:
        import pyarrow.parquet as pq

        groups = self._row_groups[path]
        starts = np.cumsum([0, *(rows for rows, _ in groups)])
        group = int(np.searchsorted(starts, index, side="right") - 1)
        key, size = (path, group), groups[group][1]
        if key not in self._loaded:
            if size > ROW_GROUP_READ_LIMIT:
                raise UserError(f"{path}: row group {group} holds {human_size(size)} of image bytes (limit "
                                f"{human_size(ROW_GROUP_READ_LIMIT)}); not read")
            while self._loaded and sum(self._kept.values()) + size > KEPT_BYTES:
                oldest = next(iter(self._loaded))
                del self._loaded[oldest], self._kept[oldest]
            column = pq.ParquetFile(path).read_row_group(group, columns=[f"{self.copy.image_column}.bytes"])
            self._loaded[key] = column.column(self.copy.image_column).combine_chunks().field("bytes")
            self._kept[key] = size
        data = self._loaded[key][index - int(starts[group])].as_py()
        if data is None:
            raise UserError(f"{path}: row {index}: image without bytes (only a path) in hf:{self.copy.repo}")
        return data

    def source_file(self, root: Path, source_path: str) -> Path:
        return contained(root, source_path.rpartition("#")[0] or source_path, what="parquet file",
                         source=f"hf:{self.copy.repo} snapshot {root}")


def _image_bytes_size(row_group, column_path: str) -> tuple[int, int]:
    """(rows, uncompressed bytes of the image bytes column) of one row group, from the footer."""
    for position in range(row_group.num_columns):
        chunk = row_group.column(position)
        if chunk.path_in_schema == column_path:
            return row_group.num_rows, chunk.total_uncompressed_size
    return row_group.num_rows, 0


def _numbers(count: int):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(pa.array(np.arange(count)), pa.large_string())


def _join(*parts):
    """Element-wise concatenation of Arrow string arrays and constants."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = [pa.scalar(p, pa.large_string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*arrays, pa.scalar("", pa.large_string()))


def _strings(values):
    """An Arrow string array as a pandas string Series (no Python objects)."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return pd.Series(pd.array(values, dtype="str"))


def output_name(file_name: str, image_format: str | None) -> str:
    """A Hub row's output name: its id with the suffix of the format its bytes are."""
    stem = file_name[:-len(".img")] if file_name.endswith(".img") else file_name
    return stem + FORMAT_SUFFIXES.get(image_format or "", ".png")


def hub_adapter(adapter, root: Path, source: HubSource | None = None, report=log.warning):
    """``adapter`` reading a Hub copy when ``root`` (or ``source``) is a parquet snapshot; else ``adapter``."""
    if isinstance(adapter, HubAdapter):
        return adapter
    source = source or local_source(root)
    if source is None:
        return adapter
    files = parquet_files(source.folder)
    if not files:
        raise UserError(f"{source.folder}: no parquet files in the hf:{source.repo} snapshot")
    copy = choose_copy(adapter, source, files, report)
    return HubAdapter(adapter, source, copy, files)
