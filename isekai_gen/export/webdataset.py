"""webdataset shards of the kept images: ``OUT/export/webdataset/<split>-%06d.tar`` + ``index.json``.

Every sample has the same four members, keyed by the (dot-free) job id: ``cls`` (class index as
text), ``json`` (the image's metadata record), ``png`` (the image bytes as generated, not
re-encoded) and ``txt`` (the prompt). Members are written in sorted order with a fixed mtime,
owner and mode, so a rebuild is byte-identical. The bytes are exactly those ``tarfile`` writes
(tested), laid out by hand for speed (see ``write_shard``). Each shard is written atomically and
hashed while it is written; ``index.json`` is removed first and written last, so its presence
means every shard it lists is complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tarfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from tqdm import tqdm

from ..config import ExportConfig
from ..fileio import atomic_open, dumps_canonical, remove_stale, write_json
from ..schema import validate
from .registry import ExportResult, Exporter

if TYPE_CHECKING:
    from .items import ExportItem


WEBDATASET_DIR = "webdataset"
INDEX = "index.json"
MEMBERS = ("cls", "json", "png", "txt")
SHARD_PATTERN = "{split}-%06d.tar"
# 2020-01-01T00:00:00Z: any constant works; a real date keeps tar tools from warning about 1970.
FIXED_MTIME = 1_577_836_800
TAR_OWNER = "isekai-gen"
TAR_BLOCK = 512
TAR_RECORD = 20 * TAR_BLOCK  # tarfile pads the archive to a multiple of this
# End-of-archive (two zero blocks) plus the worst-case padding of the archive to a record:
# reserved so that a shard never exceeds max_bytes_per_shard.
TAR_TRAILER_MAX = 2 * TAR_BLOCK + TAR_RECORD - TAR_BLOCK
WRITEBACK_CHUNK = 8 << 20


def plan_shards(sizes: Sequence[int], max_count: int, max_bytes: int) -> list[range]:
    """Cut items of the given sizes, in order, into consecutive shards (also used for Parquet files).

    A shard closes when it holds ``max_count`` items or when the next item would push it past
    ``max_bytes``; an item larger than ``max_bytes`` gets a shard of its own.
    """
    shards, start, total = [], 0, 0
    for position, size in enumerate(sizes):
        count = position - start
        if count and (count >= max_count or total + size > max_bytes):
            shards.append(range(start, position))
            start, total = position, 0
        total += size
    if start < len(sizes):
        shards.append(range(start, len(sizes)))
    return shards


def _tar_member_bytes(size: int) -> int:
    """Bytes a member takes in a tar archive: one header block plus its data padded to blocks."""
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


def sample_text_members(item: "ExportItem") -> dict[str, bytes]:
    """The members of a sample other than the image."""
    metadata = item.metadata
    return {
        "cls": str(metadata["class_index"]).encode("ascii"),
        "json": dumps_canonical(metadata).encode("utf-8"),
        "txt": metadata["prompt"].encode("utf-8"),
    }


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, FIXED_MTIME, 0o444
    info.uname = info.gname = TAR_OWNER
    return info


# tarfile's USTAR header for our fixed fields, as a template: TarInfo.tobuf costs ~25 us a member,
# as much as writing a 200 KB image. Only the name, size and checksum differ between members; the
# checksum is the byte sum of the header with its own field read as spaces.
_NAME, _SIZE, _CHECKSUM = slice(0, 100), slice(124, 136), slice(148, 156)
_TEMPLATE = bytearray(_tarinfo("", 0).tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))
_TEMPLATE[_CHECKSUM] = b" " * 8
_TEMPLATE_SUM_BESIDES_NAME_AND_SIZE = sum(_TEMPLATE) - sum(_TEMPLATE[_NAME]) - sum(_TEMPLATE[_SIZE])
_ZEROS = bytes(TAR_BLOCK)


def tar_header(name: str, size: int) -> bytes:
    """The 512-byte USTAR header ``tarfile`` writes for a regular file member of ours (tested equal)."""
    encoded = name.encode("utf-8")
    if len(encoded) > 100 or size >= 8**11:  # tarfile splits long names into the prefix field, or refuses
        return _tarinfo(name, size).tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    header = bytearray(_TEMPLATE)
    header[_NAME] = encoded.ljust(100, b"\0")
    header[_SIZE] = b"%011o\0" % size
    checksum = _TEMPLATE_SUM_BESIDES_NAME_AND_SIZE + sum(header[_NAME]) + sum(header[_SIZE])
    header[_CHECKSUM] = b"%06o\0 " % checksum
    return bytes(header)


def _sample_layout(item: "ExportItem", texts: dict[str, bytes]) -> list[tuple[bytes, bytes | None, int]]:
    """(header, data, size) of each member in sorted order; data None stands for the image."""
    members = {"png": None, **texts}
    layout = []
    for extension in sorted(members):
        data = members[extension]
        size = item.image_size if data is None else len(data)
        layout.append((tar_header(f"{item.key}.{extension}", size), data, size))
    return layout


def _fill_sample(buffer: bytearray, item: "ExportItem", texts: dict[str, bytes]) -> int:
    """Lay the sample's tar members out in ``buffer`` (image read straight into it); return the length.

    Runs in the reader thread: reading into a reused buffer avoids faulting in fresh pages for
    every image, and the image's sha256 check (which releases the GIL) overlaps the writer.
    """
    view, offset = memoryview(buffer), 0
    for header, data, size in _sample_layout(item, texts):
        view[offset:offset + TAR_BLOCK] = header
        offset += TAR_BLOCK
        if data is None:
            item.read_image_into(view[offset:offset + size])
        else:
            view[offset:offset + size] = data
        offset += size
        padding = -size % TAR_BLOCK
        view[offset:offset + padding] = _ZEROS[:padding]
        offset += padding
    return offset


def _filled_samples(reader: ThreadPoolExecutor, items, texts, buffer_size: int, depth: int = 8):
    """Views of the items' laid-out samples in order, filled up to ``depth`` ahead in reused buffers.

    A view is valid until the next one is requested: its buffer then goes back to the pool.
    """
    free = [bytearray(buffer_size) for _ in range(min(depth, len(items)))]
    pending: deque = deque()
    queued = iter(zip(items, texts))

    def submit_while_free() -> None:
        while free and (job := next(queued, None)) is not None:
            buffer = free.pop()
            pending.append((buffer, reader.submit(_fill_sample, buffer, *job)))

    submit_while_free()
    while pending:
        buffer, future = pending.popleft()
        yield memoryview(buffer)[:future.result()]
        free.append(buffer)
        submit_while_free()


def _start_writeback(fd: int, start: int, end: int) -> None:
    """Ask the kernel to start writing ``[start, end)`` to disk now (Linux; a no-op elsewhere).

    POSIX_FADV_DONTNEED starts writeback of dirty pages without waiting for it (and drops pages
    already clean: a shard is not read again by the export), so the final fsync finds most of the
    shard on disk already instead of flushing all of it at once.
    """
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):  # advice only: a file system may not take it
            os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)


def write_shard(path: Path, items: Sequence["ExportItem"], texts: Sequence[dict[str, bytes]],
                sample_sizes: Sequence[int]) -> dict:
    """Write one tar shard atomically; return its index entry.

    The bytes are those of ``tarfile`` (``webdataset.TarWriter`` with a fixed ``mtime``: members of
    a sample adjacent and sorted by extension, end-of-archive blocks padded to tarfile's record
    size), written by hand: a reader thread lays each sample out in a reused buffer (headers from
    a template, image checked against its sha256) while this thread writes and hashes the previous
    one. The tests read the shards back with ``tarfile``, ``webdataset`` and ``datasets``.
    """
    digest, written, flushed = hashlib.sha256(), 0, 0
    with atomic_open(path, "wb", buffering=0) as handle, ThreadPoolExecutor(max_workers=1) as reader:
        for sample in _filled_samples(reader, items, texts, max(sample_sizes)):
            _write_all(handle, sample)
            digest.update(sample)
            written += len(sample)
            if written - flushed >= WRITEBACK_CHUNK:
                _start_writeback(handle.fileno(), flushed, written)
                flushed = written
        trailer = bytes(2 * TAR_BLOCK + -(written + 2 * TAR_BLOCK) % TAR_RECORD)
        _write_all(handle, trailer)
        digest.update(trailer)
        written += len(trailer)
    return {"file": path.name, "samples": len(items), "bytes": written, "sha256": digest.hexdigest(),
            "first_key": items[0].key, "last_key": items[-1].key}


def _write_all(handle, data: memoryview | bytes) -> None:
    """Write all of ``data`` to an unbuffered file (a raw write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[handle.write(view):]


def write_webdataset(
    items: Sequence["ExportItem"],
    folder: Path,
    *,
    split: str,
    classes: Sequence[str],
    max_samples_per_shard: int,
    max_bytes_per_shard: int,
    progress: bool = False,
) -> dict:
    """Write the shards and ``index.json`` into ``folder``; remove shards of earlier exports.

    Returns the index (schema ``webdataset_index``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / INDEX).unlink(missing_ok=True)
    pattern = SHARD_PATTERN.format(split=split)
    texts = [sample_text_members(item) for item in items]
    sizes = [_tar_member_bytes(item.image_size) + sum(_tar_member_bytes(len(data)) for data in text.values())
             for item, text in zip(items, texts)]
    plan = plan_shards(sizes, max_samples_per_shard, max_bytes_per_shard - TAR_TRAILER_MAX)
    shards = []
    with tqdm(total=len(items), desc="webdataset", unit="img", disable=not progress) as bar:
        for number, positions in enumerate(plan):
            part = slice(positions.start, positions.stop)
            shards.append(write_shard(folder / (pattern % number), items[part], texts[part], sizes[part]))
            bar.update(len(positions))
    remove_stale(folder, {folder / shard["file"] for shard in shards})
    index = {
        "format": "webdataset",
        "split": split,
        "pattern": pattern,
        "members": list(MEMBERS),
        "classes": list(classes),
        "samples": len(items),
        "shards": shards,
    }
    validate(index, "webdataset_index", folder / INDEX)
    write_json(folder / INDEX, index)
    return index


class WebDatasetExporter(Exporter):
    """``OUT/export/webdataset/``: the kept images as webdataset shards (``export.webdataset``)."""

    name = "webdataset"
    folder = WEBDATASET_DIR
    default = True

    def enabled(self, export: ExportConfig) -> bool:
        return export.webdataset.enabled

    def export(self, source) -> ExportResult:
        export, catalog = source.config.export, source.catalog
        settings = export.webdataset
        folder = source.export_dir / WEBDATASET_DIR
        index = write_webdataset(
            source.items, folder, split=export.split, classes=catalog.ids,
            max_samples_per_shard=settings.max_samples_per_shard,
            max_bytes_per_shard=settings.max_bytes_per_shard, progress=source.progress,
        )
        return ExportResult({f"{WEBDATASET_DIR}/{shard['file']}": shard["sha256"] for shard in index["shards"]},
                            index)

    def describe(self, summary: dict, show) -> list[str]:
        return [f"webdataset: {summary['samples']} samples in {len(summary['shards'])} shard(s) -> {show(self.folder)}"]


EXPORTER = WebDatasetExporter
