"""webdataset shards of the kept images: ``OUT/export/webdataset/<split>-%06d.tar`` + ``index.json``.

Every sample has the same four members, keyed by the (dot-free) job id: ``cls`` (class index as
text), ``json`` (the image's metadata record), ``png`` (the image bytes as generated, not
re-encoded) and ``txt`` (the prompt). Members are written in sorted order with a fixed mtime,
owner and mode, so a rebuild is byte-identical. Each shard is written atomically
and hashed while it is written; ``index.json`` is removed first and written last, so its
presence means every shard it lists is complete.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from tqdm import tqdm

from ..fileio import atomic_open, dumps_canonical, write_json
from ..schema import validate

if TYPE_CHECKING:
    from .stage import ExportItem

log = logging.getLogger(__name__)

INDEX = "index.json"
MEMBERS = ("cls", "json", "png", "txt")
SHARD_PATTERN = "{split}-%06d.tar"
# 2020-01-01T00:00:00Z: any constant works; a real date keeps tar tools from warning about 1970.
FIXED_MTIME = 1_577_836_800
TAR_OWNER = "isekai-gen"
TAR_BLOCK = 512
COPY_BUFFER = 1 << 22
# End-of-archive (two zero blocks) plus the worst-case padding of the archive to tarfile's
# 10240-byte record: reserved so that a shard never exceeds max_bytes_per_shard.
TAR_TRAILER_MAX = 2 * TAR_BLOCK + 20 * TAR_BLOCK - TAR_BLOCK


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


def _sample_size(item: "ExportItem") -> int:
    sizes = [len(v) for v in sample_text_members(item).values()] + [item.image_size]
    return sum(_tar_member_bytes(size) for size in sizes)


class _HashingWriter:
    """File wrapper that hashes and counts what passes through (saves re-reading the shard)."""

    def __init__(self, handle):
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.size


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), FIXED_MTIME, 0o444
    info.uname = info.gname = TAR_OWNER
    tar.addfile(info, io.BytesIO(data))


def _prefetch(reader: ThreadPoolExecutor, items: Sequence["ExportItem"], depth: int = 16):
    """The items' checked image bytes in order, read up to ``depth`` items ahead (bounded memory)."""
    pending: deque = deque()
    for item in items:
        pending.append(reader.submit(item.read_image))
        if len(pending) > depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def write_shard(path: Path, items: Sequence["ExportItem"]) -> dict:
    """Write one tar shard atomically; return its index entry.

    Written with ``tarfile`` directly, like ``webdataset.TarWriter`` with a fixed ``mtime`` (members
    of a sample adjacent and sorted by extension): importing ``webdataset`` pulls in torch, seconds
    of start-up for a plain tar file. The tests read the shards back with ``webdataset``.
    """
    with atomic_open(path, "wb") as handle, ThreadPoolExecutor(max_workers=1) as reader:
        hashing = _HashingWriter(handle)
        # Closed on errors too: an unclosed tar stream would write into the discarded temp file later.
        # Plain "w" mode with a large copy buffer: each member is one write (stream mode "w|" re-buffers
        # in 10 KB records, which halves throughput).
        with tarfile.open(fileobj=hashing, mode="w", format=tarfile.USTAR_FORMAT, copybufsize=COPY_BUFFER) as tar:
            # Reading and checking the next images (sha256 releases the GIL) overlaps with
            # writing and hashing the shard: the two hashes are what costs over a plain tar.
            for item, image in zip(items, _prefetch(reader, items)):
                members = {"png": image, **sample_text_members(item)}
                for extension in sorted(members):
                    _add_member(tar, f"{item.key}.{extension}", members[extension])
    return {"file": path.name, "samples": len(items), "bytes": hashing.size, "sha256": hashing.digest.hexdigest(),
            "first_key": items[0].key, "last_key": items[-1].key}


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
    sizes = [_sample_size(item) for item in items]
    plan = plan_shards(sizes, max_samples_per_shard, max_bytes_per_shard - TAR_TRAILER_MAX)
    shards = []
    with tqdm(total=len(items), desc="webdataset", unit="img", disable=not progress) as bar:
        for number, positions in enumerate(plan):
            shards.append(write_shard(folder / (pattern % number), [items[i] for i in positions]))
            bar.update(len(positions))
    written = {shard["file"] for shard in shards}
    for stale in sorted(folder.glob("*.tar")):
        if stale.name not in written:
            log.info("removing %s from an earlier export", stale)
            stale.unlink()
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
