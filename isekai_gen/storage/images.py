"""Where generated images go and come from: a local build folder, or the bucket of a remote one.

``LocalImages`` is what a local build always did: a temporary sibling and a rename per image,
one flush per batch (``fileio.DurableFolder``). ``RemoteImages`` PUTs each image as
one object (atomic on object storage: never half there), so a batch is durable when its PUTs
have returned. ``RemoteImages`` pickles as its ``Remote``, so a Ray actor on another machine
writes with exactly what the driver configured.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..fileio import DurableFolder, atomic_write_bytes, sha256_bytes, write_deferred
from .remote import Remote, remote_of, storage_errors

# Images downloaded per request of ``fetch_images`` (``Remote.read`` fetches a list concurrently).
FETCH_CHUNK = 256


class LocalImages:
    """Images under a local build folder, flushed per committed batch."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self._folder = DurableFolder(self.out_dir / "images")

    def write(self, relpath: str, data: bytes) -> None:
        write_deferred(self.out_dir / relpath, data)

    def commit(self, relpaths: list[str]) -> None:
        self._folder.commit([self.out_dir / rel for rel in relpaths])

    def close(self) -> None:
        self._folder.close()


class RemoteImages:
    """Images PUT to a remote build's bucket, one object each, a batch's PUTs concurrently.

    ``write`` keeps the encoded image (a batch is in memory anyway); ``commit`` PUTs the batch at
    once (fsspec's ``pipe`` of a dict runs the PUTs concurrently on s3fs/gcsfs' event loop): one
    round trip of latency per batch instead of one per image.
    """

    def __init__(self, remote: Remote):
        self.remote = remote
        self._pending: dict[str, bytes] = {}
        self._guard = threading.Lock()  # the encoder threads write at once

    def __getstate__(self) -> dict:
        return {"remote": self.remote}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["remote"])

    def write(self, relpath: str, data: bytes) -> None:
        with self._guard:
            self._pending[relpath] = data

    def commit(self, relpaths: list[str]) -> None:
        """Return once every image in ``relpaths`` is a complete object in the bucket."""
        with self._guard:
            batch = {self.remote.key(rel): self._pending.pop(rel) for rel in relpaths}
        if batch:
            with storage_errors(self.remote.url_of(relpaths[0].rpartition("/")[0])):
                self.remote.fs.pipe(batch)

    def close(self) -> None:
        """No handle to release."""


def image_store(out_dir: str | os.PathLike) -> LocalImages | RemoteImages:
    """The image store of a build folder (its bucket when the folder is a remote build's mirror)."""
    remote = remote_of(out_dir)
    return RemoteImages(remote) if remote is not None else LocalImages(out_dir)


@dataclass(frozen=True)
class RemoteFile:
    """One object of a remote build, openable where the bucket is reachable (a Ray worker)."""

    remote: Remote
    relpath: str

    def open(self) -> io.BytesIO:
        with storage_errors(str(self)):
            return io.BytesIO(self.remote.fs.cat_file(self.remote.key(self.relpath)))

    def __str__(self) -> str:
        return self.remote.url_of(self.relpath)


def worker_sources(out_dir: Path, paths: list[Path]) -> list[Path | RemoteFile]:
    """What a cluster worker should read for each image: the bucket's object for a remote build
    (the driver's mirror is on no other machine), else the path itself."""
    remote = remote_of(out_dir)
    if remote is None:
        return list(paths)
    root = Path(out_dir).resolve()
    return [RemoteFile(remote, Path(p).resolve().relative_to(root).as_posix()) for p in paths]


def fetch_images(out_dir: Path, rows: list[dict]) -> int:
    """Download into a remote build's mirror every image of ``rows`` it lacks, each checked
    against its manifest sha256 (no-op for a local build); returns how many were downloaded."""
    remote = remote_of(out_dir)
    if remote is None:
        return 0
    missing = [row for row in rows if row.get("status") == "ok" and row.get("image")
               and not (Path(out_dir) / row["image"]).exists()]
    for start in range(0, len(missing), FETCH_CHUNK):
        chunk = missing[start:start + FETCH_CHUNK]
        with storage_errors(remote.url):
            data = remote.read([remote.key(row["image"]) for row in chunk])
        for row, content in zip(chunk, data):
            if isinstance(content, FileNotFoundError):
                raise UserError(f"{remote.url_of(row['image'])}: image object not found "
                                f"(manifest.jsonl job {row['job_id']})")
            if isinstance(content, BaseException):
                with storage_errors(remote.url_of(row["image"])):
                    raise content
            if sha256_bytes(content) != row["sha256"]:
                raise UserError(f"{remote.url_of(row['image'])}: sha256 differs from manifest.jsonl "
                                f"(job {row['job_id']}); the object changed after generation")
            atomic_write_bytes(Path(out_dir) / row["image"], content, durable=False)
    return len(missing)
