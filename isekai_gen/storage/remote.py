"""A build folder on object storage: ``--out s3://bucket/prefix`` (any fsspec URL).

Object stores have no appends, no renames and no locks, and every stage of this project reads
and writes a local folder. So a remote build keeps a local **mirror** folder on the driver
machine (``mirror_path``), and the URL stays the single source of truth:

- Images never pass through the mirror on their way out: whoever renders them (this process or a
  Ray actor on another machine) PUTs each one straight to ``URL/images/...`` (``images.py``). A
  single PUT is atomic on S3, GCS and Azure Blob: an object is either absent or complete, so the
  manifest can never name a partial one.
- A generation journal line is committed by PUTting it as its own object,
  ``URL/manifest.parts/<journal>.d/<byte offset>.jsonl``, after its images and before the next
  batch (``push_journal_line``); the local journal is rebuilt from those objects on every start
  (``_restore_journals``), so a driver killed at any moment, or a new driver machine with an
  empty mirror, resumes exactly where the bucket says.
- Every other file (run.json, manifest.jsonl, filter/, episodes/, export/, cache/) is written
  locally by the stages as before and uploaded when the command finishes (``Session.push``):
  one upload per changed file (a PUT, or a multipart upload for a large one: either is
  visible only once complete), deletions mirrored. ``Session.pull`` at the start downloads what
  changed in the bucket since the mirror last saw it. Images are downloaded only by the stages
  that read pixels (``fetch_images``), each checked against its manifest sha256.

Configuration is fsspec's own: credentials through the backend's usual chain (for S3 the AWS
environment variables, profile or instance role), other options through fsspec's
``FSSPEC_<PROTOCOL>_<OPTION>`` environment variables (``FSSPEC_S3_ENDPOINT_URL=http://...`` for
MinIO or another S3-compatible server). The filesystem object itself is handed to Ray actors
(fsspec filesystems pickle their constructor options), so workers write with the driver's
settings. Checked against fsspec 2026.9 (``core.url_to_fs``, ``AbstractFileSystem.pipe_file``,
``cat_ranges``, ``find(detail=True)``, ``config.conf`` from ``FSSPEC_*`` variables) and s3fs 2026.9
(``S3FileSystem.pipe_file`` is one ``PutObject`` below 100 MiB, twice its 50 MiB chunk size, and a
multipart upload above, which is also visible only once complete).

Two fsspec behaviours this module works around: ``cat`` of a list glob-expands every path with
``*``, ``?`` or ``[`` in it (``AsyncFileSystem._expand_path``), so a prefix such as ``runs/a[1]``
would read other objects or none: objects are read with ``cat_ranges``, which takes each path
literally and answers in order. And s3fs keeps every listing it made (``dircache``), only ever
refreshing a listed folder's own entry and its parents', while its ``cat_file`` sizes an object
from those listings first: a listing made before another machine wrote fails to find the new
object. Every fresh look at the bucket therefore starts with the whole cache dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import UserError
from ..fileio import atomic_write_bytes, dumps_canonical
from ..resources import default_cache_dir
from .bucket_lock import bucket_lock
from .failures import storage_errors

log = logging.getLogger(__name__)

MARKER = ".isekai-gen-remote.json"      # in the mirror: which URL it mirrors
SYNC_INDEX = ".isekai-gen-sync.json"    # in the mirror: what each synced file was at the last sync
IMAGES = "images"
JOURNALS = "manifest.parts"
SEGMENTS = ".d"                         # URL/manifest.parts/<journal>.d/<offset>.jsonl
_SEGMENT = re.compile(r"([0-9]+)\.jsonl")
_URL = re.compile(r"^([a-z][a-z0-9+.-]+)://")
# Caches that describe this machine's files (inodes, mtimes) and mean nothing on another.
MACHINE_LOCAL = ("cache/lcl-images.json",)
# Bounded waits on an S3 store that stops answering: s3fs's own 5 tries of botocore's 5 legacy
# attempts of a 15 s read made a paused server hang a build 152 s in silence. Here one call gives
# up after 3 attempts of 20 s (botocore's "standard" retries back off between them). The user's
# fsspec settings (``FSSPEC_S3_CONFIG_KWARGS``, ``fsspec.config.conf``) win, key by key.
S3_CONFIG = {"connect_timeout": 10, "read_timeout": 20, "retries": {"max_attempts": 3, "mode": "standard"}}
S3_TRIES = 1  # s3fs's retry loop around botocore's (``S3FileSystem.retries``, a class attribute)


def is_url(out: str | os.PathLike) -> bool:
    """True for ``s3://...``, ``gs://...`` and the like; ``file://`` and plain paths are local."""
    match = _URL.match(str(out))
    return bool(match) and match.group(1) != "file"


def local_path(out: str | os.PathLike) -> Path:
    text = str(out)
    return Path(text[len("file://"):]) if text.startswith("file://") else Path(text)


@dataclass(frozen=True)
class Remote:
    """A remote build folder: its URL, fsspec filesystem and the filesystem path of its root."""

    url: str
    fs: object
    root: str

    def key(self, relpath: str) -> str:
        return f"{self.root}/{relpath}"

    def url_of(self, relpath: str) -> str:
        return f"{self.url}/{relpath}"

    def relpath(self, key: str) -> str:
        return key[len(self.root) + 1:]

    def read(self, keys: list[str]) -> list[bytes | BaseException]:
        """The objects ``keys``, read concurrently where the backend is async, each taken literally
        (no glob expansion, unlike ``cat``), in order; a failed read is its exception."""
        return self.fs.cat_ranges(keys, None, None, on_error="return") if keys else []

    def forget_listings(self) -> None:
        """Drop every cached listing (s3fs refreshes only a path's own entry and its parents')."""
        self.fs.invalidate_cache()


def _bounded_options(url: str) -> dict:
    """Storage options that bound every call's wait (S3 only; other backends keep their own)."""
    if not url.startswith(("s3://", "s3a://")):
        return {}
    from fsspec.config import conf

    user = conf.get("s3", {})
    return {"config_kwargs": {**S3_CONFIG, **(user.get("config_kwargs") or {})}}


def connect(url: str) -> Remote:
    """The fsspec filesystem for ``url``, or one line naming the package its protocol needs."""
    import fsspec

    _, separator, rest = str(url).partition("://")
    if not separator or not rest.strip("/"):
        raise UserError(f"{url}: names no bucket (expected e.g. s3://bucket/prefix)")
    url = url.rstrip("/")
    try:
        fs, root = fsspec.core.url_to_fs(url, **_bounded_options(url))
    except ImportError as exc:  # fsspec's own message names the package, e.g. "Install s3fs to access S3"
        extra = " (pip install 'isekai-gen[s3]')" if url.startswith(("s3://", "s3a://")) else ""
        raise UserError(f"{url}: {exc}".rstrip(".") + extra) from None
    except ValueError as exc:
        raise UserError(f"{url}: not a storage URL fsspec knows ({exc})") from None
    if hasattr(fs, "call_s3"):
        _bound_s3_waits(fs)
    return Remote(url, fs, root.rstrip("/"))


def _bound_s3_waits(fs) -> None:
    """This process's s3fs calls give up in bounded time (Ray actors' unpickled copies keep s3fs's
    own behaviour): no s3fs retry loop around botocore's, and no ``Expect: 100-continue`` on PUTs,
    whose wait for the interim response no aiohttp read timeout covers (a silent server held a
    PutObject forever; marin-community/marin#6719 measured the same), at the cost of sending a
    refused upload's body once."""
    from botocore.handlers import add_expect_header

    fs.retries = S3_TRIES
    fs.connect()  # creates the client (no request)
    fs.s3.meta.events.unregister("before-call.s3", add_expect_header)


def mirror_path(url: str) -> Path:
    """The driver's local mirror of ``url``: ``$ISEKAI_GEN_MIRRORS`` (default: the isekai-gen cache's
    ``mirrors/``) / protocol / bucket / prefix, plus a short hash so that lookalike URLs differ."""

    base = Path(os.environ.get("ISEKAI_GEN_MIRRORS") or default_cache_dir() / "mirrors")
    url = url.rstrip("/")  # s3://b/x/ is s3://b/x: one mirror, one writer lock
    scheme, _, rest = url.partition("://")
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", rest).strip("_")[:120] or "root"
    return base / scheme / f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


_remotes: dict[Path, Remote | None] = {}


def remote_of(out_dir: str | os.PathLike) -> Remote | None:
    """The remote a local folder mirrors (from its marker file), or None for an ordinary folder."""
    key = Path(out_dir).resolve()
    if key not in _remotes:
        marker = key / MARKER
        _remotes[key] = connect(json.loads(marker.read_text(encoding="utf-8"))["url"]) if marker.exists() else None
    return _remotes[key]


def _signature(info: dict) -> list | None:
    """What identifies one version of a remote object: its size and ETag (or mtime where no ETag);
    None where the backend tells neither, so that the object is always downloaded again."""
    tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("mtime") or info.get("LastModified")
    return None if tag is None else [int(info.get("size") or 0), str(tag)]


def _local_signature(path: Path) -> list:
    """Size, mtime and inode: the stages replace files by rename (a new inode), which a same-size
    rewrite within the file system's timestamp granularity (a jiffy) would otherwise hide."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _placeholder(key: str) -> bool:
    """A zero-byte ``folder/`` object that consoles create for "new folder": no file of the build."""
    return key.endswith("/")


def _synced(relpath: str) -> bool:
    """Files the session syncs: not images (PUT by the renderers), journals (their own objects),
    nor this machine's bookkeeping (locks, temporary files, marker, index, ``MACHINE_LOCAL``)."""
    name = relpath.rpartition("/")[2]
    return not (relpath.startswith(f"{IMAGES}/") or relpath.startswith(f"{JOURNALS}/") or relpath in MACHINE_LOCAL
                or name.startswith(".isekai-gen"))


def _upload_rank(relpath: str) -> int:
    """0 for data; higher for files that name other files, uploaded after them: the export's
    indexes and LCL episode files, then the dataset cards, then ``SHA256SUMS``, the manifest last
    (a reader sees new stage outputs before the rows naming them)."""
    name = relpath.rpartition("/")[2]
    if relpath == "manifest.jsonl":
        return 4
    if name == "SHA256SUMS":
        return 3
    if name == "README.md":
        return 2
    return int(relpath.startswith("export/") and name.endswith((".json", ".jsonl")))


class Session:
    """One command's view of a remote build through its mirror: ``pull`` first, ``push`` last."""

    def __init__(self, remote: Remote, mirror: Path):
        self.remote = remote
        self.mirror = mirror
        self.index_path = mirror / SYNC_INDEX

    def _index(self) -> dict:
        try:
            return json.loads(self.index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _save_index(self, index: dict) -> None:
        atomic_write_bytes(self.index_path, dumps_canonical(index).encode(), durable=False)

    def _listing(self) -> dict[str, dict]:
        """relpath -> info of every synced object: each top-level entry but images/ is walked."""
        fs, found = self.remote.fs, {}
        self.remote.forget_listings()  # other machines write too
        try:
            entries = fs.ls(self.remote.root, detail=True)
        except FileNotFoundError:
            return {}
        for entry in entries:
            name = entry["name"].rstrip("/").rpartition("/")[2]
            if entry["type"] == "directory":
                if name not in (IMAGES, JOURNALS):
                    found.update(fs.find(entry["name"], detail=True))
            else:
                found[entry["name"]] = entry
        return {self.remote.relpath(key): info for key, info in found.items()
                if not _placeholder(key) and self.remote.relpath(key) and _synced(self.remote.relpath(key))}

    def pull(self) -> None:
        """Bring the mirror up to the bucket: changed files downloaded, ones gone from it removed."""
        with storage_errors(self.remote.url):
            self._pull()

    def _pull(self) -> None:
        self.mirror.mkdir(parents=True, exist_ok=True)
        (self.mirror / MARKER).write_text(json.dumps({"url": self.remote.url}) + "\n", encoding="utf-8")
        index, listing = self._index(), self._listing()
        bucket = self.remote.root.split("/")[0]
        if not listing and bucket and not self.remote.fs.exists(bucket):
            raise UserError(f"{self.remote.url}: bucket {bucket!r} not found; create it first")
        stale = [rel for rel, info in listing.items()
                 if rel not in index or _signature(info) is None or index[rel]["remote"] != _signature(info)
                 or not (self.mirror / rel).exists() or index[rel]["local"] != _local_signature(self.mirror / rel)]
        for rel, data in self._cat(stale).items():
            atomic_write_bytes(self.mirror / rel, data, durable=False)
            index[rel] = {"remote": _signature(listing[rel]), "local": _local_signature(self.mirror / rel)}
        # Gone from the bucket, or never in it: files a failed command left (nothing was pushed),
        # which the next successful command would otherwise upload as if they were its own.
        for rel in set(index) | set(self._local_files()):
            if rel not in listing:
                (self.mirror / rel).unlink(missing_ok=True)
                index.pop(rel, None)
        self._save_index(index)
        _restore_journals(self.remote, self.mirror)
        log.info("%s: mirror %s up to date (%d files downloaded)", self.remote.url, self.mirror, len(stale))

    def _local_files(self) -> list[str]:
        """Relative paths of the mirror's synced files (images/ is not walked: it can hold millions)."""
        found = []
        for folder, subfolders, files in os.walk(self.mirror):
            relative = Path(folder).relative_to(self.mirror).as_posix()
            if relative == ".":
                subfolders[:] = [name for name in subfolders if name not in (IMAGES, JOURNALS)]
                relative = ""
            found += [rel for name in files if _synced(rel := f"{relative}/{name}".lstrip("/"))]
        return sorted(found)

    def _cat(self, relpaths: list[str]) -> dict[str, bytes]:
        data = dict(zip(relpaths, self.remote.read([self.remote.key(rel) for rel in relpaths])))
        failed = next((value for value in data.values() if isinstance(value, BaseException)), None)
        if failed is not None:
            raise failed
        return data

    def push(self) -> None:
        """Upload every file the command changed in the mirror; delete the ones it removed."""
        with storage_errors(self.remote.url):
            self._push()

    def _push(self) -> None:
        """Uploads in ``_upload_rank`` order, so that a reader of the bucket (or a push killed
        midway) never sees a card or index without the data it names: removed describing files
        go first, then the data, then the describing files, and removed data files last."""
        index = self._index()
        local = {rel: self.mirror / rel for rel in self._local_files()}
        changed = sorted((rel for rel, path in local.items()
                          if rel not in index or index[rel]["local"] != _local_signature(path)), key=_upload_rank)
        removed = [rel for rel in index if rel not in local]
        self._remove([rel for rel in removed if _upload_rank(rel)], index)
        fs = self.remote.fs
        for rel in changed:  # put_file streams (multipart above s3fs' chunk size): shards can be large
            fs.put_file(str(local[rel]), self.remote.key(rel))
            index[rel] = {"remote": _signature(fs.info(self.remote.key(rel))), "local": _local_signature(local[rel])}
        self._remove([rel for rel in removed if not _upload_rank(rel)], index)
        self._save_index(index)
        log.info("%s: %d changed files uploaded", self.remote.url, len(changed))

    def _remove(self, relpaths: list[str], index: dict) -> None:
        for rel in relpaths:
            try:
                self.remote.fs.rm_file(self.remote.key(rel))
            except FileNotFoundError:
                pass
            del index[rel]


@contextmanager
def opened(url: str, *, command: str = "isekai-gen", wait: bool = False, shared: bool = False) -> Iterator[Session]:
    """The mirror of ``url`` brought up to date; changed files uploaded when the block succeeds.

    The caller holds the mirror's writer lock (``lock.build_lock``); this holds the bucket's lock
    object (``bucket_lock``: another machine's writer refuses in one line, or waits with ``wait``)
    unless ``shared`` (generation shards on several machines write one bucket by design). On an
    error nothing is uploaded but the journal lines already committed: the bucket keeps its last
    complete state.
    """
    remote = connect(url)
    session = Session(remote, mirror_path(remote.url))
    _remotes[session.mirror.resolve()] = remote
    with contextlib.nullcontext() if shared else bucket_lock(remote, command, wait=wait) as held:
        session.pull()
        yield session
        if held is not None:
            held.check()
        session.push()


def _segment_folder(remote: Remote, journal: Path) -> str:
    return remote.key(f"{JOURNALS}/{journal.name}{SEGMENTS}")


def push_journal_line(out_dir: Path, journal: Path, offset: int, line: bytes) -> None:
    """Commit one journal line to the bucket (no-op for a local build): the line is committed
    once this PUT returns; its images were PUT before it."""
    remote = remote_of(out_dir)
    if remote is not None:
        with storage_errors(remote.url):
            remote.fs.pipe_file(f"{_segment_folder(remote, journal)}/{offset:015d}.jsonl", line)


def refresh_journals(out_dir: Path) -> None:
    """Bring a remote build's local journals up to the bucket (other machines' shards commit
    there); no-op for a local build, whose shards' journals are the files themselves."""
    remote = remote_of(out_dir)
    if remote is not None:
        with storage_errors(remote.url):
            _restore_journals(remote, Path(out_dir))


def _restore_journals(remote: Remote, mirror: Path) -> None:
    """Rewrite each local journal as the concatenation of its committed line objects.

    A line the local journal has beyond them (its PUT never returned) is not committed and goes.
    """
    fs = remote.fs
    folder = remote.key(JOURNALS)
    remote.forget_listings()  # other shards' machines commit lines meanwhile
    try:
        segment_folders = [entry for entry in fs.ls(folder, detail=True) if entry["name"].endswith(SEGMENTS)]
    except FileNotFoundError:
        segment_folders = []
    wanted = {}
    for entry in segment_folders:
        name = entry["name"].rstrip("/").rpartition("/")[2][:-len(SEGMENTS)]
        keys = sorted(key for key in fs.find(entry["name"]) if not _placeholder(key))
        content, expected = bytearray(), 0
        for key, data in zip(keys, remote.read(keys)):
            if isinstance(data, BaseException):
                raise data
            offset = _segment_offset(remote, key)
            if offset != expected:
                raise UserError(f"{remote.url_of(JOURNALS)}/{name}: committed lines missing before byte {offset}; "
                                "the bucket's journal is damaged")
            content += data
            expected += len(data)
        wanted[name] = bytes(content)
    local_folder = mirror / JOURNALS
    for path in sorted(local_folder.glob("part-*.jsonl")) if local_folder.exists() else []:
        if path.name not in wanted:
            path.unlink()
    for name, content in wanted.items():
        path = local_folder / name
        if not path.exists() or path.read_bytes() != content:
            atomic_write_bytes(path, content)


def _segment_offset(remote: Remote, key: str) -> int:
    """The byte offset a journal line object is named by (``<15 digits>.jsonl``)."""
    match = _SEGMENT.fullmatch(key.rpartition("/")[2])
    if match is None:
        raise UserError(f"{remote.url_of(remote.relpath(key))}: not a journal line object (<byte offset>.jsonl); "
                        "the bucket's journal is damaged")
    return int(match.group(1))
